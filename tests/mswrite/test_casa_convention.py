"""CASA's UVW and phase convention, checked against implementations not written here.

* UVW of the antenna-file path against casacore.measures' own baseline -> UVW conversion
  (``as_baseline`` + ``to_uvw`` of pos(ANTENNA1) - pos(ANTENNA2)), sign included.
* A point source predicted here with numpy from casacore's UVW and CASA's sign, written by
  VisWriter, imaged by wsclean at its true RA/Dec (a mirror would fail).
* A sim-ms sky rewritten through VisWriter (antenna-file and data-model modes): same UVW
  and DATA, imaged by wsclean at the true RA/Dec of each source.
* CASA itself (casatools/casatasks, when installed): ``fixvis`` recomputes the same UVW and
  ``ft`` predicts the same DATA as sim-ms.
* pyuvdata (when installed) reads the MS without its "UVW orientation" warning.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.sim_ms import Simulation, random_layout
from services.mswrite.sky import PointSource
from services.mswrite.stream import FD_FULL, WEIGHTS_DTYPE, VisStream
from services.mswrite.writer import VisWriter

C = 299792458.0
RA0, DEC0 = 60.0, -30.0  # phase centre, degrees J2000


def casacore_uvw(positions: np.ndarray, a1: np.ndarray, a2: np.ndarray, time_mjd_s: float,
                 ra_deg: float, dec_deg: float) -> np.ndarray:
    """UVW (m) of rows (a1, a2) by casacore.measures alone: the ITRF vector
    pos(a1) - pos(a2) made a baseline (``as_baseline``) and converted by ``to_uvw``, one
    row at a time, the frame at antenna 0 (the project uses the array centre)."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    me = measures()
    me.do_frame(me.position("ITRF", *(quantity(float(c), "m") for c in positions[0])))
    me.do_frame(me.direction("J2000", quantity(ra_deg, "deg"), quantity(dec_deg, "deg")))
    me.do_frame(me.epoch("UTC", quantity(float(time_mjd_s), "s")))
    out = np.empty((len(a1), 3))
    for k, (i, j) in enumerate(zip(a1, a2, strict=True)):
        diff = positions[i] - positions[j]
        base = me.as_baseline(me.position("ITRF", *(quantity(float(c), "m") for c in diff)))
        out[k] = me.to_uvw(base)["xyz"].get_value("m")
    return out


def lm_of(ra_deg: float, dec_deg: float, ra0_deg: float, dec0_deg: float) -> tuple[float, float]:
    """Direction cosines (l east, m north) of (ra, dec) about (ra0, dec0)."""
    ra, dec, ra0, dec0 = np.radians([ra_deg, dec_deg, ra0_deg, dec0_deg])
    lcos = np.cos(dec) * np.sin(ra - ra0)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
    return float(lcos), float(m)


def radec_of(l_rad: float, m_rad: float) -> tuple[float, float]:
    """(RA, Dec) degrees of direction cosines (l, m) about (RA0, DEC0)."""
    dec0 = np.radians(DEC0)
    n = np.sqrt(1 - l_rad ** 2 - m_rad ** 2)
    dec = np.arcsin(m_rad * np.cos(dec0) + n * np.sin(dec0))
    ra = np.radians(RA0) + np.arctan2(l_rad, n * np.cos(dec0) - m_rad * np.sin(dec0))
    return float(np.degrees(ra)), float(np.degrees(dec))


def pixel_of(header: dict, ra_deg: float, dec_deg: float) -> tuple[int, int]:
    """0-based (x, y) pixel of (ra, dec) in a SIN-projected FITS image (its own CRVAL)."""
    assert header["CTYPE1"].startswith("RA---SIN") and header["CTYPE2"].startswith("DEC--SIN")
    l_rad, m_rad = lm_of(ra_deg, dec_deg, header["CRVAL1"], header["CRVAL2"])
    x = header["CRPIX1"] - 1 + np.degrees(l_rad) / header["CDELT1"]
    y = header["CRPIX2"] - 1 + np.degrees(m_rad) / header["CDELT2"]
    return int(round(x)), int(round(y))


def wsclean_image(ms: Path, work: Path, read_fits, wsclean: str) -> tuple[dict, np.ndarray]:
    """Clean image of ``ms`` (a copy: wsclean adds MODEL_DATA): (header, 2-d image)."""
    copy = work / f"img_{ms.name}"
    shutil.copytree(ms, copy)
    proc = subprocess.run([wsclean, "-quiet", "-size", "200", "200", "-scale", "1amin",
                           "-niter", "2000", "-auto-threshold", "3", "-mgain", "0.8",
                           "-name", str(work / ms.stem), str(copy)],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-2000:]
    header, data = read_fits(work / f"{ms.stem}-image.fits")
    return header, data.reshape(data.shape[-2:])


