"""How a configuration recommendation becomes a securityConfigurationTask's policy, profile and settings."""

import pytest

from intune.security_config import Policy, applicable_platform, for_platform, intended_settings, policy_for
from tests.intune.odata_schema import graph_beta


@pytest.mark.parametrize(
    ("name", "sub_category", "category", "expected"),
    [
        ("Enable Microsoft Defender Firewall for the domain profile", "", "SecurityControls", ("firewall", "firewall")),
        ("Block inbound connections on port 445", "Firewall rules", "Network", ("firewall", "firewallRules")),
        ("Turn on real-time protection", "Antivirus", "SecurityControls", ("antivirus", "antivirus")),
        ("Turn on Tamper Protection", "", "SecurityControls", ("antivirus", "windowsSecurity")),
        ("Encrypt all BitLocker-supported drives", "", "SecurityControls", ("diskEncryption", "bitLocker")),
        ("Turn on FileVault", "", "SecurityControls", ("diskEncryption", "fileVault")),
        (
            "Block credential stealing from the Windows local security authority subsystem",
            "",
            "SecurityControls",
            ("attackSurfaceReduction", "attackSurfaceReductionRules"),
        ),
        ("Enable Network Protection", "", "SecurityControls", ("attackSurfaceReduction", "webProtection")),
        ("Turn on exploit protection", "", "SecurityControls", ("attackSurfaceReduction", "exploitProtection")),
        ("Turn on Credential Guard", "", "Accounts", ("accountProtection", "accountProtection")),
        (
            "Enable 'Local Security Authority (LSA) protection'",
            "",
            "OS",
            ("accountProtection", "accountProtection"),
        ),
        (
            "Turn on EDR in block mode",
            "",
            "SecurityControls",
            ("endpointDetectionAndResponse", "endpointDetectionAndResponse"),
        ),
        ("Disable SMBv1 client driver", "SMB", "Network", ("unknown", "unknown")),
        ("Block SMBv1 on the network", "SMB", "Network", ("unknown", "unknown")),  # "Block" outside ASR
        ("Set 'Minimum password length' to 14 or more characters", "", "Accounts", ("unknown", "unknown")),
    ],
)
def test_the_recommendation_names_its_endpoint_security_policy(name, sub_category, category, expected):
    policy = policy_for(name=name, sub_category=sub_category, category=category)

    assert (policy.policy, policy.profile) == expected
    # Both are members of Graph's enums.
    assert policy.policy in graph_beta().enums["endpointSecurityConfigurationType"]
    assert policy.profile in graph_beta().enums["endpointSecurityConfigurationProfileType"]


def test_disk_encryption_on_macos_is_filevault():
    assert for_platform(Policy("diskEncryption", "bitLocker"), "macOS") == Policy("diskEncryption", "fileVault")
    assert for_platform(Policy("diskEncryption", "bitLocker"), "windows10AndLater").profile == "bitLocker"


@pytest.mark.parametrize(
    ("platforms", "expected"),
    [
        ([], "unknown"),
        (["Windows 11", "windows10"], "windows10AndLater"),
        (["Windows7"], "unknown"),
        (["WindowsServer2012R2", "WindowsServer2025"], "windows10AndWindowsServer"),
        (["iOS"], "unknown"),
    ],
)
def test_the_applicable_platform_is_a_member_of_graphs_enum(platforms, expected):
    assert applicable_platform(platforms) == expected
    assert expected in graph_beta().enums["endpointSecurityConfigurationApplicablePlatform"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "Set 'Minimum password length' to 14 or more characters",
            [("Minimum password length", "14 or more characters")],
        ),
        (
            "Set LAN Manager authentication level to 'Send NTLMv2 response only'",
            [("LAN Manager authentication level", "Send NTLMv2 response only")],
        ),
        ("Disable the built-in Administrator account", [("built-in Administrator account", "Disabled")]),
        (
            "Disable 'Allow Basic authentication' for WinRM Client",
            [("Allow Basic authentication for WinRM Client", "Disabled")],
        ),
        ("Enable Network Protection", [("Network Protection", "Enabled")]),
        ("Turn off Autoplay", [("Autoplay", "Off")]),
        ("Update Microsoft Defender Antivirus definitions", []),  # names no setting: none is sent
        ("Encrypt all BitLocker-supported drives", []),
    ],
)
def test_intended_settings_are_sent_only_when_the_name_states_them(name, expected):
    settings = intended_settings(name=name, policy=Policy("unknown", "unknown"))

    assert [(s["name"], s["value"]) for s in settings] == expected


def test_an_attack_surface_reduction_rule_is_intended_to_block():
    policy = Policy("attackSurfaceReduction", "attackSurfaceReductionRules")

    assert intended_settings(name="Block executable content from email client and webmail", policy=policy) == [
        {"name": "Block executable content from email client and webmail", "value": "Block"}
    ]
