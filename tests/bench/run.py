#!/usr/bin/env python3
"""Run the hearth benchmark: every scenario of docs/performance.md, on a
private mosquitto bound to 127.0.0.1, one JSON line per run.

    run.py [--quick] [--build DIR] [--out FILE] [--only NAME,...]

Scenarios (each run --runs times, 3 by default, 1 with --quick):
  engines   the broker-only echo (the ceiling), hearth and Node-RED (per-device
            flows and the one shortcut flow): first action after start, paced
            1,000 and 5,000 msg/s, max throughput, QoS 0 and 1
  rules     hearth with 10 and with 10,000 extra idle rules on other devices
  devices   RSS and start-up time with 1,000 and 10,000 stored devices
  wear      bytes written to disk per state update at 1/s and 1,000/s, at the
            default commit interval and with a commit per update
  callgrind instructions per message over a fixed replay through hearth

Every process started here is stopped by its pid; every wait is bounded.
Nothing listens or connects beyond 127.0.0.1.
"""
import argparse
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SENSORS = 100
STOP_TIMEOUT_S = 20

FULL = dict(runs=3, paced_s=4, max_s=4, warmup_s=1, window=256, qos1=True, wear_quiet_s=30,
            wear_burst_s=4, replay=10000, idle_rules=10000, idle_devices=1000,
            scale_devices=(1000, 10000), scale_rules=1000, settle_ms=2000, stats=True,
            wear_settle_ms=2500)
QUICK = dict(runs=1, paced_s=1, max_s=1, warmup_s=0.3, window=256, qos1=False, wear_quiet_s=4,
             wear_burst_s=1, replay=1000, idle_rules=10000, idle_devices=1000,
             scale_devices=(1000, 10000), scale_rules=1000, settle_ms=1000, stats=False,
             wear_settle_ms=1200)
