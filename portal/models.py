"""Abstract models shared by the apps (no tables of their own)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.users import actor_label


class Event(models.Model):
    """One entry of an object's history: what happened (`kind`), who did it, notes, when.

    `actor` is null when the system acted; `actor_label` keeps the name shown (an email, or
    `System`) even after the person's account is gone. Subclasses add the object they belong
    to and their `kind` choices.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_label = models.CharField(_("by"), max_length=254)
    notes = models.TextField(_("notes"), blank=True)
    at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return _("%(event)s by %(actor)s") % {"event": self.get_kind_display(), "actor": self.actor_label}

    @staticmethod
    def by(user=None, *, label: str | None = None) -> dict:
        """The actor fields for an event by `user` (None: the system), or under another `label`."""
        return {"actor": user, "actor_label": label or actor_label(user)}


class UserPreference(models.Model):
    """A person's own settings: today the language of the portal's pages and of their emails.

    An empty `language` means "no choice": pages follow the browser's Accept-Language and emails
    use LANGUAGE_CODE. Written only through portal.preferences.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_preference", verbose_name=_("user")
    )
    # One of settings.LANGUAGES (checked by portal.preferences; no choices here, so adding a
    # language needs no migration), or "" for none.
    language = models.CharField(_("language"), max_length=8, blank=True)

    class Meta:
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")

    def __str__(self) -> str:
        return str(self.user)
