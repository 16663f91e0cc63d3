import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from portal.errors import ConflictError, PermissionError_, ValidationError
from portal.locks import job_lock
from recommendations.models import ExceptionDeviceGroup, ExceptionEvent, RecommendationException
from recommendations.selectors import (
    excepted_device_group_ids,
    exception_is_suspended,
    recommendation_exception_state,
    recommendation_list,
)
from recommendations.services import exception_cancel, exception_create, exceptions_expire
from recommendations.tasks import expire_exceptions
from remediation.models import RemediationActivity
from remediation.services import activity_create
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
NEXT_MONTH = TODAY + dt.timedelta(days=30)


def file_exception(user, rec, *, scope="device_groups", groups=(), **kwargs):
    kwargs.setdefault("justification", "third_party_control")  # lowers the count after exceptions
    kwargs.setdefault("context", "Vendor fix expected next quarter.")
    kwargs.setdefault("expires_on", NEXT_MONTH)
    return exception_create(user=user, recommendation=rec, scope=scope, device_groups=groups, **kwargs)


def request(user, rec, groups):
    return activity_create(
        user=user,
        recommendation=rec,
        remediation_option="software_update",
        priority="high",
        due_on=TODAY + dt.timedelta(days=7),
        device_groups=groups,
    )


@pytest.fixture
def two_groups():
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    return rec, servers, laptops


def test_global_exception_blocks_new_requests_and_canceling_it_makes_devices_targetable(
    superuser, security_user, two_groups
):
    rec, servers, laptops = two_groups
    exception = file_exception(superuser, rec, scope="global")

    with pytest.raises(ValidationError, match="global exception") as exc:
        request(security_user, rec, [servers, laptops])
    assert "device_groups" in exc.value.errors
    assert RemediationActivity.objects.count() == 0
    state = recommendation_exception_state(recommendation=rec)
    assert (state["label"], state["exposed_devices"], state["exposed_after_exceptions"]) == ("Exception", 5, 0)

    exception_cancel(exception=exception, user=security_user)

    activity = request(security_user, rec, [servers, laptops])
    assert activity.target_devices == 5
    assert recommendation_exception_state(recommendation=rec)["label"] == ""
    assert list(exception.events.values_list("kind", "actor_label")) == [
        ("created", "root@example.com"),
        ("canceled", "sec@example.com"),
    ]


def test_exception_on_one_of_two_groups_is_partial_and_requests_target_only_the_other(security_user, two_groups):
    rec, servers, laptops = two_groups
    file_exception(security_user, rec, groups=[servers])

    state = recommendation_exception_state(recommendation=rec)
    assert (state["label"], state["exposed_devices"], state["exposed_after_exceptions"]) == (
        "Partial exception",
        5,
        2,
    )
    activity = request(security_user, rec, [servers, laptops])
    assert activity.target_devices == 2
    assert set(activity.devices.values_list("device__device_group__name", flat=True)) == {"Laptops"}
    with pytest.raises(ValidationError, match="covered by an active exception"):
        request(security_user, rec, [servers])


def test_every_exposed_group_covered_shows_exception(security_user, two_groups):
    rec, servers, laptops = two_groups
    DeviceGroupFactory(name="Empty")  # no exposed device: does not need covering
    file_exception(security_user, rec, groups=[servers, laptops])
    assert recommendation_exception_state(recommendation=rec)["label"] == "Exception"
    row = recommendation_list(user=security_user).get(pk=rec.pk)
    assert (row.exception_state, row.exposed_after_exceptions) == ("exception", 0)


def test_recommendation_list_annotates_every_row_in_one_query(security_user, two_groups, django_assert_num_queries):
    rec, servers, _ = two_groups
    other = RecommendationFactory()
    expose(other, servers, 1)
    untouched = RecommendationFactory()
    file_exception(security_user, rec, groups=[servers])
    file_exception(security_user, other, groups=[servers])
    with django_assert_num_queries(1):
        rows = {
            r.pk: (r.exception_state, r.exposed_devices, r.exposed_after_exceptions)
            for r in recommendation_list(user=security_user)
        }
    assert rows == {rec.pk: ("partial", 5, 2), other.pk: ("exception", 1, 0), untouched.pk: ("none", 0, 0)}
    assert list(recommendation_list(user=security_user).filter(exception_state="partial")) == [rec]


