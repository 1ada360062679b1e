"""``ringbuf record`` (like dada_dbdisk), ``ringbuf play`` (dada_diskdb), ``ringbuf header``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ringbuf.cli import user_errors
from ringbuf.cli.tools import stop_on_signals
from ringbuf.dadafile import read_dada_file
from ringbuf.errors import Interrupted
from ringbuf.player import play
from ringbuf.recorder import Summary, record
from ringbuf.status import current_header


def _report(summary: Summary, as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    info = summary.as_dict()
    click.echo(f"{verb} {info['bytes']} data + {info['weights_bytes']} weights bytes in "
               f"{info['transfers']} transfer(s), {info['files']} file(s), "
               f"{info['seconds']:.3f} s, {info['mbps']:.1f} MB/s")


@click.command("record")
@click.option("-k", "--key", required=True, help="Ring key (the data ring of a pair).")
@click.option("-D", "--directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the files (data/ and weights/ under it for a pair).")
@click.option("--weights-key", default=None, help="Weights ring key: record a ring pair in step.")
@click.option("--file-size", type=click.IntRange(min=1), default=None,
              help="Data bytes per file, rounded up to whole RESOLUTION units "
                   "[default: header FILE_SIZE, else 10 s of BYTES_PER_SECOND].")
@click.option("--transfers", type=click.IntRange(min=1), default=None,
              help="Exit after this many transfers (default: until interrupted).")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Exit when no transfer starts for this many seconds; fail if a transfer "
                   "stalls this long (files so far are kept, complete).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@user_errors
def record_command(key: str, directory: Path, weights_key: str | None, file_size: int | None,
                   transfers: int | None, timeout: float | None, as_json: bool) -> None:
    """Record transfers of a ring (or ring pair) to .dada files (like dada_dbdisk).

    A guaranteed reader: the writer waits for it. Each file holds HDR_SIZE bytes of header
    (OBS_OFFSET, FILE_SIZE = data bytes in the file, FILE_NUMBER) and then data; files are
    written as hidden .partial files and renamed when complete. Names:
    <UTC_START>_<OBS_OFFSET 16 digits>_<FILE_NUMBER 6 digits>.dada

    \b
    Examples:
      ringbuf record -k dada -D /data/rec --transfers 1 --json
      ringbuf record -k a000 --weights-key a010 -D /data/scan1 --file-size 1000000000
    """
    stop = stop_on_signals()
    summary = record(key, directory, weights_key=weights_key, file_size=file_size,
                     transfers=transfers, timeout=timeout, stop=stop)
    _report(summary, as_json, "recorded")


@click.command("play")
@click.option("-k", "--key", required=True, help="Ring key (the data ring of a pair).")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path), metavar="FILE_OR_DIR...")
@click.option("--weights-key", default=None,
              help="Weights ring key: play data files and their weights/ namesakes in step.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Limit to this many MB/s (10^6 bytes, data plus weights).")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Fail if the ring has no free block for this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@user_errors
def play_command(key: str, paths: tuple[Path, ...], weights_key: str | None, rate: float | None,
                 timeout: float | None, as_json: bool) -> None:
    """Play .dada files into a ring (or ring pair), like dada_diskdb.

    Files are sorted by OBS_OFFSET; contiguous files (same UTC_START, each starting where the
    previous one's data ends, by real file size) form one transfer, and a gap starts a new
    transfer with its own header. For a pair, give data files or directories, or recording
    directories that hold data/ and weights/.

    \b
    Examples:
      ringbuf play -k dada /data/rec/
      ringbuf play -k a000 --weights-key a010 /data/scan1 --rate 200 --json
    """
    stop = stop_on_signals()
    try:
        summary = play(key, list(paths), weights_key=weights_key, rate_mb_s=rate,
                       timeout=timeout, stop=stop)
    except Interrupted:
        raise click.ClickException("play: interrupted") from None
    _report(summary, as_json, "played")


@click.command("header")
@click.argument("source", metavar="FILE_OR_KEY")
@user_errors
def header_command(source: str) -> None:
    """Print the header of a .dada file, or the current header of a ring (like dada_header).

    \b
    Examples:
      ringbuf header /data/rec/2023-02-14-22:15:37_0000000000000000_000000.dada
      ringbuf header a000
    """
    path = Path(source)
    if path.exists() or "/" in source or source.endswith(".dada"):
        click.echo(read_dada_file(path).header.text.rstrip("\n"))
        return
    click.echo(current_header(source).text.rstrip("\n"))


def register(group: click.Group) -> None:
    for command in (record_command, play_command, header_command):
        group.add_command(command)
