"""A loopback fake of the Defender for Endpoint API's recommendations, machines and machineReferences.

Served over HTTPS by tests/msfake.py (a throw-away CA trusted through REQUESTS_CA_BUNDLE, the token
endpoint, rules for 429/500/broken answers, a record of every request). Paging is the API's:
the recommendations list pages with `$top`/`$skip` and gives no next link; the machines list and
machineReferences give `@odata.nextLink`.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, quote

from tests.msfake import HttpsFake

RECOMMENDATIONS = "/api/recommendations"
MACHINES = "/api/machines"
REFERENCES = r"/api/recommendations/[^/]+/machineReferences"


def recommendation(external_id: str, *, exposed: int = 1, **fields) -> dict:
    """A recommendation as `GET /api/recommendations` returns it."""
    configuration = "scid-" in external_id
    return {
        "id": external_id,
        "productName": None if configuration else external_id.rsplit("-_-", 1)[-1],
        "recommendationName": f"Fix {external_id}",
        "weaknesses": 0 if configuration else 3,
        "vendor": None if configuration else "contoso",
        "recommendedVersion": "",
        "recommendationCategory": "Security controls" if configuration else "Application",
        "subCategory": "Antivirus" if configuration else "",
        "severityScore": 5.5,
        "publicExploit": False,
        "activeAlert": False,
        "associatedThreats": [],
        "remediationType": None if configuration else "Update",
        "status": "Active",
        "configScoreImpact": 0,
        "exposureImpact": 1.5,
        "totalMachineCount": exposed,
        "exposedMachinesCount": exposed,
        "nonProductivityImpactedAssets": 0,
        "relatedComponent": external_id,
        **fields,
    }


def machine(number: int, *, group: str = "Servers", **fields) -> dict:
    """A machine as `GET /api/machines` returns it."""
    return {
        "id": f"{number:040x}",
        "computerDnsName": f"host-{number}.contoso.com",
        "firstSeen": "2025-01-02T03:04:05.1234567Z",
        "lastSeen": "2026-11-20T00:42:15.1234567Z",
        "osPlatform": "Windows11",
        "version": "23H2",
        "lastIpAddress": f"10.0.{number // 250}.{number % 250}",
        "healthStatus": "Active",
        "rbacGroupId": 7,
        "rbacGroupName": group,
        "riskScore": "Low",
        "exposureLevel": "Medium",
        "isAadJoined": True,
        "aadDeviceId": None,
        "machineTags": ["tier-1"],
        **fields,
    }


def reference(device: dict) -> dict:
    """The machine reference of a machine (`GET /api/recommendations/{id}/machineReferences`)."""
    return {key: device.get(key) for key in ("id", "computerDnsName", "osPlatform", "rbacGroupName")}


class DefenderFake(HttpsFake):
    def __init__(self, cert_dir: Path):
        super().__init__(cert_dir)
        self.recommendations: list[dict] = []
        self.machines: list[dict] = []
        self.references: dict[str, list[dict]] = {}  # recommendation id -> its exposed devices
        self.references_page_size = 2  # the fake's own page size for machineReferences (next links)
        self.machines_next_link_host = ""  # another host name to put in the machines' next links

    @property
    def scope(self) -> str:
        return f"{self.api_url}/.default"

    @property
    def api_url(self) -> str:
        return self.base_url

    def expose(self, external_id: str, devices: list[dict]) -> None:
        self.references[external_id] = [reference(d) for d in devices]
        for rec in self.recommendations:
            if rec["id"] == external_id:
                rec["exposedMachinesCount"] = len(devices)

    def reference_calls(self, external_id: str):
        return self.calls("GET", f"/api/recommendations/{re.escape(external_id)}/machineReferences")

    # --- serving -------------------------------------------------------------------------------
    def route(self, method: str, path: str, body, headers, query: str):
        if not self.authorized(headers):
            return 401, {"error": {"code": "Unauthorized", "message": "Authorization token is missing or invalid"}}
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if method != "GET":
            return 405, {"error": {"code": "BadRequest", "message": f"{method} {path}"}}
        if path == RECOMMENDATIONS:
            return self._skip_page(self.recommendations, params, "Recommendations")
        if path == MACHINES:
            status, page = self._skip_page(self.machines, params, "Machines")
            top, skip = int(params.get("$top", "10000")), int(params.get("$skip", "0"))
            if status == 200 and skip + top < len(self.machines):
                host = self.machines_next_link_host or f"127.0.0.1:{self.port}"
                page["@odata.nextLink"] = f"https://{host}{MACHINES}?$top={top}&$skip={skip + top}"
            return status, page
        match = re.fullmatch(r"/api/recommendations/([^/]+)/machineReferences", path)
        if match:
            external_id = match.group(1)
            if not any(r["id"] == external_id for r in self.recommendations):
                return 404, {"error": {"code": "NotFound", "message": f"Recommendation {external_id} not found"}}
            devices = self.references.get(external_id, [])
            start = int(params.get("$skiptoken", "0"))
            page = {
                "@odata.context": f"{self.api_url}/api/$metadata#MachineReferences",
                "value": devices[start : start + self.references_page_size],
            }
            if start + self.references_page_size < len(devices):
                page["@odata.nextLink"] = (
                    f"{self.api_url}/api/recommendations/{quote(external_id)}/machineReferences"
                    f"?$skiptoken={start + self.references_page_size}"
                )
            return 200, page
        return 404, {"error": {"code": "NotFound", "message": path}}

    def _skip_page(self, items: list[dict], params: dict, entity: str):
        top = int(params.get("$top", "10000"))
        if top > 10000:
            return 400, {"error": {"code": "InvalidInput", "message": "$top must be at most 10000"}}
        skip = int(params.get("$skip", "0"))
        return 200, {"@odata.context": f"{self.api_url}/api/$metadata#{entity}", "value": items[skip : skip + top]}