SCENARIOS = ("engines", "rules", "devices", "wear", "callgrind")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Procs:
    """Every child we start, so that each is stopped by its pid."""

    def __init__(self):
        self.live = []

    def start(self, argv, log_path, env=None, stdout=None):
        out = open(log_path, "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else out, stderr=out,
                             env=env, close_fds=True)
        out.close()
        self.live.append(p)
        return p

    def stop(self, p, timeout=STOP_TIMEOUT_S):
        """SIGTERM, a bounded wait, SIGKILL if need be. Returns the exit code."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} ignored SIGTERM for {timeout} s: killed")
                p.kill()
                p.wait(10)
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self):
        for p in reversed(list(self.live)):
            self.stop(p)


class Bench:
    def __init__(self, args):
        self.args = args
        self.plan = QUICK if args.quick else FULL
        if args.runs:
            self.plan = dict(self.plan, runs=args.runs)
        self.build = os.path.abspath(args.build)
        self.hb = os.path.join(self.build, "tests/bench/hearth-bench")
        self.fill_bin = os.path.join(self.build, "tests/bench/bench-fill")
        self.hearthd = os.path.join(self.build, "hearthd")
        self.plugins = os.path.join(self.build, "plugins")
        self.iocount = os.path.join(self.build, "tests/bench/iocount.so")
        self.node = os.path.join(HERE, "node_modules/.bin/node")
        self.red = os.path.join(HERE, "node_modules/node-red/red.js")
        self.tmp = tempfile.mkdtemp(prefix="hearth-bench-")
        self.procs = Procs()
        self.out = open(args.out, "w")
        self.seq = 0
        self.mqttdev = os.path.exists(os.path.join(self.plugins, "mqttdev.so"))

    # -- helpers ----------------------------------------------------------------

    def path(self, *parts):
        p = os.path.join(self.tmp, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def free_port(self):
        return int(subprocess.run([self.hb, "port"], capture_output=True, text=True,
                                  timeout=10, check=True).stdout)

    def emit(self, record):
        record = {k: v for k, v in record.items() if v is not None}
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()

    def broker(self, name):
        port = self.free_port()
        conf = self.path(name, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "sys_interval 1\nset_tcp_nodelay true\n")
        p = self.procs.start(["mosquitto", "-c", conf], self.path(name, "mosquitto.log"))
        if subprocess.run([self.hb, "wait-port", str(port), "5000"], timeout=10).returncode:
            raise RuntimeError("mosquitto did not start")
        return port, p

    def load(self, port, engine_pid, broker_pid, labels, *opts, timeout=300):
        argv = [self.hb, "load", "-p", str(port), "--pid", str(engine_pid),
                "--broker-pid", str(broker_pid), *map(str, opts)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if r.returncode or not r.stdout.strip():
            log(f"load failed ({r.returncode}): {r.stderr.strip()[-300:]}")
            return None
        rec = json.loads(r.stdout.strip().splitlines()[-1])
        rec.update(labels)
        self.emit(rec)
        return rec

    # -- engines ------------------------------------------------------------------

    def start_echo(self, port, qos, name):
        launch = time.time_ns()
        p = self.procs.start([self.hb, "echo", "-p", str(port), "-q", str(qos)],
                             self.path(name, "echo.log"))
        return dict(proc=p, pid=p.pid, launch_ns=launch)

    def start_nodered(self, port, qos, flow, name):
        user_dir = self.path(name, "node-red", "x")
        user_dir = os.path.dirname(user_dir)
        flow_file = os.path.join(user_dir, "flows.json")
        if self.first_index == 0:
            shutil.copy(os.path.join(HERE, flow), flow_file)
        else:
            subprocess.run([sys.executable, os.path.join(HERE, "node-red-flows.py"), "--first",
                            str(self.first_index), "--dir", user_dir], check=True, timeout=60)
            os.replace(os.path.join(user_dir, flow), flow_file)
        env = dict(os.environ, BENCH_MQTT_PORT=str(port), BENCH_QOS=str(qos),
                   BENCH_UI_PORT=str(self.free_port()), BENCH_USER_DIR=user_dir,
                   BENCH_FLOW_FILE=flow_file, NODE_RED_HOME=user_dir)
        launch = time.time_ns()
        p = self.procs.start([self.node, self.red, "--settings",
                              os.path.join(HERE, "node-red-settings.js")],
                             self.path(name, "node-red.log"), env=env)
        return dict(proc=p, pid=p.pid, launch_ns=launch)

    def hearth_conf(self, name, port, qos, variant, db=None, commit_ms=None):
        d = os.path.dirname(self.path(name, "hearth", "x"))
        rules = os.path.join(d, "rules")
        os.makedirs(rules, exist_ok=True)
        with open(os.path.join(rules, "bench.json"), "w") as f:
            json.dump(bench_rules(variant, self.mqttdev_names, self.first_index), f)
        store = os.path.join(d, "hearth.db")
        if db:
            shutil.copy(db, store)
        lines = ["[mqtt]", "host = 127.0.0.1", f"port = {port}", f"client_id = hearthd-{name}",
                 f"qos = {qos}", "[store]", f"path = {store}"]
        if commit_ms is not None:
            lines.append(f"commit_interval_ms = {commit_ms}")
        lines += ["[plugins]", f"dir = {self.plugins}"]
        lines += plugin_conf(variant, self.mqttdev_file)
        lines += ["[rules]", f"dir = {rules}"]
        conf = os.path.join(d, "hearth.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return conf

    def start_hearth(self, conf, name, wrapper=(), timeout_ms=30000):
        pidfile = self.path(name, "hearthd.pid")
        argv = [self.hb, "ready", "--serve", "--settle-ms", "0", "--timeout-ms",
                str(timeout_ms), "--pidfile", pidfile, "--log", self.path(name, "hearthd.log"),
                "--", *wrapper, self.hearthd, "-c", conf]
        p = self.procs.start(argv, self.path(name, "ready.log"), stdout=subprocess.PIPE)
        line = read_line(p.stdout, timeout_ms / 1000 + 10)
        rec = json.loads(line) if line else {}
        if not rec.get("ready_ms"):
            self.procs.stop(p)
            raise RuntimeError(f"hearthd did not become ready; see {self.path(name)}")
        return dict(proc=p, pid=rec["pid"], launch_ns=rec["launch_wall_ns"],
                    ready_ms=rec["ready_ms"])

    def stop_engine(self, eng, name):
        rc = self.procs.stop(eng["proc"])
        if rc not in (0, None):
            log(f"{name}: the engine exited with {rc}; logs in {self.path(name)}")
        return rc

    # -- scenarios ------------------------------------------------------------------

    def session(self, engine, qos, runs_spec, name):
        """One engine on its own broker: first action, then the runs."""
        port, broker = self.broker(name)
        eng = self.launch_probed(engine, port, qos, name, dict(scenario="first", engine=engine,
                                                               qos=qos))
        try:
            if eng.get("ready_ms") is not None:
                self.emit(dict(tool="hearth-bench", mode="ready", scenario="start",
                               engine=engine, qos=qos, ready_ms=eng["ready_ms"]))
            for scenario, opts, stats in runs_spec:
                for run in range(self.plan["runs"]):
                    extra = ["--broker-stats"] if stats and run == 0 and self.plan["stats"] else []
                    self.load(port, eng["pid"], broker.pid,
                              dict(scenario=scenario, engine=engine, run=run),
                              "-q", qos, *opts, *extra, *self.engine_opts(engine))
        finally:
            self.stop_engine(eng, name)
            self.procs.stop(broker)

    def launch_probed(self, engine, port, qos, name, labels, **kw):
        """Start the engine with a probe already running, so that the time
        from its start to its first action is the engine's alone."""
        argv = [self.hb, "load", "-p", str(port), "-t", "0", "-q", str(qos),
                *self.engine_opts(engine)]
        probe = self.procs.start(argv, self.path(name, "probe.log"), stdout=subprocess.PIPE)
        try:
            time.sleep(0.2)  # connected and subscribed before the engine starts
            eng = self.launch(engine, port, qos, name, **kw)
            line = read_line(probe.stdout, 150)
            rec = json.loads(line) if line else {}
            if not rec.get("first_action_wall_ns"):
                self.stop_engine(eng, name)
                raise RuntimeError(f"{engine}: no first action; logs in {self.path(name)}")
            rec.update(labels, first_action_ms=(rec["first_action_wall_ns"] - eng["launch_ns"]) / 1e6)
            self.emit(rec)
            return eng
        finally:
            self.procs.stop(probe)

    def launch(self, engine, port, qos, name, iocount=None, **kw):
        if engine == "echo":
            return self.start_echo(port, qos, name)
        if engine == "node-red":
            return self.start_nodered(port, qos, "flows-per-device.json", name)
        if engine == "node-red-shortcut":
            return self.start_nodered(port, qos, "flows-shortcut.json", name)
        conf = self.hearth_conf(name, port, qos, engine, **kw)
        wrapper = []
        if iocount:
            wrapper = ["env", f"LD_PRELOAD={self.iocount}", f"BENCH_IOCOUNT_FILE={iocount}"]
        return self.start_hearth(conf, name, wrapper=wrapper)

    def engine_opts(self, engine):
        return ["--first", str(self.first_index)]

    def paced(self, rate, seconds=None):
        p = self.plan
        return ["-r", rate, "-t", seconds or p["paced_s"], "--warmup", p["warmup_s"]]

    def maxed(self):
        p = self.plan
        return ["-r", 0, "-t", p["max_s"], "--warmup", p["warmup_s"], "-w", p["window"]]

    def node_red_engines(self):
        if os.path.exists(self.node) and os.path.exists(self.red):
            return ["node-red", "node-red-shortcut"]
        log("Node-RED is not installed in tests/bench/node_modules (make bench-deps): skipped")
        return []

    def run_engines(self):
        engines = ["echo"] + self.hearth_engines() + self.node_red_engines()
        if self.args.engines:
            engines = [e for e in engines if e in self.args.engines.split(",")]
        for engine in engines:
            log(f"engines: {engine}, QoS 0")
            self.session(engine, 0, [("paced-1000", self.paced(1000), True),
                                     ("paced-5000", self.paced(5000), False),
                                     ("max", self.maxed(), True)], f"{engine}-q0")
        if not self.plan["qos1"]:
            return
        for engine in [e for e in ["echo", self.hearth_engines()[0]] + self.node_red_engines()[:1]
                       if e in engines]:
            log(f"engines: {engine}, QoS 1")
            self.session(engine, 1, [("paced-1000", self.paced(1000), False),
                                     ("max", self.maxed(), False)], f"{engine}-q1")

    def hearth_engines(self):
        return ["hearth", "hearth-mqtt-rules"] if self.mqttdev else ["hearth-mqtt-rules"]

    def run_rules(self):
        engine = self.hearth_engines()[0]
        p = self.plan
        for extra in (10, p["idle_rules"]):
            db = self.path("rules", f"idle-{extra}.db")
            self.fill(db, p["idle_devices"], extra)
            name = f"rules-{extra}"
            log(f"rules: {engine} with {extra} extra idle rules")
            port, broker = self.broker(name)
            try:
                for run in range(p["runs"]):
                    labels = dict(engine=engine, extra_rules=extra, run=run)
                    eng = self.launch_probed(engine, port, 0, f"{name}-{run}",
                                             dict(labels, scenario="rules-first"), db=db)
                    self.emit(dict(tool="hearth-bench", mode="ready", scenario="rules-start",
                                   engine=engine, extra_rules=extra, run=run,
                                   ready_ms=eng["ready_ms"]))
                    try:
                        self.load(port, eng["pid"], broker.pid,
                                  dict(labels, scenario="rules-paced-1000"),
                                  *self.paced(1000), *self.engine_opts(engine))
                        self.load(port, eng["pid"], broker.pid, dict(labels, scenario="rules-max"),
                                  *self.maxed(), *self.engine_opts(engine))
                    finally:
                        self.stop_engine(eng, name)
            finally:
                self.procs.stop(broker)

    def fill(self, db, devices, rules):
        if os.path.exists(db):
            return
        r = subprocess.run([self.fill_bin, db, str(devices), str(rules)], capture_output=True,
                           text=True, timeout=600)
        if r.returncode:
            raise RuntimeError(f"bench-fill failed: {r.stderr[-500:]}")

    def run_devices(self):
        """Start-up and memory with many stored devices: a fresh broker each
        time, so every run is a first start (no retained messages to take in)."""
        p = self.plan
        for devices in (0,) + tuple(p["scale_devices"]):
            db = self.path("devices", f"devices-{devices}.db")
            rules = p["scale_rules"] if devices else 0
            if devices:
                self.fill(db, devices, rules)
            log(f"devices: {devices} stored devices, {rules} rules")
            for run in range(p["runs"]):
                name = f"devices-{devices}-{run}"
                port, broker = self.broker(name)
                try:
                    rec = self.ready_once(name, port, db)
                finally:
                    self.procs.stop(broker)
                if rec:
                    rec.update(scenario="devices", engine="hearth", devices=devices,
                               rules=rules, run=run)
                    self.emit(rec)

    def ready_once(self, name, port, db):
        d = os.path.dirname(self.path(name, "x"))
        store = os.path.join(d, "hearth.db")
        if os.path.exists(db):
            shutil.copy(db, store)
        conf = os.path.join(d, "hearth.conf")
        with open(conf, "w") as f:
            f.write(f"[mqtt]\nhost = 127.0.0.1\nport = {port}\nclient_id = hearthd-{name}\n"
                    f"[store]\npath = {store}\n[plugins]\ndir = {self.plugins}\n"
                    f"[rules]\ndir = {d}\n")
        r = subprocess.run([self.hb, "ready", "--settle-ms", str(self.plan["settle_ms"]), "--log",
                            os.path.join(d, "hearthd.log"), "--", self.hearthd, "-c", conf],
                           capture_output=True, text=True, timeout=120)
        if not r.stdout.strip():
            log(f"{name}: no result: {r.stderr[-300:]}")
            return None
        return json.loads(r.stdout.strip().splitlines()[-1])

    def run_wear(self):
        """Bytes hearth writes per state update; the same with a commit per update."""
        engine = self.hearth_engines()[0] if self.mqttdev else "hearth-virtual-lights"
        p = self.plan
        for commit in (None, 0):
            # a quiet home: two sensors take turns, so every second update fires a rule
            for rate, seconds, sensors in ((1, p["wear_quiet_s"], 2),
                                           (1000, p["wear_burst_s"], SENSORS)):
                name = f"wear-{rate}-{'default' if commit is None else commit}"
                log(f"wear: {engine} at {rate}/s, commit interval "
                    f"{'default' if commit is None else commit}")
                port, broker = self.broker(name)
                io = self.path(name, "iocount")
                eng = self.launch(engine, port, 0, name, commit_ms=commit, iocount=io)
                try:
                    self.load(port, eng["pid"], broker.pid,
                              dict(scenario="wear-first", engine=engine), "-t", "0",
                              *self.wear_opts(engine))
                    runs = p["runs"] if commit is None else 1
                    for run in range(runs):
                        self.load(port, eng["pid"], broker.pid,
                                  dict(scenario="wear", engine=engine, run=run,
                                       commit_interval_ms=1000 if commit is None else commit),
                                  "-r", rate, "-t", seconds, "-n", sensors, "--warmup", 0,
                                  "--settle-ms", p["wear_settle_ms"],
                                  "--iocount", io, *self.wear_opts(engine))
                finally:
                    self.stop_engine(eng, name)
                    self.procs.stop(broker)

    def wear_opts(self, engine):
        if engine == "hearth-virtual-lights":
            return ["--payload", "light", "--first", "1", "--sensor-topic",
                    "hearth/virtual/light-%d/set", "--action-topic", "hearth/virtual/light-%d"]
        return self.engine_opts(engine)

    def run_callgrind(self):
        if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
            log("callgrind: valgrind is not installed; skipped")
            return
        engine = self.hearth_engines()[0]
        p = self.plan
        for run in range(p["runs"]):
            name = f"callgrind-{run}"
            log(f"callgrind: {engine}, replay of {p['replay']} updates, run {run + 1}")
            port, broker = self.broker(name)
            out = self.path(name, "callgrind.out")
            conf = self.hearth_conf(name, port, 0, engine)
            wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                       f"--callgrind-out-file={out}", "--dump-instr=no"]
            eng = self.start_hearth(conf, name, wrapper=wrapper, timeout_ms=120000)
            try:
                self.load(port, eng["pid"], broker.pid, dict(scenario="callgrind-first"),
                          "-t", "0", *self.engine_opts(engine))
                ctl(["-i", "on", str(eng["pid"])])
                rec = self.load(port, eng["pid"], broker.pid,
                                dict(scenario="callgrind-replay", engine=engine, run=run),
                                "-r", 500, "-c", p["replay"], "--warmup", 0, "--drain-ms", 20000,
                                "--timeout-ms", 20000, *self.engine_opts(engine), timeout=900)
                ctl(["-d", str(eng["pid"])])
                ctl(["-i", "off", str(eng["pid"])])
            finally:
                self.stop_engine(eng, name)
                self.procs.stop(broker)
            ir = callgrind_total(out)
            if rec and ir:
                self.emit(dict(tool="hearth-bench", mode="callgrind", scenario="callgrind",
                               engine=engine, run=run, messages=rec["sent"], ir=ir,
                               ir_per_msg=ir / rec["sent"],
                               top=callgrind_top(out, 12)))

    # -- the whole run ------------------------------------------------------------------

    def meta(self, phase):
        rec = dict(tool="hearth-bench", mode="meta", phase=phase, time=time.time(),
                   loadavg=os.getloadavg(), quick=self.args.quick, runs=self.plan["runs"],
                   mqttdev=self.mqttdev)
        if phase == "start":
            rec.update(machine=machine(), versions=versions(self), plan=self.plan)
        self.emit(rec)

    def run(self, only):
        self.mqttdev_names, self.mqttdev_file, self.first_index = mqttdev_setup(self)
        self.meta("start")
        t0 = time.time()
        for name in SCENARIOS:
            if name in only:
                getattr(self, f"run_{name}")()
        self.meta("end")
        log(f"done in {time.time() - t0:.0f} s; results in {self.args.out}")


