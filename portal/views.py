"""The portal's own small pages: the language choice of the admin header, and error pages in the
admin's style."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import defaults
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


def favicon(request):
    """/favicon.ico, which browsers ask for on their own: the portal's icon (a static file)."""
    return redirect(static("portal/favicon.svg"), permanent=True)


def _is_api(request) -> bool:
    return request.path.startswith("/api")


def _error_page(request, *, status: int, title: str, message: str):
    context = {
        **admin.site.each_context(request),
        "title": title,
        "subtitle": None,
        "message": message,
        "status": status,
    }
    response = TemplateResponse(request, "portal/error.html", context, status=status)
    return response.render()


def permission_denied(request, exception=None):
    """403 in the admin's style (the API answers its own JSON 403s before this is reached)."""
    if _is_api(request):
        return defaults.permission_denied(request, exception)
    detail = str(exception) if exception and str(exception) else ""
    return _error_page(
        request,
        status=403,
        title=_("You may not open this page"),
        message=detail or _("Your role does not allow this page. Ask an administrator if you need it."),
    )


def page_not_found(request, exception=None):
    """404 in the admin's style (unknown, and out of your device groups, look the same)."""
    if _is_api(request):
        return defaults.page_not_found(request, exception)
    return _error_page(
        request,
        status=404,
        title=_("Page not found"),
        message=_("There is nothing here, or it is outside the device groups you may see."),
    )
