"""Keyset pagination (portal.pagination): forged cursors answer 400 and rows never repeat or vanish."""

import base64
import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

A = "/api/v1/remediation-activities/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


def forge(keys, values) -> str:
    raw = json.dumps({"k": keys, "v": values}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def seven(security_user):
    servers = DeviceGroupFactory(name="Servers")
    made = []
    for priority in ("high", "high", "high", "medium", "medium", "low", "low"):
        rec = RecommendationFactory()
        expose(rec, servers, 1)
        made.append(make_activity(user=security_user, recommendation=rec, groups=[servers], priority=priority))
    return made


@pytest.mark.parametrize("ordering", ["priority", "-priority", "due_on", "progress", "-created_at"])
def test_every_row_appears_exactly_once_with_many_equal_keys(seven, it_user, ordering):
    client = client_for(it_user)
    seen, url = [], f"{A}?ordering={ordering}&page_size=2"
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]

    assert sorted(seen) == sorted(str(a.pk) for a in seven)
    assert len(seen) == 7


@pytest.mark.parametrize(
    "values",
    [
        [2**70, "2026-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000"],
        [1e400, "2026-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000"],
        [0, "2026-01-01T00:00:00+23:00", "00000000-0000-0000-0000-000000000000"],
        [0, "not a time", "00000000-0000-0000-0000-000000000000"],
        [0, "2026-01-01T00:00:00Z", "not-a-uuid"],
        [0, "2026-01-01T00:00:00Z", {"a": 1}],
        [None, "2026-01-01T00:00:00Z", "00000000-0000-0000-0000-000000000000"],
    ],
)
def test_forged_cursor_values_answer_400_or_a_page_never_500(seven, it_user, values):
    cursor = forge(["priority_rank", "-created_at", "-id"], values)

    response = client_for(it_user).get(A, {"ordering": "priority", "cursor": cursor})

    if values[1].endswith("+23:00"):  # a valid, if odd, position: normalised to UTC
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert "cursor" in response.json()


def test_a_nul_character_in_a_cursor_answers_400(security_user, it_user):
    activity = make_activity(user=security_user, devices=2)
    cursor = forge(["device__computer_dns_name", "pk"], ["a\x00b", 1])

    response = client_for(it_user).get(f"{A}{activity.pk}/devices/", {"cursor": cursor})

    assert response.status_code == 400
