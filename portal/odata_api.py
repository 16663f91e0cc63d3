"""What every Defender-compatible endpoint (`/api/...`, DESIGN.md section 13) shares.

- `ODataView`: read-only, JSON only, never cached (`Cache-Control: no-store`), Bearer or Token
  authentication, errors in Defender's shape `{"error": {"code", "message", "target"}}` (`target`
  is the request id, as Defender's is).
- `ODataPagination`: `$top` (page size, at most 10,000) and `$skip` on top of the portal's keyset
  pagination. `@odata.nextLink` carries `$skiptoken`, an opaque cursor after the page's last row,
  instead of a larger `$skip`, so the thousandth page costs what the first does.
- `defender_path`: routes that match in any letter case and with or without a trailing slash
  (Defender's docs call `/api/remediationtasks/` and `/api/remediationTasks`), documented in their
  canonical spelling.
- Schema helpers: the `$filter`/`$top`/`$skip`/`$skiptoken` parameters and the response envelopes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlencode

from django.db.models import QuerySet
from django.urls import URLPattern
from django.urls.resolvers import RoutePattern
from django.utils.cache import patch_cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.authentication import BearerTokenAuthentication
from portal.errors import api_exception_handler
from portal.odata import MAX_TOP, ODataError, ODataQuery, Property, describe, parse_query
from portal.pagination import InvalidCursor, KeysetPagination

TAG = "Defender-compatible API"

ERROR_CODES = {
    status.HTTP_400_BAD_REQUEST: "BadRequest",
    status.HTTP_401_UNAUTHORIZED: "Unauthorized",
    status.HTTP_403_FORBIDDEN: "Forbidden",
    status.HTTP_404_NOT_FOUND: "ResourceNotFound",
    status.HTTP_405_METHOD_NOT_ALLOWED: "MethodNotAllowed",
    status.HTTP_406_NOT_ACCEPTABLE: "NotAcceptable",
    status.HTTP_429_TOO_MANY_REQUESTS: "TooManyRequests",
}


def iso_utc(value: dt.datetime | None) -> str | None:
    """A timestamp as Defender writes it: UTC, ISO 8601, `Z` (`2021-01-12T18:54:11.549947Z`)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def midnight_utc(value: dt.date | None) -> str | None:
    """A date as Defender writes due dates: midnight UTC (`2021-01-13T00:00:00Z`)."""
    return None if value is None else f"{value.isoformat()}T00:00:00Z"


# --- errors -------------------------------------------------------------------------------
def _message(data) -> str:
    """One readable line from DRF's error data ({"detail": ...}, {"field": [...]}, [...])."""
    if isinstance(data, dict):
        parts = []
        for key, value in data.items():
            text = _message(value)
            parts.append(text if key in ("detail", "non_field_errors") else f"{key}: {text}")
        return " ".join(parts)
    if isinstance(data, list | tuple):
        return " ".join(_message(item) for item in data)
    return str(data)


def odata_exception_handler(exc, context):
    """The portal's API errors, reshaped as `{"error": {"code", "message", "target"}}`."""
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "code", None) if isinstance(exc, ODataError) else None
    request = context.get("request")
    response.data = {
        "error": {
            "code": code or ERROR_CODES.get(response.status_code, "BadRequest"),
            "message": _message(response.data),
            "target": getattr(request, "request_id", None) if request is not None else None,
        }
    }
    return response


# --- pagination ---------------------------------------------------------------------------
class ODataPagination(KeysetPagination):
    """A page of `$top` rows after `$skiptoken` (a keyset cursor) and `$skip` more rows."""

    cursor_query_param = "$skiptoken"

    def page(self, queryset: QuerySet, *, query: ODataQuery, request) -> list:
        ordering = self.get_ordering(queryset)
        if query.skiptoken:
            try:
                backwards, values = self._decode_cursor(query.skiptoken, queryset, ordering)
            except InvalidCursor:
                raise ODataError("$skiptoken is not one this API made; start again without it.") from None
            if backwards:
                raise ODataError("$skiptoken is not one this API made; start again without it.")
            queryset = queryset.filter(self._seek(ordering, values, backwards=False))
        rows = list(queryset.order_by(*ordering)[query.skip : query.skip + query.top + 1])
        self.ordering = ordering
        self.has_more = len(rows) > query.top
        self.rows = rows[: query.top]
        self.request = request
        return self.rows

    def next_link(self) -> str | None:
        """This request's URL without `$skip`, with `$skiptoken` after the page's last row."""
        if not self.has_more:
            return None
        params = [
            (key, value)
            for key, values in self.request.query_params.lists()
            if key not in ("$skip", "$skiptoken")
            for value in values
        ]
        params.append(("$skiptoken", self._encode_cursor(self.ordering, self.rows[-1], backwards=False)))
        query = urlencode(params, safe="$", quote_via=quote)
        return f"{self.request.build_absolute_uri(self.request.path)}?{query}"


