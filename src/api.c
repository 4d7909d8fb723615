#include "api.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "automation.h"
#include "capability.h"
#include "ha_discovery.h"
#include "hub.h"
#include "json_depth.h"
#include "log.h"
#include "mqtt.h"
#include "plugin_host.h"
#include "store.h"

#define TOPIC_MAX 512
#define BAD_INPUT_LOGS_PER_S 10

static const char *src = "api";

static void set_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

/* Bad input is logged once per message, but a flood must not flood the log. */
static void log_bad_input(const char *topic, const char *why)
{
	static int64_t window_s;
	static int in_window;
	static unsigned suppressed;
	int64_t now_s = hub_now_ms() / 1000;
	if (now_s != window_s) {
		if (suppressed)
			log_warning(src, "%u more bad messages not logged", suppressed);
		window_s = now_s;
		in_window = 0;
		suppressed = 0;
	}
	if (++in_window > BAD_INPUT_LOGS_PER_S) {
		suppressed++;
		return;
	}
	log_warning(src, "%s: %s", topic, why);
}

/* -- parsing (pure) --------------------------------------------------------- */

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* Split "<name>/<verb>" or "<name>/<verb>/<attr>" where verb is set/get. */
static int parse_device_topic(const char *rest, struct api_topic *out)
{
	static const struct {
		const char *verb;
		enum api_topic_kind plain, attr;
	} verbs[] = {{"/set", API_TOPIC_SET, API_TOPIC_SET_ATTR},
		     {"/get", API_TOPIC_GET, API_TOPIC_GET_ATTR}};
	size_t len = strlen(rest);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		size_t vl = strlen(verbs[i].verb);
		if (len > vl && strcmp(rest + len - vl, verbs[i].verb) == 0) {
			out->kind = verbs[i].plain;
			return copy_part(out->name, sizeof(out->name), rest, len - vl);
		}
		/* names never contain a "set"/"get" segment, so the last one is the verb */
		const char *hit = NULL;
		for (const char *p = strstr(rest, verbs[i].verb); p; p = strstr(p + 1, verbs[i].verb))
			if (p[vl] == '/')
				hit = p;
		if (hit && !strchr(hit + vl + 1, '/')) {
			out->kind = verbs[i].attr;
			if (copy_part(out->attr, sizeof(out->attr), hit + vl + 1, strlen(hit + vl + 1)))
				return -EINVAL;
			return copy_part(out->name, sizeof(out->name), rest, (size_t)(hit - rest));
		}
	}
	return 0;
}

int api_topic_parse(const char *base, const char *topic, struct api_topic *out)
{
	memset(out, 0, sizeof(*out));
	size_t bl = strlen(base);
	if (strncmp(topic, base, bl) != 0 || topic[bl] != '/')
		return 0;
	const char *rest = topic + bl + 1;
	static const char request[] = "bridge/request/";
	if (strncmp(rest, request, sizeof(request) - 1) == 0) {
		out->kind = API_TOPIC_REQUEST;
		const char *path = rest + sizeof(request) - 1;
		return copy_part(out->name, sizeof(out->name), path, strlen(path));
	}
	if (strncmp(rest, "bridge/", 7) == 0)
		return 0;
	int rc = parse_device_topic(rest, out);
	if (rc)
		out->kind = API_TOPIC_OTHER;
	return rc;
}

int api_json_parse(const void *payload, size_t len, cJSON **out, char *err, size_t err_len)
{
	if (len > HUB_PAYLOAD_MAX) {
		set_err(err, err_len, "payload of %zu bytes is over the limit of %d bytes", len,
			HUB_PAYLOAD_MAX);
		return -E2BIG;
	}
	if (len == 0) {
		set_err(err, err_len, "payload is empty; JSON expected");
		return -EINVAL;
	}
	if (!json_depth_ok(payload, len, HUB_JSON_DEPTH_MAX)) {
		set_err(err, err_len, "JSON is nested deeper than %d levels", HUB_JSON_DEPTH_MAX);
		return -ELOOP;
	}
	if (memchr(payload, '\0', len)) {
		set_err(err, err_len, "payload contains a NUL byte");
		return -EINVAL;
	}
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
	size_t at = end ? (size_t)(end - (const char *)payload) : 0;
	if (at > len)
		at = len;
	/* only white space may follow the value */
	while (j && at < len && strchr(" \t\r\n", ((const char *)payload)[at]))
		at++;
	if (!j || at < len) {
		cJSON_Delete(j);
		set_err(err, err_len, "payload is not valid JSON (error at byte %zu)", at);
		return -EINVAL;
	}
	*out = j;
	return 0;
}

