"""The averaged MS images the same two-source sky: sim-ms sky -> ring A -> svc-avg ->
ring B -> svc-mswrite -> wsclean, fluxes within 1 % of the unaveraged MS's image."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from casacore import tables

from ringbuf import DadaHeader, RingLayout, RingPairWriter
from services.avg.average import WEIGHTS_DTYPE
from services.common.processes import ProcessGroup, options, tool
from tests.avg.chain import start_avg

pytestmark = [pytest.mark.timeout(600), pytest.mark.tools]
MJD_UNIX = 40587 * 86400.0
NANT, NTIME, NCHAN = 48, 16, 16
SOURCES = ((1.0, 0.0, 0.0), (0.5, 30.0, 15.0))  # Jy, l arcmin east, m arcmin north


def sky_dumps(ms: Path) -> tuple[np.ndarray, dict[str, object]]:
    """The MS's DATA as ring dumps (dump, chan, baseline, 4) and its stream keys."""
    with tables.table(str(ms), ack=False) as t:
        data, times, interval = t.getcol("DATA"), t.getcol("TIME"), t.getcol("INTERVAL")[0]
    with tables.table(f"{ms}/SPECTRAL_WINDOW", ack=False) as spw:
        freqs, width = spw.getcol("CHAN_FREQ")[0], spw.getcol("CHAN_WIDTH")[0][0]
    with tables.table(f"{ms}/FIELD", ack=False) as field:
        ra, dec = np.degrees(field.getcol("PHASE_DIR")[0, 0])
    nbl = NANT * (NANT + 1) // 2
    dumps = data.reshape(NTIME, nbl, NCHAN, 4).transpose(0, 2, 1, 3)
    keys = {"TIME0_UNIX": repr(float(times[0] - MJD_UNIX)), "INT_TIME": repr(float(interval)),
            "FREQ0_HZ": repr(float(freqs[0])), "CHAN_WIDTH_HZ": repr(float(width)),
            "PHASE_CENTRE_RA_DEG": repr(float(ra % 360)), "PHASE_CENTRE_DEC_DEG": repr(float(dec))}
    return np.ascontiguousarray(dumps, np.complex64), keys


def feed_sky(keys: tuple[str, str], dumps: np.ndarray, stream: dict[str, object]) -> None:
    nbl = dumps.shape[2]
    common = {"SCAN_ID": 1, "UTC_START": "2024-06-01-12:00:00", "ICD_EPOCH": "UNIX",
              "NANT": NANT, "NBASELINE": nbl, "BASELINE_ORDER": "upper-triangle-with-autos",
              "NCHAN": NCHAN, "START_CHANNEL": 0, "NPOL": 4, "POL_ORDER": "XX,XY,YX,YY",
              "NDIM": 2, "DUMPS_PER_BLOCK": 1, **stream}
    dh = DadaHeader({"DATA_KIND": "VIS", **common, "NBIT": 32,
                     "RESOLUTION": NCHAN * nbl * 32}, source="data header")
    wh = DadaHeader({"DATA_KIND": "VIS_WEIGHTS", **common, "NBIT": 8,
                     "RESOLUTION": NCHAN * nbl * 2}, source="weights header")
    w = np.zeros((NCHAN, nbl), WEIGHTS_DTYPE)
    w["FD"] = 255
    with RingPairWriter(*keys, timeout=60) as writer, writer.open_transfer(dh, wh) as xfer:
        for d in range(dumps.shape[0]):
            with xfer.open_segment(timeout=60) as seg:
                seg.data[:] = dumps[d].view(np.uint8).reshape(-1)
                seg.weights[:] = w.view(np.uint8).reshape(-1)


def fluxes(wsclean: str, ms: Path, name: Path, read_fits: Any) -> list[float]:
    subprocess.run([wsclean, "-quiet", "-size", "256", "256", "-scale", "1amin", "-niter",
                    "2000", "-auto-threshold", "3", "-mgain", "0.8", "-name", str(name),
                    str(ms)], check=True, capture_output=True, timeout=200)
    header, data = read_fits(Path(f"{name}-image.fits"))
    image = data.reshape(data.shape[-2:])
    out = []
    for _flux, l_off, m_off in SOURCES:
        x = int(round(header["CRPIX1"] - 1 + (l_off / 60) / header["CDELT1"]))
        y = int(round(header["CRPIX2"] - 1 + (m_off / 60) / header["CDELT2"]))
        out.append(float(image[y - 2:y + 3, x - 2:x + 3].max()))
    return out


def test_averaged_ms_images_the_same_sky(tmp_path: Path, read_fits: Any,
                                         require_tool: Any) -> None:
    wsclean = require_tool("wsclean")
    sky = tmp_path / "sky.ms"
    args = [tool("sim-ms"), sky, "--nant", NANT, "--ntime", NTIME, "--nchan", NCHAN,
            "--seed", 4]
    for flux, l_off, m_off in SOURCES:
        args += ["--source", f"{flux},{l_off},{m_off}"]
    subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=120)
    dumps, stream = sky_dumps(sky)
    nbl = dumps.shape[2]
    out = tmp_path / "out"
    out.mkdir()
    with ProcessGroup(tmp_path) as group:
        a = group.ring_pair(RingLayout(nbufs=16, bufsz=NCHAN * nbl * 32),
                            RingLayout(nbufs=16, bufsz=NCHAN * nbl * 2))
        b = group.ring_pair(RingLayout(nbufs=8, bufsz=NCHAN // 4 * nbl * 32),
                            RingLayout(nbufs=8, bufsz=NCHAN // 4 * nbl * 2))
        start_avg(group, "avg", (*a, *b), {"AVG_TIME_DUMPS": 2, "AVG_CHANNELS": 4})
        sock = group.socket_path("msw")
        msw = group.start("msw", [tool("svc-mswrite"), "--socket", sock, "--autonomous",
                                  *options({"DATA_KEY": b[0], "WEIGHTS_KEY": b[1],
                                            "MS_OUTPUT_DIR": out, "MS_ANTENNA_FILE": sky,
                                            "MS_FLUSH_INTERVAL_S": 0})], sock)
        feed_sky(a, dumps, stream)
        msw.wait_counter("ms_written_total", 1, timeout=120)
    (avg_ms,) = out.glob("*.ms")
    with tables.table(str(avg_ms), ack=False) as t:
        assert t.nrows() == NTIME // 2 * nbl and not t.getcol("FLAG").any()
    sky_copy = tmp_path / "sky-copy.ms"
    shutil.copytree(sky, sky_copy)
    want = fluxes(wsclean, sky_copy, tmp_path / "sky", read_fits)
    got = fluxes(wsclean, avg_ms, tmp_path / "avg", read_fits)
    for (flux, _, _), w, g in zip(SOURCES, want, got, strict=True):
        assert abs(w - flux) < 0.02 * flux
        assert abs(g - w) < 0.01 * w, f"averaged {g} Jy vs {w} Jy unaveraged"
