"""The allow-list: the analyst's rules that hide known-good candidates.

After an hour of triage the allow-list is the analyst's product, so it is a TOML file
they can also edit by hand, and every edit made here keeps their comments, order and
spacing (``detectors.curate.tomlstore``)::

    # comments anywhere are preserved by every edit
    [[allow]]
    process = "MsMpEng.exe"            # case-insensitive file name
    domain = "*.microsoft.com"         # exact, or *.suffix (the bare suffix matches too)
    reason = "Defender cloud lookups"  # required
    added_by = "jdoe"
    added = 2026-11-23T10:00:00Z
    expires = 2027-02-23               # optional: applies through this day, then not
    enabled = false                    # optional

An entry hides a candidate when every match key it gives matches: ``device`` and
``process`` (case-insensitive), ``remote_ip`` (address or CIDR, IPv4 or IPv6; an
IPv4-mapped IPv6 candidate matches as its IPv4), ``remote_port``, ``domain`` (against
the names seen for the IP and the registered domain), ``detector``, and ``asn``
(``13335`` or ``"AS13335"``) and ``org`` (the AS organisation, case-insensitive, whole
name): these two match the candidates' ``asn``/``org`` columns, which only a local
MaxMind ASN database (``mmdb`` in the config) fills; without one they match nothing.

Domain matching trusts the names seen for the IP, which come from DNS answers, SNI and
Host headers an adversary can influence: an entry by domain is weaker than one by IP.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.domains import registered_domain
from detectors.base.errors import InputError
from detectors.base.netclass import ipv4_int, is_canonical_ipv4, normalize_ip
from detectors.base.sanitize import visible
from detectors.curate.tomlstore import (
    Edit,
    EditConflict,
    StoreConflict,
    StoreSaveError,
    TableFile,
    TomlStore,
    Where,
    login_name,
    read_day,
    read_instant,
    read_port,
    read_text,
    unknown_keys,
    utc_now,
)

# Columns ``flag`` adds. (C_NAMES: the names seen for the remote IP, as
# ``PairContext.names_by_ip`` calls them; candidates carry them when enrichment ran.)
C_ALLOWED = S.C_ALLOWED
C_ALLOWED_BY = S.C_ALLOWED_BY
C_NAMES = S.C_NAMES

MATCH_KEYS = (
    "device", "process", "remote_ip", "remote_port", "domain", "detector", "asn", "org",
)  # fmt: skip
META_KEYS = ("reason", "added_by", "added", "expires", "enabled")
KNOWN_KEYS = MATCH_KEYS + META_KEYS


class AllowListConflict(StoreConflict):
    """The file changed on disk and one of the unsaved edits no longer applies."""


class AllowListSaveError(StoreSaveError):
    """The allow-list could not be written; the edits are kept in memory."""


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


# --- entries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowEntry:
    """One ``[[allow]]`` table, validated. ``index`` is its 0-based position in the file."""

    index: int
    reason: str
    device: str | None = None
    process: str | None = None
    remote_ip: str | None = None
    remote_port: int | None = None
    domain: str | None = None
    detector: str | None = None
    asn: int | None = None
    org: str | None = None
    added_by: str | None = None
    added: datetime | None = None
    expires: date | None = None
    enabled: bool = True
    line: int | None = None  # 1-based line of its [[allow]] header, when read from a file

    @property
    def number(self) -> int:
        """The 1-based number people see (``allowlist list``, ``allowlist remove N``)."""
        return self.index + 1

    def match_fields(self) -> dict[str, str | int]:
        """The match keys this entry gives, in the order of MATCH_KEYS."""
        values = {key: getattr(self, key) for key in MATCH_KEYS}
        return {key: value for key, value in values.items() if value is not None}

    def is_expired(self, today: date | None = None) -> bool:
        """True after the ``expires`` day (the entry still applies on that day)."""
        return self.expires is not None and (today or utc_today()) > self.expires

    def is_active(self, today: date | None = None) -> bool:
        return self.enabled and not self.is_expired(today)

    def describe(self) -> str:
        """One printable line: ``#2 process=MsMpEng.exe domain=*.microsoft.com: reason``."""
        keys = " ".join(f"{k}={visible(v)}" for k, v in self.match_fields().items())
        return f"#{self.number} {keys}: {visible(self.reason)}"


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or CIDR; host bits set is a mistake worth naming."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"'{visible(text)}' is not an IP address or CIDR") from None
    raise ValueError(f"'{visible(text)}' has host bits set; did you mean {loose}?")