def assert_sources_at(image: np.ndarray, header: dict,
                      sources: list[tuple[float, float, float]]) -> None:
    """Each (flux, ra, dec) is the local peak at its true pixel with its flux; its mirror
    position through the phase centre holds nothing."""
    for flux, ra, dec in sources:
        x, y = pixel_of(header, ra, dec)
        window = image[y - 2:y + 3, x - 2:x + 3]
        dy, dx = np.unravel_index(np.argmax(window), window.shape)
        assert (dx - 2, dy - 2) == (0, 0), f"source at ({ra}, {dec}) off by ({dx - 2}, {dy - 2})"
        assert abs(image[y, x] - flux) < 0.03 * flux, f"flux {image[y, x]} instead of {flux}"
        mx = int(round(2 * (header["CRPIX1"] - 1))) - x
        my = int(round(2 * (header["CRPIX2"] - 1))) - y
        if (mx, my) == (x, y):
            continue  # at the phase centre: its own mirror
        assert abs(image[my, mx]) < 0.05 * flux, f"mirror of ({ra}, {dec}) holds {image[my, mx]}"


def make_stream(nant: int, ntime: int, int_time: float, nchan: int = 8) -> VisStream:
    return VisStream(scan_id=7, utc_start="2024-06-01-12:00:00", time0_unix=1717243200.5,
                     int_time=int_time, nant=nant, nchan=nchan, start_channel=0,
                     freq0_hz=150e6, chan_width_hz=200e3, dumps_per_block=1,
                     telescope="SKA-Low", phase_centre_deg=(RA0, DEC0))


def full_weights(shape: tuple[int, ...]) -> np.ndarray:
    weights = np.zeros(shape, WEIGHTS_DTYPE)
    weights["FD"] = FD_FULL
    return weights


def write_antenna_file(antennas: Antennas, path: Path) -> Path:
    antennas.save(path)
    return path


def test_antenna_file_uvw_equals_casacore_measures(tmp_path):
    """VisWriter in antenna-file mode: UVW = casacore's conversion of pos(ANT1) - pos(ANT2)
    to < 1 mm for every baseline at four times over 6 hours; the other sign is far off."""
    layout = random_layout(6, 4000.0, seed=11)
    antennas = Antennas.load(write_antenna_file(layout, tmp_path / "stations.txt"), "SKA-Low")
    stream = make_stream(6, 4, int_time=7200.0)
    data_header, weights_header = stream.headers()
    shape = (4, stream.nchan, stream.nbaseline)
    with VisWriter.open(tmp_path / "ant.ms", data_header, weights_header, antennas=antennas,
                        phase_centre=PhaseCentre.from_degrees(RA0, DEC0)) as writer:
        writer.write_dumps(np.ones(shape + (4,), np.complex64), full_weights(shape), 0)
    with tables.table(str(tmp_path / "ant.ms"), ack=False) as t:
        uvw, time = t.getcol("UVW"), t.getcol("TIME")
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    cross = a1 != a2
    assert cross.sum() == 4 * 15 and len(np.unique(time)) == 4
    for when in np.unique(time):
        rows = cross & (time == when)
        want = casacore_uvw(antennas.positions, a1[rows], a2[rows], when, RA0, DEC0)
        err = np.linalg.norm(uvw[rows] - want, axis=1)
        assert err.max() < 1e-3, f"UVW differs from casacore.measures by {err.max()} m"
        length = np.linalg.norm(want, axis=1)
        assert length.min() > 40
        assert (np.linalg.norm(uvw[rows] + want, axis=1) > 1.99 * length).all()
    assert (uvw[~cross] == 0).all()



def test_casacore_mscal_uvwj2000_has_the_other_sign(sim):
    """Documented in docs/mswrite.md: casacore's TaQL UDF mscal.uvwj2000() computes
    uvw(ANTENNA2) - uvw(ANTENNA1), the negative of CASA's (and of what is written)."""
    path, _, _ = sim
    try:
        t = tables.taql(f"select UVW, mscal.uvwj2000() as J2000 from '{path}' "
                        "where ANTENNA1 != ANTENNA2")
    except RuntimeError as exc:
        pytest.skip(f"casacore's derivedmscal UDFs are not available: {exc}")
    uvw, other = t.getcol("UVW"), t.getcol("J2000")
    t.close()
    np.testing.assert_allclose(other, -uvw, rtol=0, atol=1e-3)

