"""CI: the translation catalogues are complete, compiled and current. Pure Python (polib).

Fails (exit status 1, one line per problem) when, for any `locale/<lang>/LC_MESSAGES/<domain>.po`:

1. an entry is untranslated or fuzzy;
2. its `.mo` is missing or does not hold exactly what compiling the `.po` gives. Git keeps no
   modification times, so "the .po is newer than its .mo" is decided by content: the message
   dictionary of the committed `.mo` (read with the standard library's gettext) must equal the
   one of the `.po` (read with polib);
3. `makemessages` would add entries, i.e. a string marked in the sources is missing from the
   `.po`. That needs GNU gettext's xgettext: where it is installed, makemessages runs on a
   temporary copy of the project and the new `.po` is compared with the committed one;
   otherwise this part is skipped with a note (runtime never needs gettext: the `.mo` files
   are committed).

`locale_vendor/` (Swedish for third-party apps that ship none, kept by hand) is checked for 1 and 2.

Usage: python .ci/check_translations.py [--locale-dir DIR] [--skip-makemessages]
"""

from __future__ import annotations

import argparse
import gettext
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
VENDOR_LOCALE = ROOT / "locale_vendor"
# What `make messages` passes to makemessages (Makefile, MAKEMESSAGES_FLAGS): keep the two in step.
MAKEMESSAGES_IGNORE = [".venv", "tests", "bench", "staticfiles", "media", "deploy"]
# Not copied into the temporary project: makemessages reads none of it.
COPY_SKIP = {".git", ".venv", "tests", "bench", "staticfiles", "media", "__pycache__", ".ruff_cache", "db.sqlite3"}


def catalogues(locale_dir: Path) -> list[Path]:
    return sorted(locale_dir.glob("*/LC_MESSAGES/*.po"))


def _key(entry: polib.POEntry) -> str:
    return f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid


def po_messages(po: polib.POFile) -> dict:
    """What compiling the .po gives: {msgid: msgstr} and {(msgid, n): msgstr} for plurals."""
    messages: dict = {}
    for entry in po.translated_entries():
        if entry.msgid_plural:
            for index, text in entry.msgstr_plural.items():
                messages[(_key(entry), int(index))] = text
        else:
            messages[_key(entry)] = entry.msgstr
    return messages


def mo_messages(mo_path: Path) -> dict:
    with mo_path.open("rb") as handle:
        catalog = dict(gettext.GNUTranslations(handle)._catalog)
    catalog.pop("", None)  # the header
    return catalog


def po_problems(po_path: Path, po: polib.POFile) -> list[str]:
    problems = []
    for entry in po:
        if entry.obsolete:
            continue
        where = f"{po_path}:{entry.linenum}"
        if "fuzzy" in entry.flags:
            problems.append(f"{where}: fuzzy entry {entry.msgid!r}")
        elif not entry.translated():
            problems.append(f"{where}: untranslated entry {entry.msgid!r}")
    return problems


def mo_problems(po_path: Path, po: polib.POFile) -> list[str]:
    mo_path = po_path.with_suffix(".mo")
    if not mo_path.exists():
        return [f"{mo_path}: missing; run `make messages` and commit it"]
    compiled, expected = mo_messages(mo_path), po_messages(po)
    if compiled == expected:
        return []
    changed = sorted(str(k) for k in set(compiled) ^ set(expected))
    changed += sorted(str(k) for k in set(compiled) & set(expected) if compiled[k] != expected[k])
    sample = ", ".join(repr(k) for k in changed[:3])
    return [
        f"{mo_path}: stale, it differs from {po_path.name} in {len(changed)} message(s) ({sample}); run `make messages`"
    ]


def _run_makemessages(project: Path, languages: list[str], domains: list[str]) -> None:
    ignore = [f"--ignore={pattern}" for pattern in MAKEMESSAGES_IGNORE]
    for domain in domains:
        args = [sys.executable, "manage.py", "makemessages", "--no-obsolete", "-d", domain, *ignore]
        for language in languages:
            args += ["-l", language]
        subprocess.run(args, cwd=project, check=True, capture_output=True, text=True)  # noqa: S603


def makemessages_problems(locale_dir: Path, project_root: Path = ROOT) -> list[str]:
    """Entries makemessages would add to the committed catalogues ([] when none)."""
    pos = catalogues(locale_dir)
    languages = sorted({po.parts[-3] for po in pos})
    domains = sorted({po.stem for po in pos})
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(project_root, project, ignore=lambda _dir, names: [n for n in names if n in COPY_SKIP])
        shutil.rmtree(project / "locale", ignore_errors=True)
        shutil.copytree(locale_dir, project / "locale")
        _run_makemessages(project, languages, domains)
        problems = []
        for po_path in pos:
            relative = po_path.relative_to(locale_dir)
            committed = {_key(e) for e in polib.pofile(str(po_path)) if not e.obsolete}
            fresh = {_key(e) for e in polib.pofile(str(project / "locale" / relative)) if not e.obsolete}
            for msgid in sorted(fresh - committed):
                problems.append(f"{po_path}: makemessages would add {msgid!r}; run `make messages` and translate it")
    return problems


def check(locale_dir: Path, *, makemessages: bool = True, project_root: Path = ROOT) -> list[str]:
    pos = catalogues(locale_dir)
    if not pos:
        return [f"{locale_dir}: no .po files"]
    problems = []
    for po_path in pos:
        po = polib.pofile(str(po_path))
        problems += po_problems(po_path, po)
        problems += mo_problems(po_path, po)
    if makemessages:
        if shutil.which("xgettext"):
            problems += makemessages_problems(locale_dir, project_root)
        else:
            print("note: xgettext (GNU gettext) is not installed; skipped the check for strings missing from the .po")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locale-dir", type=Path, default=ROOT / "locale")
    parser.add_argument("--skip-makemessages", action="store_true")
    args = parser.parse_args(argv)
    problems = check(args.locale_dir, makemessages=not args.skip_makemessages)
    if args.locale_dir == ROOT / "locale" and VENDOR_LOCALE.exists():
        problems += check(VENDOR_LOCALE, makemessages=False)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} translation problem(s)")
        return 1
    print(f"translations: {len(catalogues(args.locale_dir))} catalogue(s) complete, compiled and current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
