"""The visibility flow: sim-ms -> emu-send -> svc-ingest -> ring pair -> svc-mswrite -> MS.

The output MeasurementSet is checked against the input value for value (DATA, UVW, TIME,
ANTENNA1/2, frequencies) and, when wsclean is installed, imaged: both sources must come out
with the right flux at the right place.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from casacore.tables import table

from ringbuf import RingLayout
from services.common.processes import ProcessGroup, free_udp_ports, options, run_tool, tool
from services.demo.fits import read_image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisParams:
    nant: int = 24
    nchan: int = 16
    ntime: int = 8
    int_time: float = 1.0
    channels_per_stream: int = 4
    time_interval: float = 0.1  # seconds between dumps sent (the sender's pace)
    rate: float = 0.0  # bytes/s, 0 = as the time interval allows
    scan_id: int = 7
    nbufs: int = 16
    image: bool = True
    sources: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.5, 30.0, 15.0))

    @property
    def nbaseline(self) -> int:
        return self.nant * (self.nant + 1) // 2


@dataclass
class VisReport:
    source_ms: Path
    output_ms: Path
    heaps_sent: int
    ingest: dict[str, int]
    mswrite: dict[str, int]
    max_data_error: float
    max_uvw_error_m: float
    max_time_error_s: float
    rows: int
    image: Path | None = None
    fluxes: list[tuple[float, float]] = field(default_factory=list)  # (expected, measured)

    @property
    def ok(self) -> bool:
        fluxes_ok = all(abs(got - want) < 0.05 * want for want, got in self.fluxes)
        return (self.max_data_error == 0.0 and self.max_uvw_error_m < 1e-3
                and self.max_time_error_s < 1e-3 and self.ingest.get("heaps_lost_total", 1) == 0
                and fluxes_ok)


def simulate(path: Path, params: VisParams) -> None:
    args = [tool("sim-ms"), path, "--nant", params.nant, "--nchan", params.nchan,
            "--ntime", params.ntime, "--int-time", params.int_time, "--seed", 3]
    for flux, l_arcmin, m_arcmin in params.sources:
        args += ["--source", f"{flux},{l_arcmin},{m_arcmin}"]
    run_tool(args, timeout=300)


def start_vis_chain(group: ProcessGroup, params: VisParams, model: Path, out_dir: Path,
                    suffix: str = "", extra_ingest: dict[str, object] | None = None) -> int:
    """Rings + svc-ingest + svc-mswrite (autonomous); returns the first UDP port."""
    nbl = params.nbaseline
    dk, wk = group.ring_pair(RingLayout(params.nbufs, params.nchan * nbl * 32),
                             RingLayout(params.nbufs, params.nchan * nbl * 2))
    nstreams = params.nchan // params.channels_per_stream
    port = free_udp_ports(nstreams)
    ingest = {"PROFILE": "vis", "DATA_KEY": dk, "WEIGHTS_KEY": wk, "BIND_HOST": "127.0.0.1",
              "PORT_START": port, "NSTREAMS": nstreams, "NANT": params.nant, "NCHAN": params.nchan,
              "CHANNELS_PER_STREAM": params.channels_per_stream, "INT_TIME": params.int_time,
              "STREAM_TIMEOUT_S": 5, "LOG_INTERVAL_S": 5, **(extra_ingest or {})}
    group.start(f"svc-ingest{suffix}", [tool("svc-ingest"), "--autonomous",
                "--socket", group.socket_path(f"ingest{suffix}"), *options(ingest)],
                group.socket_path(f"ingest{suffix}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    mswrite = {"DATA_KEY": dk, "WEIGHTS_KEY": wk, "MS_OUTPUT_DIR": out_dir,
               "MS_DATA_MODEL": model, "MS_NAME_TEMPLATE": "scan{SCAN_ID}.ms", "LOG_INTERVAL_S": 5}
    group.start(f"svc-mswrite{suffix}", [tool("svc-mswrite"), "--autonomous",
                "--socket", group.socket_path(f"mswrite{suffix}"), *options(mswrite)],
                group.socket_path(f"mswrite{suffix}"))
    return port


def send(model: Path, port: int, params: VisParams, timeout: float = 300) -> int:
    """emu-send the MS; the number of data heaps sent."""
    run_tool([tool("emu-send"), model, *options({
        "transmission.target_port_start": port,
        "transmission.channels_per_stream": params.channels_per_stream,
        "transmission.time_interval": params.time_interval,
        "transmission.total_rate": params.rate,
        "transmission.scan_id": params.scan_id,
    })], timeout=timeout)
    return params.ntime * params.nchan // params.channels_per_stream


def wait_for_ms(group: ProcessGroup, name: str, directory: Path, pattern: str,
                timeout: float) -> tuple[Path, dict[str, int]]:
    """Wait until svc-mswrite ``name`` has closed an MS matching ``pattern`` in ``directory``;
    (its path, the daemon's counters)."""
    deadline = time.monotonic() + timeout
    while True:
        counters = group.status(name)["counters"]
        found = sorted(directory.glob(pattern))
        if found and counters.get("ms_written_total", 0) >= 1:
            return found[0], counters
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"no {pattern} in {directory} within {timeout:g} s: {group.tail(name)}")
        time.sleep(0.2)


