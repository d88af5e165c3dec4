"""Every raise in src/parity uses the exception tree in parity.errors (issue 10).

The scan fails on any ``raise TypeError(...)``-style raise of a builtin exception; the
behaviour tests check that the tree classes chosen still satisfy the builtin catches callers
rely on (``except TypeError`` / ``except RuntimeError`` / ``except LookupError``).
"""

from __future__ import annotations

import ast
import builtins
import importlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from parity import errors
from parity.errors import (
    ConcurrentChangeError,
    ConfigError,
    InputError,
    InputTypeError,
    NotFoundError,
    ParityError,
    ScoringError,
    TransientError,
    WorkspaceError,
)
from parity.featurelog.record import encode_value
from parity.online.options import parse_setting
from parity.sentinel.config_values import coerce
from parity.sentinel.context import CheckContext, as_numbers
from parity.sentinel.stats import chi2_ppf, row_losses
from parity.sentinel.verdict import CheckResult, Verdict
from parity.timeutil import UTC

# The module, not the ``compact`` function that parity.featurelog re-exports under its name.
compact = importlib.import_module("parity.featurelog.compact")
SRC = Path(__file__).resolve().parents[2] / "src" / "parity"
# An unreachable branch may say so with AssertionError (it documents an invariant).
ALLOWED = {"AssertionError", "NotImplementedError"}
BUILTIN_ERRORS = {
    name for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
}


def _bare_raises() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS - ALLOWED:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: raise {exc.id}")
    return found


def test_no_builtin_exception_is_raised_outside_the_tree() -> None:
    assert _bare_raises() == []


def test_every_tree_class_is_drawn_in_the_docstring() -> None:
    doc = errors.__doc__ or ""
    classes = [
        name for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, ParityError)
    ]
    assert [name for name in classes if f" {name} " not in doc] == []


def test_feature_log_values_raise_input_type_error_that_is_a_type_error() -> None:
    with pytest.raises(InputTypeError, match="naive datetime") as info:
        encode_value(datetime(2024, 1, 1))
    assert isinstance(info.value, TypeError)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        encode_value(object())


def test_sentinel_settings_still_become_workspace_errors() -> None:
    with pytest.raises(WorkspaceError, match="sentinel.min_rows"):
        coerce(-1, "int", "sentinel.min_rows")
    with pytest.raises(WorkspaceError, match="must be positive"):
        coerce(0, "duration", "sentinel.every")


def test_online_settings_out_of_range_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="flush_every"):
        parse_setting("flush_every", "0", "parity.yaml")
    with pytest.raises(ConfigError, match="flush_seconds"):
        parse_setting("flush_seconds", "-1", "parity.yaml")


def test_stats_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="quantile level"):
        chi2_ppf(1.5, 3)
    with pytest.raises(ConfigError, match="no per-row form"):
        row_losses("auc", np.zeros(2), np.zeros(2))


def test_verdict_lookups_and_statuses_use_the_tree() -> None:
    verdict = Verdict(model="m", version=1, status="pass", results=[],
                      checked_at=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(NotFoundError, match="no result for check 'auc'") as info:
        verdict.result("auc")
    assert isinstance(info.value, KeyError)
    with pytest.raises(InputError, match="at least one finding"):
        CheckResult.failed("auc", [])


class _Raising:
    def predict_table(self, table: pa.Table) -> list[float]:
        raise ZeroDivisionError("boom")


def test_scoring_failures_stay_runtime_errors_and_lookups_stay_lookup_errors() -> None:
    ctx = CheckContext(model="m", version=1, candidate=_Raising(),
                       shadow=pa.table({"x": [1.0]}))
    for _ in range(2):  # the second call re-raises the remembered error
        with pytest.raises(ScoringError, match="ZeroDivisionError: boom") as info:
            ctx.scores("candidate")
        assert isinstance(info.value, RuntimeError)
        assert not isinstance(info.value, TypeError)  # checks treat TypeError as "skip"
    with pytest.raises(NotFoundError) as missing:
        ctx.scores("live")
    assert isinstance(missing.value, LookupError)
    with pytest.raises(InputTypeError, match="several values per row") as outputs:
        as_numbers([[0.1, 0.9]])
    assert isinstance(outputs.value, TypeError)


def test_a_log_that_keeps_changing_under_a_read_is_a_transient_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_moved(*_: object) -> pa.Table:
        raise FileNotFoundError("a compaction deleted the segment")

    monkeypatch.setattr(compact, "_read", always_moved)
    with pytest.raises(ConcurrentChangeError, match="kept changing") as info:
        compact.read_log(tmp_path)
    assert isinstance(info.value, TransientError) and info.value.transient
