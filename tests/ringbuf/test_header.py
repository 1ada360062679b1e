"""DadaHeader: the DADA ASCII header codec."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringbuf.dadafile import read_dada_file
from ringbuf.errors import DadaFileError, HeaderError
from ringbuf.header import DadaHeader

EXAMPLES = Path(__file__).resolve().parent / "examples"  # published example headers, copied


@pytest.mark.parametrize("name", [
    "psrdada-dbdisk-file-header.txt", "pst-low-data-file-header.txt",
    "pst-mid-weights-file-header.txt",
])
def test_real_headers_round_trip_byte_for_byte(name, tmp_path):
    text = (EXAMPLES / name).read_text()
    header = DadaHeader.parse(text)
    assert header.text == text
    path = tmp_path / "x.dada"
    path.write_bytes(header.to_bytes() + b"payload")
    again = read_dada_file(path).header
    assert again.text == text
    assert again.to_bytes() == header.to_bytes()
    assert len(header.to_bytes()) == header.hdr_size == 4096


def test_psrdada_padded_values_and_pst_width20_keys():
    dbdisk = DadaHeader.parse((EXAMPLES / "psrdada-dbdisk-file-header.txt").read_text())
    assert dbdisk.get_int("FILE_SIZE") == 10000384
    assert dbdisk["OBS_OFFSET"] == "0"
    low = DadaHeader.parse((EXAMPLES / "pst-low-data-file-header.txt").read_text())
    assert low.get_int("NCHAN") == 20736
    assert low["OS_FACTOR"] == "4/3"
    assert low.get_float("TSAMP") == 207.36
    assert low["EB_ID"] == "eb-m001-20230921-12345"


def test_multi_token_values_comments_and_order_are_kept():
    text = "# a comment\nSOURCE  J0437-4715 main pulse   # inline\nNCHAN 4\n\nFREQ 1400\n"
    header = DadaHeader.parse(text)
    assert header["SOURCE"] == "J0437-4715 main pulse"
    assert list(header) == ["SOURCE", "NCHAN", "FREQ"]
    assert header.text == text


def test_first_occurrence_wins_and_set_replaces_in_place():
    header = DadaHeader.parse("A 1\nB 2\nA 3\n")
    assert header["A"] == "1"
    header.set("B", 20)
    assert header.text == "A 1\nB                   20\nA 3\n"
    header.set("C", 1.5)
    assert header.get_float("C") == 1.5
    header.delete("A")
    assert "A" not in header and header.text.startswith("B")


def test_large_obs_offset_and_big_hdr_size(tmp_path):
    header = DadaHeader({"HDR_SIZE": 16384, "OBS_OFFSET": 2**40 + 5})
    assert header.get_int("OBS_OFFSET") == 2**40 + 5
    path = tmp_path / "big.dada"
    path.write_bytes(header.to_bytes())
    assert len(path.read_bytes()) == 16384
    assert read_dada_file(path).header.get_int("OBS_OFFSET") == 2**40 + 5


def test_bad_line_names_source_and_line():
    with pytest.raises(HeaderError, match=r"cfg\.hdr: line 2: expected 'KEY value'"):
        DadaHeader.parse("NCHAN 4\nLONELYKEY\n", source="cfg.hdr")


def test_typed_getters_name_the_key():
    header = DadaHeader.parse("NCHAN four\nFREQ x\n", source="h.txt")
    with pytest.raises(HeaderError, match="h.txt: NCHAN 'four' is not an integer"):
        header.get_int("NCHAN")
    with pytest.raises(HeaderError, match="FREQ 'x' is not a number"):
        header.get_float("FREQ")
    with pytest.raises(HeaderError, match="missing required key NBIT"):
        header.get_int("NBIT")
    assert header.get_int("NBIT", 8) == 8


def test_header_too_big_for_hdr_size():
    header = DadaHeader({"HDR_SIZE": 64, "X": "y" * 80})
    with pytest.raises(HeaderError, match="does not fit in HDR_SIZE 64"):
        header.to_bytes()


def test_truncated_file_header(tmp_path):
    path = tmp_path / "t.dada"
    path.write_bytes(b"HDR_SIZE 8192\nNCHAN 4\n" + b"\0" * 100)
    with pytest.raises(DadaFileError, match="truncated header"):
        read_dada_file(path)


def test_non_ascii_and_invalid_keys_rejected():
    with pytest.raises(HeaderError, match="not ASCII"):
        DadaHeader.from_bytes("SOURCE caf\u00e9\n".encode())
    header = DadaHeader()
    with pytest.raises(HeaderError, match="invalid key"):
        header.set("BAD KEY", 1)
    with pytest.raises(HeaderError, match="invalid value"):
        header.set("KEY", "two\nlines")


keys = st.from_regex(r"[A-Z][A-Z0-9_.]{0,24}", fullmatch=True)
values = st.from_regex(r"[!-\"$-~]([ -\"$-~]{0,30}[!-\"$-~])?", fullmatch=True)


@given(st.dictionaries(keys, values, min_size=1, max_size=20))
def test_round_trip_property(entries):
    header = DadaHeader(entries)
    again = DadaHeader.from_bytes(header.to_bytes(8192))
    assert dict(again.items()) == entries
    assert again.text == header.text
