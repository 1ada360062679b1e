"""run_service in real processes: sd_notify, signals, watchdog, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.common.demo_service import COMMAND as DEMO

from .conftest import DEMO_BEAM

FAST = ["-o", "DEMO_BLOCK_PERIOD_S=0.01"]


def notify_env(notify_socket, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": notify_socket.path, **extra}


def test_ready_status_stopping_and_clean_exit_on_sigterm(demo_factory, notify_socket):
    demo = demo_factory(*DEMO_BEAM, *FAST, env=notify_env(notify_socket))
    ready = notify_socket.wait_for("READY=1")
    assert ready == "READY=1\nSTATUS=Idle; health OK; 0 blocks"
    assert demo.request("configure_beam")["ok"]  # keys from -o: nothing to repeat
    notify_socket.wait_for("STATUS=BeamConfigured; health OK; 0 blocks")
    assert demo.request("configure_scan")["ok"] and demo.request("start_scan", {"SCAN_ID": 3})["ok"]
    notify_socket.wait_for("STATUS=Scanning; health OK; ")
    demo.signal(signal.SIGTERM)
    assert demo.wait() == 0
    stopping = notify_socket.wait_for("STOPPING=1")
    assert stopping == "STOPPING=1\nSTATUS=stopping: draining"
    log = demo.output()
    assert "SIGTERM received: stopping" in log
    assert "state Scanning -> Idle (shutdown)" in log
    assert "final counters: blocks_total=" in log and "scans_total=1" in log
    assert "exiting with code 0" in log
    assert not os.path.exists(demo.socket)  # socket file removed
    assert all("\n" not in line for line in log.splitlines())


def test_sigint_stops_too(demo_factory):
    demo = demo_factory()
    demo.signal(signal.SIGINT)
    assert demo.wait() == 0
    assert "SIGINT received: stopping" in demo.output()


def test_second_signal_forces_exit(demo_factory):
    demo = demo_factory(*DEMO_BEAM, *FAST, "-o", "DEMO_DRAIN_S=30", "-o", "STOP_TIMEOUT_S=60")
    for command, config in [
        ("configure_beam", None),
        ("configure_scan", None),
        ("start_scan", {"SCAN_ID": 1}),
    ]:
        assert demo.request(command, config)["ok"]
    demo.signal(signal.SIGTERM)
    time.sleep(0.5)  # the first signal starts a 30 s drain
    assert demo.proc.poll() is None
    started = time.monotonic()
    demo.signal(signal.SIGTERM)
    assert demo.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 5
    assert "second SIGTERM: exiting at once" in demo.output()


def test_a_scan_loop_still_running_after_stop_timeout_exits_2_at_once(demo_factory):
    """Issue 13.2: nothing is unwound under the running scan thread; the process exits 2
    right after the timeout, logs flushed, without waiting for the thread."""
    demo = demo_factory(*DEMO_BEAM, *FAST, "-o", "DEMO_DRAIN_S=30", "-o", "STOP_TIMEOUT_S=0.2")
    for command, config in [
        ("configure_beam", None),
        ("configure_scan", None),
        ("start_scan", {"SCAN_ID": 1}),
    ]:
        assert demo.request(command, config)["ok"]
    started = time.monotonic()
    demo.signal(signal.SIGTERM)
    assert demo.wait(10) == 2
    assert time.monotonic() - started < 5
    log = demo.output()
    assert ("shutdown incomplete: scan loop did not stop within 0.2 s; nothing was undone "
            "while it runs (reset again later)") in log
    assert ("svc-demo: the scan loop did not stop within STOP_TIMEOUT_S 0.2 s; exiting with "
            "code 2 without closing what it uses") in log
    assert "final counters: blocks_total=" in log and "Traceback" not in log
    assert "-> Idle" not in log  # never unwound
    assert not os.path.exists(demo.socket)


def test_watchdog_is_fed_only_while_the_scan_makes_progress(demo_factory, notify_socket):
    env = notify_env(notify_socket, WATCHDOG_USEC="400000")
    demo = demo_factory(
        *DEMO_BEAM,
        *FAST,
        "-o",
        "DEMO_STALL_AFTER_BLOCKS=60",
        "-o",
        "DEMO_TRANSFER_BLOCKS=1000",
        "--autonomous",
        env=env,
    )
    notify_socket.wait_for("READY=1")
    deadline = time.monotonic() + 15
    while "stalled" not in demo.output() and "no progress" not in demo.output():
        assert time.monotonic() < deadline, demo.output()
        notify_socket.drain(0.1)
    pings = [t for t, m in notify_socket.messages if m == "WATCHDOG=1"]
    assert len(pings) >= 3  # fed while the fake blocks flowed (0.6 s at 0.2 s per ping)
    stall_seen = time.monotonic()
    notify_socket.drain(1.2)
    time.sleep(1.0)
    notify_socket.drain(0.1)
    late = [t for t, m in notify_socket.messages if m == "WATCHDOG=1" and t > stall_seen]
    assert late == []  # the loop is alive but stuck: systemd would restart it
    assert "scan loop made no progress for" in demo.output()
    assert demo.request("status")["state"] == "Scanning"


def test_watchdog_keeps_an_idle_managed_daemon_alive(demo_factory, notify_socket):
    demo_factory(env=notify_env(notify_socket, WATCHDOG_USEC="300000"))
    notify_socket.wait_for("READY=1")
    time.sleep(1.0)
    notify_socket.drain(0.1)
    assert sum(m == "WATCHDOG=1" for _, m in notify_socket.messages) >= 3


def test_watchdog_for_another_pid_is_ignored(demo_factory, notify_socket):
    demo_factory(env=notify_env(notify_socket, WATCHDOG_USEC="200000", WATCHDOG_PID="1"))
    notify_socket.wait_for("READY=1")
    time.sleep(0.8)
    notify_socket.drain(0.1)
    assert not any(m == "WATCHDOG=1" for _, m in notify_socket.messages)


def test_autonomous_failure_exits_2(demo_factory, notify_socket):
    demo = demo_factory(
        *DEMO_BEAM,
        *FAST,
        "-o",
        "DEMO_FAIL_AFTER_BLOCKS=5",
        "--autonomous",
        env=notify_env(notify_socket),
        ready=False,
    )
    assert demo.wait() == 2
    log = demo.output()
    assert (
        "autonomous mode failed: scan loop failed: RuntimeError: demo scan failed on purpose" in log
    )
    assert notify_socket.wait_for("STOPPING=1")


def test_autonomous_refusal_exits_3(demo_factory):
    demo = demo_factory(*DEMO_BEAM, "-o", "DEMO_REFUSE_CONFIGURE=1", "--autonomous", ready=False)
    assert demo.wait() == 3
    assert (
        "cannot start autonomous mode: configure_beam refused: ring a000 is not there"
        in demo.output()
    )


def test_autonomous_config_problem_exits_1(demo_factory):
    demo = demo_factory("-o", "DATA_KEY=a000", "--autonomous", ready=False)
    assert demo.wait() == 1
    assert "WEIGHTS_KEY: missing, required" in demo.output()


def test_config_error_is_one_line_and_exit_1(short_dir):
    config = short_dir / "demo.hdr"
    config.write_text("DEMO_BLOCK_BYTES lots\nLOG_INTERVAL_S -3\n")
    result = subprocess.run(
        [
            *DEMO,
            "--config",
            str(config),
            "-o",
            "DATA_KEYZ=1",
            "--socket",
            str(short_dir / "x.sock"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: config {config}: 3 problems: DATA_KEYZ (-o): unknown key; "
        f"LOG_INTERVAL_S '-3' ({config}): must be positive; "
        f"DEMO_BLOCK_BYTES 'lots' ({config}): is not an integer\n"
    )


def test_sigusr2_toggles_debug_logging(demo_factory):
    demo = demo_factory()
    demo.signal(signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while "SIGUSR2: log level now DEBUG" not in demo.output():
        assert time.monotonic() < deadline, demo.output()
        time.sleep(0.05)
    demo.signal(signal.SIGUSR2)
    while "SIGUSR2: log level now INFO" not in demo.output():
        assert time.monotonic() < deadline, demo.output()
        time.sleep(0.05)


def test_counter_deltas_are_logged_periodically(demo_factory):
    demo = demo_factory(*DEMO_BEAM, *FAST, "-o", "LOG_INTERVAL_S=0.3", "--autonomous")
    deadline = time.monotonic() + 10
    while "counters in the last" not in demo.output():
        assert time.monotonic() < deadline, demo.output()
        time.sleep(0.05)
    line = next(x for x in demo.output().splitlines() if "counters in the last" in x)
    assert "blocks_total +" in line and "transfers_total +" in line


def test_a_crash_exits_2_not_1(short_dir):
    result = subprocess.run(
        [*DEMO, "-o", "DEMO_CRASH_ON_START=yes",
         "--socket", str(short_dir / "x.sock")],
        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2  # systemd restarts on 2; 1 (config error) is not restarted
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1 and " failed\\nTraceback" in lines[0]
    assert lines[0].endswith("RuntimeError: demo crashed on purpose (DEMO_CRASH_ON_START)")


def test_socket_path_too_long_exits_3(short_dir):
    path = short_dir / ("s" * 120)
    result = subprocess.run(
        [*DEMO, "--socket", str(path)],
        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 3
    assert f"control socket path {path} is longer than the 107 bytes" in result.stderr


def test_config_file_mistakes_stop_the_daemon_and_typos_are_warned(short_dir):
    """Issue 13.12 through a real daemon: a duplicate key is exit 1 naming file and line; a
    misspelt key is a warning naming file and line (the daemon starts)."""
    dup = short_dir / "dup.hdr"
    dup.write_text("STOP_TIMEOUT_S 5\nSTOP_TIMEOUT_S 50\n")
    result = subprocess.run([*DEMO, "--config", str(dup), "--socket", str(short_dir / "x.sock")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == (f"Error: {dup}: line 2: STOP_TIMEOUT_S is set again (first on "
                             "line 1, which would win): set each key once\n")
    typo = short_dir / "typo.hdr"
    typo.write_text("# the demo\nSTOP_TIMOUT_S 5\nDB_NBUFS 8\n")
    demo = subprocess.Popen([*DEMO, "--config", str(typo), "--socket", str(short_dir / "y.sock")],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (short_dir / "y.sock").exists():
            assert time.monotonic() < deadline and demo.poll() is None
            time.sleep(0.1)
    finally:
        demo.terminate()
        _, err = demo.communicate(timeout=30)
    assert demo.returncode == 0
    assert (f"{typo}: line 2: STOP_TIMOUT_S is not a key this daemon reads (did you mean "
            "STOP_TIMEOUT_S?); ignored") in err
    assert "DB_NBUFS" not in err  # another program's key: no noise
