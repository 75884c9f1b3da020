"""Which candidates the table shows, in which order, and how each cell reads.

Filtering and sorting are polars expressions over the whole candidate frame (100k rows
take milliseconds), so the table widget only ever formats the rows on screen. No
Textual here: the tests check the view without running an app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from detectors.base import schema as S
from detectors.base.sanitize import visible
from tui import format as F

if TYPE_CHECKING:
    import polars as pl
else:
    from tui.lazy import polars as pl

C_MARK = S.C_MARK  # unreviewed, suspicious, benign, escalate
C_PROTOCOL = S.PROTOCOL  # added by tui.pipeline: the pair's transport (tcp, udp, icmp)
C_ALLOWED = S.C_ALLOWED  # True when an allow-list entry matches
UNREVIEWED = "unreviewed"
HAYSTACK = "_haystack"  # lower-cased device|process|ip|domain, built once per merge

SEARCHED = (S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP, S.C_DOMAIN)
MARK_FILTERS = (None, "unmarked", "marked", "suspicious", "escalate", "benign")
SCORE_STEP = 0.1


@dataclass(frozen=True)
class ViewSpec:
    """The user's current filters and sort; the table shows ``apply_view(frame, spec)``."""

    text: str = ""
    detector: str | None = None
    min_score: float = 0.0
    show_allowed: bool = False
    mark: str | None = None  # None: all, "unmarked", "marked", or one mark
    sort: str = "score"
    descending: bool = True
    # ``C``: only the candidates to one destination, (address, registered domain)
    destination: tuple[str | None, str | None] | None = None

    def with_(self, **changes: Any) -> ViewSpec:
        return replace(self, **changes)

    def describe(self) -> str:
        """One line for the filter bar: what is hiding rows right now."""
        parts = []
        if self.destination:
            ip, domain = self.destination
            parts.append(f"campaign→{visible(domain or ip or '?')}")
        if self.detector:
            parts.append(f"detector={self.detector}")
        if self.min_score > 0:
            parts.append(f"score≥{self.min_score:.1f}")
        if self.mark:
            parts.append(f"mark={self.mark}")
        if self.show_allowed:
            parts.append("allow-listed shown")
        arrow = "↓" if self.descending else "↑"
        parts.append(f"sort {self.sort}{arrow}")
        return " · ".join(parts)


