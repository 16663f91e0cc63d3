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
