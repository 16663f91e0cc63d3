from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.errors import ApplicationError
from remediation.services import purge_completed_activities


class Command(BaseCommand):
    help = (
        "Delete remediation activities completed more than COMPLETED_ACTIVITY_RETENTION_DAYS days ago "
        "(with their devices and history), in bounded batches."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print how many would be deleted; delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.PURGE_BATCH_SIZE,
            help="Activity devices deleted per transaction (default PURGE_BATCH_SIZE=%(default)s).",
        )

    def handle(self, *args, dry_run: bool, batch_size: int, **options):
        try:
            result = purge_completed_activities(dry_run=dry_run, batch_size=batch_size)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if result["skipped"]:
            self.stdout.write("Another purge is running; nothing done.")
        elif dry_run:
            self.stdout.write(
                f"{result['activities']} activities ({result['devices']} activity devices) completed on or "
                f"before {result['cutoff']} would be deleted. Dry run: nothing was deleted."
            )
        else:
            self.stdout.write(
                f"Deleted {result['activities']} activities ({result['devices']} activity devices) "
                f"completed on or before {result['cutoff']}."
            )
