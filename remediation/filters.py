"""The activity list's filters, shared by the API, the admin export and the selectors."""

import django_filters
from django.db.models import Q
from django.utils import timezone

from recommendations.models import DeviceGroup

from .models import Priority, RemediationActivity, RemediationOption


class ActivityFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RemediationActivity.Status.choices)
    ticket_status = django_filters.ChoiceFilter(
        choices=[c for c in RemediationActivity.TicketStatus.choices if c[0]]
    )
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    remediation_option = django_filters.ChoiceFilter(choices=RemediationOption.choices)
    device_group = django_filters.CharFilter(method="filter_device_group", label="Device group name")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    due_before = django_filters.DateFilter(field_name="due_on", lookup_expr="lte")
    overdue = django_filters.BooleanFilter(method="filter_overdue")
    search = django_filters.CharFilter(method="filter_search", label="Search title and description")
    ordering = django_filters.OrderingFilter(
        fields=(
            ("created_at", "created_at"),
            ("due_on", "due_on"),
            ("priority_rank", "priority"),
            ("progress_value", "progress"),
        )
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
