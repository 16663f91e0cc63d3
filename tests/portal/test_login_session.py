"""Sessions expire after SESSION_IDLE_TIMEOUT seconds without a request, and each request
pushes the expiry back (an idle timeout, not an absolute one)."""

import time

import pytest

from tests.recommendations.factories import UserFactory


@pytest.mark.django_db
def test_an_idle_session_expires_and_an_active_one_does_not(client, settings):
    settings.SESSION_COOKIE_AGE = 3
    client.force_login(UserFactory(username="idle", is_superuser=True))

    for _ in range(3):  # active: a request every second keeps the session for longer than 3 s
        assert client.get("/admin/").status_code == 200
        time.sleep(1.2)
    assert client.get("/admin/").status_code == 200

    time.sleep(3.5)  # idle for longer than the timeout
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_session_cookie_carries_the_idle_timeout(client, settings):
    client.force_login(UserFactory(username="cookie", is_superuser=True))
    response = client.get("/admin/")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == 8 * 60 * 60
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
