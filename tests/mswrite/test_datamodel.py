"""Metadata from a data-model MS (as the SKA CBF-SDP emulator's receiver does)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from casacore import tables

from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import PhaseCentre
from services.mswrite.sim_ms import Simulation, random_layout
from services.mswrite.writer import VisWriter

NTIME = 4


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A simulated MS (6 antennas, 8 channels, 4 dumps) and its Simulation."""
    sim = Simulation(antennas=random_layout(6, 1500.0, seed=5), nchan=8, ntime=NTIME,
                     int_time=2.0, phase_centre=PhaseCentre.from_degrees(10.0, -30.0, "m"))
    path = tmp_path_factory.mktemp("model") / "model.ms"
    sim.write(path)
    return path, sim


def write_from_model(out, model_path, stream, make_dumps, dumps=range(NTIME)):
    data_header, weights_header = stream.headers()
    with VisWriter.open(out, data_header, weights_header, data_model=model_path) as writer:
        for d in dumps:
            writer.write_dumps(*make_dumps(stream, 1, seed=d), d)
    with tables.table(str(out), ack=False) as t:
        return t.getcol("UVW"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2")


def test_uvw_antennas_and_centre_from_model(tmp_path, model, make_dumps):
    path, sim = model
    uvw, a1, a2 = write_from_model(tmp_path / "out.ms", path, sim.stream(), make_dumps)
    with tables.table(str(path), ack=False) as t:
        np.testing.assert_array_equal(uvw, t.getcol("UVW"))
        np.testing.assert_array_equal(a1, t.getcol("ANTENNA1"))
    with tables.table(str(tmp_path / "out.ms" / "FIELD"), ack=False) as f:
        np.testing.assert_allclose(f.getcell("PHASE_DIR", 0)[0], [np.radians(10), np.radians(-30)])
    with tables.table(str(tmp_path / "out.ms" / "ANTENNA"), ack=False) as a:
        np.testing.assert_array_equal(a.getcol("POSITION"), sim.antennas.positions)


def test_model_in_another_row_order(tmp_path, model, make_dumps):
    """Rows shuffled and some stored as (ANT2, ANT1) with -UVW: the writer still finds them."""
    path, sim = model
    shuffled = tmp_path / "shuffled.ms"
    shutil.copytree(path, shuffled)
    with tables.table(str(shuffled), readonly=False, ack=False) as t:
        cols = {c: t.getcol(c) for c in ("TIME", "ANTENNA1", "ANTENNA2", "UVW")}
        swap = np.arange(t.nrows()) % 3 == 0
        cols["ANTENNA1"], cols["ANTENNA2"] = (np.where(swap, cols["ANTENNA2"], cols["ANTENNA1"]),
                                              np.where(swap, cols["ANTENNA1"], cols["ANTENNA2"]))
        cols["UVW"] = np.where(swap[:, None], -cols["UVW"], cols["UVW"])
        order = np.random.default_rng(0).permutation(t.nrows())
        for name, values in cols.items():
            t.putcol(name, values[order])
    uvw, _, _ = write_from_model(tmp_path / "out.ms", shuffled, sim.stream(), make_dumps)
    with tables.table(str(path), ack=False) as t:
        np.testing.assert_array_equal(uvw, t.getcol("UVW"))


def test_dumps_beyond_the_model_repeat_it(tmp_path, model, make_dumps):
    path, sim = model
    uvw, _, _ = write_from_model(tmp_path / "out.ms", path, sim.stream(), make_dumps,
                                 dumps=range(NTIME + 2))
    nbl = sim.stream().nbaseline
    np.testing.assert_array_equal(uvw[NTIME * nbl:], uvw[:2 * nbl])


@pytest.mark.parametrize("change, message", [
    ({"nant": 5}, "has 6 antennas but the stream has NANT 5"),
    ({"nchan": 6, "start_channel": 4}, "has 8 channels but the stream has channels 4..9"),
    ({"freq0_hz": 151e6}, "channel frequencies differ"),
])
def test_model_mismatch(tmp_path, model, change, message):
    path, sim = model
    stream = dataclasses.replace(sim.stream(), **change)
    data_header, weights_header = stream.headers()
    with pytest.raises(MsWriteError, match=message):
        VisWriter.open(tmp_path / "out.ms", data_header, weights_header, data_model=path)
    assert list(tmp_path.iterdir()) == []


def test_model_without_autocorrelations(tmp_path, model):
    path, sim = model
    cross = tmp_path / "cross.ms"
    with tables.table(str(path), ack=False) as t:
        t.query("ANTENNA1 != ANTENNA2").copy(str(cross), deep=True).close()
    data_header, weights_header = sim.stream().headers()
    with pytest.raises(MsWriteError, match=r"lacks baseline \(0, 0\)"):
        VisWriter.open(tmp_path / "out.ms", data_header, weights_header, data_model=cross)
    with pytest.raises(MsWriteError, match="not a MeasurementSet"):
        VisWriter.open(tmp_path / "out.ms", data_header, weights_header,
                       data_model=tmp_path / "missing.ms")


def test_model_with_the_other_uvw_sign_is_copied_with_a_warning(tmp_path, model, make_dumps,
                                                                caplog):
    """A model with UVW = pos(ANT2) - pos(ANT1) (not CASA's) is copied, and reported once."""
    path, sim = model
    flipped = tmp_path / "flipped.ms"
    shutil.copytree(path, flipped)
    with tables.table(str(flipped), readonly=False, ack=False) as t:
        t.putcol("UVW", -t.getcol("UVW"))
    caplog.set_level("WARNING", logger="services.mswrite.datamodel")
    uvw, _, _ = write_from_model(tmp_path / "out.ms", flipped, sim.stream(), make_dumps)
    with tables.table(str(path), ack=False) as t:
        np.testing.assert_array_equal(uvw, -t.getcol("UVW"))
    warnings = [r.getMessage() for r in caplog.records if "negative of CASA" in r.getMessage()]
    assert len(warnings) == 1 and str(flipped) in warnings[0]
    caplog.clear()
    write_from_model(tmp_path / "ok.ms", path, sim.stream(), make_dumps)
    assert not [r for r in caplog.records if "negative of CASA" in r.getMessage()]
