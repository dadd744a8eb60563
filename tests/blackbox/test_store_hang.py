"""Black-box tests of a hanging object store: ingot persists to s3rver (S3 over HTTP on 127.0.0.1),
and s3rver is frozen with SIGSTOP. The kernel still accepts connections into its backlog and
buffers the requests, so only ingot's --object-store-timeout can end a request: each put must be
abandoned after about that long and retried with back-off, the persist queue fills and writes get
503 + Retry-After, queries keep answering, and once s3rver runs again (SIGCONT) everything is
persisted, every acknowledged row once. A graceful stop begun while the store is frozen completes
once it thaws; a second signal exits at once and the restart replays the WAL.

What is in the store is checked through ingot's catalog (SQLite) and the bucket itself: every
object the catalog names is read from s3rver over HTTP and its rows read with DuckDB
(tests/readers/read_parquet.mjs). Needs s3rver from tests/readers/node_modules (npm install in
tests/readers); without it each test says so and passes as skipped."""
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from harness import BIN, T0, Ingot, check_load, free_port, read_parquet, wal_segments

HERE = os.path.dirname(os.path.abspath(__file__))
READERS = os.path.join(HERE, "..", "readers")
S3RVER = os.path.join(READERS, "node_modules", "s3rver")
BUCKET = "ingot-test"
TIMEOUT_S = 2  # --object-store-timeout
ROWS = 100     # rows per write request


# s3rver started as its command line does it (tests/s3.sh), with one change that makes it store
# objects the way S3 does: whole or not at all. s3rver's own putObject truncates the object file
# first and then copies the request body in; a PUT whose client has gone away (ingot abandoned it
# while s3rver was frozen, and s3rver takes it from its backlog after SIGCONT) then leaves the object
# empty, even when ingot's retry had already stored it whole. S3 refuses a body cut short and
# replaces an object only with a complete one; so here the body is read completely before
# s3rver's putObject sees it (as a buffer), and a body that never ends changes nothing.
S3RVER_JS = r"""
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');
const putObject = FilesystemStore.prototype.putObject;
FilesystemStore.prototype.putObject = async function (object) {
  if (!Buffer.isBuffer(object.content)) {
    const chunks = [];
    await new Promise((resolve, reject) => {
      object.content.on('data', (c) => chunks.push(c));
      object.content.on('end', resolve);
      object.content.on('error', reject);
      object.content.on('close', () => reject(new Error('request body cut off')));
    });
    object = { ...object, content: Buffer.concat(chunks) };
  }
  return putObject.call(this, object);
};
const [directory, port, bucket] = process.argv.slice(1);
new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true,
             configureBuckets: [{ name: bucket }] }).run().then(
  () => console.log('s3rver ready'),
  (err) => { console.error(err); process.exit(1); });
"""


