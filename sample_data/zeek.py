"""The scenario as a Zeek sensor's TSV logs: conn.log, dns.log, http.log and ssl.log.

The sensor sits between the office and the internet: it sees every connection that
leaves (and internet scanners coming in), not east-west traffic and not what only the
endpoint knows (process names). Headers and field lists are Zeek 6's defaults.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, cast

import numpy as np
import polars as pl

from . import conns as C
from . import dns
from .programs import BEACON, PROGRAMS
from .simulate import Scenario
from .world import (
    APP_CONNECT,
    APP_DNS,
    APP_HTTP,
    APP_HTTP_NOHOST,
    APP_INBOUND,
    APP_TLS,
    APP_TLS_NOSNI,
    PROCESS_NAMES,
    PROCESSES,
)


def _words(text: str) -> list[str]:
    """A header's names, written as Zeek prints them (space-separated here for reading)."""
    return text.split()


CONN_FIELDS = _words(
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes "
    "resp_bytes conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes "
    "resp_pkts resp_ip_bytes tunnel_parents"
)
CONN_TYPES = _words(
    "time string addr port addr port enum string interval count count string bool bool count "
    "string count count count count set[string]"
)
DNS_FIELDS = _words(
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass qclass_name "
    "qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs rejected"
)
DNS_TYPES = _words(
    "time string addr port addr port enum count interval string count string count string count "
    "string bool bool bool bool count vector[string] vector[interval] bool"
)
HTTP_FIELDS = _words(
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p trans_depth method host uri referrer "
    "version user_agent origin request_body_len response_body_len status_code status_msg "
    "info_code info_msg tags username password proxied orig_fuids orig_filenames "
    "orig_mime_types resp_fuids resp_filenames resp_mime_types"
)
HTTP_TYPES = _words(
    "time string addr port addr port count string string string string string string string "
    "count count count string count string set[enum] string string set[string] vector[string] "
    "vector[string] vector[string] vector[string] vector[string] vector[string]"
)
SSL_FIELDS = _words(
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p version cipher curve server_name resumed "
    "last_alert next_protocol established ssl_history cert_chain_fps client_cert_chain_fps "
    "sni_matches_cert"
)
SSL_TYPES = _words(
    "time string addr port addr port string string string string bool string string bool "
    "string vector[string] vector[string] bool"
)

BATCH_ROWS = 500_000  # log lines rendered at once
ROW = "_row"  # a connection's position, to find its uid

UNSET = "-"
EMPTY = "(empty)"
_BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_MIME = {  # what Zeek's content sniffing calls the replies (by request path)
    "/connecttest.txt": "text/plain",
    "/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ": "application/ocsp-response",
    "/pki/crl/products/MicRooCerAut2011_2011_03_22.crl": "application/pkix-crl",
    "/rss/headlines.xml": "application/xml",
    "/submit.php?id=8812": UNSET,
}


def _uids(digits: np.ndarray, prefix: str) -> pl.Series:
    """Zeek-style identifiers from rows of 17 base62 digits (``CW4BxU1d0sa8b429pg``)."""
    chars = np.ascontiguousarray(_BASE62[digits])
    body = pl.Series(chars.view("S17").ravel()).cast(pl.String)
    return pl.select(pl.concat_str([pl.lit(prefix), pl.lit(body)])).to_series()


