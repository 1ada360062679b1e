"""The systemd notify protocol (sd_notify), without a dependency on libsystemd.

A service started with ``Type=notify`` tells systemd about itself by sending datagrams of
``NAME=value`` lines to the ``AF_UNIX`` socket named in ``$NOTIFY_SOCKET``:

* ``READY=1`` (with ``STATUS=...``) once it is attached and serving,
* ``STATUS=...`` whenever its one-line status changes (``systemctl status`` shows it),
* ``WATCHDOG=1`` at least every ``WatchdogSec`` (``$WATCHDOG_USEC``) while it makes progress,
* ``STOPPING=1`` when it begins to shut down.

Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op. A socket name starting
with ``@`` is in the Linux abstract namespace (the ``@`` stands for a leading NUL byte).
Send failures are logged at debug level and never raised: notification is best effort.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def _render(value: object) -> str:
    if value is True:
        return "1"
    return str(value).replace("\n", " ")


def notify(environ: Mapping[str, str] | None = None, **fields: object) -> bool:
    """Send ``fields`` to systemd, e.g. ``notify(ready=True, status="attached to a000")``.

    Field names are upper-cased (``ready`` -> ``READY``); ``True`` becomes ``1``; fields whose
    value is ``None`` or ``False`` are left out. Returns True if a datagram was sent.
    """
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET", "")
    lines = [f"{name.upper()}={_render(v)}" for name, v in fields.items() if v not in (None, False)]
    if not address or not lines:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode("utf-8"), address)
    except OSError as exc:
        logger.debug("sd_notify to %r failed: %s", environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds (``$WATCHDOG_USEC``), or None if the watchdog is off.

    The timeout applies only to the process named by ``$WATCHDOG_PID`` when that is set.
    Ping at half this interval.
    """
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


def is_under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True if systemd started this process as a service (``$INVOCATION_ID`` is set)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("INVOCATION_ID") or environ.get("NOTIFY_SOCKET"))
