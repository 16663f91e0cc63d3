"""The admin's exception pages: 'Exception options', the changelist, the exception page and cancel."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from recommendations.models import ExceptionDeviceGroup, RecommendationException
from recommendations.services import exception_cancel, exception_create
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
NEXT_MONTH = TODAY + dt.timedelta(days=30)
CHANGELIST = "/admin/recommendations/recommendationexception/"
RECOMMENDATIONS = "/admin/recommendations/securityrecommendation/"


def options_url(rec):
    return reverse("admin:recommendations_recommendationexception_options", args=[rec.pk])


def page_url(exception):
    return reverse("admin:recommendations_recommendationexception_change", args=[exception.pk])


def cancel_url(exception):
    return reverse("admin:recommendations_recommendationexception_cancel", args=[exception.pk])


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def exposed():
    rec = RecommendationFactory(name="Update Contoso Viewer")
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    return rec, servers, laptops


def file(user, rec, groups=(), scope="device_groups", **kwargs):
    kwargs.setdefault("expires_on", NEXT_MONTH)
    return exception_create(
        user=user,
        recommendation=rec,
        justification="third_party_control",  # lowers the count after exceptions
        context="Accepted by the CISO.",
        scope=scope,
        device_groups=groups,
        **kwargs,
    )


def form_data(**overrides):
    data = {
        "justification": "third_party_control",
        "context": "EDR blocks the exploit.",
        "expires_on": NEXT_MONTH.isoformat(),
        "scope": "device_groups",
        "device_groups": [],
    }
    data.update(overrides)
    return data


def test_recommendation_page_offers_exception_options_beside_remediation_options(security_user, it_user, exposed):
    rec, servers, _ = exposed
    file(security_user, rec, [servers])
    page = login(security_user).get(reverse("admin:recommendations_securityrecommendation_change", args=[rec.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="exception-options"' in html
    assert 'id="remediation-options"' in html
    assert "Partial exception: 5 exposed devices, 2 after exceptions." in html

    it_page = login(it_user).get(reverse("admin:recommendations_securityrecommendation_change", args=[rec.pk]))
    assert it_page.status_code == 200
    assert 'id="exception-options"' not in it_page.content.decode()
    assert login(it_user).get(options_url(rec)).status_code == 403


def test_options_form_lists_only_visible_groups_without_exception_and_global_only_for_superusers(
    security_user, superuser, exposed
):
    rec, servers, laptops = exposed
    file(security_user, rec, [servers])

    form = login(security_user).get(options_url(rec)).context["form"]
    assert list(form.fields["device_groups"].queryset) == [laptops]
    assert [value for value, _ in form.fields["scope"].choices] == ["device_groups"]

    su_form = login(superuser).get(options_url(rec)).context["form"]
    assert [value for value, _ in su_form.fields["scope"].choices] == ["global", "device_groups"]


def test_options_form_for_a_scoped_user_lists_only_their_groups(it_group, exposed):
    rec, _, _ = exposed
    handlers = Group.objects.create(name="Scoped handlers")
    handlers.permissions.add(
        Permission.objects.get(codename="handle_exceptions"),
        Permission.objects.get(codename="view_securityrecommendation"),
    )
    user = UserFactory(username="scoped")
    user.groups.add(handlers, it_group)
    form = login(user).get(options_url(rec)).context["form"]
    assert sorted(g.name for g in form.fields["device_groups"].queryset) == ["Servers", "Workstations"]


def test_filing_from_the_form_creates_the_exception_and_shows_its_page(security_user, exposed):
    rec, servers, laptops = exposed
    client = login(security_user)
    response = client.post(options_url(rec), form_data(device_groups=[laptops.pk]))
    exception = RecommendationException.objects.get()
    assert response.status_code == 302
    assert response["Location"] == page_url(exception)
    assert list(exception.device_groups.all()) == [laptops]
    assert exception.created_by == security_user

    html = client.get(page_url(exception)).content.decode()
    assert "Laptops" in html
    assert "Update Contoso Viewer" in html
    assert "EDR blocks the exploit." in html


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"context": ""}, "context"),
        ({"expires_on": TODAY.isoformat()}, "expires_on"),
        ({"device_groups": []}, "device_groups"),
        ({"scope": "global"}, "scope"),
    ],
)
def test_form_errors_show_on_the_field_and_create_nothing(security_user, exposed, overrides, field):
    rec, servers, _ = exposed
    overrides.setdefault("device_groups", [servers.pk])
    response = login(security_user).post(options_url(rec), form_data(**overrides))
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert RecommendationException.objects.count() == 0


def test_superuser_files_a_global_exception_from_the_form(superuser, exposed):
    rec, _, _ = exposed
    response = login(superuser).post(options_url(rec), form_data(scope="global"))
    assert response.status_code == 302
    assert RecommendationException.objects.get().scope == "global"


def test_changelist_filters_and_scoping(security_user, superuser, it_user, exposed, django_assert_max_num_queries):
    rec, servers, laptops = exposed
    soon = file(security_user, rec, [servers], expires_on=TODAY + dt.timedelta(days=10))
    later = file(security_user, rec, [laptops], expires_on=TODAY + dt.timedelta(days=90))
    other = RecommendationFactory()
    for i in range(5):
        file(security_user, other, [DeviceGroupFactory(name=f"G{i}")])
    RecommendationException.objects.filter(pk=later.pk).update(justification="planned_remediation")

    client = login(security_user)
    with django_assert_max_num_queries(12):
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 7

    expiring = client.get(CHANGELIST, {"expiring": "30"}).context["cl"].result_list
    assert soon in expiring
    assert later not in expiring
    assert list(client.get(CHANGELIST, {"justification": "planned_remediation"}).context["cl"].result_list) == [later]
    assert client.get(CHANGELIST, {"status__exact": "canceled"}).context["cl"].result_count == 0
    assert client.get(CHANGELIST, {"scope__exact": "global"}).context["cl"].result_count == 0

    # IT staff see only the exceptions touching Servers or Workstations.
    assert list(login(it_user).get(CHANGELIST).context["cl"].result_list) == [soon]
    assert login(it_user).get(page_url(later)).status_code == 404
    assert login(it_user).get(page_url(soon)).status_code == 200


def test_cancel_one_group_then_all_from_the_page(security_user, exposed):
    rec, servers, laptops = exposed
    exception = file(security_user, rec, [servers, laptops])
    client = login(security_user)
    page = client.get(page_url(exception)).content.decode()
    assert f'id="cancel-group-{servers.pk}"' in page
    assert 'id="cancel-exception"' in page

    response = client.post(cancel_url(exception), {"device_group": servers.pk})
    assert response.status_code == 302
    link = ExceptionDeviceGroup.objects.get(exception=exception, device_group=servers)
    assert (link.status, link.canceled_by) == ("canceled", security_user)
    exception.refresh_from_db()
    assert exception.status == "active"

    client.post(cancel_url(exception))
    exception.refresh_from_db()
    assert exception.status == "canceled"
    html = client.get(page_url(exception)).content.decode()
    assert "Canceled for a device group" in html
    assert 'id="cancel-exception"' not in html


def test_cancel_asks_for_confirmation_over_get_and_needs_the_permission(security_user, it_user, exposed):
    rec, servers, _ = exposed
    exception = file(security_user, rec, [servers])
    confirmation = login(security_user).get(cancel_url(exception))
    assert confirmation.status_code == 200
    assert "Yes, cancel it" in confirmation.content.decode()
    exception.refresh_from_db()
    assert exception.status == "active"  # nothing changes before the confirmation
    assert login(it_user).get(cancel_url(exception)).status_code == 403
    assert login(it_user).post(cancel_url(exception)).status_code == 403
    assert 'id="cancel-exception"' not in login(it_user).get(page_url(exception)).content.decode()
    exception.refresh_from_db()
    assert exception.status == "active"


def test_cancel_is_csrf_protected(security_user, exposed):
    rec, servers, _ = exposed
    exception = file(security_user, rec, [servers])
    client = Client(enforce_csrf_checks=True)
    client.force_login(security_user)
    assert client.post(cancel_url(exception)).status_code == 403
    exception.refresh_from_db()
    assert exception.status == "active"


def test_suspended_group_exception_says_so(security_user, superuser, exposed):
    rec, servers, _ = exposed
    group_exc = file(security_user, rec, [servers])
    file(superuser, rec, scope="global")
    html = login(security_user).get(page_url(group_exc)).content.decode()
    assert "suspended while a global exception is active" in html


def test_recommendations_changelist_shows_and_filters_by_exception_state(
    security_user, superuser, exposed, django_assert_max_num_queries
):
    rec, servers, _ = exposed
    file(security_user, rec, [servers])
    full = RecommendationFactory(name="Fully excepted")
    expose(full, servers, 1)
    file(superuser, full, scope="global")
    plain = RecommendationFactory(name="Nothing excepted")
    expose(plain, servers, 4)
    laptops = DeviceGroupFactory(name="Laptops")
    for i in range(8):  # more rows must not mean more queries
        extra = RecommendationFactory(name=f"Extra {i}")
        expose(extra, servers, 1)
        expose(extra, laptops, 1)
        file(security_user, extra, [laptops])

    client = login(security_user)
    with django_assert_max_num_queries(12):
        response = client.get(RECOMMENDATIONS)
    html = response.content.decode()
    assert "Partial exception" in html
    assert "Exposed after exceptions" in html

    def names(state):
        return {r.name for r in client.get(RECOMMENDATIONS, {"exception_state": state}).context["cl"].result_list}

    assert names("partial") == {"Update Contoso Viewer", *(f"Extra {i}" for i in range(8))}
    assert names("exception") == {"Fully excepted"}
    assert names("none") == {"Nothing excepted"}


def test_dashboard_card_counts_active_exceptions(security_user, exposed):
    rec, servers, laptops = exposed
    file(security_user, rec, [servers])
    canceled = file(security_user, rec, [laptops])
    exception_cancel(exception=canceled, user=security_user)
    html = login(security_user).get("/admin/").content.decode()
    assert "1 active exception" in html


def test_cancel_records_the_optional_note_in_the_history(security_user, exposed):
    rec, servers, _ = exposed
    exception = file(security_user, rec, [servers])
    client = login(security_user)

    page = client.get(cancel_url(exception) + f"?device_group={servers.pk}").content.decode()
    assert f'name="device_group" value="{servers.pk}"' in page
    client.post(cancel_url(exception), {"device_group": servers.pk, "notes": "Vendor patch is out"})

    exception.refresh_from_db()
    assert exception.status == "canceled"
    notes = list(exception.events.values_list("kind", "notes"))
    assert ("group_canceled", "Vendor patch is out") in notes
    assert "Vendor patch is out" in client.get(page_url(exception)).content.decode()
