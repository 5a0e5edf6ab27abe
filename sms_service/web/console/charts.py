"""Charts as inline SVG, drawn on the server: no script, no library, nothing from a CDN.

Colours and sizes are SVG presentation attributes, which the Content-Security-Policy
(``style-src 'self'``) does not block, unlike ``style=`` attributes. Every value a chart
shows is also in its ``<title>`` tooltips and in a table beside it for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

from sms_service.services.console_stats import Series

PALETTE = ("#1f4fd1", "#b42318", "#17803d", "#9a5b00", "#6b21a8", "#0e7490")
W, H, PAD_L, PAD_B, PAD_T = 640, 220, 36, 24, 10


def _scale(values: Sequence[int]) -> int:
    top = max(values, default=0)
    return max(top, 1)


def _axes(days: Sequence[date], top: int) -> list[str]:
    parts = [
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W}" y2="{H - PAD_B}" stroke="#dde1e7"/>',
        f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" font-size="10" text-anchor="end" '
        f'fill="#5f6673">{top}</text>',
        f'<text x="{PAD_L - 4}" y="{H - PAD_B}" font-size="10" text-anchor="end" '
        f'fill="#5f6673">0</text>',
    ]
    if days:
        for index, anchor in ((0, "start"), (len(days) // 2, "middle"), (len(days) - 1, "end")):
            x = PAD_L + (index + 0.5) * (W - PAD_L) / len(days)
            parts.append(
                f'<text x="{x:.1f}" y="{H - 6}" font-size="10" text-anchor="{anchor}" '
                f'fill="#5f6673">{days[index]:%b %d}</text>'
            )
    return parts


def bar_chart(days: Sequence[date], series: Sequence[Series], title: str) -> Markup:
    """Grouped bars, one group per day, one bar per series."""
    top = _scale([v for s in series for v in s.values])
    slot = (W - PAD_L) / max(len(days), 1)
    width = slot * 0.8 / max(len(series), 1)
    parts = [_open(title)] + _axes(days, top)
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        for i, value in enumerate(s.values):
            height = (H - PAD_B - PAD_T) * value / top
            x = PAD_L + i * slot + slot * 0.1 + k * width
            parts.append(
                f'<rect x="{x:.1f}" y="{H - PAD_B - height:.1f}" width="{width:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(s.label)} '
                f"{days[i]:%Y-%m-%d}: {value}</title></rect>"
            )
    return Markup("".join(parts) + "</svg>") + legend(series)


def line_chart(days: Sequence[date], series: Sequence[Series], title: str) -> Markup:
    """One line per series (e.g. signatures per campaign per day)."""
    top = _scale([v for s in series for v in s.values])
    slot = (W - PAD_L) / max(len(days), 1)
    parts = [_open(title)] + _axes(days, top)
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(
            f"{PAD_L + (i + 0.5) * slot:.1f},{H - PAD_B - (H - PAD_B - PAD_T) * v / top:.1f}"
            for i, v in enumerate(s.values)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(s.label)}: {sum(s.values)} in {len(days)} days</title></polyline>"
        )
    return Markup("".join(parts) + "</svg>") + legend(series)


def legend(series: Sequence[Series]) -> Markup:
    """Coloured swatches naming each series (SVG, so no inline style is needed)."""
    items = []
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        items.append(
            f'<span><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
            f'fill="{colour}"/></svg> {escape(s.label)} ({sum(s.values)})</span> '
        )
    return Markup('<p class="legend">' + "".join(items) + "</p>")


def _open(title: str) -> str:
    return (
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    )
