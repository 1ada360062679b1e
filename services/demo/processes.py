"""Moved to :mod:`services.common.processes`; this name stays only until the last importers
(tests/stat/test_daemon.py, tests/mswrite/test_service.py, tests/mswrite/svc_helpers.py)
follow the move. Delete it then."""

from services.common.processes import (  # noqa: F401
    Process,
    ProcessGroup,
    daemon_env,
    free_udp_ports,
    options,
    run_tool,
    tool,
    unique_key,
)
