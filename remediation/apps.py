from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RemediationConfig(AppConfig):
    name = "remediation"
    verbose_name = _("Remediation")

    def ready(self) -> None:
        from portal.signals import server_started
        from recommendations.signals import exposures_changed

        from . import tasks  # noqa: F401 - registers the Celery tasks, so services can queue them by name
        from .receivers import demo_users_banner, queue_progress_refresh

        exposures_changed.connect(queue_progress_refresh, dispatch_uid="remediation.progress")
        server_started.connect(demo_users_banner, dispatch_uid="remediation.demo_users")