class S3rver:
    """One s3rver process (S3RVER_JS) on 127.0.0.1 and a free port, with its own data directory
    and the bucket created."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ingot-s3rver-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        # s3rver makes ListObjectsV2 continuation tokens with DES: Node 20's OpenSSL 3 needs its
        # legacy provider for that (else every truncated listing is a 500)
        env["NODE_OPTIONS"] = (env.get("NODE_OPTIONS", "") + " --openssl-legacy-provider").strip()
        self.log = open(os.path.join(self.dir, "s3rver.log"), "wb")
        self.proc = subprocess.Popen(["node", "-e", S3RVER_JS, os.path.join(self.dir, "data"), str(self.port), BUCKET],
                                     cwd=READERS, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.stopped = False
        deadline = time.time() + 20
        while True:
            assert self.proc.poll() is None, "s3rver exited at start"
            try:
                urllib.request.urlopen(f"{self.url}/{BUCKET}", timeout=1).read()
                break
            except OSError:
                assert time.time() < deadline, "s3rver did not start"
                time.sleep(0.1)

    def stop_process(self):  # SIGSTOP: frozen, while the kernel still accepts connections
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def continue_process(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def keys(self):
        """Every key in the bucket (ListObjectsV2, page after page)."""
        keys, token = [], None
        while True:
            q = {"list-type": "2"}
            if token:
                q["continuation-token"] = token
            body = urllib.request.urlopen(f"{self.url}/{BUCKET}?{urllib.parse.urlencode(q)}", timeout=30).read()
            root = ET.fromstring(body)
            ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            keys += [c.find(ns + "Key").text for c in root.findall(ns + "Contents")]
            if root.findtext(ns + "IsTruncated") != "true":
                return keys
            token = root.findtext(ns + "NextContinuationToken")

    def get(self, key):
        return urllib.request.urlopen(f"{self.url}/{BUCKET}/{urllib.parse.quote(key)}", timeout=30).read()

    def close(self):
        if self.stopped:
            self.continue_process()
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def have_s3rver():
    if os.path.isdir(S3RVER):
        return True
    print(f"skipped: s3rver not found at {S3RVER} (npm install in tests/readers)", flush=True)
    return False


def start_ingot(store, data_dir=None, queue_depth=2):
    return Ingot(data_dir=data_dir,
                 args=["--object-store", "s3", "--s3-endpoint", store.url, "--s3-bucket", BUCKET,
                       "--object-store-timeout", str(TIMEOUT_S), "--persist-hot-partition-bytes", "5000",
                       "--persist-queue-depth", str(queue_depth), "--persist-workers", "1",
                       "--log-level", "info"],
                 env={"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"})


@contextlib.contextmanager
def ingot_on_s3rver(queue_depth=2):
    """s3rver and an ingot persisting to it, both ended and cleaned up afterwards."""
    store = S3rver()
    s = None
    try:
        s = start_ingot(store, queue_depth=queue_depth)
        yield store, s
    finally:
        if s:
            s.cleanup()
        store.close()


def write(s, tag, i):
    """One request of ROWS rows `hang,w=<tag>,b=b<i> v=0..ROWS-1,n=ROWS`; the response."""
    lp = "".join(f"hang,w={tag},b=b{i} v={j}i,n={ROWS}i {T0 + j}\n" for j in range(ROWS))
    return s.write(lp)


def write_taken(s, tag, i, acked, timeout=45):
    """write() again while it gets 503 (paused), until it is taken; records it in acked."""
    deadline = time.time() + timeout
    while (r := write(s, tag, i)).status == 503:
        assert r.headers.get("retry-after"), r
        assert time.time() < deadline, ("writes never taken again", r, s.log_text())
        time.sleep(0.3)
    assert r.status == 204, r
    acked.append((tag, i, ROWS))


def write_until_persisted(s, n, acked):
    """n "pre" writes while the store answers, then wait until at least one file is persisted."""
    for i in range(n):
        write_taken(s, "pre", i, acked)
    deadline = time.time() + 20
    while s.metrics()["ingot_persist_files_total"] < 1:
        assert time.time() < deadline, "nothing persisted while the store answered"
        time.sleep(0.1)


def put_retries(s):
    return s.metrics()['ingot_persist_retries_total{op="put"}']


def stall_until_refused(s, acked, tag):
    """Write (tag) requests until one is refused with 503 + Retry-After because the persist queue
    is full; returns the number acknowledged meanwhile."""
    deadline = time.time() + 30
    i = 0
    while (r := write(s, tag, i)).status == 204:
        acked.append((tag, i, ROWS))
        i += 1
        assert time.time() < deadline, "the persist queue never filled"
    assert r.status == 503, r
    assert r.headers.get("retry-after") and "persist" in r.json()["message"], r
    return i


def catalog_objects(data_dir):
    """{object path: (row count, size in bytes)} of every Parquet file in ingot's catalog."""
    con = sqlite3.connect(os.path.join(data_dir, "catalog.sqlite"))
    try:
        rows = con.execute("SELECT n.name, t.name, p.partition_key, f.object_store_id, f.row_count, "
                           "f.file_size_bytes FROM parquet_file f JOIN partition p ON p.id = f.partition_id "
                           "JOIN table_name t ON t.id = f.table_id JOIN namespace n ON n.id = f.namespace_id").fetchall()
    finally:
        con.close()
    return {f"{urllib.parse.quote(ns, safe='')}/{urllib.parse.quote(t, safe='')}/{day}/{uuid}.parquet": (n, size)
            for ns, t, day, uuid, n, size in rows}


