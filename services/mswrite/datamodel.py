"""A "data model" MeasurementSet: antennas, phase centre and UVW per time, as the SKA
CBF-SDP emulator's receiver takes them from the MS the emulator sends.

The model must describe the stream: the same antennas (NANT), every baseline of the
contract's order (autocorrelations included; any row order), and channel frequencies that
contain the stream's channels. Dump *i* takes the UVW of the model time equal to the dump's
time (within half an integration); a dump outside the model's times (a sender repeating
the MS) takes model time ``i mod ntime``, with one warning.

UVW are copied as they are (a row stored as (ANTENNA2, ANTENNA1) is negated), so the output
has the model's convention. A model whose UVW are the negative of CASA's convention
(:mod:`services.mswrite.uvw`) for its own antennas and phase centre is reported with one
warning: its sky would image point-mirrored in CASA if its DATA were predicted in CASA's way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.stream import VisStream

logger = logging.getLogger(__name__)


class DataModel:
    """Metadata and UVW of a stream taken from an existing MeasurementSet."""

    def __init__(self, path: str | os.PathLike[str], stream: VisStream) -> None:
        from casacore import tables

        self.path = Path(path)
        if not (self.path / "table.dat").is_file():
            raise MsWriteError(f"data model {self.path}: not a MeasurementSet (no table.dat)")
        try:
            self.antennas = Antennas.load(self.path, stream.telescope)
            with tables.table(str(self.path / "FIELD"), ack=False) as field:
                ra, dec = np.asarray(field.getcell("PHASE_DIR", 0), np.float64).reshape(-1)[:2]
                name = str(field.getcell("NAME", 0))
            self.phase_centre = PhaseCentre(float(ra), float(dec), name or "field")
            with tables.table(str(self.path / "SPECTRAL_WINDOW"), ack=False) as spw:
                model_freqs = np.asarray(spw.getcell("CHAN_FREQ", 0), np.float64)
            with tables.table(str(self.path / "OBSERVATION"), ack=False) as obs:
                self.telescope = str(obs.getcell("TELESCOPE_NAME", 0)) if obs.nrows() else ""
            with tables.table(str(self.path), ack=False) as main:
                times = main.getcol("TIME")
                a1 = main.getcol("ANTENNA1")
                a2 = main.getcol("ANTENNA2")
                uvw = main.getcol("UVW")
        except RuntimeError as exc:
            raise MsWriteError(f"data model {self.path}: {str(exc).splitlines()[0]}") from None
        self._check(stream, model_freqs)
        self._times, self._uvw = self._uvw_per_time(stream, times, a1, a2, uvw)
        self._int_time = stream.int_time
        self._warned_repeat = False
        self.flipped = self._flipped(stream)
        if self.flipped:
            logger.warning("data model %s: its UVW are the negative of CASA's convention "
                           "(pos(ANTENNA1) - pos(ANTENNA2)) for its antennas and phase centre; "
                           "copied as they are", self.path)
        logger.info("data model %s: %d antennas, %d times, phase centre %s", self.path,
                    len(self.antennas), len(self._times), self.phase_centre)

    def _check(self, stream: VisStream, model_freqs: np.ndarray) -> None:
        if len(self.antennas) != stream.nant:
            raise MsWriteError(f"data model {self.path} has {len(self.antennas)} antennas but "
                               f"the stream has NANT {stream.nant}")
        last = stream.start_channel + stream.nchan
        if last > len(model_freqs):
            raise MsWriteError(f"data model {self.path} has {len(model_freqs)} channels but the "
                               f"stream has channels {stream.start_channel}..{last - 1}")
        expected = model_freqs[stream.start_channel:last]
        worst = float(np.max(np.abs(expected - stream.chan_freqs())))
        if worst > abs(stream.chan_width_hz) / 2:
            raise MsWriteError(f"data model {self.path}: channel frequencies differ from the "
                               f"stream's FREQ0_HZ/CHAN_WIDTH_HZ by up to {worst:.6g} Hz")

    def _flipped(self, stream: VisStream) -> bool:
        """Whether the model's first time has the negated UVW of CASA's convention (within
        1 % of each baseline's length, so a model merely computed differently is not)."""
        from services.mswrite.uvw import MeasuresUvw

        a1, a2 = stream.baselines()
        try:
            ours = MeasuresUvw(self.antennas, self.phase_centre, a1, a2).uvw(
                np.zeros(1, np.int64), self._times[:1])[0]
        except RuntimeError as exc:  # measures data missing: no opinion
            logger.debug("data model %s: UVW orientation not checked: %s", self.path, exc)
            return False
        length = np.linalg.norm(ours, axis=1)
        cross = length > 1.0
        if not cross.any():
            return False
        model = self._uvw[0][cross]
        tolerance = 0.01 * length[cross]
        same = np.linalg.norm(model - ours[cross], axis=1) < tolerance
        negated = np.linalg.norm(model + ours[cross], axis=1) < tolerance
        return bool(negated.all() and not same.any())

    def _uvw_per_time(self, stream: VisStream, times: np.ndarray, a1: np.ndarray,
                      a2: np.ndarray, uvw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model UVW rearranged to ``(ntime, nbaseline, 3)`` in the stream's baseline order."""
        s1, s2 = stream.baselines()
        nant = stream.nant
        wanted = s1.astype(np.int64) * nant + s2
        unique_times, time_index = np.unique(times, return_inverse=True)
        slot = np.full(nant * nant, -1, np.int64)
        slot[wanted] = np.arange(len(wanted))
        in_range = (a1 >= 0) & (a1 < nant) & (a2 >= 0) & (a2 < nant)
        key = np.where(in_range, np.minimum(a1, a2) * nant + np.maximum(a1, a2), 0)
        row_slot = np.where(in_range, slot[key], -1)
        out = np.full((len(unique_times), len(wanted), 3), np.nan)
        keep = row_slot >= 0
        flip = np.where(a1 > a2, -1.0, 1.0)[:, None]  # a row stored as (a2, a1) has -UVW
        out[time_index[keep], row_slot[keep]] = uvw[keep] * flip[keep]
        missing = np.isnan(out[..., 0]).any(axis=0)
        if missing.any():
            k = int(np.argmax(missing))
            raise MsWriteError(f"data model {self.path} lacks baseline ({s1[k]}, {s2[k]}) "
                               f"of the stream's {stream.nbaseline} baselines "
                               f"(NANT {nant}, {stream.nbaseline - int(missing.sum())} found)")
        return unique_times, out

    def uvw(self, dumps: np.ndarray, times_mjd_s: np.ndarray) -> np.ndarray:
        """UVW of every baseline for each dump, shape ``(len(dumps), nbaseline, 3)``."""
        times_mjd_s = np.asarray(times_mjd_s, np.float64)
        index = np.abs(times_mjd_s[:, None] - self._times[None, :]).argmin(axis=1)
        off = np.abs(self._times[index] - times_mjd_s) > self._int_time / 2
        if off.any():
            if not self._warned_repeat:
                logger.warning("data model %s: dump times outside the model's times; using "
                               "model time (dump index mod %d)", self.path, len(self._times))
                self._warned_repeat = True
            index = np.where(off, np.asarray(dumps) % len(self._times), index)
        return self._uvw[index]
