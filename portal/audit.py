"""Who signed in, who failed, who was locked out: one log line each on `portal.security`.

Connected in `portal.apps.PortalConfig.ready`. Permission denials (401/403 answers from
the admin and the API) are logged by `portal.middleware.RequestContextMiddleware`.
"""

from __future__ import annotations

import logging

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

logger = logging.getLogger("portal.security")


def client_ip(request) -> str | None:
    """The client's address. Behind TRUSTED_PROXY_COUNT proxies, the address the outermost
    trusted proxy saw (read from the right of X-Forwarded-For, which a client cannot forge)."""
    if request is None:
        return None
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR")


@receiver(user_logged_in, dispatch_uid="portal.audit.logged_in")
def log_sign_in(sender, request, user, **kwargs):
    address = client_ip(request) or "-"
    logger.info(
        "Sign-in: %s from %s",
        user.get_username(),
        address,
        extra={"event": "login", "username": user.get_username(), "client_ip": address},
    )


@receiver(user_logged_out, dispatch_uid="portal.audit.logged_out")
def log_sign_out(sender, request, user, **kwargs):
    name = user.get_username() if user is not None else "-"
    logger.info("Sign-out: %s", name, extra={"event": "logout", "username": name, "client_ip": client_ip(request)})


@receiver(user_login_failed, dispatch_uid="portal.audit.login_failed")
def log_failed_sign_in(sender, credentials, request=None, **kwargs):
    # `credentials` is already cleansed by Django (the password is masked); log the name only.
    name = credentials.get("username", "-")
    address = client_ip(request) or "-"
    # The address is in the message itself, so that every log format (plain or JSON) shows it.
    logger.warning(
        "Failed sign-in: %s from %s",
        name,
        address,
        extra={"event": "login_failed", "username": name, "client_ip": address},
    )


@receiver(user_locked_out, dispatch_uid="portal.audit.locked_out")
def log_lockout(sender, request, username, ip_address, **kwargs):
    logger.error(
        "Locked out after repeated failed sign-ins (%s for a username at an address, %s for an address): "
        "username %s, address %s",
        settings.AXES_FAILURE_LIMIT,
        settings.AXES_ADDRESS_FAILURE_LIMIT,
        username,
        ip_address,
        extra={"event": "lockout", "username": username, "client_ip": ip_address},
    )
