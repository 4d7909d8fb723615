/*
 * Accelerated soak test (make soak): one hearthd under AddressSanitizer,
 * LeakSanitizer and UBSan against a real mosquitto, for SOAK_SECONDS
 * (default 1200). Meanwhile:
 *
 *   - 120 virtual devices report every 100 ms: 1,200 state reports a second;
 *   - the broker is restarted every minute, by SIGKILL and by SIGTERM in
 *     turn, and the hub must be back online (hearth/bridge/state) within 5 s;
 *   - a cycle about every second adds a scene and a rule over bridge
 *     requests, activates the scene, fires the rule, sets virtual lights,
 *     brings a new Tasmota device in by its retained discovery messages
 *     (a fresh MAC each time), drives it, removes it with device/remove,
 *     clears its retained messages, and removes the rule and scene of
 *     LIVE_WINDOW cycles ago (SOAK_TASMOTA_MACS=N reuses N MACs instead,
 *     to tell what each new device costs from what each cycle costs);
 *   - every 10 s hearthd's VmRSS and open fds are sampled and printed.
 *
 * At the end the least-squares slopes of RSS (KiB/min) and fds (per min)
 * over the second half of the run are printed, hearthd is stopped with
 * SIGTERM, and LeakSanitizer's verdict is its exit status. Exit 0 only when
 * hearthd never died, every reconnect and request succeeded, LSan and ASan
 * found nothing, and neither slope passes its limit (below).
 *
 * Binaries come from $B (make soak: build-asan). Every wait is bounded.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SOAK_SECONDS_DEFAULT 1200
#define SAMPLE_EVERY_MS 10000
#define RESTART_EVERY_MS 60000
/* restarts fall 5 s after a sample, so no sample sees a reconnect half done */
#define RESTART_PHASE_MS 5000
#define RECONNECT_LIMIT_MS 5000
#define REQUEST_TIMEOUT_MS 5000
#define JOIN_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 60000 /* LSan walks the heap at exit: give it time */
#define CYCLE_PAUSE_MS 400
#define LIVE_WINDOW 4 /* rules and scenes alive at once */
#define SAMPLES_MAX 4096 /* 11 hours of samples */
#define SOAK_SECONDS_MAX (SAMPLES_MAX * SAMPLE_EVERY_MS / 1000 - 60)
#define RESTARTS_MAX 1024
/*
 * Limits on the second half's slopes. A healthy hub measured 20 KiB/min
 * in a release build and 80-105 KiB/min under ASan over ten minutes: the
 * sanitizer's own bookkeeping (allocation stacks, size-class high-water
 * marks) creeps. A leak of 4 bytes per state report is 280 KiB/min, of
 * 4 KiB per cycle (some 65 cycles a minute) 260 KiB/min, and keeping one
 * Tasmota device's 13 KiB per cycle measured 1,140 KiB/min. 256 KiB/min
 * sits between the sanitized noise floor and those. An fd lost per broker
 * restart is 1/min; one extra fd at a single sample moves the slope by
 * about 0.01/min.
 */
#define RSS_SLOPE_LIMIT_KIB_MIN 256.0
#define FD_SLOPE_LIMIT_MIN 0.2

#define PLUGINS "virtual, mqttdev"
#define PLUGIN_CONF                                                                        \
	"[plugin.virtual]\n"                                                               \
	"devices = light:10, plug:30, motion:30, climate:30, contact:30\n"                 \
	"interval_ms = 100\n"                                                              \
	"[plugin.mqttdev]\n"                                                               \
	"tasmota = true\n"
#define REPORTS_PER_S 1200 /* 120 ticking devices (lights do not tick) x 10 */
/*
 * The quarantine holds freed memory back to catch use after free; at its
 * default 256 MiB it fills for minutes and its growth hides the hub's own.
 * 16 MiB still catches a use soon after the free and fills in seconds.
 * Free pages stay mapped rather than going back to the kernel every 5 s:
 * the resident size then follows the heap's high-water mark instead of a
 * saw tooth (measured: +-100 KiB between samples instead of +-700).
 */
#define ASAN_DEFAULTS                                                                      \
	"detect_leaks=1:quarantine_size_mb=16:allocator_release_to_os_interval_ms=-1:"     \
	"print_summary=1"
