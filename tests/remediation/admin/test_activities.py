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
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))


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
        "Created by",
        "Created on",
        "Priority",
        "Due date",
        "Device groups",
        "Ticket status",
        "Progress",
        "Status",
        "Completed by",
        "Completed on",
    ):
        assert header in html
    assert activity.title in html
    assert "sec@example.com" in html
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
    assert "(overdue)" in html

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
    assert html.count("sec@example.com") >= 4  # created by (x3) and completed by


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


def test_mark_complete_needs_post(security_client, security_user):
    activity = make_activity(user=security_user)
    assert security_client.get(complete_url(activity)).status_code == 405
    activity.refresh_from_db()
    assert activity.status == "active"


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

    response = security_client.post(
        reverse(CHANGELIST), {"action": "mark_complete", "_selected_action": [open_one.pk, done.pk]}, follow=True
    )

    open_one.refresh_from_db()
    assert open_one.status == "completed"
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
