"""Benchmark: import 1,000,000 exposures over 100,000 devices (run by hand, not in the suite).

    createdb -h 127.0.0.1 -U postgres bench_f    # once; the script migrates it
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_f .venv/bin/python bench/bench_import.py

Generates Defender-shaped files (recommendations and machines as `{"value": [...]}` JSON,
exposures as CSV) in a temporary directory, then runs, each in a fresh process so that its
peak memory is its own:

1. the full import (recommendations, machines, 1,000,000 exposures: all created);
2. a second snapshot without 10% of the devices (100,000 exposures remediated);
3. the first snapshot again (those exposures come back: re-exposed).

Prints wall time, the longest transaction and peak RSS (getrusage ru_maxrss) of each phase, and a
Markdown row.
Options: --devices N --recommendations N --per-device N (exposures = devices x per-device).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
    import django

    django.setup()


def machine_id(n: int) -> str:
    return f"{n:040x}"


def generate(directory: Path, *, devices: int, recommendations: int, per_device: int, seed: int = 7) -> dict:
    """Write the files, streaming (constant memory). Returns their paths."""
    rng = random.Random(seed)
    recs = directory / "recommendations.json"
    with recs.open("w") as fh:
        fh.write('{"@odata.context": "bench", "value": [\n')
        for i in range(recommendations):
            software = i % 5 != 0
            record = {
                "id": f"va-_-vendor{i}-_-product{i}" if software else f"scid-{i}",
                "productName": f"product{i}" if software else None,
                "recommendationName": f"Update Product {i}" if software else f"Harden setting {i}",
                "weaknesses": rng.randint(0, 50),
                "vendor": f"vendor{i}" if software else None,
                "recommendedVersion": f"{rng.randint(1, 30)}.0" if software else None,
                "recommendationCategory": "Application" if software else "SecurityControls",
                "subCategory": "",
                "severityScore": round(rng.uniform(0, 10), 1),
                "publicExploit": rng.random() < 0.2,
                "activeAlert": rng.random() < 0.05,
                "associatedThreats": [],
                "remediationType": "Update" if software else "ConfigurationChange",
                "status": "Active",
                "configScoreImpact": 0 if software else round(rng.uniform(0, 3), 2),
                "exposureImpact": round(rng.uniform(0, 5), 2),
                "totalMachineCount": devices,
                "exposedMachinesCount": 0,
                "relatedComponent": f"Product {i}",
            }
            fh.write(("," if i else "") + json.dumps(record) + "\n")
        fh.write("]}\n")
    machines = directory / "machines.json"
    with machines.open("w") as fh:
        fh.write('{"@odata.context": "bench", "value": [\n')
        for n in range(devices):
            record = {
                "id": machine_id(n),
                "computerDnsName": f"host-{n}.corp.contoso.com",
                "osPlatform": rng.choice(["Windows10", "Windows11", "WindowsServer2022", "Linux"]),
                "rbacGroupName": None if n % 50 == 0 else f"Group {n % 40}",
                "aadDeviceId": f"{n:08x}-0000-4000-8000-{n:012x}",
                "lastSeen": "2026-11-20T08:00:00.1234567Z",
                "healthStatus": "Active",
            }
            fh.write(("," if n else "") + json.dumps(record) + "\n")
        fh.write("]}\n")
    rec_ids = [f"va-_-vendor{i}-_-product{i}" if i % 5 else f"scid-{i}" for i in range(recommendations)]
    first = directory / "exposures-1.csv"
    second = directory / "exposures-2.csv"
    with first.open("w") as one, second.open("w") as two:
        one.write("recommendationId,machineId\n")
        two.write("recommendationId,machineId\n")
        for n in range(devices):
            mid = machine_id(n)
            start = (n * 7) % recommendations
            for k in range(per_device):
                line = f"{rec_ids[(start + k * 13) % recommendations]},{mid}\n"
                one.write(line)
                if n % 10:  # every tenth device is fixed by the second snapshot
                    two.write(line)
    return {"recommendations": recs, "machines": machines, "first": first, "second": second}


def _phase(name: str, kwargs: dict, queue) -> None:
    setup_django()
    from bench.ratios_jobs import Transactions
    from recommendations.services import import_tvm_files

    timer = Transactions()  # the longest transaction (atomic blocks and statements in autocommit)
    started = time.perf_counter()
    summary = import_tvm_files(**kwargs)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    queue.put(
        {
            "phase": name,
            "seconds": round(elapsed, 1),
            "longest_transaction": round(timer.longest, 1),
            "peak_mb": round(peak_mb),
            "summary": summary,
        }
    )


def run_phase(name: str, **kwargs) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_phase, args=(name, {k: str(v) for k, v in kwargs.items()}, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--recommendations", type=int, default=1_000)
    parser.add_argument("--per-device", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the data (default: delete the inventory first)")
    args = parser.parse_args()

    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from recommendations.models import Device, DeviceGroup, Exposure, SecurityRecommendation
    from remediation.models import RemediationActivity

    call_command("migrate", verbosity=0)
    if not args.keep:
        models = [Exposure, Device, SecurityRecommendation, DeviceGroup]
        if connection.vendor == "postgresql":  # a clean start: empty tables, no dead rows
            with connection.cursor() as cursor:
                tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
                cursor.execute(f"TRUNCATE {tables} CASCADE")
        else:
            RemediationActivity.objects.all().delete()
            for model in models:
                model.objects.all().delete()
    connection.close()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = generate(
            Path(tmp), devices=args.devices, recommendations=args.recommendations, per_device=args.per_device
        )
        print(
            f"generated files in {time.perf_counter() - t0:.1f}s: "
            + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in files.values())
        )
        results = [
            run_phase(
                "full import",
                recommendations=files["recommendations"],
                machines=files["machines"],
                exposures=files["first"],
            ),
            run_phase("second snapshot (10% of devices fixed)", exposures=files["second"]),
            run_phase("first snapshot again (re-exposed)", exposures=files["first"]),
        ]
    vendor = connection.vendor
    exposures = args.devices * args.per_device
    print(
        f"\n{exposures:,} exposures over {args.devices:,} devices, {args.recommendations:,} recommendations, {vendor}"
    )
    print("| phase | time | longest transaction | peak RSS | created | updated | remediated | re-exposed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["summary"]
        print(
            f"| {r['phase']} | {r['seconds']} s | {r['longest_transaction']} s | {r['peak_mb']} MB | "
            f"{s['created']:,} | {s['updated']:,} | {s['remediated']:,} | {s['re_exposed']:,} |"
        )


if __name__ == "__main__":
    main()
