"""Black-box durability tests: restart and read back, kill -9 under concurrent load, torn and
corrupt WAL segments at start-up, graceful stop, `ingot wal inspect`."""
import glob
import http.client
import os
import shutil
import signal
import sqlite3
import tempfile
import threading
import time

from harness import T0, Ingot, as_int, check_load, free_port, kill9_under_load, persisted_rows, run_ingot



def segments(data_dir):
    return sorted(glob.glob(os.path.join(data_dir, "wal", "*.wal")),
                  key=lambda p: int(os.path.basename(p)[:-4]))


def test_restart_reads_back_everything():
    s = Ingot()
    try:
        lp = "".join(f"r,h=h{i % 10} v={i}i,s=\"v{i}\" {T0 + i}\n" for i in range(5000))
        assert s.write(lp).status == 204
        assert s.write(f"r,h=h0 v=-1i {T0}").status == 204  # an upsert of row 0
        before = sorted((r["h"], r["v"], r["s"]) for r in s.rows("r"))
        assert len(before) == 5000 and ("h0", -1, "v0") in before
        assert s.stop() == 0
        assert segments(s.data_dir) == []  # everything went to Parquet, the WAL is empty
        after = sorted((r["h"], as_int(r["v"]), r["s"]) for r in persisted_rows(s.data_dir, "r"))
        assert after == before
        s.start()
        assert s.rows("r") == []  # the buffer starts empty: the rows live in Parquet now
        assert s.write(f"r,h=new v=1i {T0}").status == 204
        assert len(s.rows("r")) == 1
        assert s.stop() == 0
        assert len(persisted_rows(s.data_dir, "r")) == 5001
    finally:
        s.cleanup()


def test_sigterm_refuses_writes_at_once_and_exits_zero():
    s = Ingot()
    try:
        assert s.write(f"g v=1i {T0}").status == 204
        lp = "".join(f"g,i=i{i} v={i}i {T0 + i}\n" for i in range(20000))
        assert s.write(lp).status == 204
        statuses, stop = [], threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                try:
                    r = s.write(f"g,late=l{i} v={i}i {T0 + i}")
                except (OSError, http.client.HTTPException):
                    return
                statuses.append((r.status, r.body))
                i += 1

        # a file where the table's directory must go: the final persist waits until it goes
        blocker = os.path.join(s.data_dir, "objects", "db", "g")
        os.makedirs(os.path.dirname(blocker), exist_ok=True)
        open(blocker, "w").close()
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 30
        while not any(st == 503 for st, _ in list(statuses)):
            assert time.time() < deadline, "no write was refused while stopping"
            time.sleep(0.01)
        os.remove(blocker)
        assert s.wait_exit(60) == 0
        stop.set()
        t.join()
        log = s.log_text()
        assert "ingot stopped with an empty WAL" in log, log[-2000:]
        refused = [b for st, b in statuses if st == 503]
        assert all(st in (204, 503) for st, _ in statuses), statuses[:5]
        assert refused and all(b"shutting down" in b for b in refused), refused[:3]
        acked = sum(1 for st, _ in statuses if st == 204)
        assert len(persisted_rows(s.data_dir, "g")) == 1 + 20000 + acked
    finally:
        s.cleanup()


def test_kill9_under_concurrent_load_loses_no_acknowledged_write():
    s = Ingot()
    try:
        acked, errors = [], []
        # each restart replays, persists and deletes what the killed process left in the WAL
        kill9_under_load(s, "load", acked, errors, rounds=3, writers=8, pause=(0.5, 1.5))
        assert len(acked) > 30, len(acked)
        assert s.stop() == 0
        check_load(persisted_rows(s.data_dir, "load"), acked)
    finally:
        s.cleanup()


def test_a_second_ingot_on_the_same_directories_refuses_to_start():
    """The data and WAL directories are locked: a second ingot on either exits at once naming the
    one that runs (which goes on serving); the lock dies with its process, kill -9 included."""
    s = Ingot()
    other = tempfile.mkdtemp(prefix="ingot-bb-other-")
    try:
        assert s.write(f"locked,h=a v=1i {T0}\n").status == 204
        ports = ["--http-bind", f"127.0.0.1:{free_port()}", "--grpc-bind", f"127.0.0.1:{free_port()}"]
        for dirs in (["--data-dir", s.data_dir],
                     ["--data-dir", other, "--wal-dir", os.path.join(s.data_dir, "wal")]):
            code, _, stderr = run_ingot("serve", *dirs, *ports, timeout=20)
            assert code != 0, (dirs, stderr)
            assert "in use by another ingot" in stderr and f"pid {s.proc.pid}" in stderr, stderr
        assert [r["v"] for r in s.rows("locked")] == [1]
        s.kill9()
        s.start()  # the lock went with the killed process: this start replays (and persists) it
        assert s.stop() == 0
        assert [as_int(r["v"]) for r in persisted_rows(s.data_dir, "locked")] == [1]
    finally:
        s.cleanup()
        shutil.rmtree(other, ignore_errors=True)