@pytest.mark.tools
def test_own_prediction_images_at_the_true_position(tmp_path, read_fits, require_tool):
    """Visibilities computed here (numpy, casacore UVW, CASA's sign), written by VisWriter
    and imaged by wsclean: each source at its true RA/Dec, nothing at the mirror."""
    wsclean = require_tool("wsclean")
    antennas = random_layout(32, 2000.0, seed=21)
    stream = make_stream(32, 8, int_time=60.0)
    a1, a2 = stream.baselines()
    freqs = stream.chan_freqs()
    times = stream.dump_times_mjd(np.arange(8))
    sky = [(1.0, *radec_of(np.radians(-35 / 60), np.radians(22 / 60))),
           (0.6, *radec_of(np.radians(18 / 60), np.radians(31 / 60)))]
    vis = np.zeros((8, len(freqs), stream.nbaseline, 4), np.complex64)
    for d, when in enumerate(times):
        uvw = casacore_uvw(antennas.positions, a1, a2, when, RA0, DEC0)
        for flux, ra, dec in sky:
            l_rad, m_rad = lm_of(ra, dec, RA0, DEC0)
            n = np.sqrt(1 - l_rad ** 2 - m_rad ** 2)
            path = uvw @ np.array([l_rad, m_rad, n - 1])
            term = flux * np.exp(2j * np.pi * path[None, :] * freqs[:, None] / C)
            vis[d, :, :, 0] += term
            vis[d, :, :, 3] += term
    data_header, weights_header = stream.headers()
    with VisWriter.open(tmp_path / "own.ms", data_header, weights_header, antennas=antennas,
                        phase_centre=PhaseCentre.from_degrees(RA0, DEC0)) as writer:
        writer.write_dumps(vis, full_weights(vis.shape[:3]), 0)
    header, image = wsclean_image(tmp_path / "own.ms", tmp_path, read_fits, wsclean)
    assert abs(header["CRVAL1"] - RA0) < 1e-6 and abs(header["CRVAL2"] - DEC0) < 1e-6
    assert header["CDELT1"] < 0  # RA grows to the left (east)
    assert_sources_at(image, header, sky)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A sim-ms two-source sky (asymmetric): (MS path, Simulation, [(flux, ra, dec)])."""
    sources = [PointSource(1.0, 0.0, 0.0), PointSource(0.5, 30.0, 15.0),
               PointSource(0.3, -20.0, 40.0)]
    simulation = Simulation(antennas=random_layout(32, 2000.0, seed=4), nchan=8, ntime=8,
                            int_time=60.0, phase_centre=PhaseCentre.from_degrees(RA0, DEC0),
                            sources=sources)
    path = tmp_path_factory.mktemp("sim") / "sim.ms"
    simulation.write(path)
    truth = [(s.flux_jy, *radec_of(s.l_rad, s.m_rad)) for s in sources]
    return path, simulation, truth


def rewrite(sim_path: Path, simulation: Simulation, out: Path, **metadata) -> Path:
    """The sim-ms MS's DATA fed to VisWriter as ring-shaped dumps, with ``metadata``."""
    stream = simulation.stream()
    with tables.table(str(sim_path), ack=False) as t:
        data = t.getcol("DATA")
    vis = data.reshape(simulation.ntime, stream.nbaseline, stream.nchan, 4).transpose(0, 2, 1, 3)
    data_header, weights_header = stream.headers()
    with VisWriter.open(out, data_header, weights_header, **metadata) as writer:
        writer.write_dumps(np.ascontiguousarray(vis), full_weights(vis.shape[:3]), 0)
    return out


def test_sim_ms_through_the_writer_keeps_uvw_and_data(sim, tmp_path):
    """Antenna-file and data-model modes write the sim-ms MS's UVW (< 1 mm) and DATA."""
    path, simulation, _ = sim
    antenna_file = write_antenna_file(simulation.antennas, tmp_path / "stations.txt")
    outs = [rewrite(path, simulation, tmp_path / "antfile.ms",
                    antennas=Antennas.load(antenna_file, "SKA-Low"),
                    phase_centre=PhaseCentre.from_degrees(RA0, DEC0)),
            rewrite(path, simulation, tmp_path / "msantennas.ms", antennas=Antennas.load(path)),
            rewrite(path, simulation, tmp_path / "model.ms", data_model=path)]
    with tables.table(str(path), ack=False) as t:
        want = {c: t.getcol(c) for c in ("UVW", "DATA", "ANTENNA1", "ANTENNA2", "TIME")}
    for out in outs:
        with tables.table(str(out), ack=False) as t:
            np.testing.assert_allclose(t.getcol("UVW"), want["UVW"], rtol=0, atol=1e-3)
            np.testing.assert_array_equal(t.getcol("DATA"), want["DATA"])
            for col in ("ANTENNA1", "ANTENNA2", "TIME"):
                np.testing.assert_array_equal(t.getcol(col), want[col])
    a1, a2, when = want["ANTENNA1"], want["ANTENNA2"], want["TIME"]
    rows = (when == when[0]) & (a1 != a2)
    expected = casacore_uvw(simulation.antennas.positions, a1[rows], a2[rows], when[0], RA0, DEC0)
    np.testing.assert_allclose(want["UVW"][rows], expected, rtol=0, atol=1e-3)


