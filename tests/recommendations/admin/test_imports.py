"""Admin imports (django-import-export): preview, confirm, all or nothing, limits, background jobs."""

import io
import json
import zipfile

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from recommendations.models import Device, DeviceGroup, Exposure, ImportJob, SecurityRecommendation
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory, UserFactory

CSV, XLSX, JSON = "0", "1", "2"
DEVICE_IMPORT = "admin:recommendations_device_import"
DEVICE_PROCESS = "admin:recommendations_device_process_import"


@pytest.fixture
def security_client(client, db):
    user = UserFactory(username="secadmin", email="secadmin@example.com")
    user.groups.add(Group.objects.get(name="Security staff"))
    client.force_login(user)
    return client


def upload(client, url_name, content: bytes, name: str, fmt: str):
    return client.post(
        reverse(url_name),
        {"resource": "0", "format": fmt, "import_file": SimpleUploadedFile(name, content)},
    )


def confirm(client, preview, url_name):
    form = preview.context["confirm_form"]
    return client.post(reverse(url_name), {k: form.initial[k] for k in form.fields})


DEVICES_CSV = (
    "id,computerDnsName,osPlatform,rbacGroupName,aadDeviceId,lastSeen\n"
    f"{'a' * 40},pc-a.corp,Windows11,Servers,,2026-11-20T10:00:00Z\n"
    f"{'b' * 40},pc-b.corp,Windows10,,,\n"
).encode()


def test_preview_then_confirm_imports_devices(security_client):
    preview = upload(security_client, DEVICE_IMPORT, DEVICES_CSV, "devices.csv", CSV)
    assert preview.status_code == 200
    assert preview.context["confirm_form"] is not None
    assert preview.context["result"].totals["new"] == 2
    assert not Device.objects.exists()  # the preview is a dry run

    response = confirm(security_client, preview, DEVICE_PROCESS)
    assert response.status_code == 302
    assert set(Device.objects.values_list("computer_dns_name", "device_group__name")) == {
        ("pc-a.corp", "Servers"),
        ("pc-b.corp", "UnassignedGroup"),
    }
    messages = [str(m) for m in response.wsgi_request._messages]
    assert "Import finished: created 4, updated 0, remediated 0, re-exposed 0, rejected 0." in messages


def test_bad_rows_are_listed_with_their_line_and_nothing_is_imported(security_client):
    DeviceFactory(machine_id="c" * 40, computer_dns_name="kept.corp")
    content = (
        "id,computerDnsName,lastSeen\n"
        f"{'a' * 40},pc-a.corp,2026-11-20\n"
        f"{'a' * 40},pc-a-again.corp,\n"
        f"{'d' * 40},pc-d.corp,not a date\n"
        f"{'e' * 40},too,many,columns\n"
        ",no-id.corp,\n"
    ).encode()
    preview = upload(security_client, DEVICE_IMPORT, content, "devices.csv", CSV)

    assert preview.status_code == 200
    assert not preview.context.get("confirm_form")
    errors = [" ".join(row.error.messages) for row in preview.context["result"].invalid_rows]
    assert sorted(errors) == sorted(
        [
            f"line 3: duplicate device id '{'a' * 40}' (first at record 1)",
            "line 4: wrong type for 'lastSeen': expected a date and time (ISO 8601), got 'not a date'",
            "line 5: malformed row: expected 3 columns, found 4",
            "line 6: missing required field 'id'",
        ]
    )
    assert "line 5: malformed row: expected 3 columns, found 4" in preview.content.decode()
    assert list(Device.objects.values_list("computer_dns_name", flat=True)) == ["kept.corp"]


def test_json_export_shape_and_defender_response_both_import(security_client):
    payload = {"value": [{"id": "va-_-x-_-y", "recommendationName": "Update Y", "severityScore": 5}, "junk"]}
    preview = upload(
        security_client,
        "admin:recommendations_securityrecommendation_import",
        json.dumps(payload).encode(),
        "recs.json",
        JSON,
    )
    errors = [" ".join(row.error.messages) for row in preview.context["result"].invalid_rows]
    assert errors == ["record 2: malformed record: expected an object, got text"]

    payload["value"].pop()
    preview = upload(
        security_client,
        "admin:recommendations_securityrecommendation_import",
        json.dumps(payload).encode(),
        "recs.json",
        JSON,
    )
    confirm(security_client, preview, "admin:recommendations_securityrecommendation_process_import")
    assert SecurityRecommendation.objects.get(external_id="va-_-x-_-y").severity_score == 5


def test_exposure_import_is_a_snapshot(security_client):
    rec = RecommendationFactory(external_id="va-_-x-_-y")
    devices = DeviceFactory.create_batch(3, device_group=DeviceGroupFactory(name="Servers"))
    first = "recommendationId,machineId\n" + "".join(f"{rec.external_id},{d.machine_id}\n" for d in devices)
    preview = upload(security_client, "admin:recommendations_exposure_import", first.encode(), "e.csv", CSV)
    confirm(security_client, preview, "admin:recommendations_exposure_process_import")
    assert Exposure.objects.filter(remediated_at__isnull=True).count() == 3

    second = "recommendationId,machineId\n" + f"{rec.external_id},{devices[0].machine_id}\n"
    preview = upload(security_client, "admin:recommendations_exposure_import", second.encode(), "e.csv", CSV)
    response = confirm(security_client, preview, "admin:recommendations_exposure_process_import")
    assert Exposure.objects.filter(remediated_at__isnull=True).count() == 1
    rec.refresh_from_db()
    assert rec.exposed_devices == 1
    messages = [str(m) for m in response.wsgi_request._messages]
    assert "Import finished: created 0, updated 1, remediated 2, re-exposed 0, rejected 0." in messages


def test_xlsx_imports(security_client):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["name", "description"])
    sheet.append(["Kiosks", "Shop-floor kiosks"])
    buffer = io.BytesIO()
    book.save(buffer)
    preview = upload(security_client, "admin:recommendations_devicegroup_import", buffer.getvalue(), "g.xlsx", XLSX)
    confirm(security_client, preview, "admin:recommendations_devicegroup_process_import")
    assert DeviceGroup.objects.get(name="Kiosks").description == "Shop-floor kiosks"


