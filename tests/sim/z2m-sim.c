/*
 * z2m-sim: a small zigbee2mqtt stand-in on a broker at 127.0.0.1.
 *
 *   z2m-sim -p PORT -d devices.json [-b base_topic] [-g groups.json]
 *
 * Publishes retained <base>/bridge/state (online; last will offline),
 * bridge/info, bridge/devices (the file) and bridge/groups. Answers
 * <base>/<name>/set by publishing the new state as a device would (a
 * brightness with a transition is reported step by step), /get with the
 * state, and the bridge requests permit_join, device/rename and
 * device/ota_update/{check,update}. Every /set payload is republished as is
 * on z2m-sim/received/<name>, every /get on z2m-sim/received_get/<name>.
 *
 * Tests drive it with JSON on z2m-sim/control; each command is answered on
 * z2m-sim/control/done with {"cmd":...,"ok":true|false}:
 *   {"cmd":"join","device":{...bridge/devices entry...}}
 *   {"cmd":"leave","ieee":"0x..."}
 *   {"cmd":"rename","from":"old","to":"new"}
 *   {"cmd":"bridge","state":"online"|"offline"}
 *   {"cmd":"availability","name":"...","state":"online"|"offline"}
 *   {"cmd":"state","name":"...","payload":{...}}   merge and publish
 *   {"cmd":"groups","groups":[...]}
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>

#define FILE_MAX (16 * 1024 * 1024)
#define TOPIC_MAX 1024
#define FADES_MAX 32
#define FADE_STEP_MS 100
#define FADE_MAX_MS 3000
#define CONTROL "z2m-sim/control"

struct fade {
	bool active;
	char name[256];
	double from, to;
	long long start_ms, duration_ms, last_ms;
};

struct sim {
	struct mosquitto *m;
	const char *base;
	cJSON *devices; /* array, as bridge/devices */
	cJSON *groups;	/* array, as bridge/groups */
	cJSON *states;	/* object: friendly name -> state object */
	bool permit_join;
	struct fade fades[FADES_MAX];
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- publishing ---------------------------------------------------------------- */

static void pub_text(struct sim *s, const char *topic, const char *text, bool retain)
{
	mosquitto_publish(s->m, NULL, topic, (int)strlen(text), text, 1, retain);
}

static void pub_json(struct sim *s, const char *suffix, const cJSON *j, bool retain)
{
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "%s/%s", s->base, suffix);
	char *text = cJSON_PrintUnformatted(j);
	if (text)
		pub_text(s, topic, text, retain);
	cJSON_free(text);
}

static void pub_bridge_state(struct sim *s, const char *state)
{
	char topic[TOPIC_MAX], payload[64];
	snprintf(topic, sizeof(topic), "%s/bridge/state", s->base);
	snprintf(payload, sizeof(payload), "{\"state\":\"%s\"}", state);
	pub_text(s, topic, payload, true);
}

static void pub_info(struct sim *s)
{
	cJSON *info = cJSON_CreateObject();
	cJSON_AddStringToObject(info, "version", "2.1.3-sim");
	cJSON_AddBoolToObject(info, "permit_join", s->permit_join);
	pub_json(s, "bridge/info", info, true);
	cJSON_Delete(info);
}

static void pub_event(struct sim *s, const char *type, const char *ieee, const char *name,
		      const char *status)
{
	cJSON *ev = cJSON_CreateObject();
	cJSON *data = cJSON_AddObjectToObject(ev, "data");
	cJSON_AddStringToObject(ev, "type", type);
	cJSON_AddStringToObject(data, "ieee_address", ieee);
	if (name)
		cJSON_AddStringToObject(data, "friendly_name", name);
	if (status)
		cJSON_AddStringToObject(data, "status", status);
	pub_json(s, "bridge/event", ev, false);
	cJSON_Delete(ev);
}

static void pub_response(struct sim *s, const char *path, cJSON *data, const char *error,
			 const cJSON *request)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "status", error ? "error" : "ok");
	cJSON_AddItemToObject(r, "data", data ? data : cJSON_CreateObject());
	if (error)
		cJSON_AddStringToObject(r, "error", error);
	const cJSON *tr = cJSON_GetObjectItemCaseSensitive(request, "transaction");
	if (tr)
		cJSON_AddItemToObject(r, "transaction", cJSON_Duplicate(tr, 1));
	char suffix[TOPIC_MAX];
	snprintf(suffix, sizeof(suffix), "bridge/response/%s", path);
	pub_json(s, suffix, r, false);
	cJSON_Delete(r);
}