def _sorted_rows(path: Path) -> dict[str, np.ndarray]:
    with table(str(path), ack=False) as t:
        names = ("TIME", "ANTENNA1", "ANTENNA2", "UVW", "DATA", "FLAG")
        cols = {name: t.getcol(name) for name in names}
    with table(str(path / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcol("CHAN_FREQ")[0]
    order = np.lexsort((cols["ANTENNA2"], cols["ANTENNA1"], np.round(cols["TIME"], 3)))
    rows = {name: values[order] for name, values in cols.items()}
    rows["CHAN_FREQ"] = freqs
    return rows


def compare(source: Path, output: Path) -> tuple[float, float, float, int]:
    """(max |DATA diff|, max UVW diff m, max TIME diff s, rows) of two MSs, row by row."""
    a, b = _sorted_rows(source), _sorted_rows(output)
    if len(a["TIME"]) != len(b["TIME"]):
        raise RuntimeError(f"{output}: {len(b['TIME'])} rows, the source has {len(a['TIME'])}")
    if not all(np.array_equal(a[name], b[name]) for name in ("ANTENNA1", "ANTENNA2")):
        raise RuntimeError(f"{output}: ANTENNA1/2 differ from the source")
    if not np.allclose(a["CHAN_FREQ"], b["CHAN_FREQ"], rtol=0, atol=1e-3):
        raise RuntimeError(f"{output}: CHAN_FREQ differs from the source")
    return (float(np.max(np.abs(a["DATA"] - b["DATA"]))),
            float(np.max(np.abs(a["UVW"] - b["UVW"]))),
            float(np.max(np.abs(a["TIME"] - b["TIME"]))), len(a["TIME"]))


def image(
    ms: Path, work: Path, sources: tuple[tuple[float, float, float], ...]
) -> tuple[Path, list[tuple[float, float]]]:
    """wsclean the MS; (image, [(expected flux, measured peak) per source])."""
    name = work / "img"
    run_tool(["wsclean", "-quiet", "-size", 256, 256, "-scale", "1arcmin", "-niter", 2000,
              "-auto-threshold", 3, "-mgain", 0.8, "-name", name, ms], timeout=600)
    path = Path(f"{name}-image.fits")
    header, pixels = read_image(path)
    x0, y0 = float(header["CRPIX1"]) - 1, float(header["CRPIX2"]) - 1
    dx, dy = float(header["CDELT1"]) * 60, float(header["CDELT2"]) * 60  # arcmin per pixel
    fluxes = []
    for flux, l_arcmin, m_arcmin in sources:
        x, y = round(x0 + l_arcmin / dx), round(y0 + m_arcmin / dy)
        fluxes.append((flux, float(pixels[y - 1 : y + 2, x - 1 : x + 2].max())))
    return path, fluxes


def run_vis_flow(group: ProcessGroup, params: VisParams) -> VisReport:
    work = group.workdir / "vis"
    work.mkdir(parents=True, exist_ok=True)
    model = work / "sky.ms"
    simulate(model, params)
    port = start_vis_chain(group, params, model, work / "out")
    time.sleep(0.5)
    heaps = send(model, port, params)
    output, mswrite = wait_for_ms(group, "svc-mswrite", work / "out", f"scan{params.scan_id}.ms",
                                  timeout=120)
    ingest = group.status("svc-ingest")["counters"]
    data_err, uvw_err, time_err, rows = compare(model, output)
    report = VisReport(model, output, heaps, ingest, mswrite, data_err, uvw_err, time_err, rows)
    if params.image and shutil.which("wsclean"):
        report.image, report.fluxes = image(output, work, params.sources)
    elif params.image:
        logger.warning("wsclean is not installed: the output MS is not imaged")
    return report