# --- views --------------------------------------------------------------------------------
class ODataView(APIView):
    """A read-only Defender-compatible endpoint. Subclasses set `permission_classes` and, for
    lists, `properties` (what `$filter` may name); they answer with `collection` or `entity`."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    renderer_classes = [JSONRenderer]
    permission_classes = [IsAuthenticated]
    properties: Sequence[Property] = ()

    def get_exception_handler(self):
        return odata_exception_handler

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        patch_cache_control(response, no_store=True)  # device and vulnerability data: never cached
        return response

    def context_url(self, fragment: str) -> str:
        """`@odata.context`: where Defender's metadata would describe this answer."""
        return self.request.build_absolute_uri("/api/$metadata") + "#" + fragment

    def collection(self, queryset: QuerySet, *, fragment: str, render: Callable[[list], list[dict]]) -> Response:
        """`{"@odata.context", "value", "@odata.nextLink"?}` for one page of `queryset`.

        `render` turns the page's rows into Defender's dictionaries (all at once, so it can read
        what the page needs in one query)."""
        query = parse_query(self.request.query_params, self.properties)
        paginator = ODataPagination()
        rows = paginator.page(queryset.filter(query.filter), query=query, request=self.request)
        body = {"@odata.context": self.context_url(fragment), "value": render(rows)}
        link = paginator.next_link()
        if link is not None:
            body["@odata.nextLink"] = link
        return Response(body)

    def entity(self, data: dict, *, fragment: str) -> Response:
        parse_query(self.request.query_params, ())  # refuse OData options a single entity ignores
        return Response({"@odata.context": self.context_url(fragment), **data})


# --- routes -------------------------------------------------------------------------------
class DefenderRoutePattern(RoutePattern):
    """A `path()` route that also matches in any letter case and with a trailing slash."""

    def __init__(self, route, name=None, is_endpoint=False):
        super().__init__(route, name=name, is_endpoint=is_endpoint)
        regex = self._regex
        if is_endpoint and regex.endswith(r"\Z"):
            regex = regex[: -len(r"\Z")] + r"/?\Z"
        self.__dict__["regex"] = re.compile(regex, re.IGNORECASE)


def defender_path(route: str, view, name: str) -> URLPattern:
    return URLPattern(DefenderRoutePattern(route, name=name, is_endpoint=True), view, name=name)


# --- schema -------------------------------------------------------------------------------
_ODataErrorDetail = inline_serializer(
    "ODataErrorDetail",
    fields={
        "code": serializers.CharField(help_text="ODataError, BadRequest, Unauthorized, Forbidden, ResourceNotFound…"),
        "message": serializers.CharField(),
        "target": serializers.CharField(allow_null=True, help_text="The request id (X-Request-ID)."),
    },
)
ODataErrorBody = inline_serializer("ODataError", fields={"error": _ODataErrorDetail})


def odata_errors(*codes: int) -> dict:
    descriptions = {
        400: "Invalid query option ($filter, $top, $skip or $skiptoken).",
        401: "Not authenticated.",
        403: "Your role may not read this.",
        404: "Unknown id, or outside your device groups.",
        429: "Too many requests; retry after `Retry-After` seconds.",
    }
    return {code: OpenApiResponse(ODataErrorBody, description=descriptions[code]) for code in codes}


LIST_ERRORS = odata_errors(400, 401, 403, 429)
ENTITY_ERRORS = odata_errors(401, 403, 404, 429)
SUB_LIST_ERRORS = odata_errors(400, 401, 403, 404, 429)


def paging_parameters() -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "$top",
            OpenApiTypes.INT,
            description=f"Rows per page, 1 to {MAX_TOP:,} (default {MAX_TOP:,}). "
            "`@odata.nextLink` is set while more rows remain.",
        ),
        OpenApiParameter("$skip", OpenApiTypes.INT, description="Rows to skip first (0 or more)."),
        OpenApiParameter(
            "$skiptoken",
            OpenApiTypes.STR,
            description="Opaque; taken from an `@odata.nextLink`, never built by hand.",
        ),
    ]


def filter_parameter(properties: Sequence[Property]) -> OpenApiParameter:
    return OpenApiParameter(
        "$filter",
        OpenApiTypes.STR,
        description=f"OData filter on {describe(properties)}: `eq ne gt ge lt le`, `and`, `or`, `not`, "
        "parentheses; strings in single quotes, dates such as 2021-01-31T00:00:00Z. "
        "Example: `status eq 'Active' and createdOn ge 2021-01-01T00:00:00Z`.",
    )


def collection_of(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    """The schema of a list answer: `@odata.context`, `value` (the items) and `@odata.nextLink`."""
    return inline_serializer(
        name,
        fields={
            "@odata.context": serializers.CharField(),
            "value": item(many=True),
            "@odata.nextLink": serializers.URLField(
                required=False, help_text="The next page; absent on the last page."
            ),
        },
    )


def entity_of(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of a single answer: the item's fields and `@odata.context`."""
    return type(name, (item,), {"@odata.context": serializers.CharField()})
