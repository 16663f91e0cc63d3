"""Routes of the Defender-compatible machines and recommendations API, mounted at /api/ (DESIGN.md 13)."""

from portal.odata_api import defender_path

from .defender import (
    MachineDetailView,
    MachineListView,
    RecommendationDetailView,
    RecommendationListView,
    RecommendationMachineReferencesView,
)

urlpatterns = [
    defender_path("machines", MachineListView.as_view(), name="machines"),
    defender_path("machines/<str:pk>", MachineDetailView.as_view(), name="machine"),
    defender_path("recommendations", RecommendationListView.as_view(), name="recommendations"),
    defender_path("recommendations/<str:pk>", RecommendationDetailView.as_view(), name="recommendation"),
    defender_path(
        "recommendations/<str:pk>/machineReferences",
        RecommendationMachineReferencesView.as_view(),
        name="recommendation-machine-references",
    ),
]
