"""The only module that talks to Microsoft Graph: Intune's deviceAppManagementTasks.

Token, transport and retries are portal.msclient's (shared with the Defender API pull). What
Graph adds here: the token is also kept in the database, encrypted with a key derived from
the client secret, so every web and worker process (and `manage.py intune_sync`) shares one
token instead of each asking for its own; and the task calls of DESIGN.md section 9.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlencode

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from portal.msclient import (
    ApiAuthError,
    ApiError,
    ApiNoAnswer,
    ApiNotConfigured,
    ApiSettings,
    ApiStopped,
    OAuthApiClient,
    RetryPolicy,
    ca_bundle,
    clear_token_cache,
    odata_string,
)

from .models import GraphAccessToken

logger = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TASKS_PATH = "/deviceAppManagement/deviceAppManagementTasks"
MANAGED_DEVICES_PATH = "/deviceManagement/managedDevices"
MANAGED_DEVICE_FIELDS = "id,azureADDeviceId,deviceName,lastSyncDateTime"
# Entra ID device ids per managed-device look-up: Graph documents a limit of 15 expressions in a
# $filter clause and a URL of at most 2,048 characters; 15 `azureADDeviceId eq '<guid>'` clauses
# joined by `or` make a URL of about 1,300 characters.
MANAGED_DEVICE_FILTER_BATCH = 15
MAX_LIST_PAGES = 20

# Graph's names for the shared errors (the sync and its tests speak of Graph).
GraphError = ApiError
GraphNotConfigured = ApiNotConfigured
GraphAuthError = ApiAuthError
GraphNoAnswer = ApiNoAnswer
GraphStopped = ApiStopped

__all__ = [
    "GraphAuthError",
    "GraphClient",
    "GraphError",
    "GraphNoAnswer",
    "GraphNotConfigured",
    "GraphStopped",
    "RetryPolicy",
    "ca_bundle",
    "clear_token_cache",
    "credentials_configured",
]


def credentials_configured() -> bool:
    return bool(settings.INTUNE_TENANT_ID and settings.INTUNE_CLIENT_ID and settings.INTUNE_CLIENT_SECRET)


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=int(settings.INTUNE_MAX_ATTEMPTS),
        backoff_base=float(settings.INTUNE_BACKOFF_BASE_SECONDS),
        backoff_cap=float(settings.INTUNE_BACKOFF_CAP_SECONDS),
        retry_after_cap=float(settings.INTUNE_RETRY_AFTER_CAP_SECONDS),
    )


class GraphClient(OAuthApiClient):
    """A small Graph client for Intune's deviceAppManagementTasks."""

    url_setting = "GRAPH_URL"
    stopped_message = "The Microsoft Intune connection was turned off; nothing more is sent."

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
        sleep: Callable[[float], None] | None = None,
    ):
        config = ApiSettings(
            service="Graph",
            settings_prefix="INTUNE",
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            authority_url=authority_url,
            api_url=graph_url,
            scope=GRAPH_SCOPE,
            timeout=timeout,
        )
        kwargs = {} if sleep is None else {"sleep": sleep}
        super().__init__(config, retry=retry, should_continue=should_continue, **kwargs)
        self.graph_url = self.api_url

    @classmethod
    def from_settings(cls, *, should_continue: Callable[[], bool] | None = None) -> GraphClient:
        return cls(
            tenant_id=settings.INTUNE_TENANT_ID,
            client_id=settings.INTUNE_CLIENT_ID,
            client_secret=settings.INTUNE_CLIENT_SECRET,
            authority_url=settings.INTUNE_AUTHORITY_URL,
            graph_url=settings.INTUNE_GRAPH_URL,
            timeout=settings.INTUNE_HTTP_TIMEOUT,
            retry=retry_policy(),
            should_continue=should_continue,
        )

    # --- the token, shared through the database ------------------------------------------
    def _fernet(self) -> Fernet:
        material = hashlib.sha256(f"intune-graph-token|{self._client_secret}|{settings.SECRET_KEY}".encode()).digest()
        return Fernet(base64.urlsafe_b64encode(material))

    def _shared_key(self) -> str:
        secret_hash = hashlib.sha256(self._client_secret.encode()).hexdigest()
        return hashlib.sha256("|".join((*self._cache_key()[:3], secret_hash)).encode()).hexdigest()

    def _shared_token(self) -> tuple[str, float] | None:
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
        try:
            with transaction.atomic():
                GraphAccessToken.objects.filter(cache_key=self._shared_key()).delete()
        except DatabaseError:
            logger.warning("Could not forget the shared Graph token.", exc_info=True)

    # --- deviceAppManagementTasks --------------------------------------------------------
    def create_task(self, body: dict) -> dict:
        response = self.call("POST", TASKS_PATH, json=body, what="Creating the Intune task", idempotent=False)
        data = response.json()
        if not data.get("id"):
            raise GraphError("Graph created the task but answered without its id.")
        return data

    def get_task(self, task_id: str) -> dict:
        return self.call("GET", f"{TASKS_PATH}/{task_id}", what="Reading the Intune task", idempotent=True).json()

    def find_tasks(self, *, display_name: str, creator: str) -> list[dict]:
        """Tasks with this displayName and creator (used to recover a push whose answer was lost)."""
        odata_filter = f"displayName eq {odata_string(display_name)} and creator eq {odata_string(creator)}"
        pages = self.pages(
            TASKS_PATH, params={"$filter": odata_filter}, what="Looking up the Intune task", max_pages=MAX_LIST_PAGES
        )
        return list(pages)

    def managed_devices(self, aad_device_ids: Sequence[str]) -> list[dict]:
        """Intune's managed devices with these Entra ID device ids (at most MANAGED_DEVICE_FILTER_BATCH).

        One GET with `azureADDeviceId eq '...' or ...`; ids Intune does not manage are simply absent.
        """
        if not 0 < len(aad_device_ids) <= MANAGED_DEVICE_FILTER_BATCH:
            raise ValueError(f"look up 1 to {MANAGED_DEVICE_FILTER_BATCH} devices at a time")
        odata_filter = " or ".join(f"azureADDeviceId eq {odata_string(value)}" for value in aad_device_ids)
        # Spaces as %20 (not +), so the URL means the same to every OData parser.
        query = urlencode({"$filter": odata_filter, "$select": MANAGED_DEVICE_FIELDS}, quote_via=quote, safe="$,")
        pages = self.pages(
            f"{MANAGED_DEVICES_PATH}?{query}", what="Looking up Intune's managed devices", max_pages=MAX_LIST_PAGES
        )
        return list(pages)

    def update_status(self, task_id: str, *, status: str, note: str) -> None:
        # Setting a status is idempotent, so a lost answer may safely be asked again.
        self.call(
            "POST",
            f"{TASKS_PATH}/{task_id}/updateStatus",
            json={"status": status, "note": note},
            what="Sending the decision to Intune",
            idempotent=True,
        )

    def test_connection(self) -> str:
        """Fetch a token and make one read-only GET. Returns a short description of what worked."""
        self.token()
        data = self.call("GET", TASKS_PATH, params={"$top": "1"}, what="Listing Intune tasks", idempotent=True).json()
        return f"Token obtained and Graph answered ({len(data.get('value', []))} task(s) in the first page)."
