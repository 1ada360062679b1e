"""StatComputer: SKA PST STAT statistics of a data + weights segment (no I/O).

Follows ``shared/reference/pst-stat.md`` sections 1-3 number for number:

* one weights record per packet; only its float32 scale is used: factor ``float32(1/scale)``,
  factor 1 for a scale of 0, and a packet whose factor is not finite (NaN scale) is skipped by
  every statistic and counted in ``num_invalid_packets``;
* ``x = float32(raw) * factor``, ``P = xI*xI + xQ*xQ`` in float32; histograms and clipping
  use the raw integers;
* ``FREQ_MASK`` selects the channels left out of the ``*_RFI_EXCISED`` outputs;
* ``NCHAN_DS``/``NDAT_DS`` follow :func:`calc_bins`; variances are sample variances (ddof=1).

The headers of a transfer are parsed once into :class:`StatInputs`.  A :class:`StatComputer`
is built from them for a segment of a known number of heaps (the time bins depend on it) and
fed in pieces with :meth:`StatComputer.add`, so a long file is processed in constant memory;
:meth:`StatComputer.result` returns a :class:`StatResult`.  :func:`compute_segment` does all
three for one :class:`ringbuf.Segment`.  Counters are 64-bit.  The numba kernels are imported
on first use, so reading results, masks or this module's types does not load numba.
"""

from __future__ import annotations

import ctypes
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ringbuf import DadaHeader, HeaderError, Segment
from services.common.errors import ServiceError
from services.formats.pst import PstLayout, first_token
from services.stat import ckernels
from services.stat.config import StatConfig

logger = logging.getLogger(__name__)

FLT_MAX = np.float32(np.finfo(np.float32).max)
MAX_REQ_TIME_BINS = 32768
MAX_REQ_FREQ_BINS = 2048
DEFAULT_REQ_BINS = 1024
UNKNOWN = "unknown"
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stat-pol-b")


class SegmentError(ServiceError, ValueError):
    """A segment cannot be processed (no whole heap, or data and weights heap counts differ)."""


