"""Abstract models shared by the apps (no tables of their own)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.users import actor_label


class Event(models.Model):
    """One entry of an object's history: what happened (`kind`), who did it, notes, when.

    `actor` is null when the system acted; `actor_label` keeps the name shown (an email, or
    `System`) even after the person's account is gone. Subclasses add the object they belong
    to and their `kind` choices.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254)
    notes = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor_label}"

    @staticmethod
    def by(user=None, *, label: str | None = None) -> dict:
        """The actor fields for an event by `user` (None: the system), or under another `label`."""
        return {"actor": user, "actor_label": label or actor_label(user)}
