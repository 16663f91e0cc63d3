from django.contrib import admin
from django.urls import include, path, reverse_lazy
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.health import healthz
from portal.views import favicon, set_language

api_v1 = [
    path("", include("remediation.api.urls")),
    path("", include("recommendations.api.urls")),
    path("", include("recommendations.api.exception_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script from a URL, so the CSP needs no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]

# Defender-compatible read API (DESIGN.md section 13): Defender's paths and names under /api/.
api_defender = [
    path("", include("remediation.api.defender_urls")),
    path("", include("recommendations.api.defender_urls")),
]

admin.site.site_header = _("Remediation portal")
admin.site.site_title = _("Remediation portal")
admin.site.index_title = _("Remediation")

urlpatterns = [
    # `/` leads to the portal, which is the admin (DESIGN.md section 11).
    path("", RedirectView.as_view(url=reverse_lazy("admin:index"), permanent=False), name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("api/v1/", include((api_v1, "api"))),
    path("api/", include((api_defender, "defender"))),
    # The language choice of the admin header (stored per user, portal.preferences).
    path("admin/language/", set_language, name="set-language"),
    path("admin/", admin.site.urls),
    # gettext() and formats of the active language for the admin's own scripts (the exception form's
    # calendar) and the portal's (djangojs catalogue).
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # DRF's session login for the browsable API (throttled by django-axes like the admin's).
    path("api-auth/", include("rest_framework.urls")),
    path("healthz", healthz, name="healthz"),
]

handler403 = "portal.views.permission_denied"
handler404 = "portal.views.page_not_found"
