"""Black-box tests of the gRPC front end with the real @grpc/grpc-js client
(tests/readers/grpc_client.mjs): WriteService/Write with line protocol and columnar batches, Flight
Handshake and DoGet (frames decoded with apache-arrow), CatalogService, and every status code of the
contract: INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED (persist queue full, query limit),
FAILED_PRECONDITION (graceful stop), UNAUTHENTICATED, UNIMPLEMENTED."""
import datetime
import json
import os
import re
import signal
import subprocess
import time

from harness import DAY, T0, Ingot, as_int, parquet_files, persisted_rows, wal_segments

READER_ARROW = os.path.join(os.path.dirname(__file__), "..", "readers", "read_arrow.mjs")
I64_MIN, I64_MAX, U64_MAX = -2**63, 2**63 - 1, 2**64 - 1
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TYPES = {"tag": "Dictionary<Int32, Utf8>", "time": "Timestamp<NANOSECOND, UTC>", "i64": "Int64",
         "u64": "Uint64", "f64": "Float64", "bool": "Bool", "string": "Utf8"}


def ticket(table, db="db", **kw):
    """DoGet ticket text; Python's JSON keeps 64-bit times exact."""
    t = {"namespace": db, "table": table}
    t.update(kw)
    return json.dumps(t)


def doget(s, table, db="db", **kw):
    r = s.grpc("doget", ticket_raw=ticket(table, db, **kw))
    assert r["ok"], r
    check_frames(r["partitions"])
    return r["partitions"]


def check_frames(parts):
    """Each partition: a metadata message, then Schema, one DictionaryBatch per tag column and
    RecordBatches (several for a large partition: gRPC clients refuse messages over 4 MiB), every
    body as long as its header says; rows in the partition's day."""
    for p in parts:
        md = p["metadata"]
        assert md is not None, p
        assert set(md) >= {"partition_key", "partition_id", "ingester_uuid", "completed_persistence_count"}, md
        assert UUID.match(md["ingester_uuid"]), md
        tags = sum(1 for f in p["schema"] if f["type"].startswith("Dictionary"))
        # Schema, then per batch of the partition (a big one comes in several): its dictionaries
        # and one or more RecordBatches
        m = p["messages"]
        assert m[0] == "Schema" and len(m) >= 2 + tags, m
        i = 1
        while i < len(m):
            assert m[i:i + tags] == ["DictionaryBatch"] * tags and m[i + tags] == "RecordBatch", m
            i += tags
            while i < len(m) and m[i] == "RecordBatch":
                i += 1
        assert p["body_lengths_match"], p["messages"]
        for row in p["rows"]:
            if "time" in row:
                assert day_of(int(row["time"])) == md["partition_key"], (row, md)


def day_of(ns):
    return datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc).strftime("%Y-%m-%d")


def present(row):
    """A row without its null columns (a partition's schema may hold columns the row lacks)."""
    return {k: v for k, v in row.items() if v is not None}


def rows_of(parts):
    return sorted((present(r) for p in parts for r in p["rows"]), key=lambda r: json.dumps(r, sort_keys=True))


def col(name, type_, values):
    return {"name": name, "type": type_, "values": values}


def tbatch(name, times, *cols, row_count=None):
    t = {"name": name, "columns": [col("time", "time", times)] + list(cols)}
    if row_count is not None:
        t["row_count"] = row_count
    return t


