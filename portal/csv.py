"""Streaming CSV responses with spreadsheet-formula injection neutralised (DESIGN.md section 7).

Two ways to the same bytes:

- `csv_chunks`: rows from Python (any database), written by the csv module in chunks of about
  64 KB (one `write` per chunk, not per row); only the free-text columns are made safe.
- `copy_csv_chunks`: on PostgreSQL, the database writes the CSV itself (`COPY (query) TO STDOUT`,
  FORMAT csv) from a query whose free-text columns went through `sql_safe_text`. PostgreSQL
  ends rows with `\\n` where the csv module writes `\\r\\n`, and writes an empty string as `""`
  where the csv module writes nothing: the rows' terminators are rewritten here (each COPY
  message is one row, so a newline inside a quoted cell is never touched) and empty strings
  are sent as NULL (`sql_safe_text` does it). Both quote a cell exactly when it holds a comma, a
  quote, a CR or a LF, so the bytes are the same (tests/portal/test_csv_copy.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from portal.errors import ValidationError

# The contract's language (DESIGN.md section 7): headers and values in English unless `?lang=` asks.
CSV_DEFAULT_LANGUAGE = "en"

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 64 * 1024


def safe_cell(value) -> str:
    """Render a cell; one that a spreadsheet would run as a formula is prefixed with `'`."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def sql_safe_text(expression: str) -> str:
    """`safe_cell` in PostgreSQL, for a text expression in a COPY query (NULL and '' give NULL)."""
    return (
        f"CASE WHEN left({expression}, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN '''' || ({expression}) "
        f"ELSE NULLIF({expression}, '') END"
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """Yield CSV lines one at a time: the header, then each row with every cell made safe."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def csv_chunks(
    header: Sequence[str],
    rows: Iterable[Sequence],
    *,
    free_text: Sequence[int] | None = None,
    bom: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """The UTF-8 CSV of `header` and `rows`, in chunks of about `chunk_bytes`.

    `free_text`: the indexes of the columns that may hold any text (names, titles, emails): only
    those are made safe (`safe_cell`); the others must be the portal's own labels, numbers or
    dates, or None for empty. Without it every cell is made safe. `bom`: begin with a UTF-8 BOM.
    """
    if bom:
        yield BOM
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(h) for h in header])
    columns = None if free_text is None else tuple(free_text)
    for row in rows:
        if columns is None:
            row = [safe_cell(cell) for cell in row]
        else:
            row = list(row)
            for i in columns:
                value = row[i]
                if value and value.startswith(FORMULA_PREFIXES):
                    row[i] = "'" + value
        writer.writerow(row)
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def copy_csv_chunks(
    connection,
    query: str,
    params: Sequence,
    header: Sequence[str],
    *,
    bom: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[bytes]:
    """`csv_chunks`' bytes written by PostgreSQL: `COPY (query) TO STDOUT` (see the module's doc).

    `query` selects the cells in order; free-text cells through `sql_safe_text`, the others
    as text that needs no safety (labels, numbers, dates) or NULL for empty.
    """
    if bom:
        yield BOM
    parts: list[bytes] = [next(csv_chunks(header, []))]
    size = len(parts[0])
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", params) as copy:
            for data in copy:
                line = bytes(data)
                parts.append(line[:-1])  # one message a row, ending with the row's "\n"
                parts.append(b"\r\n")
                size += len(line) + 1
                if size >= chunk_bytes:
                    yield b"".join(parts)
                    parts, size = [], 0
    if parts:
        yield b"".join(parts)


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


def in_language(language: str, make_chunks: Callable[[], Iterable[bytes]]) -> Iterator[bytes]:
    """The chunks of `make_chunks()` made in `language` (header and value labels, and any query
    that writes them), however late the download streams."""
    with translation.override(language):
        yield from make_chunks()


def csv_response(filename: str, chunks: Iterable[bytes]) -> StreamingHttpResponse:
    """A UTF-8 CSV download of `chunks` (from `csv_chunks` or `copy_csv_chunks`), streamed."""
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def streaming_csv_response(
    filename: str,
    header: Sequence[str],
    rows: Iterable[Sequence],
    *,
    free_text: Sequence[int] | None = None,
    language: str = CSV_DEFAULT_LANGUAGE,
    bom: bool = False,
) -> StreamingHttpResponse:
    """A UTF-8 CSV download that never holds the whole file in memory, written in `language`."""
    return csv_response(filename, in_language(language, lambda: csv_chunks(header, rows, free_text=free_text, bom=bom)))
