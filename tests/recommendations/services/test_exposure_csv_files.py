"""CSV files of exposure pairs: what a user sees is the same whichever way the file is read.

On PostgreSQL a clean file is copied into the staging table as it is; anything else (spaces,
unknown ids, repeated pairs, malformed rows) sends it back to the Python reader, which words
every problem with its record and line. These tests run on both databases and expect the same.
"""

import datetime as dt
import gzip
import io
import json
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from recommendations.imports.readers import ExposureCsvFile
from recommendations.imports.records import ImportRejected, Problems
from recommendations.models import Device, Exposure, RecommendationGroupExposure, SecurityRecommendation
from recommendations.services import bulk, exposure_counters_check, import_tvm_files, snapshots

DATA = Path(__file__).resolve().parents[2] / "data"
CHROME = "va-_-google-_-chrome"


@pytest.fixture
def sample(db):
    import_tvm_files(
        recommendations=DATA / "mde_recommendations.json",
        machines=DATA / "mde_machines.json",
        exposures=DATA / "mde_exposures.csv",
    )


def sample_pairs() -> list[tuple[str, str]]:
    lines = (DATA / "mde_exposures.csv").read_text().splitlines()[1:]
    return [tuple(line.split(",")) for line in lines]


def open_pairs() -> set[tuple[str, str]]:
    return set(
        Exposure.objects.filter(remediated_at__isnull=True).values_list(
            "recommendation__external_id", "device__machine_id"
        )
    )


