"""Write a :class:`~services.stat.compute.StatResult` as an SKA PST STAT HDF5 file.

The layout is the reference's (:mod:`services.stat.hdf5_schema`): ``FILE_FORMAT_VERSION`` (scalar
vlen ASCII "1.0.0"), ``HEADER`` (one compound record, itemsize 184), then the datasets in the
reference's order; contiguous, no groups, no attributes, default (version 0) superblock.

Counts are computed in 64 bits.  They are written as uint32, as the reference does, whenever
every value fits; a dataset (or HEADER member) holding a larger value is written as uint64
instead, with a warning, rather than wrapping as the reference does (more than 2^32 samples of
one pol and dim in one segment, e.g. about 43 s of Low AA0.5 data).

The file is written under a temporary name in the target directory and renamed into place,
so a file with the final name is always complete.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5s, h5t

from services.stat import hdf5_schema as schema
from services.stat.compute import StatResult

logger = logging.getLogger(__name__)
U4_MAX = np.iinfo(np.uint32).max


def count_dtype(values: np.ndarray | int, name: str) -> np.dtype:
    """uint32 if every value fits (the reference's type), else uint64 (logged)."""
    if np.max(values, initial=0) > U4_MAX:
        logger.warning("%s exceeds 2^32-1; written as uint64 instead of uint32", name)
        return np.dtype("<u8")
    return np.dtype("<u4")


def _ascii_vlen() -> h5t.TypeID:
    tid = h5t.C_S1.copy()
    tid.set_size(h5t.VARIABLE)
    tid.set_cset(h5t.CSET_ASCII)
    tid.set_strpad(h5t.STR_NULLTERM)
    return tid


def _header_types(result: StatResult) -> list[tuple[str, h5t.TypeID, np.dtype]]:
    """(name, HDF5 file type, numpy memory dtype) of each HEADER member."""
    out = []
    for name, kind in schema.HEADER_FIELDS:
        if kind == "str":
            out.append((name, _ascii_vlen(), h5py.string_dtype("ascii")))
        elif kind == "f8":
            out.append((name, h5t.NATIVE_DOUBLE, np.dtype("<f8")))
        elif kind == "u8":
            out.append((name, h5t.NATIVE_UINT64, np.dtype("<u8")))
        elif kind == "u4":
            dt = count_dtype(getattr(result, name.lower()), f"HEADER.{name}")
            native = h5t.NATIVE_UINT32 if dt.itemsize == 4 else h5t.NATIVE_UINT64
            out.append((name, native, dt))
        elif kind == "vlen_f8":
            out.append((name, h5t.vlen_create(h5t.NATIVE_DOUBLE), h5py.vlen_dtype(np.float64)))
        else:  # vlen_u4
            dt = count_dtype(getattr(result, name.lower()), f"HEADER.{name}")
            base = h5t.NATIVE_UINT32 if dt.itemsize == 4 else h5t.NATIVE_UINT64
            out.append((name, h5t.vlen_create(base), h5py.vlen_dtype(dt)))
    return out


def _write_header(f: h5py.File, result: StatResult) -> None:
    members = _header_types(result)
    offsets, offset = [], 0
    for _name, tid, _dt in members:
        size = tid.get_size()
        offset += -offset % min(size, 8)  # natural alignment, as the C++ struct
        offsets.append(offset)
        offset += size
    itemsize = offset + (-offset % 8)
    ftype = h5t.create(h5t.COMPOUND, itemsize)
    for (name, tid, _dt), off in zip(members, offsets, strict=False):
        ftype.insert(name.encode("ascii"), off, tid)
    space = h5s.create_simple((1,))
    dset = h5py.Dataset(h5d.create(f.id, schema.HEADER_DATASET.encode("ascii"), ftype, space))
    record = np.zeros(1, np.dtype([(name, dt) for name, _tid, dt in members]))
    for name, _tid, dt in members:
        value = getattr(result, name.lower())
        if dt.kind == "O" and isinstance(value, np.ndarray):
            record[name][0] = np.asarray(value, h5py.check_vlen_dtype(dt))
        else:
            record[name][0] = value
    dset[...] = record


def _dataset_array(result: StatResult, name: str, kind: str) -> np.ndarray:
    value = np.asarray(getattr(result, name.lower()))
    if kind == "f4":
        return value.astype("<f4", copy=False)
    return value.astype(count_dtype(value, name), copy=False)


def write_hdf5(result: StatResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path`` (atomically: temporary name, then rename). Returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
            f.create_dataset(schema.FILE_FORMAT_VERSION_DATASET, data=schema.FILE_FORMAT_VERSION,
                             dtype=h5py.string_dtype("ascii"))
            _write_header(f, result)
            for name, kind in schema.DATASETS:
                f.create_dataset(name, data=_dataset_array(result, name, kind))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("wrote %s", path)
    return path
