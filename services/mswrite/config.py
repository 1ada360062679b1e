"""svc-mswrite's configuration: the daemon, its ring pair (configure_beam) and where and how
it writes MeasurementSets (configure_scan)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.common.config import (
    Config,
    DaemonConfig,
    RingPairConfig,
    non_negative,
    one_of,
    setting,
)
from services.mswrite.transfer import DEFAULT_NAME_TEMPLATE, ExistsPolicy, check_template


@dataclass(frozen=True, kw_only=True)
class MsWriteConfig(DaemonConfig):
    """The daemon's own settings: only the common ones (see DaemonConfig)."""


@dataclass(frozen=True, kw_only=True)
class MsWriteBeamConfig(RingPairConfig):
    """configure_beam: the visibility ring pair."""


def _ra(value: float) -> None:
    if not 0.0 <= value < 360.0:
        raise ValueError("must be in [0, 360) degrees")


def _dec(value: float) -> None:
    if not -90.0 <= value <= 90.0:
        raise ValueError("must be in [-90, 90] degrees")


@dataclass(frozen=True, kw_only=True)
class MsWriteScanConfig(Config):
    """configure_scan: where the MeasurementSets go and where their metadata comes from."""

    output_dir: Path = setting("MS_OUTPUT_DIR", Path, help="directory the MSs are written in")
    name_template: str = setting(
        "MS_NAME_TEMPLATE", str, default=DEFAULT_NAME_TEMPLATE, validator=check_template,
        help="MS file name; placeholders {SCAN_ID} and {UTC_START}; ends in .ms")
    rollover_dumps: int = setting(
        "MS_ROLLOVER_DUMPS", int, default=0, validator=non_negative,
        help="start a new MS every this many dumps (0: one MS per transfer)")
    data_model: str = setting(
        "MS_DATA_MODEL", str, default="",
        help="an MS giving antennas, phase centre and UVW per time (or MS_ANTENNA_FILE)")
    antenna_file: str = setting(
        "MS_ANTENNA_FILE", str, default="",
        help="antenna positions: text file 'NAME X Y Z [DIAM]' (ITRF m) or an MS "
             "(or MS_DATA_MODEL)")
    ra_deg: float | None = setting(
        "PHASE_CENTRE_RA_DEG", float, default=None, validator=_ra,
        help="phase centre RA J2000 (with MS_ANTENNA_FILE; default: the header's)")
    dec_deg: float | None = setting(
        "PHASE_CENTRE_DEC_DEG", float, default=None, validator=_dec,
        help="phase centre Dec J2000 (with MS_ANTENNA_FILE; default: the header's)")
    telescope: str = setting("TELESCOPE", str, default="",
                             help="OBSERVATION TELESCOPE_NAME (default: header, then metadata)")
    flush_interval_s: float = setting(
        "MS_FLUSH_INTERVAL_S", float, default=1.0, validator=non_negative,
        help="flush the MS at most this often (0: after every block)")
    exists: str = setting(
        "MS_EXISTS", str, default=ExistsPolicy.SUFFIX.value,
        validator=one_of(*(p.value for p in ExistsPolicy)),
        help="the MS of a transfer exists (the scan was sent again): suffix (write "
             "NAME_rep2.ms, ...), refuse (drain it) or overwrite")

    def check(self) -> Iterable[str]:
        out = _unusable_path("MS_OUTPUT_DIR", self.output_dir)
        if out:
            yield out
        elif not self.output_dir.is_dir():
            yield f"MS_OUTPUT_DIR {self.output_dir}: not a directory"
        elif not os.access(self.output_dir, os.W_OK | os.X_OK):
            yield f"MS_OUTPUT_DIR {self.output_dir}: not writable"
        if bool(self.data_model) == bool(self.antenna_file):
            yield ("set exactly one of MS_DATA_MODEL and MS_ANTENNA_FILE "
                   f"(got {'both' if self.data_model else 'neither'})")
        if self.data_model:
            model = _unusable_path("MS_DATA_MODEL", Path(self.data_model) / "table.dat")
            if model:
                yield model
            elif not (Path(self.data_model) / "table.dat").is_file():
                yield f"MS_DATA_MODEL {self.data_model}: not a MeasurementSet (no table.dat)"
        if self.antenna_file:
            antennas = _unusable_path("MS_ANTENNA_FILE", Path(self.antenna_file))
            if antennas:
                yield antennas
            elif not Path(self.antenna_file).exists():
                yield f"MS_ANTENNA_FILE {self.antenna_file}: no such file or directory"
        if (self.ra_deg is None) != (self.dec_deg is None):
            yield "set both PHASE_CENTRE_RA_DEG and PHASE_CENTRE_DEC_DEG, or neither"

    def config_text(self, beam: Config | None) -> str:
        """``KEY value`` lines of the beam and scan settings (for the MS HISTORY)."""
        values = {**(beam.to_dict() if beam else {}), **self.to_dict()}
        return "\n".join(f"{key} {value}" for key, value in values.items()
                         if value not in ("", None))


def _unusable_path(key: str, path: Path) -> str:
    """A one-line problem if ``path`` cannot even be looked at (name too long, a file where
    a directory should be, no permission, a loop), else ''. Missing is not a problem here."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError as exc:
        text = str(path)
        shown = text if len(text) <= 80 else f"{text[:40]}...{text[-30:]} ({len(text)} characters)"
        return f"{key} {shown}: {exc.strerror or exc}"
    except ValueError as exc:  # an embedded NUL
        return f"{key} {str(path)[:80]!r}: {exc}"
    return ""
