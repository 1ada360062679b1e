"""``ringbuf create|destroy|create-pair|destroy-pair|list|status``."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ringbuf.cli import user_errors
from ringbuf.header import DadaHeader
from ringbuf.layout import RingLayout
from ringbuf.pair import create_ring_pair, destroy_ring_pair, ensure_ring_pair
from ringbuf.pairconfig import pair_config
from ringbuf.ring import create_ring, destroy_ring, ensure_ring
from ringbuf.shm import normalise_key
from ringbuf.status import list_rings, snapshot

KEY = click.option("-k", "--key", required=True,
                   help="Ring key: 1-8 hex digits, like dada or a000.")


class _Signalled(Exception):
    """SIGTERM/SIGHUP during a create: unwinds it so what was made is removed."""


@contextmanager
def _signals_as_errors(what: str) -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception for the duration (a create cleans up)."""

    def handler(signum: int, frame: object) -> None:
        raise _Signalled(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    except _Signalled as exc:
        raise click.ClickException(f"{what}: create stopped by {exc}; nothing was left "
                                   "behind") from None
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _octal(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal mode like 0600") from None
    if not 0 <= mode <= 0o777:
        raise click.BadParameter(f"{value!r} is not a permission mode 0000-0777")
    return mode


@click.command()
@KEY
@click.option("-b", "--bufsz", type=click.IntRange(min=1), required=True,
              help="Bytes per data block.")
@click.option("-n", "--nbufs", type=click.IntRange(min=2), required=True,
              help="Number of data blocks.")
@click.option("-r", "--nreaders", type=click.IntRange(0, 16), default=1, show_default=True,
              help="Guaranteed-reader slots (0: viewers only, the writer never waits).")
@click.option("--hdr-size", type=click.IntRange(min=64), default=4096, show_default=True,
              help="Bytes per header block (HDR_SIZE).")
@click.option("--hdr-nbufs", type=click.IntRange(min=8), default=8, show_default=True,
              help="Header blocks (transfers that can be queued).")
@click.option("--page", is_flag=True, help="Pre-fault every page now (like dada_db -p).")
@click.option("--lock", is_flag=True, help="mlock the ring in every attached process.")
@click.option("--mode", default="0600", show_default=True, help="Permissions of the POSIX objects.")
@click.option("--if-missing", is_flag=True,
              help="Succeed quietly if the ring already exists with this layout.")
@user_errors
def create(key: str, bufsz: int, nbufs: int, nreaders: int, hdr_size: int, hdr_nbufs: int,
           page: bool, lock: bool, mode: str, if_missing: bool) -> None:
    """Create a ring.

    Refuses an existing ring and says who owns it, since when, and whether its creator is
    still alive.

    \b
    Examples:
      ringbuf create -k dada -b 16777216 -n 8 --page
      ringbuf create -k a000 -b 5308416 -n 16 -r 2 --mode 0660
    """
    layout = RingLayout(nbufs, bufsz, nreaders, hdr_nbufs, hdr_size)
    with _signals_as_errors(f"ring {normalise_key(key)}"):
        if if_missing:
            ensure_ring(key, layout, mode=_octal(mode), page=page, lock=lock)
        else:
            create_ring(key, layout, mode=_octal(mode), page=page, lock=lock)


@click.command()
@KEY
@user_errors
def destroy(key: str) -> None:
    """Remove every POSIX object of a ring (idempotent).

    \b
    Example:
      ringbuf destroy -k dada
    """
    destroy_ring(key)


CONFIG = click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
                      help="Ring-pair definition (DATA_KEY, WEIGHTS_KEY, DB_*, WB_*, HB_* keys).")


@click.command("create-pair")
@CONFIG
@click.option("--if-missing", is_flag=True,
              help="Create only what is missing; succeed if both exist with this layout.")
@user_errors
def create_pair(config_path: str, if_missing: bool) -> None:
    """Create the data and weights rings of a deployment (SKA PST style).

    \b
    Example:
      ringbuf create-pair --config configs/beam.hdr
    """
    cfg = pair_config(DadaHeader.load(config_path))
    with _signals_as_errors(f"ring pair {cfg.data_key}/{cfg.weights_key}"):
        if if_missing:  # make whichever is missing; refuse one that differs
            ensure_ring_pair(cfg.data_key, cfg.weights_key, cfg.data_layout,
                             cfg.weights_layout, mode=cfg.mode)
        else:
            create_ring_pair(cfg.data_key, cfg.weights_key, cfg.data_layout,
                             cfg.weights_layout, mode=cfg.mode)


@click.command("destroy-pair")
@CONFIG
@user_errors
def destroy_pair(config_path: str) -> None:
    """Destroy the data and weights rings named in a deployment config (idempotent).

    \b
    Example:
      ringbuf destroy-pair --config configs/beam.hdr
    """
    cfg = pair_config(DadaHeader.load(config_path))
    destroy_ring_pair(cfg.data_key, cfg.weights_key)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@user_errors
def list_command(as_json: bool) -> None:
    """List every ring on this machine: who is attached, or what an idle ring still holds.

    A damaged ring is marked DAMAGED with what is wrong; the others are still listed.

    \b
    Examples:
      ringbuf list
      ringbuf list --json | jq '.[] | select(.idle) | .key'
    """
    rings = list_rings()
    if as_json:
        click.echo(json.dumps(rings, indent=2))
    elif not rings:
        click.echo("no rings")
    else:
        click.echo(f"{'KEY':<10}{'NBUFS':>7}{'BUFSZ':>12}{'READERS':>9}{'FILL':>7}  "
                   "CREATED              STATE")
        for r in rings:
            if "error" in r:
                label = "NO ACCESS" if r.get("no_access") else "DAMAGED"
                click.echo(f"{r['key']:<10}  {label}: {r['error']}")
                continue
            state = f"DAMAGED: {r['problems'][0]}" if r["problems"] else r["state"]
            click.echo(f"{r['key']:<10}{r['nbufs']:>7}{r['bufsz']:>12}{r['nreaders']:>9}"
                       f"{r['fill_fraction']:>7.0%}  {r['created']:<20} {state}")


def _print_status(s: dict[str, Any]) -> None:
    w = s["writer"]
    click.echo(f"ring {s['key']}: {s['nbufs']} x {s['bufsz']} bytes, "
               f"{s['nreaders']} reader slot(s), "
               f"header {s['hdr_nbufs']} x {s['hdr_size']}, mode {s['mode']}")
    click.echo(f"  created {s['created']} by pid {s['creator_pid']}; {s['state']}")
    who = f"pid {w['pid']} since {w['since']}" if w["alive"] else "none attached"
    click.echo(f"  writer: {who}; {w['blocks_written']} blocks, "
               f"{w['bytes_written']} bytes written, "
               f"blocked {w['blocked_seconds']:.3f} s")
    for r in s["readers"]:
        who = f"pid {r['pid']}" if r["alive"] else "free (position kept)"
        click.echo(f"  reader {r['slot']}: {who}; {r['blocks_read']} blocks read, "
                   f"lag {r['lag_blocks']}")
    click.echo(f"  fill: {s['fill_blocks']}/{s['nbufs']} blocks ({s['fill_fraction']:.0%})")
    t = s["transfer"]
    if t:
        click.echo(f"  transfer {t['id']}: {t['state']}, "
                   f"blocks {t['start_block']}..{t['end_block']}")
        for line in t["header"].splitlines():
            click.echo(f"    {line}")


@click.command()
@KEY
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.option("--watch", type=float, default=None, metavar="SECONDS",
              help="Repeat every SECONDS until interrupted (like dada_dbmonitor).")
@user_errors
def status(key: str, as_json: bool, watch: float | None) -> None:
    """Show a ring's geometry, writer, readers, lag, fill and current transfer.

    \b
    Examples:
      ringbuf status -k dada
      ringbuf status -k dada --json
      ringbuf status -k dada --watch 1
    """
    key = normalise_key(key)
    while True:
        snap = snapshot(key)
        if as_json:
            click.echo(json.dumps(snap))
        else:
            _print_status(snap)
        if snap["problems"]:
            raise click.ClickException(f"ring {key}: " + "; ".join(snap["problems"]))
        if watch is None:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return


def register(group: click.Group) -> None:
    for command in (create, destroy, create_pair, destroy_pair, list_command, status):
        group.add_command(command)
