"""Black-box tests of the HTTP contract: writes on every endpoint, reads in every format, and every
bad input with its status and the proof that it changed nothing."""
import gzip
import http.client
import json
import os
import subprocess
import zlib

from harness import Ingot, run_ingot

READER_ARROW = os.path.join(os.path.dirname(__file__), "..", "readers", "read_arrow.mjs")

T0 = 1767225600000000000  # 2026-01-01T00:00:00Z in ns


def test_write_v2_then_read_back_jsonl():
    with Ingot() as s:
        r = s.write(f"cpu,host=a,region=eu usage=1.5,count=3i,ok=true,name=\"x y\" {T0}\n"
                    f"cpu,host=b,region=eu usage=2.5,count=4i,ok=false,name=\"z\" {T0 + 1}\n")
        assert r.status == 204, r
        rows = s.rows("cpu")
        assert len(rows) == 2, rows
        by_host = {r["host"]: r for r in rows}
        assert by_host["a"] == {"host": "a", "region": "eu", "usage": 1.5, "count": 3, "ok": True,
                                "name": "x y", "time": "2026-01-01T00:00:00.000000000Z"}, by_host["a"]
        assert by_host["b"]["time"] == "2026-01-01T00:00:00.000000001Z"
        assert by_host["b"]["ok"] is False


def test_write_v1_and_v3_endpoints():
    with Ingot() as s:
        assert s.write(f"m,t=1 f=1i {T0}", api="v1").status == 204
        assert s.write(f"m,t=2 f=2i {T0 // 10**9}", api="v3", params="precision=second").status == 204
        # v3 default precision is auto: a value in milliseconds is taken as milliseconds
        assert s.write(f"m,t=3 f=3i {T0 // 10**6}", api="v3").status == 204
        rows = s.rows("m")
        assert sorted((r["t"], r["time"]) for r in rows) == [
            ("1", "2026-01-01T00:00:00.000000000Z"), ("2", "2026-01-01T00:00:00.000000000Z"),
            ("3", "2026-01-01T00:00:00.000000000Z")], rows
        assert s.request("GET", "/ping").status == 204


def test_precisions_v1_v2():
    with Ingot() as s:
        for i, (p, api, scale) in enumerate([("ns", "v2", 1), ("us", "v2", 10**3), ("ms", "v2", 10**6),
                                             ("s", "v2", 10**9), ("n", "v1", 1), ("u", "v1", 10**3),
                                             ("ms", "v1", 10**6), ("s", "v1", 10**9)]):
            ts = (T0 + i * 10**9) // scale
            r = s.write(f"p,i={i} v={i}i {ts}", api=api, params=f"precision={p}")
            assert r.status == 204, (p, api, r)
        rows = {r["i"]: r["time"] for r in s.rows("p")}
        for i in range(8):
            assert rows[str(i)] == f"2026-01-01T00:00:{i:02d}.000000000Z", rows
        bad = s.write("p,i=x v=1i 1", params="precision=hours")
        assert bad.status == 400 and "precision" in bad.json()["message"], bad
        assert s.write("p,i=x v=1i 1", params="precision=auto").status == 400


def test_missing_timestamp_gets_one_server_time_per_request():
    with Ingot() as s:
        r = s.write("nt,h=a v=1i\nnt,h=b v=2i\nnt,h=c v=3i\n")
        assert r.status == 204
        rows = s.rows("nt")
        assert len(rows) == 3 and len({r["time"] for r in rows}) == 1, rows
        assert rows[0]["time"].startswith("20"), rows


def test_formats_json_csv_and_projection_and_time_range():
    with Ingot() as s:
        lp = "".join(f"t,h=h{i % 2} v={i}i,s=\"a,\\\"b\" {T0 + i}\n" for i in range(10))
        assert s.write(lp).status == 204
        j = s.query("t", fmt="json")
        assert j.status == 200 and j.headers["content-type"].startswith("application/json")
        arr = j.json()
        assert isinstance(arr, list) and len(arr) == 10
        c = s.query("t", fmt="csv", columns="time,v")
        lines = c.body.decode().splitlines()
        assert lines[0] == "time,v", lines
        assert len(lines) == 11
        assert lines[1].count(",") == 1
        rows = s.rows("t", columns="v,h,nope", min_time=T0 + 2, max_time=T0 + 5)
        assert sorted(r["v"] for r in rows) == [2, 3, 4], rows
        assert all(set(r) == {"v", "h"} for r in rows), rows
        csv_all = s.query("t", fmt="csv", columns="s").body.decode().splitlines()
        assert csv_all[1] == '"a,""b"', csv_all  # RFC 4180 quoting of a string with , and "


