"""The remediation activities changelist, the activity page, its actions and the CSV exports."""

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Group, Permission
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from intune.models import IntuneTask
from remediation.exports import ACTIVITY_HEADER, DEVICE_HEADER
from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:remediation_remediationactivity_changelist"


def page_url(activity):
    return reverse("admin:remediation_remediationactivity_change", args=[activity.pk])


def complete_url(activity):
    return reverse("admin:remediation_remediationactivity_complete", args=[activity.pk])


def devices_csv_url(activity):
    return reverse("admin:remediation_remediationactivity_devices_csv", args=[activity.pk])


def read_csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    content = b"".join(response.streaming_content)
    assert content.startswith(b"\xef\xbb\xbf")  # admin downloads start with a UTF-8 BOM (Excel)
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


@pytest.fixture
def security_client(client, security_user):
    client.force_login(security_user)
    return client


def fix_devices(activity, count):
    """Mark `count` target devices remediated and keep the stored counter in step."""
    ids = list(activity.devices.values_list("pk", flat=True)[:count])
    ActivityDevice.objects.filter(pk__in=ids).update(status="remediated", remediated_at=timezone.now())
    RemediationActivity.objects.filter(pk=activity.pk).update(fixed_devices=count)


# --- changelist ---------------------------------------------------------------------------


def test_changelist_shows_every_column(security_client, security_user):
    activity = make_activity(user=security_user, devices=3)
    fix_devices(activity, 2)

    response = security_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    html = response.content.decode()
    for header in (
        "Remediation activity",
        "Priority",
        "Device groups",
        "Created",
        "Due date",
        "Ticket status",
        "Progress",
        "Status",
        "Completed",
    ):
        assert f">{header}</a>" in html or f">{header}</span>" in html
    assert activity.title in html
    assert "sec@<wbr>example.<wbr>com" in html  # may wrap after the @, never mid-word
    assert "2 / 3" in html  # progress: fixed / target
    assert "Pending" in html
    assert "Add remediation activity" not in html


def test_attention_required_shows_no_progress_bar(security_client, security_user):
    make_activity(user=security_user, remediation_option="attention_required")
    html = security_client.get(reverse(CHANGELIST)).content.decode()
    assert "rp-progress-bar" not in html


def test_overdue_due_date_is_highlighted_and_filterable(security_client, security_user):
    late = make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=late.pk).update(due_on=timezone.localdate() - dt.timedelta(days=2))
    on_time = make_activity(user=security_user)

    html = security_client.get(reverse(CHANGELIST)).content.decode()
    assert 'class="rp-chip rp-chip-bad rp-overdue"' in html

    overdue = security_client.get(reverse(CHANGELIST), {"overdue": "yes"}).context["cl"].result_list
    assert [a.pk for a in overdue] == [late.pk]
    not_overdue = security_client.get(reverse(CHANGELIST), {"overdue": "no"}).context["cl"].result_list
    assert [a.pk for a in not_overdue] == [on_time.pk]


def test_completed_by_labels(security_client, security_user):
    manual = make_activity(user=security_user)
    security_client.post(complete_url(manual))
    automatic = make_activity(user=security_user)
    unknown = make_activity(user=security_user)
    for activity, method in ((automatic, "automatic"), (unknown, "unknown")):
        RemediationActivity.objects.filter(pk=activity.pk).update(
            status="completed", completion_method=method, completed_at=timezone.now()
        )

    html = security_client.get(reverse(CHANGELIST)).content.decode()

    assert "System confirmation" in html
    assert "Not available" in html
    assert html.count("sec@<wbr>example.<wbr>com") >= 4  # created by (x3) and completed by; may wrap after the @


def test_filters_and_search(security_client, security_user):
    laptops = DeviceGroupFactory(name="Laptops")
    rec = RecommendationFactory(name="Update Firefox")
    expose(rec, laptops, 2)
    firefox = make_activity(user=security_user, recommendation=rec, groups=[laptops], priority="low")
    other = make_activity(user=security_user, priority="high")
    security_client.post(complete_url(other))
    url = reverse(CHANGELIST)

    def shown(params):
        return [a.pk for a in security_client.get(url, params).context["cl"].result_list]

    assert shown({"status__exact": "completed"}) == [other.pk]
    assert shown({"priority__exact": "low"}) == [firefox.pk]
    assert shown({"device_group": str(laptops.pk)}) == [firefox.pk]
    assert shown({"q": "firefox"}) == [firefox.pk]
    assert set(shown({"ticket_status__exact": "pending"})) == {firefox.pk, other.pk}
    assert shown({"remediation_option__exact": "software_uninstall"}) == []


