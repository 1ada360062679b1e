"""Every daemon's main.py has one shape, and the framework checks a daemon's whole config
(including what autonomous mode configures itself from) before the daemon starts."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from services.common.processes import Process, daemon_env, tool
from tests.common.demo_service import COMMAND as DEMO

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DAEMONS = {  # console script -> (package, the config class, the service class)
    "svc-ingest": ("ingest", "IngestConfig", "IngestService"),
    "svc-stat": ("stat", "StatDaemonConfig", "StatService"),
    "svc-mswrite": ("mswrite", "MsWriteConfig", "MsWriteService"),
    "svc-spead-send": ("spead_send", "SpeadSendConfig", "SpeadSendService"),
    "svc-avg": ("avg", "AvgConfig", "AvgService"),
}


def _shape(package: str, config: str, service: str) -> str:
    """main.py of ``package``: what it imports from outside its package and its ``main``
    (decorators included, docstring dropped), with the service's names as placeholders."""
    tree = ast.parse((ROOT / "services" / package / "main.py").read_text())
    shared = [ast.dump(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
              and not (getattr(node, "module", "") or "").startswith(f"services.{package}")]
    (main,) = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    main.body = main.body[1:] if ast.get_docstring(main) else main.body
    text = "\n".join([*shared, ast.dump(main)])
    return text.replace(f"'{config}'", "'CONFIG'").replace(f"'{service}'", "'SERVICE'")


def test_every_daemon_main_has_the_same_shape() -> None:
    shapes = {script: _shape(*names) for script, names in DAEMONS.items()}
    assert len(set(shapes.values())) == 1, "main.py differs beyond names: " + ", ".join(shapes)
    assert "'run_service'" in shapes["svc-stat"] and "'daemon_options'" in shapes["svc-stat"]
    assert "'CONFIG'" in shapes["svc-stat"] and "'SERVICE'" in shapes["svc-stat"]


@pytest.mark.parametrize("package, config, service", DAEMONS.values())
def test_every_daemon_has_the_same_files(package: str, config: str, service: str) -> None:
    files = {path.name for path in (ROOT / "services" / package).glob("*.py")}
    assert {"main.py", "config.py", "counters.py", "service.py"} <= files
    config_module = (ROOT / "services" / package / "config.py").read_text()
    assert f"class {config}(" in config_module
    assert f"class {service}(" in (ROOT / "services" / package / "service.py").read_text()
    assert "(Counters)" in (ROOT / "services" / package / "counters.py").read_text()


def test_autonomous_mswrite_refuses_a_bad_scan_key_before_starting(tmp_path: Path) -> None:
    sock = tmp_path / "m.sock"
    args = [tool("svc-mswrite"), "-c", CONFIGS / "vis.hdr", "-c", CONFIGS / "vis-mswrite.hdr",
            "-o", f"MS_OUTPUT_DIR={tmp_path}", "-o", f"MS_ANTENNA_FILE={CONFIGS}/vis-stations.txt",
            "-o", "MS_ROLLOVER_DUMPS=-2", "--socket", sock, "--autonomous"]
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60,
                            env=daemon_env())
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: config {CONFIGS}/vis.hdr, {CONFIGS}/vis-mswrite.hdr: ")
    assert lines[0].endswith("1 problem: MS_ROLLOVER_DUMPS '-2' (-o): must not be negative")
    assert not sock.exists()  # it never started (no control socket, no rings attached)


def test_managed_mswrite_checks_the_scan_keys_at_configure_scan(tmp_path: Path) -> None:
    # managed: the scan config comes with configure_scan, so the daemon starts and waits
    sock = tmp_path / "m.sock"
    daemon = Process("svc-mswrite", [tool("svc-mswrite"), "-c", CONFIGS / "vis.hdr", "-o",
                                     "MS_ROLLOVER_DUMPS=-2", "--socket", sock, "--managed"],
                     tmp_path / "m.log", sock, daemon_env())
    try:
        daemon.wait_ready()
        assert daemon.status()["state"] == "Idle"
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("bad, problem", [
    (["-o", "DEMO_DRAIN_S=-1"], "DEMO_DRAIN_S '-1' (-o): must not be negative"),  # scan
    ([], "WEIGHTS_KEY: missing, required (weights ring key)"),  # beam
])
def test_autonomous_demo_checks_beam_and_scan_configs_at_start(short_dir: Path, bad: list[str],
                                                               problem: str) -> None:
    beam = ["-o", "DATA_KEY=a000"] + ([] if not bad else ["-o", "WEIGHTS_KEY=a010"])
    result = subprocess.run([*DEMO, *beam, *bad, "--socket", str(short_dir / "d.sock"),
                             "--autonomous"], capture_output=True, text=True, timeout=60,
                            env=daemon_env())
    assert result.returncode == 1
    assert result.stderr == f"Error: config: 1 problem: {problem}\n"


def test_demo_bad_scan_key_in_managed_mode_starts(demo_factory) -> None:
    demo = demo_factory("-o", "DEMO_DRAIN_S=-1")
    reply = demo.request("configure_beam", {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010"})
    assert reply["ok"] is True
    reply = demo.request("configure_scan")
    assert reply["ok"] is False and "DEMO_DRAIN_S '-1' (-o): must not be negative" in reply[
        "error"]
