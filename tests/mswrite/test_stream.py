"""The ring-pair headers of the visibility contract, as the MS writer reads them."""

from __future__ import annotations

import pytest

from ringbuf.errors import HeaderError
from services.mswrite.stream import VisStream, upper_triangle


def test_headers_round_trip(stream):
    data_header, weights_header = stream.headers()
    assert VisStream.from_headers(data_header, weights_header) == stream
    assert data_header.get_int("RESOLUTION") == 8 * 21 * 32
    assert weights_header.get_int("RESOLUTION") == 8 * 21 * 2
    assert data_header["BASELINE_ORDER"] == "upper-triangle-with-autos"
    assert stream.first_dump(3 * stream.data_dump_bytes) == 3


def test_baseline_order():
    a1, a2 = upper_triangle(3)
    assert list(zip(a1.tolist(), a2.tolist(), strict=False)) == [
        (0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]


@pytest.mark.parametrize("which, key, value, message", [
    ("both", "NBASELINE", 20, "NBASELINE 20 is not NANT\\*\\(NANT\\+1\\)/2 = 21"),
    ("both", "RESOLUTION", 100, "data header: RESOLUTION 100 is not the 5376 bytes"),
    ("data", "DATA_KIND", "VOLTAGE", "data header: DATA_KIND is 'VOLTAGE', expected 'VIS'"),
    ("weights", "NCHAN", 4, "NCHAN differs between data header \\('8'\\) and weights header"),
    ("both", "BASELINE_ORDER", "lower", "BASELINE_ORDER is 'lower'"),
    ("both", "POL_ORDER", "XX,YY", "POL_ORDER is 'XX,YY'"),
    ("both", "INT_TIME", "soon", "INT_TIME 'soon' is not a number"),
    ("both", "INT_TIME", 0, "INT_TIME must be > 0"),
])
def test_bad_headers(stream, which, key, value, message):
    data_header, weights_header = stream.headers()
    for name, header in (("data", data_header), ("weights", weights_header)):
        if which in (name, "both"):
            header.set(key, value)
    with pytest.raises(HeaderError, match=message):
        VisStream.from_headers(data_header, weights_header)


def test_missing_key_is_named(stream):
    data_header, weights_header = stream.headers()
    weights_header.delete("TIME0_UNIX")
    with pytest.raises(HeaderError, match="weights header: missing required key TIME0_UNIX"):
        VisStream.from_headers(data_header, weights_header)


def test_unaligned_obs_offset(stream):
    with pytest.raises(HeaderError, match="OBS_OFFSET 100 is not a whole number of dumps"):
        stream.first_dump(100)
