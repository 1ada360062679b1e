"""emu-send as the SKA CBF-SDP emulator's users know it, checked by a stock spead2 receiver.

The receiver is what an ItemGroup-based consumer such as the emulator's emu-recv does: one
``spead2.recv.Stream`` per UDP port on 127.0.0.1 and ``ItemGroup.update`` per heap. emu-send
runs as a process, configured by an emulator-style INI file.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import spead2
import spead2.recv
from casacore.tables import table

from services.common.processes import free_udp_ports
from services.senders.emu_send import MJD_UNIX_OFFSET_S, clamp_channels, parse_endpoints, read_ms

BIN = Path(sys.executable).parent
NANT, NCHAN, NTIME, CPS = 4, 8, 3, 4
NBL = NANT * (NANT + 1) // 2
NSTREAMS = NCHAN // CPS


@pytest.fixture(scope="module")
def ms(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emu") / "sim.ms"
    subprocess.run([BIN / "sim-ms", str(out), "--nant", str(NANT), "--nchan", str(NCHAN),
                    "--ntime", str(NTIME), "--source", "2,0,0", "--noise-jy", "0.1"],
                   check=True, capture_output=True)
    return out


class StockReceiver:
    """One spead2 Stream + ItemGroup per port; records every data heap's item values."""

    def __init__(self, port: int, nstreams: int) -> None:
        self.heaps: list[list[dict[str, object]]] = [[] for _ in range(nstreams)]
        self.streams = []
        self.threads = []
        for i in range(nstreams):
            stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=8))
            stream.add_udp_reader(port + i, bind_hostname="127.0.0.1", buffer_size=4 << 20)
            self.streams.append(stream)
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, i: int) -> None:
        ig = spead2.ItemGroup()
        for heap in self.streams[i]:
            updated = ig.update(heap)
            if "correlator_output_data" not in updated:
                continue
            values = {name: np.array(item.value, copy=True) for name, item in ig.items()
                      if item.value is not None}
            values["updated"] = set(updated)
            self.heaps[i].append(values)

    def join(self, timeout: float = 30) -> None:
        for thread in self.threads:
            thread.join(timeout)
        for stream in self.streams:
            stream.stop()


def write_ini(path: Path, port: int, extra: str = "") -> Path:
    path.write_text(f"""# an emulator-style sender config
[reader]
num_chan = 100
num_repeats = 2

[transmission]
method = spead2_transmitters
target_host = 127.0.0.1
target_port_start = {port}
channels_per_stream = {CPS}
rate = 20000000
scan_id = 4242
{extra}
[payload]
method = icd
""")
    return path


@pytest.mark.parametrize("framing,byte_order", [("separate", "big"), ("every_heap", "little"),
                                                ("every_heap", "big")])
def test_stock_receiver_gets_every_icd_item_with_its_value(ms, tmp_path, framing, byte_order):
    port = free_udp_ports(NSTREAMS)
    conf = write_ini(tmp_path / "sender.conf", port,
                     f"framing = {framing}\nimmediate_byte_order = {byte_order}\n"
                     "hardware_id = 9\n"
                     "time_interval = 0.05\n")  # paced: a Python receiver on a busy machine
    rx = StockReceiver(port, NSTREAMS)
    sent = subprocess.run([BIN / "emu-send", "-v", "-c", conf, str(ms),
                           "-o", "payload.polarisation_id=3", "-o", "payload.phase_bin_count=5"],
                          capture_output=True, text=True, timeout=120)
    rx.join()
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"sent {2 * NTIME * NSTREAMS} heaps")
    assert "reader.num_chan 100 adjusted to 8" in sent.stderr  # -v logs the clamping

    dumps = read_ms(str(ms), 0, 0, 0)
    with table(str(ms), ack=False) as t:
        times = np.unique(t.getcol("TIME")) - MJD_UNIX_OFFSET_S
    span = NTIME * dumps.int_time
    for i, heaps in enumerate(rx.heaps):
        assert len(heaps) == 2 * NTIME, f"stream {i}"
        for k, h in enumerate(heaps):
            repeat, j = divmod(k, NTIME)
            when = h["visibility_timestamp_count"] + h["visibility_timestamp_fraction"] / 2**32
            assert abs(when - (times[j] + repeat * span)) < 1e-6
            assert h["visibility_channel_id"] == i * CPS
            assert h["visibility_channel_count"] == CPS
            assert h["visibility_baseline_count"] == NBL
            assert h["visibility_polarisation_id"] == 3
            assert h["visibility_hardware_id"] == 9
            assert h["phase_bin_id"] == 0 and h["phase_bin_count"] == 5
            assert h["scan_id"] == 4242
            if framing == "every_heap":  # the emulator's framing: scan_id in every data heap
                assert "scan_id" in h["updated"]
            else:
                assert "scan_id" not in h["updated"]
            data = h["correlator_output_data"]
            assert data.shape == (CPS, NBL)
            expected = dumps.payload[j, i * CPS:(i + 1) * CPS]
            np.testing.assert_array_equal(data["VIS"], expected["VIS"])
            np.testing.assert_array_equal(data["FD"], expected["FD"])
            assert (data["FD"] == 255).all()


