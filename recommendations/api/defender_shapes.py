"""Machines, machine references and recommendations as Defender's API names them (DESIGN.md 13).

One function per entity turns a row into Defender's dictionary, with every property of Microsoft's
property tables in its spelling; what the portal does not hold is null, never made up. The
serializers beside them only describe those dictionaries in the OpenAPI schema (a test keeps the
two in step); the `*_PROPERTIES` lists are what `$filter` may name on each list.
"""

from __future__ import annotations

from django.db.models import Case, CharField, Value, When
from rest_framework import serializers

from portal.odata import Property
from portal.odata_api import collection_of, iso_utc
from recommendations.models import Device, SecurityRecommendation
from recommendations.selectors import EXCEPTION_STATE_FULL


def _or_null(value: str) -> str | None:
    return value or None


def _same(choices) -> dict[str, str]:
    """Enum values the portal stores exactly as Defender spells them."""
    return {value: value for value in choices.values}


# --- machines -----------------------------------------------------------------------------
MACHINE_PROPERTIES = [
    Property.string("computerDnsName", "computer_dns_name", blank_is_null=True),
    Property.string("id", "machine_id"),
    Property.string("version", "os_version", blank_is_null=True),
    Property.unheld("deviceValue"),
    Property.string("aadDeviceId", "aad_device_id", blank_is_null=True),
    Property.collection("machineTags", "machine_tags"),
    Property.datetime("lastSeen", "last_seen"),
    Property.enum("exposureLevel", "exposure_level", _same(Device.ExposureLevel), blank_is_null=True),
    Property.unheld("onboardingStatus"),
    Property.string("lastIpAddress", "last_ip_address", blank_is_null=True),
    Property.enum("healthStatus", "health_status", _same(Device.HealthStatus), blank_is_null=True),
    Property.string("osPlatform", "os_platform", blank_is_null=True),
    Property.enum("riskScore", "risk_score", _same(Device.RiskScore), blank_is_null=True),
    Property.integer("rbacGroupId", "device_group_id"),
]


def machine_data(device: Device) -> dict:
    """GET /api/machines: one device (with its device group loaded)."""
    return {
        "id": device.machine_id,
        "computerDnsName": _or_null(device.computer_dns_name),
        "firstSeen": iso_utc(device.first_seen),
        "lastSeen": iso_utc(device.last_seen),
        "osPlatform": _or_null(device.os_platform),
        "onboardingStatus": None,
        "osProcessor": None,
        "version": _or_null(device.os_version),
        "lastIpAddress": _or_null(device.last_ip_address),
        "lastExternalIpAddress": None,
        "osBuild": None,
        "healthStatus": _or_null(device.health_status),
        "deviceValue": None,
        "rbacGroupId": device.device_group_id,
        "rbacGroupName": device.device_group.name,
        "riskScore": _or_null(device.risk_score),
        "exposureLevel": _or_null(device.exposure_level),
        "isAadJoined": None,
        "aadDeviceId": _or_null(device.aad_device_id),
        "machineTags": list(device.machine_tags or []),
        "ipAddresses": None,
        "osArchitecture": None,
    }


def _unheld(help_text: str = "Not held by the portal: always null.") -> serializers.Field:
    return serializers.CharField(allow_null=True, help_text=help_text)


class MachineSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The device id (machine id).")
    computerDnsName = serializers.CharField(allow_null=True, help_text="Fully qualified device name.")
    firstSeen = serializers.DateTimeField(allow_null=True)
    lastSeen = serializers.DateTimeField(allow_null=True, help_text="Last full report from the device.")
    osPlatform = serializers.CharField(allow_null=True)
    onboardingStatus = _unheld()
    osProcessor = _unheld()
    version = serializers.CharField(allow_null=True, help_text="Operating system version.")
    lastIpAddress = serializers.CharField(allow_null=True)
    lastExternalIpAddress = _unheld()
    osBuild = serializers.IntegerField(allow_null=True, help_text="Not held by the portal: always null.")
    healthStatus = serializers.ChoiceField(choices=Device.HealthStatus.values, allow_null=True)
    deviceValue = _unheld()
    rbacGroupId = serializers.IntegerField(help_text="The portal's id of the device group.")
    rbacGroupName = serializers.CharField(help_text="The device group (`UnassignedGroup` for none).")
    riskScore = serializers.ChoiceField(choices=Device.RiskScore.values, allow_null=True)
    exposureLevel = serializers.ChoiceField(choices=Device.ExposureLevel.values, allow_null=True)
    isAadJoined = serializers.BooleanField(allow_null=True, help_text="Not held by the portal: always null.")
    aadDeviceId = serializers.CharField(allow_null=True, help_text="Microsoft Entra ID device id.")
    machineTags = serializers.ListField(child=serializers.CharField())
    ipAddresses = serializers.ListField(
        child=serializers.DictField(), allow_null=True, help_text="Not held by the portal: always null."
    )
    osArchitecture = _unheld()


# --- machine references -------------------------------------------------------------------
# The exposed devices of a recommendation (Exposure rows) or a remediation task (ActivityDevice
# rows): both reach the device through `device`.
MACHINE_REFERENCE_PROPERTIES = [
    Property.string("id", "device__machine_id"),
    Property.string("computerDnsName", "device__computer_dns_name", blank_is_null=True),
    Property.string("osPlatform", "device__os_platform", blank_is_null=True),
    Property.string("rbacGroupName", "device__device_group__name"),
]


