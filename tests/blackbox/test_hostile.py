"""Black-box tests of hostile input and limits: names that try to leave the object store's root,
oversized headers, slow clients, too many connections, the table and column limits, gzip bombs,
and the token staying out of the log. Each attack must meet a limit with a clear error (or be
harmless), and the server must stay healthy and keep serving everyone else."""
import gzip
import http.client
import os
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.parse
import zlib

from harness import Ingot

T0 = 1767225600000000000  # 2026-01-01T00:00:00Z


# --- helpers -------------------------------------------------------------------------------

def lp_measurement(name):  # line protocol leaves backslashes before other bytes alone
    return name.replace(",", "\\,").replace(" ", "\\ ")


def lp_key(name):
    return lp_measurement(name).replace("=", "\\=")


def proc_status_kb(pid, field):
    """VmRSS (resident now) or VmHWM (the peak since the last reset_peak_rss) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS


def raw_connect(port, timeout=5):
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def read_response(sock, timeout=5):
    """Bytes the server sent until a whole response with a Content-Length arrived, the server
    closed, or `timeout` passed (b"" if it closed at once)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            data += d
            if b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return data
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def closed_by_server(sock):
    """True if the server has closed (or reset) the connection, or sent something to a client
    that asked nothing; False if it is still open and quiet."""
    sock.setblocking(False)
    try:
        sock.recv(4096)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def timed_write(s, lp, limit_s=2.0):
    t = time.time()
    r = s.write(lp)
    took = time.time() - t
    assert r.status == 204, r
    assert took < limit_s, f"a normal write took {took:.2f}s while under attack"
    return took


def tree_outside_expected(root, data_dir):
    """Every path under root that is not part of the expected data directory layout: the chain
    of directories down to data_dir, and in data_dir only server.log, LOCK, catalog.sqlite* and
    the wal/ and objects/ trees (no symbolic link anywhere)."""
    allowed_chain = set()
    p = os.path.relpath(data_dir, root)
    while p not in ("", "."):
        allowed_chain.add(p)
        p = os.path.dirname(p)
    odd = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                odd.append(rel + " (symlink)")
                continue
            if rel in allowed_chain:
                continue
            in_data = os.path.relpath(full, data_dir)
            if in_data.startswith(".."):
                odd.append(rel)
                continue
            top = in_data.split(os.sep)[0]
            if top in ("wal", "objects", "server.log", "LOCK") or top.startswith("catalog.sqlite"):
                continue
            odd.append(rel)
    return odd


def parquet_names(data_dir):
    """(namespace, table) bytes decoded from every file under objects/, which must all be
    <ns>/<table>/<YYYY-MM-DD>/<name>.parquet with no segment '.' or '..'."""
    out = set()
    objects = os.path.join(data_dir, "objects")
    for dirpath, _, filenames in os.walk(objects):
        for n in filenames:
            rel = os.path.relpath(os.path.join(dirpath, n), objects)
            parts = rel.split(os.sep)
            assert len(parts) == 4 and parts[3].endswith(".parquet"), ("unexpected object", rel)
            for seg in parts:  # ".." as a name is the directory "%2E%2E"
                assert seg not in (".", "..") and "/" not in seg and "\0" not in seg, rel
            out.add((urllib.parse.unquote_to_bytes(parts[0]), urllib.parse.unquote_to_bytes(parts[1])))
    return out


# Names that try to leave a directory or confuse a path: dots, slashes, NUL, percent-encoded
# dots, backslashes, control characters, and names just under and over 255 bytes.
HOSTILE_NAMES = ["..", "../x", "/", "a/../../b", "../../../../../../tmp/evil", "a\0b", "%2e%2e",
                 "%2e%2e%2fx", ".", "...", "..\\..\\x", "a\x01b", "a\x1fb", "\x7f", "x" * 255, "x" * 256,
                 "\u00e9" * 128, "y" * 300]


def check_refusal_http(r, what):
    assert r.status in (204, 400), (what, r)
    if r.status == 400:
        msg = r.json()["message"]
        assert msg, (what, r)