def test_dedup_last_non_null_value_wins():
    with Ingot() as s:
        assert s.write(f"d,h=a x=1i,y=1i {T0}").status == 204
        assert s.write(f"d,h=a x=2i {T0}").status == 204
        assert s.write(f"d,h=a z=\"zz\" {T0}\nd,h=b x=9i {T0}").status == 204
        rows = {r["h"]: r for r in s.rows("d")}
        assert rows["a"] == {"h": "a", "x": 2, "y": 1, "z": "zz", "time": "2026-01-01T00:00:00.000000000Z"}, rows
        assert rows["b"]["x"] == 9 and "y" not in rows["b"]


def test_escapes_and_unicode_round_trip():
    with Ingot() as s:
        lp = ('esc\\ m,tag\\ key=va\\,l\\=ue,u=h\u00e9llo f\\=k="say \\"hi\\" \\\\ ok",n=-1.5e3 %d\n' % T0)
        r = s.write(lp)
        assert r.status == 204, r
        rows = s.rows("esc m")
        assert rows == [{"tag key": "va,l=ue", "u": "h\u00e9llo", "f=k": 'say "hi" \\ ok', "n": -1500.0,
                         "time": "2026-01-01T00:00:00.000000000Z"}], rows


def test_types_edges_and_negative_time():
    with Ingot() as s:
        lp = (f"e i=9223372036854775807i,u=18446744073709551615u,f=0.1,b=t,s=\"\" -1\n"
              f"e i=-9223372036854775808i,u=0u,f=1e-300,b=FALSE,s=\"\u2603\" 0\n")
        assert s.write(lp).status == 204
        rows = sorted(s.rows("e"), key=lambda r: r["time"])
        assert rows[0] == {"i": 9223372036854775807, "u": 18446744073709551615, "f": 0.1, "b": True,
                           "s": "", "time": "1969-12-31T23:59:59.999999999Z"}, rows[0]
        assert rows[1]["i"] == -9223372036854775808 and rows[1]["b"] is False and rows[1]["s"] == "\u2603"
        assert rows[1]["f"] == 1e-300


def test_bad_lines_refuse_whole_request_and_change_nothing():
    with Ingot() as s:
        assert s.write(f"ok,h=a v=1i {T0}").status == 204
        before = s.rows("ok")
        cases = [
            ("ok,h=b v=2i\nok,h=c v=\n", 2),            # empty field value
            ("ok,h=b v=2i\n\n# c\nok v=1i,v=2.0\n", 4),  # same field twice, two types
            ("ok,h=b v=99999999999999999999i\n", 1),     # integer overflow
            ("ok,h=b v=1i 99999999999999999999\n", 1),   # timestamp overflow
            ("ok,h=b h=1i\n", 1),                       # tag and field
            ("ok,time=1 v=1i\n", 1),                    # time as a tag
            ("ok time=1i\n", 1),                        # time as a field
            (",h=b v=1i\n", 1),                         # empty measurement
            ("ok,h=b\n", 1),                            # no fields
            ("ok,h=b v=1i\r\nok,h=c v=\"unterminated\r\n", 2),
        ]
        for lp, line in cases:
            for api in ("v1", "v2"):
                r = s.write(lp, api=api)
                assert r.status == 400, (lp, api, r)
                body = r.json()
                assert body["code"] == "invalid" and body["line"] == line, (lp, body)
                assert f"line {line}, column" in body["message"], body
            r = s.write(lp, api="v3", params="accept_partial=false")
            assert r.status == 400 and r.json()["data"][0]["line_number"] == line, (lp, r)
        assert s.rows("ok") == before
        m = s.metrics()
        assert m["ingot_write_lines_total"] == 1


def test_error_message_lists_up_to_100_bad_lines():
    with Ingot() as s:
        lp = "".join("bad,h=1 v=\n" for _ in range(150))
        r = s.write(lp)
        assert r.status == 400
        msg = r.json()["message"]
        assert msg.startswith("150 bad lines"), msg[:80]
        assert msg.count(", column") == 100, msg[-200:]
        assert "and 50 more" in msg


