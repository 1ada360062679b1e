"""The control socket: a Unix stream socket speaking length-prefixed msgpack maps.

A request is ``{"command": str, "config": {KEY: value, ...}}`` (``config`` optional); every
reply has at least ``ok`` (bool), ``state`` and ``error`` (None when ok). Bad requests
(undecodable, oversized, not a map, wrong field types, unknown commands) get a reply with
``ok`` False and a ``reason``, are counted in :class:`ControlCounters`, and the server keeps
serving. Oversized or truncated frames also close that connection, since the stream can no
longer be trusted. See ``docs/control.md``.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.counters import Counters, ReasonCounts, reasons, total
from services.common.protocol import MAX_MESSAGE_BYTES, ProtocolError, decode, encode, read_frame

logger = logging.getLogger(__name__)

DEFAULT_RUN_DIR = "/run/ringpipe"
_MAX_PATH = 107  # sockaddr_un.sun_path minus the terminating NUL
#: connections served at once; one more gets a ``busy`` reply and is closed
MAX_CONNECTIONS = 16
#: a connection with no request for this long is closed (so idle clients cannot hold every
#: slot for long: an operator waits at most this long for one)
IDLE_TIMEOUT_S = 5.0

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


class ControlError(ConnectionError):
    """The control socket cannot be served or reached."""


class Reject(enum.Enum):
    """Why a request was rejected before it reached a command."""

    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    TRUNCATED = "truncated"
    NOT_A_MAP = "not_a_map"
    BAD_TYPE = "bad_type"
    UNKNOWN_COMMAND = "unknown_command"
    BUSY = "busy"


@dataclass
class ControlCounters(Counters):
    connections_total: int = total("connections accepted on the control socket")
    requests_total: int = total("request frames received (including rejected ones)")
    requests_rejected: ReasonCounts = reasons(
        Reject, "requests_rejected", "requests rejected before reaching a command"
    )
    commands_ok_total: int = total("commands that succeeded")
    commands_refused_total: int = total("commands refused (not allowed, invalid config, refused)")
    commands_failed_total: int = total("commands whose hook failed (service went to RuntimeError)")


def default_socket_path(name: str, environ: Mapping[str, str] | None = None) -> str:
    """``$RUNTIME_DIRECTORY/<name>.sock`` (systemd's RuntimeDirectory=), else /run/ringpipe/."""
    environ = os.environ if environ is None else environ
    run_dir = environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or DEFAULT_RUN_DIR
    return str(Path(run_dir) / f"{name}.sock")


def _reply_error(reason: str, error: str, state: str | None) -> dict[str, Any]:
    return {"ok": False, "state": state, "error": error, "reason": reason}


class ControlServer:
    """Serves ``handler(command, config) -> reply`` on a Unix socket, one thread per client."""

    def __init__(
        self,
        path: str,
        handler: Handler,
        commands: Collection[str],
        *,
        mode: int = 0o660,
        state: Callable[[], str | None] | None = None,
        counters: ControlCounters | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.handler = handler
        self.commands = frozenset(commands)
        self.mode = mode
        self.counters = counters if counters is not None else ControlCounters()
        self.max_message_bytes = max_message_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._state = state or (lambda: None)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closing = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()

    def start(self) -> None:
        """Bind (replacing a stale socket file), set the mode and start serving."""
        if len(os.fsencode(self.path)) > _MAX_PATH:
            raise ControlError(
                f"control socket path {self.path} is longer than the {_MAX_PATH} bytes "
                "a Unix socket allows; choose a shorter --socket"
            )
        self._remove_stale()
        try:
            Path(self.path).parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            listener.bind(self.path)
            os.chmod(self.path, self.mode)
            listener.listen(16)
            listener.settimeout(0.2)
        except OSError as exc:
            raise ControlError(f"cannot serve control socket {self.path}: {exc.strerror}") from None
        self._inode = os.stat(self.path).st_ino
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()
        logger.info("control socket listening", extra={"socket": self.path})

    def close(self) -> None:
        """Stop serving, close every connection and remove the socket file."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._listener is not None:
            self._listener.close()
        with self._clients_lock:
            for conn in self._clients:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        try:
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    # Internals ----------------------------------------------------------------------------
    def _remove_stale(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ControlError(f"cannot use control socket {self.path}: {exc.strerror}") from None
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError(f"control socket path {self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.settimeout(1.0)
            probe.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            logger.warning("removing stale control socket", extra={"socket": self.path})
            os.unlink(self.path)
            return
        except OSError:
            pass
        finally:
            probe.close()
        raise ControlError(f"control socket {self.path} is in use by another running process")

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if not self._closing.is_set():
                    logger.exception("control socket accept failed")
                return
            conn.settimeout(self.idle_timeout_s)
            self.counters.add("connections_total")
            if not self._slots.acquire(blocking=False):
                self._reject_busy(conn)
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="control-conn", daemon=True
            ).start()

    def _reject_busy(self, conn: socket.socket) -> None:
        self.counters.requests_rejected.add(Reject.BUSY)
        try:
            conn.sendall(
                encode(_reply_error(
                    "busy",
                    f"too many control connections ({self.max_connections} open; idle ones "
                    f"are closed after {self.idle_timeout_s:g} s): try again",
                    self._state(),
                ))
            )
        except OSError:
            pass
        conn.close()

    def _serve(self, conn: socket.socket) -> None:
        with self._clients_lock:
            self._clients.add(conn)
        try:
            while not self._closing.is_set():
                try:
                    payload = read_frame(conn, self.max_message_bytes)
                except ProtocolError as exc:
                    self.counters.add("requests_total")
                    self._send(conn, self._reject(Reject(exc.reason), str(exc)))
                    return
                if payload is None:
                    return
                self.counters.add("requests_total")
                if not self._send(conn, self._answer(payload)):
                    return
        except OSError:  # timeout or peer gone
            return
        finally:
            with self._clients_lock:
                self._clients.discard(conn)
            conn.close()
            self._slots.release()

    def _send(self, conn: socket.socket, reply: dict[str, Any]) -> bool:
        try:
            conn.sendall(encode(reply, self.max_message_bytes))
        except ProtocolError as exc:
            logger.error("reply not sent: %s", exc)
            conn.sendall(encode(_reply_error("oversized", f"reply not sent: {exc}", self._state())))
        except OSError:
            return False
        return True

    def _reject(self, reason: Reject, error: str) -> dict[str, Any]:
        self.counters.requests_rejected.add(reason)
        logger.warning("control request rejected: %s", error, extra={"reason": reason.value})
        return _reply_error(reason.value, error, self._state())

    def _answer(self, payload: bytes) -> dict[str, Any]:
        try:
            request = decode(payload)
        except ProtocolError as exc:
            return self._reject(Reject(exc.reason), str(exc))
        extra = sorted(str(k) for k in request if k not in ("command", "config"))
        if extra:
            return self._reject(Reject.BAD_TYPE, f"unexpected request fields: {', '.join(extra)}")
        command = request.get("command")
        if not isinstance(command, str):
            return self._reject(Reject.BAD_TYPE, "'command' must be a string")
        if command not in self.commands:
            known = ", ".join(sorted(self.commands))
            return self._reject(Reject.UNKNOWN_COMMAND, f"unknown command {command!r} ({known})")
        config = request.get("config")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            return self._reject(Reject.BAD_TYPE, "'config' must be a map of KEY: value")
        for key, value in config.items():
            if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
                return self._reject(
                    Reject.BAD_TYPE,
                    f"config entry {key!r}: keys must be strings and values strings or numbers",
                )
        try:
            return self.handler(command, config)
        except Exception as exc:
            logger.exception("control command %s failed", command)
            self.counters.add("commands_failed_total")
            return _reply_error("internal", f"{command} failed: {exc}", self._state())


class ControlClient:
    """A blocking client: ``with ControlClient(path) as c: c.request("status")``."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot connect to {self.path}: {exc.strerror or exc}") from None
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(self, command: str, config: Mapping[str, object] | None = None) -> dict[str, Any]:
        """Send one command and return the reply map (``reply["ok"]`` says if it succeeded)."""
        message: dict[str, Any] = {"command": command}
        if config:
            message["config"] = dict(config)
        return self.request_raw(encode(message))

    def request_raw(self, frame: bytes) -> dict[str, Any]:
        """Send bytes as they are (tests use this for bad input) and read one reply."""
        self.connect()
        assert self._sock is not None
        try:
            try:
                self._sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon closed at once: its reply (e.g. busy) may be waiting
            payload = read_frame(self._sock)
        except ProtocolError as exc:
            self.close()
            raise ControlError(f"{self.path}: bad reply: {exc}") from None
        except OSError as exc:
            self.close()
            raise ControlError(f"{self.path}: {exc.strerror or exc}") from None
        if payload is None:
            self.close()
            raise ControlError(f"{self.path}: the daemon closed the connection without a reply")
        try:
            return decode(payload)
        except ProtocolError as exc:
            raise ControlError(f"{self.path}: bad reply: {exc}") from None