def test_path_traversal_names_http_and_grpc_stay_under_objects():
    with tempfile.TemporaryDirectory(prefix="ingot-hostile-") as root:
        data_dir = os.path.join(root, "a", "b", "data")
        os.makedirs(data_dir)
        accepted = set()  # (namespace, table) as bytes
        s = Ingot(data_dir=data_dir)
        try:
            for i, name in enumerate(HOSTILE_NAMES):
                m, k = lp_measurement(name), lp_key(name)
                ts = T0 + i
                # as the namespace (bucket), the table, a tag key and a field key
                for ns, lp, table in [(name, f"t v=1i {ts}\n", "t"),
                                      ("db", f"{m} v=1i {ts}\n", name),
                                      ("db", f"tagk,{k}=v v=1i {ts}\n", "tagk"),
                                      ("db", f"fieldk {k}=1i {ts}\n", "fieldk")]:
                    r = s.write(lp, db=ns)
                    check_refusal_http(r, (name, ns, lp))
                    if r.status == 204:
                        accepted.add((ns.encode(), table.encode()))
            # the same over gRPC: line protocol and a columnar batch (names not escaped at all)
            calls = []
            for i, name in enumerate(HOSTILE_NAMES):
                m, k = lp_measurement(name), lp_key(name)
                ts = str(T0 + 1000 + i)
                calls += [
                    ({"command": "write", "namespace": name, "precision": "ns", "lp": f"gt v=1i {ts}\n"},
                     (name, "gt")),
                    ({"command": "write", "namespace": "gdb", "precision": "ns", "lp": f"{m} v=2i {ts}\n"},
                     ("gdb", name)),
                    ({"command": "write", "namespace": "gdb", "precision": "ns", "batch": {"tables": [
                        {"name": name, "columns": [{"name": "time", "type": "time", "values": [ts]},
                                                   {"name": name, "type": "tag", "values": ["v"]},
                                                   {"name": "f" + name, "type": "i64", "values": [3]}]}]}},
                     ("gdb", name)),
                ]
            res = s.grpc("sequence", calls=[c for c, _ in calls])["results"]
            assert len(res) == len(calls)
            for (call, key), r in zip(calls, res):
                assert r["ok"] or r["code"] == "INVALID_ARGUMENT", (call, r)
                assert r["ok"] or r["details"], (call, r)
                if r["ok"]:
                    accepted.add((key[0].encode(), key[1].encode()))
            assert s.request("GET", "/health").status == 200
            code = s.stop()  # graceful: persists everything
            assert code == 0, s.log_text()
        finally:
            s.cleanup()
        # some of each kind were accepted (the test is not vacuous), some refused
        assert (b"db", b"..") in accepted and (b"gdb", b"/") in accepted and (b"...", b"gt") in accepted
        assert not {(b"..", b"t"), (b"..", b"gt"), (b"../x", b"t"), (b"a\0b", b"t"), (b"a\0b", b"gt")} & accepted
        odd = tree_outside_expected(root, data_dir)
        assert not odd, ("files outside the expected tree", odd)
        assert parquet_names(data_dir) == accepted, (parquet_names(data_dir) ^ accepted)


def test_oversized_headers_get_431_and_server_stays_healthy():
    with Ingot() as s:
        big = b"POST /api/v2/write?bucket=db HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nX-Big: " + \
            b"a" * 100_000 + b"\r\n\r\nh v=1i 1\n"
        many = b"POST /api/v2/write?bucket=db HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n" + \
            b"".join(b"X-H%d: v\r\n" % i for i in range(1000)) + b"\r\nh v=1i 1\n"
        huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 600_000 + b"\r\n\r\n"
        for req, what in [(big, b"32768 bytes"), (many, b"100 fields"), (huge, None)]:
            c = raw_connect(s.port)
            try:
                c.sendall(req)
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = read_response(c)
            c.close()
            assert resp.startswith(b"HTTP/1.1 431 "), resp[:300]
            if what:  # ours, in JSON, naming the limit (MHD's own 431 past its 128 KiB pool)
                assert b'"code":"request header fields too large"' in resp and what in resp, resp[:400]
            assert s.request("GET", "/health").status == 200
        assert s.query("h").status == 404  # neither write was applied
        # just under both limits is fine
        r = s.request("GET", "/health", headers={f"X-H{i}": "v" * 200 for i in range(90)})
        assert r.status == 200, r
        assert s.metrics()['ingot_http_requests_total{endpoint="/api/v2/write",status="431"}'] == 2


