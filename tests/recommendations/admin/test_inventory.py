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
