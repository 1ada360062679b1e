"""``stat-plot``: a one-page PNG summary of an SKA PST STAT HDF5 file (headless matplotlib).

Panels: mean and max spectral power per channel for both pols (RFI-masked channels shaded,
when the mask is given with ``--freq-mask``, since the file does not record it); the 1-D
histograms of I and Q with the clipping codes marked; the rebinned 2-D histograms; the
spectrograms; the timeseries (max/mean/min) of both pols.
"""

from __future__ import annotations

from pathlib import Path

import click
import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from services.stat.compute import parse_freq_mask, rfi_mask  # noqa: E402

POLS = ("A", "B")
DIMS = ("I (real)", "Q (imag)")
FIGSIZE = (16, 11)
DPI = 100


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=False))


def render(h5_path: Path, out_path: Path, freq_mask: str | None = None) -> Path:
    """Draw the summary of ``h5_path`` into ``out_path`` (PNG, 1600 x 1100 pixels)."""
    with h5py.File(h5_path, "r") as f:
        hdr = f["HEADER"][0]
        d = {name: f[name][()] for name in f if name not in ("HEADER", "FILE_FORMAT_VERSION")}
    nchan, nbit_bins = int(hdr["NCHAN"]), int(hdr["NBIN_HIST"])
    chan_freq = np.asarray(hdr["CHAN_FREQ"], float)
    mask = (rfi_mask(float(hdr["FREQ"]), float(hdr["BW"]), nchan,
                     parse_freq_mask(freq_mask, "--freq-mask"))
            if freq_mask else np.zeros(nchan, bool))
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    grid = fig.add_gridspec(3, 4, hspace=0.45, wspace=0.55, left=0.05, right=0.97)
    title = (f"{h5_path.name}   EB {_text(hdr['EB_ID'])}  scan {int(hdr['SCAN_ID'])}  "
             f"{_text(hdr['TELESCOPE'])}  UTC {_text(hdr['UTC_START'])}  "
             f"t {hdr['T_MIN']:.4f}-{hdr['T_MAX']:.4f} s  {nchan} ch  "
             f"samples {int(hdr['NUM_SAMPLES'])}  "
             f"invalid packets {int(hdr['NUM_INVALID_PACKETS'])}")
    fig.suptitle(title, fontsize=10)

    ax = fig.add_subplot(grid[0, :2])
    for p, pol in enumerate(POLS):
        ax.plot(chan_freq, d["MEAN_SPECTRAL_POWER"][p], lw=0.8, label=f"pol {pol} mean")
        ax.plot(chan_freq, d["MAX_SPECTRAL_POWER"][p], lw=0.5, alpha=0.5, label=f"pol {pol} max")
    width = float(hdr["BW"]) / nchan
    for i, (a, b) in enumerate(_spans(mask)):
        ax.axvspan(chan_freq[a] - width / 2, chan_freq[b - 1] + width / 2, color="red",
                   alpha=0.15, label="RFI masked" if i == 0 else None)
    ax.set(title="Spectral power per channel", xlabel="frequency (MHz)", ylabel="power",
           yscale="log")
    ax.legend(fontsize=7, ncol=3)

    ax = fig.add_subplot(grid[0, 2:])
    codes = np.arange(nbit_bins) - nbit_bins // 2
    hist = d["HISTOGRAM_1D_FREQ_AVG"]
    used = np.flatnonzero(hist.sum(axis=(0, 1)))
    lo, hi = (codes[used[0]], codes[used[-1]]) if used.size else (codes[0], codes[-1])
    for p, pol in enumerate(POLS):
        for k, dim in enumerate(DIMS):
            ax.step(codes, hist[p, k], where="mid", lw=0.8, label=f"pol {pol} {dim}")
    clipped = d["NUM_CLIPPED_SAMPLES"]
    for code in (codes[0], codes[-1]):
        ax.axvline(code, color="red", ls="--", lw=0.8)
    ax.set(title=f"1-D histograms (clipped samples {clipped.ravel().tolist()}, red: clip codes)",
           xlabel="raw sample value", ylabel="count", yscale="log",
           xlim=(min(lo, codes[0] if clipped.any() else lo) - 1,
                 max(hi, codes[-1] if clipped.any() else hi) + 1))
    ax.legend(fontsize=7)

    nrebin = int(hdr["NREBIN"])
    extent = (-128 - 0.5, nrebin - 128 - 0.5, -128 - 0.5, nrebin - 128 - 0.5)
    for p, pol in enumerate(POLS):
        ax = fig.add_subplot(grid[1, p])
        h2 = d["HISTOGRAM_REBINNED_2D_FREQ_AVG"][p].astype(float)
        h2[h2 == 0] = np.nan
        im = ax.imshow(h2.T, origin="lower", extent=extent, norm=LogNorm(), aspect="auto")
        ax.set(title=f"2-D histogram pol {pol}", xlabel="I (rebinned)", ylabel="Q (rebinned)")
        fig.colorbar(im, ax=ax, fraction=0.046)

    tbins = np.asarray(hdr["TIMESERIES_BINS"], float)
    fbins = np.asarray(hdr["FREQUENCY_BINS"], float)
    for p, pol in enumerate(POLS):
        ax = fig.add_subplot(grid[1, 2 + p])
        spec = d["SPECTROGRAM"][p].astype(float)
        spec[spec <= 0] = np.nan
        im = ax.imshow(spec, origin="lower", aspect="auto", norm=LogNorm(),
                       extent=(0, float(hdr["T_MAX"] - hdr["T_MIN"]), fbins[0], fbins[-1]))
        ax.set(title=f"Spectrogram pol {pol} (summed power)", xlabel="time in segment (s)",
               ylabel="frequency (MHz)")
        fig.colorbar(im, ax=ax, fraction=0.046)

    for p, pol in enumerate(POLS):
        ax = fig.add_subplot(grid[2, 2 * p:2 * p + 2])
        ts = d["TIMESERIES"][p].astype(float)
        ts[:, 1][ts[:, 1] >= np.finfo(np.float32).max] = np.nan  # empty bins keep FLT_MAX
        for j, label in ((0, "max"), (2, "mean"), (1, "min")):
            ax.plot(tbins, ts[:, j], lw=0.8, label=label)
        ax.set(title=f"Timeseries pol {pol} (power over all channels)",
               xlabel="time in segment (s)",
               ylabel="power", yscale="log")
        ax.legend(fontsize=7)
    fig.savefig(out_path, dpi=DPI)
    plt.close(fig)
    return out_path


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


EXAMPLES = """
Example:

\b
  stat-plot stat/2023-02-14-22:15:37_0000000000000000_000000.h5 --output summary.png
  stat-plot stats.h5 --output summary.png --freq-mask 4910:4915
"""


@click.command(name="stat-plot", epilog=EXAMPLES)
@click.argument("h5_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG to write [default: next to the input, .png].")
@click.option("--freq-mask", help="FREQ_MASK used (S1:E1,...) to shade the masked channels.")
def main(h5_file: Path, output: Path | None, freq_mask: str | None) -> None:
    """Render a one-page PNG summary of an SKA PST STAT HDF5 file."""
    output = output or h5_file.with_suffix(".png")
    try:
        render(h5_file, output, freq_mask)
    except (OSError, KeyError, ValueError) as exc:
        raise click.ClickException(f"{h5_file}: {exc}") from None
    click.echo(str(output))
