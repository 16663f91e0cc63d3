"""Hostile or broken files get `import_tvm`'s one-line error, never a traceback, and change nothing."""

import gzip
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from recommendations.models import Device, DeviceGroup, Exposure, SecurityRecommendation
from tests.recommendations.factories import DeviceFactory, ExposureFactory, RecommendationFactory

pytestmark = pytest.mark.django_db

DEEP = 20_000


def state():
    return (
        list(DeviceGroup.objects.order_by("name").values_list("name", "description")),
        list(Device.objects.order_by("machine_id").values()),
        list(SecurityRecommendation.objects.order_by("external_id").values()),
        list(Exposure.objects.order_by("pk").values()),
    )


@pytest.fixture
def inventory():
    device = DeviceFactory(machine_id="c" * 40)
    recommendation = RecommendationFactory(external_id="va-_-google-_-chrome")
    ExposureFactory(recommendation=recommendation, device=device)
    return state()


HOSTILE = {
    "array nested 20,000 deep": "[" * DEEP + "]" * DEEP,
    "object nested 20,000 deep": '{"a":' * DEEP + "1" + "}" * DEEP,
    "a record nested 20,000 deep": '{"value": [{"id": "x", "tags": ' + "[" * DEEP + "]" * DEEP + "}]}",
    "JSON lines nested 20,000 deep": '{"id": "x"}\n{"id": ' + "[" * DEEP + "]" * DEEP + "}\n",
    "a raw NUL byte": '{"value": [{"id": "a\x00b", "recommendationName": "x"}]}',
    "an escaped NUL": '{"value": [{"id": "a\\u0000b", "recommendationName": "x", "computerDnsName": "n"}]}',
    "a NUL in a name": '{"value": [{"id": "' + "d" * 40 + '", "recommendationName": "x\\u0000", '
    '"computerDnsName": "pc\\u0000"}]}',
    "a lone surrogate": '{"value": [{"id": "' + "d" * 40 + '", "recommendationName": "\\ud800", '
    '"computerDnsName": "\\udfff"}]}',
    "a lone surrogate in a list": '{"value": [{"id": "' + "d" * 40 + '", "recommendationName": "x", '
    '"machineTags": ["\\ud83d"], "tags": ["\\ud83d"]}]}',
    "a number of 5,000 digits": '{"value": [{"id": ' + "9" * 5000 + "}]}",
    "an array of numbers": "[1, 2, 3]",
    "a bare string": '"value"',
    "not UTF-8": b'{"value": [{"id": "\xff\xfe"}]}',
}


@pytest.mark.parametrize(
    "options",
    [
        ["--recommendations"],
        ["--machines"],
        ["--exposures"],
        ["--recommendation", "va-_-google-_-chrome", "--machine-references"],
    ],
    ids=["recommendations", "machines", "exposures", "machine-references"],
)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_json_gets_one_line_and_changes_nothing(inventory, tmp_path, options, name):
    if name == "a lone surrogate in a list" and "--machine-references" in options:
        pytest.skip("machineReferences read no list field: the record is a good one there")
    content = HOSTILE[name]
    path = tmp_path / "hostile.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))

    with pytest.raises(CommandError) as caught:
        call_command("import_tvm", *options, str(path), "--quiet", stdout=StringIO(), stderr=StringIO())

    message = str(caught.value)
    assert message.startswith("Nothing was imported:")
    assert "\n" not in message
    message.encode("utf-8")  # printable: no lone surrogate is echoed back
    assert state() == inventory


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"value": [{"id": "x"}]}', "not a readable gzip file"),  # truncated below
        (b"\x1f\x8bnot really gzip at all", "not a readable gzip file"),
    ],
)
def test_a_broken_gzip_file_gets_one_line(inventory, tmp_path, content, expected):
    path = tmp_path / "export.json.gz"
    data = gzip.compress(content)[:-12] if content.startswith(b"{") else content
    path.write_bytes(data)
    with pytest.raises(CommandError, match=expected):
        call_command("import_tvm", "--exposures", str(path), "--quiet", stdout=StringIO(), stderr=StringIO())
    assert state() == inventory


def test_a_nul_byte_in_a_csv_of_pairs_is_a_problem_of_its_row(inventory, tmp_path):
    path = tmp_path / "exposures.csv"
    path.write_bytes(b"recommendationId,machineId\nva-_-google-_-chrome," + b"c" * 39 + b"\x00\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_tvm", "--exposures", str(path), "--quiet", stdout=StringIO(), stderr=StringIO())
    expected = "exposures.csv record 1 (line 2): field 'machineId' contains a NUL character, which cannot be stored"
    assert expected in str(caught.value)
    assert state() == inventory


def test_a_nul_in_a_csv_of_machines_is_a_problem_of_its_row(inventory, tmp_path):
    path = tmp_path / "machines.csv"
    path.write_bytes(b"id,computerDnsName\n" + b"e" * 40 + b",pc\x00one\n")
    with pytest.raises(CommandError, match="field 'computerDnsName' contains a NUL character, which cannot be stored"):
        call_command("import_tvm", "--machines", str(path), "--quiet", stdout=StringIO(), stderr=StringIO())
    assert state() == inventory


def test_the_documentation_text_as_published_is_refused_with_where_it_breaks(inventory, tmp_path):
    """Two alternative strings side by side and `...`: Microsoft's pages, not the API's answers."""
    published = (
        '{\n    "@odata.context": "https://api.security.microsoft.com/api/$metadata#Machines",\n'
        '    "value": [\n        {\n            "id": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",\n'
        '            "osPlatform": "Windows10" "Windows11",\n            "version": "1709"\n        }\n'
        "        ...\n    ]\n}\n"
    )
    path = tmp_path / "machines.json"
    path.write_text(published)
    with pytest.raises(CommandError) as caught:
        call_command("import_tvm", "--machines", str(path), "--quiet", stdout=StringIO(), stderr=StringIO())
    assert str(caught.value) == (
        "Nothing was imported: 1 problem: machines.json: not valid JSON (line 6, column 39): Expecting ',' delimiter"
    )
    assert state() == inventory


def test_hostile_lists_in_a_valid_file_are_problems_of_their_record(inventory, tmp_path):
    path = tmp_path / "machines.json"
    path.write_text(
        json.dumps({"value": [{"id": "f" * 40, "machineTags": [{"a": 1}]}, {"id": "0" * 40, "machineTags": 7}]})
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_tvm", "--machines", str(path), "--quiet", stdout=StringIO(), stderr=StringIO())
    message = str(caught.value)
    assert "record 1: wrong type for 'machineTags': expected a list of text, found an object" in message
    assert "record 2: wrong type for 'machineTags': expected a list, got a number" in message
    assert state() == inventory
