"""When each exposure was last reported, as the API and the exports show it (`last_seen`).

A full snapshot stores its time once per recommendation instead of rewriting the `last_seen` of
every unchanged pair; what a user reads must be the same as if every row had been rewritten.
"""

import datetime as dt

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations.imports.resources import ExposureResource
from recommendations.models import Exposure, SecurityRecommendation
from recommendations.services import devices_upsert, exposures_import_snapshot, recommendations_upsert

T1 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
T3 = dt.datetime(2026, 11, 3, 8, 0, tzinfo=dt.UTC)
WIDGET = "va-_-contoso-_-widget"
DEVICES = {"srv-1": "Servers", "srv-2": "Servers", "lap-1": "Laptops"}


@pytest.fixture
def widget(it_group):
    recommendations_upsert(records=[{"id": WIDGET, "recommendationName": "Update Widget"}])
    devices_upsert(records=[{"id": m, "rbacGroupName": g} for m, g in DEVICES.items()])
    exposures_import_snapshot(pairs=[(WIDGET, m) for m in DEVICES], now=T1)
    return SecurityRecommendation.objects.get(external_id=WIDGET)


def api_last_seen(user) -> dict[str, str]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    response = client.get(f"/api/v1/recommendations/{WIDGET}/devices/")
    assert response.status_code == 200
    return {row["device_id"]: row["last_seen"] for row in response.json()["results"]}


def exported_last_seen() -> dict[str, str]:
    dataset = ExposureResource().export(queryset=Exposure.objects.all())
    return {row["machineId"]: row["last_seen"] for row in dataset.dict}


def test_a_full_snapshot_reports_the_unchanged_pairs_seen_at_its_time(widget, security_user):
    stored_before = dict(Exposure.objects.values_list("device__machine_id", "last_seen"))

    counts = exposures_import_snapshot(pairs=[(WIDGET, "srv-1"), (WIDGET, "lap-1")], now=T2)

    assert (counts["updated"], counts["remediated"]) == (2, 1)
    assert api_last_seen(security_user) == {"srv-1": "2026-11-02T08:00:00Z", "lap-1": "2026-11-02T08:00:00Z"}
    # The fixed device keeps the time it was last reported, and the unchanged rows were not rewritten.
    fixed = Exposure.objects.select_related("recommendation").get(device__machine_id="srv-2")
    assert (fixed.remediated_at, fixed.last_reported) == (T2, T1)
    assert dict(Exposure.objects.values_list("device__machine_id", "last_seen")) == stored_before
    assert exported_last_seen() == {
        "srv-1": "2026-11-02 08:00:00",
        "lap-1": "2026-11-02 08:00:00",
        "srv-2": "2026-11-01 08:00:00",
    }


def test_a_device_back_in_a_later_snapshot_is_reported_at_that_time(widget, security_user):
    exposures_import_snapshot(pairs=[(WIDGET, "srv-1"), (WIDGET, "lap-1")], now=T2)

    counts = exposures_import_snapshot(pairs=[(WIDGET, m) for m in DEVICES], now=T3)

    assert counts["re_exposed"] == 1
    assert set(api_last_seen(security_user).values()) == {"2026-11-03T08:00:00Z"}


def test_a_scoped_snapshot_reports_only_the_devices_it_reaches(widget, it_user, security_user):
    counts = exposures_import_snapshot(pairs=[(WIDGET, "srv-1")], now=T2, user=it_user)

    # srv-2 (Servers, the IT user's) is fixed; lap-1 (Laptops) is another group's: untouched, not reported now.
    assert (counts["updated"], counts["remediated"]) == (1, 1)
    assert api_last_seen(security_user) == {"srv-1": "2026-11-02T08:00:00Z", "lap-1": "2026-11-01T08:00:00Z"}


def test_the_export_reads_the_recommendations_times_without_a_query_per_row(widget, django_assert_max_num_queries):
    exposures_import_snapshot(pairs=[(WIDGET, m) for m in DEVICES], now=T2)
    with django_assert_max_num_queries(2):
        assert set(exported_last_seen().values()) == {"2026-11-02 08:00:00"}
