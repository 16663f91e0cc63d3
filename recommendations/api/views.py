"""Recommendation and device-group endpoints (DESIGN.md section 6). Read-only and scoped.

Recommendations are visible to every role; their device counts and exposed devices count only
the caller's device groups (recommendations.selectors applies the scope).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated

from portal import permissions as perm
from portal.api import COMMON_ERRORS, ERROR_400, ERROR_404, has_perm
from recommendations.filters import RecommendationFilter
from recommendations.models import SecurityRecommendation
from recommendations.selectors import (
    annotate_exposed_in_scope,
    device_group_list,
    exposed_devices_for_recommendation,
    recommendation_list,
)

from .serializers import DeviceGroupOutput, ExposedDeviceOutput, RecommendationOutput

CanViewRecommendations = has_perm(perm.VIEW_RECOMMENDATION)
CanViewDeviceGroups = has_perm(perm.VIEW_DEVICE_GROUP)

ID_PARAMETER = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The recommendation's external id."
)


def _with_scoped_exposure_count(queryset, user):
    """`exposed_in_scope`: the stored total for see-all users, else the per-group counters of the caller's groups."""
    return annotate_exposed_in_scope(queryset, user=user)


def _found(queryset, external_id: str) -> SecurityRecommendation:
    recommendation = None if "\x00" in external_id else queryset.filter(external_id=external_id).first()
    if recommendation is None:
        raise NotFound("No security recommendation with this id.")
    return recommendation


@extend_schema_view(
    list=extend_schema(
        summary="Security recommendations, with exposed device counts in your device groups",
        responses={200: RecommendationOutput(many=True), 400: ERROR_400, **COMMON_ERRORS},
    ),
    retrieve=extend_schema(
        summary="One security recommendation",
        parameters=[ID_PARAMETER],
        responses={200: RecommendationOutput, **COMMON_ERRORS, 404: ERROR_404},
    ),
)
class RecommendationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RecommendationOutput
    permission_classes = [IsAuthenticated, CanViewRecommendations]
    filter_backends = [DjangoFilterBackend]
    filterset_class = RecommendationFilter
    lookup_field = "external_id"
    lookup_url_kwarg = "pk"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return _with_scoped_exposure_count(recommendation_list(user=self.request.user), self.request.user)

    def get_object(self) -> SecurityRecommendation:
        return _found(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(
        summary="Devices exposed to a recommendation, in your device groups",
        parameters=[
            ID_PARAMETER,
            OpenApiParameter("device_group", OpenApiTypes.STR, description="Only this device group (name)."),
        ],
        filters=False,
        responses={200: ExposedDeviceOutput(many=True), 400: ERROR_400, **COMMON_ERRORS, 404: ERROR_404},
    )
    @action(detail=True, methods=["get"])
    def devices(self, request, pk=None):
        recommendation = _found(SecurityRecommendation.objects.all(), pk)
        exposures = exposed_devices_for_recommendation(recommendation=recommendation, user=request.user)
        group = request.query_params.get("device_group")
        if group is not None:
            if "\x00" in group:
                raise ValidationError({"device_group": [_("Null characters are not allowed.")]})
            exposures = exposures.filter(device__device_group__name=group)
        page = self.paginate_queryset(exposures.order_by("device__computer_dns_name", "pk"))
        for exposure in page:  # `last_seen` reads the recommendation's last full snapshot: no query per row
            exposure.recommendation = recommendation
        return self.get_paginated_response(ExposedDeviceOutput(page, many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary="The device groups you may see",
        responses={200: DeviceGroupOutput(many=True), 400: ERROR_400, **COMMON_ERRORS},
    )
)
class DeviceGroupViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = DeviceGroupOutput
    permission_classes = [IsAuthenticated, CanViewDeviceGroups]

    def get_queryset(self):
        return device_group_list(user=self.request.user).order_by("name")
