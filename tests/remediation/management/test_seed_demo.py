import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from recommendations.models import Device, Exposure, RecommendationException
from remediation.models import RemediationActivity


def counts():
    return (
        Device.objects.count(),
        Exposure.objects.count(),
        RemediationActivity.objects.count(),
        RecommendationException.objects.count(),
    )


@pytest.mark.django_db
def test_seed_demo_loads_activities_in_every_state_and_a_rerun_adds_nothing(capsys):
    call_command("seed_demo", devices=300)
    first = counts()
    call_command("seed_demo", devices=300)

    assert counts() == first
    assert first[0] == 300
    activities = RemediationActivity.objects.all()
    assert {a.ticket_status for a in activities} >= {"pending", "approved", "rejected", ""}
    assert {a.completion_method for a in activities} >= {"manual", "automatic", "unknown", ""}
    assert any(a.is_overdue for a in activities)
    assert set(RecommendationException.objects.values_list("scope", flat=True)) == {"global", "device_groups"}
    out = capsys.readouterr().out
    for username, password in [
        ("admin", "admin-demo-2026"),
        ("security", "security-demo-2026"),
        ("it", "it-demo-2026"),
    ]:
        assert f"{username:<9} password {password}" in out
        assert authenticate(username=username, password=password) is not None


@pytest.mark.django_db
def test_seed_demo_refuses_a_tiny_inventory():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="at least 50"):
        call_command("seed_demo", devices=10)
    assert Device.objects.count() == 0
