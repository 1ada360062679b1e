"""Names, order and types of the SKA PST STAT HDF5 file (pst-stat.md section 5), in one place.

Readers written for SKA PST's files (``ska_pst_stat.Statistics``) read ours: the same
datasets in the same order, the same ``HEADER`` compound, ``FILE_FORMAT_VERSION`` "1.0.0".
"""

from __future__ import annotations

FILE_FORMAT_VERSION = "1.0.0"
FILE_FORMAT_VERSION_DATASET = "FILE_FORMAT_VERSION"
HEADER_DATASET = "HEADER"

# HEADER compound members in offset order: (name, kind); kinds are
# "str" (vlen ASCII string), "u8", "f8", "u4" (counts: u8 if a value does not fit in u4),
# "vlen_f8", "vlen_u4" (a vlen u8 sequence if a value does not fit in u4).
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("EB_ID", "str"),
    ("TELESCOPE", "str"),
    ("SCAN_ID", "u8"),
    ("BEAM_ID", "str"),
    ("UTC_START", "str"),
    ("T_MIN", "f8"),
    ("T_MAX", "f8"),
    ("FREQ", "f8"),
    ("BW", "f8"),
    ("START_CHAN", "u4"),
    ("NPOL", "u4"),
    ("NDIM", "u4"),
    ("NCHAN", "u4"),
    ("NBIN_HIST", "u4"),
    ("NCHAN_DS", "u4"),
    ("NDAT_DS", "u4"),
    ("NREBIN", "u4"),
    ("CHAN_FREQ", "vlen_f8"),
    ("FREQUENCY_BINS", "vlen_f8"),
    ("TIMESERIES_BINS", "vlen_f8"),
    ("NUM_SAMPLES", "u4"),
    ("NUM_SAMPLES_RFI_EXCISED", "u4"),
    ("NUM_SAMPLES_SPECTRUM", "vlen_u4"),
    ("NUM_INVALID_PACKETS", "u4"),
)
HEADER_ITEMSIZE = 184  # with every count in u4

# Datasets after FILE_FORMAT_VERSION and HEADER, in creation order: (name, kind)
# kind "f4" (float32) or "u4" (counts; u8 if a value does not fit in u4).
DATASETS: tuple[tuple[str, str], ...] = (
    ("MEAN_FREQUENCY_AVG", "f4"),
    ("MEAN_FREQUENCY_AVG_RFI_EXCISED", "f4"),
    ("VARIANCE_FREQUENCY_AVG", "f4"),
    ("VARIANCE_FREQUENCY_AVG_RFI_EXCISED", "f4"),
    ("MEAN_SPECTRUM", "f4"),
    ("VARIANCE_SPECTRUM", "f4"),
    ("MEAN_SPECTRAL_POWER", "f4"),
    ("MAX_SPECTRAL_POWER", "f4"),
    ("HISTOGRAM_1D_FREQ_AVG", "u4"),
    ("HISTOGRAM_1D_FREQ_AVG_RFI_EXCISED", "u4"),
    ("HISTOGRAM_REBINNED_2D_FREQ_AVG", "u4"),
    ("HISTOGRAM_REBINNED_2D_FREQ_AVG_RFI_EXCISED", "u4"),
    ("HISTOGRAM_REBINNED_1D_FREQ_AVG", "u4"),
    ("HISTOGRAM_REBINNED_1D_FREQ_AVG_RFI_EXCISED", "u4"),
    ("NUM_CLIPPED_SAMPLES_SPECTRUM", "u4"),
    ("NUM_CLIPPED_SAMPLES", "u4"),
    ("NUM_CLIPPED_SAMPLES_RFI_EXCISED", "u4"),
    ("SPECTROGRAM", "f4"),
    ("TIMESERIES", "f4"),
    ("TIMESERIES_RFI_EXCISED", "f4"),
)

# ScalarStatPublisher attribute names (SKA PST LMC): {dim}_pol_{pol}_{stat}[_masked]
SCALAR_DIMS = ("real", "imag")
SCALAR_POLS = ("a", "b")
SCALAR_STATS = (
    ("mean_freq_avg", "MEAN_FREQUENCY_AVG"),
    ("variance_freq_avg", "VARIANCE_FREQUENCY_AVG"),
    ("num_clipped_samples", "NUM_CLIPPED_SAMPLES"),
)