/* ---- devices and their state --------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

static cJSON *device_named(struct sim *s, const char *name)
{
	cJSON *d;
	cJSON_ArrayForEach(d, s->devices)
	{
		const char *f = str_of(d, "friendly_name");
		if (f && strcmp(f, name) == 0)
			return d;
	}
	return NULL;
}

static cJSON *group_named(struct sim *s, const char *name)
{
	cJSON *g;
	cJSON_ArrayForEach(g, s->groups)
	{
		const char *f = str_of(g, "friendly_name");
		if (f && strcmp(f, name) == 0)
			return g;
	}
	return NULL;
}

static cJSON *state_of(struct sim *s, const char *name)
{
	cJSON *st = cJSON_GetObjectItemCaseSensitive(s->states, name);
	if (!st)
		st = cJSON_AddObjectToObject(s->states, name);
	return st;
}

static void put(cJSON *obj, const char *key, cJSON *value)
{
	if (cJSON_GetObjectItemCaseSensitive(obj, key))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
	else
		cJSON_AddItemToObject(obj, key, value);
}

static void pub_state(struct sim *s, const char *name)
{
	cJSON *st = state_of(s, name);
	put(st, "linkquality", cJSON_CreateNumber(120));
	pub_json(s, name, st, false);
}

static void pub_devices(struct sim *s)
{
	pub_json(s, "bridge/devices", s->devices, true);
}

/* ---- /set ------------------------------------------------------------------------------ */

static void fade_start(struct sim *s, const char *name, double from, double to, double seconds)
{
	struct fade *f = NULL;
	for (int i = 0; i < FADES_MAX && !f; i++)
		if (!s->fades[i].active || strcmp(s->fades[i].name, name) == 0)
			f = &s->fades[i];
	if (!f)
		return;
	long long ms = (long long)(seconds * 1000);
	*f = (struct fade){.active = true, .from = from, .to = to, .start_ms = now_ms(),
			   .duration_ms = ms > FADE_MAX_MS ? FADE_MAX_MS : ms};
	f->last_ms = f->start_ms;
	snprintf(f->name, sizeof(f->name), "%s", name);
}

static void fades_run(struct sim *s)
{
	long long now = now_ms();
	for (int i = 0; i < FADES_MAX; i++) {
		struct fade *f = &s->fades[i];
		if (!f->active || now - f->last_ms < FADE_STEP_MS)
			continue;
		f->last_ms = now;
		double t = (double)(now - f->start_ms) / (double)f->duration_ms;
		if (t >= 1) {
			t = 1;
			f->active = false;
		}
		double b = f->from + (f->to - f->from) * t;
		put(state_of(s, f->name), "brightness", cJSON_CreateNumber((int)(b + 0.5)));
		pub_state(s, f->name);
	}
}

/* Apply one /set to a device's state, as a device would answer it. */
static void apply_set(struct sim *s, const char *name, const cJSON *set)
{
	cJSON *st = state_of(s, name);
	const cJSON *tr = cJSON_GetObjectItemCaseSensitive(set, "transition");
	const cJSON *item;
	cJSON_ArrayForEach(item, set)
	{
		const char *k = item->string;
		if (strcmp(k, "transition") == 0)
			continue;
		if (strcmp(k, "state") == 0 && cJSON_IsString(item) &&
		    strcasecmp(item->valuestring, "TOGGLE") == 0) {
			const char *cur = str_of(st, "state");
			put(st, k, cJSON_CreateString(cur && strcmp(cur, "ON") == 0 ? "OFF" : "ON"));
		} else if (strcmp(k, "brightness") == 0 && cJSON_IsNumber(tr) && tr->valuedouble > 0 &&
			   cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(st, "brightness"))) {
			double from = cJSON_GetObjectItemCaseSensitive(st, "brightness")->valuedouble;
			fade_start(s, name, from, item->valuedouble, tr->valuedouble);
		} else if (strcmp(k, "color") == 0 && cJSON_IsObject(item)) {
			cJSON *color = cJSON_GetObjectItemCaseSensitive(st, "color");
			if (!cJSON_IsObject(color)) {
				color = cJSON_CreateObject();
				put(st, "color", color);
			}
			const cJSON *c;
			cJSON_ArrayForEach(c, item) put(color, c->string, cJSON_Duplicate(c, 1));
			bool xy = cJSON_GetObjectItemCaseSensitive(item, "x") != NULL;
			put(st, "color_mode", cJSON_CreateString(xy ? "xy" : "hs"));
		} else if (strcmp(k, "ota") != 0) {
			put(st, k, cJSON_Duplicate(item, 1));
		}
	}
	pub_state(s, name);
}