def _domain_pattern(text: str) -> tuple[str, bool]:
    """``(name, wildcard)`` from ``example.com`` or ``*.example.com``; lower-case, no dot at end."""
    value = text.strip().lower().rstrip(".")
    wildcard = value.startswith("*.")
    name = value[2:] if wildcard else value
    if not name or "*" in name:
        raise ValueError(f"'{visible(text)}' is not a domain (only a leading '*.' wildcard works)")
    if any(not label or " " in label for label in name.split(".")):
        raise ValueError(f"'{visible(text)}' is not a domain name")
    if wildcard and registered_domain(f"x.{name}") == f"x.{name}":
        raise ValueError(
            f"'{visible(text)}' would allow every domain under the public suffix {name}"
        )
    return name, wildcard


def _read_detector(values: Mapping[str, Any], where: Where) -> str | None:
    """A registered detector's name: a typo would make the entry silently match nothing."""
    name = read_text(values, "detector", where)
    if name is None:
        return None
    from detectors.hunts.registry import all_detectors  # only when an entry names a detector

    known = sorted(all_detectors())
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise where.error(
            f"unknown detector '{visible(name)}' ({hint}known: {', '.join(known)})", "detector"
        )
    return name


def read_asn(value: Any) -> int:
    """An AS number from ``13335``, ``"13335"`` or ``"AS13335"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an AS number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().upper().removeprefix("AS").isdigit():
        number = int(value.strip().upper().removeprefix("AS"))
    else:
        raise ValueError(f"'{visible(value)}' is not an AS number (e.g. 13335 or AS13335)")
    if not 0 < number < 2**32:
        raise ValueError(f"AS number {number} is outside 1-4294967295")
    return number


def parse_entry(
    values: Mapping[str, Any],
    index: int,
    where: Where | None = None,
    *,
    require_reason: bool = True,
) -> AllowEntry:
    """Validate one table's values; every mistake is an InputError naming the key."""
    where = where or Where()
    unknown_keys(values, KNOWN_KEYS, where)
    if not any(values.get(key) is not None for key in MATCH_KEYS):
        raise where.error(f"no match key: give at least one of {', '.join(MATCH_KEYS)}")
    process = read_text(values, "process", where)
    if process is not None and ("/" in process or "\\" in process):
        raise where.error(
            "process is matched on the file name: write e.g. 'svchost.exe'", "process"
        )
    remote_ip = read_text(values, "remote_ip", where)
    if remote_ip is not None:
        try:
            _network(remote_ip)
        except ValueError as exc:
            raise where.error(str(exc), "remote_ip") from None
    domain = read_text(values, "domain", where)
    if domain is not None:
        try:
            _domain_pattern(domain)
        except ValueError as exc:
            raise where.error(str(exc), "domain") from None
    asn = None
    if values.get("asn") is not None:
        try:
            asn = read_asn(values["asn"])
        except ValueError as exc:
            raise where.error(str(exc), "asn") from None
    reason = read_text(values, "reason", where)
    if reason is None and require_reason:
        raise where.error("missing reason: say why this traffic is fine", "reason")
    enabled = values.get("enabled", True)
    if not isinstance(enabled, bool):
        raise where.error(f"enabled must be true or false, not {enabled!r}", "enabled")
    return AllowEntry(
        index=index,
        reason=reason or "",
        device=read_text(values, "device", where),
        process=process,
        remote_ip=remote_ip,
        remote_port=read_port(values, where),
        domain=domain,
        detector=_read_detector(values, where),
        asn=asn,
        org=read_text(values, "org", where),
        added_by=read_text(values, "added_by", where),
        added=read_instant(values, "added", where),
        expires=read_day(values, "expires", where),
        enabled=enabled,
        line=where.line,
    )


def _coerce(key: str, value: Any) -> Any:
    """Values from a form or the CLI in the types the file holds; bad ones are left to fail."""
    if isinstance(value, str):
        value = value.strip()
    if key == "remote_port" and isinstance(value, str) and value.isdigit():
        return int(value)
    if key == "asn" and isinstance(value, str):
        try:
            return read_asn(value)
        except ValueError:
            return value
    if key == "expires":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                return value
    if key == "added" and isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if key == "added" and isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).replace(microsecond=0)
    if key == "domain" and isinstance(value, str):
        return value.lower()
    return value


