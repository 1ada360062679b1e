"""``svc-ingest``: parse the common options, load the config, run the service."""

from __future__ import annotations

import click

from services.common.options import DaemonOptions, daemon_options
from services.common.runner import run_service
from services.ingest.config import IngestConfig
from services.ingest.service import IngestService


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@daemon_options
def main(options: DaemonOptions) -> None:
    """Receive SPEAD2 visibility (CBF-SDP ICD) or voltage-beam streams into a data + weights
    ring pair (docs/ingest.md).

    \b
    Example:
      ringbuf create -k c000 -b 5120 -n 16 && ringbuf create -k c010 -b 320 -n 16
      svc-ingest -c configs/vis.hdr -c configs/vis-ingest.hdr --autonomous
    """
    config = options.load(IngestConfig, IngestService)
    raise SystemExit(run_service(IngestService(config), config))
