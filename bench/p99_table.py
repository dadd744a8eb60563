# bench/p99_table.py RESULTS_JSONL...: the median p50 and p99 request latency (ms) of the timed runs
# of ../shared/bench, per batch size, connections and peer (bench/compare.sh appends it to RESULTS.md).
import json
import statistics
import sys

rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        d = json.loads(line)
        if d.get("kind") != "timed":
            continue
        if d.get("p99_ms") is None or d.get("contended"):
            continue
        rows.setdefault((d["batch"], d["conns"]), {}).setdefault(d["peer"], []).append((d["p50_ms"], d["p99_ms"]))
peers = ["ingot", "vm", "influxdb"]
print("| batch | conns | " + " | ".join(f"{p} p50 / p99 ms" for p in peers) + " | p99 ingot/vm |")
print("|---:|---:|" + "---|" * len(peers) + "---:|")
for (batch, conns) in sorted(rows, key=lambda k: (-k[0], k[1])):
    cells, p99 = [], {}
    for p in peers:
        v = rows[(batch, conns)].get(p)
        if not v:
            cells.append("n/a")
            continue
        p50 = statistics.median(x[0] for x in v)
        p99[p] = statistics.median(x[1] for x in v)
        cells.append(f"{p50:.1f} / {p99[p]:.1f}")
    ratio = f"{p99['ingot'] / p99['vm']:.2f}" if "ingot" in p99 and "vm" in p99 and p99["vm"] else "n/a"
    print(f"| {batch:,} | {conns} | " + " | ".join(cells) + f" | {ratio} |")
