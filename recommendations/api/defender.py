"""`/api/machines` and `/api/recommendations` in Defender's shapes and OData options (DESIGN.md 13).

Thin: the selectors scope (a scoped user's machines, exposed devices and counts are those of their
device groups; machines outside them answer 404), `portal.odata_api` parses the options and pages,
`defender_shapes` renders.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated

from portal import permissions as perm
from portal.api import has_perm
from portal.odata_api import (
    ENTITY_ERRORS,
    LIST_ERRORS,
    SUB_LIST_ERRORS,
    TAG,
    ODataView,
    collection_of,
    entity_of,
    filter_parameter,
    paging_parameters,
)
from recommendations.models import SecurityRecommendation
from recommendations.selectors import (
    annotate_exposed_in_scope,
    device_list,
    exposed_devices_for_recommendation,
    recommendation_list,
)

from .defender_shapes import (
    MACHINE_PROPERTIES,
    MACHINE_REFERENCE_COLLECTION,
    MACHINE_REFERENCE_FIELDS,
    MACHINE_REFERENCE_PROPERTIES,
    RECOMMENDATION_PROPERTIES,
    MachineSerializer,
    RecommendationSerializer,
    annotate_defender_status,
    machine_data,
    machine_reference_data,
    recommendation_data,
)

CanViewRecommendations = has_perm(perm.VIEW_RECOMMENDATION)
CanViewDevices = has_perm(perm.VIEW_DEVICE)

MACHINE_ID = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The device id, or its computer name."
)
RECOMMENDATION_ID = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The recommendation id."
)


def _plain(text: str) -> bool:
    return "\x00" not in text and len(text) <= 255


# --- machines -----------------------------------------------------------------------------
class MachineListView(ODataView):
    permission_classes = [IsAuthenticated, CanViewDevices]
    properties = MACHINE_PROPERTIES

    @extend_schema(
        operation_id="defender_machines_list",
        summary="List machines (Defender's GET /api/machines)",
        description="The devices of your device groups, in Defender's field names.",
        tags=[TAG],
        parameters=[filter_parameter(MACHINE_PROPERTIES), *paging_parameters()],
        responses={200: collection_of("MachineCollection", MachineSerializer), **LIST_ERRORS},
    )
    def get(self, request):
        devices = device_list(user=request.user).order_by("pk")
        return self.collection(
            devices, fragment="Machines", render=lambda rows: [machine_data(device) for device in rows]
        )


class MachineDetailView(ODataView):
    permission_classes = [IsAuthenticated, CanViewDevices]

    @extend_schema(
        operation_id="defender_machines_retrieve",
        summary="Get machine by id (Defender's GET /api/machines/{id})",
        description="By device id, or by computer name (the most recently seen device of that name).",
        tags=[TAG],
        parameters=[MACHINE_ID],
        responses={200: entity_of("MachineEntity", MachineSerializer), **ENTITY_ERRORS},
    )
    def get(self, request, pk: str):
        devices = device_list(user=request.user)
        device = None
        if _plain(pk):
            device = (
                devices.filter(machine_id=pk).first()
                or devices.filter(computer_dns_name__iexact=pk).order_by("-last_seen", "-pk").first()
            )
        if device is None:
            raise NotFound(f"Machine {pk} was not found in your device groups.")
        return self.entity(machine_data(device), fragment="Machines/$entity")


# --- recommendations ----------------------------------------------------------------------
def _recommendations(user):
    return annotate_defender_status(annotate_exposed_in_scope(recommendation_list(user=user), user=user))


def _recommendation(pk: str) -> SecurityRecommendation:
    recommendation = SecurityRecommendation.objects.filter(external_id=pk).first() if _plain(pk) else None
    if recommendation is None:
        raise NotFound(f"Recommendation {pk} was not found.")
    return recommendation


class RecommendationListView(ODataView):
    permission_classes = [IsAuthenticated, CanViewRecommendations]
    properties = RECOMMENDATION_PROPERTIES

    @extend_schema(
        operation_id="defender_recommendations_list",
        summary="List all recommendations (Defender's GET /api/recommendations)",
        description="Every security recommendation; `exposedMachinesCount` counts only your device groups.",
        tags=[TAG],
        parameters=[filter_parameter(RECOMMENDATION_PROPERTIES), *paging_parameters()],
        responses={200: collection_of("RecommendationCollection", RecommendationSerializer), **LIST_ERRORS},
    )
    def get(self, request):
        return self.collection(
            _recommendations(request.user).order_by("external_id"),
            fragment="Recommendations",
            render=lambda rows: [recommendation_data(rec) for rec in rows],
        )


class RecommendationDetailView(ODataView):
    permission_classes = [IsAuthenticated, CanViewRecommendations]

    @extend_schema(
        operation_id="defender_recommendations_retrieve",
        summary="Get recommendation by id (Defender's GET /api/recommendations/{id})",
        tags=[TAG],
        parameters=[RECOMMENDATION_ID],
        responses={200: entity_of("RecommendationEntity", RecommendationSerializer), **ENTITY_ERRORS},
    )
    def get(self, request, pk: str):
        recommendation = _recommendations(request.user).filter(pk=_recommendation(pk).pk).first()
        return self.entity(recommendation_data(recommendation), fragment="Recommendations/$entity")


class RecommendationMachineReferencesView(ODataView):
    permission_classes = [IsAuthenticated, CanViewRecommendations]
    properties = MACHINE_REFERENCE_PROPERTIES

    @extend_schema(
        operation_id="defender_recommendations_machine_references",
        summary="List devices by recommendation (Defender's GET /api/recommendations/{id}/machineReferences)",
        description="The devices of your device groups exposed to the recommendation now.",
        tags=[TAG],
        parameters=[RECOMMENDATION_ID, filter_parameter(MACHINE_REFERENCE_PROPERTIES), *paging_parameters()],
        responses={200: MACHINE_REFERENCE_COLLECTION, **SUB_LIST_ERRORS},
    )
    def get(self, request, pk: str):
        exposures = exposed_devices_for_recommendation(recommendation=_recommendation(pk), user=request.user)
        return self.collection(
            exposures.only(*MACHINE_REFERENCE_FIELDS).order_by("device__computer_dns_name", "pk"),
            fragment="MachineReferences",
            render=lambda rows: [machine_reference_data(exposure.device) for exposure in rows],
        )
