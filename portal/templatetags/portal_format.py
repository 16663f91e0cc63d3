"""Template filters for numbers, dates and chart labels in the active language (portal.formatting).

{% load portal_format %}
{{ activity.target_devices|grouped }}     18,511 / 18 511
{{ activity.due_on|day }}                 12/01/2026 / 2026-12-01
{% chart_formats "chart-formats" %}       a <script type="application/json"> for a chart's JS
"""

from __future__ import annotations

from django import template
from django.utils.html import json_script

from portal import formatting

register = template.Library()


@register.filter
def grouped(value) -> str:
    return formatting.grouped(value)


@register.filter
def day(value) -> str:
    return formatting.day(value)


@register.simple_tag
def chart_formats(element_id: str = "chart-formats"):
    """The active language's number and date formats as JSON, for charts drawn in JavaScript."""
    return json_script(formatting.chart_formats(), element_id)
