"""One page shell and one stylesheet for every HTML report (the Kubeflow dashboard shows them as
HTML artifacts: self-contained, inline CSS, images as data URIs)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

__all__ = ["STYLESHEET", "escape", "figure", "figure_png", "page", "table"]

STYLESHEET = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}"
    "th{background:#f3f3f3}figure{display:inline-block;margin:0 1em 1em 0}"
    # Drift tables: one row class per feature status.
    "tr.drift{background:#fdd}tr.missing{background:#ffd}tr.untested{color:#888}"
    # Monitoring verdicts: one class per window status.
    ".verdict{background:#ffd;padding:.6em;border:1px solid #ccc}"
    ".verdict.retrain{background:#fdd}.verdict.ok{background:#dfd}"
)


def page(title: str, body: str) -> str:
    """A complete page: ``title`` as <title> and <h1>, then ``body`` (already HTML)."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLESHEET}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def table(head: Sequence[str], rows: Iterable[Sequence[str]], row_class: int | None = None) -> str:
    """A table of text cells (escaped here). ``row_class``: the index of the cell whose text
    is also the row's CSS class (e.g. a drift status)."""
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        (f'<tr class="{escape(r[row_class])}">' if row_class is not None else "<tr>")
        + "".join(f"<td>{escape(c)}</td>" for c in r)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def figure_png(fig: Any) -> str:
    """A matplotlib Figure as base64 PNG for ``figure`` (a data URI in the page)."""
    buffer = io.BytesIO()
    # No timestamp/software metadata: the same figure renders to the same bytes.
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(caption: str, png_base64: str) -> str:
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{png_base64}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )
