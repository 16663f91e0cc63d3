"""Email IT staff about remediation activities, each kind at most once per activity."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse

from .models import ActivityNotification, RemediationActivity

logger = logging.getLogger(__name__)

SUBJECTS = {
    ActivityNotification.Kind.NEW_REQUEST: "New remediation request: {title}",
    ActivityNotification.Kind.DUE_SOON: "Remediation activity due on {due}: {title}",
    ActivityNotification.Kind.OVERDUE: "Remediation activity overdue since {due}: {title}",
}


def activity_url(activity: RemediationActivity) -> str:
    path = reverse("admin:remediation_remediationactivity_change", args=[activity.pk])
    return f"{settings.PORTAL_BASE_URL}{path}"


def it_staff_emails(activity: RemediationActivity) -> list[str]:
    """Active IT staff who may see one of the activity's device groups."""
    User = get_user_model()
    group_ids = list(activity.device_groups.values_list("pk", flat=True))
    view_all = Q(groups__permissions__codename="view_all_device_groups") | Q(
        user_permissions__codename="view_all_device_groups"
    )
    scoped = Q(groups__device_groups__in=group_ids)
    users = (
        User.objects.filter(is_active=True, groups__name="IT staff")
        .filter(
            Q(pk__in=User.objects.filter(view_all).values("pk"))
            | Q(pk__in=User.objects.filter(scoped).values("pk"))
        )
        .exclude(email="")
        .values_list("email", flat=True)
    )
    return sorted(set(users))


def notify(*, activity: RemediationActivity, kind: str) -> bool:
    """Send one kind of notification for an activity unless it was already sent. True if sent."""
    recipients = it_staff_emails(activity)
    try:
        with transaction.atomic():
            ActivityNotification.objects.create(activity=activity, kind=kind, recipients=len(recipients))
            if recipients:
                subject = SUBJECTS[kind].format(title=activity.title, due=activity.due_on)
                body = (
                    f"{activity.title}\n\n"
                    f"Recommendation: {activity.recommendation.name}\n"
                    f"Priority: {activity.get_priority_display()}\n"
                    f"Due date: {activity.due_on or 'none'}\n"
                    f"Requested by: {activity.requester_email or 'unknown'}\n"
                    f"Target devices: {activity.target_devices}\n\n"
                    f"Open the activity: {activity_url(activity)}\n"
                )
                messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [to]) for to in recipients]
                send_mass_mail(messages, fail_silently=False)
    except IntegrityError:
        return False  # already sent by an earlier or concurrent run
    logger.info("Sent %s notification for activity %s to %d people", kind, activity.pk, len(recipients))
    return True


def notify_new_activity(*, activity_id: str) -> bool:
    activity = RemediationActivity.objects.select_related("recommendation").filter(pk=activity_id).first()
    if activity is None:
        return False
    return notify(activity=activity, kind=ActivityNotification.Kind.NEW_REQUEST)