def test_torn_tail_is_truncated_and_counted():
    s = Ingot()
    try:
        assert s.write(f"tt v=1i {T0}").status == 204
        assert s.write(f"tt v=2i {T0 + 1}").status == 204
        s.kill9()
        seg = segments(s.data_dir)[-1]
        size = os.path.getsize(seg)
        with open(seg, "r+b") as f:  # cut the last entry in half, as a crash mid-write does
            f.truncate(size - 10)
        s.start()
        assert s.metrics()["ingot_wal_replay_torn_tails"] == 1
        s.kill9()
        # a zero-length newest segment, as a power cut can leave it
        open(os.path.join(s.data_dir, "wal", "999.wal"), "wb").close()
        s.start()
        assert s.metrics()["ingot_wal_replay_torn_tails"] == 1
        assert s.stop() == 0
        assert [as_int(r["v"]) for r in persisted_rows(s.data_dir, "tt")] == [1]
    finally:
        s.cleanup()


def test_corrupt_segment_stops_startup_unless_skip_corrupt():
    s = Ingot()
    try:
        for i in range(3):
            assert s.write(f"cc v={i}i {T0 + i}").status == 204
        s.kill9()
        seg = segments(s.data_dir)[-1]
        with open(seg, "r+b") as f:  # damage inside the first entry, with good entries after it
            f.seek(32 + 16 + 5)
            b = f.read(1)
            f.seek(32 + 16 + 5)
            f.write(bytes([b[0] ^ 0xFF]))
        try:
            s.start()
            raise AssertionError("start-up should have failed")
        except RuntimeError as e:
            assert os.path.basename(seg) in str(e) and "offset" in str(e), str(e)[-600:]
        s.proc = None
        s.start(extra_args=["--wal-skip-corrupt"])
        assert os.path.exists(os.path.join(s.data_dir, "wal", "corrupt", os.path.basename(seg)))
        assert s.metrics()["ingot_wal_replay_corrupt_segments"] == 1
        assert s.write(f"cc v=9i {T0 + 9}").status == 204
        assert s.stop() == 0
        assert [as_int(r["v"]) for r in persisted_rows(s.data_dir, "cc")] == [9]
    finally:
        s.cleanup()


def test_logged_write_that_no_longer_validates_stops_startup():
    """A logged op is checked against the catalog again at replay (on the replay applier). If the
    catalog was replaced meanwhile (here: the column's type changed behind ingot's back), start-up
    stops naming the segment and sequence instead of dropping an acknowledged write; with the
    catalog put back, the rows are all persisted."""
    s = Ingot()
    try:
        for i in range(3):
            assert s.write(f"nv,k=a v={i}i {T0 + i}").status == 204
        s.kill9()
        cat = os.path.join(s.data_dir, "catalog.sqlite")
        db = sqlite3.connect(cat)
        db.execute("UPDATE column_name SET column_type = 5 WHERE name = 'v'")  # i64 -> string
        db.commit()
        db.close()
        try:
            s.start()
            raise AssertionError("start-up should have failed")
        except RuntimeError as e:
            msg = str(e)
            assert "no longer validates" in msg and "sequence" in msg, msg[-600:]
            assert "segment" in msg, msg[-600:]
        s.proc = None
        db = sqlite3.connect(cat)
        db.execute("UPDATE column_name SET column_type = 1 WHERE name = 'v'")
        db.commit()
        db.close()
        s.start()  # replays the segment, persists it and deletes it
        assert s.stop() == 0
        rows = persisted_rows(s.data_dir, "nv")
        assert sorted(as_int(r["v"]) for r in rows) == [0, 1, 2], rows
    finally:
        s.cleanup()


def test_wal_inspect():
    s = Ingot()
    try:
        for i in range(4):
            assert s.write(f"wi v={i}i {T0 + i}").status == 204
        s.kill9()
        code, out, err = run_ingot("wal", "inspect", os.path.join(s.data_dir, "wal"))
        assert code == 0, (code, out, err)
        assert " ok" in out and " 4 " in out and "1..4" in out, out
        seg = segments(s.data_dir)[-1]
        with open(seg, "r+b") as f:
            f.seek(32 + 16 + 2)
            b = f.read(1)
            f.seek(32 + 16 + 2)
            f.write(bytes([b[0] ^ 1]))
        code, out, err = run_ingot("wal", "inspect", os.path.join(s.data_dir, "wal"))
        assert code == 1 and "CORRUPT" in out, (code, out)
    finally:
        s.cleanup()


def test_help_and_env_flags():
    code, out, _ = run_ingot("--help")
    assert code == 0 and "serve" in out
    code, out, _ = run_ingot("serve", "--help")
    assert code == 0 and "--max-request-bytes" in out and "INGOT_MAX_REQUEST_BYTES" in out
    code, _, err = run_ingot("serve", "--no-such-flag")
    assert code == 2 and "unknown flag" in err
    s = Ingot(env={"INGOT_MAX_REQUEST_BYTES": "100"})
    try:
        assert s.write("e v=1i\n" * 50).status == 413
        assert s.stop() == 0
    finally:
        s.cleanup()