def test_group_exception_is_suspended_under_a_global_one_and_resumes_after(superuser, security_user, two_groups):
    rec, servers, laptops = two_groups
    group_exc = file_exception(security_user, rec, groups=[servers])
    global_exc = file_exception(superuser, rec, scope="global")

    assert excepted_device_group_ids(recommendation=rec) is None
    assert exception_is_suspended(exception=group_exc)
    group_exc.refresh_from_db()
    assert group_exc.status == "active"

    exception_cancel(exception=global_exc, user=superuser)

    assert not exception_is_suspended(exception=group_exc)
    assert excepted_device_group_ids(recommendation=rec) == {servers.pk}
    assert request(security_user, rec, [servers, laptops]).target_devices == 2


def test_group_exception_resumes_when_the_global_one_expires(superuser, security_user, two_groups):
    rec, servers, laptops = two_groups
    file_exception(security_user, rec, groups=[servers], expires_on=TODAY + dt.timedelta(days=60))
    file_exception(superuser, rec, scope="global", expires_on=TODAY + dt.timedelta(days=1))
    assert recommendation_exception_state(recommendation=rec)["label"] == "Exception"

    assert exceptions_expire(today=TODAY + dt.timedelta(days=2)) == 1

    assert RecommendationException.objects.get(scope="global").status == "expired"
    assert excepted_device_group_ids(recommendation=rec) == {servers.pk}


def test_expire_exceptions_command_expires_once_and_the_recommendation_resurfaces(security_user, two_groups):
    rec, servers, laptops = two_groups
    exception = file_exception(security_user, rec, groups=[servers, laptops])
    current = file_exception(
        security_user, RecommendationFactory(), groups=[servers], expires_on=TODAY + dt.timedelta(days=1)
    )
    RecommendationException.objects.filter(pk=exception.pk).update(expires_on=TODAY - dt.timedelta(days=1))

    call_command("expire_exceptions")
    call_command("expire_exceptions")

    exception.refresh_from_db()
    assert exception.status == "expired"
    assert exception.expired_at is not None
    assert list(exception.events.filter(kind="expired").values_list("actor_label", flat=True)) == ["System"]
    current.refresh_from_db()
    assert current.status == "active"
    assert recommendation_exception_state(recommendation=rec)["label"] == ""
    assert request(security_user, rec, [servers, laptops]).target_devices == 5


def test_expiry_waits_for_the_day_after_expires_on(security_user, two_groups):
    rec, servers, _ = two_groups
    exception = file_exception(security_user, rec, groups=[servers], expires_on=TODAY + dt.timedelta(days=3))
    assert exceptions_expire(today=TODAY + dt.timedelta(days=3)) == 0
    assert exceptions_expire(today=TODAY + dt.timedelta(days=4)) == 1
    assert exceptions_expire(today=TODAY + dt.timedelta(days=4)) == 0
    exception.refresh_from_db()
    assert exception.status == "expired"


def test_cancel_one_group_then_the_last_group_cancels_the_exception(security_user, two_groups):
    rec, servers, laptops = two_groups
    exception = file_exception(security_user, rec, groups=[servers, laptops])

    exception_cancel(exception=exception, user=security_user, device_group=servers)
    exception.refresh_from_db()
    assert exception.status == "active"
    assert excepted_device_group_ids(recommendation=rec) == {laptops.pk}
    assert request(security_user, rec, [servers, laptops]).target_devices == 3

    with pytest.raises(ConflictError):
        exception_cancel(exception=exception, user=security_user, device_group=servers)

    exception_cancel(exception=exception, user=security_user, device_group=laptops)
    exception.refresh_from_db()
    assert exception.status == "canceled"
    assert exception.canceled_by == security_user
    assert list(exception.events.values_list("kind", flat=True)) == [
        "created",
        "group_canceled",
        "group_canceled",
        "canceled",
    ]
    with pytest.raises(ConflictError, match="already canceled"):
        exception_cancel(exception=exception, user=security_user)


