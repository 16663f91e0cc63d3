"""Domain errors raised by services, and their translation to HTTP for the API.

Services raise these; callers turn them into a form error (admin), an HTTP status (API)
or a non-zero exit (commands). A `field` names the input the message is about.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A rule forbids the action. Maps to HTTP 400."""

    http_status = status.HTTP_400_BAD_REQUEST

    def __init__(
        self,
        message: str = "",
        *,
        field: str | None = None,
        errors: dict[str, list[str]] | None = None,
        extra: dict | None = None,
    ):
        """`errors` carries several field messages at once ({field: [message, ...]})."""
        if errors and not message:
            message = "; ".join(str(m) for msgs in errors.values() for m in msgs)
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ({field: [message]} if field else {})
        self.extra = extra or {}

    def as_payload(self) -> dict:
        if self.errors:
            return dict(self.errors)
        if self.field:
            return {self.field: [self.message]}
        return {"detail": self.message, **self.extra}


class ValidationError(ApplicationError):
    """Input breaks a rule of the request (400)."""


class PermissionError_(ApplicationError):  # noqa: N801 - avoid shadowing the builtin
    """The user's role may not take this action (403)."""

    http_status = status.HTTP_403_FORBIDDEN


class NotFoundError(ApplicationError):
    """Unknown or out-of-scope object (404)."""

    http_status = status.HTTP_404_NOT_FOUND


class ConflictError(ApplicationError):
    """The object's state forbids the transition (409)."""

    http_status = status.HTTP_409_CONFLICT


ForbiddenError = PermissionError_


def add_to_form(form, exc: ApplicationError) -> None:
    """Show a service error on a Django form: each message on its field, or on the form."""
    if not exc.errors:
        form.add_error(None, exc.message)
        return
    for field, field_messages in exc.errors.items():
        for message in field_messages:
            form.add_error(field if field in form.fields else None, message)


def api_exception_handler(exc, context):
    """DRF exception handler that also understands ApplicationError."""
    if isinstance(exc, ApplicationError):
        return Response(exc.as_payload(), status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):  # Django's own body limit (form bodies): JSON, not HTML
        return Response(
            {"detail": _("The request body is too large.")}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if isinstance(exc, SuspiciousOperation):  # e.g. more form fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
        return Response(
            {"detail": _("The request could not be read: %(error)s") % {"error": exc}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    return exception_handler(exc, context)
