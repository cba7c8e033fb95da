"""The monitoring window's report: verdict, window, labels, data quality (contract, missing
values, unseen categories), model quality and drift (ranked by importance, with reference vs
window plots of each drifted feature), as one HTML page and as a Markdown summary."""

from __future__ import annotations

from typing import Any

from kfops.monitoring import MonitoringResult
from kfops.monitoring.labels import label_summary
from kfops.reports import drift, fmt
from kfops.reports.html import escape, figure, figure_png, page, table

MAX_CATEGORY_BARS = 20  # categories shown in a drift plot (the rest are summed into "...")


def _title(result: MonitoringResult) -> str:
    return f"Monitoring: {result.model} {result.version or ''}"


def _verdict(result: MonitoringResult) -> str:
    return "; ".join(result.reasons) or "nothing to report"


def _window(result: MonitoringResult) -> str:
    cap = result.capture
    return (
        f"Window {cap['start']} to {cap['end']}: {result.rows} rows "
        f"({result.other_version_rows} of other versions) from {cap['files']} files; "
        f"{cap['malformed']} malformed lines skipped."
    )


def null_rows(result: MonitoringResult) -> list[list[str]]:
    """Features with missing values in the reference or the window (or whose share changed)."""
    if result.null_shares is None:
        return []
    return [
        [
            f.feature,
            fmt.number(f.reference_share, fmt.SHARE),
            fmt.number(f.window_share, fmt.SHARE),
            fmt.number(f.change * 100, "+.1f") + " pts",
            fmt.number(f.p_adjusted, fmt.P_VALUE),
            "changed" if f.changed else "ok",
        ]
        for f in result.null_shares.features
        if f.changed or f.reference_share > 0 or f.window_share > 0
    ]


NULL_HEAD = ["feature", "reference null share", "window null share", "change", "p adj", "status"]


def unseen_rows(result: MonitoringResult) -> list[list[str]]:
    return [
        [u["feature"], str(u["rows"]), fmt.number(u["share"], fmt.SHARE), fmt.values(u["examples"])]
        for u in result.unseen
    ]


UNSEEN_HEAD = ["feature", "rows", "share of window", "examples"]


def ranking_rows(result: MonitoringResult) -> list[list[str]]:
    """Drifted features, most important first (``kfops.explain.ranking``)."""
    if result.ranking is None or result.drift is None:
        return []
    psi = result.drift.scores()
    return [
        [
            str(rank),
            f.feature,
            fmt.number(f.share, fmt.SHARE, missing="unknown"),
            fmt.number(psi.get(f.feature)),
            "ignored (below the policy's importance share)" if f.ignored else "acted on",
        ]
        for rank, f in enumerate(result.ranking.features, start=1)
    ]


RANKING_HEAD = ["rank", "feature", "importance share", "PSI corrected", "verdict"]


def _ranking_intro(result: MonitoringResult) -> str:
    if not result.importance:
        return "The version records no permutation importance: drifted features are ranked by PSI."
    assert result.ranking is not None
    cut = result.ranking.min_share
    return "Drifted features by the share of the model's permutation importance" + (
        f"; drift below {cut:.0%} of importance is ignored." if cut else "."
    )


def markdown(result: MonitoringResult) -> str:
    lines = [
        f"# {_title(result)}",
        "",
        f"**{result.status.upper()}**: {_verdict(result)}",
        "",
        *[f"- warning: {w}" for w in result.warnings],
        "",
        _window(result),
        "",
    ]
    if result.labels is not None:
        lines += [label_summary(result.labels), ""]
    lines += _md_table("## Missing values", NULL_HEAD, null_rows(result))
    lines += _md_table("## Values outside the contract's domain", UNSEEN_HEAD, unseen_rows(result))
    if result.quality is not None:
        q = result.quality
        lines += ["## Quality", "", q.reason, "", "| metric | window | training |"]
        lines.append("|---|---:|---:|")
        for name, value in sorted(q.metrics.items()):
            train = fmt.number(q.training_metrics.get(name))
            lines.append(f"| {name} | {fmt.number(value)} | {train} |")
        lines.append("")
    if result.ranking is not None and result.ranking.features:
        lines += _md_table("## Drifted features by importance", RANKING_HEAD, ranking_rows(result))
    if result.drift is not None:
        lines.append(drift.markdown(result.drift, heading="## Drift"))
    return "\n".join(lines) + "\n"


