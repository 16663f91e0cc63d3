"""django-import-export glue for the inventory: file formats, resources and the admin mixin.

The resources only *read* files: their import runs the inventory services
(`inventory_import_records`), so an admin import obeys every rule of `manage.py import_tvm`:
all or nothing, every bad row listed with its line, exposures as a snapshot. The preview is a
dry run of the service in a transaction that is rolled back; the confirmation imports at once
for small files and in a Celery task (an `ImportJob` with a progress page) for large ones.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import tablib
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.base import ContentFile
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from import_export import fields, resources, widgets
from import_export.admin import ImportExportMixin
from import_export.formats import base_formats
from import_export.forms import ImportForm
from import_export.results import Result, RowResult
from import_export.tmp_storages import CacheStorage, TempFolderStorage

from . import importers
from .models import Device, DeviceGroup, Exposure, ImportJob, SecurityRecommendation
from .services import RECOMMENDATION_UPDATE_FIELDS

PREVIEW_ROWS = 200
# Confirmed imports with more rows than this run in a Celery task (ImportJob page shows progress).
BACKGROUND_ROWS = getattr(settings, "IMPORT_BACKGROUND_ROWS", 5000)
# An XLSX is a zip: refuse one that would inflate beyond this (zip bombs).
XLSX_MAX_INFLATED_BYTES = getattr(settings, "IMPORT_XLSX_MAX_INFLATED_BYTES", 20 * 50 * 1024 * 1024)


class UnreadableFile(ValueError):
    """The file cannot be read; the message says why (shown as is on the import form)."""


# --- Formats -------------------------------------------------------------------------------


class InventoryCSV(base_formats.CSV):
    """CSV that keeps malformed rows (wrong column count) to report them with their line."""

    def create_dataset(self, in_stream):
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


class InventoryJSON(base_formats.JSON):
    """A JSON array of objects, or a Defender API response `{"value": [...]}`."""

    def create_dataset(self, in_stream):
        if isinstance(in_stream, bytes):
            in_stream = in_stream.decode("utf-8-sig")
        try:
            payload = json.loads(in_stream)
        except json.JSONDecodeError as exc:
            raise UnreadableFile(f"Not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}.") from None
        problems = importers.Problems()
        records = importers.json_payload_records(payload, source="file", problems=problems)
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
        total = len(payload["value"] if isinstance(payload, dict) else payload)
        for position in range(1, total + 1):
            data = by_position.get(position, {})
            dataset.append([data.get(h) for h in headers])
        return dataset


class InventoryXLSX(base_formats.XLSX):
    """XLSX read by openpyxl with defusedxml (no entity expansion) and a bound on the inflated size."""

    def create_dataset(self, in_stream):
        import openpyxl

        if not getattr(openpyxl, "DEFUSEDXML", False):
            raise UnreadableFile("XLSX import is disabled: defusedxml is not active for openpyxl.")
        try:
            with zipfile.ZipFile(io.BytesIO(in_stream)) as archive:
                inflated = sum(info.file_size for info in archive.infolist())
        except zipfile.BadZipFile:
            raise UnreadableFile("Not an XLSX file (not a zip archive).") from None
        if inflated > XLSX_MAX_INFLATED_BYTES:
            raise UnreadableFile(
                f"The XLSX file inflates to {inflated // (1024 * 1024)} MB; the limit is "
                f"{XLSX_MAX_INFLATED_BYTES // (1024 * 1024)} MB."
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


# --- Resources -----------------------------------------------------------------------------


class InventoryResource(resources.ModelResource):
    """Parses rows; `import_data_inner` hands them to the inventory service (all or nothing)."""

    kind = ""
    key_column = ""

    def import_data_inner(self, dataset, dry_run, raise_errors, using_transactions, collect_failed_rows, **kwargs):
        from .services import inventory_import_records

        result = self.get_result_class()()
        result.diff_headers = list(dataset.headers or [])
        result.total_rows = len(dataset)
        records, problems = self.records(dataset)
        source = kwargs.get("file_name") or self.kind
        if dry_run and len(dataset) > BACKGROUND_ROWS:
            # Large file: the preview shows the first rows and the malformed ones; every rule is
            # checked by the background job, which imports nothing if any row is bad.
            if problems:
                self.add_problems(result, problems, dataset)
            else:
                result.deferred = True
                self.add_rows(result, dataset, records)
            return result
        try:
            summary = inventory_import_records(kind=self.kind, records=records, source=source, problems=problems)
        except importers.ImportRejected as exc:
            self.add_problems(result, exc.problems, dataset)
            return result
        result.inventory_summary = summary
        self.add_rows(result, dataset, records)
        return result

    def records(self, dataset) -> tuple[list[importers.Record], importers.Problems]:
        malformed = getattr(dataset, "malformed", {})
        lines = getattr(dataset, "lines", {})
        problems = importers.Problems()
        records = []
        for record in importers.dataset_records(dataset, line_offset=getattr(dataset, "line_offset", 1)):
            line = lines.get(record.position, record.line)
            if record.position in malformed:
                problems.add("file", record.position, malformed[record.position], line)
                continue
            records.append(importers.Record(record.position, line, record.data))
        return records, problems

    def add_problems(self, result: Result, problems: importers.Problems, dataset) -> None:
        for problem in problems.items:
            row = {}
            if problem.position and problem.position <= len(dataset):
                row = dict(zip(dataset.headers, dataset[problem.position - 1], strict=False))
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

    def existing_keys(self, records: list[importers.Record]) -> set:
        return set()

    def add_rows(self, result: Result, dataset, records: list[importers.Record]) -> None:
        """Row results for the preview (the first PREVIEW_ROWS rows) and the totals."""
        summary = getattr(result, "inventory_summary", None)
        if summary is not None:
            part = next(v for k, v in summary.items() if isinstance(v, dict))
            result.totals[RowResult.IMPORT_TYPE_NEW] = part.get("created", 0)
            result.totals[RowResult.IMPORT_TYPE_UPDATE] = part.get("updated", 0)
            result.totals[RowResult.IMPORT_TYPE_SKIP] = part.get("unchanged", 0)
        shown = records[:PREVIEW_ROWS]
        existing = self.existing_keys(shown)
        for record in shown:
            row_result = self.get_row_result_class()()
            key = self.row_key(record)
            row_result.import_type = RowResult.IMPORT_TYPE_UPDATE if key in existing else RowResult.IMPORT_TYPE_NEW
            row_result.diff = [
                "" if record.data.get(h) is None else str(record.data.get(h)) for h in result.diff_headers
            ]
            row_result.object_repr = str(key)
            result.append_row_result(row_result)

    def row_key(self, record: importers.Record):
        row = importers._Row(record.data)
        return importers._lookup(row, self.key_aliases)[1]


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
        fields = ("machine_id", "computer_dns_name", "os_platform", "device_group", "aad_device_id", "last_seen")
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


class ExposureResource(InventoryResource):
    """Exposures: a snapshot of `recommendationId, machineId` pairs for the recommendations it names."""

    kind = "exposures"
    key_aliases = importers.EXPOSURE_RECOMMENDATION_KEYS
    recommendation_id = fields.Field(attribute="recommendation__external_id", column_name="recommendationId")
    machine_id = fields.Field(attribute="device__machine_id", column_name="machineId")

    class Meta:
        model = Exposure
        fields = ("recommendation_id", "machine_id", "first_seen", "last_seen", "remediated_at")
        import_id_fields = ()

    def _check_import_id_fields(self, headers):
        return None

    def row_key(self, record):
        row = importers._Row(record.data)
        return (
            importers._lookup(row, importers.EXPOSURE_RECOMMENDATION_KEYS)[1],
            importers._lookup(row, importers.EXPOSURE_DEVICE_KEYS)[1],
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


# --- Admin ----------------------------------------------------------------------------------


class SizeLimitedImportForm(ImportForm):
    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise DjangoValidationError(
                f"The file is {upload.size / (1024 * 1024):.1f} MB; imports are limited to "
                f"{limit / (1024 * 1024):.0f} MB (IMPORT_MAX_UPLOAD_BYTES)."
            )
        return upload


class InventoryImportExportMixin(ImportExportMixin):
    """Import/export on an inventory admin; imports go through the inventory services."""

    import_form_class = SizeLimitedImportForm
    formats = INVENTORY_FORMATS
    skip_admin_log = True

    def get_tmp_storage_class(self):
        # The confirmation may reach another web process or host than the preview: with Redis
        # configured, keep the upload in the shared cache; otherwise in the local temp folder.
        if getattr(settings, "REDIS_URL", ""):
            return CacheStorage
        return TempFolderStorage

    def has_import_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}") and request.user.has_perm(
            f"{opts.app_label}.change_{opts.model_name}"
        )

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        result = getattr(response, "context_data", {}).get("result")
        if getattr(result, "deferred", False):
            messages.info(
                request,
                f"This file has {result.total_rows} rows: below are the first {min(PREVIEW_ROWS, result.total_rows)}. "
                "On confirmation it is checked and imported in the background; if any row is bad nothing is "
                "imported and the job page lists every problem.",
            )
        return response

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, UnreadableFile):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def add_success_message(self, result, request):
        from .services import import_summary_line

        summary = getattr(result, "inventory_summary", None)
        if summary is None:
            return super().add_success_message(result, request)
        messages.success(request, "Import finished: " + import_summary_line(summary) + ".")
        for warning in summary.get("warnings", [])[:20]:
            messages.warning(request, warning)

    def process_dataset(self, dataset, form, request, **kwargs):
        if len(dataset) > BACKGROUND_ROWS:
            return self._queue_job(dataset, form, request)
        return super().process_dataset(dataset, form, request, **kwargs)

    def _queue_job(self, dataset, form, request):
        from .services import import_job_create

        resource = self.choose_import_resource_class(form, request)
        fmt = self.get_import_formats()[int(form.cleaned_data["format"])]
        name = form.cleaned_data.get("original_file_name") or f"import.{fmt().get_extension()}"
        # Keep the exact upload for the worker: re-read it from the temporary storage.
        storage = self.get_tmp_storage_class()(
            name=form.cleaned_data["import_file_name"],
            encoding=None,
            read_mode="rb",
            **self.get_tmp_storage_class_kwargs(),
        )
        content = storage.read()
        job = import_job_create(
            kind=resource.kind,
            file=ContentFile(content, name=name),
            original_name=name,
            total=len(dataset),
            user=request.user,
        )
        result = Result()
        result.import_job = job
        return result

    def process_result(self, result, request):
        job = getattr(result, "import_job", None)
        if job is not None:
            messages.info(request, f"The import runs in the background: {job.original_name}.")
            return HttpResponseRedirect(reverse("admin:recommendations_importjob_change", args=[job.pk]))
        if result.has_validation_errors():
            # The data changed between the preview and the confirmation: nothing was imported.
            for row in result.invalid_rows[:50]:
                messages.error(request, "; ".join(row.error.messages))
            messages.error(request, "Nothing was imported.")
            return HttpResponseRedirect(reverse("admin:{}_{}_import".format(*self.get_model_info())))
        return super().process_result(result, request)


class ImportJobAdmin(admin.ModelAdmin):
    """Background imports: status, progress and summary (the page refreshes while it runs)."""

    list_display = ["__str__", "original_name", "status", "progress", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [
        "kind",
        "original_name",
        "status",
        "progress",
        "result_line",
        "problems",
        "created_by",
        "created_at",
        "finished_at",
    ]
    fields = readonly_fields
    change_form_template = "admin/recommendations/importjob/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Progress")
    def progress(self, obj):
        from .services import import_job_progress

        done, total = import_job_progress(job=obj)
        percent = int(done * 100 / total) if total else (100 if obj.status == ImportJob.Status.SUCCEEDED else 0)
        return format_html(
            '<progress max="100" value="{}"></progress> {}% ({} of {} rows)', percent, percent, done, total
        )

    @admin.display(description="Result")
    def result_line(self, obj):
        from .services import import_summary_line

        if obj.status != ImportJob.Status.SUCCEEDED or not obj.summary:
            return "—"
        return import_summary_line(obj.summary)

    @admin.display(description="Problems (nothing was imported)")
    def problems(self, obj):
        if not obj.errors:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((e,) for e in obj.errors)))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise PermissionDenied
        running = obj.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
        extra_context = {**(extra_context or {}), "refresh_seconds": 3 if running else None}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)
