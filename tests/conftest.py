import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache

from tests.recommendations.factories import DeviceGroupFactory, UserFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    """Locks and throttle counters live in the cache (Redis in CI): start every test clean."""
    cache.clear()


@pytest.fixture
def security_user(db):
    user = UserFactory(username="sec", email="sec@example.com")
    user.groups.add(Group.objects.get(name="Security staff"))
    return user


@pytest.fixture
def it_group(db):
    """An auth group that scopes IT people to the `Servers` and `Workstations` device groups."""
    group = Group.objects.create(name="IT operations")
    for name in ("Servers", "Workstations"):
        DeviceGroupFactory(name=name).user_groups.add(group)
    return group


@pytest.fixture
def it_user(db, it_group):
    """IT staff scoped to the `Servers` and `Workstations` device groups."""
    user = UserFactory(username="it", email="it@example.com")
    user.groups.add(Group.objects.get(name="IT staff"), it_group)
    return user


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", email="root@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def scoped_security_user(db, it_group):
    """A requester (security role) without 'view all device groups': scoped to Servers and Workstations."""
    from django.contrib.auth.models import Permission

    user = UserFactory(username="scoped-sec", email="scoped-sec@example.com")
    user.groups.add(it_group)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "add_remediationactivity",
                "view_remediationactivity",
                "view_securityrecommendation",
                "view_devicegroup",
            ]
        )
    )
    return user
