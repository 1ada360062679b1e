"""FD_POLICY: senders that do not populate FD (the emulator, SIP) and senders that do."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import spead2
import spead2.send

from services.common.config import ConfigError
from services.formats import cbf_sdp
from services.ingest.assemble import make_assembler
from services.ingest.receiver import ChunkReceiver
from tests.ingest.fakes import InprocTransport, MemorySink
from tests.ingest.helpers import ingest_config, settings_of
from tests.ingest.test_bad_input import CPS, NBL, NCHAN, heap, make_ig

# heap (dump, block) -> what its FD and visibilities are
UNPOPULATED, VALID, PARTLY_FLAGGED, EMPTY = (0, 0), (0, 1), (1, 0), (1, 1)


def payload_of(case: tuple[int, int]) -> np.ndarray:
    p = np.zeros((CPS, NBL), cbf_sdp.VIS_DTYPE)
    p["VIS"] = (np.arange(p.size).reshape(CPS, NBL) + 1 + 10 * sum(case))[..., None]
    if case == VALID:
        p["FD"] = 255
    elif case == PARTLY_FLAGGED:
        p["FD"] = 255
        p["FD"][0, 1] = 0
    elif case == EMPTY:
        p["VIS"] = 0
    return p


def receive(policy: str) -> tuple[MemorySink, ChunkReceiver]:
    cfg = ingest_config(DATA_KEY="a0", WEIGHTS_KEY="a2", PORT_START=1, NSTREAMS=2, NANT=2,
                        NCHAN=NCHAN, CHANNELS_PER_STREAM=CPS, INT_TIME=1, FD_POLICY=policy,
                        STREAM_TIMEOUT_S=30)
    queues = [spead2.InprocQueue(), spead2.InprocQueue()]
    sink = MemorySink(NCHAN * NBL * 32, NCHAN * NBL * 2)
    receiver = ChunkReceiver(make_assembler(cfg, sink.data_bufsz), settings_of(cfg),
                             InprocTransport(queues))
    rx = threading.Thread(target=receiver.run_transfer, args=(sink, threading.Event()))
    rx.start()
    streams = [spead2.send.InprocStream(spead2.ThreadPool(), [q]) for q in queues]
    ig = make_ig()
    for case in (UNPOPULATED, VALID, PARTLY_FLAGGED, EMPTY):
        dump, block = case
        h = heap(ig, dump, block)
        ig["data"].value = payload_of(case)
        h = ig.get_heap(descriptors="all", data="all")
        streams[block].send_heap(h)
    for s in streams:
        s.send_heap(ig.get_end())
    rx.join(20)
    assert not rx.is_alive()
    return sink, receiver


def fd_of(sink: MemorySink, case: tuple[int, int]) -> np.ndarray:
    dump, block = case
    wts = sink.transfers[0].weights[dump].view(cbf_sdp.WEIGHTS_DTYPE).reshape(2, CPS, NBL)
    return wts["FD"][block]


def vis_of(sink: MemorySink, case: tuple[int, int]) -> np.ndarray:
    dump, block = case
    return sink.transfers[0].data[dump].view(np.complex64).reshape(2, CPS, NBL, 4)[block]


@pytest.mark.parametrize("policy", ["icd", "ignore", "auto"])
def test_fd_policy(policy):
    sink, receiver = receive(policy)
    sent = {case: payload_of(case) for case in (UNPOPULATED, VALID, PARTLY_FLAGGED, EMPTY)}
    for case, p in sent.items():
        np.testing.assert_array_equal(vis_of(sink, case), p["VIS"])  # data always intact
    expected = {case: p["FD"] for case, p in sent.items()}
    if policy == "ignore":
        expected = {case: np.full((CPS, NBL), 255) for case in sent}
    elif policy == "auto":  # all-zero FD with non-zero data only
        expected[UNPOPULATED] = np.full((CPS, NBL), 255)
    for case in sent:
        np.testing.assert_array_equal(fd_of(sink, case), expected[case], err_msg=str(case))
    c = receiver.counters
    assert c.heaps_fd_unpopulated_total == (1 if policy == "auto" else 0)
    assert c.heaps_complete_total == 4
    assert sink.transfers[0].data_header["FD_POLICY"] == policy


def test_fd_policy_default_is_auto_and_checked():
    cfg = ingest_config(DATA_KEY="a0", WEIGHTS_KEY="a2", PORT_START=1, NANT=2, NCHAN=2,
                        CHANNELS_PER_STREAM=2, INT_TIME=1)
    assert cfg.fd_policy.value == "auto"
    with pytest.raises(ConfigError, match="FD_POLICY"):
        ingest_config(DATA_KEY="a0", WEIGHTS_KEY="a2", PORT_START=1, NANT=2, NCHAN=2,
                      CHANNELS_PER_STREAM=2, INT_TIME=1, FD_POLICY="sometimes")
