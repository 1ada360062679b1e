"""The deployment files, docs and unit of svc-spead-send keep up with its code."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import ConfigSource, build_config
from services.spead_send.config import (
    ReadMode,
    SpeadSendBeamConfig,
    SpeadSendConfig,
    SpeadSendScanConfig,
)
from services.spead_send.counters import SpeadSendCounters

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "spead-send.md").read_text()


@pytest.mark.parametrize(("deployment", "mode", "port"), [
    ("vis", ReadMode.VIEWER, 42000), ("beam", ReadMode.READER, 9610)])
def test_config_examples_load(deployment, mode, port):
    files = [ROOT / "configs" / f"{deployment}.hdr",
             ROOT / "configs" / f"{deployment}-spead-send.hdr"]
    source = ConfigSource.load(files, environ={})
    daemon = build_config(SpeadSendConfig, source)
    beam = build_config(SpeadSendBeamConfig, source)
    scan = build_config(SpeadSendScanConfig, source)
    assert daemon.mode.value == "autonomous" and beam.read_mode is mode
    assert beam.data_key == ("a000" if deployment == "vis" else "b000")
    assert scan.dest_port == port and scan.rate > 0


def test_every_key_and_counter_is_in_the_doc():
    keys = [s.key for cls in (SpeadSendBeamConfig, SpeadSendScanConfig)
            for s in cls.settings()]
    missing = [key for key in keys if f"`{key}`" not in DOC]
    missing += [name for name, _, _ in SpeadSendCounters.describe() if f"`{name}`" not in DOC]
    assert not missing, f"docs/spead-send.md does not define {missing}"


def test_the_unit_runs_the_daemon_on_its_two_config_files():
    unit = (ROOT / "systemd" / "svc-spead-send@.service").read_text()
    assert ("ExecStart=/opt/ringpipe/venv/bin/svc-spead-send --config /etc/ringpipe/%i.hdr "
            "--config /etc/ringpipe/%i-spead-send.hdr --socket /run/ringpipe/%N.sock") in unit
    assert "Type=notify" in unit and "RestartPreventExitStatus=1" in unit
    assert "RemoveIPC=no" in unit
