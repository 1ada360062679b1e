"""Point-source sky model and visibility prediction in CASA's convention.

For a source of flux S at direction cosines (l, m) from the phase centre (l towards east,
m towards north, n = sqrt(1 - l^2 - m^2)) and the row's UVW as CASA defines it,
``UVW = pos(ANTENNA1) - pos(ANTENNA2)`` rotated to (u, v, w) (:mod:`services.mswrite.uvw`)::

    V(u, v, w, nu) = sum S exp(+2 pi i (u l + v m + w (n - 1)) nu / c)

which is what CASA's ``ft`` predicts for a component list (checked to 4e-8 Jy). Written
with the baseline b = pos(ANTENNA2) - pos(ANTENNA1) it is the measurement equation's
``V = sum S exp(-2 pi i b.s / lambda)``, V_12 = <E_1 E_2^*>. CASA, wsclean and pyuvdata
put such a source at (l, m); the opposite sign (or the opposite UVW) puts it at (-l, -m).
Sources are unpolarised: XX = YY = V, XY = YX = 0 (Stokes I = (XX + YY) / 2 = S).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.mswrite.errors import MsWriteError
from services.mswrite.stream import NPOL

SPEED_OF_LIGHT = 299792458.0
ARCMIN = np.pi / (180 * 60)


@dataclass(frozen=True)
class PointSource:
    """An unpolarised point source: flux (Jy) and offset (arcmin of l east, m north)."""

    flux_jy: float
    l_arcmin: float
    m_arcmin: float

    @classmethod
    def parse(cls, text: str) -> PointSource:
        """Parse ``FLUX,L_ARCMIN,M_ARCMIN`` (for example ``0.5,30,15``)."""
        parts = text.split(",")
        try:
            flux, l_off, m_off = (float(p) for p in parts)
        except ValueError:
            raise MsWriteError(f"source {text!r}: expected FLUX_JY,L_ARCMIN,M_ARCMIN") from None
        source = cls(flux, l_off, m_off)
        if source.l_rad ** 2 + source.m_rad ** 2 >= 1:
            raise MsWriteError(f"source {text!r}: offset is beyond the horizon (l^2 + m^2 >= 1)")
        return source

    @property
    def l_rad(self) -> float:
        """Direction cosine l."""
        return self.l_arcmin * ARCMIN

    @property
    def m_rad(self) -> float:
        """Direction cosine m."""
        return self.m_arcmin * ARCMIN


def predict(uvw: np.ndarray, freqs: np.ndarray, sources: list[PointSource]) -> np.ndarray:
    """Visibilities of point sources, complex64 ``(ntime, nchan, nbaseline, 4)``.

    ``uvw`` is ``(ntime, nbaseline, 3)`` in metres, ``freqs`` the channel centres in Hz.
    """
    ntime, nbl, _ = uvw.shape
    vis = np.zeros((ntime, len(freqs), nbl, NPOL), np.complex64)
    scale = 2j * np.pi * np.asarray(freqs, np.float64) / SPEED_OF_LIGHT
    for src in sources:
        n = np.sqrt(1.0 - src.l_rad ** 2 - src.m_rad ** 2)
        path = uvw[..., 0] * src.l_rad + uvw[..., 1] * src.m_rad + uvw[..., 2] * (n - 1.0)
        term = src.flux_jy * np.exp(path[:, None, :] * scale[None, :, None])
        vis[..., 0] += term
        vis[..., 3] += term
    return vis
