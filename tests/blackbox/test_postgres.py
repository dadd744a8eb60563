"""Black-box tests of ingot on a PostgreSQL catalog (--catalog postgres://...) that goes away: a
throwaway cluster from tests/pg.sh is stopped at once (`pg.sh down`, as a crash would) or frozen
(SIGSTOP of the postmaster and every backend: the kernel still takes connections and requests,
nothing answers, so only --catalog-timeout ends a call). Meanwhile writes whose schema is known
are acknowledged until the persist queue is full, then get 503 + Retry-After; a write that needs
a new table gets 503 + Retry-After too (not a hang); queries answer. Once the server is back,
writes are taken again, and a graceful stop persists everything: the WAL is empty, the catalog
names exactly the Parquet files on disk, and every acknowledged row is in them exactly once.

A kill -9 under load on the PostgreSQL catalog loses nothing either, and two ingesters sharing
the catalog (a fleet) each replay their own WAL: what one persisted never counts for the other.

Needs a PostgreSQL server (apt-get install postgresql, as .ci/run does) and psql; without them
each test says so and passes as skipped."""
import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.parse

from harness import T0, Ingot, check_load, kill9_under_load, parquet_files, read_parquet, wal_segments

HERE = os.path.dirname(os.path.abspath(__file__))
PG_SH = os.path.join(HERE, "..", "pg.sh")
TIMEOUT_S = 2  # --catalog-timeout
ROWS = 100     # rows per write request


def children(pid):
    """The pids whose parent is pid (from /proc/*/stat: procps may not be installed)."""
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    kids.append(int(d))
    return kids


