"""The verdict as one self-contained HTML page: inline CSS, plots as base64 PNG, no links out.

``render_html(verdict)`` is a pure function of the verdict (its results carry the figure
data), so a stored ``verdict.json`` can be rendered again at any time. Plots: metric intervals
against their thresholds, the reliability diagram, per-feature distributions (training vs
live), the latency distribution and source freshness; tables for the shadow window and the
segments (worst first). They need matplotlib; without it the
report still holds every table and says how to get the plots.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable
from typing import Any

from parity.sentinel.verdict import CheckResult, Verdict

_COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "not_enough_data": "#9a6700",
           "skipped": "#57606a"}
_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:600;
font-size:.85rem}.muted{color:#57606a}table{border-collapse:collapse;margin:.6rem 0;width:100%}
td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.finding{background:#fff1f0;border-left:4px solid #cf222e;
padding:.4rem .7rem;margin:.4rem 0}.finding code{font-weight:600}
.warning{background:#fff8c5;border-left:4px solid #9a6700;padding:.4rem .7rem;margin:.4rem 0}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:12px}img{max-width:100%}
.headline{font-size:1.05rem;margin:.6rem 0 1rem}
"""


def render_html(verdict: Verdict) -> str:
    """The report of ``verdict`` as a complete HTML document."""
    plots = _Plotter()
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>sentinel {_e(verdict.ref)}: {_e(verdict.status)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Sentinel verdict for {_e(verdict.ref)} {_badge(verdict.status)}</h1>",
        f"<p class='headline'>{_e(verdict.headline())}</p>",
        _facts(verdict),
        _summary(verdict),
    ]
    notes = verdict.config.get("notes") or []
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes)
                     + "</ul>")
    for result in verdict.results:
        parts.append(_section(result, plots))
    if not plots.available:
        parts.append("<p class='muted'>Plots need matplotlib: <code>pip install matplotlib"
                     "</code>, then run <code>parity sentinel report</code> again.</p>")
    parts.append("<h2>Configuration</h2><details><summary>settings used</summary><pre>"
                 + _e(json.dumps(verdict.config, indent=2, default=str)) + "</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _facts(verdict: Verdict) -> str:
    rows = [
        ("checked at", verdict.checked_at.isoformat()),
        ("took", f"{verdict.duration_s:.2f} s"),
        ("compared with live version", verdict.live_version or "none"),
        ("anchor version", verdict.anchor_version or "none"),
        ("decision", verdict.decision or "none (a check only)"),
        ("artifact sha256", verdict.artifact_sha256 or "?"),
    ]
    if verdict.identical_to_live is not None:
        rows.append(("identical artifact", f"byte-identical to live version "
                                           f"{verdict.identical_to_live}"))
    return _table(["", ""], [[k, v] for k, v in rows], header=False) + _window(verdict)


def _window(verdict: Verdict) -> str:
    """Which traffic was judged: the shadow window, what was excluded and why."""
    window = verdict.shadow_window
    if not window:
        return ""
    rows = [["judged rows", f"{window.get('kept')} of {window.get('offered')} offered"],
            ["first and last context", f"{window.get('start') or '-'} to "
                                       f"{window.get('end') or '-'}"],
            ["only contexts after", window.get("after") or "unknown"]]
    rows += [[f"excluded: {why}", n] for why, n in (window.get("excluded") or {}).items()]
    rows += [[f"training data of the {w['role']} (v{w['version']})",
              f"ends {w.get('end') or 'unknown'} ({w.get('origin')})"]
             for w in window.get("training") or []]
    if window.get("refusal"):
        rows.append(["not judged", window["refusal"]])
    return "<h2>Shadow window</h2>" + _table(["", ""], rows, header=False)


def _summary(verdict: Verdict) -> str:
    rows = [[f"<a href='#{_e(r.check)}'>{_e(r.check)}</a>", _badge(r.status), _e(r.reason),
             f"{r.duration_s:.2f} s"] for r in verdict.results]
    return "<h2>Checks</h2>" + _table(["check", "status", "reason", "time"], rows, escape=False)


def _section(result: CheckResult, plots: _Plotter) -> str:
    out = [f"<h2 id='{_e(result.check)}'>{_e(result.check)} {_badge(result.status)}</h2>",
           f"<p>{_e(result.reason)}</p>"]
    for finding in result.findings:
        out.append(f"<div class='finding'><code>{_e(finding.code)}</code> "
                   f"{_e(finding.message)}</div>")
    for warning in result.warnings:
        out.append(f"<div class='warning'><code>{_e(warning.code)}</code> "
                   f"{_e(warning.message)}</div>")
    render = _SECTIONS.get(result.check)
    if render is not None:
        out.append(render(result, plots))
    out.append("<details><summary>evidence</summary><pre>"
               + _e(json.dumps(result.to_dict()["evidence"], indent=2)) + "</pre></details>")
    return "\n".join(out)


def _shadow(result: CheckResult, plots: _Plotter) -> str:
    rows = result.figures.get("intervals") or []
    out = []
    if rows:
        out.append(plots.intervals(rows, f"{result.evidence.get('metric', 'metric')} difference"))
        out.append(_table(["comparison", "estimate", "low", "high", "threshold", "ok"],
                          [[r["label"], _n(r["estimate"]), _n(r["low"]), _n(r["high"]),
                            _n(r["threshold"]), "yes" if r["ok"] else "no"] for r in rows]))
    models = result.figures.get("model_intervals") or []
    if models:
        out.append(_table(["model", result.evidence.get("metric", ""), "low", "high"],
                          [[m["model"], _n(m["estimate"]), _n(m["low"]), _n(m["high"])]
                           for m in models]))
    return "\n".join(out)


def _segments(result: CheckResult, plots: _Plotter) -> str:
    """Worst first: the candidate's metric, live's, the difference with its interval, and
    the Holm-adjusted p-value of "the candidate is worse than live by more than the margin"."""
    rows = result.evidence.get("segments") or []
    if not rows:
        return ""
    metric = result.evidence.get("metric", "metric")
    return (f"<p class='muted'>Worst first. A segment fails when the candidate is shown worse "
            f"than live there by more than the margin "
            f"{_n(result.evidence.get('margin'))} (Holm-adjusted p below "
            f"{_n(result.evidence.get('alpha'))}); segments too small to judge are listed "
            f"last.</p>" + _table(
                ["segment", "rows", "positives", f"candidate {metric}", f"live {metric}",
                 "difference", "95% CI", "Holm p", "status"],
                [[r["segment"], r["rows"], "-" if r.get("positives") is None
                  else r["positives"], _n(r.get("candidate")), _n(r.get("live")),
                  _n(r.get("estimate")),
                  "-" if r.get("low") is None else f"{_n(r['low'])} to {_n(r['high'])}",
                  _n(r.get("p_holm")), r["status"]] for r in rows]))


def _drift(result: CheckResult, plots: _Plotter) -> str:
    out = []
    figures = result.figures.get("distributions") or []
    if figures:
        out.append(plots.distributions(figures[:12]))
    rows = result.evidence.get("features") or []
    out.append(_table(
        ["feature", "status", "PSI (candidate's training data)", "PSI (live's)", "PSI limit",
         "test", "p-value", "rows train", "rows traffic"],
        [[r["feature"], r["status"], _n(r["psi"]), _n(r.get("live_psi")), _n(r["psi_limit"]),
          r["test"], _n(r["pvalue"]), r["rows_training"], r["rows_live"]] for r in rows]))
    outputs = result.evidence.get("outputs")
    if outputs and outputs.get("psi") is not None:
        out.append(f"<p>Outputs on the same {outputs['rows']} rows: candidate mean "
                   f"{_n(outputs['candidate_mean'])}, live mean {_n(outputs['live_mean'])}, "
                   f"PSI {_n(outputs['psi'])} (limit {_n(outputs['psi_limit'])}).</p>")
    return "\n".join(out)


def _calibration(result: CheckResult, plots: _Plotter) -> str:
    curves = result.figures.get("reliability") or {}
    out = []
    if curves:
        out.append(plots.reliability(curves))
        out.append(_table(["bin", "rows", "mean prediction", "observed rate", "rate 95% CI"],
                          [[i + 1, b["rows"], _n(b["mean_prediction"]), _n(b["observed_rate"]),
                            f"{_n(b['rate_low'])} to {_n(b['rate_high'])}"]
                           for i, b in enumerate(curves.get("candidate", []))]))
    return "\n".join(out)


def _latency(result: CheckResult, plots: _Plotter) -> str:
    timings = result.figures.get("latency_ms") or []
    if not timings:
        return ""
    ratio = result.evidence.get("ratio") or {}
    text = "" if not ratio else (
        f"<p>candidate/live median time {_n(ratio.get('estimate'))} (95% CI "
        f"{_n(ratio.get('low'))} to {_n(ratio.get('high'))}), timed interleaved on the same "
        f"rows; allowed {_n(result.evidence.get('max_ratio'))}.</p>")
    return text + plots.latency(timings, result.figures.get("live_latency_ms") or [],
                                result.evidence.get("budget_ms"))


def _data(result: CheckResult, plots: _Plotter) -> str:
    rows = result.evidence.get("sources") or []
    return _table(["source", "latest recorded_at", "age", "limit", "fresh"],
                  [[r["source"], r["latest_recorded_at"] or "no data",
                    _age(r["age_s"]), _age(r["limit_s"]), "yes" if r["fresh"] else "no"]
                   for r in rows]) if rows else ""


def _contract(result: CheckResult, plots: _Plotter) -> str:
    rows = result.evidence.get("features") or []
    out = [_table(["feature", "model expects", "online", "training"],
                  [[r["feature"], r["model_expects"], r["online"] or "-", r["training"] or "-"]
                   for r in rows])] if rows else []
    versions = result.evidence.get("feature_sets") or {}
    if versions:
        out.append(_table(["feature set", "trained on", "serving"],
                          [[k, v["trained"], v["serving"] or "missing"]
                           for k, v in versions.items()]))
    return "\n".join(out)


_SECTIONS: dict[str, Callable[[CheckResult, _Plotter], str]] = {
    "shadow_accuracy": _shadow, "segments": _segments, "drift": _drift, "calibration": _calibration,
    "latency": _latency, "dependent_data": _data, "contract": _contract,
}


class _Plotter:
    """Matplotlib figures as ``<img>`` tags with base64 PNG data (empty without matplotlib)."""

    def __init__(self) -> None:
        try:
            from matplotlib.figure import Figure
        except ImportError:
            self.available = False
        else:
            self.available = True
            self._figure = Figure

    def _img(self, draw: Callable[[Any], None], size: tuple[float, float], alt: str) -> str:
        if not self.available:
            return ""
        figure = self._figure(figsize=size, dpi=90, layout="constrained")
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"

    def intervals(self, rows: list[dict[str, Any]], title: str) -> str:
        def draw(fig: Any) -> None:
            ax = fig.subplots()
            for i, r in enumerate(rows):
                color = _COLORS["pass"] if r["ok"] else _COLORS["fail"]
                ax.errorbar([r["estimate"]], [i], xerr=[[r["estimate"] - r["low"]],
                                                        [r["high"] - r["estimate"]]],
                            fmt="o", color=color, capsize=5)
                ax.plot([r["threshold"]] * 2, [i - 0.35, i + 0.35], "--", color="#57606a")
            ax.axvline(0, color="#d0d7de", lw=1)
            ax.set_yticks(range(len(rows)), [r["label"] for r in rows])
            ax.set_ylim(-0.7, len(rows) - 0.3)
            ax.set_xlabel(f"{title} (higher is better; dashed: threshold)")
        return self._img(draw, (8, 1.2 + 0.6 * len(rows)), "metric intervals")

    def reliability(self, curves: dict[str, list[dict[str, float]]]) -> str:
        def draw(fig: Any) -> None:
            ax = fig.subplots()
            ax.plot([0, 1], [0, 1], ":", color="#57606a", label="perfect calibration")
            for name, color in (("candidate", "#0969da"), ("live", "#8250df")):
                bins = curves.get(name)
                if not bins:
                    continue
                x = [b["mean_prediction"] for b in bins]
                y = [b["observed_rate"] for b in bins]
                err = [[b["observed_rate"] - b["rate_low"] for b in bins],
                       [b["rate_high"] - b["observed_rate"] for b in bins]]
                ax.errorbar(x, y, yerr=err, fmt="o-", color=color, capsize=3, label=name)
            ax.set_xlabel("mean predicted probability (equal-mass bins)")
            ax.set_ylabel("observed rate (95% CI)")
            ax.legend(loc="upper left")
        return self._img(draw, (6, 5), "reliability diagram")

    def distributions(self, features: list[dict[str, Any]]) -> str:
        columns = 3
        rows = math.ceil(len(features) / columns)

        def draw(fig: Any) -> None:
            axes = fig.subplots(rows, columns, squeeze=False)
            for ax in axes.flat[len(features):]:
                ax.set_visible(False)
            for ax, f in zip(axes.flat, features):
                n = len(f["labels"])
                xs = range(n)
                ax.bar([x - 0.2 for x in xs], f["training"], width=0.4, label="training",
                       color="#8c959f")
                ax.bar([x + 0.2 for x in xs], f["live"], width=0.4, label="live",
                       color=_COLORS["fail"] if f["status"] == "drifted" else "#0969da")
                ax.set_title(f"{f['feature']}  PSI {f['psi']:.3f} ({f['status']})", fontsize=9)
                ax.set_xticks(list(xs), [str(label)[:12] for label in f["labels"]],
                              rotation=60, fontsize=6, ha="right")
                ax.tick_params(axis="y", labelsize=7)
            axes.flat[0].legend(fontsize=7)
        return self._img(draw, (11, 3.0 * rows), "feature distributions")

    def latency(self, timings: list[float], live: list[float], budget: float | None) -> str:
        def draw(fig: Any) -> None:
            ax = fig.subplots()
            ax.hist(timings, bins=40, color="#0969da", alpha=0.7, label="candidate")
            if live:
                ax.hist(live, bins=40, color="#8c959f", alpha=0.6, label="live")
            if budget is not None:
                ax.axvline(budget, color=_COLORS["fail"], ls="--", label=f"budget {budget:g} ms")
            ax.set_xlabel("time to score one request (ms)")
            ax.legend()
        return self._img(draw, (7, 3), "latency distribution")


def _table(headers: list[str], rows: list[list[Any]], *, escape: bool = True,
           header: bool = True) -> str:
    def cell(value: Any) -> str:
        return _e(value) if escape else str(value)

    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def _badge(status: str) -> str:
    color = _COLORS.get(status, "#57606a")
    return f"<span class='badge' style='background:{color}'>{_e(status.replace('_', ' '))}</span>"


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
