"""A person's language: stored per user, applied to their pages and their emails.

The rule has one home here: a stored choice wins; without one, pages follow the browser's
Accept-Language (Django's LocaleMiddleware) and emails use LANGUAGE_CODE.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from portal.errors import ValidationError

# The session caches the stored choice ("" for none), so pages cost no query to find it.
SESSION_KEY = "portal_language"


def language_codes() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def stored_language(user) -> str:
    """The user's stored choice, or "" when they made none (or are anonymous)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.pk:
        return ""
    from portal.models import UserPreference

    language = UserPreference.objects.filter(user=user).values_list("language", flat=True).first() or ""
    return language if language in language_codes() else ""


def language_for(user) -> str:
    """The language to write to `user` in when no browser is asking (emails): their choice, else LANGUAGE_CODE."""
    return stored_language(user) or settings.LANGUAGE_CODE


@transaction.atomic
def user_language_set(*, user, language: str) -> str:
    """Store `user`'s language (one of LANGUAGES, or "" to follow the browser again)."""
    from portal.models import UserPreference

    language = (language or "").strip()
    if language and language not in language_codes():
        raise ValidationError(_("Choose one of the offered languages."), field="language")
    UserPreference.objects.update_or_create(user=user, defaults={"language": language})
    return language


def remember_language_on_login(sender, request, user, **kwargs) -> None:
    """user_logged_in: cache the stored choice in the new session (UserLanguageMiddleware reads it)."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_KEY] = stored_language(user)
