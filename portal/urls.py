from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.health import healthz
from portal.views import set_language

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
    path("api/v1/", include((api_v1, "api"))),
    path("api/", include((api_defender, "defender"))),
    # The language choice of the admin header (stored per user, portal.preferences).
    path("admin/language/", set_language, name="set-language"),
    path("admin/", admin.site.urls),
    # The project's JavaScript strings and formats of the active language (djangojs catalogue).
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # DRF's session login for the browsable API (throttled by django-axes like the admin's).
    path("api-auth/", include("rest_framework.urls")),
    path("healthz", healthz, name="healthz"),
]
