"""stat-file-processor writes the same HDF5 statistics as SKA PST's C++ ``stat_file_proc``.

Needs the SKA PST anchor built from public source, see docs/benchmarks.md
(``$ANCHORS_DIR/pst/stat_file_proc``, default ``/tmp/anchors``); skipped without it.
Both tools run on the same generated recordings (NaN-scale packets, clipped samples, a
tone, a FREQ_MASK) and every dataset and HEADER member must be equal bit for bit. The
shapes cover the time-bin layouts the kernels handle differently: one sample per bin, bins
of several samples straddling heaps, one heap per bin, and bins of several heaps.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from services.formats.pst import PstLayout
from services.stat import file_processor
from services.stat.generate import BeamSpec, pst_headers, write_pair

ANCHOR = Path(os.environ.get("ANCHORS_DIR", "/tmp/anchors")) / "pst" / "stat_file_proc"

pytestmark = pytest.mark.skipif(not os.access(ANCHOR, os.X_OK),
                                reason=f"SKA PST stat_file_proc not built at {ANCHOR}")


def _equal(x: object, y: object) -> bool:
    if isinstance(x, np.ndarray) and x.dtype.kind in "fiu":
        return (isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape
                and x.tobytes() == y.tobytes())
    if isinstance(x, np.ndarray):
        return bool(np.array_equal(x, y))
    return x == y


@pytest.mark.parametrize(("profile", "nheap", "keys"), [
    ("low", 48, {"NCHAN": 240}),                              # 1 sample per time bin
    ("low", 200, {"NCHAN": 240, "FREQ_MASK": "60:61.5", "NMASK": 1}),  # 5 per bin
    ("low", 2048, {"NCHAN": 48, "UDP_NSAMP": 4, "WT_NSAMP": 4}),  # bins of 2 heaps
    ("mid", 1344, {"NCHAN": 555}),                            # 1 heap per bin
    ("mid", 5376, {"NCHAN": 555, "FREQ_MASK": "4905:4910", "NMASK": 1}),  # 21 per bin
])
def test_same_hdf5_as_pst(tmp_path: Path, profile: str, nheap: int,
                          keys: dict[str, object]) -> None:
    data_h, weights_h = pst_headers(profile, **keys)
    layout = PstLayout.from_headers(data_h, weights_h)
    spec = BeamSpec(sigma=12.0, tones={5: 30.0}, clip_fraction=1e-3, scale=0.5,
                    nan_packets=frozenset(range(3, nheap * layout.packets_per_heap, 97)))
    data, weights = write_pair(tmp_path, data_h, weights_h, nheap, spec)
    subprocess.run([str(ANCHOR), "-d", str(data), "-w", str(weights)], check=True,
                   capture_output=True, cwd=tmp_path)
    theirs = tmp_path / "stat" / f"{data.stem}.h5"
    ours = tmp_path / "ours.h5"
    file_processor.process(data, weights, ours)
    with h5py.File(ours) as a, h5py.File(theirs) as b:
        assert sorted(a) == sorted(b)
        for name in b:
            x, y = a[name][()], b[name][()]
            if name == "HEADER":
                for member in y.dtype.names:
                    assert _equal(x[member][0], y[member][0]), f"HEADER.{member}"
            else:
                assert _equal(x, y), name
