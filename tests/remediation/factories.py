import datetime as dt

from django.utils import timezone

from remediation.services import activity_create
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose


def make_activity(*, user, recommendation=None, groups=None, devices: int = 3, **kwargs):
    """File a real request through the service (so every rule and side effect applies).

    Several activities for one recommendation and group are fine here (the duplicate warning is
    confirmed); tests of that rule call activity_create themselves.
    """
    recommendation = recommendation or RecommendationFactory()
    if groups is None:
        groups = [DeviceGroupFactory(name="Servers")]
        expose(recommendation, groups[0], devices)
    kwargs.setdefault("remediation_option", "software_update")
    kwargs.setdefault("priority", "high")
    kwargs.setdefault("confirm_duplicate", True)
    if kwargs["remediation_option"] != "attention_required":
        kwargs.setdefault("due_on", timezone.localdate() + dt.timedelta(days=7))
    return activity_create(user=user, recommendation=recommendation, device_groups=groups, **kwargs)
