"""The example chain ingest -> avg -> mswrite in configs/ loads and its rings fit."""

from __future__ import annotations

from pathlib import Path

from ringbuf.header import DadaHeader
from ringbuf.pairconfig import pair_config
from services.avg.config import AvgBeamConfig, AvgConfig, AvgScanConfig
from services.common.config import ConfigSource, build_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_the_chain_configs_fit_together() -> None:
    source = ConfigSource.load([CONFIGS / "vis.hdr", CONFIGS / "vis-avg.hdr"])
    build_config(AvgConfig, source)
    beam = build_config(AvgBeamConfig, source)
    local = source.with_overrides("test", {"BDA_ANTENNA_FILE": str(CONFIGS / "vis-stations.txt")})
    scan = build_config(AvgScanConfig, local)
    rings_in = pair_config(DadaHeader.load(CONFIGS / "vis.hdr"))
    rings_out = pair_config(DadaHeader.load(CONFIGS / "visavg.hdr"))
    ingest = DadaHeader.load(CONFIGS / "vis-ingest.hdr")
    assert (beam.data_key, beam.weights_key) == (rings_in.data_key, rings_in.weights_key)
    assert (beam.out_data_key, beam.out_weights_key) == (rings_out.data_key,
                                                         rings_out.weights_key)
    nant, nchan = ingest.get_int("NANT"), ingest.get_int("NCHAN")
    nbl = nant * (nant + 1) // 2
    nco = -(-nchan // scan.channels)
    dumps = rings_out.data_layout.bufsz // (nco * nbl * 32)
    assert dumps >= 1 and dumps % scan.bda_max_factor == 0
    assert rings_out.data_layout.bufsz == dumps * nco * nbl * 32
    assert rings_out.weights_layout.bufsz == dumps * nco * nbl * 2
    # what svc-avg may hold of the input ring stays below its size
    dumps_in = rings_in.data_layout.bufsz // (nchan * nbl * 32)
    group = scan.bda_max_factor * scan.time_dumps
    assert -(-(2 * group + dumps * scan.time_dumps) // dumps_in) + 2 < rings_in.data_layout.nbufs
    mswrite = DadaHeader.load(CONFIGS / "visavg-mswrite.hdr")
    assert mswrite.get_str("MODE") == "autonomous"
