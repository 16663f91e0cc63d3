"""The CI check of the catalogues (.ci/check_translations.py) passes on the committed ones and
fails on a fuzzy or untranslated entry, a stale .mo and a marked string missing from the .po."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "locale"


def _load_check():
    spec = importlib.util.spec_from_file_location("check_translations", ROOT / ".ci" / "check_translations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_translations = _load_check()


@pytest.fixture
def locale_copy(tmp_path) -> Path:
    target = tmp_path / "locale"
    shutil.copytree(LOCALE, target)
    return target


def _po(locale_dir: Path) -> Path:
    return locale_dir / "sv" / "LC_MESSAGES" / "django.po"


def test_the_committed_catalogues_are_complete_and_compiled():
    assert check_translations.check(LOCALE, makemessages=False) == []
    assert check_translations.check(ROOT / "locale_vendor", makemessages=False) == []


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext's xgettext")
def test_every_marked_string_of_the_sources_is_in_the_committed_catalogues():
    assert check_translations.makemessages_problems(LOCALE) == []


def test_a_fuzzy_entry_fails_the_check(locale_copy, capsys):
    po_path = _po(locale_copy)
    po = polib.pofile(str(po_path))
    entry = po.find("Remediation activities")
    entry.flags.append("fuzzy")
    po.save()
    po.save_as_mofile(str(po_path.with_suffix(".mo")))  # compiled as it is: only the flag is wrong

    assert check_translations.main(["--locale-dir", str(locale_copy), "--skip-makemessages"]) == 1
    out = capsys.readouterr().out
    assert "fuzzy entry 'Remediation activities'" in out


def test_an_untranslated_entry_fails_the_check(locale_copy):
    po_path = _po(locale_copy)
    po = polib.pofile(str(po_path))
    po.find("Completed by").msgstr = ""
    po.save()
    po.save_as_mofile(str(po_path.with_suffix(".mo")))

    problems = check_translations.check(locale_copy, makemessages=False)
    assert any("untranslated entry 'Completed by'" in p for p in problems)


def test_a_mo_older_than_its_po_fails_the_check_whatever_the_file_times(locale_copy):
    po_path = _po(locale_copy)
    po = polib.pofile(str(po_path))
    po.find("Completed by").msgstr = "Avslutad av"  # changed, not compiled
    po.save()
    mo_path = po_path.with_suffix(".mo")
    mo_path.touch()  # a newer file time proves nothing: the content is compared

    problems = check_translations.check(locale_copy, makemessages=False)
    assert len(problems) == 1
    assert "stale" in problems[0]
    assert "Completed by" in problems[0]

    po.save_as_mofile(str(mo_path))  # compiling it makes the check pass again
    assert check_translations.check(locale_copy, makemessages=False) == []


def test_a_missing_mo_fails_the_check(locale_copy):
    _po(locale_copy).with_suffix(".mo").unlink()
    problems = check_translations.check(locale_copy, makemessages=False)
    assert any("django.mo: missing" in p for p in problems)


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext's xgettext")
def test_a_marked_string_missing_from_the_po_fails_the_check(locale_copy):
    po_path = _po(locale_copy)
    po = polib.pofile(str(po_path))
    po.remove(po.find("Top remediation activities"))
    po.save()
    po.save_as_mofile(str(po_path.with_suffix(".mo")))
    assert check_translations.check(locale_copy, makemessages=False) == []  # complete and compiled...

    problems = check_translations.makemessages_problems(locale_copy)
    assert problems == [
        f"{po_path}: makemessages would add 'Top remediation activities'; run `make messages` and translate it"
    ]


def test_without_xgettext_the_makemessages_part_is_skipped_with_a_note(monkeypatch, capsys):
    monkeypatch.setattr(check_translations.shutil, "which", lambda name: None)
    assert check_translations.check(LOCALE) == []
    assert "xgettext (GNU gettext) is not installed" in capsys.readouterr().out


@pytest.mark.parametrize("locale_dir", [LOCALE, ROOT / "locale_vendor"])
def test_the_project_catalogue_never_changes_a_translation_of_django_or_an_installed_app(locale_dir):
    """LOCALE_PATHS wins over the apps' catalogues: a shared msgid translated differently would
    change Django's own pages (the admin's "Change" links, say). Such strings take a context."""
    from django.apps import apps

    ours = {e.msgid: e.msgstr for e in polib.pofile(str(_po(locale_dir))) if not e.msgctxt and not e.msgid_plural}
    catalogues = [Path(__import__("django").__file__).parent / "conf" / "locale" / "sv" / "LC_MESSAGES" / "django.po"]
    catalogues += [Path(app.path) / "locale" / "sv" / "LC_MESSAGES" / "django.po" for app in apps.get_app_configs()]
    differing = []
    for catalogue in catalogues:
        if not catalogue.exists() or catalogue.is_relative_to(ROOT):
            continue
        for entry in polib.pofile(str(catalogue)):
            if entry.msgctxt or entry.msgid_plural or not entry.msgstr:
                continue
            if entry.msgid in ours and ours[entry.msgid] != entry.msgstr:
                differing.append((entry.msgid, ours[entry.msgid], entry.msgstr, catalogue.parent.parent.parent.parent))
    assert differing == []
