"""Pull recommendations, machines and exposures from the Defender for Endpoint API now (one snapshot).

    manage.py defender_sync [--quiet]

Progress lines go to stderr, the summary (`created N, updated N, remediated N, re-exposed N, ...`)
to stdout. A failure prints one line and exits non-zero; the database is then unchanged.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recommendations.models import DefenderSyncRun
from recommendations.services import defender_sync, import_summary_line


class Command(BaseCommand):
    help = "Pull recommendations, machines and exposed devices from the Defender for Endpoint API now."

    def add_arguments(self, parser):
        parser.add_argument("--quiet", action="store_true", help="no progress lines")

    def handle(self, *args, **options):
        quiet = options["quiet"] or options["verbosity"] == 0
        run = defender_sync(
            trigger=DefenderSyncRun.Trigger.COMMAND, progress=None if quiet else lambda line: self.stderr.write(line)
        )
        if run is None:
            self.stdout.write("Another Defender pull is running; this run did nothing.")
            return
        if run.status != DefenderSyncRun.Status.SUCCEEDED:
            raise CommandError(f"Defender pull failed: {run.error}")
        self.stdout.write(import_summary_line(run.summary))