/* -- publishing --------------------------------------------------------------- */

static void publish_json(struct hearth_hub *hub, const char *topic, const cJSON *json, bool retain)
{
	if (!mqtt_is_connected(hub->mqtt))
		return;
	char *text = cJSON_PrintUnformatted(json);
	if (!text) {
		log_error(src, "out of memory printing %s", topic);
		return;
	}
	int rc = mqtt_publish(hub->mqtt, topic, text, strlen(text), hub->config->mqtt.qos, retain);
	if (rc && rc != -ENOTCONN)
		log_error(src, "publish to %s failed: %s", topic, strerror(-rc));
	cJSON_free(text);
}

static int topic_for(char *buf, size_t cap, const char *base, const char *a, const char *b)
{
	int n = snprintf(buf, cap, "%s/%s%s%s", base, a, b ? "/" : "", b ? b : "");
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static void publish_raw(struct hearth_hub *hub, const char *topic, const char *text, bool retain)
{
	if (!mqtt_is_connected(hub->mqtt))
		return;
	mqtt_publish(hub->mqtt, topic, text, strlen(text), hub->config->mqtt.qos, retain);
}

void api_publish_bridge(struct hearth_hub *hub, const char *sub, const cJSON *json, bool retain)
{
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, "bridge", sub) == 0)
		publish_json(hub, topic, json, retain);
}

void api_publish_state(struct hearth_hub *hub, const struct device *dev)
{
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, dev->name, NULL) != 0)
		return;
	const char *mode = ha_color_mode(dev);
	cJSON *extra = mode ? cJSON_CreateString(mode) : NULL;
	cJSON *state = (cJSON *)dev->state;
	/* put in for the print only: the registry's state stays the device's */
	if (extra && !cJSON_AddItemToObject(state, "color_mode", extra)) {
		cJSON_Delete(extra);
		extra = NULL;
	}
	publish_json(hub, topic, state, true);
	if (extra)
		cJSON_Delete(cJSON_DetachItemViaPointer(state, extra));
}

void api_publish_availability(struct hearth_hub *hub, const struct device *dev)
{
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, dev->name, "availability") == 0)
		publish_raw(hub, topic,
			    dev->available ? "{\"state\":\"online\"}" : "{\"state\":\"offline\"}",
			    true);
}

void api_clear_device(struct hearth_hub *hub, const char *name)
{
	char topic[TOPIC_MAX];
	if (!mqtt_is_connected(hub->mqtt))
		return;
	/* an empty retained message deletes the retained one */
	if (topic_for(topic, sizeof(topic), hub->base, name, NULL) == 0)
		mqtt_publish(hub->mqtt, topic, NULL, 0, hub->config->mqtt.qos, true);
	if (topic_for(topic, sizeof(topic), hub->base, name, "availability") == 0)
		mqtt_publish(hub->mqtt, topic, NULL, 0, hub->config->mqtt.qos, true);
}

void api_publish_devices(struct hearth_hub *hub)
{
	cJSON *a = cJSON_CreateArray();
	if (!a)
		return;
	for (struct device *d = registry_first(hub->registry); d; d = registry_next(d)) {
		cJSON *o = registry_device_to_json(d);
		if (o)
			cJSON_AddItemToArray(a, o);
	}
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, "bridge", "devices") == 0)
		publish_json(hub, topic, a, true);
	cJSON_Delete(a);
}

