#!/usr/bin/env python3
"""Turn the JSON lines of one benchmark run (tests/bench/run.py) into the
Markdown tables of docs/performance.md: medians with their spread (min-max
over the runs), each target beside its figure.

    table.py RESULTS.jsonl > tables.md
"""
import json
import statistics
import sys

CEILING = "echo"
NR = "node-red"
NR_SHORT = "node-red-shortcut"
HEARTH_ENGINES = ("hearth", "hearth-mqtt-rules", "hearth-virtual-lights")
NAMES = {
    "echo": "broker-only echo (ceiling)",
    "hearth": "hearth (MQTT JSON devices, state rules)",
    "hearth-mqtt-rules": "hearth (mqtt-trigger rules, no devices)",
    "hearth-virtual-lights": "hearth (virtual lights)",
    "node-red": "Node-RED, per-device flows",
    "node-red-shortcut": "Node-RED, one shortcut flow",
}


def load(path):
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    starts = [i for i, r in enumerate(recs) if r.get("mode") == "meta" and r.get("phase") == "start"]
    return recs[starts[-1]:] if starts else recs


def pick(recs, **kw):
    return [r for r in recs if all(r.get(k) == v for k, v in kw.items())]


def vals(rs, key):
    return [r[key] for r in rs if isinstance(r.get(key), (int, float))]


def med(rs, key):
    v = vals(rs, key)
    return statistics.median(v) if v else None


def fmt(x, digits=3):
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def spread(rs, key, scale=1.0, digits=3):
    """median (min–max) over the runs."""
    v = [x * scale for x in vals(rs, key)]
    if not v:
        return "—"
    m = statistics.median(v)
    if len(v) == 1:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(min(v), digits)}–{fmt(max(v), digits)})"


def mark(ok):
    return "—" if ok is None else ("✅" if ok else "❌")


def ratio(a, b):
    return a / b if a is not None and b else None


