import datetime as dt

import pytest
from django.utils import timezone

from portal.errors import ConflictError, PermissionError_, ValidationError
from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity
from remediation.services import activity_approve, activity_complete, activity_create, activity_reject
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

TOMORROW = timezone.localdate() + dt.timedelta(days=1)


def test_create_targets_exposed_devices_of_the_selected_groups(security_user):
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 4)
    expose(rec, laptops, 2)

    activity = activity_create(
        user=security_user,
        recommendation=rec,
        remediation_option="software_update",
        priority="high",
        due_on=TOMORROW,
        device_groups=[servers],
    )

    assert activity.target_devices == 4
    assert ActivityDevice.objects.filter(activity=activity, status="exposed").count() == 4
    assert activity.ticket_status == "pending"
    assert activity.status == "active"
    assert activity.requester_email == "sec@example.com"
    assert list(activity.events.values_list("kind", "actor_label")) == [("created", "sec@example.com")]


@pytest.mark.parametrize(
    ("option", "due_on", "field"),
    [
        ("software_update", None, "due_on"),
        ("software_update", timezone.localdate() - dt.timedelta(days=1), "due_on"),
        ("attention_required", TOMORROW, "due_on"),
        ("configuration_change", TOMORROW, "remediation_option"),
        ("bogus", TOMORROW, "remediation_option"),
    ],
)
def test_create_refuses_bad_input_and_creates_nothing(security_user, option, due_on, field):
    rec = RecommendationFactory()
    group = DeviceGroupFactory(name="Servers")
    expose(rec, group, 2)

    with pytest.raises(ValidationError) as exc:
        activity_create(
            user=security_user,
            recommendation=rec,
            remediation_option=option,
            priority="low",
            due_on=due_on,
            device_groups=[group],
        )

    assert field in exc.value.errors
    assert RemediationActivity.objects.count() == 0


def test_create_refuses_no_group_and_group_without_exposed_devices(security_user):
    rec = RecommendationFactory()
    empty = DeviceGroupFactory(name="Empty")
    with pytest.raises(ValidationError, match="at least one device group"):
        activity_create(
            user=security_user,
            recommendation=rec,
            remediation_option="software_update",
            priority="low",
            due_on=TOMORROW,
            device_groups=[],
        )
    with pytest.raises(ValidationError, match="No device in the selected device groups"):
        activity_create(
            user=security_user,
            recommendation=rec,
            remediation_option="software_update",
            priority="low",
            due_on=TOMORROW,
            device_groups=[empty],
        )
    assert RemediationActivity.objects.count() == 0


def test_create_refuses_intune_task_while_connection_is_off(security_user):
    with pytest.raises(ValidationError) as exc:
        make_activity(user=security_user, create_intune_task=True)
    assert "create_intune_task" in exc.value.errors


def test_attention_required_has_no_ticket_no_due_date_and_no_progress(security_user):
    activity = make_activity(user=security_user, remediation_option="attention_required")
    assert activity.due_on is None
    assert activity.ticket_status == ""
    assert activity.progress is None


def test_it_staff_cannot_create(it_user):
    with pytest.raises(PermissionError_):
        make_activity(user=it_user)


def test_approve_sets_ticket_notes_and_event(security_user, it_user):
    activity = make_activity(user=security_user)
    activity = activity_approve(activity=activity, user=it_user, notes="Rolling out Friday")
    assert activity.ticket_status == "approved"
    assert activity.it_notes == "Rolling out Friday"
    assert activity.events.filter(kind="approved", actor_label="it@example.com").exists()


def test_reject_requires_notes(security_user, it_user):
    activity = make_activity(user=security_user)
    with pytest.raises(ValidationError, match="Notes are required"):
        activity_reject(activity=activity, user=it_user, notes=" ")
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"


def test_creator_cannot_approve_own_request(superuser):
    activity = make_activity(user=superuser)
    with pytest.raises(PermissionError_, match="someone else"):
        activity_approve(activity=activity, user=superuser)


def test_security_staff_cannot_approve(security_user):
    activity = make_activity(user=security_user)
    with pytest.raises(PermissionError_):
        activity_approve(activity=activity, user=security_user)


