"""Shared test helpers: a receiver on real rings in a thread, configs, rings."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ringbuf import (
    RingLayout,
    RingPairReader,
    RingPairWriter,
    create_ring_pair,
    destroy_ring_pair,
)
from services.common.config import ConfigSource, build_config
from services.ingest.assemble import make_assembler
from services.ingest.config import IngestConfig
from services.ingest.receiver import ChunkReceiver, ReceiveSettings, TransferResult, UdpTransport
from services.ingest.sink import RingPairSink


def free_ports(n: int) -> int:
    """A base port with ``n`` consecutive free UDP ports on 127.0.0.1."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + n >= 65000:
            continue
        socks = []
        try:
            for i in range(n):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free ports")


def ingest_config(**values: object) -> IngestConfig:
    return build_config(IngestConfig, ConfigSource(overrides=(("test", {
        k: str(v) for k, v in values.items()}),)))


def settings_of(cfg: IngestConfig) -> ReceiveSettings:
    return ReceiveSettings(cfg.nstreams, cfg.max_chunks, cfg.max_time_jump,
                           cfg.immediate_byte_order, cfg.stream_timeout_s, cfg.scan_id)


@dataclass
class Received:
    data_header: object = None
    weights_header: object = None
    data: list[np.ndarray] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    result: TransferResult | None = None
    receiver: ChunkReceiver | None = None
    errors: list[BaseException] = field(default_factory=list)


@contextmanager
def ingest_on_rings(cfg: IngestConfig, data_bufsz: int, weights_bufsz: int, nbufs: int = 8):
    """Rings + a receiver thread (one transfer) + a guaranteed reader thread."""
    create_ring_pair(cfg.data_key, cfg.weights_key, RingLayout(nbufs=nbufs, bufsz=data_bufsz),
                     RingLayout(nbufs=nbufs, bufsz=weights_bufsz))
    out = Received()
    stop = threading.Event()

    def read() -> None:
        try:
            with RingPairReader(cfg.data_key, cfg.weights_key, timeout=30, stop=stop) as r:
                px = r.open_transfer()
                out.data_header, out.weights_header = px.data_header, px.weights_header
                for seg in px:
                    out.data.append(seg.data.copy())
                    out.weights.append(seg.weights.copy())
                    out.offsets.append(seg.obs_offset)
        except BaseException as exc:  # reported by the test
            out.errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writer = RingPairWriter(cfg.data_key, cfg.weights_key, stop=stop)
    sink = RingPairSink(writer, stop)
    receiver = ChunkReceiver(make_assembler(cfg, sink.data_bufsz), settings_of(cfg),
                             UdpTransport("127.0.0.1", cfg.port_start, 9200, 1 << 21))
    out.receiver = receiver

    def receive() -> None:
        try:
            out.result = receiver.run_transfer(sink, stop)
        except BaseException as exc:
            out.errors.append(exc)

    rx = threading.Thread(target=receive)
    rx.start()
    try:
        yield out, rx, reader
    finally:
        rx.join(20)
        stop.set()
        rx.join(10)
        reader.join(10)
        writer.close()
        destroy_ring_pair(cfg.data_key, cfg.weights_key)
