"""One Windows workstation's network events as Sysmon and Windows Security write them.

A responder on one host exports its event logs; NXLog ships them as JSON Lines. From the
Defender plan of the device that hosts the first planted beacon, each outbound
connection becomes a Sysmon event 3 (NetworkConnect, ``Initiated`` true) and a Security
event 5156 (the Filtering Platform permitted it, ``Direction`` %%14593); each accepted
inbound connection becomes the same pair marked inbound (``Initiated`` false, %%14592).
Around them, the noise those logs really hold: a Sysmon event 1 (process create) for
each process's first connection, and a 5158 (bind) before each 5156.

5156 names the program as a kernel path, lowercase (``\\device\\harddiskvolume3\\...``);
Sysmon as ``C:\\...``. Sysmon times keep milliseconds; the Security log's NXLog
``EventTime`` keeps seconds (written in UTC here). Both files are gzip, written
without a name or time stamp, so the bytes are reproducible.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import polars as pl

SYSMON = "Microsoft-Windows-Sysmon"
SECURITY = "Microsoft-Windows-Security-Auditing"
OUTBOUND_ACTIONS = ("ConnectionSuccess", "ConnectionFailed", "ConnectionRequest")
INBOUND_ACTION = "InboundConnectionAccepted"
# Where each kind of program lives; anything else is a per-user install.
SYSTEM_PROGRAMS = {
    "svchost.exe", "lsass.exe", "rundll32.exe", "powershell.exe", "msiexec.exe", "dllhost.exe",
    "MsMpEng.exe", "SearchApp.exe", "OneDrive.exe", "taskhostw.exe", "wermgr.exe",
}  # fmt: skip


def _image(process: pl.Expr, account: pl.Expr) -> pl.Expr:
    system = pl.concat_str(
        pl.lit("C:\\Windows\\System32\\"), process
    )  # powershell lives deeper; the file name is what matters for matching
    user = pl.concat_str(
        pl.lit("C:\\Users\\"), account, pl.lit("\\AppData\\Local\\Programs\\"), process
    )
    return pl.when(process.is_in(list(SYSTEM_PROGRAMS))).then(system).otherwise(user)


def _kernel_path(image: pl.Expr) -> pl.Expr:
    """``C:\\Windows\\...`` as the Filtering Platform names it: volume device, lowercase."""
    return pl.concat_str(
        pl.lit("\\device\\harddiskvolume3\\"), image.str.slice(3).str.to_lowercase()
    )


def _write_gz(frame: pl.DataFrame, path: Path) -> None:
    text = io.BytesIO()
    frame.write_ndjson(text)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as out:
        out.write(text.getvalue())


def write_windows(defender_csv: Path, device: str, folder: Path) -> list[Path]:
    """Write ``<device>_sysmon.jsonl.gz`` and ``<device>_security.jsonl.gz``; their paths."""
    rows = pl.read_csv(defender_csv, infer_schema=False).filter(
        (pl.col("DeviceName") == device)
        & pl.col("ActionType").is_in([*OUTBOUND_ACTIONS, INBOUND_ACTION])
    )
    inbound = pl.col("ActionType") == INBOUND_ACTION
    account = pl.col("InitiatingProcessAccountName")
    host = pl.lit(device.upper().split(".")[0] + "." + device.split(".", 1)[1])
    stamp = pl.col("Timestamp")  # Kusto: 2026-11-18T00:03:39.8579084Z
    utc_ms = pl.concat_str(stamp.str.slice(0, 10), pl.lit(" "), stamp.str.slice(11, 12))
    utc_s = utc_ms.str.slice(0, 19)
    image = _image(pl.col("InitiatingProcessFileName"), account)
    protocol = pl.col("Protocol").str.to_lowercase()
    frame = rows.with_row_index("n").with_columns(
        utc_ms.alias("utc_ms"), utc_s.alias("utc_s"), image.alias("image")
    )
    sysmon_net = frame.select(
        pl.col("n"),
        pl.lit(1).alias("order"),
        pl.col("utc_s").alias("EventTime"),
        host.alias("Hostname"),
        pl.lit(3).alias("EventID"),
        pl.lit(SYSMON).alias("SourceName"),
        pl.lit("Microsoft-Windows-Sysmon/Operational").alias("Channel"),
        pl.lit("-").alias("RuleName"),
        pl.col("utc_ms").alias("UtcTime"),
        pl.col("image").alias("Image"),
        pl.concat_str(
            pl.col("InitiatingProcessAccountDomain").str.to_uppercase(), pl.lit("\\"), account
        ).alias("User"),
        protocol.alias("Protocol"),
        pl.when(inbound).then(pl.lit("false")).otherwise(pl.lit("true")).alias("Initiated"),
        pl.col("LocalIP").alias("SourceIp"),
        pl.col("LocalPort").cast(pl.Int64).alias("SourcePort"),
        pl.col("RemoteIP").alias("DestinationIp"),
        pl.col("RemotePort").cast(pl.Int64).alias("DestinationPort"),
    )
    first_use = frame.filter(~inbound).unique("InitiatingProcessFileName", keep="first")
    sysmon_proc = first_use.select(
        pl.col("n"),
        pl.lit(0).alias("order"),
        pl.col("utc_s").alias("EventTime"),
        host.alias("Hostname"),
        pl.lit(1).alias("EventID"),
        pl.lit(SYSMON).alias("SourceName"),
        pl.lit("Microsoft-Windows-Sysmon/Operational").alias("Channel"),
        pl.lit("-").alias("RuleName"),
        pl.col("utc_ms").alias("UtcTime"),
        pl.col("image").alias("Image"),
        pl.concat_str(pl.lit('"'), pl.col("image"), pl.lit('"')).alias("CommandLine"),
    )
    sysmon = pl.concat([sysmon_proc, sysmon_net], how="diagonal").sort("n", "order")
    security_common = [
        pl.col("utc_s").alias("EventTime"),
        host.alias("Hostname"),
        pl.lit(SECURITY).alias("SourceName"),
        pl.lit("Security").alias("Channel"),
        pl.lit(4242).alias("ProcessID"),
        _kernel_path(pl.col("image")).alias("Application"),
        pl.col("LocalIP").alias("SourceAddress"),
        pl.col("LocalPort").alias("SourcePort"),
    ]
    bind = frame.filter(~inbound).select(
        pl.col("n"), pl.lit(0).alias("order"), pl.lit(5158).alias("EventID"), *security_common,
        pl.when(protocol == "udp").then(pl.lit("17")).otherwise(pl.lit("6")).alias("Protocol"),
    )  # fmt: skip
    permitted = frame.select(
        pl.col("n"), pl.lit(1).alias("order"), pl.lit(5156).alias("EventID"), *security_common,
        pl.when(inbound).then(pl.lit("%%14592")).otherwise(pl.lit("%%14593")).alias("Direction"),
        pl.col("RemoteIP").alias("DestAddress"),
        pl.col("RemotePort").alias("DestPort"),
        pl.when(protocol == "udp").then(pl.lit("17")).otherwise(pl.lit("6")).alias("Protocol"),
    )  # fmt: skip
    security = pl.concat([bind, permitted], how="diagonal").sort("n", "order")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{device}_sysmon.jsonl.gz", folder / f"{device}_security.jsonl.gz"]
    _write_gz(sysmon.drop("n", "order"), paths[0])
    _write_gz(security.drop("n", "order"), paths[1])
    return paths
