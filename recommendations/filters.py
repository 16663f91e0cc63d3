"""FilterSets of the recommendations app: the API's recommendation and exception lists."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q
from drf_spectacular.utils import extend_schema_field

from portal.filters import StrictBooleanFilter

from .models import ExceptionDeviceGroup, RecommendationException, SecurityRecommendation
from .rules import expiring_within_q


class RecommendationFilter(django_filters.FilterSet):
    """Needs the `exposed_in_scope` annotation (selectors.annotate_exposed_in_scope) for `exposed`."""

    category = django_filters.ChoiceFilter(choices=SecurityRecommendation.Category.choices)
    remediation_type = django_filters.ChoiceFilter(choices=SecurityRecommendation.RemediationType.choices)
    public_exploit = StrictBooleanFilter(label="Has a public exploit (true/false)")
    exposed = StrictBooleanFilter(
        method="filter_exposed", label="Only recommendations with (true) or without (false) exposed devices"
    )
    search = django_filters.CharFilter(method="filter_search", label="Search name, product and vendor")

    class Meta:
        model = SecurityRecommendation
        fields = []

    def filter_exposed(self, queryset, name, value):
        return queryset.filter(exposed_in_scope__gt=0) if value else queryset.filter(exposed_in_scope=0)

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(product_name__icontains=value) | Q(vendor__icontains=value))


MAX_EXPIRING_WITHIN_DAYS = 3650


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_EXPIRING_WITHIN_DAYS})
class DaysFilter(django_filters.NumberFilter):
    """A whole number of days (the schema says so, with its bounds)."""

    field_class = forms.IntegerField


class ExceptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RecommendationException.Status.choices)
    scope = django_filters.ChoiceFilter(choices=RecommendationException.Scope.choices)
    justification = django_filters.ChoiceFilter(choices=RecommendationException.Justification.choices)
    recommendation = django_filters.CharFilter(
        field_name="recommendation__external_id", help_text="Recommendation external id."
    )
    device_group = django_filters.CharFilter(method="filter_device_group", help_text="Device group name.")
    expiring_within = DaysFilter(
        method="filter_expiring_within",
        min_value=0,
        max_value=MAX_EXPIRING_WITHIN_DAYS,
        help_text=f"Active exceptions ending within N days (0-{MAX_EXPIRING_WITHIN_DAYS}).",
    )

    class Meta:
        model = RecommendationException
        fields = ["status", "scope", "justification", "recommendation", "device_group", "expiring_within"]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Whose list it is (the API passes the request; selectors pass the user).
        self.user = user if user is not None else getattr(self.request, "user", None)

    def filter_device_group(self, queryset, name, value):
        links = ExceptionDeviceGroup.objects.filter(exception=OuterRef("pk"), device_group__name=value)
        if self.user is not None:
            # Imported here: the selectors package imports this module. A group outside the
            # user's scope matches nothing, like an unknown name.
            from .selectors.scope import device_group_ids_for_user, user_sees_all_device_groups

            if not user_sees_all_device_groups(self.user):
                links = links.filter(device_group__in=device_group_ids_for_user(user=self.user))
        return queryset.filter(Exists(links))

    def filter_expiring_within(self, queryset, name, value):
        return queryset.filter(expiring_within_q(value))
