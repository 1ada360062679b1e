"""``svc-avg``: parse the common options, load the config, run the service."""

from __future__ import annotations

import click

from services.avg.service import AvgConfig, AvgService
from services.common.options import DaemonOptions, daemon_options
from services.common.runner import run_service


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@daemon_options
def main(options: DaemonOptions) -> None:
    """Average (time, channel, baseline-dependent) and RFI-flag a visibility ring pair into
    another ring pair (docs/avg.md).

    \b
    Example:
        svc-avg -c configs/vis.hdr -c configs/vis-avg.hdr --autonomous --socket /tmp/avg.sock
        svc-ctl /tmp/avg.sock status
    """
    config = options.load(AvgConfig, AvgService)
    raise SystemExit(run_service(AvgService(config), config))


if __name__ == "__main__":
    main()
