"""`manage.py recount_exposures`: check the stored exposure counters now (the nightly job), and repair drift.

manage.py recount_exposures            # log and repair any drift
manage.py recount_exposures --check    # only report; exits 1 when a counter is off
"""

from django.core.management.base import BaseCommand, CommandError

from recommendations.tasks import recount_exposures


class Command(BaseCommand):
    help = (
        "Compare every recommendation's stored exposure counters (exposed_devices and the per-device-group "
        "counts) with its exposures; recount those that differ (same lock as the nightly beat job)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any is found")

    def handle(self, *args, **options):
        result = recount_exposures(repair=not options["check"])
        if result is None:
            raise CommandError("Another recount_exposures run is in progress; nothing was done.")
        if result.get("orphans_deleted"):
            self.stdout.write(
                f"Deleted {result['orphans_deleted']} exposure(s) of devices or recommendations that no longer exist."
            )
        if not result["drifted"]:
            self.stdout.write(f"Exposure counters are right ({result['checked']} recommendations checked).")
            return
        names = ", ".join(result["external_ids"])
        more = result["drifted"] - len(result["external_ids"])
        listed = names + (f" and {more} more" if more > 0 else "")
        if options["check"]:
            raise CommandError(
                f"Exposure counters differ from the exposures for {result['drifted']} recommendation(s): {listed}."
            )
        self.stdout.write(f"Recounted {result['drifted']} recommendation(s) whose counters had drifted: {listed}.")