void api_publish_info(struct hearth_hub *hub)
{
	const struct hearth_config *c = hub->config;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "version", HEARTH_VERSION);
	char abi[16];
	snprintf(abi, sizeof(abi), "%d.%d", HEARTH_ABI_MAJOR, HEARTH_ABI_MINOR);
	cJSON_AddStringToObject(o, "abi", abi);
	cJSON_AddNumberToObject(o, "started", (double)hub->started_ms);
	cJSON_AddNumberToObject(o, "devices", (double)registry_count(hub->registry));
	cJSON_AddItemToObject(o, "plugins", plugin_host_to_json(hub->plugins));
	cJSON *cfg = cJSON_AddObjectToObject(o, "config");
	cJSON_AddStringToObject(cfg, "base_topic", c->mqtt.base_topic);
	cJSON_AddNumberToObject(cfg, "qos", c->mqtt.qos);
	cJSON_AddNumberToObject(cfg, "commit_interval_ms", c->store.commit_interval_ms);
	cJSON_AddNumberToObject(cfg, "history_days", c->store.history_days);
	cJSON_AddBoolToObject(cfg, "homeassistant", c->homeassistant.enabled);
	cJSON_AddStringToObject(cfg, "log_level", log_level_name(log_get_level()));
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, "bridge", "info") == 0)
		publish_json(hub, topic, o, true);
	cJSON_Delete(o);
}

void api_publish_bridge_state(struct hearth_hub *hub, bool online)
{
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, "bridge", "state") == 0)
		publish_raw(hub, topic, online ? "{\"state\":\"online\"}" : "{\"state\":\"offline\"}",
			    true);
}

void api_publish_event(struct hearth_hub *hub, const char *type, cJSON *data)
{
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		cJSON_Delete(data);
		return;
	}
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddItemToObject(o, "data", data ? data : cJSON_CreateObject());
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, "bridge", "event") == 0)
		publish_json(hub, topic, o, false);
	cJSON_Delete(o);
}

void api_publish_all(struct hearth_hub *hub)
{
	api_publish_bridge_state(hub, true);
	api_publish_info(hub);
	api_publish_devices(hub);
	for (struct device *d = registry_first(hub->registry); d; d = registry_next(d)) {
		api_publish_availability(hub, d);
		if (cJSON_GetArraySize(d->state) > 0)
			api_publish_state(hub, d);
	}
}

void api_publish_log(struct hearth_hub *hub, const char *level, const char *source,
		     const char *message)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "level", level);
	if (source)
		cJSON_AddStringToObject(o, "source", source);
	cJSON_AddStringToObject(o, "message", message);
	char topic[TOPIC_MAX];
	if (topic_for(topic, sizeof(topic), hub->base, "bridge", "logging") == 0)
		publish_json(hub, topic, o, false);
	cJSON_Delete(o);
}

static void respond(struct hearth_hub *hub, const char *path, const cJSON *transaction,
		    const char *error, cJSON *data)
{
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		cJSON_Delete(data);
		return;
	}
	cJSON_AddStringToObject(o, "status", error ? "error" : "ok");
	if (error)
		cJSON_AddStringToObject(o, "error", error);
	cJSON_AddItemToObject(o, "data", data ? data : cJSON_CreateObject());
	if (transaction)
		cJSON_AddItemToObject(o, "transaction", cJSON_Duplicate(transaction, 1));
	char topic[TOPIC_MAX];
	if (snprintf(topic, sizeof(topic), "%s/bridge/response/%s", hub->base, path) <
	    (int)sizeof(topic))
		publish_json(hub, topic, o, false);
	cJSON_Delete(o);
}

void api_set_error(struct hearth_hub *hub, const char *device_name, const char *error)
{
	cJSON *data = cJSON_CreateObject();
	if (data && device_name)
		cJSON_AddStringToObject(data, "device", device_name);
	respond(hub, "device/set", NULL, error, data);
}

void api_set_answer(struct hearth_hub *hub, const char *device_name, const cJSON *transaction,
		    const char *error, const cJSON *state)
{
	cJSON *data = cJSON_CreateObject();
	if (data && device_name)
		cJSON_AddStringToObject(data, "device", device_name);
	if (data && state && !error)
		cJSON_AddItemToObject(data, "state", cJSON_Duplicate(state, 1));
	respond(hub, "device/set", transaction, error, data);
}

