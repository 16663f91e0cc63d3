"""A loopback fake of Graph's deviceAppManagementTasks and managedDevices (and, through
tests/msfake.py, of the token endpoint).

Served over HTTPS by the shared machinery of tests/msfake.py (a throw-away CA trusted through
REQUESTS_CA_BUNDLE). Besides its rules (429 with Retry-After, 500, slow answers) it can drop the
connection after creating a task, or change a task as an Intune admin would.

Like Graph, it checks every task it is asked to create against the published beta metadata
(tests/intune/odata_schema.py reading tests/intune/data/graph-beta-tasks.xml) and answers 400
with OData's message when the body breaks it. It also serves Intune's managed devices
(`GET /deviceManagement/managedDevices?$filter=azureADDeviceId eq '…' or …&$select=…`), refusing
a $filter of more than 15 expressions or a URL over 2,048 characters, as Graph documents.
By default it manages every Entra ID device id it is asked about; `not_managed()` says otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from tests.intune.odata_schema import graph_beta
from tests.msfake import CLIENT_ID, CLIENT_SECRET, TENANT, HttpsFake, Recorded, Rule, make_certificates

TASKS = "/beta/deviceAppManagement/deviceAppManagementTasks"
MANAGED_DEVICES = "/beta/deviceManagement/managedDevices"
MAX_FILTER_EXPRESSIONS = 15  # Graph's documented limit of expressions in one $filter clause
MAX_URL_LENGTH = 2048  # and of a request URL
# What the fake knows of microsoft.graph.managedDevice (a part of its properties), for $select.
MANAGED_DEVICE_PROPERTIES = {
    "id",
    "azureADDeviceId",
    "deviceName",
    "lastSyncDateTime",
    "operatingSystem",
    "osVersion",
    "managementAgent",
    "userPrincipalName",
}
DEVICE_CLAUSE = re.compile(r"azureADDeviceId eq '((?:[^']|'')*)'")
LAST_SYNC = "2026-01-05T08:30:00Z"

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "MANAGED_DEVICES",
    "TASKS",
    "TENANT",
    "GraphFake",
    "Recorded",
    "Rule",
    "make_certificates",
    "odata_error",
]


def odata_error(message: str, code: str = "BadRequest") -> dict:
    """An error body as Graph's OData services write it."""
    return {"error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}}


class GraphFake(HttpsFake):
    scope = "https://graph.microsoft.com/.default"
    max_url_length = MAX_URL_LENGTH

    def __init__(self, cert_dir: Path):
        super().__init__(cert_dir)
        self.tasks: dict[str, dict] = {}
        self.task_devices: dict[str, list[dict]] = {}  # a task's managedDevices (not returned on reads)
        self.managed: dict[str, list[dict]] = {}  # Entra ID device id (lower case) -> Intune's records
        self.unmanaged: set[str] = set()  # Entra ID device ids Intune does not manage
        self.status_updates: list[tuple[str, dict]] = []

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/beta"

    # --- programming the fake ----------------------------------------------------------------
    def drop_after_create(self, times: int = 1) -> None:
        """The next create makes the task, then the connection breaks before the answer."""
        self.rules.append(Rule("POST", TASKS, status=0, times=times, drop_after_handling=True))

    def fail_after_create(self, status: int = 504) -> None:
        """The next create makes the task, then a gateway answers `status` (it gave up waiting)."""
        self.rules.append(Rule("POST", TASKS, status=0, status_after_handling=status))

    def admin_sets(self, task_id: str, *, status: str, assigned_to: str | None = None) -> None:
        """What an Intune admin does in the Intune console."""
        with self._lock:
            self.tasks[task_id]["status"] = status
            if assigned_to is not None:
                self.tasks[task_id]["assignedTo"] = assigned_to

    def add_task(self, body: dict) -> dict:
        """Create a task as Graph does (the navigation property managedDevices is kept apart)."""
        with self._lock:
            fields = {k: v for k, v in body.items() if k != "managedDevices"}
            task = {**fields, "id": str(uuid.uuid4()), "createdDateTime": dt.datetime.now(dt.UTC).isoformat()}
            task.setdefault("assignedTo", "")
            self.tasks[task["id"]] = task
            self.task_devices[task["id"]] = list(body.get("managedDevices") or [])
            return task

    def enroll(self, aad_device_id: str, *, device_name: str | None = None, last_sync: str = LAST_SYNC) -> dict:
        """Intune manages this device (one more record if it already has one: a re-enrolment)."""
        key = aad_device_id.lower()
        with self._lock:
            self.unmanaged.discard(key)
            records = self.managed.setdefault(key, [])
            record = {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"intune:{key}:{len(records)}")),
                "azureADDeviceId": aad_device_id,
                "deviceName": device_name if device_name is not None else f"MD-{key[-12:].upper()}",
                "lastSyncDateTime": last_sync,
                "operatingSystem": "Windows",
                "osVersion": "10.0.22631.4460",
                "managementAgent": "mdm",
                "userPrincipalName": "",
            }
            records.append(record)
            return record

    def not_managed(self, *aad_device_ids: str) -> None:
        with self._lock:
            for value in aad_device_ids:
                self.unmanaged.add(value.lower())
                self.managed.pop(value.lower(), None)

    def managed_device(self, aad_device_id: str) -> dict:
        """Intune's (latest) record of a device, enrolling it as the fake does when asked about it."""
        records = self.managed.get(aad_device_id.lower()) or [self.enroll(aad_device_id)]
        return max(records, key=lambda r: r["lastSyncDateTime"])

    # --- what the tests read ---------------------------------------------------------------
    @property
    def creates(self) -> list[Recorded]:
        return self.calls("POST", TASKS)

    @property
    def device_lookups(self) -> list[Recorded]:
        return self.calls("GET", MANAGED_DEVICES)

    # --- serving -------------------------------------------------------------------------------
    def url_too_long(self):
        return 400, odata_error("The request URL is longer than 2,048 characters.")

    def route(self, method: str, path: str, body, headers, query: str):
        if not path.startswith("/beta/"):
            return 404, {"error": {"code": "NotFound", "message": path}}
        if not self.authorized(headers):
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}
        if path == TASKS and method == "POST":
            problems = graph_beta().errors(body, expected_type=graph_beta().collection_type("deviceAppManagementTasks"))
            if problems:
                return 400, odata_error(problems[0])
            task = self.add_task(body)
            context = f"{self.graph_url}/$metadata#deviceAppManagement/deviceAppManagementTasks/$entity"
            return 201, {"@odata.context": context, **task}
        if path == MANAGED_DEVICES and method == "GET":
            return self._managed_devices(parse_qs(query))
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

    def _managed_devices(self, query: dict):
        odata_filter = query.get("$filter", [""])[0]
        clauses = odata_filter.split(" or ") if odata_filter else []
        if len(clauses) > MAX_FILTER_EXPRESSIONS:
            return 400, odata_error(
                f"The $filter has {len(clauses)} expressions; at most {MAX_FILTER_EXPRESSIONS} are supported."
            )
        wanted = []
        for clause in clauses:
            match = DEVICE_CLAUSE.fullmatch(clause.strip())
            if match is None:
                return 400, odata_error(f"Invalid filter clause: {clause!r}.")
            wanted.append(match.group(1).replace("''", "'"))
        selected = [p for p in query.get("$select", [""])[0].split(",") if p]
        unknown = [p for p in selected if p not in MANAGED_DEVICE_PROPERTIES]
        if unknown:
            return 400, odata_error(
                f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.managedDevice'."
            )
        found = []
        for aad_id in wanted:
            if aad_id.lower() in self.unmanaged:
                continue
            records = self.managed.get(aad_id.lower()) or [self.enroll(aad_id)]
            found.extend(records)
        if selected:
            found = [{k: v for k, v in record.items() if k in selected} for record in found]
        return 200, {"@odata.context": f"{self.graph_url}/$metadata#deviceManagement/managedDevices", "value": found}

    def _list(self, odata_filter: str) -> list[dict]:
        tasks = list(self.tasks.values())
        for name, value in re.findall(r"(\w+) eq '((?:[^']|'')*)'", odata_filter):
            value = value.replace("''", "'")
            tasks = [t for t in tasks if t.get(name) == value]
        return tasks
