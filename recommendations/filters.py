"""The exceptions list's filters (API query parameters), applied by selectors.exception_list."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .models import ExceptionDeviceGroup, RecommendationException


class ExceptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RecommendationException.Status.choices)
    scope = django_filters.ChoiceFilter(choices=RecommendationException.Scope.choices)
    justification = django_filters.ChoiceFilter(choices=RecommendationException.Justification.choices)
    recommendation = django_filters.CharFilter(
        field_name="recommendation__external_id", help_text="Recommendation external id."
    )
    device_group = django_filters.CharFilter(method="filter_device_group", help_text="Device group name.")
    expiring_within = django_filters.NumberFilter(
        method="filter_expiring_within",
        min_value=0,
        max_value=3650,
        help_text="Active exceptions ending within N days (0-3650).",
    )

    class Meta:
        model = RecommendationException
        fields = ["status", "scope", "justification", "recommendation", "device_group", "expiring_within"]

    def filter_device_group(self, queryset, name, value):
        return queryset.filter(
            Exists(ExceptionDeviceGroup.objects.filter(exception=OuterRef("pk"), device_group__name=value))
        )

    def filter_expiring_within(self, queryset, name, value):
        today = timezone.localdate()
        return queryset.filter(
            status=RecommendationException.Status.ACTIVE,
            expires_on__gte=today,
            expires_on__lte=today + dt.timedelta(days=int(value)),
        )
