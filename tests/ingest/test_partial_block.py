"""Transfers that are not a whole number of ring blocks end with a short block, not padding."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import spead2
import spead2.send

from services.common.config import ConfigSource, build_config
from services.formats import cbf_sdp
from services.ingest.assemble import make_assembler
from services.ingest.receiver import ChunkReceiver
from services.senders.beam_send import BeamSendConfig, generate
from services.senders.emu_send import read_ms
from tests.ingest.fakes import InprocTransport, MemorySink
from tests.ingest.helpers import free_ports, ingest_config, ingest_on_rings, settings_of
from tests.ingest.test_bad_input import CPS as IP_CPS
from tests.ingest.test_bad_input import NBL as IP_NBL
from tests.ingest.test_bad_input import heap, make_ig
from tests.ingest.test_beam_udp import BIN, SHAPE
from tests.ingest.test_vis_udp import CPS, NANT, NBL, NCHAN, emu_send, vis_config

NTIME, DPB = 5, 3  # blocks of dumps [0, 1, 2] and [3, 4] (+ one padding dump not sent)
BEAM_HEAPS, HPB, NPACKET = 8, 3, 2  # blocks of PST heaps [0-2], [3-5], [6, 7] (+ one not sent)
PACKET_DATA = 2 * 24 * 32 * 2 * 2
PACKET_WEIGHTS = 4 + 48


@pytest.fixture(scope="module")
def ms5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ms") / "sim5.ms"
    subprocess.run([BIN / "sim-ms", str(out), "--nant", str(NANT), "--nchan", str(NCHAN),
                    "--ntime", str(NTIME), "--source", "2,0,0", "--noise-jy", "0.1"],
                   check=True, capture_output=True)
    return out


@pytest.mark.parametrize("skip", ["", "3:1"])  # 3:1 = dump 3, channel block 1: final block
def test_vis_transfer_is_as_long_as_sent(ms5, key_factory, skip):
    port = free_ports(NCHAN // CPS)
    cfg = vis_config(key_factory, port, DUMPS_PER_BLOCK=DPB)
    dump_data, dump_weights = NCHAN * NBL * 32, NCHAN * NBL * 2
    with ingest_on_rings(cfg, DPB * dump_data, DPB * dump_weights) as (out, rx, reader):
        time.sleep(0.5)
        sent = emu_send(ms5, port, *([f"transmission.skip_heaps={skip}"] if skip else []))
        assert sent.returncode == 0, sent.stderr
        rx.join(20)
        reader.join(20)
    assert not out.errors, out.errors
    assert [len(d) for d in out.data] == [DPB * dump_data, 2 * dump_data]
    assert [len(w) for w in out.weights] == [DPB * dump_weights, 2 * dump_weights]
    assert out.offsets == [0, DPB * dump_data]
    vis = np.concatenate(out.data).view(np.complex64).reshape(NTIME, NCHAN // CPS, CPS, NBL, 4)
    fd = np.concatenate(out.weights).view(cbf_sdp.WEIGHTS_DTYPE).reshape(
        NTIME, NCHAN // CPS, CPS, NBL)["FD"]
    expected = read_ms(str(ms5), 0, 0, 0).payload.reshape(NTIME, NCHAN // CPS, CPS, NBL)
    for k in range(NTIME):
        for s in range(NCHAN // CPS):
            if skip and (k, s) == (3, 1):
                assert not vis[k, s].any() and not fd[k, s].any()
            else:
                np.testing.assert_array_equal(vis[k, s], expected["VIS"][k, s])
                np.testing.assert_array_equal(fd[k, s], expected["FD"][k, s])
    c = out.receiver.counters
    nlost = 1 if skip else 0
    assert c.heaps_lost_total == nlost
    assert c.heaps_complete_total == NTIME * NCHAN // CPS - nlost
    assert c.heaps_padding_skipped_total == NCHAN // CPS  # one dump of channel blocks
    assert c.blocks_total == 2 and out.result is not None and out.result.blocks == 2


@pytest.mark.parametrize("skip", ["", "6:1"])  # 6:1 = PST heap 6, packet 1: final block
def test_beam_transfer_is_as_long_as_sent(key_factory, skip):
    port = free_ports(1)
    cfg = ingest_config(PROFILE="beam", DATA_KEY=key_factory(), WEIGHTS_KEY=key_factory(),
                        PORT_START=port, BIND_HOST="127.0.0.1", STREAM_TIMEOUT_S=3,
                        FREQ=87.5, BW=1.5625, **SHAPE)
    send_values = {**SHAPE, "DATA_PORT": port, "beam.pool_heaps": 3, "beam.sigma": 20,
                   "beam.duration_s": BEAM_HEAPS * 32 * 207.36e-6, "beam.skip_packets": skip}
    heap_data, heap_weights = NPACKET * PACKET_DATA, NPACKET * PACKET_WEIGHTS
    with ingest_on_rings(cfg, HPB * heap_data, HPB * heap_weights) as (out, rx, reader):
        time.sleep(0.5)
        args = [BIN / "beam-send"]
        for k, v in send_values.items():
            args += ["-o", f"{k}={v}"]
        sent = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        rx.join(20)
        reader.join(20)
    assert not out.errors, out.errors
    assert [len(d) for d in out.data] == [HPB * heap_data] * 2 + [2 * heap_data]
    assert [len(w) for w in out.weights] == [HPB * heap_weights] * 2 + [2 * heap_weights]
    pool = generate(build_config(BeamSendConfig, ConfigSource(overrides=(("t", send_values),))))
    data = np.concatenate(out.data).reshape(BEAM_HEAPS, NPACKET, PACKET_DATA)
    weights = np.concatenate(out.weights).reshape(BEAM_HEAPS, NPACKET, PACKET_WEIGHTS)
    for n in range(BEAM_HEAPS):
        for p in range(NPACKET):
            scale = weights[n, p, :4].view(np.float32)[0]
            if skip and (n, p) == (6, 1):
                assert not data[n, p].any() and not weights[n, p, 4:].any() and np.isnan(scale)
            else:
                assert data[n, p].tobytes() == pool.data[n % 3, p].tobytes()
                assert weights[n, p, 4:].tobytes() == pool.weights[n % 3, p].tobytes()
                assert scale.tobytes() == pool.scale[n % 3, p].tobytes()
    c = out.receiver.counters
    nlost = 1 if skip else 0
    assert c.heaps_lost_total == nlost
    assert c.heaps_complete_total == BEAM_HEAPS * NPACKET - nlost
    assert c.heaps_padding_skipped_total == NPACKET  # one PST heap of packets
    assert c.blocks_total == 3


def _inproc(key_factory, max_chunks: int = 4, timeout_s: float = 30.0):
    cfg = ingest_config(DATA_KEY=key_factory(), WEIGHTS_KEY=key_factory(), PORT_START=1,
                        NSTREAMS=1, NANT=2, NCHAN=IP_CPS, CHANNELS_PER_STREAM=IP_CPS, INT_TIME=1,
                        DUMPS_PER_BLOCK=4, MAX_CHUNKS=max_chunks, STREAM_TIMEOUT_S=timeout_s)
    queue = spead2.InprocQueue()
    sink = MemorySink(4 * IP_CPS * IP_NBL * 32, 4 * IP_CPS * IP_NBL * 2)
    receiver = ChunkReceiver(make_assembler(cfg, sink.data_bufsz), settings_of(cfg),
                             InprocTransport([queue]))
    stream = spead2.send.InprocStream(spead2.ThreadPool(), [queue])
    return queue, sink, receiver, stream


def _dumps(blocks: list[np.ndarray]) -> list[int]:
    """The dump index written into each dump's VIS by test_bad_input.payload (dump*100+...)."""
    vis = np.concatenate(blocks).view(np.complex64).reshape(-1, IP_CPS * IP_NBL * 4)
    return [int(v[0].real) // 100 for v in vis]


def test_timeout_commits_the_held_block_trimmed(key_factory):
    queue, sink, receiver, stream = _inproc(key_factory, timeout_s=0.5)
    ig = make_ig()
    for d in (0, 1, 2, 3, 4, 6):  # dump 5 missing before the last sent dump 6
        stream.send_heap(heap(ig, d, 0))
    result = receiver.run_transfer(sink, threading.Event())
    queue.stop()
    assert result is not None and result.reason == "timeout" and result.blocks == 2
    (transfer,) = sink.transfers
    assert transfer.ended and not sink.open
    assert [len(d) for d in transfer.data] == [sink.data_bufsz, 3 * sink.data_bufsz // 4]
    assert _dumps(transfer.data) == [0, 1, 2, 3, 4, 0, 6]  # dump 5 a hole (VIS 0)
    fd = np.concatenate(transfer.weights).view(cbf_sdp.WEIGHTS_DTYPE)["FD"].reshape(7, -1)
    assert (fd[5] == 0).all() and (fd[[0, 1, 2, 3, 4, 6]] == 255).all()
    c = receiver.counters
    assert c.heaps_lost_total == 1 and c.heaps_padding_skipped_total == 1


def test_stop_commits_the_held_block_trimmed(key_factory):
    queue, sink, receiver, stream = _inproc(key_factory, max_chunks=1)
    stop = threading.Event()
    result = {}
    rx = threading.Thread(target=lambda: result.setdefault("r", receiver.run_transfer(sink, stop)))
    rx.start()
    ig = make_ig()
    for d in (0, 1, 2, 3, 4, 8):  # dump 8 (block 2) pushes block 1 out of the window
        stream.send_heap(heap(ig, d, 0))
    deadline = time.monotonic() + 10
    while receiver.counters.heaps_complete_total < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()  # block 2 is still in the reorder window: dropped
    rx.join(10)
    queue.stop()
    assert not rx.is_alive() and result["r"].reason == "stop" and result["r"].blocks == 2
    (transfer,) = sink.transfers
    assert transfer.ended and not sink.open
    assert [len(d) for d in transfer.data] == [sink.data_bufsz, sink.data_bufsz // 4]
    assert _dumps(transfer.data) == [0, 1, 2, 3, 4]
    assert receiver.counters.heaps_lost_total == 0


def test_exception_commits_the_held_block_empty(key_factory):
    queue, sink, receiver, stream = _inproc(key_factory)
    ig = make_ig()
    for d in range(6):  # block 0 full, block 1 held (dumps 4, 5) when the tick fails
        stream.send_heap(heap(ig, d, 0))
    stream.send_heap(ig.get_end())

    def tick() -> None:
        if receiver.counters.heaps_complete_total == 6:
            raise OSError("status socket gone")

    with pytest.raises(OSError, match="status socket gone"):
        receiver.run_transfer(sink, threading.Event(), tick)
    queue.stop()
    (transfer,) = sink.transfers
    assert transfer.ended and not sink.open
    assert _dumps(transfer.data) == [0, 1, 2, 3]  # block 1 was thrown away, not left open