# -- hearth's side of the workload ------------------------------------------------------


def mqttdev_setup(bench):
    """The devices file for the generic MQTT devices plugin (the test
    fixture when there is one, else the same shape written here), the names
    the rules use, and the index of the first sensor."""
    if not bench.mqttdev:
        return None, None, 0
    fixture = os.path.join(ROOT, "tests/fixtures/mqttdev/bench.json")
    path = fixture
    if os.path.exists(fixture):
        with open(fixture) as f:
            spec = json.load(f)
    else:
        spec = bench_devices()
        path = bench.path("mqttdev", "bench.json")
        with open(path, "w") as f:
            json.dump(spec, f)
    names = mqttdev_names(spec)
    if names is None:
        raise RuntimeError(f"{path}: no sensors on bench/sensor/{{i}}/state or lights on "
                           "bench/light/{i}/set")
    return names, path, names["first"]


def bench_devices():
    """100 motion sensors and 100 lights as generic JSON devices."""
    return {"devices": [
        {"id": "bench-sensor-{i}", "name": "bench/sensor-{i}", "count": SENSORS,
         "state_topic": "bench/sensor/{i}/state",
         "attributes": [{"name": "occupancy", "key": "motion", "type": "binary"},
                        {"name": "seq", "type": "numeric"}]},
        {"id": "bench-light-{i}", "name": "bench/light-{i}", "count": SENSORS,
         "command_topic": "bench/light/{i}/set", "optimistic": True,
         "attributes": [{"name": "state", "type": "binary", "access": "rw",
                         "value_on": "ON", "value_off": "OFF"},
                        {"name": "seq", "type": "numeric", "access": "rw"}]}]}


