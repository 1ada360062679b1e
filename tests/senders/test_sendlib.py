"""services/senders/sendlib.py helpers."""

from __future__ import annotations

import pytest

from ringbuf.errors import HeaderError
from services.senders import sendlib


def test_parse_pairs():
    assert sendlib.parse_pairs(" 3:1, 6:0,,", "k", "a:b") == {(3, 1), (6, 0)}
    assert sendlib.parse_pairs("", "k", "a:b") == set()
    with pytest.raises(HeaderError, match=r"beam.skip_packets: 'x:1' is not 'heap:packet'"):
        sendlib.parse_pairs("x:1", "beam.skip_packets", "heap:packet")
