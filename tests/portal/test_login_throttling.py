"""Failed logins to the admin and to the API's session login are throttled per username at an
address and per address (django-axes with portal.lockout, enabled here as in production), and
every attempt is logged with its address."""

import logging

import pytest
from axes.models import AccessAttempt

from tests.recommendations.factories import UserFactory

PASSWORD = "correct horse battery staple"
ADMIN_LOGIN = "/admin/login/?next=/admin/"
API_LOGIN = "/api-auth/login/"


@pytest.fixture(autouse=True)
def axes_on(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 10
    settings.AXES_ADDRESS_FAILURE_LIMIT = 20
    settings.AXES_COOLOFF_TIME = 0.5


def post_login(client, url, username, password, address="10.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_twenty_wrong_passwords_lock_the_account_out_and_are_logged(client, caplog):
    user = UserFactory(username="alice")
    caplog.set_level(logging.INFO, logger="portal.security")

    statuses = [post_login(client, ADMIN_LOGIN, "alice", f"wrong-{i}").status_code for i in range(20)]

    assert statuses[:9] == [200] * 9  # the login form again, with its error
    assert set(statuses[10:]) == {429}
    # Locked out: even the right password is refused, and no session is opened.
    response = post_login(client, ADMIN_LOGIN, "alice", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302

    security = [r for r in caplog.records if r.name == "portal.security"]
    failed = [r for r in security if getattr(r, "event", "") == "login_failed"]
    lockouts = [r for r in security if getattr(r, "event", "") == "lockout"]
    assert len(failed) >= 10
    assert all(r.username == "alice" and r.client_ip == "10.0.0.1" for r in failed)
    assert lockouts, "the lock-out must be logged"
    assert lockouts[0].levelno == logging.ERROR
    assert "alice" in lockouts[0].getMessage()
    assert all(PASSWORD not in r.getMessage() and "wrong-" not in r.getMessage() for r in security)
    user.refresh_from_db()
    assert user.is_active  # lock-outs are temporary; the account itself is untouched


@pytest.mark.django_db
def test_twelve_wrong_passwords_hold_back_that_address_not_the_user_elsewhere(client):
    """No denial of service: guessing someone's password never locks them out of every address."""
    UserFactory(username="bob")
    for i in range(12):
        post_login(client, ADMIN_LOGIN, "bob", f"wrong-{i}", address="10.0.1.1")

    assert post_login(client, ADMIN_LOGIN, "bob", PASSWORD, address="10.0.1.1").status_code == 429
    response = post_login(client, ADMIN_LOGIN, "bob", PASSWORD, address="10.9.9.9")
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


@pytest.mark.django_db
def test_a_sign_in_from_the_guessing_address_does_not_clear_its_guesses_at_others(client):
    UserFactory(username="bob")
    UserFactory(username="mallory")
    for i in range(9):
        post_login(client, ADMIN_LOGIN, "bob", f"wrong-{i}", address="10.0.1.1")
    assert post_login(client, ADMIN_LOGIN, "mallory", PASSWORD, address="10.0.1.1").status_code == 302
    client.logout()

    post_login(client, ADMIN_LOGIN, "bob", "wrong-again", address="10.0.1.1")
    assert post_login(client, ADMIN_LOGIN, "bob", PASSWORD, address="10.0.1.1").status_code == 429


@pytest.mark.django_db
def test_an_address_guessing_many_usernames_is_locked_out(client):
    UserFactory(username="carol")
    for i in range(20):
        post_login(client, ADMIN_LOGIN, f"nobody{i}", "guess", address="10.0.2.2")
    assert post_login(client, ADMIN_LOGIN, "carol", PASSWORD, address="10.0.2.2").status_code == 429
    # Someone else, elsewhere, still signs in.
    response = post_login(client, ADMIN_LOGIN, "carol", PASSWORD, address="10.0.3.3")
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


@pytest.mark.django_db
def test_api_session_login_is_throttled_too(client, caplog):
    UserFactory(username="dave")
    caplog.set_level(logging.INFO, logger="portal.security")
    for i in range(10):
        assert post_login(client, API_LOGIN, "dave", f"wrong-{i}").status_code in (200, 429)
    assert post_login(client, API_LOGIN, "dave", PASSWORD).status_code == 429
    assert any(getattr(r, "event", "") == "lockout" for r in caplog.records)


@pytest.mark.django_db
def test_success_is_logged_and_resets_the_count(client, caplog):
    UserFactory(username="erin")
    caplog.set_level(logging.INFO, logger="portal.security")
    for i in range(5):
        post_login(client, ADMIN_LOGIN, "erin", f"wrong-{i}")
    response = post_login(client, ADMIN_LOGIN, "erin", PASSWORD)
    assert response.status_code == 302
    signed_in = [r for r in caplog.records if getattr(r, "event", "") == "login"]
    assert [(r.username, r.client_ip) for r in signed_in] == [("erin", "10.0.0.1")]
    assert signed_in[0].getMessage() == "Sign-in: erin from 10.0.0.1"
    assert not AccessAttempt.objects.filter(username="erin").exists()


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_locked(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    UserFactory(username="frank")
    for i in range(20):
        client.post(
            ADMIN_LOGIN,
            {"username": f"x{i}", "password": "guess"},
            REMOTE_ADDR="10.0.0.254",  # the proxy
            HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7",  # the client may forge the left part
        )
    locked = client.post(
        ADMIN_LOGIN,
        {"username": "frank", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.254",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    assert locked.status_code == 429
    other_client = client.post(
        ADMIN_LOGIN,
        {"username": "frank", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.254",
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )
    assert other_client.status_code == 302


@pytest.mark.django_db
def test_admin_permission_denials_are_logged(client, caplog):
    staff = UserFactory(username="grace", is_staff=True)  # staff, but no permission on users
    client.force_login(staff)
    caplog.set_level(logging.INFO, logger="portal.security")
    response = client.get("/admin/auth/user/", HTTP_X_REQUEST_ID="req-403")
    assert response.status_code == 403
    denials = [r for r in caplog.records if r.name == "portal.security" and r.getMessage().startswith("Permission")]
    assert [(r.status, r.request_id, r.user, r.levelname) for r in denials] == [(403, "req-403", "grace", "WARNING")]
    assert "/admin/auth/user/" in denials[0].getMessage()


@pytest.mark.django_db
@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_failed_sign_ins_show_the_address_in_every_log_format(client, caplog, settings, log_format):
    import json
    import logging.config

    caplog.set_level(logging.INFO, logger="portal.security")
    post_login(client, ADMIN_LOGIN, "gina", "guess", address="192.0.2.44")
    record = next(r for r in caplog.records if getattr(r, "event", "") == "login_failed")

    formatter_config = settings.LOGGING["formatters"][log_format]
    if "()" in formatter_config:
        from django.utils.module_loading import import_string

        formatter = import_string(formatter_config["()"])()
    else:
        formatter = logging.Formatter(formatter_config["format"])
    for name in ("request_id", "user", "activity_id"):
        setattr(record, name, getattr(record, name, "-"))
    line = formatter.format(record)

    assert "192.0.2.44" in (json.loads(line)["message"] if log_format == "json" else line)
