// verify_parquet.mjs DIR: reads every DIR/X.parquet written by `INGOT_PARQUET_SAMPLES=DIR
// build/tests/test_parquet` with three independent Parquet readers and compares them, value for
// value, with DIR/X.expected.jsonl (and the file metadata with DIR/X.meta.json):
//   - DuckDB (@duckdb/node-api): read_parquet() values, column types (DESCRIBE), the "ingot"
//     key-value metadata (parquet_kv_metadata), created_by and column_orders
//     (parquet_file_metadata), row groups, rows, null counts and encodings (parquet_metadata:
//     meta.json's "encodings" names the value encoding some columns must use). DuckDB reads TIMESTAMP(NANOS, UTC) as TIMESTAMP WITH TIME ZONE, which
//     has microsecond precision: its time values are compared truncated toward zero to µs.
//   - arrow-rs through parquet-wasm (readParquet -> IPC -> apache-arrow tableFromIPC); timestamps
//     are compared as the raw BigInt64 nanoseconds.
//   - hyparquet (+ hyparquet-compressors for ZSTD, timestamps kept as BigInt nanoseconds); also the
//     sorting_columns of every row group and the statistics of every column chunk.
// Expected values: null; i64/u64/time as decimal strings; floats as numbers (0 and -0 compare
// equal); booleans; strings. Rows are compared in windows so million-row files stay in memory.
// Prints one line per mismatch (file, reader, row, column, expected, got) and finally
// "verify_parquet: N passed, N failed" (one check = one file x one reader); exits 1 on a failure.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { DuckDBInstance } from '@duckdb/node-api';
import { readParquet } from 'parquet-wasm';
import { tableFromIPC } from 'apache-arrow';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const WINDOW = 100000;
const MAX_REPORTS = 20; // mismatches printed per file and reader

const DUCKDB_TYPES = {
  time: 'TIMESTAMP WITH TIME ZONE', tag: 'VARCHAR', string: 'VARCHAR', i64: 'BIGINT',
  u64: 'UBIGINT', f64: 'DOUBLE', bool: 'BOOLEAN',
};
const ARROW_TYPES = {
  time: 'Timestamp<NANOSECOND, UTC>', tag: 'Utf8', string: 'Utf8', i64: 'Int64', u64: 'Uint64',
  f64: 'Float64', bool: 'Bool',
};

const q = (name) => '"' + name.replaceAll('"', '""') + '"';
const sqlStr = (s) => "'" + s.replaceAll("'", "''") + "'";

// Normalises a reader's value to the expected.jsonl representation.
function norm(type, v) {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'time': case 'i64': case 'u64': return typeof v === 'string' ? v : BigInt(v).toString();
    case 'f64': return typeof v === 'string' ? Number(v) : v;
    default: return v;
  }
}

function same(type, want, got) {
  if (want === null || got === null) return want === got;
  if (type === 'f64') return want === got || (Number.isNaN(want) && Number.isNaN(got));
  return want === got;
}

// Time truncated toward zero to microseconds, in nanoseconds (DuckDB's precision).
const toMicros = (ns) => ((BigInt(ns) / 1000n) * 1000n).toString();

