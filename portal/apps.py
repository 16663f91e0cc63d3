from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Portal")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from portal import audit  # noqa: F401 - connects the sign-in / lock-out log receivers
        from portal.preferences import remember_language_on_login

        user_logged_in.connect(remember_language_on_login, dispatch_uid="portal.preferences.language")
