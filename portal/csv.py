"""Streaming CSV responses with spreadsheet-formula injection neutralised (DESIGN.md section 7)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from portal.errors import ValidationError

# The contract's language (DESIGN.md section 7): headers and values in English unless `?lang=` asks.
CSV_DEFAULT_LANGUAGE = "en"

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """Render a cell; one that a spreadsheet would run as a formula is prefixed with `'`."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """Yield CSV lines one at a time: the header, then each row with every cell made safe."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def csv_language(value: str | None) -> str:
    """The language of a CSV export from its `?lang=` value: English by default (the contract's
    headers and values), or one of LANGUAGES (`sv`: Swedish headers and values). Unknown: 400."""
    value = (value or "").strip().lower()
    if not value:
        return CSV_DEFAULT_LANGUAGE
    codes = [code for code, _name in settings.LANGUAGES]
    if value not in codes:
        raise ValidationError(
            _("Unknown language %(value)r; use one of %(codes)s.") % {"value": value, "codes": ", ".join(codes)},
            field="lang",
        )
    return value


def _in_language(language: str, lines: Iterator[str]) -> Iterator[str]:
    """Render every line (header labels, choice labels) in `language`, however late the download streams."""
    with translation.override(language):
        yield from lines


UTF8_BOM = b"\xef\xbb\xbf"


def _encoded(lines: Iterable[str], *, bom: bool) -> Iterator[bytes]:
    if bom:  # Excel on Windows reads the file as UTF-8 (Swedish letters right) only with it
        yield UTF8_BOM
    for line in lines:
        yield line.encode("utf-8")


def streaming_csv_response(
    filename: str,
    header: Sequence[str],
    rows: Iterable[Sequence],
    *,
    language: str = CSV_DEFAULT_LANGUAGE,
    bom: bool = False,
) -> StreamingHttpResponse:
    """A UTF-8 CSV download that never holds the whole file in memory, written in `language`;
    `bom` starts it with a UTF-8 BOM."""
    response = StreamingHttpResponse(
        _encoded(_in_language(language, csv_rows(header, rows)), bom=bom),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
