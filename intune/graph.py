"""The only module that talks to Microsoft Graph (and to the token endpoint in front of it).

- Token: OAuth2 client credentials, one POST to
  ``{INTUNE_AUTHORITY_URL}/{tenant}/oauth2/v2.0/token`` with scope
  ``https://graph.microsoft.com/.default``, cached until shortly before it expires: in the
  process, and (encrypted with a key derived from the client secret) in the database, so every
  web and worker process shares one token.
  This is the same request msal's ``acquire_token_for_client`` makes, without msal's OpenID
  discovery round trip, so it works unchanged against Entra ID, a national cloud or a proxy.
- Every call has a timeout (``INTUNE_HTTP_TIMEOUT``).
- 429 and 503 wait ``Retry-After`` seconds (capped), other 5xx and connection failures back off
  exponentially (capped), for a limited number of attempts. Other 4xx raise at once.
- A POST whose answer never arrived (read timeout, connection dropped after sending) is not
  repeated blindly: it raises :class:`GraphNoAnswer` and the caller recovers by looking the
  object up, so Graph never gets the same task twice.
- Only ``https://`` URLs are accepted. Certificates are always verified; a private certificate
  authority is trusted through ``REQUESTS_CA_BUNDLE`` (or ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TASKS_PATH = "/deviceAppManagement/deviceAppManagementTasks"
TOKEN_EXPIRY_MARGIN = 120  # seconds: renew the token a little before Entra ID would refuse it
MAX_LIST_PAGES = 20


class GraphError(Exception):
    """Talking to Graph failed. `message` is one readable line; `status` the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class GraphNotConfigured(GraphError):
    """Credentials or URLs are missing or unusable."""


class GraphAuthError(GraphError):
    """No token could be obtained (credentials refused, endpoint unreachable or untrusted)."""


class GraphNoAnswer(GraphError):
    """The request may have reached Graph but no answer came back (the outcome is unknown)."""


class GraphStopped(GraphError):
    """The Intune connection was turned off while calls were still to be made."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # per call, for 5xx and connection failures
    max_throttled: int = 5  # 429/503 answers honoured per call before giving up
    backoff_base: float = 1.0  # seconds; doubles per attempt
    backoff_cap: float = 30.0
    retry_after_cap: float = 120.0

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            max_attempts=int(getattr(settings, "INTUNE_MAX_ATTEMPTS", cls.max_attempts)),
            backoff_base=float(getattr(settings, "INTUNE_BACKOFF_BASE_SECONDS", cls.backoff_base)),
            backoff_cap=float(getattr(settings, "INTUNE_BACKOFF_CAP_SECONDS", cls.backoff_cap)),
            retry_after_cap=float(getattr(settings, "INTUNE_RETRY_AFTER_CAP_SECONDS", cls.retry_after_cap)),
        )

    def backoff(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1` (attempt counts from 1), with a little jitter."""
        delay = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return delay * (1 + random.random() / 10)  # noqa: S311 - jitter, not security

    def retry_after(self, response: requests.Response, attempt: int) -> float:
        """Seconds Graph asked us to wait (Retry-After: seconds or an HTTP date), capped."""
        value = (response.headers.get("Retry-After") or "").strip()
        seconds: float | None = None
        if value:
            try:
                seconds = float(value)
            except ValueError:
                try:
                    seconds = parsedate_to_datetime(value).timestamp() - time.time()
                except (TypeError, ValueError):
                    seconds = None
        if seconds is None or seconds < 0:
            seconds = self.backoff(attempt)
        return min(seconds, self.retry_after_cap)


# Tokens shared by every client of this process, keyed by (authority, tenant, client id).
_token_cache: dict[tuple[str, str, str], tuple[str, float]] = {}
_token_lock = threading.Lock()


def clear_token_cache() -> None:
    with _token_lock:
        _token_cache.clear()


def ca_bundle() -> str | bool:
    """What `requests` verifies certificates against: a private CA bundle if configured, else certifi.

    Never False: certificate verification cannot be turned off.
    """
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


