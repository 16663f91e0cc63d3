"""The admin's own audit trail (Django's LogEntry) is visible to superusers, read-only, and to
no one else."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission

from tests.recommendations.factories import UserFactory

LOG_URL = "/admin/admin/logentry/"


@pytest.mark.django_db
def test_a_change_in_the_admin_is_listed_for_superusers(client):
    root = UserFactory(username="root-auditor", is_superuser=True)
    client.force_login(root)
    response = client.post("/admin/auth/group/add/", {"name": "Auditors", "permissions": []})
    assert response.status_code == 302

    page = client.get(LOG_URL)
    assert page.status_code == 200
    assert "Auditors" in page.content.decode()
    entry = LogEntry.objects.get(object_repr="Auditors")
    assert entry.user == root
    assert entry.is_addition()
    detail = client.get(f"{LOG_URL}{entry.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()  # read-only: no save button


@pytest.mark.django_db
def test_log_entries_cannot_be_added_changed_or_deleted(client):
    client.force_login(UserFactory(username="root2", is_superuser=True))
    client.post("/admin/auth/group/add/", {"name": "Temp", "permissions": []})
    entry = LogEntry.objects.get(object_repr="Temp")
    assert client.get(f"{LOG_URL}add/").status_code == 403
    assert client.post(f"{LOG_URL}{entry.pk}/change/", {"object_repr": "forged"}).status_code == 403
    assert client.post(f"{LOG_URL}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.object_repr == "Temp"


@pytest.mark.django_db
def test_staff_without_superuser_do_not_see_the_log_even_with_the_permission(client):
    staff = UserFactory(username="staff-auditor", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_logentry"))
    client.force_login(staff)
    assert client.get(LOG_URL).status_code == 403
    assert "Log entries" not in client.get("/admin/").content.decode()