#define UBSAN_DEFAULTS "print_stacktrace=1"

struct sample {
	double t_min;
	double rss_kib;
	double fds;
};

struct soak {
	struct broker broker;
	struct hearthd hub;
	struct client *c;
	long long t0_ms;
	int seconds;
	unsigned mac_pool; /* SOAK_TASMOTA_MACS: 0, a fresh MAC every cycle */
	unsigned cycle;
	unsigned step;
	unsigned rules_added, rules_removed, scenes_added, scenes_removed;
	unsigned devices_added, devices_removed, scene_activations, sets_sent;
	unsigned failures;	  /* requests, joins */
	unsigned restarts;	  /* successful */
	unsigned restart_failures;
	long long reconnect_ms[RESTARTS_MAX];
	bool died;
	bool broker_lost;
	long long next_sample_ms, next_restart_ms;
	double first_updates, last_updates;
	long long first_updates_ms, last_updates_ms;
	double prev_updates;
	long long prev_updates_ms;
	struct sample samples[SAMPLES_MAX];
	size_t n_samples;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double elapsed_s(const struct soak *s)
{
	return (double)(now_ms() - s->t0_ms) / 1000.0;
}

__attribute__((format(printf, 2, 3))) static void failure(struct soak *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("soak: t=%6.1fs FAIL: ", elapsed_s(s));
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	s->failures++;
}

/* ---- the daemon from outside: /proc -------------------------------------------------------- */

static long proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static int proc_fd_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* True (and the exit recorded) when hearthd has ended. */
static bool hub_died(struct soak *s)
{
	int status;
	if (s->died || s->hub.pid <= 0)
		return s->died;
	if (waitpid(s->hub.pid, &status, WNOHANG) != s->hub.pid)
		return false;
	s->hub.last_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	s->hub.pid = 0;
	s->died = true;
	printf("soak: t=%6.1fs FAIL: hearthd ended on its own, status %d\n", elapsed_s(s),
	       s->hub.last_status);
	return true;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* A bridge request; a failure is counted. The answer (status ok) or NULL. */
static cJSON *request(struct soak *s, const char *path, const char *body)
{
	client_clear(s->c);
	cJSON *r = client_request(s->c, path, body, REQUEST_TIMEOUT_MS);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
	if (cJSON_IsString(st) && strcmp(st->valuestring, "ok") == 0)
		return r;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(r, "error");
	failure(s, "%s {%.120s}: %s", path, body,
		!r ? "no answer within 5 s" : cJSON_IsString(err) ? err->valuestring : "not ok");
	cJSON_Delete(r);
	return NULL;
}

static bool request_ok(struct soak *s, const char *path, const char *body)
{
	cJSON *r = request(s, path, body);
	cJSON_Delete(r);
	return r != NULL;
}

static double number_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* ---- the broker ------------------------------------------------------------------------------ */

/* A clean stop that keeps the broker's dir (broker_stop removes it). */
static void broker_term(struct broker *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
			b->pid = 0;
			return;
		}
		usleep(10 * 1000);
	}
	broker_kill(b);
}

static int connect_client(struct soak *s)
{
	client_free(s->c);
	s->c = client_new(s->broker.port);
	if (!s->c || client_subscribe(s->c, "hearth/bridge/event"))
		return -1;
	return 0;
}

/* Restart the broker and time the hub's return: from the broker listening
 * again to hearth/bridge/state saying online (the broker keeps nothing
 * across a restart, so that is the hub's own fresh message). */
