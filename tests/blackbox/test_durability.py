"""Black-box durability tests: restart and read back, kill -9 under concurrent load, torn and
corrupt WAL segments at start-up, graceful stop, `ingot wal inspect`."""
import glob
import http.client
import os
import random
import signal
import threading
import time

from harness import Ingot, run_ingot

T0 = 1767225600000000000


def segments(data_dir):
    return sorted(glob.glob(os.path.join(data_dir, "wal", "*.wal")),
                  key=lambda p: int(os.path.basename(p)[:-4]))


def test_restart_reads_back_everything():
    s = Ingot()
    try:
        lp = "".join(f"r,h=h{i % 10} v={i}i,s=\"v{i}\" {T0 + i}\n" for i in range(5000))
        assert s.write(lp).status == 204
        assert s.write(f"r,h=h0 v=-1i {T0}").status == 204  # an upsert of row 0
        before = sorted(map(repr, s.rows("r")))
        assert s.stop() == 0
        s.start()
        after = sorted(map(repr, s.rows("r")))
        assert after == before and len(after) == 5000
        m = s.metrics()
        assert m["ingot_wal_replay_entries"] == 2, m
        # twice: the segment written before the first restart and the fresh one are both replayed
        assert s.stop() == 0
        s.start()
        assert sorted(map(repr, s.rows("r"))) == before
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_sigterm_refuses_writes_and_exits_zero():
    s = Ingot()
    try:
        assert s.write(f"g v=1i {T0}").status == 204
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == 0
        assert "stopped" in s.log_text()
        s.proc = None
        s.log.close()
        s.start()
        assert len(s.rows("g")) == 1
        s.stop()
    finally:
        s.cleanup()


def _writer(s, tid, acked, stop, errors):
    i = 0
    while not stop.is_set():
        n = random.randint(1, 200)
        lp = "".join(f"load,w=w{tid},b=b{i} v={j}i,n={n}i {T0 + j}\n" for j in range(n))
        try:
            r = s.write(lp)
        except (OSError, http.client.HTTPException):
            return  # the server died: this request's fate is unknown, it was not acknowledged
        if r.status == 204:
            acked.append((tid, i, n))
        elif r.status not in (503,):
            errors.append(r)
        i += 1


def test_kill9_under_concurrent_load_loses_no_acknowledged_write():
    s = Ingot()
    try:
        for round_ in range(3):
            acked, errors, stop = [], [], threading.Event()
            threads = [threading.Thread(target=_writer, args=(s, f"{round_}x{t}", acked, stop, errors))
                       for t in range(8)]
            for t in threads:
                t.start()
            time.sleep(random.uniform(0.5, 1.5))
            s.kill9()
            stop.set()
            for t in threads:
                t.join()
            assert not errors, errors[:3]
            assert len(acked) > 10, len(acked)
            s.start()
            rows = s.rows("load", columns="w,b,v,n")
            got, sizes = {}, {}
            for r in rows:
                got.setdefault((r["w"], r["b"]), set()).add(r["v"])
                sizes[(r["w"], r["b"])] = r["n"]
            for tid, i, n in acked:
                vals = got.get((f"w{tid}", f"b{i}"))
                assert vals == set(range(n)), (tid, i, n, vals)
            # every request present is whole: no half-applied request
            for key, vals in got.items():
                assert vals == set(range(sizes[key])), (key, sizes[key], sorted(vals)[:5])
    finally:
        s.cleanup()


def test_torn_tail_is_truncated_and_counted():
    s = Ingot()
    try:
        assert s.write(f"tt v=1i {T0}").status == 204
        assert s.write(f"tt v=2i {T0 + 1}").status == 204
        s.kill9()
        seg = segments(s.data_dir)[-1]
        size = os.path.getsize(seg)
        with open(seg, "r+b") as f:  # cut the last entry in half
            f.truncate(size - 10)
        s.start()
        assert [r["v"] for r in s.rows("tt")] == [1]
        assert s.metrics()["ingot_wal_replay_torn_tails"] == 1
        s.kill9()
        # a zero-length newest segment, as a power cut can leave it
        open(os.path.join(s.data_dir, "wal", "999.wal"), "wb").close()
        s.start()
        assert [r["v"] for r in s.rows("tt")] == [1]
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_corrupt_segment_stops_startup_unless_skip_corrupt():
    s = Ingot()
    try:
        for i in range(3):
            assert s.write(f"cc v={i}i {T0 + i}").status == 204
        assert s.stop() == 0
        s.start()  # the first segment is now closed and not the last one
        assert s.write(f"cc v=9i {T0 + 9}").status == 204
        assert s.stop() == 0
        first = segments(s.data_dir)[0]
        with open(first, "r+b") as f:
            f.seek(32 + 8 + 5)  # inside the first entry's payload
            b = f.read(1)
            f.seek(32 + 8 + 5)
            f.write(bytes([b[0] ^ 0xFF]))
        try:
            s.start()
            raise AssertionError("start-up should have failed")
        except RuntimeError as e:
            assert os.path.basename(first) in str(e) and "offset" in str(e), str(e)[-600:]
        s.proc = None
        s.start(extra_args=["--wal-skip-corrupt"])
        assert os.path.exists(os.path.join(s.data_dir, "wal", "corrupt", os.path.basename(first)))
        assert [r["v"] for r in s.rows("cc")] == [9]
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_wal_inspect():
    s = Ingot()
    try:
        for i in range(4):
            assert s.write(f"wi v={i}i {T0 + i}").status == 204
        assert s.stop() == 0
        code, out, err = run_ingot("wal", "inspect", os.path.join(s.data_dir, "wal"))
        assert code == 0, (code, out, err)
        assert "ok" in out and "4" in out, out
        seg = segments(s.data_dir)[-1]
        with open(seg, "r+b") as f:
            f.seek(32 + 8 + 2)
            b = f.read(1)
            f.seek(32 + 8 + 2)
            f.write(bytes([b[0] ^ 1]))
        code, out, err = run_ingot("wal", "inspect", os.path.join(s.data_dir, "wal"))
        assert code == 1 and ("CORRUPT" in out or "torn" in out), (code, out)
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
