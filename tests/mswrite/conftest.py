"""Fixtures for the MeasurementSet writer tests: a small stream, its antennas, dumps."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.sim_ms import random_layout
from services.mswrite.stream import FD_FULL, NPOL, WEIGHTS_DTYPE, VisStream

NANT = 6
NCHAN = 8


@pytest.fixture
def antennas() -> Antennas:
    return random_layout(NANT, 1500.0, seed=3)


@pytest.fixture
def phase_centre() -> PhaseCentre:
    return PhaseCentre.from_degrees(187.0, -26.8, "target")


@pytest.fixture
def stream() -> VisStream:
    return VisStream(scan_id=42, utc_start="2024-06-01-12:00:00", time0_unix=1717243200.5,
                     int_time=1.0, nant=NANT, nchan=NCHAN, start_channel=16,
                     freq0_hz=100e6, chan_width_hz=200e3, dumps_per_block=2,
                     telescope="SKA-Low", phase_centre_deg=(187.0, -26.8))


def _make_dumps(stream: VisStream, ndump: int, seed: int = 0,
                lost_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Random visibilities and weights shaped as ring blocks; lost heaps get FD 0 (VIS kept
    non-zero on purpose, so the writer's zeroing is visible)."""
    rng = np.random.default_rng(seed)
    shape = (ndump, stream.nchan, stream.nbaseline, NPOL)
    vis = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    weights = np.zeros(shape[:3], WEIGHTS_DTYPE)
    weights["FD"] = rng.integers(1, FD_FULL + 1, shape[:3])
    weights["TCI"] = rng.integers(-128, 128, shape[:3])
    if lost_fraction:
        weights["FD"][rng.random(shape[:3]) < lost_fraction] = 0
    return vis, weights


@pytest.fixture
def make_dumps():
    return _make_dumps


@pytest.fixture
def read_fits():
    """A tiny FITS reader: (header dict, big-endian data as a numpy array)."""

    def read(path) -> tuple[dict, np.ndarray]:
        raw = open(path, "rb").read()
        header: dict = {}
        pos = 0
        while True:
            card = raw[pos:pos + 80].decode("ascii")
            pos += 80
            if card[:8].strip() == "END":
                break
            if card[8:10] == "= ":
                text = card[10:].split("/")[0].strip()
                value: object = text.strip("'").strip()
                if not text.startswith("'"):
                    try:
                        value = int(text)
                    except ValueError:
                        try:
                            value = float(text)
                        except ValueError:
                            pass
                header[card[:8].strip()] = value
        pos = -(-pos // 2880) * 2880
        shape = [header[f"NAXIS{i}"] for i in range(header["NAXIS"], 0, -1)]
        dtype = {-32: ">f4", -64: ">f8"}[header["BITPIX"]]
        data = np.frombuffer(raw, dtype, count=int(np.prod(shape)), offset=pos)
        return header, data.reshape(shape)

    return read


@pytest.fixture
def require_tool():
    def require(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            pytest.skip(f"{name} is not installed (apt-get install casacore-tools wsclean "
                        "aoflagger, or scripts/install-tools.sh)")
        return path

    return require
