"""`manage.py import_tvm` on Microsoft's own published example responses (tests/data/defender/)."""

import datetime as dt
import gzip
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommendations.models import UNASSIGNED_GROUP_NAME, Device, DeviceGroup, Exposure, SecurityRecommendation
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, ExposureFactory, RecommendationFactory

pytestmark = pytest.mark.django_db

DEFENDER = Path(__file__).resolve().parents[2] / "data" / "defender"
SOFTWARE = DEFENDER / "software-vulnerabilities-by-machine.json"
CONFIGURATION = DEFENDER / "secure-configurations-assessment-by-machine.json"


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_tvm", *args, "--quiet", stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1]


def rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["value"]


def open_exposures():
    exposed = Exposure.objects.filter(remediated_at__isnull=True)
    return set(exposed.values_list("recommendation__external_id", "device__machine_id"))


def recommendations_named_by(*paths: Path):
    """The recommendations an export refers to, as the portal would have them from /api/recommendations."""
    for reference in sorted({row["recommendationReference"] for path in paths for row in rows(path)}):
        configuration = reference.startswith("sca-")
        RecommendationFactory(
            external_id=reference,
            name=reference,
            remediation_type="ConfigurationChange" if configuration else "Update",
            category="SecurityControls" if configuration else "Application",
        )


# --- recommendations ---------------------------------------------------------------------


def test_the_published_recommendation_list_keeps_every_field_users_filter_on():
    assert run("--recommendations", str(DEFENDER / "list-recommendations.json")) == (
        "created 1, updated 0, remediated 0, re-exposed 0, rejected 0"
    )
    windows = SecurityRecommendation.objects.get()
    assert (windows.external_id, windows.name, windows.product_name) == (
        "va-_-microsoft-_-windows_10",
        "Update Windows 10",
        "windows_10",
    )
    assert (windows.category, windows.remediation_type, windows.weaknesses) == ("Application", "Update", 397)
    assert windows.public_exploit is True
    assert windows.exposure_impact == pytest.approx(7.674418604651163)
    assert windows.related_component == "Windows 10"
    assert windows.sub_category == ""
    assert windows.associated_threats == [
        "3098b8ef-23b1-46b3-aed4-499e1928f9ed",
        "40c189d5-0330-4654-a816-e48c2b7f9c4b",
        "4b0c9702-9b6c-4ca2-9d02-1556869f56f8",
        "e8fc2121-3cf3-4dd2-9ea0-87d7e1d2b29d",
        "94b6e94b-0c1d-4817-ac06-c3b8639be3ab",
    ]


def test_a_single_recommendation_entity_without_value_is_one_record():
    assert run("--recommendations", str(DEFENDER / "get-recommendation-by-id.json")).startswith("created 1,")
    chrome = SecurityRecommendation.objects.get()
    assert (chrome.external_id, chrome.name, chrome.vendor, chrome.weaknesses) == (
        "va-_-google-_-chrome",
        "Update Chrome",
        "google",
        38,
    )
    assert chrome.tags == ["internetFacing"]
    assert chrome.associated_threats == []


def test_the_recommendations_of_one_machine_import_like_the_list():
    assert run("--recommendations", str(DEFENDER / "list-machine-recommendations.json")).startswith("created 1,")
    git = SecurityRecommendation.objects.get()
    assert (git.external_id, git.recommended_version, git.related_component) == (
        "va-_-git-scm-_-git",
        "2.24.1.2",
        "Git",
    )


@pytest.mark.parametrize("external_id", ["scid-2010", "sca-_-scid-2500"])
@pytest.mark.parametrize("remediation_type", [None, "Update"])
def test_configuration_recommendations_are_configuration_changes_whatever_remediation_type_says(
    tmp_path, external_id, remediation_type
):
    path = tmp_path / "recs.json"
    path.write_text(
        json.dumps(
            {
                "value": [
                    {
                        "id": external_id,
                        "recommendationName": "Block executable content from email client and webmail",
                        "recommendationCategory": "Security controls",
                        "subCategory": "Attack Surface Reduction",
                        "remediationType": remediation_type,
                    }
                ]
            }
        )
    )
    run("--recommendations", str(path))

    recommendation = SecurityRecommendation.objects.get()
    assert recommendation.remediation_type == "ConfigurationChange"
    assert recommendation.is_configuration
    assert recommendation.category == "SecurityControls"
    assert recommendation.sub_category == "Attack Surface Reduction"


