"""The ``svc-mswrite`` command: parse options, load the config, run the service."""

from __future__ import annotations

import click

from services.common.config import ConfigError, Mode, build_config
from services.common.options import DaemonOptions, daemon_options
from services.common.runner import run_service
from services.mswrite.service import (
    MsWriteBeamConfig,
    MsWriteConfig,
    MsWriteScanConfig,
    MsWriteService,
)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@daemon_options
def main(options: DaemonOptions) -> None:
    """Write the transfers of a visibility ring pair into MeasurementSets.

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
    if config.mode is Mode.AUTONOMOUS:  # refuse a bad beam/scan config before starting
        problems: list[str] = []
        for config_type in (MsWriteBeamConfig, MsWriteScanConfig):
            try:
                build_config(config_type, config.source)
            except ConfigError as exc:
                problems += exc.problems
        if problems:
            raise click.ClickException(str(ConfigError(config.source.describe(), problems)))
    raise SystemExit(run_service(MsWriteService(config), config))


if __name__ == "__main__":
    main()
