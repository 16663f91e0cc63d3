"""Load a realistic demo data set and the demo users. Safe to run again: it tops up, never duplicates."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from portal import permissions as perm
from portal.errors import ApplicationError
from recommendations.models import UNASSIGNED_GROUP_NAME, Device, DeviceGroup, Exposure, SecurityRecommendation
from remediation.models import RemediationActivity

DEVICE_GROUPS = {
    "Servers": "Windows and Linux servers in the data centres",
    "Workstations": "Office desktops",
    "Finance laptops": "Laptops of the finance department",
    "Developers": "Engineering laptops and build agents",
    "Kiosks": "Shared kiosk and meeting-room devices",
}
IT_SCOPE = ("Servers", "Workstations")
OS_BY_GROUP = {
    "Servers": ["WindowsServer2019", "WindowsServer2022", "Linux"],
    "Workstations": ["Windows10", "Windows11"],
    "Finance laptops": ["Windows11", "macOS"],
    "Developers": ["Windows11", "macOS", "Linux"],
    "Kiosks": ["Windows10"],
    UNASSIGNED_GROUP_NAME: ["Windows10", "Linux"],
}
SOFTWARE = [
    ("microsoft", "silverlight", "Microsoft Silverlight", "Uninstall", "5.1.50918.0"),
    ("google", "chrome", "Google Chrome", "Update", "131.0.6778.86"),
    ("mozilla", "firefox", "Mozilla Firefox", "Update", "133.0"),
    ("adobe", "acrobat_reader_dc", "Adobe Acrobat Reader DC", "Update", "24.005.20320"),
    ("oracle", "jre", "Oracle Java Runtime Environment", "Update", "8.0.431"),
    ("7-zip", "7-zip", "7-Zip", "Update", "24.08"),
    ("notepad++", "notepad++", "Notepad++", "Update", "8.7.1"),
    ("videolan", "vlc_media_player", "VLC media player", "Update", "3.0.21"),
    ("zoom", "zoom", "Zoom", "Update", "6.2.11"),
    ("microsoft", "edge_chromium-based", "Microsoft Edge", "Update", "131.0.2903.70"),
    ("microsoft", "office", "Microsoft Office", "Update", "16.0.18129"),
    ("microsoft", ".net_framework", "Microsoft .NET Framework", "Update", "4.8.1"),
    ("microsoft", "windows_10", "Windows 10", "Upgrade", "22H2"),
    ("python", "python", "Python", "Update", "3.12.7"),
    ("git", "git", "Git for Windows", "Update", "2.47.1"),
    ("openssl", "openssl", "OpenSSL", "Update", "3.0.15"),
    ("putty", "putty", "PuTTY", "Update", "0.82"),
    ("winrar", "winrar", "WinRAR", "Update", "7.01"),
    ("apache", "log4j", "Apache Log4j", "Update", "2.24.1"),
    ("teamviewer", "teamviewer", "TeamViewer", "Update", "15.59"),
    ("wireshark", "wireshark", "Wireshark", "Update", "4.4.2"),
    ("nodejs", "node.js", "Node.js", "Update", "22.11.0"),
    ("vmware", "tools", "VMware Tools", "Update", "12.5.0"),
    ("citrix", "workspace", "Citrix Workspace", "Update", "2409"),
    ("adobe", "flash_player", "Adobe Flash Player", "Uninstall", ""),
    ("apple", "quicktime", "Apple QuickTime", "Uninstall", ""),
    ("microsoft", "internet_explorer", "Internet Explorer", "Uninstall", ""),
    ("slack", "slack", "Slack", "Update", "4.41.97"),
    ("dell", "command_update", "Dell Command Update", "Update", "5.4.0"),
    ("filezilla", "filezilla", "FileZilla Client", "Update", "3.68.1"),
    ("keepass", "keepass", "KeePass", "Update", "2.57.1"),
    ("microsoft", "teams", "Microsoft Teams", "Update", "24295.605"),
    ("gimp", "gimp", "GIMP", "Update", "2.10.38"),
    ("openjdk", "openjdk", "OpenJDK", "Update", "21.0.5"),
    ("webex", "webex", "Cisco Webex", "Update", "44.10"),
    ("libreoffice", "libreoffice", "LibreOffice", "Update", "24.8.3"),
]
CONFIGURATION = [
    ("Accounts", "Disable the built-in Administrator account"),
    ("Accounts", "Set 'Minimum password length' to 14 or more characters"),
    ("Accounts", "Disable 'Anonymous enumeration of shares'"),
    ("Network", "Disable SMBv1 client driver"),
    ("Network", "Disable SMBv1 server"),
    ("Network", "Disable 'Allow Basic authentication' for WinRM Client"),
    ("Network", "Disable IP source routing"),
    ("Network", "Set LAN Manager authentication level to 'Send NTLMv2 response only'"),
    ("OS", "Enable 'Local Security Authority (LSA) protection'"),
    ("OS", "Disable 'Autoplay for non-volume devices'"),
    ("OS", "Enable 'Require additional authentication at startup' for BitLocker"),
    ("OS", "Turn on PowerShell Script Block Logging"),
    ("SecurityControls", "Turn on Microsoft Defender Antivirus"),
    ("SecurityControls", "Update Microsoft Defender Antivirus definitions"),
    ("SecurityControls", "Turn on real-time protection"),
    ("SecurityControls", "Enable Microsoft Defender Firewall for the domain profile"),
    ("SecurityControls", "Block credential stealing from the Windows local security authority subsystem"),
    ("SecurityControls", "Block executable content from email client and webmail"),
    ("SecurityControls", "Turn on Tamper Protection"),
    ("SecurityControls", "Turn on cloud-delivered protection"),
    ("SecurityControls", "Block Office applications from creating child processes"),
    ("SecurityControls", "Turn on PUA protection in block mode"),
    ("SecurityControls", "Enable Network Protection"),
    ("SecurityControls", "Encrypt all BitLocker-supported drives"),
]

DEMO_USERS = [
    # username, password, email, role, superuser
    ("admin", "admin-demo-2026", "admin@demo.example", None, True),
    ("security", "security-demo-2026", "security@demo.example", perm.SECURITY_STAFF, False),
    ("it", "it-demo-2026", "it@demo.example", perm.IT_STAFF, False),
]


def machine_id(n: int) -> str:
    return hashlib.sha1(f"demo-device-{n}".encode(), usedforsecurity=False).hexdigest()


class Command(BaseCommand):
    help = "Load the demo data set (device groups, devices, recommendations, exposures, activities) and users."

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=2000, help="number of devices (default 2000)")
        parser.add_argument("--seed", type=int, default=42, help="random seed, for a repeatable data set")

    def handle(self, *args, devices: int, seed: int, **options):
        if devices < 50:
            raise CommandError("--devices must be at least 50.")
        rng = random.Random(seed)
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            groups = self._device_groups()
            created_devices = self._devices(groups, devices, seed)
            recs = self._recommendations()
            new_exposures = self._exposures(recs, seed)
            users = self._users(groups)
            activities = self._activities(recs, groups, users, rng)
            self._exceptions(recs, groups, users)
            from remediation.services import daily_figures_backfill, daily_figures_record

            daily_figures_record()  # today's figures, then a demo history for the charts
            daily_figures_backfill(days=90)
        self.stdout.write(
            f"Demo data: {Device.objects.count()} devices (+{created_devices}), "
            f"{len(recs)} recommendations, {Exposure.objects.count()} exposures (+{new_exposures}), "
            f"{RemediationActivity.objects.count()} remediation activities (+{activities})."
        )
        self.stdout.write("Demo users (sign in at http://127.0.0.1:8000/admin/):")
        for username, password, _, role, superuser in DEMO_USERS:
            label = "superuser" if superuser else role
            if username == "it":
                label += " (sees only " + " and ".join(IT_SCOPE) + ")"
            self.stdout.write(f"  {username:<9} password {password:<20} {label}")

    # --- inventory ------------------------------------------------------------------
    def _device_groups(self) -> dict[str, DeviceGroup]:
        groups = {}
        for name, description in {**DEVICE_GROUPS, UNASSIGNED_GROUP_NAME: "Devices without a group"}.items():
            groups[name], _ = DeviceGroup.objects.get_or_create(name=name, defaults={"description": description})
        return groups

    def _devices(self, groups: dict[str, DeviceGroup], count: int, seed: int) -> int:
        """Device n is the same on every run (its own random stream), so a rerun only tops up."""
        existing = set(Device.objects.values_list("machine_id", flat=True))
        names = list(groups)
        weights = [30, 35, 12, 15, 5, 3]
        prefix = {
            "Servers": "srv",
            "Workstations": "ws",
            "Finance laptops": "fin",
            "Developers": "dev",
            "Kiosks": "kiosk",
            UNASSIGNED_GROUP_NAME: "pc",
        }
        now = timezone.now()
        batch, created = [], 0
        for n in range(count):
            rng = random.Random(f"{seed}-device-{n}")
            group_name = rng.choices(names, weights)[0]
            mid = machine_id(n)
            if mid in existing:
                continue
            batch.append(
                Device(
                    machine_id=mid,
                    computer_dns_name=f"{prefix[group_name]}-{n:06d}.corp.contoso.example",
                    os_platform=rng.choice(OS_BY_GROUP[group_name]),
                    device_group=groups[group_name],
                    # A few devices are not joined to Entra ID and cannot be addressed in Intune.
                    aad_device_id="" if n % 40 == 0 else str(uuid.uuid5(uuid.NAMESPACE_OID, mid)),
                    last_seen=now - dt.timedelta(hours=rng.randint(1, 24 * 14)),
                )
            )
            if len(batch) >= 5000:
                Device.objects.bulk_create(batch)
                created += len(batch)
                batch = []
        Device.objects.bulk_create(batch)
        return created + len(batch)

    def _recommendations(self) -> list[SecurityRecommendation]:
        recs = []
        for i, (vendor, product, label, rtype, version) in enumerate(SOFTWARE):
            verb = {"Update": "Update", "Upgrade": "Upgrade", "Uninstall": "Uninstall"}[rtype]
            defaults = {
                "name": f"{verb} {label}",
                "product_name": product,
                "vendor": vendor,
                "related_component": label,
                "category": SecurityRecommendation.Category.OS if "windows" in product else "Application",
                "remediation_type": rtype,
                "severity_score": round(9.8 - (i % 12) * 0.6, 1),
                "exposure_impact": round(0.2 + (i % 7) * 0.35, 2),
                "config_score_impact": 0,
                "public_exploit": i % 3 == 0,
                "active_alert": i % 7 == 0,
                "weaknesses": 3 + (i * 11) % 180,
                "recommended_version": version,
                "recommended_program": label if rtype == "Upgrade" else "",
                "recommended_vendor": vendor if rtype == "Upgrade" else "",
            }
            rec, _ = SecurityRecommendation.objects.update_or_create(
                external_id=f"va-_-{vendor}-_-{product}", defaults=defaults
            )
            recs.append(rec)
        for i, (category, name) in enumerate(CONFIGURATION):
            defaults = {
                "name": name,
                "product_name": "windows_os",
                "vendor": "microsoft",
                "related_component": "Security controls" if category == "SecurityControls" else category,
                "category": category,
                "remediation_type": SecurityRecommendation.RemediationType.CONFIGURATION_CHANGE,
                "severity_score": round(8.5 - (i % 10) * 0.5, 1),
                "exposure_impact": round(0.1 + (i % 5) * 0.2, 2),
                "config_score_impact": round(1.0 + (i % 9) * 1.5, 2),
                "public_exploit": False,
                "active_alert": i % 11 == 0,
                "weaknesses": 0,
            }
            rec, _ = SecurityRecommendation.objects.update_or_create(
                external_id=f"scid-{2000 + i * 7}", defaults=defaults
            )
            recs.append(rec)
        return recs

    def _exposures(self, recs: list[SecurityRecommendation], seed: int) -> int:
        """Each recommendation draws its exposed devices from its own stream: reruns add nothing."""
        device_ids = list(Device.objects.order_by("pk").values_list("pk", flat=True))
        now = timezone.now()
        created = 0
        for i, rec in enumerate(recs):
            existing = set(Exposure.objects.filter(recommendation=rec).values_list("device_id", flat=True))
            share = [0.6, 0.35, 0.2, 0.1, 0.05, 0.02][i % 6]
            rng = random.Random(f"{seed}-{rec.external_id}")
            chosen = [d for d in device_ids if rng.random() < share]
            chosen = [d for d in chosen if d not in existing]
            batch = [
                Exposure(
                    recommendation=rec,
                    device_id=d,
                    first_seen=now - dt.timedelta(days=rng.randint(1, 90)),
                    last_seen=now,
                )
                for d in chosen
            ]
            Exposure.objects.bulk_create(batch, batch_size=5000)
            created += len(batch)
        # The stored counters (totals and per device group) follow the rows: database triggers.
        return created

    # --- people -------------------------------------------------------------------
    def _users(self, groups: dict[str, DeviceGroup]) -> dict:
        User = get_user_model()
        it_scope, _ = Group.objects.get_or_create(name="IT operations (servers and workstations)")
        for name in IT_SCOPE:
            groups[name].user_groups.add(it_scope)
        users = {}
        for username, password, email, role, superuser in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.email = email
            user.is_staff = True
            user.is_superuser = superuser
            user.set_password(password)
            user.save()
            if role:
                user.groups.add(Group.objects.get(name=role))
            if username == "it":
                user.groups.add(it_scope)
            users[username] = user
        return users

    # --- activities ---------------------------------------------------------------
    @transaction.atomic
    def _activities(self, recs, groups, users, rng: random.Random) -> int:
        from remediation import services

        if RemediationActivity.objects.exists():
            return 0
        security, it = users["security"], users["it"]
        today = timezone.localdate()
        plan = [
            # (recommendation index, option, priority, groups, state)
            (0, "software_uninstall", "high", ["Servers", "Workstations"], "pending"),
            (1, "software_update", "high", ["Workstations", "Finance laptops"], "approved"),
            (2, "software_update", "medium", ["Developers"], "pending"),
            (3, "software_update", "high", ["Finance laptops"], "rejected"),
            (4, "software_update", "low", ["Servers"], "overdue"),
            (5, "attention_required", "medium", ["Kiosks", "Workstations"], "attention"),
            (6, "software_update", "medium", ["Servers", "Developers"], "manual"),
            (7, "software_update", "low", ["Workstations"], "automatic"),
            (8, "software_update", "high", ["Servers"], "legacy"),
            (12, "software_update", "high", ["Workstations"], "approved"),
            (len(SOFTWARE) + 3, "configuration_change", "high", ["Servers", "Workstations"], "pending"),
            (len(SOFTWARE) + 12, "configuration_change", "medium", ["Finance laptops"], "approved"),
            (len(SOFTWARE) + 13, "configuration_change", "high", ["Developers", "Servers"], "manual"),
            (len(SOFTWARE) + 4, "attention_required", "low", ["Servers"], "attention"),
        ]
        created = 0
        for index, option, priority, group_names, state in plan:
            rec = recs[index]
            wanted = [groups[n] for n in group_names]
            due = None if option == "attention_required" else today + dt.timedelta(days=rng.randint(5, 45))
            try:
                activity = services.activity_create(
                    user=security,
                    recommendation=rec,
                    remediation_option=option,
                    priority=priority,
                    device_groups=wanted,
                    due_on=due,
                    requester_notes="Please prioritise internet-facing devices.",
                )
            except ApplicationError as exc:
                self.stderr.write(f"Skipped a demo activity for {rec.name}: {exc.message}")
                continue
            created += 1
            backdate = timezone.now() - dt.timedelta(days=rng.randint(3, 40))
            RemediationActivity.objects.filter(pk=activity.pk).update(created_at=backdate)
            activity.events.update(at=backdate)
            if state in {"approved", "manual"}:
                services.activity_approve(activity=activity, user=it, notes="Scheduled in the next patch window.")
            if state == "rejected":
                services.activity_reject(
                    activity=activity, user=it, notes="Finance is in quarter close; retry in 3 weeks."
                )
            if state == "overdue":
                RemediationActivity.objects.filter(pk=activity.pk).update(due_on=today - dt.timedelta(days=4))
            if state == "manual":
                services.activity_complete(activity=activity, user=it, notes="Deployed through our patch tool.")
            if state == "automatic":
                self._remediate_all(activity)
            if state == "legacy":
                RemediationActivity.objects.filter(pk=activity.pk).update(
                    status="completed", completion_method="unknown", completed_at=timezone.now() - dt.timedelta(days=2)
                )
        # Some progress on the approved ones: a share of their devices is fixed already.
        for activity in RemediationActivity.objects.filter(status="active", ticket_status="approved"):
            self._remediate_share(activity, 0.4, rng)
        return created

    def _exceptions(self, recs, groups, users) -> None:
        """A device-group exception (Partial exception) and a global one (Exception)."""
        from recommendations.models import RecommendationException
        from recommendations.services import exception_create

        if RecommendationException.objects.exists():
            return
        today = timezone.localdate()
        exception_create(
            user=users["security"],
            recommendation=recs[9],
            justification="third_party_control",
            context="Kiosks are re-imaged nightly from a golden image maintained by the vendor.",
            expires_on=today + dt.timedelta(days=60),
            scope="device_groups",
            device_groups=[groups["Kiosks"]],
        )
        exception_create(
            user=users["admin"],
            recommendation=recs[25],
            justification="risk_accepted",
            context="Only on isolated lab machines; removal is planned with the lab refresh.",
            expires_on=today + dt.timedelta(days=30),
            scope="global",
        )

    def _remediate_share(self, activity, share: float, rng: random.Random) -> None:
        device_ids = list(activity.devices.values_list("device_id", flat=True))
        fixed = [d for d in device_ids if rng.random() < share]
        self._mark_remediated(activity, fixed)

    def _remediate_all(self, activity) -> None:
        self._mark_remediated(activity, list(activity.devices.values_list("device_id", flat=True)))

    def _mark_remediated(self, activity, device_ids: list[int]) -> None:
        """Mark exposures remediated as a new scan would, then let the refresh job react."""
        now = timezone.now()
        Exposure.objects.filter(recommendation=activity.recommendation, device_id__in=device_ids).update(
            remediated_at=now
        )
        rec = activity.recommendation
        from remediation.services import activities_refresh_progress

        activities_refresh_progress(recommendation_ids=[rec.pk])
