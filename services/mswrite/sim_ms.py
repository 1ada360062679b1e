"""``sim-ms OUT.ms``: write a realistic MeasurementSet of point sources to send with emu-send.

The array is SKA-Low-like: stations of 38 m at the SKA-Low site (Inyarrimanha Ilgari
Bundara, Western Australia), half in a core and half spread over a disc, with real ITRF
positions (WGS84). Or any layout from an antenna file. UVW (J2000) is computed with
casacore.measures and the visibilities are predicted in CASA's convention
(:mod:`services.mswrite.uvw`, :mod:`services.mswrite.sky`). The MS is written through the
same writer svc-mswrite uses (:class:`services.mswrite.writer.VisWriter`), fed with dumps
shaped as ring blocks, so every subtable is filled the same way.
"""

from __future__ import annotations

import calendar
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from ringbuf import setup_logging
from services.common.errors import USER_ERRORS
from services.formats.stations import DEFAULT_DISH_DIAMETER_M
from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.sky import PointSource, predict
from services.mswrite.stream import FD_FULL, WEIGHTS_DTYPE, VisStream
from services.mswrite.uvw import MeasuresUvw
from services.mswrite.writer import VisWriter

logger = logging.getLogger(__name__)

#: SKA-Low array centre (WGS84 degrees, metres)
SITE_LON_DEG, SITE_LAT_DEG, SITE_HEIGHT_M = 116.7644482, -26.82472208, 377.8
WGS84_A, WGS84_F = 6378137.0, 1 / 298.257223563
DEFAULT_SOURCES = ("1.0,0,0", "0.5,30,15")
#: dumps simulated and written per step (bounds memory for long simulations)
DUMPS_PER_STEP = 8


def geodetic_to_itrf(lon_deg: float, lat_deg: float, height_m: float) -> np.ndarray:
    """ITRF (ECEF) position of a WGS84 point."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    e2 = WGS84_F * (2 - WGS84_F)
    n = WGS84_A / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    return np.array([(n + height_m) * np.cos(lat) * np.cos(lon),
                     (n + height_m) * np.cos(lat) * np.sin(lon),
                     (n * (1 - e2) + height_m) * np.sin(lat)])


def enu_to_itrf(enu: np.ndarray, lon_deg: float, lat_deg: float, height_m: float) -> np.ndarray:
    """ITRF positions of local east/north/up offsets (m, shape ``(n, 3)``) from a site."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    rot = np.array([[-np.sin(lon), -np.sin(lat) * np.cos(lon), np.cos(lat) * np.cos(lon)],
                    [np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat) * np.sin(lon)],
                    [0.0, np.cos(lat), np.sin(lat)]])
    return geodetic_to_itrf(lon_deg, lat_deg, height_m) + enu @ rot.T


def random_layout(nant: int, radius_m: float, seed: int, min_sep_m: float = 45.0) -> Antennas:
    """SKA-Low-like stations: half within radius/8 (the core), half over the disc."""
    rng = np.random.default_rng(seed)
    enu: list[np.ndarray] = []
    attempts = 0
    while len(enu) < nant:
        attempts += 1
        if attempts > 1000 * nant:
            raise MsWriteError(f"cannot place {nant} stations {min_sep_m} m apart within "
                               f"{radius_m} m; use a larger --radius-km")
        r_max = radius_m / 8 if len(enu) < nant // 2 else radius_m
        r, phi = r_max * np.sqrt(rng.random()), 2 * np.pi * rng.random()
        point = np.array([r * np.cos(phi), r * np.sin(phi), rng.normal(0, 1.0)])
        if all(np.hypot(*(point[:2] - p[:2])) >= min_sep_m for p in enu):
            enu.append(point)
    positions = enu_to_itrf(np.array(enu), SITE_LON_DEG, SITE_LAT_DEG, SITE_HEIGHT_M)
    names = tuple(f"S{i:03d}" for i in range(nant))
    return Antennas(names, positions, np.full(nant, DEFAULT_DISH_DIAMETER_M), "SKA-Low")


