"""DADA ASCII headers: one codec for ring headers, ``.dada`` files and config files.

Grammar (PSRDADA ``ascii_header.c`` conventions)::

    header   = { line "\\n" } [ line ] { NUL }
    line     = blank | comment | entry
    comment  = [ space ] "#" text
    entry    = key space value [ space "#" text ]
    key      = 1*( any character but space, "#" and NUL )

* Keys match at the start of a line only; the first occurrence of a key wins.
* Values are kept whole: ``SOURCE  J0437-4715 main pulse`` has the value
  ``J0437-4715 main pulse`` (SKA PST's AsciiHeader would keep only the first token).
* Order, comments, blank lines and spacing are preserved, so ``parse(text).text == text``
  and a header read from a file is written back byte for byte.
* A header occupies ``HDR_SIZE`` bytes (default 4096) and is padded with NULs.
* A malformed line raises :class:`HeaderError` naming the source and line number.
* Parsing is linear in the length of the text (no backtracking regex), so a hostile header or
  config line of any length costs only its length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ringbuf.errors import HeaderError

DEFAULT_HDR_SIZE = 4096
KEY_WIDTH = 20  # SKA PST and PSRDADA tools left-justify keys to this width

# Each piece is matched once, left to right, so parsing is linear in the line length (a
# single regex with a lazy value and an optional trailing comment was quadratic in runs of
# blanks: 8 s for one 16 KB line).
_KEY_SEP = re.compile(r"[^\s#\x00]+[ \t]+")
_COMMENT = re.compile(r"[ \t]#")
_BAD_KEY = re.compile(r"[\s#\x00]")


@dataclass
class _Line:
    text: str
    key: str | None = None
    value: str = ""


def _format_entry(key: str, value: str) -> str:
    return f"{key:<{KEY_WIDTH - 1}} {value}"


class DadaHeader(Mapping[str, str]):
    """An ordered, lossless DADA header with typed getters.

    Behaves as a read-only mapping of key to (string) value; change it with :meth:`set`,
    :meth:`update` and :meth:`delete`.
    """

    def __init__(self, entries: Mapping[str, object] | None = None, source: str = "header"):
        self._lines: list[_Line] = []
        self._index: dict[str, int] = {}
        self.source = source
        self._trailing_newline = True
        if entries:
            self.update(entries)

    # ----------------------------------------------------------------------------- parsing
    @classmethod
    def parse(cls, text: str, source: str = "header") -> DadaHeader:
        """Parse header text (everything up to the first NUL)."""
        text = text.split("\x00", 1)[0]
        header = cls(source=source)
        for lineno, raw in enumerate(text.split("\n"), start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                header._lines.append(_Line(raw))
                continue
            entry = _split_entry(raw.rstrip("\r"))
            if entry is None:
                shown = repr(raw) if len(raw) <= 80 else f"{raw[:60]!r}... ({len(raw)} chars)"
                raise HeaderError(f"{source}: line {lineno}: expected 'KEY value', got {shown}")
            key, value = entry
            header._lines.append(_Line(raw, key, value))
            header._index.setdefault(key, len(header._lines) - 1)
        header._trailing_newline = bool(header._lines) and header._lines[-1].text == ""
        if header._trailing_newline:
            header._lines.pop()
        return header

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, source: str = "header") -> DadaHeader:
        """Decode a NUL-padded header buffer."""
        raw = bytes(data).split(b"\x00", 1)[0]
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise HeaderError(
                f"{source}: byte {exc.start} is not ASCII ({raw[exc.start]:#04x})"
            ) from None
        return cls.parse(text, source)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DadaHeader:
        """Read a text header or config file (``configs/*.hdr``) of any length."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise HeaderError(f"{path}: cannot read: {exc.strerror}") from None
        return cls.from_bytes(data, source=str(path))

    # ----------------------------------------------------------------------------- output
    @property
    def text(self) -> str:
        """The header text, exactly as parsed (plus any changes made since)."""
        body = "\n".join(line.text for line in self._lines)
        if self._lines and self._trailing_newline:
            body += "\n"
        return body

    def to_bytes(self, size: int | None = None) -> bytes:
        """Encode, NUL-padded to ``size`` (default: this header's HDR_SIZE)."""
        size = self.hdr_size if size is None else size
        encoded = self.text.encode("ascii")
        if len(encoded) >= size:
            raise HeaderError(
                f"{self.source}: header text is {len(encoded)} bytes, it does not fit in "
                f"HDR_SIZE {size} (one NUL is needed)"
            )
        return encoded + b"\x00" * (size - len(encoded))

    # ----------------------------------------------------------------------------- mapping
    def __getitem__(self, key: str) -> str:
        try:
            return self._lines[self._index[key]].value
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"DadaHeader({dict(self.items())!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> DadaHeader:
        clone = DadaHeader.parse(self.text, self.source)
        return clone

    # ----------------------------------------------------------------------------- changes
    def set(self, key: str, value: object) -> None:
        """Set ``key`` (replacing the first occurrence in place, else after the last entry,
        before any trailing comment such as PSRDADA's ``# end of header``)."""
        if not key or _BAD_KEY.search(key):
            raise HeaderError(f"{self.source}: invalid key {key!r} (no spaces, '#' or NUL)")
        text = _render(value)
        if not text or "\n" in text or "\r" in text or "\x00" in text:
            raise HeaderError(f"{self.source}: invalid value for {key}: {text!r}")
        line = _Line(_format_entry(key, text), key, text)
        if key in self._index:
            self._lines[self._index[key]] = line
            return
        # after the last entry, so trailing comments ("# end of header") stay last
        at = len(self._lines)
        while at and self._lines[at - 1].key is None:
            at -= 1
        if at == 0:
            at = len(self._lines)
        if at == len(self._lines):
            self._lines.append(line)
            self._index[key] = at
            return
        self._lines.insert(at, line)
        self._index = {k: (i + 1 if i >= at else i) for k, i in self._index.items()}
        self._index[key] = at

    def update(self, entries: Mapping[str, object]) -> None:
        for key, value in entries.items():
            self.set(key, value)

    def delete(self, key: str) -> None:
        """Remove every line of ``key`` (no error if absent)."""
        self._lines = [line for line in self._lines if line.key != key]
        self._index = {}
        for i, line in enumerate(self._lines):
            if line.key is not None:
                self._index.setdefault(line.key, i)

    # ----------------------------------------------------------------------------- typed getters
    def _require(self, key: str) -> str:
        if key not in self._index:
            raise HeaderError(f"{self.source}: missing required key {key}")
        return self[key]

    def get_str(self, key: str, default: str | None = None) -> str:
        if default is not None and key not in self._index:
            return default
        return self._require(key)

    def get_int(self, key: str, default: int | None = None) -> int:
        if default is not None and key not in self._index:
            return default
        value = self._require(key)
        try:
            return int(value, 0) if value.lower().startswith(("0x", "0o", "0b")) else int(value)
        except ValueError:
            raise HeaderError(f"{self.source}: {key} {value!r} is not an integer") from None

    def get_float(self, key: str, default: float | None = None) -> float:
        if default is not None and key not in self._index:
            return default
        value = self._require(key)
        try:
            return float(value)
        except ValueError:
            raise HeaderError(f"{self.source}: {key} {value!r} is not a number") from None

    def get_bool(self, key: str, default: bool | None = None) -> bool:
        if default is not None and key not in self._index:
            return default
        value = self._require(key).lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise HeaderError(f"{self.source}: {key} {value!r} is not a boolean (true/false)")

    @property
    def hdr_size(self) -> int:
        """HDR_SIZE, or the DADA default of 4096 when absent."""
        size = self.get_int("HDR_SIZE", DEFAULT_HDR_SIZE)
        if size <= 0:
            raise HeaderError(f"{self.source}: HDR_SIZE {size} must be positive")
        return size


def _split_entry(line: str) -> tuple[str, str] | None:
    """(key, value) of an entry line, or None if it is not ``KEY value [# comment]``.

    The value runs up to the first blank followed by ``#`` (a trailing comment), without the
    blanks before it. Linear in the length of the line.
    """
    match = _KEY_SEP.match(line)
    if match is None:
        return None
    key = line[: match.end()].rstrip(" \t")
    rest = line[match.end() :]
    comment = _COMMENT.search(rest)
    value = (rest if comment is None else rest[: comment.start()]).rstrip(" \t")
    if not value:
        return None
    return key, value


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)
