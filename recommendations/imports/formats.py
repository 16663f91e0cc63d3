"""File formats of the admin import (django-import-export formats over tablib datasets).

CSV keeps malformed rows (wrong column count) to report them with their line; JSON takes a
plain array or a Defender API response `{"value": [...]}`; XLSX is read with defusedxml and
refused when it would inflate beyond IMPORT_XLSX_MAX_INFLATED_BYTES (zip bombs). Formats
only read: `dataset_records` turns a dataset into the records the services import.

A file is parsed once: the admin keeps the *parsed* dataset (`dump_parsed`: signed, compressed)
for the confirmation and the background job instead of the upload, and every format reads that
back first (`load_parsed`), so a spreadsheet is never parsed twice.

Exports (CSV and XLSX, what a spreadsheet opens) neutralise formulas exactly like the contract
CSVs (portal.csv.safe_cell): a cell beginning with =, +, -, @, tab or CR is prefixed with '.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import tablib
from django.conf import settings
from django.core import signing
from import_export.formats import base_formats

from portal.csv import safe_cell
from portal.text import unstorable_reason

from .readers import dataset_records, json_payload_items, json_payload_records
from .records import Problems, Record


def xlsx_max_inflated_bytes() -> int:
    return settings.IMPORT_XLSX_MAX_INFLATED_BYTES


class UnreadableFile(ValueError):
    """The file cannot be read; the message says why (shown as is on the import form)."""


# --- The parsed dataset, kept between the preview and the import ------------------------------

PARSED_MARKER = "rp-parsed-dataset:"
_PARSED_SALT = "recommendations.imports.parsed-dataset"


def _tagged(value):
    """JSON for a cell, keeping the types a spreadsheet gives (dates, times)."""
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    return value


def _untagged(value):
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "$datetime":
            return dt.datetime.fromisoformat(text)
        if tag == "$date":
            return dt.date.fromisoformat(text)
        if tag == "$time":
            return dt.time.fromisoformat(text)
    return value


def dump_parsed(dataset: tablib.Dataset) -> bytes:
    """The dataset as read (rows, malformed rows, lines), signed and compressed, as UTF-8 bytes."""
    payload = {
        "headers": list(dataset.headers or []),
        "rows": [[_tagged(v) for v in row] for row in dataset],
        "malformed": {str(k): v for k, v in getattr(dataset, "malformed", {}).items()},
        "lines": {str(k): v for k, v in getattr(dataset, "lines", {}).items()},
        "line_offset": getattr(dataset, "line_offset", 1),
    }
    return (PARSED_MARKER + signing.dumps(payload, salt=_PARSED_SALT, compress=True)).encode()


def load_parsed(data) -> tablib.Dataset | None:
    """The dataset `dump_parsed` kept, or None when `data` is a file as uploaded."""
    text = data.decode("ascii", errors="replace") if isinstance(data, bytes) else data
    if not isinstance(text, str) or not text.startswith(PARSED_MARKER):
        return None
    try:
        payload = signing.loads(text[len(PARSED_MARKER) :], salt=_PARSED_SALT)
    except signing.BadSignature:
        raise UnreadableFile("The file could not be read back; upload it again.") from None
    dataset = tablib.Dataset(headers=payload["headers"])
    for row in payload["rows"]:
        dataset.append([_untagged(v) for v in row])
    dataset.malformed = {int(k): v for k, v in payload["malformed"].items()}
    dataset.lines = {int(k): v for k, v in payload["lines"].items()}
    dataset.line_offset = payload["line_offset"]
    return dataset


def _formulas_neutralised(dataset: tablib.Dataset) -> tablib.Dataset:
    safe = tablib.Dataset(headers=[safe_cell(h) for h in (dataset.headers or [])])
    for row in dataset:
        safe.append([safe_cell(v) if isinstance(v, str) else v for v in row])
    return safe


class SafeExportMixin:
    """Spreadsheet exports: no cell is run as a formula (DESIGN.md section 7's rule, every format a
    spreadsheet opens)."""

    def export_data(self, dataset, **kwargs):
        return super().export_data(_formulas_neutralised(dataset), **kwargs)


# --- Formats -------------------------------------------------------------------------------


class InventoryCSV(SafeExportMixin, base_formats.CSV):
    """CSV that keeps malformed rows (wrong column count) to report them with their line."""

    def create_dataset(self, in_stream):
        parsed = load_parsed(in_stream)
        if parsed is not None:
            return parsed
        if isinstance(in_stream, bytes):
            in_stream = in_stream.decode(self.encoding or "utf-8-sig")
        reader = csv.reader(io.StringIO(in_stream.lstrip("\ufeff"), newline=""))
        try:
            headers = [h.strip() for h in next(reader)]
        except StopIteration:
            raise UnreadableFile("The file is empty.") from None
        dataset = tablib.Dataset(headers=headers)
        dataset.malformed = {}
        dataset.lines = {}
        position = 0
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            position += 1
            dataset.lines[position] = reader.line_num
            if len(row) != len(headers):
                dataset.malformed[position] = f"malformed row: expected {len(headers)} columns, found {len(row)}"
                row = (row + [""] * len(headers))[: len(headers)]
            dataset.append(row)
        return dataset


def _json_lines(text: str) -> list | None:
    """The objects of JSON lines text (Defender's export files), or None if it is not that."""
    items = []
    for line in text.splitlines():
        if line.strip():
            try:
                item = json.loads(line)
            except (ValueError, RecursionError):
                return None
            if not isinstance(item, dict):
                return None
            items.append(item)
    return items if len(items) > 1 else None


class InventoryJSON(base_formats.JSON):
    """A JSON array of objects, a Defender API response (`{"value": [...]}` or one entity), or JSON lines."""

    def create_dataset(self, in_stream):
        parsed = load_parsed(in_stream)
        if parsed is not None:
            return parsed
        if isinstance(in_stream, bytes):
            in_stream = in_stream.decode("utf-8-sig")
        try:
            payload = json.loads(in_stream)
        except json.JSONDecodeError as exc:
            payload = _json_lines(in_stream) if exc.msg == "Extra data" else None
            if payload is None:
                raise UnreadableFile(f"Not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}.") from None
        except RecursionError:
            raise UnreadableFile("The JSON is nested too deeply to be read.") from None
        except ValueError as exc:  # e.g. a number with more digits than Python reads
            raise UnreadableFile(f"Not valid JSON: {exc}.") from None
        problems = Problems()
        records = json_payload_records(payload, source="file", problems=problems)
        if problems and not records and problems.items[0].position is None:
            raise UnreadableFile(problems.items[0].message)
        headers: list[str] = []
        for record in records:
            for key in record.data:
                if key not in headers:
                    headers.append(key)
        dataset = tablib.Dataset(headers=headers)
        dataset.malformed = {p.position: p.message for p in problems.items if p.position}
        dataset.lines = {}
        dataset.line_offset = 0  # JSON records have positions, not lines
        by_position = {r.position: r.data for r in records}
        total = len(json_payload_items(payload))
        for position in range(1, total + 1):
            data = by_position.get(position, {})
            dataset.append([data.get(h) for h in headers])
        return dataset


class InventoryXLSX(SafeExportMixin, base_formats.XLSX):
    """XLSX read by openpyxl with defusedxml (no entity expansion) and a bound on the inflated size."""

    def create_dataset(self, in_stream):
        parsed = load_parsed(in_stream)
        if parsed is not None:
            return parsed
        import openpyxl

        if not getattr(openpyxl, "DEFUSEDXML", False):
            raise UnreadableFile("XLSX import is disabled: defusedxml is not active for openpyxl.")
        try:
            with zipfile.ZipFile(io.BytesIO(in_stream)) as archive:
                inflated = sum(info.file_size for info in archive.infolist())
        except zipfile.BadZipFile:
            raise UnreadableFile("Not an XLSX file (not a zip archive).") from None
        if inflated > xlsx_max_inflated_bytes():
            raise UnreadableFile(
                f"The XLSX file inflates to {inflated // (1024 * 1024)} MB; the limit is "
                f"{xlsx_max_inflated_bytes() // (1024 * 1024)} MB."
            )
        try:
            dataset = super().create_dataset(in_stream)
        except Exception as exc:  # defusedxml raises on DTDs/entities: a hostile or broken file
            from defusedxml import DefusedXmlException

            cause, seen = exc, 0
            while cause is not None and seen < 10:  # openpyxl wraps the parser's error in a ValueError
                if isinstance(cause, DefusedXmlException):
                    raise UnreadableFile(
                        f"The XLSX file contains forbidden XML ({type(cause).__name__}); it was not read."
                    ) from None
                cause, seen = cause.__cause__ or cause.__context__, seen + 1
            raise
        dataset.malformed = {}
        dataset.lines = {}
        return dataset


INVENTORY_FORMATS = [InventoryCSV, InventoryXLSX, InventoryJSON]


def read_dataset(content: bytes, *, name: str) -> tablib.Dataset:
    """A dataset from a stored upload, the format chosen by the file's extension."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    fmt = {"csv": InventoryCSV, "xlsx": InventoryXLSX, "json": InventoryJSON}.get(suffix)
    if fmt is None:
        raise UnreadableFile(f"Unsupported file type {suffix or name!r}: use CSV, XLSX or JSON.")
    try:
        return fmt(encoding="utf-8-sig").create_dataset(content)
    except UnicodeDecodeError:
        raise UnreadableFile("The file is not UTF-8 text.") from None


def dataset_to_records(dataset) -> tuple[list[Record], Problems]:
    """The records of a dataset read by these formats, and the rows they found malformed."""
    malformed = getattr(dataset, "malformed", {})
    lines = getattr(dataset, "lines", {})
    problems = Problems()
    records = []
    for record in dataset_records(dataset, line_offset=getattr(dataset, "line_offset", 1)):
        line = lines.get(record.position, record.line)
        if record.position in malformed:
            problems.add("file", record.position, malformed[record.position], line)
            continue
        reason = unstorable_reason(record.data)
        if reason:  # before any query or preview sees it (NUL, lone surrogate)
            problems.add("file", record.position, reason, line)
            continue
        records.append(Record(record.position, line, record.data))
    return records, problems
