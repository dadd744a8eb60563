// grpc_client.mjs HOST:PORT COMMAND 'JSON ARGS' (or - to read them from standard input): calls ingot's gRPC services with the real
// @grpc/grpc-js client (protos loaded from proto/ with @grpc/proto-loader) and prints one JSON
// document: {"ok":true,...result} or {"ok":false,"code":"INVALID_ARGUMENT","details":"..."}.
// 64-bit integers are printed as decimal strings (no precision lost), bytes as UTF-8 strings.
//
// Commands (ARGS is a JSON object; every command takes "token" (sent as "authorization: Bearer
// <token>") or "authorization" (the header's whole value), and "timeout_ms" (deadline, 30000)):
//   write             {namespace, precision: ns|us|ms|s, lp: "..."} or {namespace, precision, batch}
//                     where batch = {tables: [{name, row_count?, columns: [{name, type, values}]}]},
//                     type tag|time|i64|u64|f64|bool|string, values in row order with null for a
//                     null (turned into the non-null values array and the null_mask), or
//                     {name, raw: {semantic_type, values: {i64_values...}, null_mask: [bytes]}}
//                     sent as is (for malformed batches).  -> {rows}
//   handshake         {requests: [{protocol_version, payload}]} -> {responses: [...]}
//   doget             {ticket: {...} (sent as JSON) | ticket_raw: "text" (sent as is: exact 64-bit times)}
//                     -> {partitions: [{metadata, messages, schema, rows}]}
//   list_namespaces   {}                      -> the ListNamespacesResponse
//   get_schema        {namespace}             -> the GetSchemaResponse
//   list_partitions   {namespace, table}      -> the ListPartitionsResponse
//   list_parquet_files {namespace, table}     -> the ListParquetFilesResponse
//   call              {path: "/pkg.Service/Method", mode: unary|server_stream|client_stream|bidi,
//                     request_hex: ""}: raw bytes on any method (for UNIMPLEMENTED) -> {messages}
//   hold              {ticket|ticket_raw, ticket2|ticket2_raw?, http_url?}: starts a DoGet, stops reading it after its
//                     first message, then runs a second DoGet (ticket2, default ticket) and
//                     optionally an HTTP GET, reports their outcomes, then drains the first.
//                     -> {second: {ok, code...}, http_status?, first: {ok, code?, messages}}
//   sequence          {calls: [{command, ...args}], until_code?: "RESOURCE_EXHAUSTED"}: runs the
//                     calls in order on one channel (stops after the first with until_code).
//                     -> {results: [...]}
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { Message, MessageHeader, RecordBatchReader } from 'apache-arrow';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTO_ROOT = path.resolve(here, '..', '..', 'proto');
const PROTOS = ['ingot/write/v1/write.proto', 'ingot/catalog/v1/catalog.proto',
  'arrow/flight/protocol/flight.proto'];

const packageDef = protoLoader.loadSync(PROTOS, {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_ROOT],
});
const proto = grpc.loadPackageDefinition(packageDef);

const PRECISIONS = { ns: 'PRECISION_NANOSECOND', us: 'PRECISION_MICROSECOND', ms: 'PRECISION_MILLISECOND',
  s: 'PRECISION_SECOND' };
const COLUMN_TYPES = {
  tag: ['TAG', 'string_values', String], time: ['TIME', 'i64_values', (v) => BigInt(v).toString()],
  i64: ['FIELD', 'i64_values', (v) => BigInt(v).toString()], u64: ['FIELD', 'u64_values', (v) => BigInt(v).toString()],
  f64: ['FIELD', 'f64_values', Number], bool: ['FIELD', 'bool_values', Boolean],
  string: ['FIELD', 'string_values', String],
};

function codeName(code) {
  return Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);
}

function failure(err) {
  return { ok: false, code: codeName(err.code), details: err.details ?? String(err.message) };
}

function metadataOf(args) {
  const md = new grpc.Metadata();
  if (args.authorization !== undefined) md.set('authorization', args.authorization);
  else if (args.token !== undefined) md.set('authorization', `Bearer ${args.token}`);
  return md;
}

function callOptions(args) {
  return { deadline: Date.now() + (args.timeout_ms ?? 30000) };
}