static void on_set(struct sim *s, const char *name, const char *payload, int len)
{
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "z2m-sim/received/%s", name);
	mosquitto_publish(s->m, NULL, topic, len, payload, 1, false);
	cJSON *set = cJSON_ParseWithLength(payload, (size_t)len);
	cJSON *group = group_named(s, name);
	if (cJSON_IsObject(set) && group) {
		const cJSON *m;
		cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(group, "members"))
		{
			const char *ieee = str_of(m, "ieee_address");
			cJSON *d;
			cJSON_ArrayForEach(d, s->devices)
			{
				const char *f = str_of(d, "friendly_name");
				if (ieee && f && strcmp(str_of(d, "ieee_address"), ieee) == 0)
					apply_set(s, f, set);
			}
		}
		apply_set(s, name, set);
	} else if (cJSON_IsObject(set) && device_named(s, name)) {
		apply_set(s, name, set);
	}
	cJSON_Delete(set);
}

static void on_get(struct sim *s, const char *name, const char *payload, int len)
{
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "z2m-sim/received_get/%s", name);
	mosquitto_publish(s->m, NULL, topic, len, payload, 1, false);
	if (device_named(s, name) || group_named(s, name))
		pub_state(s, name);
}

/* ---- bridge requests ------------------------------------------------------------------- */

static void req_permit_join(struct sim *s, const cJSON *req)
{
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(req, "time");
	if (!cJSON_IsNumber(time) || time->valuedouble < 0 || time->valuedouble > 254) {
		pub_response(s, "permit_join", NULL, "Invalid payload: time must be 0..254", req);
		return;
	}
	s->permit_join = time->valuedouble > 0;
	cJSON *data = cJSON_CreateObject();
	cJSON_AddNumberToObject(data, "time", time->valuedouble);
	pub_response(s, "permit_join", data, NULL, req);
	pub_info(s);
}

static int rename_device(struct sim *s, const char *from, const char *to)
{
	cJSON *d = device_named(s, from);
	cJSON *g = d ? NULL : group_named(s, from);
	cJSON *target = d ? d : g;
	if (!target || !to || !to[0] || device_named(s, to) || group_named(s, to))
		return -EINVAL;
	cJSON_ReplaceItemInObjectCaseSensitive(target, "friendly_name", cJSON_CreateString(to));
	cJSON *st = cJSON_DetachItemFromObjectCaseSensitive(s->states, from);
	if (st)
		cJSON_AddItemToObject(s->states, to, st);
	if (d)
		pub_devices(s);
	else
		pub_json(s, "bridge/groups", s->groups, true);
	return 0;
}

static void req_rename(struct sim *s, const cJSON *req)
{
	const char *from = str_of(req, "from"), *to = str_of(req, "to");
	if (!from || rename_device(s, from, to)) {
		pub_response(s, "device/rename", NULL, "rename failed", req);
		return;
	}
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "from", from);
	cJSON_AddStringToObject(data, "to", to);
	pub_response(s, "device/rename", data, NULL, req);
}

static cJSON *device_by_id(struct sim *s, const char *id)
{
	cJSON *d;
	cJSON_ArrayForEach(d, s->devices)
	{
		const char *ieee = str_of(d, "ieee_address"), *f = str_of(d, "friendly_name");
		if ((ieee && strcasecmp(ieee, id) == 0) || (f && strcmp(f, id) == 0))
			return d;
	}
	return NULL;
}

static void req_ota(struct sim *s, const char *what, const cJSON *req)
{
	char path[64];
	snprintf(path, sizeof(path), "device/ota_update/%s", what);
	const char *id = str_of(req, "id");
	cJSON *d = id ? device_by_id(s, id) : NULL;
	if (!d) {
		pub_response(s, path, NULL, "Device not found", req);
		return;
	}
	const char *name = str_of(d, "friendly_name");
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "id", id);
	if (strcmp(what, "check") == 0) {
		cJSON_AddBoolToObject(data, "update_available", true);
	} else {
		/* an update reports its progress through the device's state */
		for (int p = 0; p <= 100; p += 50) {
			cJSON *u = cJSON_CreateObject();
			cJSON_AddStringToObject(u, "state", p < 100 ? "updating" : "idle");
			if (p < 100) {
				cJSON_AddNumberToObject(u, "progress", p);
				cJSON_AddNumberToObject(u, "remaining", 100 - p);
			}
			put(state_of(s, name), "update", u);
			pub_state(s, name);
		}
		cJSON_AddNumberToObject(data, "from", 1);
		cJSON_AddNumberToObject(data, "to", 2);
	}
	pub_response(s, path, data, NULL, req);
}

