""".dada files: names, reading a file's header and size, and writing one file safely.

A ``.dada`` file is a DADA header of exactly HDR_SIZE bytes (NUL padded) followed by raw data.
Per-file keys (rewritten for every file of a recording):

* ``OBS_OFFSET``: byte offset of the file's first data byte from the start of the observation;
* ``FILE_SIZE``: data bytes in the file (ours always equals the real size; PSRDADA's may not);
* ``FILE_NUMBER``: files of the recording before this one (PSRDADA always writes 0).

Names: ``<UTC_START>_<OBS_OFFSET 16 digits>_<FILE_NUMBER 6 digits>.dada`` (ours and SKA PST's);
PSRDADA's ``<UTC_START>_<OBS_OFFSET 16 digits>.<FILE_NUMBER 6 digits>.dada`` is also read.
The size of a file's data is always taken from the file system (size - HDR_SIZE), never from
its FILE_SIZE key.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ringbuf.errors import DadaFileError, HeaderError
from ringbuf.header import DEFAULT_HDR_SIZE, DadaHeader

logger = logging.getLogger(__name__)

PER_FILE_KEYS = ("OBS_OFFSET", "FILE_SIZE", "FILE_NUMBER")
MAX_HDR_SIZE = 1 << 24  # no DADA header is anywhere near 16 MiB; refuse before reading one
MAX_OBS_OFFSET = 2**63 - 1  # rings keep offsets in 64-bit signed words
# every PSRDADA header starts with these; baseband refuses a file without them
DADA_IDENTITY = (("HEADER", "DADA"), ("HDR_VERSION", "1.0"), ("DADA_VERSION", "1.0"))
DADA_SUFFIX = ".dada"
PARTIAL_SUFFIX = ".partial"

_NAME = re.compile(r"^(?P<utc>.+)_(?P<offset>\d{16})[._](?P<number>\d{6})\.dada$")
_HDR_SIZE = re.compile(rb"(?:^|\n)HDR_SIZE[ \t]+(\d+)")
_UTC_OK = re.compile(r"^[^/\s\x00]+$")

Buffer = bytes | bytearray | memoryview | np.ndarray


@dataclass(frozen=True)
class DadaName:
    """The fields encoded in a .dada file name."""

    utc_start: str
    obs_offset: int
    file_number: int


def dada_file_name(utc_start: str, obs_offset: int, file_number: int) -> str:
    """Our file name: ``<UTC_START>_<OBS_OFFSET %016d>_<FILE_NUMBER %06d>.dada``."""
    if not _UTC_OK.match(utc_start):
        raise HeaderError(f"UTC_START {utc_start!r} cannot be used in a file name")
    if obs_offset < 0 or file_number < 0:
        raise ValueError(f"negative OBS_OFFSET {obs_offset} or FILE_NUMBER {file_number}")
    return f"{utc_start}_{obs_offset:016d}_{file_number:06d}{DADA_SUFFIX}"


def parse_dada_file_name(name: str) -> DadaName | None:
    """Fields of our or PSRDADA's naming, or None if ``name`` follows neither."""
    match = _NAME.match(name)
    if match is None:
        return None
    return DadaName(match["utc"], int(match["offset"]), int(match["number"]))


@dataclass(frozen=True)
class DadaFileInfo:
    """A .dada file's header and the real size of its data part."""

    path: Path
    header: DadaHeader
    hdr_size: int
    data_size: int
    obs_offset: int

    @property
    def utc_start(self) -> str | None:
        return self.header.get("UTC_START")

    @property
    def obs_end(self) -> int:
        """OBS_OFFSET just after the file's last data byte."""
        return self.obs_offset + self.data_size

    def resolution(self) -> int:
        """RESOLUTION (bytes of one heap); HeaderError naming the file if absent or not > 0."""
        value = self.header.get_int("RESOLUTION")
        if value <= 0:
            raise HeaderError(f"{self.path}: RESOLUTION {value} must be positive")
        return value


