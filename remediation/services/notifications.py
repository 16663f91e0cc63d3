"""Email IT staff about remediation activities, each kind at most once per activity.

Exactly-once is impossible with email, so the portal chooses *at most once*: a duplicate
email is worse for the people receiving it than a lost reminder (the activity stays visible
in the portal either way). The order of operations is:

1. **Claim**: insert the `ActivityNotification` row for (activity, kind) in its own, committed
   transaction. The unique constraint makes only one run win; every other run (a second
   worker, a redelivered task, tomorrow's beat tick) sees the row and sends nothing.
2. **Send** one message addressed to every recipient who reads the same language (their stored
   choice, else LANGUAGE_CODE; one SMTP transaction each, so it is accepted for all of them or
   raises). Most often there is a single language, so a single message.
3. If the first send *raises* (SMTP down, connection refused), the claim is deleted again and the
   error propagates, so the task retries later and the email still goes out once. If a later
   language's send raises, the claim stays (a retry would send the first language twice) and
   the log says who missed it.

If the worker process is *killed* between 1 and 3 (SIGKILL, power loss), the claim stays and
that one email is never sent: no duplicate, at the cost of a missing reminder, which the log
shows ("claimed" without "sent").
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal import permissions as perm
from portal import preferences
from portal.links import absolute_url
from portal.locks import job_lock, job_lock_timeout

from ..models import ActivityNotification, RemediationActivity, RemediationOption
from ..rules import overdue_q

logger = logging.getLogger(__name__)

SUBJECTS = {
    ActivityNotification.Kind.NEW_REQUEST: _("New remediation request: %(title)s"),
    ActivityNotification.Kind.DUE_SOON: _("Remediation activity due on %(due)s: %(title)s"),
    ActivityNotification.Kind.OVERDUE: _("Remediation activity overdue since %(due)s: %(title)s"),
}

INTROS = {
    ActivityNotification.Kind.NEW_REQUEST: _("A new remediation request was filed for your device groups."),
    ActivityNotification.Kind.DUE_SOON: _("This remediation activity is due on %(due)s and is not completed yet."),
    ActivityNotification.Kind.OVERDUE: _("This remediation activity was due on %(due)s and is not completed yet."),
}


def activity_url(activity: RemediationActivity) -> str:
    return absolute_url(activity.get_absolute_url())


def _it_staff(activity: RemediationActivity):
    """Active IT staff with an email who may see one of the activity's device groups."""
    User = get_user_model()
    group_ids = list(activity.device_groups.values_list("pk", flat=True))
    view_all_codename = perm.codename(perm.VIEW_ALL_DEVICE_GROUPS)
    view_all = Q(groups__permissions__codename=view_all_codename) | Q(user_permissions__codename=view_all_codename)
    scoped = Q(groups__device_groups__in=group_ids)
    users = (
        User.objects.filter(is_active=True, groups__name=perm.IT_STAFF)
        .filter(
            Q(pk__in=User.objects.filter(view_all).values("pk")) | Q(pk__in=User.objects.filter(scoped).values("pk"))
        )
        .exclude(email="")
    )
    return users


def it_staff_emails(activity: RemediationActivity) -> list[str]:
    """Active IT staff who may see one of the activity's device groups."""
    return sorted(set(_it_staff(activity).values_list("email", flat=True)))


def it_staff_by_language(activity: RemediationActivity) -> dict[str, list[str]]:
    """The same people, grouped by the language they read: their stored choice, else LANGUAGE_CODE."""
    codes = preferences.language_codes()
    by_language: dict[str, set[str]] = {}
    for email, language in _it_staff(activity).values_list("email", "portal_preference__language"):
        language = language if language in codes else settings.LANGUAGE_CODE
        by_language.setdefault(language, set()).add(email)
    return {language: sorted(emails) for language, emails in sorted(by_language.items())}


def build_message(
    *, activity: RemediationActivity, kind: str, recipients: list[str], language: str | None = None
) -> EmailMessage:
    """The email to `recipients`, written in `language` (default LANGUAGE_CODE); dates are ISO 8601."""
    with translation.override(language or settings.LANGUAGE_CODE):
        due = activity.due_on.isoformat() if activity.due_on else gettext("none")
        subject = SUBJECTS[kind] % {"title": activity.title, "due": due}
        lines = [
            INTROS[kind] % {"due": due},
            "",
            activity.title,
            "",
            gettext("Recommendation: %(name)s") % {"name": activity.recommendation.name},
            gettext("Device groups: %(names)s")
            % {"names": ", ".join(sorted(g.name for g in activity.device_groups.all()))},
            gettext("Priority: %(priority)s") % {"priority": activity.get_priority_display()},
            gettext("Due date: %(due)s") % {"due": due},
            gettext("Requested by: %(email)s") % {"email": activity.requester_email or gettext("unknown")},
            gettext("Target devices: %(target)s (fixed: %(fixed)s)")
            % {"target": activity.target_devices, "fixed": activity.fixed_devices},
            "",
            gettext("Open the activity: %(url)s") % {"url": activity_url(activity)},
        ]
    body = "\n".join(lines) + "\n"
    # One message for all recipients of a language: a single SMTP transaction, accepted or failed as a whole.
    return EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=recipients)


