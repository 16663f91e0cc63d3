"""The Intune sync against the HTTPS Graph fake: push, recovery, pull, send back, toggle, errors."""

import datetime as dt
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from intune.models import IntuneTask
from intune.services import intune_connection_set, intune_push, intune_sync
from recommendations.models import Device, Exposure
from remediation.models import ActivityDevice, ActivityEvent
from remediation.services import activity_approve, activity_reject
from tests.intune.graph_fake import MANAGED_DEVICES, TASKS, TENANT
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

TASK_ID = rf"{TASKS}/[^/]+"


def bulk_expose(recommendation, group, count: int, *, without_aad_id: int = 0) -> None:
    """`count` exposed devices in `group`, the last `without_aad_id` of them without an Entra ID device id."""
    now = timezone.now()
    Device.objects.bulk_create(
        [
            Device(
                machine_id=f"{group.pk:08x}{i:032x}",
                computer_dns_name=f"pc-{i:05d}.corp.example",
                device_group=group,
                aad_device_id="" if i >= count - without_aad_id else f"00000000-0000-4000-8000-{i:012d}",
                last_seen=now,
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    Exposure.objects.bulk_create(
        [
            Exposure(recommendation=recommendation, device_id=pk, first_seen=now, last_seen=now)
            for pk in Device.objects.filter(device_group=group).values_list("pk", flat=True)
        ],
        batch_size=2000,
    )
    recommendation.exposed_devices = count
    recommendation.save(update_fields=["exposed_devices"])


def request_with_intune(user, *, devices: int = 3, **kwargs):
    return make_activity(user=user, devices=devices, create_intune_task=True, **kwargs)


def test_push_sends_one_task_with_at_most_10000_devices_and_the_contract_fields(graph, intune_on, security_user):
    rec = RecommendationFactory(
        name="Update Microsoft Silverlight",
        product_name="silverlight",
        vendor="microsoft",
        recommended_version="5.1.50918.0",
    )
    group = DeviceGroupFactory(name="Servers")
    bulk_expose(rec, group, 10_050)
    activity = make_activity(
        user=security_user,
        recommendation=rec,
        groups=[group],
        create_intune_task=True,
        priority="medium",
        requester_notes="Please patch before the audit.",
    )

    call_command("intune_sync")

    # One token, the managed-device look-ups (15 Entra ID device ids each), one create, nothing else:
    # the create's answer carries the task, so it is not read back in the same sync.
    lookups = -(-10_000 // 15)
    assert [(r.method, r.path) for r in graph.requests] == [
        ("POST", f"/{TENANT}/oauth2/v2.0/token"),
        *[("GET", MANAGED_DEVICES)] * lookups,
        ("POST", TASKS),
    ]
    assert graph.device_lookups[0].query == {
        "$filter": " or ".join(f"azureADDeviceId eq '00000000-0000-4000-8000-{i:012d}'" for i in range(15)),
        "$select": "id,azureADDeviceId,deviceName,lastSyncDateTime",
    }
    assert max(r.url_length for r in graph.device_lookups) <= 2048
    body = graph.creates[0].body
    assert body["@odata.type"] == "#microsoft.graph.appVulnerabilityTask"
    assert body["displayName"] == activity.title
    assert body["description"]
    assert body["category"] == "advancedThreatProtection"
    assert body["priority"] == "none"  # medium maps to Graph's "none"
    assert body["creator"] == "sec@example.com"
    assert body["creatorNotes"] == "Please patch before the audit."
    assert body["status"] == "pending"
    assert body["mitigationType"] == "update"
    assert (body["appName"], body["appPublisher"], body["appVersion"]) == ("silverlight", "microsoft", "5.1.50918.0")
    assert body["dueDateTime"].startswith(activity.due_on.isoformat())
    assert body["managedDeviceCount"] == 10_000
    assert body["mobileAppCount"] == 0
    assert "Update microsoft silverlight to version 5.1.50918.0" in body["remediation"]
    assert "Update Microsoft Silverlight" in body["insights"]
    assert len(body["managedDevices"]) == 10_000
    first = "00000000-0000-4000-8000-000000000000"
    assert body["managedDevices"][0] == {
        "id": first,  # the Entra ID device id
        "managedDeviceId": graph.managed_device(first)["id"],  # Intune's id for it
        "displayName": graph.managed_device(first)["deviceName"],
        "lastSyncDateTime": graph.managed_device(first)["lastSyncDateTime"],
    }
    assert len({d["managedDeviceId"] for d in body["managedDevices"]}) == 10_000
    # The token went with the call and was fetched over the trusted private CA.
    assert graph.creates[0].headers["Authorization"] == "Bearer token-1"

    task = IntuneTask.objects.get(activity=activity)
    assert task.graph_id == next(iter(graph.tasks))
    assert (task.devices_sent, task.devices_total) == (10_000, 10_050)
    assert task.status == "pending"
    assert task.last_error == ""
    assert ActivityDevice.objects.filter(activity=activity, sent_to_intune=True).count() == 10_000
    assert activity.events.filter(kind="intune_task_created").count() == 1


def test_a_second_sync_neither_creates_again_nor_asks_for_a_new_token(graph, intune_on, security_user):
    request_with_intune(security_user)

    intune_sync()
    intune_sync()

    assert len(graph.creates) == 1
    assert len(graph.token_requests) == 1
    # The first sync does not read back the task it created; the second one reads it.
    assert len(graph.calls("GET", TASK_ID)) == 1


def test_devices_without_an_entra_id_are_counted_not_sent(graph, intune_on, security_user):
    rec = RecommendationFactory()
    group = DeviceGroupFactory(name="Servers")
    bulk_expose(rec, group, 5, without_aad_id=2)
    activity = make_activity(user=security_user, recommendation=rec, groups=[group], create_intune_task=True)

    intune_sync()

    task = IntuneTask.objects.get(activity=activity)
    assert (task.devices_sent, task.devices_total, task.devices_without_aad_id) == (3, 5, 2)
    assert [d["id"] for d in graph.creates[0].body["managedDevices"]] == [
        f"00000000-0000-4000-8000-{i:012d}" for i in range(3)
    ]
    assert set(
        ActivityDevice.objects.filter(activity=activity, sent_to_intune=False).values_list(
            "device__aad_device_id", flat=True
        )
    ) == {""}


def test_configuration_change_creates_a_security_configuration_task(graph, intune_on, security_user):
    rec = RecommendationFactory(remediation_type="ConfigurationChange", category="SecurityControls")
    activity = request_with_intune(
        security_user, recommendation=rec, remediation_option="configuration_change", priority="low"
    )

    intune_sync()

    body = graph.creates[0].body
    assert body["@odata.type"] == "#microsoft.graph.securityConfigurationTask"
    assert "mitigationType" not in body  # securityConfigurationTask declares none (Graph would answer 400)
    assert body["priority"] == "low"
    assert "appName" not in body
    assert IntuneTask.objects.get(activity=activity).graph_id


def test_activities_without_the_intune_option_are_not_sent(graph, intune_on, security_user):
    make_activity(user=security_user)

    result = intune_sync()

    assert result.ok
    assert graph.requests == []


def test_with_the_toggle_off_a_sync_makes_no_request_at_all(graph, intune_on, superuser, security_user):
    activity = request_with_intune(security_user)
    intune_connection_set(user=superuser, enabled=False)

    call_command("intune_sync")

    assert graph.requests == []
    assert not IntuneTask.objects.filter(activity=activity).exclude(graph_id="").exists()
    assert intune_push(activity_id=activity.pk) is None
    assert graph.requests == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_turning_the_toggle_off_mid_sync_stops_further_calls(graph, superuser, security_user):
    intune_connection_set(user=superuser, enabled=True)
    # Committed data: the requests are pushed as soon as they are filed (tasks run in-process).
    first = request_with_intune(security_user)
    second = request_with_intune(security_user)
    assert len(graph.creates) == 2
    assert IntuneTask.objects.filter(activity__in=[first, second]).exclude(graph_id="").count() == 2
    # The first read is slow; an admin turns the connection off meanwhile.
    graph.slow("GET", TASK_ID, seconds=1.5)

    def turn_off():
        try:
            intune_connection_set(user=superuser, enabled=False)
        finally:
            connection.close()

    timer = threading.Timer(0.3, turn_off)
    timer.start()
    result = intune_sync()
    timer.join()

    assert result.stopped
    assert len(graph.calls("GET", TASK_ID)) == 1  # the call in flight finished; nothing was sent after it


def test_throttled_create_waits_for_retry_after_then_creates_exactly_one_task(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    graph.fail("POST", TASKS, status=429, headers={"Retry-After": "2"})

    started = time.monotonic()
    call_command("intune_sync")

    creates = graph.creates
    assert len(creates) == 2  # the throttled one and the one that worked
    assert creates[1].at - creates[0].at >= 2.0
    assert time.monotonic() - started >= 2.0
    assert len(graph.tasks) == 1
    assert IntuneTask.objects.get(activity=activity).graph_id == next(iter(graph.tasks))


def test_a_server_error_on_the_create_is_shown_and_the_next_sync_looks_before_it_creates(
    graph, intune_on, security_user
):
    activity = request_with_intune(security_user)
    graph.fail("POST", TASKS, status=500)

    with pytest.raises(CommandError, match="HTTP 500"):
        call_command("intune_sync")

    task = IntuneTask.objects.get(activity=activity)
    assert "HTTP 500" in task.last_error
    assert task.attempts == 1
    assert task.graph_id == ""
    assert graph.tasks == {}
    assert len(graph.creates) == 1  # not repeated: the task may exist all the same
    assert activity.events.filter(kind="intune_error").count() == 1

    call_command("intune_sync")

    task.refresh_from_db()
    assert task.last_error == ""
    assert task.graph_id
    assert len(graph.tasks) == 1
    assert len(graph.creates) == 2


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_error_after_graph_created_the_task_is_recovered_not_repeated(
    graph, intune_on, security_user, status
):
    activity = request_with_intune(security_user)
    graph.fail_after_create(status)

    with pytest.raises(CommandError, match=f"HTTP {status}"):
        call_command("intune_sync")
    assert len(graph.tasks) == 1
    assert IntuneTask.objects.get(activity=activity).graph_id == ""

    call_command("intune_sync")

    assert len(graph.tasks) == 1  # found by the next sync, never created twice
    assert len(graph.creates) == 1
    assert IntuneTask.objects.get(activity=activity).graph_id == next(iter(graph.tasks))


def test_a_client_error_is_recorded_and_not_retried(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    graph.fail("POST", TASKS, status=400)

    result = intune_sync()

    assert not result.ok
    assert len(graph.creates) == 1
    assert "HTTP 400" in IntuneTask.objects.get(activity=activity).last_error


def test_lost_answer_after_graph_created_the_task_is_recovered_not_repeated(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    graph.drop_after_create()

    first = intune_sync()

    assert not first.ok
    assert len(graph.tasks) == 1  # Graph made it; the portal never heard back
    task = IntuneTask.objects.get(activity=activity)
    assert task.graph_id == ""
    assert task.push_started_at is not None

    second = intune_sync()

    assert second.recovered == 1
    task.refresh_from_db()
    assert task.graph_id == next(iter(graph.tasks))
    assert len(graph.creates) == 1
    lookup = graph.calls("GET", TASKS)[0]
    assert lookup.query["$filter"] == f"displayName eq '{activity.title}' and creator eq 'sec@example.com'"
    assert ActivityDevice.objects.filter(activity=activity, sent_to_intune=True).count() == 3


def test_a_crash_after_graph_answered_is_recovered_by_looking_the_task_up(graph, intune_on, security_user):
    """The process died between Graph's answer and storing the id: the push was marked started."""
    activity = request_with_intune(security_user)
    other = request_with_intune(
        security_user, recommendation=activity.recommendation, groups=list(activity.device_groups.all())
    )
    assert other.title == activity.title  # same displayName and creator: the look-up must tell them apart
    intune_push(activity_id=other.pk)
    # What the crashed run had done: marked the push started; Graph created the task.
    from intune.payload import select_devices, task_body
    from intune.services.push import client_for_sync

    IntuneTask.objects.create(activity=activity, push_started_at=timezone.now())
    created = graph.add_task(task_body(activity, select_devices(activity, client_for_sync())))

    intune_sync()

    assert IntuneTask.objects.get(activity=activity).graph_id == created["id"]
    assert len(graph.creates) == 1  # only `other`'s
    assert len(graph.tasks) == 2


def test_a_slow_create_times_out_and_the_next_sync_finds_the_task(graph, intune_on, security_user, settings):
    settings.INTUNE_HTTP_TIMEOUT = 0.5
    activity = request_with_intune(security_user)
    graph.slow("POST", TASKS, seconds=1.5)

    first = intune_sync()

    assert "no answer" in first.failures[0]
    time.sleep(1.2)  # the fake finishes creating it
    intune_sync()

    assert len(graph.creates) == 1
    assert IntuneTask.objects.get(activity=activity).graph_id == next(iter(graph.tasks))


def test_intune_decisions_reach_the_activity_once_each(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    intune_sync()
    graph_id = IntuneTask.objects.get(activity=activity).graph_id

    graph.admin_sets(graph_id, status="active")
    intune_sync()
    activity.refresh_from_db()
    assert activity.ticket_status == "approved"
    assert activity.status == "active"

    graph.admin_sets(graph_id, status="completed", assigned_to="jane.admin@contoso.com")
    intune_sync()
    intune_sync()
    activity.refresh_from_db()
    assert activity.status == "completed"
    assert activity.completion_method == "manual"
    assert activity.completed_by_label == "jane.admin@contoso.com"
    kinds = list(activity.events.values_list("kind", flat=True))
    assert kinds.count("approved") == 1
    assert kinds.count("completed") == 1
    assert activity.events.get(kind="completed").actor_label == "jane.admin@contoso.com"
    assert IntuneTask.objects.get(activity=activity).status == "completed"


def test_rejection_in_intune_rejects_the_ticket(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    intune_sync()
    graph.admin_sets(IntuneTask.objects.get(activity=activity).graph_id, status="rejected", assigned_to="bob@contoso")

    intune_sync()

    activity.refresh_from_db()
    assert activity.ticket_status == "rejected"
    assert activity.events.get(kind="rejected").actor_label == "bob@contoso"


def test_completed_without_assignee_is_completed_by_intune(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    intune_sync()
    graph.admin_sets(IntuneTask.objects.get(activity=activity).graph_id, status="completed")

    intune_sync()

    activity.refresh_from_db()
    assert activity.completer_email == "Intune"


def test_portal_decisions_are_sent_back_once(graph, intune_on, security_user, it_user):
    activity = request_with_intune(security_user)
    intune_sync()
    task = IntuneTask.objects.get(activity=activity)

    activity_approve(activity=activity, user=it_user, notes="Rolling out Tuesday")
    intune_sync()
    intune_sync()

    assert graph.status_updates == [(task.graph_id, {"status": "active", "note": "Rolling out Tuesday"})]
    task.refresh_from_db()
    assert task.pending_status == ""
    assert graph.tasks[task.graph_id]["status"] == "active"
    activity.refresh_from_db()
    assert activity.events.filter(kind="approved").count() == 1  # Graph's echo adds no second event


def test_a_decision_taken_before_the_task_existed_is_sent_after_creation(graph, intune_on, security_user, it_user):
    activity = request_with_intune(security_user)
    activity_reject(activity=activity, user=it_user, notes="Not in this quarter")

    intune_sync()

    assert graph.status_updates[0][1] == {"status": "rejected", "note": "Not in this quarter"}


def test_a_failed_send_back_stays_pending_and_keeps_the_portal_decision(graph, intune_on, security_user, it_user):
    activity = request_with_intune(security_user)
    intune_sync()
    task = IntuneTask.objects.get(activity=activity)
    activity_reject(activity=activity, user=it_user, notes="No")
    graph.fail("POST", rf"{TASKS}/[^/]+/updateStatus", status=403)

    result = intune_sync()

    assert not result.ok
    task.refresh_from_db()
    assert task.pending_status == "rejected"
    assert "HTTP 403" in task.last_error
    activity.refresh_from_db()
    assert activity.ticket_status == "rejected"  # Graph's stale "pending" did not overwrite it

    intune_sync()
    task.refresh_from_db()
    assert task.pending_status == ""
    assert task.last_error == ""


def test_refused_credentials_stop_the_sync_with_one_readable_line(graph, intune_on, security_user, settings):
    settings.INTUNE_CLIENT_SECRET = "wrong"
    activity = request_with_intune(security_user)

    with pytest.raises(CommandError) as exc:
        call_command("intune_sync")

    assert "refused the Intune credentials" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert len(graph.token_requests) == 1
    assert graph.creates == []
    assert "invalid_client" in IntuneTask.objects.get(activity=activity).last_error


def test_missing_credentials_fail_with_a_clear_message(graph, intune_on, security_user, settings):
    request_with_intune(security_user)
    settings.INTUNE_CLIENT_SECRET = ""  # removed after the request was filed

    with pytest.raises(CommandError, match="INTUNE_CLIENT_SECRET"):
        call_command("intune_sync")
    assert graph.requests == []


def test_an_untrusted_certificate_is_refused(graph, intune_on, security_user, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    activity = request_with_intune(security_user)

    result = intune_sync()

    assert not result.ok
    assert "not trusted" in IntuneTask.objects.get(activity=activity).last_error
    assert graph.tasks == {}


def test_overlapping_runs_never_both_act(graph, intune_on, security_user):
    from portal.locks import job_lock

    request_with_intune(security_user)
    with job_lock("intune_sync") as held:
        assert held
        result = intune_sync()

    assert result.skipped
    assert graph.requests == []


def test_a_completed_activity_is_not_pushed(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    activity.status, activity.completed_at = "completed", timezone.now() - dt.timedelta(minutes=1)
    activity.save()

    intune_sync()

    assert graph.creates == []


def test_factories_device_without_aad_id_is_not_sent(graph, intune_on, security_user):
    rec = RecommendationFactory()
    group = DeviceGroupFactory(name="Servers")
    device = DeviceFactory(device_group=group, aad_device_id="")
    Exposure.objects.create(recommendation=rec, device=device, first_seen=timezone.now(), last_seen=timezone.now())
    activity = make_activity(user=security_user, recommendation=rec, groups=[group], create_intune_task=True)

    intune_sync()

    assert graph.creates[0].body["managedDevices"] == []
    assert IntuneTask.objects.get(activity=activity).devices_without_aad_id == 1
    assert ActivityEvent.objects.filter(activity=activity, kind="intune_task_created").exists()


def test_the_token_is_shared_by_processes_and_stored_encrypted(graph, intune_on, security_user):
    from intune.graph import clear_token_cache
    from intune.models import GraphAccessToken

    request_with_intune(security_user)
    intune_sync()
    clear_token_cache()  # what a second process (a worker, `manage.py intune_sync`) starts with

    intune_sync()

    assert len(graph.token_requests) == 1
    stored = GraphAccessToken.objects.get()
    assert "token-1" not in stored.encrypted_token


def test_an_expired_token_is_renewed(graph, intune_on, security_user):
    graph.token_lifetime = 1  # seconds
    request_with_intune(security_user)
    intune_sync()
    time.sleep(1.1)

    intune_sync()

    assert len(graph.token_requests) == 2
    assert graph.calls("GET", TASK_ID)[-1].headers["Authorization"] == "Bearer token-2"


def test_a_revoked_token_is_replaced_once_and_the_call_succeeds(graph, intune_on, security_user):
    activity = request_with_intune(security_user)
    intune_sync()
    graph.revoked.add("token-1")

    result = intune_sync()

    assert result.ok
    assert len(graph.token_requests) == 2
    assert IntuneTask.objects.get(activity=activity).last_error == ""


def test_a_changed_secret_does_not_reuse_the_old_token(graph, intune_on, security_user, settings):
    from intune.graph import clear_token_cache

    request_with_intune(security_user)
    intune_sync()
    clear_token_cache()
    settings.INTUNE_CLIENT_SECRET = "rotated"

    result = intune_sync()

    assert len(graph.token_requests) == 2
    assert "invalid_client" in result.fatal


def test_a_private_ca_is_also_trusted_through_ssl_cert_file(graph, intune_on, security_user, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("SSL_CERT_FILE", str(graph.ca_path))
    activity = request_with_intune(security_user)

    assert intune_sync().ok
    assert IntuneTask.objects.get(activity=activity).graph_id
