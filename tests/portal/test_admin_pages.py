"""The portal's own pages around the admin: `/`, the favicon, 403 and 404 in the admin's style, the
JavaScript catalog, and the sign-in banner `runserver` prints last."""

import io

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from portal.management.commands.runserver import Command as Runserver
from tests.recommendations.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_root_leads_to_the_admin(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_the_favicon_is_served_and_linked_from_every_admin_page(client, security_user):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("portal/favicon.svg")
    client.force_login(security_user)
    assert 'rel="icon" href="/static/portal/favicon.svg"' in client.get(reverse("admin:index")).content.decode()


def test_404_is_a_page_in_the_admins_style(client, security_user):
    client.force_login(security_user)
    response = client.get(reverse("admin:remediation_remediationactivity_change", args=["not-an-activity"]))
    assert response.status_code == 404
    html = response.content.decode()
    assert '<div id="site-name"><a href="/admin/">Remediation portal</a></div>' in html
    assert "Page not found" in html
    assert "outside the device groups you may see" in html


def test_403_is_a_page_in_the_admins_style_that_says_why(client):
    staff = UserFactory(username="no-role", is_staff=True)
    client.force_login(staff)
    response = client.get(reverse("admin:remediation_remediationactivity_changelist"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "Remediation portal" in html
    assert "You may not open this page" in html
    assert 'id="error-message"' in html


def test_the_api_keeps_its_json_errors(client, security_user):
    client.force_login(security_user)
    response = client.get("/api/v1/remediation-activities/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


def test_the_javascript_catalog_is_served_before_the_exception_forms_scripts(client, security_user):
    from tests.recommendations.factories import RecommendationFactory

    catalog = client.get(reverse("javascript-catalog"))
    assert catalog.status_code == 200
    assert b"django.gettext = function" in catalog.content
    rec = RecommendationFactory()
    client.force_login(security_user)
    html = client.get(reverse("admin:recommendations_recommendationexception_options", args=[rec.pk])).content.decode()
    catalog_at = html.index(f'<script src="{reverse("javascript-catalog")}"></script>')
    assert catalog_at < html.index("calendar.js")  # the calendar calls gettext() as it loads


def test_runserver_prints_the_sign_in_address_and_demo_users_after_its_own_lines():
    user = UserFactory(username="it")
    user.groups.add(Group.objects.get(name="IT staff"))
    out = io.StringIO()
    command = Runserver(stdout=out)
    command.addr, command.protocol, command._raw_ipv6 = "127.0.0.1", "http", False

    command.on_bind("8017")

    text = out.getvalue()
    assert text.index("Quit the server with") < text.index("Sign in at http://127.0.0.1:8017/admin/")
    lines = text.rstrip().splitlines()
    assert lines[-2] == "Demo users:"
    assert lines[-1].split() == [
        "it",
        "password",
        "it-demo-2026",
        "IT",
        "staff",
        "(sees",
        "only",
        "Servers",
        "and",
        "Workstations)",
    ]


def test_runserver_prints_no_demo_users_where_there_are_none():
    out = io.StringIO()
    command = Runserver(stdout=out)
    command.addr, command.protocol, command._raw_ipv6 = "127.0.0.1", "http", False
    command.on_bind("8017")
    assert out.getvalue().rstrip().endswith("Sign in at http://127.0.0.1:8017/admin/")
