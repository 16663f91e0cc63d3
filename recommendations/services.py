"""Every write to device groups, devices, recommendations, exposures and exceptions.

Two sections: the inventory (imports, exposure snapshots) and the exceptions. Each function
is keyword-only, typed, atomic, and raises portal.errors.ApplicationError when a rule forbids it.
"""

from __future__ import annotations

# --- Inventory: device groups, devices, recommendations, exposures --------------------


# --- Exceptions ------------------------------------------------------------------------
