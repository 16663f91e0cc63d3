"""A client for Microsoft's cloud APIs (Graph, Defender for Endpoint): token, transport, retries.

Shared by `intune.graph` (Microsoft Graph) and the Defender API pull, so both obey the same
rules:

- Token: OAuth2 client credentials, one POST to ``{authority}/{tenant}/oauth2/v2.0/token``
  with the API's ``.default`` scope, cached until shortly before it expires (in the process;
  a subclass may also share it between processes). This is the request msal's
  ``acquire_token_for_client`` makes, without msal's OpenID discovery round trip, so it works
  unchanged against Entra ID, a national cloud or a proxy.
- Every call has a timeout.
- 429 and 503 wait ``Retry-After`` seconds (capped), other 5xx and connection failures back off
  exponentially (capped), for a limited number of attempts. Other 4xx raise at once.
- A POST whose outcome is unknown (read timeout, connection dropped after sending, a 5xx other
  than 503, which a gateway may give after the API did the work) is not repeated blindly: it
  raises :class:`ApiNoAnswer` and the caller recovers by looking the object up.
- Only ``https://`` URLs are accepted. Certificates are always verified; a private certificate
  authority is trusted through ``REQUESTS_CA_BUNDLE`` (or ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

logger = logging.getLogger(__name__)

TOKEN_EXPIRY_MARGIN = 120  # seconds: renew the token a little before Entra ID would refuse it
TOKEN_REQUEST = "token request"  # noqa: S105 - the name of a call, not a secret


class ApiError(Exception):
    """Talking to the API failed. `message` is one readable line; `status` the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class ApiNotConfigured(ApiError):
    """Credentials or URLs are missing or unusable."""


class ApiAuthError(ApiError):
    """No token could be obtained (credentials refused, endpoint unreachable or untrusted)."""


class ApiNoAnswer(ApiError):
    """The request may have reached the API but no answer came back (the outcome is unknown)."""


class ApiStopped(ApiError):
    """The caller's switch was turned off while calls were still to be made."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # per call, for 5xx and connection failures
    max_throttled: int = 5  # 429/503 answers honoured per call before giving up
    backoff_base: float = 1.0  # seconds; doubles per attempt
    backoff_cap: float = 30.0
    retry_after_cap: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Delay before attempt `attempt + 1` (attempt counts from 1), with a little jitter."""
        delay = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return delay * (1 + random.random() / 10)  # noqa: S311 - jitter, not security

    def retry_after(self, response: requests.Response, attempt: int) -> float:
        """Seconds the API asked us to wait (Retry-After: seconds or an HTTP date), capped."""
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


def ca_bundle() -> str | bool:
    """What `requests` verifies certificates against: a private CA bundle if configured, else certifi.

    Never False: certificate verification cannot be turned off.
    """
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