def test_plain_add_and_change_forms_are_closed(admin_client):
    assert admin_client.get(reverse("admin:remediation_remediationactivity_add")).status_code == 403


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("who", ["security_user", "it_user"])
def test_changelist_queries_do_not_grow_with_rows(
    client, request, security_user, django_assert_max_num_queries, rows, who
):
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 1)
    expose(rec, laptops, 1)
    for _ in range(rows):
        make_activity(user=security_user, recommendation=rec, groups=[servers, laptops])
    IntuneTask.objects.bulk_create(
        [IntuneTask(activity=a, devices_sent=1, devices_total=2) for a in RemediationActivity.objects.all()]
    )

    client.force_login(request.getfixturevalue(who))

    with django_assert_max_num_queries(12):
        response = client.get(reverse(CHANGELIST))

    assert len(response.context["cl"].result_list) == rows


# --- the activity page ----------------------------------------------------------------------


def test_activity_page_shows_everything(security_client, security_user):
    activity = make_activity(user=security_user, devices=3, requester_notes="Before Friday")

    response = security_client.get(page_url(activity))

    assert response.status_code == 200
    html = response.content.decode()
    assert activity.description in html
    assert reverse("admin:recommendations_securityrecommendation_change", args=[activity.recommendation_id]) in html
    assert "Remediation steps" in html
    assert "to version 2.0 or later" in html
    assert "IT service and device-management tools" in html
    assert "No Microsoft Intune security task was requested" in html
    assert "Device remediation status" in html
    assert html.count("host-") >= 3
    assert "History" in html
    assert "Before Friday" in html
    assert 'id="mark-complete"' in html
    assert devices_csv_url(activity) in html


def test_activity_page_intune_panel_says_how_many_devices_were_sent(security_client, security_user):
    activity = make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=activity.pk).update(create_intune_task=True)
    IntuneTask.objects.create(
        activity=activity,
        graph_id="g-1",
        status="pending",
        devices_sent=10000,
        devices_total=18511,
        last_synced_at=timezone.now(),
        last_error="Graph answered 503",
    )

    html = security_client.get(page_url(activity)).content.decode()

    assert "Only 10,000 of 18,511 devices were sent to Intune" in html
    assert "Graph answered 503" in html


def test_device_table_is_paginated_and_filtered_by_status(security_client, security_user):
    activity = make_activity(user=security_user, devices=60)
    fix_devices(activity, 5)

    first = security_client.get(page_url(activity))
    assert len(first.context["device_page"].object_list) == 50
    assert first.context["device_count"] == 60
    assert first.context["device_page"].next_cursor
    second = security_client.get(page_url(activity), {"after": first.context["device_page"].next_cursor})
    assert len(second.context["device_page"].object_list) == 10
    assert second.context["device_page"].next_cursor is None
    assert "Devices 51&ndash;60 of 60" in second.content.decode()
    shown = [d.pk for d in first.context["device_page"]] + [d.pk for d in second.context["device_page"]]
    assert sorted(shown) == sorted(activity.devices.values_list("pk", flat=True))

    fixed = security_client.get(page_url(activity), {"device_status": "remediated"})
    assert fixed.context["device_count"] == 5
    assert {d.status for d in fixed.context["device_page"]} == {"remediated"}
    exposed = security_client.get(page_url(activity), {"device_status": "exposed"})
    assert exposed.context["device_count"] == 55


@pytest.mark.parametrize("devices", [1, 60])
def test_activity_page_queries_do_not_grow_with_devices(
    security_client, security_user, django_assert_max_num_queries, devices
):
    activity = make_activity(user=security_user, devices=devices)
    with django_assert_max_num_queries(16):
        response = security_client.get(page_url(activity))
    assert response.context["device_count"] == devices


def test_unknown_activity_is_404(security_client):
    url = reverse("admin:remediation_remediationactivity_change", args=["nope"])
    assert security_client.get(url).status_code == 404


# --- Mark as complete ----------------------------------------------------------------------


def test_mark_complete_from_the_page(client, security_user, it_user):
    activity = make_activity(user=security_user)
    client.force_login(it_user)

    response = client.post(complete_url(activity), follow=True)

    activity.refresh_from_db()
    assert activity.status == "completed"
    assert activity.completion_method == "manual"
    assert activity.completed_by_label == "it@example.com"
    assert ActivityEvent.objects.filter(activity=activity, kind="completed", actor_label="it@example.com").count() == 1
    assert [str(m) for m in response.context["messages"]] == [f"\u201c{activity.title}\u201d was marked as complete."]
    assert 'id="mark-complete"' not in response.content.decode()