def calc_bins(n: int, req: int) -> int:
    """SKA PST ``StatProcessor::calc_bins``: the number of bins actually used for ``req``."""
    if n % req == 0:
        return req
    for f in range(max(n // req, 1), 1, -1):
        if n % f == 0:
            return n // f
    return n


def requested_bins(value: int, maximum: int) -> int:
    """A requested bin count, with 0 or anything above ``maximum`` replaced by 1024."""
    return DEFAULT_REQ_BINS if value <= 0 or value > maximum else value


def parse_freq_mask(text: str, source: str = "header") -> list[tuple[float, float]]:
    """``S1:E1,S2:E2`` (MHz) -> [(S1, E1), ...]; raises HeaderError naming FREQ_MASK."""
    ranges = []
    for part in text.split(","):
        if not part:
            continue
        try:
            start, end = part.split(":")
            ranges.append((float(start), float(end)))
        except ValueError:
            raise HeaderError(f"{source}: FREQ_MASK {text!r}: {part!r} is not START:END") from None
    return ranges


def rfi_mask(freq: float, bw: float, nchan: int, ranges: list[tuple[float, float]]) -> np.ndarray:
    """True for channels masked by ``ranges`` (start in [S,E) or end in (S,E]; the reference's
    rule, so a channel that strictly contains a whole range is not masked)."""
    mask = np.zeros(nchan, bool)
    width = bw / nchan
    start = (freq - bw / 2) + np.arange(nchan) * width
    end = start + width
    for lo, hi in ranges:
        mask |= ((start >= lo) & (start < hi)) | ((end > lo) & (end <= hi))
    return mask


@dataclass(frozen=True)
class StatResult:
    """Every output of SKA PST STAT for one segment (names as the HDF5 datasets, lower case).

    Float datasets are float32; count datasets are int64 (the HDF5 writer stores them as
    uint32 when they fit).  Shapes are those of ``pst-stat.md`` section 2.
    """

    # HEADER scalars
    eb_id: str
    telescope: str
    scan_id: int
    beam_id: str
    utc_start: str
    t_min: float
    t_max: float
    freq: float
    bw: float
    start_chan: int
    npol: int
    ndim: int
    nchan: int
    nbin_hist: int
    nchan_ds: int
    ndat_ds: int
    nrebin: int
    chan_freq: np.ndarray
    frequency_bins: np.ndarray
    timeseries_bins: np.ndarray
    num_samples: int
    num_samples_rfi_excised: int
    num_samples_spectrum: np.ndarray
    num_invalid_packets: int
    # datasets
    mean_frequency_avg: np.ndarray
    mean_frequency_avg_rfi_excised: np.ndarray
    variance_frequency_avg: np.ndarray
    variance_frequency_avg_rfi_excised: np.ndarray
    mean_spectrum: np.ndarray
    variance_spectrum: np.ndarray
    mean_spectral_power: np.ndarray
    max_spectral_power: np.ndarray
    histogram_1d_freq_avg: np.ndarray
    histogram_1d_freq_avg_rfi_excised: np.ndarray
    histogram_rebinned_2d_freq_avg: np.ndarray
    histogram_rebinned_2d_freq_avg_rfi_excised: np.ndarray
    histogram_rebinned_1d_freq_avg: np.ndarray
    histogram_rebinned_1d_freq_avg_rfi_excised: np.ndarray
    num_clipped_samples_spectrum: np.ndarray
    num_clipped_samples: np.ndarray
    num_clipped_samples_rfi_excised: np.ndarray
    spectrogram: np.ndarray
    timeseries: np.ndarray
    timeseries_rfi_excised: np.ndarray
    # not written to HDF5: which channels FREQ_MASK excised, and where the segment starts
    rfi_mask: np.ndarray
    obs_offset: int
    nheap: int


def _header_text(header: DadaHeader, key: str) -> str:
    return first_token(header, key) if key in header else UNKNOWN


def _nonzero(header: DadaHeader, key: str) -> float:
    value = header.get_float(key)
    if value == 0 or not math.isfinite(value):
        raise HeaderError(f"{header.source}: {key} {header[key]!r} must be a non-zero number")
    return value


@dataclass(frozen=True, eq=False)
class StatInputs:
    """What the statistics need from a transfer's data and weights headers, parsed once.

    Built with :meth:`from_headers`, which validates the layout keys, RESOLUTION, NBIT 8/16,
    TSAMP, BYTES_PER_SECOND, FREQ, BW, START_CHANNEL, PICOSECONDS and FREQ_MASK; errors are
    :class:`HeaderError` naming the header's source and the key.
    """

    layout: PstLayout
    tsamp: float
    bytes_per_second: float
    freq: float
    bw: float
    start_chan: int
    picoseconds: int
    mask: np.ndarray  # True for the channels FREQ_MASK excises
    eb_id: str
    telescope: str
    scan_id: int
    beam_id: str
    utc_start: str
    data_source: str
    weights_source: str

    @classmethod
    def from_headers(cls, data_header: DadaHeader, weights_header: DadaHeader) -> StatInputs:
        layout = PstLayout.from_headers(data_header, weights_header)
        freq = data_header.get_float("FREQ")
        bw = data_header.get_float("BW")
        mask_text = first_token(data_header, "FREQ_MASK") if "FREQ_MASK" in data_header else ""
        ranges = parse_freq_mask(mask_text, data_header.source)
        nmask = data_header.get_int("NMASK", 0)
        if mask_text and nmask != len(ranges):
            logger.error("%s: NMASK %d does not match the %d FREQ_MASK ranges",
                         data_header.source, nmask, len(ranges))
        return cls(
            layout=layout,
            tsamp=_nonzero(data_header, "TSAMP"),
            bytes_per_second=_nonzero(data_header, "BYTES_PER_SECOND"),
            freq=freq,
            bw=bw,
            start_chan=data_header.get_int("START_CHANNEL"),
            picoseconds=data_header.get_int("PICOSECONDS"),
            mask=rfi_mask(freq, bw, layout.nchan, ranges),
            eb_id=_header_text(data_header, "EB_ID"),
            telescope=_header_text(data_header, "TELESCOPE"),
            scan_id=data_header.get_int("SCAN_ID", 0),
            beam_id=_header_text(data_header, "BEAM_ID"),
            utc_start=_header_text(data_header, "UTC_START"),
            data_source=data_header.source,
            weights_source=weights_header.source,
        )


class StatComputer:
    """Accumulates the statistics of one segment of ``nheap`` heaps, fed in any number of pieces."""

    def __init__(self, inputs: StatInputs, nheap: int, config: StatConfig) -> None:
        if nheap < 1:
            raise SegmentError(
                f"{inputs.data_source}: a segment needs at least one heap, got {nheap}")
        self.inputs = inputs
        self.layout = lay = inputs.layout
        self.config = config
        self.nheap = nheap
        self.mask = inputs.mask
        self.any_mask = bool(self.mask.any())

        ntime = nheap * lay.udp_nsamp
        self.ndat_ds = calc_bins(ntime, requested_bins(config.req_time_bins, MAX_REQ_TIME_BINS))
        self.nchan_ds = calc_bins(lay.nchan,
                                  requested_bins(config.req_freq_bins, MAX_REQ_FREQ_BINS))
        self.nrebin = config.nrebin
        self.ntime = ntime
        self.heaps_done = 0
        self._allocate()

    def _allocate(self) -> None:
        lay, npol, ndim = self.layout, 2, 2
        nbins = 1 << lay.nbit
        nchan, nrebin = lay.nchan, self.nrebin
        self.nsamp_chan = np.zeros(nchan, np.int64)
        self.wmean = np.zeros((npol, nchan, ndim), np.float32)  # Welford state: pol, chan, dim
        self.wm2 = np.zeros((npol, nchan, ndim), np.float32)
        self.psum = np.zeros((npol, nchan), np.float32)
        self.pmax = np.zeros((npol, nchan), np.float32)
        self.clipped = np.zeros((npol, ndim, nchan), np.int64)
        # the 1-D histograms hold only the codes outside the rebinned histogram's exact bins
        # (see _histograms); masked-channel histograms (excised = full - masked) are tiny when
        # nothing is masked
        self.hist = np.zeros((npol, ndim, nbins), np.int64)
        self.rhist2 = np.zeros((npol, nrebin, nrebin), np.int64)
        mbins, mrebin = (nbins, nrebin) if self.any_mask else (1, 1)
        self.hist_m = np.zeros((npol, ndim, mbins), np.int64)
        self.rhist2_m = np.zeros((npol, mrebin, mrebin), np.int64)
        # 8-bit, C kernels: counts of each raw (I, Q) byte pair, folded into the histograms
        # by result(); index I byte + 256 * Q byte
        self.joint = np.zeros((npol, 1 << 16), np.int64) if lay.nbit == 8 else None
        self.joint_m = (np.zeros((npol, 1 << 16), np.int64) if lay.nbit == 8 and self.any_mask
                        else self.joint)
        self.spec = np.zeros((npol, self.nchan_ds, self.ndat_ds), np.float32)
        self.ts = _timeseries_state(npol, self.ndat_ds)
        self.tsx = _timeseries_state(npol, self.ndat_ds if self.any_mask else 1)
        self.invalid_packets = 0

    # ------------------------------------------------------------------ accumulation
    def add(self, data: np.ndarray, weights: np.ndarray) -> int:
        """Add the whole heaps in ``data``/``weights`` (uint8, PST layout); returns heaps added.

        Raises SegmentError if the spans hold different numbers of whole heaps or would take the
        segment beyond the ``nheap`` it was built for.
        """
        lay = self.layout
        ndata, nweights = lay.heaps_in(data.nbytes, weights.nbytes)
        if ndata != nweights:
            raise SegmentError(
                f"{self.inputs.data_source}: data holds {ndata} whole heaps but "
                f"{self.inputs.weights_source} holds {nweights}"
            )
        if self.heaps_done + ndata > self.nheap:
            raise SegmentError(
                f"{self.inputs.data_source}: {self.heaps_done + ndata} heaps exceed the "
                f"segment's {self.nheap}"
            )
        if ndata == 0:
            return 0
        raw = lay.data_view(np.asarray(data), ndata)
        scales = np.ascontiguousarray(lay.scales_view(np.asarray(weights), ndata))
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            factors = np.where(scales == 0, np.float32(1), np.float32(1) / scales)
        factors = factors.astype(np.float32)
        valid = np.isfinite(factors)
        self.invalid_packets += int(valid.size - np.count_nonzero(valid))
        spt = self.ntime // self.ndat_ds
        cpf = lay.nchan // self.nchan_ds
        lib = ckernels.load()
        if lib is not None:
            self._add_c(lib, raw, factors, valid, spt, cpf)
        else:
            self._add_numba(raw, factors, valid, spt, cpf)
        valid_per_packet = valid.sum(axis=0) * lay.udp_nsamp
        self.nsamp_chan += np.repeat(valid_per_packet, lay.udp_nchan)
        self.heaps_done += ndata
        return ndata

    def _add_c(self, lib: ctypes.CDLL, raw: np.ndarray, factors: np.ndarray,
               valid: np.ndarray, spt: int, cpf: int) -> None:
        """Both pols through the C kernel, pol 1 on the pool's thread (ctypes drops the GIL)."""
        raw = np.ascontiguousarray(raw)
        valid8 = valid.view(np.uint8)
        mask8 = self.mask.view(np.uint8)
        nheap, npkt, _npol, unchan, unsamp, _ = raw.shape
        half = 1 << (self.layout.nbit - 1)
        wmean, wm2 = self.wmean.reshape(2, -1), self.wm2.reshape(2, -1)
        keep = (raw, factors, valid8, mask8)

        states: list[np.ndarray] = [
            wmean, wm2, self.psum, self.pmax, self.clipped[:, 0], self.clipped[:, 1],
            self.hist[:, 0], self.hist[:, 1], self.hist_m[:, 0], self.hist_m[:, 1],
            self.rhist2, self.rhist2_m, self.spec, *self.ts, *self.tsx]
        joint, joint_m = self.joint, self.joint_m

        def pol_args(pol: int) -> ckernels.AccArgs:
            return ckernels.AccArgs(
                raw.ctypes.data, factors.ctypes.data, valid8.ctypes.data, mask8.ctypes.data,
                self.nsamp_chan.ctypes.data, nheap, npkt, unchan, unsamp, pol, self.heaps_done,
                spt, cpf, int(self.any_mask), half, -half, half - 1, self.nrebin, self.ndat_ds,
                *(_address(arr[pol]) for arr in states),
                *((0, 0) if joint is None or joint_m is None else
                  (_address(joint[pol]), _address(joint_m[pol]))))

        args = [pol_args(0), pol_args(1)]
        other = _POOL.submit(lib.stat_accumulate, ctypes.byref(args[1]), self.layout.nbit)
        status = lib.stat_accumulate(ctypes.byref(args[0]), self.layout.nbit)
        if other.result() != 0 or status != 0:
            raise MemoryError("statistics kernel: out of memory")
        del keep

    def _add_numba(self, raw: np.ndarray, factors: np.ndarray, valid: np.ndarray, spt: int,
                   cpf: int) -> None:
        """Both pols through the numba kernel (when no C compiler is available)."""
        from services.stat import kernels

        half = 1 << (self.layout.nbit - 1)
        args = (self.heaps_done, spt, cpf, self.mask, self.any_mask, half, -half, half - 1,
                self.nrebin, self.nsamp_chan, self.wmean.reshape(2, -1),
                self.wm2.reshape(2, -1), self.psum, self.pmax, self.clipped, self.hist,
                self.rhist2, self.hist_m, self.rhist2_m, self.spec, *self.ts, *self.tsx)
        # the two polarisations are independent: one thread each (the kernel releases the GIL)
        other = _POOL.submit(kernels.accumulate, raw, factors, valid, 1, *args)
        kernels.accumulate(raw, factors, valid, 0, *args)
        other.result()

    # ------------------------------------------------------------------ results
    def result(self, obs_offset: int) -> StatResult:
        """The statistics of the heaps added so far (``obs_offset``: data byte offset of heap 0)."""
        lay, inp = self.layout, self.inputs
        mask, nsc = self.mask, self.nsamp_chan
        unmasked = ~mask
        everything = np.ones(lay.nchan, bool)
        wmean = np.ascontiguousarray(self.wmean.transpose(0, 2, 1))  # -> (pol, dim, chan)
        wm2 = np.ascontiguousarray(self.wm2.transpose(0, 2, 1))
        mean_fa, var_fa = _combine_channels(nsc, wmean, wm2, everything)
        if self.any_mask:
            mean_x, var_x = _combine_channels(nsc, wmean, wm2, unmasked)
            ts_x = _timeseries_out(*self.tsx)
        else:
            mean_x, var_x, ts_x = mean_fa.copy(), var_fa.copy(), None
        var_spec, power = _finish_channels(nsc, wm2, self.psum)
        self._fold_joint()
        rhist1, hist1 = self._histograms(self.rhist2, self.hist)
        rhist1_m, hist1_m = self._histograms(self.rhist2_m, self.hist_m)
        ts = _timeseries_out(*self.ts)

        # header arrays (double, in the reference's order of operations)
        width = inp.bw / lay.nchan
        chan_freq = ((inp.freq - inp.bw / 2) + width / 2) + np.arange(lay.nchan) * width
        fbf = lay.nchan // self.nchan_ds
        freq_bins = np.cumsum((chan_freq / fbf).reshape(self.nchan_ds, fbf), axis=1)[:, -1]
        total_time = inp.tsamp * (1 / 1e6) * self.ntime
        ts_bins = (total_time / self.ndat_ds) * (2 * np.arange(self.ndat_ds) + 1) / 2.0
        t_min = inp.picoseconds * 1e12 / 1e18 + obs_offset / inp.bytes_per_second

        def excised(full: np.ndarray, masked: np.ndarray) -> np.ndarray:
            return full - masked if self.any_mask else full.copy()

        clipped = self.clipped
        return StatResult(
            eb_id=inp.eb_id,
            telescope=inp.telescope,
            scan_id=inp.scan_id,
            beam_id=inp.beam_id,
            utc_start=inp.utc_start,
            t_min=t_min,
            t_max=t_min + total_time,
            freq=inp.freq,
            bw=inp.bw,
            start_chan=inp.start_chan,
            npol=2,
            ndim=2,
            nchan=lay.nchan,
            nbin_hist=1 << lay.nbit,
            nchan_ds=self.nchan_ds,
            ndat_ds=self.ndat_ds,
            nrebin=self.nrebin,
            chan_freq=chan_freq,
            frequency_bins=freq_bins,
            timeseries_bins=ts_bins,
            num_samples=int(nsc.sum()),
            num_samples_rfi_excised=int(nsc[unmasked].sum()),
            num_samples_spectrum=nsc.copy(),
            num_invalid_packets=self.invalid_packets,
            mean_frequency_avg=mean_fa,
            mean_frequency_avg_rfi_excised=mean_x,
            variance_frequency_avg=var_fa,
            variance_frequency_avg_rfi_excised=var_x,
            mean_spectrum=wmean,
            variance_spectrum=var_spec,
            mean_spectral_power=power,
            max_spectral_power=self.pmax.copy(),
            histogram_1d_freq_avg=hist1,
            histogram_1d_freq_avg_rfi_excised=excised(hist1, hist1_m),
            histogram_rebinned_2d_freq_avg=self.rhist2.copy(),
            histogram_rebinned_2d_freq_avg_rfi_excised=excised(self.rhist2, self.rhist2_m),
            histogram_rebinned_1d_freq_avg=rhist1,
            histogram_rebinned_1d_freq_avg_rfi_excised=excised(rhist1, rhist1_m),
            num_clipped_samples_spectrum=clipped.copy(),
            num_clipped_samples=clipped.sum(axis=2),
            num_clipped_samples_rfi_excised=clipped[:, :, unmasked].sum(axis=2),
            spectrogram=self.spec.copy(),
            timeseries=ts,
            timeseries_rfi_excised=ts.copy() if ts_x is None else ts_x,
            rfi_mask=mask.copy(),
            obs_offset=obs_offset,
            nheap=self.heaps_done,
        )


    def _fold_joint(self) -> None:
        """Move the 8-bit (I, Q) pair counts into the rebinned and partial 1-D histograms."""
        if self.joint is None or (self.any_mask and self.joint_m is None):
            return
        codes = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)  # byte -> code
        nrebin = self.nrebin
        rebin = np.clip(codes + 128, 0, nrebin - 1)
        outside = (codes + 128 < 1) | (codes + 128 >= nrebin - 1)
        pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
            (self.joint, self.rhist2, self.hist)]
        if self.any_mask and self.joint_m is not None:
            pairs.append((self.joint_m, self.rhist2_m, self.hist_m))
        for joint, rhist2, hist in pairs:
            counts = joint.reshape(2, 256, 256)  # (pol, Q byte, I byte)
            index = rebin[None, :] * nrebin + rebin[:, None]  # (Q byte, I byte) -> bI, bQ
            for pol in range(2):
                rhist2[pol] += np.bincount(index.ravel(), counts[pol].ravel(),
                                           nrebin * nrebin).astype(np.int64).reshape(
                                               nrebin, nrebin)
                ci, cq = counts[pol].sum(axis=0), counts[pol].sum(axis=1)
                hist[pol, 0, codes[outside] + 128] += ci[outside]
                hist[pol, 1, codes[outside] + 128] += cq[outside]
            joint[:] = 0

    def _histograms(self, rhist2: np.ndarray, hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rebinned 1-D, 1-D) histograms from the accumulated 2-D and partial 1-D ones.

        Rebinned bin ``b`` holds exactly code ``b - 128`` for ``1 <= b <= nrebin - 2`` (its
        first and last bins also hold the clamped codes); the kernels count in ``hist`` only
        the codes outside those bins, so the 1-D histogram is ``hist`` plus those marginals.
        """
        rhist1 = np.stack([rhist2.sum(axis=2), rhist2.sum(axis=1)], axis=1)  # (pol, dim, rebin)
        full = hist.copy()
        half = 1 << (self.layout.nbit - 1)
        lo, hi = 1, min(rhist2.shape[1] - 2, half - 1 + 128)  # exact bins holding real codes
        if hi >= lo:
            full[:, :, lo - 128 + half:hi - 128 + half + 1] += rhist1[:, :, lo:hi + 1]
        return rhist1, full


def _address(arr: np.ndarray) -> int:
    """Address of a C-contiguous array (or row of one) for the C kernel."""
    if not arr.flags.c_contiguous:
        raise ValueError("statistics state must be C-contiguous")
    return int(arr.ctypes.data)


def _combine_channels(nsc: np.ndarray, wmean: np.ndarray, wm2: np.ndarray,
                      include: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (mean, variance) per (pol, dim): the C kernel, or numba's without a compiler."""
    lib = ckernels.load()
    if lib is None:
        from services.stat import kernels

        return kernels.combine_channels(nsc, wmean, wm2, include)
    npol, ndim, nchan = wmean.shape
    mean = np.zeros((npol, ndim), np.float32)
    var = np.zeros((npol, ndim), np.float32)
    inc = np.ascontiguousarray(include, dtype=np.uint8)
    nsc = np.ascontiguousarray(nsc, dtype=np.int64)
    lib.stat_combine(nsc.ctypes.data, wmean.ctypes.data, wm2.ctypes.data, inc.ctypes.data,
                     npol, ndim, nchan, mean.ctypes.data, var.ctypes.data)
    return mean, var


