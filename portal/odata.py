"""The OData query options of the Defender-compatible API: `$filter`, `$top`, `$skip`, `$skiptoken`.

A small recursive-descent parser of the part of OData 4 that Defender's endpoints document:
comparisons (`eq ne gt ge lt le`) of a property with a literal, `and`, `or`, `not`, parentheses,
and `any` on a string collection (`machineTags/any(t: t eq 'x')`). Literals: strings in single
quotes (`''` is a quote), datetimes and dates (`2021-01-12T18:54:11.5499478Z`, `2018-08-01Z`),
numbers, `true`, `false` and `null`.

The parser builds Django `Q` objects from a whitelist of properties (`Property`), so a value only
ever reaches the database as a bound parameter. Property names and operators match in any letter
case, as Defender's do (its docs write `createdon`, `ComputerDnsName` and `createdOn`). Anything
else is an `ODataError` (HTTP 400) with a message that says what was wrong and where.

Comparisons follow OData's null rules: a property the portal does not hold (`Property.unheld`)
is null on every row, so `deviceValue eq null` is true and `deviceValue eq 'High'` false; with
`blank_is_null` an empty stored string is null too (the API shows it as null).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.db.models.lookups import Contains

from portal.errors import ValidationError

MAX_TOP = 10_000
MAX_SKIP = 2**31 - 1
MAX_FILTER_LENGTH = 4_000
MAX_DEPTH = 20
MAX_COMPARISONS = 200

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_LOOKUPS = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
NEVER = Q(pk__in=[])  # matches no row (Django turns it into an empty result, not SQL)
ALWAYS = ~NEVER


class ODataError(ValidationError):
    """A query option the API cannot honour: HTTP 400 with `{"error": {"code", "message"}}`."""

    code = "ODataError"


# --- properties ---------------------------------------------------------------------------
STRING, ENUM, DATETIME, NUMBER, INTEGER, COLLECTION, UNHELD = (
    "string",
    "enum",
    "datetime",
    "number",
    "integer",
    "collection",
    "unheld",
)


@dataclass(frozen=True)
class Property:
    """A filterable property: Defender's name, the ORM field behind it and how values compare.

    `choices` (enums) maps Defender's values to stored ones. Build them with the class methods.
    """

    name: str
    field: str | None
    kind: str
    choices: Mapping[str, str] = field(default_factory=dict)
    blank_is_null: bool = False

    @classmethod
    def string(cls, name: str, field: str, *, blank_is_null: bool = False) -> Property:
        return cls(name, field, STRING, blank_is_null=blank_is_null)

    @classmethod
    def enum(cls, name: str, field: str, choices: Mapping[str, str], *, blank_is_null: bool = False) -> Property:
        return cls(name, field, ENUM, dict(choices), blank_is_null=blank_is_null)

    @classmethod
    def datetime(cls, name: str, field: str) -> Property:
        return cls(name, field, DATETIME)

    @classmethod
    def number(cls, name: str, field: str) -> Property:
        return cls(name, field, NUMBER)

    @classmethod
    def integer(cls, name: str, field: str) -> Property:
        return cls(name, field, INTEGER)

    @classmethod
    def collection(cls, name: str, field: str) -> Property:
        """A JSON list of strings, filtered with `name/any(x: x eq 'value')`."""
        return cls(name, field, COLLECTION)

    @classmethod
    def unheld(cls, name: str) -> Property:
        """Documented as filterable by Defender but not held by the portal: null on every row."""
        return cls(name, None, UNHELD)


def describe(properties: Iterable[Property]) -> str:
    """`status, createdOn` (for messages and the API schema)."""
    return ", ".join(p.name for p in properties)


# --- tokens -------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}
        (?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?
        (?:Z|[+-]\d{2}:\d{2}|\ \d{2}:\d{2}(?![\d.]))?)   # ' 02:00': a '+' the URL turned into a space
  | (?P<number>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()/:,])
    """,
    re.VERBOSE,
)
_DATETIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:T(?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"(?P<tz>Z|[+\- ]\d{2}:\d{2})?"
)


