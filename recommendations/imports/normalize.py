"""Turning one record into model field values (or a Problem naming the record and why).

Defender's spellings first (`recommendationName`, `rbacGroupName`), with the aliases people
use in CSV and spreadsheet files; every value is type-checked and length-checked against
the model. The services check what needs the database (duplicates, unknown ids) and write.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from portal.text import unstorable_char

from ..models import UNASSIGNED_GROUP_NAME, Device, DeviceGroup, SecurityRecommendation
from .records import Problem, Problems, Record

# --- Field helpers -----------------------------------------------------------------------

_KEY_RE = re.compile(r"[^a-z0-9]")


def normalize_key(key: str) -> str:
    """`recommendationId`, `recommendation_id` and `Recommendation ID` all become `recommendationid`."""
    return _normalized_key(str(key))


@functools.lru_cache(maxsize=4096)  # a file's few column names, a million times over
def _normalized_key(key: str) -> str:
    return _KEY_RE.sub("", key.lower())


class BadValue(Exception):
    """A value that does not fit its field; the message says why."""


class Unstorable(BadValue):
    """Text no database can store (portal.text): a NUL character or a lone surrogate."""


_Bad = BadValue


def value_problem(label: str, exc: BadValue) -> str:
    """The problem line for a bad value of the field the record spells `label`."""
    if isinstance(exc, Unstorable):
        return f"field {label!r} {exc}"
    return f"wrong type for {label!r}: {exc}"


def type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", str: "text", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def lookup(data: dict[str, Any], names: tuple[str, ...]) -> tuple[bool, Any]:
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


class Row(dict):
    """A record's data with normalised keys, for alias lookups."""

    def __init__(self, data: dict[str, Any]):
        super().__init__(data)
        originals, self._keys = _key_maps(tuple(data))  # `_keys` is shared by rows of the same keys: read only
        self._normalized = {name: data[key] for name, key in originals.items()}


@functools.lru_cache(maxsize=256)  # the records of a file share their keys
def _key_maps(keys: tuple) -> tuple[dict[str, Any], dict[str, str]]:
    """{normalised name: the first key with that name} and the same with the keys as text."""
    originals: dict[str, Any] = {}
    for key in keys:
        originals.setdefault(normalize_key(key), key)
    return originals, {name: str(key) for name, key in originals.items()}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_storable(text: str) -> str:
    """`text` unless a database could not store it (portal.text): a NUL character or a lone
    surrogate (JSON's `\\u0000` and `\\ud800` escapes decode to them; PostgreSQL refuses both)."""
    found = unstorable_char(text)
    if found:
        raise Unstorable(f"contains {found}, which cannot be stored")
    return text