def csv_file(tmp_path, text: str, name: str = "exposures.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def stored():
    return list(Exposure.objects.order_by("pk").values())


def test_a_clean_file_stores_exactly_its_pairs(sample):
    assert open_pairs() == set(sample_pairs())
    assert Exposure.objects.count() == 15


def test_a_second_file_remediates_the_missing_pairs_and_brings_back_the_returning_ones(sample, tmp_path):
    pairs = sample_pairs()
    # Three devices fixed for Chrome (still named by the file, so covered by the snapshot).
    dropped = [p for p in pairs if p[0] == CHROME][1:4]
    kept = [p for p in pairs if p not in dropped]
    lines = "\n".join(",".join(p) for p in kept)

    summary = import_tvm_files(exposures=csv_file(tmp_path, f"recommendationId,machineId\n{lines}\n"))

    assert (summary["exposures"]["updated"], summary["remediated"], summary["exposures"]["created"]) == (12, 3, 0)
    assert open_pairs() == set(kept)
    # The first file again: the three are exposed again, nothing is created twice.
    again = import_tvm_files(exposures=DATA / "mde_exposures.csv")
    assert (again["re_exposed"], again["exposures"]["created"]) == (3, 0)
    assert open_pairs() == set(pairs)
    assert Exposure.objects.count() == 15
    assert not set(dropped) - open_pairs()


def test_a_pair_repeated_among_new_pairs_is_reported_with_its_line_and_nothing_is_stored(sample, tmp_path):
    device = Device.objects.exclude(
        machine_id__in=Exposure.objects.filter(recommendation__external_id=CHROME).values("device__machine_id")
    ).first()
    before = stored()
    path = csv_file(
        tmp_path, f"recommendationId,machineId\n{CHROME},{device.machine_id}\n{CHROME},{device.machine_id}\n"
    )

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(exposures=path)

    assert [str(p) for p in caught.value.problems.items] == [
        f"exposures.csv record 2 (line 3): duplicate pair '{CHROME}', '{device.machine_id}' (first at record 1)"
    ]
    assert stored() == before


def test_a_stored_pair_given_twice_is_reported(sample, tmp_path):
    rec, machine = sample_pairs()[0]
    before = stored()

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(
            exposures=csv_file(tmp_path, f"recommendationId,machineId\n{rec},{machine}\n{rec},{machine}\n")
        )

    assert [str(p) for p in caught.value.problems.items] == [
        f"exposures.csv record 2 (line 3): duplicate pair '{rec}', '{machine}' (first at record 1)"
    ]
    assert stored() == before


def test_unknown_ids_and_malformed_rows_are_listed_by_line(sample, tmp_path):
    rec, machine = sample_pairs()[0]
    before = stored()
    text = f'recommendationId,machineId\n{rec},{machine}\nva-_-nobody-_-nothing,{machine}\n{rec},"a\nb",extra\n'

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(exposures=csv_file(tmp_path, text))

    assert [str(p) for p in caught.value.problems.items] == [
        "exposures.csv record 3 (line 5): malformed row: expected 2 columns, found 3",
        "exposures.csv record 2 (line 3): unknown recommendation 'va-_-nobody-_-nothing'",
    ]
    assert stored() == before


def test_columns_in_the_other_order_and_values_with_spaces_read_as_the_python_reader_reads_them(db, tmp_path):
    import_tvm_files(recommendations=DATA / "mde_recommendations.json", machines=DATA / "mde_machines.json")
    pairs = sample_pairs()
    reversed_file = "machineId,recommendationId\n" + "\n".join(f"{m},{r}" for r, m in pairs[:5]) + "\n"
    import_tvm_files(exposures=csv_file(tmp_path, reversed_file, "reversed.csv"))
    assert open_pairs() == set(pairs[:5])

    spaced = "recommendationId,machineId\n" + "\n".join(f" {r} , {m}\r" for r, m in pairs) + "\n"
    summary = import_tvm_files(exposures=csv_file(tmp_path, spaced, "spaced.csv"))

    assert summary["exposures"]["created"] == 10
    assert open_pairs() == set(pairs)


def test_an_uploaded_file_is_read_from_its_start_again_when_the_copy_gives_way(db):
    import_tvm_files(recommendations=DATA / "mde_recommendations.json", machines=DATA / "mde_machines.json")
    pairs = sample_pairs()
    text = "recommendationId,machineId\n" + "\n".join(f"{r},{m}" for r, m in pairs[:-1])
    upload = io.BytesIO((text + f"\n{pairs[-1][0]} ,{pairs[-1][1]}\n").encode())  # one value with a space
    upload.name = "upload.csv"

    summary = import_tvm_files(exposures=upload)

    assert summary["exposures"]["created"] == 15
    assert open_pairs() == set(pairs)


@pytest.mark.parametrize(
    ("content", "columns"),
    [
        (b"recommendationId,machineId\nva-x,m1\n", ("rec_ext", "machine")),
        (b"\xef\xbb\xbfMachine ID,Recommendation ID\r\nm1,va-x\r\n", ("machine", "rec_ext")),
        (b"recommendationId,machineId,extra\nva-x,m1,1\n", None),
        (b"recommendationId,recommendation\nva-x,va-y\n", None),
        (b"recommendationId,machineId", None),  # no line end within the first 4 KB
        (gzip.compress(b"recommendationId,machineId\nva-x,m1\n"), None),
    ],
)
def test_only_a_plain_csv_of_the_two_columns_is_copied_as_it_is(content, columns):
    upload = io.BytesIO(content)
    assert ExposureCsvFile(upload, source="e", problems=Problems()).copy_columns() == columns
    assert (
        ExposureCsvFile(io.StringIO(content.decode("latin-1")), source="e", problems=Problems()).copy_columns() is None
    )


def test_a_line_holding_only_backslash_dot_does_not_end_the_file(sample, tmp_path):
    # PostgreSQL's COPY (before 18) reads `\.` alone on a line as the end of its data.
    pairs = sample_pairs()
    text = "recommendationId,machineId\n" + "\n".join(",".join(p) for p in pairs[:3]) + "\n\\.\n"
    text += "\n".join(",".join(p) for p in pairs[3:]) + "\n"
    before = stored()

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(exposures=csv_file(tmp_path, text))

    assert [str(p) for p in caught.value.problems.items] == [
        "exposures.csv record 4 (line 5): malformed row: expected 2 columns, found 1"
    ]
    assert stored() == before


def test_a_quote_inside_an_id_is_part_of_the_id(sample, tmp_path):
    # COPY would read `ab"c"` as `abc`; Python's csv module (and so the portal) keeps the quotes.
    rec, machine = sample_pairs()[0]
    quoted = f'{machine[:5]}"{machine[5:]}"'
    before = stored()

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(exposures=csv_file(tmp_path, f"recommendationId,machineId\n{rec},{quoted}\n"))

    assert [str(p) for p in caught.value.problems.items] == [
        f"exposures.csv record 1 (line 2): unknown device {quoted!r}"
    ]
    assert stored() == before


def test_a_repeated_new_pair_is_reported_beside_the_problems_of_another_file(sample, tmp_path):
    device = Device.objects.exclude(
        machine_id__in=Exposure.objects.filter(recommendation__external_id=CHROME).values("device__machine_id")
    ).first()
    machines = tmp_path / "machines.json"
    machines.write_text(json.dumps({"value": [{"id": "m" * 100}]}))
    path = csv_file(
        tmp_path, f"recommendationId,machineId\n{CHROME},{device.machine_id}\n{CHROME},{device.machine_id}\n"
    )

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(machines=machines, exposures=path)

    problems = [str(p) for p in caught.value.problems.items]
    assert problems[0].startswith("machines.json record 1: wrong type for 'id'")
    assert problems[1:] == [
        f"exposures.csv record 2 (line 3): duplicate pair '{CHROME}', '{device.machine_id}' (first at record 1)"
    ]


def first_import(exposures):
    """recommendations and machines of the sample, then `exposures` into an empty exposure table."""
    return import_tvm_files(
        recommendations=DATA / "mde_recommendations.json", machines=DATA / "mde_machines.json", exposures=exposures
    )


@pytest.fixture
def first_lane(monkeypatch):
    """How often a snapshot took the first import's lane (PostgreSQL's copied files only)."""
    taken = []
    original = snapshots._Snapshot._first_snapshot

    def spy(self):
        taken.append(True)
        return original(self)

    monkeypatch.setattr(snapshots._Snapshot, "_first_snapshot", spy)
    return taken


def test_a_first_import_stores_its_pairs_counted_and_reported_now(db, first_lane):
    summary = first_import(DATA / "mde_exposures.csv")

    if connection.vendor == "postgresql":  # one INSERT resolving the copied pairs: nothing to match
        assert first_lane == [True]
    assert summary["exposures"] == {"created": 15, "updated": 0, "remediated": 0, "re_exposed": 0, "recommendations": 6}
    assert open_pairs() == set(sample_pairs())
    chrome = SecurityRecommendation.objects.get(external_id=CHROME)
    assert chrome.exposed_devices == sum(1 for rec, _ in sample_pairs() if rec == CHROME)
    assert sum(RecommendationGroupExposure.objects.values_list("exposed_devices", flat=True)) == 15
    assert exposure_counters_check(repair=False)["drifted"] == 0
    reported = SecurityRecommendation.objects.filter(exposed_devices__gt=0).values_list(
        "exposures_reported_at", flat=True
    )
    assert all(timezone.now() - at < dt.timedelta(minutes=1) for at in reported)
    # The next snapshot matches them as stored pairs: one dropped is remediated, none is created twice.
    lines = "\n".join(",".join(p) for p in sample_pairs()[1:])
    again = import_tvm_files(exposures=csv_file_at(f"recommendationId,machineId\n{lines}\n"))
    assert (again["exposures"]["created"], again["exposures"]["updated"], again["remediated"]) == (0, 14, 1)


def csv_file_at(text: str) -> io.BytesIO:
    upload = io.BytesIO(text.encode())
    upload.name = "exposures.csv"
    return upload


def test_a_first_import_with_a_repeated_pair_and_an_unknown_device_lists_both_and_stores_nothing(db, first_lane):
    rec, machine = sample_pairs()[0]
    text = f"recommendationId,machineId\n{rec},{machine}\n{rec},{'0' * 40}\n{rec},{machine}\n"

    with pytest.raises(ImportRejected) as caught:
        first_import(csv_file_at(text))

    if connection.vendor == "postgresql":  # tried first, then read again by the Python reader
        assert first_lane == [True]
    assert [str(p) for p in caught.value.problems.items] == [
        f"exposures.csv record 2 (line 3): unknown device '{'0' * 40}'",
        f"exposures.csv record 3 (line 4): duplicate pair '{rec}', '{machine}' (first at record 1)",
    ]
    assert not Exposure.objects.exists()
    assert not Device.objects.exists()  # the machines of the same import went with it


@pytest.mark.parametrize("indexes_after", [False, True], ids=["indexes-kept", "indexes-built-after"])
def test_a_first_import_repeating_a_pair_is_refused_with_its_line(db, first_lane, monkeypatch, indexes_after):
    if indexes_after:  # as for a million pairs: the unique pair refuses the repeat when it is built
        monkeypatch.setattr(bulk, "BULK_MIN_ROWS", 1)
    rec, machine = sample_pairs()[0]
    with pytest.raises(ImportRejected) as caught:
        first_import(csv_file_at(f"recommendationId,machineId\n{rec},{machine}\n{rec},{machine}\n"))

    if connection.vendor == "postgresql":
        assert first_lane == [True]
    assert [str(p) for p in caught.value.problems.items] == [
        f"exposures.csv record 2 (line 3): duplicate pair '{rec}', '{machine}' (first at record 1)"
    ]
    assert not Exposure.objects.exists()
