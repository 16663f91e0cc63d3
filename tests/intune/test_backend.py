"""Intune as remediation's integration: when a request may ask for a task, and why not.

The request form, the API and the service all ask `IntuneBackend.enabled()` /
`unavailable_reason()`: the connection must be on *and* its credentials configured.
"""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from intune.backend import IntuneBackend
from intune.models import IntuneTask
from remediation.hooks import integration
from remediation.models import RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

MISSING = "The Microsoft Intune connection is on, but its credentials are not configured"


@pytest.fixture
def no_secret(settings):
    settings.INTUNE_TENANT_ID = "contoso-tenant"
    settings.INTUNE_CLIENT_ID = "portal-client-id"
    settings.INTUNE_CLIENT_SECRET = ""


@pytest.fixture
def credentials(settings):
    settings.INTUNE_TENANT_ID = "contoso-tenant"
    settings.INTUNE_CLIENT_ID = "portal-client-id"
    settings.INTUNE_CLIENT_SECRET = "portal-client-secret"


@pytest.fixture
def servers_rec():
    rec = RecommendationFactory(name="Update Contoso Viewer")
    expose(rec, DeviceGroupFactory(name="Servers"), 3)
    return rec


def form_url(rec):
    return reverse("admin:recommendations_securityrecommendation_remediation_options", args=[rec.pk])


def form_post(**extra):
    return {
        "remediation_option": "software_update",
        "device_groups": [DeviceGroupFactory(name="Servers").pk],
        "priority": "high",
        "due_on": (timezone.localdate() + dt.timedelta(days=7)).isoformat(),
        **extra,
    }


def test_intune_is_the_registered_integration():
    assert isinstance(integration(), IntuneBackend)


@pytest.mark.parametrize(
    ("connection_on", "configured", "enabled", "reason"),
    [
        (False, True, False, "The Microsoft Intune connection is off"),
        (True, False, False, MISSING),
        (True, True, True, ""),
    ],
)
def test_a_task_can_be_asked_for_only_while_the_connection_is_on_and_configured(
    superuser, settings, connection_on, configured, enabled, reason
):
    from intune.services import intune_connection_set

    intune_connection_set(user=superuser, enabled=connection_on)
    settings.INTUNE_TENANT_ID, settings.INTUNE_CLIENT_ID = "t", "c"
    settings.INTUNE_CLIENT_SECRET = "s" if configured else ""

    assert IntuneBackend().enabled() is enabled
    assert IntuneBackend().unavailable_reason().startswith(reason)


def test_the_request_form_says_why_the_intune_option_is_unavailable(
    client, security_user, intune_on, no_secret, servers_rec
):
    client.force_login(security_user)

    html = client.get(form_url(servers_rec)).content.decode()

    assert "Create an Intune security task" not in html
    assert 'id="intune-unavailable"' in html
    assert MISSING in html
    assert "INTUNE_CLIENT_SECRET" in html


def test_a_form_asking_for_a_task_without_credentials_is_refused_and_creates_nothing(
    client, security_user, intune_on, no_secret, servers_rec
):
    client.force_login(security_user)

    response = client.post(form_url(servers_rec), form_post(create_intune_task="on"))

    assert response.status_code == 200
    assert MISSING in response.content.decode()
    assert RemediationActivity.objects.count() == 0


def test_with_credentials_the_form_offers_the_intune_option(client, security_user, intune_on, credentials, servers_rec):
    client.force_login(security_user)

    html = client.get(form_url(servers_rec)).content.decode()

    assert "Create an Intune security task" in html
    assert 'id="intune-unavailable"' not in html


def test_the_api_refuses_a_task_without_credentials_with_the_reason(security_user, intune_on, no_secret, servers_rec):
    api = APIClient()
    api.force_authenticate(security_user)
    body = {
        "recommendation": servers_rec.external_id,
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": (timezone.localdate() + dt.timedelta(days=7)).isoformat(),
        "device_groups": ["Servers"],
        "create_intune_task": True,
    }

    response = api.post("/api/v1/remediation-activities/", body, format="json")

    assert response.status_code == 400
    assert MISSING in response.json()["create_intune_task"][0]
    assert RemediationActivity.objects.count() == 0


def test_the_panel_never_says_0_of_0_devices(client, security_user):
    activity = make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=activity.pk).update(create_intune_task=True)
    IntuneTask.objects.create(activity=activity, last_error="Intune credentials are not configured")  # total unknown
    client.force_login(security_user)

    html = client.get(reverse("admin:remediation_remediationactivity_change", args=[activity.pk])).content.decode()

    assert "0 of 0" not in html
    assert "Only 0 of 3 devices were sent to Intune." in html


def test_the_panel_shows_unmanaged_devices_beside_the_cap(client, security_user):
    activity = make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=activity.pk).update(create_intune_task=True)
    IntuneTask.objects.create(
        activity=activity,
        graph_id="g-1",
        status="pending",
        devices_sent=10_000,
        devices_total=18_511,
        devices_not_managed=12,
        devices_without_aad_id=1,
    )
    client.force_login(security_user)

    html = client.get(reverse("admin:remediation_remediationactivity_change", args=[activity.pk])).content.decode()

    assert "Only 10,000 of 18,511 devices were sent to Intune." in html
    assert "At most 10,000 devices are sent to Intune with one task." in html
    assert "12 devices are not managed by Intune and were not sent." in html
    assert "1 device has no Entra ID device ID and was not sent to Intune." in html
