// read_parquet.mjs [--with-file] FILE...: prints every row of the files (in file order, file after file) as
// JSON lines, read with DuckDB: 64-bit integers as decimal strings, doubles as numbers, booleans,
// strings, null. DuckDB reads TIMESTAMP(NANOS, UTC) with microsecond precision only, so columns of
// that type are printed as decimal nanosecond strings taken from arrow-rs (parquet-wasm), which
// keeps every nanosecond. With --with-file each row also names its file under "_file".
import fs from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { readParquet } from 'parquet-wasm';
import { tableFromIPC } from 'apache-arrow';

const withFile = process.argv[2] === '--with-file';
const files = process.argv.slice(withFile ? 3 : 2);
if (files.length === 0) { console.error('usage: read_parquet.mjs FILE...'); process.exit(2); }
const lit = (s) => "'" + s.replaceAll("'", "''") + "'";
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
for (const file of files) {
  const desc = (await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${lit(file)})`)).getRowObjectsJson();
  const timeCols = desc.filter((d) => d.column_type === 'TIMESTAMP WITH TIME ZONE').map((d) => d.column_name);
  const rows = (await con.runAndReadAll(`SELECT * FROM read_parquet(${lit(file)}, file_row_number = true) ORDER BY file_row_number`)).getRowObjectsJson();
  let ns = {};
  if (timeCols.length && rows.length) {
    const table = tableFromIPC(readParquet(new Uint8Array(fs.readFileSync(file))).intoIPCStream());
    for (const name of timeCols) {
      const out = [];
      for (const d of table.getChild(name).data) {
        for (let i = 0; i < d.length; i++) {
          const bit = d.offset + i;
          const valid = !d.nullBitmap || d.nullCount === 0 || ((d.nullBitmap[bit >> 3] >> (bit & 7)) & 1);
          out.push(valid ? d.values[i].toString() : null);
        }
      }
      ns[name] = out;
    }
  }
  const lines = [];
  rows.forEach((r, i) => {
    delete r.file_row_number;
    for (const name of timeCols) r[name] = ns[name][i];
    if (withFile) r._file = file;
    lines.push(JSON.stringify(r));
    if (lines.length >= 10000) { process.stdout.write(lines.join('\n') + '\n'); lines.length = 0; }
  });
  if (lines.length) process.stdout.write(lines.join('\n') + '\n');
}
