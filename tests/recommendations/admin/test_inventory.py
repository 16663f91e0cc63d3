"""The inventory changelists: query counts independent of the page size; Defender's fields shown and filtered."""

import pytest
from django.urls import reverse

from recommendations.models import Device
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("who", ["security_user", "it_user"])
def test_recommendation_changelist_queries_do_not_grow_with_rows(
    client, request, security_user, it_user, django_assert_max_num_queries, rows, who
):
    servers = DeviceGroupFactory(name="Servers")
    for index in range(rows):
        rec = RecommendationFactory(public_exploit=index % 2 == 0)
        expose(rec, servers, 1)
    make_activity(user=security_user, recommendation=rec, groups=[servers])
    client.force_login(request.getfixturevalue(who))

    with django_assert_max_num_queries(11):  # + the sub-categories offered by the filter
        response = client.get(reverse("admin:recommendations_securityrecommendation_changelist"))

    assert response.status_code == 200
    result = response.context["cl"].result_list
    assert len(result) == rows
    assert sum(r.open_activities for r in result) == 1


def test_recommendation_page_renders_read_only_for_it_staff(client, it_user):
    rec = RecommendationFactory(name="Update Viewer")
    client.force_login(it_user)
    response = client.get(reverse("admin:recommendations_securityrecommendation_change", args=[rec.pk]))
    assert response.status_code == 200
    assert "Update Viewer" in response.content.decode()
    assert 'name="_save"' not in response.content.decode()


@pytest.fixture
def fleet(db):
    servers, workstations = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Workstations")
    secret = DeviceGroupFactory(name="Secret lab")
    return {
        "sql": DeviceFactory(
            computer_dns_name="srv-sql-01",
            device_group=servers,
            health_status="Active",
            risk_score="High",
            exposure_level="Medium",
            machine_tags=["tier-1", "internet facing"],
        ),
        "web": DeviceFactory(
            computer_dns_name="srv-web-02",
            device_group=servers,
            health_status="Inactive",
            risk_score="Low",
            exposure_level="High",
            machine_tags=["tier-1-backup"],
        ),
        "pc": DeviceFactory(
            computer_dns_name="pc-0042",
            device_group=workstations,
            health_status="Active",
            risk_score="Low",
            exposure_level="Low",
            machine_tags=[],
        ),
        "lab": DeviceFactory(
            computer_dns_name="lab-07", device_group=secret, machine_tags=["lab-only"], risk_score="High"
        ),
    }


def device_names(response):
    return sorted(d.computer_dns_name for d in response.context["cl"].result_list)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"health_status__exact": "Active"}, ["pc-0042", "srv-sql-01"]),
        ({"risk_score__exact": "High"}, ["lab-07", "srv-sql-01"]),
        ({"exposure_level__exact": "High"}, ["srv-web-02"]),
        ({"tag": "tier-1"}, ["srv-sql-01"]),  # exactly that tag, not tier-1-backup
        ({"tag": "internet facing"}, ["srv-sql-01"]),
        ({"tag": "tier-1", "health_status__exact": "Inactive"}, []),
    ],
)
def test_device_list_filters_by_health_risk_exposure_level_and_tag(client, superuser, fleet, query, expected):
    client.force_login(superuser)
    response = client.get(reverse("admin:recommendations_device_changelist"), query)
    assert response.status_code == 200
    assert device_names(response) == expected


def test_device_list_shows_defender_fields_and_offers_only_tags_of_visible_devices(client, it_user, fleet):
    client.force_login(it_user)  # sees Servers and Workstations, not the secret lab
    response = client.get(reverse("admin:recommendations_device_changelist"))
    page = response.content.decode()
    assert "tier-1, internet facing" in page
    tag_filter = next(f for f in response.context["cl"].filter_specs if getattr(f, "parameter_name", "") == "tag")
    assert [value for value, _ in tag_filter.lookup_choices] == ["internet facing", "tier-1", "tier-1-backup"]
    assert device_names(client.get(reverse("admin:recommendations_device_changelist"), {"tag": "lab-only"})) == []


