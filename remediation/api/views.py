"""Remediation-activity endpoints (DESIGN.md section 6). Thin: parse, call a service, render.

Querysets come from remediation.selectors (device-group scope applied there); every write is a
service of remediation.services; ApplicationError subclasses become 400/403/404/409 in
portal.errors.api_exception_handler.
"""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from portal import permissions as perm
from portal.api import (
    COMMON_ERRORS,
    ERROR_400,
    ERROR_404,
    ERROR_409,
    CSVDownloadMixin,
    CSVRenderer,
    has_perm,
    json_errors,
)
from portal.csv import csv_language
from remediation.exports import activities_csv_response, activity_devices_csv_response
from remediation.filters import ActivityFilter
from remediation.models import ActivityDevice, RemediationActivity
from remediation.selectors import activity_device_list, activity_event_list, activity_get, activity_list
from remediation.services import activity_approve, activity_complete, activity_create, activity_reject

from .serializers import (
    ActivityCreateInput,
    ActivityDeviceOutput,
    ActivityEventOutput,
    ActivityOutput,
    CompleteInput,
    DecisionInput,
)

CanView = has_perm(perm.VIEW_ACTIVITY)
CanCreate = has_perm(perm.ADD_ACTIVITY, message="Only security staff can create remediation activities.")
CanDecide = has_perm(perm.DECIDE_ACTIVITY, message="Only IT staff can approve or reject remediation requests.")
CanComplete = has_perm(perm.COMPLETE_ACTIVITY, message="You may not mark remediation activities complete.")
CanExport = has_perm(perm.EXPORT_ACTIVITY, message="You may not export remediation activities.")

ACTION_PERMISSIONS = {
    "create": CanCreate,
    "approve": CanDecide,
    "reject": CanDecide,
    "complete": CanComplete,
    "export_csv": CanExport,
    "devices_csv": CanExport,
}

ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The activity's UUID.")
DEVICE_STATUS_PARAMETER = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=ActivityDevice.Status.values,
    description="Only devices with this status.",
)
CSV_200 = {(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="UTF-8 CSV with a header row.")}
DUPLICATE_409 = OpenApiResponse(
    inline_serializer(
        "DuplicateActivityError",
        fields={"detail": serializers.CharField(), "existing_activity_id": serializers.UUIDField()},
    ),
    description="An active activity for this recommendation already covers one of these device groups.",
)
READ_ERRORS = {**COMMON_ERRORS}
DETAIL_ERRORS = {**COMMON_ERRORS, 404: ERROR_404}
TRANSITION_ERRORS = {**COMMON_ERRORS, 400: ERROR_400, 404: ERROR_404, 409: ERROR_409}