# --- machines ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["list-machines.json", "get-machine-by-id.json"])
def test_published_machines_keep_the_device_fields_users_filter_on(name):
    assert run("--machines", str(DEFENDER / name)) == "created 2, updated 0, remediated 0, re-exposed 0, rejected 0"

    device = Device.objects.get()  # and its device group: 2 created
    assert device.machine_id == "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
    assert device.computer_dns_name == "mymachine1.contoso.com"
    assert device.device_group.name == "The-A-Team"
    assert (device.os_platform, device.os_version) == ("Windows10", "1709")
    assert (device.health_status, device.risk_score, device.exposure_level) == ("Active", "Low", "Medium")
    assert device.machine_tags == ["test tag 1", "test tag 2"]
    assert device.last_ip_address == "172.17.230.209"
    assert device.aad_device_id == "80fe8ff8-2624-418e-9591-41f0491218f9"
    # Seven fractional digits: the first six are kept.
    assert device.first_seen == dt.datetime(2018, 8, 2, 14, 55, 3, 779185, tzinfo=dt.UTC)
    assert device.last_seen == device.first_seen


def test_the_list_and_the_single_machine_are_the_same_device():
    run("--machines", str(DEFENDER / "list-machines.json"))
    assert run("--machines", str(DEFENDER / "get-machine-by-id.json")).startswith("created 0, updated 0,")
    assert Device.objects.count() == 1


@pytest.mark.parametrize("group", ["Unassigned", "None", None, "", "  "])
def test_defender_names_for_no_group_mean_the_unassigned_group(tmp_path, group):
    path = tmp_path / "machines.json"
    path.write_text(json.dumps({"value": [{"id": "a" * 40, "rbacGroupName": group}]}))
    run("--machines", str(path))
    assert Device.objects.get().device_group.name == UNASSIGNED_GROUP_NAME
    assert list(DeviceGroup.objects.values_list("name", flat=True)) == [UNASSIGNED_GROUP_NAME]


def test_unknown_health_risk_and_exposure_values_are_stored_empty_with_a_warning(tmp_path):
    path = tmp_path / "machines.json"
    path.write_text(
        json.dumps(
            {"value": [{"id": "b" * 40, "healthStatus": "Sleeping", "riskScore": "high", "exposureLevel": None}]}
        )
    )
    out, err = StringIO(), StringIO()
    call_command("import_tvm", "--machines", str(path), stdout=out, stderr=err)
    device = Device.objects.get()
    assert (device.health_status, device.risk_score, device.exposure_level) == ("", "High", "")
    assert "unknown healthStatus 'Sleeping', stored as empty" in err.getvalue()


# --- machineReferences ---------------------------------------------------------------------


def test_machine_references_are_a_snapshot_of_one_recommendation_and_upsert_their_devices():
    run("--recommendations", str(DEFENDER / "get-recommendation-by-id.json"))
    chrome = SecurityRecommendation.objects.get()
    gone = ExposureFactory(recommendation=chrome)  # exposed before, absent from the answer now

    line = run(
        "--machine-references",
        str(DEFENDER / "list-machine-references.json"),
        "--recommendation",
        "va-_-google-_-chrome",
    )

    # A device and its group, and one exposure; the device exposed before is remediated.
    assert line == "created 3, updated 0, remediated 1, re-exposed 0, rejected 0"
    device = Device.objects.get(machine_id="e058770379bc199a9c179ce52a23e16fd44fd2ee")
    assert (device.computer_dns_name, device.os_platform, device.device_group.name) == (
        "niw_pc",
        "Windows10",
        "GroupTwo",
    )
    assert open_exposures() == {("va-_-google-_-chrome", "e058770379bc199a9c179ce52a23e16fd44fd2ee")}
    gone.refresh_from_db()
    assert gone.remediated_at is not None
    chrome.refresh_from_db()
    assert chrome.exposed_devices == 1


def test_machine_references_need_their_recommendation(tmp_path):
    refs = str(DEFENDER / "list-machine-references.json")
    with pytest.raises(CommandError, match="go together"):
        run("--machine-references", refs)
    with pytest.raises(CommandError, match="unknown recommendation 'va-_-google-_-chrome'"):
        run("--machine-references", refs, "--recommendation", "va-_-google-_-chrome")
    assert not Device.objects.exists()


# --- the assessment exports --------------------------------------------------------------


def test_the_software_assessment_exposes_each_device_by_device_id_never_by_the_row_id():
    recommendations_named_by(SOFTWARE)

    # 5 devices, their group and 5 exposures
    assert run("--exposures", str(SOFTWARE)) == "created 11, updated 0, remediated 0, re-exposed 0, rejected 0"

    expected = {(row["recommendationReference"], row["deviceId"]) for row in rows(SOFTWARE)}
    assert open_exposures() == expected
    assert len(expected) == 5
    # The devices the export names, with the fields it gives (a group "hhh": 5 devices + 1 group).
    device = Device.objects.get(machine_id="00044f91234daf759492dbe6bd733b6a9c59ab4")  # 39 characters, as published
    assert device.computer_dns_name.startswith("ComputerPII_189663d45612eed224b2be2f5ea3142729e63f16a")
    assert (device.os_platform, device.os_version, device.device_group.name) == (
        "Windows10",
        "10.0.17763.1637",
        "hhh",
    )
    assert not Device.objects.filter(machine_id__contains="_").exists()  # no compound row id became a device


