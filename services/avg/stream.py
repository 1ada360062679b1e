"""The visibility transfer headers svc-avg reads (svc-ingest's contract, docs/ingest.md)
and the headers of the averaged transfer it writes (docs/avg.md, "Output headers")."""

from __future__ import annotations

from dataclasses import dataclass

from ringbuf import DadaHeader
from ringbuf.errors import HeaderError
from services.avg.average import NPOL, WEIGHTS_DTYPE, AvgPlan
from services.avg.bda import encode_factors

VIS_ITEMSIZE = 8  # complex64


def _expect(header: DadaHeader, key: str, value: str) -> None:
    got = header.get_str(key).strip().upper()
    if got != value.upper():
        raise HeaderError(f"{header.source}: {key} is {got!r}, expected {value!r}")


@dataclass(frozen=True)
class InputStream:
    """What the input headers say about the visibilities (checked on construction)."""

    nchan: int
    nbaseline: int
    nant: int
    int_time: float
    time0_unix: float
    freq0_hz: float
    chan_width_hz: float
    start_channel: int
    scan_id: int

    @property
    def dump_bytes(self) -> int:
        return self.nchan * self.nbaseline * NPOL * VIS_ITEMSIZE

    @property
    def weights_dump_bytes(self) -> int:
        return self.nchan * self.nbaseline * WEIGHTS_DTYPE.itemsize

    def max_freq_hz(self) -> float:
        """Highest channel centre frequency of the stream."""
        ends = (self.start_channel, self.start_channel + self.nchan - 1)
        return max(abs(self.freq0_hz + c * self.chan_width_hz) for c in ends)

    @classmethod
    def from_headers(cls, data: DadaHeader, weights: DadaHeader) -> InputStream:
        """Read and check both headers; HeaderError naming the header and key."""
        _expect(data, "DATA_KIND", "VIS")
        _expect(weights, "DATA_KIND", "VIS_WEIGHTS")
        for header in (data, weights):
            _expect(header, "BASELINE_ORDER", "upper-triangle-with-autos")
            if header.get_int("NPOL", NPOL) != NPOL:
                raise HeaderError(f"{header.source}: NPOL must be {NPOL}")
        _expect(data, "POL_ORDER", "XX,XY,YX,YY")
        for key in ("NCHAN", "NBASELINE", "INT_TIME", "TIME0_UNIX", "SCAN_ID"):
            if data.get_str(key) != weights.get_str(key):
                raise HeaderError(f"{key} differs between {data.source} and {weights.source}")
        s = cls(nchan=data.get_int("NCHAN"), nbaseline=data.get_int("NBASELINE"),
                nant=data.get_int("NANT"), int_time=data.get_float("INT_TIME"),
                time0_unix=data.get_float("TIME0_UNIX"), freq0_hz=data.get_float("FREQ0_HZ"),
                chan_width_hz=data.get_float("CHAN_WIDTH_HZ"),
                start_channel=data.get_int("START_CHANNEL", 0),
                scan_id=data.get_int("SCAN_ID"))
        if min(s.nchan, s.nbaseline) < 1 or not s.int_time > 0:
            raise HeaderError(f"{data.source}: NCHAN, NBASELINE and INT_TIME must be > 0")
        if s.nbaseline != s.nant * (s.nant + 1) // 2:
            raise HeaderError(f"{data.source}: NBASELINE {s.nbaseline} is not "
                              f"NANT*(NANT+1)/2 for NANT {s.nant}")
        for header, size in ((data, s.dump_bytes), (weights, s.weights_dump_bytes)):
            if header.get_int("RESOLUTION") != size:
                raise HeaderError(f"{header.source}: RESOLUTION {header['RESOLUTION']} is not "
                                  f"the {size} bytes of one dump")
        return s


def output_headers(data: DadaHeader, weights: DadaHeader, stream: InputStream,
                   plan: AvgPlan, dumps_per_block: int, first_out_dump: int,
                   flagging: str) -> tuple[DadaHeader, DadaHeader]:
    """Headers of the averaged transfer: the input's keys, with the shape, time and
    frequency keys of the averaged data and the AVG_*/BDA_* keys saying what was combined."""
    n, m = plan.time_factor, plan.chan_factor
    nco = plan.nchan_out
    width = stream.chan_width_hz * m
    start_out = stream.start_channel // m
    first_centre = stream.freq0_hz + (stream.start_channel + (m - 1) / 2.0) * stream.chan_width_hz
    changes: dict[str, object] = {
        "NCHAN": nco,
        "START_CHANNEL": start_out,
        "FREQ0_HZ": repr(first_centre - start_out * width),
        "CHAN_WIDTH_HZ": repr(width),
        "INT_TIME": repr(stream.int_time * n),
        "TIME0_UNIX": repr(stream.time0_unix + (n - 1) / 2.0 * stream.int_time),
        "DUMPS_PER_BLOCK": dumps_per_block,
        "AVG_TIME_DUMPS": n,
        "AVG_CHANNELS": m,
        "AVG_WEIGHT_SCALE": n * m,
        "AVG_INPUT_INT_TIME": repr(stream.int_time),
        "AVG_INPUT_NCHAN": stream.nchan,
        "AVG_INPUT_CHAN_WIDTH_HZ": repr(stream.chan_width_hz),
        "AVG_LAST_CHAN_INPUTS": stream.nchan - (nco - 1) * m,
        "AVG_FIRST_INPUT_DUMP": first_out_dump * n,
        "AVG_FLAGGER": flagging,
        "BDA_MAX_FACTOR": plan.max_factor,
    }
    if plan.max_factor > 1:
        changes["BDA_LOG2_FACTORS"] = encode_factors(plan.bl_factors)
    out = []
    for header, res in ((data, nco * stream.nbaseline * NPOL * VIS_ITEMSIZE),
                        (weights, nco * stream.nbaseline * WEIGHTS_DTYPE.itemsize)):
        h = header.copy()
        for key in ("OBS_OFFSET", "HDR_SIZE"):
            if key in h:
                h.delete(key)
        h.update(changes)
        h.set("RESOLUTION", res)
        h.set("OBS_OFFSET", first_out_dump * res)
        out.append(h)
    return out[0], out[1]
