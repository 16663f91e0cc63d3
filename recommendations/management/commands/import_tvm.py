"""Import Microsoft Defender for Endpoint exports: recommendations, machines, exposures.

    manage.py import_tvm --recommendations recs.json --machines machines.json --exposures exposures.csv
    manage.py import_tvm --machines machines.json --user alice     # with alice's device-group scope

All or nothing: a bad record stops the import with one line naming every problem, and
nothing is stored. Without --user the operator's import has full scope.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommendations.imports.records import ImportRejected
from recommendations.services import import_summary_line, import_tvm_files


class Command(BaseCommand):
    help = "Import Defender for Endpoint JSON (recommendations, machines) and an exposure snapshot (JSON or CSV)."

    def add_arguments(self, parser):
        parser.add_argument("--recommendations", metavar="FILE", help="/api/recommendations response (JSON)")
        parser.add_argument("--machines", metavar="FILE", help="/api/machines response (JSON)")
        parser.add_argument(
            "--exposures",
            metavar="FILE",
            help="recommendationId,machineId pairs exposed now (JSON or CSV); "
            "a snapshot for the recommendations it names",
        )
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help="import for this user: only devices and exposures of their device groups (default: full scope)",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        files = {k: options[k] for k in ("recommendations", "machines", "exposures") if options[k]}
        if not files:
            raise CommandError("Nothing to import: give --recommendations, --machines and/or --exposures.")
        for name, path in files.items():
            if not Path(path).is_file():
                raise CommandError(f"--{name}: no such file: {path}")
        user = None
        if options["user"] is not None:
            user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
            if user is None:
                raise CommandError(f"--user: no active user named {options['user']!r}.")
        quiet = options["quiet"] or options["verbosity"] == 0
        bar = tqdm(desc="Importing", unit=" records", disable=quiet, file=self.stderr._out, mininterval=0.5)
        try:
            summary = import_tvm_files(**files, progress=bar.update, user=user)
        except ImportRejected as exc:
            raise CommandError(exc.message) from None
        finally:
            bar.close()
        if not quiet:
            for warning in summary["warnings"][:20]:
                self.stderr.write(f"warning: {warning}")
            if len(summary["warnings"]) > 20:
                self.stderr.write(f"... and {len(summary['warnings']) - 20} more warnings")
        self.stdout.write(import_summary_line(summary))
