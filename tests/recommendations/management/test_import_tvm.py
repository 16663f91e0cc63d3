"""`manage.py import_tvm` on Defender for Endpoint API JSON."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommendations.models import Device, DeviceGroup, Exposure, SecurityRecommendation

DATA = Path(__file__).resolve().parents[2] / "data"


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_tvm", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_imports_the_sample_and_prints_the_counts(db):
    out, _ = run(
        "--recommendations",
        str(DATA / "mde_recommendations.json"),
        "--machines",
        str(DATA / "mde_machines.json"),
        "--exposures",
        str(DATA / "mde_exposures.csv"),
        "--quiet",
    )
    # 6 recommendations + 4 device groups + 8 devices + 15 exposures
    assert out.strip().splitlines()[-1] == "created 33, updated 0, remediated 0, re-exposed 0, rejected 0"
    assert Exposure.objects.count() == 15

    out, _ = run("--exposures", str(DATA / "mde_exposures.json"), "--quiet")
    assert out.strip() == "created 0, updated 15, remediated 0, re-exposed 0, rejected 0"


def test_api_json_written_elsewhere_imports_every_record(db, tmp_path):
    """Field order, extra fields, nulls and types as the Defender API sends them."""
    recs = {
        "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Recommendations",
        "value": [
            {
                "exposedCriticalDevices": 0,
                "recommendationTags": ["EOS version"],
                "hasUnpatchableCve": False,
                "relatedComponent": "Adobe Reader",
                "nonProductivityImpactedAssets": 0,
                "exposedMachinesCount": 2,
                "totalMachineCount": 9,
                "exposureImpact": 1.3,
                "configScoreImpact": 0.0,
                "status": "Active",
                "remediationType": "Upgrade",
                "associatedThreats": [],
                "activeAlert": False,
                "publicExploit": False,
                "severityScore": 6.1,
                "subCategory": "",
                "recommendationCategory": "Application",
                "recommendedVersion": "24.1",
                "vendor": "adobe",
                "weaknesses": 17,
                "recommendationName": "Upgrade Adobe Acrobat Reader",
                "productName": "acrobat_reader",
                "id": "va-_-adobe-_-acrobat_reader",
            },
            {
                "id": "scid-91",
                "productName": None,
                "recommendationName": "Enable 'Require SMB signing'",
                "weaknesses": 0,
                "vendor": None,
                "recommendedVersion": None,
                "recommendationCategory": "Network",
                "subCategory": "SMB",
                "severityScore": 0,
                "publicExploit": False,
                "activeAlert": False,
                "associatedThreats": None,
                "remediationType": "ConfigurationChange",
                "status": "Exception",
                "configScoreImpact": 1.58,
                "exposureImpact": 0,
                "totalMachineCount": 9,
                "exposedMachinesCount": 1,
                "relatedComponent": "Network",
            },
        ],
    }
    machines = {
        "value": [
            {
                "id": "7b1a2c3d4e5f60718293a4b5c6d7e8f901234567",
                "computerDnsName": "pc-1.fabrikam.local",
                "firstSeen": "2025-01-01T00:00:00Z",
                "lastSeen": "2026-11-25T10:11:12.9Z",
                "osPlatform": "Windows11",
                "rbacGroupId": 7,
                "rbacGroupName": "Branch offices",
                "aadDeviceId": "0f0f0f0f-1111-2222-3333-444455556666",
                "machineTags": [],
                "ipAddresses": [{"ipAddress": "10.0.0.5", "type": "Ethernet"}],
            },
            {
                "id": "8c2b3d4e5f60718293a4b5c6d7e8f90123456789",
                "computerDnsName": None,
                "lastSeen": None,
                "osPlatform": "Linux",
                "rbacGroupName": "",
                "aadDeviceId": None,
            },
        ]
    }
    (tmp_path / "recs.json").write_text(json.dumps(recs))
    (tmp_path / "machines.json").write_text(json.dumps(machines))
    (tmp_path / "exposures.json").write_text(
        json.dumps(
            [
                {"recommendationId": "va-_-adobe-_-acrobat_reader", "machineId": machines["value"][0]["id"]},
                {"recommendationId": "va-_-adobe-_-acrobat_reader", "machineId": machines["value"][1]["id"]},
                {"recommendationId": "scid-91", "machineId": machines["value"][1]["id"]},
            ]
        )
    )

    out, _ = run(
        "--recommendations",
        str(tmp_path / "recs.json"),
        "--machines",
        str(tmp_path / "machines.json"),
        "--exposures",
        str(tmp_path / "exposures.json"),
        "--quiet",
    )

    assert out.strip() == "created 9, updated 0, remediated 0, re-exposed 0, rejected 0"
    reader = SecurityRecommendation.objects.get(external_id="va-_-adobe-_-acrobat_reader")
    assert (reader.remediation_type, reader.category, reader.weaknesses) == ("Upgrade", "Application", 17)
    assert reader.exposed_devices == 2
    smb = SecurityRecommendation.objects.get(external_id="scid-91")
    assert (smb.remediation_type, smb.category, smb.vendor) == ("ConfigurationChange", "Network", "")
    linux = Device.objects.get(machine_id=machines["value"][1]["id"])
    assert linux.device_group.name == "UnassignedGroup"
    assert linux.computer_dns_name == ""
    assert linux.last_seen is None
    assert Device.objects.get(computer_dns_name="pc-1.fabrikam.local").device_group.name == "Branch offices"


def test_bad_file_exits_non_zero_with_one_line_and_stores_nothing(db, tmp_path):
    (tmp_path / "machines.json").write_text(
        json.dumps(
            {
                "value": [
                    {"id": "1" * 40, "computerDnsName": "ok.corp"},
                    {"id": "1" * 40, "computerDnsName": "again.corp"},
                    {"computerDnsName": "no-id.corp", "lastSeen": 12},
                ]
            }
        )
    )
    with pytest.raises(CommandError) as caught:
        run("--machines", str(tmp_path / "machines.json"), "--quiet")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Nothing was imported: 3 problems:")
    assert "machines.json record 2: duplicate device id" in message
    assert "machines.json record 3: missing required field 'id'" in message
    assert "machines.json record 3: wrong type for 'lastSeen'" in message
    assert not Device.objects.exists()
    assert not DeviceGroup.objects.exists()


def test_missing_file_and_missing_options_are_errors(db, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run("--machines", str(tmp_path / "nope.json"))
    with pytest.raises(CommandError, match="Nothing to import"):
        run()


def test_progress_bar_and_warnings_unless_quiet(db, tmp_path):
    (tmp_path / "recs.json").write_text(
        json.dumps(
            {
                "value": [
                    {"id": "va-_-x-_-y", "recommendationName": "Update Y", "recommendationCategory": "Firmware"},
                ]
            }
        )
    )
    out, err = run("--recommendations", str(tmp_path / "recs.json"))
    assert "Importing" in err
    assert "unknown recommendationCategory 'Firmware', stored as Application" in err
    assert out.strip() == "created 1, updated 0, remediated 0, re-exposed 0, rejected 0"


def test_an_import_for_a_user_keeps_to_their_device_groups(it_user, tmp_path):
    from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory

    DeviceFactory(machine_id="m-laptop", device_group=DeviceGroupFactory(name="Laptops"))
    machines = tmp_path / "machines.json"
    machines.write_text(json.dumps({"value": [{"id": "m-laptop", "rbacGroupName": "Servers"}]}))

    with pytest.raises(CommandError) as exc:
        run("--machines", str(machines), "--user", "it", "--quiet")

    message = str(exc.value)
    assert "\n" not in message
    assert "device 'm-laptop' is outside your device groups" in message
    assert Device.objects.get(machine_id="m-laptop").device_group.name == "Laptops"
    # The operator, without --user, has full scope.
    run("--machines", str(machines), "--quiet")
    assert Device.objects.get(machine_id="m-laptop").device_group.name == "Servers"


def test_an_unknown_user_is_one_readable_line(db, tmp_path):
    machines = tmp_path / "machines.json"
    machines.write_text("[]")
    with pytest.raises(CommandError, match="^--user: no active user named 'ghost'.$"):
        run("--machines", str(machines), "--user", "ghost")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"value": [{"id": "m-1", "computerDnsName": "pc\\u0000one"}]}',
            "record 1: field 'computerDnsName' contains a NUL character, which cannot be stored",
        ),
        (
            '{"value": [{"id": "m-1", "computerDnsName": "pc\\ud800"}]}',
            "record 1: field 'computerDnsName' contains an unpaired surrogate (U+D800), which cannot be stored",
        ),
        ('{"value": [' + "[" * 50_000 + "]" * 50_000 + "]}", "the JSON is nested too deeply to be read"),
    ],
)
def test_text_no_database_can_store_is_one_readable_line(db, tmp_path, content, message):
    machines = tmp_path / "machines.json"
    machines.write_text(content)

    with pytest.raises(CommandError) as exc:
        run("--machines", str(machines), "--quiet")

    assert "\n" not in str(exc.value)
    assert message in str(exc.value)
    assert not Device.objects.exists()


def test_a_nul_byte_in_an_exposure_csv_is_refused(db, tmp_path):
    exposures = tmp_path / "exposures.csv"
    exposures.write_bytes(b"recommendationId,machineId\nva-x,m\x001\n")
    with pytest.raises(CommandError, match="NUL character"):
        run("--exposures", str(exposures), "--quiet")
    assert not Exposure.objects.exists()
