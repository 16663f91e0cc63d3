"""Import and export on the inventory admins (django-import-export), and the background import jobs' pages."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.base import ContentFile
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils import formats
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin
from import_export.forms import ImportForm
from import_export.results import Result
from import_export.tmp_storages import CacheStorage, TempFolderStorage

from portal import permissions as perm
from portal.formatting import grouped

from ..imports.formats import INVENTORY_FORMATS, UnreadableFile, dump_parsed
from ..imports.resources import PREVIEW_ROWS
from ..models import ImportJob
from ..selectors import user_sees_all_device_groups
from ..services import background_rows, import_job_create, import_job_progress

logger = logging.getLogger(__name__)


def summary_text(summary: dict) -> str:
    """import_summary_line (the commands' last line, numbers as it writes them) in the reader's language."""
    return _(
        "created %(created)s, updated %(updated)s, remediated %(remediated)s, re-exposed %(re_exposed)s, "
        "rejected %(rejected)s"
    ) % {key: summary.get(key, 0) for key in ("created", "updated", "remediated", "re_exposed", "rejected")}


class SizeLimitedImportForm(ImportForm):
    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise DjangoValidationError(
                _("The file is %(size)s MB; imports are limited to %(limit)s MB (IMPORT_MAX_UPLOAD_BYTES).")
                % {
                    "size": formats.number_format(upload.size / (1024 * 1024), 1),
                    "limit": formats.number_format(limit / (1024 * 1024), 0),
                }
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
        if settings.REDIS_URL:
            return CacheStorage
        return TempFolderStorage

    def write_to_tmp_storage(self, import_file, input_format):
        """Keep the *parsed* file for the preview, the confirmation and the background job: it is
        parsed once, here (a file that cannot be read is kept as uploaded, so that the preview
        reports why, as before)."""
        data = b"".join(import_file.chunks())
        try:
            data = dump_parsed(input_format.create_dataset(data))
        except Exception as exc:  # the preview reads the upload again and says why it cannot
            logger.info("Import file %r kept as uploaded: %s", import_file.name, type(exc).__name__)
        storage = self.get_tmp_storage_class()(
            encoding=None if input_format.is_binary() else self.from_encoding,
            read_mode=input_format.get_read_mode(),
            **self.get_tmp_storage_class_kwargs(),
        )
        storage.save(data)
        return storage

    def has_import_permission(self, request):
        opts = self.opts
        return request.user.has_perm(perm.model_perm(opts, "add")) and request.user.has_perm(
            perm.model_perm(opts, "change")
        )

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        result = getattr(response, "context_data", {}).get("result")
        if getattr(result, "deferred", False):
            messages.info(
                request,
                _(
                    "This file has %(rows)s rows: below are the first %(shown)s. On confirmation it is checked "
                    "and imported in the background; if any row is bad nothing is imported and the job page "
                    "lists every problem."
                )
                % {"rows": grouped(result.total_rows), "shown": grouped(min(PREVIEW_ROWS, result.total_rows))},
            )
        return response

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, UnreadableFile):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def add_success_message(self, result, request):
        summary = getattr(result, "inventory_summary", None)
        if summary is None:
            return super().add_success_message(result, request)
        messages.success(request, _("Import finished: %(summary)s.") % {"summary": summary_text(summary)})
        for warning in summary.get("warnings", [])[:20]:
            messages.warning(request, warning)

    def process_dataset(self, dataset, form, request, **kwargs):
        if len(dataset) > background_rows():
            return self._queue_job(dataset, form, request)
        return super().process_dataset(dataset, form, request, **kwargs)

    def _queue_job(self, dataset, form, request):
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
            messages.info(request, _("The import runs in the background: %(name)s.") % {"name": job.original_name})
            return HttpResponseRedirect(reverse("admin:recommendations_importjob_change", args=[job.pk]))
        if result.has_validation_errors():
            # The data changed between the preview and the confirmation: nothing was imported.
            for row in result.invalid_rows[:50]:
                messages.error(request, "; ".join(row.error.messages))
            messages.error(request, _("Nothing was imported."))
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

    def get_queryset(self, request):
        # A job's problems name devices and groups: scoped users see only the jobs they started.
        qs = super().get_queryset(request).select_related("created_by")
        if user_sees_all_device_groups(request.user):
            return qs
        return qs.filter(created_by=request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("Progress"))
    def progress(self, obj):
        done, total = import_job_progress(job=obj)
        percent = int(done * 100 / total) if total else (100 if obj.status == ImportJob.Status.SUCCEEDED else 0)
        return format_html(
            '<progress max="100" value="{}"></progress> {}',
            percent,
            _("%(percent)s%% (%(done)s of %(total)s rows)")
            % {"percent": percent, "done": grouped(done), "total": grouped(total)},
        )

    @admin.display(description=_("Result"))
    def result_line(self, obj):
        if obj.status != ImportJob.Status.SUCCEEDED or not obj.summary:
            return "—"
        return summary_text(obj.summary)

    @admin.display(description=_("Problems (nothing was imported)"))
    def problems(self, obj):
        if not obj.errors:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((e,) for e in obj.errors)))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_permission(request):  # the permission before the lookup
            raise PermissionDenied
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(_("No such import job."))
        running = obj.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
        extra_context = {**(extra_context or {}), "refresh_seconds": 3 if running else None}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)