class Tables:
    def __init__(self, recs):
        self.recs = recs
        self.out = []
        engines = {r.get("engine") for r in recs if r.get("engine")}
        self.hearth = next((e for e in HEARTH_ENGINES if e in engines), None)

    def p(self, line=""):
        self.out.append(line)

    def table(self, head, rows):
        self.p("| " + " | ".join(head) + " |")
        self.p("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            self.p("| " + " | ".join(str(c) for c in r) + " |")
        self.p()

    def runs(self, engine, scenario, qos=0):
        return [r for r in pick(self.recs, engine=engine, scenario=scenario)
                if r.get("qos", 0) == qos and r.get("mode") != "ready"]

    def machine(self):
        meta = pick(self.recs, mode="meta", phase="start")
        end = pick(self.recs, mode="meta", phase="end")
        if not meta:
            return
        m, v = meta[0].get("machine", {}), meta[0].get("versions", {})
        loads = [meta[0].get("loadavg", [0])[0]] + [e.get("loadavg", [0])[0] for e in end]
        loads += vals(self.recs, "load1")
        self.p(f"Machine: {m.get('cpu')} × {m.get('cores')} cores, {m.get('mem_mib')} MiB, "
               f"Linux {m.get('kernel')}. {v.get('mosquitto')}; Node-RED {v.get('node_red')} "
               f"on Node.js {v.get('node')}; hearth {v.get('hearth')} ({v.get('git')}).")
        took = (end[0]["time"] - meta[0]["time"]) if end else None
        shared = max(loads) > 1 if loads else False
        self.p(f"Run: {'quick' if meta[0].get('quick') else 'full'}, {meta[0].get('runs')} "
               f"run(s) per figure{f', {took:.0f} s in all' if took else ''}. Load average "
               f"(1 min) during the run: {min(loads):.2f}–{max(loads):.2f}"
               + (" — **the machine was shared with other work**, so absolute figures are "
                  "noisier than on an idle machine; the ratios within this run are what count."
                  if shared else "."))
        self.p()

    def latency(self):
        self.p("### Trigger → action latency (paced, open loop)")
        self.p()
        ceil = {}
        for qos in (0, 1):
            for sc in ("paced-1000", "paced-5000"):
                ceil[(qos, sc)] = med(self.runs(CEILING, sc, qos), "lat_p99_ms")
        rows = []
        for qos in (0, 1):
            for sc in ("paced-1000", "paced-5000"):
                for e in NAMES:
                    rs = self.runs(e, sc, qos)
                    if not rs:
                        continue
                    p99 = med(rs, "lat_p99_ms")
                    nr = med(self.runs(NR, sc, qos), "lat_p99_ms")
                    target = "—"
                    if e in HEARTH_ENGINES and p99 is not None:
                        r = ratio(p99, ceil[(qos, sc)])
                        target = (f"{mark(r is not None and r <= 2)} {fmt(r, 2)}× ceiling"
                                  + (f", {fmt(ratio(p99, nr), 2)}× Node-RED" if nr else ""))
                    rows.append([NAMES[e], sc.split("-")[1], qos, spread(rs, "lat_p50_ms"),
                                 spread(rs, "lat_p90_ms"), spread(rs, "lat_p99_ms"),
                                 spread(rs, "lat_p999_ms"), spread(rs, "lat_max_ms"),
                                 sum(vals(rs, "lost")), spread(rs, "cpu_ms_per_1k"),
                                 spread(rs, "rss_kib", 1 / 1024), target])
        self.table(["engine", "msg/s", "QoS", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
                    "max ms", "lost", "CPU ms / 1k msgs", "RSS MiB",
                    "target: p99 ≤ 2× ceiling"], rows)

    def throughput(self):
        self.p("### Saturation throughput (closed loop, "
               f"{fmt(med(pick(self.recs, scenario='max'), 'window'))} actions in flight)")
        self.p()
        rows = []
        for qos in (0, 1):
            ceil = med(self.runs(CEILING, "max", qos), "throughput_msgs_s")
            nr = med(self.runs(NR, "max", qos), "throughput_msgs_s")
            echo_in = med(self.runs(CEILING, "paced-1000", qos), "broker_msgs_in_per_msg")
            for e in NAMES:
                rs = self.runs(e, "max", qos)
                if not rs:
                    continue
                t = med(rs, "throughput_msgs_s")
                paced = self.runs(e, "paced-1000", qos)
                b_in = med(paced, "broker_msgs_in_per_msg")
                extra = (b_in - echo_in) if b_in is not None and echo_in is not None else None
                target = "—"
                if e in HEARTH_ENGINES:
                    r, rn = ratio(t, ceil), ratio(t, nr)
                    target = (f"{mark(r is not None and r >= 0.8)} {fmt(100 * r if r else None, 3)}%"
                              f" of ceiling; {mark(rn is not None and rn >= 2.5)} "
                              f"{fmt(rn, 2)}× Node-RED")
                rows.append([NAMES[e], qos, spread(rs, "throughput_msgs_s"),
                             fmt(100 * ratio(t, ceil), 3) + "%" if ceil else "—",
                             sum(vals(rs, "lost")), spread(rs, "cpu_ms_per_1k"),
                             spread(rs, "hwm_kib", 1 / 1024), fmt(b_in), fmt(extra), target])
        self.table(["engine", "QoS", "sensor msgs/s", "of ceiling", "lost", "CPU ms / 1k msgs",
                    "peak RSS MiB", "broker msgs in / sensor msg", "extra vs echo",
                    "target: ≥ 80% of ceiling, ≥ 2.5× Node-RED"], rows)

    def cpu(self):
        if not self.hearth:
            return
        h = med(self.runs(self.hearth, "paced-1000"), "cpu_ms_per_1k")
        s = med(self.runs(NR_SHORT, "paced-1000"), "cpu_ms_per_1k")
        hm = med(self.runs(self.hearth, "max"), "cpu_ms_per_1k")
        sm = med(self.runs(NR_SHORT, "max"), "cpu_ms_per_1k")
        r, rm = ratio(h, s), ratio(hm, sm)
        self.p(f"CPU per 1,000 messages, hearth against Node-RED's shortcut flow (target: under "
               f"half): at 1,000 msg/s {fmt(h)} vs {fmt(s)} ms, {mark(r is not None and r < 0.5)} "
               f"{fmt(r, 2)}×; at saturation {fmt(hm)} vs {fmt(sm)} ms, "
               f"{mark(rm is not None and rm < 0.5)} {fmt(rm, 2)}×.")
        self.p()

    def first(self):
        self.p("### Start-up")
        self.p()
        rows = []
        for e in NAMES:
            rs = [r for r in pick(self.recs, engine=e, scenario="first") if r.get("qos", 0) == 0]
            if not rs:
                continue
            ready = pick(self.recs, engine=e, scenario="start", qos=0)
            rows.append([NAMES[e], spread(rs, "first_action_ms"),
                         spread(ready, "ready_ms") if ready else "—"])
        self.table(["engine", "start → first action ms", "start → READY ms"], rows)

    def rules(self):
        rs = pick(self.recs, scenario="rules-max")
        if not rs:
            return
        counts = sorted({r["extra_rules"] for r in rs})
        self.p("### Rule scaling: idle rules on other devices "
               f"({self.engine_of(rs)}, 1,000 other devices)")
        self.p()
        rows, base = [], {}
        for n in counts:
            t = pick(self.recs, scenario="rules-max", extra_rules=n)
            p = pick(self.recs, scenario="rules-paced-1000", extra_rules=n)
            s = pick(self.recs, scenario="rules-start", extra_rules=n)
            cur = dict(t=med(t, "throughput_msgs_s"), p99=med(p, "lat_p99_ms"),
                       ready=med(s, "ready_ms"))
            base = base or cur
            dt = ratio(cur["t"], base["t"])
            dp = ratio(cur["p99"], base["p99"])
            target = "—"
            if n != counts[0]:
                target = (f"{mark(dt is not None and dt >= 0.9)} throughput {fmt(100 * (1 - dt), 2)}%"
                          f" lower; {mark(dp is not None and dp <= 1.1)} p99 "
                          f"{fmt(100 * (dp - 1), 2)}% higher; "
                          f"{mark(cur['ready'] is not None and cur['ready'] < 100)} start-up "
                          f"{fmt(cur['ready'])} ms")
            rows.append([f"{n:,}", spread(t, "throughput_msgs_s"), spread(p, "lat_p99_ms"),
                         spread(s, "ready_ms"), spread(t, "cpu_ms_per_1k"), target])
        self.table(["extra idle rules", "sensor msgs/s", "p99 ms at 1,000 msg/s",
                    "start → READY ms", "CPU ms / 1k msgs (max)",
                    "target: < 10% cost, start-up < 100 ms"], rows)

    def engine_of(self, rs):
        return NAMES.get(rs[0].get("engine"), rs[0].get("engine"))

    def devices(self):
        rs = pick(self.recs, scenario="devices")
        if not rs:
            return
        self.p("### Device scaling: devices stored, hearth started on them")
        self.p()
        rows = []
        for n in sorted({r["devices"] for r in rs}):
            d = pick(rs, devices=n)
            rss = med(d, "rss_kib")
            ready = med(d, "ready_ms")
            targets = []
            if n == 1000:
                targets.append(f"{mark(rss is not None and rss / 1024 < 8)} RSS < 8 MiB")
            if n == 10000:
                targets.append(f"{mark(ready is not None and ready < 100)} ready < 100 ms")
            rows.append([f"{n:,}", f"{d[0].get('rules', 0):,}", spread(d, "ready_ms"),
                         spread(d, "rss_kib", 1 / 1024), spread(d, "anon_kib", 1 / 1024),
                         spread(d, "file_kib", 1 / 1024), spread(d, "hwm_kib", 1 / 1024),
                         spread(d, "cpu_ms"), "; ".join(targets) or "—"])
        self.table(["devices", "rules", "start → READY ms", "RSS MiB (after settling)",
                    "of which heap (RssAnon)", "of which code (RssFile)", "peak RSS MiB",
                    "CPU ms to then", "target"], rows)

    def wear(self):
        rs = pick(self.recs, scenario="wear")
        if not rs:
            return
        self.p(f"### Disk writes per state update ({self.engine_of(rs)})")
        self.p()
        self.p("Bytes hearth hands to write(2) for its database and WAL (counted by "
               "`iocount.so`), and what the kernel charged to it (`write_bytes`, which "
               "counts a page once per writeback however often it was rewritten meanwhile).")
        self.p()
        rows = []
        for rate in sorted({r["rate"] for r in rs}):
            batched = pick(rs, rate=rate, commit_interval_ms=1000)
            each = pick(rs, rate=rate, commit_interval_ms=0)
            b, e = med(batched, "file_bytes_per_msg"), med(each, "file_bytes_per_msg")
            r = ratio(e, b)
            for label, group in (("1,000 ms (default)", batched), ("0 (a commit per update)", each)):
                if not group:
                    continue
                target = "—"
                if group is batched:
                    target = f"{mark(r is not None and r >= 10)} {fmt(r, 3)}× fewer"
                syncs = [x["fsyncs"] * 1000 / x["sent"] for x in group
                         if x.get("fsyncs") is not None and x.get("sent")]
                rows.append([f"{rate:,.0f}/s", label, spread(group, "file_bytes_per_msg"),
                             spread(group, "file_writes_per_msg"),
                             fmt(statistics.median(syncs)) if syncs else "—",
                             spread(group, "write_bytes_per_msg"), target])
        self.table(["state updates", "commit interval", "bytes written / update",
                    "write calls / update", "fsyncs / 1k updates", "write_bytes / update",
                    "target: ≥ 10× fewer than a commit per update"], rows)

    def callgrind(self):
        rs = pick(self.recs, scenario="callgrind")
        if not rs:
            return
        self.p(f"### Instructions per message (callgrind, {self.engine_of(rs)}, replay of "
               f"{rs[0]['messages']:,} sensor messages at 500 msg/s)")
        self.p()
        self.p(f"{spread(rs, 'ir_per_msg', 1, 4)} instructions per sensor message "
               "(half of them fire a rule).")
        self.p()
        top = rs[0].get("top") or []
        total = rs[0].get("ir") or 0
        if top and total:
            self.table(["function (self)", "share of instructions"],
                       [[f"`{fn}`", f"{100 * ir / total:.1f}%"] for fn, ir in top])

    def render(self):
        self.machine()
        self.latency()
        self.throughput()
        self.cpu()
        self.first()
        self.rules()
        self.devices()
        self.wear()
        self.callgrind()
        return "\n".join(self.out)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(Tables(load(sys.argv[1])).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
