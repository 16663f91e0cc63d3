"""Routes of the Defender-compatible remediation API, mounted at /api/ (DESIGN.md section 13)."""

from portal.odata_api import defender_path

from .defender import RemediationTaskDetailView, RemediationTaskListView, RemediationTaskMachineReferencesView

urlpatterns = [
    defender_path("remediationTasks", RemediationTaskListView.as_view(), name="remediation-tasks"),
    defender_path("remediationTasks/<str:pk>", RemediationTaskDetailView.as_view(), name="remediation-task"),
    defender_path(
        "remediationTasks/<str:pk>/machineReferences",
        RemediationTaskMachineReferencesView.as_view(),
        name="remediation-task-machine-references",
    ),
]
