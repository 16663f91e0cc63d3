"""What a `securityConfigurationTask` says about its recommendation (DESIGN.md section 9).

Graph's beta metadata types three of its properties as enums (values below are members of them):
`applicablePlatform` (endpointSecurityConfigurationApplicablePlatform), `endpointSecurityPolicy`
(endpointSecurityConfigurationType) and `endpointSecurityPolicyProfile`
(endpointSecurityConfigurationProfileType). They are derived here from the recommendation's
sub-category, related component and name, and from the platforms of the devices sent; `unknown`
when nothing fits. `intendedSettings` is sent only when the recommendation's name states the
setting and its value ("Set 'X' to Y", "Enable X", "Turn off X", an attack surface reduction rule).
Pure functions: nothing here reads the database or talks to Graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

UNKNOWN = "unknown"

# endpointSecurityConfigurationApplicablePlatform
MACOS = "macOS"
WINDOWS_10_AND_LATER = "windows10AndLater"
WINDOWS_10_AND_SERVER = "windows10AndWindowsServer"

# endpointSecurityConfigurationType
ANTIVIRUS = "antivirus"
DISK_ENCRYPTION = "diskEncryption"
FIREWALL = "firewall"
EDR = "endpointDetectionAndResponse"
ATTACK_SURFACE_REDUCTION = "attackSurfaceReduction"
ACCOUNT_PROTECTION = "accountProtection"

POLICY_LABELS = {
    ANTIVIRUS: "Antivirus",
    DISK_ENCRYPTION: "Disk encryption",
    FIREWALL: "Firewall",
    EDR: "Endpoint detection and response",
    ATTACK_SURFACE_REDUCTION: "Attack surface reduction",
    ACCOUNT_PROTECTION: "Account protection",
    UNKNOWN: "Unknown",
}


@dataclass(frozen=True)
class Policy:
    policy: str  # endpointSecurityConfigurationType
    profile: str  # endpointSecurityConfigurationProfileType


# First match wins; the text searched is "<sub-category> | <related component> | <name>" in lower case.
# Attack surface reduction rules come before account protection: "Block credential stealing from
# the Windows local security authority subsystem" is an ASR rule, not an account setting.
_RULES: list[tuple[re.Pattern[str], Policy]] = [
    (re.compile(r"firewall rule"), Policy(FIREWALL, "firewallRules")),
    (re.compile(r"firewall"), Policy(FIREWALL, "firewall")),
    (re.compile(r"bitlocker"), Policy(DISK_ENCRYPTION, "bitLocker")),
    (re.compile(r"filevault"), Policy(DISK_ENCRYPTION, "fileVault")),
    (re.compile(r"disk encryption|\bencrypt"), Policy(DISK_ENCRYPTION, "bitLocker")),
    (re.compile(r"endpoint detection|\bedr\b"), Policy(EDR, EDR)),
    (re.compile(r"exploit protection|exploit guard"), Policy(ATTACK_SURFACE_REDUCTION, "exploitProtection")),
    (
        re.compile(r"application guard|app and browser isolation|browser isolation"),
        Policy(ATTACK_SURFACE_REDUCTION, "appAndBrowserIsolation"),
    ),
    (re.compile(r"device control|removable storage"), Policy(ATTACK_SURFACE_REDUCTION, "deviceControl")),
    (re.compile(r"web protection|network protection|smartscreen"), Policy(ATTACK_SURFACE_REDUCTION, "webProtection")),
    (re.compile(r"application control|applocker|\bwdac\b"), Policy(ATTACK_SURFACE_REDUCTION, "applicationControl")),
    (
        re.compile(r"attack surface reduction|\basr\b"),
        Policy(ATTACK_SURFACE_REDUCTION, "attackSurfaceReductionRules"),
    ),
    (re.compile(r"tamper protection|windows security"), Policy(ANTIVIRUS, "windowsSecurity")),
    (
        re.compile(r"antivirus|real-time protection|cloud-delivered protection|pua protection|\bdefender av\b"),
        Policy(ANTIVIRUS, ANTIVIRUS),
    ),
    (
        re.compile(
            r"account protection|credential guard|windows hello|local security authority|\blsa\b|"
            r"local administrator password|\blaps\b"
        ),
        Policy(ACCOUNT_PROTECTION, ACCOUNT_PROTECTION),
    ),
]
_ASR_RULE_NAME = re.compile(r"^block ", re.IGNORECASE)  # Defender's ASR recommendations are named for the rule


def policy_for(*, name: str, sub_category: str = "", related_component: str = "", category: str = "") -> Policy:
    """The endpoint security policy and profile a configuration recommendation belongs to."""
    if category == "SecurityControls" and _ASR_RULE_NAME.match(name):
        return Policy(ATTACK_SURFACE_REDUCTION, "attackSurfaceReductionRules")
    text = " | ".join(part for part in (sub_category, related_component, name) if part).lower()
    for pattern, policy in _RULES:
        if pattern.search(text):
            return policy
    return Policy(UNKNOWN, UNKNOWN)


def for_platform(policy: Policy, platform: str) -> Policy:
    """Disk encryption on macOS is FileVault, not BitLocker."""
    if policy.policy == DISK_ENCRYPTION and platform == MACOS:
        return Policy(DISK_ENCRYPTION, "fileVault")
    return policy


def _platform_kind(os_platform: str) -> str:
    value = (os_platform or "").replace(" ", "").lower()
    if value in ("windows10", "windows11"):
        return "windows-client"
    if value.startswith("windowsserver"):
        return "windows-server"
    if value in ("macos", "mac", "macosx"):
        return "macos"
    return "other"  # Linux, iOS, Android, Windows 7/8.1, unknown


def applicable_platform(os_platforms: Iterable[str]) -> str:
    """The platform of the devices a task carries (Defender's osPlatform values), `unknown` if mixed or none."""
    kinds = {_platform_kind(value) for value in os_platforms}
    if not kinds or "other" in kinds:
        return UNKNOWN
    if kinds == {"macos"}:
        return MACOS
    if kinds == {"windows-client"}:
        return WINDOWS_10_AND_LATER
    if "macos" not in kinds:  # Windows servers, with or without Windows 10/11 clients
        return WINDOWS_10_AND_SERVER
    return UNKNOWN


_SET = re.compile(r"^set '?(?P<name>[^']+?)'? to '?(?P<value>[^']+?)'?$", re.IGNORECASE)
_SWITCH = re.compile(r"^(?P<verb>enable|disable|turn on|turn off) (?P<name>.+)$", re.IGNORECASE)
_SWITCH_VALUES = {"enable": "Enabled", "disable": "Disabled", "turn on": "On", "turn off": "Off"}


def intended_settings(*, name: str, policy: Policy) -> list[dict[str, str]]:
    """The settings (Graph keyValuePair items) the recommendation's name states; [] when it states none."""
    name = name.strip()
    if policy.profile == "attackSurfaceReductionRules" and _ASR_RULE_NAME.match(name):
        return [{"name": name, "value": "Block"}]
    match = _SET.match(name)
    if match:
        return [{"name": match["name"].strip(), "value": match["value"].strip()}]
    match = _SWITCH.match(name)
    if match:
        setting = re.sub(r"^the ", "", match["name"].replace("'", "").strip(), flags=re.IGNORECASE)
        return [{"name": setting, "value": _SWITCH_VALUES[match["verb"].lower()]}]
    return []
