"""IT staff decide in the admin (DESIGN.md section 5): Approve / Reject on the activity page and as
changelist actions, through the same services as the API."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from intune.models import IntuneTask
from remediation.models import ActivityEvent, RemediationActivity
from remediation.services import activity_complete
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:remediation_remediationactivity_changelist"


def page_url(activity):
    return reverse("admin:remediation_remediationactivity_change", args=[activity.pk])


def approve_url(activity):
    return reverse("admin:remediation_remediationactivity_approve", args=[activity.pk])


def reject_url(activity):
    return reverse("admin:remediation_remediationactivity_reject", args=[activity.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_it_staff_see_the_decision_box_and_security_staff_do_not(client, security_user, it_user):
    activity = make_activity(user=security_user)
    client.force_login(it_user)
    html = client.get(page_url(activity)).content.decode()
    assert 'id="approve"' in html
    assert 'id="reject"' in html
    client.force_login(security_user)
    html = client.get(page_url(activity)).content.decode()
    assert 'id="decision-form"' not in html


def test_it_staff_approve_from_the_page_with_notes_and_intune_hears_it(client, security_user, it_user):
    activity = make_activity(user=security_user)
    IntuneTask.objects.create(activity=activity, graph_id="g-1")
    client.force_login(it_user)

    response = client.post(approve_url(activity), {"notes": "Rolling out Friday"}, follow=True)

    activity.refresh_from_db()
    assert (activity.ticket_status, activity.it_notes) == ("approved", "Rolling out Friday")
    assert messages_of(response) == [f"\u201c{activity.title}\u201d was approved. Ticket status: Approved."]
    html = response.content.decode()
    assert 'id="ticket-status">Approved<' in html
    assert 'id="decision-form"' not in html  # decided: nothing left to decide
    assert ActivityEvent.objects.filter(activity=activity, kind="approved", notes="Rolling out Friday").exists()
    task = IntuneTask.objects.get(activity=activity)
    assert (task.pending_status, task.pending_note) == ("active", "Rolling out Friday")


def test_rejecting_needs_notes_and_changes_nothing_without_them(client, security_user, it_user):
    activity = make_activity(user=security_user)
    client.force_login(it_user)

    response = client.post(reject_url(activity), {"notes": "   "}, follow=True)

    activity.refresh_from_db()
    assert activity.ticket_status == "pending"
    assert messages_of(response) == ["Notes are required to reject a request."]
    assert not ActivityEvent.objects.filter(activity=activity, kind="rejected").exists()

    response = client.post(reject_url(activity), {"notes": "Not on production"}, follow=True)
    activity.refresh_from_db()
    assert (activity.ticket_status, activity.it_notes) == ("rejected", "Not on production")
    assert "Ticket status: Rejected." in messages_of(response)[0]


def test_the_creator_cannot_approve_their_own_request(client, it_user):
    it_user.groups.add(Group.objects.get(name="Security staff"))  # may file and decide
    activity = make_activity(user=it_user, groups=[DeviceGroupFactory(name="Servers")], recommendation=_exposed())
    client.force_login(it_user)

    html = client.get(page_url(activity)).content.decode()
    assert 'id="approve"' not in html
    assert "someone else must approve it" in html

    response = client.post(approve_url(activity), {"notes": "me"}, follow=True)
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"
    assert messages_of(response) == ["You filed this request; someone else must approve it."]


def test_a_completed_activity_refuses_a_decision_and_shows_it_was_closed(client, security_user, it_user):
    activity = make_activity(user=security_user)
    activity_complete(activity=activity, user=security_user)
    client.force_login(it_user)

    response = client.post(approve_url(activity), {"notes": "late"}, follow=True)

    activity.refresh_from_db()
    assert activity.ticket_status == "pending"
    assert "already completed" in messages_of(response)[0]
    html = response.content.decode()
    assert 'id="ticket-status" title="Completed before IT approved or rejected it">Closed<' in html
    assert 'id="decision-form"' not in html


def test_security_staff_may_not_decide(client, security_user):
    activity = make_activity(user=security_user)
    client.force_login(security_user)
    assert client.post(approve_url(activity), {"notes": "x"}).status_code == 403
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"


def test_deciding_needs_post(client, security_user, it_user):
    activity = make_activity(user=security_user)
    client.force_login(it_user)
    assert client.get(approve_url(activity)).status_code == 405
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"


def test_an_activity_outside_the_deciders_groups_is_404(client, security_user, it_user):
    laptops = DeviceGroupFactory(name="Laptops")
    rec = RecommendationFactory()
    expose(rec, laptops, 2)
    activity = make_activity(user=security_user, recommendation=rec, groups=[laptops])
    client.force_login(it_user)
    assert client.post(approve_url(activity), {"notes": "x"}).status_code == 404
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"


# --- changelist actions ----------------------------------------------------------------------


def test_bulk_approve_shows_one_notes_box_then_approves_and_names_those_refused(client, security_user, it_user):
    first = make_activity(user=security_user)
    second = make_activity(user=security_user)
    done = make_activity(user=security_user)
    activity_complete(activity=done, user=security_user)
    client.force_login(it_user)
    selected = {"action": "approve_selected", "_selected_action": [first.pk, second.pk, done.pk]}

    confirmation = client.post(reverse(CHANGELIST), selected)
    html = confirmation.content.decode()
    assert html.count('name="notes"') == 1
    assert "these 3 activities" in html
    assert RemediationActivity.objects.filter(ticket_status="approved").count() == 0

    response = client.post(reverse(CHANGELIST), {**selected, "post": "yes", "notes": "Patch window"}, follow=True)

    assert set(RemediationActivity.objects.filter(ticket_status="approved").values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    assert RemediationActivity.objects.get(pk=first.pk).it_notes == "Patch window"
    messages = messages_of(response)
    assert "2 activities approved." in messages
    assert any(done.title in m and "already completed" in m for m in messages)


def test_bulk_reject_without_notes_asks_again_and_rejects_nothing(client, security_user, it_user):
    activity = make_activity(user=security_user)
    client.force_login(it_user)
    selected = {"action": "reject_selected", "_selected_action": [activity.pk], "post": "yes", "notes": ""}

    response = client.post(reverse(CHANGELIST), selected)

    assert "Notes are required to reject a request." in response.content.decode()
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"

    client.post(reverse(CHANGELIST), {**selected, "notes": "Quarter close"})
    activity.refresh_from_db()
    assert (activity.ticket_status, activity.it_notes) == ("rejected", "Quarter close")


def test_the_decision_actions_are_offered_only_to_deciders(client, security_user, it_user):
    make_activity(user=security_user)
    client.force_login(security_user)
    html = client.get(reverse(CHANGELIST)).content.decode()
    assert "approve_selected" not in html
    client.force_login(it_user)
    html = client.get(reverse(CHANGELIST)).content.decode()
    assert "approve_selected" in html
    assert "reject_selected" in html


def test_a_viewer_without_the_decide_permission_cannot_run_the_action(client, security_user):
    activity = make_activity(user=security_user)
    viewer = UserFactory(username="viewer")
    viewer.groups.add(Group.objects.get(name="Security staff"))
    client.force_login(viewer)
    client.post(
        reverse(CHANGELIST),
        {"action": "approve_selected", "_selected_action": [activity.pk], "post": "yes", "notes": "x"},
    )
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"


def _exposed():
    rec = RecommendationFactory()
    expose(rec, DeviceGroupFactory(name="Servers"), 2)
    return rec


def test_a_swedish_decider_reads_the_decisions_and_their_messages_in_swedish(client, security_user, it_user):
    """The decision box, the bulk confirmation page and every message of a decision, in Swedish."""
    from portal.preferences import user_language_set

    activity = make_activity(user=security_user)
    other = make_activity(user=security_user)
    done = make_activity(user=security_user)
    activity_complete(activity=done, user=security_user)
    user_language_set(user=it_user, language="sv")
    client.force_login(it_user)

    html = client.get(page_url(activity)).content.decode()
    assert "IT-beslut" in html
    assert 'value="Godkänn"' in html or ">Godkänn<" in html
    response = client.post(approve_url(activity), {"notes": "Fredag"}, follow=True)
    assert messages_of(response) == [f"”{activity.title}” godkändes. Ärendestatus: Godkänd."]

    selected = {"action": "reject_selected", "_selected_action": [other.pk, done.pk]}
    confirmation = client.post(reverse(CHANGELIST), selected).content.decode()
    assert "Avvisa: de här 2 aktiviteterna?" in confirmation
    assert "Anteckningar (obligatoriska)" in confirmation
    response = client.post(reverse(CHANGELIST), {**selected, "post": "yes", "notes": "Inte nu"}, follow=True)
    messages = messages_of(response)
    assert "1 aktivitet avvisades." in messages
    assert f"”{done.title}”: Den här aktiviteten är redan slutförd; den kan inte avvisas." in messages
