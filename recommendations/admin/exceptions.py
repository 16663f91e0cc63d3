"""Exceptions in the admin: the 'Exception options' form, the changelist and the exception page.

Thin callers of recommendations.services (every rule lives there). Every read goes through
the selectors, so device-group scoping matches the API: out-of-scope exceptions answer 404.
Also the pieces the recommendation admin uses: the exception-state column and list filter.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal.admin_mixins import ReadOnlyAdminMixin, WideChangelistMixin
from portal.errors import ConflictError, PermissionError_, ValidationError, add_to_form
from portal.formatting import grouped
from portal.users import actor_label

from ..models import DeviceGroup, ExceptionDeviceGroup, RecommendationException, SecurityRecommendation
from ..rules import EXPIRING_SOON_DAYS, expiring_within_q
from ..selectors import (
    EXCEPTION_STATE_FULL,
    EXCEPTION_STATE_LABELS,
    EXCEPTION_STATE_NONE,
    EXCEPTION_STATE_PARTIAL,
    device_group_list,
    exception_event_list,
    exception_get,
    exception_group_ids_in_use,
    exception_group_links,
    exception_is_suspended,
    exception_list,
    exposed_counts_by_group,
    has_active_global_exception,
    recommendation_exception_state,
    recommendation_list,
    user_sees_all_device_groups,
)
from ..selectors.exceptions import can_handle_exceptions
from ..services import exception_cancel, exception_create

# --- On the recommendations changelist ---------------------------------------------------------


class ExceptionStateFilter(admin.SimpleListFilter):
    """'By exception': Exception / Partial exception / No exception (annotated by recommendation_list)."""

    title = _("exception")
    parameter_name = "exception_state"

    def lookups(self, request, model_admin):
        return [
            (EXCEPTION_STATE_FULL, _("Exception")),
            (EXCEPTION_STATE_PARTIAL, _("Partial exception")),
            (EXCEPTION_STATE_NONE, _("No exception")),
        ]

    def queryset(self, request, queryset):
        if self.value() in EXCEPTION_STATE_LABELS:
            return queryset.filter(exception_state=self.value())
        return queryset


@admin.display(description=_("Exception"), ordering="exception_state")
def exception_state_column(obj) -> str:
    """'Exception' / 'Partial exception' / '' from the `exception_state` annotation."""
    return EXCEPTION_STATE_LABELS.get(getattr(obj, "exception_state", EXCEPTION_STATE_NONE), "")


@admin.display(description=_("Exposed after exceptions"), ordering="exposed_after_exceptions")
def exposed_after_exceptions_column(obj) -> str:
    return grouped(getattr(obj, "exposed_after_exceptions", obj.exposed_devices))


# --- The 'Exception options' form ---------------------------------------------------------------


class ExceptionOptionsForm(forms.Form):
    justification = forms.ChoiceField(
        label=_("Justification"), choices=RecommendationException.Justification.choices, widget=forms.RadioSelect
    )
    context = forms.CharField(
        label=_("Context"),
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_("Why this recommendation cannot or need not be fixed (required)."),
    )
    expires_on = forms.DateField(
        label=_("Expires on"),
        widget=AdminDateWidget(attrs={"type": "date"}),
        help_text=_("The last day the exception applies; it must be after today. It expires the day after."),
    )
    scope = forms.ChoiceField(label=_("Scope"), choices=RecommendationException.Scope.choices, widget=forms.RadioSelect)
    device_groups = forms.ModelMultipleChoiceField(
        label=_("Device groups"),
        queryset=DeviceGroup.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Only device groups you may see that have no exception yet."),
    )

    def __init__(self, *args, recommendation: SecurityRecommendation, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.recommendation = recommendation
        in_use = exception_group_ids_in_use(recommendation=recommendation)
        groups = device_group_list(user=user).exclude(pk__in=in_use).order_by("name")
        counts = exposed_counts_by_group(recommendation=recommendation)
        field = self.fields["device_groups"]
        field.queryset = groups
        field.label_from_instance = lambda g: (
            _("%(name)s (%(count)s exposed)")
            % {
                "name": g.name,
                "count": grouped(counts.get(g.pk, 0)),
            }
        )
        if user.is_superuser and not has_active_global_exception(recommendation=recommendation):
            self.fields["scope"].initial = RecommendationException.Scope.DEVICE_GROUPS
        else:
            # Global scope is for superusers only (and one global exception at a time).
            self.fields["scope"].choices = [
                (RecommendationException.Scope.DEVICE_GROUPS, RecommendationException.Scope.DEVICE_GROUPS.label)
            ]
            self.fields["scope"].initial = RecommendationException.Scope.DEVICE_GROUPS
        self.fields["expires_on"].initial = timezone.localdate() + dt.timedelta(days=EXPIRING_SOON_DAYS)

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        scope = data["scope"]
        groups = list(data["device_groups"]) if scope == RecommendationException.Scope.DEVICE_GROUPS else []
        return {
            "justification": data["justification"],
            "context": data["context"],
            "expires_on": data["expires_on"],
            "scope": scope,
            "device_groups": groups,
        }


def exception_url(exception: RecommendationException) -> str:
    return reverse("admin:recommendations_recommendationexception_change", args=[exception.pk])


def recommendation_url(recommendation_id) -> str:
    return reverse("admin:recommendations_securityrecommendation_change", args=[recommendation_id])


def exception_options_view(request, model_admin, recommendation_id):
    """'Exception options' on a recommendation: file an exception for it."""
    if not can_handle_exceptions(request.user):  # the permission before the lookup
        raise PermissionDenied(_("Only security staff can file exceptions."))
    raw = unquote(str(recommendation_id))
    recommendation = None
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:  # anything else is no recommendation's id
        recommendation = recommendation_list(user=request.user).filter(pk=int(raw)).first()
    if recommendation is None:
        raise Http404(_("No such security recommendation."))
    form = ExceptionOptionsForm(request.POST or None, recommendation=recommendation, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            exception = exception_create(user=request.user, recommendation=recommendation, **form.service_kwargs())
        except PermissionError_ as exc:
            form.add_error("scope", exc.message)
        except ValidationError as exc:
            add_to_form(form, exc)
        else:
            messages.success(request, _("Exception filed for “%(name)s”.") % {"name": recommendation.name})
            return redirect(exception_url(exception))
    active = (
        exception_list(user=request.user)
        .filter(recommendation=recommendation, status=RecommendationException.Status.ACTIVE)
        .prefetch_related(Prefetch("group_links", queryset=exception_group_links(user=request.user)))
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Exception options"),
        "subtitle": recommendation.name,
        "opts": RecommendationException._meta,
        "recommendation": recommendation,
        "recommendation_url": recommendation_url(recommendation.pk),
        "state": recommendation_exception_state(recommendation=recommendation, user=request.user),
        "active_exceptions": active,
        "form": form,
        "has_free_groups": form.fields["device_groups"].queryset.exists(),
    }
    return TemplateResponse(request, "admin/recommendations/exception/options.html", context)


# --- The exceptions changelist and page -------------------------------------------------------


class ExpiringSoonFilter(admin.SimpleListFilter):
    title = _("expiry")
    parameter_name = "expiring"

    def lookups(self, request, model_admin):
        return [("30", _("Expiring within %(days)s days") % {"days": EXPIRING_SOON_DAYS})]

    def queryset(self, request, queryset):
        if self.value() == "30":
            return queryset.filter(expiring_within_q(EXPIRING_SOON_DAYS))
        return queryset


@admin.register(RecommendationException)
class RecommendationExceptionAdmin(WideChangelistMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "recommendation_column",
        "justification",
        "scope_column",
        "status_column",
        "expires_on",
        "created_by_column",
        "created_at",
    ]
    list_filter = ["justification", "status", "scope", ExpiringSoonFilter]
    search_fields = ["recommendation__name", "=recommendation__external_id", "context"]
    list_per_page = 50

    def get_queryset(self, request):
        # A scoped user sees only their device groups of each exception.
        return exception_list(user=request.user).prefetch_related(
            Prefetch("group_links", queryset=exception_group_links(user=request.user))
        )

    # Read-only (ReadOnlyAdminMixin): exceptions are filed from a recommendation ('Exception
    # options') and changed only by canceling them; their history is kept.

    @admin.display(description=_("Recommendation"), ordering="recommendation__name")
    def recommendation_column(self, obj):
        return obj.recommendation.name

    @admin.display(description=_("Scope"), ordering="scope")
    def scope_column(self, obj):
        if obj.scope == RecommendationException.Scope.GLOBAL:
            return _("Global")
        names = [
            link.device_group.name
            if link.status == ExceptionDeviceGroup.Status.ACTIVE
            else _("%(name)s (canceled)") % {"name": link.device_group.name}
            for link in obj.group_links.all()
        ]
        return ", ".join(names)

    @admin.display(description=_("Status"), ordering="status")
    def status_column(self, obj):
        if getattr(obj, "is_suspended", False):
            return "Active (suspended by a global exception)"
        return obj.get_status_display()

    @admin.display(description=_("Created by"), ordering="created_by__email")
    def created_by_column(self, obj):
        return actor_label(obj.created_by) if obj.created_by else "—"

    def get_urls(self):
        def wrap(view):
            def inner(request, *args, **kwargs):
                return view(request, self, *args, **kwargs)

            return self.admin_site.admin_view(inner)

        info = "recommendations_recommendationexception"
        return [
            path("new/<path:recommendation_id>/", wrap(exception_options_view), name=f"{info}_options"),
            path("<path:object_id>/cancel/", wrap(exception_cancel_view), name=f"{info}_cancel"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return exception_page_view(request, self, object_id)


def _get_exception_or_404(request, object_id) -> RecommendationException:
    exception = exception_get(user=request.user, pk=unquote(str(object_id)))
    if exception is None:
        raise Http404(_("No such exception."))
    return exception


def exception_page_view(request, model_admin, object_id):
    """The exception 'flyout': details, covered groups, the recommendation, history, cancel."""
    exception = _get_exception_or_404(request, object_id)
    links = list(exception_group_links(exception=exception, user=request.user))
    user = request.user
    is_active = exception.status == RecommendationException.Status.ACTIVE
    can_cancel = is_active and can_handle_exceptions(user)
    visible = (
        None if user_sees_all_device_groups(user) else set(device_group_list(user=user).values_list("pk", flat=True))
    )
    groups = [
        {
            "link": link,
            "can_cancel": can_cancel
            and link.status == ExceptionDeviceGroup.Status.ACTIVE
            and (visible is None or link.device_group_id in visible),
        }
        for link in links
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Exception for %(name)s") % {"name": exception.recommendation.name},
        "subtitle": None,
        "opts": RecommendationException._meta,
        "exception": exception,
        "original": exception,
        "suspended": exception_is_suspended(exception=exception),
        "recommendation_url": recommendation_url(exception.recommendation_id),
        "groups": groups,
        "events": exception_event_list(exception=exception, user=user),
        "can_cancel": can_cancel,
        "cancel_url": reverse("admin:recommendations_recommendationexception_cancel", args=[exception.pk]),
    }
    return TemplateResponse(request, "admin/recommendations/exception/detail.html", context)


def exception_cancel_view(request, model_admin, object_id):
    """Cancel for all groups, or one (`device_group` = its id). GET asks for confirmation (with an
    optional note for the history); POST cancels (CSRF checked by the middleware)."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if not can_handle_exceptions(request.user):  # the permission before the lookup
        raise PermissionDenied(_("Only security staff can cancel exceptions."))
    exception = _get_exception_or_404(request, object_id)
    device_group = None
    data = request.POST if request.method == "POST" else request.GET
    group_id = data.get("device_group", "").strip()
    if group_id:
        link = (
            exception_group_links(exception=exception, user=request.user)
            .filter(
                device_group_id=int(group_id)
                if group_id.isascii() and group_id.isdigit() and len(group_id) <= 18
                else None,
            )
            .select_related("device_group")
            .first()
        )
        if link is None:
            messages.error(request, _("This exception does not cover that device group."))
            return redirect(exception_url(exception))
        device_group = link.device_group
    if request.method == "GET":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": gettext("Cancel exception"),
            "subtitle": None,
            "opts": model_admin.model._meta,
            "exception": exception,
            "device_group": device_group,
            "exception_url": exception_url(exception),
        }
        return TemplateResponse(request, "admin/recommendations/exception/confirm_cancel.html", context)
    notes = request.POST.get("notes", "").strip()[:5000]
    try:
        exception = exception_cancel(exception=exception, user=request.user, device_group=device_group, notes=notes)
    except PermissionError_ as exc:
        raise PermissionDenied(exc.message) from exc
    except (ConflictError, ValidationError) as exc:
        messages.error(request, exc.message)
    else:
        if device_group is not None:
            text = _("The exception was canceled for device group “%(name)s”.") % {"name": device_group.name}
            if exception.status == RecommendationException.Status.CANCELED:
                text += " " + _("It covered no other group, so the exception is canceled.")
        else:
            text = _("The exception was canceled.")
        messages.success(request, text)
    return redirect(exception_url(exception))


def exception_options_url(recommendation: SecurityRecommendation) -> str:
    return reverse("admin:recommendations_recommendationexception_options", args=[recommendation.pk])


@admin.display(description=_("Exceptions"))
def exception_summary(obj: SecurityRecommendation):
    """Read-only line on the recommendation page: state, raw and after-exceptions counts, a link.

    From the annotations of the admin's queryset (recommendation_list for the user, so the
    counts are those of their device groups).
    """
    state = getattr(obj, "exception_state", EXCEPTION_STATE_NONE)
    return format_html(
        '<span id="exception-summary">{}</span> <a href="{}?recommendation__id__exact={}">{}</a>',
        _("%(state)s: %(exposed)s exposed devices, %(after)s after exceptions.")
        % {
            "state": EXCEPTION_STATE_LABELS[state] or _("No exception"),
            "exposed": grouped(obj.scoped_exposed),
            "after": grouped(obj.exposed_after_exceptions),
        },
        reverse("admin:recommendations_recommendationexception_changelist"),
        obj.pk,
        _("See its exceptions"),
    )