class Checker {
  constructor(file, reader) {
    this.file = file; this.reader = reader; this.failures = 0;
  }
  fail(msg) {
    this.failures++;
    if (this.failures <= MAX_REPORTS) console.log(`MISMATCH ${this.file} [${this.reader}] ${msg}`);
  }
  row(rowIdx, col, want, got) {
    if (!same(col.type, want, got)) {
      this.fail(`row ${rowIdx}, column ${JSON.stringify(col.name)}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    }
  }
}

async function* expectedWindows(file, rows) {
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let buf = [];
  for await (const line of rl) {
    if (!line) continue;
    buf.push(JSON.parse(line));
    if (buf.length === WINDOW) { yield buf; buf = []; }
  }
  if (buf.length || rows === 0) yield buf;
}

// Expected per-column statistics computed from the expected rows (updated window by window).
function newStats(cols) {
  return cols.map(() => ({ nulls: 0, min: undefined, max: undefined }));
}
function statValue(type, v) {
  if (type === 'time' || type === 'i64' || type === 'u64') return BigInt(v);
  if (type === 'tag' || type === 'string') return Buffer.from(v, 'utf8');
  return v;
}
function statLess(type, a, b) {
  if (type === 'tag' || type === 'string') return Buffer.compare(a, b) < 0;
  return a < b;
}
function accumulate(stats, cols, rows) {
  for (const r of rows) {
    cols.forEach((c, i) => {
      const v = r[c.name];
      const s = stats[i];
      if (v === null) { s.nulls++; return; }
      if (c.type === 'f64' && Number.isNaN(v)) return;
      const sv = statValue(c.type, v);
      if (s.min === undefined || statLess(c.type, sv, s.min)) s.min = sv;
      if (s.max === undefined || statLess(c.type, s.max, sv)) s.max = sv;
    });
  }
}

async function verifyFile(dir, name, con, results) {
  const base = path.join(dir, name);
  const meta = JSON.parse(fs.readFileSync(base + '.meta.json', 'utf8'));
  const cols = meta.columns;
  const file = base + '.parquet';
  const buf = fs.readFileSync(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const duck = new Checker(name, 'duckdb');
  const arrow = new Checker(name, 'parquet-wasm');
  const hyp = new Checker(name, 'hyparquet');
  const guard = async (checker, fn) => {
    try { await fn(); } catch (e) { checker.fail(`reader error: ${e && e.stack ? e.stack : e}`); }
  };

  // ---- file-level checks
  let table = null;
  await guard(duck, async () => {
    const desc = (await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlStr(file)})`)).getRowObjectsJson();
    if (desc.length !== cols.length) duck.fail(`column count: expected ${cols.length}, got ${desc.length}`);
    cols.forEach((c, i) => {
      if (!desc[i] || desc[i].column_name !== c.name || desc[i].column_type !== DUCKDB_TYPES[c.type]) {
        duck.fail(`column ${i}: expected ${c.name} ${DUCKDB_TYPES[c.type]}, got ${JSON.stringify(desc[i])}`);
      }
    });
    const kv = (await con.runAndReadAll(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${sqlStr(file)})`)).getRowObjectsJson();
    const ingot = kv.filter((r) => r.k === 'ingot');
    if (ingot.length !== 1 || ingot[0].v !== meta.ingot) duck.fail(`kv metadata "ingot": expected ${JSON.stringify(meta.ingot)}, got ${JSON.stringify(kv)}`);
    const rg = (await con.runAndReadAll(`SELECT count(DISTINCT row_group_id) AS n, coalesce(sum(row_group_num_rows) FILTER (WHERE column_id = 0), 0) AS rows FROM parquet_metadata(${sqlStr(file)})`)).getRowObjectsJson()[0];
    if (Number(rg.n) !== meta.row_groups || Number(rg.rows) !== meta.rows) duck.fail(`row groups/rows: expected ${meta.row_groups}/${meta.rows}, got ${rg.n}/${rg.rows}`);
    const fm = (await con.runAndReadAll(`SELECT created_by, column_orders FROM parquet_file_metadata(${sqlStr(file)})`)).getRowObjectsJson()[0];
    const orders = fm.column_orders || [];
    if (fm.created_by !== 'ingot') duck.fail(`created_by: ${fm.created_by}`);
    if (orders.length !== cols.length || !orders.every((o) => /TYPE_ORDER/.test(o))) duck.fail(`column_orders: expected TYPE_ORDER x ${cols.length}, got ${JSON.stringify(orders)}`);
    const encs = (await con.runAndReadAll(`SELECT row_group_id AS g, path_in_schema AS c, encodings AS e, stats_null_count AS n, num_values AS v FROM parquet_metadata(${sqlStr(file)})`)).getRowObjectsJson();
    for (const r of encs) {
      const want = (meta.encodings || {})[r.c];
      if (!want || Number(r.n) === Number(r.v)) continue; // an all-null chunk is always PLAIN
      const got = r.e.split(', ');
      // PLAIN must be the only value encoding (no dictionary); others must be present.
      const ok = want === 'PLAIN' ? !got.includes('RLE_DICTIONARY') && got.includes('PLAIN') : got.includes(want);
      if (!ok) duck.fail(`row group ${r.g}, column ${r.c}: encoding ${want} expected, got ${r.e}`);
    }
    const cnt = (await con.runAndReadAll(`SELECT count(*) AS n FROM read_parquet(${sqlStr(file)})`)).getRowObjectsJson()[0];
    if (Number(cnt.n) !== meta.rows) duck.fail(`count(*): expected ${meta.rows}, got ${cnt.n}`);
  });
  await guard(arrow, async () => {
    table = tableFromIPC(readParquet(new Uint8Array(buf)).intoIPCStream());
    if (table.numRows !== meta.rows) arrow.fail(`rows: expected ${meta.rows}, got ${table.numRows}`);
    cols.forEach((c, i) => {
      const f = table.schema.fields[i];
      if (!f || f.name !== c.name || String(f.type) !== ARROW_TYPES[c.type]) arrow.fail(`column ${i}: expected ${c.name} ${ARROW_TYPES[c.type]}, got ${f ? f.name + ' ' + f.type : 'none'}`);
    });
  });
  let md = null;
  await guard(hyp, async () => {
    md = parquetMetadata(ab);
    if (Number(md.num_rows) !== meta.rows) hyp.fail(`num_rows: expected ${meta.rows}, got ${md.num_rows}`);
    if (md.row_groups.length !== meta.row_groups) hyp.fail(`row groups: expected ${meta.row_groups}, got ${md.row_groups.length}`);
    if (md.created_by !== 'ingot') hyp.fail(`created_by: ${md.created_by}`);
    const kv = (md.key_value_metadata || []).find((k) => k.key === 'ingot');
    if (!kv || kv.value !== meta.ingot) hyp.fail(`kv metadata "ingot": got ${JSON.stringify(kv)}`);
    const wantSort = meta.sorting_columns.map((n) => cols.findIndex((c) => c.name === n));
    md.row_groups.forEach((g, gi) => {
      const got = (g.sorting_columns || []).map((s) => `${s.column_idx}/${s.descending}/${s.nulls_first}`).join(',');
      const want = wantSort.map((i) => `${i}/false/true`).join(',');
      if (got !== want) hyp.fail(`row group ${gi} sorting_columns: expected ${want}, got ${got}`);
    });
  });

  // ---- values, window by window; statistics per row group accumulated on the way
  const rgRows = md ? md.row_groups.map((g) => Number(g.num_rows)) : [];
  let rgIndex = 0, rgLeft = rgRows[0] ?? 0;
  let rgStats = newStats(cols);
  const arrowCols = table ? cols.map((c) => columnReader(table.getChild(c.name), c.type)) : null;
  const checkStats = async (gi, stats) => {
    await guard(hyp, async () => checkRowGroupStats(hyp, md, gi, cols, stats));
    await guard(duck, async () => {
      const rows = (await con.runAndReadAll(`SELECT column_id, stats_null_count AS n FROM parquet_metadata(${sqlStr(file)}) WHERE row_group_id = ${gi} ORDER BY column_id`)).getRowObjectsJson();
      rows.forEach((r) => {
        const ci = Number(r.column_id);
        if (Number(r.n) !== stats[ci].nulls) duck.fail(`row group ${gi}, column ${cols[ci].name}: null_count expected ${stats[ci].nulls}, got ${r.n}`);
      });
    });
  };
  let start = 0;
  for await (const want of expectedWindows(base + '.expected.jsonl', meta.rows)) {
    const end = start + want.length;
    // statistics bookkeeping
    let off = 0;
    while (off < want.length && md) {
      const take = Math.min(rgLeft, want.length - off);
      accumulate(rgStats, cols, want.slice(off, off + take));
      off += take; rgLeft -= take;
      if (rgLeft === 0 && rgIndex < rgRows.length) {
        await checkStats(rgIndex, rgStats);
        rgIndex++; rgLeft = rgRows[rgIndex] ?? 0; rgStats = newStats(cols);
      }
    }
    if (want.length === 0) break;
    await guard(duck, async () => {
      const sel = cols.map((c) => c.type === 'time' ? `epoch_ns(${q(c.name)}) AS ${q(c.name)}` : q(c.name)).join(', ');
      const got = (await con.runAndReadAll(`SELECT ${sel} FROM read_parquet(${sqlStr(file)}, file_row_number = true) WHERE file_row_number >= ${start} AND file_row_number < ${end} ORDER BY file_row_number`)).getRowObjectsJson();
      if (got.length !== want.length) duck.fail(`rows ${start}..${end}: got ${got.length} rows`);
      for (let i = 0; i < Math.min(got.length, want.length); i++) {
        for (const c of cols) {
          let w = want[i][c.name];
          if (c.type === 'time' && w !== null) w = toMicros(w);
          duck.row(start + i, c, w, norm(c.type, got[i][c.name]));
        }
      }
    });
    if (table) {
      await guard(arrow, async () => {
        for (let i = 0; i < want.length; i++) {
          cols.forEach((c, ci) => arrow.row(start + i, c, want[i][c.name], norm(c.type, arrowCols[ci](start + i))));
        }
      });
    }
    await guard(hyp, async () => {
      const got = await parquetReadObjects({ file: ab, compressors, rowStart: start, rowEnd: end, parsers: { timestampFromNanoseconds: (ns) => ns } });
      if (got.length !== want.length) hyp.fail(`rows ${start}..${end}: got ${got.length} rows`);
      for (let i = 0; i < Math.min(got.length, want.length); i++) {
        for (const c of cols) hyp.row(start + i, c, want[i][c.name], norm(c.type, got[i][c.name]));
      }
    });
    start = end;
  }
  if (start !== meta.rows) duck.fail(`expected.jsonl has ${start} rows, meta says ${meta.rows}`);
  for (const c of [duck, arrow, hyp]) {
    if (c.failures) results.failed++; else results.passed++;
    if (c.failures > MAX_REPORTS) console.log(`... ${name} [${c.reader}]: ${c.failures} mismatches in all`);
  }
  console.log(`${name}: ${meta.rows} rows, ${meta.row_groups} row groups, ${buf.length} bytes: duckdb ${duck.failures ? 'FAIL' : 'ok'}, parquet-wasm ${arrow.failures ? 'FAIL' : 'ok'}, hyparquet ${hyp.failures ? 'FAIL' : 'ok'}`);
}

// Row accessor for an apache-arrow column: raw BigInt64 nanoseconds for timestamps.
function columnReader(vec, type) {
  if (!vec) throw new Error('column missing');
  if (type !== 'time') return (i) => vec.get(i);
  const chunks = vec.data.map((d) => ({ d, len: d.length }));
  return (i) => {
    for (const { d, len } of chunks) {
      if (i < len) {
        if (d.nullBitmap && d.nullCount > 0) {
          const bit = d.offset + i;
          if (!((d.nullBitmap[bit >> 3] >> (bit & 7)) & 1)) return null;
        }
        if (!(d.values instanceof BigInt64Array)) throw new Error('timestamp values are not BigInt64');
        return d.values[i];
      }
      i -= len;
    }
    throw new Error('row out of range');
  };
}

function checkRowGroupStats(hyp, md, gi, cols, stats) {
  const g = md.row_groups[gi];
  cols.forEach((c, ci) => {
    const s = g.columns[ci].meta_data.statistics;
    const want = stats[ci];
    const where = `row group ${gi}, column ${JSON.stringify(c.name)} statistics`;
    if (!s) { hyp.fail(`${where}: missing`); return; }
    if (Number(s.null_count) !== want.nulls) hyp.fail(`${where}: null_count expected ${want.nulls}, got ${s.null_count}`);
    if (want.min === undefined) {
      if (s.min_value !== undefined || s.max_value !== undefined) hyp.fail(`${where}: min/max present for an all-null chunk`);
      return;
    }
    const conv = (v) => {
      if (c.type === 'time') return v instanceof Date ? v.getTime() : Number(v) / 1e6;
      if (c.type === 'tag' || c.type === 'string') return Buffer.from(String(v), 'utf8');
      if (c.type === 'i64' || c.type === 'u64') return BigInt(v);
      return v;
    };
    for (const [k, w] of [['min_value', want.min], ['max_value', want.max]]) {
      const got = conv(s[k]);
      let ok;
      if (c.type === 'time') ok = Math.abs(got - Number(w) / 1e6) <= 1; // hyparquet gives a Date (ms)
      else if (c.type === 'tag' || c.type === 'string') ok = Buffer.compare(got, w) === 0;
      else ok = got === w;
      if (!ok) hyp.fail(`${where}: ${k} expected ${String(w)}, got ${String(s[k])}`);
    }
  });
}

async function main() {
  const dir = process.argv[2];
  if (!dir) { console.error('usage: verify_parquet.mjs DIR'); process.exit(2); }
  const names = fs.readdirSync(dir).filter((f) => f.endsWith('.parquet')).map((f) => f.slice(0, -8)).sort();
  const results = { passed: 0, failed: 0 };
  if (names.length === 0) { console.log(`MISMATCH no sample files in ${dir}`); results.failed++; }
  const inst = await DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  for (const name of names) await verifyFile(dir, name, con, results);
  console.log(`verify_parquet: ${results.passed} passed, ${results.failed} failed`);
  process.exit(results.failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