/* -- device topics ---------------------------------------------------------------- */

/* A raw payload of <name>/set/<attr>: JSON if it parses as a scalar or
 * object, otherwise the text itself ("ON"). */
static cJSON *raw_value(const void *payload, size_t len)
{
	cJSON *v = NULL;
	char err[8];
	if (api_json_parse(payload, len, &v, err, sizeof(err)) == 0)
		return v;
	char *text = strndup(payload, len);
	if (!text)
		return NULL;
	v = cJSON_CreateString(text);
	free(text);
	return v;
}

/* A /set its publisher stamped longer ago than [mqtt] command_max_age_s:
 * it waited at the broker while hearthd was away, and is stale now. */
static bool stale_command(struct hearth_hub *hub, char *err, size_t err_len)
{
	int max_s = hub->config->mqtt.command_max_age_s;
	int64_t sent_ms = mqtt_message_sent_ms(hub->mqtt);
	if (max_s <= 0 || sent_ms <= 0)
		return false;
	int64_t age_ms = hub_now_ms() - sent_ms;
	if (age_ms <= (int64_t)max_s * 1000)
		return false;
	set_err(err, err_len,
		"the command was stamped %lld s ago, longer than [mqtt] command_max_age_s = %d: "
		"dropped",
		(long long)(age_ms / 1000), max_s);
	return true;
}

static void device_message(struct hearth_hub *hub, const char *topic, const struct api_topic *t,
			   const void *payload, size_t len)
{
	char err[300];
	struct device *dev = registry_by_name(hub->registry, t->name);
	cJSON *body = NULL;
	int rc;
	if (!dev) {
		set_err(err, sizeof(err), "no device is named '%s'", t->name);
		rc = -ENODEV;
		goto out;
	}
	if (t->kind == API_TOPIC_SET_ATTR || t->kind == API_TOPIC_GET_ATTR) {
		if (len > HUB_PAYLOAD_MAX) {
			set_err(err, sizeof(err), "payload of %zu bytes is over the limit", len);
			rc = -E2BIG;
			goto out;
		}
		body = cJSON_CreateObject();
		cJSON *v = t->kind == API_TOPIC_SET_ATTR ? raw_value(payload, len)
							 : cJSON_CreateString("");
		if (!body || !v) {
			cJSON_Delete(v);
			rc = -ENOMEM;
			set_err(err, sizeof(err), "out of memory");
			goto out;
		}
		cJSON_AddItemToObject(body, t->attr, v);
	} else if ((rc = api_json_parse(payload, len, &body, err, sizeof(err)))) {
		goto out;
	}
	if ((t->kind == API_TOPIC_SET || t->kind == API_TOPIC_SET_ATTR) &&
	    stale_command(hub, err, sizeof(err)))
		rc = -ETIME;
	else if (t->kind == API_TOPIC_SET || t->kind == API_TOPIC_SET_ATTR)
		rc = hub_device_set(hub, dev, body, err, sizeof(err));
	else
		rc = hub_device_get(hub, dev, body, err, sizeof(err));
out:
	if (rc) {
		log_bad_input(topic, err);
		api_set_error(hub, dev ? dev->name : t->name, err);
	}
	cJSON_Delete(body);
}

/* -- bridge requests ---------------------------------------------------------------- */

typedef int (*request_fn)(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
			  size_t err_len);

static const char *req_string(const cJSON *req, const char *key, char *err, size_t err_len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
	if (!cJSON_IsString(v)) {
		set_err(err, err_len, "'%s' is missing or not a string", key);
		return NULL;
	}
	return v->valuestring;
}

static struct device *req_device(struct hearth_hub *hub, const cJSON *req, const char *key,
				 char *err, size_t err_len)
{
	const char *name = req_string(req, key, err, err_len);
	if (!name)
		return NULL;
	struct device *dev = registry_lookup(hub->registry, name);
	if (!dev)
		set_err(err, err_len, "no device is named '%.128s'", name);
	return dev;
}

