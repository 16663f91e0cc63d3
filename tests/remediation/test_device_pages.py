"""An activity's device pages: sorted by the device name copied onto each row (kept in step with
every rename), paged by keyset, in a number of queries that does not grow with the devices."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations.imports.records import Record
from recommendations.models import Device
from recommendations.services import devices_upsert
from remediation.admin.views import DEVICES_PER_PAGE
from remediation.models import ActivityDevice
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


def names(activity) -> dict[int, str]:
    return dict(ActivityDevice.objects.filter(activity=activity).values_list("device_id", "device_name"))


def test_rows_carry_their_device_name_from_the_request(security_user):
    activity = make_activity(user=security_user, devices=4)
    assert names(activity) == dict(Device.objects.values_list("pk", "computer_dns_name"))
    assert all(names(activity).values())


def test_a_row_inserted_without_the_name_gets_it_from_the_database(security_user):
    activity = make_activity(user=security_user, devices=1)
    device = expose(activity.recommendation, DeviceGroupFactory(name="Servers"), 1)[0]
    link = ActivityDevice.objects.create(activity=activity, device=device)
    link.refresh_from_db()
    assert link.device_name == device.computer_dns_name


def test_a_renamed_device_is_renamed_in_every_activity(security_user):
    first = make_activity(user=security_user, devices=2)
    device = Device.objects.order_by("pk").first()
    second = make_activity(user=security_user, recommendation=first.recommendation, groups=[device.device_group])
    other = Device.objects.exclude(pk=device.pk).order_by("pk").first()
    untouched = other.computer_dns_name

    device.computer_dns_name = "renamed.corp.example"
    device.save()

    assert names(first)[device.pk] == names(second)[device.pk] == "renamed.corp.example"
    assert names(first)[other.pk] == untouched


def test_an_import_that_renames_devices_renames_their_rows(security_user):
    activity = make_activity(user=security_user, devices=3)
    devices = list(Device.objects.order_by("pk"))
    records = [
        Record(i, None, {"id": d.machine_id, "computerDnsName": f"new-{i}.corp.example", "rbacGroupName": "Servers"})
        for i, d in enumerate(devices[:2])
    ]
    devices_upsert(records=records)
    assert names(activity) == {
        devices[0].pk: "new-0.corp.example",
        devices[1].pk: "new-1.corp.example",
        devices[2].pk: devices[2].computer_dns_name,
    }


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


def test_api_device_pages_follow_the_names_and_show_every_device_once(security_user):
    rec = RecommendationFactory()
    group = DeviceGroupFactory(name="Servers")
    devices = expose(rec, group, 7)
    for device, name in zip(devices, ["b", "a", "c", "a", "", "B", "z"], strict=True):
        device.computer_dns_name = name
        device.save()
    activity = make_activity(user=security_user, recommendation=rec, groups=[group])
    url = f"/api/v1/remediation-activities/{activity.pk}/devices/?page_size=3"
    seen = []
    while url:
        body = api(security_user).get(url).json()
        seen.extend((d["device_name"], d["device_id"]) for d in body["results"])
        url = body["next"]
    expected = sorted(
        ActivityDevice.objects.filter(activity=activity).values_list("device_name", "pk", "device__machine_id"),
        key=lambda row: row[:2],
    )
    assert [m for _, m in seen] == [m for _, _, m in expected]
    assert len(seen) == 7


@pytest.mark.parametrize("devices", [3, 160])
def test_admin_device_table_walks_every_device_once_in_constant_queries(
    client, security_user, django_assert_max_num_queries, devices
):
    activity = make_activity(user=security_user, devices=devices)
    client.force_login(security_user)
    url = reverse("admin:remediation_remediationactivity_change", args=[activity.pk])
    seen, after, pages = [], None, 0
    while True:
        with django_assert_max_num_queries(16):
            response = client.get(url, {"after": after} if after else {})
        page = response.context["device_page"]
        assert response.context["device_count"] == devices  # from the stored counter
        seen.extend(d.pk for d in page)
        pages += 1
        if not page.next_cursor:
            break
        after = page.next_cursor
    assert sorted(seen) == sorted(activity.devices.values_list("pk", flat=True))
    assert pages == -(-devices // DEVICES_PER_PAGE)


@pytest.mark.parametrize("cursor", ["garbage", "eyJhIjoxfQ==", "WyJ4IiwtMSwwXQ=="])
def test_a_forged_admin_cursor_shows_the_first_page(client, security_user, cursor):
    activity = make_activity(user=security_user, devices=3)
    client.force_login(security_user)
    url = reverse("admin:remediation_remediationactivity_change", args=[activity.pk])
    response = client.get(url, {"after": cursor})
    assert response.status_code == 200
    assert len(response.context["device_page"].object_list) == 3


@pytest.mark.parametrize("devices", [2, 120])
def test_api_device_page_reads_the_same_number_of_queries_whatever_the_devices(
    security_user, django_assert_num_queries, devices
):
    activity = make_activity(user=security_user, devices=devices)
    client = api(security_user)
    client.get(f"/api/v1/remediation-activities/{activity.pk}/devices/")  # warm: token, content types
    with django_assert_num_queries(6):
        response = client.get(f"/api/v1/remediation-activities/{activity.pk}/devices/")
    assert response.status_code == 200
