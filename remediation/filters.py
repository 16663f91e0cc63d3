"""The activity list's filters, shared by the API, the admin export and the selectors."""

import datetime as dt

import django_filters
from django import forms
from django.db.models import DateField, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_filters.fields import IsoDateTimeField

from recommendations.models import DeviceGroup

from .models import Priority, RemediationActivity, RemediationOption

NO_DUE_DATE = dt.date(9999, 12, 31)


class StrictBooleanField(forms.NullBooleanField):
    """true/false (or 1/0); anything else is an error instead of being silently ignored."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class UTCDateTimeField(IsoDateTimeField):
    """ISO 8601, converted to UTC: PostgreSQL refuses offsets beyond +-15:59 that Python accepts."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(dt.UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("Enter a date and time within years 1-9999.", code="invalid") from exc


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class ActivityOrdering(django_filters.OrderingFilter):
    """One ordering field, then newest first and the id: a total order, so pages never skip rows.

    `due_on` sorts on `due_sort` (no due date = after every date) so the key is never NULL, which
    keyset pagination (portal.pagination) needs, and SQLite and PostgreSQL agree on the order.
    """

    def filter(self, qs, value):
        if value in ([], (), {}, "", None):
            return qs
        if any(v.lstrip("-") == "due_on" for v in value):
            qs = qs.annotate(due_sort=Coalesce("due_on", Value(NO_DUE_DATE), output_field=DateField()))
        ordering = [self.get_ordering_value(param) for param in value]
        for tie_breaker in ("-created_at", "-id"):
            if tie_breaker.lstrip("-") not in {o.lstrip("-") for o in ordering}:
                ordering.append(tie_breaker)
        return qs.order_by(*ordering)


class ActivityFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RemediationActivity.Status.choices)
    ticket_status = django_filters.ChoiceFilter(choices=[c for c in RemediationActivity.TicketStatus.choices if c[0]])
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    remediation_option = django_filters.ChoiceFilter(choices=RemediationOption.choices)
    device_group = django_filters.CharFilter(method="filter_device_group", label="Device group name")
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")
    due_before = django_filters.DateFilter(field_name="due_on", lookup_expr="lte")
    overdue = StrictBooleanFilter(method="filter_overdue", label="Active and past its due date (true/false)")
    search = django_filters.CharFilter(method="filter_search", label="Search title and description")
    ordering = ActivityOrdering(
        fields=(
            ("created_at", "created_at"),
            ("due_sort", "due_on"),
            ("priority_rank", "priority"),
            ("progress_value", "progress"),
        ),
        help_text="created_at, due_on, priority (high first) or progress, each with - to reverse. "
        "Ties are broken by newest first. Activities without a due date sort after every date.",
    )

    class Meta:
        model = RemediationActivity
        fields = []

    def filter_device_group(self, queryset, name, value):
        group_ids = DeviceGroup.objects.filter(name=value).values("pk")
        through = RemediationActivity.device_groups.through
        return queryset.filter(
            pk__in=through.objects.filter(devicegroup_id__in=group_ids).values("remediationactivity_id")
        )

    def filter_overdue(self, queryset, name, value):
        today = timezone.localdate()
        overdue = Q(status=RemediationActivity.Status.ACTIVE, due_on__lt=today)
        return queryset.filter(overdue) if value else queryset.exclude(overdue)

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))