def mqttdev_names(spec):
    """From a devices file: the sensor and light name templates, the sensor's
    motion attribute, whether a light takes "seq" (then rules echo it) and the
    first index."""
    devs = spec.get("devices", [])
    sensor = next((d for d in devs if d.get("state_topic") == "bench/sensor/{i}/state"), None)
    light = next((d for d in devs if d.get("command_topic") == "bench/light/{i}/set"), None)
    if not sensor or not light or sensor.get("count", 0) < SENSORS:
        return None
    motion = next((a["name"] for a in sensor.get("attributes", [])
                   if a.get("key", a.get("name")) == "motion"), None)
    if not motion:
        return None
    echo = any(a.get("name") == "seq" and "w" in a.get("access", "r")
               for a in light.get("attributes", []))
    return dict(sensor=sensor.get("name", sensor["id"]), light=light.get("name", light["id"]),
                motion=motion, echo_seq=echo, first=int(sensor.get("start", 0)))


def bench_rules(variant, names, first=0):
    """The 100 rules of the workload, the way a hearth user writes them."""
    rng = range(first, first + SENSORS)
    if variant == "hearth-mqtt-rules":
        return [{"id": f"bench-motion-{i}", "name": f"motion {i} turns light {i} on",
                 "triggers": [{"type": "mqtt", "topic": f"bench/sensor/{i}/state",
                               "match": {"motion": True}}],
                 "actions": [{"type": "publish", "topic": f"bench/light/{i}/set",
                              "payload": {"state": "ON"}}]}
                for i in rng]
    if variant == "hearth":
        state = {"state": "ON"}
        if names["echo_seq"]:
            state["seq"] = {"from_trigger": "seq"}
        return [{"id": f"bench-motion-{i}", "name": f"motion {i} turns light {i} on",
                 "triggers": [{"type": "state", "device": names["sensor"].format(i=i),
                               "attribute": names["motion"], "to": True}],
                 "actions": [{"type": "set", "device": names["light"].format(i=i),
                              "state": state}]}
                for i in rng]
    return []


