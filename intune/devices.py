"""Which devices Intune manages: Entra ID device ids looked up in Intune's managed devices.

A task's `managedDevices` carry Intune's own id for each device (DESIGN.md section 9). The
portal knows a device's Entra ID device id (Defender's `aadDeviceId`); Intune answers
`GET /deviceManagement/managedDevices?$filter=azureADDeviceId eq '…' or …` with the managed
device, or nothing when it does not manage it. The answers (both kinds) are kept in the cache for
INTUNE_DEVICE_CACHE_SECONDS, so a push retried after a failure, *Retry now*, and the next requests
for the same device groups do not ask again. Nothing here writes to the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from .graph import MANAGED_DEVICE_FILTER_BATCH, GraphClient

CACHE_PREFIX = "intune:managed-device"
NOT_MANAGED = "-"  # the cached answer for an id Intune does not manage
NEVER_SYNCED = "0001-01-01T00:00:00Z"  # Graph's value for a lastSyncDateTime that never happened


@dataclass(frozen=True)
class ManagedDevice:
    """A device as Intune knows it."""

    aad_device_id: str
    managed_device_id: str
    device_name: str
    last_sync: str  # ISO 8601 with offset, as Graph's Edm.DateTimeOffset


def normalise_id(aad_device_id: str) -> str:
    return aad_device_id.strip().lower()


def _cache_key(tenant_id: str, aad_device_id: str) -> str:
    tenant = hashlib.sha256(tenant_id.encode()).hexdigest()[:16]
    return f"{CACHE_PREFIX}:{tenant}:{aad_device_id}"


def _last_sync(value: object) -> str:
    """Graph's lastSyncDateTime as a DateTimeOffset literal ("Z" for UTC); NEVER_SYNCED if missing or odd."""
    if not isinstance(value, str) or not value:
        return NEVER_SYNCED
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return NEVER_SYNCED
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.isoformat().replace("+00:00", "Z")


def _best(records: list[dict]) -> dict[str, ManagedDevice]:
    """One managed device per Entra ID device id: the one that synced last (a re-enrolled device
    can leave an older record behind)."""
    best: dict[str, ManagedDevice] = {}
    for record in records:
        aad_id = normalise_id(str(record.get("azureADDeviceId") or ""))
        managed_id = str(record.get("id") or "")
        if not aad_id or not managed_id:
            continue
        device = ManagedDevice(
            aad_device_id=aad_id,
            managed_device_id=managed_id,
            device_name=str(record.get("deviceName") or ""),
            last_sync=_last_sync(record.get("lastSyncDateTime")),
        )
        known = best.get(aad_id)
        if known is None or device.last_sync > known.last_sync:
            best[aad_id] = device
    return best


def managed_devices_lookup(client: GraphClient, aad_device_ids: Iterable[str]) -> dict[str, ManagedDevice | None]:
    """Intune's managed device for each Entra ID device id (None: not managed), keyed by normalised id.

    Cached answers first; the rest are asked MANAGED_DEVICE_FILTER_BATCH at a time. A Graph error
    propagates (GraphError): nothing half-known is returned.
    """
    wanted = list(dict.fromkeys(normalise_id(value) for value in aad_device_ids if value and value.strip()))
    ttl = int(settings.INTUNE_DEVICE_CACHE_SECONDS)
    keys = {aad_id: _cache_key(client.tenant_id, aad_id) for aad_id in wanted}
    found: dict[str, ManagedDevice | None] = {}
    if ttl > 0 and wanted:
        cached = cache.get_many(list(keys.values()))
        for aad_id, key in keys.items():
            if key in cached:
                value = cached[key]
                found[aad_id] = None if value == NOT_MANAGED else ManagedDevice(aad_id, *value)
    missing = [aad_id for aad_id in wanted if aad_id not in found]
    for start in range(0, len(missing), MANAGED_DEVICE_FILTER_BATCH):
        batch = missing[start : start + MANAGED_DEVICE_FILTER_BATCH]
        answers = _best(client.managed_devices(batch))
        for aad_id in batch:
            found[aad_id] = answers.get(aad_id)
        if ttl > 0:
            cache.set_many(
                {
                    keys[aad_id]: (
                        NOT_MANAGED
                        if found[aad_id] is None
                        else (found[aad_id].managed_device_id, found[aad_id].device_name, found[aad_id].last_sync)
                    )
                    for aad_id in batch
                },
                ttl,
            )
    return found
