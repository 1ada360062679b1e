"""The C kernels: built and loaded on first use, the numba fallback without a compiler, and the
same numbers from both (every output, bit for bit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ringbuf import Segment
from services.formats.pst import PstLayout
from services.stat import ckernels
from services.stat.compute import StatInputs, compute_segment
from services.stat.config import StatConfig
from services.stat.generate import BeamSpec, generate_heaps, pst_headers


def test_no_compiler_means_numba(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RINGPIPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setattr(ckernels, "_LIB", [])
    assert ckernels.load() is None
    assert not list(tmp_path.glob("*.so"))


def test_built_once_into_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RINGPIPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(ckernels, "_LIB", [])
    if ckernels.load() is None:
        pytest.skip("C kernels unavailable (no compiler, or RINGPIPE_STAT_KERNELS=numba)")
    built = list(tmp_path.glob("stat_kernels_*.so"))
    assert built == [ckernels.library_path()]


@pytest.mark.parametrize(("profile", "nchan", "nheap", "keys"), [
    ("mid", 370, 24, {"FREQ_MASK": "4905:4910", "NMASK": 1, "STAT_REQ_TIME_BINS": 5}),
    ("low", 48, 70, {"FREQ_MASK": "60:62", "NMASK": 1, "STAT_NREBIN": 16}),
    ("low", 48, 3, {"STAT_REQ_TIME_BINS": 96}),
])
def test_c_and_numba_agree(monkeypatch: pytest.MonkeyPatch, profile: str, nchan: int,
                           nheap: int, keys: dict[str, object]) -> None:
    if ckernels.load() is None:
        pytest.skip("C kernels unavailable (no compiler, or RINGPIPE_STAT_KERNELS=numba)")
    data_h, weights_h = pst_headers(profile, NCHAN=nchan, **keys)
    layout = PstLayout.from_headers(data_h, weights_h)
    spec = BeamSpec(sigma=np.linspace(3, 60, nchan), tones={1: 40.0}, clip_fraction=2e-3,
                    nan_packets=frozenset({1, 5, 2 * layout.packets_per_heap}))
    data, weights = generate_heaps(layout, spec, 0, nheap)
    segment = Segment(data=data, weights=weights, data_header=data_h, weights_header=weights_h,
                      obs_offset=0, weights_obs_offset=0)
    inputs = StatInputs.from_headers(data_h, weights_h)
    config = StatConfig(req_time_bins=int(keys.get("STAT_REQ_TIME_BINS", 1024)),
                        nrebin=int(keys.get("STAT_NREBIN", 256)))
    from_c = compute_segment(segment, config, inputs)
    monkeypatch.setattr(ckernels, "_LIB", [None])
    from_numba = compute_segment(segment, config, inputs)
    for name, value in vars(from_c).items():
        other = getattr(from_numba, name)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and value.tobytes() == other.tobytes(), name
        else:
            assert value == other, name