def require_https(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ApiNotConfigured(f"{name} must be an https:// URL (it is {url!r}).")
    return url.rstrip("/")


def describe(response: requests.Response) -> str:
    """One readable line from an error answer (OAuth2 and OData error bodies understood)."""
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


def odata_string(value: str) -> str:
    """An OData string literal: quoted, with quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _maybe_sent(exc: Exception) -> bool:
    """Whether a connection error may have happened after the request reached the server."""
    text = repr(exc)
    never_sent = ("NewConnectionError", "NameResolutionError", "Connection refused", "Failed to establish")
    return not any(marker in text for marker in never_sent)


# Tokens shared by every client of this process, keyed by (authority, tenant, client id, scope).
_token_cache: dict[tuple[str, ...], tuple[str, float]] = {}
_token_lock = threading.Lock()


def clear_token_cache() -> None:
    with _token_lock:
        _token_cache.clear()


@dataclass(frozen=True)
class ApiSettings:
    """Where and as whom to call: one set per API (INTUNE_* for Graph, DEFENDER_* for Defender)."""

    service: str  # "Graph", "the Defender API": used in messages
    settings_prefix: str  # "INTUNE", "DEFENDER": named in messages about missing settings
    tenant_id: str
    client_id: str
    client_secret: str
    authority_url: str
    api_url: str
    scope: str
    timeout: float


class OAuthApiClient:
    """Client-credentials access to one Microsoft API.

    `should_continue` is asked before every request (retries included); when it answers False
    the client raises ApiStopped without sending anything. `sleep` is how the client waits.
    """

    def __init__(
        self,
        config: ApiSettings,
        *,
        retry: RetryPolicy | None = None,
        should_continue: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        prefix = config.settings_prefix
        if not (config.tenant_id and config.client_id and config.client_secret):
            raise ApiNotConfigured(
                f"{prefix.title()} credentials are not configured: set {prefix}_TENANT_ID, {prefix}_CLIENT_ID "
                f"and {prefix}_CLIENT_SECRET."
            )
        self.config = config
        self.tenant_id = config.tenant_id
        self.client_id = config.client_id
        self._client_secret = config.client_secret
        self.authority_url = require_https(config.authority_url, f"{prefix}_AUTHORITY_URL")
        self.api_url = require_https(config.api_url, f"{prefix}_{self.url_setting}")
        self.timeout = config.timeout
        self.retry = retry or RetryPolicy()
        self.should_continue = should_continue or (lambda: True)
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "remediation-portal/1.0"

    url_setting = "API_URL"  # the name of the API URL's setting after the prefix

    def close(self) -> None:
        self.session.close()

    # --- token -------------------------------------------------------------------------
    @property
    def token_url(self) -> str:
        return f"{self.authority_url}/{self.tenant_id}/oauth2/v2.0/token"

    def _cache_key(self) -> tuple[str, ...]:
        return (self.authority_url, self.tenant_id, self.client_id, self.config.scope)

    def token(self) -> str:
        """An access token: from this process, else from the shared store, else the token endpoint."""
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
                        "scope": self.config.scope,
                    },
                    what=TOKEN_REQUEST,
                    idempotent=True,  # asking twice for a token has no side effect
                )
            except (ApiAuthError, ApiStopped):
                raise
            except ApiError as exc:  # without a token no call can work: the whole run stops
                raise ApiAuthError(exc.message, status=exc.status) from exc
            try:
                body = response.json()
                access_token = body["access_token"]
                expires_in = float(body.get("expires_in", 3599))
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiAuthError("The token endpoint answered without an access token.") from exc
            lifetime = max(expires_in - TOKEN_EXPIRY_MARGIN, expires_in / 2)
            _token_cache[key] = (access_token, time.monotonic() + lifetime)
            self._share_token(access_token, lifetime)
            return access_token

    # A subclass may keep the token where other processes find it (intune.graph does).
    def _shared_token(self) -> tuple[str, float] | None:
        return None

    def _share_token(self, access_token: str, lifetime: float) -> None:
        return None

    def _forget_shared(self) -> None:
        return None

    def _forget_token(self) -> None:
        with _token_lock:
            _token_cache.pop(self._cache_key(), None)
        self._forget_shared()

    # --- transport ---------------------------------------------------------------------
    def _check_continue(self) -> None:
        if not self.should_continue():
            raise ApiStopped(self.stopped_message)

    stopped_message = "The connection was turned off; nothing more is sent."

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
        """One logical call with retries. Returns a 2xx response or raises an ApiError."""
        service = self.config.service
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
                raise ApiError(
                    f"{what}: the TLS certificate of {urlsplit(url).hostname} is not trusted "
                    f"({exc.__class__.__name__}). Add its certificate authority to REQUESTS_CA_BUNDLE."
                ) from exc
            except (requests.exceptions.ConnectTimeout, requests.exceptions.ConnectionError) as exc:
                sent = not isinstance(exc, requests.exceptions.ConnectTimeout) and _maybe_sent(exc)
                if sent and not idempotent:
                    raise ApiNoAnswer(f"{what}: the connection was lost before {service} answered ({exc}).") from exc
                if attempt >= self.retry.max_attempts:
                    raise ApiError(
                        f"{what}: could not reach {urlsplit(url).hostname} after {attempt} attempts "
                        f"({exc.__class__.__name__})."
                    ) from exc
                self._wait(self.retry.backoff(attempt), what, f"connection failed ({exc.__class__.__name__})")
                continue
            except requests.exceptions.Timeout as exc:  # read timeout: the request was sent
                if not idempotent:
                    raise ApiNoAnswer(f"{what}: no answer within {self.timeout} s.") from exc
                if attempt >= self.retry.max_attempts:
                    raise ApiError(f"{what}: no answer within {self.timeout} s, {attempt} attempts.") from exc
                self._wait(self.retry.backoff(attempt), what, "timed out")
                continue
            except requests.exceptions.RequestException as exc:
                raise ApiError(f"{what}: {exc}") from exc

            status = response.status_code
            if status < 400:
                return response
            if status in (429, 503):
                throttled += 1
                if throttled > self.retry.max_throttled:
                    raise ApiError(
                        f"{what}: {service} is still throttling after {throttled} answers; {describe(response)}",
                        status=status,
                    )
                attempt -= 1  # a throttled answer is not a failed attempt
                self._wait(self.retry.retry_after(response, throttled), what, f"HTTP {status}")
                continue
            if status >= 500:
                if not idempotent:  # a gateway's 502 or 504 may come after the API did the work
                    raise ApiNoAnswer(
                        f"{what}: {service} answered {describe(response)}; it may have been carried out all the"
                        " same, so it is not repeated",
                        status=status,
                    )
                if attempt >= self.retry.max_attempts:
                    raise ApiError(f"{what} failed after {attempt} attempts: {describe(response)}", status=status)
                self._wait(self.retry.backoff(attempt), what, f"HTTP {status}")
                continue
            if status in (400, 401) and what == TOKEN_REQUEST:
                raise ApiAuthError(
                    f"The token endpoint refused the {self.config.settings_prefix.title()} credentials: "
                    f"{describe(response)}",
                    status=status,
                )
            if status == 401:
                self._forget_token()
            raise ApiError(f"{what}: {describe(response)}", status=status)

    def _wait(self, seconds: float, what: str, why: str) -> None:
        logger.info("%s %s: %s; retrying in %.1f s", self.config.service, what, why, seconds)
        self.sleep(seconds)

    def call(self, method: str, path: str, *, what: str, idempotent: bool, **kwargs: Any) -> requests.Response:
        """A call to the API with the bearer token; a token refused once is renewed and the call repeated."""
        url = path if path.startswith("https://") else f"{self.api_url}{path}"
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
            try:
                return self._send(method, url, what=what, idempotent=idempotent, headers=headers, **kwargs)
            except ApiError as exc:
                # A token revoked or expired early: the API refused it without acting; ask for a new one once.
                if exc.status != 401 or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def json(self, path: str, *, what: str, params: dict | None = None) -> Any:
        """GET `path` and decode its JSON body (an answer that is not JSON is an ApiError)."""
        response = self.call("GET", path, params=params, what=what, idempotent=True)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"{what}: the answer is not JSON ({describe(response)}).") from exc

    def pages(
        self, path: str, *, what: str, params: dict | None = None, max_pages: int | None = None
    ) -> Iterator[dict]:
        """The items of an OData collection, page by page, following `@odata.nextLink` (one page in memory)."""
        url: str | None = path
        pages = 0
        while url:
            data = self.json(url, what=what, params=params)
            if not isinstance(data, dict) or not isinstance(data.get("value"), list):
                raise ApiError(f'{what}: expected an OData collection {{"value": [...]}}.')
            yield from data["value"]
            pages += 1
            if max_pages is not None and pages >= max_pages:
                return
            url, params = data.get("@odata.nextLink"), None