def test_cancel_refuses_a_group_on_a_global_exception_and_a_group_not_covered(superuser, two_groups):
    rec, servers, laptops = two_groups
    global_exc = file_exception(superuser, rec, scope="global")
    with pytest.raises(ValidationError) as exc:
        exception_cancel(exception=global_exc, user=superuser, device_group=servers)
    assert "device_group" in exc.value.errors
    group_exc = file_exception(superuser, rec, groups=[servers])
    with pytest.raises(ValidationError, match="does not cover"):
        exception_cancel(exception=group_exc, user=superuser, device_group=laptops)
    assert RecommendationException.objects.filter(status="active").count() == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"justification": "because"}, "justification"),
        ({"context": "   "}, "context"),
        ({"expires_on": None}, "expires_on"),
        ({"expires_on": TODAY}, "expires_on"),
        ({"scope": "everything"}, "scope"),
        ({"groups": []}, "device_groups"),
    ],
)
def test_create_refuses_bad_input_and_creates_nothing(security_user, two_groups, kwargs, field):
    rec, servers, _ = two_groups
    kwargs.setdefault("groups", [servers])
    with pytest.raises(ValidationError) as exc:
        file_exception(security_user, rec, **kwargs)
    assert field in exc.value.errors
    assert RecommendationException.objects.count() == 0
    assert ExceptionEvent.objects.count() == 0


def test_create_refuses_groups_already_covered_and_a_second_global(superuser, security_user, two_groups):
    rec, servers, laptops = two_groups
    file_exception(security_user, rec, groups=[servers])
    with pytest.raises(ValidationError, match="already have an active exception.*Servers"):
        file_exception(security_user, rec, groups=[servers, laptops])
    file_exception(superuser, rec, scope="global")
    with pytest.raises(ValidationError, match="already active"):
        file_exception(superuser, rec, scope="global")
    assert ExceptionDeviceGroup.objects.count() == 1


def test_only_superusers_file_global_exceptions(security_user, two_groups):
    rec, _, _ = two_groups
    with pytest.raises(PermissionError_, match="superusers"):
        file_exception(security_user, rec, scope="global")
    assert RecommendationException.objects.count() == 0


def test_it_staff_and_people_without_the_permission_cannot_create_or_cancel(it_user, security_user, two_groups):
    rec, servers, _ = two_groups
    plain = UserFactory(username="plain")
    for user in (it_user, plain):
        with pytest.raises(PermissionError_):
            file_exception(user, rec, groups=[servers])
    exception = file_exception(security_user, rec, groups=[servers])
    for user in (it_user, plain):
        with pytest.raises(PermissionError_):
            exception_cancel(exception=exception, user=user)
    exception.refresh_from_db()
    assert exception.status == "active"


def test_scoped_user_with_the_permission_may_only_use_their_groups(it_group, two_groups):
    rec, servers, laptops = two_groups  # it_group sees Servers and Workstations, not Laptops
    user = UserFactory(username="scoped")
    handlers = Group.objects.create(name="Scoped handlers")
    handlers.permissions.add(*Group.objects.get(name="Security staff").permissions.filter(codename="handle_exceptions"))
    user.groups.add(handlers, it_group)
    with pytest.raises(ValidationError, match="Laptops"):
        file_exception(user, rec, groups=[laptops])
    exception = file_exception(user, rec, groups=[servers])
    assert exception.created_by == user


def test_overlapping_expiry_runs_do_not_both_act(security_user, two_groups):
    rec, servers, _ = two_groups
    exception = file_exception(security_user, rec, groups=[servers])
    RecommendationException.objects.filter(pk=exception.pk).update(expires_on=TODAY - dt.timedelta(days=1))

    with job_lock("expire_exceptions") as held:
        assert held
        assert expire_exceptions() is None
        with pytest.raises(CommandError, match="in progress"):
            call_command("expire_exceptions")
    exception.refresh_from_db()
    assert exception.status == "active"
    assert expire_exceptions() == 1