// JSON-able copy of a decoded message: Buffers as UTF-8 text.
function plain(v) {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

// The readable batch spec of the header comment as a DatabaseBatch.
function toDatabaseBatch(spec) {
  return {
    table_batches: spec.tables.map((t) => {
      let rows = t.row_count;
      const columns = t.columns.map((c) => {
        if (c.raw) {
          return { column_name: c.name, semantic_type: c.raw.semantic_type ?? 'FIELD', values: c.raw.values ?? {},
            null_mask: Buffer.from(c.raw.null_mask ?? []) };
        }
        const kind = COLUMN_TYPES[c.type];
        if (!kind) throw new Error(`unknown column type ${c.type}`);
        const [semantic, array, convert] = kind;
        const n = c.values.length;
        if (rows === undefined) rows = n;
        const mask = Buffer.alloc((n + 7) >> 3);
        const values = [];
        let nulls = 0;
        c.values.forEach((v, i) => {
          if (v === null) {
            mask[i >> 3] |= 1 << (i & 7);
            nulls++;
          } else {
            values.push(convert(v));
          }
        });
        return { column_name: c.name, semantic_type: semantic, values: { [array]: values },
          null_mask: nulls ? mask : Buffer.alloc(0) };
      });
      return { table_name: t.name, columns, row_count: rows ?? 0 };
    }),
  };
}

function unary(client, method, request, args) {
  return new Promise((resolve) => {
    client[method](request, metadataOf(args), callOptions(args), (err, resp) => {
      resolve(err ? failure(err) : { ok: true, ...plain(resp) });
    });
  });
}

// All messages of a server stream, or the failure with the messages received before it.
function collect(call) {
  return new Promise((resolve) => {
    const messages = [];
    call.on('data', (m) => messages.push(m));
    call.on('error', (err) => resolve({ ...failure(err), messages }));
    call.on('end', () => resolve({ ok: true, messages }));
  });
}

// One partition's FlightData messages as an Arrow IPC stream: per message the continuation marker,
// the header length (the header padded to 8 bytes so the body stays aligned), header, body; then
// the end-of-stream marker.
function ipcStream(frames) {
  const parts = [];
  for (const f of frames) {
    const pad = (8 - (f.data_header.length % 8)) % 8;
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32LE(0xffffffff, 0);
    prefix.writeInt32LE(f.data_header.length + pad, 4);
    parts.push(prefix, f.data_header, Buffer.alloc(pad), f.data_body);
  }
  parts.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]));
  return Buffer.concat(parts);
}

function decodeRows(bytes) {
  const reader = RecordBatchReader.from(bytes);
  const rows = [];
  let schema = null;
  for (const batch of reader) {
    schema = batch.schema;
    for (let i = 0; i < batch.numRows; i++) {
      const row = {};
      for (const f of batch.schema.fields) {
        const col = batch.getChild(f.name);
        if (!col.isValid(i)) {
          row[f.name] = null;
          continue;
        }
        const data = col.data[0];
        const raw = typeof data.values?.[0] === 'bigint' || String(f.type).startsWith('Timestamp');
        row[f.name] = raw ? data.values[data.offset + i].toString() : col.get(i);
      }
      rows.push(row);
    }
  }
  schema = schema ?? reader.schema;
  return { schema: schema ? schema.fields.map((f) => ({ name: f.name, type: String(f.type) })) : [], rows };
}

// The DoGet stream split at its metadata messages (empty header and body) and each part decoded.
function decodeFlight(messages) {
  const partitions = [];
  let cur = null;
  for (const m of messages) {
    if (m.data_header.length === 0 && m.data_body.length === 0) {
      cur = { metadata: m.app_metadata.length ? JSON.parse(m.app_metadata.toString('utf8')) : null, frames: [] };
      partitions.push(cur);
      continue;
    }
    if (!cur) {
      cur = { metadata: null, frames: [] };
      partitions.push(cur);
    }
    cur.frames.push(m);
  }
  return partitions.map((p) => {
    const messagesInfo = p.frames.map((f) => {
      const msg = Message.decode(f.data_header);
      return { type: MessageHeader[msg.headerType], body_length: Number(msg.bodyLength), body: f.data_body.length };
    });
    const decoded = p.frames.length ? decodeRows(ipcStream(p.frames)) : { schema: [], rows: [] };
    return { metadata: p.metadata, messages: messagesInfo.map((x) => x.type),
      body_lengths_match: messagesInfo.every((x) => x.body_length === x.body), ...decoded };
  });
}

function ticketOf(args, key = 'ticket') {
  if (args[`${key}_raw`] !== undefined) return { ticket: Buffer.from(args[`${key}_raw`], 'utf8') };
  return { ticket: Buffer.from(JSON.stringify(args[key]), 'utf8') };
}

const identity = (b) => b;

