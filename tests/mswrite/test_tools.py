"""Real tools read what the writer writes: showtableinfo, taql, wsclean, aoflagger."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from casacore import tables
from click.testing import CliRunner

from services.mswrite.sim_ms import main as sim_ms

pytestmark = pytest.mark.tools
NANT, NTIME = 48, 10
NROW = NANT * (NANT + 1) // 2 * NTIME
SOURCES = ((1.0, 0.0, 0.0), (0.5, 30.0, 15.0))  # Jy, l arcmin east, m arcmin north


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """Two-source MSs from sim-ms: complete, and with a quarter of the heaps lost."""
    base = tmp_path_factory.mktemp("sky")
    paths = {}
    for name, extra in (("full", []), ("dropped", ["--drop-fraction", "0.25"])):
        paths[name] = base / f"{name}.ms"
        args = [str(paths[name]), "--nant", str(NANT), "--ntime", str(NTIME), "--seed", "4"]
        for flux, l_off, m_off in SOURCES:
            args += ["--source", f"{flux},{l_off},{m_off}"]
        result = CliRunner().invoke(sim_ms, args + extra)
        assert result.exit_code == 0, result.output
    return paths


def run(args, cwd=None, timeout=60) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


def test_showtableinfo(sky, require_tool):
    out = run([require_tool("showtableinfo"), f"in={sky['full']}"])
    assert "Measurement Set" in out and f"{NROW} rows" in out
    assert "TiledColumnStMan" in out and "measure=uvw,J2000" in out
    for sub in ("ANTENNA", "FIELD", "SPECTRAL_WINDOW", "POLARIZATION", "SOURCE", "HISTORY"):
        assert f"{sky['full']}/{sub}" in out


def taql_values(taql: str, query: str) -> list[str]:
    """The values of the last output line (the first row of the result)."""
    return run([taql, "-noph", query]).strip().splitlines()[-1].split()


def test_taql(sky, require_tool):
    taql = require_tool("taql")
    nrow, nflag, amax = taql_values(taql, "select gcount() as nrow, gntrue(FLAG) as nflag, "
                                    f"gmax(abs(DATA)) as amax from {sky['full']}")
    assert int(nrow) == NROW and int(nflag) == 0 and abs(float(amax) - 1.5) < 1e-5
    wmin, nflag, amax_flagged = taql_values(
        taql, "select gmin(WEIGHT_SPECTRUM), gntrue(FLAG), "
        f"gsum(sum(iif(FLAG, abs(DATA), 0.))) from {sky['dropped']}")
    assert float(wmin) == 0 and int(nflag) > 0 and float(amax_flagged) == 0
    corr = taql_values(taql, f"select CORR_TYPE from {sky['full']}/POLARIZATION")
    assert corr == ["[9,", "10,", "11,", "12]"]


def peaks(image: np.ndarray, header: dict) -> list[tuple[float, float, float]]:
    """(flux, l arcmin, m arcmin) at the pixel each source should be at, and the brightest
    pixel's offset, in the FITS image's own coordinates."""
    found = []
    for _flux, l_off, m_off in SOURCES:
        x = header["CRPIX1"] - 1 + (l_off / 60) / header["CDELT1"]
        y = header["CRPIX2"] - 1 + (m_off / 60) / header["CDELT2"]
        xi, yi = int(round(x)), int(round(y))
        window = image[yi - 3:yi + 4, xi - 3:xi + 4]
        dy, dx = np.unravel_index(np.argmax(window), window.shape)
        found.append((float(window.max()), dx - 3, dy - 3))
    return found


@pytest.mark.parametrize("which", ["full", "dropped"])
def test_wsclean_images_both_sources(sky, which, tmp_path, read_fits, require_tool):
    wsclean = require_tool("wsclean")
    ms = tmp_path / f"{which}.ms"
    shutil.copytree(sky[which], ms)  # wsclean adds MODEL_DATA; keep the fixture pristine
    run([wsclean, "-quiet", "-size", "256", "256", "-scale", "1amin", "-niter", "2000",
         "-auto-threshold", "3", "-mgain", "0.8", "-name", str(tmp_path / which), str(ms)],
        timeout=100)
    header, data = read_fits(tmp_path / f"{which}-image.fits")
    assert header["CTYPE1"].startswith("RA---SIN") and header["CDELT1"] < 0
    image = data.reshape(data.shape[-2:])
    for (flux, _, _), (got, dx, dy) in zip(SOURCES, peaks(image, header), strict=False):
        assert (dx, dy) == (0, 0), f"{which}: source off by ({dx}, {dy}) pixels"
        assert abs(got - flux) < 0.02 * flux, f"{which}: flux {got} instead of {flux}"
    brightest = np.unravel_index(np.argmax(image), image.shape)
    assert brightest == (header["CRPIX2"] - 1, header["CRPIX1"] - 1)
    # the sky is asymmetric: a point-mirrored image (the other UVW or phase sign) would have
    # the 0.5 Jy source at (-l, -m), where there must be nothing
    flux, l_off, m_off = SOURCES[1]
    x = int(round(header["CRPIX1"] - 1 - (l_off / 60) / header["CDELT1"]))
    y = int(round(header["CRPIX2"] - 1 - (m_off / 60) / header["CDELT2"]))
    assert abs(image[y, x]) < 0.05 * flux, f"{which}: {image[y, x]} Jy at the mirror position"


def test_aoflagger_runs_on_a_copy(sky, tmp_path, require_tool):
    aoflagger = require_tool("aoflagger")
    ms = tmp_path / "flag.ms"
    shutil.copytree(sky["full"], ms)
    out = run([aoflagger, str(ms)], timeout=100)
    assert "SKA-Low" in out or "strategy" in out.lower()
    with tables.table(str(ms), ack=False) as t:
        assert t.nrows() == NROW and t.getcol("FLAG").shape == (NROW, 16, 4)
    with tables.table(str(sky["full"]), ack=False) as t:
        assert not t.getcol("FLAG").any()  # the original is untouched
