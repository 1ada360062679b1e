"""Where the statistics of a segment go: the :class:`StatPublisher` protocol and its two kinds.

* :class:`Hdf5StatPublisher` writes one SKA PST STAT HDF5 file per result.
* :class:`ScalarStatPublisher` sends the scalar statistics to the subscribers of a
  :class:`ScalarSocket`: a monitor connects to STAT_PUBLISH_SOCKET and receives, after each
  processed segment, one frame (4-byte big-endian length + msgpack map) with the PST
  ScalarStatPublisher fields (``real_pol_a_mean_freq_avg`` ...), plus ``scan_id``,
  ``obs_offset``, ``file`` and ``time``. A subscriber that cannot keep up (its socket buffer
  is full) is dropped, never waited for.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from services.common.protocol import decode, encode, read_frame
from services.stat.compute import StatResult
from services.stat.hdf5_writer import write_hdf5
from services.stat.scalar import scalar_stats

logger = logging.getLogger(__name__)


class StatPublisher(Protocol):
    """Receives the statistics of each processed segment (SKA PST's StatPublisher)."""

    def publish(self, result: StatResult) -> None:
        """Hand on ``result``; OSError if it cannot be written or sent."""
        ...


FileNamer = Callable[[StatResult, int], Path]


class Hdf5StatPublisher:
    """Writes each result as an HDF5 file named ``namer(result, file number)`` (from 0)."""

    def __init__(self, namer: FileNamer) -> None:
        self.namer = namer
        self.paths: list[Path] = []

    @property
    def last_path(self) -> Path | None:
        return self.paths[-1] if self.paths else None

    def publish(self, result: StatResult) -> None:
        path = self.namer(result, len(self.paths))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.paths.append(write_hdf5(result, path))


class ScalarStatPublisher:
    """Sends the scalar statistics of each result to the subscribers of ``socket``.

    ``files`` (the HDF5 publisher of the same results, called first) names the file.
    """

    def __init__(self, socket: ScalarSocket, files: Hdf5StatPublisher | None = None) -> None:
        self.socket = socket
        self.files = files
        self.sent_total = 0

    def publish(self, result: StatResult) -> None:
        message: dict[str, Any] = dict(scalar_stats(result))
        path = self.files.last_path if self.files is not None else None
        message.update(scan_id=str(result.scan_id), obs_offset=result.obs_offset,
                       file=str(path) if path is not None else "", time=time.time())
        self.sent_total += self.socket.send(message)


class ScalarSocket:
    """Accepts subscribers on a Unix stream socket and sends them each map."""

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

    def send(self, message: Mapping[str, Any]) -> int:
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


def subscribe(path: str | os.PathLike[str],
              timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Yield the maps a :class:`ScalarSocket` sends, until it closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        while True:
            payload = read_frame(sock)
            if payload is None:
                return
            yield decode(payload)
