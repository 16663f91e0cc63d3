"""The portal's own small pages: the language choice of the admin header."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal import preferences
from portal.errors import ApplicationError


@require_POST
@staff_member_required
def set_language(request):
    """POST `language` (a code of LANGUAGES, or "" for the browser's): store it, reload `next` in it."""
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:index")
    try:
        language = preferences.user_language_set(user=request.user, language=request.POST.get("language", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(target)
    request.session[preferences.SESSION_KEY] = language
    translation.activate(language or translation.get_language_from_request(request))
    return HttpResponseRedirect(target)