static void restart_broker(struct soak *s)
{
	bool hard = (s->restarts + s->restart_failures) % 2 == 0;
	client_free(s->c);
	s->c = NULL;
	if (hard)
		broker_kill(&s->broker);
	else
		broker_term(&s->broker);
	if (broker_restart(&s->broker)) {
		printf("soak: t=%6.1fs FAIL: the broker did not start again\n", elapsed_s(s));
		s->restart_failures++;
		s->broker_lost = true;
		return;
	}
	long long up = now_ms();
	struct client *w = client_new(s->broker.port);
	char *online = NULL;
	if (w && client_subscribe(w, "hearth/bridge/state") == 0)
		online = client_wait(w, "hearth/bridge/state", "online",
				     RECONNECT_LIMIT_MS - (int)(now_ms() - up));
	long long took = now_ms() - up;
	client_free(w);
	if (!online) {
		printf("soak: t=%6.1fs FAIL: hub not online %d ms after a %s broker restart\n",
		       elapsed_s(s), RECONNECT_LIMIT_MS, hard ? "SIGKILL" : "SIGTERM");
		s->restart_failures++;
	} else {
		if (s->restarts < RESTARTS_MAX)
			s->reconnect_ms[s->restarts] = took;
		s->restarts++;
		printf("soak: t=%6.1fs broker restart %u (%s): hub online after %lld ms\n",
		       elapsed_s(s), s->restarts, hard ? "SIGKILL" : "SIGTERM", took);
	}
	free(online);
	if (connect_client(s)) {
		printf("soak: t=%6.1fs FAIL: no client connection after the restart\n",
		       elapsed_s(s));
		s->broker_lost = true;
	}
}

/* ---- samples ------------------------------------------------------------------------------- */

static void take_sample(struct soak *s)
{
	long rss = proc_rss_kib(s->hub.pid);
	int fds = proc_fd_count(s->hub.pid);
	cJSON *h = request(s, "health_check", "");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(h, "data");
	double updates = number_at(data, "state_updates", NULL);
	long long t = now_ms();
	double rate = 0;
	if (updates >= 0) {
		if (s->first_updates_ms == 0) {
			s->first_updates = updates;
			s->first_updates_ms = t;
		}
		if (s->prev_updates_ms && t > s->prev_updates_ms)
			rate = (updates - s->prev_updates) * 1000.0 / (double)(t - s->prev_updates_ms);
		s->prev_updates = s->last_updates = updates;
		s->prev_updates_ms = s->last_updates_ms = t;
	}
	printf("soak: t=%6.1fs rss=%ld KiB fds=%d updates=%.0f (%.0f/s) mqtt_connects=%.0f "
	       "store_pending=%.0f commands_pending=%.0f devices=%.0f | rules +%u -%u scenes +%u "
	       "-%u devices +%u -%u restarts %u\n",
	       elapsed_s(s), rss, fds, updates, rate, number_at(data, "mqtt", "connects"),
	       number_at(data, "store", "pending"), number_at(data, "commands_pending", NULL),
	       number_at(data, "devices", NULL), s->rules_added, s->rules_removed, s->scenes_added,
	       s->scenes_removed, s->devices_added, s->devices_removed, s->restarts);
	fflush(stdout);
	cJSON_Delete(h);
	if (rss < 0 || fds < 0 || s->n_samples >= SAMPLES_MAX)
		return;
	s->samples[s->n_samples++] = (struct sample){
		.t_min = (double)(t - s->t0_ms) / 60000.0, .rss_kib = (double)rss, .fds = fds};
}

/* Least-squares slope of y over x (per minute), samples [from, n). */
static double slope(const struct soak *s, size_t from, bool fds)
{
	size_t n = s->n_samples - from;
	double sx = 0, sy = 0, sxx = 0, sxy = 0;
	for (size_t i = from; i < s->n_samples; i++) {
		double x = s->samples[i].t_min, y = fds ? s->samples[i].fds : s->samples[i].rss_kib;
		sx += x;
		sy += y;
		sxx += x * x;
		sxy += x * y;
	}
	double den = (double)n * sxx - sx * sx;
	return den > 0 ? ((double)n * sxy - sx * sy) / den : 0;
}

/* ---- one cycle of churn ------------------------------------------------------------------ */

static int light(unsigned k)
{
	return (int)(k % 10) + 1;
}

static int sensor(unsigned k)
{
	return (int)(k % 30) + 1;
}

static void scene_add(struct soak *s, unsigned k)
{
	char body[512];
	snprintf(body, sizeof(body),
		 "\"id\":\"soak-s%u\",\"name\":\"Soak %u\",\"transition\":1,\"targets\":{"
		 "\"virtual/light-%d\":{\"state\":\"ON\",\"brightness\":%u},"
		 "\"virtual/plug-%d\":{\"state\":\"OFF\"}}",
		 k, k, light(k), 10 + k % 200, sensor(k));
	s->scenes_added += request_ok(s, "scene/add", body);
}

