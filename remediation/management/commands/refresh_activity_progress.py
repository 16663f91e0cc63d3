from django.core.management.base import BaseCommand, CommandError

from recommendations.models import SecurityRecommendation
from remediation.services import activities_refresh_progress, daily_figures_record


class Command(BaseCommand):
    help = (
        "Mark activity devices remediated from the exposures and complete the activities whose every "
        "target device is remediated (System confirmation). All recommendations unless --recommendation is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--recommendation",
            action="append",
            default=[],
            metavar="EXTERNAL_ID",
            help="Only this recommendation (its external id); repeat for several.",
        )

    def handle(self, *args, recommendation: list[str], **options):
        ids = None
        if recommendation:
            found = dict(
                SecurityRecommendation.objects.filter(external_id__in=recommendation).values_list("external_id", "pk")
            )
            unknown = sorted(set(recommendation) - set(found))
            if unknown:
                raise CommandError("Unknown recommendation(s): " + ", ".join(unknown) + ". Nothing was changed.")
            ids = list(found.values())
        result = activities_refresh_progress(recommendation_ids=ids)
        if result["skipped"]:
            self.stdout.write("Another refresh is running; nothing done.")
            return
        daily_figures_record()
        self.stdout.write(
            f"Checked {result['activities']} active activities: {result['devices_remediated']} device(s) remediated, "
            f"{result['devices_exposed_again']} exposed again, {result['activities_completed']} activity(ies) "
            "completed automatically."
        )
