"""List filters and ordering of GET /api/v1/remediation-activities/ (DESIGN.md section 6)."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from remediation.models import RemediationActivity
from remediation.services import activity_approve, activity_complete, activity_reject
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

API = "/api/v1/remediation-activities/"
TODAY = timezone.localdate()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["title"] for row in response.json()["results"]]


def all_pages(client, url) -> list[dict]:
    rows, seen_urls = [], set()
    while url:
        assert url not in seen_urls
        seen_urls.add(url)
        response = client.get(url)
        assert response.status_code == 200, response.content
        rows += response.json()["results"]
        url = response.json()["next"]
    return rows


@pytest.fixture
def activities(security_user, it_user):
    """Five activities that differ in every filterable attribute."""
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    made = {}

    def make(key, *, group, created_days_ago, **kwargs):
        rec = RecommendationFactory(name=f"Update {key}")
        expose(rec, group, kwargs.pop("devices", 2))
        activity = make_activity(user=security_user, recommendation=rec, groups=[group], **kwargs)
        RemediationActivity.objects.filter(pk=activity.pk).update(
            created_at=timezone.now() - dt.timedelta(days=created_days_ago)
        )
        made[key] = activity
        return activity

    make("alpha", group=servers, created_days_ago=1, priority="low", due_on=TODAY + dt.timedelta(days=30))
    make("bravo", group=servers, created_days_ago=2, priority="high", due_on=TODAY + dt.timedelta(days=3))
    make("charlie", group=laptops, created_days_ago=3, priority="medium", remediation_option="attention_required")
    make("delta", group=servers, created_days_ago=4, priority="medium", due_on=TODAY + dt.timedelta(days=10), devices=4)
    make("echo", group=laptops, created_days_ago=5, priority="high", due_on=TODAY)

    activity_approve(activity=made["alpha"], user=it_user, notes="ok")
    activity_reject(activity=made["bravo"], user=it_user, notes="no")
    activity_complete(activity=made["echo"], user=it_user)
    # delta: half its devices fixed; echo overdue would be hidden because it is completed, so
    # make bravo overdue (active, due date passed).
    RemediationActivity.objects.filter(pk=made["delta"].pk).update(fixed_devices=2)
    RemediationActivity.objects.filter(pk=made["bravo"].pk).update(due_on=TODAY - dt.timedelta(days=2))
    return made


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Update alpha", "Update bravo", "Attention required: Update charlie", "Update delta", "Update echo"]),
        ("status=completed", ["Update echo"]),
        ("status=active&priority=medium", ["Attention required: Update charlie", "Update delta"]),
        ("ticket_status=approved", ["Update alpha"]),
        ("ticket_status=rejected", ["Update bravo"]),
        ("ticket_status=pending", ["Update delta", "Update echo"]),  # echo: completed while pending
        ("priority=high", ["Update bravo", "Update echo"]),
        ("remediation_option=attention_required", ["Attention required: Update charlie"]),
        ("device_group=Laptops", ["Attention required: Update charlie", "Update echo"]),
        ("device_group=Nowhere", []),
        ("overdue=true", ["Update bravo"]),
        ("overdue=false", ["Update alpha", "Attention required: Update charlie", "Update delta", "Update echo"]),
        ("search=DELTA", ["Update delta"]),
        (f"due_before={TODAY + dt.timedelta(days=10)}", ["Update bravo", "Update delta", "Update echo"]),
    ],
)
def test_filters(activities, security_user, query, expected):
    assert titles(client_for(security_user).get(f"{API}?{query}")) == expected


def test_created_after_and_before(activities, security_user):
    after = (timezone.now() - dt.timedelta(days=2, hours=12)).isoformat()
    before = (timezone.now() - dt.timedelta(days=3, hours=12)).isoformat()
    client = client_for(security_user)

    assert titles(client.get(API, {"created_after": after})) == ["Update alpha", "Update bravo"]
    assert titles(client.get(API, {"created_before": before})) == ["Update delta", "Update echo"]


@pytest.mark.parametrize(
    "query",
    [
        "status=open",
        "priority=urgent",
        "overdue=perhaps",
        "created_after=yesterday",
        "due_before=2026-13-01",
        "ordering=title",
        "ticket_status=maybe",
    ],
)
def test_bad_filter_values_answer_400(activities, security_user, query):
    response = client_for(security_user).get(f"{API}?{query}")

    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("created_at", ["echo", "delta", "charlie", "bravo", "alpha"]),
        ("-created_at", ["alpha", "bravo", "charlie", "delta", "echo"]),
        # no due date (charlie) sorts after every date
        ("due_on", ["bravo", "echo", "delta", "alpha", "charlie"]),
        ("-due_on", ["charlie", "alpha", "delta", "echo", "bravo"]),
        # high first, ties newest first
        ("priority", ["bravo", "echo", "charlie", "delta", "alpha"]),
        ("-priority", ["alpha", "charlie", "delta", "bravo", "echo"]),
        # attention_required (no progress) first, then 0%, then delta at 50%; ties newest first
        ("progress", ["charlie", "alpha", "bravo", "echo", "delta"]),
        ("-progress", ["delta", "alpha", "bravo", "echo", "charlie"]),
    ],
)
@pytest.mark.parametrize("page_size", [2, 500])
def test_ordering_holds_across_cursor_pages(activities, security_user, ordering, expected, page_size):
    rows = all_pages(client_for(security_user), f"{API}?ordering={ordering}&page_size={page_size}")

    assert [row["title"].split()[-1] for row in rows] == expected


def test_previous_links_walk_back_through_the_same_pages(activities, security_user):
    client = client_for(security_user)
    first = client.get(f"{API}?ordering=priority&page_size=2").json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    assert third["next"] is None
    back = client.get(third["previous"]).json()
    assert back["results"] == second["results"]
    assert client.get(back["previous"]).json()["results"] == first["results"]
    assert first["previous"] is None


def test_filters_survive_in_the_next_link(activities, security_user):
    rows = all_pages(client_for(security_user), f"{API}?status=active&ordering=-due_on&page_size=1")

    assert [row["title"].split()[-1] for row in rows] == ["charlie", "alpha", "delta", "bravo"]


@pytest.mark.parametrize("page_size", ["0", "501", "ten", "-1"])
def test_page_size_is_limited_to_500(activities, security_user, page_size):
    response = client_for(security_user).get(f"{API}?page_size={page_size}")

    assert response.status_code == 400
    assert "page_size" in response.json()


@pytest.mark.parametrize("cursor", ["garbage", "eyJrIjpbXX0", "e30", "%%%"])
def test_a_forged_cursor_answers_400(activities, security_user, cursor):
    response = client_for(security_user).get(f"{API}?cursor={cursor}")

    assert response.status_code == 400
    assert "cursor" in response.json()


def test_a_cursor_from_another_ordering_answers_400(activities, security_user):
    client = client_for(security_user)
    next_url = client.get(f"{API}?ordering=priority&page_size=2").json()["next"]

    response = client.get(next_url.replace("ordering=priority", "ordering=due_on"))

    assert response.status_code == 400


@pytest.mark.parametrize(
    ("value", "status", "count"),
    [
        ("0345-04-09T12:04:03+22:48", 200, 5),
        ("2000-01-01T00:00:00-23:59", 200, 5),
        ("0001-01-01T00:00:00+05:00", 400, 0),
    ],
)
def test_extreme_time_zone_offsets_are_handled(activities, security_user, value, status, count):
    response = client_for(security_user).get(API, {"created_after": value})

    assert response.status_code == status
    if status == 200:
        assert len(response.json()["results"]) == count
    else:
        assert "created_after" in response.json()