class Postgres:
    """A cluster started by tests/pg.sh, which can be taken down, brought up and frozen."""

    def __init__(self):
        out = subprocess.run([PG_SH, "start"], capture_output=True, timeout=120)
        assert out.returncode == 0, out.stderr.decode()
        self.conninfo, self.dir = out.stdout.decode().split("\n")[:2]
        self.frozen = []

    def down(self):
        out = subprocess.run([PG_SH, "down", self.dir], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()

    def up(self):
        out = subprocess.run([PG_SH, "up", self.dir], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()

    def freeze(self):
        """SIGSTOP the postmaster and all of its children."""
        with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
            postmaster = int(f.readline())
        self.frozen = [postmaster] + children(postmaster)
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def query(self, sql):
        """Rows of sql as lists of strings (psql, unaligned)."""
        out = subprocess.run(["psql", self.conninfo, "-X", "-At", "-F", "\t", "-c", sql], capture_output=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        return [line.split("\t") for line in out.stdout.decode().splitlines() if line]

    def close(self):
        self.thaw()
        subprocess.run([PG_SH, "stop", self.dir], capture_output=True, timeout=60)


def have_postgres():
    if shutil.which("psql") and any(os.path.exists(f"/usr/lib/postgresql/{v}/bin/initdb")
                                    for v in os.listdir("/usr/lib/postgresql") if v.isdigit()):
        return True
    print("skipped: no PostgreSQL server (apt-get install postgresql)", flush=True)
    return False


@contextlib.contextmanager
def ingot_on_postgres(args=("--persist-hot-partition-bytes", "5000", "--persist-queue-depth", "2",
                            "--persist-workers", "1")):
    """A PostgreSQL cluster and an ingot whose catalog it is (by default hot partitions of 5,000
    bytes, a persist queue of 2, one worker), both ended and cleaned up afterwards."""
    pg = Postgres()
    s = None
    try:
        s = Ingot(args=["--catalog", pg.conninfo, "--catalog-timeout", str(TIMEOUT_S), "--log-level", "info",
                        *args])
        yield pg, s
    finally:
        if s:
            s.cleanup()
        pg.close()


def write(s, tag, i, table="pgcat"):
    lp = "".join(f"{table},w={tag},b=b{i} v={j}i,n={ROWS}i {T0 + j}\n" for j in range(ROWS))
    return s.write(lp)


def write_taken(s, tag, i, acked, table="pgcat", timeout=45):
    """write() again while it gets 503, until it is taken; records it in acked."""
    deadline = time.time() + timeout
    while (r := write(s, tag, i, table)).status == 503:
        assert r.headers.get("retry-after"), r
        assert time.time() < deadline, ("writes never taken again", r, s.log_text()[-3000:])
        time.sleep(0.3)
    assert r.status == 204, r
    acked.append((tag, i, ROWS))


def write_until_persisted(s, n, acked):
    """n "pre" writes while the catalog answers; then wait until a file is persisted and no
    snapshot waits for the persister (so the outage meets an empty persist queue)."""
    for i in range(n):
        write_taken(s, "pre", i, acked)
    deadline = time.time() + 20
    while (m := s.metrics())["ingot_persist_files_total"] < 1 or m["ingot_buffer_snapshot_bytes"] > 0:
        assert time.time() < deadline, "nothing persisted while the catalog answered"
        time.sleep(0.1)


def write_until_refused(s, acked, tag):
    """Write until the persist queue is full: a 503 + Retry-After naming it."""
    deadline = time.time() + 60
    i = 0
    while (r := write(s, tag, i)).status == 204:
        acked.append((tag, i, ROWS))
        i += 1
        assert time.time() < deadline, "the persist queue never filled"
    assert r.status == 503 and r.headers.get("retry-after") and "persist" in r.json()["message"], r
    return i


def new_table_refused(s, limit_s):
    """A write that needs a new table: 503 + Retry-After naming the catalog, within limit_s."""
    t0 = time.time()
    r = write(s, "new", 0, table="pgnew")
    took = time.time() - t0
    assert r.status == 503 and r.headers.get("retry-after"), r
    assert "catalog" in r.json()["message"], r
    assert took < limit_s, took
    return took


def check_persisted_once(pg, s, acked, exact=True):
    """WAL empty; the catalog names exactly the Parquet files on disk, with their row counts; every
    acknowledged row is in them once; with exact nothing else (after a kill -9 a request that got
    no answer may be there too, whole)."""
    assert wal_segments(s.data_dir) == [], wal_segments(s.data_dir)
    named = {}
    for ns, table, day, uuid, n in pg.query(
            "SELECT n.name, t.name, p.partition_key, f.object_store_id, f.row_count FROM parquet_file f "
            "JOIN partition p ON p.id = f.partition_id JOIN table_name t ON t.id = f.table_id "
            "JOIN namespace n ON n.id = f.namespace_id"):
        q = urllib.parse.quote
        named[os.path.join(s.data_dir, "objects", q(ns, safe=""), q(table, safe=""), day, f"{uuid}.parquet")] = int(n)
    on_disk = set(parquet_files(s.data_dir))
    assert on_disk == set(named), ("catalog and disk differ", on_disk ^ set(named))
    rows = read_parquet(sorted(on_disk))
    assert len(rows) == sum(named.values()), (len(rows), sum(named.values()))
    check_load(rows, acked)
    if exact:
        assert len(rows) == sum(n for _, _, n in acked), (len(rows), len(acked))


def check_buffered(s, acked, tag):
    """A query answers with every row of the writes acknowledged (tag) since the catalog went
    away: none of them can have been persisted yet."""
    want = {(tag, f"b{i}"): n for t, i, n in acked if t == tag}
    got = {}
    for r in s.rows("pgcat"):
        if r["w"] == tag:
            got[(r["w"], r["b"])] = got.get((r["w"], r["b"]), 0) + 1
    assert got == want, (sorted(got.items())[:5], sorted(want.items())[:5])


def stop_and_check(pg, s, acked, exact=True):
    assert s.stop() == 0, s.log_text()[-3000:]
    check_persisted_once(pg, s, acked, exact)


def test_catalog_down_then_back_loses_nothing():
    if not have_postgres():
        return
    with ingot_on_postgres() as (pg, s):
        acked = []
        write_until_persisted(s, 5, acked)
        pg.down()
        new_table_refused(s, 10)
        n = write_until_refused(s, acked, "down")
        assert n >= 1, n  # the WAL took writes while the catalog was away, until the queue filled
        check_buffered(s, acked, "down")
        pg.up()
        for i in range(5):
            write_taken(s, "back", i, acked)
        write_taken(s, "new", 0, acked, table="pgnew")
        assert "cannot connect" in s.log_text(), s.log_text()[-3000:]
        stop_and_check(pg, s, acked)
        assert pg.query("SELECT count(*) FROM parquet_file f JOIN table_name t ON t.id = f.table_id "
                        "WHERE t.name = 'pgnew'") != [["0"]]


def test_frozen_catalog_calls_time_out_and_recover():
    if not have_postgres():
        return
    with ingot_on_postgres() as (pg, s):
        acked = []
        write_until_persisted(s, 5, acked)
        pg.freeze()
        # without the timeout this write would wait for the frozen server for ever; with it, at
        # most the call ahead of it on the catalog's one connection and its own (2 s each)
        new_table_refused(s, 4 * TIMEOUT_S + 2)
        write_until_refused(s, acked, "frozen")
        assert "--catalog-timeout" in s.log_text(), s.log_text()[-3000:]
        check_buffered(s, acked, "frozen")
        pg.thaw()
        for i in range(5):
            write_taken(s, "thawed", i, acked)
        stop_and_check(pg, s, acked)


def test_graceful_stop_waits_for_the_catalog_to_come_back():
    """SIGTERM while the catalog is down: ingot keeps answering queries and retrying; once the
    server is back the stop completes with everything persisted."""
    if not have_postgres():
        return
    with ingot_on_postgres() as (pg, s):
        acked = []
        write_until_persisted(s, 3, acked)
        pg.down()
        write_until_refused(s, acked, "late")
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(2 * TIMEOUT_S)
        assert s.proc.poll() is None, "stopped without persisting"
        check_buffered(s, acked, "late")
        pg.up()
        assert s.wait_exit(timeout=60) == 0, s.log_text()[-3000:]
        check_persisted_once(pg, s, acked)


def test_kill9_under_load_on_postgres_loses_nothing():
    """kill -9 under concurrent load with small WAL segments (rotations, persists and segment
    deletions under way), three times; each restart replays against the PostgreSQL catalog, skips
    what it records as persisted and removes orphan objects: every acknowledged row once."""
    if not have_postgres():
        return
    with ingot_on_postgres(args=("--wal-segment-bytes", "65536", "--persist-workers", "2")) as (pg, s):
        acked, errors = [], []
        kill9_under_load(s, "load", acked, errors, rounds=3, writers=4, days=3)
        assert len(acked) > 30, len(acked)
        assert int(pg.query("SELECT count(*) FROM parquet_file")[0][0]) > 0
        stop_and_check(pg, s, acked, exact=False)


def test_two_ingesters_sharing_the_catalog_replay_only_their_own_wal():
    """A fleet: two ingesters, each with its own WAL and file store, share one PostgreSQL catalog
    and write to the same partition. B persists ops whose sequence numbers (B's own) run far past
    A's; A is then killed with acknowledged writes of that partition only in its WAL. A's restart
    must replay them: what B's files cover of B's WAL says nothing about A's."""
    if not have_postgres():
        return
    pg = Postgres()
    a = b = None
    try:
        a = Ingot(args=["--catalog", pg.conninfo])
        b = Ingot(args=["--catalog", pg.conninfo])
        acked_b = []
        for i in range(40):
            write_taken(b, "b", i, acked_b, table="shared")
        assert b.stop() == 0
        acked_a = []
        for i in range(3):
            write_taken(a, "a", i, acked_a, table="shared")
        a.kill9()
        a.start()
        assert a.stop() == 0, a.log_text()[-3000:]
        rows = read_parquet([f for f in parquet_files(a.data_dir) if "/shared/" in f])
        check_load(rows, acked_a)
        assert len(rows) == ROWS * len(acked_a), (len(rows), a.log_text()[-3000:])
        rows = read_parquet([f for f in parquet_files(b.data_dir) if "/shared/" in f])
        check_load(rows, acked_b)
        assert len(rows) == ROWS * len(acked_b), len(rows)
    finally:
        for s in (a, b):
            if s:
                s.cleanup()
        pg.close()
