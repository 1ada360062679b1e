"""Static metadata of a MeasurementSet: the antennas and the phase centre.

Both come either from a "data model" MeasurementSet (see :mod:`services.mswrite.datamodel`)
or from configuration: an antenna file and a phase centre in degrees.

The antenna file is a station file (:mod:`services.formats.stations`).
A directory is read as a casacore table: an MS (its ANTENNA subtable) or an ANTENNA table.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.formats.stations import StationsFileError, read_stations
from services.mswrite.errors import MsWriteError

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Antennas:
    """Names, ITRF positions (m, shape ``(nant, 3)``) and dish diameters (m) of an array."""

    names: tuple[str, ...]
    positions: np.ndarray
    dish_diameters: np.ndarray
    telescope: str = ""
    mount: str = "X-Y"
    stations: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.positions.shape != (n, 3) or self.dish_diameters.shape != (n,):
            raise MsWriteError(f"antennas: {n} names but positions {self.positions.shape} "
                               f"and diameters {self.dish_diameters.shape}")
        if n < 1:
            raise MsWriteError("antennas: no antennas given")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def load(cls, path: str | os.PathLike[str], telescope: str = "") -> Antennas:
        """Read an antenna text file, or the ANTENNA table of an MS (a directory)."""
        path = Path(path)
        if path.is_dir():
            return cls._from_table(path, telescope)
        try:
            stations = read_stations(path)
        except StationsFileError as exc:
            raise MsWriteError(str(exc)) from None
        return cls(stations.names, stations.positions, stations.diameters, telescope)

    @classmethod
    def _from_table(cls, path: Path, telescope: str) -> Antennas:
        from casacore import tables

        table_path = path / "ANTENNA" if (path / "ANTENNA").is_dir() else path
        try:
            with tables.table(str(table_path), ack=False) as t:
                names = tuple(str(n) for n in t.getcol("NAME"))
                positions = np.asarray(t.getcol("POSITION"), np.float64)
                diameters = np.asarray(t.getcol("DISH_DIAMETER"), np.float64)
                stations = tuple(str(s) for s in t.getcol("STATION"))
                mount = str(t.getcell("MOUNT", 0)) if t.nrows() else "X-Y"
        except RuntimeError as exc:
            raise MsWriteError(f"{table_path}: not a readable ANTENNA table: "
                               f"{str(exc).splitlines()[0]}") from None
        return cls(names, positions, diameters, telescope or _telescope_of(table_path.parent),
                   mount or "X-Y", stations)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the antenna text file :meth:`load` reads."""
        lines = ["# NAME X_ITRF_M Y_ITRF_M Z_ITRF_M DISH_DIAMETER_M"]
        for name, (x, y, z), d in zip(self.names, self.positions, self.dish_diameters,
                                      strict=False):
            lines.append(f"{name} {x:.4f} {y:.4f} {z:.4f} {d:g}")
        Path(path).write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class PhaseCentre:
    """A J2000 direction (radians) and its field name."""

    ra_rad: float
    dec_rad: float
    name: str = "field"

    @classmethod
    def from_degrees(cls, ra_deg: float, dec_deg: float, name: str = "field") -> PhaseCentre:
        """Build from degrees, checking the range."""
        if not (0.0 <= ra_deg < 360.0 and -90.0 <= dec_deg <= 90.0):
            raise MsWriteError(f"phase centre RA {ra_deg} / Dec {dec_deg} deg is out of range "
                               "(0 <= RA < 360, -90 <= Dec <= 90)")
        return cls(float(np.radians(ra_deg)), float(np.radians(dec_deg)), name or "field")


def _telescope_of(ms: Path) -> str:
    """TELESCOPE_NAME of an MS's first OBSERVATION row ('' when it has none)."""
    from casacore import tables

    if not (ms / "OBSERVATION" / "table.dat").is_file():
        return ""
    try:
        with tables.table(str(ms / "OBSERVATION"), ack=False) as obs:
            return str(obs.getcell("TELESCOPE_NAME", 0)).strip() if obs.nrows() else ""
    except RuntimeError as exc:
        logger.warning("%s: no telescope name read from OBSERVATION: %s", ms,
                       str(exc).splitlines()[0])
        return ""
