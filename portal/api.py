"""Shared pieces of the REST API: role permissions, throttling, CSV rendering, error schemas."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import renderers, serializers
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle as _DRFUserRateThrottle


def has_perm(perm: str, *, message: str | None = None) -> type[BasePermission]:
    """A permission class: the caller's role carries `perm` (e.g. "remediation.decide_activity").

    Services check the same permission again; this only lets the API answer 403 before it
    parses a body, so a wrong role never sees a 400 about fields it may not send anyway.
    """

    class HasPerm(BasePermission):
        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perm(perm))

    HasPerm.message = message or f"Your role may not do this (needs permission {perm})."
    HasPerm.__name__ = HasPerm.__qualname__ = f"HasPerm_{perm.replace('.', '_')}"
    return HasPerm


class TextField(serializers.CharField):
    """Text in a request body: a JSON string, never a number or a boolean taken as text (the
    schema says `string`, and so does the API)."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class UserRateThrottle(_DRFUserRateThrottle):
    """DRF's per-user throttle, counting in the default (shared) cache.

    Reads the rate when a request comes in, not when the module is imported, so
    `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"]` (env `API_THROTTLE_USER`) and test
    overrides take effect.
    """

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class CSVRenderer(renderers.BaseRenderer):
    """Lets `Accept: text/csv` through content negotiation; CSV views stream their own body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return renderers.JSONRenderer().render(data)


class CSVDownloadMixin:
    """For views that answer CSV: errors are still JSON (`{"detail": ...}`) whatever Accept says,
    and an unknown `?format=` or `Accept` falls back to the default instead of answering 404/406."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(getattr(response, "accepted_renderer", None), CSVRenderer):
            response.accepted_renderer = renderers.JSONRenderer()
            response.accepted_media_type = "application/json"
        return response


# --- schema helpers ------------------------------------------------------------------------
DetailError = inline_serializer("DetailError", fields={"detail": serializers.CharField()})
ERROR_400 = OpenApiResponse(
    OpenApiTypes.OBJECT, description='Invalid input: `{"field": ["message", ...]}` or `{"detail": "message"}`.'
)
ERROR_401 = OpenApiResponse(DetailError, description="Not authenticated.")
ERROR_403 = OpenApiResponse(DetailError, description="Your role may not do this.")
ERROR_404 = OpenApiResponse(DetailError, description="Unknown id, or outside your device groups.")
ERROR_409 = OpenApiResponse(DetailError, description="The activity's state forbids this transition.")
ERROR_413 = OpenApiResponse(DetailError, description="The request body is larger than the API accepts.")
ERROR_429 = OpenApiResponse(DetailError, description="Too many requests; retry after `Retry-After` seconds.")

COMMON_ERRORS = {401: ERROR_401, 403: ERROR_403, 413: ERROR_413, 429: ERROR_429}


def json_errors(errors: dict) -> dict:
    """Error responses for views whose success is not JSON (CSV): errors are always JSON."""
    return {(code, "application/json"): response for code, response in errors.items()}