def test_mark_complete_is_refused_on_a_completed_activity(security_client, security_user):
    activity = make_activity(user=security_user)
    security_client.post(complete_url(activity))

    response = security_client.post(complete_url(activity), follow=True)

    assert response.status_code == 200
    assert "already completed" in " ".join(str(m) for m in response.context["messages"])
    assert ActivityEvent.objects.filter(activity=activity, kind="completed").count() == 1


def test_mark_complete_asks_for_confirmation_first_and_changes_nothing_over_get(security_client, security_user):
    activity = make_activity(user=security_user)
    response = security_client.get(complete_url(activity))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Yes, mark as complete" in html
    assert 'name="notes"' in html  # the optional note
    activity.refresh_from_db()
    assert activity.status == "active"


def test_mark_complete_records_the_optional_note_in_the_history(security_client, security_user):
    activity = make_activity(user=security_user)
    security_client.post(complete_url(activity), {"notes": "Patched by hand during the outage"})
    event = ActivityEvent.objects.get(activity=activity, kind="completed")
    assert event.notes == "Patched by hand during the outage"
    html = security_client.get(page_url(activity)).content.decode()
    assert "Patched by hand during the outage" in html


def test_mark_complete_without_permission_is_403(client, security_user):
    activity = make_activity(user=security_user)
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_remediationactivity"),
        Permission.objects.get(codename="view_all_device_groups"),
    )
    client.force_login(viewer)
    assert client.get(page_url(activity)).status_code == 200
    assert client.post(complete_url(activity)).status_code == 403
    assert client.get(devices_csv_url(activity)).status_code == 403
    activity.refresh_from_db()
    assert activity.status == "active"


def test_mark_complete_action(security_client, security_user):
    open_one = make_activity(user=security_user)
    done = make_activity(user=security_user)
    security_client.post(complete_url(done))

    selected = {"action": "mark_complete", "_selected_action": [open_one.pk, done.pk]}
    confirmation = security_client.post(reverse(CHANGELIST), selected)
    assert "Mark as complete these 2 activities?" in confirmation.content.decode()
    open_one.refresh_from_db()
    assert open_one.status == "active"  # nothing happens before the confirmation

    response = security_client.post(reverse(CHANGELIST), {**selected, "post": "yes", "notes": "Done"}, follow=True)

    open_one.refresh_from_db()
    assert open_one.status == "completed"
    assert ActivityEvent.objects.get(activity=open_one, kind="completed").notes == "Done"
    messages = [str(m) for m in response.context["messages"]]
    assert "1 activity marked as complete." in messages
    assert any("already completed" in m for m in messages)
    assert ActivityEvent.objects.filter(activity=done, kind="completed").count() == 1


# --- CSV exports -------------------------------------------------------------------------------


def test_export_button_exports_the_filtered_changelist(security_client, security_user):
    keep = make_activity(user=security_user, priority="low")
    make_activity(user=security_user, priority="high")
    RemediationActivity.objects.filter(pk=keep.pk).update(title='=HYPERLINK("x") caf\u00e9')

    html = security_client.get(reverse(CHANGELIST), {"priority__exact": "low"}).content.decode()
    export_url = reverse("admin:remediation_remediationactivity_export") + "?priority__exact=low"
    assert export_url in html

    rows = read_csv(security_client.get(export_url))

    assert rows[0] == ACTIVITY_HEADER
    assert rows[0] == [
        "Remediation activity",
        "Status",
        "Priority",
        "Remediation option",
        "Device groups",
        "Created by",
        "Created on",
        "Due date",
        "Ticket status",
        "Completed by",
        "Completed on",
        "Target devices",
        "Fixed devices",
        "Progress",
    ]
    assert len(rows) == 2
    assert rows[1][0] == '\'=HYPERLINK("x") caf\u00e9'
    assert rows[1][2] == "Low"
    assert rows[1][4] == "Servers"


def test_export_action_exports_the_selected_activities(security_client, security_user):
    first = make_activity(user=security_user)
    make_activity(user=security_user)

    response = security_client.post(reverse(CHANGELIST), {"action": "export_csv", "_selected_action": [first.pk]})

    rows = read_csv(response)
    assert rows[0] == ACTIVITY_HEADER
    assert [r[0] for r in rows[1:]] == [first.title]