/* Three shapes in turn, so triggers, conditions and actions of most kinds
 * come and go: state, numeric with for, mqtt and cron triggers; time and
 * trigger conditions; set, delay, wait, publish, scene and repeat. */
static void rule_add(struct soak *s, unsigned k)
{
	char body[1024];
	if (k % 3 == 0)
		snprintf(body, sizeof(body),
			 "\"id\":\"soak-r%u\",\"mode\":\"restart\",\"triggers\":["
			 "{\"type\":\"state\",\"device\":\"virtual/motion-%d\",\"attribute\":"
			 "\"occupancy\",\"to\":true},{\"type\":\"mqtt\",\"topic\":\"soak/ping/%u\"}],"
			 "\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-%d\",\"state\":"
			 "{\"state\":\"ON\",\"brightness\":%u}},{\"type\":\"delay\",\"duration\":\"2s\"},"
			 "{\"type\":\"set\",\"device\":\"virtual/light-%d\",\"state\":{\"state\":"
			 "\"OFF\"}}]",
			 k, sensor(k), k, light(k), 20 + k % 200, light(k));
	else if (k % 3 == 1)
		snprintf(body, sizeof(body),
			 "\"id\":\"soak-r%u\",\"mode\":\"queued\",\"triggers\":["
			 "{\"type\":\"numeric\",\"device\":\"virtual/climate-%d\",\"attribute\":"
			 "\"temperature\",\"above\":21,\"for\":\"1s\"},"
			 "{\"type\":\"mqtt\",\"topic\":\"soak/ping/%u\"}],"
			 "\"conditions\":[{\"type\":\"or\",\"conditions\":[{\"type\":\"time\","
			 "\"after\":\"00:00\",\"before\":\"23:59:59\"},{\"type\":\"trigger\",\"id\":"
			 "\"1\"}]}],"
			 "\"actions\":[{\"type\":\"publish\",\"topic\":\"soak/out\",\"payload\":"
			 "{\"rule\":%u}},{\"type\":\"wait\",\"trigger\":{\"type\":\"state\",\"device\":"
			 "\"virtual/contact-%d\",\"attribute\":\"contact\",\"to\":false},\"timeout\":"
			 "\"3s\"}]",
			 k, sensor(k), k, k, sensor(k));
	else
		snprintf(body, sizeof(body),
			 "\"id\":\"soak-r%u\",\"mode\":\"parallel\",\"max\":3,\"triggers\":["
			 "{\"type\":\"cron\",\"cron\":\"* * * * *\"},"
			 "{\"type\":\"mqtt\",\"topic\":\"soak/ping/%u\"}],"
			 "\"actions\":[{\"type\":\"scene\",\"scene\":\"soak-s%u\"},{\"type\":\"repeat\","
			 "\"count\":2,\"actions\":[{\"type\":\"set\",\"device\":\"virtual/plug-%d\","
			 "\"state\":{\"state\":\"TOGGLE\"}},{\"type\":\"delay\",\"duration\":"
			 "\"200ms\"}]}]",
			 k, k, k, sensor(k));
	if (!request_ok(s, "rule/add", body))
		return;
	s->rules_added++;
	char topic[64];
	snprintf(topic, sizeof(topic), "soak/ping/%u", k);
	client_publish(s->c, topic, "{\"soak\":true}", false);
}

static void scene_activate(struct soak *s, unsigned k)
{
	char body[64];
	snprintf(body, sizeof(body), "\"id\":\"soak-s%u\"", k);
	s->scene_activations += request_ok(s, "scene/activate", body);
}

static void set_lights(struct soak *s, unsigned k)
{
	char topic[64], payload[128];
	snprintf(topic, sizeof(topic), "hearth/virtual/light-%d/set", light(k + 3));
	snprintf(payload, sizeof(payload),
		 "{\"state\":\"ON\",\"brightness\":%u,\"color_temp\":%u,\"transition\":0.5}",
		 1 + k % 254, 153 + k % 300);
	s->sets_sent += client_publish(s->c, topic, payload, false) == 0;
	snprintf(topic, sizeof(topic), "hearth/virtual/light-%d/set/state", light(k + 7));
	s->sets_sent += client_publish(s->c, topic, "TOGGLE", false) == 0;
}

/* The Tasmota device of cycle k: MAC, topic and hearth id. */
struct tas {
	char mac[13];
	char topic[32];
	char id[64];
};

