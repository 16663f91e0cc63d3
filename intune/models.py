from __future__ import annotations

from django.conf import settings
from django.db import models

from remediation.models import RemediationActivity


class IntuneConnection(models.Model):
    """The single row that says whether the portal talks to Intune. Off by default."""

    enabled = models.BooleanField(default=False)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="intune_connection_singleton")]

    def __str__(self) -> str:
        return "Microsoft Intune connection: " + ("on" if self.enabled else "off")

    @classmethod
    def load(cls) -> IntuneConnection:
        """The row, or an unsaved default (off) until a superuser sets the toggle. Never writes."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class IntuneTask(models.Model):
    activity = models.OneToOneField(RemediationActivity, on_delete=models.CASCADE, related_name="intune_task")
    graph_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=32, blank=True, help_text="Graph's status of the task.")
    devices_sent = models.PositiveIntegerField(default=0)
    devices_total = models.PositiveIntegerField(default=0)
    devices_without_aad_id = models.PositiveIntegerField(default=0)
    devices_not_managed = models.PositiveIntegerField(
        default=0, help_text="Target devices Intune does not manage (looked up by Entra ID device ID); not sent."
    )
    push_started_at = models.DateTimeField(null=True, blank=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # A decision taken in the portal that still has to be sent back with updateStatus.
    pending_status = models.CharField(max_length=32, blank=True)
    pending_note = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"Intune task for {self.activity_id}"


class GraphAccessToken(models.Model):
    """The current Graph access token, shared by every web and worker process until it expires.

    Encrypted with a key derived from the client secret, so the row is useless without the
    secret (which is only in the environment). One row per credentials set.
    """

    cache_key = models.CharField(max_length=64, unique=True)
    encrypted_token = models.TextField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Graph token until {self.expires_at:%Y-%m-%d %H:%M}"
