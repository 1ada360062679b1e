"""Run a Python consumer class on a ring pair: emu-recv's ``reception.consumer = pkg.mod.Class``.

``python -m services.senders.consumer_host package.module.Class DATA_KEY WEIGHTS_KEY``
attaches as the guaranteed reader of both rings, reads one transfer and hands it to the class
(docs/emulator.md)::

    class Consumer:
        def __init__(self, config: dict[str, str]) -> None: ...   # datamodel, outputfilename
        def start(self, data_header: DadaHeader, weights_header: DadaHeader) -> None: ...
        def consume(self, segment: ringbuf.Segment) -> None: ...   # one block of each ring
        def end(self) -> None: ...

``segment.data`` holds ``len // RESOLUTION`` dumps of (channel, baseline, pol) complex64
visibilities, ``segment.weights`` the (TCI, FD) bytes of the same dumps (docs/ingest.md).
The views are valid only during ``consume``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from ringbuf import RingPairReader, setup_logging

logger = logging.getLogger(__name__)


def load_class(path: str) -> type[Any]:
    """The class named ``package.module.Class`` (ValueError naming it if it cannot be had)."""
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"reception.consumer {path!r}: {exc}") from None
    for method in ("start", "consume", "end"):
        if not callable(getattr(cls, method, None)):
            raise ValueError(f"reception.consumer {path!r}: has no {method}() method")
    return cls


def consume_transfers(cls: type[Any], config: dict[str, str], data_key: str, weights_key: str,
                      transfers: int = 1) -> int:
    """Feed ``transfers`` transfers of the pair to a new ``cls(config)``; segments read."""
    consumer = cls(config)
    segments = 0
    with RingPairReader(data_key, weights_key) as reader:
        for _ in range(transfers):
            transfer = reader.open_transfer()
            consumer.start(transfer.data_header, transfer.weights_header)
            for segment in transfer.segments():
                consumer.consume(segment)
                segments += 1
            consumer.end()
    return segments


@click.command()
@click.argument("consumer")
@click.argument("data_key")
@click.argument("weights_key")
@click.option("--datamodel", default="", help="passed to the consumer's config")
@click.option("--outputfilename", default="", help="passed to the consumer's config")
@click.option("--transfers", type=int, default=1, help="transfers read before exiting")
def main(consumer: str, data_key: str, weights_key: str, datamodel: str, outputfilename: str,
         transfers: int) -> None:
    """Run CONSUMER (package.module.Class) on the ring pair DATA_KEY/WEIGHTS_KEY."""
    setup_logging("INFO")
    try:
        cls = load_class(consumer)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    count = consume_transfers(cls, {"datamodel": datamodel, "outputfilename": outputfilename},
                              data_key, weights_key, transfers)
    logger.info("%s consumed %d segments", consumer, count)


if __name__ == "__main__":
    main()