static struct tas tas_of(const struct soak *s, unsigned cycle)
{
	struct tas t;
	unsigned k = s->mac_pool ? cycle % s->mac_pool : cycle;
	snprintf(t.mac, sizeof(t.mac), "A4CF12%06X", k & 0xffffffu);
	snprintf(t.topic, sizeof(t.topic), "soak_%06X", k & 0xffffffu);
	snprintf(t.id, sizeof(t.id), "mqttdev:tasmota:a4cf12%06x", k & 0xffffffu);
	return t;
}

static void tas_publish(struct soak *s, const struct tas *t, const char *what, const char *payload,
			bool retain)
{
	char topic[128];
	if (strncmp(what, "discovery/", 10) == 0)
		snprintf(topic, sizeof(topic), "tasmota/discovery/%s/%s", t->mac, what + 10);
	else
		snprintf(topic, sizeof(topic), what, t->topic);
	client_publish(s->c, topic, payload, retain);
}

/* Discovery as tests/fixtures/mqttdev/tasmota_plug_*.json, with this
 * cycle's MAC and topic; then a join, its telemetry and a command. */
static void device_add(struct soak *s, unsigned k)
{
	struct tas t = tas_of(s, k);
	char config[1400], wanted[128];
	snprintf(config, sizeof(config),
		 "{\"ip\":\"192.168.1.60\",\"dn\":\"Soak %u\",\"fn\":[\"Soak %u\",null,null,null,"
		 "null,null,null,null],\"hn\":\"%s-1237\",\"mac\":\"%s\",\"md\":\"Sonoff S31\","
		 "\"ty\":0,\"if\":0,\"ofln\":\"Offline\",\"onln\":\"Online\",\"state\":[\"OFF\","
		 "\"ON\",\"TOGGLE\",\"HOLD\"],\"sw\":\"13.2.0\",\"t\":\"%s\",\"ft\":"
		 "\"%%prefix%%/%%topic%%/\",\"tp\":[\"cmnd\",\"stat\",\"tele\"],\"rl\":[1,0,0,0,0,0,"
		 "0,0],\"swc\":[-1,-1,-1,-1,-1,-1,-1,-1],\"swn\":[null,null,null,null,null,null,"
		 "null,null],\"btn\":[0,0,0,0,0,0,0,0],\"so\":{\"4\":0,\"11\":0,\"13\":0,\"17\":0,"
		 "\"20\":0,\"30\":0,\"68\":0,\"73\":0,\"82\":0,\"114\":0,\"117\":0},\"lk\":0,"
		 "\"lt_st\":0,\"bat\":0,\"dslp\":0,\"sho\":[],\"sht\":[],\"ver\":1}",
		 k, k, t.topic, t.mac, t.topic);
	static const char sensors[] =
		"{\"sn\":{\"Time\":\"2024-03-01T10:00:00\",\"ENERGY\":{\"TotalStartTime\":"
		"\"2023-06-01T12:00:00\",\"Total\":12.345,\"Yesterday\":0.512,\"Today\":0.123,"
		"\"Power\":45,\"ApparentPower\":50,\"ReactivePower\":22,\"Factor\":0.90,"
		"\"Voltage\":230,\"Current\":0.217}},\"ver\":1}";
	client_clear(s->c);
	tas_publish(s, &t, "discovery/config", config, true);
	tas_publish(s, &t, "discovery/sensors", sensors, true);
	snprintf(wanted, sizeof(wanted), "\"%s\"", t.id);
	char *ev = client_wait(s->c, "hearth/bridge/event", wanted, JOIN_TIMEOUT_MS);
	if (!ev || !strstr(ev, "device_joined")) {
		failure(s, "Tasmota device %s did not join within %d ms", t.id, JOIN_TIMEOUT_MS);
		free(ev);
		return;
	}
	free(ev);
	s->devices_added++;
	tas_publish(s, &t, "tele/%s/LWT", "Online", true);
	tas_publish(s, &t, "tele/%s/STATE",
		    "{\"Time\":\"2024-03-01T10:05:00\",\"UptimeSec\":3912,\"POWER\":\"ON\","
		    "\"Wifi\":{\"RSSI\":78,\"Signal\":-61}}",
		    false);
	tas_publish(s, &t, "tele/%s/SENSOR",
		    "{\"Time\":\"2024-03-01T10:05:00\",\"ENERGY\":{\"Total\":12.401,\"Power\":1870,"
		    "\"Voltage\":229,\"Current\":8.318}}",
		    false);
	char topic[128];
	snprintf(topic, sizeof(topic), "hearth/tasmota/%s/set", t.topic);
	s->sets_sent += client_publish(s->c, topic, "{\"state\":\"OFF\"}", false) == 0;
	/* every other device answers; the rest are removed with the command pending */
	if (k % 2 == 0)
		tas_publish(s, &t, "stat/%s/RESULT", "{\"POWER\":\"OFF\"}", false);
}

