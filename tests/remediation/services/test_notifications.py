"""Due-date and new-request emails to IT staff: once per activity and kind, never duplicated."""

import datetime as dt
import smtplib

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.utils import timezone

from portal.locks import job_lock
from remediation.models import ActivityNotification, RemediationActivity
from remediation.services import activity_complete, activity_reject, notify_due_activities
from remediation.services.notifications import notify_new_activity
from remediation.tasks import notify_due_activities as notify_due_task
from remediation.tasks import notify_new_activity as notify_new_task
from tests.recommendations.factories import DeviceGroupFactory, UserFactory
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


class RefusingBackend(BaseEmailBackend):
    """A mail server that is down."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def due_in(user, days, **kwargs):
    """An activity due `days` from today (negative: overdue); created valid, then the calendar moves."""
    activity = make_activity(user=user, devices=2, **kwargs)
    RemediationActivity.objects.filter(pk=activity.pk).update(due_on=TODAY + dt.timedelta(days=days))
    activity.refresh_from_db()
    return activity


def sent(kind=None):
    return [m for m in mail.outbox if kind is None or m.subject.startswith(kind)]


def test_due_within_three_days_emails_it_staff_with_a_link(security_user, it_user):
    soon = due_in(security_user, 3)
    today = due_in(security_user, 0)
    later = due_in(security_user, 4)

    result = notify_due_activities()

    assert result["due_soon"] == 2
    assert len(mail.outbox) == 2
    for activity in (soon, today):
        link = f"/admin/remediation/remediationactivity/{activity.pk}/"
        message = next(m for m in mail.outbox if link in m.body)
        assert message.to == ["it@example.com"]
        assert message.subject.startswith("Remediation activity due on")
        assert "http://" in message.body
    assert not any(str(later.pk) in m.body for m in mail.outbox)
    assert set(ActivityNotification.objects.values_list("activity_id", "kind")) == {
        (soon.pk, "due_soon"),
        (today.pk, "due_soon"),
    }


def test_overdue_emails_once_and_only_overdue(security_user, it_user):
    late = due_in(security_user, -1)

    notify_due_activities()
    notify_due_activities()

    assert [m.subject for m in mail.outbox] == [
        f"Remediation activity overdue since {late.due_on.isoformat()}: {late.title}"
    ]
    assert list(late.notifications.values_list("kind", flat=True)) == ["overdue"]


def test_due_soon_then_overdue_each_once(security_user, it_user):
    activity = due_in(security_user, 2)
    notify_due_activities()
    notify_due_activities(today=TODAY + dt.timedelta(days=1))

    notify_due_activities(today=TODAY + dt.timedelta(days=3))
    notify_due_activities(today=TODAY + dt.timedelta(days=4))

    assert len(sent("Remediation activity due on")) == 1
    assert len(sent("Remediation activity overdue")) == 1
    assert sorted(activity.notifications.values_list("kind", flat=True)) == ["due_soon", "overdue"]


def test_completed_rejected_and_attention_required_activities_get_no_reminder(security_user, it_user):
    done = due_in(security_user, 1)
    activity_complete(activity=done, user=it_user)
    rejected = due_in(security_user, -2)
    activity_reject(activity=rejected, user=it_user, notes="Not our servers")
    attention = make_activity(user=security_user, devices=1, remediation_option="attention_required")

    result = notify_due_activities()

    assert (result["due_soon"], result["overdue"]) == (0, 0)
    assert mail.outbox == []
    assert not ActivityNotification.objects.filter(kind__in=["due_soon", "overdue"]).exists()
    assert attention.due_on is None


def test_only_it_staff_who_see_the_device_group_are_emailed(security_user, it_user):
    laptops_team = Group.objects.create(name="Laptop team")
    DeviceGroupFactory(name="Laptops").user_groups.add(laptops_team)
    outsider = UserFactory(username="laptops", email="laptops@example.com")
    outsider.groups.add(Group.objects.get(name="IT staff"), laptops_team)
    due_in(security_user, 1)

    notify_due_activities()

    assert [m.to for m in mail.outbox] == [["it@example.com"]]


def test_a_run_while_another_holds_the_lock_sends_nothing(security_user, it_user):
    due_in(security_user, 1)

    with job_lock("notify_due_activities"):
        assert notify_due_activities()["skipped"] is True

    assert mail.outbox == []
    call_command("notify_due_activities")
    assert len(mail.outbox) == 1


def test_mail_server_down_keeps_nothing_so_the_retry_sends_once(security_user, it_user, settings, caplog):
    due_in(security_user, 1)
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"

    notify_due_task.delay()  # in-process: logged, not raised into the caller

    assert not ActivityNotification.objects.exists()
    assert "SMTPServerDisconnected" in caplog.text
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notify_due_task.delay()
    notify_due_task.delay()
    assert len(mail.outbox) == 1


def test_a_claimed_notification_is_never_sent_again(security_user, it_user):
    """A worker killed after claiming (before or after sending) must not cause a second email."""
    activity = due_in(security_user, 1)
    ActivityNotification.objects.create(activity=activity, kind="due_soon", recipients=1)

    assert notify_due_activities()["due_soon"] == 0
    assert mail.outbox == []


def test_new_request_emails_it_staff_once_after_commit(security_user, it_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        activity = make_activity(user=security_user, devices=2)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == f"New remediation request: {activity.title}"
    assert message.to == ["it@example.com"]
    assert f"/admin/remediation/remediationactivity/{activity.pk}/change/" in message.body
    notify_new_task.delay(str(activity.pk))  # a redelivered message
    assert len(mail.outbox) == 1


def test_new_request_for_a_deleted_or_completed_activity_sends_nothing(security_user, it_user):
    activity = make_activity(user=security_user, devices=1)
    activity_complete(activity=activity, user=it_user)
    activity_id = str(activity.pk)
    assert notify_new_activity(activity_id=activity_id) is False
    activity.delete()
    assert notify_new_activity(activity_id=activity_id) is False
    assert notify_new_activity(activity_id="not-a-uuid") is False
    assert mail.outbox == []


def test_new_request_with_mail_server_down_stays_unsent_for_the_next_attempt(security_user, it_user, settings):
    activity = make_activity(user=security_user, devices=1)
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"

    notify_new_task.delay(str(activity.pk))

    assert not ActivityNotification.objects.filter(activity=activity).exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notify_new_task.delay(str(activity.pk))
    assert [m.subject for m in mail.outbox] == [f"New remediation request: {activity.title}"]
