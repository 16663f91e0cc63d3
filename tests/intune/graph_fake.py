"""A loopback fake of Graph's deviceAppManagementTasks (and, through tests/msfake.py, of the token endpoint).

Served over HTTPS by the shared machinery of tests/msfake.py (a throw-away CA trusted through
REQUESTS_CA_BUNDLE). Besides its rules (429 with Retry-After, 500, slow answers) it can drop the
connection after creating a task, or change a task as an Intune admin would.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from tests.msfake import CLIENT_ID, CLIENT_SECRET, TENANT, HttpsFake, Recorded, Rule, make_certificates

TASKS = "/beta/deviceAppManagement/deviceAppManagementTasks"

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "TASKS", "TENANT", "GraphFake", "Recorded", "Rule", "make_certificates"]


class GraphFake(HttpsFake):
    scope = "https://graph.microsoft.com/.default"

    def __init__(self, cert_dir: Path):
        super().__init__(cert_dir)
        self.tasks: dict[str, dict] = {}
        self.status_updates: list[tuple[str, dict]] = []

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/beta"

    # --- programming the fake ----------------------------------------------------------------
    def drop_after_create(self, times: int = 1) -> None:
        """The next create makes the task, then the connection breaks before the answer."""
        self.rules.append(Rule("POST", TASKS, status=0, times=times, drop_after_handling=True))

    def admin_sets(self, task_id: str, *, status: str, assigned_to: str | None = None) -> None:
        """What an Intune admin does in the Intune console."""
        with self._lock:
            self.tasks[task_id]["status"] = status
            if assigned_to is not None:
                self.tasks[task_id]["assignedTo"] = assigned_to

    def add_task(self, body: dict) -> dict:
        with self._lock:
            task = {**body, "id": str(uuid.uuid4()), "createdDateTime": dt.datetime.now(dt.UTC).isoformat()}
            task.setdefault("assignedTo", "")
            self.tasks[task["id"]] = task
            return task

    @property
    def creates(self) -> list[Recorded]:
        return self.calls("POST", TASKS)

    # --- serving -------------------------------------------------------------------------------
    def route(self, method: str, path: str, body, headers, query: str):
        if not path.startswith("/beta/"):
            return 404, {"error": {"code": "NotFound", "message": path}}
        if not self.authorized(headers):
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}
        if path == TASKS and method == "POST":
            return 201, self.add_task(body)
        if path == TASKS and method == "GET":
            return 200, {"value": self._list(parse_qs(query).get("$filter", [""])[0])}
        match = re.fullmatch(rf"{TASKS}/([^/]+)(/updateStatus)?", path)
        if match:
            task = self.tasks.get(match.group(1))
            if task is None:
                return 404, {"error": {"code": "ResourceNotFound", "message": "No such task."}}
            if match.group(2) and method == "POST":
                with self._lock:
                    task["status"] = body["status"]
                    self.status_updates.append((task["id"], body))
                return 204, None
            if method == "GET":
                return 200, task
        return 405, {"error": {"code": "BadRequest", "message": f"{method} {path}"}}

    def _list(self, odata_filter: str) -> list[dict]:
        tasks = list(self.tasks.values())
        for name, value in re.findall(r"(\w+) eq '((?:[^']|'')*)'", odata_filter):
            value = value.replace("''", "'")
            tasks = [t for t in tasks if t.get(name) == value]
        return tasks
