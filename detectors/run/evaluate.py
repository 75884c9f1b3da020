"""Score the detectors against labelled data: recall and precision at k, per source.

``beacon-triage eval`` runs every detector and the merged list over a dataset with a
ground truth (the sample data's ``ground_truth.csv``: one row per planted beacon and
per benign periodic program) and reports, for each ranking:

* k = the number of planted beacons present in the data's source (``in_defender``
  for Defender exports, ``in_zeek`` for Zeek logs); each source is evaluated alone,
  as if it were the only telemetry;
* recall@k and precision@k over *findings*: a program seen on two devices is one
  finding, ranked where its best candidate is (an analyst opens the incident once).
  Precision@k is the standard one, beacons in the top k divided by k: a detector
  that returns only three hits, all beacons, leaves k − 3 slots without a beacon.
  With k = the number of beacons it equals recall@k; both are printed because that
  is what analysts compare tools on;
* recall over the whole list, and whether every planted beacon ranks above every
  benign periodic program.

A candidate matches a ground-truth program when its device is one of the program's
devices (DeviceName, or its address for Zeek), its remote IP is the program's, and
its port is the program's (or null: aggregated reports have no port).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.pairs.context import PairContext
from detectors.run.loop import run_all

MERGED = "merged"
SOURCE_DEFENDER = "defender"
SOURCE_ZEEK = "zeek"
SOURCE_FLAGS = {SOURCE_DEFENDER: "in_defender", SOURCE_ZEEK: "in_zeek"}
BEACON = "beacon"
BENIGN = "benign_periodic"

_PROGRAM = "_program"
_LABEL = "_label"
_RANK = "_rank"

RESULT_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "ranking": pl.String(),
    "k": pl.Int64(),
    "recall_at_k": pl.Float64(),
    "precision_at_k": pl.Float64(),
    "recall": pl.Float64(),
    "findings": pl.Int64(),
    "worst_beacon_rank": pl.Int64(),
    "best_benign_rank": pl.Int64(),
    "beacons_above_benign": pl.Boolean(),
    "missed": pl.String(),
}


def split_sources(dataset: PairContext) -> dict[str, PairContext]:
    """The dataset's Defender part and Zeek part, each alone (one part if one source).

    A file is Zeek when its rows carry connection uids. Zeek's names and app tables go
    with the Zeek part; DeviceInfo with the Defender part.
    """
    events = dataset.events
    per_file = events.group_by(S.SOURCE_FILE).agg(pl.col(S.UID).is_not_null().any().alias("_zeek"))
    zeek_files = per_file.filter(pl.col("_zeek")).get_column(S.SOURCE_FILE).to_list()
    other_files = per_file.filter(~pl.col("_zeek")).get_column(S.SOURCE_FILE).to_list()
    parts: dict[str, PairContext] = {}
    if other_files:
        parts[SOURCE_DEFENDER] = PairContext(
            events=events.filter(pl.col(S.SOURCE_FILE).is_in(other_files)),
            device_info=dataset.device_info,
            files=list(dataset.files),
        )
    if zeek_files:
        parts[SOURCE_ZEEK] = PairContext(
            events=events.filter(pl.col(S.SOURCE_FILE).is_in(zeek_files)),
            names=dataset.names,
            app=dataset.app,
            dns=dataset.dns,
            files=list(dataset.files),
        )
    return parts


def _truth_keys(truth: pl.DataFrame) -> pl.DataFrame:
    """One row per (program, device alias, remote IP, port) of the ground truth."""
    return (
        truth.select(
            pl.col("name").alias(_PROGRAM),
            pl.col("label").alias(_LABEL),
            pl.concat_list(
                pl.col("device").cast(pl.String).str.split(";"),
                pl.col("device_ip").cast(pl.String).str.split(";"),
            ).alias("_devices"),
            pl.col("remote_ip").cast(pl.String).alias("_ip"),
            pl.col("remote_port").cast(pl.Int32).alias("_port"),
            (pl.col("domain") if "domain" in truth.columns else pl.lit(None))
            .cast(pl.String)
            .str.to_lowercase()
            .alias("_host"),
        )
        .explode("_devices")
        .rename({"_devices": "_device"})
        .unique()
    )


def label_candidates(candidates: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """The candidates in order, with the ground-truth program each matches (or null).

    A candidate re-keyed to a proxied host (``via_proxy``) also matches a truth row
    that names the proxy's address and port, or whose domain is that host: the same
    program, seen before and after proxies became destinations.
    """
    via = pl.col(S.C_VIA_PROXY) if S.C_VIA_PROXY in candidates.columns else pl.lit(None, pl.String)
    ranked = candidates.select(
        S.C_DEVICE,
        S.C_REMOTE_IP,
        S.C_REMOTE_PORT,
        via.str.replace(r":\d+$", "").alias("_via_ip"),
        via.str.extract(r":(\d+)$").cast(pl.Int32).alias("_via_port"),
    ).with_row_index(_RANK)
    keys = _truth_keys(truth)
    on_device = [S.C_DEVICE]
    direct = ranked.join(
        keys, left_on=[*on_device, S.C_REMOTE_IP], right_on=["_device", "_ip"], how="inner"
    ).filter(pl.col(S.C_REMOTE_PORT).is_null() | (pl.col(S.C_REMOTE_PORT) == pl.col("_port")))
    through = ranked.join(
        keys, left_on=[*on_device, "_via_ip"], right_on=["_device", "_ip"], how="inner"
    ).filter(pl.col("_via_port") == pl.col("_port"))
    named = ranked.join(
        keys, left_on=[*on_device, S.C_REMOTE_IP], right_on=["_device", "_host"], how="inner"
    )
    columns = [_RANK, _PROGRAM, _LABEL]
    matched = pl.concat([m.select(columns) for m in (direct, through, named)])
    first = (
        matched.sort(_RANK, _PROGRAM).unique(_RANK, keep="first").select(_RANK, _PROGRAM, _LABEL)
    )
    return ranked.join(first, on=_RANK, how="left").sort(_RANK)


def findings(labelled: pl.DataFrame) -> pl.DataFrame:
    """The list as an analyst reads it: each program once, at its best rank."""
    programs = labelled.filter(pl.col(_PROGRAM).is_not_null()).unique(_PROGRAM, keep="first")
    others = labelled.filter(pl.col(_PROGRAM).is_null())
    return pl.concat([programs, others]).sort(_RANK).with_row_index("_finding", offset=1)


@dataclass(frozen=True)
class Score:
    k: int
    recall_at_k: float
    precision_at_k: float
    recall: float
    findings: int
    worst_beacon_rank: int | None
    best_benign_rank: int | None
    beacons_above_benign: bool
    missed: list[str]


def score_ranking(candidates: pl.DataFrame, truth: pl.DataFrame) -> Score:
    """Recall and precision at k of one ranked candidate list against ``truth``."""
    beacons = truth.filter(pl.col("label") == BEACON).get_column("name").to_list()
    k = len(beacons)
    found = findings(label_candidates(candidates, truth))
    hits = found.filter(pl.col(_LABEL) == BEACON)
    top = found.head(k)
    beacons_in_top = top.filter(pl.col(_LABEL) == BEACON).height
    benign = found.filter(pl.col(_LABEL) == BENIGN)
    worst = int(hits.get_column("_finding").max()) if hits.height else None  # type: ignore[arg-type]
    best_benign = int(benign.get_column("_finding").min()) if benign.height else None  # type: ignore[arg-type]
    found_names = set(hits.get_column(_PROGRAM).to_list())
    all_found = hits.height == k
    above = all_found and (best_benign is None or (worst is not None and worst < best_benign))
    return Score(
        k=k,
        recall_at_k=beacons_in_top / k if k else 1.0,
        precision_at_k=beacons_in_top / k if k else 1.0,
        recall=hits.height / k if k else 1.0,
        findings=found.height,
        worst_beacon_rank=worst,
        best_benign_rank=best_benign,
        beacons_above_benign=above,
        missed=sorted(set(beacons) - found_names),
    )


def _ranked_hits(frame: pl.DataFrame) -> pl.DataFrame:
    """A single detector's hits ranked by its own score (ties in key order)."""
    return frame.sort(
        [S.C_SCORE, *S.CANDIDATE_KEY],
        descending=[True, False, False, False, False],
        nulls_last=True,
    )


