"""The end-to-end demo on real data: `make demo` runs this.

The retail history is moved forward by whole weeks so that it ends just before today; then
"now" is a real moment after the data, and the online steps serve live traffic.

  1. workspace            5. online features agree with the Time Machine after fresh pushes
  2. fact log             6. registry: register with lineage, promote to live
  3. Time Machine         7. serve over HTTP on loopback; every prediction is logged
  4. train + AUC          8. feature log: logged features vs recomputation; retrain from it
                          9. sentinel: a good candidate is promoted, a broken one stopped
                         10. Online Archive and Hulk (archive_step.py, hulk_step.py)

Every model is trained through parity's FeatureEncoder, the encoder serving uses. The demo ends
with one verdict line naming every expectation that failed (exit code 1), or saying all held.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from threadpoolctl import threadpool_limits

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import prepare

import parity as pt
from parity.definitions import FeatureSet
from parity.encoder import FeatureEncoder
from parity.predictor import Predictor

console = Console()
LABEL = "buys_within_30d"
FEATURES = [
    "spend_7d",
    "spend_30d",
    "spend_90d",
    "orders_7d",
    "orders_30d",
    "orders_90d",
    "orders_all",
    "lines_30d",
    "distinct_items_90d",
    "mean_line_amount_90d",
    "days_since_last_order",
    "avg_order_value_90d",
    "is_uk",
]


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


class Demo:
    """State shared by the steps."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shift = prepare.shift_to_now()
        self.train_end = pd.Timestamp("2011-08-01", tz="UTC") + self.shift
        self.test_start = pd.Timestamp("2011-09-05", tz="UTC") + self.shift
        self.ws: pt.Workspace
        self.raw: pd.DataFrame
        self.frame: pd.DataFrame
        self.predictor: Predictor  # the model trained in step 4, with its encoder
        # (expectation, held?) in the order checked; the verdict line names those that failed
        self.results: list[tuple[str, bool]] = []

    @property
    def model(self) -> Any:
        """The fitted model inside the predictor."""
        return self.predictor.model

    def expect(self, what: str, held: bool) -> bool:
        """Record whether one promise of the demo held."""
        self.results.append((what, bool(held)))
        return bool(held)


def make_workspace(demo: Demo) -> None:
    step("1. workspace")
    if demo.root.exists():
        shutil.rmtree(demo.root)
    pt.init(demo.root, name="retail")
    shutil.copy(HERE / "features.py", demo.root / "features.py")
    config = (
        (demo.root / "parity.yaml")
        .read_text()
        .replace("online: sqlite", f"online: sqlite:///{demo.root}/data/online.db?lookback=none")
    )
    (demo.root / "parity.yaml").write_text(config + "serving:\n  admin_token: demo-token\n")
    demo.ws = pt.open(demo.root)
    fs = demo.ws.definitions.feature_set("customer_features")
    console.print(
        f"workspace {demo.root}; feature set {fs.name} version {fs.version} "
        f"with {len(fs.features)} features"
    )
    console.print(
        f"the data is moved forward by {demo.shift.days // 7} weeks so that it ends "
        f"just before today"
    )


def load_history(demo: Demo) -> None:
    step("2. fact log: a history load of real retail transactions")
    demo.raw = prepare.load_raw(shift=demo.shift)
    started = time.perf_counter()
    report = demo.ws.ingest("purchases", prepare.purchases(demo.raw))  # known at event + 1h
    profiles = demo.ws.ingest("profiles", prepare.profiles(demo.raw))
    again = demo.ws.ingest("purchases", prepare.purchases(demo.raw))
    console.print(
        f"purchases: {report.rows_written:,} facts in {report.files} daily files; "
        f"profiles: {profiles.rows_written:,} versions "
        f"({time.perf_counter() - started:.1f}s)"
    )
    console.print(
        f"re-ingesting the same file wrote {again.rows_written} facts "
        f"({again.duplicates_skipped:,} skipped as already logged)"
    )
    demo.expect("re-ingesting the same file writes no fact", again.rows_written == 0)


def build_training_set(demo: Demo) -> None:
    step("3. Time Machine: every feature as visible at each context's own moment")
    contexts = prepare.contexts_and_labels(demo.raw, shift=demo.shift)
    console.print(
        f"{len(contexts):,} contexts: weekly moments x active customers, "
        f"label = buys again within 30 days "
        f"(positive rate {contexts['buys_within_30d'].mean():.1%})"
    )
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        table = demo.ws.training_set(
            contexts, "customer_features", progress=lambda s: bar.update(task, description=s)
        )
    console.print(
        f"training set: {table.num_rows:,} rows x {table.num_columns} columns "
        f"in {time.perf_counter() - started:.1f}s"
    )
    demo.frame = table.to_pandas()
    sample = demo.frame[demo.frame["customer_id"] == 12347].head(4)
    shown = [
        "customer_id",
        "at",
        "spend_30d",
        "orders_90d",
        "days_since_last_order",
        "country",
        "buys_within_30d",
    ]
    console.print(sample[shown].to_string(index=False))


