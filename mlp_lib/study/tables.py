"""Results as tables: Markdown text that Jupyter shows as a rendered table.

``Table`` is a ``str`` (print it, write it into the README) whose
``_repr_markdown_`` makes a notebook cell that ends with it display a table
instead of the raw ``| ... |`` text. Plumbing, not maths.
"""

from __future__ import annotations

import math

__all__ = ["Table", "markdown_table", "mean_std", "figure"]


class Table(str):
    """Markdown text that displays as a table in Jupyter (and as itself elsewhere)."""

    def _repr_markdown_(self):
        return str(self)

    def __repr__(self):  # the text/plain fallback: the Markdown source, readable as is
        return str(self)


def markdown_table(header, rows, note=None):
    """A ``Table`` from a header (cell texts) and rows (lists of cell texts),
    with an optional paragraph ``note`` below it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    return Table("\n".join(lines))


def figure(x, digits=4):
    """``x`` to ``digits`` decimals, or "—" where there is no figure (None, NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def mean_std(mean, std, n, digits=4):
    """ "mean ± std" over ``n`` seeds; with one seed there is no spread: "mean ± —"."""
    return f"{figure(mean, digits)} ± {figure(std, digits) if n > 1 else '—'}"
