from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from remediation.models import RemediationActivity


class IntuneConnection(models.Model):
    """The single row that says whether the portal talks to Intune. Off by default."""

    enabled = models.BooleanField(_("enabled"), default=False)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("changed by"),
    )
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("intune connection")
        verbose_name_plural = _("intune connections")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="intune_connection_singleton")]

    def __str__(self) -> str:
        return "Microsoft Intune connection: " + ("on" if self.enabled else "off")

    @classmethod
    def load(cls) -> IntuneConnection:
        """The row, or an unsaved default (off) until a superuser sets the toggle. Never writes."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class IntuneTask(models.Model):
    activity = models.OneToOneField(
        RemediationActivity, on_delete=models.CASCADE, related_name="intune_task", verbose_name=_("activity")
    )
    graph_id = models.CharField(_("graph id"), max_length=64, blank=True, db_index=True)
    status = models.CharField(_("status"), max_length=32, blank=True, help_text=_("Graph's status of the task."))
    devices_sent = models.PositiveIntegerField(_("devices sent"), default=0)
    devices_total = models.PositiveIntegerField(_("devices total"), default=0)
    devices_without_aad_id = models.PositiveIntegerField(_("devices without aad id"), default=0)
    devices_not_managed = models.PositiveIntegerField(
        _("devices not managed"),
        default=0,
        help_text=_("Target devices Intune does not manage (looked up by Entra ID device ID); not sent."),
    )
    push_started_at = models.DateTimeField(_("push started at"), null=True, blank=True)
    last_pushed_at = models.DateTimeField(_("last pushed at"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("last synced at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # A decision taken in the portal that still has to be sent back with updateStatus.
    pending_status = models.CharField(_("pending status"), max_length=32, blank=True)
    pending_note = models.TextField(_("pending note"), blank=True)

    class Meta:
        verbose_name = _("intune task")
        verbose_name_plural = _("intune tasks")
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"Intune task for {self.activity_id}"


class GraphAccessToken(models.Model):
    """The current Graph access token, shared by every web and worker process until it expires.

    Encrypted with a key derived from the client secret, so the row is useless without the
    secret (which is only in the environment). One row per credentials set.
    """

    cache_key = models.CharField(_("cache key"), max_length=64, unique=True)
    encrypted_token = models.TextField(_("encrypted token"))
    expires_at = models.DateTimeField(_("expires at"))

    class Meta:
        verbose_name = _("graph access token")
        verbose_name_plural = _("graph access tokens")

    def __str__(self) -> str:
        return f"Graph token until {self.expires_at:%Y-%m-%d %H:%M}"