/* device/set: the answer comes once the device has confirmed the command
 * or it has failed, so a publisher knows of every command how it ended. */
static int req_set(struct hearth_hub *hub, const cJSON *req, const cJSON *transaction, char *err,
		   size_t err_len)
{
	struct device *dev = req_device(hub, req, "id", err, err_len);
	if (!dev)
		return -EINVAL;
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(req, "state");
	if (!cJSON_IsObject(state)) {
		set_err(err, err_len, "'state' is missing or not an object of attributes");
		return -EINVAL;
	}
	if (stale_command(hub, err, err_len))
		return -ETIME;
	return hub_device_set_answered(hub, dev, state, transaction, err, err_len);
}

static int req_rename(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
		      size_t err_len)
{
	struct device *dev = req_device(hub, req, "from", err, err_len);
	const char *to = dev ? req_string(req, "to", err, err_len) : NULL;
	if (!dev || !to)
		return -EINVAL;
	char from[REGISTRY_NAME_MAX + 1];
	snprintf(from, sizeof(from), "%s", dev->name);
	int rc = hub_device_rename(hub, dev, to, err, err_len);
	if (rc == 0) {
		cJSON_AddStringToObject(data, "from", from);
		cJSON_AddStringToObject(data, "to", dev->name);
		cJSON_AddStringToObject(data, "id", dev->id);
	}
	return rc;
}

static int req_remove(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
		      size_t err_len)
{
	struct device *dev = req_device(hub, req, "id", err, err_len);
	if (!dev)
		return -EINVAL;
	cJSON_AddStringToObject(data, "id", dev->id);
	cJSON_AddStringToObject(data, "name", dev->name);
	return hub_device_remove(hub, dev);
}

static int req_options(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
		       size_t err_len)
{
	struct device *dev = req_device(hub, req, "id", err, err_len);
	if (!dev)
		return -EINVAL;
	const cJSON *options = cJSON_GetObjectItemCaseSensitive(req, "options");
	if (!cJSON_IsObject(options)) {
		set_err(err, err_len, "'options' is missing or not an object");
		return -EINVAL;
	}
	int rc = hub_device_options(hub, dev, options, err, err_len);
	if (rc == 0) {
		cJSON_AddStringToObject(data, "id", dev->id);
		cJSON_AddItemToObject(data, "options", cJSON_Duplicate(options, 1));
	}
	return rc;
}

static int req_permit_join(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
			   size_t err_len)
{
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(req, "time");
	if (!cJSON_IsNumber(time) || time->valuedouble < 0 || time->valuedouble > 254 ||
	    time->valuedouble != (int)time->valuedouble) {
		set_err(err, err_len, "'time' must be a whole number of seconds from 0 to 254");
		return -EINVAL;
	}
	const cJSON *plugin = cJSON_GetObjectItemCaseSensitive(req, "plugin");
	if (plugin && !cJSON_IsString(plugin)) {
		set_err(err, err_len, "'plugin' must be a plugin name");
		return -EINVAL;
	}
	int rc = hub_permit_join(hub, plugin ? plugin->valuestring : NULL, (unsigned)time->valueint,
				 err, err_len);
	if (rc >= 0) {
		cJSON_AddNumberToObject(data, "time", time->valueint);
		cJSON_AddNumberToObject(data, "plugins", rc);
		return 0;
	}
	return rc;
}

/* Rebind rules and scenes from one device to another (a replaced sensor). */
static int req_replace(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
		       size_t err_len)
{
	struct device *from = req_device(hub, req, "from", err, err_len);
	struct device *to = from ? req_device(hub, req, "to", err, err_len) : NULL;
	if (!from || !to)
		return -EINVAL;
	if (from == to) {
		snprintf(err, err_len, "'from' and 'to' are the same device");
		return -EINVAL;
	}
	int n = hub->automation ? automation_replace_device(hub->automation, from->id, to->id) : 0;
	cJSON_AddStringToObject(data, "from", from->id);
	cJSON_AddStringToObject(data, "to", to->id);
	cJSON_AddNumberToObject(data, "rebound", n);
	log_info(src, "rules and scenes moved from %s to %s (%d changed)", from->id, to->id, n);
	return 0;
}

