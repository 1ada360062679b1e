"""svc-avg configuration: every key, its default and its checks (see docs/avg.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.common.config import (
    Config,
    DaemonConfig,
    RingPairConfig,
    in_range,
    non_negative,
    positive,
    ring_key,
    setting,
)


def _power_of_two(value: int) -> None:
    if value < 1 or value & (value - 1):
        raise ValueError("must be a power of two (1, 2, 4, ...)")


def _odd(value: int) -> None:
    if value < 1 or value % 2 == 0:
        raise ValueError("must be a positive odd number")


@dataclass(frozen=True, kw_only=True)
class AvgConfig(DaemonConfig):
    """The daemon's own settings: only the common ones (see DaemonConfig)."""


@dataclass(frozen=True, kw_only=True)
class AvgBeamConfig(RingPairConfig):
    """configure_beam: the input ring pair (DATA_KEY, WEIGHTS_KEY) and the output pair."""

    out_data_key: str = setting("OUT_DATA_KEY", ring_key, help="output (averaged) data ring")
    out_weights_key: str = setting("OUT_WEIGHTS_KEY", ring_key,
                                   help="output (averaged) weights ring")

    def check(self) -> Iterable[str]:
        yield from super().check()
        keys = {self.data_key, self.weights_key}
        if self.out_data_key == self.out_weights_key:
            yield f"OUT_DATA_KEY and OUT_WEIGHTS_KEY must differ (both {self.out_data_key})"
        if keys & {self.out_data_key, self.out_weights_key}:
            yield "the output ring pair must differ from the input pair (DATA_KEY, WEIGHTS_KEY)"


@dataclass(frozen=True, kw_only=True)
class AvgScanConfig(Config):
    """configure_scan: how to average and flag."""

    time_dumps: int = setting("AVG_TIME_DUMPS", int, default=1, validator=positive,
                              help="N: input dumps averaged into one output dump")
    channels: int = setting("AVG_CHANNELS", int, default=1, validator=positive,
                            help="M: input channels averaged into one output channel")
    flag: bool = setting("FLAG_ENABLE", bool, default=True,
                         help="run the RFI flagger before averaging")
    flag_sigma: float = setting("FLAG_SIGMA", float, default=5.0, validator=positive,
                                help="threshold in robust standard deviations (MAD x 1.4826)")
    flag_window: int = setting("FLAG_WINDOW", int, default=17, validator=_odd,
                               help="channels per block of the median background (odd)")
    flag_dilate: int = setting("FLAG_DILATE", int, default=1, validator=non_negative,
                               help="flags grow by this many channels on each side")
    flag_history: int = setting("FLAG_HISTORY", int, default=16, validator=positive,
                                help="dumps of spectrum levels kept for the broadband test")
    bda_max_factor: int = setting(
        "BDA_MAX_FACTOR", int, default=1, validator=_power_of_two,
        help="baseline-dependent averaging: longest extra time factor (1: off)")
    bda_antenna_file: str = setting(
        "BDA_ANTENNA_FILE", str, default="",
        help="antenna positions 'NAME X Y Z [DIAM]' (ITRF m), for baseline lengths")
    bda_fov_deg: float = setting(
        "BDA_FOV_DEG", float, default=1.0, validator=in_range(1e-6, 90.0),
        help="radius (deg) at which the smearing limit holds")
    bda_max_smearing: float = setting(
        "BDA_MAX_SMEARING", float, default=0.01, validator=in_range(1e-9, 0.5),
        help="largest fractional amplitude loss from time smearing at BDA_FOV_DEG")

    def check(self) -> Iterable[str]:
        if self.bda_max_factor > 1:
            if not self.bda_antenna_file:
                yield "BDA_ANTENNA_FILE: required when BDA_MAX_FACTOR > 1"
            elif not Path(self.bda_antenna_file).is_file():
                yield f"BDA_ANTENNA_FILE {self.bda_antenna_file}: no such file"
