"""The Celery tasks of the Intune sync (run in-process here, as with `make run`)."""

import pytest

from intune.models import IntuneTask
from intune.tasks import intune_push_activity, intune_sync_task
from portal.celery import app
from tests.intune.graph_fake import TASKS
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


def test_the_beat_task_name_is_registered():
    assert intune_sync_task.name == "intune.sync"
    assert app.tasks["intune.sync"].__module__ == "intune.tasks"
    assert "intune.push_activity" in app.tasks


def test_filing_a_request_pushes_its_task_after_commit(
    graph, intune_on, security_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        activity = make_activity(user=security_user, create_intune_task=True)

    assert len(graph.creates) == 1
    assert IntuneTask.objects.get(activity=activity).devices_sent == 3


def test_a_failed_push_at_filing_is_recorded_and_does_not_break_the_request(
    graph, intune_on, security_user, django_capture_on_commit_callbacks
):
    graph.fail("POST", TASKS, status=400)

    with django_capture_on_commit_callbacks(execute=True):
        activity = make_activity(user=security_user, create_intune_task=True)

    assert activity.pk
    assert "HTTP 400" in IntuneTask.objects.get(activity=activity).last_error

    intune_sync_task.delay()

    assert IntuneTask.objects.get(activity=activity).graph_id
    assert len(graph.tasks) == 1


def test_push_task_is_idempotent(graph, intune_on, security_user):
    activity = make_activity(user=security_user, create_intune_task=True)

    intune_push_activity.delay(str(activity.pk))
    intune_push_activity.delay(str(activity.pk))

    assert len(graph.creates) == 1
