"""VisWriter: ring-shaped dumps in, MeasurementSet rows out, value for value."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from casacore import tables

from ringbuf.errors import HeaderError
from services.mswrite.errors import MsWriteError
from services.mswrite.stream import MJD_UNIX_OFFSET_S, NPOL, WEIGHTS_DTYPE
from services.mswrite.uvw import MeasuresUvw
from services.mswrite.writer import VisWriter


def open_writer(path, stream, antennas, **kwargs) -> VisWriter:
    data_header, weights_header = stream.headers()
    return VisWriter.open(path, data_header, weights_header, antennas=antennas, **kwargs)


def read_main(path) -> dict[str, np.ndarray]:
    columns = ("TIME", "TIME_CENTROID", "ANTENNA1", "ANTENNA2", "UVW", "DATA", "FLAG",
               "WEIGHT", "SIGMA", "WEIGHT_SPECTRUM", "FLAG_ROW", "SCAN_NUMBER", "INTERVAL",
               "EXPOSURE", "FIELD_ID", "DATA_DESC_ID", "STATE_ID")
    with tables.table(str(path), ack=False) as t:
        return {c: t.getcol(c) for c in columns}


def expected_rows(stream, vis, weights):
    """What the rows must hold, computed independently of the writer (loops, no tricks)."""
    ndump = len(vis)
    nbl = stream.nbaseline
    data = np.empty((ndump * nbl, stream.nchan, NPOL), np.complex64)
    wspec = np.empty((ndump * nbl, stream.nchan, NPOL), np.float32)
    centroid = np.empty(ndump * nbl)
    for d in range(ndump):
        for b in range(nbl):
            fd = weights["FD"][d, :, b].astype(float)
            tci = weights["TCI"][d, :, b].astype(float)
            row = d * nbl + b
            data[row] = np.where(fd[:, None] > 0, vis[d, :, b, :], 0)
            wspec[row] = (fd / 255.0)[:, None]
            centroid[row] = (tci * fd).sum() / fd.sum() if fd.sum() else 0.0
    return data, wspec, centroid


def test_round_trip_value_for_value(tmp_path, stream, antennas, phase_centre, make_dumps):
    vis, weights = make_dumps(stream, 4, seed=1, lost_fraction=0.2)
    out = tmp_path / "rt.ms"
    with open_writer(out, stream, antennas, phase_centre=phase_centre) as writer:
        for first in (0, 2):  # two ring blocks of DUMPS_PER_BLOCK = 2, given as uint8 bytes
            data_u8 = vis[first:first + 2].view(np.uint8).reshape(-1)
            weights_u8 = weights[first:first + 2].view(np.uint8).reshape(-1)
            writer.write_block(data_u8, weights_u8, first)
        assert writer.partial_path.exists() and not out.exists()
    assert out.exists() and not writer.partial_path.exists()

    rows = read_main(out)
    nbl = stream.nbaseline
    a1, a2 = np.triu_indices(stream.nant)
    np.testing.assert_array_equal(rows["ANTENNA1"], np.tile(a1, 4))
    np.testing.assert_array_equal(rows["ANTENNA2"], np.tile(a2, 4))
    times = MJD_UNIX_OFFSET_S + stream.time0_unix + np.repeat(np.arange(4.0), nbl)
    np.testing.assert_allclose(rows["TIME"], times, rtol=0, atol=1e-6)
    data, wspec, centroid = expected_rows(stream, vis, weights)
    np.testing.assert_array_equal(rows["DATA"], data)
    flag = np.repeat((weights["FD"] == 0).transpose(0, 2, 1).reshape(-1, stream.nchan)[..., None],
                     NPOL, axis=2)
    np.testing.assert_array_equal(rows["FLAG"], flag)
    assert flag.any() and (rows["DATA"][flag] == 0).all()
    np.testing.assert_allclose(rows["WEIGHT_SPECTRUM"], wspec, rtol=1e-6)
    np.testing.assert_allclose(rows["WEIGHT"], np.repeat(wspec.mean(axis=1)[:, :1], 4, 1),
                               rtol=1e-5)
    np.testing.assert_allclose(rows["SIGMA"], 1 / np.sqrt(rows["WEIGHT"]), rtol=1e-5)
    np.testing.assert_allclose(rows["TIME_CENTROID"] - rows["TIME"], centroid / 256.0, atol=1e-6)
    uvw = MeasuresUvw(antennas, phase_centre, a1, a2)
    dumps = np.arange(4)
    np.testing.assert_allclose(rows["UVW"], uvw.uvw(dumps, times[::nbl]).reshape(-1, 3),
                               atol=1e-6)
    assert (rows["SCAN_NUMBER"] == 42).all() and (rows["INTERVAL"] == 1.0).all()
    assert (rows["EXPOSURE"] == 1.0).all() and (rows["FIELD_ID"] == 0).all()
    assert (rows["DATA_DESC_ID"] == 0).all() and (rows["STATE_ID"] == 0).all()
    assert not rows["FLAG_ROW"].any()

    with tables.table(str(out / "SPECTRAL_WINDOW"), ack=False) as spw:
        np.testing.assert_allclose(spw.getcell("CHAN_FREQ", 0),
                                   100e6 + (16 + np.arange(8)) * 200e3)
        assert spw.getcell("NUM_CHAN", 0) == 8
    with tables.table(str(out / "ANTENNA"), ack=False) as ant:
        np.testing.assert_allclose(ant.getcol("POSITION"), antennas.positions)
        assert list(ant.getcol("NAME")) == list(antennas.names)
        np.testing.assert_allclose(ant.getcol("DISH_DIAMETER"), 38.0)
    with tables.table(str(out / "POLARIZATION"), ack=False) as pol:
        assert list(pol.getcell("CORR_TYPE", 0)) == [9, 10, 11, 12]
        assert pol.getcell("CORR_PRODUCT", 0).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    with tables.table(str(out / "FIELD"), ack=False) as field:
        np.testing.assert_allclose(field.getcell("PHASE_DIR", 0)[0],
                                   [phase_centre.ra_rad, phase_centre.dec_rad])
    with tables.table(str(out / "OBSERVATION"), ack=False) as obs:
        assert obs.getcell("TELESCOPE_NAME", 0) == "SKA-Low"
        np.testing.assert_allclose(obs.getcell("TIME_RANGE", 0), [times[0] - 0.5, times[-1] + 0.5])
    with tables.table(str(out / "HISTORY"), ack=False) as hist:
        messages = "\n".join(hist.getcol("MESSAGE"))
        assert "SCAN_ID" in messages and "VIS_WEIGHTS" in messages
    with tables.table(str(out / "FEED"), ack=False) as feed:
        assert feed.nrows() == stream.nant
    with tables.table(str(out), ack=False) as main:
        assert main.getcolkeyword("UVW", "MEASINFO")["Ref"] == "J2000"
        assert main.getdminfo("DATA")["TYPE"] == "TiledColumnStMan"
        assert main.getdminfo("FLAG")["TYPE"] == "TiledColumnStMan"
        with tables.table(main.getkeyword("SOURCE"), ack=False) as source:  # survives rename
            assert source.nrows() == 1


def test_gaps_and_expected_dumps_are_flagged_rows(tmp_path, stream, antennas, make_dumps):
    vis, weights = make_dumps(stream, 2, seed=2)
    out = tmp_path / "gaps.ms"
    writer = open_writer(out, stream, antennas, expected_dumps=7)
    writer.write_dumps(vis, weights, 3)  # dumps 0..2 never arrived
    assert writer.dumps_written == 5
    writer.close()
    rows = read_main(out)
    nbl = stream.nbaseline
    assert len(rows["TIME"]) == 7 * nbl
    np.testing.assert_allclose(np.unique(rows["TIME"]) - MJD_UNIX_OFFSET_S - stream.time0_unix,
                               np.arange(7.0), atol=1e-6)
    missing = np.r_[0:3 * nbl, 5 * nbl:7 * nbl]
    assert rows["FLAG"][missing].all() and rows["FLAG_ROW"][missing].all()
    assert (rows["DATA"][missing] == 0).all() and (rows["WEIGHT_SPECTRUM"][missing] == 0).all()
    assert (rows["WEIGHT"][missing] == 0).all() and (rows["SIGMA"][missing] == 0).all()
    assert not rows["FLAG"][3 * nbl:5 * nbl].any()
    assert (np.abs(rows["UVW"][missing]).sum(axis=1)[rows["ANTENNA1"][missing]
                                                     != rows["ANTENNA2"][missing]] > 0).all()


def test_full_data_fast_path_and_row_flag(tmp_path, stream, antennas, make_dumps):
    vis, weights = make_dumps(stream, 3, seed=3)
    weights["FD"] = 255
    weights["TCI"] = 0
    weights["FD"][1, :, 5] = 0  # one whole row lost
    with open_writer(tmp_path / "f.ms", stream, antennas) as writer:
        for d in range(3):  # complete, partial, complete again (the buffers are reused)
            writer.write_dumps(vis[d:d + 1], weights[d:d + 1], d)
    rows = read_main(tmp_path / "f.ms")
    nbl = stream.nbaseline
    for good in (slice(0, nbl), slice(2 * nbl, 3 * nbl)):
        assert (rows["WEIGHT_SPECTRUM"][good] == 1).all() and not rows["FLAG"][good].any()
        assert (rows["WEIGHT"][good] == 1).all() and (rows["SIGMA"][good] == 1).all()
        assert not rows["FLAG_ROW"][good].any()
    np.testing.assert_array_equal(rows["TIME_CENTROID"], rows["TIME"])
    assert rows["FLAG_ROW"].nonzero()[0].tolist() == [nbl + 5]
    np.testing.assert_array_equal(rows["DATA"][:nbl], vis[0].transpose(1, 0, 2))
    np.testing.assert_array_equal(rows["DATA"][2 * nbl:], vis[2].transpose(1, 0, 2))


def test_error_inside_context_leaves_only_partial(tmp_path, stream, antennas, make_dumps):
    vis, weights = make_dumps(stream, 1)
    out = tmp_path / "abort.ms"
    with pytest.raises(ZeroDivisionError):
        with open_writer(out, stream, antennas) as writer:
            writer.write_dumps(vis, weights, 0)
            raise ZeroDivisionError("a failure while writing")
    assert not out.exists()
    with tables.table(str(writer.partial_path), ack=False) as t:
        assert t.nrows() == stream.nbaseline


# ------------------------------------------------------------------------- bad input
def test_output_exists(tmp_path, stream, antennas):
    (tmp_path / "x.ms").mkdir()
    with pytest.raises(MsWriteError, match=r"x\.ms: output already exists"):
        open_writer(tmp_path / "x.ms", stream, antennas)
    (tmp_path / "y.ms.partial").mkdir()
    with pytest.raises(MsWriteError, match=r"y\.ms\.partial: output already exists"):
        open_writer(tmp_path / "y.ms", stream, antennas)


def test_output_directory_missing(tmp_path, stream, antennas):
    with pytest.raises(MsWriteError, match="does not exist"):
        open_writer(tmp_path / "nope" / "x.ms", stream, antennas)
    assert not (tmp_path / "nope").exists()


def test_metadata_missing_or_mismatching(tmp_path, stream, antennas):
    data_header, weights_header = stream.headers()
    with pytest.raises(MsWriteError, match="no data model and no antenna positions"):
        VisWriter.open(tmp_path / "a.ms", data_header, weights_header)
    few = type(antennas)(antennas.names[:4], antennas.positions[:4], antennas.dish_diameters[:4])
    with pytest.raises(MsWriteError, match="4 antennas configured but the stream has NANT 6"):
        VisWriter.open(tmp_path / "a.ms", data_header, weights_header, antennas=few)
    data_header.delete("PHASE_CENTRE_RA_DEG")
    weights_header.delete("PHASE_CENTRE_RA_DEG")
    with pytest.raises(MsWriteError, match="no phase centre"):
        VisWriter.open(tmp_path / "a.ms", data_header, weights_header, antennas=antennas)
    data_header.delete("NCHAN")
    with pytest.raises(HeaderError, match="NCHAN"):
        VisWriter.open(tmp_path / "a.ms", data_header, weights_header, antennas=antennas)
    assert list(tmp_path.iterdir()) == []


def test_bad_blocks(tmp_path, stream, antennas, make_dumps):
    vis, weights = make_dumps(stream, 2)
    with open_writer(tmp_path / "b.ms", stream, antennas, dump_offset=10) as writer:
        with pytest.raises(MsWriteError, match="not a whole number of dumps"):
            writer.write_block(vis.view(np.uint8).reshape(-1)[:-8],
                               weights.view(np.uint8).reshape(-1), 10)
        with pytest.raises(MsWriteError, match="not a whole number of dumps"):
            writer.write_block(vis.view(np.uint8).reshape(-1),
                               weights[:1].view(np.uint8).reshape(-1), 10)
        with pytest.raises(MsWriteError, match="dump 9 is before the first dump 10"):
            writer.write_dumps(vis, weights, 9)
        writer.write_dumps(vis, np.zeros(weights.shape, WEIGHTS_DTYPE), 10)
    with pytest.raises(MsWriteError, match="closed"):
        writer.write_dumps(vis, weights, 12)
    with tables.table(str(tmp_path / "b.ms"), ack=False) as t:
        assert t.nrows() == 2 * stream.nbaseline
        assert t.getcol("FLAG").all()


def _rows_on_disk(path) -> int:
    """Rows another process sees in the MS (what a kill -9 now would leave)."""
    code = ("import sys; from casacore import tables; "
            "print(tables.table(sys.argv[1], ack=False, lockoptions='usernoread').nrows())")
    return int(subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                              capture_output=True, text=True, timeout=30).stdout)


def test_flush_interval_and_explicit_flush(tmp_path, stream, antennas, make_dumps):
    """Within the flush interval rows are written but not on disk (``flushed`` False) until
    ``flush()``; the service keeps their ring blocks until then."""
    vis, weights = make_dumps(stream, 3, seed=3)
    writer = open_writer(tmp_path / "f.ms", stream, antennas, flush_interval_s=600.0)
    assert writer.flushed
    writer.write_dumps(vis[:2], weights[:2], 0)
    assert not writer.flushed and writer.dumps_written == 2
    assert _rows_on_disk(writer.partial_path) == 0
    writer.flush()
    assert writer.flushed
    assert _rows_on_disk(writer.partial_path) == 2 * stream.nbaseline
    writer.write_dumps(vis[2:], weights[2:], 2)
    assert not writer.flushed
    writer.close()
    assert read_main(tmp_path / "f.ms")["TIME"].shape == (3 * stream.nbaseline,)


def test_telescope_name_comes_from_the_antenna_ms_when_the_stream_has_none(
        tmp_path, stream, antennas, make_dumps):
    """Issue 12: CASA's tclean warns on an empty TELESCOPE_NAME; an antenna MS names it."""
    model = tmp_path / "antennas.ms"
    with open_writer(model, stream, antennas) as writer:  # TELESCOPE SKA-Low in its header
        writer.write_dumps(*make_dumps(stream, 1), 0)
    from services.mswrite.metadata import Antennas

    loaded = Antennas.load(model)
    assert loaded.telescope == "SKA-Low"
    assert Antennas.load(model, "MeerKAT").telescope == "MeerKAT"  # TELESCOPE config wins
    bare = dataclasses.replace(stream, telescope="")
    out = tmp_path / "out.ms"
    with open_writer(out, bare, loaded) as writer:
        writer.write_dumps(*make_dumps(bare, 1), 0)
    with tables.table(str(out / "OBSERVATION"), ack=False) as obs:
        assert obs.getcell("TELESCOPE_NAME", 0) == "SKA-Low"
