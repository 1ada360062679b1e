"""Create a MeasurementSet and append rows to it with python-casacore (the only writer).

Layout (``showtableinfo`` shows it):

* MAIN: DATA (complex64 ``[nchan, 4]``), FLAG and WEIGHT_SPECTRUM each in its own
  TiledColumnStMan with tiles of about :data:`TILE_BYTES` (whole rows, all channels);
  per-row values (TIME, TIME_CENTROID, ANTENNA1/2, UVW, WEIGHT, SIGMA, FLAG_ROW) in
  StandardStMan; values that are constant over a scan (INTERVAL, EXPOSURE, SCAN_NUMBER,
  FIELD_ID, DATA_DESC_ID, ...) in IncrementalStMan, which stores a run once. UVW is J2000.
* Subtables: ANTENNA, SPECTRAL_WINDOW, POLARIZATION (XX XY YX YY), DATA_DESCRIPTION, FIELD,
  OBSERVATION, FEED, SOURCE, STATE, PROCESSOR, HISTORY filled with one row each (one per
  antenna for ANTENNA and FEED); POINTING and FLAG_CMD empty.

:class:`MsTable` writes rows in bulk: one ``putcol`` per column per call, never ``putcell``.
All casacore calls of one MS must stay on one thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from casacore import tables

from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.stream import MJD_UNIX_OFFSET_S, NPOL

logger = logging.getLogger(__name__)

#: target size of one tile of DATA, FLAG (counted unpacked) and WEIGHT_SPECTRUM
TILE_BYTES = 1 << 20
CORR_TYPES = (9, 10, 11, 12)  # XX XY YX YY (casacore Stokes enum)
CORR_PRODUCT = ((0, 0), (0, 1), (1, 0), (1, 1))
MEAS_FREQ_REF_TOPO = 5
#: main-table columns whose value is the same for a whole scan (IncrementalStMan)
CONSTANT_COLUMNS = {"ARRAY_ID": 0, "DATA_DESC_ID": 0, "FEED1": 0, "FEED2": 0, "FIELD_ID": 0,
                    "OBSERVATION_ID": 0, "PROCESSOR_ID": 0, "STATE_ID": 0}
_TILED = ("DATA", "FLAG", "WEIGHT_SPECTRUM")


@dataclass(frozen=True)
class MsSpec:
    """Everything static a MeasurementSet holds besides its rows."""

    chan_freqs: np.ndarray
    chan_width_hz: float
    antennas: Antennas
    phase_centre: PhaseCentre
    int_time: float
    scan_number: int
    start_time_mjd_s: float
    telescope: str = ""
    observer: str = ""
    project: str = ""
    application: str = "ringpipe"
    history: tuple[str, ...] = ()
    app_params: tuple[str, ...] = field(default=())

    @property
    def nchan(self) -> int:
        """Channels per row."""
        return len(self.chan_freqs)


@dataclass
class RowBlock:
    """Values of consecutive main-table rows (first axis = row), ready for ``putcol``."""

    time: np.ndarray
    time_centroid: np.ndarray
    antenna1: np.ndarray
    antenna2: np.ndarray
    uvw: np.ndarray
    data: np.ndarray             # complex64 (nrow, nchan, 4), C-contiguous
    flag: np.ndarray             # bool (nrow, nchan, 4)
    weight_spectrum: np.ndarray  # float32 (nrow, nchan, 4)
    weight: np.ndarray           # float32 (nrow, 4)
    sigma: np.ndarray            # float32 (nrow, 4)
    flag_row: np.ndarray         # bool (nrow,)
    #: INTERVAL = EXPOSURE of each row (s); None: the spec's int_time for every row
    interval: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.time)


def tile_shape(nchan: int, itemsize: float) -> list[int]:
    """Tile shape (casacore order ``[pol, chan, row]``) of about :data:`TILE_BYTES`."""
    row_bytes = NPOL * nchan * itemsize
    chans = nchan if row_bytes <= TILE_BYTES else max(1, int(TILE_BYTES // (NPOL * itemsize)))
    rows = max(1, int(TILE_BYTES // (NPOL * chans * itemsize)))
    return [NPOL, chans, rows]


def _main_desc(nchan: int) -> tuple[dict, dict]:
    """Table description and data-manager info of the main table."""
    desc = tables.required_ms_desc("MAIN")
    shape = np.array([nchan, NPOL], np.int32)
    desc["FLAG"].update(shape=shape, ndim=2, option=5)
    desc["DATA"] = tables.makearrcoldesc("DATA", 0j, shape=[nchan, NPOL], valuetype="complex",
                                         comment="The data column", options=5)["desc"]
    desc["WEIGHT_SPECTRUM"] = tables.makearrcoldesc(
        "WEIGHT_SPECTRUM", 0.0, shape=[nchan, NPOL], valuetype="float", options=5,
        comment="Weight for each data point")["desc"]
    for name in ("WEIGHT", "SIGMA"):
        desc[name].update(shape=np.array([NPOL], np.int32), ndim=1, option=5)
    desc["UVW"]["keywords"]["MEASINFO"] = {"type": "uvw", "Ref": "J2000"}
    ism = [*CONSTANT_COLUMNS, "INTERVAL", "EXPOSURE", "SCAN_NUMBER"]
    for name in ism:
        desc[name].update(dataManagerType="IncrementalStMan", dataManagerGroup="ISMData")
    dminfo = {"*1": {"TYPE": "IncrementalStMan", "NAME": "ISMData", "SPEC": {}, "COLUMNS": ism}}
    for i, (name, itemsize) in enumerate(zip(_TILED, (8, 1, 4), strict=False), start=2):
        group = f"Tiled{name.title().replace('_', '')}"
        desc[name].update(dataManagerType="TiledColumnStMan", dataManagerGroup=group)
        dminfo[f"*{i}"] = {"TYPE": "TiledColumnStMan", "NAME": group, "COLUMNS": [name],
                           "SPEC": {"DEFAULTTILESHAPE": np.array(tile_shape(nchan, itemsize),
                                                                 np.int32)}}
    return desc, dminfo


def _fill(path: Path, name: str, columns: dict[str, object], nrows: int = 1) -> None:
    """Add ``nrows`` rows to a subtable and put each column."""
    with tables.table(str(path / name), readonly=False, ack=False) as t:
        t.addrows(nrows)
        for column, values in columns.items():
            t.putcol(column, values)


def _fill_subtables(path: Path, spec: MsSpec) -> None:
    nant = len(spec.antennas)
    ant = spec.antennas
    centre = (spec.phase_centre.ra_rad, spec.phase_centre.dec_rad)
    freqs = np.asarray(spec.chan_freqs, np.float64)
    width = np.full(spec.nchan, spec.chan_width_hz, np.float64)
    now = time.time() + MJD_UNIX_OFFSET_S
    _fill(path, "ANTENNA", {
        "NAME": list(ant.names),
        "STATION": list(ant.stations) if ant.stations else list(ant.names),
        "TYPE": ["GROUND-BASED"] * nant, "MOUNT": [ant.mount] * nant,
        "POSITION": ant.positions, "OFFSET": np.zeros((nant, 3)),
        "DISH_DIAMETER": ant.dish_diameters, "FLAG_ROW": np.zeros(nant, bool)}, nant)
    _fill(path, "SPECTRAL_WINDOW", {
        "NUM_CHAN": [spec.nchan], "NAME": ["SPW0"], "REF_FREQUENCY": [freqs[0]],
        "CHAN_FREQ": freqs[None], "CHAN_WIDTH": width[None],
        "EFFECTIVE_BW": np.abs(width)[None], "RESOLUTION": np.abs(width)[None],
        "MEAS_FREQ_REF": [MEAS_FREQ_REF_TOPO],
        "TOTAL_BANDWIDTH": [abs(spec.chan_width_hz) * spec.nchan],
        "NET_SIDEBAND": [1], "IF_CONV_CHAIN": [0], "FREQ_GROUP": [0],
        "FREQ_GROUP_NAME": ["Group 1"], "FLAG_ROW": [False]})
    _fill(path, "POLARIZATION", {
        "NUM_CORR": [NPOL], "CORR_TYPE": np.array([CORR_TYPES], np.int32),
        "CORR_PRODUCT": np.array([CORR_PRODUCT], np.int32), "FLAG_ROW": [False]})
    _fill(path, "DATA_DESCRIPTION", {
        "SPECTRAL_WINDOW_ID": [0], "POLARIZATION_ID": [0], "FLAG_ROW": [False]})
    direction = np.array([[centre]], np.float64)  # (row, poly, 2)
    _fill(path, "FIELD", {
        "NAME": [spec.phase_centre.name], "CODE": [""], "TIME": [spec.start_time_mjd_s],
        "NUM_POLY": [0], "DELAY_DIR": direction, "PHASE_DIR": direction,
        "REFERENCE_DIR": direction, "SOURCE_ID": [0], "FLAG_ROW": [False]})
    _fill(path, "OBSERVATION", {
        "TELESCOPE_NAME": [spec.telescope], "OBSERVER": [spec.observer],
        "PROJECT": [spec.project], "TIME_RANGE": np.array([[spec.start_time_mjd_s] * 2]),
        "RELEASE_DATE": [0.0], "SCHEDULE_TYPE": [""], "FLAG_ROW": [False]})
    _fill(path, "FEED", {
        "ANTENNA_ID": np.arange(nant, dtype=np.int32), "FEED_ID": np.zeros(nant, np.int32),
        "SPECTRAL_WINDOW_ID": np.full(nant, -1, np.int32), "TIME": np.zeros(nant),
        "INTERVAL": np.zeros(nant), "NUM_RECEPTORS": np.full(nant, 2, np.int32),
        "BEAM_ID": np.full(nant, -1, np.int32), "BEAM_OFFSET": np.zeros((nant, 2, 2)),
        "POLARIZATION_TYPE": np.array([["X", "Y"]] * nant),
        "POL_RESPONSE": np.tile(np.eye(2, dtype=np.complex64), (nant, 1, 1)),
        "POSITION": np.zeros((nant, 3)),
        "RECEPTOR_ANGLE": np.tile([0.0, np.pi / 2], (nant, 1))}, nant)
    _fill(path, "SOURCE", {
        "SOURCE_ID": [0], "TIME": [spec.start_time_mjd_s], "INTERVAL": [0.0],
        "SPECTRAL_WINDOW_ID": [-1], "NUM_LINES": [0], "NAME": [spec.phase_centre.name],
        "CALIBRATION_GROUP": [0], "CODE": [""], "DIRECTION": np.array([centre]),
        "PROPER_MOTION": np.zeros((1, 2))})
    _fill(path, "STATE", {
        "SIG": [True], "REF": [False], "CAL": [0.0], "LOAD": [0.0], "SUB_SCAN": [0],
        "OBS_MODE": ["OBSERVE_TARGET.ON_SOURCE"], "FLAG_ROW": [False]})
    _fill(path, "PROCESSOR", {
        "TYPE": ["CORRELATOR"], "SUB_TYPE": [spec.telescope or "CBF"], "TYPE_ID": [0],
        "MODE_ID": [0], "FLAG_ROW": [False]})
    messages = spec.history or (f"written by {spec.application}",)
    _fill(path, "HISTORY", {
        "TIME": [now] * len(messages), "OBSERVATION_ID": [0] * len(messages),
        "MESSAGE": list(messages), "PRIORITY": ["NORMAL"] * len(messages),
        "ORIGIN": [spec.application] * len(messages), "OBJECT_ID": [0] * len(messages),
        "APPLICATION": [spec.application] * len(messages)}, len(messages))
    with tables.table(str(path / "HISTORY"), readonly=False, ack=False) as t:
        for row in range(len(messages)):  # variable-shape string arrays: one cell each
            t.putcell("CLI_COMMAND", row, [spec.application])
            t.putcell("APP_PARAMS", row, list(spec.app_params) or [""])


def create_ms(path: str | os.PathLike[str], spec: MsSpec) -> None:
    """Create an empty MeasurementSet with every subtable filled."""
    path = Path(path)
    desc, dminfo = _main_desc(spec.nchan)
    table = tables.default_ms(str(path), desc, dminfo)
    table.close()
    source = tables.default_ms_subtable("SOURCE", str(path / "SOURCE"),
                                        tables.required_ms_desc("SOURCE"))
    source.close()
    with tables.table(str(path), readonly=False, ack=False) as main:
        main.putkeyword("SOURCE", f"Table: {path.resolve() / 'SOURCE'}")
    _fill_subtables(path, spec)


class MsTable:
    """An open MeasurementSet that rows are appended to in bulk."""

    def __init__(self, path: str | os.PathLike[str], spec: MsSpec) -> None:
        create_ms(path, spec)
        self.path = Path(path)
        self.spec = spec
        self._main = tables.table(str(self.path), readonly=False, ack=False)
        self._obs = tables.table(str(self.path / "OBSERVATION"), readonly=False, ack=False)
        self._time_range = [np.inf, -np.inf]

    def nrows(self) -> int:
        """Rows in the main table."""
        return self._main.nrows()

    def put_rows(self, startrow: int, rows: RowBlock) -> None:
        """Write ``rows`` at ``startrow`` (rows up to there must exist; new ones are added)."""
        n = len(rows)
        have = self._main.nrows()
        if startrow > have:
            raise MsWriteError(f"{self.path}: row {startrow} is past the end ({have} rows)")
        if startrow + n > have:
            self._main.addrows(startrow + n - have)
        main = self._main
        for name, value in CONSTANT_COLUMNS.items():
            main.putcol(name, np.full(n, value, np.int32), startrow, n)
        main.putcol("SCAN_NUMBER", np.full(n, self.spec.scan_number, np.int32), startrow, n)
        interval = np.full(n, self.spec.int_time) if rows.interval is None else rows.interval
        main.putcol("INTERVAL", interval, startrow, n)
        main.putcol("EXPOSURE", interval, startrow, n)
        main.putcol("TIME", rows.time, startrow, n)
        main.putcol("TIME_CENTROID", rows.time_centroid, startrow, n)
        main.putcol("ANTENNA1", rows.antenna1, startrow, n)
        main.putcol("ANTENNA2", rows.antenna2, startrow, n)
        main.putcol("UVW", rows.uvw, startrow, n)
        main.putcol("WEIGHT", rows.weight, startrow, n)
        main.putcol("SIGMA", rows.sigma, startrow, n)
        main.putcol("FLAG_ROW", rows.flag_row, startrow, n)
        main.putcol("DATA", rows.data, startrow, n)
        main.putcol("FLAG", rows.flag, startrow, n)
        main.putcol("WEIGHT_SPECTRUM", rows.weight_spectrum, startrow, n)
        half = interval / 2
        self._time_range[0] = min(self._time_range[0], float((rows.time - half).min()))
        self._time_range[1] = max(self._time_range[1], float((rows.time + half).max()))

    def flush(self) -> None:
        """Write everything so far to disk (an MS killed after this opens with these rows)."""
        if np.isfinite(self._time_range[0]):
            self._obs.putcell("TIME_RANGE", 0, np.array(self._time_range))
            self._obs.flush()
        self._main.flush()

    def close(self) -> None:
        """Flush and close (idempotent).

        If casacore cannot write (a full disk), this raises and the tables are abandoned
        instead of closed (see :func:`abandon`): destroying a casacore table whose flush
        failed throws from its destructor, which aborts the process.
        """
        if self._main is None:
            return
        main, obs = self._main, self._obs
        try:
            self.flush()
            obs.close()
            main.close()
        except BaseException:
            abandon(obs, main)
            raise
        finally:
            self._main = None


#: casacore tables that could not be closed; kept alive until the process exits
_ABANDONED: list[object] = []


def abandon(*objects: object) -> None:
    """Keep ``objects`` (casacore tables whose flush failed) alive for good.

    Their C++ destructor would try to flush once more and throw, and an exception from a
    destructor ends the process (``std::terminate``, SIGABRT). An extra reference that is
    never released keeps them from being destroyed, even while the interpreter shuts down;
    the operating system closes their files at exit. The table on disk keeps its state as of
    the last successful flush.
    """
    for obj in objects:
        _ABANDONED.append(obj)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
