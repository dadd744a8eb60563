// duckdb_size.mjs FILE.parquet: size of our Parquet file vs DuckDB's own ZSTD Parquet of the
// same rows (read with read_parquet, written with COPY ... (FORMAT parquet, COMPRESSION zstd)).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

const file = process.argv[2];
if (!file) { console.error('usage: duckdb_size.mjs FILE.parquet'); process.exit(2); }
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'duckdb-size-'));
const copy = path.join(tmp, 'duckdb.parquet');
const lit = (s) => "'" + s.replaceAll("'", "''") + "'";
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const rows = (await con.runAndReadAll(`SELECT count(*) AS n FROM read_parquet(${lit(file)})`)).getRowObjectsJson()[0].n;
await con.run(`COPY (SELECT * FROM read_parquet(${lit(file)})) TO ${lit(copy)} (FORMAT parquet, COMPRESSION zstd)`);
const ours = fs.statSync(file).size, theirs = fs.statSync(copy).size;
console.log(`rows ${rows}: ingot ${ours} bytes (${(ours / rows).toFixed(2)} B/row), duckdb zstd ${theirs} bytes (${(theirs / rows).toFixed(2)} B/row), ratio ${(ours / theirs).toFixed(3)}`);
fs.rmSync(tmp, { recursive: true, force: true });