static int req_health(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
		      size_t err_len)
{
	(void)req;
	(void)err;
	(void)err_len;
	cJSON *h = hub_health(hub);
	if (!h)
		return -ENOMEM;
	cJSON *item = h->child;
	while (item) {
		cJSON *next = item->next;
		cJSON_AddItemToObject(data, item->string, cJSON_DetachItemViaPointer(h, item));
		item = next;
	}
	cJSON_Delete(h);
	return 0;
}

static int req_ecosystem(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
			 size_t err_len)
{
	(void)req;
	(void)err;
	(void)err_len;
	cJSON *view = hub_ecosystem(hub);
	if (!view)
		return -ENOMEM;
	char *dot = ecosystem_dot(view);
	cJSON *item = view->child;
	while (item) {
		cJSON *next = item->next;
		cJSON_AddItemToObject(data, item->string, cJSON_DetachItemViaPointer(view, item));
		item = next;
	}
	cJSON_Delete(view);
	if (dot)
		cJSON_AddStringToObject(data, "dot", dot);
	free(dot);
	return 0;
}

/* A consistent copy of the database in store.backup_dir, named by the UTC
 * second (-2 .. -9 added for more in the same second). The hub waits for
 * the copy, which goes as fast as the disk writes. */
static int req_backup(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
		      size_t err_len)
{
	(void)req;
	char path[PATH_MAX], stamp[32], suffix[16] = "";
	int64_t start_ms = hub_now_ms();
	time_t now_s = (time_t)(start_ms / 1000);
	struct tm tm;
	struct stat st;
	int rc = -EEXIST;
	if (!hub->store) {
		set_err(err, err_len, "the database is not open");
		return -ENODEV;
	}
	if (!gmtime_r(&now_s, &tm) || !strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm))
		return -EINVAL;
	/* what is queued belongs in the copy; a failure is logged by the store */
	store_flush(hub->store, start_ms, hub->config->store.history_days);
	for (int n = 2; rc == -EEXIST && n <= 10; n++) {
		if (snprintf(path, sizeof(path), "%s/hearth-%s%s.db", hub->config->store.backup_dir,
			     stamp, suffix) >= (int)sizeof(path)) {
			set_err(err, err_len, "store.backup_dir is too long");
			return -ENAMETOOLONG;
		}
		rc = store_backup(hub->store, path, err, err_len);
		snprintf(suffix, sizeof(suffix), "-%d", n);
	}
	if (rc)
		return rc;
	if (stat(path, &st) != 0)
		st.st_size = 0;
	cJSON_AddStringToObject(data, "path", path);
	cJSON_AddNumberToObject(data, "bytes", (double)st.st_size);
	cJSON_AddNumberToObject(data, "ms", (double)(hub_now_ms() - start_ms));
	log_info(src, "database backed up to %s (%lld bytes)", path, (long long)st.st_size);
	return 0;
}

/* An optional whole number in lo..hi, def when absent; -1 when wrong. */
static int64_t req_int(const cJSON *req, const char *key, int64_t lo, int64_t hi, int64_t def,
		       char *err, size_t err_len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
	if (!v)
		return def;
	if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
	    v->valuedouble != (double)(int64_t)v->valuedouble) {
		set_err(err, err_len, "'%s' must be a whole number from %lld to %lld", key,
			(long long)lo, (long long)hi);
		return -1;
	}
	return (int64_t)v->valuedouble;
}

