"""django-import-export resources of the inventory: they only *read* rows.

Their import runs the inventory services (`inventory_import_records`), so an admin import
obeys every rule of `manage.py import_tvm`: all or nothing, every bad row listed with its
line, exposures as a snapshot. The preview is a dry run of the service in a transaction that
is rolled back; large files are checked and imported by a background job instead.
Nothing else in the app imports this module.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from import_export import fields, resources, widgets
from import_export.results import Result, RowResult

from portal.text import shown

from ..models import Device, DeviceGroup, Exposure, SecurityRecommendation
from ..services import RECOMMENDATION_UPDATE_FIELDS, background_rows, inventory_import_records
from . import normalize
from .formats import dataset_to_records
from .records import ImportRejected, Problems, Record

PREVIEW_ROWS = 200


class InventoryResource(resources.ModelResource):
    """Parses rows; `import_data_inner` hands them to the inventory service (all or nothing)."""

    kind = ""
    key_column = ""

    def import_data_inner(self, dataset, dry_run, raise_errors, using_transactions, collect_failed_rows, **kwargs):
        result = self.get_result_class()()
        result.diff_headers = list(dataset.headers or [])
        result.total_rows = len(dataset)
        records, problems = self.records(dataset)
        # Which previewed rows exist already, read before the (dry-run) import writes them: a new
        # row is labelled "New", not "Update".
        existing = self.existing_keys(records[:PREVIEW_ROWS]) if not problems else set()
        source = kwargs.get("file_name") or self.kind
        if dry_run and len(dataset) > background_rows():
            # Large file: the preview shows the first rows and the malformed ones; every rule is
            # checked by the background job, which imports nothing if any row is bad.
            if problems:
                self.add_problems(result, problems, dataset)
            else:
                result.deferred = True
                self.add_rows(result, dataset, records, existing=existing)
            return result
        try:
            # With the importing user's scope (the admin passes request.user): their groups only.
            summary = inventory_import_records(
                kind=self.kind, records=records, source=source, problems=problems, user=kwargs.get("user")
            )
        except ImportRejected as exc:
            self.add_problems(result, exc.problems, dataset)
            return result
        result.inventory_summary = summary
        self.add_rows(result, dataset, records, existing=existing)
        return result

    def records(self, dataset) -> tuple[list[Record], Problems]:
        return dataset_to_records(dataset)

    def add_problems(self, result: Result, problems: Problems, dataset) -> None:
        # In the file's order (line, else record position), whatever order the checks found them in.
        for problem in sorted(problems.items, key=lambda p: p.line or p.position or 0):
            row = {}
            if problem.position and problem.position <= len(dataset):
                # As shown on the page: a NUL or a lone surrogate could not even be sent to the browser.
                values = (shown(v) for v in dataset[problem.position - 1])
                row = dict(zip(map(shown, dataset.headers), values, strict=False))
            where = (
                f"line {problem.line}"
                if problem.line
                else (f"record {problem.position}" if problem.position else "file")
            )
            result.append_invalid_row(
                problem.line or problem.position or 0, row, DjangoValidationError(f"{where}: {problem.message}")
            )
        if problems.count > len(problems.items):
            result.append_invalid_row(
                0, {}, DjangoValidationError(f"... and {problems.count - len(problems.items)} more problems")
            )

    def existing_keys(self, records: list[Record]) -> set:
        return set()

    def add_rows(self, result: Result, dataset, records: list[Record], *, existing: set) -> None:
        """Row results for the preview (the first PREVIEW_ROWS rows) and the totals."""
        summary = getattr(result, "inventory_summary", None)
        if summary is not None:
            part = next(v for k, v in summary.items() if isinstance(v, dict))
            result.totals[RowResult.IMPORT_TYPE_NEW] = part.get("created", 0)
            result.totals[RowResult.IMPORT_TYPE_UPDATE] = part.get("updated", 0)
            result.totals[RowResult.IMPORT_TYPE_SKIP] = part.get("unchanged", 0)
        shown = records[:PREVIEW_ROWS]
        for record in shown:
            row_result = self.get_row_result_class()()
            key = self.row_key(record)
            row_result.import_type = RowResult.IMPORT_TYPE_UPDATE if key in existing else RowResult.IMPORT_TYPE_NEW
            row_result.diff = [
                "" if record.data.get(h) is None else str(record.data.get(h)) for h in result.diff_headers
            ]
            row_result.object_repr = str(key)
            result.append_row_result(row_result)

    def row_key(self, record: Record):
        row = normalize.Row(record.data)
        return normalize.lookup(row, self.key_aliases)[1]


class DeviceGroupResource(InventoryResource):
    kind = "device_groups"
    key_aliases = ("name",)

    class Meta:
        model = DeviceGroup
        fields = ("name", "description")
        import_id_fields = ("name",)

    def existing_keys(self, records):
        names = [self.row_key(r) for r in records]
        return set(DeviceGroup.objects.filter(name__in=names).values_list("name", flat=True))


class DeviceResource(InventoryResource):
    kind = "devices"
    key_aliases = ("id", "machineid", "deviceid")
    device_group = fields.Field(
        attribute="device_group", column_name="device_group", widget=widgets.ForeignKeyWidget(DeviceGroup, "name")
    )

    class Meta:
        model = Device
        fields = (
            "machine_id",
            "computer_dns_name",
            "os_platform",
            "os_version",
            "device_group",
            "aad_device_id",
            "first_seen",
            "last_seen",
            "health_status",
            "risk_score",
            "exposure_level",
            "machine_tags",
            "last_ip_address",
        )
        import_id_fields = ("machine_id",)

    def existing_keys(self, records):
        keys = [str(self.row_key(r)) for r in records]
        return set(Device.objects.filter(machine_id__in=keys).values_list("machine_id", flat=True))


class SecurityRecommendationResource(InventoryResource):
    kind = "recommendations"
    key_aliases = ("id", "externalid")

    class Meta:
        model = SecurityRecommendation
        fields = ("external_id", *RECOMMENDATION_UPDATE_FIELDS, "exposed_devices")
        import_id_fields = ("external_id",)

    def existing_keys(self, records):
        keys = [str(self.row_key(r)) for r in records]
        return set(SecurityRecommendation.objects.filter(external_id__in=keys).values_list("external_id", flat=True))

    def dehydrate_exposed_devices(self, recommendation) -> int:
        """Exported as the admin lists it: the devices of the exporting user's groups (the admin's
        queryset annotates `scoped_exposed`), never the organisation's total for a scoped user."""
        return recommendation.scoped_exposed


