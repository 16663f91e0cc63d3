"""Writes to device groups, devices and recommendations: upserts of import records.

Imports are atomic: every record is checked (required fields, types, duplicate ids) and,
when any record is bad, nothing is written and `ImportRejected` lists each bad record with
its position. Writes are set-based: INSERT ... ON CONFLICT in batches.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from ..imports import normalize
from ..imports.records import Problems, Record
from ..models import UNASSIGNED_GROUP_NAME, Device, DeviceGroup, SecurityRecommendation
from .bulk import indexes_built_after
from .counters import drop_temp_table_quietly, temp_table
from .write_scope import device_groups_in_scope, devices_in_scope

INVENTORY_BATCH_SIZE = 5000
_LOOKUP_CHUNK = 2000


def _as_records(items: Iterable) -> Iterable[Record]:
    for position, item in enumerate(items, 1):
        yield item if isinstance(item, Record) else Record(position, None, dict(item))


def tick(progress, n: int) -> None:
    if progress is not None and n:
        progress(n)


def _check_duplicates(
    rows: list[tuple[Record, dict]], key: str, label: str, source: str, problems: Problems
) -> list[tuple[Record, dict]]:
    """Rows with a key seen before are problems (naming where it was first seen)."""
    first: dict[str, Record] = {}
    unique = []
    for record, values in rows:
        value = values[key]
        if value in first:
            seen = first[value]
            problems.add(
                source, record.position, f"duplicate {label} {value!r} (first at record {seen.position})", record.line
            )
            continue
        first[value] = record
        unique.append((record, values))
    return unique


def _existing(model, key: str, keys: list[str], fields: list[str]) -> dict[str, tuple]:
    """{key: (stored value of each of `fields`)} of the stored rows among `keys` (tuples: a batch of
    50,000 stored devices as dictionaries took seven times the memory)."""
    if connection.vendor == "postgresql":
        return _existing_postgres(model, key, keys, fields)
    found: dict[str, tuple] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        for found_key, *values in model.objects.filter(**{f"{key}__in": chunk}).values_list(key, *fields):
            found[found_key] = tuple(values)
    return found


# Keys travel to PostgreSQL as one text split by the server: adapting a list of 100,000 strings
# as an array parameter costs the client more than the query. The separator is a control
# character no Defender id holds; a chunk with a key that holds one goes as an array.
_KEY_SEPARATOR = "\x1f"


def _key_arrays(keys: list[str]) -> Iterator[tuple[str, list]]:
    """(SQL array expression, its parameters) for each chunk of `keys` (PostgreSQL)."""
    for start in range(0, len(keys), INVENTORY_BATCH_SIZE * 20):
        chunk = keys[start : start + INVENTORY_BATCH_SIZE * 20]
        joined = _KEY_SEPARATOR.join(chunk)
        if joined.count(_KEY_SEPARATOR) == len(chunk) - 1:
            yield "string_to_array(%s, %s)", [joined, _KEY_SEPARATOR]
        else:
            yield "%s", [chunk]


def _stored_count(model, key: str, keys: list[str]) -> int:
    """How many of `keys` are stored (PostgreSQL): nothing comes back but a number."""
    qn = connection.ops.quote_name
    column = qn(model._meta.get_field(key).column)
    total = 0
    with connection.cursor() as cursor:
        for array, params in _key_arrays(keys):
            cursor.execute(f"SELECT count(*) FROM {qn(model._meta.db_table)} WHERE {column} = ANY({array})", params)  # noqa: S608
            total += cursor.fetchone()[0]
    return total


def _existing_postgres(model, key: str, keys: list[str], fields: list[str]) -> dict[str, tuple]:
    qn = connection.ops.quote_name
    names = [key, *fields]
    model_fields = [model._meta.get_field(name) for name in names]
    convert = [(i, f.from_db_value) for i, f in enumerate(model_fields) if hasattr(f, "from_db_value")]
    select = (
        f"SELECT {', '.join(qn(f.column) for f in model_fields)} FROM {qn(model._meta.db_table)}"  # noqa: S608 (names)
        f" WHERE {qn(model_fields[0].column)} = ANY"
    )
    found: dict[str, tuple] = {}
    with connection.cursor() as cursor:
        for array, params in _key_arrays(keys):
            cursor.execute(f"{select}({array})", params)
            for row in cursor:  # one converted row at a time, not a list of them all
                if convert:
                    row = list(row)
                    for i, from_db in convert:
                        row[i] = from_db(row[i], None, connection)
                found[row[0]] = tuple(row[1:])
    return found


def _json_text(value) -> str:
    return "[]" if value == [] else json.dumps(value)


def _columns(model) -> list:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _copy_rows(cursor, model, table: str, *, key: str, fields: list[str], rows: Iterable[dict], extra=()) -> None:
    """COPY `rows` (the key and every field in `fields`) into a new temporary `table` with the
    columns of `model` but its primary key, plus the text columns named in `extra` (PostgreSQL)."""
    qn = connection.ops.quote_name
    columns = _columns(model)
    named = {key, *fields}
    # Columns the rows do not carry are only ever inserted: their defaults (or now, for auto_now_add).
    fixed = {
        f.attname: (timezone.now() if getattr(f, "auto_now_add", False) else f.get_default())
        for f in columns
        if f.name not in named and f.attname not in named
    }
    json_columns = {f.attname for f in columns if isinstance(f, models.JSONField)}
    names = ", ".join(qn(f.column) for f in columns)
    cursor.execute(f"DROP TABLE IF EXISTS {temp_table(table)}")
    cursor.execute(f"CREATE TEMPORARY TABLE {table} AS SELECT {names} FROM {qn(model._meta.db_table)} WITH NO DATA")  # noqa: S608
    for name in extra:
        cursor.execute(f"ALTER TABLE {temp_table(table)} ADD COLUMN {name} text")
    # COPY's text lines are read by each column's own input function: a JSON column takes
    # its document as JSON text (most machine tags are an empty list, written once). Each row is
    # laid over every column's value when it has none, and its values taken in one C call.
    base = {**{f.attname: fixed.get(f.attname) for f in columns}, **dict.fromkeys(extra)}
    values = operator.itemgetter(*base)
    with cursor.cursor.copy(f"COPY {table} ({', '.join([names, *extra])}) FROM STDIN") as copy:
        for row in rows:
            full = {**base, **row}
            for name in json_columns:
                full[name] = _json_text(full[name])
            copy.write_row(values(full))


def _write(model, *, key: str, fields: list[str], rows: list[dict]) -> None:
    """Insert `rows` (the key and every field in `fields`), or update `fields` of the stored rows with the same key.

    PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT ... ON CONFLICT (a
    fraction of what the same rows cost as a many-valued INSERT built by the ORM). Elsewhere the
    ORM's bulk_create with update_conflicts.
    """
    if connection.vendor != "postgresql":
        objs = [model(**row) for row in rows]
        model.objects.bulk_create(objs, update_conflicts=True, unique_fields=[key], update_fields=fields)
        return
    qn = connection.ops.quote_name
    names = ", ".join(qn(f.column) for f in _columns(model))
    updates = ", ".join(
        f"{qn(model._meta.get_field(f).column)} = EXCLUDED.{qn(model._meta.get_field(f).column)}" for f in fields
    )
    with connection.cursor() as cursor:
        _copy_rows(cursor, model, "rp_upsert", key=key, fields=fields, rows=rows)
        cursor.execute(
            f"INSERT INTO {qn(model._meta.db_table)} ({names}) SELECT {names} FROM rp_upsert"  # noqa: S608 (names only)
            f" ON CONFLICT ({qn(model._meta.get_field(key).column)}) DO UPDATE SET {updates}"
        )
        cursor.execute(f"DROP TABLE {temp_table('rp_upsert')}")


def _upsert(
    model, *, key: str, fields: list[str], rows: list[dict], progress=None, changed: tuple[str, set] | None = None
) -> dict[str, int]:
    """Insert or update `rows` by `key` with INSERT ... ON CONFLICT, in batches.

    A row that omits a field keeps the stored value (or the model default when new).
    Returns counts created / updated (something changed) / unchanged. `changed`
    (field, set): the keys of existing rows whose `field` changes are added to the set.
    """
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    defaults = {f: model._meta.get_field(f).get_default() for f in fields}
    # One batch of stored values in memory at a time (PostgreSQL writes a batch with one COPY).
    batch = INVENTORY_BATCH_SIZE * 10 if connection.vendor == "postgresql" else INVENTORY_BATCH_SIZE
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        existing = _existing(model, key, [r[key] for r in chunk], fields)
        out = []
        for values in chunk:
            stored = existing.get(values[key])
            before = None if stored is None else dict(zip(fields, stored, strict=True))
            merged = {**(before or defaults), **values}
            if before is None:
                counts["created"] += 1
            elif any(merged[f] != before[f] for f in fields):
                counts["updated"] += 1
                if changed is not None and merged[changed[0]] != before[changed[0]]:
                    changed[1].add(values[key])
            else:
                counts["unchanged"] += 1
                continue
            out.append({key: values[key], **{f: merged[f] for f in fields}})
        if out:
            _write(model, key=key, fields=fields, rows=out)
        tick(progress, len(chunk))
    return counts


def _normalized(records, normalize, *, problems, **kwargs) -> list[tuple[Record, dict]]:
    rows = []
    for record in _as_records(records):
        values = normalize(record, problems=problems, **kwargs)
        if values is not None:
            # Keep where the record was, not its raw fields (memory of big files).
            rows.append((Record(record.position, record.line, _NO_DATA), values))
    return rows


_NO_DATA: dict = {}


class CheckedRows(list):
    """Records read and checked ahead of their write (`check_device_records`, `check_recommendation_records`).

    The upserts take them as they are: an import reads its files before its transaction begins.
    `staged`: how many new devices `new_devices_copied_ahead` copied for their insert.
    """

    staged = 0


def check_device_records(
    *, records: Iterable, source: str = "machines", problems: Problems, warnings: list[str] | None = None
) -> CheckedRows:
    """Machine records normalized and checked for repeated ids (no database): for `devices_upsert`."""
    rows = _normalized(records, normalize.normalize_device, problems=problems, source=source, warnings=warnings)
    return CheckedRows(_check_duplicates(rows, "machine_id", "device id", source, problems))


def check_recommendation_records(
    *, records: Iterable, source: str = "recommendations", problems: Problems, warnings: list[str]
) -> CheckedRows:
    """Recommendation records normalized and checked for repeated ids (no database): for `recommendations_upsert`."""
    rows = _normalized(records, normalize.normalize_recommendation, problems=problems, source=source, warnings=warnings)
    return CheckedRows(_check_duplicates(rows, "external_id", "recommendation id", source, problems))


@transaction.atomic
def device_groups_upsert(
    *, records: Iterable, source: str = "device groups", problems: Problems | None = None, user=None
) -> dict[str, int]:
    """Create or update device groups by name (description). Raises ImportRejected on bad records.

    `user`: whose import it is; a user who does not see every device group changes only the
    descriptions of their own groups (write_scope). None (operator commands): full scope.
    """
    own = problems is None
    problems = problems if problems is not None else Problems()
    rows = _normalized(records, normalize.normalize_device_group, problems=problems, source=source)
    rows = _check_duplicates(rows, "name", "device group", source, problems)
    rows = device_groups_in_scope(rows, user=user, source=source, problems=problems)
    if own:
        problems.raise_if_any()
    values = [v for _, v in rows]
    if not values:
        return {"created": 0, "updated": 0, "unchanged": 0}
    # A row without a description keeps the stored one: upsert the two shapes separately.
    with_description = [v for v in values if "description" in v]
    without = [v for v in values if "description" not in v]
    counts = _upsert(DeviceGroup, key="name", fields=["description"], rows=with_description)
    created = _device_groups_ensure({v["name"] for v in without})
    counts["created"] += created
    counts["unchanged"] += len(without) - created
    return counts


def _device_groups_ensure(names: set[str]) -> int:
    """Create the missing groups among `names`; returns how many were created."""
    if not names:
        return 0
    existing = set(_existing(DeviceGroup, "name", sorted(names), []))
    missing = sorted(names - existing)
    DeviceGroup.objects.bulk_create(
        [DeviceGroup(name=n) for n in missing],
        batch_size=INVENTORY_BATCH_SIZE,
        ignore_conflicts=True,
    )
    return len(missing)


DEVICE_UPDATE_FIELDS = [
    "computer_dns_name",
    "os_platform",
    "os_version",
    "device_group_id",
    "aad_device_id",
    "first_seen",
    "last_seen",
    "health_status",
    "risk_score",
    "exposure_level",
    "machine_tags",
    "last_ip_address",
]
RECOMMENDATION_UPDATE_FIELDS = [
    "name",
    "product_name",
    "vendor",
    "related_component",
    "category",
    "remediation_type",
    "severity_score",
    "exposure_impact",
    "config_score_impact",
    "public_exploit",
    "active_alert",
    "weaknesses",
    "recommended_version",
    "recommended_program",
    "recommended_vendor",
    "sub_category",
    "associated_threats",
    "tags",
]


@transaction.atomic
def devices_upsert(
    *,
    records: Iterable,
    source: str = "machines",
    problems: Problems | None = None,
    warnings: list[str] | None = None,
    progress=None,
    user=None,
) -> dict[str, int]:
    """Create or update devices by machine id (Defender's `/api/machines` records, or the
    `check_device_records` of them).

    `rbacGroupName` names the device group, created when missing; a device without one (or in
    Defender's `Unassigned` / `None`) goes to UnassignedGroup. An unknown healthStatus, riskScore
    or exposureLevel is stored empty and reported in `warnings`.
    Counts: created, updated, unchanged, device_groups_created.
    `user`: whose import it is; a user who does not see every device group writes only devices
    of their groups, into their groups (write_scope). None (operator commands): full scope.
    """
    own = problems is None
    problems = problems if problems is not None else Problems()
    if not isinstance(records, CheckedRows):
        records = check_device_records(records=records, source=source, problems=problems, warnings=warnings)
    rows = devices_in_scope(records, user=user, source=source, problems=problems)
    if own:
        problems.raise_if_any()
    # A record without a group column keeps the device's group; a new device goes to UnassignedGroup.
    ungrouped = [v["machine_id"] for _, v in rows if "device_group" not in v]
    known = set(_existing(Device, "machine_id", ungrouped, [])) if ungrouped else set()
    for _, v in rows:
        if "device_group" not in v and v["machine_id"] not in known:
            v["device_group"] = UNASSIGNED_GROUP_NAME
    names = {v["device_group"] for _, v in rows if "device_group" in v}
    groups_created = _device_groups_ensure(names)
    created_ahead = 0
    if records.staged and not problems:  # copied before this transaction
        inserted = _insert_new_devices(records.staged)
        created_ahead = len(inserted)
        tick(progress, created_ahead)
        rows = [(record, v) for record, v in rows if v["machine_id"] not in inserted]
        names = {v["device_group"] for _, v in rows if "device_group" in v}
    group_ids = dict(DeviceGroup.objects.filter(name__in=names).values_list("name", "pk"))
    values = []
    for _, v in rows:  # the checked rows' own values (not a second copy of 100,000 of them)
        if "device_group" in v:
            v["device_group_id"] = group_ids[v.pop("device_group")]
        values.append(v)
    # A device that moves takes its open exposures to its new group's counters (database triggers).
    counts = _upsert(Device, key="machine_id", fields=DEVICE_UPDATE_FIELDS, rows=values, progress=progress)
    counts["created"] += created_ahead
    counts["device_groups_created"] = groups_created
    return counts


_NEW_DEVICES = "rp_devices_new"


@contextmanager
def new_devices_copied_ahead(rows: CheckedRows) -> Iterator[None]:
    """Copy the devices among `rows` that are not stored yet into a temporary table, before the
    import's transaction begins (PostgreSQL; elsewhere nothing happens).

    `devices_upsert`, given these rows inside the transaction, inserts them with one INSERT ...
    SELECT, so that the transaction does not spend the Python work and the COPY of 100,000 new
    devices; a device stored meanwhile is upserted the ordinary way. The table goes on exit.
    """
    if connection.vendor != "postgresql" or not rows:
        yield
        return
    with connection.cursor() as cursor:
        try:
            rows.staged = _stage_new_devices(cursor, rows)
            yield
        finally:
            rows.staged = 0
            drop_temp_table_quietly(cursor, _NEW_DEVICES)


def _stage_new_devices(cursor, rows: CheckedRows) -> int:
    """COPY the devices of `rows` not stored yet into the temporary table _NEW_DEVICES; how many."""
    keys = [v["machine_id"] for _, v in rows]
    known = _stored_count(Device, "machine_id", keys)
    if known == len(keys):  # a routine import: every device is stored (the ids are unique by now)
        return 0
    stored = set(_existing(Device, "machine_id", keys, [])) if known else set()
    del keys
    defaults = {f: Device._meta.get_field(f).get_default() for f in DEVICE_UPDATE_FIELDS}
    staged = 0

    def new_rows():  # one at a time into COPY (not a second list of 100,000 rows)
        nonlocal staged
        for _, values in rows:
            if values["machine_id"] not in stored:
                staged += 1
                row = {**defaults, **values}
                # No group column: a new device goes to UnassignedGroup (as devices_upsert decides).
                row["group_name"] = row.pop("device_group", UNASSIGNED_GROUP_NAME)
                yield row

    with transaction.atomic():  # a transaction of its own (the import's has not begun)
        _copy_rows(
            cursor,
            Device,
            _NEW_DEVICES,
            key="machine_id",
            fields=DEVICE_UPDATE_FIELDS,
            rows=new_rows(),
            extra=("group_name",),
        )
    return staged


def _insert_new_devices(staged: int) -> set[str]:
    """Insert the `staged` devices `new_devices_copied_ahead` copied, in the groups they name; the
    machine ids inserted (a device stored since it was staged is left to the ordinary upsert).

    As many as are stored already or more (a first import): the device table's indexes are built
    after them (bulk.py), and a device stored meanwhile, which the rebuilt unique index refuses,
    sends them all the ordinary way.
    """
    qn = connection.ops.quote_name
    columns = _columns(Device)
    names = ", ".join(qn(f.column) for f in columns)
    picked = ", ".join("g.id" if f.attname == "device_group_id" else f"n.{qn(f.column)}" for f in columns)
    machine_id = qn(Device._meta.get_field("machine_id").column)
    insert = (
        f"INSERT INTO {qn(Device._meta.db_table)} ({names}) SELECT {picked} FROM {_NEW_DEVICES} n"  # noqa: S608 (names)
        f" JOIN {qn(DeviceGroup._meta.db_table)} g ON g.name = n.group_name"
    )
    with connection.cursor() as cursor:
        try:
            with (
                transaction.atomic(),
                indexes_built_after(cursor, Device._meta.db_table, rows=staged, foreign_keys=True) as bulk,
            ):
                if bulk:  # no other writer until this transaction ends (the table's lock)
                    cursor.execute(f"{insert} RETURNING {machine_id}")
                    inserted = {m for (m,) in cursor.fetchall()}
            if bulk:
                return inserted
        except IntegrityError:  # stored since it was staged: the ordinary way below
            pass
        cursor.execute(f"{insert} ON CONFLICT ({machine_id}) DO NOTHING RETURNING {machine_id}")
        return {m for (m,) in cursor.fetchall()}


@transaction.atomic
def recommendations_upsert(
    *,
    records: Iterable,
    source: str = "recommendations",
    problems: Problems | None = None,
    warnings: list[str] | None = None,
    progress=None,
) -> dict[str, int]:
    """Create or update security recommendations by id (Defender's `/api/recommendations` records,
    or the `check_recommendation_records` of them).

    Defender's recommendationCategory / remediationType are mapped onto the model's choices;
    an unknown value falls back to a sensible choice and is reported in `warnings`.
    """
    own = problems is None
    problems = problems if problems is not None else Problems()
    warnings = warnings if warnings is not None else []
    rows = records
    if not isinstance(rows, CheckedRows):
        rows = check_recommendation_records(records=records, source=source, problems=problems, warnings=warnings)
    if own:
        problems.raise_if_any()
    return _upsert(
        SecurityRecommendation,
        key="external_id",
        fields=RECOMMENDATION_UPDATE_FIELDS,
        rows=[v for _, v in rows],
        progress=progress,
    )
