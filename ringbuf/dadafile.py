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
    if obs_offset < 0:
        raise HeaderError(f"{path}: OBS_OFFSET {obs_offset} must not be negative")
    if "FILE_SIZE" in header and header.get_int("FILE_SIZE") != size - hdr_size:
        logger.debug(
            "%s: header FILE_SIZE %s differs from the %d data bytes in the file (using the latter)",
            path, header["FILE_SIZE"], size - hdr_size,
        )
    return DadaFileInfo(path, header, hdr_size, size - hdr_size, obs_offset)


def file_header(
    header: DadaHeader, obs_offset: int, file_size: int, file_number: int
) -> DadaHeader:
    """A copy of a transfer header with the per-file keys set (HDR_SIZE added if absent)."""
    out = header.copy()
    if "HDR_SIZE" not in out:
        out.set("HDR_SIZE", out.hdr_size)
    out.set("OBS_OFFSET", obs_offset)
    out.set("FILE_SIZE", file_size)
    out.set("FILE_NUMBER", file_number)
    return out


def _write_all(fd: int, data: memoryview) -> None:
    while len(data):
        written = os.write(fd, data)
        data = data[written:]


class DadaFileWriter:
    """Writes one .dada file under a hidden temporary name; :meth:`close` publishes it.

    The header is written first with FILE_SIZE set to the planned size and rewritten on close
    with the number of data bytes really written. Until close, the file is ``.<name>.partial``,
    so nothing that looks like a finished ``.dada`` file is ever incomplete.
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
        self.temp_path = self.path.with_name(f".{self.path.name}{PARTIAL_SUFFIX}")
        self.obs_offset = obs_offset
        self.file_number = file_number
        self.nbytes = 0
        self._sync = sync
        self._header = header
        encoded = file_header(header, obs_offset, planned_size, file_number).to_bytes()
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
            _write_all(self._fd, memoryview(encoded))
        except OSError as exc:
            self.abort()
            raise DadaFileError(f"{self.temp_path}: cannot write: {exc.strerror}") from None

    def write(self, data: Buffer) -> None:
        """Append data bytes (any contiguous buffer; numpy views are written without a copy)."""
        view = (data.data if isinstance(data, np.ndarray) else memoryview(data)).cast("B")
        if self._fd is None:
            raise DadaFileError(f"{self.path}: write after close")
        try:
            _write_all(self._fd, view)
        except OSError as exc:
            self.abort()
            raise DadaFileError(f"{self.temp_path}: cannot write: {exc.strerror}") from None
        self.nbytes += len(view)

    def close(self) -> Path:
        """Fix FILE_SIZE, flush to disk, and move the file to its final name (never overwriting)."""
        if self._fd is None:
            raise DadaFileError(f"{self.path}: already closed")
        try:
            final = file_header(self._header, self.obs_offset, self.nbytes, self.file_number)
            os.pwrite(self._fd, final.to_bytes(self.hdr_size), 0)
            if self._sync:
                os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.link(self.temp_path, self.path)
        except FileExistsError:
            self.abort()
            raise DadaFileError(f"{self.path}: already exists, refusing to overwrite it") from None
        except OSError as exc:
            self.abort()
            raise DadaFileError(f"{self.path}: cannot finish: {exc.strerror}") from None
        os.unlink(self.temp_path)
        logger.debug("wrote %s (%d data bytes)", self.path, self.nbytes)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass


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

    def abort(self) -> None:
        """Delete the unfinished file, if any; finished files stay."""
        file, self._file = self._file, None
        if file is not None:
            file.abort()
