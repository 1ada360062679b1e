"""UVW coordinates (J2000, metres) from antenna positions and a phase centre.

Convention: CASA's. The UVW of the row (ANTENNA1, ANTENNA2) is the vector
``pos(ANTENNA1) - pos(ANTENNA2)`` expressed in the (u, v, w) frame of the J2000 phase centre
at the row's time (w towards the phase centre, v towards the north pole), which is what
CASA's ``fixvis`` recomputes from the ANTENNA table, and what pyuvdata's MS reader accepts
without a warning. Visibilities pair with it as CASA's ``ft`` predicts them:
``V = sum S exp(+2 pi i (u l + v m + w (n - 1)) / lambda)`` (:mod:`services.mswrite.sky`).
Rows (ANTENNA2, ANTENNA1) have ``-UVW`` and conjugated visibilities. docs/mswrite.md gives
the evidence; tests/mswrite/test_casa_convention.py checks it.

casacore.measures does the frame work (UTC -> UT1, precession, nutation, polar motion):
per time, one ``to_uvw`` of every antenna's offset from the array centre; each baseline is
then the difference of two antenna UVWs, which is exact because the transform is linear.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from services.mswrite.metadata import Antennas, PhaseCentre

logger = logging.getLogger(__name__)


class UvwSource(Protocol):
    """Anything that gives the UVW of every baseline of a set of dumps."""

    def uvw(self, dumps: np.ndarray, times_mjd_s: np.ndarray) -> np.ndarray:
        """UVW (m), shape ``(len(dumps), nbaseline, 3)``, in the stream's baseline order."""
        ...


class MeasuresUvw:
    """UVW computed with casacore.measures from ITRF antenna positions."""

    def __init__(self, antennas: Antennas, phase_centre: PhaseCentre,
                 ant1: np.ndarray, ant2: np.ndarray) -> None:
        from casacore.measures import measures
        from casacore.quanta import quantity

        self._q = quantity
        self._me = measures()
        self._ant1 = np.asarray(ant1)
        self._ant2 = np.asarray(ant2)
        centre = antennas.positions.mean(axis=0)
        offsets = antennas.positions - centre
        self._me.do_frame(self._me.position("ITRF", *(quantity(float(c), "m") for c in centre)))
        self._me.do_frame(self._me.direction("J2000", quantity(phase_centre.ra_rad, "rad"),
                                             quantity(phase_centre.dec_rad, "rad")))
        self._baseline = self._me.baseline("ITRF", *(quantity(offsets[:, k].tolist(), "m")
                                                     for k in range(3)))

    def antenna_uvw(self, time_mjd_s: float) -> np.ndarray:
        """UVW (m) of each antenna's offset from the array centre, shape ``(nant, 3)``."""
        self._me.do_frame(self._me.epoch("UTC", self._q(float(time_mjd_s), "s")))
        xyz = self._me.to_uvw(self._baseline)["xyz"].get_value("m")
        return np.asarray(xyz, np.float64).reshape(-1, 3)

    def uvw(self, dumps: np.ndarray, times_mjd_s: np.ndarray) -> np.ndarray:
        """UVW of every baseline at each time: ``pos(ANTENNA1) - pos(ANTENNA2)``, rotated."""
        out = np.empty((len(times_mjd_s), len(self._ant1), 3), np.float64)
        for i, t in enumerate(times_mjd_s):
            ant = self.antenna_uvw(t)
            np.subtract(ant[self._ant1], ant[self._ant2], out=out[i])
        return out
