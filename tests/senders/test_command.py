"""emu-send and beam-send share one command skeleton: the same options, meaning the same."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from services.senders import beam_send, emu_send
from services.senders.beam_send import BeamSendConfig
from services.senders.command import SenderArgs

BIN = Path(sys.executable).parent
SHAPE = {"NCHAN": 48, "UDP_NCHAN": 24, "UDP_NSAMP": 32, "WT_NSAMP": 32, "NBIT": 16,
         "TSAMP": 207.36}
NHEAPS = 4
COMMON = ("-c, --config", "-o, --set KEY=VALUE", "--host", "--port", "--rate", "--ttl",
          "--interface", "-v, --verbose")


def _sets(values: dict[str, object]) -> list[str]:
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]


def _item_ids(packet: bytes) -> set[int]:
    nitems = struct.unpack(">H", packet[6:8])[0]
    pointers = struct.unpack(f">{nitems}Q", packet[8:8 + 8 * nitems])
    return {(p >> 48) & 0x7FFF for p in pointers}


@pytest.mark.parametrize("command", ["emu-send", "beam-send"])
def test_help_has_the_common_options_and_examples(command):
    out = subprocess.run([BIN / command, "--help"], capture_output=True, text=True, check=True)
    for option in COMMON:
        assert option in out.stdout, option
    assert "Examples:" in out.stdout and f"  {command} " in out.stdout


def test_port_and_host_options_win_over_set_and_reach_a_real_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        sent = subprocess.run(
            [BIN / "beam-send", "--host", "127.0.0.1", "--port", str(port), "--rate", "1e8",
             *_sets({**SHAPE, "DATA_PORT": 1, "DATA_HOST": "127.0.0.2",
                     "beam.duration_s": NHEAPS * 32 * 207.36e-6})],
            capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith(f"sent {NHEAPS * 2} packets")
        packets = []
        sock.settimeout(0.5)
        try:
            while True:
                packets.append(sock.recv(65536))
        except TimeoutError:
            pass
    data = [p for p in packets if 0x7000 in _item_ids(p)]
    assert len(data) == NHEAPS * 2  # two packets (channel ranges) per PST heap
    assert len(packets) == len(data) + 4  # start, descriptor, metadata and end heaps


def test_command_line_options_over_set_over_files(tmp_path):
    config = tmp_path / "beam.hdr"
    config.write_text("".join(f"{k} {v}\n" for k, v in SHAPE.items()) + "DATA_PORT 1000\n"
                      "beam.rate 5\nbeam.ttl 3\n")
    args = SenderArgs(beam_send.KEYS, (str(config),), ("DATA_PORT=2000", "beam.rate=6"),
                      port=3000, interface="127.0.0.1")
    cfg = args.load(BeamSendConfig)
    assert (cfg.port, cfg.rate, cfg.ttl, cfg.interface_address) == (3000, 6.0, 3, "127.0.0.1")
    assert args.options() == {"DATA_PORT": 3000, "beam.interface_address": "127.0.0.1"}
    assert emu_send.KEYS.port == "transmission.target_port_start"


@pytest.mark.parametrize("extra,message", [
    (["--set", "NBIT=12"], "NBIT 12: must be 8 or 16"),
    (["--host", "not-an-address"], "not-an-address"),
])
def test_bad_input_is_one_line(extra, message):
    out = subprocess.run([BIN / "beam-send", *_sets(SHAPE), "--port", "9", *extra],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], out.stderr