/* Stored values of one attribute for a chart, and the device's last events. */
static int req_history(struct hearth_hub *hub, const cJSON *req, cJSON *data, char *err,
		       size_t err_len)
{
	struct device *dev = req_device(hub, req, "id", err, err_len);
	if (!dev)
		return -EINVAL;
	const char *attr = req_string(req, "attribute", err, err_len);
	if (!attr)
		return -EINVAL;
	if (!cap_find(dev->caps, dev->n_caps, attr)) {
		set_err(err, err_len, "%s has no attribute '%.64s'", dev->name, attr);
		return -EINVAL;
	}
	int64_t now = hub_now_ms();
	int64_t since = req_int(req, "since", 0, now, now - 24 * 3600 * 1000LL, err, err_len);
	int64_t limit = since < 0 ? -1 : req_int(req, "limit", 1, 5000, 500, err, err_len);
	int64_t n_events = limit < 0 ? -1 : req_int(req, "events", 0, 100, 0, err, err_len);
	if (n_events < 0)
		return -EINVAL;
	if (!hub->store) {
		set_err(err, err_len, "the database is not open");
		return -ENODEV;
	}
	cJSON_AddStringToObject(data, "id", dev->id);
	cJSON_AddStringToObject(data, "attribute", attr);
	int rc = store_history(hub->store, dev->id, attr, since, (int)limit,
			       cJSON_AddArrayToObject(data, "points"));
	if (rc == 0 && n_events > 0)
		rc = store_device_events(hub->store, dev->id, (int)n_events,
					 cJSON_AddArrayToObject(data, "events"));
	if (rc)
		set_err(err, err_len, "the database could not be read");
	return rc;
}

static const struct {
	const char *path;
	request_fn fn;
} requests[] = {
	{"device/history", req_history},
	{"ecosystem", req_ecosystem},
	{"device/rename", req_rename},	 {"device/remove", req_remove},
	{"device/replace", req_replace},
	{"device/options", req_options}, {"permit_join", req_permit_join},
	{"health_check", req_health},
	{"backup", req_backup},
};

static void request_message(struct hearth_hub *hub, const char *topic, const char *path,
			    const void *payload, size_t len)
{
	char err[300] = "";
	cJSON *req = NULL;
	cJSON *data = cJSON_CreateObject();
	const cJSON *transaction = NULL;
	request_fn fn = NULL;
	int rc = -ENOMEM;
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		if (strcmp(requests[i].path, path) == 0)
			fn = requests[i].fn;
	if (!data)
		goto out;
	/* an empty payload means {} for requests that take no argument */
	if (len == 0)
		req = cJSON_CreateObject();
	else if ((rc = api_json_parse(payload, len, &req, err, sizeof(err))))
		goto out;
	if (!cJSON_IsObject(req)) {
		set_err(err, sizeof(err), "the request must be a JSON object");
		rc = -EINVAL;
		goto out;
	}
	transaction = cJSON_GetObjectItemCaseSensitive(req, "transaction");
	if (strcmp(path, "device/set") == 0) {
		if ((rc = req_set(hub, req, transaction, err, sizeof(err))))
			goto out;
		/* answered when the command ends (maybe already) */
		cJSON_Delete(data);
		cJSON_Delete(req);
		return;
	}
	if (!fn && hub->automation) {
		rc = automation_request(hub->automation, path, req, data, err, sizeof(err));
		if (rc != -ENOENT || err[0])
			goto out;
	}
	if (!fn) {
		set_err(err, sizeof(err), "unknown request '%.100s'", path);
		rc = -ENOENT;
		goto out;
	}
	rc = fn(hub, req, data, err, sizeof(err));
	if (rc && !err[0])
		set_err(err, sizeof(err), "%s", strerror(rc < 0 ? -rc : rc));
out:
	if (rc) {
		log_bad_input(topic, err);
		cJSON_Delete(data);
		data = NULL;
	}
	respond(hub, path, transaction, rc ? err : NULL, data);
	cJSON_Delete(req);
}

void api_on_message(struct hearth_hub *hub, const char *topic, const void *payload, size_t len)
{
	struct api_topic t;
	if (api_topic_parse(hub->base, topic, &t) != 0) {
		log_bad_input(topic, "device name, attribute or request path is empty or too long");
		return;
	}
	switch (t.kind) {
	case API_TOPIC_OTHER:
		return;
	case API_TOPIC_REQUEST:
		request_message(hub, topic, t.name, payload, len);
		return;
	default:
		device_message(hub, topic, &t, payload, len);
	}
}
