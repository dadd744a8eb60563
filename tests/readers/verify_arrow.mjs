// verify_arrow.mjs DIR: reads every DIR/X.arrows (Arrow IPC stream) written by
// `INGOT_ARROW_SAMPLES=DIR build/tests/test_arrow_ipc` with two independent Arrow implementations
// and compares them, value for value, with DIR/X.expected.jsonl and DIR/X.meta.json
// ({"columns":[{"name","type"}],"batches":[rows per batch]}):
//   - apache-arrow (JS): RecordBatchReader batch by batch (the batch count and sizes, zero-row
//     batches included, must match) and tableFromIPC; field types must be exactly
//     Dictionary<Int32, Utf8> for tags, Timestamp<NANOSECOND, "UTC"> (not nullable) for time,
//     Int64, Uint64, Float64, Bool, Utf8 (nullable) for fields.
//   - arrow-rs through parquet-wasm: Table.fromIPCStream (arrow-rs's StreamReader, which
//     validates the buffers) then back out with intoIPCStream and read with apache-arrow.
// Timestamps and 64-bit integers are compared as raw BigInt values. Expected values: null;
// i64/u64/time as decimal strings; floats as numbers (0 and -0 compare equal); booleans; strings.
// Prints one line per mismatch (file, reader, row, column, expected, got) and finally
// "verify_arrow: N passed, N failed" (one check = one file x one reader); exits 1 on a failure.
import fs from 'node:fs';
import path from 'node:path';
import { RecordBatchReader, tableFromIPC, DataType, TimeUnit } from 'apache-arrow';
import { Table as WasmTable } from 'parquet-wasm';

const MAX_REPORTS = 20;

const ARROW_TYPES = {
  time: 'Timestamp<NANOSECOND, UTC>', tag: 'Dictionary<Int32, Utf8>', string: 'Utf8',
  i64: 'Int64', u64: 'Uint64', f64: 'Float64', bool: 'Bool',
};

class Checker {
  constructor(file, reader) { this.file = file; this.reader = reader; this.failures = 0; }
  fail(msg) {
    this.failures++;
    if (this.failures <= MAX_REPORTS) console.log(`MISMATCH ${this.file} [${this.reader}] ${msg}`);
  }
}

function norm(type, v) {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'time': case 'i64': case 'u64': return BigInt(v).toString();
    default: return v;
  }
}

function same(type, want, got) {
  if (want === null || got === null) return want === got;
  if (type === 'f64') return want === got || (Number.isNaN(want) && Number.isNaN(got));
  return want === got;
}

// The exact type checks beyond the type's string form.
function checkSchema(ck, schema, cols) {
  if (schema.fields.length !== cols.length) ck.fail(`column count: expected ${cols.length}, got ${schema.fields.length}`);
  cols.forEach((c, i) => {
    const f = schema.fields[i];
    if (!f) return;
    const where = `column ${i} (${c.name})`;
    if (f.name !== c.name) ck.fail(`${where}: name ${JSON.stringify(f.name)}`);
    if (String(f.type) !== ARROW_TYPES[c.type]) ck.fail(`${where}: type expected ${ARROW_TYPES[c.type]}, got ${f.type}`);
    if (f.nullable !== (c.type !== 'time')) ck.fail(`${where}: nullable ${f.nullable}`);
    if (c.type === 'tag') {
      const t = f.type;
      if (!DataType.isDictionary(t) || t.indices.bitWidth !== 32 || !t.indices.isSigned || !DataType.isUtf8(t.dictionary) || t.isOrdered) {
        ck.fail(`${where}: not Dictionary(Int32 signed, Utf8, unordered): ${t}`);
      }
    }
    if (c.type === 'time') {
      const t = f.type;
      if (!DataType.isTimestamp(t) || t.unit !== TimeUnit.NANOSECOND || t.timezone !== 'UTC') ck.fail(`${where}: ${t} unit ${t.unit} tz ${t.timezone}`);
    }
  });
}

