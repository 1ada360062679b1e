"""Typed, layered configuration from DADA-style ``KEY value`` files.

A configuration is a frozen dataclass whose fields are declared with :func:`setting`::

    @dataclass(frozen=True, kw_only=True)
    class BeamConfig(Config):
        data_key: str = setting("DATA_KEY", ring_key, help="data ring key")
        nbufs: int = setting("DB_NBUFS", int, default=8, validator=positive, help="blocks")

        def check(self) -> Iterable[str]:          # cross-key checks, after every key parsed
            if ...: yield "DATA_KEY and WEIGHTS_KEY must differ"

Values are looked up by key in layers; a higher layer wins:

    code defaults  <  config files (later files win)  <  environment ``RINGPIPE_<KEY>``
                   <  ``-o KEY=VALUE`` options  <  the config map of a control command

(``transmission.rate`` is read from ``RINGPIPE_TRANSMISSION_RATE``). Files are read with the
project's header codec, so a malformed line is an error naming the file and line. Files may
hold keys that a given dataclass does not declare (one file can feed several services and
the ring creation); ``-o`` options and command maps may not, so typos are caught.

Every problem (missing key, unparsable value, failed validator, failed cross-key check) is
collected and raised at once as one :class:`ConfigError` that names the files and the keys,
each with the layer its value came from.
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from ringbuf import DadaHeader, normalise_key, pair_keys
from ringbuf.errors import HeaderError
from services.common.errors import ServiceError

ENV_PREFIX = "RINGPIPE_"
_META = "ringpipe.setting"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

C = TypeVar("C", bound="Config")


class ConfigError(ServiceError):
    """One or more configuration problems; ``problems`` lists each, naming its key."""

    def __init__(self, where: str, problems: Sequence[str]) -> None:
        self.where = where
        self.problems = list(problems)
        count = f"{len(self.problems)} problems" if len(self.problems) > 1 else "1 problem"
        super().__init__(f"{where}: {count}: " + "; ".join(self.problems))


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Setting:
    """The declaration of one configuration key (see :func:`setting`)."""

    key: str
    kind: Callable[..., Any]
    default: Any = REQUIRED
    help: str = ""
    validator: Callable[[Any], None] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def parse(self, raw: object) -> Any:
        """Turn a text value (or a native value from a msgpack map) into this key's type."""
        value = _convert(self.kind, raw)
        if self.validator is not None:
            self.validator(value)
        return value


def setting(
    key: str,
    kind: Callable[..., Any],
    *,
    default: Any = REQUIRED,
    help: str = "",
    validator: Callable[[Any], None] | None = None,
) -> Any:
    """Declare a dataclass field read from config key ``key``.

    ``kind`` is ``str``, ``int``, ``float``, ``bool``, ``Path``, an ``Enum`` class or any
    callable that parses a string (raising ValueError). ``validator`` raises ValueError with a
    short reason (``"must be positive"``). Without ``default`` the key is required.
    """
    spec = Setting(key, kind, default, help, validator)
    if spec.required:
        return field(metadata={_META: spec})
    return field(default=default, metadata={_META: spec})


def env_name(key: str, prefix: str = ENV_PREFIX) -> str:
    """The environment variable for ``key``: ``transmission.rate`` -> RINGPIPE_TRANSMISSION_RATE."""
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


# --------------------------------------------------------------------------- value conversion
def _convert(kind: Callable[..., Any], raw: object) -> Any:
    if isinstance(raw, str):
        raw = raw.strip()
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in _TRUE + _FALSE:
            return raw.lower() in _TRUE
        raise ValueError("is not a boolean (true/false)")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw, 0) if raw.lower().startswith(("0x", "0o", "0b")) else int(raw)
            except ValueError:
                pass
        raise ValueError("is not an integer")
    if kind is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
        raise ValueError("is not a number")
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, not {type(raw).__name__}")
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        for member in kind:
            if raw.lower() in (str(member.value).lower(), member.name.lower()):
                return member
        raise ValueError("is not one of " + ", ".join(str(m.value) for m in kind))
    if kind is str:
        return raw
    parser: Callable[[str], Any] = kind
    return parser(raw)


