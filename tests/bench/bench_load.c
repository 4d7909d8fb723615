/*
 * hearth-bench load: N sensors publish to the engine under test; each
 * expected action is matched to its trigger (by the "seq" the engine echoes,
 * else by per-sensor order) and timed. One JSON line per run on stdout.
 *
 * Sensor i's messages alternate false, true, false ... starting with false,
 * so every true is a change (engines that fire on changes see one per true)
 * and only a true expects an action. With --payload light the messages are
 * {"state":"ON"|"OFF"} and every one expects an action.
 */
#include "bench.h"
#include "iocount.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING_BITS 20
#define RING_SIZE (1u << RING_BITS)
#define FIFO_CAP 4096
#define SENSORS_MAX 20000
#define LABELS_MAX 16
#define SENDS_PER_TURN 64
#define SWEEP_NS 50000000LL
#define PROBE_INTERVAL_MS 5
#define PROBE_TIMEOUT_S 120
#define SUBACK_TIMEOUT_MS 5000
#define SYS_SETTLE_MS 1500
#define LATENCIES_MAX 50000000u

enum slot_state { S_FREE, S_WAIT, S_DONE, S_LOST };
enum payload_kind { PAYLOAD_MOTION, PAYLOAD_LIGHT };
enum sys_key { SYS_MSG_IN, SYS_MSG_OUT, SYS_BYTES_IN, SYS_BYTES_OUT, SYS_N };

static const char *const sys_topics[SYS_N] = {
	"$SYS/broker/messages/received", "$SYS/broker/messages/sent",
	"$SYS/broker/bytes/received", "$SYS/broker/bytes/sent"};

struct opts {
	int port;
	long sensors;
	long first;
	double rate;	  /* messages/s; 0: as fast as the window allows */
	double seconds;	  /* measured phase */
	long count;	  /* or a fixed number of messages (replay) */
	double warmup_s;
	long window;
	long qos;
	long drain_ms;
	long timeout_ms;  /* an action later than this is lost */
	long settle_ms;	  /* wait before the last disk sample (batched commits) */
	pid_t pid;
	pid_t broker_pid;
	bool broker_stats;
	enum payload_kind payload;
	const char *sensor_topic;
	const char *action_topic;
	int64_t first_since_ns;
	const char *iocount;
	const char *labels[LABELS_MAX];
	size_t n_labels;
};

struct slot {
	uint64_t seq;
	int64_t sent_ns;
	int32_t sensor;
	uint8_t state;
	bool measured;
};

struct fifo {
	uint64_t seq[FIFO_CAP];
	uint32_t head, len;
};

struct sys_value {
	double value;
	int64_t at_ns;
};

struct load {
	struct opts o;
	struct mosquitto *pub, *sub;
	struct slot *ring;
	struct fifo *fifos;
	uint64_t *per_sensor;
	uint64_t next_seq;
	uint64_t lo; /* every seq below is settled */
	size_t waiting;
	bool measuring, probing, subscribed;
	int64_t probe_hit_ns;
	int64_t probe_hit_wall_ns;
	char prefix[256], suffix[256];
	/* results */
	uint64_t sent, expected, completed, lost, late, unexpected, by_seq, by_order;
	uint64_t completed_in_phase;
	int64_t *lat;
	size_t n_lat, cap_lat;
	int64_t max_lag_ns;
	struct sys_value sys[SYS_N];
};

static void usage(void)
{
	fprintf(stderr,
		"usage: hearth-bench load -p PORT [options]\n"
		"  -n N            sensors (100)          --first I     index of the first (0)\n"
		"  -r RATE         messages/s; 0: max throughput within --window (1000)\n"
		"  -t SECONDS      measured phase (5)     -c COUNT      or a fixed number of messages\n"
		"  -w WINDOW       actions in flight in max mode (256)\n"
		"  -q QOS          0 or 1 (0)             --warmup S    unmeasured lead-in (1)\n"
		"  --pid PID       the engine to sample   --broker-pid PID\n"
		"  --broker-stats  count what the broker carried ($SYS, sys_interval 1)\n"
		"  --payload motion|light                 --timeout-ms MS  (3000)\n"
		"  --sensor-topic FMT (bench/sensor/%%d/state)  --action-topic FMT (bench/light/%%d/set)\n"
		"  --drain-ms MS (3000)  --settle-ms MS (0)  --first-since WALL_NS  --label key=value\n"
		"  --iocount FILE  the counters of iocount.so preloaded into the engine\n");
}

