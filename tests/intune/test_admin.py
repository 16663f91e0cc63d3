"""Settings → Advanced features, the Intune tasks admin and the activity page's *Retry now*."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from intune.models import IntuneConnection, IntuneTask
from intune.services import intune_connection_set, intune_sync
from tests.intune.graph_fake import CLIENT_SECRET, TASKS
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

PAGE = "admin:intune_advanced_features"


def activity_page(activity):
    return reverse("admin:remediation_remediationactivity_change", args=[activity.pk])


def retry_url(activity):
    return reverse("admin:intune_intunetask_retry", args=[activity.pk])


@pytest.fixture
def root_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def security_client(client, security_user):
    client.force_login(security_user)
    return client


def test_admin_index_links_to_advanced_features(root_client):
    html = root_client.get(reverse("admin:index")).content.decode()

    assert reverse(PAGE) in html


def test_pages_that_read_the_connection_never_write_it(root_client, security_client, security_user):
    """Opening the settings page, the request form or an activity page stores no connection row."""
    IntuneConnection.objects.all().delete()  # as on a database restored without the migration's row
    activity = make_activity(user=security_user)
    rec = activity.recommendation
    root_client.get(reverse(PAGE))
    root_client.get(activity_page(activity))
    security_client.get(reverse("admin:recommendations_securityrecommendation_remediation_options", args=[rec.pk]))

    assert not IntuneConnection.objects.exists()
    assert not IntuneConnection.load().enabled


def test_superuser_sees_the_toggle_off_by_default(root_client):
    response = root_client.get(reverse(PAGE))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="intune-toggle-form"' in html
    assert 'id="intune-test-connection"' in html
    assert 'id="intune-connection-state">Off<' in html
    assert 'id="intune-changed">Never<' in html


def test_superuser_turns_the_connection_on_and_the_page_says_who_and_when(root_client, superuser):
    response = root_client.post(reverse(PAGE), {"enabled": "on"}, follow=True)

    connection = IntuneConnection.load()
    assert connection.enabled
    assert connection.changed_by == superuser
    assert connection.changed_at is not None
    html = response.content.decode()
    assert "The Microsoft Intune connection is on." in html
    assert "by root@example.com" in html

    root_client.post(reverse(PAGE), {})
    assert not IntuneConnection.load().enabled


def test_security_staff_see_the_toggle_read_only_and_cannot_change_it(security_client):
    html = security_client.get(reverse(PAGE)).content.decode()

    assert 'id="intune-toggle-form"' not in html
    assert 'id="intune-test-connection"' not in html
    assert "only superusers may change it" in html

    response = security_client.post(reverse(PAGE), {"enabled": "on"})

    assert response.status_code == 403
    connection = IntuneConnection.load()
    assert not connection.enabled
    assert connection.changed_by is None


def test_staff_without_intune_permission_cannot_open_the_page(client):
    client.force_login(UserFactory(username="plain"))

    assert client.get(reverse(PAGE)).status_code == 403


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse(PAGE))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_page_says_when_credentials_are_missing(root_client, settings):
    settings.INTUNE_CLIENT_SECRET = ""

    html = root_client.get(reverse(PAGE)).content.decode()

    assert "Not configured: set INTUNE_TENANT_ID, INTUNE_CLIENT_ID and INTUNE_CLIENT_SECRET" in html


def test_the_toggle_warns_when_the_connection_is_on_but_credentials_are_missing(root_client, settings):
    settings.INTUNE_CLIENT_SECRET = ""

    response = root_client.post(reverse(PAGE), {"enabled": "on"}, follow=True)

    html = response.content.decode()
    assert "The Microsoft Intune connection is on." in html
    assert 'id="intune-connection-warning"' in html
    assert "The Microsoft Intune connection is on, but its credentials are not configured" in html


def test_no_warning_while_the_connection_is_off_or_configured(root_client, graph, superuser):
    assert 'id="intune-connection-warning"' not in root_client.get(reverse(PAGE)).content.decode()  # off

    intune_connection_set(user=superuser, enabled=True)

    assert 'id="intune-connection-warning"' not in root_client.get(reverse(PAGE)).content.decode()


def test_page_never_shows_the_secret(root_client, graph):
    html = root_client.get(reverse(PAGE)).content.decode()

    assert 'id="credentials-state">Configured<' in html
    assert "Set (not shown)" in html
    assert CLIENT_SECRET not in html
    assert str(graph.ca_path) in html


def test_test_connection_fetches_a_token_and_makes_one_get(root_client, graph):
    response = root_client.post(reverse("admin:intune_test_connection"), follow=True)

    assert "Test connection succeeded" in response.content.decode()
    assert len(graph.token_requests) == 1
    assert [(r.method, r.path) for r in graph.requests[1:]] == [("GET", TASKS)]


def test_test_connection_shows_why_it_failed(root_client, graph, settings):
    settings.INTUNE_CLIENT_SECRET = "wrong"

    response = root_client.post(reverse("admin:intune_test_connection"), follow=True)

    html = response.content.decode()
    assert "Test connection failed" in html
    assert "invalid_client" in html
    assert "wrong" not in html.split("Test connection failed")[1][:300]


def test_only_superusers_may_test_the_connection(security_client, graph):
    assert security_client.post(reverse("admin:intune_test_connection")).status_code == 403
    assert graph.requests == []
    assert security_client.get(reverse("admin:intune_test_connection")).status_code == 405


def test_last_sync_result_is_shown(root_client, graph, intune_on):
    intune_sync()

    html = root_client.get(reverse(PAGE)).content.decode()

    assert "Intune sync: 0 task(s) created" in html


# --- Intune tasks admin ---------------------------------------------------------------------------
def test_intune_task_admin_is_read_only_and_renders(root_client, graph, intune_on, security_user):
    activity = make_activity(user=security_user, create_intune_task=True)
    intune_sync()
    task = IntuneTask.objects.get(activity=activity)

    changelist = root_client.get(reverse("admin:intune_intunetask_changelist")).content.decode()
    detail = root_client.get(reverse("admin:intune_intunetask_change", args=[task.pk]))

    assert "3 of 3" in changelist
    assert activity.title in changelist
    assert detail.status_code == 200
    assert task.graph_id in detail.content.decode()
    assert 'type="submit" value="Save"' not in detail.content.decode()
    assert root_client.get(reverse("admin:intune_intunetask_add")).status_code == 403


def test_intune_tasks_are_scoped_to_the_users_device_groups(client, graph, intune_on, security_user, it_user):
    seen = make_activity(user=security_user, create_intune_task=True)  # in "Servers", which IT sees
    hidden_group = DeviceGroupFactory(name="Finance")
    rec = RecommendationFactory()
    expose(rec, hidden_group, 2)
    hidden = make_activity(user=security_user, recommendation=rec, groups=[hidden_group], create_intune_task=True)
    intune_sync()
    client.force_login(it_user)

    html = client.get(reverse("admin:intune_intunetask_changelist")).content.decode()

    assert seen.title in html
    assert hidden.title not in html


# --- Retry now ------------------------------------------------------------------------------------------
def test_failed_push_shows_the_error_and_retry_now_fixes_it(security_client, graph, intune_on, security_user):
    activity = make_activity(user=security_user, create_intune_task=True)
    graph.fail("POST", TASKS, status=500)
    intune_sync()

    html = security_client.get(activity_page(activity)).content.decode()
    assert "HTTP 500" in html
    assert "Only 0 of 3 devices were sent to Intune" in html
    assert retry_url(activity) in html

    response = security_client.post(retry_url(activity), follow=True)

    html = response.content.decode()
    assert "1 task(s) created" in html
    assert "3 of 3 devices were sent to Intune" in html
    assert 'id="intune-retry"' not in html
    assert len(graph.tasks) == 1


def test_retry_now_while_off_sends_nothing(security_client, graph, intune_on, superuser, security_user):
    activity = make_activity(user=security_user, create_intune_task=True)
    intune_connection_set(user=superuser, enabled=False)

    response = security_client.post(retry_url(activity), follow=True)

    assert "connection is off; nothing was sent" in response.content.decode()
    assert graph.requests == []


def test_retry_now_is_post_only_and_scoped(client, graph, intune_on, security_user, it_user):
    finance = DeviceGroupFactory(name="Finance")
    rec = RecommendationFactory()
    expose(rec, finance, 1)
    hidden = make_activity(user=security_user, recommendation=rec, groups=[finance], create_intune_task=True)
    client.force_login(it_user)

    assert client.get(retry_url(hidden)).status_code == 405
    assert client.post(retry_url(hidden)).status_code == 404
    assert graph.requests == []


def test_retry_now_needs_the_intune_view_permission(client, graph, intune_on, security_user):
    activity = make_activity(user=security_user, create_intune_task=True)
    user = UserFactory(username="viewer")
    viewer_group = Group.objects.create(name="Viewers")
    user.groups.add(viewer_group)
    client.force_login(user)

    assert client.post(retry_url(activity)).status_code == 403
    assert graph.requests == []


def test_retry_now_waits_for_a_running_sync_instead_of_pushing_beside_it(
    security_client, graph, intune_on, security_user
):
    from portal.locks import job_lock

    activity = make_activity(user=security_user, create_intune_task=True)
    graph.fail("POST", TASKS, status=500)
    intune_sync()
    graph.requests.clear()

    with job_lock("intune_sync") as held:  # a sync is running on a worker
        assert held
        response = security_client.post(retry_url(activity), follow=True)

    assert "Another Intune sync is running; this run did nothing." in response.content.decode()
    assert graph.requests == []
    assert graph.tasks == {}