def _finish_channels(nsc: np.ndarray, wm2: np.ndarray,
                     psum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (variance, mean spectral power): float32 M2/(n-1) and sum/n, 0 where n == 0."""
    have = nsc > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(have, wm2 / (nsc - 1).astype(np.float32), np.float32(0))
        power = np.where(have, psum / nsc.astype(np.float32), np.float32(0))
    return var.astype(np.float32, copy=False), power.astype(np.float32, copy=False)


def _timeseries_state(npol: int, nbins: int) -> tuple[np.ndarray, ...]:
    return (np.zeros((npol, nbins), np.float32), np.full((npol, nbins), FLT_MAX, np.float32),
            np.zeros((npol, nbins), np.float32), np.zeros((npol, nbins), np.int64))


def _timeseries_out(tmax: np.ndarray, tmin: np.ndarray, tmean: np.ndarray,
                    _cnt: np.ndarray) -> np.ndarray:
    return np.stack([tmax, tmin, tmean], axis=-1).astype(np.float32)


def segment_heaps(inputs: StatInputs, segment: Segment) -> int:
    """The whole heaps of ``segment`` (trailing partial heaps ignored); SegmentError if the data
    and weights hold different numbers of whole heaps or none."""
    ndata, nweights = inputs.layout.heaps_in(segment.data.nbytes, segment.weights.nbytes)
    if ndata != nweights or ndata == 0:
        raise SegmentError(
            f"{inputs.data_source}: segment has {ndata} whole data heaps and "
            f"{nweights} whole weights heaps (need the same number, at least 1)"
        )
    return ndata


def compute_segment(segment: Segment, config: StatConfig,
                    inputs: StatInputs | None = None) -> StatResult:
    """The statistics of one segment: all its whole heaps (trailing partial heaps ignored).

    ``inputs`` defaults to the segment's headers, parsed now.  Raises SegmentError if the data
    and weights hold different numbers of whole heaps or none.
    """
    if inputs is None:
        inputs = StatInputs.from_headers(segment.data_header, segment.weights_header)
    computer = StatComputer(inputs, segment_heaps(inputs, segment), config)
    computer.add(segment.data, segment.weights)
    return computer.result(segment.obs_offset)


def warm_up() -> None:
    """Load (or compile) the kernels for 8- and 16-bit data on a one-channel heap.

    A daemon calls this at start so its first segment is not delayed by numba.
    """
    for nbit in (8, 16):
        layout = PstLayout(nchan=1, nbit=nbit, udp_nsamp=1, udp_nchan=1, wt_nsamp=1,
                           weights_nbit=16, packet_scales_size=4, packet_weights_size=2)
        inputs = StatInputs(layout=layout, tsamp=1.0, bytes_per_second=1.0, freq=1.0, bw=1.0,
                            start_chan=0, picoseconds=0, mask=np.zeros(1, bool), eb_id=UNKNOWN,
                            telescope=UNKNOWN, scan_id=0, beam_id=UNKNOWN, utc_start=UNKNOWN,
                            data_source="warm-up", weights_source="warm-up")
        computer = StatComputer(inputs, 1, StatConfig())
        computer.add(np.zeros(layout.data_heap_stride, np.uint8),
                     np.zeros(layout.weights_heap_stride, np.uint8))
        computer.result(0)
