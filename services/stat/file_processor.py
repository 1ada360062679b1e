"""``stat-file-processor``: SKA PST STAT statistics of .dada recordings, offline.

The same compute and HDF5 path as ``svc-stat``, fed by :class:`ringbuf.file_segments.
FileSegmentProducer`.  Unlike the reference, files are read through mmap windows of a few tens
of MB, so memory use does not grow with the file, and a directory of consecutive files is one
stream.  Without ``--segment-heaps`` the whole input is one segment and gives one HDF5 file (the
reference's behaviour); with it, every N heaps give one file.

Output naming: ``<parent of the data folder>/stat/<data file stem>.h5`` (the reference's rule;
``X.dada`` with no folder gives ``X.h5``); with ``--segment-heaps``, files named
``<UTC_START>_<OBS_OFFSET 16 digits>_<segment number 6 digits>.h5`` in that ``stat/`` folder.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from ringbuf import FileSegmentProducer, list_dada_files, read_dada_file, setup_logging
from services.common.config import ConfigError, ConfigSource
from services.common.errors import USER_ERRORS
from services.stat.compute import StatResult
from services.stat.config import StatConfig
from services.stat.processor import StatProcessor
from services.stat.publish import Hdf5StatPublisher

logger = logging.getLogger(__name__)

READ_WINDOW_BYTES = 64 << 20  # data bytes mapped at a time


def default_output(data_path: Path) -> Path:
    """The reference's output name: ``<parent of data folder>/stat/<stem>.h5``."""
    if data_path.parent == Path("."):
        return Path(data_path.stem + ".h5")
    return data_path.parent.parent / "stat" / (data_path.stem + ".h5")


def config_source(config_files: Sequence[str | Path] = (),
                  overrides: Sequence[str] = ()) -> ConfigSource:
    """The layers above the data header: ``-c`` files, then the environment, then ``-o``.

    ConfigError (naming the key) for a malformed ``-o`` or one that sets no STAT_* key.
    """
    source = ConfigSource.load(config_files, overrides)
    unknown = source.unknown_keys(StatConfig.keys())
    if unknown:
        raise ConfigError("options", unknown)
    return source


def process(data_path: Path, weights_path: Path | None, output: Path | None,
            segment_heaps: int | None = None,
            progress: Callable[[int], None] | None = None,
            source: ConfigSource | None = None) -> list[Path]:
    """Compute and write the statistics of a recording; returns the HDF5 files written.

    ``data_path`` is a .dada data file or a directory of them; ``weights_path`` None takes the
    namesakes under the sibling ``weights/`` folder.  ``output`` is the HDF5 path (or, with
    ``segment_heaps``, the folder).  ``progress(n)`` is called after every n heaps.  The STAT_*
    keys are the data header's under ``source``'s layers (:func:`config_source`).
    """
    window = max(1, READ_WINDOW_BYTES // _heap_bytes(data_path))
    step = window if segment_heaps is None else min(window, segment_heaps)
    producer = FileSegmentProducer(data_path, weights_path, segment_heaps=step)
    first_data = list_dada_files(data_path)[0]
    if segment_heaps is None:
        target_dir = (output or default_output(first_data)).parent
    else:
        target_dir = output or default_output(first_data).parent

    def name(result: StatResult, number: int) -> Path:
        if segment_heaps is None:
            return output or default_output(first_data)
        return target_dir / f"{result.utc_start}_{result.obs_offset:016d}_{number:06d}.h5"

    files = Hdf5StatPublisher(name)
    processor = StatProcessor.for_transfer(producer.data_header, producer.weights_header,
                                           source, [files])
    if str(target_dir) not in ("", "."):
        target_dir.mkdir(exist_ok=True, parents=output is not None)
    processor.process_stream(producer, producer.nheaps, segment_heaps, progress)
    return files.paths


def _heap_bytes(data_path: Path) -> int:
    return read_dada_file(list_dada_files(data_path)[0]).resolution()


EXAMPLES = """
Examples:

\b
  stat-file-processor -d data/2023-02-14-22:15:37_0000000000000000_000000.dada \\
                      -w weights/2023-02-14-22:15:37_0000000000000000_000000.dada
  stat-file-processor data/2023-02-14-22:15:37_0000000000000000_000000.dada
  stat-file-processor data/ --segment-heaps 16 --output /tmp/stats/
  stat-file-processor data/X.dada -c configs/beam-stat.hdr -o STAT_REQ_TIME_BINS=64

\b
STAT_* keys (data header < -c files < environment RINGPIPE_<KEY> < -o):
"""


@click.command(name="stat-file-processor", epilog=EXAMPLES + StatConfig.keys_help())
@click.argument("data_file", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("-d", "--data", "data_opt", type=click.Path(exists=True, path_type=Path),
              help="Data .dada file (or a directory of consecutive files).")
@click.option("-w", "--weights", type=click.Path(exists=True, path_type=Path),
              help="Weights .dada file or directory [default: same name under ../weights/].")
@click.option("--output", type=click.Path(path_type=Path),
              help="Output .h5 path (a folder with --segment-heaps) "
                   "[default: <parent of data folder>/stat/<stem>.h5].")
@click.option("--segment-heaps", type=click.IntRange(min=1),
              help="Write one HDF5 file per N heaps instead of one for the whole input.")
@click.option("-c", "--config", "config_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Config file of STAT_* keys (KEY value lines; repeatable, later files win).")
@click.option("-o", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set a STAT_* key, over the data header and the config files (repeatable).")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar [default: when stderr is a terminal].")
@click.option("-v", "--verbose", count=True, help="-v info, -vv debug logging.")
def main(data_file: Path | None, data_opt: Path | None, weights: Path | None,
         output: Path | None, segment_heaps: int | None, config_files: tuple[str, ...],
         overrides: tuple[str, ...], progress: bool | None, verbose: int) -> None:
    """Compute SKA PST STAT statistics of a .dada data + weights recording into HDF5.

    DATA_FILE (or -d) is a data file or a directory of consecutive data files; the weights
    come from -w or from the file of the same name under the sibling weights/ folder.
    The STAT_* keys are read from the data header, then -c files, then -o options.
    """
    setup_logging((logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)])
    if (data_file is None) == (data_opt is None):
        raise click.UsageError("give the data file either as DATA_FILE or with -d (not both)")
    data_path = data_file or data_opt
    assert data_path is not None
    show = sys.stderr.isatty() if progress is None else progress
    try:
        source = config_source(config_files, overrides)
        if show:
            producer_total = FileSegmentProducer(data_path, weights, segment_heaps=1).nheaps
            with click.progressbar(length=producer_total, label="heaps", file=sys.stderr) as bar:
                written = process(data_path, weights, output, segment_heaps, bar.update, source)
        else:
            written = process(data_path, weights, output, segment_heaps, source=source)
    except USER_ERRORS + (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(str(path))
