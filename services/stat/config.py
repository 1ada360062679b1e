"""Configuration of svc-stat and stat-file-processor, and the one way STAT_* keys are read.

:class:`StatConfig` holds the SKA PST STAT keys that shape the statistics (bin requests and the
rebinned-histogram size). Both tools resolve them with :func:`stat_config`, in these layers
(a higher layer wins)::

    code defaults < the data header of the transfer or recording
                  < config files < environment RINGPIPE_<KEY> < -o KEY=VALUE < command map

so one recording is binned the same live and offline when given the same configuration.
svc-stat's files, ``-o`` options and ``configure_scan`` map are its upper layers;
stat-file-processor's are its ``-c`` files and ``-o`` options.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringbuf import DadaHeader
from services.common.config import (
    Config,
    ConfigSource,
    DaemonConfig,
    RingPairConfig,
    build_config,
    non_negative,
    positive,
    setting,
)

DEFAULT_REQ_BINS = 1024
DEFAULT_NREBIN = 256


@dataclass(frozen=True, kw_only=True)
class StatConfig(Config):
    """The STAT_* keys of the statistics (requests before ``calc_bins``; PST's defaults)."""

    req_time_bins: int = setting(
        "STAT_REQ_TIME_BINS", int, default=DEFAULT_REQ_BINS, validator=non_negative,
        help="requested time bins of spectrogram and timeseries (0 or above 32768: 1024)",
    )  # fmt: skip
    req_freq_bins: int = setting(
        "STAT_REQ_FREQ_BINS", int, default=DEFAULT_REQ_BINS, validator=non_negative,
        help="requested frequency bins of the spectrogram (0 or above 2048: 1024)",
    )  # fmt: skip
    nrebin: int = setting(
        "STAT_NREBIN", int, default=DEFAULT_NREBIN, validator=positive,
        help="bins of the rebinned histograms",
    )  # fmt: skip


def header_layer(header: DadaHeader) -> tuple[str, dict[str, str]]:
    """The STAT_* keys of a data header as a config layer (first tokens, as SKA PST reads)."""
    values = {}
    for key in StatConfig.keys():
        if key in header:
            tokens = header.get_str(key).split()
            values[key] = tokens[0] if tokens else ""
    named = header.source not in ("", "header")  # "header": DadaHeader's default source
    origin = f"data header {header.source}" if named else "data header"
    return origin, values


def stat_config(header: DadaHeader, source: ConfigSource | None = None) -> StatConfig:
    """The STAT_* keys for ``header``'s data: the header under ``source``'s layers.

    Raises :class:`~services.common.config.ConfigError` naming each bad key and its source.
    """
    source = source or ConfigSource(environ={})
    layered = ConfigSource((header_layer(header), *source.files), source.environ,
                           source.overrides, source.env_prefix)
    return build_config(StatConfig, layered, "STAT config")


@dataclass(frozen=True, kw_only=True)
class StatDaemonConfig(DaemonConfig):
    """svc-stat's own settings."""

    publish_socket: str = setting(
        "STAT_PUBLISH_SOCKET", str, default="",
        help="Unix socket where scalar statistics are published (empty: off)",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StatBeamConfig(RingPairConfig):
    """configure_beam: the ring pair to view."""


@dataclass(frozen=True, kw_only=True)
class StatScanConfig(StatConfig):
    """configure_scan (SKA PST's scan keys); the STAT_* keys apply over the data header."""

    eb_id: str = setting(
        "EB_ID", str, default="",
        help="execution block id (managed mode: must match the data header)",
    )  # fmt: skip
    proc_delay_ms: int = setting(
        "STAT_PROC_DELAY_MS", int, default=5000, validator=non_negative,
        help="wait between two processed segments",
    )  # fmt: skip
    base_path: str = setting(
        "STAT_BASE_PATH", str, default="/tmp",
        help="root of the output tree <base>/product/<EB_ID>/...",
    )  # fmt: skip
