"""The gate: judge a model version, and watch for candidates to promote or stop.

    sentinel = Sentinel(registry, WorkspaceInputs(ws), config=ws.config.get("sentinel"))
    verdict = sentinel.check("churn", 4)          # one verdict, stored with the version
    sentinel.watch("churn", interval=60)          # validate each new `candidate`

``check`` never moves an alias. ``watch_once`` looks at the ``candidate`` alias: a version
that is not live and not yet decided is checked; on ``pass`` it becomes ``live`` (the alias
history records the verdict's path), on ``fail`` live stays where it is and an alert goes
out, on ``not_enough_data`` it is held and checked again at the next poll.

Order of work in ``check``: the artifact check's child process starts first; checks that do
not score the candidate (data freshness, drift) run while it works; only once the artifact
has loaded and predicted in isolation is the candidate unpickled here for the checks that
score it (contract, shadow accuracy, calibration, latency).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from parity.errors import NotFoundError, ParityError
from parity.predictor import Predictor, as_predictor
from parity.registry.base import AliasEvent, ModelVersion
from parity.sentinel.alerts import Alerter, Hook
from parity.sentinel.checks import Check, get_check, run_check
from parity.sentinel.config import SentinelConfig, config_for
from parity.sentinel.context import LIVE, ArtifactRef, CheckContext, scoring_threads
from parity.sentinel.inputs import SentinelInputs, ShadowRows, StaticInputs, entity_keys
from parity.sentinel.protocols import ModelRegistry
from parity.sentinel.store import VerdictStore
from parity.sentinel.verdict import FAIL, PASS, CheckResult, Verdict, overall_status
from parity.sentinel.window import restrict, training_window
from parity.timeutil import UTC

LOGGER = logging.getLogger("parity.sentinel")
CANDIDATE_ALIAS, LIVE_ALIAS = "candidate", "live"
# Warnings about the world (and so about live), not about the candidate: alerted on their own.
WORLD_WARNINGS = frozenset({"drift.world_moved", "calibration.live_too",
                            "calibration.live_gap_too"})
ConfigSource = SentinelConfig | Mapping[str, Any] | Callable[[str], SentinelConfig] | None


class Sentinel:
    """Validates model versions of a registry and moves ``live`` on a pass.

    ``config`` is one ``SentinelConfig`` for every model, a ``sentinel:`` section keyed by
    model name (see ``config_for``), or a function of the model name. ``store`` keeps the
    verdicts (default: ``<artifacts_root>/../sentinel``). ``webhook`` / ``hooks`` receive an
    alert when a candidate is stopped (the webhook defaults to the model's configured one).
    ``checks`` adds or replaces checks by name for this sentinel only.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        inputs: SentinelInputs | None = None,
        *,
        config: ConfigSource = None,
        store: VerdictStore | None = None,
        webhook: str | None = None,
        hooks: Sequence[Hook] = (),
        checks: Sequence[Check] = (),
        clock: Callable[[], datetime] | None = None,
        logger: logging.Logger | None = None,
        render_reports: bool = True,
    ) -> None:
        self.registry = registry
        self.inputs: SentinelInputs = inputs if inputs is not None else StaticInputs()
        self._config = config
        root = Path(registry.artifacts.root).resolve().parent / "sentinel"
        self.store = store or VerdictStore(root)
        self.webhook = webhook
        self.hooks = list(hooks)
        self.extra_checks = {c.name: c for c in checks}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.logger = logger or LOGGER
        self.render_reports = render_reports

    # --- configuration --------------------------------------------------------------------

    def config_for(self, model: str) -> SentinelConfig:
        """The configuration that applies to ``model``."""
        source = self._config
        if source is None:
            return SentinelConfig()
        if isinstance(source, SentinelConfig):
            return source
        if isinstance(source, Mapping):
            return config_for(source, model)
        return source(model)

    def _check(self, name: str) -> Check:
        return self.extra_checks.get(name) or get_check(name)

    # --- one verdict ----------------------------------------------------------------------

    def check(self, model: str, ref: int | str | None = CANDIDATE_ALIAS, *,
              save: bool = True) -> Verdict:
        """Run the configured checks on one version and return (and store) the verdict."""
        started = time.perf_counter()
        version = self.registry.get(model, ref)
        config = self.config_for(model)
        checks = [self._check(name) for name in config.checks]
        ctx = self._context(version, config, checks)
        results = self._run(ctx, checks, version)
        verdict = Verdict(
            model=model,
            version=version.version,
            status=overall_status(results, config.allow_not_enough_data),
            results=results,
            checked_at=ctx.now or self.clock(),
            duration_s=time.perf_counter() - started,
            artifact_sha256=version.artifact_sha256,
            live_version=ctx.live_version,
            anchor_version=ctx.anchor_version,
            config={**config.to_dict(), "notes": ctx.notes},
            shadow_window=None if ctx.shadow_window is None else ctx.shadow_window.to_dict(),
            identical_to_live=ctx.identical_to_live,
        )
        if save:
            self.save(verdict)
        return verdict

    def save(self, verdict: Verdict) -> Verdict:
        """Store the verdict's JSON and HTML report with its version."""
        html = None
        if self.render_reports:
            from parity.sentinel.report import render_html

            html = render_html(verdict)
        return self.store.save(verdict, html)

    def _context(self, version: ModelVersion, config: SentinelConfig,
                 checks: Sequence[Check]) -> CheckContext:
        """Gather the inputs; the checks' ``prepare`` runs as soon as the sample rows are known,
        so that the artifact's child process works while the rest is gathered."""
        name = version.name
        now = self.clock()
        ctx = CheckContext(model=name, version=version.version, config=config, now=now)
        ctx.registered_feature_sets = dict(version.feature_sets)
        ctx.artifact = ArtifactRef(
            self.registry.artifacts.path_for(version.artifact_sha256), version.artifact_sha256,
            reader=self.registry.artifacts,
        )
        ctx.feature_sets = self.inputs.feature_sets()
        live = self._live_version(version, ctx)
        self._shadow_window(ctx, version, live, config)
        for check in checks:
            prepare = getattr(check, "prepare", None)
            if callable(prepare):
                prepare(ctx)
        try:
            self._gather(ctx, version, config, live)
        except BaseException:
            for work in ctx.pending.values():  # do not leave a child process behind
                cancel = getattr(work, "cancel", None)
                if callable(cancel):
                    cancel()
            raise
        return ctx

    def _live_version(self, version: ModelVersion, ctx: CheckContext) -> ModelVersion | None:
        """The live version to compare with (None: none, or the candidate is itself live)."""
        live = self.registry.aliases(version.name).get(LIVE_ALIAS)
        if live is None:
            return None
        if live == version.version:
            ctx.notes.append(f"version {live} is itself live: no live model to compare with")
            return None
        record = self.registry.get(version.name, live)
        if record.artifact_sha256 == version.artifact_sha256:
            ctx.identical_to_live = live
            ctx.notes.append(f"the candidate's artifact is byte-identical to live version "
                             f"{live} (sha256 {version.artifact_sha256[:12]}); the checks "
                             f"below confirm it behaves the same")
        return record

    def _shadow_window(self, ctx: CheckContext, version: ModelVersion,
                       live: ModelVersion | None, config: SentinelConfig) -> None:
        """Shadow rows restricted to what neither model trained on (see ``window``)."""
        shadow = self._shadow(version.name, config, ctx.now or self.clock(), ctx)
        ctx.label, ctx.request_fields = shadow.label, list(shadow.request_fields)
        keys = entity_keys(ctx.feature_sets or {}, dict(version.feature_sets))
        ctx.training = self._training_rows(version, ctx, "candidate")
        windows = [training_window("candidate", version.version, version.training_set,
                                   ctx.training, keys)]
        if live is not None:
            ctx.live_training = self._training_rows(live, ctx, "live")
            windows.append(training_window("live", live.version, live.training_set,
                                           ctx.live_training, keys))
        gap = config.shadow_accuracy.gap or 0.0
        if shadow.traffic is not None and shadow.traffic.num_rows:
            try:
                recent, _ = restrict(shadow.traffic, windows, gap_s=gap, require_candidate=False)
            except ParityError as err:
                ctx.notes.append(f"traffic could not be placed in time: {err}")
                recent = None
            # Drift and latency need no labels; prefer traffic after training when there is any.
            ctx.traffic = recent if recent is not None and recent.num_rows else shadow.traffic
        if shadow.table is None:
            ctx.shadow_note = shadow.note
            return
        try:
            ctx.shadow, ctx.shadow_window = restrict(
                shadow.table, windows, gap_s=gap,
                require_candidate=config.shadow_accuracy.require_training_window)
        except ParityError as err:
            ctx.shadow_note = f"the shadow rows cannot be placed in time: {err}"
            return
        window = ctx.shadow_window
        ctx.notes.append(window.describe())
        ctx.notes.extend(window.notes)
        if window.refusal:
            ctx.shadow_note = window.refusal
        elif window.kept == 0:
            ctx.shadow_note = (f"none of the {window.offered} labelled shadow rows comes after "
                               f"the training data ({window.describe()}); serve traffic after "
                               f"the training period and wait for its labels")

    def _training_rows(self, version: ModelVersion, ctx: CheckContext,
                       role: str) -> pa.Table | None:
        try:
            return self.inputs.training_rows(version.training_set)
        except (OSError, ParityError, ValueError) as err:
            ctx.notes.append(f"the {role} model's training rows (v{version.version}) could not "
                             f"be read: {err}")
            return None

    def _gather(self, ctx: CheckContext, version: ModelVersion, config: SentinelConfig,
                live: ModelVersion | None) -> None:
        name = version.name
        if live is not None:
            ctx.live_version = live.version
            ctx.live = self._load_trusted(name, live.version, ctx, "live")
            if ctx.live is None:
                ctx.live_version = None
        anchor = config.shadow_accuracy.anchor
        if anchor is not None and "shadow_accuracy" in config.checks:
            try:
                anchor_version = self.registry.get(name, anchor).version
            except NotFoundError as err:
                ctx.notes.append(f"anchor {anchor!r} not found: {err}")
            else:
                if anchor_version != version.version:
                    ctx.anchor_version = anchor_version
                    ctx.anchor = self._load_trusted(name, anchor_version, ctx, "anchor")
        ctx.online_types = self.inputs.online_types(
            ShadowRows(ctx.traffic, ctx.label, request_fields=ctx.request_fields))
        ctx.sources = self.inputs.sources(dict(version.feature_sets))
        fresh_for = list(dict.fromkeys(
            [*ctx.sources, *(r for r in config.dependent_data.requires if "/" not in r)]))
        ctx.freshness = self.inputs.freshness(fresh_for)
        ctx.requirements = self.inputs.requirements(
            [r for r in config.dependent_data.requires if "/" in r])

    def _shadow(self, name: str, config: SentinelConfig, now: datetime,
                ctx: CheckContext) -> ShadowRows:
        try:
            shadow = self.inputs.shadow_rows(name, config, now, ctx.registered_feature_sets or {})
        except (OSError, ParityError, ValueError) as err:
            shadow = ShadowRows(None, config.labels.name, f"shadow rows unavailable: {err}")
        if shadow.note:
            ctx.notes.append(shadow.note)
        return shadow

    def _load_trusted(self, name: str, version: int, ctx: CheckContext, role: str) -> Any:
        """Load a version that already serves (live) or was chosen as reference (anchor)."""
        try:
            return self._predictor(self.registry.load(name, version), ctx)
        except ParityError as err:
            ctx.notes.append(f"the {role} model (version {version}) could not be loaded: {err}")
            return None

    def _predictor(self, model: Any, ctx: CheckContext) -> Any:
        if isinstance(model, Predictor) or hasattr(model, "predict_table"):
            return model
        sets = [fs for n, fs in (ctx.feature_sets or {}).items()
                if n in (ctx.registered_feature_sets or {})]
        return as_predictor(model, sets)

    def _run(self, ctx: CheckContext, checks: list[Check],
             version: ModelVersion) -> list[CheckResult]:
        needs = {c.name: bool(getattr(c, "needs_candidate", False)) for c in checks}
        results: dict[str, CheckResult] = {}
        first = [c for c in checks if not needs[c.name] and c.name != "artifact"]
        artifact = [c for c in checks if c.name == "artifact"]
        later = [c for c in checks if needs[c.name]]
        for check in first:
            results[check.name] = run_check(check, ctx)
        with scoring_threads(ctx.config.scoring_threads):
            if later and ctx.live is not None and ctx.shadow is not None:
                # While the artifact's child process works: score the (trusted) live model.
                with contextlib.suppress(Exception):  # a scoring error is kept for the checks
                    ctx.scores(LIVE)
            for check in artifact:
                results[check.name] = run_check(check, ctx)
            if later:
                artifact_ok = not artifact or results["artifact"].status == PASS
                if artifact_ok:
                    try:
                        ctx.candidate = self._predictor(self.registry.load_version(version), ctx)
                    except ParityError as err:
                        ctx.notes.append(f"the candidate could not be loaded here: {err}")
                for check in later:
                    results[check.name] = run_check(check, ctx)
        return [results[c.name] for c in checks]

    # --- watching -------------------------------------------------------------------------

    def watch_once(self, model: str) -> Verdict | None:
        """Judge the ``candidate`` of ``model`` if it is new; promote or stop it.

        Returns the verdict, or None when there was nothing to do (no candidate, the candidate
        is already live, or it was already promoted or stopped).
        """
        aliases = self.registry.aliases(model)
        candidate = aliases.get(CANDIDATE_ALIAS)
        if candidate is None or candidate == aliases.get(LIVE_ALIAS):
            return None
        stored = self.store.load(model, candidate)
        if stored is not None and stored.decision in ("promoted", "stopped"):
            return None
        verdict = self.check(model, candidate, save=False)
        config = self.config_for(model)
        alerter = Alerter(self.webhook or config.webhook, self.hooks, logger=self.logger)
        if verdict.status == PASS:
            current = self.registry.aliases(model).get(LIVE_ALIAS)
            if current != verdict.live_version:
                verdict.decision = "held"
                verdict.config["notes"].append(
                    f"live moved from {verdict.live_version} to {current} during the check; "
                    f"the candidate will be checked again against the new live model")
            else:
                verdict.decision = "promoted"
        else:
            verdict.decision = "stopped" if verdict.status == FAIL else "held"
        self.save(verdict)
        if verdict.decision == "promoted":
            self.registry.set_alias(
                model, LIVE_ALIAS, verdict.version,
                reason=f"sentinel: passed {sum(r.status == PASS for r in verdict.results)} "
                f"checks; verdict {verdict.paths.get('verdict')}",
                actor="sentinel",
            )
        alerter.send(verdict, verdict.decision)
        if any(w.code in WORLD_WARNINGS for w in verdict.warnings):
            # A world that moved under both models is its own alert, whatever was decided:
            # live is exposed to it too.
            alerter.send(verdict, "warning")
        return verdict

    def watch(
        self,
        model: str,
        *,
        interval: float | None = None,
        iterations: int | None = None,
        stop: threading.Event | None = None,
    ) -> list[Verdict]:
        """Poll ``watch_once`` every ``interval`` seconds (default: the model's configured
        interval) until ``stop`` is set or ``iterations`` polls were made. A failing poll
        (the registry unreachable, say) is logged and retried at the next one."""
        stop = stop or threading.Event()
        period = interval if interval is not None else self.config_for(model).interval
        verdicts: list[Verdict] = []
        done = 0
        while not stop.is_set():
            try:
                verdict = self.watch_once(model)
            except ParityError as err:
                self.logger.error("sentinel watch of %s: %s", model, err)
            else:
                if verdict is not None:
                    verdicts.append(verdict)
            done += 1
            if iterations is not None and done >= iterations:
                break
            stop.wait(period)
        return verdicts

    # --- rollback and reports --------------------------------------------------------------

    def rollback(self, model: str, reason: str | None = None) -> AliasEvent:
        """Put the previous live version back (an alias move recorded in its history)."""
        return self.registry.rollback(model, LIVE_ALIAS, reason=reason or "sentinel rollback",
                                      actor="sentinel")

    def report(self, model: str, ref: int | str | None, output: str | Path) -> Path:
        """Write the HTML report of a version's latest verdict (checking it first if never
        checked) to ``output``."""
        from parity.sentinel.report import render_html

        version = self.registry.get(model, ref).version
        verdict = self.store.load(model, version) or self.check(model, version)
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(verdict), encoding="utf-8")
        return path
