"""`/api/v1/exceptions/`: list, create, detail and cancel recommendation exceptions (DESIGN.md 8).

Thin: input serializers parse the body, the selectors scope what the caller sees, and
recommendations.services holds every rule.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from portal import permissions as perm
from portal.api import COMMON_ERRORS, ERROR_400, ERROR_404, DetailError, TextField
from portal.api import has_perm as role_permission
from portal.users import actor_label
from recommendations.filters import ExceptionFilter
from recommendations.models import (
    ExceptionDeviceGroup,
    ExceptionEvent,
    RecommendationException,
    SecurityRecommendation,
)
from recommendations.selectors import exception_event_list, exception_group_links, exception_list
from recommendations.services import exception_cancel, exception_create

from .serializers import DeviceGroupNamesField

HandlesExceptions = role_permission(
    perm.HANDLE_EXCEPTIONS,
    message="Only security staff can create or cancel exceptions.",
)
# Every exception endpoint: exceptions name their creators and the device groups they cover.
ViewsExceptions = role_permission(perm.VIEW_EXCEPTION, message="Your role may not see exceptions.")
ERROR_409 = OpenApiResponse(DetailError, description="The exception (or that group) is already canceled or expired.")


# --- output -------------------------------------------------------------------------------
def _email(user) -> str | None:
    return None if user is None else actor_label(user)


class ExceptionRecommendationOutput(serializers.Serializer):
    id = serializers.CharField(source="external_id", help_text="The recommendation's external id.")
    name = serializers.CharField()


class ExceptionGroupOutput(serializers.Serializer):
    name = serializers.CharField(source="device_group.name")
    status = serializers.ChoiceField(choices=ExceptionDeviceGroup.Status.choices)
    canceled_by = serializers.SerializerMethodField()
    canceled_at = serializers.DateTimeField(allow_null=True)

    def get_canceled_by(self, link) -> str | None:
        return _email(link.canceled_by)


class ExceptionEventOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ExceptionEvent.Kind.choices)
    actor = serializers.CharField(source="actor_label", help_text="An email, or `System`.")
    notes = serializers.CharField()
    at = serializers.DateTimeField()


class ExceptionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    recommendation = ExceptionRecommendationOutput()
    justification = serializers.ChoiceField(choices=RecommendationException.Justification.choices)
    context = serializers.CharField()
    expires_on = serializers.DateField()
    scope = serializers.ChoiceField(choices=RecommendationException.Scope.choices)
    device_groups = ExceptionGroupOutput(
        many=True, source="group_links.all", help_text="Empty for a global exception; only your device groups."
    )
    status = serializers.ChoiceField(choices=RecommendationException.Status.choices)
    suspended = serializers.BooleanField(
        source="is_suspended",
        help_text="A device-group exception while a global one is active: it takes effect again when "
        "the global one ends.",
    )
    created_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    canceled_by = serializers.SerializerMethodField()
    canceled_at = serializers.DateTimeField(allow_null=True)
    expired_at = serializers.DateTimeField(allow_null=True)

    def get_created_by(self, obj) -> str | None:
        return _email(obj.created_by)

    def get_canceled_by(self, obj) -> str | None:
        return _email(obj.canceled_by)


class ExceptionDetailOutput(ExceptionOutput):
    events = serializers.SerializerMethodField(help_text="The history, oldest first (your device groups only).")

    @extend_schema_field(ExceptionEventOutput(many=True))
    def get_events(self, exception) -> list:
        events = exception_event_list(exception=exception, user=self.context["request"].user)
        return ExceptionEventOutput(events, many=True).data


# --- input --------------------------------------------------------------------------------
class ExceptionCreateInput(serializers.Serializer):
    recommendation = TextField(help_text="The recommendation's external id.")
    justification = serializers.ChoiceField(choices=RecommendationException.Justification.choices)
    context = TextField(help_text="Why the exception is needed (required).")
    expires_on = serializers.DateField(help_text="The last day it applies (YYYY-MM-DD); after today.")
    scope = serializers.ChoiceField(choices=RecommendationException.Scope.choices)
    device_groups = DeviceGroupNamesField(
        required=False,
        default=list,
        help_text="Device group names; required for scope `device_groups`, omitted for `global`.",
    )

    def validate_recommendation(self, value: str) -> SecurityRecommendation:
        recommendation = SecurityRecommendation.objects.filter(external_id=value).first()
        if recommendation is None:
            raise serializers.ValidationError(_('Unknown recommendation "%(value)s".') % {"value": value})
        return recommendation


class ExceptionCancelInput(serializers.Serializer):
    device_group = TextField(
        required=False,
        allow_blank=True,
        help_text="Cancel for this device group only (its name); omit to cancel for all groups.",
    )


# --- views --------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(
        summary="List exceptions",
        description="Exceptions you may see: global ones and those covering one of your device groups.",
        responses={200: ExceptionOutput(many=True), 400: ERROR_400, **COMMON_ERRORS},
    ),
    retrieve=extend_schema(
        summary="One exception, with its history",
        responses={200: ExceptionDetailOutput, 404: ERROR_404, **COMMON_ERRORS},
    ),
)
class ExceptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    filterset_class = ExceptionFilter
    serializer_class = ExceptionOutput
    lookup_value_regex = "[^/]+"  # a malformed id reaches get_object and answers a JSON 404

    def get_permissions(self):
        if self.action in ("create", "cancel"):
            return [IsAuthenticated(), ViewsExceptions(), HandlesExceptions()]
        return [IsAuthenticated(), ViewsExceptions()]

    def get_queryset(self):
        # Each exception's device groups: only those the caller may see.
        return exception_list(user=self.request.user).prefetch_related(
            Prefetch("group_links", queryset=exception_group_links(user=self.request.user))
        )

    def get_object(self) -> RecommendationException:
        raw = str(self.kwargs.get("pk", ""))
        exception = None
        if raw.isascii() and raw.isdigit() and len(raw) <= 18:
            exception = self.get_queryset().filter(pk=int(raw)).first()
        if exception is None:
            raise NotFound("No exception with this id in your device groups.")
        self.check_object_permissions(self.request, exception)
        return exception

    def get_serializer_class(self):
        return ExceptionOutput if self.action == "list" else ExceptionDetailOutput

    def _detail(self, pk, http_status=status.HTTP_200_OK) -> Response:
        exception = self.get_queryset().get(pk=pk)
        return Response(
            ExceptionDetailOutput(exception, context=self.get_serializer_context()).data, status=http_status
        )

    @extend_schema(
        summary="File an exception",
        request=ExceptionCreateInput,
        responses={201: ExceptionDetailOutput, 400: ERROR_400, **COMMON_ERRORS},
        description="Security staff only. A global scope is for superusers only.",
    )
    def create(self, request):
        data = ExceptionCreateInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        exception = exception_create(user=request.user, **data.validated_data)
        return self._detail(exception.pk, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel an exception, for all its device groups or one",
        request=ExceptionCancelInput,
        responses={200: ExceptionDetailOutput, 400: ERROR_400, 404: ERROR_404, 409: ERROR_409, **COMMON_ERRORS},
        description="Security staff only. A global exception is canceled whole; canceling the last "
        "active group cancels the exception.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        exception = self.get_object()
        data = ExceptionCancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("device_group") or ""
        device_group = None
        if name:
            link = next((lk for lk in exception.group_links.all() if lk.device_group.name == name), None)
            if link is None:
                raise serializers.ValidationError(
                    {
                        "device_group": [
                            _('This exception does not cover a device group named "%(name)s".') % {"name": name}
                        ]
                    }
                )
            device_group = link.device_group
        exception_cancel(exception=exception, user=request.user, device_group=device_group)
        return self._detail(exception.pk)