/* -- matching -------------------------------------------------------------------- */

static struct slot *slot_of(struct load *l, uint64_t seq)
{
	struct slot *s = &l->ring[seq & (RING_SIZE - 1)];
	return s->seq == seq ? s : NULL;
}

static void record_latency(struct load *l, int64_t ns)
{
	if (l->n_lat == l->cap_lat) {
		size_t cap = l->cap_lat ? l->cap_lat * 2 : 65536;
		int64_t *p = cap <= LATENCIES_MAX ? realloc(l->lat, cap * sizeof(*p)) : NULL;
		if (!p)
			return;
		l->lat = p;
		l->cap_lat = cap;
	}
	l->lat[l->n_lat++] = ns;
}

static void complete(struct load *l, struct slot *s, int64_t now)
{
	if (s->state == S_LOST) {
		l->late++;
		s->state = S_DONE;
		return;
	}
	s->state = S_DONE;
	l->waiting--;
	if (!s->measured)
		return;
	l->completed++;
	if (l->measuring)
		l->completed_in_phase++;
	record_latency(l, now - s->sent_ns);
}

/* The oldest action sensor i still waits for, by order. */
static struct slot *pop_order(struct load *l, long i)
{
	struct fifo *f = &l->fifos[i];
	while (f->len) {
		uint64_t seq = f->seq[f->head];
		f->head = (f->head + 1) % FIFO_CAP;
		f->len--;
		struct slot *s = slot_of(l, seq);
		if (s && (s->state == S_WAIT || s->state == S_LOST))
			return s;
	}
	return NULL;
}

static bool parse_index(const struct load *l, const char *topic, long *out)
{
	size_t pl = strlen(l->prefix), sl = strlen(l->suffix), tl = strlen(topic);
	if (tl <= pl + sl || strncmp(topic, l->prefix, pl) != 0 ||
	    strcmp(topic + tl - sl, l->suffix) != 0)
		return false;
	char *end;
	long i = strtol(topic + pl, &end, 10);
	if (end != topic + tl - sl || i < l->o.first || i >= l->o.first + l->o.sensors)
		return false;
	*out = i - l->o.first;
	return true;
}

static bool payload_seq(const struct mosquitto_message *msg, uint64_t *out)
{
	char buf[512];
	size_t n = msg->payloadlen < (int)sizeof(buf) - 1 ? (size_t)msg->payloadlen : sizeof(buf) - 1;
	memcpy(buf, msg->payload, n);
	buf[n] = '\0';
	const char *p = strstr(buf, "\"seq\":");
	if (!p)
		return false;
	char *end;
	unsigned long long v = strtoull(p + 6, &end, 10);
	if (end == p + 6)
		return false;
	*out = v;
	return true;
}

static void on_action(struct load *l, const struct mosquitto_message *msg)
{
	int64_t now = bench_now_ns();
	long i;
	if (!parse_index(l, msg->topic, &i)) {
		l->unexpected++;
		return;
	}
	if (l->probing) {
		if (i == 0 && !l->probe_hit_ns) {
			l->probe_hit_ns = now;
			l->probe_hit_wall_ns = bench_wall_ns();
		}
		return;
	}
	uint64_t seq;
	struct slot *s = NULL;
	bool by_seq = payload_seq(msg, &seq) && (s = slot_of(l, seq)) && s->sensor == i &&
		      (s->state == S_WAIT || s->state == S_LOST);
	if (!by_seq && !(s = pop_order(l, i))) {
		l->unexpected++;
		return;
	}
	if (s->measured)
		*(by_seq ? &l->by_seq : &l->by_order) += 1;
	complete(l, s, now);
}

