"""Import Microsoft Defender for Endpoint answers and exports: recommendations, machines, exposures.

    manage.py import_tvm --recommendations recs.json --machines machines.json --exposures exposures.csv
    manage.py import_tvm --exposures part-00000.json.gz --exposures part-00001.json.gz
    manage.py import_tvm --machine-references refs.json --recommendation va-_-google-_-chrome
    manage.py import_tvm --machines machines.json --user alice     # with alice's device-group scope

All or nothing: a bad record stops the import with one line naming every problem, and
nothing is stored. Without --user the operator's import has full scope.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from portal.errors import ApplicationError
from recommendations.services import import_summary_line, import_tvm_files


class Command(BaseCommand):
    help = (
        "Import Defender for Endpoint API answers (recommendations, machines) and an exposure snapshot "
        "(recommendationId,machineId pairs, the software or configuration assessment, or machineReferences)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--recommendations",
            metavar="FILE",
            help="GET /api/recommendations, /api/recommendations/{id} or /api/machines/{id}/recommendations (JSON)",
        )
        parser.add_argument("--machines", metavar="FILE", help="GET /api/machines or /api/machines/{id} (JSON)")
        parser.add_argument(
            "--exposures",
            metavar="FILE",
            action="append",
            help="exposed now: recommendationId,machineId pairs (CSV or JSON), or the SoftwareVulnerabilitiesByMachine "
            "or SecureConfigurationsAssessmentByMachine assessment (JSON, or the export files' JSON lines, gzipped "
            "or not); a snapshot for the recommendations it names. Repeat it for the part files of one export",
        )
        parser.add_argument(
            "--machine-references",
            metavar="FILE",
            help="GET /api/recommendations/{id}/machineReferences (JSON): the devices exposed to --recommendation",
        )
        parser.add_argument("--recommendation", metavar="ID", help="the recommendation of --machine-references")
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help="import for this user: only devices and exposures of their device groups (default: full scope)",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        files = {k: options[k] for k in ("recommendations", "machines", "machine_references") if options[k]}
        exposures = options["exposures"] or []
        if not files and not exposures:
            raise CommandError(
                "Nothing to import: give --recommendations, --machines, --exposures and/or --machine-references."
            )
        if bool(options["machine_references"]) != bool(options["recommendation"]):
            raise CommandError(
                "--machine-references and --recommendation go together (the file lists one recommendation's devices)."
            )
        for name, path in [*files.items(), *(("exposures", p) for p in exposures)]:
            if not Path(path).is_file():
                raise CommandError(f"--{name.replace('_', '-')}: no such file: {path}")
        if exposures:
            files["exposures"] = exposures
        if options["recommendation"]:
            files["recommendation"] = options["recommendation"].strip()
        user = None
        if options["user"] is not None:
            user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
            if user is None:
                raise CommandError(f"--user: no active user named {options['user']!r}.")
        quiet = options["quiet"] or options["verbosity"] == 0
        bar = tqdm(desc="Importing", unit=" records", disable=quiet, file=self.stderr._out, mininterval=0.5)
        try:
            summary = import_tvm_files(**files, progress=bar.update, user=user)
        except ApplicationError as exc:  # ImportRejected: one line naming every problem; nothing stored
            raise CommandError(exc.message) from None
        finally:
            bar.close()
        if not quiet:
            for warning in summary["warnings"][:20]:
                self.stderr.write(f"warning: {warning}")
            if len(summary["warnings"]) > 20:
                self.stderr.write(f"... and {len(summary['warnings']) - 20} more warnings")
        self.stdout.write(import_summary_line(summary))
