"""A loopback HTTPS fake of a Microsoft cloud API and of the Entra ID token endpoint, for the tests.

A threaded HTTPS server on 127.0.0.1 (random port) with a certificate made at run time by a
throw-away certificate authority; the tests trust that CA through REQUESTS_CA_BUNDLE, exactly
as a deployment trusts a private CA (`trust`). It records every request and can be told to
answer 429 with Retry-After, 500, to answer slowly, or to drop the connection. Subclasses route
the API's own paths (tests/intune/graph_fake.py: Graph; tests/recommendations/defender_fake.py:
the Defender for Endpoint API).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TENANT = "contoso-tenant"
CLIENT_ID = "portal-client-id"
CLIENT_SECRET = "portal-client-secret"


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
    url_length: int = 0  # of the whole URL asked for (scheme, host, path and query)


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
    query: dict = field(default_factory=dict)  # only requests with these query parameters
    truncate: bool = False  # send the headers and half the body, then close the connection
    status_after_handling: int = 0  # do the work, then answer this status (a gateway that gave up)

    def matches(self, method: str, path: str, query: dict) -> bool:
        return (
            method == self.method
            and re.fullmatch(self.path_regex, path) is not None
            and all(query.get(k) == v for k, v in self.query.items())
        )


class HttpsFake:
    """The server, the token endpoint, the rules and the record of requests; `route` is the API."""

    scope = ""  # the scope the token endpoint accepts
    max_url_length: int | None = None  # longer URLs are refused with 400, as the API documents

    def __init__(self, cert_dir: Path):
        self.ca_path, cert_path, key_path = make_certificates(cert_dir)
        self.requests: list[Recorded] = []
        self.rules: list[Rule] = []
        self.token_lifetime = 3599
        self.revoked: set[str] = set()  # access tokens the API no longer accepts
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes: with Nagle's algorithm on, each answer on a
            # kept-alive connection waited for the client's delayed ACK (about 40 ms a request).
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

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def trust(self, monkeypatch) -> None:
        """Make `requests` trust the fake's throw-away CA, as a deployment trusts a private CA."""
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(self.ca_path))

    # --- programming the fake ----------------------------------------------------------------
    def fail(
        self, method: str, path_regex: str, *, status: int = 500, times: int = 1, headers=None, query=None
    ) -> None:
        rule = Rule(method, path_regex, status=status, times=times, headers=headers or {}, query=query or {})
        self.rules.append(rule)

    def slow(self, method: str, path_regex: str, *, seconds: float, times: int = 1) -> None:
        self.rules.append(Rule(method, path_regex, status=0, times=times, delay=seconds))

    def break_off(self, method: str, path_regex: str, *, times: int = 1, query=None) -> None:
        """The next answers start normally and stop half-way (the connection closes)."""
        self.rules.append(Rule(method, path_regex, status=0, times=times, truncate=True, query=query or {}))

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

    def authorized(self, headers) -> bool:
        valid = {f"Bearer token-{i}" for i in range(1, 100)} - {f"Bearer {t}" for t in self.revoked}
        return headers.get("Authorization", "") in valid

    # --- serving -------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
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
            url_length = len(self.base_url) + len(handler.path)
            self.requests.append(
                Recorded(method, path, query, dict(handler.headers), body, time.monotonic(), url_length)
            )
            rule = next((r for r in self.rules if r.times > 0 and r.matches(method, path, query)), None)
            if rule:
                rule.times -= 1
        if rule and rule.status:
            self._reply(
                handler, rule.status, {"error": {"code": "injected", "message": f"HTTP {rule.status}"}}, rule.headers
            )
            return
        if rule and rule.delay:
            time.sleep(rule.delay)
        if self.max_url_length is not None and url_length > self.max_url_length:
            status, payload = self.url_too_long()
        elif method == "POST" and path == f"/{TENANT}/oauth2/v2.0/token":
            status, payload = self._token(body)
        else:
            status, payload = self.route(method, path, body, handler.headers, parts.query)
        if rule and rule.drop_after_handling:
            handler.close_connection = True
            handler.connection.close()
            return
        if rule and rule.status_after_handling:
            status, payload = rule.status_after_handling, {"error": {"code": "injected", "message": "gateway"}}
        self._reply(handler, status, payload, truncate=bool(rule and rule.truncate))

    def _reply(self, handler, status: int, payload, headers: dict | None = None, truncate: bool = False) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, str(value))
            if data:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if truncate:
                handler.wfile.write(data[: len(data) // 2])
                handler.wfile.flush()
                handler.close_connection = True
                handler.connection.close()
                return
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout)
            pass

    def route(self, method: str, path: str, body, headers, query: str):
        raise NotImplementedError

    def url_too_long(self):
        return 400, {"error": {"code": "BadRequest", "message": f"The URL is longer than {self.max_url_length}."}}

    def _token(self, form):
        if not isinstance(form, dict) or form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}
        if form.get("scope") != self.scope:
            return 400, {"error": "invalid_scope", "error_description": f"AADSTS70011: scope {form.get('scope')!r}"}
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "access_token": f"token-{len(self.token_requests)}",
        }