def _claim(activity: RemediationActivity, kind: str, recipients: int) -> ActivityNotification | None:
    try:
        with transaction.atomic():
            return ActivityNotification.objects.create(activity=activity, kind=kind, recipients=recipients)
    except IntegrityError:
        return None  # already claimed by an earlier or concurrent run


def notify(*, activity: RemediationActivity, kind: str) -> bool:
    """Send one kind of notification for an activity unless it was already sent. True if sent.

    Call it outside a transaction (a task, a command, or `transaction.on_commit`) so the claim
    is committed before the email leaves; see the module docstring.
    """
    recipients = it_staff_emails(activity)
    claim = _claim(activity, kind, len(recipients))
    if claim is None:
        logger.info("The %s notification for activity %s was already sent; skipping.", kind, activity.pk)
        return False
    logger.info("Claimed the %s notification for activity %s (%d recipients).", kind, activity.pk, len(recipients))
    if recipients:
        # One message per language the recipients read (most often one), over one connection.
        connection = get_connection()
        delivered = 0
        for language, emails in it_staff_by_language(activity).items():
            message = build_message(activity=activity, kind=kind, recipients=emails, language=language)
            message.connection = connection
            try:
                message.send(fail_silently=False)
            except Exception:
                if delivered:
                    # Some people already have it: a retry would send them a duplicate, so keep the
                    # claim (at most once) and say who did not get it.
                    logger.warning(
                        "Sending the %s notification for activity %s in %s failed after %d were sent; not retried.",
                        kind,
                        activity.pk,
                        language,
                        delivered,
                    )
                    return True
                # Nothing was delivered: release the claim so a retry sends it (still once).
                ActivityNotification.objects.filter(pk=claim.pk).delete()
                logger.warning("Sending the %s notification for activity %s failed; will retry.", kind, activity.pk)
                raise
            delivered += len(emails)
    logger.info("Sent the %s notification for activity %s to %d people.", kind, activity.pk, len(recipients))
    return True


def notify_new_activity(*, activity_id: str) -> bool:
    """Tell IT staff about a new request. Quietly does nothing for a deleted or completed activity."""
    try:
        activity = (
            RemediationActivity.objects.select_related("recommendation")
            .prefetch_related("device_groups")
            .filter(pk=activity_id)
            .first()
        )
    except (ValueError, DjangoValidationError):  # not a UUID
        activity = None
    if activity is None:
        logger.info("Activity %s no longer exists; no new-request notification.", activity_id)
        return False
    if activity.is_completed:
        logger.info("Activity %s is already completed; no new-request notification.", activity_id)
        return False
    return notify(activity=activity, kind=ActivityNotification.Kind.NEW_REQUEST)


def notify_due_activities(*, today: dt.date | None = None) -> dict:
    """Email IT staff about activities due within DUE_SOON_DAYS days and about overdue ones.

    Each kind goes out at most once per activity. Only active activities with a due date
    (so never attention-required ones) and whose request was not rejected. An activity that
    is already overdue when first seen gets the overdue email only.
    """
    today = today or timezone.localdate()
    soon_until = today + dt.timedelta(days=settings.DUE_SOON_DAYS)
    candidates = (
        RemediationActivity.objects.filter(status=RemediationActivity.Status.ACTIVE, due_on__isnull=False)
        .exclude(remediation_option=RemediationOption.ATTENTION_REQUIRED)
        .exclude(ticket_status=RemediationActivity.TicketStatus.REJECTED)
        .select_related("recommendation")
        .prefetch_related("device_groups")
        .order_by("due_on", "pk")
    )
    kinds = [
        (ActivityNotification.Kind.OVERDUE, candidates.filter(overdue_q(today))),
        (ActivityNotification.Kind.DUE_SOON, candidates.filter(due_on__gte=today, due_on__lte=soon_until)),
    ]
    counts = {"skipped": False, ActivityNotification.Kind.OVERDUE: 0, ActivityNotification.Kind.DUE_SOON: 0}
    with job_lock("notify_due_activities", timeout=job_lock_timeout()) as acquired:
        if not acquired:
            return {**counts, "skipped": True}
        for kind, queryset in kinds:
            for activity in queryset.exclude(notifications__kind=kind).iterator(chunk_size=200):
                if notify(activity=activity, kind=kind):
                    counts[kind] += 1
    logger.info("Due-date notifications sent: %s", counts)
    return counts