/* device/remove, then the retained messages go (the config first: the
 * plugin forgets the device and its subscriptions when it is cleared). */
static void device_remove(struct soak *s, unsigned k)
{
	struct tas t = tas_of(s, k);
	char body[96];
	snprintf(body, sizeof(body), "\"id\":\"%s\"", t.id);
	s->devices_removed += request_ok(s, "device/remove", body);
	tas_publish(s, &t, "discovery/config", "", true);
	tas_publish(s, &t, "discovery/sensors", "", true);
	tas_publish(s, &t, "tele/%s/LWT", "", true);
}

static void remove_old(struct soak *s, unsigned k)
{
	char body[64];
	snprintf(body, sizeof(body), "\"id\":\"soak-r%u\"", k);
	s->rules_removed += request_ok(s, "rule/remove", body);
	snprintf(body, sizeof(body), "\"id\":\"soak-s%u\"", k);
	s->scenes_removed += request_ok(s, "scene/remove", body);
}

enum step {
	STEP_SCENE_ADD,
	STEP_RULE_ADD,
	STEP_SCENE_ACTIVATE,
	STEP_LIGHTS,
	STEP_DEVICE_ADD,
	STEP_DEVICE_REMOVE,
	STEP_REMOVE_OLD,
	STEP_PAUSE,
	STEP_COUNT
};

/* One step of the current cycle; true when the cycle is complete. */
static bool run_step(struct soak *s)
{
	unsigned k = s->cycle;
	switch ((enum step)s->step) {
	case STEP_SCENE_ADD:
		scene_add(s, k);
		break;
	case STEP_RULE_ADD:
		rule_add(s, k);
		break;
	case STEP_SCENE_ACTIVATE:
		scene_activate(s, k);
		break;
	case STEP_LIGHTS:
		set_lights(s, k);
		break;
	case STEP_DEVICE_ADD:
		device_add(s, k);
		break;
	case STEP_DEVICE_REMOVE:
		device_remove(s, k);
		break;
	case STEP_REMOVE_OLD:
		if (k >= LIVE_WINDOW)
			remove_old(s, k - LIVE_WINDOW);
		break;
	case STEP_PAUSE:
	case STEP_COUNT:
		client_pump(s->c, CYCLE_PAUSE_MS);
		break;
	}
	if (++s->step < STEP_COUNT)
		return false;
	s->step = 0;
	s->cycle++;
	return true;
}

/* ---- the run -------------------------------------------------------------------------------- */

static void run(struct soak *s)
{
	long long end = s->t0_ms + (long long)s->seconds * 1000;
	s->next_sample_ms = s->t0_ms;
	s->next_restart_ms = s->t0_ms + RESTART_EVERY_MS + RESTART_PHASE_MS;
	/* every pass does one bounded step; the loop ends by time, whatever happens */
	for (long pass = 0; pass < 10L * 1000 * 1000 && !interrupted; pass++) {
		long long now = now_ms();
		if (hub_died(s) || s->broker_lost)
			return;
		if (now >= s->next_sample_ms) {
			take_sample(s);
			s->next_sample_ms += SAMPLE_EVERY_MS;
			continue;
		}
		if (now >= end)
			return;
		if (s->step == 0 && now >= s->next_restart_ms && end - now > RECONNECT_LIMIT_MS) {
			restart_broker(s);
			s->next_restart_ms += RESTART_EVERY_MS;
			continue;
		}
		run_step(s);
	}
}

