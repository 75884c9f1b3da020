"""The canonical event model: the one schema every loader produces.

Every loader maps its format onto these columns, so detectors never see a source
format. A field a source does not carry is null, never guessed.

The column names are plain strings, importable without polars: the TUI paints its
first screen from them before polars is loaded (a quarter of a second). The ``*_SCHEMA``
dtype tables are built on first use (``__getattr__`` below).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    EVENT_SCHEMA: dict[str, pl.DataType]
    NAMES_SCHEMA: dict[str, pl.DataType]
    APP_SCHEMA: dict[str, pl.DataType]
    DNS_SCHEMA: dict[str, pl.DataType]
    DEVICE_INFO_SCHEMA: dict[str, pl.DataType]
    CANDIDATE_BASE_SCHEMA: dict[str, pl.DataType]

# --- event columns -------------------------------------------------------------------
TIMESTAMP = "timestamp"  # UTC, microsecond precision
DEVICE_ID = "device_id"  # Defender DeviceId; Zeek: originating IP
DEVICE_NAME = "device_name"  # Defender DeviceName; Zeek: originating IP; ECS host.name
ACCOUNT = "account"  # InitiatingProcessAccountDomain\InitiatingProcessAccountName
PROCESS = "process"  # InitiatingProcessFileName; ECS process.name
ACTION = "action"  # Defender ActionType; raw Zeek conn_state (SF, S0, REJ, ...); ECS event.action
LOCAL_IP = "local_ip"
LOCAL_PORT = "local_port"
REMOTE_IP = "remote_ip"
REMOTE_PORT = "remote_port"
REMOTE_IP_TYPE = "remote_ip_type"  # Defender RemoteIPType when present
PROTOCOL = "protocol"
REMOTE_URL = "remote_url"  # Defender RemoteUrl; ECS url.domain/destination.domain
BYTES_OUT = "bytes_out"  # sent by the device (Zeek orig_bytes, ECS source.bytes)
BYTES_IN = "bytes_in"  # received by the device (Zeek resp_bytes, ECS destination.bytes)
CONNECTIONS = "connections"  # 1, or uniqueEventsAggregated for *AggregatedReport rows
COMPANY = "company"  # InitiatingProcessVersionInfoCompanyName
UID = "uid"  # Zeek connection uid (joins http/ssl logs)
SOURCE_FILE = "source_file"


def _event_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        TIMESTAMP: pl.Datetime("us", "UTC"),
        DEVICE_ID: pl.String(),
        DEVICE_NAME: pl.String(),
        ACCOUNT: pl.String(),
        PROCESS: pl.String(),
        ACTION: pl.String(),
        LOCAL_IP: pl.String(),
        LOCAL_PORT: pl.Int32(),
        REMOTE_IP: pl.String(),
        REMOTE_PORT: pl.Int32(),
        REMOTE_IP_TYPE: pl.String(),
        PROTOCOL: pl.String(),
        REMOTE_URL: pl.String(),
        BYTES_OUT: pl.Int64(),
        BYTES_IN: pl.Int64(),
        CONNECTIONS: pl.Int64(),
        COMPANY: pl.String(),
        UID: pl.String(),
        SOURCE_FILE: pl.String(),
    }


# --- topology columns (added by the pairs stage, not by loaders: ``detectors.pairs.topology``) --
DIRECTION = "direction"  # outbound | inbound | internal | external-only (null: no remote)
VIA_PROXY = "via_proxy"  # "10.0.0.5:3128" when the row was re-keyed to its proxied host
PROXY_SERVER = "proxy_server"  # the server address the proxy's own linked connection reached
ICMP_TYPE = "icmp_type"  # ICMP rows: the message type (Zeek id.orig_p), never a port
DIR_OUTBOUND = "outbound"
DIR_INBOUND = "inbound"
DIR_INTERNAL = "internal"
DIR_EXTERNAL_ONLY = "external-only"
DIRECTIONS = (DIR_OUTBOUND, DIR_INBOUND, DIR_INTERNAL, DIR_EXTERNAL_ONLY)
# Directions a hunt looks at: traffic between our hosts and the internet.
HUNTED_DIRECTIONS = (DIR_OUTBOUND, DIR_INBOUND)

# Canonical protocol values (``protocol`` column): lower case, null when unknown.
PROTO_TCP = "tcp"
PROTO_UDP = "udp"
PROTO_ICMP = "icmp"

# --- Defender ActionTypes (seed 002) ---------------------------------------------------
ACTION_SUCCESS = "ConnectionSuccess"
ACTION_FAILED = "ConnectionFailed"
ACTION_REQUEST = "ConnectionRequest"
ACTION_INBOUND = "InboundConnectionAccepted"
ACTION_LISTENING = "ListeningConnectionCreated"
ACTION_DNS_INSPECTED = "DnsConnectionInspected"
ACTION_DNS_RESPONSE = "DnsQueryResponse"
ACTION_SUCCESS_AGG = "ConnectionSuccessAggregatedReport"
ACTION_FAILED_AGG = "ConnectionFailedAggregatedReport"
AGGREGATED_SUFFIX = "AggregatedReport"
DEFENDER_ACTIONS = (
    ACTION_SUCCESS,
    ACTION_FAILED,
    ACTION_REQUEST,
    ACTION_INBOUND,
    ACTION_LISTENING,
    ACTION_DNS_INSPECTED,
    ACTION_DNS_RESPONSE,
    ACTION_SUCCESS_AGG,
    ACTION_FAILED_AGG,
)

# Elastic Defend's lifecycle of one network connection (ECS event.action).
ECS_ATTEMPT = "connection_attempted"
ECS_DISCONNECT = "disconnect_received"
ECS_INBOUND = "connection_accepted"

# --- names seen for remote IPs (Zeek dns/http/ssl, Defender RemoteUrl) -----------------
NAME_IP = "ip"
NAME = "name"
NAME_SOURCE = "name_source"  # remote_url | dns | http_host | ssl_sni | connect


def _names_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        NAME_IP: pl.String(),
        NAME: pl.String(),
        NAME_SOURCE: pl.String(),
    }


# --- per-connection application details (Zeek http.log / ssl.log joined on uid) --------
APP_UID = "uid"
APP_USER_AGENT = "user_agent"
APP_HOST = "http_host"
APP_METHOD = "http_method"
APP_SNI = "ssl_server_name"
APP_KIND = "app_kind"  # http | ssl
APP_URI = "http_uri"  # the request target as written: CONNECT host:port, or an absolute URI


def _app_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        APP_UID: pl.String(),
        APP_KIND: pl.String(),
        APP_USER_AGENT: pl.String(),
        APP_HOST: pl.String(),
        APP_METHOD: pl.String(),
        APP_SNI: pl.String(),
        APP_URI: pl.String(),
    }


# --- DNS queries (Zeek dns.log): one row per query, for the dns_beacons hunt ----------
DNS_TIME = "timestamp"
DNS_DEVICE = "device"  # the asking host's address (Zeek's id.orig_h)
DNS_QUERY = "query"
DNS_QTYPE = "qtype_name"  # A, AAAA, TXT, NULL, CNAME, ...
DNS_RESOLVER = "resolver"  # the server asked (Zeek's id.resp_h)


def _dns_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        DNS_TIME: pl.Datetime("us", "UTC"),
        DNS_DEVICE: pl.String(),
        DNS_QUERY: pl.String(),
        DNS_QTYPE: pl.String(),
        DNS_RESOLVER: pl.String(),
    }


# --- Defender DeviceInfo (seed 004) ----------------------------------------------------
DI_DEVICE_NAME = "device_name"
DI_DEVICE_ID = "device_id"
DI_DEVICE_TYPE = "device_type"
DI_OS_PLATFORM = "os_platform"
DI_TIMESTAMP = "timestamp"


def _device_info_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        DI_TIMESTAMP: pl.Datetime("us", "UTC"),
        DI_DEVICE_ID: pl.String(),
        DI_DEVICE_NAME: pl.String(),
        DI_DEVICE_TYPE: pl.String(),
        DI_OS_PLATFORM: pl.String(),
    }


# --- candidate columns (every detector's output and the merged list) -------------------
C_DETECTOR = "detector"
C_DEVICE = "device"
C_PROCESS = "process"
C_REMOTE_IP = "remote_ip"
C_REMOTE_PORT = "remote_port"
C_SCORE = "score"
C_CONNECTIONS = "connections"
C_FIRST_SEEN = "first_seen"
C_LAST_SEEN = "last_seen"
C_DOMAIN = "domain"
C_ACCOUNT = "account"
C_DETECTORS = "detectors"  # merged list: names of every detector that hit
C_EVIDENCE = "evidence"  # merged list: JSON text of the score composition
C_INTERVAL = "median_interval_s"
C_JITTER = "jitter_pct"
C_DIRECTION = "direction"  # outbound | inbound (``DIRECTION``)
C_VIA_PROXY = "via_proxy"  # the proxy a proxied destination was reached through
C_SERVER_IPS = "server_ips"  # addresses the proxy reached for a proxied destination
C_ICMP = "icmp"  # ICMP pairs: the types seen, as "icmp/8 echo" (null for other protocols)
C_PERIOD = "period_s"  # the periodicity hunt's estimate of the sleep, when it ran
C_ASN = "asn"  # the remote's autonomous system number, from a local mmdb (else absent)
C_ORG = "org"  # the organisation that AS is registered to, from the same mmdb
C_NAMES = "names"  # every name seen for the remote address (DNS, SNI, Host, RemoteUrl)
# Added by curation (``detectors.curate.decorate``):
C_ALLOWED = "allowed"
C_ALLOWED_BY = "allowed_by"
C_MARK = "mark"
C_NOTE = "note"

# A detector's output always has these, in this order; extra evidence columns follow.
CANDIDATE_KEY = [C_DEVICE, C_PROCESS, C_REMOTE_IP, C_REMOTE_PORT]


def _candidate_base_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        C_DETECTOR: pl.String(),
        C_DEVICE: pl.String(),
        C_PROCESS: pl.String(),
        C_REMOTE_IP: pl.String(),
        C_REMOTE_PORT: pl.Int32(),
        C_SCORE: pl.Float64(),
        C_CONNECTIONS: pl.Int64(),
        C_FIRST_SEEN: pl.Datetime("us", "UTC"),
        C_LAST_SEEN: pl.Datetime("us", "UTC"),
    }


_SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "EVENT_SCHEMA": _event_schema,
    "NAMES_SCHEMA": _names_schema,
    "APP_SCHEMA": _app_schema,
    "DNS_SCHEMA": _dns_schema,
    "DEVICE_INFO_SCHEMA": _device_info_schema,
    "CANDIDATE_BASE_SCHEMA": _candidate_base_schema,
}


def __getattr__(name: str) -> Any:
    """A ``*_SCHEMA`` table, built (importing polars) on first use and then kept."""
    build = _SCHEMAS.get(name)
    if build is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return globals().setdefault(name, build())


def empty_events() -> pl.DataFrame:
    """A zero-row frame of the canonical schema (a header-only file loads to this)."""
    import polars as pl

    return pl.DataFrame(schema=__getattr__("EVENT_SCHEMA"))


def conform(frame: pl.DataFrame | pl.LazyFrame, source_file: str) -> pl.LazyFrame:
    """Give a loader's output exactly the canonical columns, types and order.

    Columns the loader did not produce become null; extra columns are dropped.
    """
    import polars as pl

    lf = frame.lazy()
    have = lf.collect_schema().names()
    return lf.select(conformed_columns({name: pl.col(name) for name in have}, source_file))


def conformed_columns(columns: Mapping[str, pl.Expr], source_file: str) -> list[pl.Expr]:
    """``conform`` as expressions over ``columns`` (canonical name -> expression), so a
    loader's one query builds the canonical frame without a second pass over it."""
    import polars as pl

    exprs = []
    for name, dtype in __getattr__("EVENT_SCHEMA").items():
        if name == SOURCE_FILE:
            # a name that is not UTF-8 (bad\\xff.csv) is kept with \\xNN for its bytes
            shown = os.fsencode(source_file).decode("utf-8", "backslashreplace")
            exprs.append(pl.lit(shown, dtype=pl.String()).alias(name))
        elif name in columns:
            exprs.append(columns[name].cast(dtype, strict=False).alias(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return exprs
