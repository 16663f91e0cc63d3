"""Reading inventory files: Microsoft Defender for Endpoint JSON, CSV and spreadsheet rows.

Nothing here writes to the database. Readers turn a file (or a django-import-export dataset)
into `Record`s that carry their position; normalisers turn a record into model field values
or add a `Problem` naming the record and the reason. The services in
`recommendations.services` check what needs the database (duplicates, unknown ids) and write.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from portal.errors import ValidationError

from .models import UNASSIGNED_GROUP_NAME, Device, DeviceGroup, SecurityRecommendation

MAX_LISTED_PROBLEMS = 1000


@dataclass(frozen=True)
class Record:
    """One record of an input file. `position` counts records from 1; `line` is the file line."""

    position: int
    line: int | None
    data: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    source: str
    position: int | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.source
        if self.position is not None:
            where += f" record {self.position}"
            if self.line is not None and self.line != self.position:
                where += f" (line {self.line})"
        elif self.line is not None:
            where += f" line {self.line}"
        return f"{where}: {self.message}"


@dataclass
class Problems:
    """Collects every problem of an import (the first MAX_LISTED_PROBLEMS are kept verbatim)."""

    items: list[Problem] = field(default_factory=list)
    count: int = 0

    def add(self, source: str, position: int | None, message: str, line: int | None = None) -> None:
        self.count += 1
        if len(self.items) < MAX_LISTED_PROBLEMS:
            self.items.append(Problem(source, position, message, line))

    def __bool__(self) -> bool:
        return self.count > 0

    def raise_if_any(self) -> None:
        if self.count:
            raise ImportRejected(self)


class ImportRejected(ValidationError):
    """The input has bad records: nothing was imported. `problems` lists each one."""

    def __init__(self, problems: Problems, *, shown: int = 50):
        self.problems = problems
        listed = [str(p) for p in problems.items]
        more = problems.count - min(shown, len(listed))
        text = "; ".join(listed[:shown]) + (f"; and {more} more" if more > 0 else "")
        noun = "problem" if problems.count == 1 else "problems"
        super().__init__(
            f"Nothing was imported: {problems.count} {noun}: {text}",
            errors={
                "import": listed
                + ([f"... and {problems.count - len(listed)} more"] if problems.count > len(listed) else [])
            },
        )


# --- Readers -----------------------------------------------------------------------------


def source_name(file: str | Path | IO | None, default: str) -> str:
    if isinstance(file, str | Path):
        return Path(file).name
    name = getattr(file, "name", None)
    return Path(name).name if isinstance(name, str) and name else default


def _open_text(file: str | Path | IO) -> tuple[IO[str], bool]:
    """A text stream for `file` (path, binary or text file object) and whether we opened it."""
    if isinstance(file, str | Path):
        return open(file, encoding="utf-8-sig", newline=""), True  # noqa: SIM115
    if isinstance(file, io.TextIOBase):
        return file, False
    return io.TextIOWrapper(file, encoding="utf-8-sig", newline=""), False


def sniff_is_json(file: str | Path | IO) -> bool:
    """JSON when the name says so, or the first non-blank character opens an object/array."""
    name = file if isinstance(file, str | Path) else getattr(file, "name", "") or ""
    suffix = Path(str(name)).suffix.lower()
    if suffix in {".json", ".csv"}:
        return suffix == ".json"
    if isinstance(file, str | Path):
        with open(file, "rb") as fh:
            head = fh.read(64)
    else:
        head = file.peek(64)[:64] if hasattr(file, "peek") else b""
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
                    raise self.error(exc.msg, exc.pos) from None
                self.fill()
                continue
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
        """The elements of `{"value": [...]}` (other keys skipped) or of a top-level array."""
        char = self.peek()
        if char == "[":
            yield from self.array_items()
        elif char == "{":
            self.pos += 1
            found = False
            while True:
                if self.peek() == "}":
                    self.pos += 1
                    break
                key = self.value()
                self.expect(":")
                if key == "value" and self.peek() == "[":
                    found = True
                    yield from self.array_items()
                else:
                    self.value()
                char = self.peek()
                if char == ",":
                    self.pos += 1
                elif char != "}":
                    raise self.error("Expecting ',' delimiter")
            if not found:
                raise ValueError('expected a Defender API response {"value": [...]} or a JSON array')
        else:
            raise ValueError('expected a Defender API response {"value": [...]} or a JSON array')
        if self.peek() != "":
            raise self.error("Extra data")


def read_json_records(file: str | Path | IO, *, source: str, problems: Problems) -> Iterator[Record]:
    """Records of a Defender API response (`{"value": [...]}`) or of a plain JSON array.

    Streams: memory holds one record at a time, whatever the file size. A syntax error stops
    the reading with one problem (the records before it are still checked).
    """
    stream, opened = _open_text(file)
    position = 0
    try:
        for item in _JSONStream(stream).records():
            position += 1
            if not isinstance(item, dict):
                problems.add(source, position, f"malformed record: expected an object, got {_type_name(item)}")
                continue
            yield Record(position, None, item)
    except _JSONSyntaxError as exc:
        problems.add(source, None, f"not valid JSON (line {exc.line}, column {exc.column}): {exc.msg}")
    except ValueError as exc:  # the shape is wrong
        problems.add(source, None, str(exc))
    except UnicodeDecodeError:
        problems.add(source, None, "not UTF-8 text")
    finally:
        if opened:
            stream.close()


def json_payload_records(payload: Any, *, source: str, problems: Problems) -> list[Record]:
    if isinstance(payload, dict):
        if not isinstance(payload.get("value"), list):
            problems.add(source, None, 'expected a Defender API response {"value": [...]} or a JSON array')
            return []
        payload = payload["value"]
    elif not isinstance(payload, list):
        problems.add(source, None, 'expected a Defender API response {"value": [...]} or a JSON array')
        return []
    records = []
    for position, item in enumerate(payload, 1):
        if not isinstance(item, dict):
            problems.add(source, position, f"malformed record: expected an object, got {_type_name(item)}")
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
    """Records of a CSV file with a header row; streams (constant memory)."""
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


# --- Field helpers -----------------------------------------------------------------------

_KEY_RE = re.compile(r"[^a-z0-9]")


def normalize_key(key: str) -> str:
    """`recommendationId`, `recommendation_id` and `Recommendation ID` all become `recommendationid`."""
    return _KEY_RE.sub("", str(key).lower())


class _Bad(Exception):
    pass


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", str: "text", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _lookup(data: dict[str, Any], names: tuple[str, ...]) -> tuple[bool, Any]:
    normalized = getattr(data, "_normalized", None)
    for name in names:
        if name in normalized:
            return True, normalized[name]
    return False, None


def _key_label(data: dict[str, Any], names: tuple[str, ...]) -> str:
    """The record's own spelling of the field (for messages), else the Defender name."""
    for name in names:
        if name in data._keys:
            return data._keys[name]
    return names[0]


