"""``make demo``: both pipelines on loopback, as real processes, then a short summary.

1. Visibilities: sim-ms makes a two-source sky -> ring pair -> svc-ingest and svc-mswrite ->
   emu-send sends it -> the output MS is checked against the input and imaged with wsclean.
2. Voltages: ring pair -> svc-ingest (beam), svc-stat and ringbuf record -> beam-send with
   noise, a tone and NaN packets -> live HDF5 statistics, the same numbers from
   stat-file-processor on the recording, and a picture from stat-plot.

Every process and ring is cleaned up at the end, also when interrupted.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import time
from pathlib import Path

import click

from ringbuf import setup_logging
from services.common.processes import ProcessGroup
from services.demo.beam_flow import BeamParams, BeamReport, run_beam_flow
from services.demo.vis_flow import VisParams, VisReport, run_vis_flow


def _vis_summary(r: VisReport) -> list[str]:
    lines = [
        f"  heaps sent {r.heaps_sent}, received {r.ingest.get('heaps_complete_total', 0)}, "
        f"lost {r.ingest.get('heaps_lost_total', 0)}",
        f"  MS written: {r.output_ms} ({r.rows} rows, "
        f"{r.mswrite.get('dumps_written_total', 0)} dumps)",
        f"  vs input: max |DATA diff| {r.max_data_error:g}, "
        f"max UVW diff {r.max_uvw_error_m:.2g} m, max TIME diff {r.max_time_error_s:.2g} s",
    ]
    if r.image:
        found = ", ".join(f"{want:g} Jy -> {got:.3f} Jy" for want, got in r.fluxes)
        lines.append(f"  wsclean image: {r.image} (sources: {found})")
    return lines


def _beam_summary(r: BeamReport) -> list[str]:
    lines = [
        f"  heaps received {r.ingest.get('heaps_complete_total', 0)}, "
        f"lost {r.ingest.get('heaps_lost_total', 0)}",
        f"  recorded: {r.recorded.get('bytes', 0)} data bytes in "
        f"{r.recorded.get('files', 0)} files",
        f"  live statistics: {len(r.live_files)} HDF5 files under "
        f"{r.live_files[0].parent if r.live_files else '-'}",
        f"  offline (stat-file-processor): {len(r.offline_files)} files; {r.compared} "
        f"compared with the live ones, {len(r.mismatches)} differences",
    ]
    lines += [f"    {m}" for m in r.mismatches[:5]]
    if r.plot:
        lines.append(f"  picture: {r.plot}")
    return lines


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out/demo"), show_default=True,
              help="Where outputs and logs go (emptied first).")
@click.option("--only", type=click.Choice(["vis", "beam"]), default=None, help="Run one flow only.")
@click.option("--no-image", is_flag=True, help="Do not image the visibilities with wsclean.")
def main(workdir: Path, only: str | None, no_image: bool) -> None:
    """Run both pipelines end to end on loopback and print what happened.

    \b
    Examples:
      python -m services.demo
      python -m services.demo --only beam --workdir /tmp/demo
    """
    setup_logging(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind and clean up
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    workdir = workdir.resolve()
    started = time.monotonic()
    ok = True
    with ProcessGroup(workdir) as group:
        if only in (None, "vis"):
            click.echo("visibilities: sim-ms -> emu-send -> svc-ingest -> svc-mswrite ...")
            vis = run_vis_flow(group, VisParams(image=not no_image))
            click.echo("\n".join(_vis_summary(vis)))
            ok &= vis.ok
    with ProcessGroup(workdir) as group:
        if only in (None, "beam"):
            click.echo("voltages: beam-send -> svc-ingest -> svc-stat + ringbuf record ...")
            beam = run_beam_flow(group, BeamParams())
            click.echo("\n".join(_beam_summary(beam)))
            ok &= beam.ok
    click.echo(f"logs: {workdir / 'logs'}; {time.monotonic() - started:.0f} s; "
               f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