def test_lp_write_read_back_with_doget_partitions_metadata_and_same_as_http_arrow():
    with Ingot() as s:
        lp = (f"cpu,host=a,dc=eu i={I64_MIN}i,u={U64_MAX}u,f=1.5,b=t,s=\"h\u00e9 \\\"q\\\"\" {T0}\n"
              f"cpu,host=b i={I64_MAX}i {T0 + 1}\n"
              f"cpu,host=a,dc=eu f=2.5,s=\"new\" {T0}\n"  # same tags and time: these fields win
              f"cpu,host=c s=\"\" {T0 + DAY + 5}\n"
              f"cpu,host=d b=false {T0 + 2 * DAY}\n")
        r = s.grpc("write", namespace="db", lp=lp)
        assert r == {"ok": True, "rows": "5"}, r
        r = s.grpc("write", namespace="db", lp=f"cpu,host=e u=7u {T0 // 10**9 + 3}\n", precision="s")
        assert r == {"ok": True, "rows": "1"}, r
        parts = doget(s, "cpu")
        assert sorted(p["metadata"]["partition_key"] for p in parts) == ["2026-01-01", "2026-01-02", "2026-01-03"]
        by_key = {p["metadata"]["partition_key"]: p for p in parts}
        day1 = by_key["2026-01-01"]
        assert {f["name"]: f["type"] for f in day1["schema"]} == {
            "host": TYPES["tag"], "dc": TYPES["tag"], "i": TYPES["i64"], "u": TYPES["u64"], "f": TYPES["f64"],
            "b": TYPES["bool"], "s": TYPES["string"], "time": TYPES["time"]}, day1["schema"]
        assert sorted(day1["rows"], key=lambda r: r["time"]) == [
            {"host": "a", "dc": "eu", "i": str(I64_MIN), "u": str(U64_MAX), "f": 2.5, "b": True, "s": "new",
             "time": str(T0)},
            {"host": "b", "dc": None, "i": str(I64_MAX), "u": None, "f": None, "b": None, "s": None,
             "time": str(T0 + 1)},
            {"host": "e", "dc": None, "i": None, "u": "7", "f": None, "b": None, "s": None,
             "time": str(T0 + 3 * 10**9)}], day1["rows"]
        assert [present(r) for r in by_key["2026-01-02"]["rows"]] == [{"host": "c", "s": "", "time": str(T0 + DAY + 5)}]
        assert [present(r) for r in by_key["2026-01-03"]["rows"]] == [
            {"host": "d", "b": False, "time": str(T0 + 2 * DAY)}]
        # metadata: one ingester_uuid per process, the catalog's partition ids, nothing persisted yet
        uuids = {p["metadata"]["ingester_uuid"] for p in parts}
        assert len(uuids) == 1, uuids
        ids = {k: p["metadata"]["partition_id"] for k, p in by_key.items()}
        assert all(isinstance(i, int) for i in ids.values()) and len(set(ids.values())) == 3, ids
        assert all(p["metadata"]["completed_persistence_count"] == 0 for p in parts)
        again = doget(s, "cpu")
        assert {p["metadata"]["ingester_uuid"] for p in again} == uuids
        assert {p["metadata"]["partition_key"]: p["metadata"]["partition_id"] for p in again} == ids
        assert rows_of(again) == rows_of(parts)
        # HTTP format=arrow serves the same rows
        h = s.query("cpu", fmt="arrow")
        assert h.status == 200, h
        out = subprocess.run(["node", READER_ARROW], input=h.body, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
        assert sorted((present(r) for r in lines[1:]), key=lambda r: json.dumps(r, sort_keys=True)) == rows_of(parts)


def test_big_partition_comes_in_batches_over_flight_and_http():
    """150,000 rows of one day: QueryExec hands them out in batches of 65,536 rows; Flight sends
    one metadata frame and one schema for the partition, HTTP one stream; later writes to some
    rows replace their values (de-duplication before the cut), rows come by time, then tags."""
    with Ingot() as s:
        n = 150000
        assert s.write("".join(f"big,h=h{i % 3} v={i}i {T0 + i // 3}\n" for i in range(n))).status == 204
        assert s.write("".join(f"big,h=h{i % 3} v=-{i}i {T0 + i // 3}\n" for i in range(65530, 65542))).status == 204
        parts = doget(s, "big", columns=["h", "v", "time"])
        assert len(parts) == 1 and parts[0]["metadata"]["partition_key"] == "2026-01-01", len(parts)
        m = parts[0]["messages"]
        assert m.count("Schema") == 1 and m.count("DictionaryBatch") >= 3, m[:5]
        rows = parts[0]["rows"]
        assert len(rows) == n
        want = [(str(T0 + i // 3), f"h{i % 3}", str(-i if 65530 <= i < 65542 else i)) for i in range(n)]
        assert [(r["time"], r["h"], r["v"]) for r in rows] == want
        assert len(s.rows("big")) == n
        r = s.query("big", fmt="arrow")
        out = subprocess.run(["node", READER_ARROW], input=r.body, capture_output=True, timeout=120)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        assert len(out.stdout.decode().splitlines()) == 1 + n


def test_columnar_write_nulls_dedup_projection_time_range():
    with Ingot() as s:
        ms = T0 // 10**6
        batch = {"tables": [
            tbatch("m", [ms, ms + 1, ms + 2, ms, ms + 86400000],
                   col("host", "tag", ["a", "b", None, "a", "c"]),
                   col("i", "i64", [1, None, I64_MIN, None, I64_MAX]),
                   col("u", "u64", [U64_MAX, 0, None, None, 3]),
                   col("f", "f64", [0.5, None, None, 9.25, 1e-300]),
                   col("b", "bool", [True, False, None, None, None]),
                   col("s", "string", ["x", None, "\u2603", None, ""])),
            tbatch("m2", [ms, ms + 1], col("k", "tag", ["p", "q"]), col("v", "f64", [-1.0, 2.0])),
        ]}
        r = s.grpc("write", namespace="db", precision="ms", batch=batch)
        assert r == {"ok": True, "rows": "7"}, r
        parts = doget(s, "m")
        assert sorted(p["metadata"]["partition_key"] for p in parts) == ["2026-01-01", "2026-01-02"]
        t = lambda k: str(T0 + k * 10**6)  # noqa: E731
        assert rows_of(parts) == sorted([
            # row 4 repeats row 1's tags and time: its f wins, its nulls keep row 1's values
            {"host": "a", "i": "1", "u": str(U64_MAX), "f": 9.25, "b": True, "s": "x", "time": t(0)},
            {"host": "b", "u": "0", "b": False, "time": t(1)},
            {"i": str(I64_MIN), "s": "\u2603", "time": t(2)},
            {"host": "c", "i": str(I64_MAX), "u": "3", "f": 1e-300, "s": "", "time": t(86400000)},
        ], key=lambda r: json.dumps(r, sort_keys=True))
        day1 = [p for p in parts if p["metadata"]["partition_key"] == "2026-01-01"][0]
        assert {f["name"]: f["type"] for f in day1["schema"]} == {
            "host": TYPES["tag"], "i": TYPES["i64"], "u": TYPES["u64"], "f": TYPES["f64"], "b": TYPES["bool"],
            "s": TYPES["string"], "time": TYPES["time"]}, day1["schema"]
        assert rows_of(doget(s, "m2")) == [{"k": "p", "v": -1.0, "time": t(0)}, {"k": "q", "v": 2.0, "time": t(1)}]
        # projection in the order asked, unknown names skipped; min inclusive, max exclusive
        parts = doget(s, "m", columns=["f", "host", "nope", "time"], min_time=T0 + 10**6, max_time=T0 + DAY)
        for p in parts:
            assert [f["name"] for f in p["schema"]] == ["f", "host", "time"], p["schema"]
        assert sorted((r["time"], r["host"]) for p in parts for r in p["rows"]) == [(t(1), "b"), (t(2), None)]
        parts = doget(s, "m", columns=["s"], min_time=T0 + DAY)
        assert [r for p in parts for r in p["rows"]] == [{"s": ""}], parts
        assert rows_of(doget(s, "m", min_time=T0 + 2 * DAY)) == []
        # a second columnar write on top of the first, in nanoseconds: last write wins per field
        r = s.grpc("write", namespace="db", batch={"tables": [
            tbatch("m", [T0 + 1 * 10**6], col("host", "tag", ["b"]), col("u", "u64", [None]), col("f", "f64", [7.5]))]})
        assert r == {"ok": True, "rows": "1"}, r
        row_b = [r for r in rows_of(doget(s, "m")) if r.get("host") == "b"]
        assert row_b == [{"host": "b", "u": "0", "b": False, "f": 7.5, "time": t(1)}], row_b


def test_bad_writes_invalid_argument_and_nothing_applied():
    with Ingot() as s:
        assert s.grpc("write", namespace="db", lp=f"m,host=a i=1i,f=1.5 {T0}")["ok"]
        before = doget(s, "m")
        good = tbatch("fresh", [T0, T0 + 1, T0 + 2], col("v", "i64", [1, 2, 3]))
        cases = [  # (request, substrings of the message)
            # one bad row among good ones, in a table batch after a good one
            ({"batch": {"tables": [good, tbatch("m", [T0 + 5, T0 + 6], col("i", "i64", [1, None]),
                                                col("f", "f64", [None, 2.5]), col("x", "bool", [True, None]))]}},
             []),  # valid: the baseline
            ({"batch": {"tables": [tbatch("fresh", [T0 // 10**9], col("v", "i64", [1])),
                                   tbatch("m", [T0 // 10**9, 10**11], col("i", "i64", [1, 2]))]},
              "precision": "s"}, ["row 2", '"m"', "time"]),  # time overflows int64 nanoseconds
            ({"batch": {"tables": [good, tbatch("m", [T0, T0 + 1], col("i", "f64", [1.0, 2.5]))]}},
             ['"i"', "m"]),  # type conflict with the stored schema
            ({"batch": {"tables": [good, tbatch("m", [T0], col("i", "tag", ["x"]), col("f", "f64", [1.0]))]}},
             ['"i"', "tag"]),  # a field sent as a tag
            ({"batch": {"tables": [tbatch("tc", [T0], col("v", "i64", [1])),
                                   tbatch("tc", [T0 + 1], col("v", "f64", [1.5]))]}}, ['"v"']),  # within the request
            ({"batch": {"tables": [good, tbatch("m", [T0, T0 + 1], col("i", "i64", [1, None]),
                                                col("f", "f64", [2.5, None]))]}}, ["row 2"]),  # a row without fields
            ({"batch": {"tables": [good, tbatch("m", [T0, T0 + 1], col("host", "tag", ["a", ""]),
                                                col("i", "i64", [1, 2]))]}}, ["row 2", '"host"']),  # empty tag value
            ({"batch": {"tables": [good, {"name": "m", "columns": [col("i", "i64", [1])]}]}}, ["TIME", "m"]),
            ({"batch": {"tables": [good, tbatch("m", [T0], col("t2", "time", [T0]), col("i", "i64", [1]))]}},
             ["TIME"]),
            ({"batch": {"tables": [good, tbatch("m", [T0, None], col("i", "i64", [1, 2]))]}}, ["TIME", "null"]),
            ({"batch": {"tables": [good, {"name": "m", "columns": [col("t", "time", [T0]), col("i", "i64", [1])]}]}},
             ['"t"', "time"]),
            ({"batch": {"tables": [good, tbatch("m", [T0], {"name": "h", "raw": {
                "semantic_type": "TAG", "values": {"i64_values": ["1"]}}}, col("i", "i64", [1]))]}}, ['"h"']),
            ({"batch": {"tables": [good, tbatch("m", [T0, T0 + 1], {"name": "i", "raw": {
                "semantic_type": "FIELD", "values": {"i64_values": ["1"]}}})]}}, ['"i"', "values"]),
            ({"batch": {"tables": [good, tbatch("m", [T0, T0 + 1], {"name": "i", "raw": {
                "semantic_type": "FIELD", "values": {"i64_values": ["1"]}, "null_mask": [2, 0]}})]}},
             ['"i"', "null_mask"]),
            ({"batch": {"tables": [good, tbatch("m", [T0], {"name": "i", "raw": {
                "semantic_type": "SEMANTIC_TYPE_UNSPECIFIED", "values": {"i64_values": ["1"]}}})]}}, ['"i"']),
            ({"batch": {"tables": [good, tbatch("m", [T0], col("i", "i64", [1]), col("i", "f64", [1.5]))]}},
             ['"i"']),  # duplicate column
            ({"batch": {"tables": [good, tbatch("", [T0], col("i", "i64", [1]))]}}, ["table"]),
            ({"batch": {"tables": [good, tbatch("m", [T0], col("i", "i64", [1]), row_count=2)]}}, ["m"]),
            ({"lp": f"fresh v=1i {T0}\nm,host=b i=2i {T0}\nm,host=c i= {T0}\n"}, ["line 3, column"]),
            ({"lp": f"fresh v=1i {T0}\nm,host=b i=1.5 {T0}\n"}, ["line 2", '"i"']),  # conflict with the schema
            ({"lp": f"fresh v=1i {T0}\nfresh v=1.5 {T0 + 1}\n"}, ["line 2", '"v"']),  # within the request
            ({"lp": f"fresh v=1i {T0}", "namespace": "bad/name"}, ["namespace"]),
            ({"lp": f"fresh v=1i {T0}", "namespace": ""}, ["namespace"]),
            ({"lp": f"fresh v=1i {T0}", "namespace": "n" * 65}, ["namespace"]),
        ]
        calls = [{"command": "write", "namespace": "db", **req} for req, _ in cases[1:]]
        res = s.grpc("sequence", calls=calls)["results"]
        for (req, words), r in zip(cases[1:], res):
            assert r["ok"] is False and r["code"] == "INVALID_ARGUMENT", (req, r)
            for w in words:
                assert w in r["details"], (w, req, r)
        # nothing of any refused request was applied: no table, no column, no namespace, no row
        assert s.grpc("doget", ticket_raw=ticket("fresh"))["code"] == "NOT_FOUND"
        assert s.grpc("doget", ticket_raw=ticket("tc"))["code"] == "NOT_FOUND"
        assert rows_of(doget(s, "m")) == rows_of(before)
        schema = s.grpc("get_schema", namespace="db")
        assert [t["name"] for t in schema["tables"]] == ["m"], schema
        assert sorted(c["name"] for c in schema["tables"][0]["columns"]) == ["f", "host", "i", "time"], schema
        names = [n["name"] for n in s.grpc("list_namespaces")["namespaces"]]
        assert names == ["db"], names
        # the baseline request is valid: a new column x, the good table and two rows more
        r = s.grpc("write", namespace="db", **cases[0][0])
        assert r == {"ok": True, "rows": "5"}, r
        assert len(rows_of(doget(s, "m"))) == 3 and len(rows_of(doget(s, "fresh"))) == 3


def test_not_found_and_bad_tickets():
    with Ingot() as s:
        assert s.grpc("write", namespace="db", lp=f"t v=1i {T0}")["ok"]
        calls = [
            ({"command": "doget", "ticket_raw": ticket("t", db="nodb")}, "NOT_FOUND"),
            ({"command": "doget", "ticket_raw": ticket("nope")}, "NOT_FOUND"),
            ({"command": "doget", "ticket_raw": "not json"}, "INVALID_ARGUMENT"),
            ({"command": "doget", "ticket_raw": ""}, "INVALID_ARGUMENT"),
            ({"command": "doget", "ticket_raw": '{"namespace":"db"}'}, "INVALID_ARGUMENT"),
            ({"command": "doget", "ticket_raw": '{"table":"t"}'}, "INVALID_ARGUMENT"),
            ({"command": "doget", "ticket_raw": '["db","t"]'}, "INVALID_ARGUMENT"),
            ({"command": "doget", "ticket_raw": '{"namespace":"db","table":"t"'}, "INVALID_ARGUMENT"),
            ({"command": "get_schema", "namespace": "nodb"}, "NOT_FOUND"),
            ({"command": "list_partitions", "namespace": "nodb", "table": "t"}, "NOT_FOUND"),
            ({"command": "list_partitions", "namespace": "db", "table": "nope"}, "NOT_FOUND"),
            ({"command": "list_parquet_files", "namespace": "nodb", "table": "t"}, "NOT_FOUND"),
            ({"command": "list_parquet_files", "namespace": "db", "table": "nope"}, "NOT_FOUND"),
            ({"command": "doget", "ticket_raw": ticket("t")}, None),
        ]
        res = s.grpc("sequence", calls=[c for c, _ in calls])["results"]
        for (c, code), r in zip(calls, res):
            if code is None:
                assert r["ok"], (c, r)
            else:
                assert r["ok"] is False and r["code"] == code, (c, r)
        assert "nope" in res[1]["details"], res[1]


def test_catalog_service_before_and_after_persist():
    s = Ingot()
    try:
        assert s.grpc("list_namespaces") == {"ok": True, "namespaces": []}
        lp = "".join(f"cpu,host=h{i % 3} v={i}i,f={i}.5 {T0 + (i % 2) * DAY + i}\n" for i in range(10))
        assert s.grpc("write", namespace="db", lp=lp)["ok"]
        assert s.grpc("write", namespace="db", lp=f"mem,host=x used=1u {T0}")["ok"]
        assert s.grpc("write", namespace="other", lp=f"disk free=1.5 {T0}")["ok"]
        res = s.grpc("sequence", calls=[{"command": "list_namespaces"}, {"command": "get_schema", "namespace": "db"},
                                        {"command": "list_partitions", "namespace": "db", "table": "cpu"},
                                        {"command": "list_parquet_files", "namespace": "db", "table": "cpu"}])
        ns, schema, partitions, files = res["results"]
        assert sorted(n["name"] for n in ns["namespaces"]) == ["db", "other"], ns
        assert len({n["id"] for n in ns["namespaces"]}) == 2
        db_id = [n["id"] for n in ns["namespaces"] if n["name"] == "db"][0]
        assert schema["ok"] and schema["namespace"] == "db" and schema["namespace_id"] == db_id, schema
        assert [t["name"] for t in schema["tables"]] == ["cpu", "mem"], schema
        cpu = schema["tables"][0]
        assert cpu["columns"][0]["name"] == "time" and cpu["columns"][0]["column_type"] == "COLUMN_TYPE_TIME", cpu
        assert {c["name"]: c["column_type"] for c in cpu["columns"]} == {
            "time": "COLUMN_TYPE_TIME", "host": "COLUMN_TYPE_TAG", "v": "COLUMN_TYPE_I64", "f": "COLUMN_TYPE_F64"}
        assert [int(c["id"]) for c in cpu["columns"][1:]] == sorted(int(c["id"]) for c in cpu["columns"][1:])
        mem = schema["tables"][1]
        assert {c["name"]: c["column_type"] for c in mem["columns"]} == {
            "time": "COLUMN_TYPE_TIME", "host": "COLUMN_TYPE_TAG", "used": "COLUMN_TYPE_U64"}, mem
        assert partitions["ok"] and all(p["sort_key"] == [] for p in partitions["partitions"]), partitions
        assert files == {"ok": True, "parquet_files": []}, files
        assert s.stop() == 0
        s.start()
        res = s.grpc("sequence", calls=[{"command": "list_partitions", "namespace": "db", "table": "cpu"},
                                        {"command": "list_parquet_files", "namespace": "db", "table": "cpu"},
                                        {"command": "get_schema", "namespace": "db"}])
        partitions, files, schema2 = res["results"]
        assert schema2 == schema, (schema2, schema)
        pid = {p["key"]: p["id"] for p in partitions["partitions"]}
        for p in partitions["partitions"]:
            assert p["sort_key"] == ["host", "time"], p
        assert len(files["parquet_files"]) == 2, files
        assert sum(int(f["row_count"]) for f in files["parquet_files"]) == 10
        for f in files["parquet_files"]:
            assert f["namespace_id"] == db_id and f["table_id"] == cpu["id"], f
            assert f["partition_id"] == pid[f["partition_key"]], (f, pid)
            path = os.path.join(s.data_dir, "objects", "db", "cpu", f["partition_key"],
                                f["object_store_id"] + ".parquet")
            assert os.path.getsize(path) == int(f["file_size_bytes"]), f
            assert day_of(int(f["min_time"])) == f["partition_key"] == day_of(int(f["max_time"])), f
            assert int(f["row_count"]) == 5
            assert abs(int(f["created_at"]) - time.time_ns()) < 600 * 10**9, f
        on_disk = [f for f in parquet_files(s.data_dir) if f"{os.sep}db{os.sep}cpu{os.sep}" in f]
        assert len(on_disk) == 2, on_disk
        # the buffer serves only what it holds: nothing after the persist
        assert rows_of(doget(s, "cpu")) == []
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_list_partitions_shows_what_the_catalog_recorded_at_persist_time():
    """The catalog learns of a partition when it is first persisted (with its sort key)."""
    with Ingot() as s:
        lp = "".join(f"lp,host=h{i % 3} v={i}i {T0 + (i % 2) * DAY + i}\n" for i in range(10))
        assert s.grpc("write", namespace="db", lp=lp)["ok"]
        r = s.grpc("list_partitions", namespace="db", table="lp")
        assert r["ok"] and r["partitions"] == [], r
        assert s.stop() == 0  # the graceful stop persists both days
        s.start()
        r = s.grpc("list_partitions", namespace="db", table="lp")
        assert r["ok"] and [(p["key"], p["sort_key"]) for p in r["partitions"]] == [
            ("2026-01-01", ["host", "time"]), ("2026-01-02", ["host", "time"])], r
        files = s.grpc("list_parquet_files", namespace="db", table="lp")["parquet_files"]
        assert sorted((f["partition_key"], int(f["row_count"])) for f in files) == [
            ("2026-01-01", 5), ("2026-01-02", 5)], files
        by_id = {p["id"]: p["key"] for p in r["partitions"]}
        assert all(by_id[f["partition_id"]] == f["partition_key"] for f in files), (by_id, files)


def test_completed_persistence_count_grows_and_ingester_uuid_is_per_process():
    s = Ingot(args=["--persist-hot-partition-bytes", "20000", "--persist-workers", "1"])
    try:
        assert s.grpc("write", namespace="db", lp=f"p,h=a v=0i {T0}\np,h=a v=0i {T0 + DAY}\n")["ok"]
        parts = doget(s, "p")
        assert [p["metadata"]["completed_persistence_count"] for p in parts] == [0, 0], parts
        uuid = parts[0]["metadata"]["ingester_uuid"]
        big = "".join(f"p,h=b{i} v={i}i,s=\"{'x' * 40}\" {T0 + 1 + i}\n" for i in range(1000))  # > 20000 bytes
        assert s.grpc("write", namespace="db", lp=big)["ok"]
        deadline = time.time() + 30
        while True:
            files = s.grpc("list_parquet_files", namespace="db", table="p")["parquet_files"]
            if files:
                break
            assert time.time() < deadline, "the hot partition was never persisted"
            time.sleep(0.2)
        assert {f["partition_key"] for f in files} == {"2026-01-01"}, files
        assert s.grpc("write", namespace="db", lp=f"p,h=late v=5i {T0 + 10**9}")["ok"]
        deadline = time.time() + 30
        while True:
            by_key = {p["metadata"]["partition_key"]: p for p in doget(s, "p")}
            day1 = by_key["2026-01-01"]
            if [present(r) for r in day1["rows"]] == [{"h": "late", "v": "5", "time": str(T0 + 10**9)}]:
                break
            assert time.time() < deadline, day1["rows"][:3]
            time.sleep(0.2)
        n_files = len(s.grpc("list_parquet_files", namespace="db", table="p")["parquet_files"])
        assert day1["metadata"]["completed_persistence_count"] == n_files >= 1, (day1["metadata"], n_files)
        assert by_key["2026-01-02"]["metadata"]["completed_persistence_count"] == 0
        assert {p["metadata"]["ingester_uuid"] for p in by_key.values()} == {uuid}
        assert s.stop() == 0
        s.start()
        assert s.grpc("write", namespace="db", lp=f"p,h=c v=6i {T0 + 2 * DAY}")["ok"]
        parts = doget(s, "p")
        assert len(parts) == 1 and parts[0]["metadata"]["ingester_uuid"] != uuid, parts
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_columnar_write_survives_kill9_and_lands_in_parquet():
    s = Ingot()
    try:
        times = [T0, T0 + 1, T0 + DAY, T0 + DAY + 1]
        batch = {"tables": [tbatch("k9", times, col("host", "tag", ["a", None, "b", "a"]),
                                   col("i", "i64", [I64_MIN, 2, None, 4]), col("u", "u64", [None, U64_MAX, 1, None]),
                                   col("f", "f64", [0.25, None, None, -1.5]),
                                   col("b", "bool", [None, True, False, None]),
                                   col("s", "string", ["x", "\u00e9", None, None]))]}
        assert s.grpc("write", namespace="db", batch=batch) == {"ok": True, "rows": "4"}
        expected = [
            {"host": "a", "i": str(I64_MIN), "f": 0.25, "s": "x", "time": str(times[0])},
            {"i": "2", "u": str(U64_MAX), "b": True, "s": "\u00e9", "time": str(times[1])},
            {"host": "b", "u": "1", "b": False, "time": str(times[2])},
            {"host": "a", "i": "4", "f": -1.5, "time": str(times[3])},
        ]
        expected.sort(key=lambda r: json.dumps(r, sort_keys=True))
        assert parquet_files(s.data_dir) == [] and len(wal_segments(s.data_dir)) == 1
        s.kill9()
        s.start()  # replays the WAL (the DatabaseBatch as logged): persisted, and the segment deleted
        segs = wal_segments(s.data_dir)
        assert len(segs) == 1 and not segs[0].endswith(f"{os.sep}1.wal"), segs
        files = s.grpc("list_parquet_files", namespace="db", table="k9")
        assert sorted(f["partition_key"] for f in files["parquet_files"]) == ["2026-01-01", "2026-01-02"], files
        assert sum(int(f["row_count"]) for f in files["parquet_files"]) == 4
        rows = []
        for r in persisted_rows(s.data_dir, "k9"):
            rows.append({k: (str(as_int(v)) if k in ("i", "u", "time") else v) for k, v in r.items()
                         if v is not None and k not in ("_file", "file_row_number")})
        assert sorted(rows, key=lambda r: json.dumps(r, sort_keys=True)) == expected, rows
        assert rows_of(doget(s, "k9")) == []  # in Parquet now, not in the buffer
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_handshake_echo_and_unimplemented_methods():
    with Ingot() as s:
        reqs = [{"protocol_version": 1, "payload": "abc"}, {"protocol_version": U64_MAX, "payload": ""},
                {"protocol_version": 0, "payload": "h\u00e9llo \u2603"}]
        flight = "/arrow.flight.protocol.FlightService/"
        calls = [{"command": "handshake", "requests": reqs}, {"command": "handshake", "requests": []}]
        unimplemented = [(flight + "ListFlights", "server_stream"), (flight + "GetFlightInfo", "unary"),
                         (flight + "GetSchema", "unary"), (flight + "DoPut", "bidi"), (flight + "DoExchange", "bidi"),
                         (flight + "DoAction", "server_stream"), (flight + "ListActions", "server_stream"),
                         (flight + "PollFlightInfo", "unary"), ("/ingot.write.v1.WriteService/Delete", "unary"),
                         ("/ingot.catalog.v1.CatalogService/DropNamespace", "unary"),
                         ("/no.such.Service/Call", "unary"),
                         ("/no.such.Service/Stream", "bidi")]
        calls += [{"command": "call", "path": p, "mode": m, "timeout_ms": 10000} for p, m in unimplemented]
        calls.append({"command": "write", "namespace": "db", "lp": f"h v=1i {T0}"})
        res = s.grpc("sequence", calls=calls)["results"]
        assert res[0]["ok"], res[0]
        assert res[0]["responses"] == [{"protocol_version": str(r["protocol_version"]), "payload": r["payload"]}
                                       for r in reqs], res[0]
        assert res[1] == {"ok": True, "responses": []}, res[1]
        for (path, mode), r in zip(unimplemented, res[2:]):
            assert r["ok"] is False and r["code"] == "UNIMPLEMENTED", (path, mode, r)
        assert res[-1] == {"ok": True, "rows": "1"}, res[-1]  # still serving


def test_auth_token_on_every_service():
    with Ingot(args=["--auth-token", "s3cret"]) as s:
        w = {"command": "write", "namespace": "db", "lp": f"a v=1i {T0}"}
        denied = [w, {"command": "doget", "ticket_raw": ticket("a")}, {"command": "list_namespaces"},
                  {"command": "get_schema", "namespace": "db"}]
        res = s.grpc("sequence", calls=denied + [dict(c, token="wrong") for c in denied] +
                     [dict(w, authorization="Bearer"), dict(w, authorization="Basic s3cret"),
                      dict(w, authorization="s3cret")])["results"]
        for r in res:
            assert r["ok"] is False and r["code"] == "UNAUTHENTICATED", r
        ok = s.grpc("sequence", calls=[
            dict(w, authorization="Bearer s3cret"),
            dict(w, lp=f"a v=2i {T0 + 1}", authorization="Token s3cret"),
            {"command": "doget", "ticket_raw": ticket("a"), "token": "s3cret"},
            {"command": "list_namespaces", "token": "s3cret"},
            {"command": "get_schema", "namespace": "db", "authorization": "Token s3cret"}])["results"]
        assert all(r["ok"] for r in ok), ok
        assert ok[0]["rows"] == "1" and len(rows_of(ok[2]["partitions"])) == 2
        assert [n["name"] for n in ok[3]["namespaces"]] == ["db"]
        assert "s3cret" not in s.log_text()


def test_write_resource_exhausted_while_persist_queue_full_then_recovers():
    s = Ingot(args=["--persist-hot-partition-bytes", "5000", "--persist-queue-depth", "2",
                    "--persist-workers", "1"])
    try:
        blocker = os.path.join(s.data_dir, "objects", "bp")  # a file where the namespace directory must go
        os.makedirs(os.path.dirname(blocker), exist_ok=True)
        with open(blocker, "w") as f:
            f.write("x")
        calls = [{"command": "write", "namespace": "bp",
                  "lp": "".join(f"t,b=b{i} v={j}i {T0 + j}\n" for j in range(100))} for i in range(200)]
        res = s.grpc("sequence", calls=calls, until_code="RESOURCE_EXHAUSTED")["results"]
        refused = len(res) - 1
        assert res[-1]["ok"] is False and res[-1]["code"] == "RESOURCE_EXHAUSTED", res[-1]
        assert all(r == {"ok": True, "rows": "100"} for r in res[:-1]), res[:-1]
        os.remove(blocker)  # the store works again: the backlog drains and writes resume
        deadline = time.time() + 60
        while True:
            r = s.grpc("write", namespace="bp", lp=f"t,b=after v=1i {T0}")
            if r["ok"]:
                break
            assert r["code"] == "RESOURCE_EXHAUSTED" and time.time() < deadline, r
            time.sleep(0.2)
        assert s.stop() == 0
        got = {}
        for row in persisted_rows(s.data_dir, "t", db="bp"):
            got.setdefault(row["b"], set()).add(as_int(row["v"]))
        for i in range(refused):
            assert got.get(f"b{i}") == set(range(100)), i
        assert f"b{refused}" not in got, "the refused write was applied"
        assert got.get("after") == {1}
    finally:
        s.cleanup()


def test_doget_holds_a_query_slot_shared_with_http():
    with Ingot(args=["--concurrent-query-limit", "1"]) as s:
        pad = "y" * 2000
        for d in range(4):  # about 16 MB of Arrow: far more than HTTP/2 flow control lets through
            lp = "".join(f"big,h=h{i % 10} v={i}i,s=\"{pad}\" {T0 + d * DAY + i}\n" for i in range(2000))
            assert s.write(lp).status == 204
        url = f"http://127.0.0.1:{s.port}/api/v1/query_table?db=db&table=big&format=jsonl&columns=v"
        r = s.grpc("hold", ticket_raw=ticket("big"), ticket2_raw=ticket("big", columns=["v"]), http_url=url)
        assert r["ok"], r
        assert r["second"]["ok"] is False and r["second"]["code"] == "RESOURCE_EXHAUSTED", r
        assert r["http_status"] == 503, r
        # the first stream went on whole after the pause
        parts = doget(s, "big")
        assert r["first"] == {"ok": True, "messages": sum(1 + len(p["messages"]) for p in parts)}, r["first"]
        assert len(parts) == 4 and sum(len(p["rows"]) for p in parts) == 4 * 2000
        assert s.metrics()["ingot_queries_rejected_total"] >= 2
        # the slot is free again once the stream ended
        parts = doget(s, "big", columns=["v", "time"])
        assert sum(len(p["rows"]) for p in parts) == 4 * 2000


def test_graceful_stop_answers_doget_refuses_writes_and_exits_empty():
    s = Ingot()
    try:
        lp = "".join(f"g,h=h{i % 5} v={i}i {T0 + (i % 2) * DAY + i}\n" for i in range(2000))
        assert s.grpc("write", namespace="db", lp=lp) == {"ok": True, "rows": "2000"}
        # a file where the table's directory must go: the final persist waits until it goes
        blocker = os.path.join(s.data_dir, "objects", "db", "g")
        os.makedirs(os.path.dirname(blocker), exist_ok=True)
        open(blocker, "w").close()
        s.proc.send_signal(signal.SIGTERM)
        acked, deadline = 0, time.time() + 30
        while s.write(f"g,h=late v={acked}i {T0 + 5000 + acked}").status == 204:  # until the stop began
            acked += 1
            assert time.time() < deadline, "writes were never refused"
        res = s.grpc("sequence", calls=[
            {"command": "write", "namespace": "db", "lp": f"g,h=late v=-1i {T0 + 4999}"},
            {"command": "doget", "ticket_raw": ticket("g")},
            {"command": "write", "namespace": "db",
             "batch": {"tables": [tbatch("g", [T0 + 9999], col("v", "i64", [1]))]}},
            {"command": "list_namespaces"}])["results"]
        assert res[0]["code"] == "FAILED_PRECONDITION" and "shutting down" in res[0]["details"], res[0]
        assert res[2]["code"] == "FAILED_PRECONDITION" and "shutting down" in res[2]["details"], res[2]
        assert res[1]["ok"], res[1]
        check_frames(res[1]["partitions"])
        assert sum(len(p["rows"]) for p in res[1]["partitions"]) == 2000 + acked  # nothing persisted yet
        assert res[3]["ok"] and [n["name"] for n in res[3]["namespaces"]] == ["db"], res[3]
        assert s.proc.poll() is None, "ingot stopped while the final persist was held"
        os.remove(blocker)
        assert s.wait_exit(60) == 0
        assert "ingot stopped with an empty WAL" in s.log_text()
        assert wal_segments(s.data_dir) == []
        assert len(persisted_rows(s.data_dir, "g")) == 2000 + acked
    finally:
        s.cleanup()