def credentials_configured() -> bool:
    return bool(settings.INTUNE_TENANT_ID and settings.INTUNE_CLIENT_ID and settings.INTUNE_CLIENT_SECRET)


def _require_https(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise GraphNotConfigured(f"{name} must be an https:// URL (it is {url!r}).")
    return url.rstrip("/")


def _describe(response: requests.Response) -> str:
    """One readable line from a Graph error answer."""
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            detail = ": ".join(str(x) for x in (error.get("code"), error.get("message")) if x)
        elif error:
            detail = ": ".join(str(x) for x in (error, body.get("error_description")) if x)
    if not detail:
        detail = (response.text or "").strip().replace("\n", " ")[:200]
    reason = f" {response.reason}" if response.reason else ""
    return f"HTTP {response.status_code}{reason}" + (f" ({detail})" if detail else "")


class GraphClient:
    """A small Graph client for Intune's deviceAppManagementTasks.

    `should_continue` is asked before every request (retries included); when it answers False
    the client raises GraphStopped without sending anything. `sleep` is how the client waits.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_url: str,
        graph_url: str,
        timeout: float,
        retry: RetryPolicy | None = None,
        should_continue: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not (tenant_id and client_id and client_secret):
            raise GraphNotConfigured(
                "Intune credentials are not configured: set INTUNE_TENANT_ID, INTUNE_CLIENT_ID "
                "and INTUNE_CLIENT_SECRET."
            )
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.authority_url = _require_https(authority_url, "INTUNE_AUTHORITY_URL")
        self.graph_url = _require_https(graph_url, "INTUNE_GRAPH_URL")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.should_continue = should_continue or (lambda: True)
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "remediation-portal/1.0"

    @classmethod
    def from_settings(cls, *, should_continue: Callable[[], bool] | None = None) -> GraphClient:
        return cls(
            tenant_id=settings.INTUNE_TENANT_ID,
            client_id=settings.INTUNE_CLIENT_ID,
            client_secret=settings.INTUNE_CLIENT_SECRET,
            authority_url=settings.INTUNE_AUTHORITY_URL,
            graph_url=settings.INTUNE_GRAPH_URL,
            timeout=settings.INTUNE_HTTP_TIMEOUT,
            retry=RetryPolicy.from_settings(),
            should_continue=should_continue,
        )

    def close(self) -> None:
        self.session.close()

    # --- token -------------------------------------------------------------------------
    @property
    def token_url(self) -> str:
        return f"{self.authority_url}/{self.tenant_id}/oauth2/v2.0/token"

    def _cache_key(self) -> tuple[str, str, str]:
        return (self.authority_url, self.tenant_id, self.client_id)

    def token(self) -> str:
        """An access token for Graph: from this process, else from the shared store, else the token endpoint."""
        key = self._cache_key()
        with _token_lock:
            cached = _token_cache.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            shared = self._shared_token()
            if shared is not None:
                access_token, seconds_left = shared
                _token_cache[key] = (access_token, time.monotonic() + seconds_left)
                return access_token
            try:
                response = self._send(
                    "POST",
                    self.token_url,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self._client_secret,
                        "scope": GRAPH_SCOPE,
                    },
                    what="token request",
                    idempotent=True,  # asking twice for a token has no side effect
                )
            except (GraphAuthError, GraphStopped):
                raise
            except GraphError as exc:  # without a token no call can work: the whole run stops
                raise GraphAuthError(exc.message, status=exc.status) from exc
            try:
                body = response.json()
                access_token = body["access_token"]
                expires_in = float(body.get("expires_in", 3599))
            except (ValueError, KeyError, TypeError) as exc:
                raise GraphAuthError("The token endpoint answered without an access token.") from exc
            lifetime = max(expires_in - TOKEN_EXPIRY_MARGIN, expires_in / 2)
            _token_cache[key] = (access_token, time.monotonic() + lifetime)
            self._share_token(access_token, lifetime)
            return access_token

    # The token is also kept in the database so that web and worker processes (and
    # `manage.py intune_sync`) share one token instead of each asking for its own. It is
    # encrypted with a key derived from the client secret: the row alone grants nothing.
    def _fernet(self) -> Fernet:
        material = hashlib.sha256(f"intune-graph-token|{self._client_secret}|{settings.SECRET_KEY}".encode()).digest()
        return Fernet(base64.urlsafe_b64encode(material))

    def _shared_key(self) -> str:
        secret_hash = hashlib.sha256(self._client_secret.encode()).hexdigest()
        return hashlib.sha256("|".join((*self._cache_key(), secret_hash)).encode()).hexdigest()

    def _shared_token(self) -> tuple[str, float] | None:
        from .models import GraphAccessToken

        try:
            row = GraphAccessToken.objects.filter(cache_key=self._shared_key(), expires_at__gt=timezone.now()).first()
            if row is None:
                return None
            token = self._fernet().decrypt(row.encrypted_token.encode()).decode()
        except (DatabaseError, InvalidToken):
            logger.info("No usable shared Graph token; asking for a new one.")
            return None
        return token, (row.expires_at - timezone.now()).total_seconds()

    def _share_token(self, access_token: str, lifetime: float) -> None:
        from .models import GraphAccessToken

        now = timezone.now()
        try:
            with transaction.atomic():
                GraphAccessToken.objects.filter(expires_at__lte=now).delete()
                GraphAccessToken.objects.update_or_create(
                    cache_key=self._shared_key(),
                    defaults={
                        "encrypted_token": self._fernet().encrypt(access_token.encode()).decode(),
                        "expires_at": now + dt.timedelta(seconds=lifetime),
                    },
                )
        except DatabaseError:
            logger.warning("Could not share the Graph token with other processes.", exc_info=True)

    def _forget_shared(self) -> None:
        from .models import GraphAccessToken

        try:
            with transaction.atomic():
                GraphAccessToken.objects.filter(cache_key=self._shared_key()).delete()
        except DatabaseError:
            logger.warning("Could not forget the shared Graph token.", exc_info=True)

    def _forget_token(self) -> None:
        with _token_lock:
            _token_cache.pop(self._cache_key(), None)
        self._forget_shared()

    # --- transport ---------------------------------------------------------------------
    def _check_continue(self) -> None:
        if not self.should_continue():
            raise GraphStopped("The Microsoft Intune connection was turned off; nothing more is sent.")

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        idempotent: bool,
        headers: dict | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One logical call with retries. Returns a 2xx response or raises a GraphError."""
        attempt = 0
        throttled = 0
        while True:
            self._check_continue()
            attempt += 1
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=self.timeout, verify=ca_bundle(), **kwargs
                )
            except requests.exceptions.SSLError as exc:
                raise GraphError(
                    f"{what}: the TLS certificate of {urlsplit(url).hostname} is not trusted "
                    f"({exc.__class__.__name__}). Add its certificate authority to REQUESTS_CA_BUNDLE."
                ) from exc
            except (requests.exceptions.ConnectTimeout, requests.exceptions.ConnectionError) as exc:
                sent = not isinstance(exc, requests.exceptions.ConnectTimeout) and _maybe_sent(exc)
                if sent and not idempotent:
                    raise GraphNoAnswer(f"{what}: the connection was lost before Graph answered ({exc}).") from exc
                if attempt >= self.retry.max_attempts:
                    raise GraphError(
                        f"{what}: could not reach {urlsplit(url).hostname} after {attempt} attempts "
                        f"({exc.__class__.__name__})."
                    ) from exc
                self._wait(self.retry.backoff(attempt), what, f"connection failed ({exc.__class__.__name__})")
                continue
            except requests.exceptions.Timeout as exc:  # read timeout: the request was sent
                if not idempotent:
                    raise GraphNoAnswer(f"{what}: no answer within {self.timeout} s.") from exc
                if attempt >= self.retry.max_attempts:
                    raise GraphError(f"{what}: no answer within {self.timeout} s, {attempt} attempts.") from exc
                self._wait(self.retry.backoff(attempt), what, "timed out")
                continue
            except requests.exceptions.RequestException as exc:
                raise GraphError(f"{what}: {exc}") from exc

            status = response.status_code
            if status < 400:
                return response
            if status in (429, 503):
                throttled += 1
                if throttled > self.retry.max_throttled:
                    raise GraphError(
                        f"{what}: Graph is still throttling after {throttled} answers; {_describe(response)}",
                        status=status,
                    )
                attempt -= 1  # a throttled answer is not a failed attempt
                self._wait(self.retry.retry_after(response, throttled), what, f"HTTP {status}")
                continue
            if status >= 500:
                if attempt >= self.retry.max_attempts:
                    raise GraphError(f"{what} failed after {attempt} attempts: {_describe(response)}", status=status)
                self._wait(self.retry.backoff(attempt), what, f"HTTP {status}")
                continue
            if status in (400, 401) and what == "token request":
                raise GraphAuthError(
                    f"The token endpoint refused the Intune credentials: {_describe(response)}", status=status
                )
            if status == 401:
                self._forget_token()
            raise GraphError(f"{what}: {_describe(response)}", status=status)

    def _wait(self, seconds: float, what: str, why: str) -> None:
        logger.info("Graph %s: %s; retrying in %.1f s", what, why, seconds)
        self.sleep(seconds)

    def _graph(self, method: str, path: str, *, what: str, idempotent: bool, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{self.graph_url}{path}"
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
            try:
                return self._send(method, url, what=what, idempotent=idempotent, headers=headers, **kwargs)
            except GraphError as exc:
                # A token revoked or expired early: Graph refused it without acting; ask for a new one once.
                if exc.status != 401 or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # --- deviceAppManagementTasks --------------------------------------------------------
    def create_task(self, body: dict) -> dict:
        response = self._graph("POST", TASKS_PATH, json=body, what="Creating the Intune task", idempotent=False)
        data = response.json()
        if not data.get("id"):
            raise GraphError("Graph created the task but answered without its id.")
        return data

    def get_task(self, task_id: str) -> dict:
        return self._graph("GET", f"{TASKS_PATH}/{task_id}", what="Reading the Intune task", idempotent=True).json()

    def find_tasks(self, *, display_name: str, creator: str) -> list[dict]:
        """Tasks with this displayName and creator (used to recover a push whose answer was lost)."""
        odata_filter = f"displayName eq {_odata_string(display_name)} and creator eq {_odata_string(creator)}"
        url: str | None = TASKS_PATH
        params: dict | None = {"$filter": odata_filter}
        found: list[dict] = []
        for _ in range(MAX_LIST_PAGES):
            if not url:
                break
            data = self._graph("GET", url, params=params, what="Looking up the Intune task", idempotent=True).json()
            found.extend(data.get("value", []))
            url, params = data.get("@odata.nextLink"), None
        return found

    def update_status(self, task_id: str, *, status: str, note: str) -> None:
        # Setting a status is idempotent, so a lost answer may safely be asked again.
        self._graph(
            "POST",
            f"{TASKS_PATH}/{task_id}/updateStatus",
            json={"status": status, "note": note},
            what="Sending the decision to Intune",
            idempotent=True,
        )

    def test_connection(self) -> str:
        """Fetch a token and make one read-only GET. Returns a short description of what worked."""
        self.token()
        data = self._graph("GET", TASKS_PATH, params={"$top": "1"}, what="Listing Intune tasks", idempotent=True).json()
        return f"Token obtained and Graph answered ({len(data.get('value', []))} task(s) in the first page)."


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _maybe_sent(exc: Exception) -> bool:
    """Whether a connection error may have happened after the request reached the server."""
    text = repr(exc)
    never_sent = ("NewConnectionError", "NameResolutionError", "Connection refused", "Failed to establish")
    return not any(marker in text for marker in never_sent)