class _Row(dict):
    """A record's data with normalised keys, for alias lookups."""

    def __init__(self, data: dict[str, Any]):
        super().__init__(data)
        self._normalized = {}
        self._keys = {}
        for key, value in data.items():
            self._normalized.setdefault(normalize_key(key), value)
            self._keys.setdefault(normalize_key(key), str(key))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: Any, *, max_length: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, dict | list):
        raise _Bad(f"expected text, got {_type_name(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if len(text) > max_length:
        raise _Bad(f"longer than {max_length} characters")
    return text


def as_float(value: Any) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad(f"expected a number, got {_type_name(value)}")
    try:
        number = float(value)
    except ValueError:
        raise _Bad(f"expected a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise _Bad(f"expected a number, got {value!r}")
    return number


def as_int(value: Any) -> int | None:
    number = as_float(value)
    if number is None:
        return None
    if not number.is_integer() or number < 0:
        raise _Bad(f"expected a whole number of 0 or more, got {value!r}")
    return int(number)


_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


def as_bool(value: Any) -> bool | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Bad(f"expected true or false, got {value!r}")


def as_datetime(value: Any) -> dt.datetime | None:
    if _blank(value):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = parse_datetime(text)
        except ValueError:
            parsed = None
        if parsed is None:
            try:
                day = parse_date(text)
            except ValueError:
                day = None
            if day is None:
                raise _Bad(f"expected a date and time (ISO 8601), got {value!r}")
            parsed = dt.datetime.combine(day, dt.time())
    else:
        raise _Bad(f"expected a date and time, got {_type_name(value)}")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _max(model, name: str) -> int:
    return model._meta.get_field(name).max_length


# --- Category / remediation type ---------------------------------------------------------

Category = SecurityRecommendation.Category
RemediationType = SecurityRecommendation.RemediationType

CATEGORY_ALIASES = {
    "accounts": Category.ACCOUNTS,
    "account": Category.ACCOUNTS,
    "application": Category.APPLICATION,
    "applications": Category.APPLICATION,
    "app": Category.APPLICATION,
    "software": Category.APPLICATION,
    "network": Category.NETWORK,
    "networks": Category.NETWORK,
    "os": Category.OS,
    "operatingsystem": Category.OS,
    "securitycontrols": Category.SECURITY_CONTROLS,
    "securitycontrol": Category.SECURITY_CONTROLS,
    "securitystack": Category.SECURITY_CONTROLS,
}
REMEDIATION_ALIASES = {
    "configurationchange": RemediationType.CONFIGURATION_CHANGE,
    "configuration": RemediationType.CONFIGURATION_CHANGE,
    "config": RemediationType.CONFIGURATION_CHANGE,
    "update": RemediationType.UPDATE,
    "softwareupdate": RemediationType.UPDATE,
    "patch": RemediationType.UPDATE,
    "upgrade": RemediationType.UPGRADE,
    "softwareupgrade": RemediationType.UPGRADE,
    "uninstall": RemediationType.UNINSTALL,
    "softwareuninstall": RemediationType.UNINSTALL,
    "remove": RemediationType.UNINSTALL,
}


def _is_configuration_id(external_id: str) -> bool:
    # Defender names configuration recommendations "scid-NNN" and software ones "va-_-vendor-_-product".
    return external_id.lower().startswith("scid-")


def map_remediation_type(value: Any, *, external_id: str) -> tuple[str, str | None]:
    """(choice, warning): Defender's value mapped onto the model's choices."""
    fallback = RemediationType.CONFIGURATION_CHANGE if _is_configuration_id(external_id) else RemediationType.UPDATE
    if _blank(value):
        return fallback, None
    if not isinstance(value, str):
        raise _Bad(f"expected text, got {_type_name(value)}")
    choice = REMEDIATION_ALIASES.get(normalize_key(value))
    if choice is None:
        return fallback, f"unknown remediationType {value!r}, stored as {fallback.value}"
    return choice, None


def map_category(value: Any, *, remediation_type: str) -> tuple[str, str | None]:
    fallback = (
        Category.SECURITY_CONTROLS if remediation_type == RemediationType.CONFIGURATION_CHANGE else Category.APPLICATION
    )
    if _blank(value):
        return fallback, None
    if not isinstance(value, str):
        raise _Bad(f"expected text, got {_type_name(value)}")
    choice = CATEGORY_ALIASES.get(normalize_key(value))
    if choice is None:
        return fallback, f"unknown recommendationCategory {value!r}, stored as {fallback.value}"
    return choice, None


# --- Normalisers: a Record to model field values (or a Problem) ---------------------------

# (model field, aliases (normalised), converter kind); the first alias is the Defender name.
RECOMMENDATION_FIELDS = [
    ("external_id", ("id", "externalid"), "text"),
    ("name", ("recommendationname", "name"), "text"),
    ("product_name", ("productname",), "text"),
    ("vendor", ("vendor",), "text"),
    ("related_component", ("relatedcomponent",), "text"),
    ("severity_score", ("severityscore",), "float"),
    ("exposure_impact", ("exposureimpact",), "float"),
    ("config_score_impact", ("configscoreimpact",), "float"),
    ("public_exploit", ("publicexploit",), "bool"),
    ("active_alert", ("activealert",), "bool"),
    ("weaknesses", ("weaknesses",), "int"),
    ("recommended_version", ("recommendedversion",), "text"),
    ("recommended_program", ("recommendedprogram",), "text"),
    ("recommended_vendor", ("recommendedvendor",), "text"),
]
RECOMMENDATION_CATEGORY_KEYS = ("recommendationcategory", "category")
RECOMMENDATION_TYPE_KEYS = ("remediationtype",)
RECOMMENDATION_REQUIRED = {"external_id": "id", "name": "recommendationName"}

DEVICE_FIELDS = [
    ("machine_id", ("id", "machineid", "deviceid"), "text"),
    ("computer_dns_name", ("computerdnsname", "devicename"), "text"),
    ("os_platform", ("osplatform",), "text"),
    ("aad_device_id", ("aaddeviceid",), "text"),
    ("last_seen", ("lastseen",), "datetime"),
]
DEVICE_GROUP_KEYS = ("rbacgroupname", "devicegroup", "devicegroupname")
DEVICE_REQUIRED = {"machine_id": "id"}

EXPOSURE_RECOMMENDATION_KEYS = ("recommendationid", "recommendation", "externalid")
EXPOSURE_DEVICE_KEYS = ("machineid", "device", "deviceid")

_CONVERTERS = {"float": as_float, "int": as_int, "bool": as_bool, "datetime": as_datetime}


def _convert(model, field_name: str, kind: str, value: Any) -> Any:
    if kind == "text":
        return as_text(value, max_length=_max(model, field_name))
    return _CONVERTERS[kind](value)


def _fields(model, record: Record, spec, required: dict[str, str], source: str, problems: Problems):
    row = _Row(record.data)
    values: dict[str, Any] = {}
    bad = False
    for field_name, keys, kind in spec:
        found, raw = _lookup(row, keys)
        if field_name in required and _blank(raw):
            problems.add(source, record.position, f"missing required field {required[field_name]!r}", record.line)
            bad = True
            continue
        if not found:
            continue
        try:
            value = _convert(model, field_name, kind, raw)
        except _Bad as exc:
            problems.add(source, record.position, f"wrong type for {_key_label(row, keys)!r}: {exc}", record.line)
            bad = True
            continue
        if value is not None:
            values[field_name] = value
    return row, values, bad


def normalize_recommendation(
    record: Record, *, source: str, problems: Problems, warnings: list[str]
) -> dict[str, Any] | None:
    row, values, bad = _fields(
        SecurityRecommendation, record, RECOMMENDATION_FIELDS, RECOMMENDATION_REQUIRED, source, problems
    )
    external_id = values.get("external_id", "")
    try:
        found, raw = _lookup(row, RECOMMENDATION_TYPE_KEYS)
        remediation_type, warning = map_remediation_type(raw, external_id=external_id)
        if warning and found:
            warnings.append(str(Problem(source, record.position, warning, record.line)))
        values["remediation_type"] = remediation_type
    except _Bad as exc:
        problems.add(source, record.position, f"wrong type for 'remediationType': {exc}", record.line)
        bad = True
    try:
        _, raw = _lookup(row, RECOMMENDATION_CATEGORY_KEYS)
        category, warning = map_category(raw, remediation_type=values.get("remediation_type", ""))
        if warning:
            warnings.append(str(Problem(source, record.position, warning, record.line)))
        values["category"] = category
    except _Bad as exc:
        problems.add(source, record.position, f"wrong type for 'recommendationCategory': {exc}", record.line)
        bad = True
    return None if bad else values


def normalize_device(record: Record, *, source: str, problems: Problems) -> dict[str, Any] | None:
    row, values, bad = _fields(Device, record, DEVICE_FIELDS, DEVICE_REQUIRED, source, problems)
    found, raw = _lookup(row, DEVICE_GROUP_KEYS)
    try:
        group = as_text(raw, max_length=_max(DeviceGroup, "name"))
    except _Bad as exc:
        problems.add(source, record.position, f"wrong type for 'rbacGroupName': {exc}", record.line)
        return None
    if found:  # present but empty or null: the device belongs to no group
        values["device_group"] = group or UNASSIGNED_GROUP_NAME
    # absent: an existing device keeps its group, a new one goes to UnassignedGroup (service)
    return None if bad else values


def normalize_device_group(record: Record, *, source: str, problems: Problems) -> dict[str, Any] | None:
    row = _Row(record.data)
    _, name = _lookup(row, ("name", "rbacgroupname", "devicegroup"))
    _, description = _lookup(row, ("description",))
    if _blank(name):
        problems.add(source, record.position, "missing required field 'name'", record.line)
        return None
    try:
        values = {"name": as_text(name, max_length=_max(DeviceGroup, "name"))}
        if description is not None:
            values["description"] = as_text(description, max_length=100_000)
    except _Bad as exc:
        problems.add(source, record.position, f"wrong type: {exc}", record.line)
        return None
    return values


def normalize_exposure(record: Record, *, source: str, problems: Problems) -> tuple[int, int | None, str, str] | None:
    """(position, line, recommendation external id, machine id), or None with a Problem added."""
    row = _Row(record.data)
    _, rec = _lookup(row, EXPOSURE_RECOMMENDATION_KEYS)
    _, machine = _lookup(row, EXPOSURE_DEVICE_KEYS)
    bad = False
    for raw, name in ((rec, "recommendationId"), (machine, "machineId")):
        if _blank(raw):
            problems.add(source, record.position, f"missing required field {name!r}", record.line)
            bad = True
    if bad:
        return None
    values = []
    for raw, name, limit in (
        (rec, "recommendationId", _max(SecurityRecommendation, "external_id")),
        (machine, "machineId", _max(Device, "machine_id")),
    ):
        try:
            values.append(as_text(raw, max_length=limit))
        except _Bad as exc:
            problems.add(source, record.position, f"wrong type for {name!r}: {exc}", record.line)
    if len(values) != 2:
        return None
    return record.position, record.line, values[0], values[1]


def dataset_records(dataset, *, line_offset: int = 1) -> Iterator[Record]:
    """Records of a tablib Dataset (admin imports); line = position + header line(s)."""
    headers = [str(h) if h is not None else "" for h in (dataset.headers or [])]
    for position, values in enumerate(dataset, 1):
        data = {h: v for h, v in zip(headers, values, strict=False) if h}
        yield Record(position, position + line_offset if line_offset else None, data)


def read_exposure_csv_pairs(
    file: str | Path | IO, *, source: str, problems: Problems
) -> Iterator[tuple[int, int | None, str, str]]:
    """(position, line, recommendation id, machine id) from a CSV of pairs; the fast path for big snapshots."""
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
        rec_max = _max(SecurityRecommendation, "external_id")
        dev_max = _max(Device, "machine_id")
        for position, row in _csv_data_rows(reader, width=len(headers), source=source, problems=problems):
            rec, machine = row[rec_col].strip(), row[dev_col].strip()
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
