"""Per-request log context: a request id (X-Request-ID in and out), the user, the activity."""

from __future__ import annotations

import logging
import re
import time
import uuid

from django.conf import settings
from django.http import JsonResponse
from django.utils import translation
from django.utils.cache import patch_cache_control

from portal.logging import activity_id_var, request_id_var, request_var, user_label, user_var
from portal.parsers import body_limit

access_logger = logging.getLogger("portal.access")
security_logger = logging.getLogger("portal.security")

# A proxy's or a client's id is kept if it is short and harmless; otherwise we make one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# URL names (or admin paths) whose `pk` / `object_id` is a remediation activity.
_ACTIVITY_ROUTES = ("remediation-activit", "remediationactivity")


class RequestContextMiddleware:
    """First in MIDDLEWARE: binds the request id for every log line of the request, answers
    with it in X-Request-ID, and writes one access line per request (with its duration).
    401 and 403 answers are also logged as permission denials on `portal.security`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        tokens = [
            (request_id_var, request_id_var.set(request_id)),
            (user_var, user_var.set("-")),
            (activity_id_var, activity_id_var.set("-")),
            (request_var, request_var.set(request)),
        ]
        started = time.monotonic()
        try:
            response = self.get_response(request)
            user_var.set(user_label(request))
            duration_ms = round((time.monotonic() - started) * 1000, 1)
            if response.status_code in (401, 403):
                security_logger.warning(
                    "Permission denied: %s %s answered %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={"status": response.status_code, "client_ip": _client_ip(request)},
                )
            access_logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={"status": response.status_code, "duration_ms": duration_ms},
            )
            response["X-Request-ID"] = request_id
            return response
        finally:
            for var, token in reversed(tokens):
                var.reset(token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        marker = f"{getattr(match, 'url_name', '') or ''} {request.path}"
        if any(route in marker for route in _ACTIVITY_ROUTES):
            activity_id = view_kwargs.get("pk") or view_kwargs.get("object_id")
            if activity_id:
                activity_id_var.set(str(activity_id))
        return None


def _client_ip(request) -> str:
    from portal.audit import client_ip

    return client_ip(request) or "-"


API_PREFIX = "/api/"


class ApiGuardMiddleware:
    """For every answer under /api/ (the REST API and anything added beside it):

    - `Cache-Control: no-store`: activities, exports and tokens are sensitive, and no proxy or
      browser cache may keep them;
    - a body announced larger than DATA_UPLOAD_MAX_MEMORY_SIZE is refused at once with a JSON
      413, before anything reads it (and before Django's own check could answer an HTML 400).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        limit = body_limit()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            response = JsonResponse(
                {"detail": f"The request body is larger than {limit:,} bytes, the most the API accepts."},
                status=413,
            )
        else:
            response = self.get_response(request)
        patch_cache_control(response, no_store=True)
        return response


class UserLanguageMiddleware:
    """After AuthenticationMiddleware: a signed-in user's stored language wins over the browser's.

    LocaleMiddleware (earlier) has already activated the language of Accept-Language; this one
    activates the user's stored choice instead, if they made one (portal.preferences). The
    choice is cached in the session, so a page costs no query for it. The API (/api/) is left
    to Accept-Language: its token-authenticated callers are only known inside the view, and
    scripts say which language they want in the header (README "Languages").
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from portal import preferences

        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return self.get_response(request)  # nobody signed in: never touch the session (/healthz)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.path.startswith(API_PREFIX):
            session = getattr(request, "session", None)
            language = session.get(preferences.SESSION_KEY) if session is not None else None
            if language is None:
                language = preferences.stored_language(user)
                if session is not None:
                    session[preferences.SESSION_KEY] = language
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = language
        return self.get_response(request)
