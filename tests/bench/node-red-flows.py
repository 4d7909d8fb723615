#!/usr/bin/env python3
"""Write the Node-RED flows of the hearth benchmark.

flows-per-device.json: the 100 rules the way a user builds them in the
editor, one small flow per sensor on one tab:
    mqtt in bench/sensor/<i>/state (parsed JSON)
      -> switch msg.payload.motion is true
      -> change: set msg.payload.state to "ON", delete msg.payload.motion
         (msg.payload.seq rides along, so every action names its trigger)
      -> mqtt out bench/light/<i>/set

flows-shortcut.json: the one-flow shortcut for all sensors: one mqtt in on
bench/sensor/+/state, the same switch, a change that also rewrites
msg.topic (sensor -> light, /state -> /set), one mqtt out taking the topic
from the message.

The broker's port and the QoS are ${BENCH_MQTT_PORT} and ${BENCH_QOS}, which
Node-RED fills in from the environment when the flows start.
"""
import argparse
import json
import os

BROKER = {
    "id": "bench.broker", "type": "mqtt-broker", "name": "loopback mosquitto",
    "broker": "127.0.0.1", "port": "${BENCH_MQTT_PORT}", "clientid": "",
    "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
    "cleansession": True, "autoUnsubscribe": True,
    "birthTopic": "", "birthQos": "0", "birthRetain": "false", "birthPayload": "",
    "birthMsg": {}, "closeTopic": "", "closeQos": "0", "closeRetain": "false",
    "closePayload": "", "closeMsg": {}, "willTopic": "", "willQos": "0",
    "willRetain": "false", "willPayload": "", "willMsg": {}, "userProps": "",
    "sessionExpiry": "",
}


def mqtt_in(nid, tab, topic, x, y, wire):
    return {"id": nid, "type": "mqtt in", "z": tab, "name": "", "topic": topic,
            "qos": "${BENCH_QOS}", "datatype": "json", "broker": BROKER["id"],
            "nl": False, "rap": True, "rh": 0, "inputs": 0, "x": x, "y": y,
            "wires": [[wire]]}


def motion_switch(nid, tab, x, y, wire):
    return {"id": nid, "type": "switch", "z": tab, "name": "motion?",
            "property": "payload.motion", "propertyType": "msg",
            "rules": [{"t": "true"}], "checkall": "true", "repair": False,
            "outputs": 1, "x": x, "y": y, "wires": [[wire]]}


def light_on(nid, tab, x, y, wire, rewrite_topic):
    rules = [{"t": "set", "p": "payload.state", "pt": "msg", "to": "ON", "tot": "str"},
             {"t": "delete", "p": "payload.motion", "pt": "msg"}]
    if rewrite_topic:
        rules += [{"t": "change", "p": "topic", "pt": "msg", "from": "bench/sensor/",
                   "fromt": "str", "to": "bench/light/", "tot": "str"},
                  {"t": "change", "p": "topic", "pt": "msg", "from": "/state",
                   "fromt": "str", "to": "/set", "tot": "str"}]
    return {"id": nid, "type": "change", "z": tab, "name": "light on", "rules": rules,
            "action": "", "property": "", "from": "", "to": "", "reg": False,
            "x": x, "y": y, "wires": [[wire]]}


def mqtt_out(nid, tab, topic, x, y):
    return {"id": nid, "type": "mqtt out", "z": tab, "name": "", "topic": topic,
            "qos": "${BENCH_QOS}", "retain": "false", "respTopic": "", "contentType": "",
            "userProps": "", "correl": "", "expiry": "", "broker": BROKER["id"],
            "x": x, "y": y, "wires": []}


def per_device(first, count):
    tab = "bench.tab"
    nodes = [{"id": tab, "type": "tab", "label": "motion lights", "disabled": False,
              "info": "One flow per sensor: motion -> its light."}]
    for i in range(first, first + count):
        y = 40 + 60 * (i - first)
        ids = [f"s{i}.in", f"s{i}.switch", f"s{i}.change", f"s{i}.out"]
        nodes += [mqtt_in(ids[0], tab, f"bench/sensor/{i}/state", 160, y, ids[1]),
                  motion_switch(ids[1], tab, 380, y, ids[2]),
                  light_on(ids[2], tab, 560, y, ids[3], False),
                  mqtt_out(ids[3], tab, f"bench/light/{i}/set", 780, y)]
    return nodes + [BROKER]


def shortcut():
    tab = "bench.tab"
    return [{"id": tab, "type": "tab", "label": "motion lights", "disabled": False,
             "info": "One flow for every sensor."},
            mqtt_in("all.in", tab, "bench/sensor/+/state", 160, 40, "all.switch"),
            motion_switch("all.switch", tab, 380, 40, "all.change"),
            light_on("all.change", tab, 560, 40, "all.out", True),
            mqtt_out("all.out", tab, "", 780, 40), BROKER]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first", type=int, default=0, help="index of the first sensor")
    ap.add_argument("--sensors", type=int, default=100)
    ap.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    for name, flow in (("flows-per-device.json", per_device(a.first, a.sensors)),
                       ("flows-shortcut.json", shortcut())):
        # one node per line: small, and diffs read well
        with open(os.path.join(a.dir, name), "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(n, separators=(",", ":")) for n in flow)
                    + "\n]\n")


if __name__ == "__main__":
    main()
