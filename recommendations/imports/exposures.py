"""The exposure shapes Defender publishes, turned into the (recommendation, device) pairs of a snapshot.

- `pairs`: `recommendationId,machineId` records (CSV or JSON); a pair given twice is a problem.
- `software`: rows of `GET /api/machines/SoftwareVulnerabilitiesByMachine` (or its export files): the
  device is `deviceId` (never the row's compound `id`), the recommendation `recommendationReference`;
  the many rows of one device and software (one per CVE, version, path) are one exposure.
- `configuration`: rows of `GET /api/machines/SecureConfigurationsAssessmentByMachine`: an exposure
  only when `isApplicable` is true and `isCompliant` false; every row's recommendation is covered by
  the snapshot, so a device that became compliant is remediated even when no device is left exposed.
- `references`: `GET /api/recommendations/{id}/machineReferences`: each record an exposed device of
  that one recommendation.

Assessment rows and references also name their devices: `ExposureReader.devices` keeps what each
device's first row says about it (bounded by the number of devices, not of rows) for the device
upsert. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

from ..models import Device, SecurityRecommendation
from .normalize import (
    BadValue,
    Row,
    as_bool,
    as_text,
    lookup,
    max_length,
    normalize_device,
    normalize_exposure,
)
from .records import Problems, Record

PAIRS, SOFTWARE, CONFIGURATION, REFERENCES = "pairs", "software", "configuration", "references"
KINDS = (PAIRS, SOFTWARE, CONFIGURATION, REFERENCES)

_CONFIGURATION_KEYS = {"iscompliant", "isapplicable", "configurationid"}
_SOFTWARE_KEYS = {"recommendationreference", "softwarename", "softwarevendor", "cveid"}

# What an assessment row or a machine reference says about its device (normalised key names);
# normalize_device reads them under the row's own spelling.
_DEVICE_KEYS = ("devicename", "computerdnsname", "osplatform", "osversion", "rbacgroupname")


def classify(record: Record | None, *, recommendation_id: str | None = None) -> str:
    """The shape of a file, told by its first record (a file holds one endpoint's answer)."""
    if recommendation_id is not None:
        return REFERENCES
    keys = set(Row(record.data)._normalized) if record is not None else set()
    if keys & _CONFIGURATION_KEYS:
        return CONFIGURATION
    if keys & _SOFTWARE_KEYS:
        return SOFTWARE
    return PAIRS


def peek(records: Iterable) -> tuple[Any, Iterator]:
    """The first item of `records` (or None) and an iterator that still yields every item."""
    iterator = iter(records)
    for first in iterator:
        return first, chain([first], iterator)
    return None, iter(())


class ExposureReader:
    """Reads the exposure records of one snapshot (one file or several) into checked pairs.

    Positions count the records of every file fed, in order (record N of the snapshot). Problems go
    to `problems`; `devices` and `covered` fill up while `pairs()` is consumed.
    """

    def __init__(
        self, *, source: str, problems: Problems, warnings: list[str], known_devices: set[str] | frozenset = frozenset()
    ):
        self.source, self.problems, self.warnings = source, problems, warnings
        self.known_devices = known_devices  # devices upserted already (the pull's machines): not again
        self.offset = 0
        self.kinds: set[str] = set()
        self.devices: dict[str, tuple[int, dict[str, Any]]] = {}  # machine id -> (position, fields)
        self.bad_devices: set[str] = set()
        self.covered: set[str] = set()
        # recommendation id -> (position, recommendations-API fields) from its first exposing row: an
        # export may name a recommendation the portal does not hold yet (`recommendation_records`)
        self.recommendations: dict[str, tuple[int, dict[str, Any]]] = {}
        self.unreferenced = 0  # assessment rows that name no recommendation
        self.rec_max = max_length(SecurityRecommendation, "external_id")
        self.dev_max = max_length(Device, "machine_id")

    @property
    def collapse(self) -> bool:
        """Whether repeated pairs are one exposure (every Defender shape) rather than a problem (`pairs`)."""
        return bool(self.kinds - {PAIRS})

    def pairs(
        self, records: Iterable, *, kind: str, recommendation_id: str | None = None
    ) -> Iterator[tuple[int, int | None, str, str]]:
        """(position, line, recommendation id, machine id) of each exposure of `records`."""
        self.kinds.add(kind)
        current_device, current_recs = None, set()
        last = 0
        for record in records:
            if not isinstance(record, Record):  # checked tuples of the CSV fast path
                position, line, rec, machine = record
                last = position
                yield position + self.offset, line, rec, machine
                continue
            last = record.position
            record = Record(record.position + self.offset, record.line, record.data)
            if kind == PAIRS:
                pair = normalize_exposure(record, source=self.source, problems=self.problems)
            else:
                pair = self._defender_row(record, kind=kind, recommendation_id=recommendation_id)
            if pair is None:
                continue
            # Rows of one device usually come together: drop its repeated pairs here, cheaply; the
            # snapshot collapses whatever repeats are left.
            machine = pair[3]
            if machine != current_device:
                current_device, current_recs = machine, set()
            if kind != PAIRS:
                if pair[2] in current_recs:
                    continue
                current_recs.add(pair[2])
            yield pair
        self.offset += last

    def finish_warnings(self) -> None:
        if self.unreferenced:
            self.warnings.append(
                f"{self.source}: {self.unreferenced} row(s) name no recommendation (recommendationReference is "
                "empty); they expose nothing"
            )

    # --- one Defender row -----------------------------------------------------------------
    def _text(self, record: Record, row: Row, keys: tuple[str, ...], label: str, limit: int) -> str | None:
        _, raw = lookup(row, keys)
        try:
            return as_text(raw, max_length=limit)
        except BadValue as exc:
            self.problems.add(self.source, record.position, f"wrong type for {label!r}: {exc}", record.line)
            return None

    def _defender_row(self, record: Record, *, kind: str, recommendation_id: str | None):
        row = Row(record.data)
        device_keys = ("id",) if kind == REFERENCES else ("deviceid",)
        device_label = "id" if kind == REFERENCES else "deviceId"
        machine = self._text(record, row, device_keys, device_label, self.dev_max)
        if machine is None:
            return None
        if not machine:
            self.problems.add(self.source, record.position, f"missing required field {device_label!r}", record.line)
            return None
        if not self._remember_device(record, row, machine, device_keys[0]):
            return None
        if kind == REFERENCES:
            return record.position, record.line, recommendation_id, machine
        rec = self._text(record, row, ("recommendationreference",), "recommendationReference", self.rec_max)
        if rec is None:
            return None
        if not rec:
            self.unreferenced += 1
            return None
        if kind == CONFIGURATION:
            flags = []
            for key, label in (("isapplicable", "isApplicable"), ("iscompliant", "isCompliant")):
                found, raw = lookup(row, (key,))
                try:
                    value = as_bool(raw)
                except BadValue as exc:
                    self.problems.add(self.source, record.position, f"wrong type for {label!r}: {exc}", record.line)
                    return None
                if value is None:
                    self.problems.add(self.source, record.position, f"missing required field {label!r}", record.line)
                    return None
                flags.append(value)
            applicable, compliant = flags
            if compliant or not applicable:
                self.covered.add(rec)
                return None
        if rec not in self.recommendations:
            self.recommendations[rec] = (record.position, _recommendation_fields(row, rec, kind))
        return record.position, record.line, rec, machine

    def _remember_device(self, record: Record, row: Row, machine: str, id_key: str) -> bool:
        """Keep the device's fields from its first row; False if they are bad (its rows are then skipped)."""
        if machine in self.bad_devices:
            return False
        if machine in self.devices or machine in self.known_devices:
            return True
        fields: dict[str, Any] = {row._keys[id_key]: machine}
        for key in _DEVICE_KEYS:
            present, value = lookup(row, (key,))
            # A null or empty name in an export means "not known here": the device keeps what it has.
            # A null group means no group (UnassignedGroup).
            if present and (key == "rbacgroupname" or value not in (None, "")):
                fields[row._keys[key]] = value
        checked = normalize_device(
            Record(record.position, record.line, fields), source=self.source, problems=self.problems
        )
        if checked is None:
            self.bad_devices.add(machine)
            return False
        self.devices[machine] = (record.position, fields)
        return True

    def recommendation_records(self, external_ids: Iterable[str]) -> Iterator[Record]:
        """`external_ids` (named by exposing rows) as recommendations-API records for `recommendations_upsert`."""
        for external_id in external_ids:
            position, fields = self.recommendations[external_id]
            yield Record(position, None, fields)

    def device_records(self) -> Iterator[Record]:
        """The devices named, as machines-API records for `devices_upsert` (in order of first mention)."""
        for position, fields in self.devices.values():
            yield Record(position, None, fields)


def _recommendation_fields(row: Row, external_id: str, kind: str) -> dict[str, Any]:
    """What an assessment row tells of its recommendation, in the recommendations API's names.

    Enough to hold the recommendation until `/api/recommendations` is imported (which then fills
    in the rest): software rows name the product and vendor (Defender calls `va-_-microsoft-_-edge`
    "Update Microsoft Edge"), configuration rows the configuration's name, category and impact.
    """

    def text(key: str) -> str:
        _, value = lookup(row, (key,))
        return value.strip() if isinstance(value, str) else ""

    if kind == CONFIGURATION:
        fields: dict[str, Any] = {
            "id": external_id,
            "recommendationName": text("configurationname") or external_id,
            "recommendationCategory": text("configurationcategory") or None,
            "subCategory": text("configurationsubcategory") or None,
            "remediationType": "ConfigurationChange",
        }
        _, impact = lookup(row, ("configurationimpact",))
        if isinstance(impact, int | float) and not isinstance(impact, bool):
            fields["configScoreImpact"] = impact
        return fields
    vendor, product = text("softwarevendor"), text("softwarename")
    label = " ".join(part.replace("_", " ").title() for part in (vendor, product) if part)
    return {
        "id": external_id,
        "recommendationName": f"Update {label}" if label else external_id,
        "productName": product or None,
        "vendor": vendor or None,
        "recommendationCategory": "Application",
        "remediationType": "Update",
    }