def read_dada_file(path: str | os.PathLike[str]) -> DadaFileInfo:
    """Read and check a .dada file's header; the data size comes from the file system.

    Raises DadaFileError for a missing file or a truncated header, and HeaderError for a
    header longer than its HDR_SIZE, a malformed header, or a missing/bad OBS_OFFSET.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            probe = fh.read(DEFAULT_HDR_SIZE)
            match = _HDR_SIZE.search(probe.split(b"\x00", 1)[0])
            hdr_size = int(match.group(1)) if match else DEFAULT_HDR_SIZE
            if hdr_size <= 0:
                raise HeaderError(f"{path}: HDR_SIZE {hdr_size} must be positive")
            if hdr_size > MAX_HDR_SIZE:
                raise HeaderError(f"{path}: HDR_SIZE {hdr_size} is not plausible (more than "
                                  f"{MAX_HDR_SIZE} bytes)")
            if size and hdr_size > size:
                raise DadaFileError(f"{path}: truncated header: the file has {size} bytes, "
                                    f"HDR_SIZE is {hdr_size}")
            if hdr_size > len(probe):
                fh.seek(0)
                probe = fh.read(hdr_size)
    except IsADirectoryError:
        raise DadaFileError(f"{path}: is a directory, expected a .dada file") from None
    except OSError as exc:
        raise DadaFileError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise DadaFileError(f"{path}: empty file (no header)")
    if size < hdr_size:
        raise DadaFileError(
            f"{path}: truncated header: the file has {size} bytes, HDR_SIZE is {hdr_size}"
        )
    raw = probe[:hdr_size]
    nul = raw.find(b"\x00")
    if nul < 0:
        raise HeaderError(
            f"{path}: header text is longer than HDR_SIZE {hdr_size} (no NUL terminator in "
            f"the first {hdr_size} bytes)"
        )
    header = DadaHeader.from_bytes(raw[:nul], source=str(path))
    if header.hdr_size != hdr_size:
        raise HeaderError(f"{path}: HDR_SIZE {header['HDR_SIZE']!r} is not a valid size")
    obs_offset = header.get_int("OBS_OFFSET")
    if not 0 <= obs_offset <= MAX_OBS_OFFSET:
        raise HeaderError(f"{path}: OBS_OFFSET {obs_offset} must be 0 .. 2^63-1")
    if "FILE_SIZE" in header and header.get_int("FILE_SIZE") != size - hdr_size:
        logger.debug(
            "%s: header FILE_SIZE %s differs from the %d data bytes in the file (using the latter)",
            path, header["FILE_SIZE"], size - hdr_size,
        )
    return DadaFileInfo(path, header, hdr_size, size - hdr_size, obs_offset)


def file_header(
    header: DadaHeader, obs_offset: int, file_size: int, file_number: int
) -> DadaHeader:
    """A copy of a transfer header with the per-file keys set (HDR_SIZE and the DADA identity
    keys added if absent, as other DADA readers require them)."""
    out = header.copy()
    for key, value in DADA_IDENTITY:
        if key not in out:
            out.set(key, value)
    if "HDR_SIZE" not in out:
        out.set("HDR_SIZE", out.hdr_size)
    out.set("OBS_OFFSET", obs_offset)
    out.set("FILE_SIZE", file_size)
    out.set("FILE_NUMBER", file_number)
    return out


_HDR_SLACK = 64  # room for FILE_SIZE/FILE_NUMBER to grow when the header is rewritten


def fitted_header(header: DadaHeader) -> DadaHeader:
    """``header`` with HDR_SIZE raised to a multiple of 4096 if its text does not fit.

    A transfer header that fills its ring's header block leaves no room for the per-file keys;
    a file can have any HDR_SIZE, so it gets a bigger one rather than being unrecordable.
    """
    size = header.hdr_size
    while len(header.text.encode("ascii")) + _HDR_SLACK >= size:
        size = (len(header.text) + _HDR_SLACK) // DEFAULT_HDR_SIZE * DEFAULT_HDR_SIZE
        size += DEFAULT_HDR_SIZE
        header = header.copy()
        header.set("HDR_SIZE", size)
    return header


def _write_all(fd: int, data: memoryview) -> None:
    while len(data):
        written = os.write(fd, data)
        data = data[written:]


def sync_directory(path: Path) -> None:
    """fsync a directory, so a file created or linked in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_path(path: Path) -> Path:
    """The hidden name a .dada file has while it is being written."""
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def final_path(partial: Path) -> Path:
    """The .dada name of a ``.<name>.partial`` file."""
    return partial.with_name(partial.name[1 : -len(PARTIAL_SUFFIX)])


