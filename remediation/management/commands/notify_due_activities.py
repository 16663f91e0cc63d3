from django.core.management.base import BaseCommand

from remediation.services import notify_due_activities


class Command(BaseCommand):
    help = "Email IT staff about remediation activities due within DUE_SOON_DAYS days or overdue (once each)."

    def handle(self, *args, **options):
        result = notify_due_activities()
        if result["skipped"]:
            self.stdout.write("Another run is sending due-date notifications; nothing done.")
            return
        self.stdout.write(f"Sent {result['due_soon']} due-soon and {result['overdue']} overdue notification(s).")
