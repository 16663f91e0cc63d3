"""The recommendations app in the admin: inventory (`inventory`), exceptions (`exceptions`), file
imports (`imports`) and the Defender pulls (`defender`). Importing the package registers every ModelAdmin."""

from .defender import DefenderSyncRunAdmin
from .exceptions import RecommendationExceptionAdmin
from .inventory import (
    DeviceAdmin,
    DeviceGroupAdmin,
    ExposureAdmin,
    ScopedDeviceGroupFilter,
    SecurityRecommendationAdmin,
)

__all__ = [
    "DefenderSyncRunAdmin",
    "DeviceAdmin",
    "DeviceGroupAdmin",
    "ExposureAdmin",
    "RecommendationExceptionAdmin",
    "ScopedDeviceGroupFilter",
    "SecurityRecommendationAdmin",
]
