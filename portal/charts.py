"""Small server-side SVG charts for the admin (no JavaScript, nothing fetched): lines over days and
horizontal bars. Each chart is a <figure> with an SVG that has a <title> and an aria-label, a
legend, and the same numbers as a data table (in a <details>), so it reads without the picture.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass, field

from django.utils.formats import date_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from portal.formatting import decimal, grouped, month_day

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 30
_ids = itertools.count(1)


@dataclass
class Series:
    label: str
    points: list[tuple[dt.date, int | None]]
    color: str = "#417690"


@dataclass
class Bar:
    label: str
    value: float | None
    text: str  # what the bar says, e.g. "12.5 days (4 activities)"
    color: str = "#417690"


@dataclass
class Marker:
    """A vertical line at a day (e.g. the due date) or a horizontal one at a value (e.g. the target)."""

    label: str
    day: dt.date | None = None
    value: float | None = None
    color: str = "#ba2121"
    extra: dict = field(default_factory=dict)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    """An axis label or a table cell, in the active language (portal.formatting): 18,511 / 18 511, 2.5 / 2,5."""
    return grouped(round(value)) if float(value).is_integer() else decimal(value, 1)


def _short(day: dt.date) -> str:
    return month_day(day)


def line_chart(*, title: str, series: list[Series], markers: list[Marker] | None = None, unit: str = "") -> SafeString:
    """Lines over days (every series has the same days); a None value (no figure that day) is skipped."""
    markers = markers or []
    chart_id = f"rp-chart-{next(_ids)}"
    days = [day for day, _value in series[0].points] if series and series[0].points else []
    values = [v for s in series for _d, v in s.points if v is not None]
    values += [m.value for m in markers if m.value is not None]
    has_data = any(v is not None for s in series for _d, v in s.points)
    y_max = _nice_max(max(values) if values else 0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    first, last = (days[0], days[-1]) if days else (None, None)
    span = max(1, (last - first).days) if days else 1

    def x(day: dt.date) -> float:
        return LEFT + plot_w * ((day - first).days / span)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / y_max)

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="rp-chart-svg" role="img" '
        f'aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc" focusable="false">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(_describe(series, unit))}</desc>',
    ]
    for i in range(5):  # horizontal grid and the y axis' labels
        value = y_max * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="rp-grid"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" class="rp-axis">{_number(value)}</text>'
        )
    if days:
        for day in (first, first + (last - first) / 2, last):  # three dates on the x axis
            anchor = "start" if day == first else "end" if day == last else "middle"
            parts.append(
                f'<text x="{x(day):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" class="rp-axis">'
                f"{escape(_short(day))}</text>"
            )
    for marker in markers:
        if marker.value is not None:
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(marker.value):.1f}" y2="{y(marker.value):.1f}" '
                f'stroke="{marker.color}" class="rp-marker"/>'
                f'<text x="{WIDTH - RIGHT}" y="{y(marker.value) - 4:.1f}" text-anchor="end" class="rp-axis" '
                f'fill="{marker.color}">{escape(marker.label)}</text>'
            )
        elif marker.day is not None and days and first <= marker.day <= last:
            parts.append(
                f'<line x1="{x(marker.day):.1f}" x2="{x(marker.day):.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                f'stroke="{marker.color}" class="rp-marker"/>'
                f'<text x="{x(marker.day) - 4:.1f}" y="{TOP + plot_h - 6}" text-anchor="end" class="rp-axis" '
                f'fill="{marker.color}">{escape(marker.label)}</text>'
            )
    for s in series:
        # Days without a stored figure are skipped, the line joins the known ones (the data table shows "—").
        known = [(day, value) for day, value in s.points if value is not None]
        for run in [known] if known else []:
            if len(run) == 1:
                day, value = run[0]
                parts.append(f'<circle cx="{x(day):.1f}" cy="{y(value):.1f}" r="2.5" fill="{s.color}"/>')
                continue
            points = " ".join(f"{x(day):.1f},{y(value):.1f}" for day, value in run)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{s.color}" class="rp-line"/>')
    if not has_data:
        empty = _("No figures stored yet.")  # outside the f-string, where makemessages finds it
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="rp-empty">{escape(empty)}</text>'
        )
    parts.append("</svg>")
    legend = _legend([(s.label, s.color) for s in series] + [(m.label, m.color) for m in markers])
    table = _line_table(series, days)
    return _figure(title, "".join(parts), legend, table)


def bar_chart(*, title: str, bars: list[Bar], max_value: float | None = None) -> SafeString:
    """Horizontal bars, one a row, each with its text at its end."""
    chart_id = f"rp-chart-{next(_ids)}"
    row_h, label_w = 30, 110
    height = TOP + row_h * len(bars) + 8
    top = _nice_max(max_value if max_value is not None else max([b.value or 0 for b in bars] or [0]))
    plot_w = WIDTH - label_w - RIGHT - 170
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {height}" class="rp-chart-svg" role="img" aria-labelledby="{chart_id}-title" '
        f'aria-describedby="{chart_id}-desc" focusable="false">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape("; ".join(f"{b.label}: {b.text}" for b in bars))}</desc>',
    ]
    for i, bar in enumerate(bars):
        y = TOP + i * row_h
        width = plot_w * ((bar.value or 0) / top)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="rp-axis rp-bar-label">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{max(width, 0):.1f}" height="{row_h - 10}" rx="3" '
            f'fill="{bar.color}"/>'
            f'<text x="{label_w + width + 6:.1f}" y="{y + 15}" class="rp-axis">{escape(bar.text)}</text>'
        )
    parts.append("</svg>")
    rows = "".join(format_html("<tr><th scope='row'>{}</th><td>{}</td></tr>", b.label, b.text) for b in bars)
    table = format_html(
        "<table><thead><tr><th scope='col'>{}</th><th scope='col'>{}</th></tr></thead><tbody>{}</tbody></table>",
        _("Group"),
        _("Value"),
        mark_safe(rows),  # noqa: S308 - built with format_html above
    )
    return _figure(title, "".join(parts), "", table)


def _describe(series: list[Series], unit: str) -> str:
    parts = []
    for s in series:
        known = [(d, v) for d, v in s.points if v is not None]
        if known:
            (d0, v0), (d1, v1) = known[0], known[-1]
            parts.append(
                _("%(label)s: %(start)s on %(day0)s, %(end)s on %(day1)s")
                % {"label": s.label, "start": _number(v0), "day0": _short(d0), "end": _number(v1), "day1": _short(d1)}
                + (f" {unit}" if unit else "")
            )
        else:
            parts.append(_("%(label)s: no figures") % {"label": s.label})
    return "; ".join(parts)


def _legend(items: list[tuple[str, str]]) -> str:
    if len(items) < 2:
        return ""
    entries = "".join(
        format_html('<li><span class="rp-swatch" style="background:{}"></span>{}</li>', color, label)
        for label, color in items
    )
    return f'<ul class="rp-legend">{entries}</ul>'


def _line_table(series: list[Series], days: list[dt.date]) -> str:
    head = "".join(format_html("<th scope='col'>{}</th>", s.label) for s in series)
    rows = []
    for i, day in reversed(list(enumerate(days))):
        values = [s.points[i][1] for s in series]
        if all(v is None for v in values):
            continue
        cells = "".join(format_html("<td>{}</td>", "—" if v is None else _number(v)) for v in values)
        rows.append(format_html("<tr><th scope='row'>{}</th>", date_format(day, "Y-m-d")) + cells + "</tr>")
    body = "".join(rows) or format_html("<tr><td colspan='{}'>{}</td></tr>", len(series) + 1, _("No figures."))
    day_heading = escape(_("Day"))
    return f"<table><thead><tr><th scope='col'>{day_heading}</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(title: str, svg: str, legend: str, table: str) -> SafeString:
    summary = _("Data table")
    return mark_safe(  # noqa: S308 - every text above is escaped
        f'<figure class="rp-chart"><figcaption class="rp-chart-title">{escape(title)}</figcaption>{svg}{legend}'
        f'<details class="rp-chart-data"><summary>{escape(summary)}</summary>{table}</details></figure>'
    )
