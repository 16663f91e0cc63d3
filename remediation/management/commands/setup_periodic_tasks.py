from django.core.management.base import BaseCommand

from remediation.services import periodic_tasks_setup


class Command(BaseCommand):
    help = (
        "Create the Celery beat schedules of the portal's jobs by name (intune_sync, purge_completed_activities, "
        "expire_exceptions, notify_due_activities, recount_exposures, refresh_activity_progress, defender_sync). "
        "Idempotent; existing schedules, including admin edits, are kept; defender_sync stays off until DEFENDER_* "
        "credentials are set."
    )

    def handle(self, *args, **options):
        result = periodic_tasks_setup()
        self.stdout.write(
            f"Beat schedules: {result['created']} created, {result['updated']} updated, "
            f"{result['unchanged']} unchanged."
        )
