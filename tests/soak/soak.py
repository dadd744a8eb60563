#!/usr/bin/env python3
"""Soak: runs the real ingot (INGOT_BIN, default build/ingot) for --seconds under mixed load on
loopback, in a temporary directory, and checks that it stays healthy and loses nothing.

Load, all at once:
  - HTTP writers (/api/v2/write, sometimes /write and gzip): batches of 1..3,000 rows into four
    tables and three days; some requests repeat an earlier batch's keys with new values (upserts
    across requests), some repeat a key inside the request (the repeat leaves fields out: the last
    non-null value must win), some carry one bad line (syntax, type conflict, timestamp overflow)
    and must be refused whole with 400;
  - one heavy writer: big batches into one partition, so hot partitions get persisted;
  - a gRPC writer: line protocol and columnar batches through tests/readers/grpc_client.mjs
    (one node process per few writes: node needs ~0.3 s to start, so gRPC is a small share),
    plus a Flight DoGet now and then on the same channel;
  - HTTP readers: query_table as jsonl and as Arrow IPC (every few answers decoded with
    apache-arrow), each answer checked: every batch in it whole, no key twice, no refused row;
  - a sampler: /metrics, and of the process RSS, open fds and threads (/proc/PID), WAL segment
    count and bytes, Parquet file count.
ingot runs with a short --wal-rotation-period, small --wal-segment-bytes, a small
--persist-hot-partition-bytes and a small --persist-queue-depth.

Stall: for --stall-seconds the object store fails for every new partition. At the stall the
writers move on to three new days, and before any row of them is written a file is put where each
of their partition directories must go (<data>/objects/db/<table>/<day>): every put of those
partitions fails (ENOTDIR) and is retried with back-off, the jobs keep their permits, the persist
queue fills and writes must get 503 + Retry-After while the buffer stays bounded. (ingot runs as
root here, so a read-only objects directory would not stop it; the store holds the root's fd, so
renaming the root would not either.) Then the files go and everything must recover.

At the end: SIGTERM, exit 0 and an empty WAL; then every Parquet file is read with DuckDB
(tests/readers/read_parquet.mjs, streamed) and every acknowledged write must be there exactly
once (each version of a batch in at most one file, whole, the last acknowledged version present),
nothing refused anywhere, the catalog naming exactly the files on disk.

Prints the checks ("ok"/"FAIL"), a summary and "soak: N passed, N failed"; exits 1 if a check
failed. Python standard library only; harness.py from tests/blackbox is imported, not changed.
"""
import argparse
import datetime
import gzip
import http.client
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blackbox"))
import harness  # noqa: E402
from harness import DAY, T0, Ingot, parquet_files, wal_segments  # noqa: E402

READ_ARROW = os.path.join(HERE, "..", "readers", "read_arrow.mjs")
DB = "db"
TABLES = ["soak0", "soak1", "soak2", "soak3"]
GRPC_TABLE = "soak_g"
VERSION = 1_000_000  # v = version * VERSION + j
INTRA = -7           # v of the in-request repeat of row 0 (version 0)
MIB = 1 << 20
PUT_RETRIES = 'ingot_persist_retries_total{op="put"}'