def test_slow_and_silent_clients_do_not_stop_others():
    """Slowloris: clients that send a request line then one header byte at a time, and clients
    that connect and send nothing; meanwhile normal writes and reads are answered at once."""
    with Ingot() as s:
        stop = threading.Event()
        slow, silent = [], []
        for _ in range(12):
            c = raw_connect(s.port)
            c.sendall(b"POST /api/v2/write?bucket=db HTTP/1.1\r\nHost: x\r\n")
            slow.append(c)
            silent.append(raw_connect(s.port))

        def trickle():
            i = 0
            while not stop.is_set():
                for c in slow:
                    try:
                        c.send(b"X-Slow-Header-Name-That-Never-Ends"[i % 34:i % 34 + 1])
                    except OSError:
                        pass
                i += 1
                stop.wait(0.5)

        t = threading.Thread(target=trickle)
        t.start()
        try:
            took = [timed_write(s, f"busy,i={i} v={i}i {T0 + i}") for i in range(8)]
            for i in range(4):
                time.sleep(0.5)
                took.append(timed_write(s, f"busy,i=late{i} v=1i {T0}"))
                assert len(s.rows("busy")) == 9 + i
            assert max(took) < 2.0, took
        finally:
            stop.set()
            t.join()
            for c in slow + silent:
                c.close()
        assert s.request("GET", "/health").status == 200


