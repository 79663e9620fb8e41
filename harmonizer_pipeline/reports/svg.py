"""Charts as inline SVG for the HTML reports: columns (histograms, counts per period), bars (top
values) and a heat map (correlations). No dagster, no scripts, no fonts or styles from elsewhere:
a page holds its charts as text, so it opens offline and from a zip.

Drawn here rather than by a plotting library: each chart is a few dozen rectangles, and a report
draws one to three per column; matplotlib (what ydata-profiling draws with) is not a dependency and
would cost its import and a figure per chart. Every label comes from the data, so all text is
escaped; numbers are formatted by the caller (`labels`), the charts only place them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import escape

# One palette for every chart, readable in print and for the common colour-vision deficiencies
# (blue for counts; blue to white to orange for signed values).
BAR = "#3b6ea5"
NEGATIVE = (59, 110, 165)
POSITIVE = (214, 110, 32)
EMPTY = "#eeeeee"


@dataclass(frozen=True)
class Size:
    width: int = 320
    height: int = 120


def columns(counts: Sequence[int], labels: Sequence[str], title: str, size: Size = Size()) -> str:
    """Vertical columns, one per count, the first and last labels under the axis (a histogram's
    range, or a period's first and last); every column's label and count in its tooltip."""
    if len(labels) != len(counts):
        raise ValueError(f"{len(counts)} counts but {len(labels)} labels")
    axis = 16
    plot = size.height - axis
    highest = max(counts, default=0)
    width = size.width / max(len(counts), 1)
    shapes = []
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        height = 0 if highest == 0 else round(plot * count / highest, 1)
        x = round(index * width, 1)
        shapes.append(
            f'<rect x="{x}" y="{round(plot - height, 1)}" width="{max(round(width - 1, 1), 0.5)}" height="{height}" fill="{BAR}">'
            f"<title>{escape(label)}: {count:,}</title></rect>"
        )
    if labels:
        shapes.append(f'<text x="0" y="{size.height - 3}" font-size="10">{escape(labels[0])}</text>')
        shapes.append(f'<text x="{size.width}" y="{size.height - 3}" font-size="10" text-anchor="end">{escape(labels[-1])}</text>')
    return _svg(size, title, shapes)


def bars(counts: Sequence[int], labels: Sequence[str], title: str, width: int = 320) -> str:
    """Horizontal bars, one row per label (top values), the count at the end of each bar."""
    if len(labels) != len(counts):
        raise ValueError(f"{len(counts)} counts but {len(labels)} labels")
    row, label_width, count_width = 16, width * 0.4, width * 0.2
    highest = max(counts, default=0)
    shapes = []
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        y = index * row
        length = 0 if highest == 0 else round((width - label_width - count_width) * count / highest, 1)
        shapes.append(f'<text x="{label_width - 4}" y="{y + 12}" font-size="11" text-anchor="end">{escape(_clip(label))}<title>{escape(label)}</title></text>')
        shapes.append(f'<rect x="{label_width}" y="{y + 2}" width="{length}" height="{row - 4}" fill="{BAR}"/>')
        shapes.append(f'<text x="{label_width + length + 4}" y="{y + 12}" font-size="11">{count:,}</text>')
    return _svg(Size(width, max(len(counts), 1) * row), title, shapes)


def heat_map(names: Sequence[str], values: Sequence[Sequence[float | None]], title: str, signed: bool = True, cell: int = 28) -> str:
    """A square matrix of values in −1..1 (`signed`, correlations) or 0..1 (associations), each cell
    coloured by its value and holding it to two decimals; None (not computed) is grey."""
    if any(len(row) != len(names) for row in values) or len(values) != len(names):
        raise ValueError(f"a heat map of {len(names)} names needs {len(names)} rows of {len(names)} values")
    margin = 110
    shapes = []
    for index, name in enumerate(names):
        shapes.append(
            f'<text x="{margin - 4}" y="{margin + index * cell + cell * 0.65}" font-size="11" text-anchor="end">{escape(_clip(name))}<title>{escape(name)}</title></text>'
        )
        x = margin + index * cell + cell / 2
        shapes.append(
            f'<text x="{x}" y="{margin - 4}" font-size="11" transform="rotate(-45 {x} {margin - 4})">{escape(_clip(name))}<title>{escape(name)}</title></text>'
        )
    for row, row_values in enumerate(values):
        for column, value in enumerate(row_values):
            x, y = margin + column * cell, margin + row * cell
            fill = EMPTY if value is None else _colour(value, signed)
            text = "" if value is None else f"{value:.2f}"
            ink = "#ffffff" if value is not None and abs(value) > 0.6 else "#222222"
            tip = f"{names[row]} × {names[column]}: {text or 'not computed'}"
            shapes.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{fill}"><title>{escape(tip)}</title></rect>')
            shapes.append(f'<text x="{x + cell / 2}" y="{y + cell * 0.62}" font-size="9" text-anchor="middle" fill="{ink}">{text}</text>')
    side = margin + len(names) * cell
    shapes.append(f'<text x="0" y="14" font-size="12" font-weight="600">{escape(title)}</text>')
    # the column names rise to the right of their cells: room for the last one's
    return _svg(Size(side + margin * 3 // 4, side), title, shapes)


def _colour(value: float, signed: bool) -> str:
    """White at 0, the palette's blue towards −1 and orange towards +1 (or orange for 0..1)."""
    strength = min(abs(value), 1.0)
    target = NEGATIVE if signed and value < 0 else POSITIVE
    red, green, blue = (round(255 + (channel - 255) * strength) for channel in target)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _clip(label: str, length: int = 18) -> str:
    return label if len(label) <= length else label[: length - 1] + "…"


def _svg(size: Size, title: str, shapes: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{size.width}" height="{size.height}" '
        f'viewBox="0 0 {size.width} {size.height}" font-family="sans-serif"><title>{escape(title)}</title>{"".join(shapes)}</svg>'
    )
