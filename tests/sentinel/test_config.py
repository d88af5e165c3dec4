"""Configuration from parity.yaml: defaults, per-model overrides, durations, clear errors."""

from __future__ import annotations

import pytest

from parity.errors import WorkspaceError
from parity.sentinel import CHECK_NAMES, SentinelConfig, config_for


def test_defaults_run_every_check() -> None:
    config = SentinelConfig.from_dict({})
    assert config.checks == CHECK_NAMES
    assert config.shadow_accuracy.metric == "auc"
    assert config.dependent_data.default_max_age == 86_400


def test_per_model_section_overrides_defaults_one_setting_at_a_time() -> None:
    section = {
        "defaults": {"latency": {"budget_ms": 50, "requests": 500}, "seed": 3},
        "churn": {"latency": {"budget_ms": 20},
                  "dependent_data": {"max_age": {"plays": "2h"}, "default_max_age": "1d"},
                  "artifact": {"timeout": "90s"},
                  "shadow_accuracy": {"anchor": "3", "window": "14d"},
                  "webhook": "https://hooks.example.com/x"},
    }
    churn = config_for(section, "churn")
    assert churn.latency.budget_ms == 20 and churn.latency.requests == 500 and churn.seed == 3
    assert churn.dependent_data.max_age == {"plays": 7_200.0}
    assert churn.artifact.timeout == 90.0
    assert churn.shadow_accuracy.anchor == 3
    assert churn.shadow_accuracy.window == 14 * 86_400
    other = config_for(section, "other")
    assert other.latency.budget_ms == 50 and other.webhook is None
    assert SentinelConfig.from_dict(churn.to_dict()) == churn


@pytest.mark.parametrize(("data", "message"), [
    ({"latnecy": {}}, "unknown setting(s) sentinel.latnecy"),
    ({"latency": {"p99": 3}}, "sentinel.latency.p99"),
    ({"checks": ["artifact", "vibes"]}, "unknown check(s) vibes"),
    ({"shadow_accuracy": {"metric": "f1"}}, "metric 'f1' is not supported"),
    ({"artifact": {"timeout": "soon"}}, "sentinel.artifact.timeout = 'soon' is not valid"),
    ({"latency": {"requests": -1}}, "sentinel.latency.requests = -1"),
])
def test_mistakes_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(WorkspaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SentinelConfig.from_dict(data)
