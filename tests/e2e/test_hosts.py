"""Subbands across hosts, with real network and IPC isolation (tests/e2e/hosts.py).

Three "machines" on one bridge, each a network namespace with its own IPC namespace and its own
/dev/shm: a sender host multicasts two subbands of one MeasurementSet (emu-send, one group per
subband, as a correlator does), and two receiver hosts each run the deployment of one subband
from configs/sb1*.hdr or configs/sb2*.hdr (ring pair, svc-ingest joining its group,
svc-mswrite). Both receivers use the same ring keys, as a fleet rendered from one template
would; on one machine the second ``create-pair`` would fail. Each MeasurementSet must hold
exactly its subband's channels of the input.

Then receiver 2 crashes mid-scan (every process in its namespace killed, its /dev/shm gone,
its link down) while receiver 1 writes its subband with nothing lost, and comes back (fresh
rings, fresh daemons) to write the next scan with receiver 1 still running its first
processes. Skips with the reason where namespaces cannot be made (not root, no iproute2).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from casacore.tables import table

from services.common.processes import ProcessGroup, options, run_tool, tool
from services.demo.beam_flow import compare_files
from services.demo.vis_flow import wait_for_ms
from tests.e2e.hosts import Host, Lab, LabUnavailable, check_available

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NTIME = 8  # dumps per scan
NCHAN = 64  # two subbands of 32 channels
GROUPS = {"sb1": "239.10.0.1", "sb2": "239.10.0.2"}
PORTS = {"sb1": 42000, "sb2": 42100}  # PORT_START of configs/sb*-ingest.hdr, 2 streams each
KEYS = {"DATA_KEY": "a100", "WEIGHTS_KEY": "a110"}  # on both receivers
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def lab():
    try:
        check_available()
    except LabUnavailable as e:
        pytest.skip(str(e))
    with Lab() as built:
        yield built


def deploy(host: Host, group: ProcessGroup, sb: str, workdir: Path, boot: int) -> None:
    """What ``systemctl start ringpipe-rings@sb svc-ingest@sb svc-mswrite@sb`` does on
    ``host``, with the subband's multicast group joined on the host's own interface."""
    rings = workdir / f"{host.name}-rings.hdr"
    text = (CONFIGS / f"{sb}.hdr").read_text()
    for key, value in KEYS.items():
        text = re.sub(rf"^{key}\s+\S+", f"{key} {value}", text, flags=re.M)
    rings.write_text(text)
    host.run([tool("ringbuf"), "create-pair", "--config", rings])
    (workdir / sb).mkdir(exist_ok=True)
    sock = group.socket_path(f"{host.name}-ingest{boot}")
    host.start(group, f"ingest{boot}", [
        tool("svc-ingest"), "-c", rings, "-c", CONFIGS / f"{sb}-ingest.hdr", "--socket", sock,
        *options({"MCAST_GROUP": GROUPS[sb], "MCAST_INTERFACE": host.address})], sock)
    sock = group.socket_path(f"{host.name}-mswrite{boot}")
    host.start(group, f"mswrite{boot}", [
        tool("svc-mswrite"), "-c", rings, "-c", CONFIGS / f"{sb}-mswrite.hdr", "--socket", sock,
        *options({"MS_OUTPUT_DIR": workdir / sb, "MS_ANTENNA_FILE": CONFIGS / "vis-stations.txt"})],
        sock)


def ring_keys(host: Host) -> set[str]:
    rings = json.loads(host.run([tool("ringbuf"), "list", "--json"]).stdout)
    return {ring["key"] for ring in rings}


def send_scan(tx: Host, group: ProcessGroup, model: Path, scan: int, interval: float):
    endpoints = ",".join(f"{GROUPS[sb]}:{PORTS[sb]}-{PORTS[sb] + 1}" for sb in ("sb1", "sb2"))
    return tx.start(group, f"emu-send{scan}", [tool("emu-send"), model, *options({
        "transmission.endpoints": endpoints, "transmission.interface_address": tx.address,
        "transmission.channels_per_stream": 16, "transmission.time_interval": interval,
        "transmission.scan_id": scan})])


def check_subband(ms: Path, model: Path, sb: str) -> None:
    """``ms`` holds every dump of the input, with exactly ``sb``'s channels."""
    channels = slice(0, 32) if sb == "sb1" else slice(32, 64)
    with table(str(model), ack=False) as t:
        source, source_uvw = t.getcol("DATA"), t.getcol("UVW")
    with table(str(model / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcol("CHAN_FREQ")[0]
    with table(str(ms), ack=False) as t:
        assert t.nrows() == source.shape[0]
        np.testing.assert_array_equal(t.getcol("DATA"), source[:, channels])
        assert not t.getcol("FLAG").any()
        np.testing.assert_allclose(t.getcol("UVW"), source_uvw, atol=1e-3)
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        np.testing.assert_allclose(spw.getcol("CHAN_FREQ")[0], freqs[channels])


def test_subbands_on_two_hosts_and_one_host_crashing_mid_scan(lab, tmp_path):
    model = tmp_path / "sky.ms"
    run_tool([tool("sim-ms"), model, "--layout", CONFIGS / "vis-stations.txt", "--nchan", NCHAN,
              "--ntime", NTIME, "--ra", 187.0, "--dec", -26.8, "--seed", 11], timeout=60)
    tx, rx1, rx2 = lab.add_host("tx"), lab.add_host("rx1"), lab.add_host("rx2")
    with ProcessGroup(tmp_path) as group:
        deploy(rx1, group, "sb1", tmp_path, 1)
        deploy(rx2, group, "sb2", tmp_path, 1)
        # the same keys on both receivers, each pair in its own /dev/shm only
        assert ring_keys(rx1) == ring_keys(rx2) == set(KEYS.values())
        assert rx1.shm() == rx2.shm() and rx1.shm()
        assert tx.shm() == set()

        # scan 1: receiver 2 crashes part-way
        sender = send_scan(tx, group, model, 1, interval=0.5)
        # 4 start/metadata heaps and 2 data heaps per stream: 2 of the 8 dumps have arrived
        group.processes["rx2-ingest1"].wait_counter("heaps_received_total", 12, timeout=30)
        assert sender.proc.poll() is None, "the scan ended before receiver 2 went down"
        rx2.down()
        assert sender.wait(30) == 0
        ms1, counters = wait_for_ms(group, "rx1-mswrite1", tmp_path / "sb1", "scan1_*.ms",
                                    timeout=30)
        assert counters["dumps_written_total"] == NTIME and counters["dumps_flagged_total"] == 0
        ingest = group.status("rx1-ingest1")["counters"]
        assert ingest["heaps_complete_total"] == 2 * NTIME and ingest["heaps_lost_total"] == 0
        check_subband(ms1, model, "sb1")
        assert not list((tmp_path / "sb2").glob("scan1_*.ms"))  # never finished on receiver 2

        # receiver 2 comes back with nothing of its old rings; scan 2 reaches both
        rx2.boot()
        assert rx2.shm() == set()
        deploy(rx2, group, "sb2", tmp_path, 2)
        assert send_scan(tx, group, model, 2, interval=0.05).wait(30) == 0
        for host, sb, boot in ((rx1, "sb1", 1), (rx2, "sb2", 2)):
            ms2, counters = wait_for_ms(group, f"{host.name}-mswrite{boot}", tmp_path / sb,
                                        "scan2_*.ms", timeout=30)
            check_subband(ms2, model, sb)
            ingest = group.status(f"{host.name}-ingest{boot}")["counters"]
            assert ingest["heaps_lost_total"] == 0
        counters = group.status("rx1-mswrite1")["counters"]
        assert counters["ms_written_total"] == 2 and counters["dumps_written_total"] == 2 * NTIME
        # receiver 1 ran its first processes throughout, and lost nothing
        ingest = group.status("rx1-ingest1")["counters"]
        assert ingest["transfers_total"] == 2 and ingest["heaps_complete_total"] == 4 * NTIME
        assert all(group.processes[f"rx1-{name}1"].proc.poll() is None
                   for name in ("ingest", "mswrite"))


BEAMS = {"rx1": ("239.10.1.1", 100), "rx2": ("239.10.1.2", 300)}  # group, tone channel
HEAPS_PER_BLOCK = 16  # configs/beam.hdr


def test_beams_on_two_hosts_live_statistics_equal_offline(lab, tmp_path):
    """Two PST beams multicast from one host, each received by a host of its own running
    configs/beam*.hdr unchanged (the same ring keys on both): svc-stat's live statistics equal
    stat-file-processor's of the host's recording, and each host holds its own beam's tone."""
    tx = lab.add_host("tx")
    receivers = [lab.add_host(name) for name in BEAMS]
    with ProcessGroup(tmp_path) as group:
        for host in receivers:
            mcast, _ = BEAMS[host.name]
            work = tmp_path / host.name
            work.mkdir()
            host.run([tool("ringbuf"), "create-pair", "--config", CONFIGS / "beam.hdr"])
            sock = group.socket_path(f"{host.name}-ingest")
            host.start(group, "ingest", [
                tool("svc-ingest"), "-c", CONFIGS / "beam.hdr", "-c", CONFIGS / "beam-ingest.hdr",
                "--socket", sock, *options({"MCAST_GROUP": mcast, "MCAST_INTERFACE": host.address,
                                            "STREAM_TIMEOUT_S": 3})], sock)
            sock = group.socket_path(f"{host.name}-stat")
            host.start(group, "stat", [
                tool("svc-stat"), "-c", CONFIGS / "beam.hdr", "-c", CONFIGS / "beam-stat.hdr",
                "--socket", sock, *options({"STAT_PROC_DELAY_MS": 300,
                                            "STAT_BASE_PATH": work / "live"})], sock)
            host.start(group, "record", [tool("ringbuf"), "record", "-k", "b000", "--weights-key",
                                         "b010", "-D", work / "rec", "--transfers", 1, "--json"])
        assert receivers[0].shm() == receivers[1].shm() and receivers[0].shm()
        senders = [tx.start(group, f"beam-send-{host.name}", [
            tool("beam-send"), "-c", CONFIGS / "beam-ingest.hdr", *options({
                "DATA_HOST": BEAMS[host.name][0], "beam.interface_address": tx.address,
                "beam.tone_channels": BEAMS[host.name][1], "beam.nan_every": 97,
                "beam.duration_s": 2.0, "SCAN_ID": 21})]) for host in receivers]
        for sender in senders:
            assert sender.wait(60) == 0
        for host in receivers:
            assert group.wait(f"{host.name}-record", 30) == 0
            recorded = json.loads(group.processes[f"{host.name}-record"].output().splitlines()[-1])
            assert recorded["transfers"] == 1 and recorded["incomplete"] == 0
            ingest = group.status(f"{host.name}-ingest")["counters"]
            assert ingest["heaps_lost_total"] == 0
            assert ingest["heaps_complete_total"] // 18 >= 2.0 / (32 * 207.36e-6) - 1
            # each host processes its own recording offline, both at once
            host.start(group, "offline", [
                tool("stat-file-processor"), tmp_path / host.name / "rec" / "data",
                "--segment-heaps", HEAPS_PER_BLOCK, "--output", tmp_path / host.name / "offline",
                "--no-progress"])
        for host in receivers:
            group.processes[f"{host.name}-stat"].wait_counter("transfers_total", 1, timeout=30)
        time.sleep(1.3)  # svc-stat's last sample of the transfer (STAT_PROC_DELAY_MS 300)
        for host in receivers:
            work = tmp_path / host.name
            assert group.wait(f"{host.name}-offline", 60) == 0
            live = sorted((work / "live").rglob("*.h5"))
            compared, mismatches = compare_files(live, sorted((work / "offline").glob("*.h5")))
            assert compared >= 2 and mismatches == []
            with h5py.File(live[0]) as f:
                power = f["MEAN_SPECTRAL_POWER"][...]
            for other, (_, tone) in BEAMS.items():  # its own tone, not the other beam's
                if other == host.name:
                    assert power[:, tone].min() > 5 * power.mean()
                else:
                    assert power[:, tone].max() < 2 * power.mean()
