"""svc-ctl end to end: the installed console script against a real demo daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.common.ctl import main
from tests.common.demo_service import COMMAND as DEMO

SVC_CTL = str(Path(sys.executable).parent / "svc-ctl")


def ctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SVC_CTL, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def demo(demo_factory):
    return demo_factory("-o", "DEMO_BLOCK_PERIOD_S=0.01")


def test_lifecycle_through_svc_ctl(demo, short_dir):
    beam = short_dir / "beam.hdr"
    beam.write_text("# beam config\nDATA_KEY a000\nWEIGHTS_KEY a011\n")
    result = ctl(demo.socket, "configure_beam", str(beam), "-o", "WEIGHTS_KEY=a010")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "configure_beam: ok, state BeamConfigured\n",
        "",
    )
    assert ctl(demo.socket, "configure_scan").stdout == "configure_scan: ok, state ScanConfigured\n"
    assert ctl(demo.socket, "start_scan", "-o", "SCAN_ID=9").returncode == 0
    status = ctl(demo.socket, "status")
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0] == "svc-demo: Scanning, health OK"
    assert "  allowed: end_scan, reset" in lines
    assert "  WEIGHTS_KEY a010" in lines and "  SCAN_ID 9" in lines
    as_json = json.loads(ctl(demo.socket, "status", "--json").stdout)
    assert as_json["state"] == "Scanning" and as_json["config"]["start"] == {"SCAN_ID": 9}
    assert as_json["counters"]["scan_id"] == 9
    assert ctl(demo.socket, "end_scan").returncode == 0
    assert ctl(demo.socket, "reset").stdout == "reset: ok, state Idle\n"


def test_refusal_is_one_line_and_exit_1(demo):
    result = ctl(demo.socket, "start_scan", "-o", "SCAN_ID=1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: start_scan is not allowed in state Idle "
        "(allowed: configure_beam, reset) (state Idle)\n"
    )
    result = ctl(demo.socket, "configure_beam", "-o", "DATA_KEY=xyz", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["reason"] == "invalid_config"
    assert result.stderr.startswith("Error: configure_beam config: 2 problems: DATA_KEY 'xyz'")


def test_unreachable_daemon_exits_3(short_dir):
    result = ctl(str(short_dir / "nobody.sock"), "status")
    assert result.returncode == 3
    assert (
        result.stderr
        == f"Error: cannot connect to {short_dir / 'nobody.sock'}: No such file or directory\n"
    )


def test_bad_config_file_and_option(short_dir):
    bad = short_dir / "bad.hdr"
    bad.write_text("JUSTAKEY\n")
    result = CliRunner().invoke(main, [str(short_dir / "x.sock"), "configure_beam", str(bad)])
    assert result.exit_code == 1
    assert result.output == f"Error: {bad}: line 1: expected 'KEY value', got 'JUSTAKEY'\n"
    result = CliRunner().invoke(main, [str(short_dir / "x.sock"), "status", "-o", "NOEQUALS"])
    assert result.exit_code == 1
    assert result.output == "Error: options: 1 problem: -o 'NOEQUALS': expected KEY=VALUE\n"


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["/tmp/x.sock", "launch"])
    assert result.exit_code == 2
    assert "'launch' is not one of 'status', 'configure_beam'" in result.output


def test_help_has_examples():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "svc-ctl /run/ringpipe/svc-stat@beam.sock status" in result.output


def test_demo_daemon_help_has_example():
    result = subprocess.run(
        [*DEMO, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for option in (
        "--config FILE",
        "-o, --set KEY=VALUE",
        "--log-level",
        "--socket PATH",
        "--autonomous / --managed",
        "Example:",
    ):
        assert option in result.stdout


def test_idle_connections_lock_nobody_out_for_long_and_svc_ctl_says_busy(demo):
    """Issue 13.13: 16 idle connections fill every slot: svc-ctl prints busy (not "Broken
    pipe") and exits 3; the idle ones are closed after 5 s, then svc-ctl gets through."""
    import socket
    import time

    idle = []
    try:
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(demo.socket))
            idle.append(s)
        time.sleep(0.3)  # every slot taken
        started = time.monotonic()
        result = ctl(demo.socket, "status")
        assert result.returncode == 3, result
        assert result.stderr == ("Error: busy: too many control connections (16 open; idle ones "
                                 "are closed after 5 s): try again (state Idle)\n")
        assert "Broken pipe" not in result.stderr
        while ctl(demo.socket, "status").returncode != 0:
            assert time.monotonic() - started < 10, "still locked out"
            time.sleep(0.5)
        assert time.monotonic() - started >= 4
        assert all(s.recv(1) == b"" for s in idle)  # the daemon closed them
    finally:
        for s in idle:
            s.close()
    status = demo.status()
    assert status["control"]["requests_rejected_busy_total"] >= 1
