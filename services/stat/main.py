"""``svc-stat``: parse the common options, load the config, run the service."""

from __future__ import annotations

import click

from services.common.options import DaemonOptions, daemon_options
from services.common.runner import run_service
from services.stat.config import StatDaemonConfig
from services.stat.service import StatService


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@daemon_options
def main(options: DaemonOptions) -> None:
    """SKA PST STAT statistics of a live data+weights ring pair, into HDF5 files
    (docs/stat.md).

    \b
    Examples:
      svc-stat -c configs/beam.hdr -c configs/beam-stat.hdr --autonomous
      svc-stat -c configs/beam.hdr -c configs/beam-stat.hdr --socket /run/ringpipe/stat.sock
      svc-ctl /run/ringpipe/stat.sock configure_beam -o DATA_KEY=a000 -o WEIGHTS_KEY=a010
    """
    config = options.load(StatDaemonConfig, StatService)
    raise SystemExit(run_service(StatService(config), config))
