"""The security recommendations pages and the remediation request form ('Remediation options')."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from intune.models import IntuneConnection
from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
NEXT_WEEK = TODAY + dt.timedelta(days=7)


def form_url(rec):
    return reverse("admin:recommendations_securityrecommendation_remediation_options", args=[rec.pk])


@pytest.fixture
def security_client(client, security_user):
    client.force_login(security_user)
    return client


@pytest.fixture
def exposed():
    """A software recommendation exposed on 3 Servers and 2 Laptops; an empty 'Kiosks' group."""
    rec = RecommendationFactory(name="Update Contoso Viewer", product_name="viewer", vendor="contoso")
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    DeviceGroupFactory(name="Kiosks")
    return rec


def post_data(**overrides):
    data = {
        "remediation_option": "software_update",
        "device_groups": [DeviceGroupFactory(name="Servers").pk],
        "priority": "high",
        "due_on": NEXT_WEEK.isoformat(),
        "requester_notes": "Patch Tuesday",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_recommendation_changelist_shows_columns_and_open_activities(security_client, security_user, exposed):
    RecommendationFactory(name="Quiet recommendation")
    make_activity(user=security_user, recommendation=exposed, groups=[DeviceGroupFactory(name="Servers")])

    response = security_client.get(reverse("admin:recommendations_securityrecommendation_changelist"))

    assert response.status_code == 200
    rows = {r.name: r for r in response.context["cl"].result_list}
    assert rows["Update Contoso Viewer"].open_activities == 1
    assert rows["Quiet recommendation"].open_activities == 0
    html = response.content.decode()
    for header in ("Exposed devices", "Open activities", "Threats", "Severity", "Remediation type"):
        assert header in html


def test_recommendation_changelist_search_and_filter(security_client, exposed):
    RecommendationFactory(name="Disable SMBv1", remediation_type="ConfigurationChange", category="Network")
    url = reverse("admin:recommendations_securityrecommendation_changelist")

    found = security_client.get(url, {"q": "viewer"}).context["cl"].result_list
    assert [r.name for r in found] == ["Update Contoso Viewer"]
    config = security_client.get(url, {"remediation_type__exact": "ConfigurationChange"}).context["cl"].result_list
    assert [r.name for r in config] == ["Disable SMBv1"]


def test_recommendation_page_offers_remediation_options_to_security_staff_only(client, security_user, it_user, exposed):
    change_url = reverse("admin:recommendations_securityrecommendation_change", args=[exposed.pk])
    client.force_login(security_user)
    assert form_url(exposed) in client.get(change_url).content.decode()

    client.force_login(it_user)
    page = client.get(change_url)
    assert page.status_code == 200
    assert form_url(exposed) not in page.content.decode()
    assert client.get(form_url(exposed)).status_code == 403


def test_request_form_offers_fitting_options_and_groups_with_exposed_counts(security_client, exposed):
    response = security_client.get(form_url(exposed))

    assert response.status_code == 200
    form = response.context["form"]
    assert [v for v, _ in form.fields["remediation_option"].choices] == [
        "software_update",
        "software_uninstall",
        "attention_required",
    ]
    html = response.content.decode()
    assert "Servers (3 exposed devices)" in html
    assert "Laptops (2 exposed devices)" in html
    assert "Kiosks (0 exposed devices)" in html
    assert "Create an Intune security task" not in html  # the connection is off


def test_configuration_recommendation_offers_configuration_change(security_client):
    rec = RecommendationFactory(remediation_type="ConfigurationChange")
    form = security_client.get(form_url(rec)).context["form"]
    assert [v for v, _ in form.fields["remediation_option"].choices] == ["configuration_change", "attention_required"]


def test_intune_checkbox_shown_only_while_connection_is_on(security_client, exposed, settings):
    settings.INTUNE_TENANT_ID = settings.INTUNE_CLIENT_ID = settings.INTUNE_CLIENT_SECRET = "configured"
    IntuneConnection.objects.update_or_create(pk=1, defaults={"enabled": True})
    assert "Create an Intune security task" in security_client.get(form_url(exposed)).content.decode()


def test_submitting_creates_the_activity_and_lands_on_its_page(security_client, exposed):
    response = security_client.post(form_url(exposed), post_data(), follow=True)

    activity = RemediationActivity.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:remediation_remediationactivity_change", args=[activity.pk])
    assert activity.target_devices == 3
    assert activity.requester_notes == "Patch Tuesday"
    assert list(activity.device_groups.values_list("name", flat=True)) == ["Servers"]
    assert ActivityDevice.objects.filter(activity=activity).count() == 3
    assert list(ActivityEvent.objects.filter(activity=activity).values_list("kind", flat=True)) == ["created"]
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Remediation activity \u201cUpdate Contoso Viewer\u201d created for 3 devices."]


def test_submitting_with_intune_task_while_on(security_client, exposed, settings):
    settings.INTUNE_TENANT_ID = settings.INTUNE_CLIENT_ID = settings.INTUNE_CLIENT_SECRET = "configured"
    IntuneConnection.objects.update_or_create(pk=1, defaults={"enabled": True})
    security_client.post(form_url(exposed), post_data(create_intune_task="on"))
    assert RemediationActivity.objects.get().create_intune_task is True


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"due_on": (TODAY - dt.timedelta(days=1)).isoformat()}, "due_on", "today or later"),
        ({"due_on": ""}, "due_on", "A due date is required"),
        ({"remediation_option": "attention_required"}, "due_on", "have no due date"),
        ({"device_groups": None}, "device_groups", "Select at least one device group"),
        ({"device_groups": "KIOSKS"}, "device_groups", "No device in the selected device groups"),
        ({"create_intune_task": "on"}, None, "Intune connection is off"),
        ({"remediation_option": "configuration_change"}, "remediation_option", "Select a valid choice"),
        ({"priority": "urgent"}, "priority", "Select a valid choice"),
    ],
)
def test_bad_input_is_a_form_error_and_creates_nothing(security_client, exposed, overrides, field, message):
    if overrides.get("device_groups") == "KIOSKS":
        overrides["device_groups"] = [DeviceGroupFactory(name="Kiosks").pk]

    response = security_client.post(form_url(exposed), post_data(**overrides))

    assert response.status_code == 200
    form = response.context["form"]
    errors = form.errors.get(field or "__all__", [])
    assert any(message in e for e in errors), form.errors
    assert message in response.content.decode()
    assert RemediationActivity.objects.count() == 0
    assert ActivityDevice.objects.count() == 0


def test_attention_required_without_due_date_is_accepted(security_client, exposed):
    security_client.post(form_url(exposed), post_data(remediation_option="attention_required", due_on=""))
    activity = RemediationActivity.objects.get()
    assert activity.due_on is None
    assert activity.ticket_status == ""


def test_scoped_requester_sees_and_may_target_only_their_groups(client, it_group, exposed):
    """A requester without 'view all device groups' is offered only the groups of their scope."""
    user = UserFactory(username="scoped-requester")
    user.groups.add(it_group)
    user.user_permissions.add(
        Permission.objects.get(codename="add_remediationactivity"),
        Permission.objects.get(codename="view_securityrecommendation"),
    )
    client.force_login(user)

    form = client.get(form_url(exposed)).context["form"]
    assert sorted(g.name for g in form.fields["device_groups"].queryset) == ["Servers", "Workstations"]

    laptops = DeviceGroupFactory(name="Laptops")
    response = client.post(form_url(exposed), post_data(device_groups=[laptops.pk]))
    assert "device_groups" in response.context["form"].errors
    assert RemediationActivity.objects.count() == 0


def test_unknown_recommendation_is_404(security_client):
    assert security_client.get(form_url(type("R", (), {"pk": 999999})())).status_code == 404


def test_a_duplicate_request_is_warned_about_and_filed_only_when_confirmed(security_client, security_user, exposed):
    servers = DeviceGroupFactory(name="Servers")
    existing = make_activity(user=security_user, recommendation=exposed, groups=[servers])

    warned = security_client.post(form_url(exposed), post_data())

    assert warned.status_code == 200
    html = warned.content.decode()
    assert "is already active for this recommendation and device group Servers" in html
    assert reverse("admin:remediation_remediationactivity_change", args=[existing.pk]) in html
    assert 'name="confirm_duplicate"' in html
    assert RemediationActivity.objects.count() == 1

    unticked = security_client.post(form_url(exposed), post_data())
    assert unticked.status_code == 200
    assert RemediationActivity.objects.count() == 1

    confirmed = security_client.post(form_url(exposed), post_data(confirm_duplicate="on"))
    assert confirmed.status_code == 302
    assert RemediationActivity.objects.count() == 2


# --- the recommendation page and the form's defaults (issue 17) ------------------------------------


def rec_url(rec):
    return reverse("admin:recommendations_securityrecommendation_change", args=[rec.pk])


def test_the_recommendation_page_is_read_only_and_puts_the_requests_first(security_client, exposed):
    html = security_client.get(rec_url(exposed)).content.decode()
    assert 'name="_save"' not in html  # Defender's data is not edited here
    assert 'name="name"' not in html
    tools = html[html.index('class="object-tools"') :]
    assert tools.index('id="remediation-options"') < tools.index('id="exception-options"')
    assert ">Request remediation<" in tools
    assert security_client.post(rec_url(exposed), {"name": "Renamed", "severity_score": "1"}).status_code == 403
    exposed.refresh_from_db()
    assert exposed.name == "Update Contoso Viewer"


def test_the_recommendation_page_shows_exposed_devices_by_group_in_scope_and_open_activities(
    client, security_user, it_user, exposed
):
    servers = DeviceGroupFactory(name="Servers")
    activity = make_activity(user=security_user, recommendation=exposed, groups=[servers])
    client.force_login(security_user)
    html = client.get(rec_url(exposed)).content.decode()
    panel = html[html.index('id="exposed-by-group"') : html.index('id="open-activities"')]
    assert "<td>Servers</td><td>3</td>" in panel
    assert "<td>Laptops</td><td>2</td>" in panel
    assert activity.title in html[html.index('id="open-activities"') :]

    client.force_login(it_user)  # sees Servers and Workstations only
    html = client.get(rec_url(exposed)).content.decode()
    panel = html[html.index('id="exposed-by-group"') : html.index('id="open-activities"')]
    assert "<td>Servers</td><td>3</td>" in panel
    assert "Laptops" not in panel


def test_the_form_proposes_uninstall_for_an_uninstall_recommendation(security_client):
    rec = RecommendationFactory(name="Uninstall Flash", remediation_type="Uninstall")
    expose(rec, DeviceGroupFactory(name="Servers"), 1)
    form = security_client.get(form_url(rec)).context["form"]
    assert form["remediation_option"].initial == "software_uninstall"
    update = RecommendationFactory(name="Update Viewer", remediation_type="Update")
    assert security_client.get(form_url(update)).context["form"]["remediation_option"].initial == "software_update"


def test_groups_with_no_exposed_device_cannot_be_chosen(security_client, exposed):
    html = security_client.get(form_url(exposed)).content.decode()
    kiosks = DeviceGroupFactory(name="Kiosks")
    servers = DeviceGroupFactory(name="Servers")
    boxes = {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<input[^>]*name="device_groups"[^>]*value="(\d+)"[^>]*>', html)
    }
    assert "disabled" in boxes[kiosks.pk]
    assert "disabled" not in boxes[servers.pk]
    response = security_client.post(form_url(exposed), post_data(device_groups=[kiosks.pk]))
    assert not RemediationActivity.objects.exists()  # a forged tick is still refused by the service
    assert response.status_code == 200