def _md_table(heading: str, head: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    out = [heading, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(fmt.cell(c) for c in r) + " |" for r in rows]
    return [*out, ""]


def html(result: MonitoringResult) -> str:
    """One self-contained page (the Kubeflow dashboard renders it as an HTML artifact)."""
    cap = result.capture
    parts = [
        f"<p class='verdict {escape(result.status)}'><b>{escape(result.status.upper())}</b>: "
        f"{escape(_verdict(result))}</p>",
        *[f"<p class='verdict'>warning: {escape(w)}</p>" for w in result.warnings],
        f"<p>{escape(_window(result))}</p>",
    ]
    if cap.get("malformed_examples"):
        items = "".join(f"<li>{escape(e)}</li>" for e in cap["malformed_examples"])
        parts.append(f"<details><summary>Malformed lines</summary><ul>{items}</ul></details>")
    if result.labels is not None:
        parts.append(f"<p>{escape(label_summary(result.labels))}</p>")
    if result.data_quality is not None:
        dq = result.data_quality
        parts.append(
            f"<h2>Data quality</h2><p>{dq['errors']} errors, {dq['warnings']} warnings.</p>"
        )
        if dq["violations"]:
            head = ("severity", "column", "rule", "count", "message")
            violations = [
                (v["severity"], str(v["column"] or ""), v["rule"], str(v["count"]), v["message"])
                for v in dq["violations"]
            ]
            parts.append(table(head, violations))
    if result.null_shares is not None:
        rows = null_rows(result)
        parts.append(
            "<h3>Missing values</h3>"
            f"<p>{escape(result.null_shares.describe().capitalize())}.</p>"
            + (table(NULL_HEAD, rows) if rows else "<p>No missing values in the reference or "
               "the window.</p>")
        )  # fmt: skip
    if result.unseen:
        parts.append(
            "<h3>Values outside the contract's domain</h3>"
            "<p>Served (the encoder ignores them) and counted; the model never saw them.</p>"
            + table(UNSEEN_HEAD, unseen_rows(result))
        )
    if result.quality is not None:
        q = result.quality
        metrics = [
            (name, fmt.number(value), fmt.number(q.training_metrics.get(name)))
            for name, value in sorted(q.metrics.items())
        ]
        parts.append(
            f"<h2>Quality ({q.labeled_rows} labelled rows)</h2><p>{escape(q.reason)}</p>"
            + table(("metric", "window", "training"), metrics)
        )
    if result.drift is not None:
        parts.append("<h2>Drift</h2>")
        if result.ranking is not None and result.ranking.features:
            parts.append(
                f"<h3>Drifted features by importance</h3><p>{escape(_ranking_intro(result))}</p>"
                + table(RANKING_HEAD, ranking_rows(result))
            )
        if result.distributions:
            order = [f.feature for f in result.ranking.features] if result.ranking else []
            names = [n for n in order if n in result.distributions] + [
                n for n in result.distributions if n not in order
            ]
            plots = [
                figure(f"{n}: reference vs window", distribution_png(n, result.distributions[n]))
                for n in names
            ]
            figures = "".join(plots)
            parts.append(
                "<h3>Reference vs window</h3><p>Share of the non-null values in each bin the "
                f"drift test uses.</p>{figures}"
            )
        parts.append(drift.html_section(result.drift))
    return page(_title(result), "".join(parts))


def bin_labels(dist: dict[str, Any]) -> list[str]:
    """Readable bin names: ``<= 3.2``, ``(3.2, 4.5]``, ``> 9.1`` or the category."""
    if dist["kind"] != "numeric":
        return [str(b) for b in dist["bins"]]
    out = []
    for lo, hi in dist["bins"]:
        if lo is None and hi is None:
            out.append("all")
        elif lo is None:
            out.append(f"<= {fmt.number(hi, fmt.SIGNIFICANT)}")
        elif hi is None:
            out.append(f"> {fmt.number(lo, fmt.SIGNIFICANT)}")
        else:
            out.append(f"({fmt.number(lo, fmt.SIGNIFICANT)}, {fmt.number(hi, fmt.SIGNIFICANT)}]")
    return out


def distribution_png(name: str, dist: dict[str, Any]) -> str:
    """Grouped bars: the reference's and the window's share of each bin (base64 PNG)."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    labels = bin_labels(dist)
    ref, cur = list(dist["reference"]), list(dist["window"])
    if len(labels) > MAX_CATEGORY_BARS:  # the most frequent categories, the rest summed
        keep = MAX_CATEGORY_BARS - 1
        labels = [*labels[:keep], "..."]
        ref = [*ref[:keep], sum(ref[keep:])]
        cur = [*cur[:keep], sum(cur[keep:])]
    x = np.arange(len(labels))
    fig = Figure(figsize=(max(4.5, 0.45 * len(labels) + 1.5), 3.2))
    ax = fig.add_subplot()
    ax.bar(x - 0.2, ref, width=0.4, label="reference")
    ax.bar(x + 0.2, cur, width=0.4, label="window")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of non-null values")
    ax.set_title(name)
    ax.legend()
    return figure_png(fig)