@pytest.mark.parametrize("rows", [1, 60])
def test_device_changelist_queries_do_not_grow_with_rows(client, it_user, django_assert_max_num_queries, rows):
    servers = DeviceGroupFactory(name="Servers")
    DeviceFactory.create_batch(rows, device_group=servers, machine_tags=["tier-1"], health_status="Active")
    client.force_login(it_user)
    with django_assert_max_num_queries(13):
        response = client.get(reverse("admin:recommendations_device_changelist"))
    assert len(response.context["cl"].result_list) == rows
    assert Device.objects.count() == rows


def test_recommendation_list_filters_by_sub_category_and_threats(client, superuser):
    RecommendationFactory(name="Update Chrome", sub_category="", associated_threats=[])
    RecommendationFactory(
        name="Block Office macros", sub_category="Attack Surface Reduction", associated_threats=["3098b8ef"]
    )
    RecommendationFactory(name="Turn on PUA protection", sub_category="Antivirus", associated_threats=[])
    client.force_login(superuser)
    url = reverse("admin:recommendations_securityrecommendation_changelist")

    def names(query):
        return sorted(r.name for r in client.get(url, query).context["cl"].result_list)

    assert names({"sub_category": "Antivirus"}) == ["Turn on PUA protection"]
    assert names({"sub_category": "-"}) == ["Update Chrome"]
    assert names({"threats": "yes"}) == ["Block Office macros"]
    assert names({"threats": "no"}) == ["Turn on PUA protection", "Update Chrome"]
    page = client.get(url).content.decode()
    assert "Attack Surface Reduction" in page


# --- writes are scoped (DESIGN.md section 5) ---------------------------------------------------


@pytest.fixture
def scoped_editor(client, it_group):
    """Staff who import and edit the inventory, scoped to Servers and Workstations."""
    from django.contrib.auth.models import Permission

    from tests.recommendations.factories import UserFactory

    user = UserFactory(username="scoped-editor")
    user.groups.add(it_group)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="recommendations",
            codename__in=[
                f"{action}_{model}"
                for action in ("add", "change", "view", "delete")
                for model in ("device", "devicegroup", "exposure")
            ],
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def devices(it_group):
    from recommendations.models import DeviceGroup
    from tests.recommendations.factories import DeviceFactory

    return {
        "own": DeviceFactory(machine_id="m-own", device_group=DeviceGroup.objects.get(name="Servers")),
        "foreign": DeviceFactory(machine_id="m-foreign", device_group=DeviceGroupFactory(name="Laptops")),
    }


def device_form(device, group):
    return {
        "machine_id": device.machine_id,
        "computer_dns_name": "renamed",
        "os_platform": "",
        "os_version": "",
        "device_group": group.pk,
        "aad_device_id": "",
        "health_status": "",
        "risk_score": "",
        "exposure_level": "",
        "machine_tags": "[]",
        "last_ip_address": "",
    }


def test_the_device_form_offers_and_accepts_only_the_editors_groups(scoped_editor, devices):
    from recommendations.models import Device, DeviceGroup

    own, laptops = devices["own"], DeviceGroup.objects.get(name="Laptops")
    name = own.computer_dns_name
    url = reverse("admin:recommendations_device_change", args=[own.pk])
    page = scoped_editor.get(url)
    assert page.status_code == 200
    assert sorted(page.context["adminform"].form.fields["device_group"].queryset.values_list("name", flat=True)) == [
        "Servers",
        "Workstations",
    ]

    response = scoped_editor.post(url, device_form(own, laptops))

    assert response.status_code == 200  # the form again, with its error
    assert "device_group" in response.context["adminform"].form.errors
    own.refresh_from_db()
    assert (own.computer_dns_name, own.device_group.name) == (name, "Servers")
    assert Device.objects.get(pk=devices["foreign"].pk).device_group == laptops