def test_complete_is_manual_with_completer_email_and_refused_twice(security_user, it_user):
    activity = make_activity(user=security_user)
    activity = activity_complete(activity=activity, user=it_user)
    assert activity.status == "completed"
    assert activity.completion_method == "manual"
    assert activity.completed_by_label == "it@example.com"
    assert activity.events.filter(kind=ActivityEvent.Kind.COMPLETED).count() == 1
    for action in (activity_complete, activity_approve):
        with pytest.raises(ConflictError):
            action(activity=activity, user=it_user, notes="x")
    with pytest.raises(ConflictError):
        activity_reject(activity=activity, user=it_user, notes="too late")


def test_titles_and_descriptions_name_the_software_readably(security_user):
    rec = RecommendationFactory(
        name="Uninstall Microsoft Silverlight",
        product_name="silverlight",
        vendor="microsoft",
        related_component="Microsoft Silverlight",
        remediation_type="Uninstall",
    )
    uninstall = make_activity(user=security_user, recommendation=rec, remediation_option="software_uninstall")
    assert uninstall.title == "Uninstall Microsoft Silverlight"
    assert uninstall.description == "Uninstall Microsoft Silverlight from the affected devices."

    chrome = RecommendationFactory(
        name="Update Google Chrome",
        product_name="chrome",
        vendor="google",
        related_component="",
        recommended_version="131.0",
    )
    update = make_activity(user=security_user, recommendation=chrome)
    assert update.title == "Update Google Chrome"
    assert update.description == "Update google chrome to version 131.0."


def test_attention_required_cannot_ask_for_an_intune_task(security_user, superuser):
    from intune.services import intune_connection_set

    intune_connection_set(user=superuser, enabled=True)
    with pytest.raises(ValidationError) as exc:
        make_activity(user=security_user, remediation_option="attention_required", create_intune_task=True)
    assert "no fix to deploy" in exc.value.errors["create_intune_task"][0]
    assert RemediationActivity.objects.count() == 0


def test_a_due_date_of_today_is_accepted(security_user):
    rec = RecommendationFactory()
    group = DeviceGroupFactory(name="Servers")
    expose(rec, group, 2)

    activity = activity_create(
        user=security_user,
        recommendation=rec,
        remediation_option="software_update",
        priority="medium",
        due_on=timezone.localdate(),
        device_groups=[group],
    )

    assert activity.due_on == timezone.localdate()
    assert activity.is_overdue is False


def test_a_scoped_requester_cannot_target_a_group_outside_their_scope(scoped_security_user):
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 2)
    expose(rec, laptops, 3)

    with pytest.raises(ValidationError) as exc:
        activity_create(
            user=scoped_security_user,
            recommendation=rec,
            remediation_option="software_update",
            priority="high",
            due_on=TOMORROW,
            device_groups=[servers, laptops],
        )

    assert exc.value.errors["device_groups"] == ["Unknown device groups: Laptops."]
    assert RemediationActivity.objects.count() == 0


# --- a second request for the same recommendation and device group (DESIGN.md section 4) ------


def request(user, rec, groups, **kwargs):
    return activity_create(
        user=user,
        recommendation=rec,
        remediation_option="software_update",
        priority="high",
        due_on=TOMORROW,
        device_groups=groups,
        **kwargs,
    )


def test_a_second_active_request_for_an_overlapping_group_needs_confirmation(security_user):
    rec = RecommendationFactory(name="Update Widget")
    servers, laptops, kiosks = (DeviceGroupFactory(name=n) for n in ("Servers", "Laptops", "Kiosks"))
    for group in (servers, laptops, kiosks):
        expose(rec, group, 2)
    first = request(security_user, rec, [servers, laptops])

    with pytest.raises(ConflictError) as exc:
        request(security_user, rec, [laptops, kiosks])

    assert exc.value.http_status == 409
    assert exc.value.extra == {"existing_activity_id": str(first.pk)}
    assert "Laptops" in exc.value.message
    assert "Servers" not in exc.value.message  # only the groups the two requests share
    assert RemediationActivity.objects.count() == 1

    second = request(security_user, rec, [laptops, kiosks], confirm_duplicate=True)
    assert second.target_devices == 4
    assert RemediationActivity.objects.count() == 2


def test_other_groups_and_completed_activities_are_no_duplicates(security_user):
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 2)
    expose(rec, laptops, 2)
    done = request(security_user, rec, [servers])
    activity_complete(activity=done, user=security_user)

    again = request(security_user, rec, [servers])  # the earlier one is completed
    other_group = request(security_user, rec, [laptops])

    assert (again.target_devices, other_group.target_devices) == (2, 2)
