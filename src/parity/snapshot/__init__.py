"""The Snapshotter: live sources, stratified samples of contexts, and the snapshot job.

    recs = pt.LiveSource("recs", customer, {"top_item": str, "score": float},
                         url="http://127.0.0.1:8000/recs/{customer_id}", timeout="200ms")
    sample = Sampler(["country"], rates={"UK": 0.1}, default_rate=0.5, seed=7).sample(
        ws, customer, entities)
    report = run_job(ws, recs, sample, options=JobOptions(concurrency=8, rate=50))
    ws.training_set(report.folder / "contexts.parquet", "recs_features")

See docs/snapshot.md.
"""

from parity.snapshot.job import JobOptions, JobReport, job_contexts, job_status, run_job
from parity.snapshot.journal import Coverage, StratumCoverage
from parity.snapshot.live import CallResult, LiveSource
from parity.snapshot.response import SchemaChange, check_response
from parity.snapshot.sampling import Sample, Sampler, load_sample, sample_entities

__all__ = [
    "CallResult",
    "Coverage",
    "JobOptions",
    "JobReport",
    "LiveSource",
    "Sample",
    "Sampler",
    "SchemaChange",
    "StratumCoverage",
    "check_response",
    "job_contexts",
    "job_status",
    "load_sample",
    "run_job",
    "sample_entities",
]