// Value of row i of a column vector of one batch: raw BigInt64 for timestamps.
function cell(vec, type, i) {
  if (!vec.isValid(i)) return null;
  if (type === 'time') {
    const d = vec.data[0];
    if (!(d.values instanceof BigInt64Array)) throw new Error('timestamp values are not BigInt64');
    return d.values[d.offset + i];
  }
  return vec.get(i);
}

// Compare the rows of `batches` (apache-arrow RecordBatch list) with `want`.
function checkRows(ck, via, batches, cols, want) {
  let row = 0;
  for (const batch of batches) {
    const vecs = cols.map((c) => batch.getChild(c.name));
    if (vecs.some((v) => !v)) { ck.fail(`${via}: column missing in a batch`); return; }
    for (let i = 0; i < batch.numRows; i++, row++) {
      if (row >= want.length) { ck.fail(`${via}: more rows than the ${want.length} expected`); return; }
      cols.forEach((c, ci) => {
        const got = norm(c.type, cell(vecs[ci], c.type, i));
        const w = want[row][c.name];
        if (!same(c.type, w, got)) ck.fail(`${via}: row ${row}, column ${JSON.stringify(c.name)}: expected ${JSON.stringify(w)}, got ${JSON.stringify(got)}`);
      });
    }
  }
  if (row !== want.length) ck.fail(`${via}: rows: expected ${want.length}, got ${row}`);
}

function verifyFile(dir, name, results) {
  const base = path.join(dir, name);
  const meta = JSON.parse(fs.readFileSync(base + '.meta.json', 'utf8'));
  const cols = meta.columns;
  const want = fs.readFileSync(base + '.expected.jsonl', 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const bytes = new Uint8Array(fs.readFileSync(base + '.arrows'));
  const js = new Checker(name, 'apache-arrow');
  const rs = new Checker(name, 'arrow-rs');
  const guard = (ck, fn) => { try { fn(); } catch (e) { ck.fail(`reader error: ${e && e.stack ? e.stack : e}`); } };

  guard(js, () => {
    const reader = RecordBatchReader.from(bytes);
    reader.open();
    checkSchema(js, reader.schema, cols);
    const batches = [...reader];
    const sizes = batches.map((b) => b.numRows);
    if (JSON.stringify(sizes) !== JSON.stringify(meta.batches)) js.fail(`batch sizes: expected ${JSON.stringify(meta.batches)}, got ${JSON.stringify(sizes)}`);
    checkRows(js, 'RecordBatchReader', batches, cols, want);
    const table = tableFromIPC(bytes);
    if (table.numRows !== want.length) js.fail(`tableFromIPC rows: expected ${want.length}, got ${table.numRows}`);
    checkSchema(js, table.schema, cols);
    checkRows(js, 'tableFromIPC', table.batches, cols, want);
  });
  guard(rs, () => {
    const wasm = WasmTable.fromIPCStream(bytes);
    const table = tableFromIPC(wasm.intoIPCStream());
    checkSchema(rs, table.schema, cols);
    if (table.numRows !== want.length) rs.fail(`rows: expected ${want.length}, got ${table.numRows}`);
    checkRows(rs, 'StreamReader', table.batches, cols, want);
  });
  for (const c of [js, rs]) {
    if (c.failures) results.failed++; else results.passed++;
    if (c.failures > MAX_REPORTS) console.log(`... ${name} [${c.reader}]: ${c.failures} mismatches in all`);
  }
  console.log(`${name}: ${want.length} rows, ${meta.batches.length} batches, ${bytes.length} bytes: apache-arrow ${js.failures ? 'FAIL' : 'ok'}, arrow-rs ${rs.failures ? 'FAIL' : 'ok'}`);
}

function main() {
  const dir = process.argv[2];
  if (!dir) { console.error('usage: verify_arrow.mjs DIR'); process.exit(2); }
  const names = fs.readdirSync(dir).filter((f) => f.endsWith('.arrows')).map((f) => f.slice(0, -7)).sort();
  const results = { passed: 0, failed: 0 };
  if (names.length === 0) { console.log(`MISMATCH no sample files in ${dir}`); results.failed++; }
  for (const name of names) verifyFile(dir, name, results);
  console.log(`verify_arrow: ${results.passed} passed, ${results.failed} failed`);
  process.exit(results.failed ? 1 : 0);
}

main();
