"""`manage.py expire_exceptions`: run the hourly exception expiry now (same lock as the beat job)."""

from django.core.management.base import BaseCommand, CommandError

from recommendations.tasks import expire_exceptions


class Command(BaseCommand):
    help = "Move exceptions whose expiry date has passed to 'expired' (safe to run twice)."

    def handle(self, *args, **options):
        count = expire_exceptions()
        if count is None:
            raise CommandError("Another expire_exceptions run is in progress; nothing was done.")
        self.stdout.write(f"Expired {count} exception{'s' if count != 1 else ''}.")