def auc_of(predictor: Predictor, frame: pd.DataFrame) -> float:
    """AUC of ``predictor`` on ``frame``, scored through its own encoder as serving does."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(frame[LABEL], predictor.predict_table(frame[FEATURES])))


def fit_predictor(
    frame: pd.DataFrame, feature_sets: list[FeatureSet] | None = None, label: str = LABEL
) -> Predictor:
    """Train through the shared encoder: fit it on ``frame``, the model on its matrix.

    The returned Predictor carries that encoder, so serving feeds the model exactly the
    matrix it was trained on. One BLAS/OpenMP thread: on a busy machine, OpenMP threads that
    wait for each other make the fit many times slower.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    encoder = FeatureEncoder(FEATURES).fit(frame)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
    with threadpool_limits(limits=1):
        model.fit(encoder.encode(frame), frame[label].to_numpy())
    return Predictor(model, encoder=encoder, feature_sets=feature_sets or [])


def fit(frame: pd.DataFrame, label: str = LABEL) -> Any:
    """The model of ``fit_predictor`` alone (its encoder encodes FEATURES, all numeric or bool,
    exactly as ``Predictor(model, FEATURES)`` does)."""
    return fit_predictor(frame, label=label).model


def train_and_evaluate(demo: Demo) -> float:
    step("4. train on the past, test on the future")
    from sklearn.metrics import roc_auc_score

    train = demo.frame[demo.frame["at"] < demo.train_end]
    test = demo.frame[demo.frame["at"] >= demo.test_start]
    started = time.perf_counter()
    demo.predictor = fit_predictor(train, [demo.ws.definitions.feature_set("customer_features")])
    fitted_in = time.perf_counter() - started
    auc = auc_of(demo.predictor, test)
    recency = -test["days_since_last_order"].fillna(1e6).to_numpy()
    baseline = roc_auc_score(test["buys_within_30d"], recency)
    table = Table(title="buys again within 30 days")
    for column in ("split", "contexts", "positive rate", "AUC"):
        table.add_column(column)
    table.add_row(
        "train (first 7 months)", f"{len(train):,}", f"{train['buys_within_30d'].mean():.1%}", "-"
    )
    table.add_row(
        "test (last 3 months), recency only",
        f"{len(test):,}",
        f"{test['buys_within_30d'].mean():.1%}",
        f"{baseline:.3f}",
    )
    table.add_row(
        "test (last 3 months), gradient boosting",
        f"{len(test):,}",
        f"{test['buys_within_30d'].mean():.1%}",
        f"[bold]{auc:.3f}[/]",
    )
    console.print(table)
    console.print(
        f"trained through the shared encoder in {fitted_in:.1f}s: {demo.predictor.encoder}"
    )
    return auc


def snapshot_live_service(demo: Demo) -> None:
    step("Snapshotter: snapshot a live recommendation service, train a feature invented later")
    import live_service  # examples/retail/live_service.py: the service and the round trip

    found = live_service.snapshot_round_trip(demo.ws)
    grid = Table(title=f"coverage of {found.coverage.job}")
    for column in ("stratum", "contexts", "written", "timeouts", "errors", "schema errors"):
        grid.add_column(column, justify="left" if column == "stratum" else "right")
    for stratum, item in found.coverage.strata.items():
        grid.add_row(stratum, *(str(getattr(item, n)) for n in (
            "contexts", "written", "timeouts", "errors", "schema_errors")))
    console.print(grid)
    total = found.coverage.total
    console.print(f"{found.sampled} customers sampled in {len(found.strata)} strata; "
                  f"{total.written} snapshots stored; a feature defined afterwards trained on "
                  f"{found.trained_rows} rows with {found.calls_while_training} new calls")
    demo.expect("every sampled context is snapshotted once, across >= 4 country x tenure strata",
                total.written == total.contexts == found.sampled and len(found.strata) >= 4)
    demo.expect("a feature invented after the snapshots trains on them with no new call",
                found.calls_while_training == 0 and found.invented_matches_service
                and found.trained_rows == total.written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workspace", default="demo-workspace", type=Path)
    parser.add_argument("--offline-only", action="store_true", help="Stop after step 4.")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    demo = Demo(args.workspace.resolve())
    steps: list[tuple[str, Callable[[Demo], Any]]] = [
        ("workspace", make_workspace),
        ("fact log", load_history),
        ("Time Machine training set", build_training_set),
        ("model AUC on later months >= 0.6", lambda d: _judge_auc(d, train_and_evaluate(d))),
        ("Snapshotter", snapshot_live_service),
    ]
    if not args.offline_only:
        import live

        steps += live.STEPS
    for name, run in steps:
        try:
            run(demo)
        except Exception as exc:  # a crashed step is a failed expectation, named in the verdict
            console.print_exception(max_frames=8)
            demo.expect(f"{name} (raised {type(exc).__name__}: {str(exc)[:200]})", False)
            break
    return verdict(demo, time.perf_counter() - started)


def _judge_auc(demo: Demo, auc: float) -> None:
    if not np.isfinite(auc) or auc < 0.6:
        console.print(f"[red]AUC {auc:.3f} is implausibly low: something is wrong")
    demo.expect("model AUC on later months >= 0.6", bool(np.isfinite(auc) and auc >= 0.6))


def verdict(demo: Demo, seconds: float) -> int:
    """Print the one-line verdict; 0 if every expectation held, else 1."""
    failed = [what for what, held in demo.results if not held]
    if failed:
        console.rule(f"[bold red]demo FAILED in {seconds:.0f}s")
        console.print(f"verdict: FAIL: {len(failed)} of {len(demo.results)} expectations failed: "
                      f"{'; '.join(failed)}", soft_wrap=True)
        return 1
    console.rule(f"[bold green]demo finished in {seconds:.0f}s")
    console.print(f"verdict: PASS: all {len(demo.results)} expectations held", soft_wrap=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
