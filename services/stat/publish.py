"""Scalar statistics published as msgpack frames to subscribers of a Unix socket.

A monitor connects to STAT_PUBLISH_SOCKET and receives, after each processed segment, one
frame (4-byte big-endian length + msgpack map) with the PST ScalarStatPublisher fields
(``real_pol_a_mean_freq_avg`` ...), plus ``scan_id``, ``obs_offset``, ``file`` and ``time``.
A subscriber that cannot keep up (its socket buffer is full) is dropped, never waited for.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from services.common.protocol import decode, encode, read_frame

logger = logging.getLogger(__name__)


class ScalarPublisher:
    """Accepts subscribers on a Unix stream socket and sends them each published map."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()  # a stale socket of a previous run
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._server.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self._server.listen(8)
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="stat-publish", daemon=True)
        self._thread.start()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._clients)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            client.setblocking(False)
            with self._lock:
                self._clients.append(client)

    def publish(self, message: Mapping[str, Any]) -> int:
        """Send ``message`` to every subscriber; returns how many received it."""
        frame = encode(message)
        sent = 0
        with self._lock:
            for client in list(self._clients):
                try:
                    client.sendall(frame)
                    sent += 1
                except OSError:  # gone, or too slow to keep up (non-blocking send)
                    logger.info("dropping a stat subscriber")
                    self._clients.remove(client)
                    client.close()
        return sent

    def close(self) -> None:
        self._closed = True
        self._server.close()
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
        self.path.unlink(missing_ok=True)


def subscribe(path: str | os.PathLike[str], timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Yield the maps a :class:`ScalarPublisher` sends, until it closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        while True:
            payload = read_frame(sock)
            if payload is None:
                return
            yield decode(payload)