def test_another_groups_device_answers_like_an_unknown_one(scoped_editor, devices):
    from recommendations.models import Device

    foreign = devices["foreign"]
    unknown = scoped_editor.get(reverse("admin:recommendations_device_change", args=[999999]))
    page = scoped_editor.get(reverse("admin:recommendations_device_change", args=[foreign.pk]))
    assert (page.status_code, page.get("Location")) == (unknown.status_code, unknown.get("Location"))
    assert page.status_code != 200
    posted = scoped_editor.post(
        reverse("admin:recommendations_device_change", args=[foreign.pk]), device_form(foreign, foreign.device_group)
    )
    deleted = scoped_editor.post(reverse("admin:recommendations_device_delete", args=[foreign.pk]), {"post": "yes"})
    assert (posted.status_code, deleted.status_code) == (unknown.status_code, unknown.status_code)
    assert Device.objects.get(pk=foreign.pk).computer_dns_name == foreign.computer_dns_name


def test_an_exposure_cannot_be_put_on_another_groups_device(scoped_editor, devices):
    from recommendations.models import Exposure

    rec = RecommendationFactory()
    form = {
        "recommendation": rec.pk,
        "device": devices["foreign"].pk,
        "first_seen_0": "2026-11-01",
        "first_seen_1": "08:00:00",
        "last_seen_0": "2026-11-20",
        "last_seen_1": "08:00:00",
        "remediated_at_0": "",
        "remediated_at_1": "",
    }
    response = scoped_editor.post(reverse("admin:recommendations_exposure_add"), form)
    assert response.status_code == 200
    assert "device" in response.context["adminform"].form.errors
    assert not Exposure.objects.exists()

    response = scoped_editor.post(reverse("admin:recommendations_exposure_add"), {**form, "device": devices["own"].pk})
    assert response.status_code == 302
    assert Exposure.objects.get().device == devices["own"]
    rec.refresh_from_db()
    assert rec.exposed_devices == 1


def test_a_scoped_editor_changes_only_the_description_of_their_own_groups(scoped_editor, devices):
    from django.contrib.auth.models import Group

    from recommendations.models import DeviceGroup

    servers, laptops = DeviceGroup.objects.get(name="Servers"), DeviceGroup.objects.get(name="Laptops")
    outsiders = Group.objects.create(name="Outsiders")
    assert scoped_editor.get(reverse("admin:recommendations_devicegroup_add")).status_code == 403
    assert scoped_editor.get(reverse("admin:recommendations_devicegroup_change", args=[laptops.pk])).status_code != 200

    response = scoped_editor.post(
        reverse("admin:recommendations_devicegroup_change", args=[servers.pk]),
        {"name": "Renamed", "description": "Our servers", "user_groups": [outsiders.pk]},
    )

    assert response.status_code == 302
    servers.refresh_from_db()
    assert (servers.name, servers.description) == ("Servers", "Our servers")
    assert outsiders not in servers.user_groups.all()


def test_a_scoped_admin_import_lists_the_devices_it_may_not_change(scoped_editor, devices):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from recommendations.models import Device

    content = b"id,computerDnsName,rbacGroupName\nm-foreign,mine,Servers\nm-own,moved,Laptops\n"
    preview = scoped_editor.post(
        reverse("admin:recommendations_device_import"),
        {"resource": "0", "format": "0", "import_file": SimpleUploadedFile("devices.csv", content)},
    )
    errors = [" ".join(row.error.messages) for row in preview.context["result"].invalid_rows]
    assert errors == [
        "line 2: device 'm-foreign' is outside your device groups; you may not change it",
        "line 3: device group 'Laptops' is not one of your device groups; you may not put devices in it",
    ]
    assert not preview.context.get("confirm_form")
    assert set(Device.objects.values_list("machine_id", "device_group__name")) == {
        ("m-own", "Servers"),
        ("m-foreign", "Laptops"),
    }
