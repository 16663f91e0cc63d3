"""The only module that talks to the Microsoft Defender for Endpoint API (the pull of DESIGN.md section 12).

Token, transport and retries are portal.msclient's, shared with Intune's Graph client: OAuth2
client credentials with the scope `{DEFENDER_API_URL}/.default`, one token cached until it
expires, a timeout on every call, `Retry-After` on 429/503, exponential backoff on 5xx and broken
connections, certificates verified against REQUESTS_CA_BUNDLE.

What Defender adds: collections are read page by page, following `@odata.nextLink` or, where
the API pages with `$top`/`$skip` and gives no link, asking for the next `$skip`. Each page is
written to a file as it arrives (a page whose answer breaks off is asked again), so memory holds
one record at a time however large the page; the pull reads those files with the same readers
as `import_tvm`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from django.conf import settings

from portal.msclient import ApiError, ApiNotConfigured, ApiSettings, OAuthApiClient, RetryPolicy

from .imports import readers
from .imports.records import Problems

logger = logging.getLogger(__name__)

RECOMMENDATIONS_PATH = "/api/recommendations"
MACHINES_PATH = "/api/machines"
MAX_PAGES = 100_000  # per collection: a guard against an API that never stops paging
CHUNK_BYTES = 1 << 20

DefenderError = ApiError
DefenderNotConfigured = ApiNotConfigured


def credentials_configured() -> bool:
    return bool(settings.DEFENDER_TENANT_ID and settings.DEFENDER_CLIENT_ID and settings.DEFENDER_CLIENT_SECRET)


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        max_attempts=int(settings.DEFENDER_MAX_ATTEMPTS),
        backoff_base=float(settings.DEFENDER_BACKOFF_BASE_SECONDS),
        backoff_cap=float(settings.DEFENDER_BACKOFF_CAP_SECONDS),
        retry_after_cap=float(settings.DEFENDER_RETRY_AFTER_CAP_SECONDS),
    )


def machine_references_path(recommendation_id: str) -> str:
    return f"{RECOMMENDATIONS_PATH}/{quote(recommendation_id, safe='')}/machineReferences"


@dataclass(frozen=True)
class Page:
    """One page of a collection, on disk: its file, its number (from 1) and how many records it holds."""

    path: Path
    number: int
    records: int


class DefenderClient(OAuthApiClient):
    """Reads Defender for Endpoint API collections into page files."""

    stopped_message = "The Defender pull was stopped; nothing more is asked."

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_url: str,
        api_url: str,
        timeout: float,
        page_size: int = 10_000,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        config = ApiSettings(
            service="the Defender API",
            settings_prefix="DEFENDER",
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            authority_url=authority_url,
            api_url=api_url,
            scope=f"{api_url.rstrip('/')}/.default",
            timeout=timeout,
        )
        kwargs = {} if sleep is None else {"sleep": sleep}
        super().__init__(config, retry=retry, **kwargs)
        self.page_size = page_size

    @classmethod
    def from_settings(cls, *, sleep: Callable[[float], None] | None = None) -> DefenderClient:
        return cls(
            tenant_id=settings.DEFENDER_TENANT_ID,
            client_id=settings.DEFENDER_CLIENT_ID,
            client_secret=settings.DEFENDER_CLIENT_SECRET,
            authority_url=settings.DEFENDER_AUTHORITY_URL,
            api_url=settings.DEFENDER_API_URL,
            timeout=settings.DEFENDER_HTTP_TIMEOUT,
            page_size=settings.DEFENDER_PAGE_SIZE,
            retry=retry_policy(),
            sleep=sleep,
        )

    # --- collections -------------------------------------------------------------------------
    def pages_to_files(self, path: str, *, what: str, directory: Path, name: str, skip_paging: bool) -> Iterator[Page]:
        """Each page of the collection at `path`, written to `directory/name-NNNNN.json`.

        `skip_paging`: ask with `$top` (DEFENDER_PAGE_SIZE) and, when a full page comes without
        `@odata.nextLink`, ask for the next `$skip`; otherwise send no paging parameter and
        follow `@odata.nextLink` only.
        """
        params: dict | None = {"$top": str(self.page_size)} if skip_paging else None
        url: str | None = path
        skip, seen = 0, set()
        linked = False  # the API pages with next links: a page without one is the last
        for number in range(1, MAX_PAGES + 1):
            target = directory / f"{name}-{number:05d}.json"
            self._download(url, params=params, what=what, target=target)
            meta: dict = {}
            count = self._count(target, what=what, meta=meta)
            yield Page(target, number, count)
            next_link = meta.get("@odata.nextLink")
            if isinstance(next_link, str) and next_link:
                url, params, linked = self._on_api_host(next_link), None, True
                if url in seen:
                    raise DefenderError(f"{what}: the API sent the same next page twice ({next_link}).")
                seen.add(url)
            elif skip_paging and not linked and count >= self.page_size:
                skip += count
                url, params = path, {"$top": str(self.page_size), "$skip": str(skip)}
            else:
                return
        raise DefenderError(f"{what}: more than {MAX_PAGES} pages; stopped.")

    def _on_api_host(self, link: str) -> str:
        """A next link on the configured API host: the token is never sent anywhere else."""
        parts, api = urlsplit(link), urlsplit(self.api_url)
        if parts.scheme == "https" and parts.netloc == api.netloc:
            return link
        return urlunsplit((api.scheme, api.netloc, parts.path, parts.query, ""))

    def _download(self, url: str, *, params: dict | None, what: str, target: Path) -> None:
        """GET `url` into `target`, streamed; an answer that breaks off is asked again (with backoff)."""
        attempt = 0
        while True:
            attempt += 1
            response = self.call("GET", url, params=params, what=what, idempotent=True, stream=True)
            try:
                with open(target, "wb") as fh:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        fh.write(chunk)
                return
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
                why = f"the answer broke off ({exc.__class__.__name__})"
            except requests.exceptions.Timeout:
                why = f"the answer stalled for more than {self.timeout} s"
            finally:
                response.close()
            if attempt >= self.retry.max_attempts:
                raise DefenderError(f"{what}: {why}, {attempt} attempts.")
            self._wait(self.retry.backoff(attempt), what, why)

    @staticmethod
    def _count(target: Path, *, what: str, meta: dict) -> int:
        """Records in a page file (read as `import_tvm` reads a file); a page that is not a collection is an error."""
        problems = Problems()
        count = sum(1 for _ in readers.read_json_records(target, source=what, problems=problems, meta=meta))
        if problems:
            raise DefenderError(f"{what}: the API's answer is not a Defender collection ({problems.items[0].message}).")
        return count