def octal(text: str) -> int:
    """Parse a file mode such as ``0660``: octal digits only, permission bits only (at most
    0777: no setuid, setgid or sticky bit)."""
    digits = text[2:] if text.lower().startswith("0o") else text
    if not re.fullmatch(r"[0-7]{1,4}", digits):
        raise ValueError("is not an octal file mode such as 0660")
    mode = int(digits, 8)
    if mode > 0o777:
        raise ValueError("sets setuid, setgid or sticky bits: use permission bits only "
                         "(at most 0777), such as 0660")
    return mode


def socket_mode(mode: int) -> None:
    """A validator for a control socket's mode: the owner can connect, other users cannot."""
    if not mode & 0o200:
        raise ValueError("must let the owner write (connect), such as 0660")
    if mode & 0o002:
        raise ValueError("lets every user on the host control the daemon: give a group "
                         "access instead, such as 0660")


# --------------------------------------------------------------------------- validators
def positive(value: float) -> None:
    if not value > 0:
        raise ValueError("must be positive")
    if value == math.inf:
        raise ValueError("must be finite")


def non_negative(value: float) -> None:
    if not value >= 0:
        raise ValueError("must not be negative")
    if value == math.inf:
        raise ValueError("must be finite")


#: the longest wait a timeout setting may ask for (threading cannot wait for ever, or inf)
MAX_TIMEOUT_S = 86400.0


def timeout_seconds(value: float) -> None:
    """A validator for a wait: more than 0 and at most :data:`MAX_TIMEOUT_S` (not inf/nan)."""
    if not 0 < value <= MAX_TIMEOUT_S:
        raise ValueError(f"must be more than 0 and at most {MAX_TIMEOUT_S:g} s")


def in_range(low: float, high: float) -> Callable[[float], None]:
    """A validator for ``low <= value <= high``."""

    def check(value: float) -> None:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")

    return check


def one_of(*choices: str) -> Callable[[str], None]:
    """A validator for a string among ``choices``."""

    def check(value: str) -> None:
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(choices))

    return check


def ring_key(text: str) -> str:
    """A ring key as the ring library reads it (``a000``, ``0xA000``), in its canonical form."""
    try:
        return normalise_key(text)
    except ValueError:
        raise ValueError("is not a ring key (1 to 8 hexadecimal digits, e.g. a000)") from None


def log_level(value: str) -> None:
    if value and value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")


# --------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class ConfigSource:
    """Where configuration values come from, lowest layer first (see the module docstring).

    ``files`` are ``(path, values)`` pairs; ``overrides`` are ``(origin, values)`` pairs above
    the environment (``-o`` options, then command maps).
    """

    files: tuple[tuple[str, Mapping[str, str]], ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict)
    overrides: tuple[tuple[str, Mapping[str, object]], ...] = ()
    env_prefix: str = ENV_PREFIX
    #: per file in ``files``: the line number of each key (for messages)
    file_lines: tuple[Mapping[str, int], ...] = ()

    @classmethod
    def load(
        cls,
        paths: Iterable[str | os.PathLike[str]] = (),
        overrides: Sequence[str] | Mapping[str, object] = (),
        environ: Mapping[str, str] | None = None,
        env_prefix: str = ENV_PREFIX,
    ) -> ConfigSource:
        """Read config files (:func:`read_config_file`: HeaderError naming file and line) and
        ``-o KEY=VALUE`` options."""
        loaded = [(str(p), *read_config_file(p)) for p in paths]
        files = tuple((path, values) for path, values, _ in loaded)
        lines = tuple(numbers for _, _, numbers in loaded)
        source = cls(files, dict(os.environ if environ is None else environ), (), env_prefix,
                     lines)
        if overrides:
            source = source.with_overrides("-o", parse_overrides(overrides))
        return source

    def with_overrides(self, origin: str, values: Mapping[str, object]) -> ConfigSource:
        """A new source with ``values`` (from ``origin``) above every existing layer."""
        return ConfigSource(
            self.files, self.environ, self.overrides + ((origin, dict(values)),), self.env_prefix,
            self.file_lines,
        )

    def lookup(self, key: str) -> tuple[object, str] | None:
        """The winning ``(value, origin)`` for ``key``, or None if no layer sets it."""
        for origin, values in reversed(self.overrides):
            if key in values:
                return values[key], origin
        name = env_name(key, self.env_prefix)
        if name in self.environ:
            return self.environ[name], f"env {name}"
        for path, values in reversed(self.files):
            if key in values:
                return values[key], path
        return None

    def unknown_keys(self, known: Iterable[str]) -> list[str]:
        """Keys set by ``-o`` or a command map that no declared setting reads."""
        known = set(known)
        return [
            f"{key} ({origin}): unknown key"
            for origin, values in self.overrides
            for key in values
            if key not in known
        ]

    def describe(self) -> str:
        """The config files, for error messages."""
        if self.files:
            return "config " + ", ".join(path for path, _ in self.files)
        return "config"