def stored_rows(store, data_dir, exact_bucket=True):
    """The rows of every object the catalog names, read from the bucket. Each named object must be
    in the bucket with the catalog's size and row count; with exact_bucket nothing else may be.

    A put that ingot abandoned stays in s3rver's backlog and is carried out after SIGCONT, maybe
    after ingot's successful retry of it: the same bytes to the same key. s3rver (unlike S3) writes
    an object in place, truncating it first, so a read meanwhile may see it short: such a read is
    repeated until the object has the catalog's size (it ends whole: every late put holds all of
    the same bytes)."""
    named = catalog_objects(data_dir)
    keys = set(store.keys())
    assert set(named) <= keys, ("catalog names objects the bucket lacks", set(named) - keys)
    if exact_bucket:
        assert keys == set(named), ("objects no catalog row names", keys - set(named))
    tmp = tempfile.mkdtemp(prefix="ingot-hang-objects-")
    try:
        files = []
        for k, key in enumerate(sorted(named)):
            deadline = time.time() + 20
            while len(data := store.get(key)) != named[key][1]:
                assert time.time() < deadline, (key, len(data), named[key][1])
                time.sleep(0.2)
            path = os.path.join(tmp, f"{k}.parquet")
            with open(path, "wb") as f:
                f.write(data)
            files.append(path)
        rows = read_parquet(files) if files else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert len(rows) == sum(n for n, _ in named.values()), (len(rows), named)
    return rows


def check_stored_once(store, s, acked, exact_bucket=True):
    """The WAL is empty and every acknowledged row is in the store exactly once."""
    assert wal_segments(s.data_dir) == [], wal_segments(s.data_dir)
    rows = stored_rows(store, s.data_dir, exact_bucket=exact_bucket)
    check_load(rows, acked)
    assert len(rows) == ROWS * len(acked), (len(rows), len(acked))
    return rows


def check_query(s, acked, tag):
    """The query answer holds every acknowledged (tag) request whole (none was persisted yet)."""
    rows = [r for r in s.rows("hang") if r["w"] == tag]
    check_load(rows, [a for a in acked if a[0] == tag])


def test_hanging_store_pauses_ingest_then_everything_persists_once():
    if not have_s3rver():
        return
    with ingot_on_s3rver() as (store, s):
        acked = []
        write_until_persisted(s, 6, acked)

        store.stop_process()
        stall_until_refused(s, acked, "stall")
        check_query(s, acked, "stall")  # queries answer while the store hangs
        m = s.metrics()
        assert m["ingot_persist_saturated"] == 1, m
        # the put is abandoned and retried again and again, not one request wedged forever
        first = put_retries(s)
        deadline = time.time() + 6 * TIMEOUT_S + 10
        while put_retries(s) < first + 2:
            assert time.time() < deadline, ("put retries stuck", first, s.log_text())
            assert write(s, "refused", 0).status == 503
            check_query(s, acked, "stall")
            time.sleep(0.5)
        assert all(r["w"] != "refused" for r in s.rows("hang"))
        assert s.request("GET", "/health").status == 200

        store.continue_process()
        write_taken(s, "thaw", 0, acked)  # taken again once the backlog is persisted
        for i in range(5):
            write_taken(s, "post", i, acked)
        assert s.stop() == 0, s.log_text()
        with open(s.log_path, errors="replace") as f:
            assert f"no byte moved for {TIMEOUT_S} s" in f.read()  # abandoned by the timeout
        rows = check_stored_once(store, s, acked)
        assert not [r for r in rows if r["w"] == "refused"]


def test_snapshot_backlog_makes_writes_wait_not_grow_memory():
    """With room in the persist queue (depth 250) but a store that hangs, hot snapshots cannot
    pile up in memory: once those not yet persisted hold more than 4 x the hot threshold
    (4 x 5,000 bytes), a write waits for them before it is parsed, gets 503 + Retry-After after
    10 s, and a write waiting when the store answers again goes through. Nothing acknowledged is
    lost or stored twice."""
    if not have_s3rver():
        return
    with ingot_on_s3rver(queue_depth=250) as (store, s):
        acked = []
        write_until_persisted(s, 4, acked)

        store.stop_process()
        i, t = 0, time.time()
        while (r := write(s, "stall", i)).status == 204:
            acked.append(("stall", i, ROWS))
            i += 1
            t = time.time()
            assert i < 200, "writes never waited for the snapshot backlog"
        waited = time.time() - t
        assert r.status == 503 and r.headers.get("retry-after") == "1", r
        assert "snapshots waiting to be persisted" in r.json()["message"], r.json()
        assert 9 < waited < 20, waited
        m = s.metrics()
        assert m["ingot_persist_saturated"] == 0, m  # the memory bound, not the queue
        assert m["ingot_buffer_snapshot_bytes"] > 4 * 5000, m
        assert m["ingot_write_persist_waits_total"] >= 1, m
        check_query(s, acked, "stall")  # queries answer meanwhile

        result = {}

        def waiting_write():
            result["r"] = write(s, "thaw", 0)

        th = threading.Thread(target=waiting_write)
        th.start()
        time.sleep(1)
        assert th.is_alive(), "a write went through while the backlog stood"
        store.continue_process()
        th.join(30)
        assert not th.is_alive() and result["r"].status == 204, result
        acked.append(("thaw", 0, ROWS))
        assert s.stop() == 0, s.log_text()
        check_stored_once(store, s, acked)


