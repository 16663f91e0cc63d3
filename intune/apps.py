from django.apps import AppConfig


class IntuneConfig(AppConfig):
    name = "intune"
    verbose_name = "Microsoft Intune"