def _text(column: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: visible(row.get(column)) if row.get(column) is not None else ""


def remote_text(
    ip: str | None,
    port: int | None,
    protocol: str | None = None,
    *,
    inbound: bool = False,
    proxy: str | None = None,
) -> str:
    """``ip:port`` for TCP, ``ip:port/udp`` for UDP, ``ip icmp`` for ICMP (whose "port"
    is an ICMP type or code, not a port: ``:3`` would mislead), IPv6 in brackets; ``← ``
    when the remote end connected to us, `` via proxy P`` for a proxied pair."""
    shown = visible(ip or "")
    proto = (protocol or "").lower()
    if proto.startswith("icmp"):
        text = f"{shown} {proto}"
    else:
        if ":" in shown:  # IPv6: brackets keep the port readable
            shown = f"[{shown}]"
        if port is None:
            text = shown
        else:
            text = f"{shown}:{port}/udp" if proto == "udp" else f"{shown}:{port}"
    if inbound:
        text = f"← {text}"
    return f"{text} via proxy {visible(proxy)}" if proxy else text


def remote_cell(row: dict[str, Any]) -> str:
    return remote_text(
        row.get(S.C_REMOTE_IP),
        row.get(S.C_REMOTE_PORT),
        row.get(S.C_ICMP) or row.get(C_PROTOCOL),  # "icmp/8 echo": the type, not a port
        inbound=row.get(S.C_DIRECTION) == S.DIR_INBOUND,
        proxy=row.get(S.C_VIA_PROXY),
    )


REMOTE_MAX = 60  # "← [IPv6]:port/udp" fits; only a proxy name beyond it is cut


def _remote_width(frame: pl.DataFrame, with_proxy: bool = False) -> int:
    """The widest ``remote`` cell of the frame, so an address is never cut (polars: an
    upper bound from the longest IP, the longest port and the protocol marker). The
    `` via proxy P`` that follows a proxied address counts only ``with_proxy``: the
    column's minimum is the address; spare cells then go to the proxy names, which
    alone may end in ``…`` (one proxied pair does not squeeze out other columns)."""
    if frame.height == 0 or S.C_REMOTE_IP not in frame.columns:
        return 0
    ip = pl.col(S.C_REMOTE_IP).cast(pl.String).fill_null("")
    port = pl.col(S.C_REMOTE_PORT).cast(pl.String) if S.C_REMOTE_PORT in frame.columns else None
    width = ip.str.len_chars() + ip.str.contains(":", literal=True).cast(pl.Int64) * 2
    if port is not None:
        width = width + (port.str.len_chars() + 1).fill_null(0)
    if C_PROTOCOL in frame.columns:
        icmp = pl.col(S.C_ICMP) if S.C_ICMP in frame.columns else pl.lit(None, pl.String)
        proto = (
            pl.coalesce(icmp, pl.col(C_PROTOCOL).cast(pl.String)).str.to_lowercase().fill_null("")
        )
        width = width + pl.when(proto == "udp").then(4).when(proto.str.starts_with("icmp")).then(
            proto.str.len_chars() + 1
        ).otherwise(0)
    if S.C_DIRECTION in frame.columns:
        width = width + (pl.col(S.C_DIRECTION) == S.DIR_INBOUND).fill_null(False).cast(pl.Int64) * 2
    if S.C_VIA_PROXY in frame.columns:
        proxy = pl.col(S.C_VIA_PROXY).cast(pl.String)
        if with_proxy:
            width = width + (proxy.str.len_chars() + len(" via proxy ")).fill_null(0)
        else:  # "address …": the cut proxy name's ellipsis never lands on the address
            width = width + proxy.is_not_null().cast(pl.Int64) * 2
    # A long proxy name is cut at the end (ellipsis); the address before it never is.
    return min(REMOTE_MAX, int(frame.select(width.max()).item() or 0))


def _longest(column: str, cap: int) -> Callable[[pl.DataFrame], int]:
    """The longest value, up to ``cap`` cells: a device that is an IP (Zeek) is never
    cut, a long host name still is (with an ellipsis) once it passes the cap."""

    def measure(frame: pl.DataFrame) -> int:
        if frame.height == 0 or column not in frame.columns:
            return 0
        longest = frame.select(pl.col(column).cast(pl.String).str.len_chars().max()).item()
        return min(cap, int(longest or 0))

    return measure


def _detectors_width(frame: pl.DataFrame) -> int:
    """The longest detectors list as shown (comma-joined), up to 30 cells."""
    if frame.height == 0 or S.C_DETECTORS not in frame.columns:
        return 0
    if not isinstance(frame.schema[S.C_DETECTORS], pl.List):
        return 0
    joined = pl.col(S.C_DETECTORS).list.join(",").str.len_chars().max()
    return min(30, int(frame.select(joined).item() or 0))


def _format_width(column: str, fmt: Callable[[Any], str]) -> Callable[[pl.DataFrame], int]:
    """The widest formatted value among the column's extremes (numbers only)."""

    def measure(frame: pl.DataFrame) -> int:
        if frame.height == 0 or column not in frame.columns:
            return 0
        ends = frame.select(pl.col(column).min().alias("lo"), pl.col(column).max().alias("hi"))
        return max(len(fmt(v)) for v in ends.row(0))

    return measure


def _detectors(row: dict[str, Any]) -> str:
    names = row.get(S.C_DETECTORS) or []
    return ",".join(visible(n) for n in names)


def _mark(row: dict[str, Any]) -> str:
    """S(uspicious), E(scalate), B(enign), plus A when allow-listed; blank when unreviewed."""
    mark = row.get(C_MARK)
    allowed = "A" if row.get(C_ALLOWED) else ""
    shown = visible(mark)[:1].upper() if mark and mark != UNREVIEWED else ""
    return shown + allowed


@dataclass(frozen=True)
class Column:
    """A table column: title, widths, alignment, how to sort and how to show a cell."""

    key: str
    title: str
    width: int  # minimum width in cells
    cell: Callable[[dict[str, Any]], str]
    sort_by: Callable[[], pl.Expr] | None = None
    needs: tuple[str, ...] = ()  # frame columns the sort needs
    flex: int = 0  # share of the spare width
    right: bool = False
    descending_first: bool = False  # the first direction a sort by this column takes
    sort_hint: str = ""  # what the first direction puts on top, for the sort picker
    keep: int = 9  # when the screen is narrow, columns with the highest ``keep`` go first
    measure: Callable[[pl.DataFrame], int] | None = None  # content width: never cut
    hides_when_empty: bool = True  # hidden while every row's value is empty (Zeek: process)

    @property
    def name(self) -> str:
        """The column's name in words (the mark column's title is one letter)."""
        return self.key if len(self.title) < 3 else self.title


def _by(column: str) -> Callable[[], pl.Expr]:
    return lambda: pl.col(column)


def _lower(column: str) -> Callable[[], pl.Expr]:
    return lambda: pl.col(column).str.to_lowercase()


# Display order; ``keep`` is the order columns give way on a narrow screen (0 stays
# longest): score, the remote end and the device first, then the timing figures; the
# names that can be long (process, domain, detectors) and the times go first. The same
# order serves every source: a column every row leaves empty (a Zeek capture's process,
# a file without DNS names) is hidden, so its width goes to the source IP instead.
COLUMNS: tuple[Column, ...] = (
    Column(
        "mark",
        "M",
        2,
        _mark,
        _by(C_MARK),
        (C_MARK,),
        descending_first=True,
        sort_hint="marked first",
        keep=4,
        hides_when_empty=False,
    ),
    Column(
        "score",
        "score",
        6,
        lambda r: F.score(r.get(S.C_SCORE)),
        _by(S.C_SCORE),
        (S.C_SCORE,),
        right=True,
        descending_first=True,
        sort_hint="highest first",
        keep=0,
        hides_when_empty=False,
    ),
    Column(
        "device",
        "device",
        10,
        _text(S.C_DEVICE),
        _lower(S.C_DEVICE),
        (S.C_DEVICE,),
        3,
        sort_hint="A→Z",
        keep=1,
        measure=_longest(S.C_DEVICE, 15),
    ),
    Column(
        "process",
        "process",
        10,
        _text(S.C_PROCESS),
        _lower(S.C_PROCESS),
        (S.C_PROCESS,),
        3,
        sort_hint="A→Z",
        keep=5,
    ),
    Column(
        "remote",
        "remote",
        15,
        remote_cell,
        _by(S.C_REMOTE_IP),
        (S.C_REMOTE_IP,),
        sort_hint="by address",
        keep=0,
        measure=_remote_width,
        hides_when_empty=False,
    ),
    Column(
        "domain",
        "domain",
        10,
        _text(S.C_DOMAIN),
        _lower(S.C_DOMAIN),
        (S.C_DOMAIN,),
        3,
        sort_hint="A→Z",
        keep=6,
    ),
    Column(
        "interval",
        "interval",
        8,
        lambda r: F.seconds(r.get(S.C_INTERVAL)),
        _by(S.C_INTERVAL),
        (S.C_INTERVAL,),
        right=True,
        sort_hint="shortest first",
        keep=2,
        measure=_format_width(S.C_INTERVAL, F.seconds),
    ),
    Column(
        "jitter",
        "jitter",
        6,
        lambda r: F.percent(r.get(S.C_JITTER)),
        _by(S.C_JITTER),
        (S.C_JITTER,),
        right=True,
        sort_hint="least jittery first",
        keep=2,
        measure=_format_width(S.C_JITTER, F.percent),
    ),
    Column(
        "conns",
        "conns",
        6,
        lambda r: F.count(r.get(S.C_CONNECTIONS)),
        _by(S.C_CONNECTIONS),
        (S.C_CONNECTIONS,),
        right=True,
        descending_first=True,
        sort_hint="most first",
        keep=7,
        measure=_format_width(S.C_CONNECTIONS, F.count),
    ),
    Column(
        "detectors",
        "detectors",
        9,
        _detectors,
        lambda: pl.col(S.C_DETECTORS).list.len(),
        (S.C_DETECTORS,),
        2,
        descending_first=True,
        sort_hint="most detectors first",
        keep=8,
        measure=_detectors_width,
    ),
    Column(
        "first",
        "first seen",
        11,
        lambda r: F.when(r.get(S.C_FIRST_SEEN)),
        _by(S.C_FIRST_SEEN),
        (S.C_FIRST_SEEN,),
        sort_hint="oldest first",
        keep=10,
    ),
    Column(
        "last",
        "last seen",
        11,
        lambda r: F.when(r.get(S.C_LAST_SEEN)),
        _by(S.C_LAST_SEEN),
        (S.C_LAST_SEEN,),
        descending_first=True,
        sort_hint="newest first",
        keep=9,
    ),
)
SORTABLE = tuple(c.key for c in COLUMNS if c.sort_by is not None)
_BY_KEY = {c.key: c for c in COLUMNS}

_SORT_ARROW = 1  # the header's ▲/▼ needs one cell beside the title
GAP = 1  # cells between columns


def _is_empty(frame: pl.DataFrame, column: Column) -> bool:
    """True when no row has a value for this column (null, "" or an empty list)."""
    if not column.hides_when_empty or frame.height == 0:
        return False
    name = column.needs[0] if column.needs else None
    if name is None or name not in frame.columns:
        return True
    values = pl.col(name)
    dtype = frame.schema[name]
    if dtype == pl.String:
        values = values.replace("", None)
    elif isinstance(dtype, pl.List):
        values = pl.when(values.list.len() > 0).then(values.list.len())
    return bool(frame.select(values.null_count() == pl.len()).item())


Measured = tuple[tuple[Column, int, int], ...]
"""The columns a frame can show: each with its width (never less: nothing is cut below
it) and, for the name columns, the width of its longest value (``measure_columns``)."""

WANT_MAX = 60  # a name column never asks for more spare cells than this


def _wants(frame: pl.DataFrame, column: Column, width: int) -> int:
    """The width a name column's longest value needs (spare cells go there first)."""
    if column.key == "remote" and frame.height:
        return max(width, _remote_width(frame, with_proxy=True))
    if not column.flex or frame.height == 0:
        return width
    if column.key == "detectors":
        return max(width, _detectors_width(frame))
    return max(width, _longest(column.needs[0], WANT_MAX)(frame))


def measure_columns(frame: pl.DataFrame) -> Measured:
    """The columns with a value in ``frame``, each as wide as its widest value (an
    IP:port, a count) and its title with the sort arrow.

    The polars half of the layout: it scans every row, so the view worker runs it
    beside the filter and sort and hands it over with the rows (``ViewReady``); the
    event loop only fits the result to the width (``fit_columns``).
    """
    measured: list[tuple[Column, int, int]] = []
    for column in COLUMNS:
        if _is_empty(frame, column):
            continue
        width = max(column.width, len(column.title) + _SORT_ARROW)
        if column.measure is not None:
            width = max(width, column.measure(frame))
        measured.append((column, width, _wants(frame, column, width)))
    return tuple(measured)


def fit_columns(measured: Measured, available: int) -> list[tuple[Column, int]]:
    """Which measured columns fit ``available`` cells and how wide each is.

    While the minimum widths do not fit, the column with the highest ``keep`` gives
    way; spare cells go to the names (which alone are cut, with an ellipsis): first to
    those whose longest value does not fit yet (a domain is not cut while the device
    column has room to spare), then to all of them. Plain Python over a dozen columns:
    cheap enough for every resize.
    """
    wants = {column.key: want for column, _, want in measured}
    shown = [(column, width) for column, width, _ in measured]

    def total(cols: list[tuple[Column, int]]) -> int:
        return sum(w for _, w in cols) + GAP * (len(cols) - 1)

    while total(shown) > available and len(shown) > 1:
        drop = max(shown, key=lambda cw: cw[0].keep)
        if drop[0].keep == 0:
            break  # score and remote stay; the table scrolls sideways instead
        shown.remove(drop)
    spare = available - total(shown)
    wanting = _share(shown, spare, lambda c, w: wants[c.key] - w, lambda c: c.flex or 1)
    shown, spare = wanting
    shown, _ = _share(shown, spare, lambda c, w: spare, lambda c: c.flex)  # every cell used
    return shown


def _share(
    shown: list[tuple[Column, int]],
    spare: int,
    room: Callable[[Column, int], int],
    weight: Callable[[Column], int],
) -> tuple[list[tuple[Column, int]], int]:
    """Spare cells shared by ``weight`` among the columns with ``room`` left (each
    taking at most that much); the widths and what is still spare."""
    shown = list(shown)
    while spare > 0:
        hungry = [i for i, (c, w) in enumerate(shown) if weight(c) and room(c, w) > 0]
        if not hungry:
            break
        total = sum(weight(shown[i][0]) for i in hungry)
        given = 0
        for i in hungry:
            column, width = shown[i]
            share = max(1, spare * weight(column) // total)
            add = min(room(column, width), share, spare - given)
            shown[i] = (column, width + add)
            given += add
        spare -= given
    return shown, spare


def layout(frame: pl.DataFrame, available: int) -> list[tuple[Column, int]]:
    """Which columns fit ``available`` cells and how wide each is: empty columns
    hidden, none narrower than its widest value (``measure_columns`` then
    ``fit_columns``)."""
    return fit_columns(measure_columns(frame), available)


SCORE_HIGH = 0.7
SCORE_MID = 0.4


def score_band(value: float | None) -> str:
    """high / mid / low: the table colours the score cell by band (colours in .tcss)."""
    if value is None:
        return "low"
    return "high" if value >= SCORE_HIGH else "mid" if value >= SCORE_MID else "low"


def pair_protocols(events: pl.DataFrame) -> pl.DataFrame:
    """The transport each candidate pair used (lower case), for the ``remote`` cell:
    one group-by over the events, done once per dataset."""
    names = {S.DEVICE_NAME: S.C_DEVICE, S.PROCESS: S.C_PROCESS}
    names |= {S.REMOTE_IP: S.C_REMOTE_IP, S.REMOTE_PORT: S.C_REMOTE_PORT}
    if not all(c in events.columns for c in (*names, S.PROTOCOL)):
        return pl.DataFrame()
    return (
        events.lazy()
        .filter(pl.col(S.PROTOCOL).is_not_null())
        .group_by(list(names))
        .agg(pl.col(S.PROTOCOL).first().str.to_lowercase().alias(C_PROTOCOL))
        .rename(names)
        .collect()
    )


def with_protocol(candidates: pl.DataFrame, protocols: pl.DataFrame) -> pl.DataFrame:
    """Candidates with a ``protocol`` column (null where the source had none)."""
    if C_PROTOCOL in candidates.columns or candidates.height == 0:
        return candidates
    keys = S.CANDIDATE_KEY
    if protocols.height == 0 or not all(k in candidates.columns for k in keys):
        return candidates.with_columns(pl.lit(None, pl.String).alias(C_PROTOCOL))
    right = protocols.cast({k: candidates.schema[k] for k in keys})
    return candidates.join(right, on=keys, how="left", nulls_equal=True)


def prepare(candidates: pl.DataFrame) -> pl.DataFrame:
    """Add the search haystack once per merge, so each keystroke is one ``contains``."""
    present = [c for c in SEARCHED if c in candidates.columns]
    if not present:
        return candidates.with_columns(pl.lit("").alias(HAYSTACK))
    parts = [pl.col(c).cast(pl.String).str.to_lowercase() for c in present]
    return candidates.with_columns(
        pl.concat_str(parts, separator="\x1f", ignore_nulls=True).fill_null("").alias(HAYSTACK)
    )


def _filters(frame: pl.DataFrame, spec: ViewSpec) -> pl.Expr:
    keep = pl.lit(True)
    query = spec.text.strip().lower()
    if query and HAYSTACK in frame.columns:
        keep = keep & pl.col(HAYSTACK).str.contains(query, literal=True)
    if spec.destination and S.C_REMOTE_IP in frame.columns:
        from detectors.rank.enrichment import same_destination  # not before first paint

        keep = keep & same_destination(frame.columns, *spec.destination)
    if spec.detector and S.C_DETECTORS in frame.columns:
        keep = keep & pl.col(S.C_DETECTORS).list.contains(spec.detector).fill_null(False)
    if spec.min_score > 0 and S.C_SCORE in frame.columns:
        keep = keep & (pl.col(S.C_SCORE) >= spec.min_score).fill_null(False)
    if not spec.show_allowed and C_ALLOWED in frame.columns:
        keep = keep & ~pl.col(C_ALLOWED).fill_null(False)
    if spec.mark and C_MARK in frame.columns:
        mark = pl.col(C_MARK)
        marked = mark.is_not_null() & ~mark.is_in(["", UNREVIEWED])
        if spec.mark == "marked":
            keep = keep & marked
        elif spec.mark == "unmarked":
            keep = keep & ~marked
        else:
            keep = keep & (mark == spec.mark).fill_null(False)
    return keep


def apply_view(frame: pl.DataFrame, spec: ViewSpec) -> pl.DataFrame:
    """Filter, then sort by the chosen column (nulls last), ties by score then key."""
    if frame.height == 0:
        return frame
    view = frame.filter(_filters(frame, spec))
    keys: list[pl.Expr] = []
    descending: list[bool] = []
    column = _BY_KEY.get(spec.sort)
    if column and column.sort_by and all(n in frame.columns for n in column.needs):
        keys.append(column.sort_by())
        descending.append(spec.descending)
    if S.C_SCORE in frame.columns and spec.sort != "score":
        keys.append(pl.col(S.C_SCORE))
        descending.append(True)
    for name in S.CANDIDATE_KEY:
        if name in frame.columns:
            keys.append(pl.col(name))
            descending.append(False)
    if not keys:
        return view
    return view.sort(keys, descending=descending, nulls_last=True, maintain_order=True)


def sort_choices() -> list[tuple[str, str]]:
    """(column key, how the picker names it) for ``s``: each with its first direction."""
    return [
        (c.key, f"{c.name:<10} {'↓' if c.descending_first else '↑'} {c.sort_hint}")
        for c in COLUMNS
        if c.sort_by is not None
    ]


def sort_by(spec: ViewSpec, key: str) -> ViewSpec:
    """A header click: sort by that column in its first direction, or reverse if it
    already is the sort column."""
    if spec.sort == key:
        return spec.with_(descending=not spec.descending)
    return choose_sort(spec, key)


def choose_sort(spec: ViewSpec, key: str) -> ViewSpec:
    """The sort picker's choice: that column, in the direction an analyst wants first
    (the highest score, the least jitter, the shortest interval, the newest last seen)."""
    column = _BY_KEY.get(key)
    if column is None or column.sort_by is None:
        return spec
    return spec.with_(sort=key, descending=column.descending_first)


def detectors_in(frame: pl.DataFrame) -> list[str]:
    """Detectors that produced at least one candidate, for the detector quick filter."""
    if S.C_DETECTORS not in frame.columns or frame.height == 0:
        return []
    names = frame.get_column(S.C_DETECTORS).explode().drop_nulls().unique().sort()
    return [str(n) for n in names.to_list()]


def cycle(options: list[Any], current: Any) -> Any:
    """The option after ``current`` (wrapping), for keys that step through choices."""
    if not options:
        return current
    at = options.index(current) if current in options else -1
    return options[(at + 1) % len(options)]


def key_of(row: dict[str, Any]) -> tuple[Any, ...]:
    """A candidate's identity, to keep the cursor on it when the list changes."""
    return tuple(row.get(k) for k in S.CANDIDATE_KEY)


def find_row(frame: pl.DataFrame, key: tuple[Any, ...]) -> int | None:
    """Index of the candidate with this key in ``frame``, or None."""
    if frame.height == 0 or not all(k in frame.columns for k in S.CANDIDATE_KEY):
        return None
    match = pl.lit(True)
    for name, value in zip(S.CANDIDATE_KEY, key, strict=True):
        match = match & pl.col(name).eq_missing(pl.lit(value, dtype=frame.schema[name]))
    found = frame.select(match.arg_true().first()).item()
    return None if found is None else int(found)
