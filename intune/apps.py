from django.apps import AppConfig


class IntuneConfig(AppConfig):
    name = "intune"
    verbose_name = "Microsoft Intune"

    def ready(self) -> None:
        from remediation.hooks import register

        from . import tasks  # noqa: F401 - registers the Celery tasks, so the backend can queue them by name
        from .backend import IntuneBackend

        register(IntuneBackend())