@dataclass(frozen=True)
class Token:
    kind: str  # string | datetime | number | name | punct | end
    text: str
    pos: int  # 1-based, for messages


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] == "'":
                raise ODataError(f"$filter: the string that starts at position {pos + 1} has no closing quote.")
            raise ODataError(f"$filter: unexpected character {text[pos]!r} at position {pos + 1}.")
        kind = match.lastgroup
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def parse_datetime(text: str) -> dt.datetime:
    """An OData date or datetime literal as an aware UTC datetime (no offset means UTC).

    Fractions beyond microseconds (Defender writes seven digits) are cut, not rounded."""
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    offset = dt.timedelta(0)
    tz = match["tz"]
    if tz and tz != "Z":
        hours, minutes = int(tz[1:3]), int(tz[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(text)
        offset = (-1 if tz[0] == "-" else 1) * dt.timedelta(hours=hours, minutes=minutes)
    date = dt.date.fromisoformat(match["date"])
    value = dt.datetime(
        date.year,
        date.month,
        date.day,
        int(match["h"] or 0),
        int(match["m"] or 0),
        int(match["s"] or 0),
        int((match["f"] or "")[:6].ljust(6, "0")),
        tzinfo=dt.timezone(offset),
    )
    return value.astimezone(dt.UTC)


# --- parser -------------------------------------------------------------------------------
_RESERVED = ("true", "false", "null", "and", "or", "not")


class _Parser:
    def __init__(self, text: str, properties: Sequence[Property]):
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.comparisons = 0
        self.properties = {p.name.lower(): p for p in properties}
        self.allowed = describe(properties) or "none"

    # token helpers
    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _keyword(self, *words: str) -> str | None:
        token = self.token
        if token.kind == "name" and token.text.lower() in words:
            self.i += 1
            return token.text.lower()
        return None

    def _punct(self, char: str) -> bool:
        if self.token.kind == "punct" and self.token.text == char:
            self.i += 1
            return True
        return False

    def _expect_punct(self, char: str, what: str) -> None:
        if not self._punct(char):
            raise self._error(f"expected {what}")

    def _error(self, message: str, token: Token | None = None) -> ODataError:
        token = token or self.token
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        return ODataError(f"$filter: {message} at position {token.pos}, found {found}.")

    # grammar
    def parse(self) -> Q:
        if self.token.kind == "end":
            raise ODataError("$filter is empty; leave it out to list everything.")
        q = self._or()
        if self.token.kind != "end":
            raise self._error("expected 'and', 'or' or the end of the filter")
        return q

    def _nested(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ODataError(f"$filter nests more than {MAX_DEPTH} levels deep.")

    def _or(self) -> Q:
        q = self._and()
        while self._keyword("or"):
            q = q | self._and()
        return q

    def _and(self) -> Q:
        q = self._not()
        while self._keyword("and"):
            q = q & self._not()
        return q

    def _not(self) -> Q:
        if self._keyword("not"):
            self._nested()
            q = ~self._not()
            self.depth -= 1
            return q
        return self._primary()

    def _primary(self) -> Q:
        if self._punct("("):
            self._nested()
            q = self._or()
            self._expect_punct(")", "')'")
            self.depth -= 1
            return q
        token = self.token
        if token.kind in ("end", "punct"):
            raise self._error("expected a property name or '('")
        if token.kind != "name" or token.text.lower() in _RESERVED:
            raise self._error(f"expected a property name ({self.allowed}) before the operator and value")
        self._advance()
        if self.token.kind == "punct" and self.token.text == "(":
            raise ODataError(
                f"$filter: functions such as {token.text}() are not supported (position {token.pos}); "
                f"compare with {', '.join(COMPARISONS)}."
            )
        prop = self.properties.get(token.text.lower())
        if prop is None:
            raise ODataError(
                f"$filter: {token.text!r} (position {token.pos}) is not a property you can filter on here; "
                f"use one of: {self.allowed}."
            )
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise ODataError(f"$filter has more than {MAX_COMPARISONS} comparisons.")
        if self._punct("/"):
            return self._lambda(prop, token)
        op = self._keyword(*COMPARISONS)
        if op is None:
            raise self._error(f"expected an operator ({', '.join(COMPARISONS)}) after {prop.name}")
        if prop.kind == COLLECTION:
            raise ODataError(
                f"$filter: {prop.name} is a list; compare its items with {prop.name}/any(t: t eq 'value')."
            )
        return compare(prop, op, self._literal(prop))

    def _lambda(self, prop: Property, name_token: Token) -> Q:
        if prop.kind != COLLECTION:
            raise self._error(f"{prop.name} is not a list, so it has no '/'", name_token)
        if self._keyword("any") is None:
            raise self._error(f"only {prop.name}/any(...) is supported")
        self._expect_punct("(", "'(' after any")
        var = self.token
        if var.kind != "name":
            raise self._error("expected a variable name, as in any(t: t eq 'value')")
        self._advance()
        self._expect_punct(":", "':' after the variable")
        used = self.token
        if used.kind != "name" or used.text != var.text:
            raise self._error(f"expected {var.text!r}: any() supports only `{var.text} eq 'value'`")
        self._advance()
        if self._keyword("eq") is None:
            raise self._error("expected 'eq': any() supports only equality")
        value_token = self.token
        value = self._literal(prop)
        if not isinstance(value, str):
            raise self._error(f"{prop.name} holds strings; compare with a quoted string", value_token)
        self._expect_punct(")", "')'")
        return contains_item(prop.field, _storable_text(value, prop))

    def _literal(self, prop: Property):
        token = self._advance()
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "datetime":
            try:
                return parse_datetime(token.text)
            except (ValueError, OverflowError):
                raise self._error("not a valid date or time", token) from None
        if token.kind == "number":
            return _number(token.text)
        if token.kind == "name":
            word = token.text.lower()
            if word in ("true", "false"):
                return word == "true"
            if word == "null":
                return None
            if word not in _RESERVED and word not in COMPARISONS:
                raise ODataError(
                    f"$filter: {token.text} (position {token.pos}) is not a value; put text in single quotes, "
                    f"as in {prop.name} eq '{token.text}'."
                )
        raise self._error(
            "expected a value (a 'quoted string', a date such as 2021-01-31T00:00:00Z, a number, true, false or null)",
            token,
        )


def _number(text: str):
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ODataError(f"$filter: {text!r} is not a number.") from None
    if not value.is_finite() or not math.isfinite(float(value)):
        raise ODataError(f"$filter: {text!r} is out of range.")
    return float(value)


def _storable_text(value: str, prop: Property) -> str:
    if "\x00" in value:
        raise ODataError(f"$filter: the value for {prop.name} contains a NUL character.")
    return value


# --- comparisons --------------------------------------------------------------------------
def _value_for(prop: Property, op: str, value):
    """The stored value to compare with, or raise ODataError naming the property and what fits."""
    if value is None:
        return None
    kind = prop.kind
    if kind == STRING:
        if not isinstance(value, str):
            raise ODataError(f"$filter: {prop.name} is text; put the value in single quotes.")
        return _storable_text(value, prop)
    if kind == ENUM:
        if op not in ("eq", "ne"):
            raise ODataError(f"$filter: {prop.name} can only be compared with eq or ne.")
        if isinstance(value, str):
            for defender_value, stored in prop.choices.items():
                if defender_value.lower() == value.lower():
                    return stored
        raise ODataError(f"$filter: {prop.name} is one of {', '.join(repr(v) for v in prop.choices)}.")
    if kind == DATETIME:
        if isinstance(value, str):  # a quoted datetime: accepted
            try:
                return parse_datetime(value)
            except (ValueError, OverflowError):
                pass
        if isinstance(value, dt.datetime):
            return value
        raise ODataError(f"$filter: {prop.name} is a date and time, such as 2021-01-31T00:00:00Z.")
    if kind in (NUMBER, INTEGER):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ODataError(f"$filter: {prop.name} is a number.")
        if kind == NUMBER:
            try:
                return float(value)
            except OverflowError:
                raise ODataError(f"$filter: the number for {prop.name} is out of range.") from None
        if not isinstance(value, int):
            raise ODataError(f"$filter: {prop.name} is a whole number.")
        if not -(2**63) <= value < 2**63:
            raise ODataError(f"$filter: the number for {prop.name} is out of range.")
        return value
    return value  # UNHELD: any literal; compared as null below


def compare(prop: Property, op: str, value) -> Q:
    """`prop op value` as a Q object (OData's null rules included)."""
    value = _value_for(prop, op, value)
    if prop.kind == UNHELD:  # null on every row
        if op == "eq":
            return ALWAYS if value is None else NEVER
        if op == "ne":
            return NEVER if value is None else ALWAYS
        return NEVER  # ordering comparisons with null are false
    name = prop.field
    blank = Q(**{name: ""}) if prop.blank_is_null else None
    if value is None:
        is_null = Q(**{f"{name}__isnull": True})
        if blank is not None:
            is_null |= blank
        if op == "eq":
            return is_null
        if op == "ne":
            return ~is_null
        return NEVER
    if op == "eq":
        return Q(**{name: value})
    if op == "ne":
        return ~Q(**{name: value})
    q = Q(**{f"{name}__{_LOOKUPS[op]}": value})
    return q & ~blank if blank is not None else q


def contains_item(field_name: str, value: str) -> Q:
    """The JSON list in `field_name` has an item equal to `value`.

    PostgreSQL: JSON containment (`@>`). Databases without it (SQLite) compare the stored JSON text
    with the item's JSON spelling, which only an item (or an object key) can match; there the
    comparison ignores the letter case of ASCII letters, as SQLite's LIKE does.
    """
    if connection.features.supports_json_field_contains:
        return Q(**{f"{field_name}__contains": [value]})
    return Q(Contains(Cast(field_name, output_field=TextField()), json.dumps(value)))


def parse_filter(text: str, properties: Sequence[Property]) -> Q:
    """`$filter` as a Q object over the whitelisted properties; ODataError when it is not valid."""
    if len(text) > MAX_FILTER_LENGTH:
        raise ODataError(f"$filter is longer than {MAX_FILTER_LENGTH} characters.")
    return _Parser(text, properties).parse()


# --- query options ------------------------------------------------------------------------
SUPPORTED_OPTIONS = ("$filter", "$top", "$skip", "$skiptoken")


@dataclass(frozen=True)
class ODataQuery:
    filter: Q
    top: int
    skip: int
    skiptoken: str | None


def _whole_number(params, name: str, *, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12 or not low <= int(text) <= high:
        raise ODataError(f"{name} must be a whole number from {low:,} to {high:,}; got {raw!r}.")
    return int(text)


def parse_query(params, properties: Sequence[Property], *, max_top: int = MAX_TOP) -> ODataQuery:
    """The OData options of a request's query string (`request.query_params`).

    Options other than $filter, $top, $skip and $skiptoken are refused; parameters without a `$`
    are left to the view (they are not OData's)."""
    unknown = sorted(key for key in params if key.startswith("$") and key not in SUPPORTED_OPTIONS)
    if unknown:
        raise ODataError(
            f"Query option {', '.join(unknown)} is not supported here; use {', '.join(SUPPORTED_OPTIONS[:3])}."
        )
    raw_filter = params.get("$filter")
    if raw_filter is not None and not properties:
        raise ODataError("$filter is not supported on this endpoint.")
    q = Q() if raw_filter is None else parse_filter(raw_filter, properties)
    top = _whole_number(params, "$top", default=max_top, low=1, high=max_top)
    skip = _whole_number(params, "$skip", default=0, low=0, high=MAX_SKIP)
    return ODataQuery(filter=q, top=top, skip=skip, skiptoken=params.get("$skiptoken") or None)