/* The rules and scenes still there go, so the hub ends as it began. */
static void drain(struct soak *s)
{
	/* live: the last LIVE_WINDOW cycles', less the oldest once this cycle removed it */
	unsigned oldest = s->cycle - LIVE_WINDOW + (s->step > STEP_REMOVE_OLD);
	unsigned from = s->cycle >= LIVE_WINDOW ? oldest : 0;
	/* a cycle cut short left its device and maybe its rule */
	if (s->step > STEP_DEVICE_ADD && s->step <= STEP_DEVICE_REMOVE)
		device_remove(s, s->cycle);
	for (unsigned k = from; k <= s->cycle; k++) {
		bool rule = k < s->cycle || s->step > STEP_RULE_ADD;
		bool scene = k < s->cycle || s->step > STEP_SCENE_ADD;
		char body[64];
		snprintf(body, sizeof(body), "\"id\":\"soak-r%u\"", k);
		if (rule)
			s->rules_removed += request_ok(s, "rule/remove", body);
		snprintf(body, sizeof(body), "\"id\":\"soak-s%u\"", k);
		if (scene)
			s->scenes_removed += request_ok(s, "scene/remove", body);
	}
}

/* Print every sanitizer report in the daemon's log; returns how many. */
static int sanitizer_reports(const char *log)
{
	FILE *f = fopen(log, "re");
	char line[4096];
	int n = 0, show = 0;
	while (f && fgets(line, sizeof(line), f)) {
		bool start = strstr(line, "ERROR: LeakSanitizer") ||
			     strstr(line, "ERROR: AddressSanitizer") || strstr(line, "runtime error:");
		if (start) {
			n++;
			show = 120;
		}
		if (show > 0) {
			printf("  | %s", line);
			show--;
		}
	}
	if (f)
		fclose(f);
	return n;
}

static void reconnect_figures(const struct soak *s, long long *worst, double *mean, long long *median)
{
	size_t n = s->restarts < RESTARTS_MAX ? s->restarts : RESTARTS_MAX;
	long long sorted[RESTARTS_MAX], sum = 0;
	*worst = 0;
	for (size_t i = 0; i < n; i++) {
		long long v = s->reconnect_ms[i];
		size_t j = i;
		for (; j > 0 && sorted[j - 1] > v; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = v;
		sum += v;
		*worst = v > *worst ? v : *worst;
	}
	*mean = n ? (double)sum / (double)n : 0;
	*median = n ? sorted[n / 2] : 0;
}

/* The figures and the verdict on slopes; true when they pass. */
static bool report(const struct soak *s, double duration_s)
{
	long long worst, median;
	double mean;
	reconnect_figures(s, &worst, &mean, &median);
	double rate = s->last_updates_ms > s->first_updates_ms
			      ? (s->last_updates - s->first_updates) * 1000.0 /
					(double)(s->last_updates_ms - s->first_updates_ms)
			      : 0;
	printf("soak: ---- summary ----\n");
	printf("soak: duration %.0f s, %u cycles, %u state reports (%.0f/s, %d/s configured)\n",
	       duration_s, s->cycle, (unsigned)(s->last_updates - s->first_updates), rate,
	       REPORTS_PER_S);
	printf("soak: broker restarts %u ok, %u failed; hub online again after %lld ms worst, "
	       "%lld ms median, %.0f ms mean\n",
	       s->restarts, s->restart_failures, worst, median, mean);
	printf("soak: rules +%u -%u, scenes +%u -%u (activated %u), Tasmota devices +%u -%u, "
	       "set commands %u, failed requests or joins %u\n",
	       s->rules_added, s->rules_removed, s->scenes_added, s->scenes_removed,
	       s->scene_activations, s->devices_added, s->devices_removed, s->sets_sent,
	       s->failures);
	size_t from = 0;
	while (from < s->n_samples && s->samples[from].t_min * 60.0 < duration_s / 2)
		from++;
	if (s->n_samples < 2 || s->n_samples - from < 3) {
		printf("soak: too few samples in the second half for a slope (%zu)\n",
		       s->n_samples - from);
		return s->n_samples >= 1;
	}
	const struct sample *first = &s->samples[0], *half = &s->samples[from],
			    *last = &s->samples[s->n_samples - 1];
	double rss_slope = slope(s, from, false), fd_slope = slope(s, from, true);
	printf("soak: RSS %.0f KiB at start, %.0f KiB at %.1f min, %.0f KiB at the end; slope over "
	       "the second half (%zu samples) %.1f KiB/min (limit %.0f)\n",
	       first->rss_kib, half->rss_kib, half->t_min, last->rss_kib, s->n_samples - from,
	       rss_slope, RSS_SLOPE_LIMIT_KIB_MIN);
	printf("soak: fds %.0f at start, %.0f at %.1f min, %.0f at the end; slope over the second "
	       "half %.3f/min (limit %.1f)\n",
	       first->fds, half->fds, half->t_min, last->fds, fd_slope, FD_SLOPE_LIMIT_MIN);
	bool ok = rss_slope <= RSS_SLOPE_LIMIT_KIB_MIN && fd_slope <= FD_SLOPE_LIMIT_MIN;
	if (!ok)
		printf("soak: FAIL: resident memory or open fds grow\n");
	return ok;
}

/* A whole number from the environment in [min, max]; def when unset, -1 when bad. */
static long env_number(const char *name, long def, long min, long max)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || n < min || n > max) {
		fprintf(stderr, "soak: %s='%s' is not a whole number in %ld..%ld\n", name, v, min,
			max);
		return -1;
	}
	return n;
}

