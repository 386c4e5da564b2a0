"""Horizontal bar charts as geometry; the template draws them as inline SVG."""

from __future__ import annotations

from dataclasses import dataclass

LABEL_W, BAR_W, VALUE_W, ROW_H = 150, 260, 130, 22


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    css: str
    title: str


@dataclass(frozen=True)
class Bar:
    label: str
    y: float
    segments: tuple[Segment, ...]
    value: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str], ...]
    width: int = LABEL_W + BAR_W + VALUE_W
    label_w: int = LABEL_W
    bar_w: int = BAR_W

    @property
    def height(self) -> int:
        return len(self.bars) * ROW_H + 6


def bar_chart(
    title: str,
    rows: list[tuple[str, list[tuple[float, str, str]], str]],
    *,
    scale: float | None = None,
    legend: tuple[tuple[str, str], ...] = (),
    stacked: bool = True,
) -> Chart:
    """Rows of (label, [(value, css class, tooltip)], value text) as bars scaled to the widest.

    Stacked segments sit end to end; unstacked ones overlap from zero (p50 inside p95).
    """
    totals = [
        sum(v for v, _, _ in segs) if stacked else max((v for v, _, _ in segs), default=0)
        for _, segs, _ in rows
    ]
    top = scale if scale is not None else max(totals, default=0) or 1.0
    bars = []
    for i, (label, segs, value) in enumerate(rows):
        x = float(LABEL_W)
        parts = []
        ordered = segs if stacked else sorted(segs, key=lambda s: -s[0])
        for amount, css, tip in ordered:
            width = max(0.0, BAR_W * amount / top)
            parts.append(Segment(round(x, 1), round(width, 1), css, tip))
            if stacked:
                x += width
        bars.append(Bar(label, i * ROW_H + 3, tuple(parts), value))
    return Chart(title, tuple(bars), legend)
