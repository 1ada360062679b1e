"""The control socket of a real demo daemon: every transition, every refusal, garbage input."""

from __future__ import annotations

import os
import random
import socket
import stat
import struct
import subprocess

import msgpack
import pytest

from services.common.control import ControlClient
from services.common.lifecycle import TRANSITIONS, Command, State
from services.common.protocol import decode, encode, read_frame
from tests.common.demo_service import COMMAND as DEMO

from .conftest import DEMO_BEAM


@pytest.fixture
def demo(demo_factory):
    return demo_factory("-o", "DEMO_BLOCK_PERIOD_S=0.01", "-o", "STOP_TIMEOUT_S=5")


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def rejected(reply: dict) -> dict:
    return {k: v for k, v in reply["control"].items() if k.startswith("requests_rejected")}


def test_every_transition_over_the_socket(demo):
    steps = [
        ("configure_beam", {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010"}, "BeamConfigured"),
        ("configure_scan", {"DEMO_BLOCK_PERIOD_S": "0.01"}, "ScanConfigured"),
        ("start_scan", {"SCAN_ID": 42}, "Scanning"),
        ("end_scan", None, "ScanConfigured"),
        ("start_scan", {"SCAN_ID": "43"}, "Scanning"),
        ("end_scan", None, "ScanConfigured"),
        ("deconfigure_scan", None, "BeamConfigured"),
        ("deconfigure_beam", None, "Idle"),
        ("configure_beam", {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010"}, "BeamConfigured"),
        ("reset", None, "Idle"),
    ]
    for command, config, state in steps:
        reply = demo.request(command, config)
        assert reply == {
            "ok": True,
            "state": state,
            "error": None,
            "reason": None,
            "command": command,
        }, command
    status = demo.request("status")
    assert status["counters"]["scans_total"] == 2 and status["counters"]["scan_id"] == 43
    assert status["control"]["commands_ok_total"] == len(steps) + 2  # + two status requests
    assert status["health"] == {"state": "OK", "reasons": []}


def test_every_refusal_over_the_socket(demo):
    """Each state: every command outside the table is refused, with the state unchanged."""
    path = [
        ("configure_beam", {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010"}),
        ("configure_scan", {}),
        ("start_scan", {"SCAN_ID": 1}),
    ]
    refusals = 0
    for index, state in enumerate(
        [State.IDLE, State.BEAM_CONFIGURED, State.SCAN_CONFIGURED, State.SCANNING]
    ):
        if index:
            assert demo.request(*path[index - 1])["ok"]
        for command in Command:
            if command in TRANSITIONS[state]:
                continue
            reply = demo.request(command.value)
            refusals += 1
            assert reply["ok"] is False and reply["reason"] == "not_allowed"
            assert reply["state"] == state.value
            assert reply["error"].startswith(
                f"{command.value} is not allowed in state {state.value}"
            )
    status = demo.request("status")
    assert status["state"] == "Scanning"
    assert status["control"]["commands_refused_total"] == refusals
    assert demo.request("reset")["state"] == "Idle"


def test_validation_and_hook_refusals_over_the_socket(demo):
    reply = demo.request("configure_beam", {"DATA_KEY": "nothex", "EXTRA": "1"})
    assert reply["reason"] == "invalid_config" and reply["state"] == "Idle"
    assert reply["error"] == (
        "configure_beam config: 3 problems: EXTRA: unknown key for configure_beam; "
        "DATA_KEY 'nothex' (command): is not a ring key (1 to 8 hexadecimal digits, e.g. a000); "
        "WEIGHTS_KEY: missing, required (weights ring key)"
    )
    reply = demo.request(
        "configure_beam", {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010", "DEMO_REFUSE_CONFIGURE": True}
    )
    assert (reply["reason"], reply["state"]) == ("refused", "Idle")
    reply = demo.request("status", {"X": 1})
    assert (reply["ok"], reply["reason"]) == (False, "invalid_config")


def test_runtime_error_keeps_the_daemon_serving_and_reset_recovers(demo):
    assert demo.request("configure_beam", {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010"})["ok"]
    assert demo.request("configure_scan", {"DEMO_FAIL_AFTER_BLOCKS": 3})["ok"]
    assert demo.request("start_scan", {"SCAN_ID": 5})["ok"]
    status = demo.wait_state("RuntimeError")
    assert status["health"] == {
        "state": "FAIL",
        "reasons": ["scan loop failed: RuntimeError: demo scan failed on purpose after 3 blocks"],
    }
    assert status["previous_state"] == "Scanning" and status["allowed"] == ["reset"]
    assert demo.request("reset") == {
        "ok": True,
        "state": "Idle",
        "error": None,
        "reason": None,
        "command": "reset",
    }
    assert demo.proc.poll() is None


def test_garbage_is_rejected_counted_and_the_daemon_keeps_serving(demo):
    rng = random.Random(1234)
    cases = [
        (frame(b"\xc1\xc1\xc1"), "malformed"),  # 0xc1 is never valid msgpack
        (frame(msgpack.packb([1, 2, 3])), "not_a_map"),
        (frame(msgpack.packb("status")), "not_a_map"),
        (frame(msgpack.packb({"command": 7})), "bad_type"),
        (frame(msgpack.packb({"command": "status", "config": [1]})), "bad_type"),
        (
            frame(msgpack.packb({"command": "configure_beam", "config": {"A": {"b": 1}}})),
            "bad_type",
        ),
        (frame(msgpack.packb({"command": "status", "verbose": True})), "bad_type"),
        (frame(msgpack.packb({1: "status"})), "malformed"),  # non-string map key
        (frame(msgpack.packb({"command": "launch"})), "unknown_command"),
        (frame(b""), "malformed"),
    ]
    with ControlClient(demo.socket) as client:  # one connection survives every bad frame
        for raw, reason in cases:
            reply = client.request_raw(raw)
            assert (reply["ok"], reply["reason"], reply["state"]) == (False, reason, "Idle"), raw
        assert client.request("status")["ok"]
    # A length beyond the 1 MiB cap: rejected unread, the connection is closed.
    with ControlClient(demo.socket) as client:
        reply = client.request_raw(struct.pack(">I", 50 << 20) + b"x" * 100)
        assert reply["reason"] == "oversized"
        assert reply["error"] == "message of 52428800 bytes exceeds the limit of 1048576"
    # Random bytes, and a frame cut short by the client closing.
    for _ in range(5):
        with socket.socket(socket.AF_UNIX) as raw_sock:
            raw_sock.connect(demo.socket)
            raw_sock.sendall(bytes(rng.randrange(256) for _ in range(64)))
            raw_sock.shutdown(socket.SHUT_WR)
            raw_sock.settimeout(10)
            try:
                while raw_sock.recv(65536):
                    pass
            except ConnectionResetError:  # the server closed with our bytes unread
                pass
    with socket.socket(socket.AF_UNIX) as raw_sock:
        raw_sock.connect(demo.socket)
        raw_sock.sendall(struct.pack(">I", 100) + b"abc")
    status = demo.request("status")
    counts = rejected(status)
    assert counts["requests_rejected_malformed_total"] >= 3
    assert counts["requests_rejected_not_a_map_total"] >= 2
    assert counts["requests_rejected_bad_type_total"] == 4
    assert counts["requests_rejected_unknown_command_total"] == 1
    assert counts["requests_rejected_oversized_total"] >= 1
    assert sum(counts.values()) >= len(cases) + 1 + 5
    assert status["state"] == "Idle" and demo.proc.poll() is None


def test_too_many_connections_get_busy(demo):
    idle = []
    try:
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX)
            s.connect(demo.socket)
            idle.append(s)
        with socket.socket(socket.AF_UNIX) as extra:
            extra.connect(demo.socket)
            extra.settimeout(5)
            reply = decode(read_frame(extra))
        assert reply == {
            "ok": False,
            "state": "Idle",
            "error": "too many control connections (16 open; idle ones are closed after 5 s): "
            "try again",
            "reason": "busy",
        }
    finally:
        for s in idle:
            s.close()
    demo.wait_state("Idle")


def test_socket_mode_and_stale_socket_replaced(demo_factory, short_dir):
    path = short_dir / "demo0.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as after kill -9
    demo = demo_factory()
    assert stat.S_IMODE(os.stat(demo.socket).st_mode) == 0o660
    assert demo.request("status")["ok"]
    assert "removing stale control socket" in demo.output()


def test_socket_in_use_exits_3(demo_factory):
    first = demo_factory()
    result = subprocess.run(
        [*DEMO, "--socket", first.socket],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert f"control socket {first.socket} is in use by another running process" in result.stderr
    assert first.request("status")["ok"]


def test_request_size_cap_applies_to_client_encoding():
    with pytest.raises(Exception, match="exceeds"):
        encode({"command": "x", "config": {"K": "v" * (2 << 20)}})


def test_demo_beam_constant_is_valid(demo_factory):
    demo = demo_factory(*DEMO_BEAM, "--autonomous")
    assert demo.wait_state("Scanning")["config"]["beam"]["DATA_KEY"] == "a000"