static int start(struct soak *s)
{
	/* the daemon inherits these: leaks make its exit status 23 */
	setenv("ASAN_OPTIONS", ASAN_DEFAULTS, 0);
	setenv("UBSAN_OPTIONS", UBSAN_DEFAULTS, 0);
	if (broker_start(&s->broker)) {
		fprintf(stderr, "soak: mosquitto did not start\n");
		return -1;
	}
	if (hearthd_start_plugins(&s->hub, s->broker.port, PLUGINS, PLUGIN_CONF)) {
		fprintf(stderr, "soak: hearthd did not start (status %d)\n", s->hub.last_status);
		return -1;
	}
	if (connect_client(s)) {
		fprintf(stderr, "soak: no MQTT client connection\n");
		return -1;
	}
	printf("soak: %d s; hearthd pid %d (%s/hearthd) on mosquitto port %d; Tasmota MACs: %s; "
	       "ASAN_OPTIONS=%s\n",
	       s->seconds, (int)s->hub.pid, harness_build_dir(), s->broker.port,
	       s->mac_pool ? getenv("SOAK_TASMOTA_MACS") : "a fresh one every cycle",
	       getenv("ASAN_OPTIONS"));
	fflush(stdout);
	return 0;
}

int main(void)
{
	static struct soak soak;
	struct soak *s = &soak;
	setvbuf(stdout, NULL, _IOLBF, 0);
	long seconds = env_number("SOAK_SECONDS", SOAK_SECONDS_DEFAULT, 10, SOAK_SECONDS_MAX);
	long macs = env_number("SOAK_TASMOTA_MACS", 0, 0, 0xffffff);
	if (seconds < 0 || macs < 0)
		return 2;
	s->seconds = (int)seconds;
	s->mac_pool = (unsigned)macs;
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	signal(SIGPIPE, SIG_IGN);
	s->t0_ms = now_ms();
	bool ok = start(s) == 0;
	if (ok) {
		run(s);
		if (!s->died && !s->broker_lost) {
			drain(s);
			take_sample(s);
		}
	}
	double duration_s = elapsed_s(s);
	if (interrupted)
		printf("soak: FAIL: interrupted after %.0f s\n", duration_s);
	ok = ok && report(s, duration_s) && !interrupted;
	client_free(s->c);
	s->c = NULL;
	int status = s->hub.last_status;
	if (s->hub.pid > 0)
		status = hearthd_signal_wait(&s->hub, SIGTERM, STOP_TIMEOUT_MS);
	int reports = sanitizer_reports(s->hub.log);
	printf("soak: hearthd exit status %d %s; %d sanitizer report(s) in its log "
	       "(LeakSanitizer: %s)\n",
	       status, s->died ? "when it died" : "after SIGTERM", reports,
	       status == 23 ? "leaks found" : status == 0 ? "no leaks" : "see the status");
	if (hearthd_cleanup(&s->hub) != 0 || reports > 0)
		ok = false;
	broker_stop(&s->broker);
	ok = ok && !s->died && s->restart_failures == 0 && s->failures == 0 && !s->broker_lost;
	printf("soak: %s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
