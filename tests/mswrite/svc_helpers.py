"""Helpers for the svc-mswrite tests: the daemon as a real process, a ring-pair feeder,
and reading an MS back."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from casacore import tables

from ringbuf import RingLayout, RingPairWriter, create_ring_pair, destroy_ring_pair
from services.common.processes import Process, daemon_env
from services.mswrite.stream import FD_FULL, NPOL, WEIGHTS_DTYPE, VisStream

BIN = Path(sys.executable).parent
NANT, NCHAN = 4, 8


def small_stream(scan_id: int = 42, **changes: object) -> VisStream:
    values: dict[str, object] = dict(
        scan_id=scan_id, utc_start="2024-06-01-12:00:00", time0_unix=1717243200.5,
        int_time=1.0, nant=NANT, nchan=NCHAN, start_channel=16, freq0_hz=100e6,
        chan_width_hz=200e3, telescope="SKA-Low", phase_centre_deg=(187.0, -26.8))
    values.update(changes)
    return VisStream(**values)  # type: ignore[arg-type]


def dump(stream: VisStream, d: int,
         lost_channel: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dump ``d``: VIS[c, b, p] = d + 1j*c + 0.01*b + 0.001*p (known values); FD 255,
    TCI 0, except channel ``lost_channel`` (FD 0, VIS left non-zero; -1: every channel)."""
    c, b, p = np.meshgrid(np.arange(stream.nchan), np.arange(stream.nbaseline), np.arange(NPOL),
                          indexing="ij")
    vis = (d + 0.01 * b + 0.001 * p + 1j * c).astype(np.complex64)
    weights = np.zeros((stream.nchan, stream.nbaseline), WEIGHTS_DTYPE)
    weights["FD"] = FD_FULL
    if lost_channel == -1:
        weights["FD"] = 0
    elif lost_channel is not None:
        weights["FD"][lost_channel] = 0
    return vis, weights


def expected_rows(stream: VisStream, dumps: list[int], lost: dict[int, int] | None = None,
                  missing: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """DATA and FLAG ([rows, nchan, 4]) the MS must hold for ``dumps``."""
    lost = lost or {}
    data, flag = [], []
    for d in dumps:
        vis, weights = dump(stream, d, lost.get(d))
        bad = (weights["FD"] == 0).T  # (baseline, channel)
        if d in missing:
            bad[:] = True
        rows = np.where(bad[..., None], 0, vis.transpose(1, 0, 2))
        data.append(rows)
        flag.append(np.repeat(bad[..., None], NPOL, axis=2))
    return np.concatenate(data), np.concatenate(flag)


def read_ms(path: Path) -> dict[str, np.ndarray]:
    with tables.table(str(path), ack=False) as t:
        return {name: t.getcol(name) for name in
                ("DATA", "FLAG", "TIME", "ANTENNA1", "ANTENNA2", "SCAN_NUMBER", "WEIGHT")}


class Rings:
    """A visibility ring pair created for a test (destroyed by :meth:`destroy`)."""

    def __init__(self, key_factory: Callable[[], str], stream: VisStream, nbufs: int = 16) -> None:
        self.data_key, self.weights_key = key_factory(), key_factory()
        self.stream = stream
        create_ring_pair(self.data_key, self.weights_key,
                         RingLayout(nbufs=nbufs, bufsz=stream.data_dump_bytes),
                         RingLayout(nbufs=nbufs, bufsz=stream.weights_dump_bytes))

    @property
    def options(self) -> list[str]:
        return ["-o", f"DATA_KEY={self.data_key}", "-o", f"WEIGHTS_KEY={self.weights_key}"]

    @contextmanager
    def transfer(self, stream: VisStream | None = None, drop: tuple[str, ...] = ()
                 ) -> Iterator[Callable[..., None]]:
        """Open a transfer; yields ``put(d, lost_channel=None)`` writing the next block with
        the values of dump ``d`` (call it with d = 0, 1, 2, ...). ``drop`` removes header
        keys (bad input)."""
        stream = stream or self.stream
        data_header, weights_header = stream.headers()
        for key in drop:
            data_header.delete(key)
            weights_header.delete(key)
        with RingPairWriter(self.data_key, self.weights_key, timeout=20) as writer:
            with writer.open_transfer(data_header, weights_header) as transfer:
                def put(d: int, lost_channel: int | None = None) -> None:
                    vis, weights = dump(stream, d, lost_channel)
                    with transfer.open_segment(timeout=20) as seg:
                        seg.data[:] = vis.view(np.uint8).reshape(-1)
                        seg.weights[:] = weights.view(np.uint8).reshape(-1)
                yield put

    def destroy(self) -> None:
        destroy_ring_pair(self.data_key, self.weights_key)


def start_mswrite(workdir: Path, args: list[str], name: str = "msw") -> Process:
    """``svc-mswrite`` in a real subprocess (log in ``<workdir>/<name>.log``), ready to answer."""
    sock = workdir / f"{name}.sock"
    daemon = Process(name, [str(BIN / "svc-mswrite"), "--socket", sock, *args],
                     workdir / f"{name}.log", sock, daemon_env())
    daemon.wait_ready(20.0)
    return daemon
