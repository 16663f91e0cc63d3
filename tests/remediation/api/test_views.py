"""The remediation-activity endpoints of DESIGN.md section 6: bodies, fields, status codes."""

import datetime as dt
import uuid

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from intune.models import IntuneConnection, IntuneTask
from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

API = "/api/v1/remediation-activities/"
TODAY = timezone.localdate()
NEXT_WEEK = TODAY + dt.timedelta(days=7)

ACTIVITY_FIELDS = {
    "id",
    "title",
    "description",
    "recommendation",
    "remediation_option",
    "category",
    "priority",
    "due_on",
    "requester_email",
    "requester_notes",
    "device_groups",
    "created_at",
    "status",
    "ticket_status",
    "it_notes",
    "completion_method",
    "completed_by",
    "completed_at",
    "target_devices",
    "fixed_devices",
    "progress",
    "create_intune_task",
    "intune",
}


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


@pytest.fixture
def servers_rec():
    rec = RecommendationFactory(external_id="va-_-contoso-_-widget", name="Update Contoso Widget")
    servers = DeviceGroupFactory(name="Servers")
    expose(rec, servers, 4)
    return rec


def create_body(**overrides):
    body = {
        "recommendation": "va-_-contoso-_-widget",
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": NEXT_WEEK.isoformat(),
        "device_groups": ["Servers"],
        "requester_notes": "Patch before the audit",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


# --- create ---------------------------------------------------------------------------------


def test_security_staff_create_answers_201_with_the_activity(security_user, servers_rec):
    response = client_for(security_user).post(API, create_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == ACTIVITY_FIELDS
    assert body["recommendation"] == {"id": "va-_-contoso-_-widget", "name": "Update Contoso Widget"}
    assert body["device_groups"] == ["Servers"]
    assert body["target_devices"] == 4
    assert body["fixed_devices"] == 0
    assert body["progress"] == 0
    assert body["ticket_status"] == "pending"
    assert body["status"] == "active"
    assert body["requester_email"] == "sec@example.com"
    assert body["requester_notes"] == "Patch before the audit"
    assert body["due_on"] == NEXT_WEEK.isoformat()
    assert body["intune"] is None
    activity = RemediationActivity.objects.get(pk=body["id"])
    assert activity.devices.count() == 4
    assert list(activity.events.values_list("kind", flat=True)) == ["created"]


def test_attention_required_is_created_without_due_date_and_shows_no_progress(security_user, servers_rec):
    response = client_for(security_user).post(
        API, create_body(remediation_option="attention_required", due_on=...), format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["progress"] is None
    assert response.json()["due_on"] is None
    assert response.json()["ticket_status"] == ""


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"recommendation": "va-_-nobody-_-nothing"}, "recommendation"),
        ({"recommendation": ...}, "recommendation"),
        ({"remediation_option": "reboot"}, "remediation_option"),
        ({"remediation_option": "configuration_change"}, "remediation_option"),
        ({"priority": "urgent"}, "priority"),
        ({"due_on": "next tuesday"}, "due_on"),
        ({"due_on": ...}, "due_on"),
        ({"due_on": (TODAY - dt.timedelta(days=1)).isoformat()}, "due_on"),
        ({"remediation_option": "attention_required"}, "due_on"),
        ({"device_groups": []}, "device_groups"),
        ({"device_groups": ["No such group"]}, "device_groups"),
        ({"device_groups": "Servers"}, "device_groups"),
        ({"create_intune_task": True}, "create_intune_task"),
        ({"create_intune_task": "maybe"}, "create_intune_task"),
    ],
)
def test_create_with_a_bad_body_answers_400_naming_the_field_and_creates_nothing(
    security_user, servers_rec, overrides, field
):
    response = client_for(security_user).post(API, create_body(**overrides), format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert RemediationActivity.objects.count() == 0


def test_create_refuses_groups_without_exposed_devices(security_user, servers_rec):
    DeviceGroupFactory(name="Empty")
    response = client_for(security_user).post(API, create_body(device_groups=["Empty"]), format="json")

    assert response.status_code == 400
    assert "nothing to remediate" in response.json()["device_groups"][0]
    assert RemediationActivity.objects.count() == 0


def test_create_intune_task_is_accepted_while_the_connection_is_on(security_user, servers_rec, settings):
    settings.INTUNE_TENANT_ID = settings.INTUNE_CLIENT_ID = settings.INTUNE_CLIENT_SECRET = "configured"
    IntuneConnection.objects.update_or_create(pk=1, defaults={"enabled": True})

    response = client_for(security_user).post(API, create_body(create_intune_task=True), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["create_intune_task"] is True


def test_it_staff_may_not_create(it_user, servers_rec):
    response = client_for(it_user).post(API, create_body(), format="json")

    assert response.status_code == 403
    assert "security staff" in response.json()["detail"]
    assert RemediationActivity.objects.count() == 0


def test_a_body_that_is_not_json_answers_400(security_user, servers_rec):
    response = client_for(security_user).post(API, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert RemediationActivity.objects.count() == 0


# --- detail, devices, events ----------------------------------------------------------------


def test_detail_shows_completed_by_labels_and_intune_status(security_user, it_user):
    activity = make_activity(user=security_user)
    synced = timezone.now()
    IntuneTask.objects.create(
        activity=activity, graph_id="g-1", status="active", devices_sent=3, devices_total=3, last_synced_at=synced
    )
    client = client_for(it_user)

    body = client.get(f"{API}{activity.pk}/").json()
    assert body["intune"] == {
        "status": "active",
        "devices_sent": 3,
        "devices_total": 3,
        "last_synced_at": synced.isoformat().replace("+00:00", "Z"),
        "last_error": "",
    }
    assert body["completed_by"] == ""

    client.post(f"{API}{activity.pk}/complete/", {}, format="json")
    assert client.get(f"{API}{activity.pk}/").json()["completed_by"] == "it@example.com"

    RemediationActivity.objects.filter(pk=activity.pk).update(completion_method="automatic")
    assert client.get(f"{API}{activity.pk}/").json()["completed_by"] == "System confirmation"
    RemediationActivity.objects.filter(pk=activity.pk).update(completion_method="unknown")
    assert client.get(f"{API}{activity.pk}/").json()["completed_by"] == "Not available"


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", str(uuid.uuid4()), "export"])
def test_unknown_or_malformed_ids_answer_json_404(security_user, bad_id):
    client = client_for(security_user)
    for path in ("", "devices/", "events/"):
        response = client.get(f"{API}{bad_id}/{path}")
        assert response.status_code == 404, path
        assert "detail" in response.json()
    response = client.post(f"{API}{bad_id}/complete/", {}, format="json")
    assert response.status_code == 404


def test_devices_list_their_status_and_can_be_filtered(security_user, it_user):
    activity = make_activity(user=security_user, devices=3)
    fixed = activity.devices.select_related("device").first()
    ActivityDevice.objects.filter(pk=fixed.pk).update(status="remediated", remediated_at=timezone.now())
    client = client_for(it_user)

    items = client.get(f"{API}{activity.pk}/devices/").json()["results"]
    assert len(items) == 3
    assert set(items[0]) == {
        "device_id",
        "device_name",
        "os_platform",
        "device_group",
        "status",
        "remediated_at",
        "sent_to_intune",
    }
    assert {i["device_group"] for i in items} == {"Servers"}

    remediated = client.get(f"{API}{activity.pk}/devices/?status=remediated").json()["results"]
    assert [i["device_id"] for i in remediated] == [fixed.device.machine_id]
    assert remediated[0]["remediated_at"] is not None
    assert client.get(f"{API}{activity.pk}/devices/?status=broken").status_code == 400


def test_events_tell_the_history_with_actors(security_user, it_user):
    activity = make_activity(user=security_user, requester_notes="please")
    client = client_for(it_user)
    client.post(f"{API}{activity.pk}/approve/", {"notes": "Friday"}, format="json")
    client.post(f"{API}{activity.pk}/complete/", {"notes": "done"}, format="json")

    events = client.get(f"{API}{activity.pk}/events/").json()["results"]

    assert [(e["kind"], e["actor"], e["notes"]) for e in events] == [
        ("created", "sec@example.com", "please"),
        ("approved", "it@example.com", "Friday"),
        ("completed", "it@example.com", "done"),
    ]
    assert all(e["at"] for e in events)


# --- transitions ----------------------------------------------------------------------------


def test_it_staff_approve_with_notes_and_the_decision_is_queued_for_intune(security_user, it_user):
    activity = make_activity(user=security_user)
    IntuneTask.objects.create(activity=activity, graph_id="g-1")

    response = client_for(it_user).post(f"{API}{activity.pk}/approve/", {"notes": "Go"}, format="json")

    assert response.status_code == 200
    assert response.json()["ticket_status"] == "approved"
    assert response.json()["it_notes"] == "Go"
    assert activity.events.filter(kind="approved", actor_label="it@example.com").exists()
    task = IntuneTask.objects.get(activity=activity)
    assert (task.pending_status, task.pending_note) == ("active", "Go")


def test_reject_needs_notes(security_user, it_user):
    activity = make_activity(user=security_user)
    client = client_for(it_user)

    response = client.post(f"{API}{activity.pk}/reject/", {"notes": "  "}, format="json")
    assert response.status_code == 400
    assert "notes" in response.json()
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"
    assert not activity.events.filter(kind="rejected").exists()

    response = client.post(f"{API}{activity.pk}/reject/", {"notes": "Not on prod"}, format="json")
    assert response.status_code == 200
    assert response.json()["ticket_status"] == "rejected"
    assert response.json()["it_notes"] == "Not on prod"


def test_the_creator_cannot_approve_their_own_request(superuser):
    activity = make_activity(user=superuser)

    response = client_for(superuser).post(f"{API}{activity.pk}/approve/", {}, format="json")

    assert response.status_code == 403
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"


def test_security_staff_may_complete_but_not_decide(security_user):
    activity = make_activity(user=security_user)
    client = client_for(security_user)

    assert client.post(f"{API}{activity.pk}/approve/", {}, format="json").status_code == 403
    assert client.post(f"{API}{activity.pk}/reject/", {"notes": "x"}, format="json").status_code == 403
    response = client.post(f"{API}{activity.pk}/complete/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert response.json()["completion_method"] == "manual"
    assert response.json()["completed_by"] == "sec@example.com"


def test_completed_activities_answer_409_to_every_transition(security_user, it_user):
    activity = make_activity(user=security_user)
    client = client_for(it_user)
    assert client.post(f"{API}{activity.pk}/complete/", {}, format="json").status_code == 200

    for action, body in (("approve", {}), ("reject", {"notes": "late"}), ("complete", {})):
        response = client.post(f"{API}{activity.pk}/{action}/", body, format="json")
        assert response.status_code == 409, action
        assert "completed" in response.json()["detail"]
    assert activity.events.filter(kind="completed").count() == 1


def test_a_decided_request_cannot_be_decided_again(security_user, it_user):
    activity = make_activity(user=security_user)
    client = client_for(it_user)
    client.post(f"{API}{activity.pk}/approve/", {}, format="json")

    response = client.post(f"{API}{activity.pk}/reject/", {"notes": "changed my mind"}, format="json")

    assert response.status_code == 409
    activity.refresh_from_db()
    assert activity.ticket_status == "approved"


def test_attention_required_has_no_ticket_to_approve(security_user, it_user):
    activity = make_activity(user=security_user, remediation_option="attention_required")

    response = client_for(it_user).post(f"{API}{activity.pk}/approve/", {}, format="json")

    assert response.status_code == 409


def test_get_never_changes_state(security_user, it_user):
    activity = make_activity(user=security_user)

    assert client_for(it_user).get(f"{API}{activity.pk}/approve/").status_code == 405
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"


# --- role without view permission -----------------------------------------------------------


def test_a_user_without_a_role_is_refused(security_user):
    make_activity(user=security_user)
    nobody = UserFactory(username="nobody")

    assert client_for(nobody).get(API).status_code == 403
    assert client_for(nobody).get(API + "export.csv").status_code == 403


def test_exports_need_the_export_permission(security_user):
    activity = make_activity(user=security_user)
    viewer = UserFactory(username="viewer")
    group = Group.objects.create(name="Viewers")
    group.permissions.set(Group.objects.get(name="Security staff").permissions.exclude(codename="export_activity"))
    viewer.groups.add(group)
    client = client_for(viewer)

    assert client.get(API).status_code == 200
    assert client.get(API + "export.csv").status_code == 403
    assert client.get(f"{API}{activity.pk}/devices.csv").status_code == 403


# --- events of completion by the system keep their label -------------------------------------


def test_system_events_show_system_as_actor(security_user, it_user):
    activity = make_activity(user=security_user)
    ActivityEvent.objects.create(activity=activity, kind="completed", actor=None, actor_label="System")

    events = client_for(it_user).get(f"{API}{activity.pk}/events/").json()["results"]

    assert events[-1]["actor"] == "System"


@pytest.mark.parametrize(
    "overrides",
    [{"recommendation": "va\x00"}, {"device_groups": ["Serv\x00ers"]}, {"requester_notes": "a\x00b"}],
)
def test_nul_characters_in_a_body_answer_400_on_every_database(security_user, servers_rec, overrides):
    response = client_for(security_user).post(API, create_body(**overrides), format="json")

    assert response.status_code == 400
    assert set(response.json()) == set(overrides)
    assert RemediationActivity.objects.count() == 0


def test_nul_characters_in_filters_answer_400(security_user):
    client = client_for(security_user)
    for query in ("search=a%00", "device_group=a%00"):
        assert client.get(f"{API}?{query}").status_code == 400
        assert client.get(f"{API}export.csv?{query}").status_code == 400


def test_a_scoped_requester_cannot_target_a_group_outside_their_scope(scoped_security_user, servers_rec):
    laptops = DeviceGroupFactory(name="Laptops")
    expose(servers_rec, laptops, 2)
    body = {
        "recommendation": servers_rec.external_id,
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": NEXT_WEEK.isoformat(),
        "device_groups": ["Servers", "Laptops"],
    }

    response = client_for(scoped_security_user).post(API, body, format="json")

    assert response.status_code == 400
    assert "Laptops" in " ".join(response.json()["device_groups"])
    assert RemediationActivity.objects.count() == 0
    # Its own group alone is fine.
    body["device_groups"] = ["Servers"]
    assert client_for(scoped_security_user).post(API, body, format="json").status_code == 201


def test_a_duplicate_request_answers_409_with_the_existing_id_until_confirmed(security_user):
    rec = RecommendationFactory(external_id="va-_-contoso-_-widget")
    expose(rec, DeviceGroupFactory(name="Servers"), 2)
    body = {
        "recommendation": "va-_-contoso-_-widget",
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": NEXT_WEEK.isoformat(),
        "device_groups": ["Servers"],
    }
    client = APIClient()
    client.force_authenticate(security_user)
    first = client.post(API, body, format="json")
    assert first.status_code == 201

    duplicate = client.post(API, body, format="json")

    assert duplicate.status_code == 409
    assert duplicate.json()["existing_activity_id"] == first.json()["id"]
    assert "already active" in duplicate.json()["detail"]
    assert RemediationActivity.objects.count() == 1
    confirmed = client.post(API, {**body, "confirm_duplicate": True}, format="json")
    assert confirmed.status_code == 201
    assert confirmed.json()["id"] != first.json()["id"]
