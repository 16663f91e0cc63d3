"""Keyset ("cursor") pagination for every list of the API.

Why not page numbers: `?page=400` costs an OFFSET scan of every earlier row plus a COUNT(*) of
the whole filtered set on each request, both of which grow with the table. A keyset cursor
remembers the sort key of the last row shown, and the next page is
`WHERE (key) > (last key) ORDER BY key LIMIT n`: the same cost on page 1 and page 10,000.

Why not DRF's CursorPagination: it pages on the first ordering field only (plus an offset
among equal values, capped at 1,000), so an ordering on a low-cardinality field such as
`priority` breaks after 1,000 equal rows, and it ignores an ordering chosen by a FilterSet.
This class pages on the queryset's *whole* ordering, as the view's filters left it
(`?ordering=` of django-filter included), and appends the primary key as the unique
tie-breaker, so every row is shown exactly once whatever the ordering.

Ordering fields must be plain field names, lookups (`device__computer_dns_name`) or
annotation names, and must not be NULL (coalesce nullable ones in an annotation).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class InvalidCursor(serializers.ValidationError):
    """A cursor that was not made by this API (or for another ordering): HTTP 400."""

    def __init__(self):
        super().__init__({"cursor": ["Invalid cursor; start again from the first page."]})


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    return value


def _storable(value: Any) -> Any:
    """Refuse cursor values a database would choke on (a forged cursor must answer 400, not 500)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL character")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError("integer out of range")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC)  # PostgreSQL refuses offsets beyond +-15:59
    return value


def _attr(obj, name: str):
    for part in name.split(LOOKUP_SEP):
        obj = getattr(obj, part)
    return obj


class KeysetPagination(BasePagination):
    """`{"next", "previous", "results"}`; `?cursor=` (opaque) and `?page_size=` (1-500)."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    page_size = DEFAULT_PAGE_SIZE
    max_page_size = MAX_PAGE_SIZE

    # --- ordering ---------------------------------------------------------------------
    def get_ordering(self, queryset: QuerySet) -> list[str]:
        ordering = list(queryset.query.order_by) or list(queryset.query.get_meta().ordering or [])
        for item in ordering:
            if not isinstance(item, str):
                raise ImproperlyConfigured(f"KeysetPagination needs field names in order_by, got {item!r}")
        pk_names = {"pk", "-pk", queryset.model._meta.pk.name, "-" + queryset.model._meta.pk.name}
        if not pk_names.intersection(ordering):
            last_desc = bool(ordering) and ordering[-1].startswith("-")
            ordering.append("-pk" if last_desc else "pk")
        return ordering

    def _output_field(self, queryset: QuerySet, name: str):
        if name == "pk":
            return queryset.model._meta.pk
        if name in queryset.query.annotations:
            return queryset.query.annotations[name].output_field
        model, field = queryset.model, None
        for part in name.split(LOOKUP_SEP):
            try:
                field = model._meta.get_field(part)
            except FieldDoesNotExist as exc:
                raise ImproperlyConfigured(f"Cannot page on unknown field {name!r}") from exc
            if field.is_relation:
                model = field.related_model
        if field.is_relation:
            field = field.target_field
        return field

    # --- cursor -----------------------------------------------------------------------
    def _decode_cursor(self, raw: str, queryset: QuerySet, ordering: list[str]) -> tuple[bool, list]:
        try:
            padded = raw + "=" * (-len(raw) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
            keys, values, backwards = data["k"], data["v"], bool(data.get("b"))
        except (ValueError, UnicodeError, binascii.Error, KeyError, TypeError, AttributeError) as exc:
            raise InvalidCursor() from exc
        if keys != ordering or not isinstance(values, list) or len(values) != len(ordering):
            raise InvalidCursor()
        parsed = []
        for name, value in zip(ordering, values, strict=True):
            field = self._output_field(queryset, name.lstrip("-"))
            if value is None or isinstance(value, dict | list):
                raise InvalidCursor()
            try:
                parsed.append(_storable(field.to_python(value)))
            except (DjangoValidationError, ValueError, TypeError, OverflowError) as exc:
                raise InvalidCursor() from exc
        return backwards, parsed

    def _encode_cursor(self, ordering: list[str], obj, *, backwards: bool) -> str:
        values = [_encode(_attr(obj, name.lstrip("-"))) for name in ordering]
        payload = {"k": ordering, "v": values}
        if backwards:
            payload["b"] = 1
        raw = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @staticmethod
    def _seek(ordering: Sequence[str], values: Sequence, *, backwards: bool) -> Q:
        """Rows strictly after `values` in `ordering` (before, when paging backwards)."""
        condition = Q()
        for i, name in enumerate(ordering):
            field = name.lstrip("-")
            descending = name.startswith("-") != backwards
            step = Q(**{f"{field}__{'lt' if descending else 'gt'}": values[i]})
            for prev, value in zip(ordering[:i], values[:i], strict=True):
                step &= Q(**{prev.lstrip("-"): value})
            condition = step if i == 0 else condition | step
        # Redundant with the OR chain, but gives the database an index range to start from
        # (`created_at <= X`) instead of a filter applied while scanning from the first row.
        first = ordering[0].lstrip("-")
        first_descending = ordering[0].startswith("-") != backwards
        return Q(**{f"{first}__{'lte' if first_descending else 'gte'}": values[0]}) & condition

    # --- DRF API ----------------------------------------------------------------------
    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError(
                {self.page_size_query_param: [_("A whole number from 1 to %(max)s.") % {"max": self.max_page_size}]}
            ) from exc
        if not 1 <= size <= self.max_page_size:
            raise serializers.ValidationError(
                {self.page_size_query_param: [_("A whole number from 1 to %(max)s.") % {"max": self.max_page_size}]}
            )
        return size

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.base_url = request.build_absolute_uri()
        size = self.get_page_size(request)
        ordering = self.get_ordering(queryset)
        raw = request.query_params.get(self.cursor_query_param)
        backwards, values = (False, None) if not raw else self._decode_cursor(raw, queryset, ordering)

        qs = queryset
        if values is not None:
            qs = qs.filter(self._seek(ordering, values, backwards=backwards))
        if backwards:
            reversed_ordering = [o[1:] if o.startswith("-") else "-" + o for o in ordering]
            qs = qs.order_by(*reversed_ordering)
        else:
            qs = qs.order_by(*ordering)
        rows = list(qs[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        if backwards:
            rows.reverse()
            self.has_next, self.has_previous = values is not None, more
        else:
            self.has_next, self.has_previous = more, values is not None
        self.ordering, self.rows = ordering, rows
        return rows

    def _link(self, obj, *, backwards: bool) -> str:
        cursor = self._encode_cursor(self.ordering, obj, backwards=backwards)
        return replace_query_param(self.base_url, self.cursor_query_param, cursor)

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        if not self.rows:  # paged backwards past the start of a shrinking list
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self._link(self.rows[-1], backwards=False)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.rows:
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self._link(self.rows[0], backwards=True)

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri", "description": "The next page."},
                "previous": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The previous page.",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque cursor from a `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, 1 to {self.max_page_size} (default {self.page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]
