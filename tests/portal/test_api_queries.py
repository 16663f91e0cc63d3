"""Every list endpoint (and CSV) runs the same number of queries for 1 row and for 100 rows."""

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from intune.models import IntuneTask
from remediation.models import ActivityEvent
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

# Token lookup, permissions of the user, the page, prefetches and scope subqueries: a constant.
MAX_QUERIES = 6


def activities(n, security_user, it_group):
    servers = DeviceGroupFactory(name="Servers")
    for i in range(n):
        rec = RecommendationFactory()
        expose(rec, servers, 1)
        activity = make_activity(user=security_user, recommendation=rec, groups=[servers])
        if i % 2:
            IntuneTask.objects.create(activity=activity, graph_id=f"g-{i}", last_synced_at=timezone.now())
    return None


def one_activity_with_devices(n, security_user, it_group):
    return make_activity(user=security_user, devices=n)


def one_activity_with_events(n, security_user, it_group):
    activity = make_activity(user=security_user, devices=1)
    ActivityEvent.objects.bulk_create(
        ActivityEvent(activity=activity, kind="notified", actor_label="System") for _ in range(n - 1)
    )
    return activity


def recommendations(n, security_user, it_group):
    servers = DeviceGroupFactory(name="Servers")
    for _ in range(n):
        expose(RecommendationFactory(), servers, 1)


def one_recommendation_with_devices(n, security_user, it_group):
    rec = RecommendationFactory(external_id="va-_-contoso-_-widget")
    expose(rec, DeviceGroupFactory(name="Servers"), n)


def device_groups(n, security_user, it_group):
    it_group.device_groups.clear()  # drop the fixture's "Servers" and "Workstations"
    for i in range(n):
        DeviceGroupFactory(name=f"Group {i:03}").user_groups.add(it_group)


A = "/api/v1/remediation-activities/"
ENDPOINTS = [
    ("activities", activities, lambda obj: A, "results"),
    ("activity devices", one_activity_with_devices, lambda obj: f"{A}{obj.pk}/devices/", "results"),
    ("activity events", one_activity_with_events, lambda obj: f"{A}{obj.pk}/events/", "results"),
    ("activities CSV", activities, lambda obj: A + "export.csv", "csv"),
    ("activity devices CSV", one_activity_with_devices, lambda obj: f"{A}{obj.pk}/devices.csv", "csv"),
    ("recommendations", recommendations, lambda obj: "/api/v1/recommendations/", "results"),
    (
        "recommendation devices",
        one_recommendation_with_devices,
        lambda obj: "/api/v1/recommendations/va-_-contoso-_-widget/devices/",
        "results",
    ),
    ("device groups", device_groups, lambda obj: "/api/v1/device-groups/", "results"),
]


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize(("name", "build", "url", "kind"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_list_queries_do_not_grow_with_rows(
    django_assert_max_num_queries, security_user, it_user, it_group, rows, name, build, url, kind
):
    obj = build(rows, security_user, it_group)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=it_user).key)

    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(url(obj), {"page_size": 500})
        assert response.status_code == 200
        if kind == "csv":
            lines = b"".join(response.streaming_content).decode().splitlines()
            assert len(lines) == rows + 1
        else:
            assert len(response.json()["results"]) == rows
