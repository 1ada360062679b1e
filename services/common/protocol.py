"""Framing of the control protocol: a 4-byte big-endian length, then a msgpack map.

Both directions use the same framing. A frame longer than ``max_bytes`` (default 1 MiB) is
refused before it is read. See ``docs/control.md``.
"""

from __future__ import annotations

import enum
import socket
import struct
from collections.abc import Mapping
from typing import Any

import msgpack

MAX_MESSAGE_BYTES = 1 << 20
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame that cannot be read or decoded; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _default(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)  # paths and anything else msgpack has no type for


def encode(message: Mapping[str, Any], max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """One frame: length prefix plus the msgpack encoding of ``message``."""
    payload = msgpack.packb(dict(message), default=_default, use_bin_type=True)
    if len(payload) > max_bytes:
        raise ProtocolError("oversized", f"message of {len(payload)} bytes exceeds {max_bytes}")
    return _LENGTH.pack(len(payload)) + payload


def decode(payload: bytes) -> dict[str, Any]:
    """The map in a frame's payload; ProtocolError if it is not msgpack or not a map."""
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError("malformed", f"not a msgpack message ({type(exc).__name__})") from None
    if not isinstance(message, dict):
        raise ProtocolError("not_a_map", f"expected a msgpack map, got {type(message).__name__}")
    return message


def _recv_exact(sock: socket.socket, nbytes: int) -> bytes | None:
    chunks = []
    remaining = nbytes
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 16))
        if not chunk:
            if remaining == nbytes:
                return None
            raise ProtocolError(
                "truncated", f"connection closed {remaining} bytes short of a frame"
            )
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes | None:
    """The payload of the next frame, or None if the peer closed between frames."""
    prefix = _recv_exact(sock, _LENGTH.size)
    if prefix is None:
        return None
    (length,) = _LENGTH.unpack(prefix)
    if length > max_bytes:
        raise ProtocolError(
            "oversized", f"message of {length} bytes exceeds the limit of {max_bytes}"
        )
    if length == 0:
        return b""
    payload = _recv_exact(sock, length)
    if payload is None:
        raise ProtocolError("truncated", f"connection closed {length} bytes short of a frame")
    return payload