def freeze_with_unpersisted_rows(s, store, acked):
    """Rows persisted, then rows that cannot be: the store is frozen and the queue full."""
    for i in range(4):
        write_taken(s, "pre", i, acked)
    store.stop_process()
    stall_until_refused(s, acked, "stall")


def test_graceful_stop_while_store_hangs_completes_once_it_answers():
    if not have_s3rver():
        return
    with ingot_on_s3rver() as (store, s):
        acked = []
        freeze_with_unpersisted_rows(s, store, acked)
        first = put_retries(s)
        s.proc.send_signal(signal.SIGTERM)
        # the final persist keeps abandoning and retrying its puts, and the stop waits for them
        deadline = time.time() + 6 * TIMEOUT_S + 10
        while put_retries(s) < first + 2:
            assert time.time() < deadline, ("put retries stuck during the stop", first, s.log_text())
            time.sleep(0.5)
        assert s.proc.poll() is None, s.log_text()
        r = write(s, "late", 0)
        assert r.status == 503 and "shutting down" in r.json()["message"], r
        check_query(s, acked, "stall")  # still answered while the final persist waits
        store.continue_process()
        assert s.wait_exit(45) == 0, s.log_text()
        check_stored_once(store, s, acked)


def test_second_signal_while_store_hangs_exits_and_restart_replays():
    if not have_s3rver():
        return
    with ingot_on_s3rver() as (store, s):
        acked = []
        freeze_with_unpersisted_rows(s, store, acked)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert s.proc.poll() is None
        t0 = time.time()
        s.proc.send_signal(signal.SIGTERM)
        assert s.wait_exit(10) == 1, s.log_text()
        assert time.time() - t0 < 5
        assert wal_segments(s.data_dir), "the WAL must still hold the unpersisted writes"
        store.continue_process()
        s.start()  # replays the WAL: persists what the frozen store never got
        assert s.rows("hang") == []
        assert s.stop() == 0, s.log_text()
        # a put abandoned at the exit may land later: an object no catalog row names (S3 orphans
        # are left to an external collector), so only the catalog's objects count
        check_stored_once(store, s, acked, exact_bucket=False)


def test_signal_during_start_up_on_a_frozen_store_exits_at_once():
    """Start-up waits on the store (its open lists the bucket): a SIGTERM then ends the process at
    once with status 1 instead of staying pending until the store answers or times out."""
    if not have_s3rver():
        return
    store = S3rver()
    tmp = tempfile.mkdtemp(prefix="ingot-bb-")
    try:
        store.stop_process()
        port, grpc_port = free_port(), free_port()
        with open(os.path.join(tmp, "server.log"), "wb") as log:
            proc = subprocess.Popen(
                [BIN, "serve", "--data-dir", os.path.join(tmp, "data"), "--http-bind",
                 f"127.0.0.1:{port}", "--grpc-bind", f"127.0.0.1:{grpc_port}", "--object-store",
                 "s3", "--s3-endpoint", store.url, "--s3-bucket", BUCKET,
                 "--object-store-timeout", "60"],
                stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER"))
            time.sleep(1.0)
            assert proc.poll() is None, "start-up should be waiting on the frozen store"
            t0 = time.time()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("SIGTERM during start-up did not end the process")
            assert rc == 1 and time.time() - t0 < 5
        with open(os.path.join(tmp, "server.log"), "rb") as f:
            assert b"during start-up" in f.read()
    finally:
        store.continue_process()
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