def test_the_configuration_assessment_exposes_only_applicable_non_compliant_rows():
    recommendations_named_by(CONFIGURATION)

    run("--exposures", str(CONFIGURATION))

    assert open_exposures() == {("sca-_-scid-20000", "0002a1be533813b9a8c6de739785365bce7910")}
    assert Device.objects.count() == 5  # every device the export names
    assert set(Device.objects.values_list("device_group__name", flat=True)) == {"hhh"}
    assert Device.objects.get(machine_id="0002a1be533813b9a8c6de739785365bce7910").os_version == "10.0"


def test_a_device_that_became_compliant_is_remediated_even_with_no_device_left_exposed(tmp_path):
    recommendations_named_by(CONFIGURATION)
    telnet = SecurityRecommendation.objects.get(external_id="sca-_-scid-10000")
    before = ExposureFactory(
        recommendation=telnet, device=DeviceFactory(machine_id="00013ee62c6b12345b10214e1801b217b50ab455c293d")
    )

    line = run("--exposures", str(CONFIGURATION))

    before.refresh_from_db()
    assert before.remediated_at is not None  # the row says compliant now
    assert "remediated 1" in line


def test_several_rows_of_one_device_and_software_are_one_exposure(tmp_path):
    base = rows(SOFTWARE)[0]
    cves = ["CVE-2021-21148", "CVE-2021-21166", None]
    many = [
        {**base, "id": f"{base['deviceId']}_edge_{version}_{cve}_", "cveId": cve, "softwareVersion": version}
        for cve in cves
        for version in ("10.0.17763.1637", "11.0.0.1")
    ]
    other = {**rows(SOFTWARE)[1]}
    path = tmp_path / "software.json"
    # Rows of one pair both together and far apart.
    path.write_text(json.dumps({"value": [*many[:3], other, *many[3:]]}))
    recommendations_named_by(SOFTWARE)

    line = run("--exposures", str(path))

    assert Exposure.objects.count() == 2
    assert open_exposures() == {
        ("va-_-microsoft-_-edge", base["deviceId"]),
        ("va-_-microsoft-_-.net_framework", other["deviceId"]),
    }
    assert line.startswith("created 5,")  # 2 devices, their group, 2 exposures
    assert run("--exposures", str(path)) == "created 0, updated 2, remediated 0, re-exposed 0, rejected 0"


@pytest.mark.parametrize("compressed", [False, True])
def test_the_export_files_json_lines_gzipped_or_not_import_like_the_json_response(tmp_path, compressed):
    recommendations_named_by(SOFTWARE, CONFIGURATION)
    lines = "\n".join(json.dumps(row) for row in rows(SOFTWARE)) + "\n"
    software = tmp_path / ("software.json.gz" if compressed else "software.json")
    software.write_bytes(gzip.compress(lines.encode()) if compressed else lines.encode())
    config_lines = "\n".join(json.dumps(row) for row in rows(CONFIGURATION))
    configuration = tmp_path / "part-00001.gz"  # the name says nothing: the content is sniffed
    configuration.write_bytes(gzip.compress(config_lines.encode()))

    run("--exposures", str(software), "--exposures", str(configuration))

    expected = {(row["recommendationReference"], row["deviceId"]) for row in rows(SOFTWARE)}
    assert open_exposures() == expected | {("sca-_-scid-20000", "0002a1be533813b9a8c6de739785365bce7910")}


def test_part_files_of_one_export_are_one_snapshot(tmp_path):
    """A device exposed in the second part file is not remediated by the first."""
    recommendations_named_by(SOFTWARE)
    first, second = rows(SOFTWARE)[:2], rows(SOFTWARE)[2:]
    paths = []
    for number, part in enumerate((first, second)):
        path = tmp_path / f"part-{number:05d}.json.gz"
        path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in part).encode()))
        paths += ["--exposures", str(path)]

    run(*paths)
    assert run(*paths).startswith("created 0, updated 5, remediated 0,")
    assert len(open_exposures()) == 5


