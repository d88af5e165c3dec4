"""Step 9 of the demo: the sentinel promotes a good candidate and stops a broken one.

The sentinel judges models only on traffic from after their training data (rows from the
training period are excluded and counted in the verdict's shadow window), so step 7 serves
contexts from after ``demo.train_end`` as well as from the training period (which step 8
retrains on).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from demo import FEATURES, Demo, console, fit_predictor, step

from parity.sentinel import Sentinel, WorkspaceInputs

MODEL = "buy_again"


def run(demo: Demo) -> bool:
    """Register a good and a broken candidate; True if the sentinel decides both correctly."""
    step("9. sentinel: a good candidate is promoted, a broken one is stopped")
    ws = demo.ws
    train = demo.frame[demo.frame["at"] < demo.train_end]
    path = ws.data_dir / "train.parquet"
    train[[*FEATURES, "customer_id", "at", "buys_within_30d"]].to_parquet(path)
    config: dict[str, Any] = {
        MODEL: {
            "labels": {"source": "purchases", "window": "30d", "how": "any"},
            "shadow_accuracy": {"window": "100000d", "min_samples": 1000},
            "dependent_data": {"max_age": {"purchases": "1d"}, "default_max_age": "400d"},
        }
    }
    sentinel = Sentinel(ws.registry, WorkspaceInputs(ws), config=config)
    fs = ws.definitions.feature_set("customer_features")
    ok = True
    shuffled = train.assign(buys_within_30d=np.random.default_rng(0).permutation(
        train["buys_within_30d"].to_numpy()))
    for label, frame, expect in (("good", train, "pass"), ("broken: trained on shuffled labels",
                                                             shuffled, "fail")):
        predictor = fit_predictor(frame, feature_sets=[fs])
        mv = ws.registry.register(MODEL, predictor, feature_sets=predictor.feature_set_versions,
                                  training_set={"path": "data/train.parquet"})
        ws.registry.set_alias(MODEL, "candidate", mv.version, reason=f"demo: {label}")
        verdict = sentinel.watch_once(MODEL)
        assert verdict is not None
        live = ws.registry.aliases(MODEL).get("live")
        console.print(f"[bold]{mv.ref}[/] ({label}): {verdict.headline()}")
        console.print(f"  live is now version {live}; report: {verdict.paths.get('report')}")
        if verdict.shadow_window:
            console.print(f"  {verdict.shadow_window['summary']}")
        ok &= verdict.status == expect
    return ok
