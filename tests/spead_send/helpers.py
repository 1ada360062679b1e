"""Shared helpers: synthetic transfers written into real rings, svc-spead-send as a process,
and a stock spead2 ItemGroup receiver."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import spead2
import spead2.recv

from ringbuf import DadaHeader, RingLayout, RingPairWriter, create_ring_pair
from services.common.processes import Process, daemon_env, options
from services.formats import cbf_sdp, pst

SPEAD_SEND = [sys.executable, "-m", "services.spead_send.main"]


def vis_headers(nant: int, nchan: int, cps: int, dpb: int, int_time: float, time0: float,
                scan_id: int, **extra: object) -> tuple[DadaHeader, DadaHeader]:
    """Headers shaped as svc-ingest writes them for visibilities."""
    nbl = nant * (nant + 1) // 2
    shared: dict[str, object] = {
        "HDR_SIZE": 4096, "SCAN_ID": scan_id, "UTC_START": "2026-12-01-06:00:00",
        "TIME0_UNIX": repr(time0), "INT_TIME": repr(int_time), "ICD_EPOCH": "UNIX",
        "NANT": nant, "NBASELINE": nbl, "BASELINE_ORDER": "upper-triangle-with-autos",
        "NCHAN": nchan, "START_CHANNEL": 0, "CHANNELS_PER_STREAM": cps,
        "FREQ0_HZ": repr(150e6), "CHAN_WIDTH_HZ": repr(100e3), "NPOL": 4,
        "POL_ORDER": "XX,XY,YX,YY", "NDIM": 2, "DUMPS_PER_BLOCK": dpb, **extra}
    data = DadaHeader({"DATA_KIND": "VIS", **shared, "NBIT": 32,
                       "RESOLUTION": nchan * nbl * 32, "OBS_OFFSET": 0})
    weights = DadaHeader({"DATA_KIND": "VIS_WEIGHTS", **shared, "NBIT": 8,
                          "RESOLUTION": nchan * nbl * 2, "OBS_OFFSET": 0})
    return data, weights


def vis_dumps(ndumps: int, nchan: int, nbl: int, seed: int = 3) -> np.ndarray:
    """Random dumps (ndumps, nchan, nbl) of the ICD's [TCI, FD, VIS x 4]."""
    rng = np.random.default_rng(seed)
    out = np.zeros((ndumps, nchan, nbl), cbf_sdp.VIS_DTYPE)
    shape = (ndumps, nchan, nbl, 4)
    out["VIS"] = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype("c8")
    out["TCI"] = rng.integers(-128, 128, (ndumps, nchan, nbl))
    out["FD"] = rng.integers(0, 256, (ndumps, nchan, nbl))
    return out


def vis_blocks(dumps: np.ndarray, dpb: int) -> list[tuple[bytes, bytes]]:
    """The (data, weights) ring blocks of dumps, DUMPS_PER_BLOCK at a time (last short)."""
    blocks = []
    for k in range(0, len(dumps), dpb):
        part = dumps[k:k + dpb]
        data = np.ascontiguousarray(part["VIS"]).tobytes()
        weights = np.zeros(part.shape, cbf_sdp.WEIGHTS_DTYPE)
        weights["TCI"], weights["FD"] = part["TCI"], part["FD"]
        blocks.append((data, weights.tobytes()))
    return blocks


@dataclass
class Beam:
    """A synthetic PST beam: ``scale`` (heaps, packets) float32, ``weights`` (heaps,
    packets, n) uint16 and ``data`` (heaps, packets, 2, UDP_NCHAN, UDP_NSAMP, 2)."""

    layout: pst.PstLayout
    scale: np.ndarray
    weights: np.ndarray
    data: np.ndarray


