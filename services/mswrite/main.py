"""``svc-mswrite``: parse the common options, load the config, run the service."""

from __future__ import annotations

import click

from services.common.options import DaemonOptions, daemon_options
from services.common.runner import run_service
from services.mswrite.config import MsWriteConfig
from services.mswrite.service import MsWriteService


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@daemon_options
def main(options: DaemonOptions) -> None:
    """Write the transfers of a visibility ring pair into MeasurementSets (docs/mswrite.md).

    Managed mode (default) waits for lifecycle commands on the control socket
    (configure_beam: DATA_KEY, WEIGHTS_KEY; configure_scan: MS_* keys; start_scan: SCAN_ID).
    Autonomous mode takes both from the config and writes every transfer it finds.
    Keys are documented in configs/vis-mswrite.hdr and docs/mswrite.md.

    \b
    Example:
        svc-mswrite -c configs/vis.hdr -c configs/vis-mswrite.hdr --autonomous \\
            --socket /tmp/mswrite.sock -o MS_OUTPUT_DIR=/data/ms
        svc-ctl /tmp/mswrite.sock status
    """
    config = options.load(MsWriteConfig, MsWriteService)
    raise SystemExit(run_service(MsWriteService(config), config))
