"""The pull from the Defender API (`defender_sync`) against a loopback HTTPS fake of it."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from recommendations.defender import DefenderClient
from recommendations.models import DefenderSyncRun, Device, DeviceGroup, Exposure, SecurityRecommendation
from recommendations.services import defender_sync
from remediation.models import RemediationActivity
from tests.recommendations.defender_fake import MACHINES, RECOMMENDATIONS, REFERENCES, machine, recommendation
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


def state():
    return (
        list(DeviceGroup.objects.order_by("name").values_list("name", "description")),
        list(Device.objects.order_by("machine_id").values()),
        list(SecurityRecommendation.objects.order_by("external_id").values()),
        list(Exposure.objects.order_by("pk").values()),
    )


def open_pairs():
    exposed = Exposure.objects.filter(remediated_at__isnull=True)
    return set(exposed.values_list("recommendation__external_id", "device__machine_id"))


@pytest.fixture
def tenant(defender):
    """25 recommendations (3 pages of 10 with $top/$skip), 23 machines (3 pages through next links),
    and 5 recommendations with exposed devices (machineReferences, 2 a page)."""
    defender.recommendations = [recommendation(f"va-_-contoso-_-app{n:02d}", exposed=0) for n in range(24)]
    defender.recommendations.append(recommendation("sca-_-scid-2010", exposed=0))
    defender.machines = [machine(n, group="Servers" if n % 2 else "Workstations") for n in range(23)]
    m = defender.machines
    defender.expose("va-_-contoso-_-app00", m[0:5])
    defender.expose("va-_-contoso-_-app07", m[3:4])
    defender.expose("va-_-contoso-_-app13", m[10:23])
    defender.expose("va-_-contoso-_-app23", m[22:23])
    defender.expose("sca-_-scid-2010", m[0:2])
    return defender


def expected_pairs(fake):
    return {(rec_id, ref["id"]) for rec_id, refs in fake.references.items() for ref in refs}


def test_a_pull_pages_through_everything_and_applies_one_snapshot(tenant):
    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.SUCCEEDED, run.error
    assert SecurityRecommendation.objects.count() == 25
    assert Device.objects.count() == 23
    assert open_pairs() == expected_pairs(tenant)
    # $top/$skip for the recommendations, next links for the machines and the references.
    assert [r.query for r in tenant.calls("GET", RECOMMENDATIONS)] == [
        {"$top": "10"},
        {"$top": "10", "$skip": "10"},
        {"$top": "10", "$skip": "20"},
    ]
    assert [r.query.get("$skip") for r in tenant.calls("GET", MACHINES)] == [None, "10", "20"]
    assert len(tenant.reference_calls("va-_-contoso-_-app13")) == 7  # 13 devices, 2 a page
    assert tenant.reference_calls("va-_-contoso-_-app01") == []  # exposedMachinesCount 0: not asked
    assert len(tenant.token_requests) == 1  # one token for the whole run
    # What the portal keeps of each record.
    device = Device.objects.get(machine_id=f"{3:040x}")
    assert (device.device_group.name, device.os_version, device.health_status, device.machine_tags) == (
        "Servers",
        "23H2",
        "Active",
        ["tier-1"],
    )
    scid = SecurityRecommendation.objects.get(external_id="sca-_-scid-2010")
    assert (scid.remediation_type, scid.category, scid.exposed_devices) == (
        "ConfigurationChange",
        "SecurityControls",
        2,
    )
    # 25 recommendations + 23 devices + 2 groups + 22 exposures
    assert run.summary["created"] == 25 + 23 + 2 + 22
    assert run.progress[0] == "Recommendations: 25 read (3 page(s)), 5 with exposed devices."
    assert run.progress[-1] == "Done: created 72, updated 0, remediated 0, re-exposed 0, rejected 0."


@pytest.mark.parametrize("machines", [10, 20])
def test_a_last_full_page_without_a_next_link_ends_the_list(tenant, machines):
    """20: a next link, then a full page without one, which is the last (no $skip asked after it).
    10: a full first page without a next link: the API may page with $skip, so $skip=10 is asked (empty)."""
    tenant.machines = tenant.machines[:machines]
    tenant.references = {}
    for rec in tenant.recommendations:
        rec["exposedMachinesCount"] = 0

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.SUCCEEDED, run.error
    assert Device.objects.count() == machines
    assert [r.query.get("$skip") for r in tenant.calls("GET", MACHINES)] == [None, "10"]


def test_the_next_pull_remediates_fixed_devices_and_re_exposes_returning_ones(tenant):
    defender_sync()
    m = tenant.machines
    tenant.expose("va-_-contoso-_-app00", m[0:2])  # 3 fixed
    tenant.expose("va-_-contoso-_-app23", [])  # the last one fixed: asked no more
    tenant.references.pop("sca-_-scid-2010")
    tenant.recommendations = [r for r in tenant.recommendations if r["id"] != "sca-_-scid-2010"]  # gone from Defender

    second = defender_sync()

    assert open_pairs() == expected_pairs(tenant)
    assert second.summary["remediated"] == 3 + 1 + 2
    assert len(tenant.reference_calls("va-_-contoso-_-app23")) == 1  # the first pull's: none exposed now
    tenant.expose("va-_-contoso-_-app00", m[0:5])
    third = defender_sync()
    assert third.summary["re_exposed"] == 3
    assert open_pairs() == expected_pairs(tenant)


def test_auto_completion_follows_a_pull_that_finds_every_target_device_fixed(
    tenant, security_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        defender_sync()
    app00 = SecurityRecommendation.objects.get(external_id="va-_-contoso-_-app00")
    groups = list(DeviceGroup.objects.filter(name__in=["Servers", "Workstations"]))
    activity = make_activity(user=security_user, recommendation=app00, groups=groups)
    assert activity.target_devices == 5
    tenant.expose("va-_-contoso-_-app00", [])

    with django_capture_on_commit_callbacks(execute=True):
        defender_sync()

    activity.refresh_from_db()
    assert activity.status == RemediationActivity.Status.COMPLETED
    assert activity.completed_by_label == "System confirmation"


def test_throttling_waits_as_long_as_retry_after_says_then_goes_on(tenant):
    tenant.fail("GET", MACHINES, status=429, headers={"Retry-After": "7"}, query={"$skip": "10"})
    waits = []

    run = defender_sync(client=DefenderClient.from_settings(sleep=waits.append))

    assert run.status == DefenderSyncRun.Status.SUCCEEDED, run.error
    assert waits == [7.0]
    assert [r.query.get("$skip") for r in tenant.calls("GET", MACHINES)] == [None, "10", "10", "20"]
    assert Device.objects.count() == 23


def test_a_real_retry_after_is_honoured_end_to_end(tenant):
    tenant.fail("GET", RECOMMENDATIONS, status=429, headers={"Retry-After": "1"})

    call_command("defender_sync", "--quiet", stdout=StringIO())

    first, again = tenant.calls("GET", RECOMMENDATIONS)[:2]
    assert first.query == again.query == {"$top": "10"}
    assert again.at - first.at >= 1.0
    assert SecurityRecommendation.objects.count() == 25


def test_a_server_error_half_way_leaves_the_database_unchanged(tenant):
    defender_sync()
    before = state()
    tenant.expose("va-_-contoso-_-app00", [])  # would remediate 5 devices
    tenant.machines[4]["computerDnsName"] = "renamed.contoso.com"  # would update a device
    tenant.fail("GET", MACHINES, status=500, times=3, query={"$skip": "20"})
    asked = len(tenant.calls("GET", REFERENCES))

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.FAILED
    assert (
        run.error == "Reading the machines failed after 3 attempts: HTTP 500 Internal Server Error (injected: HTTP 500)"
    )
    assert state() == before
    assert run.summary == {}
    assert len(tenant.calls("GET", REFERENCES)) == asked  # it stopped at the failing page


def test_a_server_error_in_the_references_also_changes_nothing(tenant):
    before = state()
    tenant.fail(
        "GET",
        r"/api/recommendations/va-_-contoso-_-app13/machineReferences",
        status=500,
        times=3,
        query={"$skiptoken": "6"},
    )

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.FAILED
    assert "Reading the devices exposed to va-_-contoso-_-app13 failed after 3 attempts" in run.error
    assert state() == before


def test_an_answer_that_breaks_off_is_asked_again(tenant):
    tenant.break_off("GET", MACHINES, query={"$skip": "10"})

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.SUCCEEDED, run.error
    assert [r.query.get("$skip") for r in tenant.calls("GET", MACHINES)] == [None, "10", "10", "20"]
    assert Device.objects.count() == 23


def test_a_next_link_on_another_host_is_followed_on_the_configured_one(tenant):
    """The bearer token only ever goes to DEFENDER_API_URL."""
    tenant.machines_next_link_host = "api.evil.example"

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.SUCCEEDED, run.error
    assert Device.objects.count() == 23


def test_a_bad_record_fails_the_run_with_every_problem_and_changes_nothing(tenant):
    before = state()
    tenant.machines[5]["lastSeen"] = "yesterday"
    tenant.recommendations[2]["recommendationName"] = None

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.FAILED
    assert run.error.startswith("Nothing was imported: 2 problems:")
    assert "Defender recommendations record 3: missing required field 'recommendationName'" in run.error
    assert "Defender machines record 6: wrong type for 'lastSeen'" in run.error
    assert state() == before


def test_a_machine_on_two_pages_is_a_duplicate_like_on_one_page(tenant):
    """Machines are upserted a page at a time; the list is still checked as one."""
    tenant.machines[14] = {**tenant.machines[2], "computerDnsName": "again.contoso.com"}

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.FAILED
    assert run.error == (
        f"Nothing was imported: 1 problem: Defender machines record 15: duplicate device id '{2:040x}' "
        "(first at record 3)"
    )
    assert not Device.objects.exists()


def test_refused_credentials_fail_the_run_with_a_readable_line(tenant, settings):
    settings.DEFENDER_CLIENT_SECRET = "wrong"

    run = defender_sync()

    assert run.status == DefenderSyncRun.Status.FAILED
    assert run.error.startswith("The token endpoint refused the Defender credentials: HTTP 401")
    assert not SecurityRecommendation.objects.exists()


def test_without_credentials_the_command_says_what_to_set(db, settings):
    settings.DEFENDER_TENANT_ID = ""
    with pytest.raises(CommandError) as caught:
        call_command("defender_sync", stdout=StringIO(), stderr=StringIO())
    assert str(caught.value) == (
        "Defender pull failed: Defender credentials are not configured: set DEFENDER_TENANT_ID, "
        "DEFENDER_CLIENT_ID and DEFENDER_CLIENT_SECRET."
    )
    assert DefenderSyncRun.objects.get().status == DefenderSyncRun.Status.FAILED


def test_the_command_prints_progress_and_the_summary(tenant):
    out, err = StringIO(), StringIO()
    call_command("defender_sync", stdout=out, stderr=err)
    assert out.getvalue().strip() == "created 72, updated 0, remediated 0, re-exposed 0, rejected 0"
    lines = err.getvalue().splitlines()
    assert lines[:3] == [
        "Recommendations: 25 read (3 page(s)), 5 with exposed devices.",
        "Machines: 23 read (3 page(s)).",
        "Exposures: 22 exposed devices of 5 recommendations read.",
    ]
    assert "Applying the snapshot." in lines


def test_a_second_run_while_one_holds_the_lock_does_nothing(tenant):
    from portal.locks import job_lock

    with job_lock("defender_sync") as held:
        assert held
        out = StringIO()
        call_command("defender_sync", stdout=out)
    assert out.getvalue().strip() == "Another Defender pull is running; this run did nothing."
    assert tenant.requests == []
    assert not DefenderSyncRun.objects.exists()


def test_a_run_left_running_by_a_killed_worker_is_marked_interrupted(tenant):
    stale = DefenderSyncRun.objects.create(trigger=DefenderSyncRun.Trigger.SCHEDULE)
    defender_sync()
    stale.refresh_from_db()
    assert stale.status == DefenderSyncRun.Status.FAILED
    assert stale.error.startswith("Interrupted")


def test_only_the_last_runs_are_kept(tenant, settings):
    settings.DEFENDER_SYNC_RUNS_KEPT = 2
    for _ in range(3):
        defender_sync()
    assert DefenderSyncRun.objects.count() == 2


def test_the_beat_task_runs_one_pull_as_the_schedule(tenant):
    from portal.celery import app

    app.tasks["recommendations.defender_sync"].delay()  # eager in the tests: runs now

    run = DefenderSyncRun.objects.get()
    assert (run.trigger, run.status) == (DefenderSyncRun.Trigger.SCHEDULE, DefenderSyncRun.Status.SUCCEEDED)
    assert open_pairs() == expected_pairs(tenant)
