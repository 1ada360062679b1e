"""sim-ms: the CLI, and CASA's sign convention checked by a direct Fourier sum."""

from __future__ import annotations

import numpy as np
from casacore import tables
from click.testing import CliRunner

from services.mswrite.sim_ms import SITE_LAT_DEG, SITE_LON_DEG, main
from services.mswrite.sky import SPEED_OF_LIGHT, PointSource


def dft(ms_path, source: PointSource) -> float:
    """Mean over cross-correlations and channels of XX phased to ``source``'s (l, m)."""
    with tables.table(str(ms_path), ack=False) as t:
        cross = t.query("ANTENNA1 != ANTENNA2")
        uvw, data = cross.getcol("UVW"), cross.getcol("DATA")[..., 0]
        cross.close()
    with tables.table(str(ms_path / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcell("CHAN_FREQ", 0)
    n = np.sqrt(1 - source.l_rad ** 2 - source.m_rad ** 2)
    path = uvw[:, 0] * source.l_rad + uvw[:, 1] * source.m_rad + uvw[:, 2] * (n - 1)
    phase = np.exp(-2j * np.pi * path[:, None] * freqs[None, :] / SPEED_OF_LIGHT)
    return float(np.mean(data * phase).real)


def check_zenith_uvw_is_ant1_minus_ant2(ms_path) -> None:
    """With the phase centre at the zenith, (u, v, w) is about (east, north, up) of
    pos(ANTENNA1) - pos(ANTENNA2) (CASA's sign; precession since J2000 turns it ~0.3 deg)."""
    lon, lat = np.radians(SITE_LON_DEG), np.radians(SITE_LAT_DEG)
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    with tables.table(str(ms_path / "ANTENNA"), ack=False) as ant:
        pos = ant.getcol("POSITION")
    with tables.table(str(ms_path), ack=False) as t:
        times, uvw = t.getcol("TIME"), t.getcol("UVW")
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    unique = np.unique(times)
    rows = (times == unique[len(unique) // 2]) & (a1 != a2)
    uvw, a1, a2 = uvw[rows], a1[rows], a2[rows]
    base = pos[a1] - pos[a2]
    want = np.stack([base @ east, base @ north], axis=1)
    err = np.linalg.norm(uvw[:, :2] - want, axis=1)
    assert (err < 2.0 + 0.02 * np.linalg.norm(base, axis=1)).all(), err.max()


def test_sim_ms_writes_sources_with_casas_sign(tmp_path):
    out = tmp_path / "sky.ms"
    result = CliRunner().invoke(main, [str(out), "--nant", "24", "--nchan", "8", "--ntime", "6",
                                       "--source", "1,0,0", "--source", "0.5,40,-20"])
    assert result.exit_code == 0, result.output
    assert "24 antennas, 300 baselines, 8 channels, 6 dumps" in result.output
    with tables.table(str(out), ack=False) as t:
        assert t.nrows() == 300 * 6
        assert not t.getcol("FLAG").any()
    assert abs(dft(out, PointSource(1, 0, 0)) - 1.0) < 0.05
    assert abs(dft(out, PointSource(0.5, 40, -20)) - 0.5) < 0.05
    assert abs(dft(out, PointSource(0.5, -40, 20))) < 0.1  # nothing at the mirror position
    check_zenith_uvw_is_ant1_minus_ant2(out)
    with tables.table(str(out / "ANTENNA"), ack=False) as ant:
        radius = np.linalg.norm(ant.getcol("POSITION"), axis=1)
        assert (np.abs(radius - 6.374e6) < 2e4).all()  # on the Earth's surface near 27 S
    with tables.table(str(out / "HISTORY"), ack=False) as hist:
        assert hist.getcell("APPLICATION", 0) == "ringpipe sim-ms"


def test_sim_ms_drop_fraction_flags_heaps(tmp_path):
    out = tmp_path / "drop.ms"
    result = CliRunner().invoke(main, [str(out), "--nant", "8", "--nchan", "16", "--ntime", "8",
                                       "--drop-fraction", "0.5", "--ra", "60", "--dec", "-30"])
    assert result.exit_code == 0, result.output
    with tables.table(str(out), ack=False) as t:
        flag, data = t.getcol("FLAG"), t.getcol("DATA")
    assert 0.2 < flag.mean() < 0.8
    assert (data[flag] == 0).all()
    blocks = flag[..., 0].reshape(8, 36, 4, 4)  # dump, baseline, heap, channel in heap
    assert (blocks == blocks[..., :1]).all()  # whole heaps of 4 channels are flagged together


def test_sim_ms_help_and_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    for args, message in [
        (["--source", "1,2"], "expected FLUX_JY,L_ARCMIN,M_ARCMIN"),
        (["--ra", "10"], "give both --ra and --dec"),
        (["--start", "yesterday"], "expected YYYY-MM-DDTHH:MM:SS"),
        (["--nchan", "0"], "must be positive"),
        (["--ra", "400", "--dec", "0"], "out of range"),
    ]:
        result = runner.invoke(main, [str(tmp_path / "bad.ms"), *args])
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output
    (tmp_path / "there.ms").mkdir()
    result = runner.invoke(main, [str(tmp_path / "there.ms"), "--nant", "4"])
    assert result.exit_code != 0 and "output already exists" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["there.ms"]
