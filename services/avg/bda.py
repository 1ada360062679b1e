"""Baseline-dependent time factors: average short baselines longer, within a smearing limit.

A source at angle ``theta`` from the phase centre moves through fringe phase at most
``2 pi * OMEGA_EARTH * (|B| / lambda) * sin(theta)`` radians per second on a baseline of
length ``|B|`` (the projected baseline never exceeds the physical one, so this bounds every
hour angle and declination). Averaging a linearly turning phase over ``Phi`` radians keeps
``sinc(Phi / 2)`` of the amplitude, about ``1 - Phi**2 / 24``. With the user's limit
``BDA_MAX_SMEARING`` (fractional amplitude loss at ``BDA_FOV_DEG`` from the centre, at the
highest frequency), a baseline may be averaged for

    t_max = sqrt(24 * BDA_MAX_SMEARING) / (2 pi OMEGA_EARTH |B| nu_max / c  sin(theta))

and its factor is the largest power of two ``k <= BDA_MAX_FACTOR`` with
``k * N * INT_TIME <= t_max`` (at least 1: the base averaging is the user's choice).
Autocorrelations (``|B| = 0``) get ``BDA_MAX_FACTOR``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from services.formats.stations import StationsFileError, read_stations

OMEGA_EARTH = 7.2921150e-5  # rad/s
C_LIGHT = 299792458.0


def load_positions(path: Path | str) -> np.ndarray:
    """ITRF positions (nant, 3) of a station file (:mod:`services.formats.stations`)."""
    try:
        return read_stations(path).positions
    except StationsFileError as exc:
        raise StationsFileError(f"BDA_ANTENNA_FILE {exc}") from None


def baseline_lengths(positions: np.ndarray) -> np.ndarray:
    """Length (m) of every baseline in upper-triangle-with-autos order."""
    a1, a2 = np.triu_indices(positions.shape[0])
    return np.asarray(np.linalg.norm(positions[a1] - positions[a2], axis=1))


def max_average_time(length_m: np.ndarray, max_freq_hz: float, fov_deg: float,
                     max_smearing: float) -> np.ndarray:
    """Longest averaging time (s) per baseline within the smearing limit (inf for 0 m)."""
    phi = math.sqrt(24.0 * max_smearing)
    rate = (2 * math.pi * OMEGA_EARTH * max_freq_hz / C_LIGHT
            * math.sin(math.radians(fov_deg)) * np.asarray(length_m, np.float64))
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, phi / np.where(rate > 0, rate, 1.0), np.inf)


def time_factors(length_m: np.ndarray, base_interval_s: float, max_factor: int,
                 max_freq_hz: float, fov_deg: float, max_smearing: float) -> np.ndarray:
    """Power-of-two factor per baseline (1..max_factor, max_factor a power of two)."""
    t_max = max_average_time(length_m, max_freq_hz, fov_deg, max_smearing)
    with np.errstate(divide="ignore"):
        ratio = t_max / base_interval_s
        k = np.where(ratio >= 1, np.exp2(np.floor(np.log2(np.maximum(ratio, 1.0)))), 1.0)
    return np.clip(k, 1, max_factor).astype(np.int64)


def encode_factors(factors: np.ndarray) -> str:
    """Header value of ``BDA_LOG2_FACTORS``: one hex digit (log2 k) per baseline."""
    return "".join(f"{int(f).bit_length() - 1:x}" for f in factors)


def decode_factors(text: str) -> np.ndarray:
    """Inverse of :func:`encode_factors`."""
    return np.asarray([1 << int(ch, 16) for ch in text], np.int64)
