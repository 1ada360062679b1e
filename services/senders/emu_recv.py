"""``emu-recv -c receiver.conf``: the SKA CBF-SDP emulator's receiver, made of ringpipe parts.

Reads the emulator's receiver INI file (``[reception]``), sizes everything from the data
model MS, creates a ring pair, and runs svc-ingest and the consumer as real processes:
``mswriter`` (svc-mswrite writes ``outputfilename``), ``null`` (``ringbuf null`` on both
rings) or ``package.module.Class`` (a Python class reading the ring pair, run by
:mod:`services.senders.consumer_host`). It exits 0 once one stream has ended and the
consumer is done (the MS closed); on Ctrl-C or SIGTERM it stops every process and destroys
the rings. docs/emulator.md maps every emulator key.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click

from ringbuf import RingLayout, setup_logging
from ringbuf.errors import HeaderError
from services.common.config import (
    Config,
    ConfigError,
    ConfigSource,
    build_config,
    non_negative,
    one_of,
    parse_overrides,
    positive,
    setting,
)
from services.common.errors import USER_ERRORS
from services.common.processes import Process, ProcessGroup, daemon_env, options, tool
from services.senders.command import read_config_file
from services.senders.consumer_host import load_class
from services.senders.emu_send import EmuSendConfig

logger = logging.getLogger(__name__)

#: Sections of an emulator config file that belong to emu-send: checked, not used
SENDER_SECTIONS = ("reader", "transmission", "payload")
POLL_S = 0.2


@dataclass(frozen=True, kw_only=True)
class EmuRecvConfig(Config):
    method: str = setting("reception.method", str, default="spead2_receivers",
                          validator=one_of("spead2_receivers", "spead2"),
                          help="receiver (only spead2 over UDP)")
    bind_hostname: str = setting("reception.bind_hostname", str, default="",
                                 help="address to bind ('' all; a multicast group is joined)")
    port_start: int = setting("reception.receiver_port_start", int, default=41000,
                              validator=positive, help="first UDP port")
    num_ports: int = setting("reception.num_ports", int, default=0, validator=non_negative,
                             help="ports (0: channels / transmission.channels_per_stream, else 1)")
    consumer: str = setting("reception.consumer", str, default="mswriter",
                            help="mswriter, null, or package.module.Class")
    datamodel: str = setting("reception.datamodel", str,
                             help="MS giving antennas, channels, dump time, UVW")
    outputfilename: str = setting("reception.outputfilename", str, default="recv-vis.ms",
                                  help="MS written by mswriter (must not exist)")
    ring_heaps: int = setting("reception.ring_heaps", int, default=16, validator=positive,
                              help="heaps the ring pair holds (rounded up to whole blocks)")
    dumps_per_block: int = setting("reception.dumps_per_block", int, default=1,
                                   validator=positive, help="dumps per ring block")
    channels_per_stream: int = setting("transmission.channels_per_stream", int, default=0,
                                       validator=non_negative,
                                       help="the sender's; gives num_ports when that is 0")

    def check(self) -> Iterable[str]:
        if not (Path(self.datamodel) / "table.dat").is_file():
            yield f"reception.datamodel {self.datamodel}: not a MeasurementSet (no table.dat)"
        if self.consumer in ("mswriter", "cbf_sdp.consumers.mswriter"):
            out = Path(self.outputfilename)
            if out.suffix != ".ms":
                yield f"reception.outputfilename {out}: must end in .ms"
            elif out.exists():
                yield f"reception.outputfilename {out}: exists (remove it or choose another)"
            elif not out.absolute().parent.is_dir():
                yield f"reception.outputfilename {out}: no such directory"


@dataclass(frozen=True)
class Shape:
    """What the data model says about the stream."""

    nant: int
    nchan: int
    int_time: float

    @property
    def nbaseline(self) -> int:
        return self.nant * (self.nant + 1) // 2


def load_config(files: tuple[str, ...], overrides: tuple[str, ...]) -> EmuRecvConfig:
    """The receiver config: INI or ``KEY value`` files < ``-o``; unknown keys are errors."""
    loaded = tuple((path, read_config_file(path)) for path in files)
    source = ConfigSource(loaded, {})
    if overrides:
        source = source.with_overrides("-o", parse_overrides(overrides))
    known = set(EmuRecvConfig.keys())
    sender = set(EmuSendConfig.keys())
    layers = [(path, values) for path, values in loaded] + list(source.overrides)
    problems = [f"{key} ({origin}): unknown key" for origin, values in layers for key in values
                if key not in known and not (key.split(".")[0] in SENDER_SECTIONS
                                             and key in sender)]
    if problems:
        raise ConfigError(source.describe(), problems)
    return build_config(EmuRecvConfig, source)


def read_shape(datamodel: str) -> Shape:
    """Antennas, channels and dump time of the data model MS."""
    from casacore import tables

    with tables.table(datamodel, ack=False) as ms:
        nant = tables.table(ms.getkeyword("ANTENNA"), ack=False).nrows()
        spw = tables.table(ms.getkeyword("SPECTRAL_WINDOW"), ack=False)
        nchan = int(spw.getcol("NUM_CHAN")[0])
        spw.close()
        if ms.nrows() == 0:
            raise HeaderError(f"reception.datamodel {datamodel}: no rows (no dump time)")
        int_time = float(ms.getcol("INTERVAL", 0, 1)[0])
    return Shape(nant, nchan, int_time)


def streams_of(cfg: EmuRecvConfig, shape: Shape) -> tuple[int, int]:
    """(ports, channels per stream), as the emulator derives them."""
    nports = cfg.num_ports
    if not nports:
        cps = cfg.channels_per_stream or shape.nchan
        if shape.nchan % cps:
            raise HeaderError(f"transmission.channels_per_stream {cps} does not divide the "
                              f"{shape.nchan} channels of {cfg.datamodel}")
        return shape.nchan // cps, cps
    if shape.nchan % nports:
        raise HeaderError(f"reception.num_ports {nports} does not divide the {shape.nchan} "
                          f"channels of {cfg.datamodel}")
    return nports, shape.nchan // nports


class SignalledError(Exception):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`SignalledError`; both are ignored while cleaning up."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SignalledError(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)


class Receiver:
    """The ring pair, svc-ingest and the consumer of one emu-recv run."""

    def __init__(self, cfg: EmuRecvConfig, shape: Shape, group: ProcessGroup) -> None:
        self.cfg, self.shape, self.group = cfg, shape, group
        self.nports, self.cps = streams_of(cfg, shape)
        self.consumers: list[str] = []

    def _start(self, name: str, args: list[object], daemon: bool = False) -> Process:
        sock = self.group.socket_path(name) if daemon else None
        proc = Process(name, list(args), self.group.workdir / "logs" / f"{name}.log", sock,
                       env=daemon_env())
        self.group.processes[name] = proc
        if sock is not None:
            proc.wait_ready(60)
        return proc

    def start(self) -> None:
        cfg, shape = self.cfg, self.shape
        dpb = cfg.dumps_per_block
        heaps_per_block = dpb * self.nports
        nbufs = max(4, math.ceil(cfg.ring_heaps / heaps_per_block))
        res = shape.nchan * shape.nbaseline
        dk, wk = self.group.ring_pair(RingLayout(nbufs, dpb * res * 32),
                                      RingLayout(nbufs, dpb * res * 2))
        logger.info("ring pair %s/%s: %d blocks of %d dumps", dk, wk, nbufs, dpb)
        self._start_consumer(dk, wk)
        ingest: dict[str, object] = {
            "PROFILE": "vis", "DATA_KEY": dk, "WEIGHTS_KEY": wk, "PORT_START": cfg.port_start,
            "NSTREAMS": self.nports, "NANT": shape.nant, "NCHAN": shape.nchan,
            "CHANNELS_PER_STREAM": self.cps, "INT_TIME": shape.int_time,
            "DUMPS_PER_BLOCK": dpb}
        if cfg.bind_hostname and ipaddress.ip_address(cfg.bind_hostname).is_multicast:
            ingest["MCAST_GROUP"] = cfg.bind_hostname
        elif cfg.bind_hostname:
            ingest["BIND_HOST"] = cfg.bind_hostname
        self._start("svc-ingest", [tool("svc-ingest"), "--autonomous", "--socket",
                                   self.group.socket_path("svc-ingest"), *options(ingest)],
                    daemon=True)

    def _start_consumer(self, dk: str, wk: str) -> None:
        cfg = self.cfg
        name = cfg.consumer.rsplit(".", 1)[-1] if cfg.consumer.startswith("cbf_sdp.") \
            else cfg.consumer
        if name == "mswriter":
            out = Path(cfg.outputfilename).absolute()
            mswrite = {"DATA_KEY": dk, "WEIGHTS_KEY": wk, "MS_OUTPUT_DIR": out.parent,
                       "MS_NAME_TEMPLATE": out.name,
                       "MS_DATA_MODEL": Path(cfg.datamodel).absolute()}
            self._start("svc-mswrite", [tool("svc-mswrite"), "--autonomous", "--socket",
                                        self.group.socket_path("svc-mswrite"),
                                        *options(mswrite)], daemon=True)
            self.consumers = ["svc-mswrite"]
        elif name in ("null", "null_consumer"):
            for role, key in (("data", dk), ("weights", wk)):
                self._start(f"null-{role}", [tool("ringbuf"), "null", "-k", key,
                                             "--transfers", 1])
            self.consumers = ["null-data", "null-weights"]
        elif "." in name:
            self._start("consumer", [sys.executable, "-m", "services.senders.consumer_host",
                                     name, dk, wk, "--datamodel", cfg.datamodel,
                                     "--outputfilename", cfg.outputfilename])
            self.consumers = ["consumer"]
        else:
            raise HeaderError(f"reception.consumer {cfg.consumer!r}: not mswriter, null or "
                              "package.module.Class")

    def done(self) -> bool:
        """True once the consumer has finished one transfer; RuntimeError if a process died."""
        for name, proc in self.group.processes.items():
            code = proc.proc.poll()
            if code is not None and (code != 0 or name not in self.consumers):
                lines = proc.tail(1500).strip().splitlines() or [""]
                raise RuntimeError(f"{name} exited with {code}: {lines[-1]} "
                                   f"(logs in {self.group.workdir / 'logs'})")
        if self.consumers == ["svc-mswrite"]:
            counters = self.group.status("svc-mswrite")["counters"]
            if counters.get("ms_aborted_total", 0) or counters.get("transfers_skipped_total", 0):
                raise RuntimeError(f"svc-mswrite gave up on the stream: {counters.get('errors')} "
                                   f"(logs in {self.group.workdir / 'logs'})")
            return counters.get("ms_written_total", 0) >= 1
        return all(self.group.processes[n].proc.poll() == 0 for n in self.consumers)

    def summary(self) -> str:
        counters = self.group.status("svc-ingest")["counters"]
        text = (f"{counters.get('heaps_complete_total', 0)} heaps received, "
                f"{counters.get('heaps_lost_total', 0)} lost, scan {counters.get('scan_id', 0)}")
        if self.consumers == ["svc-mswrite"]:
            text += f"; wrote {Path(self.cfg.outputfilename).absolute()}"
        return text


def run(cfg: EmuRecvConfig) -> str:
    """Receive one stream; a one-line summary. Everything started is stopped and destroyed."""
    shape = read_shape(cfg.datamodel)
    if "." in cfg.consumer and not cfg.consumer.startswith("cbf_sdp."):
        load_class(cfg.consumer)  # a one-line error before anything is started
    workdir = Path(tempfile.mkdtemp(prefix="emu-recv-"))
    failed = False
    try:
        with ProcessGroup(workdir) as group, signals_interrupt():
            receiver = Receiver(cfg, shape, group)
            receiver.start()
            logger.info("listening on %d port(s) from %d; consumer %s", receiver.nports,
                        cfg.port_start, cfg.consumer)
            while not receiver.done():
                time.sleep(POLL_S)
            return receiver.summary()
    except RuntimeError:
        failed = True
        raise
    finally:
        if failed:
            logger.warning("process logs kept in %s", workdir / "logs")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@click.command(help="""Receive a CBF-SDP visibility stream the way the SKA emulator's emu-recv