def epoch_text(us: pl.Expr) -> pl.Expr:
    """Microseconds as Zeek's ``1763424000.689929`` (also used for intervals)."""
    whole = (us // 1_000_000).cast(pl.String)
    return pl.concat_str(
        [whole, pl.lit("."), (us % 1_000_000 + 1_000_000).cast(pl.String).str.slice(1)]
    )


def _table(values: list[str], index: pl.Expr) -> pl.Expr:
    """Gather text from a small table by an integer column."""
    table = pl.Series(values=values, dtype=pl.String)
    return index.map_batches(lambda s: table.gather(s.cast(pl.UInt32)), return_dtype=pl.String)


def _text(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).fill_null(UNSET)


def _header_time(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d-%H-%M-%S")


def write_log(
    path: Path,
    name: str,
    fields: list[str],
    types: list[str],
    rows: pl.DataFrame,
    render: Callable[[pl.DataFrame], pl.DataFrame],
    open_ns: int,
    close_ns: int,
) -> None:
    """A complete Zeek ASCII log: header, one tab-separated line per row, ``#close``.

    Rows are rendered to text a batch at a time, so a big log never sits in memory.
    A ``.gz`` path is gzip-compressed without a name or time stamp (byte-reproducible).
    """
    header = (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        f"#path\t{name}\n#open\t{_header_time(open_ns)}\n"
        f"#fields\t{chr(9).join(fields)}\n#types\t{chr(9).join(types)}\n"
    )
    with path.open("wb") as raw:
        packed = None
        if path.suffix == ".gz":
            packed = gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0, compresslevel=6)
        out = cast(IO[bytes], packed) if packed is not None else raw
        out.write(header.encode())
        for start in range(0, rows.height, BATCH_ROWS):
            lines = render(rows.slice(start, BATCH_ROWS))
            lines.write_csv(out, include_header=False, separator="\t", quote_style="never")
        out.write(f"#close\t{_header_time(close_ns)}\n".encode())
        if packed is not None:
            packed.close()


def _fingerprint(dest_ip: str, domain: str | None) -> str:
    return hashlib.sha256(f"cert:{dest_ip}:{domain}".encode()).hexdigest()


class ZeekWriter:
    """Lays out the sensor-visible connections with numbers, then writes the four logs.

    Every random choice a log line needs is drawn here, once per connection, so the
    logs agree with each other (one uid per connection across conn/dns/http/ssl).
    """

    def __init__(self, sc: Scenario, rng: np.random.Generator) -> None:
        self.sc = sc
        conns = sc.conns.filter(pl.col(C.ZEEK))
        conns = conns[np.argsort(conns.get_column(C.T_NS).to_numpy(), kind="stable")]
        n = conns.height
        self.uid_digits = rng.integers(0, 62, size=(n, 17), dtype=np.uint8)
        self.fuid_digits = rng.integers(0, 62, size=(n, 17), dtype=np.uint8)
        private = pl.Series([ipaddress.ip_address(d.ip).is_private for d in sc.dests])
        self.conns = conns.with_columns(
            pl.Series(ROW, np.arange(n, dtype=np.int64)),
            pl.Series("r", rng.random(n)),
            pl.Series("u", rng.random(n)),
            pl.Series("retries", rng.integers(1, 4, n)),
            pl.Series("delay_us", rng.integers(1000, 60000, n)),
            pl.Series("resumed", rng.random(n) < 0.2),
            pl.Series("trans_id", rng.integers(0, 65536, n)),
            pl.Series("ttl", rng.integers(1, int(dns.TTL_S) + 1, n)),
            pl.col(C.DEST)
            .map_batches(lambda s: private.gather(s.cast(pl.UInt32)), return_dtype=pl.Boolean)
            .alias("resp_private"),
        )

    # -- shared columns ------------------------------------------------------------------
    def _uid(self, part: pl.DataFrame) -> pl.Expr:
        return pl.lit(_uids(self.uid_digits[part.get_column(ROW).to_numpy()], "C"))

    def _endpoints(self) -> dict[str, pl.Expr]:
        sc = self.sc
        app, dest = pl.col(C.APP), pl.col(C.DEST)
        device_ip = _table(list(sc.devices.ips), pl.col(C.DEVICE))
        dest_ip = _table([d.ip for d in sc.dests], dest)
        dest_port = _table([str(d.port) for d in sc.dests], dest)
        inbound, is_dns = app == APP_INBOUND, app == APP_DNS
        return {
            "id.orig_h": pl.when(inbound).then(dest_ip).otherwise(device_ip),
            "id.orig_p": pl.col(C.LOCAL_PORT).cast(pl.String),
            "id.resp_h": pl.when(is_dns)
            .then(pl.lit(sc.dns_server))
            .when(inbound)
            .then(device_ip)
            .otherwise(dest_ip),
            "id.resp_p": pl.when(is_dns).then(pl.lit("53")).otherwise(dest_port),
        }

    @staticmethod
    def _ts(offset_us: pl.Expr | None = None) -> pl.Expr:
        us = pl.col(C.T_NS) // 1000
        return epoch_text(us if offset_us is None else us + offset_us)

    # -- conn.log ----------------------------------------------------------------------
    def conn_rows(self) -> pl.DataFrame:
        """Every connection with its outcome decided, in the order Zeek logs them (by end)."""
        ok, r, retries = pl.col(C.OK), pl.col("r"), pl.col("retries")
        rejected = ~ok & (r < 0.3)  # REJ: the far end reset our SYN
        silent = ~ok & ~rejected  # S0: nobody answered our SYNs (1-3 of them)
        duration_us = (
            pl.when(silent).then((retries - 1) * 3_000_000 + (r * 9000).cast(pl.Int64))
            .when(rejected).then((r * 900).cast(pl.Int64) + 120)
            .otherwise(pl.col(C.DUR_US))
        )  # fmt: skip
        frame = self.conns.with_columns(
            duration_us.alias("_dur"), rejected.alias("_rej"), silent.alias("_s0")
        )
        end = frame.get_column(C.T_NS).to_numpy() // 1000 + frame.get_column("_dur").to_numpy()
        return frame[np.argsort(end, kind="stable")]

    def conn_lines(self, part: pl.DataFrame) -> pl.DataFrame:
        app, ok, r = pl.col(C.APP), pl.col(C.OK), pl.col("r")
        is_dns, inbound = app == APP_DNS, app == APP_INBOUND
        tls = app.is_in([APP_TLS, APP_TLS_NOSNI])
        http = app.is_in([APP_HTTP, APP_HTTP_NOHOST, APP_CONNECT])
        rejected, silent = pl.col("_rej"), pl.col("_s0")
        one_syn = silent & (pl.col("retries") == 1)
        bo, bi = pl.col(C.BYTES_OUT), pl.col(C.BYTES_IN)
        orig_pkts = (
            pl.when(is_dns).then(1).when(silent).then(pl.col("retries")).when(rejected).then(1)
            .otherwise(4 + bo // 1448)
        )  # fmt: skip
        resp_pkts = (
            pl.when(is_dns).then(1).when(silent).then(0).when(rejected).then(1)
            .otherwise(3 + bi // 1448)
        )  # fmt: skip
        header = pl.when(is_dns).then(28).otherwise(52)
        state = (
            pl.when(silent).then(pl.lit("S0")).when(rejected).then(pl.lit("REJ"))
            .when(~is_dns & (r > 0.97)).then(pl.lit("RSTO")).otherwise(pl.lit("SF"))
        )  # fmt: skip
        history = (
            pl.when(is_dns).then(pl.lit("Dd")).when(silent).then(pl.lit("S")).when(rejected)
            .then(pl.lit("Sr")).when(r > 0.97).then(pl.lit("ShADadR")).when(r > 0.9)
            .then(pl.lit("ShADadfF")).otherwise(pl.lit("ShADadFf"))
        )  # fmt: skip
        service = (
            pl.when(~ok).then(pl.lit(UNSET)).when(is_dns).then(pl.lit("dns")).when(tls)
            .then(pl.lit("ssl")).when(http).then(pl.lit("http")).otherwise(pl.lit(UNSET))
        )  # fmt: skip
        unset_if_one_syn = pl.when(one_syn).then(pl.lit(UNSET))
        return part.select(
            ts=self._ts(),
            uid=self._uid(part),
            **self._endpoints(),
            proto=pl.when(is_dns).then(pl.lit("udp")).otherwise(pl.lit("tcp")),
            service=service,
            duration=unset_if_one_syn.otherwise(epoch_text(pl.col("_dur"))),
            orig_bytes=unset_if_one_syn.otherwise(_text(bo)),
            resp_bytes=unset_if_one_syn.otherwise(_text(bi)),
            conn_state=state,
            local_orig=pl.when(inbound).then(pl.lit("F")).otherwise(pl.lit("T")),
            local_resp=pl.when(inbound | is_dns | pl.col("resp_private"))
            .then(pl.lit("T"))
            .otherwise(pl.lit("F")),
            missed_bytes=pl.lit("0"),
            history=history,
            orig_pkts=_text(orig_pkts),
            orig_ip_bytes=_text(bo + orig_pkts * header),
            resp_pkts=_text(resp_pkts),
            resp_ip_bytes=_text(bi + resp_pkts * header),
            tunnel_parents=pl.lit(UNSET),
        )

    # -- dns.log -----------------------------------------------------------------------
    def dns_rows(self) -> pl.DataFrame:
        return self.conns.filter(pl.col(C.APP) == APP_DNS)

    def dns_lines(self, part: pl.DataFrame) -> pl.DataFrame:
        dests = self.sc.dests
        dest = pl.col(C.DEST)
        return part.select(
            ts=self._ts(),
            uid=self._uid(part),
            **self._endpoints(),
            proto=pl.lit("udp"),
            trans_id=_text(pl.col("trans_id")),
            rtt=epoch_text(pl.col(C.DUR_US)),
            query=_table([d.domain or UNSET for d in dests], dest),
            qclass=pl.lit("1"),
            qclass_name=pl.lit("C_INTERNET"),
            qtype=pl.lit("1"),
            qtype_name=pl.lit("A"),
            rcode=pl.lit("0"),
            rcode_name=pl.lit("NOERROR"),
            AA=pl.lit("F"),
            TC=pl.lit("F"),
            RD=pl.lit("T"),
            RA=pl.lit("T"),
            Z=pl.lit("0"),
            answers=_table([d.ip for d in dests], dest),
            TTLs=pl.concat_str([_text(pl.col("ttl")), pl.lit(".000000")]),
            rejected=pl.lit("F"),
        )

    # -- http.log ----------------------------------------------------------------------
    def http_rows(self) -> pl.DataFrame:
        app = pl.col(C.APP)
        return self.conns.filter(pl.col(C.OK) & app.is_in([APP_HTTP, APP_HTTP_NOHOST, APP_CONNECT]))

    def http_lines(self, part: pl.DataFrame) -> pl.DataFrame:
        dests = self.sc.dests
        app, dest = pl.col(C.APP), pl.col(C.DEST)
        process_ua = _table([PROCESSES[p].user_agent for p in PROCESS_NAMES], pl.col(C.PROC))
        dest_ua = _table([d.user_agent for d in dests], dest)  # type: ignore[misc]
        method = _table([d.method for d in dests], dest)
        uri = _table([d.uri for d in dests], dest)
        connect = app == APP_CONNECT
        body_out = pl.when(method == "POST").then((pl.col(C.BYTES_OUT) - 180).clip(0)).otherwise(0)
        body_in = pl.when(connect).then(0).otherwise((pl.col(C.BYTES_IN) - 240).clip(0))
        mime = _table([_MIME.get(d.uri, "text/html") for d in dests], dest)
        fuid = _uids(self.fuid_digits[part.get_column(ROW).to_numpy()], "F")
        return part.select(
            ts=self._ts(pl.col("delay_us")),
            uid=self._uid(part),
            **self._endpoints(),
            trans_depth=pl.lit("1"),
            method=method,
            host=pl.when(connect)
            .then(uri)
            .when(app == APP_HTTP_NOHOST)
            .then(pl.lit(UNSET))
            .otherwise(_table([d.domain or UNSET for d in dests], dest)),
            uri=uri,
            referrer=pl.lit(UNSET),
            version=pl.when(app == APP_HTTP_NOHOST).then(pl.lit("1.0")).otherwise(pl.lit("1.1")),
            user_agent=pl.coalesce(dest_ua, process_ua),
            origin=pl.lit(UNSET),
            request_body_len=_text(body_out),
            response_body_len=_text(body_in),
            status_code=pl.lit("200"),
            status_msg=pl.when(connect)
            .then(pl.lit("Connection established"))
            .otherwise(pl.lit("OK")),
            info_code=pl.lit(UNSET),
            info_msg=pl.lit(UNSET),
            tags=pl.lit(EMPTY),
            username=pl.lit(UNSET),
            password=pl.lit(UNSET),
            proxied=pl.lit(UNSET),
            orig_fuids=pl.lit(UNSET),
            orig_filenames=pl.lit(UNSET),
            orig_mime_types=pl.lit(UNSET),
            resp_fuids=pl.when(body_in > 0).then(pl.lit(fuid)).otherwise(pl.lit(UNSET)),
            resp_filenames=pl.lit(UNSET),
            resp_mime_types=pl.when(body_in > 0).then(mime).otherwise(pl.lit(UNSET)),
        )

    # -- ssl.log -----------------------------------------------------------------------
    def ssl_rows(self) -> pl.DataFrame:
        return self.conns.filter(pl.col(C.OK) & pl.col(C.APP).is_in([APP_TLS, APP_TLS_NOSNI]))

    def ssl_lines(self, part: pl.DataFrame) -> pl.DataFrame:
        dests = self.sc.dests
        beacons = [k for k, p in enumerate(PROGRAMS) if p.label == BEACON]
        background = pl.col(C.PROG) < 0
        # implants speak TLS 1.2 (their certificate is visible); most others TLS 1.3
        tls12 = pl.col(C.PROG).is_in(beacons) | (background & (pl.col("u") < 0.15))
        resumed = background & pl.col("resumed")
        full12 = tls12 & ~resumed
        dest = pl.col(C.DEST)
        no_sni = pl.col(C.APP) == APP_TLS_NOSNI
        fps = _table([_fingerprint(d.ip, d.domain) for d in dests], dest)
        return part.select(
            ts=self._ts(pl.col("delay_us")),
            uid=self._uid(part),
            **self._endpoints(),
            version=pl.when(tls12).then(pl.lit("TLSv12")).otherwise(pl.lit("TLSv13")),
            cipher=pl.when(tls12)
            .then(pl.lit("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"))
            .when(pl.col("u") < 0.6)
            .then(pl.lit("TLS_AES_128_GCM_SHA256"))
            .otherwise(pl.lit("TLS_AES_256_GCM_SHA384")),
            curve=pl.when(pl.col("u") > 0.9).then(pl.lit("secp256r1")).otherwise(pl.lit("x25519")),
            server_name=pl.when(no_sni)
            .then(pl.lit(UNSET))
            .otherwise(_table([d.domain or UNSET for d in dests], dest)),
            resumed=pl.when(resumed).then(pl.lit("T")).otherwise(pl.lit("F")),
            last_alert=pl.lit(UNSET),
            next_protocol=pl.when(background).then(pl.lit("h2")).otherwise(pl.lit(UNSET)),
            established=pl.lit("T"),
            ssl_history=pl.when(full12).then(pl.lit("CsxknGIi")).otherwise(pl.lit("CsiI")),
            cert_chain_fps=pl.when(full12).then(fps).otherwise(pl.lit(UNSET)),
            client_cert_chain_fps=pl.when(full12).then(pl.lit(EMPTY)).otherwise(pl.lit(UNSET)),
            sni_matches_cert=pl.when(full12 & ~no_sni).then(pl.lit("T")).otherwise(pl.lit(UNSET)),
        )

    def write(self, folder: Path, gzip_conn: bool) -> dict[int, int]:
        """Write the four logs into ``folder``; return conn.log rows per program."""
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("conn.log", "conn.log.gz"):
            (folder / stale).unlink(missing_ok=True)
        span = (self.sc.start_ns, self.sc.start_ns + int(self.sc.span_s * 1e9))
        conn = "conn.log.gz" if gzip_conn else "conn.log"
        logs = (
            (conn, "conn", CONN_FIELDS, CONN_TYPES, self.conn_rows(), self.conn_lines),
            ("dns.log", "dns", DNS_FIELDS, DNS_TYPES, self.dns_rows(), self.dns_lines),
            ("http.log", "http", HTTP_FIELDS, HTTP_TYPES, self.http_rows(), self.http_lines),
            ("ssl.log", "ssl", SSL_FIELDS, SSL_TYPES, self.ssl_rows(), self.ssl_lines),
        )
        for file_name, path_name, fields, types, rows, render in logs:
            write_log(folder / file_name, path_name, fields, types, rows, render, *span)
        per = self.conns.filter(pl.col(C.PROG) >= 0).group_by(C.PROG).len()
        out = {k: 0 for k in range(len(PROGRAMS))}
        for k, count in per.iter_rows():
            out[int(k)] = int(count)
        return out
