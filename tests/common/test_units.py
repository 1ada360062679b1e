"""The systemd units: `systemd-analyze verify` on each, plus the settings the design relies on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parents[2] / "systemd"
INSTALL_BIN = "/opt/ringpipe/venv/bin/"
SERVICES = ("svc-ingest", "svc-stat", "svc-mswrite", "svc-spead-send", "svc-avg")
UNITS = ("ringpipe-rings@.service", *(f"{s}@.service" for s in SERVICES))


def _read(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keep key case
    parser.read(UNIT_DIR / name)
    return parser


def _verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def verify_dir(tmp_path_factory) -> Path:
    """Copies of the units whose ExecStart points at this venv's console scripts."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip(
            "systemd-analyze is not installed (apt-get install systemd; "
            "scripts/install-tools.sh does this in CI)"
        )
    directory = tmp_path_factory.mktemp("units")
    probe = directory / "probe.service"
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    result = _verify(probe)
    if result.returncode != 0:
        pytest.skip(
            f"systemd-analyze verify does not work on this machine: {result.stderr.strip()}"
        )
    probe.unlink()
    venv_bin = str(Path(sys.executable).parent) + "/"
    for name in UNITS:
        (directory / name).write_text((UNIT_DIR / name).read_text().replace(INSTALL_BIN, venv_bin))
    return directory


@pytest.mark.tools
@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_cleanly(verify_dir, name):
    result = _verify(verify_dir / name)
    ours = [line for line in result.stderr.splitlines() if str(verify_dir) in line or "@" in line]
    assert result.returncode == 0, result.stderr
    assert ours == []


def test_unit_files_are_all_present():
    assert sorted(p.name for p in UNIT_DIR.glob("*.service")) == sorted(UNITS)


def test_exec_start_names_installed_console_scripts():
    scripts = {ep.name for ep in entry_points(group="console_scripts")}
    for name in UNITS:
        service = _read(name)["Service"]
        for key in ("ExecStart", "ExecStop"):
            if key in service:
                binary = service[key].split()[0]
                assert binary.startswith(INSTALL_BIN)
                assert binary.removeprefix(INSTALL_BIN) in scripts


def test_rings_unit_creates_and_destroys_the_pair():
    service = _read("ringpipe-rings@.service")["Service"]
    assert service["Type"] == "oneshot" and service["RemainAfterExit"] == "yes"
    assert service["ExecStart"] == f"{INSTALL_BIN}ringbuf create-pair --config /etc/ringpipe/%i.hdr"
    assert service["ExecStop"] == f"{INSTALL_BIN}ringbuf destroy-pair --config /etc/ringpipe/%i.hdr"
    assert service["RemoveIPC"] == "no"


@pytest.mark.parametrize("program", SERVICES)
def test_service_unit_settings(program):
    unit = _read(f"{program}@.service")
    service = unit["Service"]
    rings = "ringpipe-rings@%i.service"
    # svc-avg also writes a second pair, the deployment <instance>avg
    expected = f"{rings} ringpipe-rings@%iavg.service" if program == "svc-avg" else rings
    assert unit["Unit"]["Requires"] == expected
    assert unit["Unit"]["After"].split()[0] == rings
    assert (service["Type"], service["NotifyAccess"]) == ("notify", "main")
    assert int(service["WatchdogSec"]) > 0
    assert (service["Restart"], service["RestartPreventExitStatus"]) == ("on-failure", "1")
    assert service["RuntimeDirectory"] == "ringpipe"
    assert service["ExecStart"].endswith("--socket /run/ringpipe/%N.sock")
    # Nothing that would hide or remove the shared memory the rings live in.
    assert service["RemoveIPC"] == "no" and service["PrivateIPC"] == "no"
    assert service["PrivateDevices"] == "no"
    for forbidden in ("DynamicUser", "MemoryDenyWriteExecute", "InaccessiblePaths"):
        assert forbidden not in service
    # The stop timeout leaves room for the daemon's own drain (STOP_TIMEOUT_S, 20 s default).
    assert int(service["TimeoutStopSec"]) > 20


def test_unit_commands_create_and_destroy_the_ring_pair(key_factory, tmp_path):
    """Run ExecStart and ExecStop of ringpipe-rings@ as the unit would, on the example config."""
    config = (UNIT_DIR.parent / "configs" / "vis.hdr").read_text()
    data_key, weights_key = key_factory(), key_factory()
    config = config.replace("DATA_KEY            a000", f"DATA_KEY            {data_key}")
    config = config.replace("WEIGHTS_KEY         a010", f"WEIGHTS_KEY         {weights_key}")
    deploy = tmp_path / "deploy.hdr"
    deploy.write_text(config)
    service = _read("ringpipe-rings@.service")["Service"]
    venv_bin = str(Path(sys.executable).parent) + "/"

    def run(key: str) -> subprocess.CompletedProcess:
        command = (
            service[key].replace(INSTALL_BIN, venv_bin).replace("/etc/ringpipe/%i.hdr", str(deploy))
        )
        return subprocess.run(command.split(), capture_output=True, text=True, timeout=60)

    def objects() -> list[str]:
        return sorted(
            p.name
            for p in Path("/dev/shm").iterdir()
            if data_key in p.name or weights_key in p.name
        )

    try:
        started = run("ExecStart")
        assert started.returncode == 0, started.stderr
        assert objects(), "create-pair made no shared memory"
        again = run("ExecStart")  # a second start refuses: the rings exist
        assert again.returncode != 0 and "\n" == again.stderr[-1] and again.stderr.count("\n") == 1
    finally:
        stopped = run("ExecStop")
    assert stopped.returncode == 0, stopped.stderr
    assert objects() == []
    assert run("ExecStop").returncode == 0  # idempotent