def test_schema_conflict_is_400_naming_column_and_changes_nothing():
    with Ingot() as s:
        assert s.write(f"sc,h=a v=1i {T0}").status == 204
        r = s.write(f"sc,h=a w=1i {T0 + 1}\nsc,h=a v=1.5 {T0 + 2}")
        assert r.status == 400, r
        body = r.json()
        assert body["line"] == 2
        assert '"v"' in body["message"] and "i64" in body["message"] and "f64" in body["message"], body
        r = s.write(f"sc,v=x q=1i {T0}")  # v stored as a field, sent as a tag
        assert r.status == 400 and "tag" in r.json()["message"], r
        assert len(s.rows("sc")) == 1
        assert s.write(f"sc,h=a w=1i {T0 + 1}").status == 204  # w was not created with another type


def test_v3_partial_write_applies_good_lines():
    with Ingot() as s:
        lp = f"pw,h=a v=1i {T0}\npw,h=b v= {T0}\npw,h=c v=3i {T0}\npw,h=d v=1.5 {T0}\n"
        r = s.write(lp, api="v3", params="precision=nanosecond")
        assert r.status == 400, r
        body = r.json()
        assert body["error"] == "partial write of line protocol occurred", body
        assert [d["line_number"] for d in body["data"]] == [2, 4], body
        assert body["data"][0]["original_line"] == f"pw,h=b v= {T0}"
        assert sorted(r["h"] for r in s.rows("pw")) == ["a", "c"]
        r = s.write(f"pw,h=e v=5i {T0}\npw,h=f v=x {T0}", api="v3",
                    params="precision=nanosecond&accept_partial=false")
        assert r.status == 400 and r.json()["error"] == "parsing failed for write_lp endpoint"
        assert sorted(r["h"] for r in s.rows("pw")) == ["a", "c"]
        assert s.write(f"pw,h=g v=7i {T0}", api="v3", params="precision=nanosecond&no_sync=true").status == 204
        assert len(s.rows("pw")) == 3


def test_gzip_and_chunked_bodies():
    with Ingot() as s:
        lp = "".join(f"gz,h=h{i} v={i}i {T0 + i}\n" for i in range(2000))
        assert s.write(lp, gzip_body=True).status == 204
        # chunked transfer encoding without Content-Length, gzip, as the official v2 client sends it
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        data = gzip.compress("".join(f"gz,h=c{i} v={i}i {T0 + i}\n" for i in range(3000)).encode())
        chunks = (data[i:i + 777] for i in range(0, len(data), 777))
        conn.request("POST", "/api/v2/write?bucket=db&org=o", body=chunks,
                     headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
        r = conn.getresponse()
        r.read()
        conn.close()
        assert r.status == 204, r.status
        assert len(s.rows("gz", columns="h")) == 5000
        bad = s.write(b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})
        assert bad.status == 400, bad


