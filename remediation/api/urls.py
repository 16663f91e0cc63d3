from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from .views import ActivityViewSet

router = SimpleRouter()
router.register("remediation-activities", ActivityViewSet, basename="remediation-activity")

# The CSV downloads have contract paths without a trailing slash, so they are routed by hand
# (before the router, so `export.csv` is never taken for an activity id).
urlpatterns = [
    path(
        "remediation-activities/export.csv",
        ActivityViewSet.as_view({"get": "export_csv"}),
        name="remediation-activity-export-csv",
    ),
    re_path(
        r"^remediation-activities/(?P<pk>[^/]+)/devices\.csv$",
        ActivityViewSet.as_view({"get": "devices_csv"}),
        name="remediation-activity-devices-csv",
    ),
    *router.urls,
]
