"""Black-box test harness: starts the real build/ingot on free loopback ports (HTTP and gRPC) and
talks HTTP to it; gRPC goes through the real @grpc/grpc-js client (tests/readers/grpc_client.mjs).

Only the Python standard library is used. A test is a function named test_* in a module of this
folder; run.py discovers and runs them. Each test gets its own data directory and server.
"""
import glob
import gzip
import random
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

READER = os.path.join(os.path.dirname(__file__), "..", "readers", "read_parquet.mjs")
GRPC_CLIENT = os.path.join(os.path.dirname(__file__), "..", "readers", "grpc_client.mjs")
BIN = os.environ.get("INGOT_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "ingot"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def jsonl(self):
        return [json.loads(l) for l in self.body.decode().splitlines() if l.strip()]

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Ingot:
    """One ingot process. Use as a context manager or call stop()."""

    def __init__(self, data_dir=None, args=(), env=None, expect_start=True):
        self.tmp = None
        if data_dir is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="ingot-bb-")
            data_dir = self.tmp.name
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env
        self.proc = None
        self.log_path = os.path.join(data_dir, "server.log")
        if expect_start:
            self.start()

    def start(self, extra_args=()):
        self.port = free_port()
        self.grpc_port = free_port()
        cmd = [BIN, "serve", "--data-dir", self.data_dir, "--http-bind", f"127.0.0.1:{self.port}",
               "--grpc-bind", f"127.0.0.1:{self.grpc_port}", "--log-level", "debug"] + self.args + list(extra_args)
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ingot exited with {self.proc.returncode} at start:\n{self.log_text()}")
            try:
                if self.request("GET", "/health").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("ingot did not become healthy:\n" + self.log_text())

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-6000:]
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read())
        finally:
            conn.close()

    def write(self, lp, db="db", api="v2", params="", headers=None, gzip_body=False):
        body = lp.encode() if isinstance(lp, str) else lp
        h = dict(headers or {})
        if gzip_body:
            body = gzip.compress(body)
            h["Content-Encoding"] = "gzip"
        if api == "v2":
            path = f"/api/v2/write?bucket={urllib.parse.quote(db)}&org=o"
        elif api == "v1":
            path = f"/write?db={urllib.parse.quote(db)}"
        else:
            path = f"/api/v3/write_lp?db={urllib.parse.quote(db)}"
        if params:
            path += "&" + params
        return self.request("POST", path, body=body, headers=h)

    def query(self, table, db="db", fmt="jsonl", **params):
        q = {"db": db, "table": table, "format": fmt}
        q.update({k: str(v) for k, v in params.items()})
        return self.request("GET", "/api/v1/query_table?" + urllib.parse.urlencode(q))

    def rows(self, table, db="db", **params):
        r = self.query(table, db=db, **params)
        assert r.status == 200, r
        return r.jsonl()

    def grpc(self, command, **args):
        """One grpc_client.mjs command against this server (see grpc_client); the JSON answer."""
        return grpc_client(f"127.0.0.1:{self.grpc_port}", command, args)

    def metrics(self):
        text = self.request("GET", "/metrics").body.decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout=60):
        """Wait for the process to end (on its own, or after a signal already sent); its status."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("ingot did not stop within %ss:\n%s" % (timeout, self.log_text()))
        code = self.proc.returncode
        self.log.close()
        self.proc = None
        return code

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.proc = None

    def cleanup(self):
        if self.proc:
            self.kill9()
        if self.tmp:
            self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if self.proc:
                code = self.stop()
                assert code == 0, f"ingot exit status {code}:\n{self.log_text()}"
        finally:
            self.cleanup()


def run_ingot(*args, env=None, timeout=30):
    """Run the ingot binary to completion (not serve); returns (status, stdout, stderr)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([BIN] + list(args), capture_output=True, timeout=timeout, env=e)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def _exact_ints(v):
    """v with every integer beyond 2**53 as a decimal string: JavaScript's JSON.parse would round
    it (grpc_client.mjs takes 64-bit values as strings)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and abs(v) > 2**53:
        return str(v)
    if isinstance(v, dict):
        return {k: _exact_ints(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_exact_ints(x) for x in v]
    return v


def grpc_client(target, command, args=None, timeout=120):
    """Run `node grpc_client.mjs target command -` (args on standard input: a command line is too
    short for a sequence of large writes) and return its JSON answer: {"ok": true, ...}
    or {"ok": false, "code": "NOT_FOUND", "details": "..."}. 64-bit integers come back as strings."""
    out = subprocess.run(["node", GRPC_CLIENT, target, command, "-"], input=json.dumps(_exact_ints(args or {})).encode(),
                         capture_output=True, timeout=timeout)
    assert out.returncode == 0, (command, out.stderr.decode()[-3000:])
    return json.loads(out.stdout)


def parquet_files(data_dir):
    # os.walk, not glob: encoded names such as "..%20x" start with a dot, which glob skips
    out = []
    for root, _, names in os.walk(os.path.join(data_dir, "objects")):
        out += [os.path.join(root, n) for n in names if n.endswith(".parquet")]
    return sorted(out)


def wal_segments(data_dir):
    return sorted(glob.glob(os.path.join(data_dir, "wal", "*.wal")))


def read_parquet(files):
    """Rows of the files as dicts (DuckDB), each with the file it came from under '_file'."""
    rows = []
    for i in range(0, len(files), 500):  # one reader process per 500 files
        out = subprocess.run(["node", READER, "--with-file"] + files[i:i + 500], capture_output=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        rows += [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]
    return rows




def persisted_rows(data_dir, table, db="db"):
    """The rows of table in the Parquet files of the file object store."""
    from urllib.parse import quote
    part = f"{os.sep}{quote(db, safe='')}{os.sep}{quote(table, safe='')}{os.sep}"
    return read_parquet([f for f in parquet_files(data_dir) if part in f])


def as_int(v):
    """A 64-bit integer read back from Parquet (the reader prints them as strings)."""
    return int(v) if isinstance(v, str) else v


T0 = 1767225600000000000  # 2026-01-01T00:00:00Z
DAY = 86400 * 10**9


def load_writer(s, table, tag, acked, stop, errors, sizes=(1, 200), days=1):
    """Until stop is set, write requests of n rows `table,w=<tag>,b=b<i> v=0..n-1,n=<n>` (spread
    over `days` days) and record each acknowledged one as (tag, i, n); a status other than 204 or
    503 goes to errors. Returns when the server goes away (that request was not acknowledged)."""
    i = 0
    while not stop.is_set():
        n = random.randint(*sizes)
        lp = "".join(f"{table},w={tag},b=b{i} v={j}i,n={n}i {T0 + (i % days) * DAY + j}\n" for j in range(n))
        try:
            r = s.write(lp)
        except (OSError, http.client.HTTPException):
            return
        if r.status == 204:
            acked.append((tag, i, n))
        elif r.status != 503:
            errors.append(r)
        i += 1


def kill9_under_load(s, table, acked, errors, rounds, writers, pause=(1.0, 2.0), **load_args):
    """`rounds` times: `writers` load_writer threads on table (tags "<round>x<thread>";
    load_args go to load_writer), kill -9 after a random pause in `pause` seconds, wait for the
    writers, check none saw an unexpected status, and start again (the restart replays)."""
    for round_ in range(rounds):
        stop = threading.Event()
        threads = [threading.Thread(target=load_writer, args=(s, table, f"{round_}x{t}", acked, stop, errors),
                                    kwargs=load_args)
                   for t in range(writers)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(*pause))
        s.kill9()
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        s.start()


def check_load(rows, acked):
    """Rows read back after load_writer: every acknowledged request is there whole, every request
    present is whole (none half applied), and no row is there twice."""
    got, sizes, seen = {}, {}, set()
    for r in rows:
        key = (r["w"], r["b"])
        row = key + (str(r["time"]),)
        assert row not in seen, ("row twice", row, r.get("_file"))
        seen.add(row)
        got.setdefault(key, set()).add(as_int(r["v"]))
        sizes[key] = as_int(r["n"])
    for tag, i, n in acked:
        vals = got.get((tag, f"b{i}"))
        assert vals == set(range(n)), (tag, i, n, vals and sorted(vals)[:5])
    for key, vals in got.items():
        assert vals == set(range(sizes[key])), (key, sizes[key], sorted(vals)[:5])