def _clean(fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split form fields into values to set and keys to remove (None or empty means remove)."""
    values, removed = {}, []
    for key, value in fields.items():
        if key not in KNOWN_KEYS:
            raise InputError(f"unknown key '{key}' (known: {', '.join(KNOWN_KEYS)})", field=key)
        if value is None or (isinstance(value, str) and not value.strip()):
            removed.append(key)
        else:
            values[key] = _coerce(key, value)
    return values, removed


# --- matching, vectorised: one polars expression per entry ---------------------------------

_V4_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96, where IPv4 lives in the IPv6 space
_LOW64 = (1 << 64) - 1
_H = "__allow_"  # prefix of the helper columns, dropped before returning
H_DEVICE, H_PROCESS, H_HI, H_LO, H_PORT, H_NAMES, H_DETECTORS, H_ASN, H_ORG = (
    f"{_H}{n}"
    for n in ("device", "process", "hi", "lo", "port", "names", "detectors", "asn", "org")
)


def _ip_int(text: str) -> int | None:
    """The address as 128 bits, IPv4 (and IPv4-mapped IPv6) in ::ffff:0:0/96."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return _V4_MAPPED | int(addr) if addr.version == 4 else int(addr)


def _net_bits(text: str) -> tuple[int, int]:
    """(first address, prefix length) of an entry's network in the same 128-bit space."""
    net = _network(text)
    if net.version == 4:
        return _V4_MAPPED | int(net.network_address), 96 + net.prefixlen
    return int(net.network_address), net.prefixlen


def _lower(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).str.strip_chars().str.to_lowercase()


def _as_list(frame: pl.DataFrame, column: str, separator: str) -> pl.Expr | None:
    """A list[str] view of a column that holds a list, or text joined by ``separator``."""
    if column not in frame.columns:
        return None
    dtype = frame.schema[column]
    if isinstance(dtype, pl.List):
        expr = pl.col(column).cast(pl.List(pl.String))
    else:
        expr = pl.col(column).cast(pl.String).str.split(separator)
    return expr.fill_null(pl.lit([], dtype=pl.List(pl.String)))


def address_expr(candidates: pl.DataFrame) -> pl.Expr:
    """The address an IP entry is matched against: the remote address, or for a proxied
    candidate (its remote end is a host name) the first server the proxy reached."""
    col = pl.col(S.C_REMOTE_IP).cast(pl.String)
    if isinstance(candidates.schema.get(S.C_SERVER_IPS), pl.List):
        col = pl.coalesce(pl.col(S.C_SERVER_IPS).list.first().cast(pl.String), col)
    return col


class _Matcher:
    """A candidates frame with the helper columns the entries need, and a mask per entry."""

    def __init__(self, candidates: pl.DataFrame, entries: Sequence[AllowEntry]) -> None:
        candidates = candidates.rechunk()  # a frame of many small chunks is 100x slower here
        cols = set(candidates.columns)
        need = {key for e in entries for key in e.match_fields()}
        helpers: list[pl.Expr] = []
        if "device" in need and S.C_DEVICE in cols:
            helpers.append(_lower(S.C_DEVICE).alias(H_DEVICE))
        if "process" in need and S.C_PROCESS in cols:
            helpers.append(_lower(S.C_PROCESS).alias(H_PROCESS))
        if "remote_port" in need and S.C_REMOTE_PORT in cols:
            helpers.append(pl.col(S.C_REMOTE_PORT).cast(pl.Int64, strict=False).alias(H_PORT))
        if "remote_ip" in need and S.C_REMOTE_IP in cols:
            helpers.extend(self._ip_columns(candidates))
        if "asn" in need and S.C_ASN in cols:  # only when a local mmdb filled them
            helpers.append(pl.col(S.C_ASN).cast(pl.Int64, strict=False).alias(H_ASN))
        if "org" in need and S.C_ORG in cols:
            helpers.append(_lower(S.C_ORG).alias(H_ORG))
        if "domain" in need:
            parts = [_as_list(candidates, C_NAMES, ";"), _as_list(candidates, S.C_DOMAIN, ";")]
            present = [p for p in parts if p is not None]
            if present:
                clean = pl.element().str.strip_chars().str.to_lowercase().str.strip_suffix(".")
                helpers.append(pl.concat_list(present).list.eval(clean).alias(H_NAMES))
        if "detector" in need:
            parts = [
                _as_list(candidates, S.C_DETECTORS, ","),
                _as_list(candidates, S.C_DETECTOR, ","),
            ]
            present = [p for p in parts if p is not None]
            if present:
                helpers.append(pl.concat_list(present).alias(H_DETECTORS))
        self.frame = candidates.with_columns(helpers) if helpers else candidates
        self.have = {c for c in self.frame.columns if c.startswith(_H)}

    @staticmethod
    def _ip_columns(candidates: pl.DataFrame) -> list[pl.Expr]:
        """128-bit addresses as two u64 columns. Canonical IPv4 (the bulk) is parsed in
        polars; ``ipaddress`` runs once per distinct other address (IPv6, mapped, junk)."""
        col = address_expr(candidates)
        stripped = col.str.strip_chars()
        v4 = is_canonical_ipv4(stripped)
        rest = candidates.select(col.filter(~v4).unique().drop_nulls()).to_series().to_list()
        bits = {ip: _ip_int(ip) for ip in rest}
        known = {ip: v for ip, v in bits.items() if v is not None}
        hi = {ip: v >> 64 for ip, v in known.items()}
        lo = {ip: v & _LOW64 for ip, v in known.items()}
        v4_lo = pl.lit(_V4_MAPPED, pl.UInt64) | ipv4_int(stripped)  # ::ffff:a.b.c.d
        return [
            pl.when(v4)
            .then(pl.lit(0, pl.UInt64))
            .otherwise(col.replace_strict(hi, default=None, return_dtype=pl.UInt64))
            .alias(H_HI),
            pl.when(v4)
            .then(v4_lo)
            .otherwise(col.replace_strict(lo, default=None, return_dtype=pl.UInt64))
            .alias(H_LO),
        ]

    def mask(self, entry: AllowEntry) -> pl.Expr:
        """True where every match key of ``entry`` matches; a missing column never matches."""
        conds: list[pl.Expr] = []
        if entry.device is not None:
            conds.append(self._eq(H_DEVICE, entry.device.lower()))
        if entry.process is not None:
            conds.append(self._eq(H_PROCESS, entry.process.lower()))
        if entry.remote_port is not None:
            conds.append(self._eq(H_PORT, entry.remote_port))
        if entry.remote_ip is not None:
            conds.append(self._in_network(entry.remote_ip))
        if entry.domain is not None:
            conds.append(self._domain(entry.domain))
        if entry.asn is not None:
            conds.append(self._eq(H_ASN, entry.asn))
        if entry.org is not None:
            conds.append(self._eq(H_ORG, entry.org.strip().lower()))
        if entry.detector is not None:
            if H_DETECTORS in self.have:
                conds.append(pl.col(H_DETECTORS).list.contains(entry.detector))
            else:
                conds.append(pl.lit(False))
        return pl.all_horizontal([c.fill_null(False) for c in conds])

    def _eq(self, helper: str, value: str | int) -> pl.Expr:
        return pl.col(helper) == value if helper in self.have else pl.lit(False)

    def _in_network(self, text: str) -> pl.Expr:
        if H_HI not in self.have:
            return pl.lit(False)
        start, prefix = _net_bits(text)
        mask = ((1 << prefix) - 1) << (128 - prefix)
        mask_hi, mask_lo = mask >> 64, mask & _LOW64
        net_hi, net_lo = start >> 64 & mask_hi, start & mask_lo
        cond = (pl.col(H_HI) & pl.lit(mask_hi, pl.UInt64)) == pl.lit(net_hi, pl.UInt64)
        if mask_lo:
            cond = cond & ((pl.col(H_LO) & pl.lit(mask_lo, pl.UInt64)) == pl.lit(net_lo, pl.UInt64))
        return cond

    def _domain(self, text: str) -> pl.Expr:
        if H_NAMES not in self.have:
            return pl.lit(False)
        name, wildcard = _domain_pattern(text)
        if not wildcard:
            return pl.col(H_NAMES).list.contains(name)
        covered = (pl.element() == name) | pl.element().str.ends_with(f".{name}")
        return pl.col(H_NAMES).list.eval(covered).list.any()


# --- the edit log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _AddEntry(Edit):
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _ChangeEntry(Edit):
    index: int = 0
    expected: dict[str, Any] = field(default_factory=dict)  # the table as it was when edited
    set_values: dict[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()


@dataclass(frozen=True)
class _RemoveEntry(Edit):
    index: int = 0
    expected: dict[str, Any] = field(default_factory=dict)


def _locate(file: TableFile, index: int, expected: Mapping[str, Any], description: str) -> int:
    """Where the edited table is now: same values, preferably at the same position."""
    same = [i for i, t in enumerate(file.tables) if t.values == expected]
    if not same:
        raise EditConflict(
            f"cannot {description}: that entry was changed or removed in the file since it "
            "was loaded"
        )
    return index if index in same else same[0]


# --- the allow-list -------------------------------------------------------------------------


class AllowList(TomlStore[tuple[AllowEntry, ...]]):
    """The allow-list file and its entries; edits are in memory until ``save()``.

    ``AllowList.load(path)`` (a missing file is an empty list; the file is created by
    the first save). Read: ``entries``, ``flag``, ``hits_per_entry``, ``preview``.
    Edit: ``add``, ``update``, ``set_enabled``, ``remove``, then ``save()``; see
    ``TomlStore.save`` for conflicts (``AllowListConflict``) and write failures
    (``AllowListSaveError``). Indexes change after a save that merged someone else's
    edits, so re-read ``entries`` after saving.
    """

    TABLE = "allow"
    NEW_FILE_COMMENT = (
        "beacon-triage allow-list: a candidate matching every key of an [[allow]] table is\n"
        "hidden. Match keys: device, process, remote_ip (address or CIDR), remote_port,\n"
        "domain (exact, or *.suffix which also matches the suffix), detector.\n"
        "reason is required; expires = YYYY-MM-DD and enabled = false are optional."
    )
    conflict_error = AllowListConflict
    save_error = AllowListSaveError

    def _build(self, file: TableFile) -> tuple[AllowEntry, ...]:
        return tuple(self._parse_tables(file, parse_entry))

    def _apply(self, file: TableFile, edit: Edit) -> TableFile:
        if isinstance(edit, _AddEntry):
            return file.append(edit.values, self.NEW_FILE_COMMENT)
        if isinstance(edit, _ChangeEntry):
            index = _locate(file, edit.index, edit.expected, edit.description)
            return file.change(index, edit.set_values, edit.unset)
        if isinstance(edit, _RemoveEntry):
            return file.remove(_locate(file, edit.index, edit.expected, edit.description))
        raise TypeError(f"not an allow-list edit: {edit!r}")

    # --- reading ---
    @property
    def entries(self) -> tuple[AllowEntry, ...]:
        return self._model

    def entry(self, index: int) -> AllowEntry:
        if not 0 <= index < len(self._model):
            raise InputError(f"no entry #{index + 1} (the list has {len(self._model)})")
        return self._model[index]

    def flag(self, candidates: pl.DataFrame, today: date | None = None) -> pl.DataFrame:
        """``candidates`` plus ``allowed`` (bool) and ``allowed_by`` (the number, from 1 as
        ``allowlist list`` and the allow-list screen count, of the first active entry that
        matches, or null). Expired and disabled entries do not apply."""
        base = candidates.drop([C_ALLOWED, C_ALLOWED_BY], strict=False)
        active = [e for e in self.entries if e.is_active(today)]
        if base.height == 0:
            return base.with_columns(
                pl.Series(C_ALLOWED, [], pl.Boolean), pl.Series(C_ALLOWED_BY, [], pl.Int64)
            )
        matcher = _Matcher(base, active)
        if active:
            first = pl.coalesce(
                [pl.when(matcher.mask(e)).then(pl.lit(e.number, pl.Int64)) for e in active]
            )
        else:
            first = pl.lit(None, pl.Int64)
        return (
            matcher.frame.with_columns(first.cast(pl.Int64).alias(C_ALLOWED_BY))
            .with_columns(pl.col(C_ALLOWED_BY).is_not_null().alias(C_ALLOWED))
            .select([*base.columns, C_ALLOWED, C_ALLOWED_BY])
        )

    def hits_per_entry(self, candidates: pl.DataFrame) -> dict[int, int]:
        """How many candidates each entry matches on its own, active or not (0 = dead rule)."""
        if not self.entries or candidates.height == 0:
            return {e.index: 0 for e in self.entries}
        matcher = _Matcher(candidates, self.entries)
        sums = [matcher.mask(e).sum().alias(str(e.index)) for e in self.entries]
        row = matcher.frame.select(sums).row(0)
        return {e.index: int(n) for e, n in zip(self.entries, row, strict=True)}

    def preview(
        self, fields: Mapping[str, Any], candidates: pl.DataFrame, today: date | None = None
    ) -> int:
        """How many currently visible candidates a new entry with ``fields`` would hide.

        The reason may still be empty (the editor previews while the analyst types).
        """
        values, _ = _clean(fields)
        entry = parse_entry(values, len(self.entries), require_reason=False)
        if candidates.height == 0:
            return 0
        flagged = self.flag(candidates, today)
        matcher = _Matcher(flagged, [entry])
        hidden = matcher.frame.select((matcher.mask(entry) & ~pl.col(C_ALLOWED)).sum())
        return int(hidden.item())

    # --- editing ---
    def add(
        self,
        fields: Mapping[str, Any],
        added_by: str | None = None,
        now: datetime | None = None,
    ) -> AllowEntry:
        """Append an entry; ``added_by`` defaults to the login name and ``added`` to now (UTC)."""
        values, _ = _clean(fields)
        values["added_by"] = added_by or values.get("added_by") or login_name()
        values["added"] = _coerce("added", now or values.get("added") or utc_now())
        ordered = {key: values[key] for key in KNOWN_KEYS if key in values}
        if ordered.get("enabled") is True:
            del ordered["enabled"]  # the default; the file stays short
        entry = parse_entry(ordered, len(self.entries))
        self._commit(_AddEntry(f"add {entry.describe()}", ordered))
        return self.entries[-1]

    def update(self, index: int, fields: Mapping[str, Any]) -> AllowEntry:
        """Change keys of entry ``index``; a None or empty value removes the key."""
        entry = self.entry(index)
        current = self._file.tables[index].values
        values, removed = _clean(fields)
        set_values = {k: v for k, v in values.items() if current.get(k) != v}
        unset = tuple(k for k in removed if k in current)
        if not set_values and not unset:
            return entry
        merged = {k: v for k, v in current.items() if k not in unset}
        merged.update(set_values)
        parse_entry(merged, index)  # a bad value fails here, before anything changes
        self._commit(_ChangeEntry(f"change {entry.describe()}", index, current, set_values, unset))
        return self.entries[index]

    def set_enabled(self, index: int, enabled: bool) -> AllowEntry:
        """Disable (``enabled = false``) or enable an entry, keeping it in the file."""
        entry = self.entry(index)
        if enabled and "enabled" not in self._file.tables[index].values:
            return entry
        return self.update(index, {"enabled": enabled})

    def remove(self, index: int) -> AllowEntry:
        """Delete entry ``index`` and the comment lines directly above it."""
        entry = self.entry(index)
        expected = self._file.tables[index].values
        self._commit(_RemoveEntry(f"remove {entry.describe()}", index, expected))
        return entry

    def expired(self, today: date | None = None) -> list[AllowEntry]:
        return [e for e in self.entries if e.is_expired(today)]


# --- "allow from the selected candidate" -----------------------------------------------------


def suggest_entries(candidate: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Ready-made entries for one candidate row, narrowest first: ``(label, fields)``.

    Exact pair, destination IP, its /24 (/64 for IPv6), registered domain, process,
    device; each with a prefilled reason the analyst should edit. Labels are printable
    (telemetry text escaped); field values are the raw values, since they must match.
    """
    device = candidate.get(S.C_DEVICE)
    process = candidate.get(S.C_PROCESS)
    port = candidate.get(S.C_REMOTE_PORT)
    raw_ip = candidate.get(S.C_REMOTE_IP)
    ip = normalize_ip(raw_ip) if isinstance(raw_ip, str) else None
    ip = ip if ip is not None and _ip_int(ip) is not None else None
    domain = candidate.get(S.C_DOMAIN)
    if not domain:
        names = candidate.get(C_NAMES) or []
        domains = [d for d in (registered_domain(n) for n in names if isinstance(n, str)) if d]
        domain = domains[0] if domains else None
    out: list[tuple[str, dict[str, Any]]] = []

    def offer(label: str, fields: dict[str, Any]) -> None:
        out.append((label, {**fields, "reason": f"benign: {label}"}))

    if device and process and ip and port is not None:
        pair = {"device": device, "process": process, "remote_ip": ip, "remote_port": port}
        offer(f"this pair {visible(device)} / {visible(process)} -> {ip}:{port}", pair)
    if ip:
        offer(f"destination {ip}", {"remote_ip": ip})
        width = 24 if ipaddress.ip_address(ip).version == 4 else 64
        network = ipaddress.ip_network(f"{ip}/{width}", strict=False)
        offer(f"network {network}", {"remote_ip": str(network)})
    if isinstance(domain, str) and domain:
        try:
            _domain_pattern(f"*.{domain}")
        except ValueError:
            pass
        else:
            offer(f"domain *.{visible(domain)}", {"domain": f"*.{domain}"})
    if process:
        offer(f"process {visible(process)} to anywhere", {"process": process})
    if device:
        offer(f"everything from device {visible(device)}", {"device": device})
    return out
