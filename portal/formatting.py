"""Numbers and dates as the active language writes them, for messages, pages and charts.

Django's `USE_THOUSAND_SEPARATOR` stays off (it would also group ids and years printed in
templates); numbers shown to people go through `grouped` (or the `grouped` template filter),
which groups them with the active language's separator: "18,511" in English, "18 511" (a
non-breaking space) in Swedish.
"""

from __future__ import annotations

import datetime as dt

from django.utils import formats, timezone, translation


def grouped(value) -> str:
    """An integer (or a number) with the active language's thousands separator."""
    if value is None or value == "":
        return ""
    return formats.number_format(value, force_grouping=True)


def decimal(value, places: int = 1) -> str:
    """A number with `places` decimals, the active language's decimal mark and thousands separator
    ("12.5" / "12,5")."""
    if value is None or value == "":
        return ""
    return formats.number_format(value, decimal_pos=places, force_grouping=True)


def day(value: dt.date | dt.datetime | None) -> str:
    """A date in the active language's short date format (Swedish 2026-12-01, English 12/01/2026)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return formats.date_format(value, "SHORT_DATE_FORMAT")


def month_day(value: dt.date) -> str:
    """A day without its year, for chart axes and descriptions: "December 1" / "1 december"."""
    return formats.date_format(value, "MONTH_DAY_FORMAT")


def chart_formats() -> dict:
    """What a chart needs to label its axes and tooltips in the active language (a JSON-able dict).

    `locale` is a BCP 47 tag for the browser's Intl API (Intl.NumberFormat, Intl.DateTimeFormat);
    the separators and the date format are Django's, so a chart written without Intl matches
    the page's own numbers and dates.
    """
    language = translation.get_language() or "en"
    return {
        "language": language,
        "locale": {"sv": "sv-SE", "en": "en-US"}.get(language, language),
        "thousand_separator": formats.get_format("THOUSAND_SEPARATOR"),
        "decimal_separator": formats.get_format("DECIMAL_SEPARATOR"),
        "date_format": formats.get_format("SHORT_DATE_FORMAT"),
        "time_format": formats.get_format("TIME_FORMAT"),
    }
