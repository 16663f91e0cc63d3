from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = _("Security recommendations")

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - registers the Celery tasks, so services can queue them by name
