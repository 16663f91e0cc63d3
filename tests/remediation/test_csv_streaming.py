"""The CSV downloads' bytes: the COPY path of PostgreSQL writes exactly what the Python path writes,
chunks of about 64 KB, an optional BOM, and a number of queries that does not grow with the rows."""

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from recommendations.models import Device
from remediation.exports import DEVICE_HEADER, activity_devices_csv_response, device_csv_chunks
from remediation.models import ActivityDevice
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

NASTY = [
    ("comma, inside", "plain", "Servers"),
    ('a "quoted" name', "=1+2", "Servers"),
    ("line\nbreak", "+SUM(A1)", "Servers"),
    ("carriage\rreturn", "-2+3", "Servers"),
    ("@cmd", "\ttab first", "Servers"),
    ("\rcr first", "Zürich – 東京", "Servers"),
    ("", "", "Servers"),
    ("trailing space ", ' "leading space', 'Workstations, "HQ"'),
    ('=HYPERLINK("http://x")', "\\.", "@group"),
]


def nasty_activity(user):
    rec = RecommendationFactory()
    groups = [DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name='Workstations, "HQ"')]
    expose(rec, groups[0], len(NASTY))
    expose(rec, groups[1], 2)
    devices = list(Device.objects.order_by("pk"))
    for device, (name, platform, _) in zip(devices, NASTY, strict=False):
        device.computer_dns_name = name
        device.os_platform = platform
        device.save()
    devices[0].machine_id = "-machine"
    devices[0].save()
    activity = make_activity(user=user, recommendation=rec, groups=groups)
    links = ActivityDevice.objects.filter(activity=activity).order_by("pk")
    stamps = [
        dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 0, 0, 1, tzinfo=dt.UTC),
    ]
    for i, link in enumerate(links[:4]):
        link.status = ActivityDevice.Status.REMEDIATED
        link.remediated_at = stamps[i % 2]
        link.sent_to_intune = i % 2 == 0
        link.save()
    return activity


def python_bytes(activity, **kwargs) -> bytes:
    with override_settings(CSV_COPY=False):
        return b"".join(device_csv_chunks(activity, **kwargs))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/Los_Angeles"])
def test_copy_path_writes_the_same_bytes_as_the_python_path(security_user, it_user, tz):
    activity = nasty_activity(security_user)
    with timezone.override(tz):
        for user in (None, security_user, it_user):
            for bom in (False, True):
                python = python_bytes(activity, user=user, bom=bom)
                copied = b"".join(device_csv_chunks(activity, user=user, bom=bom))
                assert copied == python
                rows = list(csv.reader(io.StringIO(python.decode("utf-8-sig"), newline="")))
                assert rows[0] == DEVICE_HEADER
                # the IT user sees the Servers only, not the 2 devices of 'Workstations, "HQ"'
                assert len(rows) == 1 + len(NASTY) + (0 if user is it_user else 2)


def test_python_path_escapes_free_text_and_keeps_every_value(security_user):
    activity = nasty_activity(security_user)
    rows = list(csv.reader(io.StringIO(python_bytes(activity).decode("utf-8"), newline="")))
    body = rows[1:]
    names = sorted(r[1] for r in body)
    expected = sorted(
        ("'" + n if n[:1] in ("=", "+", "-", "@", "\t", "\r") else n)
        for n in [
            *(n for n, _, _ in NASTY),
            *[d.computer_dns_name for d in Device.objects.order_by("pk")[len(NASTY) :]],
        ]
    )
    assert names == expected
    assert "'-machine" in [r[0] for r in body]
    platforms = {r[2] for r in body}
    assert {"'=1+2", "'+SUM(A1)", "'-2+3", "'\ttab first", "Zürich – 東京", ' "leading space', "\\."} <= platforms
    assert {r[3] for r in body} == {"Servers", 'Workstations, "HQ"'}
    assert sorted(r[5] for r in body if r[5]) == [
        "2026-03-01 23:59",
        "2026-03-01 23:59",
        "2026-12-31 00:00",
        "2026-12-31 00:00",
    ]
    assert sorted(r[6] for r in body).count("Yes") == 2