def test_microsofts_published_examples_import_one_after_the_other(tmp_path):
    """The first hour: recommendations, machines, then the two assessment exports, as published.

    The exports name recommendations the published list does not hold (Edge, .NET, the onboarding
    configuration): they are created from their exposing rows, and a later recommendations import
    fills in their details.
    """
    run("--recommendations", str(DEFENDER / "list-recommendations.json"))
    run("--machines", str(DEFENDER / "list-machines.json"))

    software = run("--exposures", str(SOFTWARE))
    configuration = run("--exposures", str(CONFIGURATION))

    assert software.endswith("rejected 0")
    assert configuration.endswith("rejected 0")
    expected = {(row["recommendationReference"], row["deviceId"]) for row in rows(SOFTWARE)}
    assert open_exposures() == expected | {("sca-_-scid-20000", "0002a1be533813b9a8c6de739785365bce7910")}
    edge = SecurityRecommendation.objects.get(external_id="va-_-microsoft-_-edge")
    assert (edge.name, edge.product_name, edge.vendor, edge.remediation_type) == (
        "Update Microsoft Edge",
        "edge",
        "microsoft",
        "Update",
    )
    onboard = SecurityRecommendation.objects.get(external_id="sca-_-scid-20000")
    assert (onboard.name, onboard.remediation_type, onboard.category, onboard.sub_category) == (
        "Onboard devices to Microsoft Defender for Endpoint",
        "ConfigurationChange",
        "SecurityControls",  # the row's "Security controls"
        "Onboard Devices",
    )
    # Compliant or not applicable rows expose nothing, so they create nothing either.
    assert not SecurityRecommendation.objects.filter(external_id__in=["sca-_-scid-10000", "sca-_-scid-6093"]).exists()
    # The recommendations API, imported later, is the authority for the name.
    later = {"value": [{"id": "va-_-microsoft-_-edge", "recommendationName": "Update Microsoft Edge Chromium"}]}
    path = tmp_path / "later.json"
    path.write_text(json.dumps(later))
    run("--recommendations", str(path))
    edge.refresh_from_db()
    assert edge.name == "Update Microsoft Edge Chromium"


def test_the_command_says_which_recommendations_the_export_created():
    out, err = StringIO(), StringIO()
    call_command("import_tvm", "--exposures", str(SOFTWARE), stdout=out, stderr=err)
    assert "recommendation(s) named only by the export were created from its rows" in err.getvalue()


def test_an_export_naming_a_recommendation_a_user_may_not_add_changes_nothing(it_user):
    """An IT user's import may not add recommendations: the unknown ones are problems, nothing is stored."""
    RecommendationFactory(external_id="va-_-microsoft-_-edge")
    DeviceGroupFactory(name="hhh")
    with pytest.raises(CommandError) as caught:
        run("--exposures", str(SOFTWARE), "--user", "it")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Nothing was imported:")
    assert "unknown recommendation 'va-_-microsoft-_-.net_framework'" in message
    assert not Exposure.objects.exists()
    assert SecurityRecommendation.objects.count() == 1


def test_an_export_row_without_device_id_is_a_problem_even_with_a_row_id(tmp_path):
    row = {**rows(SOFTWARE)[0], "deviceId": None}
    path = tmp_path / "software.json"
    path.write_text(json.dumps({"value": [row]}))
    RecommendationFactory(external_id=row["recommendationReference"])
    with pytest.raises(CommandError, match="record 1: missing required field 'deviceId'"):
        run("--exposures", str(path))
    assert not Device.objects.exists()


def test_an_existing_device_keeps_its_name_when_an_export_row_says_null():
    group = DeviceGroupFactory(name="hhh")
    device = DeviceFactory(
        machine_id="0002a1be533813b9a8c6de739785365bce7910", computer_dns_name="kept.contoso.com", device_group=group
    )
    recommendations_named_by(CONFIGURATION)
    run("--exposures", str(CONFIGURATION))
    device.refresh_from_db()
    assert device.computer_dns_name == "kept.contoso.com"
    assert device.os_version == "10.0"


def test_naive_timestamps_are_utc_and_csv_lists_are_read(tmp_path):
    path = tmp_path / "machines.csv"
    path.write_text(
        "id,computerDnsName,firstSeen,lastSeen,machineTags,healthStatus\n"
        f'{"1" * 40},pc-1,2020-12-30 11:07:15,2020-12-30 14:17:26.8476880,"tier-1; vip",ImpairedCommunication\n'
        f'{"2" * 40},pc-2,,,"[""lab"", ""kiosk""]",\n'
    )
    run("--machines", str(path))
    one, two = Device.objects.order_by("machine_id")
    assert one.first_seen == dt.datetime(2020, 12, 30, 11, 7, 15, tzinfo=dt.UTC)
    assert one.last_seen == dt.datetime(2020, 12, 30, 14, 17, 26, 847688, tzinfo=dt.UTC)
    assert one.machine_tags == ["tier-1", "vip"]
    assert one.health_status == "ImpairedCommunication"
    assert (two.first_seen, two.machine_tags, two.health_status) == (None, ["lab", "kiosk"], "")