def as_text(value: Any, *, max_length: int) -> str:
    if type(value) is str:  # the common case, checked without the general path's conversions
        text = value.strip()
        if not text.isascii() or "\x00" in text:  # ASCII holds no surrogate: only a NUL could not be stored
            check_storable(text)
        if len(text) > max_length:
            raise _Bad(f"longer than {max_length} characters")
        return text
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, dict | list):
        raise _Bad(f"expected text, got {type_name(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = check_storable(str(value).strip())
    if len(text) > max_length:
        raise _Bad(f"longer than {max_length} characters")
    return text


MAX_LIST_ITEMS = 1000
MAX_LIST_ITEM_LENGTH = 255


def as_list(value: Any) -> list[str]:
    """A list of strings (machineTags, associatedThreats, tags): a JSON list, or in a CSV cell a
    JSON array or values separated by commas or semicolons. Null or empty: an empty list."""
    if _blank(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                raise _Bad(f"expected a list, got {value!r}") from None
        else:
            value = [part for part in re.split(r"[;,]", text)]
    if not isinstance(value, list):
        raise _Bad(f"expected a list, got {type_name(value)}")
    if len(value) > MAX_LIST_ITEMS:
        raise _Bad(f"more than {MAX_LIST_ITEMS} items")
    items: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise _Bad(f"expected a list of text, found {type_name(item)}")
        text = as_text(item, max_length=MAX_LIST_ITEM_LENGTH)
        if text and text not in items:
            items.append(text)
    return items


def as_float(value: Any) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad(f"expected a number, got {type_name(value)}")
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
        raise _Bad(f"expected a date and time, got {type_name(value)}")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


@functools.cache
def max_length(model, name: str) -> int:
    return model._meta.get_field(name).max_length


@functools.cache
def _choices(model, name: str) -> tuple[str, ...]:
    return tuple(value for value, _ in model._meta.get_field(name).choices)


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


CONFIGURATION_ID_PREFIXES = ("scid-", "sca-_-scid-")


def is_configuration_id(external_id: str) -> bool:
    """Defender names configuration recommendations `scid-NNN` (configuration ids, older exports) or
    `sca-_-scid-NNN` (the recommendations API, the assessments' recommendationReference); software
    ones `va-_-vendor-_-product`."""
    return external_id.lower().startswith(CONFIGURATION_ID_PREFIXES)


def map_remediation_type(value: Any, *, external_id: str) -> tuple[str, str | None]:
    """(choice, warning): Defender's value mapped onto the model's choices.

    A configuration recommendation (by its id) is a ConfigurationChange whatever remediationType
    says: Defender often sends null for them.
    """
    configuration = is_configuration_id(external_id)
    fallback = RemediationType.CONFIGURATION_CHANGE if configuration else RemediationType.UPDATE
    if _blank(value):
        return fallback, None
    if not isinstance(value, str):
        raise _Bad(f"expected text, got {type_name(value)}")
    choice = REMEDIATION_ALIASES.get(normalize_key(value))
    if configuration and choice != RemediationType.CONFIGURATION_CHANGE:
        return fallback, f"remediationType {value!r} of a configuration recommendation, stored as {fallback.value}"
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
        raise _Bad(f"expected text, got {type_name(value)}")
    choice = CATEGORY_ALIASES.get(normalize_key(value))
    if choice is None:
        return fallback, f"unknown recommendationCategory {value!r}, stored as {fallback.value}"
    return choice, None


def map_choice(value: Any, choices: list[str] | tuple[str, ...], *, field: str) -> tuple[str, str | None]:
    """(value, warning): one of `choices`, matched ignoring case, spaces and dashes.

    Null or empty is "" (Defender has no value now); an unknown value is stored as "" with a warning.
    """
    if _blank(value):
        return "", None
    if not isinstance(value, str):
        raise _Bad(f"expected text, got {type_name(value)}")
    wanted = normalize_key(value)
    for choice in choices:
        if normalize_key(choice) == wanted:
            return choice, None
    return "", f"unknown {field} {value!r}, stored as empty"


# Defender's rbacGroupName for a device in no group (the assessments say "Unassigned", or "None" when
# the organisation has no device groups): the portal's built-in group, never a group of that name.
UNASSIGNED_GROUP_ALIASES = {"unassigned", "none", "null"}


def map_device_group(value: Any) -> str:
    name = as_text(value, max_length=max_length(DeviceGroup, "name"))
    if not name or name.lower() in UNASSIGNED_GROUP_ALIASES:
        return UNASSIGNED_GROUP_NAME
    return name


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
    ("sub_category", ("subcategory",), "text"),
    ("associated_threats", ("associatedthreats",), "list"),
    ("tags", ("tags", "recommendationtags"), "list"),
]
RECOMMENDATION_CATEGORY_KEYS = ("recommendationcategory", "category")
RECOMMENDATION_TYPE_KEYS = ("remediationtype",)
RECOMMENDATION_REQUIRED = {"external_id": "id", "name": "recommendationName"}

# The assessment exports name the device `deviceId` beside a compound row `id`: deviceId comes first.
DEVICE_FIELDS = [
    ("machine_id", ("deviceid", "id", "machineid"), "text"),
    ("computer_dns_name", ("computerdnsname", "devicename"), "text"),
    ("os_platform", ("osplatform",), "text"),
    # The machines API says `version` (and often `osVersion: null`); the exports say `osVersion`.
    ("os_version", ("osversion", "version"), "text"),
    ("aad_device_id", ("aaddeviceid",), "text"),
    ("first_seen", ("firstseen",), "datetime"),
    ("last_seen", ("lastseen",), "datetime"),
    ("health_status", ("healthstatus",), "choice"),
    ("risk_score", ("riskscore",), "choice"),
    ("exposure_level", ("exposurelevel",), "choice"),
    ("machine_tags", ("machinetags",), "list"),
    ("last_ip_address", ("lastipaddress",), "text"),
]
# Fields whose names are alternatives of equal standing: the first one with a value wins. Elsewhere the
# first name present wins, even when null (an export row's null deviceId never falls back to its `id`).
FIRST_FILLED_FIELDS = {"os_version"}
DEVICE_GROUP_KEYS = ("rbacgroupname", "devicegroup", "devicegroupname")
DEVICE_REQUIRED = {"machine_id": "id"}

EXPOSURE_RECOMMENDATION_KEYS = ("recommendationid", "recommendation", "externalid", "recommendationreference")
EXPOSURE_DEVICE_KEYS = ("machineid", "device", "deviceid")

_CONVERTERS = {"float": as_float, "int": as_int, "bool": as_bool, "datetime": as_datetime, "list": as_list}


class _Planned:
    """A `Row` look-alike for the look-ups after `_fields`: the record's data and its cached key maps."""

    def __init__(self, data: dict[str, Any], originals: dict[str, Any], keys: dict[str, str]):
        self._data, self._originals, self._keys = data, originals, keys

    @property
    def _normalized(self) -> dict[str, Any]:
        return {name: self._data[key] for name, key in self._originals.items()}


def lookup_planned(row: _Planned | Row, names: tuple[str, ...]) -> tuple[bool, Any]:
    """`lookup` for what `_fields` returns."""
    if isinstance(row, _Planned):
        for name in names:
            if name in row._originals:
                return True, row._data[row._originals[name]]
        return False, None
    return lookup(row, names)


_PLANS: dict[tuple, tuple] = {}
# The plan of the last set of keys met (a file's records share them): found by comparing the keys,
# without hashing them for each record.
_LAST_PLAN: tuple = (None, None)


def _plan(model, spec, required: dict[str, str], keys: tuple) -> tuple:
    """For records with these keys: (originals, labels, steps). `originals` and `labels` are their
    key maps (`_key_maps`); each step is (field, kind, candidate keys in the order of its names,
    label, required label, text length limit, choices, first filled) for a field the records may
    fill or must: a field neither named nor required is left out."""
    global _LAST_PLAN
    cache_key = (model, spec, required, keys)
    last_key, plan = _LAST_PLAN
    if last_key == cache_key:
        return plan
    plan = _PLANS.get((model, id(spec), id(required), keys))
    if plan is None:
        originals, labels = _key_maps(keys)
        steps = []
        for field_name, names, kind in spec:
            candidates = tuple(originals[name] for name in names if name in originals)
            if not candidates and field_name not in required:
                continue
            label = next((labels[name] for name in names if name in labels), names[0])
            limit = max_length(model, field_name) if kind == "text" else None
            choices = _choices(model, field_name) if kind == "choice" else None
            first_filled = field_name in FIRST_FILLED_FIELDS and len(candidates) > 1
            steps.append((field_name, kind, candidates, label, required.get(field_name), limit, choices, first_filled))
        plan = (originals, labels, tuple(steps))
        if len(_PLANS) > 256:
            _PLANS.clear()
        _PLANS[(model, id(spec), id(required), keys)] = plan
    _LAST_PLAN = (cache_key, plan)
    return plan


def _fields(model, record: Record, spec, required: dict[str, str], source: str, problems: Problems, warnings=None):
    """(row, values, bad): `values` by model field of what `record` holds under the names of `spec`.

    The keys' normalisation and each field's candidate keys are worked out once per set of keys
    (a file's records share them), then each record is a few dictionary reads.
    """
    data = record.data
    originals, labels, steps = _plan(model, spec, required, tuple(data))
    values: dict[str, Any] = {}
    bad = False
    for field_name, kind, candidates, label, required_label, limit, choices, first_filled in steps:
        if candidates:
            raw = data[candidates[0]]
            if first_filled and _blank(raw):
                raw = next((data[c] for c in candidates[1:] if not _blank(data[c])), raw)
        else:
            raw = None
        if required_label is not None and _blank(raw):
            problems.add(source, record.position, f"missing required field {required_label!r}", record.line)
            bad = True
            continue
        if not candidates:
            continue
        try:
            if kind == "text":
                value = as_text(raw, max_length=limit)
            elif kind == "choice":
                value, warning = map_choice(raw, choices, field=label)
                if warning and warnings is not None:
                    warnings.append(str(Problem(source, record.position, warning, record.line)))
            else:
                value = _CONVERTERS[kind](raw)
        except _Bad as exc:
            problems.add(source, record.position, value_problem(label, exc), record.line)
            bad = True
            continue
        if value is not None:
            values[field_name] = value
    return _Planned(data, originals, labels), values, bad


def normalize_recommendation(
    record: Record, *, source: str, problems: Problems, warnings: list[str]
) -> dict[str, Any] | None:
    row, values, bad = _fields(
        SecurityRecommendation, record, RECOMMENDATION_FIELDS, RECOMMENDATION_REQUIRED, source, problems, warnings
    )
    external_id = values.get("external_id", "")
    try:
        found, raw = lookup_planned(row, RECOMMENDATION_TYPE_KEYS)
        remediation_type, warning = map_remediation_type(raw, external_id=external_id)
        if warning and found:
            warnings.append(str(Problem(source, record.position, warning, record.line)))
        values["remediation_type"] = remediation_type
    except _Bad as exc:
        problems.add(source, record.position, value_problem("remediationType", exc), record.line)
        bad = True
    try:
        _, raw = lookup_planned(row, RECOMMENDATION_CATEGORY_KEYS)
        category, warning = map_category(raw, remediation_type=values.get("remediation_type", ""))
        if warning:
            warnings.append(str(Problem(source, record.position, warning, record.line)))
        values["category"] = category
    except _Bad as exc:
        problems.add(source, record.position, value_problem("recommendationCategory", exc), record.line)
        bad = True
    return None if bad else values


def normalize_device(
    record: Record, *, source: str, problems: Problems, warnings: list[str] | None = None
) -> dict[str, Any] | None:
    row, values, bad = _fields(Device, record, DEVICE_FIELDS, DEVICE_REQUIRED, source, problems, warnings)
    found, raw = lookup_planned(row, DEVICE_GROUP_KEYS)
    try:
        group = map_device_group(raw)
    except _Bad as exc:
        problems.add(source, record.position, value_problem("rbacGroupName", exc), record.line)
        return None
    if found:  # present but empty, null, "Unassigned" or "None": the device belongs to no group
        values["device_group"] = group
    # absent: an existing device keeps its group, a new one goes to UnassignedGroup (service)
    return None if bad else values


def normalize_device_group(record: Record, *, source: str, problems: Problems) -> dict[str, Any] | None:
    row = Row(record.data)
    _, name = lookup(row, ("name", "rbacgroupname", "devicegroup"))
    _, description = lookup(row, ("description",))
    if _blank(name):
        problems.add(source, record.position, "missing required field 'name'", record.line)
        return None
    try:
        values = {"name": as_text(name, max_length=max_length(DeviceGroup, "name"))}
        if description is not None:
            values["description"] = as_text(description, max_length=100_000)
    except _Bad as exc:
        problems.add(source, record.position, f"wrong type: {exc}", record.line)
        return None
    return values


def normalize_exposure(record: Record, *, source: str, problems: Problems) -> tuple[int, int | None, str, str] | None:
    """(position, line, recommendation external id, machine id), or None with a Problem added."""
    row = Row(record.data)
    _, rec = lookup(row, EXPOSURE_RECOMMENDATION_KEYS)
    _, machine = lookup(row, EXPOSURE_DEVICE_KEYS)
    bad = False
    for raw, name in ((rec, "recommendationId"), (machine, "machineId")):
        if _blank(raw):
            problems.add(source, record.position, f"missing required field {name!r}", record.line)
            bad = True
    if bad:
        return None
    values = []
    for raw, name, limit in (
        (rec, "recommendationId", max_length(SecurityRecommendation, "external_id")),
        (machine, "machineId", max_length(Device, "machine_id")),
    ):
        try:
            values.append(as_text(raw, max_length=limit))
        except _Bad as exc:
            problems.add(source, record.position, value_problem(name, exc), record.line)
    if len(values) != 2:
        return None
    return record.position, record.line, values[0], values[1]
