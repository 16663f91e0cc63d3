"""The security recommendations changelist: query count independent of the page size."""

import pytest
from django.urls import reverse

from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("who", ["security_user", "it_user"])
def test_recommendation_changelist_queries_do_not_grow_with_rows(
    client, request, security_user, it_user, django_assert_max_num_queries, rows, who
):
    servers = DeviceGroupFactory(name="Servers")
    for index in range(rows):
        rec = RecommendationFactory(public_exploit=index % 2 == 0)
        expose(rec, servers, 1)
    make_activity(user=security_user, recommendation=rec, groups=[servers])
    client.force_login(request.getfixturevalue(who))

    with django_assert_max_num_queries(10):
        response = client.get(reverse("admin:recommendations_securityrecommendation_changelist"))

    assert response.status_code == 200
    result = response.context["cl"].result_list
    assert len(result) == rows
    assert sum(r.open_activities for r in result) == 1


def test_recommendation_page_renders_read_only_for_it_staff(client, it_user):
    rec = RecommendationFactory(name="Update Viewer")
    client.force_login(it_user)
    response = client.get(reverse("admin:recommendations_securityrecommendation_change", args=[rec.pk]))
    assert response.status_code == 200
    assert "Update Viewer" in response.content.decode()
    assert 'name="_save"' not in response.content.decode()