RANKS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "label": pl.String(),
    "program": pl.String(),
    "rank": pl.Int64(),
}


def program_ranks(candidates: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Each ground-truth program's rank among the findings of ``candidates`` (null: not
    in the list), beacons first, in the ground truth's order."""
    found = findings(label_candidates(candidates, truth)).filter(pl.col(_PROGRAM).is_not_null())
    ranks = dict(zip(found.get_column(_PROGRAM), found.get_column("_finding"), strict=True))
    rows = [
        {"label": label, "program": name, "rank": ranks.get(name)}
        for label, name in truth.select("label", "name").iter_rows()
    ]
    frame = pl.DataFrame(rows, schema={k: RANKS_SCHEMA[k] for k in ("label", "program", "rank")})
    return frame.sort(pl.col("label") != BEACON, maintain_order=True)


def evaluate(
    dataset: PairContext,
    ground_truth: pl.DataFrame,
    config: Config | None = None,
    progress: Progress = NULL_PROGRESS,
) -> pl.DataFrame:
    """One row per (source, ranking): every detector alone, then the merged list."""
    return evaluate_with_ranks(dataset, ground_truth, config, progress)[0]


def evaluate_with_ranks(
    dataset: PairContext,
    ground_truth: pl.DataFrame,
    config: Config | None = None,
    progress: Progress = NULL_PROGRESS,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``evaluate``'s table, and each program's rank in the merged list per source
    (``RANKS_SCHEMA``): one run of the detectors for both."""
    config = config or Config()
    rows = []
    ranks = []
    for source, part in split_sources(dataset).items():
        flag = SOURCE_FLAGS[source]
        truth = ground_truth.filter(pl.col(flag).cast(pl.String).str.to_lowercase() == "true")
        result = run_all(part, config, progress=progress)
        rankings = {n: _ranked_hits(h) for n, h in sorted(result.per_detector().items())}
        rankings[MERGED] = result.candidates
        ranked = program_ranks(result.candidates, truth)
        ranks.append(ranked.select(pl.lit(source).alias("source"), pl.all()))
        for name, ranked in rankings.items():
            s = score_ranking(ranked, truth)
            rows.append(
                {
                    "source": source,
                    "ranking": name,
                    "k": s.k,
                    "recall_at_k": s.recall_at_k,
                    "precision_at_k": s.precision_at_k,
                    "recall": s.recall,
                    "findings": s.findings,
                    "worst_beacon_rank": s.worst_beacon_rank,
                    "best_benign_rank": s.best_benign_rank,
                    "beacons_above_benign": s.beacons_above_benign,
                    "missed": ", ".join(s.missed),
                }
            )
    all_ranks = pl.concat(ranks) if ranks else pl.DataFrame(schema=RANKS_SCHEMA)
    return pl.DataFrame(rows, schema=RESULT_SCHEMA), all_ranks.cast(pl.Schema(RANKS_SCHEMA))


def format_table(results: pl.DataFrame) -> str:
    """The evaluation as a fixed-width text table, one block per source."""
    lines = []
    header = (
        f"{'ranking':<18} {'k':>3} {'recall@k':>9} {'prec@k':>7} {'recall':>7} "
        f"{'findings':>8} {'last beacon':>11} {'first benign':>12}  above"
    )
    for source in results.get_column("source").unique(maintain_order=True).to_list():
        block = results.filter(pl.col("source") == source)
        lines.append(f"source: {source}")
        lines.append(header)
        lines.append("-" * len(header))
        for r in block.iter_rows(named=True):
            worst = "-" if r["worst_beacon_rank"] is None else str(r["worst_beacon_rank"])
            benign = "-" if r["best_benign_rank"] is None else str(r["best_benign_rank"])
            lines.append(
                f"{r['ranking']:<18} {r['k']:>3} {r['recall_at_k']:>9.2f} "
                f"{r['precision_at_k']:>7.2f} {r['recall']:>7.2f} {r['findings']:>8} "
                f"{worst:>11} {benign:>12}  {'yes' if r['beacons_above_benign'] else 'no'}"
            )
        merged = block.filter(pl.col("ranking") == MERGED)
        if merged.height and merged.item(0, "missed"):
            lines.append(f"merged list misses: {merged.item(0, 'missed')}")
        lines.append("")
    lines.append(
        "k = planted beacons in the source; ranks count findings (a program once, at its "
        "best candidate); above = every beacon ranks above every benign periodic program."
    )
    return "\n".join(lines) + "\n"


def format_ranks(ranks: pl.DataFrame) -> str:
    """Each program's rank in the merged list, one column per source ("-": not listed)."""
    sources = ranks.get_column("source").unique(maintain_order=True).to_list()
    if not sources:
        return ""
    wide = ranks.pivot(on="source", index=["label", "program"], values="rank")
    width = max(18, *(len(p) for p in wide.get_column("program").to_list()))
    head = f"{'program':<{width}} {'label':<16}" + "".join(f" {s:>9}" for s in sources)
    lines = ["rank of each program in the merged list (findings, per source)", head]
    lines.append("-" * len(head))
    for r in wide.iter_rows(named=True):
        cells = "".join(f" {'-' if r[s] is None else r[s]:>9}" for s in sources)
        lines.append(f"{r['program']:<{width}} {r['label']:<16}{cells}")
    return "\n".join(lines) + "\n"


def report(
    dataset: PairContext,
    ground_truth: pl.DataFrame,
    config: Config | None = None,
    progress: Progress = NULL_PROGRESS,
) -> str:
    """``beacon-triage eval``'s output: the evaluation table, then each program's rank."""
    results, ranks = evaluate_with_ranks(dataset, ground_truth, config, progress)
    return format_table(results) + "\n" + format_ranks(ranks)
