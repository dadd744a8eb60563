"""Black-box crash-point tests (issue 5): the real binary is started with INGOT_CRASH_AT=<point>:<n>
(util/sysio.h), so it ends itself with status 137 the nth time it reaches that point while
concurrent writers load it; it is then restarted without the variable, and every acknowledged
request must be there exactly once (replay persists everything at start-up, so the rows are read
back from the Parquet files), no request half applied, nothing twice.

Points: the middle of a WAL entry (half of it written), a rotation that created the next segment
but not its header, a rotation whose closed segment was not reported yet, after a Parquet put and
before its catalog row, after the catalog row and before the segment is deleted (persist job),
just before a persisted segment is deleted, and between persisting and deleting a segment
during start-up replay."""
import threading
import time

from harness import Ingot, check_load, load_writer, persisted_rows

# Small segments: rotations (and the persists and deletions they start) happen under load.
ARGS = ["--wal-segment-bytes", "65536", "--persist-workers", "2"]
TABLE = "cp"


def _load_until_exit(s, acked, errors, timeout=20):
    """Two writers until the process exits; a SIGTERM after `timeout` s (the graceful stop
    persists, rotates and deletes, reaching the points the load did not). Returns the status."""
    stop = threading.Event()
    threads = [threading.Thread(target=load_writer, args=(s, TABLE, f"w{t}", acked, stop, errors),
                                kwargs={"days": 3})
               for t in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + timeout
    while s.proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if s.proc.poll() is None:
        s.proc.terminate()
    try:
        code = s.proc.wait(60)
    finally:
        stop.set()
        for t in threads:
            t.join()
    s.proc = None
    s.log.close()
    return code


def _restart_and_check(s, acked, point):
    log = s.log_text()
    assert f'crash point "{point}" reached' in log, log[-3000:]
    s.env = None
    with open(s.log_path, "rb") as f:
        offset = len(f.read())
    s.start()
    with open(s.log_path, "rb") as f:
        s.restart_log = f.read()[offset:].decode(errors="replace")
    assert s.rows(TABLE) == [], "replay persists everything before serving"
    metrics = s.metrics()
    check_load(persisted_rows(s.data_dir, TABLE), acked)
    assert s.stop() == 0
    check_load(persisted_rows(s.data_dir, TABLE), acked)  # the graceful stop changed nothing
    return metrics, s.restart_log


def _crash_under_load(point, n):
    s = Ingot(args=ARGS, env={"INGOT_CRASH_AT": f"{point}:{n}"})
    try:
        acked, errors = [], []
        code = _load_until_exit(s, acked, errors)
        assert code == 137, (point, code, s.log_text()[-3000:])
        assert not errors, errors[:3]
        assert acked, "nothing was acknowledged before the crash"
        return _restart_and_check(s, acked, point)
    finally:
        s.cleanup()


def test_crash_mid_wal_entry():
    m, _ = _crash_under_load("wal-mid-entry", 40)
    assert m["ingot_wal_replay_torn_tails"] == 1  # the half-written entry was truncated


def test_crash_rotation_after_creating_the_next_segment():
    m, _ = _crash_under_load("wal-rotate-empty-segment", 2)
    assert m["ingot_wal_replay_torn_tails"] == 1  # the header-less last segment was deleted


def test_crash_rotation_before_reporting_the_closed_segment():
    _crash_under_load("wal-rotate-before-report", 2)


def test_crash_after_parquet_put_before_catalog_row():
    m, log = _crash_under_load("persist-after-put", 2)
    assert m["ingot_wal_replay_entries"] > 0
    assert "no catalog row names it" in log, log[-3000:]  # the orphaned object was removed


def test_crash_after_catalog_row_before_segment_delete():
    m, _ = _crash_under_load("persist-after-catalog", 2)
    assert m["ingot_wal_replay_skipped_ops"] > 0  # recorded in the catalog: not persisted again


def test_crash_just_before_segment_delete():
    m, _ = _crash_under_load("segment-before-delete", 1)
    assert m["ingot_wal_replay_skipped_ops"] > 0


def test_crash_during_replay_before_segment_delete():
    s = Ingot(args=ARGS)
    try:
        acked, errors = [], []
        stop = threading.Event()
        threads = [threading.Thread(target=load_writer, args=(s, TABLE, f"r{t}", acked, stop, errors))
                   for t in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        s.kill9()  # the WAL holds acknowledged writes: the next start replays them
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert acked
        s.env = {"INGOT_CRASH_AT": "replay-before-segment-delete"}
        try:
            s.start()
            raise AssertionError("start-up should have ended at the crash point")
        except RuntimeError as e:
            assert "exited with 137" in str(e), str(e)[-2000:]
        s.proc = None
        s.log.close()
        m, _ = _restart_and_check(s, acked, "replay-before-segment-delete")
        assert m["ingot_wal_replay_skipped_ops"] > 0
    finally:
        s.cleanup()
