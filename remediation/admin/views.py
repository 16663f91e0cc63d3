"""The admin's custom pages: the request form, the activity page and its actions.

Thin callers: they parse input, call remediation.services, and turn domain errors into form
errors, messages or HTTP statuses. Every read goes through the selectors, so device-group
scoping is applied here exactly as in the API.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from portal import permissions as perm
from portal.csv import csv_language
from portal.errors import ApplicationError, ConflictError, PermissionError_, ValidationError, add_to_form
from portal.formatting import grouped
from recommendations.models import SecurityRecommendation
from recommendations.selectors import device_group_list, user_sees_all_device_groups

from ..exports import activity_devices_csv_response
from ..forms import RemediationRequestForm
from ..hooks import integration
from ..models import ActivityDevice, RemediationActivity
from ..rules import remediation_steps
from ..selectors import activity_device_list, activity_event_list, activity_get
from ..services import activity_create
from .dashboard import activity_chart
from .decisions import can_decide

DEVICES_PER_PAGE = 50


def wants_bom(request) -> bool:
    """Admin downloads start with a UTF-8 BOM (Excel on Windows then reads Swedish letters right)
    unless `bom=0` asks for a plain file, e.g. for a script."""
    value = request.GET.get("bom", request.POST.get("bom", "1"))
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass
class DevicePage:
    """One page of an activity's devices, by keyset: (device_name, id) after the last row shown."""

    object_list: list
    start: int  # the 1-based position of the first row
    next_cursor: str | None

    def __iter__(self):
        return iter(self.object_list)

    @property
    def end(self) -> int:
        return self.start + len(self.object_list) - 1


def _encode_cursor(item: ActivityDevice, shown: int) -> str:
    raw = json.dumps([item.device_name, item.pk, shown], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str | None) -> tuple[str, int, int] | None:
    """The key after which a page starts, or None (the first page) for none or a forged one."""
    if not cursor:
        return None
    try:
        name, pk, shown = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError, binascii.Error):
        return None
    valid = isinstance(name, str) and "\x00" not in name and isinstance(pk, int) and isinstance(shown, int)
    if not valid or not (0 < pk < 2**63 and 0 <= shown < 2**63):
        return None
    return name, pk, shown


def device_page(queryset, cursor: str | None) -> DevicePage:
    """A page of `queryset` (ordered by device_name, pk: selectors.activity_device_list) after `cursor`:
    the same cost on the first page and the last, whatever the number of devices."""
    key = _decode_cursor(cursor)
    shown = 0
    if key is not None:
        name, pk, shown = key
        queryset = queryset.filter(Q(device_name__gt=name) | Q(device_name=name, pk__gt=pk))
    rows = list(queryset[: DEVICES_PER_PAGE + 1])
    more = len(rows) > DEVICES_PER_PAGE
    rows = rows[:DEVICES_PER_PAGE]
    next_cursor = _encode_cursor(rows[-1], shown + len(rows)) if more else None
    return DevicePage(object_list=rows, start=shown + 1, next_cursor=next_cursor)


def device_total(activity: RemediationActivity, status: str | None) -> int:
    """How many devices the table lists, from the stored counters (those of the reader's groups)."""
    target, fixed = activity.shown_target_devices, activity.shown_fixed_devices
    if status == ActivityDevice.Status.REMEDIATED:
        return fixed
    if status == ActivityDevice.Status.EXPOSED:
        return target - fixed
    return target


def activity_url(activity: RemediationActivity) -> str:
    return reverse("admin:remediation_remediationactivity_change", args=[activity.pk])


