"""The gate: stored verdicts and reports, watch mode (promote, stop, hold), alerts, rollback,
anchors and pluggable checks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from parity.sentinel import CheckResult, Sentinel, SentinelConfig, Verdict, register_check
from parity.sentinel.checks import registered_checks
from tests.sentinel import models, world
from tests.sentinel.helpers import Setup, Tables


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Any:
    _Recorder.received = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Recorder.received
    server.shutdown()
    server.server_close()


def test_verdict_is_stored_as_json_and_offline_html(setup: Setup, tables: Tables) -> None:
    version = setup.register(tables.good)
    verdict = setup.sentinel(render_reports=True).check("conv", version)
    stored = Path(verdict.paths["verdict"])
    report = Path(verdict.paths["report"])
    assert stored.parent == setup.root / "sentinel" / "conv" / str(version)
    again = Verdict.from_json(stored.read_text())
    assert again.to_dict() == verdict.to_dict()
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("data:image/png;base64,") >= 4  # intervals, reliability, drift, latency
    for external in ("http://", "https://", "<script", "<link"):
        assert external not in html


def test_watch_promotes_a_passing_candidate(setup: Setup, tables: Tables, webhook: Any) -> None:
    url, received = webhook
    version = setup.register(tables.good)
    sentinel = setup.sentinel(webhook=url)
    verdict = sentinel.watch_once("conv")
    assert verdict is not None and verdict.decision == "promoted"
    assert setup.registry.aliases("conv")["live"] == version
    move = setup.registry.alias_history("conv", "live")[-1]
    assert move.actor == "sentinel" and "verdict.json" in (move.reason or "")
    assert sentinel.watch_once("conv") is None  # candidate is live now: nothing to do
    assert received == []  # only stops are sent to the webhook


def test_watch_stops_a_failing_candidate_and_alerts(
    setup: Setup, tables: Tables, webhook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, received = webhook
    calls: list[tuple[int, str]] = []
    version = setup.register(world.wrap(tables.good, models.Noisy(tables.good.model, 1.5)))
    sentinel = setup.sentinel(webhook=url, render_reports=True,
                              hooks=[lambda v, event: calls.append((v.version, event))])
    with caplog.at_level("WARNING", logger="parity.sentinel"):
        verdict = sentinel.watch_once("conv")
    assert verdict is not None and verdict.decision == "stopped"
    assert setup.registry.aliases("conv")["live"] == 1
    assert calls == [(version, "stopped")]
    assert len(received) == 1 and received[0]["event"] == "stopped"
    assert received[0]["failures"][0]["check"] == "shadow_accuracy"
    assert "shadow_accuracy.inferior" in received[0]["failures"][0]["codes"]
    assert received[0]["report"].endswith("report.html")
    assert any("sentinel stopped: conv@2 FAILED" in r.message for r in caplog.records)
    assert sentinel.watch_once("conv") is None  # decided: not re-checked, not re-alerted


def test_broken_webhook_and_hook_do_not_undo_the_decision(setup: Setup, tables: Tables) -> None:
    setup.register(world.wrap(tables.good, models.Noisy(tables.good.model, 1.5)))

    def broken(verdict: Verdict, event: str) -> None:
        raise RuntimeError("pager down")

    sentinel = setup.sentinel(webhook="http://127.0.0.1:9/nothing-listens", hooks=[broken])
    verdict = sentinel.watch_once("conv")
    assert verdict is not None and verdict.decision == "stopped"


def test_not_enough_data_holds_the_candidate_and_retries(setup: Setup, tables: Tables) -> None:
    setup.inputs.shadow = tables.shadow.slice(0, 300)
    setup.register(tables.good)
    sentinel = setup.sentinel()
    verdict = sentinel.watch_once("conv")
    assert verdict is not None and verdict.status == "not_enough_data"
    assert verdict.decision == "held"
    assert verdict.result("shadow_accuracy").status == "not_enough_data"
    assert setup.registry.aliases("conv")["live"] == 1
    setup.inputs.shadow = tables.shadow  # traffic arrived: the next poll decides
    assert sentinel.watch("conv", interval=0.01, iterations=1)[0].decision == "promoted"


def test_allowed_not_enough_data_does_not_hold(setup: Setup, tables: Tables) -> None:
    setup.config["drift"] = {"min_samples": 10**9}  # more rows than there are
    setup.config["allow_not_enough_data"] = ["drift"]
    verdict = setup.sentinel().check("conv", setup.register(tables.good))
    assert verdict.result("drift").status == "not_enough_data"
    assert verdict.status == "pass"


def test_rollback_restores_the_previous_live(setup: Setup, tables: Tables) -> None:
    setup.register(tables.good)
    sentinel = setup.sentinel()
    assert sentinel.watch_once("conv") is not None
    event = sentinel.rollback("conv", reason="conversions dropped")
    assert (event.from_version, event.to_version) == (2, 1)
    assert setup.registry.aliases("conv")["live"] == 1
    assert sentinel.watch_once("conv") is None  # version 2 was decided; not re-promoted


def test_anchor_stops_slow_accumulated_regressions(setup: Setup, tables: Tables) -> None:
    setup.config["shadow_accuracy"].update(anchor=1, margin=0.05, anchor_margin=0.005)
    slightly_worse = world.wrap(tables.good, models.Noisy(tables.good.model, 0.5))
    setup.registry.register("conv", slightly_worse, feature_sets=[world.member_features])
    setup.registry.set_alias("conv", "live", 2)
    worse_still = world.wrap(tables.good, models.Noisy(tables.good.model, 0.8))
    version = setup.register(worse_still)
    verdict = setup.sentinel().check("conv", version)
    shadow = verdict.result("shadow_accuracy")
    assert verdict.anchor_version == 1 and verdict.live_version == 2
    assert shadow.codes == {"shadow_accuracy.inferior_to_anchor"}, shadow.reason


def test_custom_check_plugs_in(setup: Setup, tables: Tables) -> None:
    class OwnerApproved:
        name = "owner_approved"

        def run(self, ctx: Any) -> CheckResult:
            return CheckResult.passed(self.name, f"approved {ctx.model}@{ctx.version}")

    register_check(OwnerApproved(), replace=True)
    assert "owner_approved" in registered_checks()
    setup.config["checks"] = ["dependent_data", "owner_approved"]
    verdict = setup.sentinel().check("conv", setup.register(tables.good))
    assert [r.check for r in verdict.results] == ["dependent_data", "owner_approved"]
    assert verdict.status == "pass"


def test_a_crashing_check_fails_instead_of_raising(setup: Setup, tables: Tables) -> None:
    class Broken:
        name = "broken"

        def run(self, ctx: Any) -> CheckResult:
            raise ZeroDivisionError("oops")

    sentinel = Sentinel(setup.registry, setup.inputs, checks=[Broken()],
                        config=SentinelConfig(checks=("dependent_data",)).with_checks("broken"))
    verdict = sentinel.check("conv", setup.register(tables.good))
    assert verdict.codes == {"broken.error"}


def test_report_command_renders_a_stored_verdict(setup: Setup, tables: Tables,
                                                 tmp_path: Path) -> None:
    version = setup.register(tables.good)
    sentinel = setup.sentinel()
    first = sentinel.check("conv", version)
    out = sentinel.report("conv", version, tmp_path / "out" / "r.html")
    assert first.ref in out.read_text()
    assert len(sentinel.store.history("conv", version)) == 1  # rendered, not re-checked


def test_a_failure_while_gathering_inputs_leaves_no_child_behind(
    setup: Setup, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parity.sentinel import isolation

    started: list[Any] = []
    real_start = isolation.IsolatedLoad.start

    def start(self: Any) -> Any:
        started.append(self)
        return real_start(self)

    def broken(*args: Any) -> Any:
        raise OSError("fact log unreadable")

    monkeypatch.setattr(isolation.IsolatedLoad, "start", start)
    monkeypatch.setattr(setup.inputs, "freshness", broken)
    version = setup.register(world.wrap(tables.good, models.HangsOnPredict(tables.good.model)))
    with pytest.raises(OSError, match="fact log unreadable"):
        setup.sentinel().check("conv", version)
    assert len(started) == 1
    proc = started[0]._proc
    assert proc.poll() is not None  # killed, not left hanging
