"""The ringbuf command line: the names and flags are a contract for scripts and units."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ringbuf import RingWriter, destroy_ring
from ringbuf.cli import cli, files, rings, tools
from ringbuf.errors import RingPermissionError

for module in (rings, tools, files):
    module.register(cli)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_create_status_list_destroy(key):
    try:
        # created by a process that then exits: idle, which is normal (not an "orphan")
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "ringbuf"),
                        "create", "-k", key,
                        "-b", "8192", "-n", "4", "-r", "2", "--page"], check=True, timeout=30)
        listed = _listed(key)
        assert listed["idle"] is True and listed["problems"] == []
        assert listed["state"] == "idle, nothing attached, nothing unread"
        with RingWriter(key, timeout=5) as writer, \
                writer.open_transfer({"SOURCE": "J0437-4715"}) as x:
            x.write(b"z" * 8192 * 2)
            status = json.loads(run("status", "-k", key, "--json").output)
            assert status["nbufs"] == 4 and status["bufsz"] == 8192 and status["nreaders"] == 2
            assert status["writer"]["alive"] and status["writer"]["pid"] == os.getpid()
            assert status["writer"]["blocks_written"] == 2
            assert [r["lag_blocks"] for r in status["readers"]] == [2, 2]
            assert status["fill_fraction"] == 0.5
            assert status["transfer"]["state"] == "open"
            assert "SOURCE              J0437-4715" in status["transfer"]["header"]
            text = run("status", "-k", key).output
            assert f"ring {key}: 4 x 8192 bytes" in text and "fill: 2/4 blocks (50%)" in text
            listed = _listed(key)
            assert listed["idle"] is False and listed["writer_alive"] is True
            assert listed["state"] == "writer up, 0 reader(s)"
        listed = _listed(key)  # the writer is gone; two blocks wait for each reader slot
        assert listed["state"] == ("idle, unread blocks kept for the next reader "
                                   "(slot 0: 2, slot 1: 2)")
        assert "ORPHAN" not in run("list").output
    finally:
        assert run("destroy", "-k", key).exit_code == 0
        assert run("destroy", "-k", key).exit_code == 0  # idempotent


def _listed(key):
    return next(r for r in json.loads(run("list", "--json").output) if r["key"] == key)


def test_create_refuses_existing_ring_and_says_who_owns_it(key):
    try:
        assert run("create", "-k", key, "-b", 64, "-n", 2).exit_code == 0
        result = CliRunner().invoke(cli, ["create", "-k", key, "-b", "64", "-n", "2"])
        assert result.exit_code == 1
        assert f"ring {key} already exists: created by pid {os.getpid()}" in result.output
        assert run("create", "-k", key, "-b", 64, "-n", 2, "--if-missing").exit_code == 0
    finally:
        destroy_ring(key)


@pytest.mark.parametrize("args, message", [
    (["create", "-k", "zz!", "-b", "64", "-n", "2"], "is not 1-8 hexadecimal digits"),
    (["create", "-k", "a1", "-b", "0", "-n", "2"], "Invalid value for '-b'"),
    (["create", "-k", "a1", "-b", "64", "-n", "1"], "Invalid value for '-n'"),
    (["status", "-k", "fffffffe"], "ring fffffffe not found: create it with"),
    (["create", "-k", "a1", "-b", "64", "-n", "2", "--mode", "rw"], "not an octal mode"),
])
def test_bad_input_is_one_clear_line(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_errors_reach_the_user_without_traceback_as_a_process():
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ringbuf"), "status",
                           "-k", "fffffffd"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("Error: ring fffffffd not found: create it with "
                                   "'ringbuf create -k fffffffd ...'")


def test_pair_from_config(key_factory, tmp_path):
    dk, wk = key_factory(), key_factory()
    config = tmp_path / "beam.hdr"
    config.write_text(f"DATA_KEY {dk}\nWEIGHTS_KEY {wk}\nDB_NBUFS 4\nDB_BUFSZ 8880\n"
                      f"WB_NBUFS 4\nWB_BUFSZ 1122\nHB_NBUFS 8\nHB_BUFSZ 4096\n")
    try:
        assert run("create-pair", "--config", config).exit_code == 0
        assert json.loads(run("status", "-k", wk, "--json").output)["bufsz"] == 1122
        assert run("create-pair", "--config", config, "--if-missing").exit_code == 0
    finally:
        assert run("destroy-pair", "--config", config).exit_code == 0
    bad = tmp_path / "bad.hdr"
    bad.write_text(f"DATA_KEY {dk}\nWEIGHTS_KEY {dk}\nDB_NBUFS 4\nDB_BUFSZ x\n"
                   "WB_NBUFS 5\nWB_BUFSZ 1\n")
    result = CliRunner().invoke(cli, ["create-pair", "--config", str(bad)])
    assert result.exit_code == 1
    assert "DB_BUFSZ 'x' is not an integer" in result.output
    assert "DATA_KEY and WEIGHTS_KEY must differ" in result.output
    assert "DB_NBUFS 4 != WB_NBUFS 5" in result.output


def test_null_reads_what_was_written_and_reports_json(key):
    run("create", "-k", key, "-b", 4096, "-n", 4)
    try:
        with RingWriter(key, timeout=5) as writer:
            with writer.open_transfer({"A": 1}) as xfer:
                xfer.write(b"x" * 4096 * 3 + b"y")
        out = json.loads(run("null", "-k", key, "--transfers", 1, "--json", "--timeout", 5).output)
        assert out["bytes"] == 4096 * 3 + 1 and out["blocks"] == 4 and out["transfers"] == 1
    finally:
        destroy_ring(key)


def test_every_command_has_help_with_an_example():
    for name in cli.commands:
        text = CliRunner().invoke(cli, [name, "--help"]).output
        assert "Example" in text, f"ringbuf {name} --help has no example"


def test_locked_ring_is_mlocked_by_every_attached_process_or_says_why(key):
    assert run("create", "-k", key, "-b", 4096, "-n", 4, "--lock").exit_code == 0
    try:
        try:
            with RingWriter(key, timeout=1) as writer:
                status = Path(f"/proc/{os.getpid()}/status").read_text()
                locked_kb = int(next(line.split()[1] for line in status.splitlines()
                                     if line.startswith("VmLck:")))
                assert locked_kb * 1024 >= writer.layout.total_nbytes
        except RingPermissionError as exc:  # an unprivileged user with a small RLIMIT_MEMLOCK
            assert "raise RLIMIT_MEMLOCK" in str(exc)
    finally:
        destroy_ring(key)


def test_junk_is_paced_by_rate(key, tmp_path):
    header = tmp_path / "header.txt"
    header.write_text("SOURCE J0437-4715\n")
    run("create", "-k", key, "-b", 65536, "-n", 4, "-r", 0)
    try:
        started = time.monotonic()
        result = run("junk", "-k", key, header, "--bytes", 400_000, "--rate", 1)
        elapsed = time.monotonic() - started
        assert result.exit_code == 0, result.output
        assert 0.39 <= elapsed < 5.0  # 400 kB at 1 MB/s
        status = json.loads(run("status", "-k", key, "--json").output)
        assert status["writer"]["bytes_written"] == 400_000
        assert status["transfer"]["state"] == "ended"
    finally:
        destroy_ring(key)
