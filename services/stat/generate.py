"""Synthetic SKA PST voltage data (data + weights) with known statistics.

:func:`pst_headers` builds data and weights headers like SKA PST's file generator writes
(Low: 16-bit, UDP 32 samples x 24 channels; Mid: 8-bit, UDP 4 x 185), with the derived layout
keys set.  :func:`generate_heaps` makes heaps of Gaussian noise of a given sigma per channel,
optional complex tones, clipped samples and NaN-scale (invalid) packets, in the PST layout.
:func:`write_pair` writes ``data/<name>.dada`` and ``weights/<name>.dada`` in chunks
(constant memory), named ``<UTC_START>_<OBS_OFFSET 16>_<FILE_NUMBER 6>.dada``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ringbuf import DadaHeader, dada_file_name
from services.formats.pst import PstLayout

PROFILES: dict[str, dict[str, object]] = {
    "low": {
        "TELESCOPE": "SKALow", "RECEIVER": "LFAA", "INSTRUMENT": "LowCBF", "NBIT": 16,
        "TSAMP": 207.36, "BAND": "Low", "WT_NSAMP": 32, "UDP_NSAMP": 32, "UDP_NCHAN": 24,
        "UDP_FORMAT": "LowPST", "OS_FACTOR": "4/3", "NCHAN": 20736, "FREQ": 87.5, "BW": 75,
    },
    "mid": {
        "TELESCOPE": "SKAMid", "RECEIVER": "Band5", "INSTRUMENT": "MidCBF", "NBIT": 8,
        "TSAMP": 16.276041667, "BAND": "Band5", "WT_NSAMP": 4, "UDP_NSAMP": 4, "UDP_NCHAN": 185,
        "UDP_FORMAT": "MidPST", "OS_FACTOR": "8/7", "NCHAN": 555, "FREQ": 4913.2864,
        "BW": 29.8368,
    },
}
COMMON = {
    "HDR_SIZE": 4096, "HDR_VERSION": "1.0", "NANT": 1, "START_CHANNEL": 0,
    "OBS_OFFSET": 0, "SOURCE": "J0437-4715", "BEAM_ID": 1, "DATA_GENERATOR": "GaussianNoise",
    "UTC_START": "2023-02-14-22:15:37", "PICOSECONDS": 0, "FILE_NUMBER": 0, "SCAN_ID": 12345,
    "EB_ID": "eb-m001-20230921-12345",
}


def pst_headers(profile: str = "low", **overrides: object) -> tuple[DadaHeader, DadaHeader]:
    """(data header, weights header) for ``profile`` ("low" or "mid"), keys as SKA PST's.

    ``overrides`` (e.g. ``NCHAN=48``, ``FREQ_MASK="90:91"``) apply to the data header; the
    layout keys shared with the weights header, RESOLUTION and BYTES_PER_SECOND follow them.
    """
    keys: dict[str, Any] = {**COMMON, **PROFILES[profile], **overrides}
    keys["END_CHANNEL"] = int(keys["START_CHANNEL"]) + int(keys["NCHAN"])
    nbit, nchan = int(keys["NBIT"]), int(keys["NCHAN"])
    keys["NPOL"], keys["NDIM"] = 2, 2
    keys.setdefault("BYTES_PER_SECOND", nchan * 4 * nbit // 8 / float(keys["TSAMP"]) * 1e6)
    data = DadaHeader({k: v for k, v in keys.items() if k != "RESOLUTION"})
    weights = data.copy()
    for key in ("FREQ_MASK", "NMASK", "STAT_REQ_TIME_BINS", "STAT_REQ_FREQ_BINS", "STAT_NREBIN"):
        weights.delete(key)
    weights.update({"NBIT": 16, "NPOL": 1, "NDIM": 1})
    weights.delete("BYTES_PER_SECOND")
    layout = PstLayout(nchan, nbit, int(keys["UDP_NSAMP"]), int(keys["UDP_NCHAN"]),
                       int(keys["WT_NSAMP"]), 16, 4,
                       int(keys["UDP_NCHAN"]) * int(keys["UDP_NSAMP"]) // int(keys["WT_NSAMP"]) * 2)
    dkeys, wkeys = layout.header_keys()
    data.update(dkeys)
    weights.update(wkeys)
    wbps = layout.weights_heap_stride / (layout.udp_nsamp * float(keys["TSAMP"]) * 1e-6)
    weights.set("BYTES_PER_SECOND", wbps)
    return data, weights


@dataclass
class BeamSpec:
    """What to put in the generated data (defaults: N(0, 10) noise, scale 1, nothing else)."""

    sigma: float | np.ndarray = 10.0  # per channel if an array of NCHAN values
    mean: float = 0.0
    tones: dict[int, float] = field(default_factory=dict)  # channel -> amplitude (complex tone)
    tone_period: int = 16  # samples per cycle of every tone
    clip_fraction: float = 0.0  # fraction of samples replaced by the min/max codes
    nan_packets: frozenset[int] = frozenset()  # global packet indices with a NaN scale
    scale: float = 1.0
    seed: int = 1


def generate_heaps(layout: PstLayout, spec: BeamSpec, first_heap: int,
                   nheap: int) -> tuple[np.ndarray, np.ndarray]:
    """``nheap`` heaps starting at ``first_heap``: (data uint8, weights uint8), PST layout.

    Every heap is drawn from its own generator (seeded by ``spec.seed`` and the heap index),
    so a recording split into files or chunks holds the same samples as one made at once.
    """
    npkt, unchan, unsamp = layout.packets_per_heap, layout.udp_nchan, layout.udp_nsamp
    shape = (npkt, 2, unchan, unsamp, 2)
    sigma = np.broadcast_to(np.asarray(spec.sigma, np.float32), (layout.nchan,))
    sigma = sigma.reshape(npkt, 1, unchan, 1, 1)
    lo, hi = -(1 << (layout.nbit - 1)), (1 << (layout.nbit - 1)) - 1
    ints = np.empty((nheap, *shape), layout.sample_dtype)
    for i in range(nheap):
        heap = first_heap + i
        rng = np.random.default_rng([spec.seed, heap])
        values = rng.standard_normal(shape, dtype=np.float32) * sigma + np.float32(spec.mean)
        if spec.tones:
            phase = 2 * np.pi * (heap * unsamp + np.arange(unsamp)) / spec.tone_period
            for chan, amp in spec.tones.items():
                p, c = divmod(chan, unchan)
                values[p, :, c, :, 0] += amp * np.cos(phase)
                values[p, :, c, :, 1] += amp * np.sin(phase)
        heap_ints = ints[i]
        np.clip(np.rint(values), lo, hi, out=values)
        heap_ints[...] = values
        if spec.clip_fraction > 0:
            hit = rng.random(shape, dtype=np.float32) < spec.clip_fraction
            heap_ints[hit] = np.where(rng.random(int(hit.sum())) < 0.5, lo, hi)
    weights = np.full((nheap, npkt, layout.weights_packet_stride), 0xFF, np.uint8)
    scales = np.full((nheap, npkt), spec.scale, np.float32)
    for index in spec.nan_packets:
        h, p = divmod(index, npkt)
        if first_heap <= h < first_heap + nheap:
            scales[h - first_heap, p] = np.nan
    weights[:, :, : layout.packet_scales_size] = 0
    weights[:, :, :4] = scales[:, :, None].view(np.uint8).reshape(nheap, npkt, 4)
    return ints.reshape(-1).view(np.uint8), weights.reshape(-1)


def write_pair(directory: str | os.PathLike[str], data_header: DadaHeader,
               weights_header: DadaHeader, nheap: int, spec: BeamSpec | None = None,
               chunk_heaps: int = 16, unique_heaps: int | None = None) -> tuple[Path, Path]:
    """Write ``nheap`` heaps as ``<directory>/data/<name>`` and ``<directory>/weights/<name>``.

    The file's first heap index is ``OBS_OFFSET / RESOLUTION`` of the data header.
    ``unique_heaps`` (for big benchmark files) repeats the first that many heaps cyclically.
    Returns (data path, weights path).
    """
    spec = spec or BeamSpec()
    layout = PstLayout.from_headers(data_header, weights_header)
    obs_offset = data_header.get_int("OBS_OFFSET")
    first = obs_offset // layout.data_heap_stride
    name = dada_file_name(data_header.get_str("UTC_START"), obs_offset,
                          data_header.get_int("FILE_NUMBER", 0))
    paths = []
    for sub in ("data", "weights"):
        (Path(directory) / sub).mkdir(parents=True, exist_ok=True)
        paths.append(Path(directory) / sub / name)
    weights_header = weights_header.copy()
    weights_header.set("OBS_OFFSET", first * layout.weights_heap_stride)
    cache: list[tuple[np.ndarray, np.ndarray]] = []
    with open(paths[0], "wb") as dfh, open(paths[1], "wb") as wfh:
        dfh.write(data_header.to_bytes())
        wfh.write(weights_header.to_bytes())
        for start in range(0, nheap, chunk_heaps):
            n = min(chunk_heaps, nheap - start)
            if unique_heaps is not None and start >= unique_heaps and cache:
                data, weights = cache[(start // chunk_heaps) % len(cache)]
                data = data[: n * layout.data_heap_stride]
                weights = weights[: n * layout.weights_heap_stride]
            else:
                data, weights = generate_heaps(layout, spec, first + start, n)
                if unique_heaps is not None and n == chunk_heaps:
                    cache.append((data, weights))
            dfh.write(data.data)
            wfh.write(weights.data)
    return paths[0], paths[1]