@pytest.mark.tools
@pytest.mark.parametrize("how", ["sim-ms", "antenna file"])
def test_sim_ms_sky_images_at_the_true_positions(sim, how, tmp_path, read_fits, require_tool):
    """wsclean finds each sim-ms source at its true RA/Dec pixel and flux: from the sim-ms
    MS, and from the MS VisWriter writes in antenna-file mode from its data."""
    wsclean = require_tool("wsclean")
    path, simulation, truth = sim
    if how == "antenna file":
        path = rewrite(path, simulation, tmp_path / "antfile.ms",
                       antennas=simulation.antennas, phase_centre=PhaseCentre.from_degrees(
                           RA0, DEC0))
    header, image = wsclean_image(path, tmp_path, read_fits, wsclean)
    assert_sources_at(image, header, truth)


CASA_SCRIPT = r"""
import json, sys
import numpy as np
import casatasks, casatools

ms, complist, ra, dec = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
tb, cl = casatools.table(), casatools.componentlist()
tb.open(ms)
written = tb.getcol("UVW").T.copy()
data = tb.getcol("DATA")[0].T.copy()
tb.close()
casatasks.fixvis(vis=ms, outputvis=ms, reuse=False)
cl.addcomponent(dir=f"J2000 {ra}deg {dec}deg", flux=1.0, fluxunit="Jy", freq="150MHz",
                shape="point")
cl.rename(complist)
cl.close()
casatasks.ft(vis=ms, complist=complist, usescratch=True)
tb.open(ms)
fixed = tb.getcol("UVW").T
model = tb.getcol("MODEL_DATA")[0].T
tb.close()
print("RESULT", json.dumps({
    "uvw_diff": float(np.abs(fixed - written).max()),
    "uvw_sum": float(np.abs(fixed + written).max()),
    "data_diff": float(np.abs(model - data).max()),
    "data_conj_diff": float(np.abs(model - np.conj(data)).max())}))
"""


@pytest.mark.tools
def test_casa_fixvis_and_ft_agree_with_sim_ms(tmp_path):
    """CASA itself: fixvis recomputes the UVW sim-ms wrote, ft predicts the DATA it wrote."""
    if importlib.util.find_spec("casatools") is None or importlib.util.find_spec(
            "casatasks") is None:
        pytest.skip("casatools/casatasks are not installed (pip install casatools casatasks)")
    import casacore

    data_dir = Path(casacore.__file__).parent / "data"
    if not (data_dir / "geodetic" / "IERSeop2000").exists():
        pytest.skip(f"no casacore measures data in {data_dir} to give CASA")
    home = tmp_path / "home"
    (home / ".casa").mkdir(parents=True)
    (home / ".casa" / "config.py").write_text(
        f"measurespath = {str(data_dir)!r}\nmeasures_auto_update = False\n"
        "data_auto_update = False\nnologfile = True\n")
    ra, dec = radec_of(np.radians(40 / 60), np.radians(-25 / 60))
    l_arcmin, m_arcmin = (np.degrees(v) * 60 for v in lm_of(ra, dec, RA0, DEC0))
    simulation = Simulation(antennas=random_layout(8, 3000.0, seed=9), nchan=4, ntime=3,
                            int_time=600.0, phase_centre=PhaseCentre.from_degrees(RA0, DEC0),
                            sources=[PointSource(1.0, l_arcmin, m_arcmin)])
    ms = simulation.write(tmp_path / "casa.ms")
    env = dict(os.environ, HOME=str(home))
    proc = subprocess.run([sys.executable, "-c", CASA_SCRIPT, str(ms), str(tmp_path / "pt.cl"),
                           repr(ra), repr(dec)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=110)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["uvw_diff"] < 1e-3, result  # CASA's UVW, sign included
    assert result["uvw_sum"] > 100, result
    assert result["data_diff"] < 1e-4, result  # CASA's phase sign
    assert result["data_conj_diff"] > 0.5, result


def test_pyuvdata_reads_without_uvw_warning(sim, monkeypatch):
    """pyuvdata's MS reader compares UVW with the antenna positions: no warning."""
    pyuvdata = pytest.importorskip("pyuvdata")
    from astropy.coordinates import EarthLocation

    # astropy downloads its list of observatory sites; offline, use none (SKA-Low is not in it)
    monkeypatch.setattr(EarthLocation, "get_site_names", classmethod(lambda cls: []))
    path, simulation, _ = sim
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uv = pyuvdata.UVData.from_file(str(path), file_type="ms")
        uv.check()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "uvw" in m.lower()], messages
    assert uv.Nants_data == 32 and uv.Ntimes == 8
