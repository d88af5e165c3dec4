"""Turn the raw Online Retail file into parity facts, contexts and labels.

Raw times are naive UK local time; parity never guesses a zone, so we localize them to
Europe/London explicitly and convert to UTC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).parent / "data" / "online_retail.parquet"
LABEL_WINDOW = pd.Timedelta(days=30)
DATA_END = pd.Timestamp("2011-12-10", tz="UTC")


def shift_to_now(now: pd.Timestamp | None = None) -> pd.Timedelta:
    """A whole number of weeks that moves the data so it ends just before ``now``.

    The demo serves "live" traffic; shifting keeps weekdays and every interval intact.
    """
    now = now or pd.Timestamp.now(tz="UTC")
    weeks = (now - DATA_END).days // 7
    return pd.Timedelta(weeks=max(weeks, 0))


def load_raw(path: Path = DATA, shift: pd.Timedelta | None = None) -> pd.DataFrame:
    """The invoice lines that have a customer, with UTC event times (moved by ``shift``)."""
    raw = pd.read_parquet(path)
    raw = raw[raw["CustomerID"].notna()].copy()
    raw["event_time"] = (
        raw["InvoiceDate"]
        .dt.tz_localize("Europe/London", ambiguous="NaT", nonexistent="shift_forward")
        .dt.tz_convert("UTC")
    )
    if raw["event_time"].isna().any():
        raise ValueError("some invoice times are ambiguous in Europe/London; handle them first")
    if shift is not None:
        raw["event_time"] = raw["event_time"] + shift
    return raw


def label_events(raw: pd.DataFrame) -> pd.DataFrame:
    """The purchases that count as "buys again": non-cancelled invoice lines."""
    buys = raw[~raw["InvoiceNo"].astype(str).str.startswith("C")]
    return pd.DataFrame(
        {"customer_id": buys["CustomerID"].astype("int64"), "event_time": buys["event_time"]}
    )


def purchases(raw: pd.DataFrame) -> pd.DataFrame:
    """One event per invoice line; cancellations carry negative quantities and amounts."""
    return pd.DataFrame(
        {
            "customer_id": raw["CustomerID"].astype("int64"),
            "invoice": raw["InvoiceNo"].astype(str),
            "item": raw["StockCode"].astype(str),
            "quantity": raw["Quantity"].astype("int64"),
            "amount": (raw["Quantity"] * raw["UnitPrice"]).round(2),
            "event_time": raw["event_time"],
        }
    )


def profiles(raw: pd.DataFrame) -> pd.DataFrame:
    """A state version per customer whenever their country changes (first seen, then changes)."""
    ordered = raw.sort_values(["CustomerID", "event_time"])
    changed = ordered["Country"] != ordered.groupby("CustomerID")["Country"].shift()
    versions = ordered[changed]
    return pd.DataFrame(
        {
            "customer_id": versions["CustomerID"].astype("int64"),
            "country": versions["Country"].astype(str),
            "event_time": versions["event_time"],
        }
    )


def contexts_and_labels(
    raw: pd.DataFrame,
    shift: pd.Timedelta | None = None,
    first: str = "2011-01-03",
    last: str = "2011-11-07",
) -> pd.DataFrame:
    """Weekly moments (Mondays 00:00 UTC, moved by ``shift``) for every customer who had bought
    before; label: buys again (a non-cancelled invoice) within 30 days after the moment."""
    moments = pd.date_range(first, last, freq="7D", tz="UTC") + (shift or pd.Timedelta(0))
    buys = raw[~raw["InvoiceNo"].astype(str).str.startswith("C")]
    first_seen = raw.groupby("CustomerID")["event_time"].min()
    rows = []
    naive = buys["event_time"].dt.tz_convert(None)  # UTC, as numpy datetime64 for searchsorted
    times = naive.groupby(buys["CustomerID"]).apply(lambda s: np.sort(s.to_numpy()))
    for at in moments:
        start = at.tz_convert(None).to_datetime64()
        end = (at + LABEL_WINDOW).tz_convert(None).to_datetime64()
        for customer in first_seen[first_seen < at].index:
            t = times.get(customer)
            label = 0
            if t is not None:
                i = np.searchsorted(t, start, side="left")
                label = int(i < len(t) and t[i] < end)
            rows.append((int(customer), at, label))
    frame = pd.DataFrame(rows, columns=["customer_id", "at", "buys_within_30d"])
    frame["at"] = frame["at"].astype("datetime64[us, UTC]")
    return frame
