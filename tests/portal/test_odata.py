"""portal.odata: the $filter grammar, its null rules and its errors, checked on real rows."""

import datetime as dt

import pytest
from django.http import QueryDict

from portal.odata import MAX_TOP, ODataError, Property, parse_datetime, parse_filter, parse_query
from recommendations.models import Device
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
PROPERTIES = [
    Property.string("computerDnsName", "computer_dns_name", blank_is_null=True),
    Property.string("id", "machine_id"),
    Property.enum("riskScore", "risk_score", {"None": "None", "Low": "Low", "High": "High"}, blank_is_null=True),
    Property.datetime("lastSeen", "last_seen"),
    Property.integer("rbacGroupId", "device_group_id"),
    Property.collection("machineTags", "machine_tags"),
    Property.unheld("deviceValue"),
]


@pytest.fixture
def devices():
    group = DeviceGroupFactory(name="Servers")
    made = {
        "alpha": DeviceFactory(
            computer_dns_name="alpha",
            risk_score="High",
            last_seen=dt.datetime(2021, 1, 10, 12, 0, tzinfo=UTC),
            machine_tags=["web", "Prod"],
            device_group=group,
        ),
        "bravo": DeviceFactory(
            computer_dns_name="bravo",
            risk_score="Low",
            last_seen=dt.datetime(2021, 1, 20, 12, 0, tzinfo=UTC),
            machine_tags=["db"],
            device_group=group,
        ),
        "o'hara": DeviceFactory(
            computer_dns_name="o'hara",
            risk_score="",
            last_seen=None,
            machine_tags=[],
            device_group=DeviceGroupFactory(name="Workstations"),
        ),
        "": DeviceFactory(
            computer_dns_name="", risk_score="Low", last_seen=None, machine_tags=["web"], device_group=group
        ),
    }
    return made


def names(text: str) -> set[str]:
    return set(Device.objects.filter(parse_filter(text, PROPERTIES)).values_list("computer_dns_name", flat=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("computerDnsName eq 'alpha'", {"alpha"}),
        ("computerDnsName ne 'alpha'", {"bravo", "o'hara", ""}),
        ("computerDnsName eq 'o''hara'", {"o'hara"}),
        ("computerDnsName gt 'b'", {"bravo", "o'hara"}),
        ("riskScore eq 'High'", {"alpha"}),
        ("riskScore eq 'high'", {"alpha"}),  # enum values in any letter case
        ("RISKSCORE Eq 'Low'", {"bravo", ""}),  # so are property names and operators
        ("riskScore eq null", {"o'hara"}),  # blank is null
        ("riskScore ne null", {"alpha", "bravo", ""}),
        ("computerDnsName eq null", {""}),
        ("lastSeen gt 2021-01-15T00:00:00Z", {"bravo"}),
        ("lastSeen ge 2021-01-10T12:00:00Z", {"alpha", "bravo"}),
        ("lastSeen le 2021-01-10T12:00:00.0000009Z", {"alpha"}),  # seven fraction digits, as Defender writes
        ("lastSeen le 2021-01-11", {"alpha"}),
        ("lastSeen gt 2021-01-15Z", {"bravo"}),  # a date with Z, as in Defender's examples
        ("lastSeen gt 2021-01-20T13:00:00+02:00", {"bravo"}),  # 11:00 UTC
        ("lastSeen gt 2021-01-20T13:00:00 02:00", {"bravo"}),  # the same, with the URL's '+' turned into a space
        ("lastSeen gt '2021-01-15T00:00:00Z'", {"bravo"}),  # a quoted datetime is accepted
        ("lastSeen eq null", {"o'hara", ""}),
        ("lastSeen ne null", {"alpha", "bravo"}),
        ("lastSeen gt null", set()),  # ordering comparisons with null are false
        ("machineTags/any(t: t eq 'web')", {"alpha", ""}),
        ("machineTags/any(tag:tag eq 'db')", {"bravo"}),
        ("not machineTags/any(t: t eq 'web')", {"bravo", "o'hara"}),
        ("deviceValue eq null", {"alpha", "bravo", "o'hara", ""}),  # not held: null everywhere
        ("deviceValue eq 'High'", set()),
        ("deviceValue ne 'High'", {"alpha", "bravo", "o'hara", ""}),
        ("deviceValue gt 'Low'", set()),
        # precedence: not > and > or; parentheses override
        ("riskScore eq 'Low' or riskScore eq 'High' and computerDnsName eq 'bravo'", {"bravo", ""}),
        ("(riskScore eq 'Low' or riskScore eq 'High') and computerDnsName eq 'bravo'", {"bravo"}),
        ("not (riskScore eq 'Low') and lastSeen ne null", {"alpha"}),
        ("not not riskScore eq 'High'", {"alpha"}),
        ("((((computerDnsName eq 'alpha'))))", {"alpha"}),
    ],
)
def test_filters_select_the_rows_odata_says(devices, text, expected):
    assert names(text) == expected


def test_machine_tags_match_whole_items_only(devices):
    DeviceFactory(computer_dns_name="webby", machine_tags=["webserver", "x web"])

    assert names("machineTags/any(t: t eq 'web')") == {"alpha", ""}


