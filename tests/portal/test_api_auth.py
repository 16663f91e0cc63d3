"""API authentication (token and session with CSRF), `create_api_token`, and throttling."""

import io
import os

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.recommendations.factories import UserFactory
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

A = "/api/v1/remediation-activities/"


def test_anonymous_requests_answer_401_with_a_token_challenge():
    response = APIClient().get(A)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_answers_401(it_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    assert client.get(A).status_code == 401


def test_create_api_token_prints_a_key_that_authenticates(it_user):
    out = io.StringIO()
    call_command("create_api_token", "it", stdout=out)
    key = out.getvalue().strip()

    assert key == Token.objects.get(user=it_user).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(A).status_code == 200

    again = io.StringIO()
    call_command("create_api_token", "it", stdout=again)
    assert again.getvalue().strip() == key

    reset = io.StringIO()
    call_command("create_api_token", "it", "--reset", stdout=reset)
    assert reset.getvalue().strip() != key
    assert client.get(A).status_code == 401


def test_create_api_token_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match='No user named "ghost"'):
        call_command("create_api_token", "ghost")
    assert Token.objects.count() == 0


def test_create_api_token_exits_non_zero_for_an_unknown_user(db, capsys):
    with pytest.raises(SystemExit) as exc:
        ManagementUtility(["manage.py", "create_api_token", "ghost"]).execute()

    assert exc.value.code != 0
    assert 'No user named "ghost"' in capsys.readouterr().err


def test_session_writes_need_the_csrf_token(security_user, it_user):
    activity = make_activity(user=security_user)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(it_user)

    refused = client.post(f"{A}{activity.pk}/approve/", {"notes": "ok"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    activity.refresh_from_db()
    assert activity.ticket_status == "pending"

    token = "k" * 32  # a CSRF secret, as the browser would hold it in the csrftoken cookie
    client.cookies["csrftoken"] = token
    accepted = client.post(f"{A}{activity.pk}/approve/", {"notes": "ok"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 200
    assert client.get(A).status_code == 200


@override_settings(
    REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "3/min"}}
)
def test_a_runaway_script_is_throttled_per_user(it_user, security_user):
    cache.clear()
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=it_user).key)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=security_user).key)

    assert [script.get(A).status_code for _ in range(3)] == [200, 200, 200]
    throttled = script.get(A)
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert "detail" in throttled.json()
    # Someone else is not starved by it.
    assert other.get(A).status_code == 200
    cache.clear()


@pytest.mark.skipif(bool(os.environ.get("API_THROTTLE_USER")), reason="API_THROTTLE_USER overrides the default")
def test_the_default_rate_allows_at_least_1000_requests_a_minute():
    from portal.settings import base

    num, period = base.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"].split("/")
    assert (period, int(num) >= 1000) == ("min", True)


def test_a_user_without_a_role_is_authenticated_but_forbidden(db):
    nobody = UserFactory(username="nobody")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=nobody).key)

    assert client.get(A).status_code == 403
    assert client.get("/api/v1/recommendations/").status_code == 403
    assert client.get("/api/v1/device-groups/").status_code == 403