def test_devices_csv_of_one_activity(security_client, security_user):
    activity = make_activity(user=security_user, devices=4)
    fix_devices(activity, 1)

    rows = read_csv(security_client.get(devices_csv_url(activity)))

    assert (
        rows[0]
        == DEVICE_HEADER
        == [
            "Device ID",
            "Device name",
            "OS platform",
            "Device group",
            "Status",
            "Remediated on",
            "Sent to Intune",
        ]
    )
    assert len(rows) == 5
    assert sorted(r[4] for r in rows[1:]) == ["Exposed", "Exposed", "Exposed", "Remediated"]
    assert {r[3] for r in rows[1:]} == {"Servers"}


def test_export_requires_the_export_permission(client, security_user):
    make_activity(user=security_user)
    group = Group.objects.get(name="Security staff")
    group.permissions.remove(Permission.objects.get(codename="export_activity"))
    client.force_login(security_user)

    assert client.get(reverse("admin:remediation_remediationactivity_export")).status_code == 403
    html = client.get(reverse(CHANGELIST)).content.decode()
    assert "Export to CSV" not in html
    assert "export_csv" not in html


# --- the UTF-8 BOM of admin downloads ------------------------------------------------------------


def test_admin_downloads_start_with_a_bom_unless_asked_not_to(security_client, security_user):
    rec = RecommendationFactory(name="Uppdatera Åtkomstklient")
    group = DeviceGroupFactory(name="Servrar i Göteborg")
    expose(rec, group, 1)
    activity = make_activity(user=security_user, recommendation=rec, groups=[group])

    with_bom = b"".join(security_client.get(reverse("admin:remediation_remediationactivity_export")).streaming_content)
    assert with_bom.startswith(b"\xef\xbb\xbf")
    assert "Servrar i Göteborg" in with_bom.decode("utf-8-sig")

    plain = b"".join(
        security_client.get(reverse("admin:remediation_remediationactivity_export") + "?bom=0").streaming_content
    )
    assert plain.startswith(b"Remediation activity,")
    assert plain == with_bom[3:]

    devices = b"".join(security_client.get(devices_csv_url(activity) + "?bom=0").streaming_content)
    assert devices.startswith(b"Device ID,")


def test_the_api_export_keeps_its_contract_without_a_bom(security_user):
    from rest_framework.test import APIClient

    make_activity(user=security_user)
    client = APIClient()
    client.force_authenticate(security_user)
    content = b"".join(client.get("/api/v1/remediation-activities/export.csv").streaming_content)
    assert content.startswith(b"Remediation activity,")


# --- the activity page reads well (issue 17) ----------------------------------------------------


def test_the_device_table_is_searchable_by_name_and_comes_after_the_history(security_client, security_user):
    rec = RecommendationFactory()
    group = DeviceGroupFactory(name="Servers")
    devices = expose(rec, group, 3)
    devices[0].computer_dns_name = "finance-db-01.corp"
    devices[0].save()
    activity = make_activity(user=security_user, recommendation=rec, groups=[group])

    response = security_client.get(page_url(activity), {"q": "FINANCE"})

    assert [item.device.computer_dns_name for item in response.context["device_page"]] == ["finance-db-01.corp"]
    html = response.content.decode()
    assert html.index('id="history"') < html.index('id="devices"')
    assert 'value="FINANCE"' in html
    assert '<td class="rp-hostname">finance-db-01.corp</td>' in html


def test_a_manual_completion_with_no_fixed_device_says_so(security_client, security_user):
    activity = make_activity(user=security_user)
    security_client.post(complete_url(activity))

    page = security_client.get(page_url(activity)).content.decode()
    assert 'id="completed-without-fixes"' in page
    listed = security_client.get(reverse(CHANGELIST)).content.decode()
    assert "Completed, 0 fixed" in listed


def test_the_activity_page_draws_fixed_devices_against_the_target_and_due_date(security_client, security_user):
    from remediation.services import daily_figures_record

    activity = make_activity(user=security_user, devices=4)
    fix_devices(activity, 1)
    daily_figures_record()

    html = security_client.get(page_url(activity)).content.decode()

    chart = html[html.index('id="activity-chart"') :]
    chart = chart[: chart.index("</figure>")]
    assert "Target: 4 devices" in chart
    assert f"Due {activity.due_on.isoformat()}" in chart
    assert f"<tr><th scope='row'>{timezone.localdate().isoformat()}</th><td>1</td></tr>" in chart
