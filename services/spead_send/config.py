"""svc-spead-send configuration: every key, its default and its checks (docs/spead-send.md).

The daemon's own keys are the framework's (:class:`SpeadSendConfig`); configure_beam takes
the ring pair and how to read it (:class:`SpeadSendBeamConfig`), configure_scan where and how
to send (:class:`SpeadSendScanConfig`). In autonomous mode all come from the config files.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.config import (
    Config,
    DaemonConfig,
    RingPairConfig,
    non_negative,
    positive,
    setting,
)
from services.formats.cbf_sdp import ByteOrder


class ReadMode(str, enum.Enum):
    """How the ring pair is read."""

    READER = "reader"  # a guaranteed reader: every block is sent; a slow send gates the writer
    VIEWER = "viewer"  # a viewer: never slows the writer; blocks overwritten first are skipped


def _port(value: int) -> None:
    if not 0 < value < 65536:
        raise ValueError("is not a UDP port (1..65535)")


def _address(value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("is not an IPv4 address") from None


def _optional_address(value: str) -> None:
    if value:
        _address(value)


@dataclass(frozen=True, kw_only=True)
class SpeadSendConfig(DaemonConfig):
    """The daemon's own settings: only the common ones (see DaemonConfig)."""


@dataclass(frozen=True, kw_only=True)
class SpeadSendBeamConfig(RingPairConfig):
    """configure_beam: the ring pair and how to read it."""

    read_mode: ReadMode = setting(
        "READ_MODE", ReadMode, default=ReadMode.READER,
        help="reader (guaranteed: every block sent, may slow the writer) or viewer (never "
             "slows the writer; blocks overwritten before they are read are skipped)")


@dataclass(frozen=True, kw_only=True)
class SpeadSendScanConfig(Config):
    """configure_scan: where the SPEAD streams go and how fast."""

    dest_host: str = setting("DEST_HOST", str, default="127.0.0.1", validator=_address,
                             help="destination address (unicast or a multicast group)")
    dest_port: int = setting("DEST_PORT", int, validator=_port,
                             help="UDP port of stream 0; stream i goes to DEST_PORT + i")
    nstreams: int = setting(
        "NSTREAMS", int, default=1, validator=positive,
        help="streams (ports); vis: each carries NCHAN/CHANNELS_PER_STREAM/NSTREAMS channel "
             "blocks; beam: each NCHAN/UDP_NCHAN/NSTREAMS packets of every PST heap")
    ttl: int = setting("MCAST_TTL", int, default=1, validator=positive,
                       help="multicast TTL (with a multicast DEST_HOST)")
    interface_address: str = setting(
        "MCAST_INTERFACE", str, default="", validator=_optional_address,
        help="multicast: address of the interface to send from ('' = the kernel's choice)")
    rate: float = setting("SEND_RATE", float, default=1e9, validator=non_negative,
                          help="bytes per second over all streams (0: unlimited)")
    max_packet_size: int = setting("SEND_MAX_PACKET_SIZE", int, default=8972,
                                   validator=positive, help="UDP payload bytes per packet")
    buffer_bytes: int = setting("SEND_BUFFER_BYTES", int, default=4 << 20, validator=positive,
                                help="socket send buffer")
    immediate_byte_order: ByteOrder = setting(
        "IMMEDIATE_BYTE_ORDER", ByteOrder, default=ByteOrder.BIG,
        help="vis: big (32-bit immediates as SPEAD specifies) or little (as spead2 sends "
             "'<u4' items)")
    hardware_id: int = setting("HARDWARE_ID", int, default=0, validator=non_negative,
                               help="vis: visibility_hardware_id sent")
    transfer_gap_s: float = setting(
        "TRANSFER_GAP_S", float, default=0.5, validator=non_negative,
        help="pause after a transfer's end heaps, so a receiver re-arms for the next one")

    def check(self) -> Iterable[str]:
        if self.dest_port + self.nstreams > 65536:
            yield "DEST_PORT + NSTREAMS exceeds 65535"
        if self.interface_address and not ipaddress.IPv4Address(self.dest_host).is_multicast:
            yield f"MCAST_INTERFACE is set but DEST_HOST {self.dest_host} is not multicast"