def test_body_memory_bounds_bodies_read_ahead():
    """--max-body-memory 1M: a write whose Content-Length would take the bodies held past 1 MB
    waits before its body is read, first come first served; it gets 503 + Retry-After if no room
    comes within 10 s, and goes through as soon as room comes. A body over the whole budget is
    read once nothing else is held, and a chunked body (length unknown) never waits."""

    def lp(tag, size):
        out, i, n = [], 0, 0
        while n < size:
            out.append(f"bm,c={tag},i={i} v={i}i {T0 + i}\n")
            n += len(out[-1])
            i += 1
        return "".join(out).encode(), i

    def post_head(n):
        return (b"POST /api/v2/write?bucket=db HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: %d\r\n\r\n" % n)

    def status_line(sock):  # a 204 has no body: its headers are the whole answer
        sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            d = sock.recv(4096)
            if not d:
                break
            data += d
        return data.split(b"\r\n", 1)[0]

    def wait_metric(s, name, value):
        for _ in range(100):
            if s.metrics()[name] == value:
                return
            time.sleep(0.05)
        assert s.metrics()[name] == value, (name, s.metrics()[name], value)

    with Ingot(args=["--max-body-memory", "1M", "--max-request-bytes", "4M"]) as s:
        a_body, a_rows = lp("a", 700_000)
        b_body, _ = lp("b", 400_000)
        c_body, c_rows = lp("c", 400_000)
        a = raw_connect(s.port)
        a.sendall(post_head(len(a_body)) + a_body[:1000])  # holds its whole length from now on
        wait_metric(s, "ingot_http_body_bytes_held", len(a_body))
        b = raw_connect(s.port, timeout=20)
        b.sendall(post_head(len(b_body)) + b_body)  # 700 kB + 400 kB > 1 MiB: waits
        t = time.time()
        wait_metric(s, "ingot_http_body_waits_total", 1)
        resp = read_response(b, timeout=15)
        waited = time.time() - t
        assert resp.startswith(b"HTTP/1.1 503"), resp[:200]
        assert b"Retry-After: 1" in resp and b"--max-body-memory" in resp, resp[:400]
        assert 8 < waited < 14, waited
        assert s.metrics()["ingot_http_body_timeouts_total"] == 1
        b.close()

        c = raw_connect(s.port, timeout=20)
        c.sendall(post_head(len(c_body)) + c_body)
        wait_metric(s, "ingot_http_body_waits_total", 2)
        assert read_response(c, timeout=0.5) == b""  # still waiting for room
        a.sendall(a_body[1000:])  # a completes: its room goes to c
        assert status_line(a) == b"HTTP/1.1 204 No Content"
        assert status_line(c) == b"HTTP/1.1 204 No Content"
        a.close()
        c.close()
        wait_metric(s, "ingot_http_body_bytes_held", 0)

        big, big_rows = lp("big", 2_500_000)  # over the whole budget: read when nothing is held
        assert s.write(big).status == 204
        chunked = raw_connect(s.port)
        piece = b"bm,c=chunked v=1i %d\n" % T0
        chunked.sendall(b"POST /api/v2/write?bucket=db HTTP/1.1\r\nHost: x\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                        + b"%x\r\n" % len(piece) + piece + b"\r\n0\r\n\r\n")
        assert status_line(chunked) == b"HTTP/1.1 204 No Content"
        chunked.close()
        wait_metric(s, "ingot_http_body_bytes_held", 0)
        rows = s.rows("bm")
        tags = {}
        for r in rows:
            tags[r["c"]] = tags.get(r["c"], 0) + 1
        assert tags == {"a": a_rows, "c": c_rows, "big": big_rows, "chunked": 1}, tags


def test_write_slots_bound_concurrency_and_slow_bodies_hold_none():
    """--max-concurrent-writes 1: clients that announce a body and send it slowly never hold the
    write slot (it is taken once the body is complete), and 12 concurrent writers all succeed,
    one slot at a time (their waits are counted)."""
    with Ingot(args=["--max-concurrent-writes", "1"]) as s:
        slow = []
        for i in range(4):
            c = raw_connect(s.port)
            c.sendall(b"POST /api/v2/write?bucket=db HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 100000\r\n\r\n" + b"slow,i=%d v=1i " % i)
            slow.append(c)
        try:
            for i in range(3):
                timed_write(s, f"fast,i={i} v={i}i {T0 + i}")
            errors = []

            def writer(w):
                lp = "".join(f"conc,w={w} v={j}i {T0 + j}\n" for j in range(2000))
                r = s.write(lp)
                if r.status != 204:
                    errors.append(r)

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors[:2]
            assert len(s.rows("conc")) == 12 * 2000
            assert len(s.rows("fast")) == 3
            m = s.metrics()
            assert m["ingot_write_slots_in_use"] == 0
            assert m["ingot_write_slot_waits_total"] >= 1, m["ingot_write_slot_waits_total"]
            assert m["ingot_write_slot_timeouts_total"] == 0
        finally:
            for c in slow:
                c.close()
        r = s.query("slow")  # nothing of the unfinished bodies
        assert r.status == 404 or r.jsonl() == [], r


def test_idle_timeout_closes_silent_slow_and_idle_keepalive_clients():
    """--http-idle-timeout 2: a connection that sends nothing, one that trickles header bytes
    faster than any idle timeout (slowloris) and an idle keep-alive connection are all closed
    about 2 s after they went quiet or started their headers; the tricklers get a 408. A slow
    client that completes its headers in time is served, and so is everyone else."""
    with Ingot(args=["--http-idle-timeout", "2"]) as s:
        start = time.time()
        silent = [raw_connect(s.port) for _ in range(5)]
        slow = [raw_connect(s.port) for _ in range(5)]
        for c in slow:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        keep = raw_connect(s.port)
        keep.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(keep).startswith(b"HTTP/1.1 200 ")
        keep_idle_since = time.time()
        in_time = raw_connect(s.port)  # completes its headers after 1.2 s: served
        in_time.sendall(b"GET /health HTTP/1.1\r\n")
        closed_at, got = {}, {}
        i = writes = 0
        while len(closed_at) < 11 and time.time() - start < 6:
            i += 1
            for c in slow:
                if c not in closed_at:
                    try:
                        c.send(b"X"[:1])  # a header name that never ends, one byte at a time
                    except OSError:
                        pass
            if i == 6:
                in_time.sendall(b"Host: x\r\n\r\n")
                assert read_response(in_time).startswith(b"HTTP/1.1 200 ")
            if i % 4 == 0:
                timed_write(s, f"during v={i}i {T0 + i}")
                writes += 1
            time.sleep(0.2)
            for c in silent + slow + [keep]:
                if c in closed_at:
                    continue
                c.setblocking(False)
                try:
                    d = c.recv(4096)
                    got[c] = got.get(c, b"") + d
                    if d == b"":
                        closed_at[c] = time.time()
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[c] = time.time()
        assert len(closed_at) == 11, f"{11 - len(closed_at)} of 11 quiet or slow connections still open"
        for c in silent + slow:
            assert 1.5 < closed_at[c] - start < 4.5, closed_at[c] - start
        assert 1.5 < closed_at[keep] - keep_idle_since < 4.5, closed_at[keep] - keep_idle_since
        for c in slow:
            assert got[c].startswith(b"HTTP/1.1 408 "), got[c][:100]
        assert s.metrics()["ingot_http_header_timeouts_total"] >= 5
        assert writes >= 2 and len(s.rows("during")) == writes
        assert s.request("GET", "/health").status == 200
        for c in silent + slow + [keep, in_time]:
            c.close()


def test_too_many_connections_are_refused_then_service_resumes():
    with Ingot(args=["--http-max-connections", "20"]) as s:
        conns = []
        for _ in range(50):
            try:
                conns.append(raw_connect(s.port, timeout=2))
            except OSError:
                pass  # refused at connect: also a refusal
        time.sleep(0.5)
        refused = (50 - len(conns)) + sum(1 for c in conns if closed_by_server(c))
        assert refused >= 30, f"only {refused} of 50 connections were refused with a limit of 20"
        assert s.proc.poll() is None
        for c in conns:
            c.close()
        deadline = time.time() + 5
        while True:  # MHD frees the slots as it sees the closes
            try:
                if s.write(f"after v=1i {T0}").status == 204:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "service did not resume after the connections closed"
            time.sleep(0.05)
        assert s.request("GET", "/health").status == 200 and len(s.rows("after")) == 1


def test_table_and_column_limits_refuse_the_crossing_request_whole():
    with Ingot() as s:
        assert s.write(f"t0 v=1i {T0}").status == 204
        s.stop()
        # 9,999 tables in the catalog at once (ARCHITECTURE §8 tables), cheaper than 10,000 writes
        db = sqlite3.connect(os.path.join(s.data_dir, "catalog.sqlite"))
        (ns_id,) = db.execute("SELECT id FROM namespace WHERE name = 'db'").fetchone()
        with db:
            for i in range(1, 9999):
                cur = db.execute("INSERT INTO table_name(namespace_id, name) VALUES (?, ?)", (ns_id, f"t{i}"))
                db.execute("INSERT INTO column_name(table_id, name, column_type) VALUES (?, 'time', 6), (?, 'v', 1)",
                           (cur.lastrowid, cur.lastrowid))
        db.close()
        s.start()
        # two new tables and a row for an existing one: crosses 10,000, refused whole
        r = s.write(f"t5 v=5i {T0}\nnew1 v=1i {T0}\nnew2 v=1i {T0}\n")
        assert r.status == 400 and "table limit of 10000" in r.json()["message"], r
        assert s.query("new1").status == 404 and s.query("new2").status == 404
        assert s.query("t5").status == 200 and s.rows("t5") == []
        g = s.grpc("write", namespace="db", precision="ns", lp=f"gnew1 v=1i {T0}\ngnew2 v=1i {T0}\n")
        assert g.get("code") == "INVALID_ARGUMENT" and "table limit of 10000" in g["details"], g
        # the 10,000th table fits, the next one does not
        assert s.write(f"last v=1i {T0}").status == 204
        r = s.write(f"over v=1i {T0}")
        assert r.status == 400 and "table limit of 10000" in r.json()["message"], r
        g = s.grpc("write", namespace="db", precision="ns", lp=f"gover v=1i {T0}\n")
        assert g.get("code") == "INVALID_ARGUMENT" and "table limit of 10000" in g["details"], g
        names = {t["name"] for t in s.grpc("get_schema", namespace="db")["tables"]}
        assert len(names) == 10000 and "last" in names
        assert not names & {"new1", "new2", "gnew1", "gnew2", "over", "gover"}

        # columns: 199 fields + time = 200; one more column is refused with the whole request
        wide = "wide " + ",".join(f"f{i}=1i" for i in range(199)) + f" {T0}\n"
        assert s.write(wide, db="cols").status == 204
        r = s.write(f"wide f0=7i {T0 + 1}\nwide f199=1i {T0 + 2}\n", db="cols")
        assert r.status == 400 and "column limit of 200" in r.json()["message"], r
        g = s.grpc("write", namespace="cols", precision="ns", batch={"tables": [
            {"name": "wide", "columns": [{"name": "time", "type": "time", "values": [str(T0 + 3)]},
                                         {"name": "g199", "type": "i64", "values": [1]}]}]})
        assert g.get("code") == "INVALID_ARGUMENT" and "column limit of 200" in g["details"], g
        rows = s.rows("wide", db="cols")
        assert len(rows) == 1 and rows[0]["f0"] == 1, rows
        (wide_t,) = s.grpc("get_schema", namespace="cols")["tables"]
        cols = {c["name"] for c in wide_t["columns"]}
        assert len(cols) == 200 and "f199" not in cols and "g199" not in cols


def test_gzip_bombs_one_layer_only_and_10gb_stream_is_413_fast_with_bounded_memory():
    with Ingot(args=["--max-request-bytes", "4M"]) as s:
        # a gzip of a gzip of 100 MB of zeros: one layer is inflated, leaving gzip bytes that are
        # not line protocol
        inner = gzip.compress(b"\0" * (100 << 20), 9)
        r = s.write(gzip.compress(inner, 9), headers={"Content-Encoding": "gzip"})
        assert r.status == 400 and r.json()["code"] == "invalid", r
        # ~10 MB of gzip that would inflate to 10 GiB: 1 MiB of zeros deflated once after a full
        # flush compresses to the same bytes every time, so the stream is one block repeated
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        c.compress(b"\0" * (1 << 20))
        c.flush(zlib.Z_FULL_FLUSH)
        block = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
        head = gzip.compress(b"")[:10]
        before = proc_status_kb(s.proc.pid, "VmRSS")
        reset_peak_rss(s.proc.pid)
        t = time.time()
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("POST", "/api/v2/write?bucket=db", body=(head if i < 0 else block * 64 for i in range(-1, 160)),
                     headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}, encode_chunked=True)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        took = time.time() - t
        grown_mb = (proc_status_kb(s.proc.pid, "VmHWM") - before) / 1024
        print(f"10 GiB gzip stream: 413 in {took:.2f}s, peak RSS +{grown_mb:.1f} MB")
        assert resp.status == 413 and b"4194304" in body, (resp.status, body)
        assert took < 5, f"the 10 GiB gzip stream took {took:.1f}s to refuse"
        assert grown_mb < 32, f"the peak RSS grew by {grown_mb:.0f} MB for a 4 MiB limit"
        assert s.query("db").status == 404 and s.request("GET", "/health").status == 200


