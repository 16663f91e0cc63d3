"""A loopback fake of the Entra ID token endpoint and of Graph's deviceAppManagementTasks.

A threaded HTTPS server on 127.0.0.1 (random port) with a certificate made at run time by a
throw-away certificate authority; the tests trust that CA through REQUESTS_CA_BUNDLE, exactly
as a deployment trusts a private CA. It records every request and can be told to answer
429 with Retry-After, 500, to answer slowly, to drop the connection after creating a task, or
to change a task as an Intune admin would.

Like Graph, it checks every task it is asked to create against the published beta metadata
(tests/intune/odata_schema.py reading tests/intune/data/graph-beta-tasks.xml) and answers 400
with OData's message when the body breaks it. It also serves Intune's managed devices
(`GET /deviceManagement/managedDevices?$filter=azureADDeviceId eq '…' or …&$select=…`), refusing
a $filter of more than 15 expressions or a URL over 2,048 characters, as Graph documents.
By default it manages every Entra ID device id it is asked about; `not_managed()` says otherwise.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.intune.odata_schema import graph_beta

TENANT = "contoso-tenant"
CLIENT_ID = "portal-client-id"
CLIENT_SECRET = "portal-client-secret"
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


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it. Returns (ca, cert, key) paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test private CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: object
    at: float
    url_length: int = 0


@dataclass
class Rule:
    """Answer matching requests with `status` (and headers) instead of the normal answer, `times` times."""

    method: str
    path_regex: str
    status: int = 500
    times: int = 1
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering normally (slow response)
    drop_after_handling: bool = False  # do the work, then close the connection without answering

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path_regex, path) is not None


class GraphFake:
    def __init__(self, cert_dir: Path):
        self.ca_path, cert_path, key_path = make_certificates(cert_dir)
        self.requests: list[Recorded] = []
        self.tasks: dict[str, dict] = {}
        self.task_devices: dict[str, list[dict]] = {}  # a task's managedDevices (not returned on reads)
        self.managed: dict[str, list[dict]] = {}  # Entra ID device id (lower case) -> Intune's records
        self.unmanaged: set[str] = set()  # Entra ID device ids Intune does not manage
        self.status_updates: list[tuple[str, dict]] = []
        self.rules: list[Rule] = []
        self.token_lifetime = 3599
        self.revoked: set[str] = set()  # access tokens Graph no longer accepts
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are written separately: without TCP_NODELAY each answer on a kept-alive
            # connection waits for the client's delayed ACK (about 40 ms).
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

            def do_PATCH(self):
                fake._handle(self, "PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle and addresses ---------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/beta"

    def start(self) -> GraphFake:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- programming the fake ----------------------------------------------------------------
    def fail(self, method: str, path_regex: str, *, status: int = 500, times: int = 1, headers=None) -> None:
        self.rules.append(Rule(method, path_regex, status=status, times=times, headers=headers or {}))

    def slow(self, method: str, path_regex: str, *, seconds: float, times: int = 1) -> None:
        self.rules.append(Rule(method, path_regex, status=0, times=times, delay=seconds))

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
    def calls(self, method: str | None = None, path_regex: str | None = None) -> list[Recorded]:
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method) and (path_regex is None or re.fullmatch(path_regex, r.path))
        ]

    @property
    def token_requests(self) -> list[Recorded]:
        return self.calls("POST", rf"/{TENANT}/oauth2/v2\.0/token")

    @property
    def creates(self) -> list[Recorded]:
        return self.calls("POST", TASKS)

    @property
    def device_lookups(self) -> list[Recorded]:
        return self.calls("GET", MANAGED_DEVICES)

    # --- serving -------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type", "")
        if "application/x-www-form-urlencoded" in content_type:
            body: object = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        else:
            body = None
        with self._lock:
            self.requests.append(
                Recorded(
                    method,
                    path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    dict(handler.headers),
                    body,
                    time.monotonic(),
                    len(self.base_url) + len(handler.path),
                )
            )
            rule = next((r for r in self.rules if r.times > 0 and r.matches(method, path)), None)
            if rule:
                rule.times -= 1
        if rule and rule.status:
            self._reply(
                handler, rule.status, {"error": {"code": "injected", "message": f"HTTP {rule.status}"}}, rule.headers
            )
            return
        if rule and rule.delay:
            time.sleep(rule.delay)
        if len(self.base_url) + len(handler.path) > MAX_URL_LENGTH:
            self._reply(handler, 400, odata_error("The request URL is longer than 2,048 characters."))
            return
        status, payload = self._route(method, path, body, handler.headers, parts.query)
        if rule and rule.drop_after_handling:
            handler.close_connection = True
            handler.connection.close()
            return
        self._reply(handler, status, payload)

    def _reply(self, handler, status: int, payload, headers: dict | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, str(value))
            if data:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout)
            pass

    def _route(self, method: str, path: str, body, headers, query: str):
        if method == "POST" and path == f"/{TENANT}/oauth2/v2.0/token":
            return self._token(body)
        if not path.startswith("/beta/"):
            return 404, {"error": {"code": "NotFound", "message": path}}
        valid = {f"Bearer token-{i}" for i in range(1, 100)} - {f"Bearer {t}" for t in self.revoked}
        if headers.get("Authorization", "") not in valid:
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

    def _token(self, form):
        if not isinstance(form, dict) or form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}
        if form.get("scope") != "https://graph.microsoft.com/.default":
            return 400, {"error": "invalid_scope"}
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "access_token": f"token-{len(self.token_requests)}",
        }

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


def odata_error(message: str, code: str = "BadRequest") -> dict:
    """An error body as Graph's OData services write it."""
    return {"error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}}
