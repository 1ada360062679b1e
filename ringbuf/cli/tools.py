"""``ringbuf junk`` (a test writer, like dada_junkdb) and ``ringbuf null`` (like dada_dbnull)."""

from __future__ import annotations

import json
import signal
import threading
import time

import click

from ringbuf.cli import user_errors
from ringbuf.errors import EndOfData, Interrupted, Timeout
from ringbuf.header import DadaHeader
from ringbuf.pacer import Pacer
from ringbuf.patterns import PATTERNS, PatternSource
from ringbuf.reader import RingReader
from ringbuf.writer import RingWriter


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (a second signal exits at once)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise SystemExit(128 + signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


@click.command()
@click.option("-k", "--key", required=True, help="Ring key.")
@click.argument("header_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--bytes", "nbytes", type=click.IntRange(min=0), help="Bytes to write.")
@click.option("--seconds", type=click.FloatRange(min=0),
              help="Write for this long (with --rate: rate x seconds bytes).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="MB/s (10^6 bytes/s); default unlimited.")
@click.option("--pattern", type=click.Choice(PATTERNS), default="ramp", show_default=True,
              help="Data pattern; ramp is byte (offset mod 256), which readers can check.")
@click.option("--timeout", type=float, default=None,
              help="Give up if the ring stays full this long (s).")
@user_errors
def junk(key: str, header_file: str, nbytes: int | None, seconds: float | None,
         rate: float | None, pattern: str, timeout: float | None) -> None:
    """Write one transfer of test data: the header, the data, then end of data.

    \b
    Examples:
      ringbuf junk -k dada header.txt --bytes 1073741824
      ringbuf junk -k dada header.txt --seconds 10 --rate 800 --pattern noise
    """
    if (nbytes is None) == (seconds is None):
        raise click.UsageError("give exactly one of --bytes or --seconds")
    header = DadaHeader.load(header_file)
    bytes_per_s = rate * 1e6 if rate else None
    total, deadline = nbytes, None
    if seconds is not None:  # with a rate, a number of bytes; without, a time
        if bytes_per_s:
            total = int(bytes_per_s * seconds)
        else:
            deadline = time.monotonic() + seconds
    stop = stop_on_signals()
    with RingWriter(key, timeout=timeout, stop=stop) as writer:
        bufsz = writer.layout.bufsz
        source = PatternSource(pattern, bufsz)
        pacer = Pacer(bytes_per_s, stop)
        written = 0
        with writer.open_transfer(header) as xfer:
            while not stop.is_set():
                if total is not None and written >= total:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                n = bufsz if total is None else min(bufsz, total - written)
                xfer.write_block(source.fill, n)  # in place, no per-block objects
                written += n
                if not pacer.account(n):
                    break
    if stop.is_set():
        click.echo(f"interrupted after {written} bytes", err=True)


@click.command()
@click.option("-k", "--key", required=True, help="Ring key.")
@click.option("--transfers", type=click.IntRange(min=1), default=None,
              help="Exit after this many transfers (default: until interrupted).")
@click.option("--timeout", type=float, default=None,
              help="Exit if nothing arrives for this long (s).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@user_errors
def null(key: str, transfers: int | None, timeout: float | None, as_json: bool) -> None:
    """A guaranteed reader that discards everything (like dada_dbnull).

    \b
    Examples:
      ringbuf null -k dada --transfers 1 --json
      ringbuf null -k dada            # until Ctrl-C
    """
    stop = stop_on_signals()
    total_bytes = done = blocks = 0
    aborted = 0
    started = None
    with RingReader(key, timeout=timeout, stop=stop) as reader:
        try:
            while transfers is None or done < transfers:
                xfer = reader.open_transfer()
                started = started or time.monotonic()
                try:  # counts blocks, touches no data byte (as dada_dbnull -z)
                    blocks += xfer.drain()
                except EndOfData:  # WriterDied: an aborted transfer still counts as one
                    aborted += 1
                total_bytes += xfer.nbytes
                done += 1
        except (Interrupted, Timeout):
            pass
    seconds = time.monotonic() - started if started else 0.0
    summary = {
        "bytes": total_bytes, "blocks": blocks, "transfers": done, "aborted_transfers": aborted,
        "seconds": round(seconds, 6),
        "gbps": round(total_bytes * 8 / seconds / 1e9, 6) if seconds else 0.0,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{total_bytes} bytes in {done} transfer(s), {seconds:.3f} s, "
                   f"{summary['gbps']:.3f} Gb/s")


def register(group: click.Group) -> None:
    group.add_command(junk)
    group.add_command(null)