def test_integers_compare_as_numbers(devices):
    servers = devices["alpha"].device_group_id

    assert names(f"rbacGroupId eq {servers}") == {"alpha", "bravo", ""}
    assert names(f"rbacGroupId gt {servers}") == {"o'hara"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "$filter is empty"),
        ("name eq 'x'", "'name' (position 1) is not a property you can filter on here; use one of: computerDnsName"),
        ("computerDnsName", "expected an operator (eq, ne, gt, ge, lt, le) after computerDnsName"),
        ("computerDnsName eq", "expected a value"),
        ("computerDnsName == 'x'", "unexpected character '=' at position 17"),
        ("computerDnsName eq 'x", "the string that starts at position 20 has no closing quote"),
        ("computerDnsName eq 'x' and", "expected a property name or '('"),
        ("computerDnsName eq 'x' riskScore eq 'Low'", "expected 'and', 'or' or the end of the filter at position 24"),
        ("(computerDnsName eq 'x'", "expected ')' at position 24"),
        ("'x' eq computerDnsName", "expected a property name"),
        ("computerDnsName eq 5", "computerDnsName is text; put the value in single quotes"),
        ("riskScore eq 'Severe'", "riskScore is one of 'None', 'Low', 'High'"),
        ("riskScore gt 'Low'", "riskScore can only be compared with eq or ne"),
        ("lastSeen gt 'yesterday'", "lastSeen is a date and time"),
        ("lastSeen gt 2021-02-30T00:00:00Z", "not a valid date or time at position 13"),
        ("lastSeen gt 2021-01-01T25:00:00Z", "not a valid date or time"),
        ("rbacGroupId eq 1.5", "rbacGroupId is a whole number"),
        ("rbacGroupId eq 99999999999999999999", "out of range"),
        ("rbacGroupId eq true", "rbacGroupId is a number"),
        ("machineTags eq 'web'", "machineTags is a list; compare its items with machineTags/any(t: t eq 'value')"),
        ("machineTags/all(t: t eq 'web')", "only machineTags/any(...) is supported"),
        ("machineTags/any(t: t ne 'web')", "expected 'eq'"),
        ("machineTags/any(t: x eq 'web')", "expected 't'"),
        ("computerDnsName/any(t: t eq 'web')", "computerDnsName is not a list"),
        ("startswith(computerDnsName, 'a')", "functions such as startswith() are not supported"),
        ("computerDnsName eq 'a\x00b'", "contains a NUL character"),
        ("(" * 30 + "computerDnsName eq 'a'" + ")" * 30, "nests more than 20 levels deep"),
        (" or ".join(["id eq 'a'"] * 201), "more than 200 comparisons"),
        ("computerDnsName eq '" + "a" * 5000 + "'", "longer than 4000 characters"),
    ],
)
def test_bad_filters_say_what_is_wrong(devices, text, message):
    with pytest.raises(ODataError) as raised:
        names(text)

    assert message in raised.value.message
    assert raised.value.code == "ODataError"


def test_datetimes_are_read_as_utc():
    assert parse_datetime("2021-01-12T18:54:11.5499478Z") == dt.datetime(2021, 1, 12, 18, 54, 11, 549947, tzinfo=UTC)
    assert parse_datetime("2021-01-12") == dt.datetime(2021, 1, 12, tzinfo=UTC)
    assert parse_datetime("2021-01-12T18:54") == dt.datetime(2021, 1, 12, 18, 54, tzinfo=UTC)
    assert parse_datetime("2021-01-12T00:30:00-01:00") == dt.datetime(2021, 1, 12, 1, 30, tzinfo=UTC)


def query(string: str, properties=PROPERTIES):
    return parse_query(QueryDict(string), properties)


def test_top_and_skip_have_defaults_and_limits():
    assert (query("").top, query("").skip, query("").skiptoken) == (MAX_TOP, 0, None)
    assert (query("$top=25&$skip=50").top, query("$top=25&$skip=50").skip) == (25, 50)
    assert query("$top=10000").top == 10_000


@pytest.mark.parametrize(
    ("string", "message"),
    [
        ("$top=10001", "$top must be a whole number from 1 to 10,000; got '10001'."),
        ("$top=0", "$top must be a whole number from 1 to 10,000"),
        ("$top=-5", "$top must be a whole number"),
        ("$top=ten", "$top must be a whole number"),
        ("$top=", "$top must be a whole number"),
        ("$skip=-1", "$skip must be a whole number from 0"),
        ("$skip=1.5", "$skip must be a whole number"),
        ("$skip=99999999999999", "$skip must be a whole number"),
        ("$orderby=lastSeen", "Query option $orderby is not supported here; use $filter, $top, $skip."),
        ("$select=id&$expand=x", "Query option $expand, $select is not supported here"),
    ],
)
def test_bad_options_say_what_is_wrong(string, message):
    with pytest.raises(ODataError) as raised:
        query(string)

    assert message in raised.value.message


def test_filter_is_refused_where_nothing_is_filterable():
    with pytest.raises(ODataError, match=r"\$filter is not supported on this endpoint"):
        query("$filter=id eq 'x'", properties=())


def test_parameters_without_a_dollar_are_not_odata_options():
    assert query("format=json&api-version=1").top == MAX_TOP
