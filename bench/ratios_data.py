"""The data set of bench/ratios.py, built with set-based SQL (minutes, not hours) and reused.

Run by ratios.py in a child process whose DATABASE_URL names the database to fill:

    DATABASE_URL=postgres://... python bench/ratios_data.py big|small

big: 1,000,000 devices in 40 device groups, 1,000 recommendations, 10,000 activities with
4,100,155 activity devices: one of 1,000,000 devices (the oldest), one of 775, and 9,998 of
310 (a contiguous run of devices, so one or two device groups each); 30% of the devices of
each activity remediated. small: 100,000 devices in 4 groups, 100 activities (one of 775,
the others of 310).
Both have the users `bench-security` (sees every group) and `bench-it` (IT staff, 4 of the 40
groups) with API tokens; their password is `bench-password-2026`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {
    # groups: the IT user sees 4 of them, so about 1,000 of the big set's activities and all
    # 100 of the small one's (both fill a first page); largest: the devices of activity 0.
    "big": {"devices": 1_000_000, "activities": 10_000, "groups": 40, "largest": 1_000_000},
    "small": {"devices": 100_000, "activities": 100, "groups": 4, "largest": 310},
}
VERSION = "2"
RECOMMENDATIONS = 1000
PER_ACTIVITY = 310
REFERENCE_DEVICES = 775
PASSWORD = "bench-password-2026"  # noqa: S105 - a bench-only account in a throw-away database
MARKER = "bench_ratios_dataset"


def _sql(cursor, statement: str, params=None) -> None:
    t0 = time.perf_counter()
    cursor.execute(statement, params)
    print(f"  {time.perf_counter() - t0:6.1f} s  {statement.split(chr(10))[0][:90]}", flush=True)


def built(cursor, size: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [MARKER])
    if not cursor.fetchone()[0]:
        return False
    cursor.execute(f"SELECT size FROM {MARKER}")  # noqa: S608 - a constant
    row = cursor.fetchone()
    return bool(row and row[0] == f"{size} v{VERSION}")


def build(size: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection, transaction
    from rest_framework.authtoken.models import Token

    from recommendations.models import DeviceGroup

    User = get_user_model()  # noqa: N806

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        if built(cursor, size):
            print(f"data set '{size}' already built: reused", flush=True)
            return
    n_devices, n_activities = SIZES[size]["devices"], SIZES[size]["activities"]
    n_groups, largest = SIZES[size]["groups"], SIZES[size]["largest"]
    per_group = n_devices // n_groups
    print(f"building data set '{size}': {n_devices:,} devices, {n_activities:,} activities", flush=True)
    with transaction.atomic(), connection.cursor() as cursor:
        for table in (
            "remediation_activityevent",
            "remediation_activitynotification",
            "intune_intunetask",
            "remediation_activitydevice",
            "remediation_remediationactivity_device_groups",
            "remediation_remediationactivity",
            "recommendations_exposure",
            "recommendations_recommendationgroupexposure",
            "recommendations_device",
            "recommendations_securityrecommendation",
        ):
            _sql(cursor, f"TRUNCATE {table} CASCADE")
        groups = [DeviceGroup.objects.get_or_create(name=f"Bench group {g:02d}")[0] for g in range(n_groups)]
        group_ids = [g.pk for g in groups]
        _sql(
            cursor,
            """INSERT INTO recommendations_securityrecommendation (external_id, name, product_name, vendor,
            related_component, category, remediation_type, severity_score, exposure_impact, config_score_impact,
            public_exploit, active_alert, weaknesses, recommended_version, recommended_program, recommended_vendor,
            sub_category, associated_threats, tags, exposed_devices)
            SELECT 'va-_-vendor' || n || '-_-product' || n, 'Update Product ' || n, 'product' || n, 'vendor' || n,
            'Product ' || n, 'Application', 'Update', (n %% 10)::float, 1.0, 0.0, n %% 3 = 0, false, n %% 50,
            '2.0', '', '', '', '[]'::jsonb, '[]'::jsonb, 0 FROM generate_series(1, %s) n""",
            [RECOMMENDATIONS],
        )
        _sql(
            cursor,
            """INSERT INTO recommendations_device (machine_id, computer_dns_name, os_platform, os_version,
            device_group_id, aad_device_id, first_seen, last_seen, health_status, risk_score, exposure_level,
            machine_tags, last_ip_address)
            SELECT lpad(to_hex(n), 40, '0'), 'host-' || substr(md5(n::text), 1, 12) || '.corp.example',
            'Windows11', '22H2', (%s::bigint[])[1 + (n - 1) / %s],
            '00000000-0000-4000-8000-' || lpad(n::text, 12, '0'), now(), now(), 'Active', 'Low', 'Low',
            '[]'::jsonb, '10.0.' || (n %% 250) || '.' || (n %% 200) FROM generate_series(1, %s) n""",
            [group_ids, per_group, n_devices],
        )
        # Activity 0: every device, the oldest; activity 1: 775 devices; the others 310 each.
        _sql(
            cursor,
            """CREATE TEMP TABLE bench_act ON COMMIT DROP AS
            SELECT n, gen_random_uuid() AS id,
            CASE WHEN n = 0 THEN 1 WHEN n = 1 THEN 1 ELSE 1 + ((n * 7919) %% (%s - %s)) END AS first_device,
            CASE WHEN n = 0 THEN %s WHEN n = 1 THEN %s ELSE %s END AS devices
            FROM generate_series(0, %s - 1) n""",
            [n_devices, PER_ACTIVITY, largest, REFERENCE_DEVICES, PER_ACTIVITY, n_activities],
        )
        _sql(
            cursor,
            """INSERT INTO remediation_remediationactivity (id, recommendation_id, title, description,
            remediation_option, category, priority, due_on, requester_notes, created_by_id, requester_email,
            created_at, status, ticket_status, it_notes, completion_method, completed_by_id, completer_email,
            completed_at, create_intune_task, target_devices, fixed_devices)
            SELECT a.id, r.id, 'Update Product ' || (a.n %% 1000) || ' (' || a.n || ')', 'Update the product.',
            'software_update', 'software', (ARRAY['high', 'medium', 'low'])[1 + a.n %% 3],
            CURRENT_DATE + (a.n %% 90 - 30), '', NULL, 'security@example.com',
            now() - make_interval(mins => CASE WHEN a.n = 0 THEN 10000000 ELSE %s - a.n END),
            'active', (ARRAY['pending', 'approved', 'rejected'])[1 + a.n %% 3], '', '', NULL, '', NULL, false, 0, 0
            FROM bench_act a JOIN recommendations_securityrecommendation r
            ON r.external_id = 'va-_-vendor' || (1 + a.n %% 1000) || '-_-product' || (1 + a.n %% 1000)""",
            [n_activities],
        )
        _sql(
            cursor,
            """INSERT INTO remediation_activitydevice (activity_id, device_id, status, remediated_at,
            sent_to_intune, device_name)
            SELECT a.id, d.id, CASE WHEN d.id % 10 < 3 THEN 'remediated' ELSE 'exposed' END,
            CASE WHEN d.id % 10 < 3 THEN now() - interval '1 day' END, false, d.computer_dns_name
            FROM bench_act a JOIN recommendations_device d
            ON d.machine_id >= lpad(to_hex(a.first_device), 40, '0')
            AND d.machine_id < lpad(to_hex(a.first_device + a.devices), 40, '0')""",
        )
        _sql(
            cursor,
            """UPDATE remediation_remediationactivity ra SET target_devices = c.total, fixed_devices = c.fixed
            FROM (SELECT activity_id, count(*) AS total, count(*) FILTER (WHERE status = 'remediated') AS fixed
            FROM remediation_activitydevice GROUP BY activity_id) c WHERE c.activity_id = ra.id""",
        )
        _sql(
            cursor,
            """INSERT INTO remediation_remediationactivity_device_groups (remediationactivity_id, devicegroup_id)
            SELECT DISTINCT ad.activity_id, d.device_group_id FROM remediation_activitydevice ad
            JOIN recommendations_device d ON d.id = ad.device_id""",
        )
        _sql(
            cursor,
            """INSERT INTO remediation_activityevent (activity_id, kind, actor_id, actor_label, notes, at)
            SELECT id, 'created', NULL, 'security@example.com', '', created_at FROM remediation_remediationactivity""",
        )
        scope, _ = Group.objects.get_or_create(name="Bench IT scope")
        for group in groups[:4]:
            group.user_groups.add(scope)
        security, _ = User.objects.get_or_create(username="bench-security", defaults={"email": "sec@example.com"})
        it, _ = User.objects.get_or_create(username="bench-it", defaults={"email": "it@example.com"})
        for user, roles in ((security, ["Security staff"]), (it, ["IT staff", "Bench IT scope"])):
            user.is_staff = True
            user.set_password(PASSWORD)
            user.save()
            user.groups.set(Group.objects.filter(name__in=roles))
            Token.objects.get_or_create(user=user)
        _sql(cursor, f"CREATE TABLE IF NOT EXISTS {MARKER} (size text)")
        _sql(cursor, f"DELETE FROM {MARKER}")  # noqa: S608 - a constant
        _sql(cursor, f"INSERT INTO {MARKER} VALUES (%s)", [f"{size} v{VERSION}"])  # noqa: S608 - a constant
    with connection.cursor() as cursor:
        for table in ("recommendations_device", "remediation_activitydevice", "remediation_remediationactivity"):
            _sql(cursor, f"VACUUM ANALYZE {table}")


if __name__ == "__main__":
    build(sys.argv[1])