#: a config key: upper case (DATA_KEY), or a dotted lower-case option (transmission.rate)
_KEY_STYLE = re.compile(r"[A-Z][A-Z0-9_]*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


def read_config_file(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, int]]:
    """Read a ``KEY value`` config file: ``({KEY: value}, {KEY: line number})``.

    Stricter than a ring header (whose grammar it shares): one :class:`HeaderError` naming
    the file and each line for a NUL byte (a header ends there, so the rest would be
    ignored), a key that is neither upper case (``DATA_KEY``) nor a dotted option
    (``transmission.rate``) (a lower-case key, or a line of prose not behind ``#``), and a
    key set twice (the first would win unseen).
    """
    data = _read_bytes(path)
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise HeaderError(f"{path}: line {line}: NUL byte: a config file is text (the rest of "
                          "the file would be ignored); fix or recreate the file")
    header = DadaHeader.from_bytes(data, source=str(path))  # ASCII and 'KEY value' lines
    problems: list[str] = []
    first: dict[str, int] = {}
    for lineno, raw in enumerate(header.text.split("\n"), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key = stripped.split()[0]
        if not _KEY_STYLE.fullmatch(key):
            lower = key.islower() and _KEY_STYLE.fullmatch(key.upper())
            hint = f" (did you mean {key.upper()}?)" if lower else \
                "; start a line of text with '#'"
            problems.append(f"line {lineno}: {key!r} is not a config key: keys are upper case "
                            f"(DATA_KEY) or dotted options (transmission.rate){hint}")
        elif key in first:
            problems.append(f"line {lineno}: {key} is set again (first on line {first[key]}, "
                            "which would win): set each key once")
        else:
            first[key] = lineno
    if problems:
        raise HeaderError(f"{path}: " + "; ".join(problems))
    return dict(header.items()), first


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise HeaderError(f"{path}: cannot read: {exc.strerror}") from None


def parse_overrides(items: Sequence[str] | Mapping[str, object]) -> dict[str, object]:
    """``["KEY=VALUE", ...]`` -> ``{"KEY": "VALUE"}``; ConfigError for an item without '='."""
    if isinstance(items, Mapping):
        return dict(items)
    values: dict[str, object] = {}
    bad = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad.append(f"-o {item!r}: expected KEY=VALUE")
        else:
            values[key.strip()] = value
    if bad:
        raise ConfigError("options", bad)
    return values


# --------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True, kw_only=True)
class Config:
    """Base of every configuration dataclass; ``source`` keeps the layers it was built from."""

    source: ConfigSource = field(default_factory=ConfigSource, repr=False, compare=False)

    def check(self) -> Iterable[str]:
        """Cross-key checks: yield one message per problem, naming the keys involved."""
        return ()

    @classmethod
    def settings(cls) -> list[Setting]:
        """The declared settings, in field order."""
        return [f.metadata[_META] for f in fields(cls) if _META in f.metadata]

    @classmethod
    def keys(cls) -> list[str]:
        return [s.key for s in cls.settings()]

    @classmethod
    def keys_help(cls) -> str:
        """One indented line per key, with its default, for a command's ``--help``."""
        lines = []
        for spec in cls.settings():
            default = "required" if spec.required else \
                f"default {getattr(spec.default, 'value', spec.default)}"
            lines.append(f"  {spec.key} ({default}): {spec.help}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """``{KEY: value}`` of every setting (enums as values, paths as strings)."""
        out: dict[str, object] = {}
        for f in fields(self):
            if _META in f.metadata:
                value = getattr(self, f.name)
                if f.metadata[_META].kind is octal:
                    value = f"{value:04o}"
                elif isinstance(value, enum.Enum):
                    value = value.value
                elif isinstance(value, Path):
                    value = str(value)
                out[f.metadata[_META].key] = value
        return out


def build_config(cls: type[C], source: ConfigSource, where: str | None = None) -> C:
    """Build ``cls`` from ``source``; ConfigError listing every problem at once."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in fields(cls):
        spec: Setting | None = f.metadata.get(_META)
        if spec is None:
            continue
        found = source.lookup(spec.key)
        if found is None:
            if spec.required:
                detail = f" ({spec.help})" if spec.help else ""
                problems.append(f"{spec.key}: missing, required{detail}")
            else:
                values[f.name] = spec.default
            continue
        raw, origin = found
        try:
            values[f.name] = spec.parse(raw)
        except (ValueError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            problems.append(f"{spec.key} {_shorten(raw)!r} ({origin}): {reason}")
    if not problems:
        config = cls(source=source, **values)
        try:
            problems = list(config.check())
        except (ValueError, OSError) as exc:  # a check that met a path it cannot look at
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems = [f"{reason}: {_shorten(getattr(exc, 'filename', '') or '')}"]
        if not problems:
            return config
    raise ConfigError(where or source.describe(), problems)


def _shorten(value: object, limit: int = 80) -> object:
    """A value as it goes into a one-line message: long text is cut in the middle."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit // 2]}...{value[-limit // 2:]} ({len(value)} characters)"
    return value


# --------------------------------------------------------------------------- daemon settings
class Mode(str, enum.Enum):
    """How a daemon is driven: by control commands, or by itself from its config and rings."""

    MANAGED = "managed"
    AUTONOMOUS = "autonomous"


@dataclass(frozen=True, kw_only=True)
class DaemonConfig(Config):
    """Settings every daemon has; a service's own config dataclass extends this one."""

    name: str = setting("NAME", str, default="", help="instance name (default: the program)")
    mode: Mode = setting("MODE", Mode, default=Mode.MANAGED, help="managed or autonomous")
    control_socket: str = setting(
        "CONTROL_SOCKET",
        str,
        default="",
        help="control socket path (default $RUNTIME_DIRECTORY/<name>.sock or /run/ringpipe/...)",
    )
    control_socket_mode: int = setting(
        "CONTROL_SOCKET_MODE", octal, default=0o660, validator=socket_mode,
        help="permissions of the control socket (at most 0777, owner rw, not world-writable)",
    )
    log_level: str = setting(
        "LOG_LEVEL", str, default="", validator=log_level, help="DEBUG, INFO (default), ..."
    )
    log_interval_s: float = setting(
        "LOG_INTERVAL_S", float, default=10.0, validator=positive, help="counter-delta log period"
    )
    stale_after_s: float = setting(
        "STALE_AFTER_S", float, default=10.0, validator=positive,
        help="health turns DEGRADED after this long without data while scanning",
    )  # fmt: skip
    stop_timeout_s: float = setting(
        "STOP_TIMEOUT_S", float, default=20.0, validator=timeout_seconds,
        help="how long end_scan / shutdown waits for the scan loop to drain (s, up to a day)",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RingPairConfig(Config):
    """The data + weights ring pair a service attaches to, spelt as ``ringbuf create-pair``
    reads it.

    A service's beam (or daemon) config extends this one and calls ``super().check()``.
    """

    data_key: str = setting("DATA_KEY", ring_key, help="data ring key")
    weights_key: str = setting("WEIGHTS_KEY", ring_key, help="weights ring key")

    def check(self) -> Iterable[str]:
        try:
            pair_keys(self.data_key, self.weights_key)
        except ValueError as exc:
            yield str(exc)
