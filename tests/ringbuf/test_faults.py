"""Rings under faults and hostile conditions (issue 13): exact modes under any umask and other
users, one clear line for every refusal, nothing half-made left looking complete."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ringbuf import RingLayout, RingReader, create_ring, destroy_ring, errors, snapshot
from ringbuf import control as c
from ringbuf.errors import RingExists, RingLayoutMismatch
from ringbuf.shm import SHM_DIR, sem_name, shm_name

REPO = Path(__file__).resolve().parents[2]
PY = [sys.executable, "-c", "from ringbuf.cli import main; main()"]


def cli(*args: str, user: str | None = None, group: str | None = None, umask: int | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``ringbuf`` as a real process, optionally as another user/group and umask."""
    cmd = [*PY, *args]
    if user is not None:
        cmd = ["setpriv", "--reuid", user, "--regid", group or user, "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def pre() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(cmd, cwd="/", env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=pre)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def sem_path(name: str) -> Path:
    return SHM_DIR / f"sem.{name[1:]}"


def objects(key: str, nreaders: int) -> list[Path]:
    return [SHM_DIR / shm_name(key)[1:]] + [
        sem_path(sem_name(key, kind, slot)) for slot in range(nreaders) for kind in "ds"]


@pytest.fixture
def cleanup_keys():
    keys: list[str] = []
    yield keys
    for key in keys:
        destroy_ring(key)


# ------------------------------------------------------------------ modes and other users
@pytest.fixture
def team():
    """Users A and B in a fresh group G, and C outside it (root only); removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create test users (useradd) and switch to them (setpriv)")
    tag = secrets.token_hex(3)
    group, users = f"rpg{tag}", [f"rpa{tag}", f"rpb{tag}", f"rpc{tag}"]
    subprocess.run(["groupadd", group], check=True)
    try:
        for user in users[:2]:
            subprocess.run(["useradd", "-M", "-N", "-g", group, user], check=True)
        subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", users[2]], check=True)
        yield group, users
    finally:
        for user in users:
            subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_mode_0660_is_exact_for_every_object_whatever_the_umask(team, key, cleanup_keys, umask):
    group, (owner, member, outsider) = team
    cleanup_keys.append(key)
    made = cli("create", "-k", key, "-b", "4096", "-n", "4", "-r", "2", "--mode", "0660",
               user=owner, group=group, umask=umask)
    assert made.returncode == 0, made.stderr
    for path in objects(key, 2):
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o660, (path, oct(st.st_mode))
    # a group member can be a reader and a writer
    read = cli("null", "-k", key, "--transfers", "1", "--timeout", "0.5", user=member,
               group=group)
    assert read.returncode == 0, read.stderr
    assert snapshot(key)["readers"][0]["attaches"] == 1
    # someone outside the group: one line, and nothing in the ring changes
    before = snapshot(key)
    refused = cli("null", "-k", key, "--transfers", "1", "--timeout", "0.5", user=outsider,
                  group="nogroup")
    line = one_line_error(refused)
    assert "permission denied" in line and str(SHM_DIR) in line
    after = snapshot(key)
    assert [r["attaches"] for r in after["readers"]] == [r["attaches"] for r in before["readers"]]
    # and their `ringbuf list` names this ring as not theirs to see, not as damaged
    listed = cli("list", user=outsider, group="nogroup")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(key))
    assert "NO ACCESS: " in row and "permission denied" in row


@pytest.mark.timeout(120)
def test_a_semaphore_permission_problem_is_one_line_and_writes_no_pid(team, key, cleanup_keys):
    """The shm object is open to the group but one semaphore is not (as the umask used to
    make it): the reader is refused before it claims a slot."""
    group, (owner, member, _) = team
    cleanup_keys.append(key)
    made = cli("create", "-k", key, "-b", "4096", "-n", "4", "--mode", "0660",
               user=owner, group=group)
    assert made.returncode == 0, made.stderr
    os.chmod(sem_path(sem_name(key, "s", 0)), 0o640)  # what umask 022 produced before
    refused = cli("null", "-k", key, "--transfers", "1", "--timeout", "0.5", user=member,
                  group=group)
    line = one_line_error(refused)
    assert f"permission denied on {sem_path(sem_name(key, 's', 0))} (mode 0640" in line
    reader = snapshot(key)["readers"][0]
    assert reader["attaches"] == 0 and reader["pid"] is None
    with RingReader(key) as r:  # the slot is untouched: its pid word is still 0
        assert r.ring.q[c.reader_base(0) + c.R_ATTACHES] == 1


# ------------------------------------------------------------------ create
def test_create_over_a_leftover_semaphore_is_refused_and_keeps_it(key, cleanup_keys):
    import posix_ipc

    cleanup_keys.append(key)
    name = sem_name(key, "d", 0)
    leftover = posix_ipc.Semaphore(name, posix_ipc.O_CREX, initial_value=3)
    try:
        done = cli("create", "-k", key, "-b", "4096", "-n", "4")
        line = one_line_error(done)
        assert f"semaphore {name} already exists" in line and f"ringbuf destroy -k {key}" in line
        assert sem_path(name).exists() and leftover.value == 3  # not deleted, not changed
        assert not (SHM_DIR / shm_name(key)[1:]).exists()  # nothing else made
        with pytest.raises(RingExists, match="already exists"):
            create_ring(key, RingLayout(nbufs=4, bufsz=4096))
        assert sem_path(name).exists()
    finally:
        leftover.close()
        posix_ipc.unlink_semaphore(name)


def test_a_ring_bigger_than_dev_shm_is_refused_before_anything_is_made(key, cleanup_keys):
    cleanup_keys.append(key)
    st = os.statvfs(SHM_DIR)
    free = st.f_bavail * st.f_frsize
    nbufs = 4
    bufsz = free // nbufs + (1 << 20)
    done = cli("create", "-k", key, "-b", str(bufsz), "-n", str(nbufs), "--page", timeout=30)
    line = one_line_error(done)
    assert f"ring {key}: needs" in line and f"{SHM_DIR} has only" in line
    assert not any(p.exists() for p in objects(key, 1))
    with pytest.raises(errors.RingNoSpace):
        create_ring(key, RingLayout(nbufs=nbufs, bufsz=bufsz))


@pytest.mark.timeout(120)
def test_sigterm_during_create_page_leaves_nothing(key, cleanup_keys):
    cleanup_keys.append(key)
    bufsz, nbufs = 256 << 20, 8  # 2 GiB to pre-fault: long enough to be interrupted
    st = os.statvfs(SHM_DIR)
    if st.f_bavail * st.f_frsize < 3 * bufsz * nbufs:
        pytest.skip("not enough free space in /dev/shm for a 2 GiB ring")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*PY, "create", "-k", key, "-b", str(bufsz), "-n", str(nbufs),
                             "--page"], env=env, stderr=subprocess.PIPE, text=True)
    shm_path = SHM_DIR / shm_name(key)[1:]
    deadline = time.monotonic() + 30
    while not shm_path.exists() or os.stat(shm_path).st_blocks * 512 < (64 << 20):
        assert proc.poll() is None and time.monotonic() < deadline, "create did not start"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.strip().splitlines() == [
        f"Error: ring {key}: create stopped by SIGTERM; nothing was left behind"]
    assert not any(p.exists() for p in objects(key, 1))


def test_a_half_made_ring_says_to_destroy_it(key, cleanup_keys):
    """What a create killed with -9 leaves: the shm object without its magic word."""
    cleanup_keys.append(key)
    create_ring(key, RingLayout(nbufs=4, bufsz=4096))
    with open(SHM_DIR / shm_name(key)[1:], "r+b") as fh:  # as if killed before the last step
        fh.seek(c.C_MAGIC * 8)
        fh.write(b"\0" * 8)
        fh.seek(c.C_CREATOR_PID * 8)
        fh.write((2**22 + 7).to_bytes(8, "little"))  # a pid that is not running
    for args in (("status", "-k", key), ("null", "-k", key, "--transfers", "1"),
                 ("create", "-k", key, "-b", "4096", "-n", "4", "--if-missing")):
        line = one_line_error(cli(*args))
        assert f"ring {key}: half-made" in line and f"'ringbuf destroy -k {key}'" in line, args


# ------------------------------------------------------------------ create-pair --if-missing
def _pair_config(tmp_path: Path, dkey: str, wkey: str, wbufsz: int = 1024) -> Path:
    path = tmp_path / "pair.hdr"
    path.write_text(f"DATA_KEY {dkey}\nWEIGHTS_KEY {wkey}\nDB_BUFSZ 8192\nDB_NBUFS 4\n"
                    f"WB_BUFSZ {wbufsz}\nWB_NBUFS 4\n")
    return path


def test_create_pair_if_missing_makes_the_missing_ring(tmp_path, key_factory, cleanup_keys):
    from ringbuf.header import DadaHeader
    from ringbuf.pairconfig import pair_config

    dkey, wkey = key_factory(), key_factory()
    cleanup_keys.extend((dkey, wkey))
    config = _pair_config(tmp_path, dkey, wkey)
    cfg = pair_config(DadaHeader.load(config))
    create_ring(dkey, cfg.data_layout)  # only the data ring survived
    done = cli("create-pair", "--config", str(config), "--if-missing")
    assert done.returncode == 0, done.stderr
    assert snapshot(wkey)["bufsz"] == 1024 and snapshot(wkey)["nbufs"] == 4
    again = cli("create-pair", "--config", str(config), "--if-missing")
    assert again.returncode == 0, again.stderr


def test_create_pair_if_missing_refuses_another_layout(tmp_path, key_factory, cleanup_keys):
    dkey, wkey = key_factory(), key_factory()
    cleanup_keys.extend((dkey, wkey))
    assert cli("create-pair", "--config", str(_pair_config(tmp_path, dkey, wkey))).returncode == 0
    other = _pair_config(tmp_path, dkey, wkey, wbufsz=2048)
    line = one_line_error(cli("create-pair", "--config", str(other), "--if-missing"))
    assert f"ring {wkey} exists with another layout" in line and "bufsz=1024" in line
    assert snapshot(wkey)["bufsz"] == 1024  # unchanged
    destroy_ring(wkey)  # a layout mismatch on the data ring makes nothing either
    bad_data = tmp_path / "bad.hdr"
    bad_data.write_text(other.read_text().replace("DB_BUFSZ 8192", "DB_BUFSZ 4096"))
    line = one_line_error(cli("create-pair", "--config", str(bad_data), "--if-missing"))
    assert f"ring {dkey} exists with another layout" in line
    assert not (SHM_DIR / shm_name(wkey)[1:]).exists()


def test_create_if_missing_refuses_another_layout(key, cleanup_keys):
    cleanup_keys.append(key)
    assert cli("create", "-k", key, "-b", "4096", "-n", "4").returncode == 0
    assert cli("create", "-k", key, "-b", "4096", "-n", "4", "--if-missing").returncode == 0
    line = one_line_error(cli("create", "-k", key, "-b", "8192", "-n", "4", "--if-missing"))
    assert f"ring {key} exists with another layout" in line


# ------------------------------------------------------------------ list and status
def test_list_names_a_damaged_ring_and_lists_the_rest(key_factory, cleanup_keys):
    good, bad = key_factory(), key_factory()
    cleanup_keys.extend((good, bad))
    create_ring(good, RingLayout(nbufs=4, bufsz=4096))
    create_ring(bad, RingLayout(nbufs=4, bufsz=4096))
    with open(SHM_DIR / shm_name(bad)[1:], "r+b") as fh:
        fh.seek(c.C_NBUFS * 8)
        fh.write((-5).to_bytes(8, "little", signed=True))
    done = cli("list", "--json")
    assert done.returncode == 0, done.stderr
    rings = {r["key"]: r for r in json.loads(done.stdout)}
    assert rings[good]["nbufs"] == 4 and rings[good]["problems"] == []
    assert "damaged control block" in rings[bad]["error"] and "nbufs -5" in rings[bad]["error"]
    text = cli("list").stdout
    assert any(line.startswith(bad) and "DAMAGED" in line for line in text.splitlines())
    line = one_line_error(cli("status", "-k", bad))
    assert "damaged control block" in line


def test_status_and_list_report_a_missing_semaphore(key, cleanup_keys):
    import posix_ipc

    cleanup_keys.append(key)
    create_ring(key, RingLayout(nbufs=4, bufsz=4096, nreaders=2))
    posix_ipc.unlink_semaphore(sem_name(key, "s", 1))
    done = cli("status", "-k", key)
    assert done.returncode == 1
    assert f"ring {key}: 4 x 4096 bytes" in done.stdout  # the status is still shown
    assert f"semaphore {sem_name(key, 's', 1)} is missing" in done.stderr
    assert "Traceback" not in done.stderr
    listed = {r["key"]: r for r in json.loads(cli("list", "--json").stdout)}[key]
    assert listed["problems"] and "is missing" in listed["problems"][0]
    line = one_line_error(cli("null", "-k", key, "--transfers", "1"))
    assert f"semaphore {sem_name(key, 's', 1)} is missing" in line
    with pytest.raises(RingLayoutMismatch, match="is missing"):
        RingReader(key)


def test_record_does_not_create_its_folder_when_it_cannot_attach(key, tmp_path):
    out = tmp_path / "never" / "made"
    line = one_line_error(cli("record", "-k", key, "-D", str(out)))
    assert f"ring {key} not found" in line
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("mode", ["-1", "77777777", "7777", "0x1"])
def test_create_refuses_a_mode_that_is_not_a_permission_mode(key, cleanup_keys, mode):
    cleanup_keys.append(key)
    done = cli("create", "-k", key, "-b", "4096", "-n", "4", "--mode", mode)
    assert done.returncode == 2 and "Traceback" not in done.stderr  # a usage error
    assert f"Error: Invalid value: '{mode}' is not " in done.stderr
    assert not any(p.exists() for p in objects(key, 1))
    with pytest.raises(ValueError, match="is not a permission mode 0000-0777"):
        create_ring(key, RingLayout(nbufs=4, bufsz=4096), mode=0o7777)
    assert not any(p.exists() for p in objects(key, 1))
