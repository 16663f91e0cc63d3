"""Admin imports of Microsoft's published shapes, and of hostile JSON (a form error, never a 500)."""

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from recommendations.models import Device, Exposure
from tests.recommendations.admin.test_imports import JSON, confirm, upload
from tests.recommendations.factories import RecommendationFactory, UserFactory

DEFENDER = Path(__file__).resolve().parents[2] / "data" / "defender"


@pytest.fixture
def security_client(client, db):
    user = UserFactory(username="secadmin", email="secadmin@example.com")
    user.groups.add(Group.objects.get(name="Security staff"))
    client.force_login(user)
    return client


def test_a_single_machine_entity_imports_with_its_fields(security_client):
    content = (DEFENDER / "get-machine-by-id.json").read_bytes()
    preview = upload(security_client, "admin:recommendations_device_import", content, "machine.json", JSON)
    assert preview.context["result"].totals["new"] == 1
    confirm(security_client, preview, "admin:recommendations_device_process_import")

    device = Device.objects.get()
    assert (device.machine_id, device.device_group.name) == ("1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "The-A-Team")
    assert (device.health_status, device.risk_score, device.exposure_level) == ("Active", "Low", "Medium")
    assert device.machine_tags == ["test tag 1", "test tag 2"]


def test_the_configuration_assessment_imports_as_an_exposure_snapshot(security_client):
    rows = json.loads((DEFENDER / "secure-configurations-assessment-by-machine.json").read_text())["value"]
    for reference in {row["recommendationReference"] for row in rows}:
        RecommendationFactory(external_id=reference, remediation_type="ConfigurationChange")
    content = (DEFENDER / "secure-configurations-assessment-by-machine.json").read_bytes()

    preview = upload(security_client, "admin:recommendations_exposure_import", content, "config.json", JSON)
    assert preview.context["result"].totals["new"] == 1  # one applicable, non-compliant row
    response = confirm(security_client, preview, "admin:recommendations_exposure_process_import")

    assert list(Exposure.objects.values_list("recommendation__external_id", "device__machine_id")) == [
        ("sca-_-scid-20000", "0002a1be533813b9a8c6de739785365bce7910")
    ]
    assert Device.objects.count() == 5
    messages = [str(m) for m in response.wsgi_request._messages]
    assert "Import finished: created 7, updated 0, remediated 0, re-exposed 0, rejected 0." in messages


def test_json_lines_import_in_the_admin(security_client):
    lines = "\n".join(
        json.dumps({"id": machine, "computerDnsName": f"{machine[:4]}.corp", "rbacGroupName": "None"})
        for machine in ("1" * 40, "2" * 40)
    )
    preview = upload(security_client, "admin:recommendations_device_import", lines.encode(), "machines.json", JSON)
    confirm(security_client, preview, "admin:recommendations_device_process_import")
    assert set(Device.objects.values_list("computer_dns_name", "device_group__name")) == {
        ("1111.corp", "UnassignedGroup"),
        ("2222.corp", "UnassignedGroup"),
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "The JSON is nested too deeply to be read."),
        (b'{"value": [{"id": ' + b"9" * 5000 + b"}]}", "Not valid JSON"),
    ],
)
def test_hostile_json_is_a_form_error_and_imports_nothing(security_client, content, message):
    preview = upload(security_client, "admin:recommendations_device_import", content, "machines.json", JSON)
    assert preview.status_code == 200
    assert message in " ".join(preview.context["form"].errors["import_file"])
    assert not Device.objects.exists()


@pytest.mark.parametrize(
    ("name", "problem"),
    [("pc\\u0000", "a NUL character"), ("pc\\ud800", "an unpaired surrogate (U+D800)")],
)
def test_unstorable_text_in_a_machine_is_listed_and_nothing_is_imported(security_client, name, problem):
    content = ('{"value": [{"id": "' + "a" * 40 + '", "computerDnsName": "' + name + '"}]}').encode()
    preview = upload(security_client, "admin:recommendations_device_import", content, "machines.json", JSON)
    errors = [" ".join(row.error.messages) for row in preview.context["result"].invalid_rows]
    assert errors == [f"record 1: field 'computerDnsName' contains {problem}, which cannot be stored"]
    assert not Device.objects.exists()
