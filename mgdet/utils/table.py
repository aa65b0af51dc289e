"""Dependency-free text tables for CLI summaries."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def _cell(value: object, float_fmt: str) -> str:
    """Render one cell: floats with ``float_fmt`` (NaN/None as ``-``), everything else with ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if value != value else format(value, float_fmt)
    return str(value)


def format_table(
    rows: Sequence[Sequence[object]],
    headers: Sequence[str],
    style: str = "box",
    float_fmt: str = ".3f",
    align: Sequence[str] | None = None,
) -> str:
    """Format ``rows`` under ``headers`` as a monospace table.

    Args:
        rows: one sequence of cells per row; each row must have ``len(headers)`` cells.
            Floats are printed with ``float_fmt``; ``None`` and NaN print as ``-``.
        headers: column titles.
        style: ``"box"`` (Unicode box drawing) or ``"markdown"`` (GitHub pipe table).
        float_fmt: format spec for float cells.
        align: per column ``"l"`` or ``"r"``; by default the first column is left-aligned and the
            others right-aligned (label column followed by numbers).

    Returns:
        The table as one string without a trailing newline.
    """
    if style not in ("box", "markdown"):
        raise ValueError(f"style must be 'box' or 'markdown', got {style!r}")
    ncol = len(headers)
    cells = [[_cell(v, float_fmt) for v in row] for row in rows]
    for i, row in enumerate(cells):
        if len(row) != ncol:
            raise ValueError(f"row {i} has {len(row)} cells, expected {ncol}")
    if align is None:
        align = ["l"] + ["r"] * (ncol - 1)
    if len(align) != ncol or any(a not in ("l", "r") for a in align):
        raise ValueError("align must give 'l' or 'r' for every column")
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]

    def line(values: Sequence[str], sep: str, edge_l: str, edge_r: str) -> str:
        parts = [v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)]
        return edge_l + sep.join(parts) + edge_r

    if style == "markdown":
        dashes = ["-" * (w + 1) + ":" if a == "r" else "-" * (w + 2) for w, a in zip(widths, align)]
        out = [line(list(headers), " | ", "| ", " |"), "|" + "|".join(dashes) + "|"]
        out += [line(r, " | ", "| ", " |") for r in cells]
        return "\n".join(out)

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    out = [rule("┌", "┬", "┐"), line(list(headers), " │ ", "│ ", " │"), rule("├", "┼", "┤")]
    out += [line(r, " │ ", "│ ", " │") for r in cells]
    out.append(rule("└", "┴", "┘"))
    return "\n".join(out)