@extend_schema_view(
    list=extend_schema(
        summary="List remediation activities",
        responses={200: ActivityOutput(many=True), 400: ERROR_400, **READ_ERRORS},
    ),
    retrieve=extend_schema(
        summary="One remediation activity, with progress and Intune status",
        parameters=[ID_PARAMETER],
        responses={200: ActivityOutput, **DETAIL_ERRORS},
    ),
)
class ActivityViewSet(CSVDownloadMixin, viewsets.GenericViewSet):
    """Remediation activities in the caller's device groups."""

    serializer_class = ActivityOutput
    filter_backends = [DjangoFilterBackend]
    filterset_class = ActivityFilter
    lookup_value_regex = "[^/]+"  # a malformed id reaches get_object and answers a JSON 404

    def get_permissions(self):
        permissions = [IsAuthenticated(), CanView()]
        extra = ACTION_PERMISSIONS.get(self.action)
        if extra is not None:
            permissions.append(extra())
        return permissions

    def get_renderers(self):
        if self.action in ("export_csv", "devices_csv"):
            return [*super().get_renderers(), CSVRenderer()]
        return super().get_renderers()

    def get_queryset(self):
        return activity_list(user=self.request.user)

    def get_object(self) -> RemediationActivity:
        activity = activity_get(user=self.request.user, pk=self.kwargs["pk"])
        if activity is None:
            raise NotFound("No remediation activity with this id in your device groups.")
        return activity

    def _respond(self, activity: RemediationActivity, *, code: int = status.HTTP_200_OK) -> Response:
        # Re-read through the selector: the same scope, relations and annotations as the detail.
        fresh = activity_get(user=self.request.user, pk=activity.pk) or activity
        return Response(ActivityOutput(fresh).data, status=code)

    # --- reads ------------------------------------------------------------------------------
    def list(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ActivityOutput(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(ActivityOutput(self.get_object()).data)

    @extend_schema(
        summary="Target devices of an activity and their status",
        parameters=[ID_PARAMETER, DEVICE_STATUS_PARAMETER],
        filters=False,
        responses={200: ActivityDeviceOutput(many=True), 400: ERROR_400, **DETAIL_ERRORS},
    )
    @action(detail=True, methods=["get"])
    def devices(self, request, pk=None):
        activity = self.get_object()
        wanted = request.query_params.get("status") or None  # empty: no filter, like every list's filters
        if wanted is not None and wanted not in ActivityDevice.Status.values:
            return Response(
                {"status": [f"Choose one of: {', '.join(ActivityDevice.Status.values)}."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        page = self.paginate_queryset(activity_device_list(activity=activity, user=request.user, status=wanted))
        return self.get_paginated_response(ActivityDeviceOutput(page, many=True).data)

    @extend_schema(
        summary="History of an activity",
        parameters=[ID_PARAMETER],
        filters=False,
        responses={200: ActivityEventOutput(many=True), 400: ERROR_400, **DETAIL_ERRORS},
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        page = self.paginate_queryset(activity_event_list(activity=self.get_object()))
        return self.get_paginated_response(ActivityEventOutput(page, many=True).data)

    # --- writes -----------------------------------------------------------------------------
    @extend_schema(
        summary="File a remediation request (security staff)",
        description="A second active activity for the same recommendation and an overlapping device group "
        'answers 409 with `existing_activity_id` unless the body says `"confirm_duplicate": true`.',
        request=ActivityCreateInput,
        responses={201: ActivityOutput, 400: ERROR_400, 409: DUPLICATE_409, **COMMON_ERRORS},
    )
    def create(self, request):
        data = ActivityCreateInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        activity = activity_create(user=request.user, **data.validated_data)
        return self._respond(activity, code=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="remediation_activities_approve",
        summary="Approve a request (IT staff; not its creator)",
        parameters=[ID_PARAMETER],
        request=DecisionInput,
        responses={200: ActivityOutput, **TRANSITION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        activity = self.get_object()
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._respond(activity_approve(activity=activity, user=request.user, **data.validated_data))

    @extend_schema(
        operation_id="remediation_activities_reject",
        summary="Reject a request (IT staff; notes required)",
        parameters=[ID_PARAMETER],
        request=DecisionInput,
        responses={200: ActivityOutput, **TRANSITION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        activity = self.get_object()
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._respond(activity_reject(activity=activity, user=request.user, **data.validated_data))

    @extend_schema(
        operation_id="remediation_activities_complete",
        summary="Mark an activity complete (manual)",
        parameters=[ID_PARAMETER],
        request=CompleteInput,
        responses={200: ActivityOutput, **TRANSITION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        activity = self.get_object()
        data = CompleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._respond(activity_complete(activity=activity, user=request.user, **data.validated_data))

    # --- CSV (routed explicitly in urls.py: the contract paths have no trailing slash) -----
    @extend_schema(
        operation_id="remediation_activities_export_csv",
        summary="The filtered activity list as CSV",
        description="Takes the same filters and ordering as the list. Streams; any number of rows.",
        filters=True,
        responses={**CSV_200, **json_errors({400: ERROR_400, **READ_ERRORS})},
    )
    def export_csv(self, request):
        language = csv_language(request.query_params.get("lang"))
        queryset = self.filter_queryset(self.get_queryset())
        return activities_csv_response(queryset, user=request.user, language=language)

    @extend_schema(
        operation_id="remediation_activities_devices_csv",
        summary="An activity's devices as CSV",
        parameters=[ID_PARAMETER],
        filters=False,
        responses={**CSV_200, **json_errors(DETAIL_ERRORS)},
    )
    def devices_csv(self, request, pk=None):
        language = csv_language(request.query_params.get("lang"))
        return activity_devices_csv_response(self.get_object(), user=request.user, language=language)
