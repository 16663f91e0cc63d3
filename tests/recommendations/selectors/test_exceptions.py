"""What an exception covers, and until when (recommendations.selectors.exceptions)."""

import datetime as dt
from unittest import mock

import pytest
from django.utils import timezone

from recommendations.selectors import excepted_device_group_ids, recommendation_exception_state
from recommendations.services import exception_create
from remediation.services import target_exposures
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose

pytestmark = pytest.mark.django_db


def test_an_exception_still_covers_its_devices_on_its_expires_on_day(security_user):
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    last_day = timezone.localdate() + dt.timedelta(days=5)
    exception_create(
        user=security_user,
        recommendation=rec,
        justification="third_party_control",
        context="A host firewall blocks the service.",
        expires_on=last_day,
        scope="device_groups",
        device_groups=[servers],
    )

    def on(day):
        return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)

    with mock.patch("django.utils.timezone.now", return_value=on(last_day)):
        assert excepted_device_group_ids(recommendation=rec) == {servers.pk}
        exposures, _ = target_exposures(recommendation=rec, device_groups=[servers, laptops])
        assert exposures.count() == 2  # the laptops only
        assert recommendation_exception_state(recommendation=rec)["label"] == "Partial exception"
    with mock.patch("django.utils.timezone.now", return_value=on(last_day + dt.timedelta(days=1))):
        assert excepted_device_group_ids(recommendation=rec) == set()
        exposures, _ = target_exposures(recommendation=rec, device_groups=[servers, laptops])
        assert exposures.count() == 5
        assert recommendation_exception_state(recommendation=rec)["label"] == ""


@pytest.mark.parametrize(
    ("justification", "after_exceptions"),
    [
        ("third_party_control", 2),
        ("alternate_mitigation", 2),
        ("risk_accepted", 5),
        ("planned_remediation", 5),
    ],
)
def test_only_mitigating_justifications_lower_the_count_after_exceptions(
    security_user, justification, after_exceptions
):
    """DESIGN.md section 8, as in Defender: an accepted risk or a planned fix leaves the devices
    counted (they are still exposed), though they are still kept out of new activities."""
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    exception_create(
        user=security_user,
        recommendation=rec,
        justification=justification,
        context="Handled elsewhere.",
        expires_on=timezone.localdate() + dt.timedelta(days=5),
        scope="device_groups",
        device_groups=[servers],
    )

    state = recommendation_exception_state(recommendation=rec)
    assert (state["label"], state["exposed_devices"], state["exposed_after_exceptions"]) == (
        "Partial exception",
        5,
        after_exceptions,
    )
    exposures, _ = target_exposures(recommendation=rec, device_groups=[servers, laptops])
    assert exposures.count() == 2  # every active exception keeps its devices out of new activities


@pytest.mark.parametrize(("justification", "after_exceptions"), [("alternate_mitigation", 0), ("risk_accepted", 5)])
def test_a_global_exception_lowers_the_count_only_for_a_mitigating_justification(
    superuser, justification, after_exceptions
):
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    # A mitigating device-group exception under it is suspended: the global one decides.
    exception_create(
        user=superuser,
        recommendation=rec,
        justification="third_party_control",
        context="Firewall.",
        expires_on=timezone.localdate() + dt.timedelta(days=5),
        scope="device_groups",
        device_groups=[servers],
    )
    exception_create(
        user=superuser,
        recommendation=rec,
        justification=justification,
        context="Everywhere.",
        expires_on=timezone.localdate() + dt.timedelta(days=5),
        scope="global",
    )

    state = recommendation_exception_state(recommendation=rec)
    assert (state["label"], state["exposed_after_exceptions"]) == ("Exception", after_exceptions)
    assert excepted_device_group_ids(recommendation=rec) is None  # nothing targetable either way