does: svc-ingest into a ring pair, and a consumer reading it.

\b
RECEIVER.CONF is the emulator's receiver INI file; its [reception] keys:
  method (spead2_receivers), bind_hostname, receiver_port_start (41000),
  num_ports (0: channels / transmission.channels_per_stream), consumer
  (mswriter | null | package.module.Class), datamodel (required),
  outputfilename (recv-vis.ms), ring_heaps (16), dumps_per_block (1).
[reader], [transmission] and [payload] (emu-send's) may be in the same file.
Any other key is an error. Exits 0 when the stream has ended and the consumer
is done (the MS closed); Ctrl-C or SIGTERM stops everything and removes the rings.

\b
Examples:
  emu-recv -c receiver.conf
  emu-recv -c receiver.conf -o reception.outputfilename=/data/scan7.ms
  emu-recv -c receiver.conf -o reception.consumer=null -v
  emu-recv -c receiver.conf -o reception.consumer=mypkg.consumers.Stats
""")
@click.option("-c", "--config", "config_files", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="receiver INI (or KEY value) file (repeatable; later files win)")
@click.option("-o", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="set a config key (repeatable)")
@click.option("-v", "--verbose", count=True, help="log more (-v info, -vv debug)")
def main(config_files: tuple[str, ...], overrides: tuple[str, ...], verbose: int) -> None:
    setup_logging(("WARNING", "INFO", "DEBUG")[min(verbose, 2)])
    try:
        cfg = load_config(config_files, overrides)
        click.echo(run(cfg))
    except SignalledError as exc:
        click.echo(f"emu-recv: {exc}: stopped, rings removed", err=True)
        sys.exit(128 + exc.signum)
    except USER_ERRORS + (OSError, RuntimeError, ValueError) as exc:
        logger.debug("failed", exc_info=True)
        raise click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None


if __name__ == "__main__":
    main()
