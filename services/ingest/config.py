"""svc-ingest configuration: every key, its default and its checks (see docs/ingest.md)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.config import (
    DaemonConfig,
    RingPairConfig,
    non_negative,
    positive,
    setting,
)
from services.formats.cbf_sdp import ByteOrder


class Profile(str, enum.Enum):
    VIS = "vis"
    BEAM = "beam"


class FdPolicy(str, enum.Enum):
    """How FD (fraction of data, the ICD's per-visibility validity) is read.

    ``icd``: as the ICD means it (FD 0 = no data). ``ignore``: senders do not populate FD, so
    every visibility of a heap that arrived is valid (FD written as 255). ``auto``: a heap whose
    FD is all zero while its visibilities are not is taken as from such a sender (FD 255,
    counted in ``heaps_fd_unpopulated_total``); any other heap is read as the ICD says.
    """

    ICD = "icd"
    IGNORE = "ignore"
    AUTO = "auto"


def _port(value: int) -> None:
    if not 0 < value < 65536:
        raise ValueError("is not a UDP port (1..65535)")


#: Header keys copied verbatim from the config into the transfer headers when set.
PASSTHROUGH_KEYS = (
    "TELESCOPE", "RECEIVER", "INSTRUMENT", "SOURCE", "BAND", "UDP_FORMAT", "OS_FACTOR",
    "FREQ", "BW", "TSAMP", "BEAM_ID", "EB_ID", "CALFREQ", "HDR_VERSION",
    "PHASE_CENTRE_RA_DEG", "PHASE_CENTRE_DEC_DEG",
)


@dataclass(frozen=True, kw_only=True)
class IngestConfig(RingPairConfig, DaemonConfig):
    """Everything svc-ingest reads; ``-o KEY=VALUE`` works for every key listed here."""

    profile: Profile = setting("PROFILE", Profile, default=Profile.VIS, help="vis or beam")
    bind_host: str = setting("BIND_HOST", str, default="",
                             help="unicast address to bind ('' = all)")
    port_start: int = setting("PORT_START", int, validator=_port, help="first UDP port")
    nstreams: int = setting("NSTREAMS", int, default=1, validator=positive,
                            help="UDP ports PORT_START.. (one SPEAD stream each)")
    mcast_group: str = setting("MCAST_GROUP", str, default="", help="multicast group to join")
    mcast_interface: str = setting("MCAST_INTERFACE", str, default="0.0.0.0",
                                   help="interface address for the multicast group")
    max_packet_size: int = setting("MAX_PACKET_SIZE", int, default=9200, validator=positive,
                                   help="largest UDP datagram accepted")
    recv_buffer_bytes: int = setting("RECV_BUFFER_BYTES", int, default=8 << 20,
                                     validator=positive, help="socket buffer per port")
    max_chunks: int = setting("MAX_CHUNKS", int, default=4, validator=positive,
                              help="reorder window in ring blocks")
    max_time_jump: int = setting(
        "MAX_TIME_JUMP", int, default=100000, validator=positive,
        help="heaps more than this many dumps (vis) or PST heaps (beam) from the newest are "
             "rejected as bad timestamps")
    stream_timeout_s: float = setting(
        "STREAM_TIMEOUT_S", float, default=5.0, validator=positive,
        help="a transfer with no packets for this long is ended without an end heap")
    immediate_byte_order: ByteOrder = setting(
        "IMMEDIATE_BYTE_ORDER", ByteOrder, default=ByteOrder.BIG,
        help="big: 32-bit immediates as SPEAD specifies; little: as spead2 sends '<u4' items")
    scan_id: int = setting("SCAN_ID", int, default=0, validator=non_negative,
                           help="scan id when the stream's metadata heap gives none")
    # ---------------------------------------------------------------- visibilities
    nant: int = setting("NANT", int, default=0, validator=non_negative, help="vis: antennas")
    nchan: int = setting("NCHAN", int, validator=positive, help="channels of this instance")
    start_channel: int = setting("START_CHANNEL", int, default=0, validator=non_negative,
                                 help="first channel (ICD channel id / PST channel) taken")
    channels_per_stream: int = setting("CHANNELS_PER_STREAM", int, default=0,
                                       validator=non_negative, help="vis: channels per heap")
    int_time: float = setting("INT_TIME", float, default=0.0, validator=non_negative,
                              help="vis: dump period in seconds")
    freq0_hz: float = setting("FREQ0_HZ", float, default=-1.0,
                              help="vis: centre of ICD channel 0 (default: from the stream)")
    chan_width_hz: float = setting("CHAN_WIDTH_HZ", float, default=0.0,
                                   help="vis: channel spacing (default: from the stream)")
    fallback_freq0_hz: float = setting(
        "FALLBACK_FREQ0_HZ", float, default=-1.0,
        help="vis: centre of ICD channel 0 when neither FREQ0_HZ nor the stream gives it "
             "(a receiver started mid-scan misses the metadata heap)")
    fallback_chan_width_hz: float = setting(
        "FALLBACK_CHAN_WIDTH_HZ", float, default=0.0,
        help="vis: channel spacing when neither CHAN_WIDTH_HZ nor the stream gives it")
    fd_policy: FdPolicy = setting(
        "FD_POLICY", FdPolicy, default=FdPolicy.AUTO,
        help="vis: icd (FD 0 = no data), ignore (FD unpopulated: every heap that arrived is "
             "valid) or auto (all-zero FD with non-zero data = unpopulated, counted)")
    max_heap_metadata_bytes: int = setting(
        "MAX_HEAP_METADATA_BYTES", int, default=16384, validator=non_negative,
        help="vis: room per heap for descriptors and addressed items sent with the "
             "visibilities (longer heaps are rejected as heap_too_large)")
    dumps_per_block: int = setting("DUMPS_PER_BLOCK", int, default=0, validator=non_negative,
                                   help="vis: dumps per ring block (0: data bufsz/RESOLUTION)")
    # ---------------------------------------------------------------- voltage beam
    nbit: int = setting("NBIT", int, default=16, help="beam: bits per sample (8 or 16)")
    udp_nchan: int = setting("UDP_NCHAN", int, default=0, validator=non_negative,
                             help="beam: channels per packet")
    udp_nsamp: int = setting("UDP_NSAMP", int, default=0, validator=non_negative,
                             help="beam: samples per packet")
    wt_nsamp: int = setting("WT_NSAMP", int, default=0, validator=non_negative,
                            help="beam: samples per weight")
    # ---------------------------------------------------------------- pass-through header keys
    telescope: str = setting("TELESCOPE", str, default="", help="header pass-through")
    receiver: str = setting("RECEIVER", str, default="", help="header pass-through")
    instrument: str = setting("INSTRUMENT", str, default="", help="header pass-through")
    source_name: str = setting("SOURCE", str, default="", help="header pass-through")
    band: str = setting("BAND", str, default="", help="header pass-through")
    udp_format: str = setting("UDP_FORMAT", str, default="", help="header pass-through")
    os_factor: str = setting("OS_FACTOR", str, default="", help="header pass-through")
    freq: str = setting("FREQ", str, default="", help="beam: centre frequency MHz")
    bw: str = setting("BW", str, default="", help="beam: bandwidth MHz")
    tsamp: str = setting("TSAMP", str, default="", help="beam: sample period in microseconds")
    beam_id: str = setting("BEAM_ID", str, default="", help="header pass-through")
    eb_id: str = setting("EB_ID", str, default="", help="header pass-through")
    calfreq: str = setting("CALFREQ", str, default="", help="header pass-through")
    hdr_version: str = setting("HDR_VERSION", str, default="", help="header pass-through")
    phase_centre_ra_deg: str = setting("PHASE_CENTRE_RA_DEG", str, default="",
                                       help="header pass-through")
    phase_centre_dec_deg: str = setting("PHASE_CENTRE_DEC_DEG", str, default="",
                                        help="header pass-through")

    def passthrough(self) -> dict[str, str]:
        """The pass-through header keys that are set."""
        values = self.to_dict()
        return {key: str(values[key]) for key in PASSTHROUGH_KEYS if values.get(key)}

    def check(self) -> Iterable[str]:
        yield from super().check()
        if self.port_start + self.nstreams > 65536:
            yield "PORT_START + NSTREAMS exceeds 65535"
        if self.profile == Profile.VIS:
            yield from self._check_vis()
        else:
            yield from self._check_beam()

    def _check_vis(self) -> Iterable[str]:
        if self.nant <= 0:
            yield "NANT: required for PROFILE vis"
        if self.int_time <= 0:
            yield "INT_TIME: required for PROFILE vis (dump period, seconds)"
        cps = self.channels_per_stream
        if cps <= 0:
            yield "CHANNELS_PER_STREAM: required for PROFILE vis"
        elif self.nchan % cps:
            yield f"NCHAN {self.nchan} is not a multiple of CHANNELS_PER_STREAM {cps}"
        elif (self.nchan // cps) % self.nstreams:
            yield (f"NSTREAMS {self.nstreams} does not divide the {self.nchan // cps} "
                   "channel blocks (NCHAN / CHANNELS_PER_STREAM)")

    def _check_beam(self) -> Iterable[str]:
        if self.nbit not in (8, 16):
            yield f"NBIT {self.nbit}: must be 8 or 16 for PROFILE beam"
        if min(self.udp_nchan, self.udp_nsamp, self.wt_nsamp) <= 0:
            yield "UDP_NCHAN, UDP_NSAMP and WT_NSAMP are required for PROFILE beam"
            return
        if self.udp_nsamp % self.wt_nsamp:
            yield f"UDP_NSAMP {self.udp_nsamp} is not a multiple of WT_NSAMP {self.wt_nsamp}"
        if self.nchan % self.udp_nchan:
            yield f"NCHAN {self.nchan} is not a multiple of UDP_NCHAN {self.udp_nchan}"
        elif (self.nchan // self.udp_nchan) % self.nstreams:
            yield f"NSTREAMS {self.nstreams} does not divide NCHAN / UDP_NCHAN"
        if not self.tsamp:
            yield "TSAMP: required for PROFILE beam (microseconds)"
        else:
            try:
                float(self.tsamp)
            except ValueError:
                yield f"TSAMP {self.tsamp!r}: not a number"
