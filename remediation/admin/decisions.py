"""IT's decisions and the completion, in the admin: the activity page's forms and the changelist
actions (an intermediate page with one notes box, like Django's own delete confirmation).

Thin callers of the same services as the API (remediation.services): the creator cannot
approve, completed activities refuse, rejecting needs notes, and the integration (Intune) hears
every decision. Errors become messages; nothing here decides a rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from portal import permissions as perm
from portal.errors import ApplicationError, ConflictError, PermissionError_, ValidationError

from ..models import RemediationActivity
from ..services import activity_approve, activity_complete, activity_reject

NOTES_MAX_LENGTH = 5000


@dataclass(frozen=True)
class Transition:
    """One thing a person does to an activity from the admin, and how the admin words it."""

    name: str  # approve | reject | complete
    service: object
    permission: str
    label: str  # the button
    question: str  # the confirmation page's title
    done: str  # "%(title)s was approved." style message, one activity
    done_many: object  # count -> message
    notes_required: bool = False


TRANSITIONS = {
    "approve": Transition(
        name="approve",
        service=activity_approve,
        permission=perm.DECIDE_ACTIVITY,
        label=gettext_lazy("Approve"),
        question=gettext_lazy("Approve remediation requests"),
        done=gettext_lazy("“%(title)s” was approved. Ticket status: %(ticket)s."),
        done_many=lambda n: ngettext("%(count)d activity approved.", "%(count)d activities approved.", n),
    ),
    "reject": Transition(
        name="reject",
        service=activity_reject,
        permission=perm.DECIDE_ACTIVITY,
        label=gettext_lazy("Reject"),
        question=gettext_lazy("Reject remediation requests"),
        done=gettext_lazy("“%(title)s” was rejected. Ticket status: %(ticket)s."),
        done_many=lambda n: ngettext("%(count)d activity rejected.", "%(count)d activities rejected.", n),
        notes_required=True,
    ),
    "complete": Transition(
        name="complete",
        service=activity_complete,
        permission=perm.COMPLETE_ACTIVITY,
        label=gettext_lazy("Mark as complete"),
        question=gettext_lazy("Mark remediation activities as complete"),
        done=gettext_lazy("“%(title)s” was marked as complete."),
        done_many=lambda n: ngettext(
            "%(count)d activity marked as complete.", "%(count)d activities marked as complete.", n
        ),
    ),
}


def read_notes(request) -> str:
    return request.POST.get("notes", "").strip()[:NOTES_MAX_LENGTH]


def apply(transition: Transition, *, activity: RemediationActivity, user, notes: str) -> RemediationActivity:
    """Call the service; PermissionError_ and other domain errors go to the caller."""
    return transition.service(activity=activity, user=user, notes=notes)


def done_message(transition: Transition, activity: RemediationActivity) -> str:
    return transition.done % {"title": activity.title, "ticket": activity.get_ticket_status_display()}


def can_decide(user, activity: RemediationActivity) -> bool:
    """Whether the page offers Approve / Reject: the role, and a request still waiting for a decision."""
    return (
        user.has_perm(perm.DECIDE_ACTIVITY)
        and not activity.is_completed
        and activity.ticket_status == RemediationActivity.TicketStatus.PENDING
    )


def _confirmation_page(request, model_admin, *, transition: Transition, activities, notes: str, error: str = ""):
    """The intermediate page of a changelist action: the selected activities and one notes box."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": transition.question,
        "subtitle": None,
        "opts": model_admin.model._meta,
        "transition": transition,
        "activities": activities,
        "notes": notes,
        "error": error,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": request.POST.get("action", ""),
    }
    return TemplateResponse(request, "admin/remediation/remediationactivity/confirm_action.html", context)


def bulk_action(model_admin, request, queryset, name: str):
    """A changelist action: first the confirmation page, then the service for each activity."""
    transition = TRANSITIONS[name]
    if not request.user.has_perm(transition.permission):
        raise PermissionDenied
    activities = list(queryset)
    if request.POST.get("post") != "yes":
        return _confirmation_page(request, model_admin, transition=transition, activities=activities, notes="")
    notes = read_notes(request)
    if transition.notes_required and not notes:
        return _confirmation_page(
            request,
            model_admin,
            transition=transition,
            activities=activities,
            notes=notes,
            error=_("Notes are required to reject a request."),
        )
    done, refused = 0, []
    for activity in activities:
        try:
            apply(transition, activity=activity, user=request.user, notes=notes)
        except ApplicationError as exc:  # the creator, a completed activity, a decision already taken
            refused.append(_("“%(title)s”: %(reason)s") % {"title": activity.title, "reason": exc.message})
        else:
            done += 1
    if done:
        model_admin.message_user(request, transition.done_many(done) % {"count": done}, messages.SUCCESS)
    for message in refused:
        model_admin.message_user(request, message, messages.ERROR)
    return None


def transition_view(request, model_admin, object_id, *, name: str, get_activity, activity_url):
    """The activity page's Approve / Reject / Mark as complete.

    GET of Mark as complete shows the confirmation page with its optional note; Approve and Reject
    are posted from the page's decision box. Either way the state changes on POST only.
    """
    transition = TRANSITIONS[name]
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    if request.method not in ("GET", "POST") or (request.method == "GET" and name != "complete"):
        return HttpResponseNotAllowed(["POST"] if name != "complete" else ["GET", "POST"])
    if not request.user.has_perm(transition.permission):
        raise PermissionDenied
    activity = get_activity(request, object_id)
    if request.method == "GET":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": transition.question,
            "subtitle": None,
            "opts": model_admin.model._meta,
            "transition": transition,
            "activity": activity,
            "activity_url": activity_url(activity),
        }
        return TemplateResponse(request, "admin/remediation/remediationactivity/confirm_complete.html", context)
    try:
        activity = apply(transition, activity=activity, user=request.user, notes=read_notes(request))
    except PermissionError_ as exc:
        if name == "complete":
            raise PermissionDenied(exc.message) from exc
        messages.error(request, exc.message)  # e.g. the creator may not approve their own request
    except (ConflictError, ValidationError) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done_message(transition, activity))
    return redirect(activity_url(activity))
