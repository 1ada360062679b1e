"""UVW from casacore.measures against the textbook formula, in CASA's convention (ANT1 - ANT2)."""

from __future__ import annotations

import calendar

import numpy as np

from services.mswrite.metadata import PhaseCentre
from services.mswrite.sim_ms import random_layout
from services.mswrite.stream import MJD_UNIX_OFFSET_S, upper_triangle
from services.mswrite.uvw import MeasuresUvw


def analytic_uvw(baseline_itrf: np.ndarray, time_mjd_s: float, ra: float, dec: float):
    """Thompson, Moran & Swenson eq. 4.1 with Greenwich hour angle H = GMST - RA.

    Ignores precession, nutation, UT1-UTC and polar motion, so it is exact to about
    1e-4 rad near the J2000 epoch, which is when the test evaluates it.
    """
    jd = time_mjd_s / 86400.0 + 2400000.5
    gmst = np.radians(280.46061837 + 360.98564736629 * (jd - 2451545.0))
    h = gmst - ra
    bx, by, bz = baseline_itrf.T
    u = np.sin(h) * bx + np.cos(h) * by
    v = -np.sin(dec) * np.cos(h) * bx + np.sin(dec) * np.sin(h) * by + np.cos(dec) * bz
    w = np.cos(dec) * np.cos(h) * bx - np.cos(dec) * np.sin(h) * by + np.sin(dec) * bz
    return np.stack([u, v, w], axis=-1)


def test_measures_uvw_matches_analytic_and_convention():
    antennas = random_layout(10, 3000.0, seed=7)
    a1, a2 = upper_triangle(10)
    centre = PhaseCentre.from_degrees(200.0, -40.0)
    uvw = MeasuresUvw(antennas, centre, a1, a2)
    times = MJD_UNIX_OFFSET_S + calendar.timegm((2000, 1, 1, 12, 0, 0)) + np.array([0.0, 3600.0])
    got = uvw.uvw(np.arange(2), times)
    baselines = antennas.positions[a1] - antennas.positions[a2]  # CASA: pos(ANT1) - pos(ANT2)
    length = np.linalg.norm(baselines, axis=1)
    assert length.max() > 2000
    for i, t in enumerate(times):
        want = analytic_uvw(baselines, t, centre.ra_rad, centre.dec_rad)
        err = np.linalg.norm(got[i] - want, axis=1)
        assert (err <= 0.02 + 3e-4 * length).all(), err.max()
        # the opposite convention (ANT2 - ANT1) is wrong by twice the baseline length
        assert (np.linalg.norm(got[i] + want, axis=1)[length > 0] > 1.9 * length[length > 0]).all()
    np.testing.assert_allclose(np.linalg.norm(got, axis=2), np.broadcast_to(length, (2, 45 + 10)),
                               rtol=1e-9, atol=1e-6)
    autos = a1 == a2
    assert (got[:, autos] == 0).all()
    assert not np.allclose(got[0], got[1])  # the sky turned in an hour