def day_key(day):
    return datetime.datetime.fromtimestamp((T0 + day * DAY) // 10**9, datetime.timezone.utc).strftime("%Y-%m-%d")


class Batch:
    """One set of rows (table, w, b): rows j = 0..n-1 at time T0 + day*DAY + j, tags w, b,
    h=h<j%8>, fields v (version*VERSION + j), n, f (j + 0.5, absent when j % 7 == 3). Each send is
    a version; outcomes[version] is 'acked', 'refused' or 'unknown' (no answer)."""
    __slots__ = ("table", "w", "b", "day", "n", "intra", "outcomes")

    def __init__(self, table, w, b, day, n, intra):
        self.table, self.w, self.b, self.day, self.n, self.intra = table, w, b, day, n, intra
        self.outcomes = {}

    def rows(self, version):
        """(j, v, n, f) of a send of this version; the intra repeat comes last as (0, INTRA, None, None)."""
        out = [(j, version * VERSION + j, self.n, None if j % 7 == 3 else j + 0.5) for j in range(self.n)]
        if self.intra and version == 0:
            out.append((0, INTRA, None, None))
        return out

    def lp(self, version):
        t0 = T0 + self.day * DAY
        lines = []
        for j, v, n, f in self.rows(version):
            fields = f"v={v}i" + (f",n={n}i" if n is not None else "") + (f",f={f}" if f is not None else "")
            lines.append(f"{self.table},w={self.w},b={self.b},h=h{j % 8} {fields} {t0 + j}\n")
        return "".join(lines)

    def columnar(self, version):
        rows = self.rows(version)
        t0 = T0 + self.day * DAY
        return {"tables": [{"name": self.table, "columns": [
            {"name": "w", "type": "tag", "values": [self.w] * len(rows)},
            {"name": "b", "type": "tag", "values": [self.b] * len(rows)},
            {"name": "h", "type": "tag", "values": [f"h{r[0] % 8}" for r in rows]},
            {"name": "v", "type": "i64", "values": [r[1] for r in rows]},
            {"name": "n", "type": "i64", "values": [r[2] for r in rows]},
            {"name": "f", "type": "f64", "values": [r[3] for r in rows]},
            {"name": "time", "type": "time", "values": [t0 + r[0] for r in rows]}]}]}


class Soak:
    def __init__(self, opts):
        self.o = opts
        self.lock = threading.Lock()
        self.batches = {}       # (table, w, b) -> Batch
        self.bad = {}           # (table, w, b) -> reason of a request with a bad line
        self.stats = {"acked_requests": 0, "acked_rows": 0, "http_503": 0, "grpc_exhausted": 0,
                      "unknown": 0, "q_jsonl": 0, "q_arrow": 0, "q_arrow_decoded": 0, "q_flight": 0,
                      "q_refused": 0, "q_404": 0, "scrapes": 0, "grpc_writes": 0, "resends": 0}
        self.refused = {}       # reason -> [requests, rows]
        self.errors = []        # unexpected things seen by the load threads
        self.samples = []       # dicts, see sample()
        self.epoch = 0          # writers write days 3*epoch .. 3*epoch+2
        self.stop_load = threading.Event()
        self.stall = None       # (start, end) monotonic seconds since t0
        self.first_503_in_stall = None
        self.recovered_at = None
        self.retry_after_missing = 0
        self.query_violations = []

    # ---- bookkeeping -------------------------------------------------------------------------
    def now(self):
        return time.monotonic() - self.t0

    def error(self, what):
        with self.lock:
            if len(self.errors) < 1000:
                self.errors.append(f"{self.now():.1f}s {what}")

    def days(self):
        e = self.epoch
        return [3 * e, 3 * e + 1, 3 * e + 2]

    def record(self, batch, version, outcome, rows, reason=None):
        with self.lock:
            batch.outcomes[version] = outcome
            if outcome == "acked":
                self.stats["acked_requests"] += 1
                self.stats["acked_rows"] += rows
                st = self.stall
                if st and self.now() > st[1] and self.recovered_at is None:
                    self.recovered_at = self.now()
            elif outcome == "refused":
                r = self.refused.setdefault(reason, [0, 0])
                r[0] += 1
                r[1] += rows
            else:
                self.stats["unknown"] += 1

    def refuse_bad(self, reason, rows):
        with self.lock:
            r = self.refused.setdefault(reason, [0, 0])
            r[0] += 1
            r[1] += rows

    # ---- writers -----------------------------------------------------------------------------
    def http_write(self, body, api, gz):
        headers = {}
        if gz:
            body = gzip.compress(body.encode())
            headers["Content-Encoding"] = "gzip"
        return self.s.write(body, db=DB, api=api, headers=headers)

    def writer(self, w, sizes, tables, rows_per_s, heavy=False):
        rng = random.Random(hash(w) ^ self.o.seed)
        i = 0
        mine = []  # recently acknowledged batches, for resends
        while not self.stop_load.is_set():
            t_start = time.monotonic()
            i += 1
            roll = rng.random()
            api = "v1" if rng.random() < 0.1 else "v2"
            gz = rng.random() < 0.2
            try:
                if not heavy and roll < 0.04:  # a request with one bad line: 400, nothing applied
                    n = rng.randint(2, 300)
                    table, day = rng.choice(tables), rng.choice(self.days())
                    key = (table, w, f"x{i}")
                    batch = Batch(table, w, f"x{i}", day, n, False)
                    reason = rng.choice(["bad_line_syntax", "bad_line_type", "bad_line_timestamp"])
                    with self.lock:
                        self.bad[key] = reason
                    lines = batch.lp(0).splitlines(keepends=True)
                    t0 = T0 + day * DAY
                    badline = {"bad_line_syntax": f"{table},w={w},b=x{i},h=h0 v= {t0}\n",
                               "bad_line_type": f"{table},w={w},b=x{i},h=h0 v=1.5 {t0}\n",
                               "bad_line_timestamp": f"{table},w={w},b=x{i},h=h0 v=1i 99999999999999999999\n"}[reason]
                    lines.insert(rng.randint(0, len(lines)), badline)
                    r = self.http_write("".join(lines), api, gz)
                    if r.status == 400:
                        self.refuse_bad(reason, n + 1)
                    elif r.status == 503:
                        self.note_503(r)
                        self.refuse_bad("busy_503", n + 1)
                    else:
                        self.error(f"bad request {key} {reason}: {r!r}")
                    rows = n
                else:
                    if not heavy and roll < 0.07 and mine:  # repeat an acknowledged batch's keys
                        batch = rng.choice(mine)
                        version = max(batch.outcomes) + 1
                        with self.lock:
                            self.stats["resends"] += 1
                    else:
                        n = rng.randint(*rng.choices(sizes, weights=[70, 25, 5])[0])
                        table = tables[0] if heavy else rng.choice(tables)
                        day = self.days()[0] if heavy else rng.choice(self.days())
                        batch = Batch(table, w, f"b{i}", day, n, rng.random() < 0.1)
                        with self.lock:
                            self.batches[(table, w, batch.b)] = batch
                        version = 0
                    rows = batch.n
                    with self.lock:
                        batch.outcomes[version] = "sending"
                    try:
                        r = self.http_write(batch.lp(version), api, gz)
                    except (OSError, http.client.HTTPException) as e:
                        self.record(batch, version, "unknown", rows)
                        self.error(f"write {batch.table}/{batch.w}/{batch.b} v{version}: no answer: {e!r}")
                        continue
                    if r.status == 204:
                        self.record(batch, version, "acked", rows)
                        mine.append(batch)
                        if len(mine) > 30:
                            mine.pop(0)
                    elif r.status == 503:
                        self.note_503(r)
                        self.record(batch, version, "refused", rows, "busy_503")
                    else:
                        self.record(batch, version, "refused", rows, f"http_{r.status}")
                        self.error(f"write {batch.table}/{batch.w}/{batch.b} v{version}: {r!r}")
            except (OSError, http.client.HTTPException) as e:
                self.error(f"writer {w}: {e!r}")
                rows = 1
            pause = rows / rows_per_s - (time.monotonic() - t_start)
            if pause > 0:
                self.stop_load.wait(rng.uniform(0.5, 1.5) * pause)

    def note_503(self, r):
        with self.lock:
            self.stats["http_503"] += 1
            if r.headers.get("retry-after") is None:
                self.retry_after_missing += 1
            st = self.stall
            if st and st[0] <= self.now() and self.first_503_in_stall is None:
                self.first_503_in_stall = self.now()

    def grpc_writer(self):
        rng = random.Random(self.o.seed + 7)
        i = 0
        cycle = 0
        while not self.stop_load.wait(rng.uniform(0.5, 1.5) * self.o.grpc_every):
            cycle += 1
            calls, sent = [], []
            for _ in range(3):
                i += 1
                batch = Batch(GRPC_TABLE, "g", f"g{i}", rng.choice(self.days()), rng.randint(1, 400),
                              rng.random() < 0.2)
                with self.lock:
                    self.batches[(GRPC_TABLE, "g", batch.b)] = batch
                    batch.outcomes[0] = "sending"
                if i % 2:
                    calls.append({"command": "write", "namespace": DB, "precision": "ns", "lp": batch.lp(0)})
                else:
                    calls.append({"command": "write", "namespace": DB, "precision": "ns", "batch": batch.columnar(0)})
                sent.append(batch)
            flight = cycle % 3 == 0
            if flight:
                table, day = rng.choice(TABLES + [GRPC_TABLE]), rng.choice(self.days())
                ticket = {"namespace": DB, "table": table, "columns": ["w", "b", "time"],
                          "min_time": T0 + day * DAY, "max_time": T0 + (day + 1) * DAY}
                calls.append({"command": "doget", "ticket_raw": json.dumps(ticket)})
            try:
                res = self.s.grpc("sequence", calls=calls)["results"]
            except Exception as e:  # node failed: no answer for any of them
                for b in sent:
                    self.record(b, 0, "unknown", b.n)
                self.error(f"grpc sequence: {e!r}"[:500])
                continue
            for b, r in zip(sent, res):
                with self.lock:
                    self.stats["grpc_writes"] += 1
                if r.get("ok"):
                    self.record(b, 0, "acked", b.n)
                    if int(r.get("rows", -1)) != b.n + (1 if b.intra else 0):
                        self.error(f"grpc write {b.b}: rows {r.get('rows')}, sent {b.n} + {int(b.intra)}")
                elif r.get("code") == "RESOURCE_EXHAUSTED":
                    with self.lock:
                        self.stats["grpc_exhausted"] += 1
                    self.record(b, 0, "refused", b.n, "grpc_resource_exhausted")
                else:
                    self.record(b, 0, "refused", b.n, f"grpc_{r.get('code')}")
                    self.error(f"grpc write {b.b}: {r}"[:500])
            if flight:
                r = res[-1]
                with self.lock:
                    self.stats["q_flight"] += 1
                if r.get("ok"):
                    self.check_answer("flight", [row for p in r["partitions"] for row in p["rows"]], table)
                elif r.get("code") in ("NOT_FOUND", "RESOURCE_EXHAUSTED"):
                    with self.lock:
                        self.stats["q_refused" if r["code"] != "NOT_FOUND" else "q_404"] += 1
                else:
                    self.error(f"doget: {r}"[:500])

    # ---- readers -----------------------------------------------------------------------------
    def check_answer(self, kind, rows, table):
        """A query answer: each batch in it whole (a write is applied whole or not at all), no key
        twice (answers are de-duplicated), nothing refused."""
        got = {}
        for r in rows:
            got.setdefault((table, r["w"], r["b"]), []).append(str(r["time"]))
        bad = []
        with self.lock:
            for key, keys in got.items():
                if len(set(keys)) != len(keys):
                    bad.append(f"{kind} {key}: a key twice")
                if key in self.bad:
                    bad.append(f"{kind} {key}: rows of a refused request ({self.bad[key]})")
                    continue
                batch = self.batches.get(key)
                if batch is None:
                    bad.append(f"{kind} {key}: unknown rows")
                    continue
                if batch.outcomes and all(o == "refused" for o in batch.outcomes.values()):
                    bad.append(f"{kind} {key}: rows of a refused write")
                if len(set(keys)) != batch.n:
                    bad.append(f"{kind} {key}: {len(set(keys))} of {batch.n} rows (not whole)")
            self.query_violations += bad[:20]

    def reader(self, idx):
        rng = random.Random(self.o.seed + 100 + idx)
        k = 0
        while not self.stop_load.wait(rng.uniform(0.2, 0.8) * self.o.query_every):
            k += 1
            table = rng.choice(TABLES + [GRPC_TABLE])
            day = rng.choice(self.days())
            fmt = "arrow" if k % 2 else "jsonl"
            try:
                r = self.s.query(table, db=DB, fmt=fmt, columns="w,b,time", min_time=T0 + day * DAY,
                                 max_time=T0 + (day + 1) * DAY)
            except (OSError, http.client.HTTPException) as e:
                self.error(f"query {table}: {e!r}")
                continue
            with self.lock:
                self.stats["q_" + fmt] += 1
            if r.status == 404:
                with self.lock:
                    self.stats["q_404"] += 1
                continue
            if r.status == 503:
                with self.lock:
                    self.stats["q_refused"] += 1
                continue
            if r.status != 200:
                self.error(f"query {table} {fmt}: {r!r}")
                continue
            if fmt == "jsonl":
                self.check_answer("jsonl", r.jsonl(), table)
            elif not r.body.startswith(b"\xff\xff\xff\xff"):
                self.error(f"arrow answer does not start with an IPC message: {r.body[:16]!r}")
            elif k % 5 == 1:  # decode one arrow answer in five with apache-arrow
                out = subprocess.run(["node", READ_ARROW], input=r.body, capture_output=True, timeout=120)
                if out.returncode != 0:
                    self.error(f"read_arrow: {out.stderr.decode()[-500:]}")
                    continue
                lines = [json.loads(x) for x in out.stdout.decode().splitlines()]
                with self.lock:
                    self.stats["q_arrow_decoded"] += 1
                self.check_answer("arrow", lines[1:], table)

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self):
        pid = self.s.proc.pid
        d = {"t": round(self.now(), 1)}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        d["rss_kb"] = int(line.split()[1])
                    elif line.startswith("Threads:"):
                        d["threads"] = int(line.split()[1])
            d["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return None
        segs = wal_segments(self.s.data_dir)
        d["wal_segments"] = len(segs)
        d["wal_bytes"] = sum(os.path.getsize(p) for p in segs if os.path.exists(p))
        d["parquet_files"] = len(parquet_files(self.s.data_dir))
        try:
            m = self.s.metrics()
            with self.lock:
                self.stats["scrapes"] += 1
            d["buffer_bytes"] = int(m.get("ingot_buffer_bytes", -1))
            d["saturated"] = int(m.get("ingot_persist_saturated", -1))
            d["jobs"] = int(m.get('ingot_persist_jobs{state="outstanding"}', -1))
            d["closed_segments"] = int(m.get("ingot_wal_closed_segments", -1))
            self.last_metrics = m
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.error(f"metrics: {e!r}")
        self.samples.append(d)
        return d

    def sampler(self):
        while not self.stop_load.wait(self.o.sample_every):
            d = self.sample()
            if d and self.o.verbose:
                print(json.dumps(d), flush=True)

    # ---- the stall ---------------------------------------------------------------------------
    def blockers(self, epoch):
        out = []
        for table in TABLES + [GRPC_TABLE]:
            for day in (3 * epoch, 3 * epoch + 1, 3 * epoch + 2):
                out.append(os.path.join(self.s.data_dir, "objects", urllib.parse.quote(DB, safe=""),
                                        urllib.parse.quote(table, safe=""), day_key(day)))
        return out

    def start_stall(self):
        paths = self.blockers(self.epoch + 1)
        for p in paths:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write("soak: the object store fails here\n")
        self.blocked = paths
        with self.lock:
            self.stall = (self.now(), self.now() + self.o.stall_seconds)
        self.epoch += 1  # no row of these days was written before their blockers

    def end_stall(self):
        for p in self.blocked:
            os.remove(p)

    # ---- the run -----------------------------------------------------------------------------
    def run(self):
        o = self.o
        args = ["--log-level", "info", "--wal-rotation-period", str(o.rotation), "--wal-segment-bytes",
                str(o.segment_bytes), "--persist-hot-partition-bytes", str(o.hot_bytes),
                "--persist-queue-depth", str(o.queue_depth), "--persist-workers", str(o.persist_workers)]
        self.s = Ingot(args=args)
        self.t0 = time.monotonic()
        self.last_metrics = {}
        self.first = self.sample()
        if not self.first:
            raise RuntimeError("cannot sample the ingot process")
        sizes = [(1, 50), (50, 500), (500, 3000)]
        threads = [threading.Thread(target=self.writer, args=(f"h{k}", sizes, TABLES, o.rate / o.writers),
                                    daemon=True) for k in range(o.writers)]
        threads.append(threading.Thread(target=self.writer, args=("hv", [(1500, 3000)] * 3, TABLES,
                                                                     o.heavy_rate, True), daemon=True))
        if o.grpc_every > 0:
            threads.append(threading.Thread(target=self.grpc_writer, daemon=True))
        threads += [threading.Thread(target=self.reader, args=(k,), daemon=True) for k in range(o.readers)]
        sampler = threading.Thread(target=self.sampler, daemon=True)
        for t in threads + [sampler]:
            t.start()
        self.warmup = max(10.0, 0.15 * o.seconds)
        stall_at = max(self.warmup + 2, 0.25 * o.seconds)
        stalled = False
        while self.now() < o.seconds:
            if self.s.proc.poll() is not None:
                self.error(f"ingot exited with {self.s.proc.returncode} during the run")
                break
            if not stalled and self.now() >= stall_at and o.stall_seconds > 0:
                self.start_stall()
                stalled = True
                print(f"stall: {self.now():.1f}s, {len(self.blocked)} partitions blocked", flush=True)
            if stalled and self.blocked and self.now() >= self.stall[1]:
                self.end_stall()
                print(f"stall over: {self.now():.1f}s", flush=True)
                self.blocked = []
            time.sleep(0.2)
        if stalled and self.blocked:
            self.end_stall()
        # past the end: wait until writes are taken again after the stall (at most 60 s)
        deadline = time.monotonic() + 60
        while stalled and self.recovered_at is None and time.monotonic() < deadline and self.s.proc.poll() is None:
            time.sleep(0.5)
        self.stop_load.set()
        for t in threads + [sampler]:
            t.join(180)
            if t.is_alive():
                self.error(f"thread {t.name} did not stop")
        self.duration = self.now()
        # the load is gone: let connection threads and persists settle, then the last sample
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.s.proc.poll() is None:
            d = self.sample()
            if d and d.get("saturated") == 0 and d.get("jobs") == 0:
                break
            time.sleep(1)
        time.sleep(2)
        self.last = self.sample()
        self.final_metrics = dict(self.last_metrics)
        t = time.monotonic()
        try:
            self.exit_code = self.s.stop(signal.SIGTERM, timeout=o.stop_timeout)
        except AssertionError as e:
            self.exit_code = None
            self.error(str(e)[:2000])
        self.stop_seconds = time.monotonic() - t
        self.wal_left = wal_segments(self.s.data_dir)

    # ---- the end: Parquet against the ledger -------------------------------------------------
    def check_parquet(self):
        """Streams every row of every Parquet file; returns (violations, rows, files, info)."""
        files = parquet_files(self.s.data_dir)
        seen = {}      # (key, file) -> [bitmap, set of versions]
        problems = []
        nrows = 0

        def problem(msg):
            if len(problems) < 50:
                problems.append(msg)

        for i in range(0, len(files), 300):
            p = subprocess.Popen(["node", harness.READER, "--with-file"] + files[i:i + 300],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for line in p.stdout:
                r = json.loads(line)
                nrows += 1
                table = r["_file"].split(os.sep)[-3]
                key = (table, r["w"], r["b"])
                if key in self.bad:
                    problem(f"row of a refused request {key} ({self.bad[key]}) in {r['_file']}")
                    continue
                batch = self.batches.get(key)
                if batch is None:
                    problem(f"unknown row {r}")
                    continue
                j = int(r["time"]) - (T0 + batch.day * DAY)
                if not 0 <= j < batch.n:
                    problem(f"{key}: row with time offset {j} of {batch.n}")
                    continue
                v = int(r["v"])
                if v == INTRA and j == 0 and batch.intra:
                    version = 0
                elif (v - j) % VERSION == 0:
                    version = (v - j) // VERSION
                else:
                    problem(f"{key} j={j}: v={v} is no version of it")
                    continue
                want_f = None if j % 7 == 3 else j + 0.5
                if (r["h"] != f"h{j % 8}" or int(r["n"]) != batch.n or
                        (r["f"] is None) != (want_f is None) or (want_f is not None and float(r["f"]) != want_f)):
                    problem(f"{key} j={j}: fields {r} (want n={batch.n} f={want_f})")
                if version == 0 and j == 0 and batch.intra and v != INTRA:
                    problem(f"{key}: row 0 kept the first value, not the in-request repeat ({r})")
                cell = seen.setdefault((key, r["_file"]), [bytearray(batch.n), set()])
                if cell[0][j]:
                    problem(f"{key} j={j} twice in {r['_file']}")
                cell[0][j] = 1
                cell[1].add(version)
            err = p.stderr.read().decode()
            if p.wait() != 0:
                problem(f"read_parquet failed: {err[-1000:]}")
        # per batch: its files
        per_batch = {}
        for (key, f), (bits, versions) in seen.items():
            per_batch.setdefault(key, []).append((f, bits, versions))
        info = {"batches_checked": 0, "batches_in_two_or_more_files": 0, "unknown_outcome_batches": 0}
        for key, batch in self.batches.items():
            acked = [v for v, o in batch.outcomes.items() if o == "acked"]
            unknown = [v for v, o in batch.outcomes.items() if o not in ("acked", "refused")]
            allowed = set(acked) | set(unknown)
            parts = per_batch.get(key, [])
            info["batches_checked"] += 1
            if unknown:
                info["unknown_outcome_batches"] += 1
            if len(parts) > 1:
                info["batches_in_two_or_more_files"] += 1
            versions_in_files = []
            for f, bits, versions in parts:
                if len(versions) != 1:
                    problem(f"{key}: versions {sorted(versions)} mixed in {f}")
                if bits.count(1) != batch.n:
                    problem(f"{key}: {bits.count(1)} of {batch.n} rows in {f} (not whole)")
                versions_in_files += list(versions)
            for v in set(versions_in_files):
                if v not in allowed:
                    problem(f"{key}: version {v} present but {batch.outcomes.get(v, 'never sent')}")
                if versions_in_files.count(v) > 1:
                    problem(f"{key}: version {v} in {versions_in_files.count(v)} files (persisted twice)")
            if acked:
                last = max(acked)
                if not any(u > last for u in unknown) and last not in versions_in_files:
                    problem(f"{key}: last acknowledged version {last} missing (files have {sorted(versions_in_files)})")
        return problems, nrows, files, info

    def check_catalog(self, files, nrows):
        con = sqlite3.connect(os.path.join(self.s.data_dir, "catalog.sqlite"))
        try:
            cat = con.execute("SELECT object_store_id, row_count FROM parquet_file").fetchall()
        finally:
            con.close()
        on_disk = {os.path.basename(f)[:-len(".parquet")] for f in files}
        ids = {c[0] for c in cat}
        out = []
        if on_disk - ids:
            out.append(f"{len(on_disk - ids)} Parquet files not in the catalog, e.g. {sorted(on_disk - ids)[:3]}")
        if ids - on_disk:
            out.append(f"{len(ids - on_disk)} catalog files missing on disk, e.g. {sorted(ids - on_disk)[:3]}")
        if sum(c[1] for c in cat) != nrows:
            out.append(f"catalog row_count sum {sum(c[1] for c in cat)} != rows read {nrows}")
        temps = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(self.s.data_dir, "objects"))
                 for n in ns if n.startswith(".tmp~")]
        if temps:
            out.append(f"{len(temps)} temporary files left in the object store, e.g. {temps[:2]}")
        return out