static void on_sys(struct load *l, const struct mosquitto_message *msg)
{
	for (int k = 0; k < SYS_N; k++) {
		if (strcmp(msg->topic, sys_topics[k]) != 0)
			continue;
		char buf[64];
		size_t n = msg->payloadlen < 63 ? (size_t)msg->payloadlen : 63;
		memcpy(buf, msg->payload, n);
		buf[n] = '\0';
		l->sys[k] = (struct sys_value){strtod(buf, NULL), bench_now_ns()};
	}
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	(void)mosq;
	struct load *l = obj;
	if (strncmp(msg->topic, "$SYS/", 5) == 0)
		on_sys(l, msg);
	else
		on_action(l, msg);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
	(void)mosq;
	(void)mid;
	(void)n;
	(void)granted;
	struct load *l = obj;
	l->subscribed = true;
}

/* -- sending ---------------------------------------------------------------------- */

static int publish_raw(struct load *l, long i, bool on, uint64_t seq)
{
	char topic[256], payload[128];
	snprintf(topic, sizeof(topic), l->o.sensor_topic, (int)(i + l->o.first));
	int len;
	if (l->o.payload == PAYLOAD_LIGHT)
		len = snprintf(payload, sizeof(payload), "{\"state\":\"%s\"}", on ? "ON" : "OFF");
	else
		len = snprintf(payload, sizeof(payload), "{\"motion\":%s,\"seq\":%" PRIu64 "}",
			       on ? "true" : "false", seq);
	int rc = mosquitto_publish(l->pub, NULL, topic, len, payload, (int)l->o.qos, false);
	return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

/* The slot a new seq takes; an action still awaited there is lost. */
static struct slot *take_slot(struct load *l, uint64_t seq)
{
	struct slot *s = &l->ring[seq & (RING_SIZE - 1)];
	if (s->state == S_WAIT) {
		l->waiting--;
		if (s->measured)
			l->lost++;
	}
	return s;
}

static int send_next(struct load *l)
{
	uint64_t seq = l->next_seq++;
	long i = (long)(seq % (uint64_t)l->o.sensors);
	uint64_t k = l->per_sensor[i]++;
	bool on = k % 2 == 1;
	/* a light's first command may not change it: only later ones must */
	bool expect = on || (l->o.payload == PAYLOAD_LIGHT && k > 0);
	int64_t now = bench_now_ns();
	if (expect) {
		struct slot *s = take_slot(l, seq);
		*s = (struct slot){.seq = seq, .sent_ns = now, .sensor = (int32_t)i, .state = S_WAIT,
				   .measured = l->measuring};
		struct fifo *f = &l->fifos[i];
		if (f->len < FIFO_CAP)
			f->seq[(f->head + f->len++) % FIFO_CAP] = seq;
		l->waiting++;
		l->expected += l->measuring;
	}
	l->sent += l->measuring;
	return publish_raw(l, i, on, seq);
}

/* Give up on actions older than the timeout; advances l->lo. */
static void sweep(struct load *l, int64_t now)
{
	int64_t limit = now - (int64_t)l->o.timeout_ms * 1000000;
	while (l->lo < l->next_seq) {
		struct slot *s = slot_of(l, l->lo);
		if (s && s->state == S_WAIT) {
			if (s->sent_ns > limit)
				break;
			s->state = S_LOST;
			l->waiting--;
			l->lost += s->measured;
		}
		l->lo++;
	}
}

static int pump(struct load *l, int64_t timeout_ns)
{
	struct mosquitto *c[2] = {l->pub, l->sub};
	if (bench_pump(c, 2, timeout_ns)) {
		fprintf(stderr, "hearth-bench: lost the broker connection\n");
		return -1;
	}
	return 0;
}

/* Send at the paced rate (or, rate 0, whenever fewer than window actions
 * are awaited) until `until` or `count` messages; then return. */
static int run_phase(struct load *l, int64_t until, uint64_t count)
{
	int64_t start = bench_now_ns(), last_sweep = start;
	double interval = l->o.rate > 0 ? 1e9 / l->o.rate : 0;
	uint64_t k = 0;
	for (;;) {
		int64_t now = bench_now_ns();
		if ((count && k >= count) || (!count && now >= until))
			return 0;
		int sends = 0;
		while (sends < SENDS_PER_TURN && (!count || k < count)) {
			if (interval > 0) {
				int64_t due = start + (int64_t)((double)k * interval);
				if (now < due)
					break;
				if (now - due > l->max_lag_ns)
					l->max_lag_ns = now - due;
			} else if (l->waiting >= (size_t)l->o.window) {
				break;
			}
			if (send_next(l))
				return -1;
			k++;
			sends++;
		}
		if (now - last_sweep > SWEEP_NS) {
			sweep(l, now);
			last_sweep = now;
		}
		int64_t wait = 1000000;
		if (interval > 0 && (!count || k < count))
			wait = start + (int64_t)((double)k * interval) - bench_now_ns();
		if (sends == SENDS_PER_TURN)
			wait = 0;
		if (pump(l, wait > 1000000 ? 1000000 : wait))
			return -1;
	}
}

static int pump_for(struct load *l, int ms, bool until_idle)
{
	int64_t until = bench_now_ns() + (int64_t)ms * 1000000;
	while (bench_now_ns() < until) {
		if (until_idle && l->waiting == 0)
			return 0;
		if (pump(l, 5000000))
			return -1;
	}
	return 0;
}

/* -- set-up -------------------------------------------------------------------------- */

static int split_action_topic(struct load *l)
{
	const char *p = strstr(l->o.action_topic, "%d");
	if (!p || strstr(p + 2, "%") || strchr(l->o.action_topic, '+') ||
	    strchr(l->o.action_topic, '#') || (size_t)(p - l->o.action_topic) >= sizeof(l->prefix) ||
	    strlen(p + 2) >= sizeof(l->suffix))
		return -1;
	snprintf(l->prefix, sizeof(l->prefix), "%.*s", (int)(p - l->o.action_topic),
		 l->o.action_topic);
	snprintf(l->suffix, sizeof(l->suffix), "%s", p + 2);
	return 0;
}

/* The action topic with the level holding %d made "+". */
static void action_filter(const struct load *l, char *out, size_t cap)
{
	const char *start = strrchr(l->prefix, '/');
	const char *end = strchr(l->suffix, '/');
	size_t keep = start ? (size_t)(start - l->prefix) + 1 : 0;
	snprintf(out, cap, "%.*s+%s", (int)keep, l->prefix, end ? end : "");
}

static int subscribe_all(struct load *l)
{
	char filter[600];
	action_filter(l, filter, sizeof(filter));
	if (mosquitto_subscribe(l->sub, NULL, filter, (int)l->o.qos) != MOSQ_ERR_SUCCESS)
		return -1;
	int64_t until = bench_now_ns() + (int64_t)SUBACK_TIMEOUT_MS * 1000000;
	while (!l->subscribed && bench_now_ns() < until)
		if (pump(l, 10000000))
			return -1;
	if (!l->subscribed) {
		fprintf(stderr, "hearth-bench: no SUBACK for %s\n", filter);
		return -1;
	}
	for (int k = 0; l->o.broker_stats && k < SYS_N; k++)
		if (mosquitto_subscribe(l->sub, NULL, sys_topics[k], 0) != MOSQ_ERR_SUCCESS)
			return -1;
	return 0;
}

static int setup(struct load *l)
{
	if (split_action_topic(l)) {
		fprintf(stderr, "hearth-bench: --action-topic needs exactly one %%d and no wildcard\n");
		return -1;
	}
	l->ring = calloc(RING_SIZE, sizeof(*l->ring));
	l->fifos = calloc((size_t)l->o.sensors, sizeof(*l->fifos));
	l->per_sensor = calloc((size_t)l->o.sensors, sizeof(*l->per_sensor));
	if (!l->ring || !l->fifos || !l->per_sensor)
		return -1;
	for (size_t i = 0; i < RING_SIZE; i++)
		l->ring[i].seq = UINT64_MAX;
	l->next_seq = 1;
	l->lo = 1;
	char id[64];
	snprintf(id, sizeof(id), "bench-pub-%d", (int)getpid());
	l->pub = bench_client(l->o.port, id, l);
	snprintf(id, sizeof(id), "bench-sub-%d", (int)getpid());
	l->sub = bench_client(l->o.port, id, l);
	if (!l->pub || !l->sub)
		return -1;
	mosquitto_message_callback_set(l->sub, on_message);
	mosquitto_subscribe_callback_set(l->sub, on_subscribe);
	return subscribe_all(l);
}

/* Sensor 0 goes false, true, false ... every PROBE_INTERVAL_MS until its
 * light answers: the engine is up, and how long it took since it started. */
static int probe(struct load *l, double *first_ms)
{
	int64_t until = bench_now_ns() + (int64_t)PROBE_TIMEOUT_S * 1000000000;
	l->probing = true;
	bool on = false;
	while (!l->probe_hit_ns && bench_now_ns() < until) {
		if (publish_raw(l, 0, on, 0))
			return -1;
		on = !on;
		if (pump_for(l, PROBE_INTERVAL_MS, false))
			return -1;
	}
	if (!l->probe_hit_ns) {
		fprintf(stderr, "hearth-bench: no action from the engine within %d s\n",
			PROBE_TIMEOUT_S);
		return -1;
	}
	*first_ms = l->o.first_since_ns
			    ? (double)(l->probe_hit_wall_ns - l->o.first_since_ns) / 1e6
			    : -1;
	/* stragglers of the probe are not part of the run */
	int rc = pump_for(l, 300, false);
	l->probing = false;
	l->unexpected = 0;
	return rc;
}

/* The broker's counters once things are quiet: $SYS topics are retained
 * and republished within sys_interval (1 s) of a change, so after
 * SYS_SETTLE_MS the last value of each is current. */
static int sys_snapshot(struct load *l, double out[SYS_N])
{
	if (pump_for(l, SYS_SETTLE_MS, false))
		return -1;
	for (int k = 0; k < SYS_N; k++) {
		if (!l->sys[k].at_ns)
			return -1;
		out[k] = l->sys[k].value;
	}
	return 0;
}

/* The counters of iocount.so, or zeros. */
static void read_iocount(const char *path, struct iocount *out)
{
	*out = (struct iocount){0};
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	if (pread(fd, out, sizeof(*out), 0) != (ssize_t)sizeof(*out) || out->magic != IOCOUNT_MAGIC)
		*out = (struct iocount){0};
	close(fd);
}

/* -- results ------------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct_ms(const struct load *l, double p)
{
	if (!l->n_lat)
		return -1;
	size_t i = (size_t)(p / 100.0 * (double)(l->n_lat - 1) + 0.5);
	return (double)l->lat[i] / 1e6;
}

static void put_num(const char *key, double v)
{
	if (v < 0)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%.6g", key, v);
}

static void put_labels(const struct load *l)
{
	for (size_t i = 0; i < l->o.n_labels; i++) {
		const char *eq = strchr(l->o.labels[i], '=');
		printf(",\"%.*s\":\"", (int)(eq - l->o.labels[i]), l->o.labels[i]);
		for (const char *p = eq + 1; *p; p++)
			if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
				putchar(*p);
		putchar('"');
	}
}

static void put_latency(struct load *l)
{
	qsort(l->lat, l->n_lat, sizeof(*l->lat), cmp_i64);
	double sum = 0;
	for (size_t i = 0; i < l->n_lat; i++)
		sum += (double)l->lat[i];
	put_num("lat_p50_ms", pct_ms(l, 50));
	put_num("lat_p90_ms", pct_ms(l, 90));
	put_num("lat_p99_ms", pct_ms(l, 99));
	put_num("lat_p999_ms", pct_ms(l, 99.9));
	put_num("lat_max_ms", l->n_lat ? (double)l->lat[l->n_lat - 1] / 1e6 : -1);
	put_num("lat_mean_ms", l->n_lat ? sum / (double)l->n_lat / 1e6 : -1);
}

struct samples {
	struct proc_sample e0, e1, e_io, b0, b1;
	struct iocount io0, io1;
	double phase_s;
	double first_ms;
	double sys0[SYS_N], sys1[SYS_N];
	bool sys_ok;
};

static double per_1k(double delta, uint64_t msgs)
{
	return msgs && delta >= 0 ? delta * 1000.0 / (double)msgs : -1;
}

static void put_engine(const struct load *l, const struct samples *s)
{
	uint64_t msgs = l->sent;
	printf(",\"pid\":%d", (int)l->o.pid);
	if (l->o.pid <= 0 || s->e0.cpu_s < 0 || s->e1.cpu_s < 0)
		return;
	put_num("cpu_ms_per_1k", per_1k((s->e1.cpu_s - s->e0.cpu_s) * 1000.0, msgs));
	put_num("rss_kib", (double)s->e1.rss_kib);
	put_num("hwm_kib", (double)s->e1.hwm_kib);
	put_num("anon_kib", (double)s->e1.anon_kib);
	if (s->e0.write_bytes >= 0 && s->e_io.write_bytes >= 0) {
		double wb = (double)(s->e_io.write_bytes - s->e0.write_bytes);
		put_num("write_bytes", wb);
		put_num("write_bytes_per_msg", msgs ? wb / (double)msgs : -1);
	}
	if (l->o.iocount && s->io1.magic) {
		double fb = (double)(s->io1.bytes - s->io0.bytes);
		put_num("file_bytes", fb);
		put_num("file_bytes_per_msg", msgs ? fb / (double)msgs : -1);
		put_num("file_writes_per_msg",
			msgs ? (double)(s->io1.writes - s->io0.writes) / (double)msgs : -1);
		put_num("fsyncs", (double)(s->io1.syncs - s->io0.syncs));
	}
	if (l->o.broker_pid > 0 && s->b0.cpu_s >= 0 && s->b1.cpu_s >= 0)
		put_num("broker_cpu_ms_per_1k", per_1k((s->b1.cpu_s - s->b0.cpu_s) * 1000.0, msgs));
}

static void put_broker(const struct load *l, const struct samples *s, uint64_t all_sent)
{
	if (!l->o.broker_stats || !s->sys_ok || !all_sent)
		return;
	static const char *const keys[SYS_N] = {"broker_msgs_in_per_msg", "broker_msgs_out_per_msg",
						"broker_bytes_in_per_msg",
						"broker_bytes_out_per_msg"};
	for (int k = 0; k < SYS_N; k++)
		put_num(keys[k], (s->sys1[k] - s->sys0[k]) / (double)all_sent);
}

static double load1(void)
{
	double v = -1;
	FILE *f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fscanf(f, "%lf", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void report(struct load *l, const struct samples *s, uint64_t all_sent)
{
	const char *mode = l->o.count		? "count"
			   : l->o.seconds <= 0	? "first"
			   : l->o.rate > 0	? "paced"
					: "max";
	printf("{\"tool\":\"hearth-bench\",\"mode\":\"%s\"", mode);
	put_labels(l);
	printf(",\"qos\":%ld,\"sensors\":%ld,\"payload\":\"%s\"", l->o.qos, l->o.sensors,
	       l->o.payload == PAYLOAD_LIGHT ? "light" : "motion");
	put_num("rate", l->o.rate);
	put_num("window", l->o.rate > 0 ? -1 : (double)l->o.window);
	put_num("seconds", s->phase_s);
	printf(",\"sent\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"completed\":%" PRIu64
	       ",\"lost\":%" PRIu64 ",\"late\":%" PRIu64 ",\"unexpected\":%" PRIu64
	       ",\"matched_by_seq\":%" PRIu64 ",\"matched_by_order\":%" PRIu64,
	       l->sent, l->expected, l->completed, l->lost, l->late, l->unexpected, l->by_seq,
	       l->by_order);
	put_num("throughput_msgs_s", s->phase_s > 0 ? (double)l->sent / s->phase_s : -1);
	put_num("actions_s", s->phase_s > 0 ? (double)l->completed_in_phase / s->phase_s : -1);
	put_latency(l);
	put_num("send_lag_max_ms", (double)l->max_lag_ns / 1e6);
	put_engine(l, s);
	put_broker(l, s, all_sent);
	put_num("first_action_ms", s->first_ms);
	if (l->probe_hit_wall_ns)
		printf(",\"first_action_wall_ns\":%" PRId64, l->probe_hit_wall_ns);
	put_num("load1", load1());
	printf("}\n");
	fflush(stdout);
}

/* -- the run ---------------------------------------------------------------------------- */

static int measure(struct load *l, struct samples *s, uint64_t *all_sent)
{
	int64_t t0 = bench_now_ns();
	if (l->o.warmup_s > 0 && run_phase(l, t0 + (int64_t)(l->o.warmup_s * 1e9), 0))
		return -1;
	proc_sample(l->o.pid, &s->e0);
	proc_sample(l->o.broker_pid, &s->b0);
	read_iocount(l->o.iocount, &s->io0);
	l->measuring = true;
	int64_t start = bench_now_ns();
	if (run_phase(l, start + (int64_t)(l->o.seconds * 1e9), (uint64_t)l->o.count))
		return -1;
	s->phase_s = (double)(bench_now_ns() - start) / 1e9;
	l->measuring = false;
	if (pump_for(l, (int)l->o.drain_ms, true))
		return -1;
	sweep(l, bench_now_ns() + (int64_t)l->o.timeout_ms * 1000000);
	proc_sample(l->o.pid, &s->e1);
	proc_sample(l->o.broker_pid, &s->b1);
	if (l->o.settle_ms > 0 && pump_for(l, (int)l->o.settle_ms, false))
		return -1;
	proc_sample(l->o.pid, &s->e_io);
	read_iocount(l->o.iocount, &s->io1);
	*all_sent = l->next_seq - 1;
	return 0;
}

static int run(struct load *l)
{
	struct samples s = {.first_ms = -1};
	if (setup(l))
		return 1;
	if (probe(l, &s.first_ms))
		return 1;
	uint64_t probe_sent = l->next_seq - 1;
	if (l->o.seconds <= 0 && !l->o.count) {
		report(l, &s, 0);
		return 0;
	}
	if (l->o.broker_stats)
		s.sys_ok = sys_snapshot(l, s.sys0) == 0;
	uint64_t all_sent = 0;
	if (measure(l, &s, &all_sent))
		return 1;
	all_sent -= probe_sent;
	if (l->o.broker_stats && s.sys_ok)
		s.sys_ok = sys_snapshot(l, s.sys1) == 0;
	report(l, &s, all_sent);
	return 0;
}

/* -- options ------------------------------------------------------------------------------ */

enum {
	OPT_FIRST = 256,
	OPT_WARMUP,
	OPT_PID,
	OPT_BROKER_PID,
	OPT_BROKER_STATS,
	OPT_PAYLOAD,
	OPT_SENSOR_TOPIC,
	OPT_ACTION_TOPIC,
	OPT_DRAIN,
	OPT_TIMEOUT,
	OPT_SETTLE,
	OPT_FIRST_SINCE,
	OPT_LABEL,
	OPT_IOCOUNT,
};

static const struct option longopts[] = {
	{"first", required_argument, NULL, OPT_FIRST},
	{"warmup", required_argument, NULL, OPT_WARMUP},
	{"pid", required_argument, NULL, OPT_PID},
	{"broker-pid", required_argument, NULL, OPT_BROKER_PID},
	{"broker-stats", no_argument, NULL, OPT_BROKER_STATS},
	{"payload", required_argument, NULL, OPT_PAYLOAD},
	{"sensor-topic", required_argument, NULL, OPT_SENSOR_TOPIC},
	{"action-topic", required_argument, NULL, OPT_ACTION_TOPIC},
	{"drain-ms", required_argument, NULL, OPT_DRAIN},
	{"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
	{"settle-ms", required_argument, NULL, OPT_SETTLE},
	{"first-since", required_argument, NULL, OPT_FIRST_SINCE},
	{"label", required_argument, NULL, OPT_LABEL},
	{"iocount", required_argument, NULL, OPT_IOCOUNT},
	{NULL, 0, NULL, 0},
};

static bool topic_format_ok(const char *fmt)
{
	const char *p = strstr(fmt, "%d");
	return p && !strchr(p + 2, '%') && strchr(fmt, '%') == p && strlen(fmt) < 200;
}

static bool parse_pid(const char *text, pid_t *out)
{
	long v;
	if (!bench_parse_long(text, 1, 4194304, &v))
		return false;
	*out = (pid_t)v;
	return true;
}

static bool parse_label(struct opts *o, const char *text)
{
	const char *eq = strchr(text, '=');
	if (!eq || eq == text || o->n_labels == LABELS_MAX || strlen(text) > 200)
		return false;
	for (const char *p = text; p < eq; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	o->labels[o->n_labels++] = text;
	return true;
}

static bool parse_one(struct opts *o, int opt, const char *arg)
{
	long v;
	switch (opt) {
	case 'p':
		if (!bench_parse_long(arg, 1, 65535, &v))
			return false;
		o->port = (int)v;
		return true;
	case 'n':
		return bench_parse_long(arg, 1, SENSORS_MAX, &o->sensors);
	case 'r':
		return bench_parse_double(arg, 0, 1e6, &o->rate);
	case 't':
		return bench_parse_double(arg, 0, 3600, &o->seconds);
	case 'c':
		return bench_parse_long(arg, 1, 100000000, &o->count);
	case 'w':
		return bench_parse_long(arg, 1, RING_SIZE / 4, &o->window);
	case 'q':
		return bench_parse_long(arg, 0, 1, &o->qos);
	case OPT_FIRST:
		return bench_parse_long(arg, 0, 1000000, &o->first);
	case OPT_WARMUP:
		return bench_parse_double(arg, 0, 600, &o->warmup_s);
	case OPT_PID:
		return parse_pid(arg, &o->pid);
	case OPT_BROKER_PID:
		return parse_pid(arg, &o->broker_pid);
	case OPT_BROKER_STATS:
		o->broker_stats = true;
		return true;
	case OPT_PAYLOAD:
		o->payload = strcmp(arg, "light") == 0 ? PAYLOAD_LIGHT : PAYLOAD_MOTION;
		return strcmp(arg, "light") == 0 || strcmp(arg, "motion") == 0;
	case OPT_SENSOR_TOPIC:
		o->sensor_topic = arg;
		return topic_format_ok(arg);
	case OPT_ACTION_TOPIC:
		o->action_topic = arg;
		return topic_format_ok(arg);
	case OPT_DRAIN:
		return bench_parse_long(arg, 0, 600000, &o->drain_ms);
	case OPT_TIMEOUT:
		return bench_parse_long(arg, 1, 600000, &o->timeout_ms);
	case OPT_SETTLE:
		return bench_parse_long(arg, 0, 600000, &o->settle_ms);
	case OPT_FIRST_SINCE:
		if (!bench_parse_long(arg, 1, LONG_MAX, &v))
			return false;
		o->first_since_ns = v;
		return true;
	case OPT_LABEL:
		return parse_label(o, arg);
	case OPT_IOCOUNT:
		o->iocount = arg;
		return true;
	default:
		return false;
	}
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	*o = (struct opts){.sensors = 100, .rate = 1000, .seconds = 5, .warmup_s = 1,
			   .window = 256, .drain_ms = 3000, .timeout_ms = 3000,
			   .sensor_topic = "bench/sensor/%d/state",
			   .action_topic = "bench/light/%d/set"};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "p:n:r:t:c:w:q:", longopts, NULL)) != -1) {
		if (!parse_one(o, opt, optarg)) {
			fprintf(stderr, "hearth-bench load: bad option or value near '%s'\n",
				argv[optind - 1]);
			usage();
			return -1;
		}
	}
	if (!o->port || optind != argc) {
		usage();
		return -1;
	}
	return 0;
}

int bench_load_main(int argc, char **argv)
{
	struct load *l = calloc(1, sizeof(*l));
	if (!l)
		return 1;
	int rc = 2;
	if (parse_opts(&l->o, argc, argv) == 0)
		rc = run(l);
	bench_client_free(l->pub);
	bench_client_free(l->sub);
	free(l->ring);
	free(l->fifos);
	free(l->per_sensor);
	free(l->lat);
	free(l);
	return rc;
}
