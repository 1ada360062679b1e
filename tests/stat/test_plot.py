"""stat-plot renders a PNG of the expected size from a real HDF5 file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
from click.testing import CliRunner

from ringbuf.segment import Segment
from services.formats.pst import PstLayout
from services.stat.compute import compute_segment
from services.stat.config import stat_config
from services.stat.generate import BeamSpec, generate_heaps, pst_headers
from services.stat.hdf5_writer import write_hdf5
from services.stat.plot import main


def test_plot_renders_a_full_page(tmp_path: Path) -> None:
    data_h, weights_h = pst_headers("mid", FREQ_MASK="4905:4910", NMASK=1)
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(
        layout, BeamSpec(tones={20: 40.0}, clip_fraction=0.001, nan_packets=frozenset({1})), 0, 16)
    result = compute_segment(Segment(data, weights, 0, 0, data_h, weights_h), stat_config(data_h))
    h5 = write_hdf5(result, tmp_path / "s.h5")
    res = CliRunner().invoke(main, [str(h5), "--output", str(tmp_path / "s.png"),
                                    "--freq-mask", "4905:4910"])
    assert res.exit_code == 0, res.output
    image = mpimg.imread(tmp_path / "s.png")
    assert image.shape[:2] == (1100, 1600)
    # not blank: many distinct colours are drawn
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 500


def test_plot_of_a_missing_or_bad_file_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    res = CliRunner().invoke(main, [str(bad), "--output", str(tmp_path / "x.png")])
    assert res.exit_code == 1 and "bad.h5" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.png").exists()


def test_plot_does_not_load_numba() -> None:
    code = "import sys, services.stat.plot; assert 'numba' not in sys.modules, 'numba'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
