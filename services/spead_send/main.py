"""``svc-spead-send``: parse the common options, load the config, run the service."""

from __future__ import annotations

import click

from services.common.options import DaemonOptions, daemon_options
from services.common.runner import run_service
from services.spead_send.config import SpeadSendConfig
from services.spead_send.service import SpeadSendService


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@daemon_options
def main(options: DaemonOptions) -> None:
    """Send the transfers of a ring pair onwards as SPEAD streams: visibility rings as the
    CBF-SDP ICD, beam rings as ringpipe's PST beam profile (docs/spead-send.md).

    \b
    Example:
      svc-spead-send -c configs/vis.hdr -c configs/vis-spead-send.hdr --autonomous \\
          -o DEST_HOST=127.0.0.1 -o DEST_PORT=42000
    """
    config = options.load(SpeadSendConfig, SpeadSendService)
    raise SystemExit(run_service(SpeadSendService(config), config))


if __name__ == "__main__":
    main()