def test_bom_comes_first_only_when_asked(security_user):
    activity = make_activity(user=security_user, devices=2)
    plain = b"".join(activity_devices_csv_response(activity).streaming_content)
    with_bom = b"".join(activity_devices_csv_response(activity, bom=True).streaming_content)
    assert plain.startswith(b"Device ID,")
    assert with_bom == b"\xef\xbb\xbf" + plain


@pytest.mark.parametrize("copy", [False, True])
def test_large_download_comes_in_chunks_of_about_64_kb(security_user, copy):
    if copy and connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    activity = make_activity(user=security_user, devices=3000)
    with override_settings(CSV_COPY=copy):
        chunks = list(activity_devices_csv_response(activity).streaming_content)
    assert len(chunks) > 1
    assert all(64 * 1024 <= len(c) < 66 * 1024 for c in chunks[:-1])
    assert b"".join(chunks).count(b"\r\n") == 3001


@pytest.mark.parametrize("devices", [5, 400])
def test_device_csv_reads_the_same_number_of_queries_whatever_the_rows(
    security_user, django_assert_num_queries, devices
):
    activity = make_activity(user=security_user, devices=devices)
    with override_settings(CSV_COPY=False), django_assert_num_queries(1):
        b"".join(activity_devices_csv_response(activity).streaming_content)


@pytest.mark.parametrize("activities", [1, 12])
def test_activities_csv_reads_the_same_number_of_queries_whatever_the_rows(
    security_user, it_user, django_assert_num_queries, activities
):
    from remediation.exports import activities_csv_response
    from remediation.selectors import activity_list

    servers, other = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="=Other")
    for _ in range(activities):
        rec = RecommendationFactory()
        expose(rec, servers, 2)
        expose(rec, other, 1)
        make_activity(user=security_user, recommendation=rec, groups=[servers, other])
    for user, groups in ((security_user, "'=Other, Servers"), (it_user, "Servers")):
        with override_settings(CSV_COPY=False):  # the COPY path is one COPY statement, not counted here
            response = activities_csv_response(activity_list(user=user), user=user)  # reads the user's scope
            with django_assert_num_queries(1):
                body = b"".join(response.streaming_content)
        rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
        assert len(rows) == 1 + activities
        assert {r[4] for r in rows[1:]} == {groups}
        assert {r[11] for r in rows[1:]} == {"3" if user is security_user else "2"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_activities_copy_path_writes_the_same_bytes_as_the_python_path(security_user, it_user, tz):
    from remediation.exports import activity_csv_chunks
    from remediation.models import RemediationActivity
    from remediation.selectors import activity_list

    servers, other = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name='zeta, "b"')
    upper = DeviceGroupFactory(name="Workstations")
    titles = ["=cmd|' /C calc'!A0", 'Quote "me", please', "line\nbreak", "Zürich – 東京", "@x", "plain"]
    for i, title in enumerate(titles):
        rec = RecommendationFactory()
        for group in (servers, other, upper):
            expose(rec, group, 1 + i % 3)
        activity = make_activity(
            user=security_user,
            recommendation=rec,
            groups=[servers, other, upper],
            remediation_option="attention_required" if i == 2 else "software_update",
        )
        method = ["", "manual", "automatic", "unknown", "", "manual"][i]
        RemediationActivity.objects.filter(pk=activity.pk).update(
            title=title,
            requester_email="-sec@example.com" if i == 1 else "sec@example.com",
            status="completed" if method else "active",
            completion_method=method,
            completer_email="+it@example.com" if method == "manual" else "",
            completed_at=dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC) if method else None,
            fixed_devices=i % 2,
            ticket_status=["pending", "approved", "", "rejected", "", "pending"][i],
        )
    with timezone.override(tz):
        for user in (security_user, it_user):
            for ordering in ({}, {"ordering": "priority"}, {"ordering": "-progress"}):
                qs = activity_list(user=user, filters=ordering)
                with override_settings(CSV_COPY=False):
                    python = b"".join(activity_csv_chunks(qs, user=user))
                assert b"".join(activity_csv_chunks(qs, user=user)) == python
                rows = list(csv.reader(io.StringIO(python.decode("utf-8"), newline="")))
                assert len(rows) == 1 + len(titles)
                groups = {r[4] for r in rows[1:]}
                assert groups == (
                    {'Servers, Workstations, zeta, "b"'} if user is security_user else {"Servers, Workstations"}
                )
