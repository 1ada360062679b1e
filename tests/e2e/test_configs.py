"""The example deployments in configs/ load, and their rings fit the streams they describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringbuf.header import DadaHeader
from ringbuf.pairconfig import pair_config
from services.common.config import ConfigSource, build_config
from services.ingest.config import IngestConfig, Profile
from services.mswrite.config import MsWriteBeamConfig, MsWriteScanConfig
from services.stat.config import StatBeamConfig, StatScanConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# a deployment file defines the ring pair; its services' files are <deployment>-<service>.hdr
DEPLOYMENTS = sorted(p.stem for p in CONFIGS.glob("*.hdr") if "DB_BUFSZ" in DadaHeader.load(p))


def files(deployment: str, service: str) -> list[Path]:
    return [CONFIGS / f"{deployment}.hdr", CONFIGS / f"{deployment}-{service}.hdr"]


def test_every_deployment_is_listed():
    assert {"beam", "beam-mid", "sb1", "sb2", "vis"} <= set(DEPLOYMENTS)


INGESTED = [d for d in DEPLOYMENTS if (CONFIGS / f"{d}-ingest.hdr").exists()]


@pytest.mark.parametrize("deployment", INGESTED)
def test_ring_blocks_hold_whole_units_of_the_stream(deployment):
    rings = pair_config(DadaHeader.load(CONFIGS / f"{deployment}.hdr"))
    ingest = build_config(IngestConfig, ConfigSource.load(files(deployment, "ingest")))
    assert (ingest.data_key, ingest.weights_key) == (rings.data_key, rings.weights_key)
    if ingest.profile is Profile.VIS:
        nbl = ingest.nant * (ingest.nant + 1) // 2
        dumps = rings.data_layout.bufsz // (ingest.nchan * nbl * 32)
        assert rings.data_layout.bufsz == dumps * ingest.nchan * nbl * 32 and dumps >= 1
        assert rings.weights_layout.bufsz == dumps * ingest.nchan * nbl * 2
    else:
        data_heap = ingest.udp_nsamp * ingest.nchan * 4 * ingest.nbit // 8
        packets = ingest.nchan // ingest.udp_nchan
        weights_heap = packets * (4 + ingest.udp_nchan * ingest.udp_nsamp // ingest.wt_nsamp * 2)
        heaps = rings.data_layout.bufsz // data_heap
        assert rings.data_layout.bufsz == heaps * data_heap
        assert rings.weights_layout.bufsz == heaps * weights_heap


@pytest.mark.parametrize(
    "deployment", [d for d in DEPLOYMENTS if (CONFIGS / f"{d}-mswrite.hdr").exists()])
def test_mswrite_configs_load(deployment, tmp_path):
    source = ConfigSource.load(files(deployment, "mswrite"))
    build_config(MsWriteBeamConfig, source)
    # the output directory and antenna file are host paths: point them at real ones here
    local = source.with_overrides("test", {"MS_OUTPUT_DIR": str(tmp_path),
                                           "MS_ANTENNA_FILE": str(CONFIGS / "vis-stations.txt")})
    scan = build_config(MsWriteScanConfig, local)
    assert scan.name_template.endswith(".ms")


@pytest.mark.parametrize(
    "deployment", [d for d in DEPLOYMENTS if (CONFIGS / f"{d}-stat.hdr").exists()])
def test_stat_configs_load(deployment):
    source = ConfigSource.load(files(deployment, "stat"))
    build_config(StatBeamConfig, source)
    assert build_config(StatScanConfig, source).proc_delay_ms > 0
