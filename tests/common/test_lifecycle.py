"""The state machine, in process, with the demo service and a real scan thread."""

from __future__ import annotations

import time

import pytest

from services.common.config import ConfigSource, Mode, build_config
from services.common.lifecycle import TRANSITIONS, Command, Lifecycle, State
from tests.common.demo_service import DemoConfig, DemoService

BEAM = {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010"}
FAST = {"DEMO_BLOCK_PERIOD_S": "0.005"}


def make(
    source: ConfigSource | None = None, stop_timeout_s: float = 5.0, mode: Mode = Mode.MANAGED
) -> tuple[Lifecycle, DemoService]:
    source = source or ConfigSource()
    service = DemoService(build_config(DemoConfig, source))
    return Lifecycle(service, source, stop_timeout_s, mode), service


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def drive_to(lifecycle: Lifecycle, state: State) -> None:
    steps = [("configure_beam", BEAM), ("configure_scan", FAST), ("start_scan", {"SCAN_ID": 7})]
    order = [State.IDLE, State.BEAM_CONFIGURED, State.SCAN_CONFIGURED, State.SCANNING]
    for command, config in steps[: order.index(state)]:
        assert lifecycle.execute(command, config).ok


def test_full_cycle_calls_every_hook_in_order():
    lifecycle, service = make()
    assert lifecycle.state is State.IDLE
    expected = [
        ("configure_beam", BEAM, State.BEAM_CONFIGURED),
        ("configure_scan", FAST, State.SCAN_CONFIGURED),
        ("start_scan", {"SCAN_ID": 7}, State.SCANNING),
    ]
    for command, config, state in expected:
        outcome = lifecycle.execute(command, config)
        assert (outcome.ok, outcome.state, outcome.error) == (True, state, None)
    wait_for(lambda: service.counters.blocks_total >= 5)
    assert lifecycle.scan_running and service.counters.scan_id == 7
    assert lifecycle.configs["beam"].to_dict()["DATA_KEY"] == "a000"
    for command, state in [
        ("end_scan", State.SCAN_CONFIGURED),
        ("deconfigure_scan", State.BEAM_CONFIGURED),
        ("deconfigure_beam", State.IDLE),
    ]:
        outcome = lifecycle.execute(command)
        assert (outcome.ok, outcome.state) == (True, state)
    assert not lifecycle.scan_running
    assert service.calls == [
        "configure_beam",
        "configure_scan",
        "start_scan",
        "end_scan",
        "deconfigure_scan",
        "deconfigure_beam",
    ]
    assert lifecycle.configs == {}


@pytest.mark.parametrize(
    "state", [State.IDLE, State.BEAM_CONFIGURED, State.SCAN_CONFIGURED, State.SCANNING]
)
def test_commands_not_in_the_table_are_refused_and_change_nothing(state):
    lifecycle, service = make()
    drive_to(lifecycle, state)
    calls = list(service.calls)
    refused = [c for c in Command if c not in TRANSITIONS[state]]
    assert refused
    for command in refused:
        outcome = lifecycle.execute(command.value, {})
        assert not outcome.ok and outcome.reason == "not_allowed"
        assert outcome.error.startswith(f"{command.value} is not allowed in state {state.value} ")
        assert lifecycle.state is state
    assert service.calls == calls
    lifecycle.shutdown()


def test_invalid_config_is_refused_with_every_problem_and_no_hook_runs():
    lifecycle, service = make()
    outcome = lifecycle.execute("configure_beam", {"DATA_KEY": "zz", "COLOUR": "red"})
    assert (outcome.ok, outcome.reason, outcome.state) == (False, "invalid_config", State.IDLE)
    assert outcome.error == (
        "configure_beam config: 3 problems: COLOUR: unknown key for configure_beam; "
        "DATA_KEY 'zz' (command): is not a ring key (1 to 8 hexadecimal digits, e.g. a000); "
        "WEIGHTS_KEY: missing, required (weights ring key)"
    )
    cross = lifecycle.execute("configure_beam", {"DATA_KEY": "a000", "WEIGHTS_KEY": "A000"})
    assert cross.error == (
        "configure_beam config: 1 problem: DATA_KEY and WEIGHTS_KEY must differ (both a000)"
    )
    assert service.calls == [] and lifecycle.state is State.IDLE
    assert lifecycle.execute("configure_beam", BEAM).ok
    bad = lifecycle.execute("deconfigure_beam", {"X": 1})
    assert (bad.ok, bad.reason, bad.error) == (
        False,
        "invalid_config",
        "deconfigure_beam takes no config",
    )
    assert lifecycle.state is State.BEAM_CONFIGURED
    lifecycle.shutdown()


def test_start_scan_needs_a_scan_id():
    lifecycle, service = make()
    drive_to(lifecycle, State.SCAN_CONFIGURED)
    outcome = lifecycle.execute("start_scan", {"SCAN_ID": -1})
    assert (
        outcome.error == "start_scan config: 1 problem: SCAN_ID -1 (command): must not be negative"
    )
    assert lifecycle.state is State.SCAN_CONFIGURED and "start_scan" not in service.calls
    lifecycle.shutdown()


def test_command_config_is_layered_over_the_daemon_config():
    source = ConfigSource(files=(("deploy.hdr", {"DATA_KEY": "b000", "WEIGHTS_KEY": "b010"}),))
    lifecycle, service = make(source)
    assert lifecycle.execute("configure_beam", {"WEIGHTS_KEY": "b020"}).ok
    assert (service.beam.data_key, service.beam.weights_key) == ("b000", "b020")
    lifecycle.shutdown()


def test_hook_refusal_changes_nothing():
    lifecycle, service = make()
    outcome = lifecycle.execute("configure_beam", {**BEAM, "DEMO_REFUSE_CONFIGURE": "yes"})
    assert (outcome.ok, outcome.reason, outcome.state) == (False, "refused", State.IDLE)
    assert outcome.error == "configure_beam refused: ring a000 is not there (DEMO_REFUSE_CONFIGURE)"
    assert lifecycle.state is State.IDLE and lifecycle.error is None


def test_hook_failure_goes_to_runtime_error_and_reset_unwinds():
    lifecycle, service = make()
    outcome = lifecycle.execute("configure_beam", {**BEAM, "DEMO_FAIL_CONFIGURE": "true"})
    assert (outcome.ok, outcome.reason, outcome.state) == (False, "failed", State.RUNTIME_ERROR)
    assert outcome.error == (
        "configure_beam failed: RuntimeError: configure_beam failed on "
        "purpose (DEMO_FAIL_CONFIGURE)"
    )
    assert lifecycle.allowed() == ["reset"] and lifecycle.previous_state is State.IDLE
    assert not lifecycle.execute("configure_beam", BEAM).ok
    outcome = lifecycle.execute("reset")
    assert (outcome.ok, outcome.state, outcome.error) == (True, State.IDLE, None)
    assert service.calls == ["configure_beam", "deconfigure_beam"]
    assert lifecycle.error is None


def test_scan_loop_failure_goes_to_runtime_error_and_reset_unwinds_everything():
    lifecycle, service = make()
    assert lifecycle.execute("configure_beam", BEAM).ok
    assert lifecycle.execute("configure_scan", {**FAST, "DEMO_FAIL_AFTER_BLOCKS": "3"}).ok
    assert lifecycle.execute("start_scan", {"SCAN_ID": 1}).ok
    wait_for(lambda: lifecycle.state is State.RUNTIME_ERROR)
    assert (
        lifecycle.error
        == "scan loop failed: RuntimeError: demo scan failed on purpose after 3 blocks"
    )
    assert lifecycle.previous_state is State.SCANNING and not lifecycle.scan_running
    refused = lifecycle.execute("end_scan")
    assert refused.reason == "not_allowed"
    assert lifecycle.execute("reset").ok
    assert lifecycle.state is State.IDLE
    assert service.calls[-3:] == ["end_scan", "deconfigure_scan", "deconfigure_beam"]


def test_reset_from_scanning_stops_the_scan_and_unwinds():
    lifecycle, service = make()
    drive_to(lifecycle, State.SCANNING)
    outcome = lifecycle.execute("reset")
    assert (outcome.ok, outcome.state) == (True, State.IDLE)
    assert not lifecycle.scan_running
    assert service.calls[-3:] == ["end_scan", "deconfigure_scan", "deconfigure_beam"]
    idle = lifecycle.execute("reset")
    assert (idle.ok, idle.state) == (True, State.IDLE)  # reset in Idle: nothing to do


def test_a_scan_loop_that_does_not_stop_in_time_is_a_runtime_error():
    lifecycle, service = make(stop_timeout_s=0.2)
    assert lifecycle.execute("configure_beam", BEAM).ok
    assert lifecycle.execute("configure_scan", {**FAST, "DEMO_DRAIN_S": "1.0"}).ok
    assert lifecycle.execute("start_scan", {"SCAN_ID": 2}).ok
    outcome = lifecycle.execute("end_scan")
    assert (outcome.ok, outcome.reason, outcome.state) == (False, "failed", State.RUNTIME_ERROR)
    assert outcome.error == "scan loop did not stop within 0.2 s"
    wait_for(lambda: not lifecycle.scan_running)
    assert lifecycle.execute("reset").ok and lifecycle.state is State.IDLE


def test_nothing_is_undone_under_a_scan_loop_that_does_not_stop_in_time():
    """Issue 13.2: shutdown and reset must never close what a running scan thread uses."""
    lifecycle, service = make(stop_timeout_s=0.001)
    assert lifecycle.execute("configure_beam", BEAM).ok
    assert lifecycle.execute("configure_scan", {**FAST, "DEMO_DRAIN_S": "1.0"}).ok
    assert lifecycle.execute("start_scan", {"SCAN_ID": 2}).ok
    outcome = lifecycle.execute("reset")
    assert (outcome.ok, outcome.reason, outcome.state) == (False, "failed", State.RUNTIME_ERROR)
    assert outcome.error == ("scan loop did not stop within 0.001 s; nothing was undone while "
                             "it runs (reset again later)")
    errors = lifecycle.shutdown()
    assert errors == [outcome.error]
    assert lifecycle.scan_running and lifecycle.state is State.RUNTIME_ERROR
    assert service.calls == ["configure_beam", "configure_scan", "start_scan"]
    assert service.beam is not None and service.scan is not None  # nothing closed
    wait_for(lambda: not lifecycle.scan_running)


def test_reset_after_a_stuck_scan_loop_ended_unwinds_everything():
    lifecycle, service = make(stop_timeout_s=0.001)
    assert lifecycle.execute("configure_beam", BEAM).ok
    assert lifecycle.execute("configure_scan", {**FAST, "DEMO_DRAIN_S": "0.3"}).ok
    assert lifecycle.execute("start_scan", {"SCAN_ID": 2}).ok
    assert lifecycle.execute("end_scan").reason == "failed"
    wait_for(lambda: not lifecycle.scan_running)
    assert lifecycle.execute("reset").ok and lifecycle.state is State.IDLE
    assert service.calls[-2:] == ["deconfigure_scan", "deconfigure_beam"]


def test_autonomous_mode_follows_transfers_and_refuses_commands():
    source = ConfigSource(overrides=(("-o", {**BEAM, **FAST, "DEMO_TRANSFER_BLOCKS": "3"}),))
    lifecycle, service = make(source, mode=Mode.AUTONOMOUS)
    assert lifecycle.start_autonomous().ok
    assert lifecycle.state is State.SCANNING and lifecycle.allowed() == []
    wait_for(lambda: service.counters.transfers_total >= 3)
    outcome = lifecycle.execute("end_scan")
    assert (outcome.ok, outcome.reason) == (False, "not_allowed")
    assert "autonomous mode" in outcome.error
    assert lifecycle.shutdown() == []
    assert lifecycle.state is State.IDLE
    assert service.calls == [
        "configure_beam",
        "configure_scan",
        "end_scan",
        "deconfigure_scan",
        "deconfigure_beam",
    ]


def test_autonomous_mode_reports_config_problems():
    lifecycle, service = make(ConfigSource(), mode=Mode.AUTONOMOUS)
    outcome = lifecycle.start_autonomous()
    assert (outcome.ok, outcome.reason) == (False, "invalid_config")
    assert "DATA_KEY: missing, required" in outcome.error


def test_commands_after_shutdown_are_refused():
    lifecycle, service = make()
    drive_to(lifecycle, State.SCANNING)
    assert lifecycle.shutdown() == []
    outcome = lifecycle.execute("configure_beam", BEAM)
    assert (outcome.ok, outcome.reason, outcome.error) == (
        False,
        "not_allowed",
        "the daemon is shutting down",
    )
    assert lifecycle.state is State.IDLE and service.calls.count("configure_beam") == 1
