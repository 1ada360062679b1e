"""Ring-pair definitions in SKA PST key style (a deployment's rings in one header file).

Keys: DATA_KEY, WEIGHTS_KEY, DB_NBUFS, DB_BUFSZ, WB_NBUFS (must equal DB_NBUFS), WB_BUFSZ,
HB_NBUFS (default 8), HB_BUFSZ (default 4096), NREADERS (default 1), RING_MODE (default 0600).
"""

from __future__ import annotations

from dataclasses import dataclass

from ringbuf.errors import HeaderError
from ringbuf.header import DadaHeader
from ringbuf.layout import RingLayout
from ringbuf.shm import normalise_key


@dataclass(frozen=True)
class PairConfig:
    data_key: str
    weights_key: str
    data_layout: RingLayout
    weights_layout: RingLayout
    mode: int


def pair_keys(data_key: str | int, weights_key: str | int) -> tuple[str, str]:
    """Both keys of a pair in canonical form; ValueError if either is malformed or they are equal.

    The one place where the spellings of a pair's keys are decided, for ``ringbuf create-pair``
    and for every daemon that attaches to the pair.
    """
    data, weights = normalise_key(data_key), normalise_key(weights_key)
    if data == weights:
        raise ValueError(f"DATA_KEY and WEIGHTS_KEY must differ (both {data})")
    return data, weights


def pair_config(header: DadaHeader) -> PairConfig:
    """Read a ring-pair definition; every problem is reported in one HeaderError."""
    problems = []

    def key(name: str) -> str:
        try:
            return normalise_key(header.get_str(name))
        except (HeaderError, ValueError) as exc:
            problems.append(str(exc))
            return ""

    def number(name: str, default: int | None = None) -> int:
        try:
            value = header.get_int(name, default)
        except HeaderError as exc:
            problems.append(str(exc))
            return 1
        if value <= 0:
            problems.append(f"{header.source}: {name} {value} must be positive")
        return value

    data_key, weights_key = key("DATA_KEY"), key("WEIGHTS_KEY")
    db_nbufs, wb_nbufs = number("DB_NBUFS"), number("WB_NBUFS")
    db_bufsz, wb_bufsz = number("DB_BUFSZ"), number("WB_BUFSZ")
    hb_nbufs, hb_bufsz = number("HB_NBUFS", 8), number("HB_BUFSZ", 4096)
    nreaders = header.get_int("NREADERS", 1) if "NREADERS" in header else 1
    try:
        mode = int(header.get_str("RING_MODE", "0600"), 8)
    except ValueError:
        problems.append(f"{header.source}: RING_MODE {header['RING_MODE']!r} is not octal")
        mode = 0o600
    if not 0 <= mode <= 0o777:
        problems.append(f"{header.source}: RING_MODE {header['RING_MODE']} is not a permission "
                        "mode 0000-0777")
        mode = 0o600
    if data_key and weights_key:
        try:
            pair_keys(data_key, weights_key)
        except ValueError as exc:
            problems.append(f"{header.source}: {exc}")
    if db_nbufs != wb_nbufs:
        problems.append(f"{header.source}: DB_NBUFS {db_nbufs} != WB_NBUFS {wb_nbufs}")
    if problems:
        raise HeaderError("; ".join(problems))
    try:
        data = RingLayout(db_nbufs, db_bufsz, nreaders, hb_nbufs, hb_bufsz)
        weights = RingLayout(wb_nbufs, wb_bufsz, nreaders, hb_nbufs, hb_bufsz)
    except ValueError as exc:
        raise HeaderError(f"{header.source}: {exc}") from None
    return PairConfig(data_key, weights_key, data, weights, mode)