static void bridge_request(struct sim *s, const char *path, const char *payload, int len)
{
	cJSON *req = cJSON_ParseWithLength(payload, (size_t)len);
	if (!cJSON_IsObject(req)) {
		pub_response(s, path, NULL, "Invalid payload", NULL);
	} else if (strcmp(path, "permit_join") == 0) {
		req_permit_join(s, req);
	} else if (strcmp(path, "device/rename") == 0) {
		req_rename(s, req);
	} else if (strncmp(path, "device/ota_update/", 18) == 0) {
		req_ota(s, path + 18, req);
	}
	cJSON_Delete(req);
}

/* ---- control ----------------------------------------------------------------------------- */

static int ctl_join(struct sim *s, const cJSON *c)
{
	const cJSON *dev = cJSON_GetObjectItemCaseSensitive(c, "device");
	const char *ieee = str_of(dev, "ieee_address"), *name = str_of(dev, "friendly_name");
	if (!ieee || !name || device_by_id(s, ieee))
		return -EINVAL;
	pub_event(s, "device_joined", ieee, name, NULL);
	pub_event(s, "device_interview", ieee, name, "started");
	cJSON_AddItemToArray(s->devices, cJSON_Duplicate(dev, 1));
	pub_devices(s);
	pub_event(s, "device_interview", ieee, name, "successful");
	return 0;
}

static int ctl_leave(struct sim *s, const cJSON *c)
{
	const char *ieee = str_of(c, "ieee");
	int i = 0;
	cJSON *d;
	cJSON_ArrayForEach(d, s->devices)
	{
		if (ieee && strcasecmp(str_of(d, "ieee_address"), ieee) == 0) {
			char name[256];
			snprintf(name, sizeof(name), "%s", str_of(d, "friendly_name"));
			cJSON_DeleteItemFromArray(s->devices, i);
			pub_event(s, "device_leave", ieee, name, NULL);
			pub_devices(s);
			return 0;
		}
		i++;
	}
	return -EINVAL;
}

static int ctl_availability(struct sim *s, const cJSON *c)
{
	const char *name = str_of(c, "name"), *state = str_of(c, "state");
	if (!name || !state)
		return -EINVAL;
	char suffix[TOPIC_MAX];
	snprintf(suffix, sizeof(suffix), "%s/availability", name);
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "state", state);
	pub_json(s, suffix, a, true);
	cJSON_Delete(a);
	return 0;
}

static int ctl_state(struct sim *s, const cJSON *c)
{
	const char *name = str_of(c, "name");
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(c, "payload");
	if (!name || !cJSON_IsObject(payload))
		return -EINVAL;
	cJSON *st = state_of(s, name);
	const cJSON *item;
	cJSON_ArrayForEach(item, payload) put(st, item->string, cJSON_Duplicate(item, 1));
	pub_json(s, name, payload, false);
	return 0;
}

static int control(struct sim *s, const cJSON *c)
{
	const char *cmd = str_of(c, "cmd");
	if (!cmd)
		return -EINVAL;
	if (strcmp(cmd, "join") == 0)
		return ctl_join(s, c);
	if (strcmp(cmd, "leave") == 0)
		return ctl_leave(s, c);
	if (strcmp(cmd, "rename") == 0)
		return rename_device(s, str_of(c, "from") ? str_of(c, "from") : "", str_of(c, "to"));
	if (strcmp(cmd, "bridge") == 0 && str_of(c, "state")) {
		pub_bridge_state(s, str_of(c, "state"));
		return 0;
	}
	if (strcmp(cmd, "availability") == 0)
		return ctl_availability(s, c);
	if (strcmp(cmd, "state") == 0)
		return ctl_state(s, c);
	if (strcmp(cmd, "groups") == 0 && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, "groups"))) {
		cJSON_Delete(s->groups);
		s->groups = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "groups"), 1);
		pub_json(s, "bridge/groups", s->groups, true);
		return 0;
	}
	return -EINVAL;
}

static void on_control(struct sim *s, const char *payload, int len)
{
	cJSON *c = cJSON_ParseWithLength(payload, (size_t)len);
	int rc = c ? control(s, c) : -EINVAL;
	cJSON *done = cJSON_CreateObject();
	const char *cmd = str_of(c, "cmd");
	cJSON_AddStringToObject(done, "cmd", cmd ? cmd : "");
	cJSON_AddBoolToObject(done, "ok", rc == 0);
	char *text = cJSON_PrintUnformatted(done);
	if (text)
		pub_text(s, CONTROL "/done", text, false);
	cJSON_free(text);
	cJSON_Delete(done);
	cJSON_Delete(c);
}

