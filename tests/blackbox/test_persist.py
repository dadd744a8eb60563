"""Black-box tests of persistence: graceful stop leaves every row in Parquet exactly once with an
empty WAL; kill -9 during persist loses and duplicates nothing; queries stay whole during the final
persist; back-pressure with a failing object store; rotation deletes segments; disk-full refusal.
Parquet files are read back with DuckDB (tests/readers/read_parquet.mjs) and the catalog with
Python's sqlite3."""
import http.client
import json
import os
import sqlite3
import time

from harness import (DAY, T0, Ingot, as_int, check_load, kill9_under_load, parquet_files, read_parquet,
                     wal_segments)



def catalog_rows(data_dir, sql):
    con = sqlite3.connect(os.path.join(data_dir, "catalog.sqlite"))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_graceful_stop_persists_everything_once_sorted_with_empty_wal():
    s = Ingot(args=["--persist-workers", "2"])
    try:
        lp = "".join(f"cpu,host=h{i % 7},dc=d{i % 2} v={i}i,f={i}.5 {T0 + (i % 3) * DAY + i}\n"
                     for i in range(6000))
        assert s.write(lp).status == 204
        assert s.write(f"cpu,host=h0,dc=d0 v=-1i {T0}").status == 204  # upsert of row 0
        assert s.write(f"mem,host=h1 used=3u {T0}", db="other").status == 204
        assert s.stop() == 0
        assert wal_segments(s.data_dir) == [], wal_segments(s.data_dir)
        files = parquet_files(s.data_dir)
        assert len(files) == 4, files  # 3 days of cpu + 1 of mem
        rows = [r for r in read_parquet(files) if "cpu/" in r["_file"]]
        keys = [(r["host"], r["dc"], as_int(r["v"])) for r in rows]
        assert len(rows) == 6000 and len(set((r["host"], r["dc"], str(r["time"])) for r in rows)) == 6000
        row0 = [r for r in rows if r["host"] == "h0" and r["dc"] == "d0" and as_int(r["v"]) in (0, -1)]
        assert len(row0) == 1 and as_int(row0[0]["v"]) == -1 and float(row0[0]["f"]) == 0.5, row0
        assert sorted(k[2] for k in keys if k[2] >= 1) == list(range(1, 6000))
        # each file is sorted by its partition's sort key
        sort_keys = dict(catalog_rows(s.data_dir, "SELECT partition_key, sort_key FROM partition p "
                                      "JOIN table_name t ON t.id = p.table_id WHERE t.name = 'cpu'"))
        for f in files:
            if "cpu/" not in f:
                continue
            day = f.split("/")[-2]
            key = json.loads(sort_keys[day])
            assert key[-1] == "time" and set(key[:-1]) == {"host", "dc"}, key
            assert key[0] == "dc", key  # fewer distinct values first
            frows = [r for r in rows if r["_file"] == f]
            tuples = [tuple(r[c] if c != "time" else str(r[c]) for c in key[:-1]) + (r["time"],) for r in frows]
            assert tuples == sorted(tuples), f
        n_files = catalog_rows(s.data_dir, "SELECT count(*), sum(row_count) FROM parquet_file")[0]
        assert n_files == (4, 6001), n_files
        # after the restart nothing is buffered: the data lives in Parquet
        s.start()
        r = s.query("cpu")
        assert r.status == 200 and r.jsonl() == [], r
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_kill9_during_persist_then_restart_every_row_exactly_once():
    # tiny hot-partition threshold: persists run all the time under load
    s = Ingot(args=["--persist-hot-partition-bytes", "20000", "--persist-workers", "2",
                    "--wal-segment-bytes", "200000"])
    try:
        acked, errors = [], []
        kill9_under_load(s, "k9", acked, errors, rounds=2, writers=4, sizes=(50, 400), days=4)
        assert s.stop() == 0
        assert wal_segments(s.data_dir) == []
        check_load(read_parquet(parquet_files(s.data_dir)), acked)
    finally:
        s.cleanup()