def billion_laughs_xlsx() -> bytes:
    book = openpyxl.Workbook()
    book.active.append(["name"])
    book.active.append(["x"])
    plain = io.BytesIO()
    book.save(plain)
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)
    )
    hostile = io.BytesIO()
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(hostile, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":  # openpyxl writes inline strings
                text = data.decode()
                assert "<t>x</t>" in text
                data = (f"<!DOCTYPE worksheet [{entities}]>" + text.replace("<t>x</t>", "<t>&lol9;</t>")).encode()
            dst.writestr(item, data)
    return hostile.getvalue()


def test_xlsx_with_entity_expansion_is_refused(security_client):
    assert openpyxl.DEFUSEDXML is True
    preview = upload(
        security_client, "admin:recommendations_devicegroup_import", billion_laughs_xlsx(), "bomb.xlsx", XLSX
    )
    assert preview.status_code == 200
    errors = preview.context["form"].errors["import_file"]
    assert errors == ["The XLSX file contains forbidden XML (EntitiesForbidden); it was not read."]
    assert not DeviceGroup.objects.filter(name__startswith="lol").exists()


def test_file_over_the_size_limit_is_refused(security_client, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    preview = upload(security_client, DEVICE_IMPORT, DEVICES_CSV, "devices.csv", CSV)
    assert preview.context["form"].errors["import_file"] == [
        "The file is 0.0 MB; imports are limited to 0 MB (IMPORT_MAX_UPLOAD_BYTES)."
    ]
    assert not Device.objects.exists()


def test_it_staff_cannot_import(client, it_user):
    client.force_login(it_user)
    assert client.get(reverse(DEVICE_IMPORT)).status_code == 403


def test_large_file_runs_as_a_background_job(security_client, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path
    settings.IMPORT_BACKGROUND_ROWS = 1
    preview = upload(security_client, DEVICE_IMPORT, DEVICES_CSV, "devices.csv", CSV)
    assert "checked and imported in the background" in preview.content.decode()
    assert not Device.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(security_client, preview, DEVICE_PROCESS)

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:recommendations_importjob_change", args=[job.pk])
    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.kind, job.total, job.processed, job.percent) == ("devices", 2, 2, 100)
    assert job.summary["created"] == 4
    assert Device.objects.count() == 2
    page = security_client.get(response.url)
    assert page.status_code == 200
    assert "created 4, updated 0, remediated 0, re-exposed 0, rejected 0" in page.content.decode()


def test_background_job_with_a_bad_row_fails_and_imports_nothing(
    security_client, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    from recommendations.services import import_job_create, import_job_run

    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_create(
            kind="devices",
            file=SimpleUploadedFile("bad.csv", b"id,lastSeen\n,2026-01-01\nx,soon\n"),
            original_name="bad.csv",
            total=2,
            user=UserFactory(username="operator", is_superuser=True),
        )
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == [
        "bad.csv record 1 (line 2): missing required field 'id'",
        "bad.csv record 2 (line 3): wrong type for 'lastSeen': expected a date and time (ISO 8601), got 'soon'",
    ]
    assert job.finished_at is not None
    assert not Device.objects.exists()
    page = security_client.get(reverse("admin:recommendations_importjob_change", args=[job.pk]))
    assert "missing required field" in page.content.decode()
    # Running it again (a redelivered task) leaves the finished job alone.
    assert import_job_run(job_id=job.pk).status == ImportJob.Status.FAILED


def test_export_round_trips_through_import(security_client):
    rec = RecommendationFactory(external_id="va-_-x-_-y")
    device = DeviceFactory(device_group=DeviceGroupFactory(name="Servers"))
    from recommendations.services import exposures_import_snapshot

    exposures_import_snapshot(pairs=[(rec.external_id, device.machine_id)])
    form = {"format": CSV, "resource": "0"}
    form.update(
        {
            f"exposureresource_{f}": "on"
            for f in ("recommendation_id", "machine_id", "first_seen", "last_seen", "remediated_at")
        }
    )
    exported = security_client.post(reverse("admin:recommendations_exposure_export"), form)
    assert exported.status_code == 200
    lines = exported.content.decode().splitlines()
    assert lines[0].startswith("recommendationId,machineId,")
    assert lines[1].startswith(f"{rec.external_id},{device.machine_id},")

    preview = upload(security_client, "admin:recommendations_exposure_import", exported.content, "exposures.csv", CSV)
    assert preview.context["result"].totals["update"] == 1


@pytest.mark.parametrize("model", ["devicegroup", "device", "securityrecommendation", "exposure"])
def test_changelists_offer_import_and_export(security_client, model):
    page = security_client.get(reverse(f"admin:recommendations_{model}_changelist"))
    assert page.status_code == 200
    body = page.content.decode()
    assert reverse(f"admin:recommendations_{model}_import") in body
    assert reverse(f"admin:recommendations_{model}_export") in body


def test_large_file_preview_still_lists_malformed_rows(security_client, settings):
    settings.IMPORT_BACKGROUND_ROWS = 1
    content = DEVICES_CSV + b"x,y\n"
    preview = upload(security_client, DEVICE_IMPORT, content, "devices.csv", CSV)
    errors = [" ".join(row.error.messages) for row in preview.context["result"].invalid_rows]
    assert errors == ["line 4: malformed row: expected 6 columns, found 2"]
    assert not preview.context.get("confirm_form")


def test_running_job_page_shows_live_progress_and_refreshes(security_client, settings, tmp_path):
    from django.core.cache import cache

    from recommendations.services.import_jobs import _job_progress_key

    settings.MEDIA_ROOT = tmp_path
    job = ImportJob.objects.create(
        kind="exposures",
        file=SimpleUploadedFile("e.csv", b"x"),
        original_name="e.csv",
        total=200,
        status=ImportJob.Status.RUNNING,
    )
    cache.set(_job_progress_key(job.pk), 50)
    page = security_client.get(reverse("admin:recommendations_importjob_change", args=[job.pk]))
    body = page.content.decode()
    assert '<meta http-equiv="refresh" content="3">' in body
    assert '<progress max="100" value="25"></progress> 25% (50 of 200 rows)' in body
    cache.delete(_job_progress_key(job.pk))


def test_exposure_file_with_every_kind_of_problem_imports_nothing(security_client):
    rec = RecommendationFactory(external_id="va-_-x-_-y")
    device = DeviceFactory(device_group=DeviceGroupFactory(name="Servers"))
    before = list(Exposure.objects.values_list("pk", flat=True))
    content = (
        "recommendationId,machineId\n"
        f"{rec.external_id},{device.machine_id}\n"
        f"{rec.external_id},{device.machine_id}\n"
        f"va-_-nobody-_-nothing,{device.machine_id}\n"
        f"{rec.external_id},{'9' * 40}\n"
        f"{rec.external_id}\n"
        f"{rec.external_id},{'x' * 65}\n"
    ).encode()
    preview = upload(security_client, "admin:recommendations_exposure_import", content, "e.csv", CSV)
    errors = sorted(" ".join(row.error.messages) for row in preview.context["result"].invalid_rows)
    assert errors == sorted(
        [
            f"line 3: duplicate pair '{rec.external_id}', '{device.machine_id}' (first at record 1)",
            "line 4: unknown recommendation 'va-_-nobody-_-nothing'",
            f"line 5: unknown device '{'9' * 40}'",
            "line 6: malformed row: expected 2 columns, found 1",
            "line 7: wrong type for 'machineId': longer than 64 characters",
        ]
    )
    assert not preview.context.get("confirm_form")
    assert list(Exposure.objects.values_list("pk", flat=True)) == before


def test_a_background_job_has_the_scope_of_the_person_who_uploaded_it(
    it_user, settings, tmp_path, django_capture_on_commit_callbacks
):
    from recommendations.services import import_job_create

    settings.MEDIA_ROOT = tmp_path
    DeviceFactory(machine_id="m-laptop", device_group=DeviceGroupFactory(name="Laptops"))

    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_create(
            kind="devices",
            file=SimpleUploadedFile("d.csv", b"id,rbacGroupName\nm-laptop,Servers\n"),
            original_name="d.csv",
            total=1,
            user=it_user,
        )

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == [
        "d.csv record 1 (line 2): device 'm-laptop' is outside your device groups; you may not change it"
    ]
    assert Device.objects.get(machine_id="m-laptop").device_group.name == "Laptops"


def test_a_job_whose_uploader_can_no_longer_sign_in_imports_nothing(
    security_client, settings, tmp_path, django_capture_on_commit_callbacks
):
    from recommendations.services import import_job_create

    settings.MEDIA_ROOT = tmp_path
    uploader = UserFactory(username="leaver", is_superuser=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = import_job_create(
            kind="devices",
            file=SimpleUploadedFile("d.csv", b"id\nm-1\n"),
            original_name="d.csv",
            total=1,
            user=uploader,
        )
    uploader.is_active = False
    uploader.save()
    for callback in callbacks:
        callback()

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.errors == ["The person who started this import can no longer sign in; nothing was imported."]
    assert not Device.objects.exists()


def test_a_redelivered_message_does_nothing_while_the_job_runs(security_client, settings, tmp_path):
    from portal.locks import job_lock
    from recommendations.services import import_job_run

    settings.MEDIA_ROOT = tmp_path
    job = ImportJob.objects.create(
        kind="devices",
        file=SimpleUploadedFile("d.csv", b"id\nm-1\n"),
        original_name="d.csv",
        total=1,
        status=ImportJob.Status.RUNNING,
        created_by=UserFactory(username="importer", is_superuser=True),
    )

    with job_lock(f"import_job:{job.pk}") as held:  # the first delivery, still running
        assert held
        assert import_job_run(job_id=job.pk).status == ImportJob.Status.RUNNING
    assert not Device.objects.exists()

    # Once that run is gone (a killed worker's lock expires), the job runs again, once.
    assert import_job_run(job_id=job.pk).status == ImportJob.Status.SUCCEEDED
    assert list(Device.objects.values_list("machine_id", flat=True)) == ["m-1"]


@pytest.mark.parametrize(
    ("content", "name", "fmt", "error"),
    [
        (
            b"id,computerDnsName\nm-1,pc\x00one\n",
            "devices.csv",
            CSV,
            "line 2: field 'computerDnsName' contains a NUL character, which cannot be stored",
        ),
        (
            b'[{"id": "m-1", "computerDnsName": "pc\\ud800"}]',
            "devices.json",
            JSON,
            "record 1: field 'computerDnsName' contains an unpaired surrogate (U+D800), which cannot be stored",
        ),
    ],
)
def test_unstorable_text_in_a_preview_is_listed_not_a_crash(security_client, settings, content, name, fmt, error):
    for background_rows in (5000, 0):  # checked in the preview, and in a large file's first-rows preview
        settings.IMPORT_BACKGROUND_ROWS = background_rows
        preview = upload(security_client, DEVICE_IMPORT, content, name, fmt)
        assert preview.status_code == 200
        assert [" ".join(row.error.messages) for row in preview.context["result"].invalid_rows] == [error]
        assert not preview.context.get("confirm_form")
    assert not Device.objects.exists()


def test_deeply_nested_json_upload_is_a_form_error(security_client):
    content = ("[" * 100_000 + "]" * 100_000).encode()
    preview = upload(security_client, DEVICE_IMPORT, content, "devices.json", JSON)
    assert preview.status_code == 200
    assert preview.context["form"].errors["import_file"] == ["The JSON is nested too deeply to be read."]


def xlsx_of_groups(*rows) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(["name", "description"])
    for row in rows:
        book.active.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("background_rows", [5000, 0])
def test_a_spreadsheet_is_parsed_once_for_preview_confirmation_and_job(
    security_client, settings, tmp_path, django_capture_on_commit_callbacks, background_rows
):
    from unittest import mock

    settings.MEDIA_ROOT = tmp_path
    settings.IMPORT_BACKGROUND_ROWS = background_rows
    content = xlsx_of_groups(("Kiosks", "Shop floor"), ("Labs", "Test benches"))
    with mock.patch("openpyxl.load_workbook", wraps=openpyxl.load_workbook) as opened:
        preview = upload(security_client, "admin:recommendations_devicegroup_import", content, "g.xlsx", XLSX)
        with django_capture_on_commit_callbacks(execute=True):
            confirm(security_client, preview, "admin:recommendations_devicegroup_process_import")

    assert opened.call_count == 1
    assert dict(DeviceGroup.objects.filter(name__in=["Kiosks", "Labs"]).values_list("name", "description")) == {
        "Kiosks": "Shop floor",
        "Labs": "Test benches",
    }


def test_a_kept_file_that_was_tampered_with_is_refused(security_client, settings, tmp_path):
    from recommendations.imports.formats import PARSED_MARKER, UnreadableFile, read_dataset

    with pytest.raises(UnreadableFile, match="upload it again"):
        read_dataset((PARSED_MARKER + "forged").encode(), name="g.xlsx")


def test_an_xlsx_inflating_beyond_100_mb_is_refused_before_it_is_opened(security_client):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (101 * 1024 * 1024))
    preview = upload(security_client, DEVICE_IMPORT, bomb.getvalue(), "bomb.xlsx", XLSX)
    assert preview.context["form"].errors["import_file"] == ["The XLSX file inflates to 101 MB; the limit is 100 MB."]
    assert not Device.objects.exists()


FORMULA = '=HYPERLINK("https://evil.example/","Click")'


@pytest.fixture
def formula_device(db):
    return DeviceFactory(computer_dns_name=FORMULA, os_platform="+cmd", device_group=DeviceGroupFactory(name="@ops"))


def export_devices(client, fmt):
    form = {"format": fmt, "resource": "0"}
    form.update(
        {f"deviceresource_{f}": "on" for f in ("machine_id", "computer_dns_name", "os_platform", "device_group")}
    )
    response = client.post(reverse("admin:recommendations_device_export"), form)
    assert response.status_code == 200
    return response.content


def test_inventory_csv_exports_neutralise_formulas(security_client, formula_device):
    import csv

    rows = list(csv.reader(io.StringIO(export_devices(security_client, CSV).decode("utf-8-sig"))))
    assert rows[1][1:] == ["'" + FORMULA, "'+cmd", "'@ops"]


def test_inventory_xlsx_exports_neutralise_formulas(security_client, formula_device):
    sheet = openpyxl.load_workbook(io.BytesIO(export_devices(security_client, XLSX))).active
    cells = [cell for cell in next(sheet.iter_rows(min_row=2, max_row=2))][1:]
    assert [c.value for c in cells] == ["'" + FORMULA, "'+cmd", "'@ops"]
    assert {c.data_type for c in cells} == {"s"}  # text, never a formula


def test_preview_labels_new_rows_new_and_known_rows_update(security_client):
    DeviceFactory(machine_id="a" * 40, computer_dns_name="old-name.corp")

    preview = upload(security_client, DEVICE_IMPORT, DEVICES_CSV, "devices.csv", CSV)

    labels = {row.object_repr: row.import_type for row in preview.context["result"].rows}
    assert labels == {"a" * 40: "update", "b" * 40: "new"}
    html = preview.content.decode()
    assert html.count('<tr class="new">') == 1
    assert html.count('<tr class="update">') == 1


def test_preview_lists_errors_in_line_order(security_client):
    content = (
        "id,computerDnsName,lastSeen\n"
        f"{'a' * 40},pc-a.corp,2026-11-20\n"
        f"{'a' * 40},pc-a-again.corp,\n"
        f"{'d' * 40},pc-d.corp,not a date\n"
        f"{'e' * 40},too,many,columns\n"
        ",no-id.corp,\n"
    ).encode()

    preview = upload(security_client, DEVICE_IMPORT, content, "devices.csv", CSV)

    errors = [" ".join(row.error.messages) for row in preview.context["result"].invalid_rows]
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4", "line 5", "line 6"]
    html = preview.content.decode()
    positions = [html.index(f"line {n}:") for n in (3, 4, 5, 6)]
    assert positions == sorted(positions)
