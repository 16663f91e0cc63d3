"""The recommendations app in the admin: inventory (`inventory`), exceptions (`exceptions`) and
file imports (`imports`). Importing the package registers every ModelAdmin."""

from .exceptions import RecommendationExceptionAdmin
from .inventory import (
    DeviceAdmin,
    DeviceGroupAdmin,
    ExposureAdmin,
    ScopedDeviceGroupFilter,
    SecurityRecommendationAdmin,
)

__all__ = [
    "DeviceAdmin",
    "DeviceGroupAdmin",
    "ExposureAdmin",
    "RecommendationExceptionAdmin",
    "ScopedDeviceGroupFilter",
    "SecurityRecommendationAdmin",
]
