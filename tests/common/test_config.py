"""Layered configuration: precedence, types, and every problem reported at once."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import click
import pytest

from ringbuf.errors import HeaderError
from services.common.config import (
    Config,
    ConfigError,
    ConfigSource,
    DaemonConfig,
    Mode,
    RingPairConfig,
    build_config,
    env_name,
    one_of,
    parse_overrides,
    positive,
    ring_key,
    setting,
)
from services.common.errors import ServiceError
from services.common.options import DaemonOptions
from tests.common.demo_service import DemoConfig, DemoService


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, kw_only=True)
class Sample(Config):
    data_key: str = setting("DATA_KEY", ring_key, help="data ring key")
    nbufs: int = setting("DB_NBUFS", int, default=8, validator=positive, help="blocks")
    rate: float = setting("transmission.rate", float, default=1e6, help="bytes/s")
    enabled: bool = setting("ENABLED", bool, default=True)
    colour: Colour = setting("COLOUR", Colour, default=Colour.RED)
    out: Path = setting("OUT_DIR", Path, default=Path("/tmp"))
    kind: str = setting("KIND", str, default="vis", validator=one_of("vis", "beam"))

    def check(self) -> Iterable[str]:
        if self.kind == "beam" and self.nbufs < 4:
            yield f"KIND beam needs DB_NBUFS >= 4 (DB_NBUFS is {self.nbufs})"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_defaults_file_env_option_command(tmp_path):
    base = _write(tmp_path / "base.hdr", "DATA_KEY a000\nDB_NBUFS 16\nENABLED no\nCOLOUR blue\n")
    site = _write(tmp_path / "site.hdr", "# later file wins\nDB_NBUFS 32\n")
    env = {"RINGPIPE_DB_NBUFS": "64", "RINGPIPE_TRANSMISSION_RATE": "2.5e9"}
    source = ConfigSource.load([base, site], environ=env)
    cfg = build_config(Sample, source)
    assert (cfg.data_key, cfg.nbufs, cfg.rate, cfg.enabled, cfg.colour) == (
        "a000",
        64,
        2.5e9,
        False,
        Colour.BLUE,
    )
    assert cfg.kind == "vis" and cfg.out == Path("/tmp")  # code defaults
    assert build_config(Sample, ConfigSource.load([base, site])).nbufs == 32  # no env
    cfg = build_config(Sample, ConfigSource.load([base, site], ["DB_NBUFS=128"], environ=env))
    assert cfg.nbufs == 128
    command = ConfigSource.load([base], ["DB_NBUFS=128"], environ=env).with_overrides(
        "command", {"DB_NBUFS": 256}
    )
    assert build_config(Sample, command).nbufs == 256
    assert source.lookup("DB_NBUFS") == ("64", "env RINGPIPE_DB_NBUFS")
    assert source.lookup("DATA_KEY") == ("a000", str(base))


def test_all_problems_are_reported_at_once_naming_file_and_keys(tmp_path):
    path = _write(tmp_path / "bad.hdr", "DB_NBUFS many\nENABLED perhaps\nCOLOUR green\n")
    source = ConfigSource.load([path], ["KIND=tape"], environ={"RINGPIPE_TRANSMISSION_RATE": "x"})
    with pytest.raises(ConfigError) as info:
        build_config(Sample, source)
    err = info.value
    assert len(err.problems) == 6
    message = str(err)
    assert "\n" not in message
    assert message.startswith(
        f"config {path}: 6 problems: DATA_KEY: missing, required (data ring key)"
    )
    assert f"DB_NBUFS 'many' ({path}): is not an integer" in message
    assert "transmission.rate 'x' (env RINGPIPE_TRANSMISSION_RATE): is not a number" in message
    assert f"ENABLED 'perhaps' ({path}): is not a boolean" in message
    assert f"COLOUR 'green' ({path}): is not one of red, blue" in message
    assert "KIND 'tape' (-o): must be one of vis, beam" in message
    assert isinstance(err, ServiceError) and not isinstance(err, HeaderError)


def test_cross_key_checks_run_after_every_key_parsed():
    source = ConfigSource(
        overrides=(("-o", {"DATA_KEY": "a000", "KIND": "beam", "DB_NBUFS": "2"}),)
    )
    with pytest.raises(ConfigError, match=r"config: 1 problem: KIND beam needs DB_NBUFS >= 4 "):
        build_config(Sample, source)


def test_native_values_from_msgpack_are_type_checked():
    ok = ConfigSource().with_overrides(
        "command", {"DATA_KEY": "a000", "DB_NBUFS": 3, "ENABLED": True, "transmission.rate": 5}
    )
    cfg = build_config(Sample, ok)
    assert (cfg.nbufs, cfg.enabled, cfg.rate) == (3, True, 5.0)
    bad = ConfigSource().with_overrides(
        "command", {"DATA_KEY": 40960, "DB_NBUFS": True, "ENABLED": 1}
    )
    with pytest.raises(ConfigError) as info:
        build_config(Sample, bad, "configure_beam config")
    assert info.value.problems == [
        "DATA_KEY 40960 (command): must be a string, not int",
        "DB_NBUFS True (command): is not an integer",
        "ENABLED 1 (command): is not a boolean (true/false)",
    ]
    assert str(info.value).startswith("configure_beam config: 3 problems")


def test_hex_and_prefixed_integers():
    source = ConfigSource(overrides=(("-o", {"DATA_KEY": "DADA", "DB_NBUFS": "0x10"}),))
    cfg = build_config(Sample, source)
    assert (cfg.data_key, cfg.nbufs) == ("dada", 16)


def test_config_is_frozen_and_exports_keys():
    cfg = build_config(Sample, ConfigSource(overrides=(("-o", {"DATA_KEY": "a000"}),)))
    with pytest.raises(FrozenInstanceError):
        cfg.nbufs = 3  # type: ignore[misc]
    assert cfg.to_dict() == {
        "DATA_KEY": "a000",
        "DB_NBUFS": 8,
        "transmission.rate": 1e6,
        "ENABLED": True,
        "COLOUR": "red",
        "OUT_DIR": "/tmp",
        "KIND": "vis",
    }
    assert Sample.keys()[:3] == ["DATA_KEY", "DB_NBUFS", "transmission.rate"]


def test_malformed_file_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "broken.hdr", "DATA_KEY a000\nNOVALUE\n")
    with pytest.raises(HeaderError, match=f"{path}: line 2: expected 'KEY value'"):
        ConfigSource.load([path])


def test_missing_file_is_a_header_error(tmp_path):
    with pytest.raises(HeaderError, match="missing.hdr: cannot read"):
        ConfigSource.load([tmp_path / "missing.hdr"])


def test_overrides_need_an_equals_sign():
    assert parse_overrides(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(
        ConfigError,
        match=r"options: 2 problems: -o 'A': expected KEY=VALUE; "
        r"-o '=1': expected KEY=VALUE",
    ):
        parse_overrides(["A", "=1"])


def test_env_names():
    assert env_name("transmission.rate") == "RINGPIPE_TRANSMISSION_RATE"
    assert env_name("DATA_KEY") == "RINGPIPE_DATA_KEY"


def test_daemon_defaults_and_octal_mode():
    cfg = build_config(
        DaemonConfig, ConfigSource(overrides=(("-o", {"CONTROL_SOCKET_MODE": "0640"}),))
    )
    assert cfg.mode is Mode.MANAGED and cfg.control_socket_mode == 0o640
    assert cfg.to_dict()["CONTROL_SOCKET_MODE"] == "0640"
    with pytest.raises(ConfigError, match="CONTROL_SOCKET_MODE '0999' .*octal file mode"):
        build_config(
            DaemonConfig, ConfigSource(overrides=(("-o", {"CONTROL_SOCKET_MODE": "0999"}),))
        )


def test_daemon_options_precedence_and_unknown_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("RINGPIPE_DEMO_BLOCK_BYTES", "512")
    path = _write(tmp_path / "demo.hdr", "MODE autonomous\nDEMO_BLOCK_BYTES 100\nTELESCOPE x\n")
    beam = ("DATA_KEY=a000", "WEIGHTS_KEY=a010")  # autonomous: the beam config is needed too
    cfg = DaemonOptions((str(path),), beam, socket="/tmp/x.sock").load(
        DemoConfig, DemoService
    )
    assert (cfg.mode, cfg.block_bytes, cfg.control_socket) == (Mode.AUTONOMOUS, 512, "/tmp/x.sock")
    cfg = DaemonOptions((str(path),), ("MODE=autonomous",), mode=Mode.MANAGED).load(DemoConfig)
    assert cfg.mode is Mode.MANAGED  # --managed wins over -o MODE
    options = DaemonOptions((str(path),), ("DATA_KEYS=a000", "DEMO_BLOCK_BYTES=-1"))
    with pytest.raises(click.ClickException) as info:
        options.load(DemoConfig, DemoService)
    assert info.value.message == (
        f"config {path}: 4 problems: DATA_KEYS (-o): unknown key; "
        "DEMO_BLOCK_BYTES '-1' (-o): must be positive; "
        "DATA_KEY: missing, required (data ring key); "
        "WEIGHTS_KEY: missing, required (weights ring key)"
    )
    managed = DaemonOptions((str(path),), ("DATA_KEY=a000",), mode=Mode.MANAGED)
    assert managed.load(DemoConfig, DemoService).mode is Mode.MANAGED  # beam comes later


@pytest.mark.parametrize(
    "deployment,services", [("vis", ["ingest", "mswrite"]), ("beam", ["ingest", "stat"])]
)
def test_example_configs_load(deployment, services):
    """The example deployment configs parse, and the framework keys in them are valid."""
    from ringbuf.header import DadaHeader
    from ringbuf.pairconfig import pair_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    rings = configs / f"{deployment}.hdr"
    pair = pair_config(DadaHeader.load(rings))
    assert pair.data_layout.nbufs == pair.weights_layout.nbufs
    for service in services:
        source = ConfigSource.load([rings, configs / f"{deployment}-{service}.hdr"], environ={})
        cfg = build_config(DaemonConfig, source)
        assert cfg.mode is Mode.AUTONOMOUS and source.lookup("DATA_KEY")[0] == pair.data_key


@pytest.mark.parametrize(
    "data, weights", [("0xb000", "b010"), ("B000", "0xB010"), ("b000", "b010")])
def test_ring_pair_keys_are_spelt_as_the_ring_library_reads_them(data, weights):
    source = ConfigSource(overrides=(("-o", {"DATA_KEY": data, "WEIGHTS_KEY": weights}),))
    config = build_config(RingPairConfig, source)
    assert (config.data_key, config.weights_key) == ("b000", "b010")


@pytest.mark.parametrize("data, weights", [("A000", "a000"), ("0xa000", "A000"), ("a000", "a000")])
def test_ring_pair_keys_that_name_one_ring_are_refused(data, weights):
    with pytest.raises(ConfigError, match="DATA_KEY and WEIGHTS_KEY must differ"):
        source = ConfigSource(overrides=(("-o", {"DATA_KEY": data, "WEIGHTS_KEY": weights}),))
        build_config(RingPairConfig, source)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("STOP_TIMEOUT_S", "inf", "must be more than 0 and at most 86400 s"),
    ("STOP_TIMEOUT_S", "nan", "must be more than 0 and at most 86400 s"),
    ("STOP_TIMEOUT_S", "1e12", "must be more than 0 and at most 86400 s"),
    ("LOG_INTERVAL_S", "inf", "must be finite"),
    ("CONTROL_SOCKET_MODE", "7777", "sets setuid, setgid or sticky bits"),
    ("CONTROL_SOCKET_MODE", "4660", "sets setuid, setgid or sticky bits"),
    ("CONTROL_SOCKET_MODE", "-1", "is not an octal file mode such as 0660"),
    ("CONTROL_SOCKET_MODE", "77777777", "is not an octal file mode such as 0660"),
    ("CONTROL_SOCKET_MODE", "0666", "lets every user on the host control the daemon"),
    ("CONTROL_SOCKET_MODE", "0060", "must let the owner write (connect)"),
])
def test_values_that_fail_later_are_refused_at_load(key, value, message):
    """Issue 13.11: STOP_TIMEOUT_S inf raised OverflowError at end_scan; mode 7777 made a
    world-writable socket with setuid bits."""
    with pytest.raises(ConfigError) as info:
        build_config(DaemonConfig, ConfigSource(overrides=(("-o", {key: value}),)))
    (problem,) = info.value.problems
    assert problem.startswith(f"{key} {value!r} (-o): {message}")


def test_good_modes_and_timeouts_load():
    cfg = build_config(DaemonConfig, ConfigSource(overrides=(("-o", {
        "CONTROL_SOCKET_MODE": "0o600", "STOP_TIMEOUT_S": "86400"}),)))
    assert (cfg.control_socket_mode, cfg.stop_timeout_s) == (0o600, 86400.0)


def test_a_check_that_meets_an_os_error_is_one_problem():
    """A cross-key check that trips over a path (name too long) is a ConfigError, not a
    traceback."""

    @dataclass(frozen=True, kw_only=True)
    class PathConfig(Config):
        where: Path = setting("WHERE", Path)

        def check(self):
            if self.where.is_dir():  # raises OSError for a name too long
                yield "never"

    with pytest.raises(ConfigError) as info:
        build_config(PathConfig, ConfigSource(overrides=(("-o", {"WHERE": "/" + "x" * 300}),)))
    (problem,) = info.value.problems
    assert problem.startswith("File name too long: /xxxx") and problem.endswith("(301 characters)")


def test_config_file_damage_and_mistakes_are_refused_naming_file_and_line(tmp_path):
    """Issue 13.12: a NUL silently cut the file; lower-case keys, prose and duplicate keys
    (first wins) were accepted without a word."""
    nul = tmp_path / "nul.hdr"
    nul.write_bytes(b"DATA_KEY a000\nDB_NBUFS 8\x00\x00garbage\nWEIGHTS_KEY a010\n")
    with pytest.raises(HeaderError) as info:
        ConfigSource.load([nul])
    assert str(info.value) == (f"{nul}: line 2: NUL byte: a config file is text (the rest of "
                               "the file would be ignored); fix or recreate the file")
    bad = _write(tmp_path / "bad.hdr", "# rings\nDATA_KEY a000\ndata_key a001\n"
                 "This file sets the rings\nDB_NBUFS 8\nDATA_KEY a002\ntransmission.rate 1e6\n")
    with pytest.raises(HeaderError) as info:
        ConfigSource.load([bad])
    assert str(info.value) == (
        f"{bad}: line 3: 'data_key' is not a config key: keys are upper case (DATA_KEY) or "
        "dotted options (transmission.rate) (did you mean DATA_KEY?); "
        "line 4: 'This' is not a config key: keys are upper case (DATA_KEY) or dotted options "
        "(transmission.rate); start a line of text with '#'; "
        "line 6: DATA_KEY is set again (first on line 2, which would win): set each key once")
    good = _write(tmp_path / "good.hdr", "# ok\nDATA_KEY a000\n\ntransmission.rate 1e6\n")
    source = ConfigSource.load([good])
    assert source.files == ((str(good), {"DATA_KEY": "a000", "transmission.rate": "1e6"}),)
    assert source.file_lines == ({"DATA_KEY": 2, "transmission.rate": 4},)
