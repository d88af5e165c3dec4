"""Artifact: the file matches its hash and signature, deserialises, and predicts on a sample.

The hash and the signature are checked here, before anything is deserialised; an unsigned or
tampered file (say, a pickle someone placed in the store and pointed a version at by rewriting
the metadata database) fails as ``artifact.integrity`` without being read past its header.
The verified artifact is then loaded in a child process with a memory and time limit
(``parity.sentinel.isolation``), so a model that crashes, hangs or eats memory fails this check
instead of taking the sentinel down.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from parity.sentinel.context import CheckContext
from parity.sentinel.isolation import IsolatedLoad, IsolatedRun, Refused
from parity.sentinel.verdict import CheckResult, Finding

_ADVICE = {
    "missing": "Restore the artifacts folder from a backup or register the model again",
    "integrity": "Do not serve it: restore the file from a backup or register the model again",
    "refused": "Register the model again in a safe format (scikit-learn, LightGBM), or opt in "
    "to pickle (registry: {allow_pickle: true}) if you trust every writer",
    "load_error": "Make the model's classes importable here, in the versions used in training",
    "not_a_model": "Register an object with a predict(X) method (a parity Predictor)",
    "predict_error": "Fix the model so that it predicts on rows like the ones served",
    "memory": "Shrink the model or raise sentinel artifact.memory_mb if the size is expected",
    "crash": "The model kills the interpreter when loaded or used; rebuild it",
    "timeout": "The model hangs (or is far too slow) when loaded or used; fix it, or raise "
    "sentinel artifact.timeout if it is just big",
}


class ArtifactCheck:
    """Hash, load and sample prediction of the candidate's artifact in a child process."""

    name = "artifact"
    needs_candidate = False

    def prepare(self, ctx: CheckContext) -> None:
        """Start the child process early, so that it runs while other checks do."""
        if ctx.artifact is None or "artifact" in ctx.pending:
            return
        config = ctx.config.artifact
        ctx.pending["artifact"] = IsolatedLoad.verified(
            ctx.artifact.reader,
            ctx.artifact.sha256,
            _sample(ctx, config.sample_rows),
            label=f"model {ctx.model!r} version {ctx.version}",
            timeout=config.timeout,
            memory_mb=config.memory_mb,
        ).start()

    def run(self, ctx: CheckContext) -> CheckResult:
        """Wait for the child and judge what it reported."""
        if ctx.artifact is None:
            return CheckResult.skipped(
                self.name, "no artifact file was given (the predictor was handed over in memory)"
            )
        self.prepare(ctx)
        load: IsolatedLoad | Refused = ctx.pending.pop("artifact")
        run = load.wait()
        evidence = _evidence(run, ctx)
        if run.ok:
            predicted = (
                f"predicted {run.outputs['outputs']} outputs for {run.outputs['rows']} sample rows"
                if run.outputs
                else "did not predict (" + (run.message or "no sample rows") + ")"
            )
            return CheckResult.passed(
                self.name,
                f"hash and signature verified, loaded in {run.load_seconds or 0:.2f}s and "
                f"{predicted}, within {ctx.config.artifact.memory_mb} MB and "
                f"{ctx.config.artifact.timeout:g}s",
                evidence=evidence,
            )
        message = f"{run.message}. {_ADVICE.get(run.kind, '')}".strip()
        return CheckResult.failed(
            self.name, [Finding(f"artifact.{run.kind}", message)], evidence=evidence
        )


def _sample(ctx: CheckContext, rows: int) -> pa.Table | None:
    for table in (ctx.shadow, ctx.training):
        if table is not None and table.num_rows:
            return table.slice(0, rows)
    return None


def _evidence(run: IsolatedRun, ctx: CheckContext) -> dict[str, Any]:
    return {
        "outcome": run.kind,
        "message": run.message,
        "seconds": run.seconds,
        "load_seconds": run.load_seconds,
        "predict_seconds": run.predict_seconds,
        "peak_rss_mb": run.peak_rss_mb,
        "returncode": run.returncode,
        "memory_limit_mb": ctx.config.artifact.memory_mb,
        "timeout_s": ctx.config.artifact.timeout,
        "sha256": ctx.artifact.sha256 if ctx.artifact else None,
        "predictor": run.predictor,
        "sample_outputs": run.outputs,
        "missing_features": run.missing_features,
        "stderr_tail": run.stderr_tail[-1500:],
    }