def test_body_limits_413():
    with Ingot(args=["--max-request-bytes", "10000"]) as s:
        big = "".join(f"big,h=h{i} v={i}i {T0 + i}\n" for i in range(1000)).encode()
        assert len(big) > 10000
        r = s.write(big)
        assert r.status == 413 and r.json()["code"] == "request too large", r
        # a small gzip body that inflates past the limit
        bomb = b"bomb v=1i 1\n" * 100000
        r = s.write(bomb, gzip_body=True)
        assert r.status == 413, r
        # chunked without Content-Length
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("POST", "/api/v2/write?bucket=db", body=(big[i:i + 1000] for i in range(0, len(big), 1000)),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        r2 = conn.getresponse()
        r2.read()
        conn.close()
        assert r2.status == 413, r2.status
        assert s.query("big").status == 404
        assert s.query("bomb").status == 404
        assert s.write(big[:5000].rsplit(b"\n", 1)[0]).status == 204


def test_auth_token():
    with Ingot(args=["--auth-token", "s3cret"]) as s:
        assert s.request("GET", "/health").status == 200
        for path in ("/ready", "/metrics", "/api/v1/query_table?db=db&table=x"):
            assert s.request("GET", path).status == 401, path
        assert s.write(f"a v=1i {T0}").status == 401
        assert s.write(f"a v=1i {T0}", headers={"Authorization": "Token wrong"}).status == 401
        assert s.write(f"a v=1i {T0}", headers={"Authorization": "Token s3cret"}).status == 204
        assert s.write(f"a v=2i {T0 + 1}", headers={"Authorization": "Bearer s3cret"}).status == 204
        assert s.write(f"a v=3i {T0 + 2}", api="v1", params="p=s3cret").status == 204
        r = s.request("GET", "/api/v1/query_table?db=db&table=a&format=jsonl",
                      headers={"Authorization": "Bearer s3cret"})
        assert r.status == 200 and len(r.jsonl()) == 3
        assert "s3cret" not in s.log_text()


def test_not_found_and_method_errors():
    with Ingot() as s:
        assert s.query("nope", db="nodb").status == 404
        assert s.write(f"x v=1i {T0}").status == 204
        r = s.query("nope")
        assert r.status == 404 and "nope" in r.json()["message"], r
        assert s.request("GET", "/api/v2/write").status == 405
        assert s.request("GET", "/nothing").status == 404
        assert s.request("POST", "/api/v2/write", body=b"x v=1i").status == 400  # no bucket
        r = s.write(f"x v=1i {T0}", db="bad/name")
        assert r.status == 400, r
        assert s.request("GET", "/api/v1/query_table?db=db&table=x&format=xml").status == 400
        assert s.request("GET", "/api/v1/query_table?db=db&table=x&min_time=abc").status == 400


def test_empty_body_is_ok_and_comments_only():
    with Ingot() as s:
        assert s.write("").status == 204
        assert s.write("# just a comment\n\n").status == 204


def test_health_ready_metrics():
    with Ingot() as s:
        assert s.request("GET", "/health").json()["status"] == "pass"
        assert s.request("GET", "/ready").status == 200
        assert s.write(f"mm v=1i {T0}").status == 204
        assert s.write("mm v=").status == 400
        m = s.metrics()
        assert m['ingot_http_requests_total{endpoint="/api/v2/write",status="204"}'] == 1
        assert m['ingot_http_requests_total{endpoint="/api/v2/write",status="400"}'] == 1
        assert m["ingot_write_lines_total"] == 1
        assert m["ingot_wal_batches_total"] >= 1
        assert m['ingot_wal_fsync_duration_seconds_bucket{le="+Inf"}'] >= 1
        assert m["ingot_buffer_bytes"] > 0


def test_many_tables_partitions_and_types_across_days():
    with Ingot() as s:
        day = 86400 * 10**9
        lp = "".join(f"tab{i % 7},h=h{i % 13} v={i}i,f={i}.5 {T0 + (i % 5) * day + i}\n" for i in range(3000))
        assert s.write(lp).status == 204
        total = sum(len(s.rows(f"tab{i}")) for i in range(7))
        assert total == 3000


def test_query_arrow_stream_matches_jsonl():
    with Ingot() as s:
        lp = (f"ar,h=a,r=x v=1i,f=1.5,b=t,s=\"hi\",u=18446744073709551615u {T0 + 1}\n"
              f"ar,h=b v=-2i -5\n"
              f"ar,h=c f=2.5 {86400 * 10**9}\n")
        assert s.write(lp).status == 204
        r = s.query("ar", fmt="arrow")
        assert r.status == 200 and r.headers["content-type"] == "application/vnd.apache.arrow.stream", r
        out = subprocess.run(["node", READER_ARROW], input=r.body, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        lines = [json.loads(l) for l in out.stdout.decode().splitlines()]
        types = {f["name"]: f["type"] for f in lines[0]["schema"]}
        assert types == {"h": "Dictionary<Int32, Utf8>", "r": "Dictionary<Int32, Utf8>", "b": "Bool",
                         "f": "Float64", "s": "Utf8", "u": "Uint64", "v": "Int64",
                         "time": "Timestamp<NANOSECOND, UTC>"}, types
        rows = {r["h"]: r for r in lines[1:]}
        assert rows["a"] == {"h": "a", "r": "x", "b": True, "f": 1.5, "s": "hi", "u": "18446744073709551615",
                             "v": "1", "time": str(T0 + 1)}, rows["a"]
        assert rows["b"]["time"] == "-5" and rows["b"]["v"] == "-2" and rows["b"]["f"] is None
        assert rows["c"]["f"] == 2.5 and rows["c"]["time"] == str(86400 * 10**9)
        # the same rows as the text answer
        assert sorted(rows) == sorted(r["h"] for r in s.rows("ar"))
        empty = s.query("ar", fmt="arrow", min_time=9 * 10**18)
        out = subprocess.run(["node", READER_ARROW], input=empty.body, capture_output=True, timeout=60)
        assert out.returncode == 0 and len(out.stdout.decode().splitlines()) == 1, out
