"""Just enough FITS to read a wsclean image: the primary header and its float data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CARD, BLOCK = 80, 2880


def read_image(path: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """(header, 2-D image) of a FITS primary HDU (extra axes of length 1 dropped)."""
    raw = Path(path).read_bytes()
    header: dict[str, Any] = {}
    pos = 0
    while True:
        card = raw[pos : pos + CARD].decode("ascii")
        pos += CARD
        if card[:8].strip() == "END":
            break
        if card[8:10] == "= ":
            text = card[10:].split("/")[0].strip()
            quoted = text.startswith("'")
            header[card[:8].strip()] = text.strip("'").strip() if quoted else _number(text)
    pos = -(-pos // BLOCK) * BLOCK
    shape = [int(header[f"NAXIS{i}"]) for i in range(int(header["NAXIS"]), 0, -1)]
    dtype = {-32: ">f4", -64: ">f8"}[int(header["BITPIX"])]
    data = np.frombuffer(raw, dtype, count=int(np.prod(shape)), offset=pos).reshape(shape)
    return header, data.reshape(shape[-2:]).astype(np.float64)


def _number(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
