from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntuneConfig(AppConfig):
    name = "intune"
    verbose_name = _("Microsoft Intune")

    def ready(self) -> None:
        from remediation.hooks import register

        from . import tasks  # noqa: F401 - registers the Celery tasks, so the backend can queue them by name
        from .backend import IntuneBackend

        register(IntuneBackend())