async function run(target, command, args, clients) {
  const { write, catalog, flight } = clients;
  switch (command) {
    case 'write': {
      const req = { namespace: args.namespace ?? '', precision: PRECISIONS[args.precision] ?? args.precision ?? 0 };
      if (args.batch !== undefined) req.batch = toDatabaseBatch(args.batch);
      else req.line_protocol = args.lp ?? '';
      return unary(write, 'Write', req, args);
    }
    case 'handshake': {
      const call = flight.Handshake(metadataOf(args), callOptions(args));
      const done = collect(call);
      for (const r of args.requests ?? []) {
        call.write({ protocol_version: String(r.protocol_version ?? 0),
          payload: Buffer.from(r.payload ?? '', 'utf8') });
      }
      call.end();
      const res = await done;
      return { ok: res.ok, code: res.code, details: res.details, responses: plain(res.messages) };
    }
    case 'doget': {
      const res = await collect(flight.DoGet(ticketOf(args), metadataOf(args), callOptions(args)));
      if (!res.ok) return { ...res, messages: res.messages.length };
      return { ok: true, partitions: decodeFlight(res.messages) };
    }
    case 'list_namespaces': return unary(catalog, 'ListNamespaces', {}, args);
    case 'get_schema': return unary(catalog, 'GetSchema', { namespace: args.namespace ?? '' }, args);
    case 'list_partitions':
      return unary(catalog, 'ListPartitions', { namespace: args.namespace ?? '', table: args.table ?? '' }, args);
    case 'list_parquet_files':
      return unary(catalog, 'ListParquetFiles', { namespace: args.namespace ?? '', table: args.table ?? '' }, args);
    case 'call': {
      const c = new grpc.Client(target, grpc.credentials.createInsecure());
      const body = Buffer.from(args.request_hex ?? '', 'hex');
      const md = metadataOf(args);
      const opts = callOptions(args);
      const mode = args.mode ?? 'unary';
      let res;
      if (mode === 'unary' || mode === 'client_stream') {
        res = await new Promise((resolve) => {
          const cb = (err, resp) => resolve(err ? failure(err) : { ok: true, messages: [resp.toString('hex')] });
          if (mode === 'unary') {
            c.makeUnaryRequest(args.path, identity, identity, body, md, opts, cb);
          } else {
            const call = c.makeClientStreamRequest(args.path, identity, identity, md, opts, cb);
            call.write(body);
            call.end();
          }
        });
      } else {
        const call = mode === 'server_stream'
          ? c.makeServerStreamRequest(args.path, identity, identity, body, md, opts)
          : c.makeBidiStreamRequest(args.path, identity, identity, md, opts);
        if (mode === 'bidi') {
          call.write(body);
          call.end();
        }
        const r = await collect(call);
        res = { ...r, messages: r.messages.map((m) => m.toString('hex')) };
      }
      c.close();
      return res;
    }
    case 'hold': {
      const first = flight.DoGet(ticketOf(args), metadataOf(args), callOptions(args));
      let firstCount = 0;
      const firstDone = new Promise((resolve) => {
        first.on('error', (err) => resolve({ ...failure(err), messages: firstCount }));
        first.on('end', () => resolve({ ok: true, messages: firstCount }));
      });
      // the first message proves the server runs the query; then stop reading it
      const started = await new Promise((resolve) => {
        first.once('data', () => {
          firstCount++;
          first.pause();
          resolve(true);
        });
        firstDone.then(() => resolve(false));
      });
      if (!started) return { ok: false, code: 'HOLD_NOT_STARTED', first: await firstDone };
      const key2 = args.ticket2 !== undefined || args.ticket2_raw !== undefined ? 'ticket2' : 'ticket';
      const second = await collect(flight.DoGet(ticketOf(args, key2), metadataOf(args), callOptions(args)));
      const out = { ok: true, second: { ok: second.ok, code: second.code, details: second.details,
        messages: second.messages.length } };
      if (args.http_url) {
        const r = await fetch(args.http_url, { headers: args.token ? { authorization: `Bearer ${args.token}` } : {} });
        out.http_status = r.status;
        out.http_body = (await r.text()).slice(0, 500);
      }
      first.on('data', () => firstCount++);
      first.resume();
      out.first = await firstDone;
      return out;
    }
    case 'sequence': {
      const results = [];
      for (const c of args.calls) {
        const { command: sub, ...subArgs } = c;
        const r = await run(target, sub, { token: args.token, authorization: args.authorization, ...subArgs }, clients);
        results.push(r);
        if (args.until_code && r.code === args.until_code) break;
      }
      return { ok: true, results };
    }
    default:
      throw new Error(`unknown command ${command}`);
  }
}

async function main() {
  const [target, command, json] = process.argv.slice(2);
  if (!target || !command) {
    process.stderr.write('usage: node grpc_client.mjs HOST:PORT COMMAND [JSON ARGS]\n');
    process.exit(2);
  }
  const args = json ? JSON.parse(json === '-' ? fs.readFileSync(0, 'utf8') : json) : {};
  const creds = grpc.credentials.createInsecure();
  const opts = { 'grpc.max_receive_message_length': 256 << 20 };
  const clients = {
    write: new proto.ingot.write.v1.WriteService(target, creds, opts),
    catalog: new proto.ingot.catalog.v1.CatalogService(target, creds, opts),
    flight: new proto.arrow.flight.protocol.FlightService(target, creds, opts),
  };
  const result = await run(target, command, args, clients);
  Object.values(clients).forEach((c) => c.close());
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
