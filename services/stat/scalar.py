"""Scalar statistics as SKA PST's ScalarStatPublisher exposes them to LMC/TANGO.

24 values named ``{real,imag}_pol_{a,b}_{mean_freq_avg,variance_freq_avg,num_clipped_samples}``,
each also with a ``_masked`` suffix for the RFI-excised value (ska-pst-lmc ``stat_model.py``).
The daemon sends this dict as msgpack; every value is a plain float or int.
"""

from __future__ import annotations

from services.stat import hdf5_schema as schema
from services.stat.compute import StatResult


def scalar_stats(result: StatResult) -> dict[str, float | int]:
    """The ScalarStatPublisher fields of one result (pol a = 0, b = 1; real = I, imag = Q)."""
    out: dict[str, float | int] = {}
    for k, dim in enumerate(schema.SCALAR_DIMS):
        for p, pol in enumerate(schema.SCALAR_POLS):
            for stat, dataset in schema.SCALAR_STATS:
                for suffix, source in (("", dataset), ("_masked", f"{dataset}_RFI_EXCISED")):
                    value = getattr(result, source.lower())[p, k]
                    is_count = stat == "num_clipped_samples"
                    name = f"{dim}_pol_{pol}_{stat}{suffix}"
                    out[name] = int(value) if is_count else float(value)
    return out