def beam(nheaps: int, nchan: int = 8, udp_nchan: int = 4, udp_nsamp: int = 4,
         wt_nsamp: int = 2, nbit: int = 8, seed: int = 5) -> Beam:
    lay = pst.PstLayout.from_shape(nchan, udp_nchan, udp_nsamp, wt_nsamp, nbit)
    rng = np.random.default_rng(seed)
    pph = lay.packets_per_heap
    scale = rng.random((nheaps, pph)).astype(np.float32)
    raw = scale.view(np.uint32)
    raw[0, 1] = 0x7FC00123  # a NaN with a payload: must arrive bit for bit
    weights = rng.integers(0, 65536, (nheaps, pph, lay.packet_weights_size // 2)).astype("<u2")
    info = np.iinfo(lay.sample_dtype)
    data = rng.integers(info.min, info.max + 1,
                        (nheaps, pph, 2, udp_nchan, udp_nsamp, 2)).astype(lay.sample_dtype)
    return Beam(lay, scale, weights, data)


def beam_headers(b: Beam, scan_id: int, **extra: object) -> tuple[DadaHeader, DadaHeader]:
    lay = b.layout
    shared: dict[str, object] = {
        "HDR_SIZE": 4096, "TELESCOPE": "SKALow", "NANT": 1, "TSAMP": "207.36",
        "WT_NSAMP": lay.wt_nsamp, "UDP_NSAMP": lay.udp_nsamp, "UDP_NCHAN": lay.udp_nchan,
        "NCHAN": lay.nchan, "START_CHANNEL": 0, "END_CHANNEL": lay.nchan, "OBS_OFFSET": 0,
        "UTC_START": "2026-12-01-06:30:00", "PICOSECONDS": 123456789, "SCAN_ID": scan_id,
        **extra}
    dkeys, wkeys = lay.header_keys()
    data = DadaHeader({**shared, "NBIT": lay.nbit, "NPOL": 2, "NDIM": 2, **dkeys})
    weights = DadaHeader({**shared, "NBIT": 16, "NPOL": 1, "NDIM": 1, **wkeys})
    return data, weights


def beam_blocks(b: Beam, hpb: int) -> list[tuple[bytes, bytes]]:
    """PST data and weights ring blocks, ``hpb`` PST heaps each (last short)."""
    lay = b.layout
    blocks = []
    for h in range(0, len(b.scale), hpb):
        sl = slice(h, h + hpb)
        n, pph = len(b.scale[sl]), lay.packets_per_heap
        rec = np.zeros((n, pph, lay.weights_packet_stride), np.uint8)
        rec[:, :, :4] = b.scale[sl].reshape(n, pph, 1).view(np.uint8)
        rec[:, :, lay.packet_scales_size:] = b.weights[sl].view(np.uint8).reshape(n, pph, -1)
        blocks.append((np.ascontiguousarray(b.data[sl]).tobytes(), rec.tobytes()))
    return blocks


def make_pair(key_factory: Any, data_bufsz: int, weights_bufsz: int, nbufs: int = 8,
              nreaders: int = 1) -> tuple[str, str]:
    dk, wk = key_factory(), key_factory()
    create_ring_pair(dk, wk, RingLayout(nbufs=nbufs, bufsz=data_bufsz, nreaders=nreaders),
                     RingLayout(nbufs=nbufs, bufsz=weights_bufsz, nreaders=nreaders))
    return dk, wk


def write_transfer(dk: str, wk: str, headers: tuple[DadaHeader, DadaHeader],
                   blocks: list[tuple[bytes, bytes]]) -> None:
    """One transfer into a ring pair (a real ring writer); blocks may be short."""
    with RingPairWriter(dk, wk, timeout=30) as writer:
        with writer.open_transfer(*headers) as transfer:
            for data, weights in blocks:
                seg = transfer.open_segment()
                seg.data[:len(data)] = np.frombuffer(data, np.uint8)
                seg.weights[:len(weights)] = np.frombuffer(weights, np.uint8)
                seg.commit(len(data), len(weights))


def start_spead_send(tmp_path: Path, name: str, values: dict[str, object]) -> Process:
    """svc-spead-send in autonomous mode, its control socket answering."""
    sock = tmp_path / f"{name}.sock"
    proc = Process(name, [*SPEAD_SEND, "--autonomous", "--socket", sock, *options(values)],
                   tmp_path / f"{name}.log", sock, env=daemon_env())
    proc.wait_ready()
    return proc


@dataclass
class Decoded:
    """What a stock ItemGroup receiver saw on one port: every heap's updated item values."""

    heaps: list[dict[str, Any]] = field(default_factory=list)
    starts: int = 0
    errors: list[BaseException] = field(default_factory=list)


def item_group_receiver(port: int, group: str = "") -> tuple[Decoded, threading.Thread]:
    """A thread running a plain spead2 receiver + ItemGroup on ``port`` until the end heap
    (of multicast ``group`` on the loopback interface, if given)."""
    out = Decoded()
    stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=8))
    if group:
        stream.add_udp_reader(group, port, buffer_size=1 << 22, interface_address="127.0.0.1")
    else:
        stream.add_udp_reader(port, bind_hostname="127.0.0.1", buffer_size=1 << 22)

    def run() -> None:
        group = spead2.ItemGroup()
        try:
            for heap in stream:
                if heap.is_start_of_stream():
                    out.starts += 1
                updated = group.update(heap)
                out.heaps.append({name: _copy(item.value) for name, item in updated.items()})
        except BaseException as exc:  # reported by the test
            out.errors.append(exc)
        finally:
            stream.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return out, thread


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value