class DadaFileWriter:
    """Writes one .dada file under a hidden temporary name; :meth:`close` publishes it.

    The header is written first with FILE_SIZE set to the planned size and rewritten on close
    with the number of data bytes really written. Until close, the file is ``.<name>.partial``,
    so nothing that looks like a finished ``.dada`` file is ever incomplete. The partial file
    is locked (flock) while it is written; one left unlocked by a dead writer is finished by
    :func:`recover_partials`. :meth:`sync` makes the bytes so far durable; after an error,
    :meth:`salvage` publishes exactly those.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: DadaHeader,
        obs_offset: int,
        file_number: int,
        planned_size: int,
        sync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.temp_path = partial_path(self.path)
        self.obs_offset = obs_offset
        self.file_number = file_number
        self.nbytes = 0
        self.synced = 0  # data bytes known to be on disk
        self._sync = sync
        self._header = fitted_header(file_header(header, obs_offset, planned_size, file_number))
        encoded = self._header.to_bytes()
        self.hdr_size = len(encoded)
        if self.path.exists():
            raise DadaFileError(f"{self.path}: already exists, refusing to overwrite it")
        try:
            self._fd: int | None = os.open(
                self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise DadaFileError(f"{self.temp_path}: cannot create: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(self._fd, memoryview(encoded))
            if sync:
                os.fdatasync(self._fd)
                sync_directory(self.path.parent)
        except OSError as exc:
            self.abort()
            raise DadaFileError(f"{self.temp_path}: cannot write: {exc.strerror}") from None

    def write(self, data: Buffer) -> None:
        """Append data bytes (any contiguous buffer; numpy views are written without a copy).

        On a write error the file stays as it is (see :meth:`salvage`)."""
        view = (data.data if isinstance(data, np.ndarray) else memoryview(data)).cast("B")
        if self._fd is None:
            raise DadaFileError(f"{self.path}: write after close")
        try:
            _write_all(self._fd, view)
        except OSError as exc:
            raise DadaFileError(f"{self.temp_path}: cannot write: {exc.strerror}") from None
        self.nbytes += len(view)

    def sync(self) -> None:
        """Flush the data written so far to disk (``fdatasync``)."""
        if self._fd is None or self.synced == self.nbytes:
            return
        if self._sync:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise DadaFileError(f"{self.temp_path}: cannot sync: {exc.strerror}") from None
        self.synced = self.nbytes

    def close(self) -> Path:
        """Fix FILE_SIZE, flush to disk, and move the file to its final name (never overwriting)."""
        if self._fd is None:
            raise DadaFileError(f"{self.path}: already closed")
        try:
            final = file_header(self._header, self.obs_offset, self.nbytes, self.file_number)
            os.pwrite(self._fd, final.to_bytes(self.hdr_size), 0)
            if self._sync:
                os.fdatasync(self._fd)
            os.link(self.temp_path, self.path)
            if self._sync:
                sync_directory(self.path.parent)
        except FileExistsError:
            self.abort()
            raise DadaFileError(f"{self.path}: already exists, refusing to overwrite it") from None
        except OSError as exc:
            raise DadaFileError(f"{self.path}: cannot finish: {exc.strerror}") from None
        os.unlink(self.temp_path)
        os.close(self._fd)
        self._fd = None
        self.synced = self.nbytes
        logger.debug("wrote %s (%d data bytes)", self.path, self.nbytes)
        return self.path

    def salvage(self) -> Path | None:
        """After an error: publish the synced bytes only (the rest is still in the ring).

        Returns the published path, None if nothing was synced (the file is deleted). If even
        that fails the partial file stays for :func:`recover_partials` (and is logged).
        """
        if self._fd is None:
            return None
        if self.synced == 0:
            self.abort()
            return None
        self.nbytes = self.synced
        try:
            os.ftruncate(self._fd, self.hdr_size + self.synced)
            return self.close()
        except (OSError, DadaFileError) as exc:
            logger.error("%s: cannot finish (%s); a new recorder in %s finishes it",
                         self.temp_path, exc, self.path.parent)
            os.close(self._fd)
            self._fd = None
            return None

    def abort(self) -> None:
        """Close and delete the temporary file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass


def _finish_partial(partial: Path, keep_bytes: int | None = None) -> Path | None:
    """Publish a dead writer's partial file (its locked fd is already closed by the caller).

    ``keep_bytes`` truncates the data part (pairs keep only whole common heaps).
    """
    info = read_partial(partial)
    if info is None:
        partial.unlink(missing_ok=True)
        return None
    hdr_size, header, nbytes = info
    if keep_bytes is not None:
        nbytes = min(nbytes, keep_bytes)
    final = final_path(partial)
    if nbytes == 0 or final.exists():  # nothing in it, or published before the unlink
        partial.unlink()
        return final if final.exists() else None
    obs_offset = header.get_int("OBS_OFFSET")
    number = header.get_int("FILE_NUMBER", 0)
    fd = os.open(partial, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, hdr_size + nbytes)
        os.pwrite(fd, file_header(header, obs_offset, nbytes, number).to_bytes(hdr_size), 0)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.link(partial, final)
    partial.unlink()
    sync_directory(final.parent)
    logger.warning("%s: finished a recording left unfinished (%d data bytes)", final, nbytes)
    return final


def read_partial(partial: Path) -> tuple[int, DadaHeader, int] | None:
    """(HDR_SIZE, header, data bytes) of a partial file; None if its header is incomplete."""
    try:
        info = read_dada_file(partial)
    except (DadaFileError, HeaderError):
        return None  # killed while writing the header: it cannot hold any cleared data
    return info.hdr_size, info.header, info.data_size


