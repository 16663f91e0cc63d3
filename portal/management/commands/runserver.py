"""`manage.py runserver` (staticfiles' one, which serves static files in DEBUG) that prints the
sign-in address, and what apps add to it (the demo users), last: after the server's own lines."""

from __future__ import annotations

from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver
from django.urls import reverse
from django.utils.translation import gettext as _

from portal.signals import server_started


class Command(StaticfilesRunserver):
    def on_bind(self, server_port):
        super().on_bind(server_port)
        # Only what the server itself printed: "0" is how runserver spells every interface.
        host = "0.0.0.0" if self.addr == "0" else (f"[{self.addr}]" if self._raw_ipv6 else self.addr)  # noqa: S104
        base_url = f"{self.protocol}://{host}:{server_port}"
        lines = ["", _("Sign in at %(url)s") % {"url": base_url + reverse("admin:index")}]
        for _receiver, extra in server_started.send(sender=self.__class__, base_url=base_url):
            lines += extra or []
        self.stdout.write(self.style.SUCCESS("\n".join(lines)), ending="\n")
        self.stdout.flush()
