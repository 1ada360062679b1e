"""``svc-demo``: a tiny daemon built on the service framework, with no rings.

It exists to exercise the framework end to end in real processes: its "scan"
processes a fake block every DEMO_BLOCK_PERIOD_S seconds, counts them, drops every fifth as
"late", and can be told to fail, refuse, stall or drain slowly, so that tests can reach every
state and every error path. Tests start it by file path (``COMMAND``); it is not shipped.
"""

from __future__ import annotations

import enum
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from services.common.config import (
    Config,
    DaemonConfig,
    RingPairConfig,
    non_negative,
    positive,
    setting,
)
from services.common.counters import Counters, ReasonCounts, gauge, reasons, total
from services.common.lifecycle import Refused, Service
from services.common.options import DaemonOptions, daemon_options
from services.common.runner import run_service

#: The command line that starts this daemon (any Python with ringpipe installed).
COMMAND = [sys.executable, str(Path(__file__).resolve())]


class DemoDrop(enum.Enum):
    LATE = "late"
    CORRUPT = "corrupt"


@dataclass
class DemoCounters(Counters):
    blocks_total: int = total("fake blocks processed")
    bytes_total: int = total("bytes of the blocks processed")
    scans_total: int = total("scans started")
    transfers_total: int = total("transfers followed (autonomous mode)")
    blocks_dropped: ReasonCounts = reasons(DemoDrop, "blocks_dropped", "blocks dropped")
    scan_id: int = gauge("id of the current or last scan", default=-1)


@dataclass(frozen=True, kw_only=True)
class DemoConfig(DaemonConfig):
    block_bytes: int = setting(
        "DEMO_BLOCK_BYTES", int, default=4096, validator=positive, help="size of a fake block"
    )
    crash: bool = setting(
        "DEMO_CRASH_ON_START", bool, default=False, help="the service constructor raises"
    )


@dataclass(frozen=True, kw_only=True)
class DemoBeamConfig(RingPairConfig):
    fail: bool = setting("DEMO_FAIL_CONFIGURE", bool, default=False, help="configure_beam raises")
    refuse: bool = setting(
        "DEMO_REFUSE_CONFIGURE", bool, default=False, help="configure_beam refuses"
    )


@dataclass(frozen=True, kw_only=True)
class DemoScanConfig(Config):
    block_period_s: float = setting(
        "DEMO_BLOCK_PERIOD_S", float, default=0.02, validator=positive, help="time per block"
    )
    fail_after: int = setting(
        "DEMO_FAIL_AFTER_BLOCKS", int, default=0, validator=non_negative,
        help="the scan loop raises after this many blocks (0: never)",
    )  # fmt: skip
    stall_after: int = setting(
        "DEMO_STALL_AFTER_BLOCKS", int, default=0, validator=non_negative,
        help="the scan loop stops making progress after this many blocks (0: never)",
    )  # fmt: skip
    transfer_blocks: int = setting(
        "DEMO_TRANSFER_BLOCKS", int, default=10, validator=positive,
        help="blocks in one transfer (autonomous mode)",
    )  # fmt: skip
    drain_s: float = setting(
        "DEMO_DRAIN_S", float, default=0.0, validator=non_negative,
        help="time the scan loop takes to drain after a stop request",
    )  # fmt: skip

    def check(self) -> Iterable[str]:
        if self.fail_after and self.stall_after:
            yield "DEMO_FAIL_AFTER_BLOCKS and DEMO_STALL_AFTER_BLOCKS cannot both be set"


class DemoService(Service):
    """Fakes a scan of blocks; records the hooks it ran in ``calls``."""

    name = "svc-demo"
    beam_config = DemoBeamConfig
    scan_config = DemoScanConfig

    def __init__(self, config: DemoConfig) -> None:
        super().__init__(config, DemoCounters())
        if config.crash:
            raise RuntimeError("demo crashed on purpose (DEMO_CRASH_ON_START)")
        self.counters: DemoCounters
        self.block_bytes = config.block_bytes
        self.beam: DemoBeamConfig | None = None
        self.scan: DemoScanConfig | None = None
        self.calls: list[str] = []

    def configure_beam(self, config: DemoBeamConfig) -> None:
        self.calls.append("configure_beam")
        if config.refuse:
            raise Refused(f"ring {config.data_key} is not there (DEMO_REFUSE_CONFIGURE)")
        if config.fail:
            raise RuntimeError("configure_beam failed on purpose (DEMO_FAIL_CONFIGURE)")
        self.beam = config

    def configure_scan(self, config: DemoScanConfig) -> None:
        self.calls.append("configure_scan")
        self.scan = config

    def start_scan(self, config: object, stop: threading.Event) -> None:
        self.calls.append("start_scan")
        self.counters.scans_total += 1
        self.counters.scan_id = getattr(config, "scan_id", -1)
        self._process(stop, limit=None)

    def end_scan(self) -> None:
        self.calls.append("end_scan")

    def deconfigure_scan(self) -> None:
        self.calls.append("deconfigure_scan")
        self.scan = None

    def deconfigure_beam(self) -> None:
        self.calls.append("deconfigure_beam")
        self.beam = None

    def follow_transfer(self, stop: threading.Event) -> None:
        assert self.scan is not None
        self.counters.transfers_total += 1
        self._process(stop, limit=self.scan.transfer_blocks)

    def ring_fill(self) -> Mapping[str, object]:
        if self.beam is None:
            return {}
        return {"data": {"key": self.beam.data_key, "nbufs": 4, "full_blocks": 0}}

    def status_line(self) -> str:
        return f"{self.counters.blocks_total} blocks"

    def _process(self, stop: threading.Event, limit: int | None) -> None:
        scan = self.scan
        assert scan is not None
        count = 0
        while not stop.wait(scan.block_period_s):
            count += 1
            if scan.stall_after and count >= scan.stall_after:
                stop.wait()  # alive, but no more progress: the watchdog must notice
                break
            if scan.fail_after and count >= scan.fail_after:
                raise RuntimeError(f"demo scan failed on purpose after {count} blocks")
            if count % 5 == 0:
                self.counters.blocks_dropped.add(DemoDrop.LATE)
            else:
                self.counters.blocks_total += 1
                self.counters.bytes_total += self.block_bytes
                self.health.data_seen()
            self.progress()
            if limit is not None and count >= limit:
                return
        time.sleep(scan.drain_s)


@click.command()
@daemon_options
def main(options: DaemonOptions) -> None:
    """Demo daemon of the service framework: fake blocks, no rings.

    \b
    Example:
        python tests/common/demo_service.py --socket /tmp/demo.sock \\
            -o DATA_KEY=a000 -o WEIGHTS_KEY=a010 --autonomous
        svc-ctl /tmp/demo.sock status
    """
    config = options.load(DemoConfig, DemoService)
    raise SystemExit(run_service(DemoService(config), config))


if __name__ == "__main__":
    main()