def plugin_conf(variant, devices_file):
    if variant == "hearth":
        return ["enable = mqttdev", "[plugin.mqttdev]", f"devices_file = {devices_file}"]
    if variant == "hearth-virtual-lights":
        return ["enable = virtual", "[plugin.virtual]", f"devices = light:{SENSORS}",
                "interval_ms = 0"]
    return []


# -- small things ---------------------------------------------------------------------


def read_line(stream, timeout_s):
    """One line from a pipe, waiting at most timeout_s."""
    buf = b""
    until = time.time() + timeout_s
    fd = stream.fileno()
    while time.time() < until:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode()
    return None


def ctl(args):
    subprocess.run(["callgrind_control", *args], capture_output=True, timeout=120)


def callgrind_dumps(path):
    """The dumps callgrind_control -d made (path.1, path.2 ...): the replay."""
    d, base = os.path.split(path)
    return [os.path.join(d, x) for x in sorted(os.listdir(d))
            if x.startswith(base + ".") and x[len(base) + 1:].isdigit()]


def callgrind_total(path):
    total = 0
    for name in callgrind_dumps(path):
        with open(name) as f:
            for line in f:
                if line.startswith("summary:"):
                    total += int(line.split()[1])
                    break
    return total


CALLGRIND_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)(?:\s+\[(.*)\])?$")