def slope_per_min(points):
    """Least-squares slope of (t seconds, y) in y per minute."""
    if len(points) < 3:
        return 0.0
    mt = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    den = sum((p[0] - mt) ** 2 for p in points)
    return 60 * sum((p[0] - mt) * (p[1] - my) for p in points) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--stall-seconds", type=float, default=20)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--rate", type=float, default=3000, help="rows/s of the HTTP writers together")
    ap.add_argument("--heavy-rate", type=float, default=2000, help="rows/s of the heavy writer")
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--query-every", type=float, default=0.5)
    ap.add_argument("--grpc-every", type=float, default=3.0, help="seconds between gRPC rounds (0: none)")
    ap.add_argument("--sample-every", type=float, default=2.0)
    ap.add_argument("--rotation", default="5s")
    ap.add_argument("--segment-bytes", type=int, default=1_000_000)
    ap.add_argument("--hot-bytes", type=int, default=150_000)
    ap.add_argument("--queue-depth", type=int, default=24)
    ap.add_argument("--persist-workers", type=int, default=2)
    ap.add_argument("--rss-margin", type=float, default=0.20)
    ap.add_argument("--rss-min-growth-mib", type=float, default=16)
    ap.add_argument("--fd-margin", type=int, default=16)
    ap.add_argument("--thread-margin", type=int, default=8)
    ap.add_argument("--stop-timeout", type=float, default=180)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--samples-csv", help="write the process samples here")
    ap.add_argument("--verbose", action="store_true", help="print every sample")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    o = ap.parse_args()
    print(f"soak: {o.seconds:.0f} s against {harness.BIN}, seed {o.seed}", flush=True)
    soak = Soak(o)
    checks = []

    def check(name, ok, detail=""):
        checks.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)

    try:
        soak.run()
    except Exception:
        traceback.print_exc()
        check("run", False, "the soak itself failed")
        if getattr(soak, "s", None):
            print(soak.s.log_text()[-3000:])
            soak.s.cleanup()
        print(f"soak: {sum(checks)} passed, {len(checks) - sum(checks)} failed")
        return 1
    s = soak.s
    try:
        st = soak.stats
        m = soak.final_metrics
        samples = [d for d in soak.samples if "rss_kb" in d]
        warm = [d for d in samples if d["t"] >= soak.warmup]
        half = soak.duration / 2
        check("load answered as expected", not soak.errors,
              f"{len(soak.errors)} unexpected: {soak.errors[:5]}" if soak.errors else
              f"{st['acked_requests']} writes acknowledged")
        exercised = {"rotations": m.get("ingot_wal_rotations_total", 0),
                     "segments deleted": m.get("ingot_wal_segments_deleted_total", 0),
                     "hot enqueues": m.get("ingot_persist_hot_partition_enqueues_total", 0),
                     "files": m.get("ingot_persist_files_total", 0)}
        check("rotations, segment deletions and hot persists happened", all(v > 0 for v in exercised.values()),
              ", ".join(f"{k} {v:.0f}" for k, v in exercised.items()))
        if o.stall_seconds > 0 and soak.stall:
            s0, s1 = soak.stall
            check("back-pressure: 503 + Retry-After while the store failed",
                  soak.first_503_in_stall is not None and soak.retry_after_missing == 0,
                  f"first 503 {soak.first_503_in_stall - s0:.1f}s into the stall" if soak.first_503_in_stall
                  else "no 503 during the stall" + (f"; {soak.retry_after_missing} without Retry-After"
                                                    if soak.retry_after_missing else ""))
            during = [d for d in samples if s0 <= d["t"] <= (soak.recovered_at or s1)]
            live_parts = 3 * (len(TABLES) + 1)
            bound = (o.queue_depth + 2 * live_parts) * (o.hot_bytes + 3000 * 80)
            bmax = max((d.get("buffer_bytes", 0) for d in during), default=0)
            check("memory bounded while the store failed", bmax <= bound,
                  f"buffer max {bmax / MIB:.1f} MiB (bound {bound / MIB:.1f}), RSS max "
                  f"{max((d['rss_kb'] for d in during), default=0) / 1024:.0f} MiB")
            rec = soak.recovered_at
            check("recovered after the stall", rec is not None and (soak.last or {}).get("saturated") == 0,
                  f"writes acknowledged again {rec - s1:.1f}s after the store came back" if rec else "never")
        check("queries whole, de-duplicated, nothing refused in them", not soak.query_violations,
              "; ".join(soak.query_violations[:5]))
        rss = [(d["t"], d["rss_kb"] / 1024) for d in warm]
        rss_slope = last_slope = 0.0
        if rss:
            pre = [y for t, y in rss if not soak.stall or t < soak.stall[0]] or [rss[0][1]]
            ref = statistics.median(pre)
            end = statistics.median(y for _, y in rss[-3:])
            rss_slope = slope_per_min(rss)
            last_slope = slope_per_min([p for p in rss if p[0] >= half])
            grew = end > ref * (1 + o.rss_margin) and end - ref > o.rss_min_growth_mib and last_slope > 0
            check("RSS flat after warm-up", not grew,
                  f"{ref:.0f} MiB before the stall -> {end:.0f} MiB at the end, last-half slope "
                  f"{last_slope:+.2f} MiB/min")
        first, last = soak.first, soak.last or {}
        fd_ok = last.get("fds", 10**9) <= first["fds"] + o.fd_margin
        th_ok = last.get("threads", 10**9) <= first["threads"] + o.thread_margin
        check("no fd leak", fd_ok, f"first {first['fds']}, last {last.get('fds')}, "
              f"max {max(d['fds'] for d in samples)}")
        check("no thread leak", th_ok, f"first {first['threads']}, last {last.get('threads')}, "
              f"max {max(d['threads'] for d in samples)}")
        check("clean stop: exit 0, WAL empty", soak.exit_code == 0 and not soak.wal_left,
              f"exit {soak.exit_code} after {soak.stop_seconds:.1f}s, WAL left {soak.wal_left}")
        t = time.monotonic()
        problems, nrows, files, info = soak.check_parquet()
        check_s = time.monotonic() - t
        check("every acknowledged row in Parquet exactly once, nothing refused",
              not problems, "; ".join(problems[:8]) if problems else
              f"{nrows} rows in {len(files)} files, {info['batches_checked']} batches, "
              f"{info['batches_in_two_or_more_files']} upserted batches in 2+ files, read in {check_s:.0f}s")
        cat = soak.check_catalog(files, nrows)
        check("catalog names exactly the files on disk", not cat, "; ".join(cat))
        # summary
        ys = [y for _, y in rss] or [0]
        print("summary:")
        print(f"  duration {soak.duration:.0f} s (+ stop {soak.stop_seconds:.1f} s), seed {o.seed}")
        print(f"  rows acknowledged {st['acked_rows']} (resends counted again) in {st['acked_requests']} writes "
              f"({st['grpc_writes']} over gRPC, {st['resends']} resends of earlier keys); no answer {st['unknown']}")
        print("  refused: " + (", ".join(f"{k} {v[0]} requests / {v[1]} rows" for k, v in sorted(soak.refused.items()))
                                or "none"))
        print(f"  503s seen: HTTP {st['http_503']}, gRPC RESOURCE_EXHAUSTED {st['grpc_exhausted']}; "
              f"persist saturations {m.get('ingot_persist_saturations_total', 0):.0f}")
        print(f"  queries: jsonl {st['q_jsonl']}, arrow {st['q_arrow']} ({st['q_arrow_decoded']} decoded), "
              f"flight {st['q_flight']}, 404 {st['q_404']}, refused {st['q_refused']}; metrics scrapes {st['scrapes']}")
        print(f"  RSS after warm-up (MiB): min {min(ys):.0f} median {statistics.median(ys):.0f} max {max(ys):.0f}; "
              f"slope {rss_slope:+.2f} MiB/min overall, {last_slope:+.2f} over the last half")
        print(f"  fds first/last/max {first['fds']}/{last.get('fds')}/{max(d['fds'] for d in samples)}; "
              f"threads {first['threads']}/{last.get('threads')}/{max(d['threads'] for d in samples)}")
        print(f"  WAL segments max {max(d['wal_segments'] for d in samples)}, bytes max "
              f"{max(d['wal_bytes'] for d in samples) / MIB:.1f} MiB; Parquet files {len(files)}; "
              f"buffer max {max(d.get('buffer_bytes', 0) for d in samples) / MIB:.1f} MiB")
        print(f"  rotations {m.get('ingot_wal_rotations_total', 0):.0f}, segments deleted "
              f"{m.get('ingot_wal_segments_deleted_total', 0):.0f}, hot enqueues "
              f"{m.get('ingot_persist_hot_partition_enqueues_total', 0):.0f}, put retries "
              f"{m.get(PUT_RETRIES, 0):.0f}")
        if o.samples_csv:
            cols = ["t", "rss_kb", "fds", "threads", "wal_segments", "wal_bytes", "parquet_files", "buffer_bytes",
                    "saturated", "jobs", "closed_segments"]
            with open(o.samples_csv, "w") as f:
                f.write(",".join(cols) + "\n")
                for d in samples:
                    f.write(",".join(str(d.get(c, "")) for c in cols) + "\n")
        if not all(checks):
            print("server log tail:\n" + s.log_text()[-3000:])
    finally:
        if o.keep:
            if s.tmp:
                s.tmp._finalizer.detach()  # TemporaryDirectory would remove it at exit
            print(f"data kept in {s.data_dir}")
        else:
            s.cleanup()
    failed = len(checks) - sum(checks)
    print(f"soak: {sum(checks)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