def test_queries_answered_during_final_persist_and_partitions_never_torn():
    s = Ingot(args=["--persist-workers", "1"])
    try:
        per_day = 40000
        for d in range(4):
            lp = "".join(f"q,h=h{i % 50} v={i}i {T0 + d * DAY + i}\n" for i in range(per_day))
            assert s.write(lp).status == 204
        # a file where the table's directory must go: puts fail (and are retried) until it goes,
        # so the final persist cannot finish before the queries below are answered
        blocker = os.path.join(s.data_dir, "objects", "db", "q")
        os.makedirs(os.path.dirname(blocker), exist_ok=True)
        open(blocker, "w").close()
        s.proc.send_signal(15)
        answers = 0
        while s.proc.poll() is None:
            try:
                r = s.query("q", columns="v,time")
            except (OSError, http.client.HTTPException):
                break
            if r.status != 200:
                break
            days = {}
            for row in r.jsonl():
                days[row["time"][:10]] = days.get(row["time"][:10], 0) + 1
            assert all(n == per_day for n in days.values()), days  # a day is whole or gone
            answers += 1
            if answers == 3:
                assert len(days) == 4, days  # nothing could be persisted yet
                os.remove(blocker)  # let the persist finish while the queries go on
        assert s.wait_exit(60) == 0
        assert answers >= 3, answers
        assert sum(1 for _ in read_parquet(parquet_files(s.data_dir))) == 4 * per_day
    finally:
        s.cleanup()


def test_failing_object_store_back_pressure_then_recovery_loses_nothing():
    s = Ingot(args=["--persist-hot-partition-bytes", "5000", "--persist-queue-depth", "2",
                    "--persist-workers", "1"])
    try:
        blocker = os.path.join(s.data_dir, "objects", "bp")
        os.makedirs(os.path.dirname(blocker), exist_ok=True)
        with open(blocker, "w") as f:  # a file where the namespace directory must go: puts fail
            f.write("x")
        acked, refused = [], 0
        for i in range(200):
            lp = "".join(f"t,b=b{i} v={j}i {T0 + j}\n" for j in range(100))
            r = s.write(lp, db="bp")
            if r.status == 204:
                acked.append(i)
            else:
                assert r.status == 503 and r.headers.get("retry-after") == "1", r
                assert "persist" in r.json()["message"], r
                refused += 1
        assert refused > 0, "the queue never filled"
        m = s.metrics()
        assert m["ingot_persist_saturated"] == 1 and m['ingot_persist_retries_total{op="put"}'] > 0, m
        os.remove(blocker)  # the store works again: the backlog drains and writes resume
        deadline = time.time() + 60
        while s.write(f"t,b=after v=1i {T0}", db="bp").status != 204:
            assert time.time() < deadline, "writes never resumed"
            time.sleep(0.2)
        assert s.metrics()["ingot_persist_saturated"] == 0
        assert s.stop() == 0
        rows = read_parquet(parquet_files(s.data_dir))
        got = {}
        for r in rows:
            got.setdefault(r["b"], set()).add(as_int(r["v"]))
        for i in acked:
            assert got.get(f"b{i}") == set(range(100)), i
        assert len(rows) == len({(r["b"], str(r["time"])) for r in rows})
    finally:
        s.cleanup()


def test_rotation_by_time_persists_and_deletes_segments():
    s = Ingot(args=["--wal-rotation-period", "1"])
    try:
        for i in range(5):
            assert s.write(f"rot,i=i{i} v={i}i {T0 + i}").status == 204
            time.sleep(0.6)
        deadline = time.time() + 20
        while len(wal_segments(s.data_dir)) > 2 or not parquet_files(s.data_dir):
            assert time.time() < deadline, (wal_segments(s.data_dir), parquet_files(s.data_dir))
            time.sleep(0.2)
        m = s.metrics()
        assert m["ingot_wal_segments_deleted_total"] >= 1 and m["ingot_wal_rotations_total"] >= 2, m
        assert s.stop() == 0
        rows = read_parquet(parquet_files(s.data_dir))
        assert sorted(as_int(r["v"]) for r in rows) == [0, 1, 2, 3, 4]
    finally:
        s.cleanup()


def test_disk_full_refuses_writes_with_503():
    s = Ingot(args=["--disk-full-percent", "1"])
    try:
        deadline = time.time() + 10
        while s.metrics().get("ingot_disk_full") != 1:
            assert time.time() < deadline
            time.sleep(0.1)
        r = s.write(f"df v=1i {T0}")
        assert r.status == 503 and "full" in r.json()["message"] and r.headers.get("retry-after"), r
        assert s.stop() == 0
    finally:
        s.cleanup()


def test_hostile_names_stay_under_the_object_root():
    with Ingot() as s:
        assert s.write(f"..\\ /etc,t=1 v=1i {T0}\nse/cret v=2i {T0}\n").status == 204
        assert s.stop() == 0
        root = os.path.realpath(os.path.join(s.data_dir, "objects"))
        files = parquet_files(s.data_dir)
        assert len(files) == 2, files
        for f in files:
            assert os.path.realpath(f).startswith(root + os.sep), f
        names = sorted(catalog_rows(s.data_dir, "SELECT name FROM table_name"))
        assert names == [(".. /etc",), ("se/cret",)], names
        s.start()
