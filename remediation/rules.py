"""The rules of a remediation request that several places share, each in one function.

Which options fit a recommendation, how an activity is titled and what IT staff are asked to
do, when it is overdue, how its progress is counted, the default due date. Services, the
admin, the API, exports and emails call these; none of them writes anything.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _

from recommendations.models import SecurityRecommendation
from recommendations.rules import SEVERITY_BANDS, severity_band, severity_band_expression  # noqa: F401

from .choices import ActivityStatus, Priority, RemediationOption

# --- options and wording --------------------------------------------------------------


def options_for_recommendation(recommendation: SecurityRecommendation) -> list[str]:
    """The remediation options that fit a recommendation, in the order the form offers them."""
    if recommendation.is_configuration:
        return [RemediationOption.CONFIGURATION_CHANGE, RemediationOption.ATTENTION_REQUIRED]
    return [
        RemediationOption.SOFTWARE_UPDATE,
        RemediationOption.SOFTWARE_UNINSTALL,
        RemediationOption.ATTENTION_REQUIRED,
    ]


def default_option(recommendation: SecurityRecommendation) -> str:
    """The option the request form proposes: the one the recommendation itself asks for
    (uninstall for an Uninstall recommendation, the configuration change for a configuration one)."""
    if recommendation.is_configuration:
        return RemediationOption.CONFIGURATION_CHANGE
    if recommendation.remediation_type == SecurityRecommendation.RemediationType.UNINSTALL:
        return RemediationOption.SOFTWARE_UNINSTALL
    return RemediationOption.SOFTWARE_UPDATE


def software_name(recommendation: SecurityRecommendation) -> str:
    """The software's readable name: Defender's relatedComponent ("Microsoft Silverlight"), else
    vendor and product (identifiers such as "microsoft silverlight"), else the recommendation's name."""
    vendor_product = " ".join(part for part in (recommendation.vendor, recommendation.product_name) if part)
    return recommendation.related_component or vendor_product or recommendation.name


def app_name(recommendation: SecurityRecommendation) -> str:
    """The product alone, for a place that shows the vendor beside it (Intune's appName next to
    appPublisher): Defender's productName ("silverlight"), else relatedComponent, else empty.

    `software_name` is the one for prose (titles, descriptions), where the vendor must be in the name.
    """
    return recommendation.product_name or recommendation.related_component or ""


def title_and_description(recommendation: SecurityRecommendation, option: str) -> tuple[str, str]:
    """An activity's title and description for the chosen option."""
    software = software_name(recommendation)
    if option == RemediationOption.SOFTWARE_UPDATE:
        version = f" to version {recommendation.recommended_version}" if recommendation.recommended_version else ""
        return recommendation.name, f"Update {software}{version}."
    if option == RemediationOption.SOFTWARE_UNINSTALL:
        title = (
            recommendation.name
            if recommendation.remediation_type == SecurityRecommendation.RemediationType.UNINSTALL
            else f"Uninstall {software}"
        )
        return title, f"Uninstall {software} from the affected devices."
    if option == RemediationOption.CONFIGURATION_CHANGE:
        return recommendation.name, f"Apply the configuration change: {recommendation.name}."
    return (
        f"Attention required: {recommendation.name}",
        f"No direct fix is available for {recommendation.name}; review the affected devices.",
    )


def remediation_steps(activity) -> str:
    """What IT staff are asked to do, in words, for the activity's remediation option."""
    rec = activity.recommendation
    product = software_name(rec)
    option = activity.remediation_option
    if option == RemediationOption.SOFTWARE_UPDATE:
        if rec.recommended_version:
            return _(
                "Update %(product)s to version %(version)s or later on every target device with your software "
                "deployment tools (for example Intune or Configuration Manager). The portal marks each device "
                "remediated when the next exposure import no longer reports it."
            ) % {"product": product, "version": rec.recommended_version}
        return _(
            "Update %(product)s on every target device with your software deployment tools "
            "(for example Intune or Configuration Manager). The portal marks each device remediated "
            "when the next exposure import no longer reports it."
        ) % {"product": product}
    if option == RemediationOption.SOFTWARE_UNINSTALL:
        return _(
            "Uninstall %(product)s from every target device. Confirm no business application depends on it "
            "first. The portal marks each device remediated when it is no longer reported as exposed."
        ) % {"product": product}
    if option == RemediationOption.CONFIGURATION_CHANGE:
        return _(
            "Apply the configuration change “%(name)s” on every target device, for example with a "
            "group policy or an Intune configuration profile, then let the next scan confirm it."
        ) % {"name": rec.name}
    return _(
        "No direct fix is available for “%(name)s”. Review the affected devices and decide on a "
        "mitigation; mark the activity complete when done. Attention-required activities have no due date, "
        "ticket or progress."
    ) % {"name": rec.name}


def default_due_date(filed_on: dt.date | None = None) -> dt.date:
    """DEFAULT_DUE_DAYS days from `filed_on` (default today): the request form's suggestion, and the
    due day Intune is given for an activity that has none."""
    return (filed_on or timezone.localdate()) + dt.timedelta(days=settings.DEFAULT_DUE_DAYS)


# --- overdue ----------------------------------------------------------------------------
# One rule in two forms: a database filter and the same test on a loaded activity.


def overdue_q(today: dt.date | None = None) -> Q:
    """Active and past its due date (attention-required activities have none, so never)."""
    return Q(status=ActivityStatus.ACTIVE, due_on__lt=today or timezone.localdate())


def is_overdue(*, status: str, due_on: dt.date | None, today: dt.date | None = None) -> bool:
    """`overdue_q` for one activity already in memory."""
    return bool(due_on and status == ActivityStatus.ACTIVE and due_on < (today or timezone.localdate()))


# --- progress ---------------------------------------------------------------------------
# Fixed devices as a whole percentage of the target devices, rounded down; none for
# attention-required activities (they show no progress). One rule in two forms again.


def progress_percent(*, remediation_option: str, fixed_devices: int, target_devices: int) -> int | None:
    if remediation_option == RemediationOption.ATTENTION_REQUIRED:
        return None
    if not target_devices:
        return 0
    return int(fixed_devices * 100 / target_devices)


def progress_expression(*, fixed: str = "fixed_devices", target: str = "target_devices"):
    """`progress_percent` in SQL, for ordering: -1 (before 0) for attention required.

    `fixed` / `target` name the counts (the stored counters, or the annotations of a scoped list).
    """
    return Case(
        When(remediation_option=RemediationOption.ATTENTION_REQUIRED, then=Value(-1)),
        When(**{target: 0}, then=Value(0)),
        default=Cast(F(fixed) * 100 / F(target), IntegerField()),
        output_field=IntegerField(),
    )


PRIORITY_ORDER = [Priority.HIGH, Priority.MEDIUM, Priority.LOW]


def priority_rank_expression():
    """High first: 0 for high, 1 for medium, 2 for low."""
    return Case(
        *(When(priority=value, then=Value(rank)) for rank, value in enumerate(PRIORITY_ORDER)),
        default=Value(len(PRIORITY_ORDER)),
        output_field=IntegerField(),
    )
