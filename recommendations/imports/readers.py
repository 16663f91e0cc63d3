"""Reading inventory files: Microsoft Defender for Endpoint JSON, CSV and spreadsheet rows.

Readers turn a file (or a django-import-export dataset) into `Record`s that carry their
position, streaming where the format allows (memory holds one record at a time); a file
that cannot be read adds one `Problem` naming the file and the reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..models import Device, SecurityRecommendation
from .normalize import (
    EXPOSURE_DEVICE_KEYS,
    EXPOSURE_RECOMMENDATION_KEYS,
    BadValue,
    check_storable,
    max_length,
    normalize_key,
    type_name,
    value_problem,
)
from .records import Problems, Record

GZIP_MAGIC = b"\x1f\x8b"
# What a broken or truncated gzip file raises while it is read.
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
TOO_DEEP = "the JSON is nested too deeply to be read"


def source_name(file: str | Path | IO | None, default: str) -> str:
    if isinstance(file, str | Path):
        return Path(file).name
    name = getattr(file, "name", None)
    return Path(name).name if isinstance(name, str) and name else default


def _head(file: str | Path | IO, size: int = 64) -> bytes:
    """The first bytes of a path or a binary file object (without consuming them)."""
    if isinstance(file, str | Path):
        with open(file, "rb") as fh:
            return fh.read(size)
    if isinstance(file, io.TextIOBase):
        return b""
    if hasattr(file, "peek"):
        return file.peek(size)[:size]
    if hasattr(file, "seekable") and file.seekable():
        at = file.tell()
        head = file.read(size)
        file.seek(at)
        return head
    return b""


def is_gzip(file: str | Path | IO) -> bool:
    """Gzip-compressed (Defender's export files are `.json.gz`), told by the content, not the name."""
    return _head(file, 2) == GZIP_MAGIC


def _open_binary(file: str | Path | IO) -> tuple[IO[bytes] | IO[str], bool]:
    """A stream of `file`, decompressed when it is gzip; and whether we opened it."""
    if is_gzip(file):
        return gzip.open(file, "rb"), True  # noqa: SIM115
    if isinstance(file, str | Path):
        return open(file, "rb"), True  # noqa: SIM115
    return file, False


def _open_text(file: str | Path | IO) -> tuple[IO[str], bool]:
    """A text stream for `file` (path, binary or text file object, gzip or not) and whether we opened it."""
    raw, opened = _open_binary(file)
    if isinstance(raw, io.TextIOBase):
        return raw, opened
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    return text, opened


def sniff_is_json(file: str | Path | IO) -> bool:
    """JSON when the name says so (`.json`, `.jsonl`, `.json.gz`), or the first non-blank character
    (after decompressing a gzip file) opens an object/array."""
    name = file if isinstance(file, str | Path) else getattr(file, "name", "") or ""
    suffixes = [x.lower() for x in Path(str(name)).suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in {".json", ".jsonl", ".csv"}:
        return suffix != ".csv"
    if is_gzip(file):
        try:
            with gzip.open(file if isinstance(file, str | Path) else io.BytesIO(_head(file, 4096)), "rb") as fh:
                head = fh.read(64)
        except (*GZIP_ERRORS, OSError):
            return True  # a broken gzip file: the JSON reader says what is wrong with it
    else:
        head = _head(file)
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] in (b"{", b"[")


class _JSONSyntaxError(Exception):
    def __init__(self, msg: str, line: int, column: int):
        super().__init__(msg)
        self.msg, self.line, self.column = msg, line, column


_WS = re.compile(r"[ \t\n\r]*")


class _JSONStream:
    """Reads a JSON document piece by piece: one array element at a time, bounded memory."""

    def __init__(self, stream: IO[str], chunk: int = 1 << 20):
        self.stream, self.chunk = stream, chunk
        self.decoder = json.JSONDecoder()
        self.buf, self.pos, self.eof = "", 0, False
        self.lines_before, self.column_before = 0, 0  # position of the dropped text
        self.fill()

    def fill(self) -> None:
        dropped = self.buf[: self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self.lines_before += newlines
            self.column_before = len(dropped) - dropped.rfind("\n") - 1
        else:
            self.column_before += len(dropped)
        more = self.stream.read(self.chunk)
        self.eof = not more
        self.buf, self.pos = self.buf[self.pos :] + more, 0

    def error(self, msg: str, at: int | None = None) -> _JSONSyntaxError:
        at = self.pos if at is None else at
        head = self.buf[:at]
        newlines = head.count("\n")
        line = self.lines_before + newlines + 1
        column = at - head.rfind("\n") if newlines else self.column_before + at + 1
        return _JSONSyntaxError(msg, line, column)

    def peek(self) -> str:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self.fill()

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"Expecting {char!r}")
        self.pos += 1

    def value(self) -> Any:
        while True:
            self.peek()
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise self.error(exc.msg.removesuffix(" at"), exc.pos) from None
                self.fill()
                continue
            except ValueError:  # Python refuses to read an integer of more than 4300 digits
                raise self.error("a number with too many digits") from None
            if not self.eof and len(self.buf) - end < 64:  # a number may go on in the next chunk
                self.fill()
                continue
            self.pos = end
            return value

    def array_items(self) -> Iterator[Any]:
        self.expect("[")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            yield self.value()
            char = self.peek()
            if char == ",":
                self.pos += 1
            elif char == "]":
                self.pos += 1
                return
            else:
                raise self.error("Expecting ',' delimiter")

    def records(self) -> Iterator[Any]:
        """The records of a Defender answer, whichever shape it has:

        - a collection `{"value": [...]}` (its other keys, such as `@odata.nextLink`, go to `meta`);
        - a single entity `{"@odata.context": ..., "id": ...}` (`GET /api/machines/{id}`): one record;
        - JSON lines, one object a line (the assessment export files): one record a line;
        - a plain JSON array.
        """
        self.meta: dict[str, Any] = {}
        char = self.peek()
        if char == "[":
            yield from self.array_items()
        elif char == "{":
            entity = yield from self._object_or_collection()
            if entity is not None:
                yield entity
                if self.peek() == "{":  # JSON lines: more objects follow
                    while self.peek() != "":
                        item = self.value()
                        if not isinstance(item, dict):
                            raise ValueError(f"expected one JSON object a line, got {type_name(item)}")
                        yield item
        else:
            raise ValueError(SHAPE_MESSAGE)
        if self.peek() != "":
            raise self.error("Extra data")

    def _object_or_collection(self):
        """Reads a top-level object: streams its `value` array if it has one (and returns None),
        else returns the whole object (a single entity)."""
        self.pos += 1
        found = False
        entity: dict[str, Any] = {}
        while True:
            if self.peek() == "}":
                self.pos += 1
                break
            key = self.value()
            if not isinstance(key, str):
                raise self.error("Expecting property name enclosed in double quotes")
            self.expect(":")
            if key == "value" and self.peek() == "[" and not found:
                found = True
                yield from self.array_items()
            else:
                entity[key] = self.value()
            char = self.peek()
            if char == ",":
                self.pos += 1
            elif char != "}":
                raise self.error("Expecting ',' delimiter")
        if found:
            self.meta = entity
            return None
        return entity


SHAPE_MESSAGE = 'expected a Defender API response ({"value": [...]} or one entity), JSON lines or a JSON array'


def read_json_records(
    file: str | Path | IO, *, source: str, problems: Problems, meta: dict | None = None
) -> Iterator[Record]:
    """Records of a Defender API response (a collection `{"value": [...]}`, a single entity, or the
    export files' JSON lines, gzipped or not) or of a plain JSON array.

    Streams: memory holds one record at a time, whatever the file size. A syntax error stops
    the reading with one problem (the records before it are still checked). `meta` receives the
    collection's other top-level keys (`@odata.nextLink`).
    """
    stream, opened = None, False
    position = 0
    try:
        stream, opened = _open_text(file)
        reader = _JSONStream(stream)
        for item in reader.records():
            position += 1
            if not isinstance(item, dict):
                problems.add(source, position, f"malformed record: expected an object, got {type_name(item)}")
                continue
            yield Record(position, None, item)
        if meta is not None:
            meta.update(reader.meta)
    except _JSONSyntaxError as exc:
        problems.add(source, None, f"not valid JSON (line {exc.line}, column {exc.column}): {exc.msg}")
    except RecursionError:
        problems.add(source, None, TOO_DEEP)
    except UnicodeDecodeError:
        problems.add(source, None, "not UTF-8 text")
    except GZIP_ERRORS as exc:
        problems.add(source, None, f"not a readable gzip file ({exc.__class__.__name__}: {exc})")
    except ValueError as exc:  # the shape is wrong (or a number too long to read)
        problems.add(source, None, str(exc))
    finally:
        if opened:
            stream.close()


def json_payload_items(payload: Any) -> list | None:
    """The records of a decoded Defender answer: a collection's `value`, a single entity, an array."""
    if isinstance(payload, dict):
        return payload["value"] if isinstance(payload.get("value"), list) else [payload]
    return payload if isinstance(payload, list) else None


def json_payload_records(payload: Any, *, source: str, problems: Problems) -> list[Record]:
    payload = json_payload_items(payload)
    if payload is None:
        problems.add(source, None, SHAPE_MESSAGE)
        return []
    records = []
    for position, item in enumerate(payload, 1):
        if not isinstance(item, dict):
            problems.add(source, position, f"malformed record: expected an object, got {type_name(item)}")
            continue
        records.append(Record(position, None, item))
    return records


def _csv_data_rows(reader, *, width: int, source: str, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """(position, row) for each well-formed data row; malformed rows are reported, blank ones skipped.

    Positions count records from 1 (a malformed row counts, a blank line does not).
    """
    position = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            position += 1
            problems.add(source, position, f"malformed row: {exc}", line=reader.line_num)
            continue
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not records
        position += 1
        if len(row) != width:
            problems.add(
                source, position, f"malformed row: expected {width} columns, found {len(row)}", line=reader.line_num
            )
            continue
        yield position, row


def read_csv_records(
    file: str | Path | IO, *, source: str, problems: Problems, required: Iterable[str] = ()
) -> Iterator[Record]:
    """Records of a CSV file with a header row (gzipped or not); streams (constant memory)."""
    try:
        yield from _csv_records(file, source=source, problems=problems, required=required)
    except GZIP_ERRORS as exc:
        problems.add(source, None, f"not a readable gzip file ({exc.__class__.__name__}: {exc})")


def _csv_records(file, *, source: str, problems: Problems, required: Iterable[str]) -> Iterator[Record]:
    stream, opened = _open_text(file)
    try:
        reader = csv.reader(stream)
        try:
            headers = next(reader)
        except StopIteration:
            problems.add(source, None, "the file is empty")
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.add(source, None, f"cannot read the header row: {exc}", line=1)
            return
        headers = [h.strip() for h in headers]
        present = {normalize_key(h) for h in headers}
        missing = [name for name in required if normalize_key(name) not in present]
        if missing:
            problems.add(source, None, "missing column(s): " + ", ".join(missing), line=1)
            return
        for position, row in _csv_data_rows(reader, width=len(headers), source=source, problems=problems):
            yield Record(position, reader.line_num, dict(zip(headers, row, strict=True)))
    finally:
        if opened:
            stream.close()


def dataset_records(dataset, *, line_offset: int = 1) -> Iterator[Record]:
    """Records of a tablib Dataset (admin imports); line = position + header line(s)."""
    headers = [str(h) if h is not None else "" for h in (dataset.headers or [])]
    for position, values in enumerate(dataset, 1):
        data = {h: v for h, v in zip(headers, values, strict=False) if h}
        yield Record(position, position + line_offset if line_offset else None, data)


class ExposureCsvFile:
    """A CSV file of `recommendationId,machineId` pairs, read one of two ways.

    Iterated: the checked (position, line, recommendation id, machine id) tuples of
    `read_exposure_csv_pairs`, each problem reported with its line. On PostgreSQL the snapshot
    may first copy the file as it is into its staging table (`copy_columns`, `blocks`): the
    database parses it, and when anything in it is not plainly right (a malformed row, a value
    with spaces, an unknown id, a repeated pair) the snapshot drops what it copied and iterates
    the file instead, so every rule and message stays the Python reader's.
    """

    HEAD_BYTES = 4096

    def __init__(self, file: str | Path | IO, *, source: str, problems: Problems):
        self.file, self.source, self.problems = file, source, problems
        self._start = None
        if not isinstance(file, str | Path) and getattr(file, "seekable", lambda: False)():
            self._start = file.tell()

    def _rewind(self) -> None:
        if self._start is not None:
            self.file.seek(self._start)

    def __iter__(self) -> Iterator[tuple[int, int | None, str, str]]:
        self._rewind()
        return read_exposure_csv_pairs(self.file, source=self.source, problems=self.problems)

    def copy_columns(self) -> tuple[str, str] | None:
        """("rec_ext", "machine") in the file's column order when COPY can read it as it is, else None.

        That is a plain (not gzipped) binary file or path whose header row is exactly the two
        columns, by any of their accepted names.
        """
        if isinstance(self.file, io.TextIOBase) or (not isinstance(self.file, str | Path) and self._start is None):
            return None
        self._rewind()  # an upload already copied once is read from its start again
        head = _head(self.file, self.HEAD_BYTES)
        if head[:2] == GZIP_MAGIC or b"\n" not in head:
            return None
        try:
            line = head.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
            headers = [normalize_key(h) for h in next(csv.reader([line]))]
        except (UnicodeDecodeError, csv.Error, StopIteration):
            return None
        if len(headers) != 2:
            return None
        names = []
        for header in headers:
            if header in EXPOSURE_RECOMMENDATION_KEYS and "rec_ext" not in names:
                names.append("rec_ext")
            elif header in EXPOSURE_DEVICE_KEYS and "machine" not in names:
                names.append("machine")
        return (names[0], names[1]) if len(names) == 2 else None

    def blocks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes, header row included, in blocks of `size`."""
        if isinstance(self.file, str | Path):
            with open(self.file, "rb") as fh:
                while block := fh.read(size):
                    yield block
            return
        self._rewind()
        while block := self.file.read(size):
            yield block


def read_exposure_csv_pairs(
    file: str | Path | IO, *, source: str, problems: Problems
) -> Iterator[tuple[int, int | None, str, str]]:
    """(position, line, recommendation id, machine id) from a CSV of pairs; the fast path for big snapshots."""
    try:
        yield from _exposure_csv_pairs(file, source=source, problems=problems)
    except GZIP_ERRORS as exc:
        problems.add(source, None, f"not a readable gzip file ({exc.__class__.__name__}: {exc})")


def _exposure_csv_pairs(file, *, source: str, problems: Problems):
    stream, opened = _open_text(file)
    try:
        reader = csv.reader(stream)
        try:
            headers = [normalize_key(h) for h in next(reader)]
        except StopIteration:
            problems.add(source, None, "the file is empty")
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.add(source, None, f"cannot read the header row: {exc}", line=1)
            return
        rec_col = next((headers.index(k) for k in EXPOSURE_RECOMMENDATION_KEYS if k in headers), None)
        dev_col = next((headers.index(k) for k in EXPOSURE_DEVICE_KEYS if k in headers), None)
        if rec_col is None or dev_col is None:
            missing = [n for n, c in (("recommendationId", rec_col), ("machineId", dev_col)) if c is None]
            problems.add(source, None, "missing column(s): " + ", ".join(missing), line=1)
            return
        rec_max = max_length(SecurityRecommendation, "external_id")
        dev_max = max_length(Device, "machine_id")
        for position, row in _csv_data_rows(reader, width=len(headers), source=source, problems=problems):
            rec, machine = row[rec_col].strip(), row[dev_col].strip()
            if "\x00" in rec or "\x00" in machine:
                for value, name in ((rec, "recommendationId"), (machine, "machineId")):
                    try:
                        check_storable(value)
                    except BadValue as exc:
                        problems.add(source, position, value_problem(name, exc), reader.line_num)
                continue
            if not rec or not machine or len(rec) > rec_max or len(machine) > dev_max:
                for value, name, limit in ((rec, "recommendationId", rec_max), (machine, "machineId", dev_max)):
                    if not value:
                        problems.add(source, position, f"missing required field {name!r}", reader.line_num)
                    elif len(value) > limit:
                        problems.add(
                            source,
                            position,
                            f"wrong type for {name!r}: longer than {limit} characters",
                            reader.line_num,
                        )
                continue
            yield position, reader.line_num, rec, machine
    finally:
        if opened:
            stream.close()