def test_token_compare_and_never_in_the_log():
    secret = "SECRET-7f3a9c1e"
    with Ingot(args=["--auth-token", secret]) as s:
        cases = [({}, 401), ({"Authorization": "Token wrong"}, 401), ({"Authorization": f"Token {secret}x"}, 401),
                 ({"Authorization": f"Token {secret[:-1]}"}, 401), ({"Authorization": f"Basic {secret}"}, 401),
                 ({"Authorization": secret}, 401), ({"Authorization": f"Token {secret}"}, 204),
                 ({"Authorization": f"Bearer {secret}"}, 204), ({"Authorization": f"bearer {secret}"}, 204)]
        for i, (h, want) in enumerate(cases):
            r = s.write(f"auth v={i}i {T0 + i}", headers=h)
            assert r.status == want, (h, r)
        assert s.write(f"auth v=99i {T0 + 99}", api="v1", params=f"p={secret}").status == 204
        assert s.write(f"auth v=98i {T0 + 98}", api="v1", params=f"p={secret}z").status == 401
        # the token inside a header so big that the request is refused, and in the URL of a 404
        assert s.request("GET", "/health", headers={"X-Big": secret * 3000}).status == 431
        assert s.request("GET", f"/nothing?token={secret}", headers={"Authorization": f"Bearer {secret}"}).status == 404
        calls = [{"command": "write", "namespace": "db", "precision": "ns", "lp": f"gauth v=1i {T0}\n", **a}
                 for a in ({"token": "wrong"}, {"token": secret + "x"}, {"authorization": secret},
                           {"authorization": f"Basic {secret}"}, {"token": secret},
                           {"authorization": f"Token {secret}"})]
        calls.append({"command": "get_schema", "namespace": "db", "token": "nope"})
        res = s.grpc("sequence", calls=calls)["results"]
        assert [r["ok"] or r["code"] for r in res] == ["UNAUTHENTICATED"] * 4 + [True, True, "UNAUTHENTICATED"], res
        rows = s.request("GET", "/api/v1/query_table?db=db&table=auth&format=jsonl",
                         headers={"Authorization": f"Bearer {secret}"})
        assert rows.status == 200 and len(rows.jsonl()) == 4
        code = s.stop()
        assert code == 0
        with open(s.log_path, "rb") as f:
            log = f.read()
        assert b"DEBUG" in log  # the log is at debug level and not empty
        assert secret.encode() not in log and secret[:8].encode() not in log, "the token is in the log"
