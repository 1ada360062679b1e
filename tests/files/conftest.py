"""Helpers for the .dada file tests: synthetic files shaped like PSRDADA's and SKA PST's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ringbuf.header import DadaHeader

# A small SKA PST Low-like layout: NCHAN 48 = 2 packets of UDP_NCHAN 24, UDP_NSAMP 32, 16 bit.
PST_DATA_RES = 32 * 48 * 2 * 2 * 16 // 8  # 12288 bytes per heap
PST_WEIGHTS_RES = 2 * (4 + 24 * (32 // 32) * 16 // 8)  # 2 packets x (scale + weights) = 104

_PST_COMMON = """HDR_SIZE            4096
HDR_VERSION         1.0
TELESCOPE           SKALow
NANT                1
TSAMP               207.36
WT_NSAMP            32
UDP_NSAMP           32
UDP_NCHAN           24
UDP_FORMAT          LowPST
OS_FACTOR           4/3
NCHAN               48
SOURCE              J0437-4715
UTC_START           2023-02-14-22:15:37
PICOSECONDS         0
SCAN_ID             12345
EB_ID               eb-m001-20230921-12345
"""


def pst_data_header(obs_offset: int = 0, file_number: int = 0) -> DadaHeader:
    text = _PST_COMMON + (
        "NBIT                16\nNPOL                2\nNDIM                2\n"
        f"RESOLUTION          {PST_DATA_RES}\nBYTES_PER_SECOND    800000000\n"
        f"OBS_OFFSET          {obs_offset}\nFILE_NUMBER         {file_number}\n"
    )
    return DadaHeader.parse(text, "pst data header")


def pst_weights_header(obs_offset: int = 0, file_number: int = 0) -> DadaHeader:
    text = _PST_COMMON + (
        "PACKET_WEIGHTS_SIZE 48\nPACKET_SCALES_SIZE  4\nNBIT                16\n"
        "NPOL                1\nNDIM                1\n"
        f"RESOLUTION          {PST_WEIGHTS_RES}\nBYTES_PER_SECOND    6770833.3333\n"
        f"OBS_OFFSET          {obs_offset}\nFILE_NUMBER         {file_number}\n"
    )
    return DadaHeader.parse(text, "pst weights header")


def write_raw_dada(path: Path, header: DadaHeader | str | bytes, data: bytes | np.ndarray,
                   hdr_size: int = 4096) -> Path:
    """Write a .dada file byte by byte as given (no checks), like a foreign tool would."""
    if isinstance(header, DadaHeader):
        raw = header.text.encode()
    elif isinstance(header, str):
        raw = header.encode()
    else:
        raw = header
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(raw + b"\x00" * max(0, hdr_size - len(raw)))
        fh.write(bytes(data) if not isinstance(data, np.ndarray) else data.tobytes())
    return path


def pattern(nbytes: int, seed: int) -> np.ndarray:
    """Deterministic, non-repeating bytes to check data byte for byte."""
    return np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)


def write_pst_pair(root: Path, nheaps: int, first_heap: int = 0, file_number: int = 0,
                   seed: int = 0, extra_data: int = 0, extra_weights: int = 0,
                   ) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A data/weights pair in root/data and root/weights with SKA PST naming and keys."""
    data = pattern(nheaps * PST_DATA_RES + extra_data, seed)
    weights = pattern(nheaps * PST_WEIGHTS_RES + extra_weights, seed + 1000)
    dh = pst_data_header(first_heap * PST_DATA_RES, file_number)
    wh = pst_weights_header(first_heap * PST_WEIGHTS_RES, file_number)
    dh.set("FILE_SIZE", data.size)
    wh.set("FILE_SIZE", weights.size)
    name = f"2023-02-14-22:15:37_{first_heap * PST_DATA_RES:016d}_{file_number:06d}.dada"
    dpath = write_raw_dada(root / "data" / name, dh, data)
    wpath = write_raw_dada(root / "weights" / name, wh, weights)
    return dpath, wpath, data, weights


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (conftest modules cannot be imported directly)."""
    return SimpleNamespace(
        PST_DATA_RES=PST_DATA_RES, PST_WEIGHTS_RES=PST_WEIGHTS_RES,
        pst_data_header=pst_data_header, pst_weights_header=pst_weights_header,
        write_raw_dada=write_raw_dada, pattern=pattern, write_pst_pair=write_pst_pair,
    )


@pytest.fixture
def rings(key_factory):
    """Create rings (single or pairs) that are destroyed after the test."""
    from ringbuf import RingLayout, create_ring, create_ring_pair, destroy_ring

    made: list[str] = []

    def single(bufsz: int, nbufs: int = 4, nreaders: int = 1) -> str:
        key = key_factory()
        create_ring(key, RingLayout(nbufs=nbufs, bufsz=bufsz, nreaders=nreaders))
        made.append(key)
        return key

    def pair(data_bufsz: int, weights_bufsz: int, nbufs: int = 4) -> tuple[str, str]:
        dkey, wkey = key_factory(), key_factory()
        create_ring_pair(dkey, wkey, RingLayout(nbufs=nbufs, bufsz=data_bufsz, nreaders=1),
                         RingLayout(nbufs=nbufs, bufsz=weights_bufsz, nreaders=1))
        made.extend((dkey, wkey))
        return dkey, wkey

    yield SimpleNamespace(single=single, pair=pair)
    for key in made:
        destroy_ring(key)
