// read_arrow.mjs [FILE]: reads an Arrow IPC stream (a file, or standard input) with apache-arrow
// and prints {"schema":[{name,type,nullable}...]} then one JSON line per row: 64-bit integers and
// timestamps as decimal strings (raw BigInt values, no precision lost), null as null.
import fs from 'node:fs';
import { RecordBatchReader } from 'apache-arrow';

const bytes = fs.readFileSync(process.argv[2] || 0);
const reader = RecordBatchReader.from(bytes);
let printedSchema = false;
const lines = [];
for (const batch of reader) {
  if (!printedSchema) {
    const fields = batch.schema.fields.map((f) => ({ name: f.name, type: String(f.type), nullable: f.nullable }));
    lines.push(JSON.stringify({ schema: fields, batches: null }));
    printedSchema = true;
  }
  for (let i = 0; i < batch.numRows; i++) {
    const row = {};
    for (const f of batch.schema.fields) {
      const col = batch.getChild(f.name);
      if (!col.isValid(i)) { row[f.name] = null; continue; }
      const data = col.data[0];
      let v;
      if (String(f.type).startsWith('Timestamp') || typeof data.values[0] === 'bigint') {
        v = data.values[data.offset + i].toString();
      } else {
        v = col.get(i);
      }
      row[f.name] = v;
    }
    lines.push(JSON.stringify(row));
  }
}
if (!printedSchema) lines.push(JSON.stringify({ schema: reader.schema ? reader.schema.fields.map((f) => ({ name: f.name })) : [], batches: 0 }));
process.stdout.write(lines.join('\n') + '\n');
