"""Every write to device groups, devices, recommendations, exposures and exceptions.

One module a sub-domain: `inventory` (upserts), `snapshots` (exposure snapshots),
`counters` (the stored exposure counters), `imports` (whole files), `import_jobs` (the
admin's background imports), `defender` (the pull from the Defender API) and `exceptions`.
Each function is keyword-only, typed, atomic, and raises portal.errors.ApplicationError when
a rule forbids it.
"""

from .counters import exposure_counters_check, recommendations_refresh_exposed_devices
from .defender import defender_sync
from .exceptions import exception_cancel, exception_create, exceptions_expire, recommendation_lock
from .import_jobs import background_rows, import_job_create, import_job_progress, import_job_run
from .imports import (
    INVENTORY_KINDS,
    exposures_import_defender,
    import_summary_line,
    import_tvm_files,
    inventory_import_records,
)
from .inventory import (
    DEVICE_UPDATE_FIELDS,
    RECOMMENDATION_UPDATE_FIELDS,
    device_groups_upsert,
    devices_upsert,
    recommendations_upsert,
)
from .snapshots import exposures_import_snapshot

__all__ = [
    "DEVICE_UPDATE_FIELDS",
    "INVENTORY_KINDS",
    "RECOMMENDATION_UPDATE_FIELDS",
    "background_rows",
    "defender_sync",
    "device_groups_upsert",
    "devices_upsert",
    "exception_cancel",
    "exception_create",
    "exceptions_expire",
    "exposure_counters_check",
    "exposures_import_defender",
    "exposures_import_snapshot",
    "import_job_create",
    "import_job_progress",
    "import_job_run",
    "import_summary_line",
    "import_tvm_files",
    "inventory_import_records",
    "recommendation_lock",
    "recommendations_refresh_exposed_devices",
    "recommendations_upsert",
]
