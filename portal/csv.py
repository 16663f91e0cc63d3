"""Streaming CSV responses with spreadsheet-formula injection neutralised (DESIGN.md section 7)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse

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


UTF8_BOM = b"\xef\xbb\xbf"


def _encoded(lines: Iterable[str], *, bom: bool) -> Iterator[bytes]:
    if bom:  # Excel on Windows reads the file as UTF-8 (Swedish letters right) only with it
        yield UTF8_BOM
    for line in lines:
        yield line.encode("utf-8")


def streaming_csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence], *, bom: bool = False
) -> StreamingHttpResponse:
    """A UTF-8 CSV download that never holds the whole file in memory; `bom` starts it with a UTF-8 BOM."""
    response = StreamingHttpResponse(
        _encoded(csv_rows(header, rows), bom=bom),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