def _lock_partial(partial: Path) -> int | None:
    """An fd holding the lock of an abandoned partial file, None if its writer still runs."""
    try:
        fd = os.open(partial, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _stored_heaps(path: Path) -> tuple[int, int] | None:
    """(whole heaps, RESOLUTION) of a partial or finished file; None if unreadable/absent."""
    info = read_partial(path) if path.exists() else None
    if info is None:
        return None
    res = info[1].get_int("RESOLUTION", 0)
    return (info[2] // res, res) if res > 0 else None


def recover_partials(directory: Path, weights_directory: Path | None = None) -> list[Path]:
    """Finish the partial files a killed recorder left in ``directory``; the published paths.

    With ``weights_directory`` (a pair), a data file and its weights namesake are cut to the
    heaps both hold, so each pair of files still covers the same heaps. Partial files whose
    writer is alive (locked) are left alone.
    """
    done: list[Path] = []
    pattern = f".*{DADA_SUFFIX}{PARTIAL_SUFFIX}"
    for partial in sorted(directory.glob(pattern)):
        fd = _lock_partial(partial)
        if fd is None:
            continue
        try:
            keep = None
            if weights_directory is not None:
                other = weights_directory / partial.name
                if not other.exists():
                    other = final_path(other)
                mine, theirs = _stored_heaps(partial), _stored_heaps(other)
                keep = 0 if mine is None or theirs is None else min(mine[0], theirs[0]) * mine[1]
            path = _finish_partial(partial, keep)
            if path is not None:
                done.append(path)
        finally:
            os.close(fd)
    if weights_directory is not None:
        for wpartial in sorted(weights_directory.glob(pattern)):
            fd = _lock_partial(wpartial)
            if fd is None:
                continue
            try:
                mine, theirs = _stored_heaps(wpartial), _stored_heaps(
                    final_path(directory / wpartial.name))
                keep = 0 if mine is None or theirs is None else min(mine[0], theirs[0]) * mine[1]
                path = _finish_partial(wpartial, keep)
                if path is not None:
                    done.append(path)
            finally:
                os.close(fd)
    return done


DEFAULT_BYTES_PER_SECOND = 64_000_000  # dada_dbdisk's fallback rate
DEFAULT_FILE_SECONDS = 10


def default_file_size(header: DadaHeader) -> int:
    """Requested data bytes per file, as dada_dbdisk chooses it: FILE_SIZE, else 10 s of data."""
    if "FILE_SIZE" in header:
        size = header.get_int("FILE_SIZE")
    else:
        rate = header.get_float("BYTES_PER_SECOND", float(DEFAULT_BYTES_PER_SECOND))
        size = int(DEFAULT_FILE_SECONDS * rate)
    if size <= 0:
        raise HeaderError(
            f"{header.source}: file size {size} (FILE_SIZE/BYTES_PER_SECOND) must be positive"
        )
    return size


def file_end(offset: int, file_size: int, resolution: int) -> int:
    """OBS_OFFSET at which a file starting at ``offset`` ends: ``offset + file_size`` rounded up
    to a whole number of RESOLUTION units from the start of the observation (as dada_dbdisk)."""
    end = offset + max(file_size, 1)
    return -(-end // resolution) * resolution


class RollingDadaWriter:
    """One stream of one transfer, written to consecutive .dada files in ``directory``.

    The caller decides where files end (:meth:`begin_file` / :meth:`end_file`); this class
    keeps OBS_OFFSET and FILE_NUMBER right and names the files. ``name_offset`` lets the
    weights stream of a pair use the data stream's OBS_OFFSET in its names.
    """

    def __init__(self, directory: str | os.PathLike[str], header: DadaHeader, sync: bool = True):
        self.directory = Path(directory)
        self.header = header
        self.utc_start = header.get_str("UTC_START")
        dada_file_name(self.utc_start, 0, 0)  # validates UTC_START for use in names
        self.offset = header.get_int("OBS_OFFSET", 0)
        self.file_number = 0
        self.nbytes = 0
        self.paths: list[Path] = []
        self._sync = sync
        self._file: DadaFileWriter | None = None

    @property
    def in_file(self) -> bool:
        return self._file is not None

    def begin_file(self, planned_size: int, name_offset: int | None = None) -> None:
        """Start the next file at the current OBS_OFFSET."""
        if self._file is not None:
            raise DadaFileError(f"{self._file.path}: previous file not ended")
        name = dada_file_name(
            self.utc_start, self.offset if name_offset is None else name_offset, self.file_number
        )
        self._file = DadaFileWriter(
            self.directory / name, self.header, self.offset, self.file_number, planned_size,
            sync=self._sync,
        )

    def write(self, data: Buffer) -> None:
        if self._file is None:
            raise DadaFileError(f"{self.directory}: write outside a file")
        before = self._file.nbytes
        self._file.write(data)
        added = self._file.nbytes - before
        self.offset += added
        self.nbytes += added

    def end_file(self) -> Path | None:
        """Publish the current file (an empty one is discarded); returns its path."""
        file, self._file = self._file, None
        if file is None:
            return None
        if file.nbytes == 0:
            file.abort()
            return None
        path = file.close()
        self.paths.append(path)
        self.file_number += 1
        return path

    def sync(self) -> None:
        """Make every byte written so far durable (finished files already are)."""
        if self._file is not None:
            self._file.sync()

    def salvage(self) -> None:
        """After an error: publish the synced part of the current file (see DadaFileWriter)."""
        file, self._file = self._file, None
        if file is not None:
            path = file.salvage()
            if path is not None:
                self.paths.append(path)
                self.file_number += 1

    def abort(self) -> None:
        """Delete the unfinished file, if any; finished files stay."""
        file, self._file = self._file, None
        if file is not None:
            file.abort()
