"""Header and config parsing under generated and hostile input (issue 13, items 7 and the
fuzzing): linear time, lossless round trips, and nothing but HeaderError for garbage."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringbuf.errors import HeaderError
from ringbuf.header import DadaHeader
from ringbuf.pairconfig import pair_config

# bounded: the whole module runs in a few seconds
FUZZ = settings(max_examples=300, deadline=200, suppress_health_check=[HealthCheck.too_slow])

# the grammar's old single regex, kept here as the reference for short lines only (it is
# quadratic in runs of blanks, which is why the parser no longer uses it)
_REFERENCE = re.compile(
    r"^(?P<key>[^\s#\x00]+)(?P<sep>[ \t]+)(?P<value>.*?)(?P<tail>[ \t]*(?:[ \t]#.*)?)$")


def reference_entry(line: str) -> tuple[str, str] | None:
    match = _REFERENCE.match(line)
    if match is None or not match.group("value"):
        return None
    return match.group("key"), match.group("value")


def parse_seconds(text: str) -> float:
    start = time.perf_counter()
    try:
        DadaHeader.parse(text)
    except HeaderError:
        pass
    return time.perf_counter() - start


@pytest.mark.parametrize("line", [
    "SOURCE J0437" + " " * 16000 + "x",              # the campaign's 16 KB line: 8 s before
    "DB_BUFSZ 1" + " " * 20000 + "2",                # a 20 KB config line: 11 s before
    "SOURCE a" + " \t" * 4000 + "b" + " " * 8000 + "c # comment",
    "SOURCE " + " " * 16000 + "J0437",
    "SOURCE J0437" + " \t" * 10000 + " # comment",
    "SOURCE" + " " * 20000 + "#",
    " " * 20000 + "SOURCE x",
])
def test_parsing_is_linear_in_runs_of_blanks(line):
    assert parse_seconds(line + "\n") < 0.2  # was 8-11 s
    big = (line + "\n") * 50  # 1 MB of such lines
    assert parse_seconds(big) < 3.0


def test_a_long_bad_line_is_reported_shortly():
    with pytest.raises(HeaderError) as info:
        DadaHeader.parse("OK 1\n" + " " * 20000 + "x y\n", source="cfg.hdr")
    message = str(info.value)
    assert message.startswith("cfg.hdr: line 2: expected 'KEY value', got '")
    assert "(20003 chars)" in message and len(message) < 200


line_text = st.text(alphabet=st.sampled_from(list("AB_x1 \t#\r\x00=.")), max_size=40)


@FUZZ
@given(line_text)
def test_entries_split_exactly_as_the_grammar_says(line):
    from ringbuf.header import _split_entry

    assert _split_entry(line) == reference_entry(line)


keys = st.text(alphabet=st.sampled_from(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789.")),
               min_size=1, max_size=12)
values = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                 min_size=1, max_size=30).flatmap(
    lambda first: st.text(alphabet=st.sampled_from(list("ab #9-+.")), max_size=20).map(
        lambda rest: (first + rest).split(" #")[0].rstrip(" ") or first))


@FUZZ
@given(st.dictionaries(keys, values, max_size=12))
def test_format_then_parse_gives_the_same_entries(entries):
    header = DadaHeader(entries)
    again = DadaHeader.parse(header.text)
    assert dict(again.items()) == entries
    assert again.text == header.text
    assert DadaHeader.from_bytes(header.to_bytes(len(header.text) + 1 + 64)) == entries


@FUZZ
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=400))
def test_any_text_parses_losslessly_or_raises_header_error(text):
    try:
        header = DadaHeader.parse(text)
    except HeaderError:
        return
    body = text.split("\x00", 1)[0]
    assert header.text == body
    assert DadaHeader.parse(header.text) == header


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_header_error(data):
    try:
        header = DadaHeader.from_bytes(data)
    except HeaderError:
        return
    for key in header:  # the typed getters too: a value or HeaderError, nothing else
        for getter in (header.get_int, header.get_float, header.get_bool):
            try:
                getter(key)
            except HeaderError:
                pass


config_values = st.one_of(st.text(alphabet=st.sampled_from(list("0123456789abcdefx-+ .")),
                                  min_size=1, max_size=12).map(lambda v: v.strip() or "0"),
                          st.integers(-2**70, 2**70).map(str))


@FUZZ
@given(st.fixed_dictionaries({}, optional={
    name: config_values for name in ("DATA_KEY", "WEIGHTS_KEY", "DB_NBUFS", "DB_BUFSZ",
                                     "WB_NBUFS", "WB_BUFSZ", "HB_NBUFS", "HB_BUFSZ",
                                     "NREADERS", "RING_MODE")}))
def test_any_pair_config_loads_or_raises_header_error(entries):
    try:
        cfg = pair_config(DadaHeader(entries, source="pair.hdr"))
    except HeaderError as exc:
        assert str(exc).startswith("pair.hdr") or "ring key" in str(exc) or "DATA_KEY" in str(exc)
        return
    assert 0 <= cfg.mode <= 0o777
    assert cfg.data_layout.nbufs == cfg.weights_layout.nbufs >= 2


@pytest.mark.parametrize("mode", ["7777", "-1", "77777777"])
def test_pair_config_refuses_a_mode_that_is_not_a_permission_mode(mode):
    header = DadaHeader({"DATA_KEY": "a000", "WEIGHTS_KEY": "a010", "DB_NBUFS": 4,
                         "DB_BUFSZ": 4096, "WB_NBUFS": 4, "WB_BUFSZ": 512, "RING_MODE": mode},
                        source="pair.hdr")
    with pytest.raises(HeaderError, match=f"pair.hdr: RING_MODE {mode} is not a permission mode"):
        pair_config(header)
