from django.core.management.base import BaseCommand, CommandError

from intune.services import intune_sync


class Command(BaseCommand):
    help = "Run one Intune sync now: push new security tasks, send back decisions, read task statuses."

    def handle(self, *args, **options):
        result = intune_sync()
        if not result.ok:
            # One readable line and a non-zero exit.
            raise CommandError(result.summary())
        self.stdout.write(result.summary())
