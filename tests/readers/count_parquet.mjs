// count_parquet.mjs KEY_COLUMN DIR: rows and distinct (KEY_COLUMN, time) pairs in every .parquet
// file under DIR, read with DuckDB; prints JSON {"files","rows","distinct"}. bench/compare.sh
// uses it to check what ingot persisted (the shared harness counts only what ingot still buffers).
import fs from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

const [key, dir] = process.argv.slice(2);
if (!key || !dir) { console.error('usage: count_parquet.mjs KEY_COLUMN DIR'); process.exit(2); }
const files = [];
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.parquet')) files.push(p);
  }
};
walk(dir);
if (files.length === 0) { console.log(JSON.stringify({ files: 0, rows: 0, distinct: 0 })); process.exit(0); }
const lit = (s) => "'" + s.replaceAll("'", "''") + "'";
const ident = (s) => '"' + s.replaceAll('"', '""') + '"';
const con = await (await DuckDBInstance.create(':memory:')).connect();
const list = '[' + files.map(lit).join(',') + ']';
const r = (await con.runAndReadAll(
  `SELECT count(*) AS rows, count(DISTINCT (${ident(key)}, epoch_ns("time"))) AS distinct_rows FROM read_parquet(${list})`,
)).getRowObjectsJson()[0];
console.log(JSON.stringify({ files: files.length, rows: Number(r.rows), distinct: Number(r.distinct_rows) }));
