#!/usr/bin/env bash
# make run: a private mosquitto on a free loopback port (or the one in
# HEARTH_MQTT_PORT, if a broker already listens there) and hearthd with the
# demo configuration. Ctrl-C stops both.
set -u
B=${1:-build}
DEV=build/dev
mkdir -p "$DEV"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

mosq_pid=""
port=${HEARTH_MQTT_PORT:-}
if [ -n "$port" ] && listening "$port"; then
	echo "using the broker already on 127.0.0.1:$port"
else
	port=18830
	while listening "$port"; do port=$((port + 1)); done
	cat > "$DEV/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
CONF
	mosquitto -c "$DEV/mosquitto.conf" > "$DEV/mosquitto.log" 2>&1 &
	mosq_pid=$!
	i=0
	while ! listening "$port"; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$mosq_pid" 2>/dev/null; then
			echo "mosquitto did not start; see $DEV/mosquitto.log" >&2
			exit 1
		fi
		sleep 0.05
	done
fi

web_port=8080
while listening "$web_port"; do web_port=$((web_port + 1)); done
sed -e "s/^port = 1883\$/port = $port/" -e "s/^listen = 127.0.0.1:8080\$/listen = 127.0.0.1:$web_port/" \
	-e "s#^root = build/web\$#root = $B/web#" config/hearth.dev.conf > "$DEV/hearth.conf"

cat <<TXT

  hearth is starting on the private broker 127.0.0.1:$port (base topic "hearth").

  Dashboard:            http://127.0.0.1:$web_port/   (no password: this machine only)

  Watch everything:     mosquitto_sub -h 127.0.0.1 -p $port -t 'hearth/#' -v
  List devices:         $B/hearthctl -p $port devices
  Show one:             $B/hearthctl -p $port show virtual/light-1
  Switch a light on:    $B/hearthctl -p $port set virtual/light-1 state=ON brightness=180
  Or with plain MQTT:   mosquitto_pub -h 127.0.0.1 -p $port -t hearth/virtual/light-1/set -m '{"state":"TOGGLE"}'
  Live updates:         $B/hearthctl -p $port watch
  Health:               $B/hearthctl -p $port health

  Database: $DEV/hearth.db    Config: $DEV/hearth.conf    Ctrl-C stops hearthd and the broker.

TXT

"$B/hearthd" -c "$DEV/hearth.conf" &
hub_pid=$!
stop() {
	trap - INT TERM
	kill -TERM "$hub_pid" 2>/dev/null
	wait "$hub_pid" 2>/dev/null
	if [ -n "$mosq_pid" ]; then
		kill -TERM "$mosq_pid" 2>/dev/null
		wait "$mosq_pid" 2>/dev/null
	fi
	echo "stopped."
	exit 0
}
trap stop INT TERM
wait "$hub_pid"
status=$?
trap - INT TERM
[ -n "$mosq_pid" ] && kill -TERM "$mosq_pid" 2>/dev/null && wait "$mosq_pid" 2>/dev/null
exit $status