class ExposureResource(InventoryResource):
    """Exposures: a snapshot of `recommendationId, machineId` pairs for the recommendations it names."""

    kind = "exposures"
    key_aliases = normalize.EXPOSURE_RECOMMENDATION_KEYS
    recommendation_id = fields.Field(attribute="recommendation__external_id", column_name="recommendationId")
    machine_id = fields.Field(attribute="device__machine_id", column_name="machineId")
    # When the source last reported it (a full snapshot stores that once, on the recommendation).
    last_seen = fields.Field(
        attribute="last_reported", column_name="last_seen", widget=widgets.DateTimeWidget(), readonly=True
    )

    class Meta:
        model = Exposure
        fields = ("recommendation_id", "machine_id", "first_seen", "last_seen", "remediated_at")
        import_id_fields = ()

    def _check_import_id_fields(self, headers):
        return None

    def filter_export(self, queryset, **kwargs):
        # `last_seen` reads the recommendation and the id columns the device: no query per row.
        return super().filter_export(queryset, **kwargs).select_related("recommendation", "device")

    def row_key(self, record):
        row = normalize.Row(record.data)
        return (
            normalize.lookup(row, normalize.EXPOSURE_RECOMMENDATION_KEYS)[1],
            normalize.lookup(row, normalize.EXPOSURE_DEVICE_KEYS)[1],
        )

    def existing_keys(self, records):
        keys = {self.row_key(r) for r in records}
        found = Exposure.objects.filter(
            recommendation__external_id__in={k[0] for k in keys}, device__machine_id__in={k[1] for k in keys}
        ).values_list("recommendation__external_id", "device__machine_id")
        return set(found) & keys


def resource_for_kind(kind: str) -> type[InventoryResource]:
    return {
        "device_groups": DeviceGroupResource,
        "devices": DeviceResource,
        "recommendations": SecurityRecommendationResource,
        "exposures": ExposureResource,
    }[kind]
