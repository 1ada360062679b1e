"""sd_notify against a real AF_UNIX datagram socket, and the watchdog interval."""

from __future__ import annotations

import os
import secrets
import socket

from services.common import systemd


def test_ready_and_status_arrive_in_one_datagram(notify_socket):
    env = {"NOTIFY_SOCKET": notify_socket.path}
    assert systemd.notify(env, ready=True, status="attached to a000")
    assert notify_socket.drain(2.0) == ["READY=1\nSTATUS=attached to a000"]


def test_watchdog_stopping_and_status_lines(notify_socket):
    env = {"NOTIFY_SOCKET": notify_socket.path}
    assert systemd.notify(env, watchdog=True)
    assert systemd.notify(env, stopping=True, status="draining\nnow")
    assert notify_socket.drain(2.0) == ["WATCHDOG=1", "STOPPING=1\nSTATUS=draining now"]


def test_false_and_none_fields_are_left_out(notify_socket):
    env = {"NOTIFY_SOCKET": notify_socket.path}
    assert systemd.notify(env, ready=False, status=None, watchdog=True)
    assert notify_socket.drain(2.0) == ["WATCHDOG=1"]
    assert not systemd.notify(env, ready=False)  # nothing to send
    assert notify_socket.drain(0.2) == []


def test_abstract_namespace_socket():
    name = f"ringpipe-test-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        assert systemd.notify({"NOTIFY_SOCKET": "@" + name}, ready=True)
        assert sock.recv(100) == b"READY=1"


def test_no_notify_socket_is_a_no_op():
    assert systemd.notify({}, ready=True, status="x") is False


def test_unreachable_socket_is_not_an_error(short_dir):
    assert systemd.notify({"NOTIFY_SOCKET": str(short_dir / "missing")}, ready=True) is False


def test_watchdog_interval():
    pid = str(os.getpid())
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "500000"}) == 0.5
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 2.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert systemd.watchdog_interval({}) is None


def test_is_under_systemd():
    assert systemd.is_under_systemd({"INVOCATION_ID": "abc"})
    assert systemd.is_under_systemd({"NOTIFY_SOCKET": "/run/systemd/notify"})
    assert not systemd.is_under_systemd({})
