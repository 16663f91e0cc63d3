"""`/api/remediationTasks`: remediation activities as Defender's remediation API names them.

DESIGN.md section 13: the list (`$filter` on `status` and `createdOn`, `$top`, `$skip`,
`@odata.nextLink`), one activity, and its devices still exposed (`machineReferences`). Scoped like
`/api/v1/`: activities outside the caller's device groups are left out of the list and answer 404;
`targetDevices`, `fixedDevices` and `rbacGroupNames` count only the caller's device groups.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated

from portal import permissions as perm
from portal.api import has_perm
from portal.odata import Property
from portal.odata_api import (
    ENTITY_ERRORS,
    LIST_ERRORS,
    SUB_LIST_ERRORS,
    TAG,
    ODataView,
    collection_of,
    entity_of,
    filter_parameter,
    iso_utc,
    midnight_utc,
    paging_parameters,
)
from recommendations.api.defender_shapes import (
    MACHINE_REFERENCE_COLLECTION,
    MACHINE_REFERENCE_FIELDS,
    MACHINE_REFERENCE_PROPERTIES,
    machine_reference_data,
)
from recommendations.models import SecurityRecommendation
from remediation.models import ActivityDevice, RemediationActivity
from remediation.selectors import activity_device_list, activity_get, activity_list

CanView = has_perm(perm.VIEW_ACTIVITY)

# The contract values of DESIGN.md section 13, from the portal's.
STATUSES = {"active": "Active", "completed": "Completed"}
PRIORITIES = {"high": "High", "medium": "Medium", "low": "Low"}
CATEGORIES = {"software": "Software", "security_configuration": "Security configuration"}
TYPES = {
    "software_update": "Update",
    "software_uninstall": "Uninstall",
    "configuration_change": "ConfigurationChange",
    "attention_required": "AttentionRequired",
}
COMPLETION_METHODS = {"manual": "Manual", "automatic": "Automatic"}  # imported ("unknown"): null

TASK_PROPERTIES = [
    Property.enum("status", "status", {defender: portal for portal, defender in STATUSES.items()}),
    Property.datetime("createdOn", "created_at"),
]

TASK_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The activity's id.")


# --- shape --------------------------------------------------------------------------------
def _or_null(value: str) -> str | None:
    return value or None


def _scid(recommendation: SecurityRecommendation) -> str | None:
    """`scid-2000` of the configuration recommendations `scid-2000` and `sca-_-scid-2000`."""
    external_id = recommendation.external_id
    if external_id.startswith("scid-"):
        return external_id
    if external_id.startswith("sca-_-scid-"):
        return external_id[len("sca-_-") :]
    return None


def task_data(activity: RemediationActivity) -> dict:
    """One activity in Defender's remediation-activity properties, in the order its docs list them.

    Read through remediation.selectors.activity_list: its device counts and device groups are those
    of the caller's device groups (`shown_target_devices`, `shown_fixed_devices`, the prefetched groups).
    """
    rec = activity.recommendation
    manual = activity.completion_method == RemediationActivity.CompletionMethod.MANUAL
    has_product = bool(rec.vendor and rec.product_name)
    return {
        "id": str(activity.pk),
        "title": activity.title,
        "createdOn": iso_utc(activity.created_at),
        "requesterId": None if activity.created_by_id is None else str(activity.created_by_id),
        "requesterEmail": _or_null(activity.requester_email),
        "status": STATUSES[activity.status],
        "statusLastModifiedOn": iso_utc(activity.completed_at or activity.created_at),
        "description": activity.description,
        "relatedComponent": _or_null(rec.related_component),
        "targetDevices": activity.shown_target_devices,
        "rbacGroupNames": sorted(group.name for group in activity.device_groups.all()),
        "fixedDevices": activity.shown_fixed_devices,
        "requesterNotes": _or_null(activity.requester_notes),
        "dueOn": midnight_utc(activity.due_on),
        "category": CATEGORIES[activity.category],
        "productivityImpactRemediationType": None,
        "priority": PRIORITIES[activity.priority],
        "completionMethod": COMPLETION_METHODS.get(activity.completion_method),
        "completerId": str(activity.completed_by_id) if manual and activity.completed_by_id else None,
        "completerEmail": _or_null(activity.completer_email) if manual else None,
        "scid": _scid(rec),
        "type": TYPES[activity.remediation_option],
        "productId": f"{rec.vendor}-_-{rec.product_name}" if has_product else None,
        "vendorId": _or_null(rec.vendor),
        "nameId": _or_null(rec.product_name),
        "recommendedVersion": _or_null(rec.recommended_version),
        "recommendedVendor": _or_null(rec.recommended_vendor),
        "recommendedProgram": _or_null(rec.recommended_program),
    }


def _nullable(help_text: str = "") -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=help_text)


class RemediationTaskSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    createdOn = serializers.DateTimeField(help_text="UTC.")
    requesterId = _nullable("The requester's user id in the portal.")
    requesterEmail = _nullable()
    status = serializers.ChoiceField(choices=list(STATUSES.values()))
    statusLastModifiedOn = serializers.DateTimeField(help_text="Created, or completed if it is.")
    description = serializers.CharField()
    relatedComponent = _nullable("The software or setting the recommendation is about.")
    targetDevices = serializers.IntegerField(help_text="Target devices in your device groups.")
    rbacGroupNames = serializers.ListField(child=serializers.CharField(), help_text="Your device groups among its.")
    fixedDevices = serializers.IntegerField(help_text="Remediated target devices in your device groups.")
    requesterNotes = _nullable()
    dueOn = serializers.DateTimeField(allow_null=True, help_text="Midnight UTC; null for AttentionRequired.")
    category = serializers.ChoiceField(choices=list(CATEGORIES.values()))
    productivityImpactRemediationType = _nullable("Not held by the portal: always null.")
    priority = serializers.ChoiceField(choices=list(PRIORITIES.values()))
    completionMethod = serializers.ChoiceField(
        choices=list(COMPLETION_METHODS.values()), allow_null=True, help_text="Null while active, and for imported."
    )
    completerId = _nullable("The portal user id of who completed it (Manual only).")
    completerEmail = _nullable("Who completed it (Manual only).")
    scid = _nullable("The configuration id (scid-…) of a configuration recommendation.")
    type = serializers.ChoiceField(choices=list(TYPES.values()))
    productId = _nullable("vendor-_-product of the recommendation.")
    vendorId = _nullable()
    nameId = _nullable()
    recommendedVersion = _nullable()
    recommendedVendor = _nullable()
    recommendedProgram = _nullable()


# --- views --------------------------------------------------------------------------------
def _task(request, pk) -> RemediationActivity:
    activity = activity_get(user=request.user, pk=pk) if "\x00" not in str(pk) else None
    if activity is None:
        raise NotFound(f"Remediation task {pk} was not found in your device groups.")
    return activity


def _render(request):
    def render(rows: list[RemediationActivity]) -> list[dict]:
        return [task_data(activity) for activity in rows]

    return render


class RemediationTaskListView(ODataView):
    permission_classes = [IsAuthenticated, CanView]
    properties = TASK_PROPERTIES

    @extend_schema(
        operation_id="defender_remediation_tasks_list",
        summary="List all remediation activities (Defender's GET /api/remediationTasks)",
        description="The remediation activities of your device groups, oldest first, in Defender's field names.",
        tags=[TAG],
        parameters=[filter_parameter(TASK_PROPERTIES), *paging_parameters()],
        responses={200: collection_of("RemediationTaskCollection", RemediationTaskSerializer), **LIST_ERRORS},
    )
    def get(self, request):
        activities = activity_list(user=request.user).order_by("created_at", "pk")
        return self.collection(activities, fragment="RemediationTasks", render=_render(request))


class RemediationTaskDetailView(ODataView):
    permission_classes = [IsAuthenticated, CanView]

    @extend_schema(
        operation_id="defender_remediation_tasks_retrieve",
        summary="Get one remediation activity by id (Defender's GET /api/remediationTasks/{id})",
        tags=[TAG],
        parameters=[TASK_ID],
        responses={200: entity_of("RemediationTaskEntity", RemediationTaskSerializer), **ENTITY_ERRORS},
    )
    def get(self, request, pk: str):
        activity = _task(request, pk)
        return self.entity(_render(request)([activity])[0], fragment="RemediationTasks/$entity")


class RemediationTaskMachineReferencesView(ODataView):
    permission_classes = [IsAuthenticated, CanView]
    properties = MACHINE_REFERENCE_PROPERTIES

    @extend_schema(
        operation_id="defender_remediation_tasks_machine_references",
        summary="List exposed devices of one remediation activity "
        "(Defender's GET /api/remediationTasks/{id}/machineReferences)",
        description="Its target devices in your device groups that are still exposed.",
        tags=[TAG],
        parameters=[TASK_ID, filter_parameter(MACHINE_REFERENCE_PROPERTIES), *paging_parameters()],
        responses={200: MACHINE_REFERENCE_COLLECTION, **SUB_LIST_ERRORS},
    )
    def get(self, request, pk: str):
        devices = activity_device_list(
            activity=_task(request, pk), user=request.user, status=ActivityDevice.Status.EXPOSED
        ).only(*MACHINE_REFERENCE_FIELDS)
        return self.collection(
            devices,
            fragment="MachineReferences",
            render=lambda rows: [machine_reference_data(link.device) for link in rows],
        )