def test_num_chan_clamped_and_start_chan_beyond_the_ms_is_an_error():
    assert clamp_channels("x.ms", 8, 2, 100) == 6
    assert clamp_channels("x.ms", 8, 2, 0) == 6
    assert clamp_channels("x.ms", 8, 2, 3) == 3
    with pytest.raises(Exception, match="reader.start_chan 8 is beyond the 8 channels"):
        clamp_channels("x.ms", 8, 8, 0)


def test_endpoints_are_parsed_like_the_emulator():
    assert parse_endpoints("10.0.0.1:9000-9002,10.0.0.2:9100") == [
        ("10.0.0.1", 9000), ("10.0.0.1", 9001), ("10.0.0.1", 9002), ("10.0.0.2", 9100)]
    with pytest.raises(ValueError):
        parse_endpoints("10.0.0.1")


def test_endpoints_send_each_stream_where_it_says(ms, tmp_path):
    port = free_udp_ports(NSTREAMS)
    conf = write_ini(tmp_path / "sender.conf", 1,
                     f"endpoints = 127.0.0.1:{port}-{port + NSTREAMS - 1}\n")
    rx = StockReceiver(port, NSTREAMS)
    sent = subprocess.run([BIN / "emu-send", "-c", conf, str(ms), "-o", "reader.num_repeats=1"],
                          capture_output=True, text=True, timeout=120)
    rx.join()
    assert sent.returncode == 0, sent.stderr
    assert [len(h) for h in rx.heaps] == [NTIME] * NSTREAMS
    assert [h[0]["visibility_channel_id"] for h in rx.heaps] == [0, CPS]


@pytest.mark.parametrize("extra,args,message", [
    ("chanels_per_stream = 4\n", [], "transmission.chanels_per_stream"),
    ("", ["-o", "reader.numchan=2"], "reader.numchan"),
    ("transport_protocol = tcp\n", [], "transmission.transport_protocol"),
    ("", ["-o", "reader.start_chan=8"], "reader.start_chan 8 is beyond"),
    ("rate = 5\n", [], "option 'rate' in section 'transmission' already exists"),
])
def test_unknown_or_bad_keys_are_one_line_naming_the_key(ms, tmp_path, extra, args, message):
    conf = write_ini(tmp_path / "sender.conf", 9, extra)
    out = subprocess.run([BIN / "emu-send", "-c", conf, str(ms), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], out.stderr


def test_a_key_value_file_is_read_strictly_too(ms, tmp_path):
    conf = tmp_path / "emu.hdr"
    conf.write_text("transmission.target_port_start 9\nreader.num_repeat 2\n")
    out = subprocess.run([BIN / "emu-send", "-c", conf, str(ms)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert "reader.num_repeat" in out.stderr and str(conf) in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_rate_is_per_stream_as_in_the_emulator_and_total_rate_is_over_all(ms):
    """Two streams at transmission.rate each take half the time of one limiter at that rate."""
    port = free_udp_ports(NSTREAMS)
    common = [BIN / "emu-send", str(ms), "--port", str(port), "-o", f"reader.num_chan={NCHAN}",
              "-o", f"transmission.channels_per_stream={CPS}", "-o", "reader.num_repeats=150"]

    def seconds_and_bytes(*extra: str) -> tuple[float, int]:
        out = subprocess.run([*common, *extra], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        words = out.stdout.split()  # sent H heaps, B bytes in S s (...)
        return float(words[6]), int(words[3])

    rate = 200_000.0
    per_stream, nbytes = seconds_and_bytes("-o", f"transmission.rate={rate}")
    assert 0.8 <= per_stream / (nbytes / (NSTREAMS * rate)) <= 1.5
    total, nbytes = seconds_and_bytes("-o", "transmission.rate=1", "--rate", str(2 * rate))
    assert 0.8 <= total / (nbytes / (2 * rate)) <= 1.5  # --rate: all streams together
