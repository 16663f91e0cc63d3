from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Security recommendations"

    def ready(self) -> None:
        from . import tasks  # noqa: F401 - registers the Celery tasks, so services can queue them by name
