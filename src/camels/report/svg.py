"""The report's plots, drawn as SVG text by camels (no plotting library): bars with interval whiskers, a
radar chart, loss curves. Coordinates are printed with one decimal, so the same data give the same bytes."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

#: Series colours (colour-blind friendly), used in order; the reference is drawn in grey.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
GREY = "#888888"
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _n(x: float) -> str:
    out = f"{x:.1f}"
    return "0.0" if out == "-0.0" else out


def _text(x: float, y: float, text: str, *, size: int = 11, anchor: str = "middle", fill: str = "#222",
          extra: str = "") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" {FONT}'
            f'{" " + extra if extra else ""}>{escape(text)}</text>')


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>' + "".join(body) + "</svg>\n")


def data_uri(svg: str) -> str:
    """The SVG as a ``data:`` URI for an ``<img src>`` (base64, so any character is safe)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _legend(names: Sequence[str], colours: Sequence[str], x: float, y: float, dashed: Sequence[bool] = ()
            ) -> list[str]:
    out = []
    for i, (name, col) in enumerate(zip(names, colours)):
        yy = y + 16 * i
        dash = ' stroke-dasharray="4 3"' if i < len(dashed) and dashed[i] else ""
        out.append(f'<line x1="{_n(x)}" y1="{_n(yy - 4)}" x2="{_n(x + 18)}" y2="{_n(yy - 4)}" stroke="{col}" '
                   f'stroke-width="6"{dash}/>')
        out.append(_text(x + 24, yy, name, anchor="start"))
    return out


def _wrap(label: str, width: int = 14) -> list[str]:
    words, lines, cur = label.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    return lines or [""]


def bar_chart(title: str, categories: Sequence[str], series: Sequence[str],
              values: Sequence[Sequence[float | None]], intervals: Sequence[Sequence[tuple[float, float] | None]],
              *, colours: Sequence[str] | None = None, y_max: float = 100.0) -> str:
    """Grouped bars: one group per category, one bar per series (``values[s][c]``, None = no bar, marked
    "—"), with a whisker for ``intervals[s][c]``. The y axis runs from 0 to ``y_max`` (percent)."""
    colours = list(colours or [colour(i) for i in range(len(series))])
    legend_w = 30 + 7 * max((len(s) for s in series), default=4)
    group_w = max(70, 22 * len(series) + 24)
    left, top, bottom = 46, 34, 58
    plot_w = group_w * len(categories)
    width, height = left + plot_w + 20 + legend_w, max(260, top + 16 * len(series) + 20 + bottom)
    plot_h = height - top - bottom
    body = [_text(left, 20, title, size=14, anchor="start", extra='font-weight="bold"')]

    def y_of(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(v, y_max)) / y_max)

    for t in range(0, 101, 20):
        v = y_max * t / 100
        y = y_of(v)
        body.append(f'<line x1="{left}" y1="{_n(y)}" x2="{_n(left + plot_w)}" y2="{_n(y)}" stroke="#dddddd"/>')
        body.append(_text(left - 6, y + 4, f"{v:g}", size=10, anchor="end"))
    body.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{_n(top + plot_h)}" stroke="#444"/>')
    bar_w = (group_w - 24) / max(1, len(series))
    for c, cat in enumerate(categories):
        gx = left + c * group_w + 12
        for s in range(len(series)):
            x = gx + s * bar_w
            v = values[s][c]
            if v is None:
                body.append(_text(x + bar_w / 2, top + plot_h - 4, "—", size=10, fill=GREY))
                continue
            y = y_of(v)
            body.append(f'<rect x="{_n(x + 1)}" y="{_n(y)}" width="{_n(bar_w - 2)}" height="{_n(top + plot_h - y)}" '
                        f'fill="{colours[s]}"><title>{escape(f"{series[s]}: {v:.1f}")}</title></rect>')
            ci = intervals[s][c]
            if ci is not None:
                lo, hi = y_of(ci[0]), y_of(ci[1])
                mx = x + bar_w / 2
                body.append(f'<path d="M{_n(mx)} {_n(lo)}V{_n(hi)}M{_n(mx - 4)} {_n(lo)}H{_n(mx + 4)}'
                            f'M{_n(mx - 4)} {_n(hi)}H{_n(mx + 4)}" stroke="#222" stroke-width="1.2" fill="none"/>')
        for k, line in enumerate(_wrap(cat)[:2]):
            body.append(_text(left + c * group_w + group_w / 2, top + plot_h + 16 + 13 * k, line, size=11))
    body += _legend(series, colours, left + plot_w + 20, top + 10)
    return _svg(width, height, body, title)