# What machine_reference_data reads through `device`: rows load only these (a task may have 100,000).
MACHINE_REFERENCE_FIELDS = (
    "device",
    "device__machine_id",
    "device__computer_dns_name",
    "device__os_platform",
    "device__device_group",
    "device__device_group__name",
)


def machine_reference_data(device: Device) -> dict:
    return {
        "id": device.machine_id,
        "computerDnsName": _or_null(device.computer_dns_name),
        "osPlatform": _or_null(device.os_platform),
        "rbacGroupName": device.device_group.name,
    }


class MachineReferenceSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The device id (machine id).")
    computerDnsName = serializers.CharField(allow_null=True)
    osPlatform = serializers.CharField(allow_null=True)
    rbacGroupName = serializers.CharField(help_text="The device's device group.")


MACHINE_REFERENCE_COLLECTION = collection_of("MachineReferenceCollection", MachineReferenceSerializer)


# --- recommendations ----------------------------------------------------------------------
# Defender's `status` of a recommendation: `Exception` while an exception covers it everywhere.
RECOMMENDATION_STATUSES = {"Active": "Active", "Exception": "Exception"}


def annotate_defender_status(queryset):
    """Adds `defender_status` ("Active" | "Exception") to a recommendation_list() queryset."""
    return queryset.annotate(
        defender_status=Case(
            When(exception_state=EXCEPTION_STATE_FULL, then=Value("Exception")),
            default=Value("Active"),
            output_field=CharField(),
        )
    )


RECOMMENDATION_PROPERTIES = [
    Property.string("id", "external_id"),
    Property.string("productName", "product_name"),
    Property.string("vendor", "vendor"),
    Property.string("recommendedVersion", "recommended_version"),
    Property.enum("recommendationCategory", "category", _same(SecurityRecommendation.Category)),
    Property.string("subCategory", "sub_category"),
    Property.number("severityScore", "severity_score"),
    Property.enum("remediationType", "remediation_type", _same(SecurityRecommendation.RemediationType)),
    Property.string("recommendedProgram", "recommended_program"),
    Property.string("recommendedVendor", "recommended_vendor"),
    Property.enum("status", "defender_status", RECOMMENDATION_STATUSES),
]


def recommendation_data(recommendation: SecurityRecommendation) -> dict:
    """GET /api/recommendations: one recommendation, annotated by recommendation_list(),
    annotate_exposed_in_scope() and annotate_defender_status(). Strings are as stored (Defender
    writes "" for an empty recommendedVersion or subCategory)."""
    return {
        "id": recommendation.external_id,
        "productName": recommendation.product_name,
        "recommendationName": recommendation.name,
        "weaknesses": recommendation.weaknesses,
        "vendor": recommendation.vendor,
        "recommendedVersion": recommendation.recommended_version,
        "recommendedProgram": recommendation.recommended_program,
        "recommendedVendor": recommendation.recommended_vendor,
        "recommendationCategory": recommendation.category,
        "subCategory": recommendation.sub_category,
        "severityScore": recommendation.severity_score,
        "publicExploit": recommendation.public_exploit,
        "activeAlert": recommendation.active_alert,
        "associatedThreats": list(recommendation.associated_threats or []),
        "remediationType": recommendation.remediation_type,
        "status": recommendation.defender_status,
        "configScoreImpact": recommendation.config_score_impact,
        "exposureImpact": recommendation.exposure_impact,
        "totalMachineCount": None,
        "exposedMachinesCount": recommendation.exposed_in_scope,
        "nonProductivityImpactedAssets": None,
        "relatedComponent": recommendation.related_component,
        "tags": list(recommendation.tags or []),
        "exposedCriticalDevices": None,
    }


class RecommendationSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The recommendation id, e.g. va-_-microsoft-_-silverlight.")
    productName = serializers.CharField()
    recommendationName = serializers.CharField()
    weaknesses = serializers.IntegerField(help_text="Vulnerabilities found.")
    vendor = serializers.CharField()
    recommendedVersion = serializers.CharField()
    recommendedProgram = serializers.CharField()
    recommendedVendor = serializers.CharField()
    recommendationCategory = serializers.ChoiceField(choices=SecurityRecommendation.Category.choices)
    subCategory = serializers.CharField()
    severityScore = serializers.FloatField()
    publicExploit = serializers.BooleanField()
    activeAlert = serializers.BooleanField()
    associatedThreats = serializers.ListField(child=serializers.CharField())
    remediationType = serializers.ChoiceField(choices=SecurityRecommendation.RemediationType.choices)
    status = serializers.ChoiceField(
        choices=list(RECOMMENDATION_STATUSES),
        help_text="`Exception` while an exception covers every device group; else `Active`.",
    )
    configScoreImpact = serializers.FloatField()
    exposureImpact = serializers.FloatField()
    totalMachineCount = serializers.IntegerField(allow_null=True, help_text="Not held by the portal: always null.")
    exposedMachinesCount = serializers.IntegerField(help_text="Devices exposed now, counting only your device groups.")
    nonProductivityImpactedAssets = serializers.IntegerField(
        allow_null=True, help_text="Not held by the portal: always null."
    )
    relatedComponent = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    exposedCriticalDevices = serializers.IntegerField(allow_null=True, help_text="Not held by the portal: always null.")