/* ---- MQTT ---------------------------------------------------------------------------------- */

static bool ends_with(const char *s, size_t len, const char *tail)
{
	size_t n = strlen(tail);
	return len > n && memcmp(s + len - n, tail, n) == 0;
}

static void on_message(struct mosquitto *m, void *user, const struct mosquitto_message *msg)
{
	(void)m;
	struct sim *s = user;
	const char *payload = msg->payload ? msg->payload : "";
	size_t base_len = strlen(s->base);
	if (strcmp(msg->topic, CONTROL) == 0) {
		on_control(s, payload, msg->payloadlen);
		return;
	}
	if (strncmp(msg->topic, s->base, base_len) != 0 || msg->topic[base_len] != '/')
		return;
	const char *rest = msg->topic + base_len + 1;
	size_t len = strlen(rest);
	char name[TOPIC_MAX / 2];
	if (strncmp(rest, "bridge/request/", 15) == 0) {
		bridge_request(s, rest + 15, payload, msg->payloadlen);
	} else if (ends_with(rest, len, "/set") || ends_with(rest, len, "/get")) {
		if (len - 4 >= sizeof(name))
			return;
		snprintf(name, sizeof(name), "%.*s", (int)(len - 4), rest);
		if (rest[len - 3] == 's')
			on_set(s, name, payload, msg->payloadlen);
		else
			on_get(s, name, payload, msg->payloadlen);
	}
}

static void on_connect(struct mosquitto *m, void *user, int rc)
{
	struct sim *s = user;
	if (rc != 0)
		return;
	char filter[TOPIC_MAX];
	snprintf(filter, sizeof(filter), "%s/#", s->base);
	mosquitto_subscribe(m, NULL, filter, 1);
	mosquitto_subscribe(m, NULL, CONTROL, 1);
	pub_bridge_state(s, "online");
	pub_info(s);
	pub_devices(s);
	pub_json(s, "bridge/groups", s->groups, true);
}

static cJSON *load_json(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = malloc(FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, FILE_MAX, f) : 0;
	fclose(f);
	cJSON *j = n && n < FILE_MAX ? cJSON_ParseWithLength(buf, n) : NULL;
	free(buf);
	return j;
}

static int usage(void)
{
	fprintf(stderr, "usage: z2m-sim -p PORT -d devices.json [-b base_topic] [-g groups.json]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct sim s = {.base = "zigbee2mqtt"};
	int port = 0, opt;
	const char *devices = NULL, *groups = NULL;
	while ((opt = getopt(argc, argv, "p:d:b:g:")) != -1) {
		if (opt == 'p')
			port = atoi(optarg);
		else if (opt == 'd')
			devices = optarg;
		else if (opt == 'b')
			s.base = optarg;
		else if (opt == 'g')
			groups = optarg;
		else
			return usage();
	}
	if (port <= 0 || port > 65535 || !devices)
		return usage();
	s.devices = load_json(devices);
	s.groups = groups ? load_json(groups) : cJSON_CreateArray();
	s.states = cJSON_CreateObject();
	if (!cJSON_IsArray(s.devices) || !cJSON_IsArray(s.groups)) {
		fprintf(stderr, "z2m-sim: %s is not a JSON array\n",
			cJSON_IsArray(s.devices) ? groups : devices);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	mosquitto_lib_init();
	s.m = mosquitto_new("z2m-sim", true, &s);
	/* answers go out at once, as a test waiting on them expects */
	mosquitto_int_option(s.m, MOSQ_OPT_TCP_NODELAY, 1);
	char will[TOPIC_MAX];
	snprintf(will, sizeof(will), "%s/bridge/state", s.base);
	mosquitto_will_set(s.m, will, 19, "{\"state\":\"offline\"}", 1, true);
	mosquitto_connect_callback_set(s.m, on_connect);
	mosquitto_message_callback_set(s.m, on_message);
	/* only ever the loopback broker */
	while (!stopping && mosquitto_connect(s.m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS)
		usleep(50 * 1000);
	while (!stopping) {
		if (mosquitto_loop(s.m, 20, 1) != MOSQ_ERR_SUCCESS) {
			usleep(50 * 1000);
			mosquitto_reconnect(s.m);
		}
		fades_run(&s);
	}
	pub_bridge_state(&s, "offline");
	mosquitto_loop(s.m, 50, 1);
	mosquitto_disconnect(s.m);
	mosquitto_destroy(s.m);
	mosquitto_lib_cleanup();
	cJSON_Delete(s.devices);
	cJSON_Delete(s.groups);
	cJSON_Delete(s.states);
	return 0;
}
