"""Generate the sample dataset (or a big one for benchmarks), deterministically.

    python sample_data/generate.py --out sample_data            # the shipped sample
    python sample_data/generate.py --out /tmp/big --events 10000000 --format parquet

The same arguments always give byte-identical files. ``generate()`` does the same from
Python and returns the ground truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from sample_data import (
        archive,
        defender,
        implants_world,
        network_world,
        simulate,
        truth,
        windows,
        zeek,
    )
else:
    from . import (
        archive,
        defender,
        implants_world,
        network_world,
        simulate,
        truth,
        windows,
        zeek,
    )

DEFENDER_FILE = "defender_network_events"
DEVICE_INFO_FILE = "device_info.csv"
GROUND_TRUTH_FILE = "ground_truth.csv"
ZEEK_DIR = "zeek"
WINDOWS_DIR = "windows"
ARCHIVE_DIR = "zeek_archive"
# The shipped sample stays under 8 MB: the archive holds the first 8 hours (a third of
# a day: every folder-walking and skipping case, at 0.25 MB).
ARCHIVE_HOURS = 8

# random stream numbers of the writers (the simulation uses 0-3 and 100+)
_DEFENDER_STREAM, _DEVICE_INFO_STREAM, _ZEEK_STREAM = 4, 5, 6


def defender_rows(days: float, devices: int, seed: int, scale: float) -> int:
    """How many DeviceNetworkEvents rows a configuration produces."""
    sc = simulate.simulate(days, devices, seed, scale)
    return defender.plan(sc, simulate.rng_stream(seed, _DEFENDER_STREAM)).height


def devices_for_events(events: int, days: float, seed: int, scale: float) -> int:
    """The organisation size whose Defender export has about ``events`` rows.

    Rows grow linearly with devices (a fixed part is the planted beacons), so two small
    pilot runs give the line.
    """
    small, large = 30, 90
    a, b = defender_rows(days, small, seed, scale), defender_rows(days, large, seed, scale)
    per_device = (b - a) / (large - small)
    fixed = a - per_device * small
    return max(small, round((events - fixed) / per_device))


def generate(
    out_dir: str | Path,
    days: float = 3,
    devices: int = 30,
    seed: int = 7,
    scale: float = 1.0,
    events: int | None = None,
    fmt: str = "csv",
    zeek_logs: bool = True,
    gzip_conn: bool = True,
    windows_host: bool = False,
    zeek_archive: bool = False,
) -> pl.DataFrame:
    """Write the scenario's files into ``out_dir`` and return its ground truth.

    ``events`` (a target Defender row count) overrides ``devices``; ``fmt`` is the
    Defender file's format (csv or parquet); ``gzip_conn`` writes zeek/conn.log.gz
    instead of conn.log (the other Zeek logs stay plain text). ``windows_host`` also
    writes ``windows/``: the Sysmon and Security logs (NXLog JSON Lines) of the device
    hosting the first planted beacon; ``zeek_archive`` writes ``zeek_archive/``: the first
    ``ARCHIVE_HOURS`` of the Zeek logs rotated hourly into a dated folder, with the logs a
    sensor also keeps (weird, stats, capture_loss, dhcp) and a README. Neither changes
    the other files.
    """
    if events is not None:
        devices = devices_for_events(events, days, seed, scale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sc = simulate.simulate(days, devices, seed, scale)
    plan = defender.plan(sc, simulate.rng_stream(seed, _DEFENDER_STREAM))
    defender.write_events(plan, sc, out / f"{DEFENDER_FILE}.{fmt}", fmt)
    info = defender.device_info(sc, simulate.rng_stream(seed, _DEVICE_INFO_STREAM))
    info.write_csv(out / DEVICE_INFO_FILE)
    zeek_counts: dict[int, int] = {}
    if zeek_logs:
        writer = zeek.ZeekWriter(sc, simulate.rng_stream(seed, _ZEEK_STREAM))
        zeek_counts = writer.write(out / ZEEK_DIR, gzip_conn)
    if zeek_archive:
        writer = zeek.ZeekWriter(sc, simulate.rng_stream(seed, _ZEEK_STREAM))
        archive.write_archive(writer, out / ARCHIVE_DIR, ARCHIVE_HOURS)
    table = truth.ground_truth(sc, defender.counts_per_program(plan), zeek_counts)
    table.write_csv(out / GROUND_TRUTH_FILE)
    if windows_host and fmt == "csv":
        beacons = table.filter(pl.col("label") == "beacon").get_column("device")
        windows.write_windows(out / f"{DEFENDER_FILE}.csv", beacons[0], out / WINDOWS_DIR)
    return table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--days", type=float, default=3, help="simulated days (default 3)")
    p.add_argument("--devices", type=int, default=30, help="devices (default 30)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--scale", type=float, default=1.0, help="browsing/background volume factor")
    p.add_argument("--events", type=int, help="target Defender row count; sets --devices")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="Defender file")
    p.add_argument("--no-zeek", action="store_true", help="skip the Zeek logs")
    p.add_argument("--plain-conn", action="store_true", help="write conn.log, not conn.log.gz")
    p.add_argument("--windows", action="store_true", help="also windows/: Sysmon + 5156 JSON")
    p.add_argument("--zeek-archive", action="store_true", help="also zeek_archive/: hourly logs")
    p.add_argument(
        "--scenario",
        choices=("office", "network", "implants"),
        default="office",
        help="office: the shipped sample (default); network: proxy, DMZ sensor host, "
        "resolvers and NTP (sample_data/network_world.py; --seed only); implants: a week "
        "of implant shapes (sample_data/implants_world.py; --seed only)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    began = time.perf_counter()
    if args.scenario == "implants":
        table = implants_world.generate_implants(args.out, seed=args.seed if args.seed != 7 else 15)
        for name in implants_world.FILES:
            print(f"{(Path(args.out) / name).stat().st_size / 1e6:9.2f} MB  {name}")
        beacons = table.filter(pl.col("label") == "beacon").height
        print(f"{beacons} implants, {table.height - beacons} benign periodic programs")
        return 0
    if args.scenario == "network":
        table = network_world.generate_network(args.out, seed=args.seed if args.seed != 7 else 14)
        for name in network_world.FILES:
            print(f"{(Path(args.out) / name).stat().st_size / 1e6:9.2f} MB  {name}")
        beacons = table.filter(pl.col("label") == "beacon").height
        print(f"{beacons} beacons, {table.height - beacons} benign periodic programs")
        return 0
    table = generate(
        args.out,
        days=args.days,
        devices=args.devices,
        seed=args.seed,
        scale=args.scale,
        events=args.events,
        fmt=args.format,
        zeek_logs=not args.no_zeek,
        gzip_conn=not args.plain_conn,
        windows_host=args.windows,
        zeek_archive=args.zeek_archive,
    )
    elapsed = time.perf_counter() - began
    out = Path(args.out)
    names = [f"{DEFENDER_FILE}.{args.format}", DEVICE_INFO_FILE, GROUND_TRUTH_FILE]
    if not args.no_zeek:
        conn = "conn.log" if args.plain_conn else "conn.log.gz"
        names += [f"{ZEEK_DIR}/{name}" for name in (conn, "dns.log", "http.log", "ssl.log")]
    for extra in ([WINDOWS_DIR] if args.windows else []) + (
        [ARCHIVE_DIR] if args.zeek_archive else []
    ):
        files = [p for p in (out / extra).rglob("*") if p.is_file()]
        names += [str(p.relative_to(out)) for p in sorted(files) if "conn" in p.name][:1]
        size = sum(p.stat().st_size for p in files)
        print(f"{size / 1e6:9.2f} MB  {extra}/ ({len(files)} files)")
    for name in names:
        print(f"{(out / name).stat().st_size / 1e6:9.2f} MB  {name}")
    beacons = table.filter(pl.col("label") == "beacon").height
    print(f"{beacons} beacons, {table.height - beacons} benign periodic programs; {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