def local_sidereal_deg(antennas: Antennas, time_mjd_s: float) -> float:
    """Local apparent sidereal time (degrees) at the array centre."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    me = measures()
    centre = antennas.positions.mean(axis=0)
    me.do_frame(me.position("ITRF", *(quantity(float(c), "m") for c in centre)))
    last = me.measure(me.epoch("UTC", quantity(time_mjd_s, "s")), "LAST")
    return float(last["m0"]["value"] % 1.0) * 360.0


@dataclass
class Simulation:
    """What to simulate; :meth:`write` produces the MS."""

    antennas: Antennas
    nchan: int = 16
    ntime: int = 10
    int_time: float = 1.0
    freq0_hz: float = 150e6
    chan_width_hz: float = 100e3
    start_unix: float = calendar.timegm((2024, 6, 1, 12, 0, 0))
    phase_centre: PhaseCentre | None = None
    sources: list[PointSource] = field(default_factory=lambda: [PointSource.parse(s)
                                                                for s in DEFAULT_SOURCES])
    scan_id: int = 1
    noise_jy: float = 0.0
    drop_fraction: float = 0.0
    channels_per_heap: int = 4
    seed: int = 1

    def stream(self) -> VisStream:
        """The stream description (what svc-ingest would put in the ring headers)."""
        centre = self.resolved_phase_centre()
        return VisStream(
            scan_id=self.scan_id,
            utc_start=time.strftime("%Y-%m-%d-%H:%M:%S", time.gmtime(int(self.start_unix))),
            time0_unix=self.start_unix + self.int_time / 2, int_time=self.int_time,
            nant=len(self.antennas), nchan=self.nchan, start_channel=0, freq0_hz=self.freq0_hz,
            chan_width_hz=self.chan_width_hz, telescope=self.antennas.telescope or "SKA-Low",
            source=centre.name,
            phase_centre_deg=(float(np.degrees(centre.ra_rad)),
                              float(np.degrees(centre.dec_rad))))

    def resolved_phase_centre(self) -> PhaseCentre:
        """The phase centre, defaulting to the zenith at the middle of the observation."""
        if self.phase_centre is None:
            mid = self.start_unix + self.ntime * self.int_time / 2 + 40587 * 86400.0
            ra = local_sidereal_deg(self.antennas, mid)
            self.phase_centre = PhaseCentre.from_degrees(ra, SITE_LAT_DEG, "zenith")
        return self.phase_centre

    def write(self, out: Path) -> Path:
        """Simulate and write the MS at ``out`` (via ``out.partial``); return ``out``."""
        stream = self.stream()
        centre = self.resolved_phase_centre()
        data_header, weights_header = stream.headers()
        uvw = MeasuresUvw(self.antennas, centre, *stream.baselines())
        rng = np.random.default_rng(self.seed)
        nblocks = -(-self.nchan // self.channels_per_heap)
        config = "\n".join(f"{k} {v}" for k, v in vars(self).items() if k != "antennas")
        writer = VisWriter.open(out, data_header, weights_header, antennas=self.antennas,
                                phase_centre=centre, expected_dumps=self.ntime,
                                config_text=config, application="ringpipe sim-ms")
        with writer:
            for first in range(0, self.ntime, DUMPS_PER_STEP):
                dumps = np.arange(first, min(first + DUMPS_PER_STEP, self.ntime))
                vis = predict(uvw.uvw(dumps, stream.dump_times_mjd(dumps)),
                              stream.chan_freqs(), self.sources)
                if self.noise_jy > 0:
                    shape = vis.shape
                    vis += (rng.normal(0, self.noise_jy, shape)
                            + 1j * rng.normal(0, self.noise_jy, shape)).astype(np.complex64)
                weights = np.zeros(vis.shape[:3], WEIGHTS_DTYPE)
                weights["FD"] = FD_FULL
                if self.drop_fraction > 0:
                    lost = rng.random((len(dumps), nblocks)) < self.drop_fraction
                    lost = np.repeat(lost, self.channels_per_heap, axis=1)[:, :self.nchan]
                    weights["FD"][lost] = 0
                    vis[lost] = 0
                writer.write_dumps(vis, weights, int(dumps[0]))
        return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--nant", default=32, show_default=True, help="Stations (random SKA-Low-like "
              "layout) unless --layout is given.")
@click.option("--layout", type=click.Path(exists=True, path_type=Path),
              help="Antenna file (NAME X Y Z [DIAMETER], ITRF m) or an MS to take antennas from.")
@click.option("--radius-km", default=2.0, show_default=True, help="Radius of the random layout.")
@click.option("--nchan", default=16, show_default=True, help="Channels.")
@click.option("--ntime", default=10, show_default=True, help="Dumps (timestamps).")
@click.option("--int-time", default=1.0, show_default=True, help="Dump period, seconds.")
@click.option("--freq-mhz", default=150.0, show_default=True, help="Centre of channel 0, MHz.")
@click.option("--chan-width-khz", default=100.0, show_default=True, help="Channel spacing, kHz.")
@click.option("--start", default="2024-06-01T12:00:00", show_default=True,
              help="UTC start of the first dump (YYYY-MM-DDTHH:MM:SS).")
@click.option("--ra", "ra_deg", type=float, help="Phase centre RA, degrees J2000 "
              "[default: zenith at mid-observation].")
@click.option("--dec", "dec_deg", type=float, help="Phase centre Dec, degrees J2000 "
              "[default: the site latitude].")
@click.option("--source", "sources", multiple=True, metavar="FLUX,L_ARCMIN,M_ARCMIN",
              help="Point source: flux (Jy) and offset east/north (arcmin); repeatable. "
                   f"[default: {' '.join(DEFAULT_SOURCES)}]")
@click.option("--noise-jy", default=0.0, show_default=True, help="Gaussian noise per "
              "visibility (real and imaginary), Jy.")
@click.option("--drop-fraction", default=0.0, show_default=True, help="Fraction of heaps "
              "(dump x --channels-per-heap channels) to mark lost (FD 0, flagged).")
@click.option("--channels-per-heap", default=4, show_default=True, help="Channels per heap.")
@click.option("--scan-id", default=1, show_default=True, help="SCAN_NUMBER.")
@click.option("--seed", default=1, show_default=True, help="Random seed (layout, noise, drops).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def main(out: Path, nant: int, layout: Path | None, radius_km: float, nchan: int, ntime: int,
         int_time: float, freq_mhz: float, chan_width_khz: float, start: str,
         ra_deg: float | None, dec_deg: float | None, sources: tuple[str, ...],
         noise_jy: float, drop_fraction: float, channels_per_heap: int, scan_id: int,
         seed: int, overwrite: bool) -> None:
    """Write a simulated MeasurementSet OUT of point sources (all subtables filled).

    \b
    Example:
      sim-ms sky.ms
      sim-ms sky.ms --nant 64 --nchan 64 --ntime 20 --source 1,0,0 --source 0.5,30,15
      sim-ms sky.ms --ra 60 --dec -30 --layout stations.txt --drop-fraction 0.25
    """
    setup_logging(logging.WARNING)
    try:
        start_unix = calendar.timegm(time.strptime(start, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        raise click.ClickException(f"--start {start!r}: expected YYYY-MM-DDTHH:MM:SS") from None
    if (ra_deg is None) != (dec_deg is None):
        raise click.ClickException("give both --ra and --dec, or neither")
    if min(nant, nchan, ntime, channels_per_heap) < 1 or int_time <= 0:
        raise click.ClickException("--nant, --nchan, --ntime, --channels-per-heap and "
                                   "--int-time must be positive")
    if not 0 <= drop_fraction <= 1:
        raise click.ClickException(f"--drop-fraction {drop_fraction}: must be within 0..1")
    try:
        antennas = Antennas.load(layout, "SKA-Low") if layout else \
            random_layout(nant, radius_km * 1e3, seed)
        sim = Simulation(
            antennas=antennas, nchan=nchan, ntime=ntime, int_time=int_time,
            freq0_hz=freq_mhz * 1e6, chan_width_hz=chan_width_khz * 1e3, start_unix=start_unix,
            phase_centre=None if ra_deg is None or dec_deg is None
            else PhaseCentre.from_degrees(ra_deg, dec_deg),
            sources=[PointSource.parse(s) for s in (sources or DEFAULT_SOURCES)],
            scan_id=scan_id, noise_jy=noise_jy, drop_fraction=drop_fraction,
            channels_per_heap=channels_per_heap, seed=seed)
        if overwrite and out.exists():
            shutil.rmtree(out)
        sim.write(out)
    except USER_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    stream = sim.stream()
    centre = sim.resolved_phase_centre()
    ra, dec = np.degrees(centre.ra_rad), np.degrees(centre.dec_rad)
    click.echo(f"wrote {out}: {len(antennas)} antennas, {stream.nbaseline} baselines, "
               f"{nchan} channels, {ntime} dumps, phase centre RA {ra:.4f} Dec {dec:.4f} deg")
