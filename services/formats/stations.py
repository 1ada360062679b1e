"""The station (antenna) file: one ``NAME X Y Z [DIAMETER]`` line per antenna, ITRF metres.

``#`` starts a comment. It is the format of ``configs/vis-stations.txt``, read by svc-mswrite
(MS_ANTENNA_FILE) and svc-avg (BDA_ANTENNA_FILE)::

    # NAME   X_ITRF_M        Y_ITRF_M       Z_ITRF_M       [DISH_DIAMETER_M]
    S0000   -2559454.08     5095372.14     -2849057.18     38.0
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.common.errors import ServiceError

DEFAULT_DISH_DIAMETER_M = 38.0  # an SKA-Low station


class StationsFileError(ServiceError):
    """A station file cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Stations:
    """Names, ITRF positions (m, shape ``(n, 3)``) and dish diameters (m, shape ``(n,)``)."""

    names: tuple[str, ...]
    positions: np.ndarray
    diameters: np.ndarray


def read_stations(path: str | os.PathLike[str]) -> Stations:
    """Read a station file; raises :class:`StationsFileError` naming the file and line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise StationsFileError(f"{path}: cannot read station file: {exc.strerror}") from None
    names, positions, diameters = [], [], []
    for number, raw in enumerate(lines, start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        try:
            if len(words) not in (4, 5):
                raise ValueError
            values = [float(w) for w in words[1:]]
        except ValueError:
            raise StationsFileError(f"{path}:{number}: expected 'NAME X Y Z [DIAMETER]' "
                                    f"(ITRF m), got {raw.strip()!r}") from None
        names.append(words[0])
        positions.append(values[:3])
        diameters.append(values[3] if len(values) == 4 else DEFAULT_DISH_DIAMETER_M)
    if not names:
        raise StationsFileError(f"{path}: no antennas in station file")
    return Stations(tuple(names), np.array(positions, np.float64),
                    np.array(diameters, np.float64))