def _require_view(request, model_admin) -> None:
    """Every activity page needs the permission to view activities, before any lookup."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied(_("You may not see remediation activities."))


def get_activity_or_404(request, object_id) -> RemediationActivity:
    """Unknown and out-of-scope activities both answer 404 (DESIGN.md section 5)."""
    activity = activity_get(user=request.user, pk=unquote(str(object_id)))
    if activity is None:
        raise Http404(_("No such remediation activity."))
    return activity


# --- The request form -----------------------------------------------------------------------


def remediation_request_view(request, model_admin, object_id):
    """'Remediation options' on a recommendation: file a remediation request."""
    if not request.user.has_perm(perm.ADD_ACTIVITY):  # the permission before the lookup
        raise PermissionDenied(_("Only security staff can create remediation activities."))
    recommendation = model_admin.get_object(request, unquote(object_id))
    if recommendation is None:
        raise Http404(_("No such security recommendation."))
    intune_enabled = integration().enabled()
    form = RemediationRequestForm(
        request.POST or None, recommendation=recommendation, user=request.user, intune_enabled=intune_enabled
    )
    if request.method == "POST" and form.is_valid():
        try:
            activity = activity_create(user=request.user, recommendation=recommendation, **form.service_kwargs())
        except PermissionError_ as exc:
            raise PermissionDenied(exc.message) from exc
        except ConflictError as exc:  # an active activity like this one exists: confirm first
            existing = activity_get(user=request.user, pk=exc.extra.get("existing_activity_id"))
            form.ask_to_confirm_duplicate(existing=existing, message=exc.message)
        except ValidationError as exc:
            add_to_form(form, exc)
        else:
            messages.success(
                request,
                ngettext(
                    "Remediation activity “%(title)s” created for %(count)s device.",
                    "Remediation activity “%(title)s” created for %(count)s devices.",
                    activity.target_devices,
                )
                % {"title": activity.title, "count": grouped(activity.target_devices)},
            )
            return redirect(activity_url(activity))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Request remediation"),
        "subtitle": None,
        "opts": SecurityRecommendation._meta,
        "recommendation": recommendation,
        "recommendation_url": reverse("admin:recommendations_securityrecommendation_change", args=[recommendation.pk]),
        "form": form,
        "duplicate_of": form.duplicate_of,
        "duplicate_url": activity_url(form.duplicate_of) if form.duplicate_of else None,
        "intune_enabled": intune_enabled,
        "intune_unavailable_reason": integration().unavailable_reason(),
        "has_groups": device_group_list(user=request.user).exists(),
        "today": timezone.localdate(),
    }
    return TemplateResponse(request, "admin/remediation/request_form.html", context)


# --- The activity page ----------------------------------------------------------------------


def _scoped_devices(request, activity: RemediationActivity, status: str | None, search: str):
    return activity_device_list(activity=activity, user=request.user, status=status, search=search)


def _visible_groups(request, activity: RemediationActivity):
    groups = activity.device_groups.all()
    if not user_sees_all_device_groups(request.user):
        groups = groups.filter(pk__in=device_group_list(user=request.user).values("pk"))
    return groups


def activity_page_view(request, model_admin, object_id):
    """The activity 'flyout': details, Intune, devices, history and actions."""
    _require_view(request, model_admin)
    activity = get_activity_or_404(request, object_id)
    status = request.GET.get("device_status") or None
    if status not in (None, *ActivityDevice.Status.values):
        status = None
    search = request.GET.get("q", "").replace("\x00", "").strip()[:255]
    page = device_page(_scoped_devices(request, activity, status, search), request.GET.get("after"))
    user = request.user
    context = {
        **model_admin.admin_site.each_context(request),
        "title": activity.title,
        "subtitle": None,
        "opts": RemediationActivity._meta,
        "activity": activity,
        "original": activity,
        "recommendation_url": reverse(
            "admin:recommendations_securityrecommendation_change", args=[activity.recommendation_id]
        ),
        "steps": remediation_steps(activity),
        "device_groups": sorted(g.name for g in _visible_groups(request, activity)),
        "integration_panel": integration().panel(activity=activity, request=request),
        "device_page": page,
        # From the stored counters; a search counts its matches (it narrows the rows, by name)
        "device_count": _scoped_devices(request, activity, status, search).count()
        if search
        else device_total(activity, status),
        "device_status": status or "",
        "device_status_choices": ActivityDevice.Status.choices,
        "device_search": search,
        "can_decide": can_decide(user, activity),
        "is_creator": activity.created_by_id == user.pk,
        "approve_url": reverse("admin:remediation_remediationactivity_approve", args=[activity.pk]),
        "reject_url": reverse("admin:remediation_remediationactivity_reject", args=[activity.pk]),
        "figures": activity_chart(activity=activity, user=user),
        "events": activity_event_list(activity=activity),
        "can_complete": not activity.is_completed and user.has_perm(perm.COMPLETE_ACTIVITY),
        "can_export": user.has_perm(perm.EXPORT_ACTIVITY),
        "complete_url": reverse("admin:remediation_remediationactivity_complete", args=[activity.pk]),
        "devices_csv_url": reverse("admin:remediation_remediationactivity_devices_csv", args=[activity.pk]),
    }
    return TemplateResponse(request, "admin/remediation/remediationactivity/activity.html", context)


def activity_devices_csv_view(request, model_admin, object_id):
    """Export to CSV: the activity's devices the user may see, streamed."""
    _require_view(request, model_admin)
    if not request.user.has_perm(perm.EXPORT_ACTIVITY):
        raise PermissionDenied(_("You may not export remediation activities."))
    activity = get_activity_or_404(request, object_id)
    try:
        language = csv_language(request.GET.get("lang"))
    except ApplicationError as exc:
        return HttpResponseBadRequest(exc.message)
    return activity_devices_csv_response(activity, user=request.user, language=language, bom=wants_bom(request))
