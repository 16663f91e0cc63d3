"""The activity list's filters, shared by the API, the admin export and the selectors."""

import datetime as dt

import django_filters
from django.db.models import DateField, Q, Value
from django.db.models.functions import Coalesce

from portal.filters import StrictBooleanFilter, UTCDateTimeFilter
from recommendations.models import DeviceGroup
from recommendations.selectors import device_group_list

from .models import Priority, RemediationActivity, RemediationOption
from .rules import overdue_q

NO_DUE_DATE = dt.date(9999, 12, 31)


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

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Whose list it is (the API passes the request; selectors pass the user).
        self.user = user if user is not None else getattr(self.request, "user", None)

    def filter_device_group(self, queryset, name, value):
        # A group outside the user's scope matches nothing, exactly like an unknown name: it must
        # not reveal which of their activities also target it.
        groups = DeviceGroup.objects.all() if self.user is None else device_group_list(user=self.user)
        group_ids = groups.filter(name=value).values("pk")
        through = RemediationActivity.device_groups.through
        return queryset.filter(
            pk__in=through.objects.filter(devicegroup_id__in=group_ids).values("remediationactivity_id")
        )

    def filter_overdue(self, queryset, name, value):
        return queryset.filter(overdue_q()) if value else queryset.exclude(overdue_q())

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))