def radar_chart(title: str, axes: Sequence[str], polygons: Sequence[tuple[str, Sequence[float | None], str, bool]],
                *, r_max: float = 100.0) -> str:
    """A radar (spider) chart: one spoke per axis (0 at the centre, ``r_max`` at the rim), one polygon per
    ``(name, values, colour, dashed)``; a value None leaves its spoke out of that polygon (its point is not
    drawn, never put at 0). Needs three axes or more."""
    size, pad = 340, 92
    cx, cy, radius = (size + 2 * pad) / 2, 30 + pad + size / 2 - 40, size / 2 - 20
    width, height = size + 2 * pad, int(cy + radius + 56 + 16 * len(polygons))
    k = len(axes)
    body = [_text(12, 20, title, size=14, anchor="start", extra='font-weight="bold"')]

    def point(i: int, v: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / k
        r = radius * max(0.0, min(v, r_max)) / r_max
        return cx + r * math.cos(a), cy + r * math.sin(a)

    for frac in (0.25, 0.5, 0.75, 1.0):
        ring = " ".join(f"{_n(x)},{_n(y)}" for x, y in (point(i, frac * r_max) for i in range(k)))
        body.append(f'<polygon points="{ring}" fill="none" stroke="#dddddd"/>')
        x, y = point(0, frac * r_max)
        if frac < 1.0:
            body.append(_text(x + 4, y + 11, f"{frac * r_max:g}", size=9, anchor="start", fill=GREY))
    for i, name in enumerate(axes):
        x, y = point(i, r_max)
        body.append(f'<line x1="{_n(cx)}" y1="{_n(cy)}" x2="{_n(x)}" y2="{_n(y)}" stroke="#cccccc"/>')
        lx, ly = point(i, r_max * 1.12)
        anchor = "middle" if abs(lx - cx) < 8 else ("start" if lx > cx else "end")
        for j, line in enumerate(_wrap(name, 16)[:2]):
            body.append(_text(lx, ly + 4 + 12 * j, line, size=10, anchor=anchor))
    for name, values, col, dashed in polygons:
        pts = [point(i, v) for i, v in enumerate(values) if v is not None]
        if not pts:
            continue
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        fill = "none" if dashed else col
        coords = " ".join(f"{_n(x)},{_n(y)}" for x, y in pts)
        shape = "polygon" if len(pts) >= 3 else "polyline"
        body.append(f'<{shape} points="{coords}" fill="{fill}" fill-opacity="0.18" stroke="{col}" stroke-width="2"'
                    f'{dash}><title>{escape(name)}</title></{shape}>')
        for x, y in pts:
            body.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3" fill="{col}"/>')
    body += _legend([p[0] for p in polygons], [p[2] for p in polygons], 16, cy + radius + 50,
                    [p[3] for p in polygons])
    return _svg(width, height, body, title)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < hi - step * 1e-9:  # the last tick reaches the highest value
        ticks.append(round(start + step * len(ticks), 10))
    return ticks


def line_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, x_label: str = "step",
               y_label: str = "loss") -> str:
    """Lines of ``(x, y)`` points, one per named series, on shared axes with round ticks."""
    xs = [x for _, pts in series for x, _ in pts] or [0.0, 1.0]
    ys = [y for _, pts in series for _, y in pts] or [0.0, 1.0]
    xt, yt = _nice_ticks(min(xs), max(xs)), _nice_ticks(min(0.0, min(ys)), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    legend_w = 30 + 7 * max((len(n) for n, _ in series), default=4)
    left, top, plot_w, plot_h = 56, 34, 460, 220
    width, height = left + plot_w + 24 + legend_w, top + plot_h + 50

    def px(x: float) -> float:
        return left + plot_w * (x - x0) / ((x1 - x0) or 1.0)

    def py(y: float) -> float:
        return top + plot_h * (1 - (y - y0) / ((y1 - y0) or 1.0))

    body = [_text(left, 20, title, size=14, anchor="start", extra='font-weight="bold"')]
    for t in yt:
        body.append(f'<line x1="{left}" y1="{_n(py(t))}" x2="{left + plot_w}" y2="{_n(py(t))}" stroke="#dddddd"/>')
        body.append(_text(left - 6, py(t) + 4, f"{t:g}", size=10, anchor="end"))
    for t in xt:
        body.append(_text(px(t), top + plot_h + 16, f"{t:g}", size=10))
    body.append(f'<path d="M{left} {top}V{top + plot_h}H{left + plot_w}" stroke="#444" fill="none"/>')
    body.append(_text(left + plot_w / 2, top + plot_h + 36, x_label, size=11))
    body.append(_text(14, top + plot_h / 2, y_label, size=11, extra=f'transform="rotate(-90 14 {_n(top + plot_h / 2)})"'))
    colours = [colour(i) for i in range(len(series))]
    for (name, pts), col in zip(series, colours):
        if not pts:
            continue
        d = "M" + "L".join(f"{_n(px(x))} {_n(py(y))}" for x, y in pts)
        body.append(f'<path d="{d}" stroke="{col}" stroke-width="2" fill="none"><title>{escape(name)}</title></path>')
        if len(pts) == 1:
            body.append(f'<circle cx="{_n(px(pts[0][0]))}" cy="{_n(py(pts[0][1]))}" r="3" fill="{col}"/>')
    body += _legend([n for n, _ in series], colours, left + plot_w + 24, top + 10)
    return _svg(width, height, body, title)
