"""Snapshots of ring state for people (``ringbuf status``/``list``/``header``) and scripts.

Inspection maps only a ring's control words and header ring (never the data ring), so it
touches no data page and needs no RLIMIT_MEMLOCK, however large or ``--lock`` the ring is.
"""

from __future__ import annotations

import time
from typing import Any

from ringbuf import control as c
from ringbuf import shm
from ringbuf.errors import HeaderError, RingBufError, RingPermissionError
from ringbuf.header import DadaHeader
from ringbuf.ring import Ring, missing_semaphores


def _iso(ns: int) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ns / 1e9)) if ns else None


def snapshot(key: str | int) -> dict[str, Any]:
    """Everything ``ringbuf status`` shows about one ring, as plain data."""
    with Ring(key, data=False) as ring:
        q, lay = ring.q, ring.layout
        filled = q[c.C_W_FILLED]
        writer_alive = ring.writer_alive()
        readers: list[dict[str, Any]] = []
        for slot in range(lay.nreaders):
            base = c.reader_base(slot)
            alive = ring.reader_alive(slot)
            cleared = q[base + c.R_CLEARED]
            readers.append({
                "slot": slot,
                "pid": q[base + c.R_PID] if alive else None,
                "alive": alive,
                "since": _iso(q[base + c.R_SINCE_NS]) if alive else None,
                "blocks_read": cleared,
                "lag_blocks": filled - cleared,
                "bytes_read": q[base + c.R_BYTES],
                "transfer": q[base + c.R_XFER],
                "attaches": q[base + c.R_ATTACHES],
            })
        lag = max((r["lag_blocks"] for r in readers), default=0)
        creator_alive = shm.pid_alive(q[c.C_CREATOR_PID], q[c.C_CREATOR_START])
        return {
            "key": ring.key,
            "nbufs": lay.nbufs,
            "bufsz": lay.bufsz,
            "nreaders": lay.nreaders,
            "hdr_nbufs": lay.hdr_nbufs,
            "hdr_size": lay.hdr_size,
            "total_nbytes": lay.total_nbytes,
            "mode": f"{q[c.C_MODE]:04o}",
            "created": _iso(q[c.C_CREATED_NS]),
            "creator_pid": q[c.C_CREATOR_PID],
            "creator_alive": creator_alive,
            "writer": {
                "pid": q[c.C_W_PID] if writer_alive else None,
                "alive": writer_alive,
                "since": _iso(q[c.C_W_SINCE_NS]) if writer_alive else None,
                "blocks_written": filled,
                "bytes_written": q[c.C_BYTES_WRITTEN],
                "blocked_seconds": q[c.C_W_BLOCKED_NS] / 1e9,
                "attaches": q[c.C_W_ATTACHES],
            },
            "readers": readers,
            "fill_blocks": lag,
            "fill_fraction": lag / lay.nbufs,
            "transfer": _current_transfer(ring),
            "problems": problems(ring),
        } | _state(writer_alive, readers)


def problems(ring: Ring) -> list[str]:
    """What is broken in a ring (each a sentence saying what to do); empty if healthy."""
    return [f"semaphore {name} is missing: no writer or reader can attach; destroy and "
            f"recreate the ring ('ringbuf destroy -k {ring.key}')"
            for name in missing_semaphores(ring.key, ring.layout)]


def _state(writer_alive: bool, readers: list[dict[str, Any]]) -> dict[str, Any]:
    """``idle`` and a ``state`` sentence: who is attached, or what an idle ring holds."""
    alive = sum(r["alive"] for r in readers)
    if writer_alive or alive:
        return {"idle": False,
                "state": f"writer {'up' if writer_alive else 'down'}, {alive} reader(s)"}
    waiting = [r for r in readers if r["lag_blocks"] > 0]
    if waiting:
        slots = ", ".join(f"slot {r['slot']}: {r['lag_blocks']}" for r in waiting)
        return {"idle": True, "state": f"idle, unread blocks kept for the next reader ({slots})"}
    return {"idle": True, "state": "idle, nothing attached, nothing unread"}


def current_header(key: str | int) -> DadaHeader:
    """The header of the newest transfer of ring ``key`` (``ringbuf header KEY``)."""
    with Ring(key, data=False) as ring:
        xfer_id = ring.word(c.C_XFER_NEXT) - 1
        if xfer_id < 0:
            raise RingBufError(f"ring {ring.key}: no transfer has started yet")
        if ring.word(ring.xfer_record(xfer_id) + c.X_ID) != xfer_id:
            raise RingBufError(
                f"ring {ring.key}: transfer {xfer_id} is no longer in the header ring")
        return DadaHeader.from_bytes(ring.header_bytes(xfer_id),
                                     f"ring {ring.key} transfer {xfer_id}")


def _current_transfer(ring: Ring) -> dict[str, Any] | None:
    q = ring.q
    xfer_id = q[c.C_XFER_NEXT] - 1
    if xfer_id < 0:
        return None
    rec = ring.xfer_record(xfer_id)
    try:
        header = DadaHeader.from_bytes(ring.header_bytes(xfer_id)).text
    except HeaderError as exc:
        header = f"(unreadable: {exc})"
    return {
        "id": xfer_id,
        "state": c.XFER_STATE_NAMES[q[rec + c.X_STATE]],
        "start_block": q[rec + c.X_START_BLOCK],
        "end_block": q[rec + c.X_END_BLOCK],
        "header": header,
    }


def list_rings() -> list[dict[str, Any]]:
    """A short summary of every ring on the machine; a damaged one has only ``error``."""
    rings = []
    for key in shm.existing_keys():
        try:
            snap = snapshot(key)
        except RingPermissionError as exc:  # not damaged: someone else's ring
            rings.append({"key": key, "error": str(exc), "no_access": True})
            continue
        except (RingBufError, ValueError, OSError, IndexError, OverflowError) as exc:
            rings.append({"key": key, "error": str(exc)})  # a damaged ring: the rest still listed
            continue
        rings.append({k: snap[k] for k in ("key", "nbufs", "bufsz", "nreaders", "created",
                                           "creator_pid", "fill_fraction", "idle", "state",
                                           "problems")}
                     | {"writer_alive": snap["writer"]["alive"],
                        "readers_alive": sum(r["alive"] for r in snap["readers"])})
    return rings
