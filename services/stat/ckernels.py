"""The statistics kernels in C (``_kernels.c``), compiled on first use and loaded with ctypes.

Loading costs a few milliseconds, against about a second for importing numba and loading its
cached kernels, which every ``stat-file-processor`` run paid.  The shared object is built
once per source, compiler flags and CPU with the system C compiler (``$CC``, else ``cc``) into
``$RINGPIPE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/ringpipe`` or ``~/.cache/ringpipe``),
written under a temporary name and renamed, so concurrent first runs are safe.
:func:`load` returns None when no compiler is available or the build fails; the caller then
uses the numba kernels (:mod:`services.stat.kernels`), which compute the same numbers.

Flags: ``-O3 -march=native -ffp-contract=off`` and no fast-math: the arithmetic must stay
IEEE float32/float64 in the written order (no fused multiply-add) to match SKA PST bit for bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
from pathlib import Path

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_kernels.c")
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-std=c11",
          "-shared", "-fPIC")

_P = ctypes.c_void_p
_I = ctypes.c_int64


class AccArgs(ctypes.Structure):
    """``struct acc_args`` of ``_kernels.c`` (pointers as addresses)."""

    _fields_ = [(name, _P) for name in ("raw", "factors", "valid", "mask", "nsamp_chan")] + [
        (name, _I) for name in ("nheap", "npkt", "unchan", "unsamp", "pol", "heap0", "spt",
                                "cpf", "any_mask", "hist_offset", "code_min", "code_max",
                                "nrebin", "ndat_ds")
    ] + [(name, _P) for name in ("wmean", "wm2", "psum", "pmax", "clip_i", "clip_q", "hist_i",
                                 "hist_q", "hist_mi", "hist_mq", "rh2", "rh2_m", "spec",
                                 "ts_max", "ts_min", "ts_mean", "ts_cnt", "tsx_max", "tsx_min",
                                 "tsx_mean", "tsx_cnt", "joint", "joint_m")]


_LIB: list[ctypes.CDLL | None] = []


def cache_dir() -> Path:
    """Where compiled kernels are kept."""
    explicit = os.environ.get("RINGPIPE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ringpipe"


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> list[str]:
    return os.environ.get("CC", "cc").split()


def library_path() -> Path:
    """The shared object's path for this source, flags, compiler and CPU."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(CFLAGS).encode(), " ".join(_compiler()).encode(),
                 platform.machine().encode(), _cpu_signature().encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir() / f"stat_kernels_{key.hexdigest()[:20]}.so"


def build(path: Path) -> None:
    """Compile ``_kernels.c`` into ``path`` (atomically); OSError (with the compiler's
    messages) if that fails."""
    import subprocess
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".stat_kernels_", suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        done = subprocess.run([*_compiler(), *CFLAGS, "-o", tmp, str(SOURCE)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise OSError(f"{_compiler()[0]} failed: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.stat_accumulate.argtypes = [ctypes.POINTER(AccArgs), _I]
    lib.stat_accumulate.restype = ctypes.c_int
    lib.stat_combine.argtypes = [_P, _P, _P, _P, _I, _I, _I, _P, _P]
    lib.stat_combine.restype = None
    return lib


def load() -> ctypes.CDLL | None:
    """The compiled kernels (built now if needed), or None if they cannot be built."""
    if _LIB:
        return _LIB[0]
    lib = None
    if os.environ.get("RINGPIPE_STAT_KERNELS", "c") != "numba":
        path = library_path()
        try:
            if not path.exists():
                build(path)
            lib = _open(path)
        except OSError as exc:
            logger.warning("C statistics kernels unavailable (%s); using numba", exc)
    _LIB.append(lib)
    return lib
