"""stat-file-processor end to end on generated .dada pairs (real files, real HDF5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from ringbuf.header import DadaHeader
from ringbuf.segment import Segment
from services.formats.pst import PstLayout
from services.stat.compute import compute_segment
from services.stat.config import stat_config
from services.stat.file_processor import default_output, main
from services.stat.generate import BeamSpec, generate_heaps, pst_headers, write_pair

SPEC = BeamSpec(sigma=15.0, tones={7: 30.0}, clip_fraction=0.001, nan_packets=frozenset({4}))
NAME = "2023-02-14-22:15:37_0000000000000000_000000"


def mid_headers(**kw):
    return pst_headers("mid", FREQ_MASK="4905:4910", NMASK=1, **kw)


def expected(nheap: int, first: int = 0, **kw):
    data_h, weights_h = mid_headers(**kw)
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, SPEC, first, nheap)
    return compute_segment(Segment(data, weights, first * layout.data_heap_stride, 0,
                                   data_h, weights_h), stat_config(data_h))


def assert_file_matches(path: Path, result) -> None:
    with h5py.File(path, "r") as f:
        for name in ("MEAN_SPECTRUM", "VARIANCE_FREQUENCY_AVG_RFI_EXCISED", "TIMESERIES",
                     "SPECTROGRAM", "HISTOGRAM_REBINNED_2D_FREQ_AVG_RFI_EXCISED",
                     "NUM_CLIPPED_SAMPLES_SPECTRUM"):
            np.testing.assert_array_equal(f[name][()], getattr(result, name.lower()), name)
        header = f["HEADER"][0]
        assert header["NUM_SAMPLES"] == result.num_samples
        assert header["T_MIN"] == result.t_min
        assert header["NDAT_DS"] == result.ndat_ds


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_data_and_weights_options(tmp_path: Path) -> None:
    data, weights = write_pair(tmp_path, *mid_headers(), 12, SPEC)
    res = run(["-d", str(data), "-w", str(weights), "--no-progress"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "stat" / f"{NAME}.h5"
    assert res.output.strip() == str(out)
    assert_file_matches(out, expected(12))


def test_weights_found_in_sibling_folder_and_output_option(tmp_path: Path) -> None:
    data, _ = write_pair(tmp_path, *mid_headers(), 12, SPEC)
    res = run([str(data), "--output", str(tmp_path / "x.h5")])
    assert res.exit_code == 0, res.output
    assert_file_matches(tmp_path / "x.h5", expected(12))
    assert not (tmp_path / "stat").exists() or not any((tmp_path / "stat").iterdir())


def test_default_output_names() -> None:
    assert default_output(Path("data/X.dada")) == Path("stat/X.h5")
    assert default_output(Path("/a/b/data/X.dada")) == Path("/a/b/stat/X.h5")
    assert default_output(Path("X.dada")) == Path("X.h5")


def test_directory_of_consecutive_files_is_one_stream(tmp_path: Path) -> None:
    d0, w0 = mid_headers()
    write_pair(tmp_path, d0, w0, 5, SPEC)
    d1, w1 = mid_headers(OBS_OFFSET=5 * 8880, FILE_NUMBER=1)
    write_pair(tmp_path, d1, w1, 7, SPEC)
    res = run([str(tmp_path / "data"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert_file_matches(tmp_path / "stat" / f"{NAME}.h5", expected(12))


def test_segment_heaps_writes_one_file_per_n_heaps(tmp_path: Path) -> None:
    d0, w0 = mid_headers()
    write_pair(tmp_path, d0, w0, 5, SPEC)
    d1, w1 = mid_headers(OBS_OFFSET=5 * 8880, FILE_NUMBER=1)
    write_pair(tmp_path, d1, w1, 5, SPEC)
    res = run([str(tmp_path / "data"), "--segment-heaps", "4"])
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "stat").iterdir())
    assert [f.name for f in files] == [
        "2023-02-14-22:15:37_0000000000000000_000000.h5",
        "2023-02-14-22:15:37_0000000000035520_000001.h5",
        "2023-02-14-22:15:37_0000000000071040_000002.h5"]
    assert_file_matches(files[0], expected(4))
    assert_file_matches(files[1], expected(4, first=4))  # spans the two files
    assert_file_matches(files[2], expected(2, first=8))


def write_raw_pair(root: Path, data_h: DadaHeader, weights_h: DadaHeader, data: bytes,
                   weights: bytes) -> Path:
    for sub, header, body in (("data", data_h, data), ("weights", weights_h, weights)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / "x.dada").write_bytes(header.to_bytes() + body)
    return root / "data" / "x.dada"


def test_trailing_partial_heap_is_ignored(tmp_path: Path) -> None:
    data_h, weights_h = mid_headers()
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, SPEC, 0, 6)
    path = write_raw_pair(tmp_path, data_h, weights_h, data.tobytes() + b"\1" * 100,
                          weights.tobytes())
    res = run([str(path)])
    assert res.exit_code == 0, res.output
    assert_file_matches(tmp_path / "stat" / "x.h5", expected(6))


@pytest.mark.parametrize("case,message", [
    ("heaps", "different numbers of whole heaps"),
    ("nbit", "NBIT 12 is not supported"),
    ("tsamp", "missing required key TSAMP"),
    ("resolution", "RESOLUTION 8000 does not match"),
    ("no_weights", "no weights file found"),
])
def test_bad_input_fails_cleanly(tmp_path: Path, case: str, message: str) -> None:
    data_h, weights_h = mid_headers()
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, SPEC, 0, 4)
    data, weights = data.tobytes(), weights.tobytes()
    if case == "heaps":
        weights = weights[: 3 * layout.weights_heap_stride]
    elif case == "nbit":
        data_h.set("NBIT", 12)
    elif case == "tsamp":
        data_h.delete("TSAMP")
    elif case == "resolution":
        data_h.set("RESOLUTION", 8000)
    path = write_raw_pair(tmp_path, data_h, weights_h, data, weights)
    if case == "no_weights":
        (tmp_path / "weights" / "x.dada").unlink()
    res = CliRunner().invoke(main, [str(path)])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert "x.dada" in res.output
    assert not list(tmp_path.rglob("*.h5")) and not list(tmp_path.rglob("*.tmp"))


def test_console_script_help_and_exit_code(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("stat-file-processor")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Examples:" in out.stdout and "--segment-heaps" in out.stdout
    out = subprocess.run([str(exe), str(tmp_path / "nope.dada")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_stat_keys_layer_header_config_files_and_set_options(tmp_path: Path) -> None:
    """Defect 6: data header < -c files (later wins) < -o; each layer shows in the bins."""
    data, _ = write_pair(tmp_path, *mid_headers(STAT_REQ_TIME_BINS=4, STAT_REQ_FREQ_BINS=5,
                                                STAT_NREBIN=64), 12, SPEC)
    (tmp_path / "a.hdr").write_text("STAT_REQ_TIME_BINS 6\nSTAT_NREBIN 32\nOTHER_KEY x\n")
    (tmp_path / "b.hdr").write_text("STAT_REQ_TIME_BINS 8\n")
    res = run([str(data), "--output", str(tmp_path / "x.h5"), "-c", str(tmp_path / "a.hdr"),
               "--config", str(tmp_path / "b.hdr"), "-o", "STAT_REQ_FREQ_BINS=3"])
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "x.h5", "r") as f:
        header = f["HEADER"][0]
        # time from b.hdr (over a.hdr and the header), freq from -o, NREBIN from a.hdr
        assert (header["NDAT_DS"], header["NCHAN_DS"], header["NREBIN"]) == (8, 3, 32)
        assert f["HISTOGRAM_REBINNED_2D_FREQ_AVG"].shape == (2, 32, 32)
    res = run([str(data), "--output", str(tmp_path / "y.h5"), "--set", "STAT_REQ_TIME_BINS=2"])
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "y.h5", "r") as f:
        header = f["HEADER"][0]
        assert (header["NDAT_DS"], header["NCHAN_DS"], header["NREBIN"]) == (2, 5, 64)


@pytest.mark.parametrize("where,args,message", [
    ("header", [], "STAT_REQ_FREQ_BINS '-3' (data header "),
    ("config", ["-c", "{tmp}/bad.hdr"], "STAT_NREBIN '0' ({tmp}/bad.hdr): must be positive"),
    ("option", ["-o", "STAT_REQ_TIME_BINS=many"], "STAT_REQ_TIME_BINS 'many' (-o): is not an "),
    ("unknown", ["-o", "STAT_NREBINS=8"], "STAT_NREBINS (-o): unknown key"),
    ("malformed", ["-o", "STAT_NREBIN"], "expected KEY=VALUE"),
])
def test_bad_stat_value_is_one_line_naming_key_and_source(tmp_path: Path, where: str,
                                                          args: list[str], message: str) -> None:
    header_keys = {"STAT_REQ_FREQ_BINS": -3} if where == "header" else {}
    data, _ = write_pair(tmp_path, *mid_headers(**header_keys), 4, SPEC)
    (tmp_path / "bad.hdr").write_text("STAT_NREBIN 0\n")
    args = [a.format(tmp=tmp_path) for a in args]
    res = CliRunner().invoke(main, [str(data), *args])
    assert res.exit_code == 1, res.output
    assert message.format(tmp=tmp_path) in res.output
    if where == "header":
        assert str(data) in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not list(tmp_path.rglob("*.h5"))


def test_start_up_imports_no_numba() -> None:
    """stat-file-processor loads numba only to compute (--help and bad input stay fast)."""
    code = "import sys, services.stat.file_processor; assert 'numba' not in sys.modules, 'numba'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