def callgrind_top(path, n):
    """The n functions with the most instructions of their own."""
    dumps = callgrind_dumps(path)
    if not dumps or not shutil.which("callgrind_annotate"):
        return []
    r = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", *dumps],
                       capture_output=True, text=True, timeout=300)
    top = []
    for line in r.stdout.splitlines():
        m = CALLGRIND_LINE.match(line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        fn = m.group(2).rsplit(":", 1)[-1]
        obj = os.path.basename(m.group(3) or "")
        top.append([f"{fn} ({obj})" if obj else fn, int(m.group(1).replace(",", ""))])
        if len(top) >= n:
            break
    return top


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), mem_mib=mem, kernel=platform.release(),
                system=platform.system())


def versions(bench):
    def out(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None
    nr = None
    try:
        with open(os.path.join(HERE, "node_modules/node-red/package.json")) as f:
            nr = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        pass
    return dict(mosquitto=out(["mosquitto", "-h"]), node=out([bench.node, "--version"]),
                node_red=nr, hearth=out([bench.hearthd, "--version"]),
                git=out(["git", "-C", ROOT, "describe", "--always", "--dirty"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one short run of each (under 2 min)")
    ap.add_argument("--build", default=os.environ.get("B", "build"))
    ap.add_argument("--out", default=None, help="JSON lines file (replaced)")
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    ap.add_argument("--engines", default="", help="only these engines (comma-separated)")
    args = ap.parse_args()
    if args.out is None:
        args.out = os.path.join(args.build, "bench", "results.jsonl")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    only = set(args.only.split(","))
    unknown = only - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario {', '.join(sorted(unknown))}")
    bench = Bench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    try:
        bench.run(only)
    except (KeyboardInterrupt, RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"stopped: {e!r}")
        rc = 1
    finally:
        bench.procs.stop_all()
        if args.keep or rc:
            log(f"logs kept in {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
