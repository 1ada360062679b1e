"""The visibility stream a ring pair carries, as its data and weights headers describe it.

This is the reader's side of the "visibility ring-pair contract": one transfer per scan,
data blocks of complex64 ``(dumps, NCHAN, NBASELINE, 4)``, weights blocks of
``[('TCI', 'i1'), ('FD', 'u1')]`` ``(dumps, NCHAN, NBASELINE)``, upper-triangle baseline
order with autocorrelations. :class:`VisStream` checks both headers against the contract
and each other and answers the questions the MeasurementSet writer asks (which baseline is
row *k*, what time is dump *i*, which frequencies).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ringbuf import DadaHeader
from ringbuf.errors import HeaderError

logger = logging.getLogger(__name__)

#: seconds from the MJD epoch (1858-11-17) to the Unix epoch (1970-01-01), UTC
MJD_UNIX_OFFSET_S = 40587 * 86400.0
#: one weights-ring element: time-centroid index and fraction of data
WEIGHTS_DTYPE = np.dtype([("TCI", "i1"), ("FD", "u1")])
#: one data-ring element: the four correlations XX, XY, YX, YY
VIS_DTYPE = np.dtype(np.complex64)
NPOL = 4
POL_ORDER = "XX,XY,YX,YY"
BASELINE_ORDER = "upper-triangle-with-autos"
#: FD value meaning "all of the data contributed" (weight 1.0)
FD_FULL = 255
#: TCI is the time-centroid offset from the dump centre in units of INT_TIME / TCI_SCALE
TCI_SCALE = 256

# keys both headers must carry with the same value
_SHARED_KEYS = ("SCAN_ID", "UTC_START", "TIME0_UNIX", "INT_TIME", "NANT", "NBASELINE",
                "NCHAN", "START_CHANNEL", "FREQ0_HZ", "CHAN_WIDTH_HZ")


def upper_triangle(nant: int) -> tuple[np.ndarray, np.ndarray]:
    """ANTENNA1, ANTENNA2 of the contract's baseline order (autocorrelations included).

    ``for a1 in 0..nant-1: for a2 in a1..nant-1``.
    """
    a1, a2 = np.triu_indices(nant)
    return a1.astype(np.int32), a2.astype(np.int32)


def _require_value(header: DadaHeader, key: str, expected: str) -> None:
    value = header.get_str(key)
    if value.strip().upper() != expected.upper():
        raise HeaderError(f"{header.source}: {key} is {value!r}, expected {expected!r}")


def _bda_log2(header: DadaHeader) -> tuple[int, ...]:
    """BDA_LOG2_FACTORS (one hex digit per baseline), checked against BDA_MAX_FACTOR."""
    text = header.get_str("BDA_LOG2_FACTORS", "").strip()
    if not text:
        return ()
    try:
        digits = tuple(int(c, 16) for c in text)
    except ValueError:
        raise HeaderError(f"{header.source}: BDA_LOG2_FACTORS {text[:40]!r} is not one hex "
                          "digit per baseline") from None
    kmax = header.get_int("BDA_MAX_FACTOR", 1 << max(digits))
    if (1 << max(digits)) > kmax:
        raise HeaderError(f"{header.source}: BDA_LOG2_FACTORS has a factor "
                          f"{1 << max(digits)} above BDA_MAX_FACTOR {kmax}")
    return digits


@dataclass(frozen=True)
class VisStream:
    """Static description of one visibility transfer (one scan of one ingest instance)."""

    scan_id: int
    utc_start: str
    time0_unix: float
    int_time: float
    nant: int
    nchan: int
    start_channel: int
    freq0_hz: float
    chan_width_hz: float
    dumps_per_block: int = 1
    telescope: str = ""
    source: str = ""
    phase_centre_deg: tuple[float, float] | None = None
    #: svc-avg's AVG_WEIGHT_SCALE: summed input weight of an output sample with FD 255
    weight_scale: float = 1.0
    #: svc-avg's BDA_LOG2_FACTORS: log2 of each baseline's BDA factor k (empty: no BDA)
    bda_log2: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("nant", "nchan", "dumps_per_block"):
            if getattr(self, name) < 1:
                raise HeaderError(f"{name.upper()} must be >= 1, got {getattr(self, name)}")
        if not self.int_time > 0:
            raise HeaderError(f"INT_TIME must be > 0, got {self.int_time}")
        if self.chan_width_hz == 0:
            raise HeaderError("CHAN_WIDTH_HZ must not be 0")
        if not self.weight_scale > 0:
            raise HeaderError(f"AVG_WEIGHT_SCALE must be > 0, got {self.weight_scale}")
        if self.bda_log2 and len(self.bda_log2) != self.nbaseline:
            raise HeaderError(f"BDA_LOG2_FACTORS has {len(self.bda_log2)} digits, expected "
                              f"NBASELINE {self.nbaseline}")

    # ------------------------------------------------------------------ derived sizes
    @property
    def nbaseline(self) -> int:
        """Baselines per dump, autocorrelations included."""
        return self.nant * (self.nant + 1) // 2

    @property
    def data_dump_bytes(self) -> int:
        """Bytes of one dump in the data ring (the data header's RESOLUTION)."""
        return self.nchan * self.nbaseline * NPOL * VIS_DTYPE.itemsize

    @property
    def weights_dump_bytes(self) -> int:
        """Bytes of one dump in the weights ring (the weights header's RESOLUTION)."""
        return self.nchan * self.nbaseline * WEIGHTS_DTYPE.itemsize

    @property
    def bda(self) -> bool:
        """True when some baseline is averaged over more than one dump (BDA)."""
        return any(self.bda_log2)

    def bda_factors(self) -> np.ndarray:
        """BDA factor k of each baseline in stream order (all 1 without BDA)."""
        if not self.bda_log2:
            return np.ones(self.nbaseline, np.int64)
        return np.left_shift(1, np.array(self.bda_log2, np.int64))

    def baseline_weight_scale(self) -> np.ndarray:
        """Summed weight of an FD-255 sample of each baseline: AVG_WEIGHT_SCALE x k."""
        return self.weight_scale * self.bda_factors().astype(np.float64)

    # ------------------------------------------------------------------ coordinates
    def baselines(self) -> tuple[np.ndarray, np.ndarray]:
        """ANTENNA1 and ANTENNA2 of the rows of one dump, in stream order."""
        return upper_triangle(self.nant)

    def chan_freqs(self) -> np.ndarray:
        """Centre frequency (Hz) of each channel of this stream."""
        ids = self.start_channel + np.arange(self.nchan, dtype=np.float64)
        return self.freq0_hz + ids * self.chan_width_hz

    def dump_times_mjd(self, dumps: np.ndarray) -> np.ndarray:
        """MS TIME (MJD seconds UTC, centre of the dump) of each dump index."""
        return MJD_UNIX_OFFSET_S + self.time0_unix + np.asarray(dumps, np.float64) * self.int_time

    def first_dump(self, obs_offset: int) -> int:
        """Dump index of a data block that starts ``obs_offset`` bytes into the transfer."""
        dump, rest = divmod(obs_offset, self.data_dump_bytes)
        if rest:
            raise HeaderError(f"OBS_OFFSET {obs_offset} is not a whole number of dumps "
                              f"of {self.data_dump_bytes} bytes")
        return dump

    # ------------------------------------------------------------------ headers
    @classmethod
    def from_headers(cls, data_header: DadaHeader, weights_header: DadaHeader) -> VisStream:
        """Check a data/weights header pair against the contract and describe the stream.

        Raises :class:`HeaderError` naming the header and key on any missing, malformed
        or inconsistent value.
        """
        _require_value(data_header, "DATA_KIND", "VIS")
        _require_value(weights_header, "DATA_KIND", "VIS_WEIGHTS")
        for key in _SHARED_KEYS:
            if data_header.get_str(key) != weights_header.get_str(key):
                raise HeaderError(f"{key} differs between {data_header.source} "
                                  f"({data_header[key]!r}) and {weights_header.source} "
                                  f"({weights_header[key]!r})")
        if data_header.get("DUMPS_PER_BLOCK") != weights_header.get("DUMPS_PER_BLOCK"):
            raise HeaderError(f"DUMPS_PER_BLOCK differs between {data_header.source} and "
                              f"{weights_header.source}")
        h = data_header
        for header in (data_header, weights_header):
            _require_value(header, "BASELINE_ORDER", BASELINE_ORDER)
            if header.get_int("NPOL", NPOL) != NPOL:
                raise HeaderError(f"{header.source}: NPOL must be {NPOL}, got {header['NPOL']}")
        _require_value(h, "POL_ORDER", POL_ORDER)
        if h.get_int("NBIT", 32) != 32:
            raise HeaderError(f"{h.source}: NBIT must be 32 for VIS, got {h['NBIT']}")
        if weights_header.get_int("NBIT", 8) != 8:
            raise HeaderError(f"{weights_header.source}: NBIT must be 8 for VIS_WEIGHTS, "
                              f"got {weights_header['NBIT']}")
        ra = h.get_float("PHASE_CENTRE_RA_DEG", float("nan"))
        dec = h.get_float("PHASE_CENTRE_DEC_DEG", float("nan"))
        bda_log2 = _bda_log2(h)
        stream = cls(
            scan_id=h.get_int("SCAN_ID"),
            utc_start=h.get_str("UTC_START"),
            time0_unix=h.get_float("TIME0_UNIX"),
            int_time=h.get_float("INT_TIME"),
            nant=h.get_int("NANT"),
            nchan=h.get_int("NCHAN"),
            start_channel=h.get_int("START_CHANNEL"),
            freq0_hz=h.get_float("FREQ0_HZ"),
            chan_width_hz=h.get_float("CHAN_WIDTH_HZ"),
            dumps_per_block=h.get_int("DUMPS_PER_BLOCK", 1),
            telescope=h.get_str("TELESCOPE", ""),
            source=h.get_str("SOURCE", ""),
            phase_centre_deg=None if np.isnan(ra) or np.isnan(dec) else (ra, dec),
            weight_scale=h.get_float("AVG_WEIGHT_SCALE", 1.0),
            bda_log2=bda_log2,
        )
        if h.get_int("NBASELINE") != stream.nbaseline:
            raise HeaderError(f"{h.source}: NBASELINE {h['NBASELINE']} is not "
                              f"NANT*(NANT+1)/2 = {stream.nbaseline}")
        for header, expected in ((data_header, stream.data_dump_bytes),
                                 (weights_header, stream.weights_dump_bytes)):
            if header.get_int("RESOLUTION") != expected:
                raise HeaderError(f"{header.source}: RESOLUTION {header['RESOLUTION']} is not "
                                  f"the {expected} bytes of one dump")
        return stream

    def headers(self, extra: Mapping[str, object] | None = None) -> tuple[DadaHeader, DadaHeader]:
        """The data and weights headers of this stream (as svc-ingest writes them)."""
        common: dict[str, object] = {
            "HDR_SIZE": 4096,
            "SCAN_ID": self.scan_id,
            "UTC_START": self.utc_start,
            "TIME0_UNIX": repr(float(self.time0_unix)),
            "INT_TIME": repr(float(self.int_time)),
            "ICD_EPOCH": "UNIX",
            "NANT": self.nant,
            "NBASELINE": self.nbaseline,
            "BASELINE_ORDER": BASELINE_ORDER,
            "NCHAN": self.nchan,
            "START_CHANNEL": self.start_channel,
            "FREQ0_HZ": repr(float(self.freq0_hz)),
            "CHAN_WIDTH_HZ": repr(float(self.chan_width_hz)),
            "NPOL": NPOL,
            "POL_ORDER": POL_ORDER,
            "NDIM": 2,
            "DUMPS_PER_BLOCK": self.dumps_per_block,
        }
        if self.telescope:
            common["TELESCOPE"] = self.telescope
        if self.source:
            common["SOURCE"] = self.source
        if self.phase_centre_deg is not None:
            common["PHASE_CENTRE_RA_DEG"] = repr(float(self.phase_centre_deg[0]))
            common["PHASE_CENTRE_DEC_DEG"] = repr(float(self.phase_centre_deg[1]))
        if self.weight_scale != 1.0:
            common["AVG_WEIGHT_SCALE"] = repr(float(self.weight_scale))
        if self.bda_log2:
            common["BDA_MAX_FACTOR"] = 1 << max(self.bda_log2)
            common["BDA_LOG2_FACTORS"] = "".join(f"{v:x}" for v in self.bda_log2)
        common.update(extra or {})
        data = DadaHeader({"DATA_KIND": "VIS", **common, "NBIT": 32,
                           "RESOLUTION": self.data_dump_bytes, "OBS_OFFSET": 0},
                          source="data header")
        weights = DadaHeader({"DATA_KIND": "VIS_WEIGHTS", **common, "NBIT": 8,
                              "RESOLUTION": self.weights_dump_bytes, "OBS_OFFSET": 0},
                             source="weights header")
        return data, weights
