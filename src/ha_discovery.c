/*
 * Home Assistant MQTT discovery.
 *
 * Every device becomes one HA device whose entities are chosen from its
 * capabilities: first the entities that gather several attributes (light,
 * lock, cover, climate, fan), then one entity per remaining attribute
 * (switch, binary_sensor, sensor, number, select, text, button, event).
 * Commands from HA go to <base>/<name>/set as JSON, so the hub validates
 * them exactly as any other /set.
 *
 * What was published for each device is remembered as a list of
 * "component/object" pairs, so a device that loses a capability, or goes
 * away, has its stale configs cleared with empty retained messages. Whole
 * republishing (on connect, on HA's birth message) runs in batches on a
 * timer so that ten thousand devices never hold the loop.
 */
#include "ha_discovery.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "log.h"
#include "mqtt.h"

#ifndef HEARTH_VERSION
#define HEARTH_VERSION "0.0.0"
#endif

#define HA_TOPIC_MAX 512
#define HA_TEXT_MAX 1024
#define HA_SAFE_MAX (REGISTRY_NAME_MAX + 1)
#define HA_BATCH 32 /* devices republished per loop turn */
#define HA_BUCKETS 1024
#define BRIDGE_NODE "hearth_bridge"

static const char *src = "homeassistant";

/* What was last published for one device: "component/object\n" lines. A
 * record whose device went away while the broker was unreachable stays as
 * a tombstone until its topics can be cleared. */
struct record {
	char *id;
	char *list;
	bool removed;
	struct record *next;
};

struct ha_discovery {
	struct hearth_hub *hub;
	const char *prefix;
	char status_topic[HA_TOPIC_MAX];
	struct record *buckets[HA_BUCKETS];
	uv_timer_t timer;
	bool timer_open;
	bool republishing;
	const struct device *cursor; /* next device of a running republish */
};

/* One device's configs being built. */
struct build {
	const struct ha_discovery *ha;
	const struct device *dev;
	char safe[HA_SAFE_MAX];	     /* the id, topic-safe */
	char slug[HA_SAFE_MAX];	     /* the name, entity-id-safe */
	char state_topic[HA_TOPIC_MAX];
	char set_topic[HA_TOPIC_MAX];
	char avail_topic[HA_TOPIC_MAX];
	bool used[CAP_MAX_PER_DEVICE]; /* taken by an entity already */
	cJSON *out;		       /* topic -> config */
};

/* ---- small text helpers ------------------------------------------------------------------ */

/* HA allows [a-zA-Z0-9_-] in a discovery topic's node and object ids. */
static void topic_safe(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 1 < cap; in++) {
		char c = *in;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '-';
		out[n++] = ok ? c : '_';
	}
	out[n] = '\0';
}

/* Entity ids are [a-z0-9_], no doubled or edge underscores. */
static void slugify(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 1 < cap; in++) {
		char c = *in;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (ok)
			out[n++] = c;
		else if (n > 0 && out[n - 1] != '_')
			out[n++] = '_';
	}
	while (n > 0 && out[n - 1] == '_')
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, cap, "device");
}

/* "color_temp" -> "Color temp", as zigbee2mqtt names its entities. */
static void humanize(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 1 < cap; in++)
		out[n++] = *in == '_' ? ' ' : *in;
	out[n] = '\0';
	if (out[0] >= 'a' && out[0] <= 'z')
		out[0] = (char)(out[0] - 'a' + 'A');
}

/* An attribute name that can sit inside a Jinja template and a JSON key
 * without escaping. Others are left out of discovery. */
static bool name_usable(const char *name)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || strchr("{}%'\"\\#", *p))
			return false;
	return name[0] != '\0';
}

static bool is_identifier(const char *s)
{
	static const char *const dict_methods[] = {"keys", "values", "items", "get", "pop",
						   "update", "copy", "clear", "setdefault",
						   "popitem", "fromkeys"};
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	for (size_t i = 0; i < sizeof(dict_methods) / sizeof(dict_methods[0]); i++)
		if (strcmp(s, dict_methods[i]) == 0)
			return false;
	return true;
}

/* The Jinja expression reading attribute name from the state JSON. */
static void json_path(const char *name, char *out, size_t cap)
{
	if (is_identifier(name))
		snprintf(out, cap, "value_json.%s", name);
	else
		snprintf(out, cap, "value_json['%s']", name);
}

static void value_template(const char *name, char *out, size_t cap)
{
	char path[HA_TEXT_MAX / 2];
	json_path(name, path, sizeof(path));
	snprintf(out, cap, "{{ %s }}", path);
}

/* How HA's template engine renders a JSON scalar: Python's str() of it. */
static void rendered(const cJSON *v, char *out, size_t cap)
{
	if (cJSON_IsBool(v))
		snprintf(out, cap, "%s", cJSON_IsTrue(v) ? "True" : "False");
	else if (cJSON_IsString(v))
		snprintf(out, cap, "%s", v->valuestring);
	else if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble)
		snprintf(out, cap, "%lld", (long long)v->valuedouble);
	else if (cJSON_IsNumber(v))
		snprintf(out, cap, "%.15g", v->valuedouble);
	else
		snprintf(out, cap, "None");
}

/* {"name": value} as compact JSON text, what hearth's /set takes. */
static char *set_payload(const char *name, const cJSON *value)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToObject(o, name, cJSON_Duplicate(value, 1))) {
		cJSON_Delete(o);
		return NULL;
	}
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static bool str_eq(const cJSON *v, const char *s)
{
	return cJSON_IsString(v) && strcmp(v->valuestring, s) == 0;
}

static bool settable(const struct cap *c)
{
	return c->access & HEARTH_ACCESS_SET;
}

static bool published(const struct cap *c)
{
	return c->access & HEARTH_ACCESS_PUBLISHED;
}

static bool has_value(const struct cap *c, const char *v)
{
	for (size_t i = 0; i < c->n_values; i++)
		if (strcmp(c->values[i], v) == 0)
			return true;
	return false;
}

/* ---- what the builders share ----------------------------------------------------------------- */

static int find_cap(const struct build *b, const char *name, enum hearth_cap_type type)
{
	for (size_t i = 0; i < b->dev->n_caps; i++) {
		const struct cap *c = &b->dev->caps[i];
		if (!b->used[i] && c->type == type && strcmp(c->name, name) == 0 &&
		    name_usable(c->name))
			return (int)i;
	}
	return -1;
}

static const struct cap *cap_at(const struct build *b, int i)
{
	return i >= 0 ? &b->dev->caps[i] : NULL;
}

static void add_string(cJSON *o, const char *key, const char *value)
{
	if (value && value[0])
		cJSON_AddStringToObject(o, key, value);
}

static void add_fmt(cJSON *o, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_fmt(cJSON *o, const char *key, const char *fmt, ...)
{
	char buf[HA_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(o, key, buf);
}

static cJSON *origin(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", "hearth");
	cJSON_AddStringToObject(o, "sw_version", HEARTH_VERSION);
	return o;
}

static cJSON *device_block(const struct build *b)
{
	const struct device *d = b->dev;
	cJSON *o = cJSON_CreateObject();
	cJSON *ids = cJSON_AddArrayToObject(o, "identifiers");
	char id[HA_SAFE_MAX + 8];
	snprintf(id, sizeof(id), "hearth_%s", b->safe);
	cJSON_AddItemToArray(ids, cJSON_CreateString(id));
	cJSON_AddStringToObject(o, "name", d->name);
	add_string(o, "manufacturer", d->vendor);
	add_string(o, "model", d->model);
	add_string(o, "suggested_area", d->room);
	cJSON_AddStringToObject(o, "via_device", BRIDGE_NODE);
	return o;
}

static cJSON *availability(const struct build *b)
{
	char bridge[HA_TOPIC_MAX];
	snprintf(bridge, sizeof(bridge), "%s/bridge/state", b->ha->hub->base);
	const char *topics[] = {bridge, b->avail_topic};
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < 2; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "topic", topics[i]);
		cJSON_AddStringToObject(o, "value_template", "{{ value_json.state }}");
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

/*
 * A new config with what every entity carries. main: the entity is the
 * device's own feature (HA then shows the device name alone); else name is
 * the entity's name. object names the entity within the device.
 */
static cJSON *entity(struct build *b, const char *component, const char *object, bool main,
		     const char *name)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	char human[128];
	if (main) {
		cJSON_AddNullToObject(o, "name");
	} else {
		humanize(name, human, sizeof(human));
		cJSON_AddStringToObject(o, "name", human);
	}
	char obj[HA_SAFE_MAX], slug[HA_SAFE_MAX];
	topic_safe(object, obj, sizeof(obj));
	add_fmt(o, "unique_id", "hearth_%s_%s", b->safe, obj);
	slugify(object, slug, sizeof(slug));
	if (main)
		add_fmt(o, "default_entity_id", "%s.%s", component, b->slug);
	else
		add_fmt(o, "default_entity_id", "%s.%s_%s", component, b->slug, slug);
	cJSON_AddItemToObject(o, "device", device_block(b));
	cJSON_AddItemToObject(o, "availability", availability(b));
	cJSON_AddStringToObject(o, "availability_mode", "all");
	cJSON_AddItemToObject(o, "origin", origin());
	return o;
}

/* Put cfg under its discovery topic; a second entity with the same object
 * id gets a numbered one. Takes cfg. */
static void emit(struct build *b, const char *component, const char *object, cJSON *cfg)
{
	if (!cfg)
		return;
	char obj[HA_SAFE_MAX], topic[HA_TOPIC_MAX];
	topic_safe(object, obj, sizeof(obj));
	snprintf(topic, sizeof(topic), "%s/%s/hearth_%s/%s/config", b->ha->prefix, component,
		 b->safe, obj);
	for (int n = 2; cJSON_GetObjectItemCaseSensitive(b->out, topic) && n < 100; n++) {
		snprintf(topic, sizeof(topic), "%s/%s/hearth_%s/%s_%d/config", b->ha->prefix,
			 component, b->safe, obj, n);
		cJSON *uid = cJSON_GetObjectItemCaseSensitive(cfg, "unique_id");
		char buf[HA_TOPIC_MAX];
		snprintf(buf, sizeof(buf), "hearth_%s_%s_%d", b->safe, obj, n);
		cJSON_SetValuestring(uid, buf);
	}
	cJSON_AddItemToObject(b->out, topic, cfg);
}

/* state_topic and value_template for a published attribute. */
static void add_state(struct build *b, cJSON *cfg, const struct cap *c, const char *tkey,
		      const char *vkey)
{
	if (!published(c))
		return;
	char tpl[HA_TEXT_MAX];
	value_template(c->name, tpl, sizeof(tpl));
	cJSON_AddStringToObject(cfg, tkey, b->state_topic);
	cJSON_AddStringToObject(cfg, vkey, tpl);
}

/* command_topic and a template making {"name": value}; quoted: a string. */
static void add_command(struct build *b, cJSON *cfg, const struct cap *c, const char *tkey,
			const char *tplkey, bool quoted)
{
	cJSON_AddStringToObject(cfg, tkey, b->set_topic);
	add_fmt(cfg, tplkey, "{\"%s\": {{ value%s }}}", c->name, quoted ? " | to_json" : "");
}

/* ---- entities that gather several attributes ------------------------------------------------ */

struct color_mode {
	const char *mode;
	const char *features[3];
};

/* The colour models HA's JSON schema sends, by the members of "color". */
static const struct color_mode color_modes[] = {
	{"hs", {"h", "s", NULL}},
	{"hs", {"hue", "saturation", NULL}}, /* zigbee2mqtt's color_hs; hearth takes h, s */
	{"xy", {"x", "y", NULL}},
	{"rgb", {"r", "g", "b"}},
};

static bool composite_has(const struct cap *c, const char *const *names)
{
	for (size_t i = 0; i < 3 && names[i]; i++)
		if (!cap_find(c->features, c->n_features, names[i]))
			return false;
	return true;
}

static void light_color_temp(cJSON *cfg, const struct cap *ct, cJSON *modes)
{
	cJSON_AddItemToArray(modes, cJSON_CreateString("color_temp"));
	bool kelvin = ct->unit && strcmp(ct->unit, "K") == 0;
	if (kelvin)
		cJSON_AddBoolToObject(cfg, "color_temp_kelvin", true);
	if (ct->flags & HEARTH_CAP_HAS_MIN)
		cJSON_AddNumberToObject(cfg, kelvin ? "min_kelvin" : "min_mireds", ct->min);
	if (ct->flags & HEARTH_CAP_HAS_MAX)
		cJSON_AddNumberToObject(cfg, kelvin ? "max_kelvin" : "max_mireds", ct->max);
}

/* Features HA offers by default but hearth refuses unless the device has
 * them: say which the light really takes. */
static void light_extras(struct build *b, cJSON *cfg)
{
	static const char *const flags[] = {"transition", "flash"};
	for (size_t i = 0; i < 2; i++) {
		int k = find_cap(b, flags[i], HEARTH_CAP_NUMERIC);
		if (k >= 0 && settable(cap_at(b, k)))
			b->used[k] = true;
		else
			cJSON_AddBoolToObject(cfg, flags[i], false);
	}
	int e = find_cap(b, "effect", HEARTH_CAP_ENUM);
	if (e >= 0 && settable(cap_at(b, e))) {
		const struct cap *c = cap_at(b, e);
		cJSON_AddBoolToObject(cfg, "effect", true);
		cJSON_AddItemToObject(cfg, "effect_list",
				      cJSON_CreateStringArray((const char *const *)c->values,
							      (int)c->n_values));
		b->used[e] = true;
	}
}

static size_t composite_modes(const struct build *b, int col, const char **out)
{
	size_t n = 0;
	for (size_t i = 0; col >= 0 && i < sizeof(color_modes) / sizeof(color_modes[0]); i++)
		if (composite_has(cap_at(b, col), color_modes[i].features) &&
		    !(n && strcmp(out[n - 1], color_modes[i].mode) == 0))
			out[n++] = color_modes[i].mode;
	return n;
}

/* The member last changed of state, by the device's change times: a, b, or
 * NULL when neither is in the state. */
static const char *newer(const struct device *dev, const char *a, const char *b)
{
	const cJSON *ta = cJSON_GetObjectItemCaseSensitive(dev->state_ms, a);
	const cJSON *tb = cJSON_GetObjectItemCaseSensitive(dev->state_ms, b);
	bool has_a = cJSON_GetObjectItemCaseSensitive(dev->state, a) != NULL;
	bool has_b = cJSON_GetObjectItemCaseSensitive(dev->state, b) != NULL;
	if (!has_a || !has_b)
		return has_a ? a : has_b ? b : NULL;
	double ma = cJSON_IsNumber(ta) ? ta->valuedouble : 0;
	double mb = cJSON_IsNumber(tb) ? tb->valuedouble : 0;
	return mb > ma ? b : a;
}

const char *ha_color_mode(const struct device *dev)
{
	if (cJSON_GetObjectItemCaseSensitive(dev->state, "color_mode"))
		return NULL; /* the device says it (zigbee2mqtt does) */
	const struct cap *ct = cap_find(dev->caps, dev->n_caps, "color_temp");
	const struct cap *col = cap_find(dev->caps, dev->n_caps, "color");
	if (ct && (ct->type != HEARTH_CAP_NUMERIC || !settable(ct)))
		ct = NULL;
	const char *col_mode = NULL;
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(dev->state, "color");
	for (size_t i = 0; col && col->type == HEARTH_CAP_COMPOSITE && settable(col) &&
			   !col_mode && i < sizeof(color_modes) / sizeof(color_modes[0]);
	     i++) {
		const char *const *f = color_modes[i].features;
		bool in_value = true;
		for (size_t k = 0; k < 3 && f[k]; k++)
			in_value = in_value && cJSON_GetObjectItemCaseSensitive(value, f[k]);
		if (composite_has(col, f) && in_value)
			col_mode = color_modes[i].mode;
	}
	const char *last = newer(dev, ct ? "color_temp" : "", col_mode ? "color" : "");
	if (!last)
		return NULL;
	return strcmp(last, "color") == 0 ? col_mode : "color_temp";
}

/* An attribute of a light is part of it only when it can be set. */
static int light_part(const struct build *b, const char *name, enum hearth_cap_type type)
{
	int i = find_cap(b, name, type);
	return i >= 0 && settable(cap_at(b, i)) ? i : -1;
}

/* A light: "state" ON/OFF with brightness, colour temperature or colour,
 * in HA's JSON schema, which is hearth's /set and state JSON as they are. */
static void light(struct build *b)
{
	int s = find_cap(b, "state", HEARTH_CAP_BINARY);
	int bri = light_part(b, "brightness", HEARTH_CAP_NUMERIC);
	int ct = light_part(b, "color_temp", HEARTH_CAP_NUMERIC);
	int col = light_part(b, "color", HEARTH_CAP_COMPOSITE);
	const struct cap *st = cap_at(b, s);
	const char *cmodes[sizeof(color_modes) / sizeof(color_modes[0])];
	size_t n_cmodes = composite_modes(b, col, cmodes);
	if (!st || !settable(st) || !str_eq(st->value_on, "ON") || !str_eq(st->value_off, "OFF") ||
	    (bri < 0 && ct < 0 && n_cmodes == 0))
		return;
	cJSON *cfg = entity(b, "light", "light", true, NULL);
	if (!cfg)
		return;
	cJSON_AddStringToObject(cfg, "schema", "json");
	cJSON_AddStringToObject(cfg, "command_topic", b->set_topic);
	if (published(st))
		cJSON_AddStringToObject(cfg, "state_topic", b->state_topic);
	cJSON *modes = cJSON_CreateArray();
	if (bri >= 0) {
		const struct cap *c = cap_at(b, bri);
		cJSON_AddBoolToObject(cfg, "brightness", true);
		if ((c->flags & HEARTH_CAP_HAS_MAX) && c->max >= 1)
			cJSON_AddNumberToObject(cfg, "brightness_scale", c->max);
		b->used[bri] = true;
	}
	if (ct >= 0) {
		light_color_temp(cfg, cap_at(b, ct), modes);
		b->used[ct] = true;
	}
	for (size_t i = 0; i < n_cmodes; i++)
		cJSON_AddItemToArray(modes, cJSON_CreateString(cmodes[i]));
	if (n_cmodes)
		b->used[col] = true;
	if (cJSON_GetArraySize(modes) == 0)
		cJSON_AddItemToArray(modes, cJSON_CreateString("brightness"));
	cJSON_AddItemToObject(cfg, "supported_color_modes", modes);
	light_extras(b, cfg);
	b->used[s] = true;
	emit(b, "light", "light", cfg);
}

/* The main entity of a device is the one on its "state" attribute. */
static bool is_main(const struct cap *c)
{
	return strcmp(c->name, "state") == 0;
}

/* Every settable binary LOCK/UNLOCK (a door lock, a child lock). */
static void locks(struct build *b)
{
	for (size_t i = 0; i < b->dev->n_caps; i++) {
		const struct cap *c = &b->dev->caps[i];
		if (b->used[i] || c->type != HEARTH_CAP_BINARY || !settable(c) ||
		    !name_usable(c->name) || !str_eq(c->value_on, "LOCK") ||
		    !str_eq(c->value_off, "UNLOCK"))
			continue;
		bool main = is_main(c);
		const char *object = main ? "lock" : c->name;
		cJSON *cfg = entity(b, "lock", object, main, c->name);
		if (!cfg)
			return;
		add_state(b, cfg, c, "state_topic", "value_template");
		cJSON_AddStringToObject(cfg, "command_topic", b->set_topic);
		char *on = set_payload(c->name, c->value_on), *off = set_payload(c->name, c->value_off);
		add_string(cfg, "payload_lock", on);
		add_string(cfg, "payload_unlock", off);
		cJSON_free(on);
		cJSON_free(off);
		cJSON_AddStringToObject(cfg, "state_locked", "LOCK");
		cJSON_AddStringToObject(cfg, "state_unlocked", "UNLOCK");
		if (!main)
			cJSON_AddStringToObject(cfg, "entity_category", "config");
		b->used[i] = true;
		emit(b, "lock", object, cfg);
	}
}

static void cover_position(struct build *b, cJSON *cfg, int p)
{
	const struct cap *c = cap_at(b, p);
	char tpl[HA_TEXT_MAX];
	if (published(c)) {
		value_template(c->name, tpl, sizeof(tpl));
		cJSON_AddStringToObject(cfg, "position_topic", b->state_topic);
		cJSON_AddStringToObject(cfg, "position_template", tpl);
	}
	cJSON_AddStringToObject(cfg, "set_position_topic", b->set_topic);
	add_fmt(cfg, "set_position_template", "{\"%s\": {{ position }}}", c->name);
	if (c->flags & HEARTH_CAP_HAS_MAX)
		cJSON_AddNumberToObject(cfg, "position_open", c->max);
	if (c->flags & HEARTH_CAP_HAS_MIN)
		cJSON_AddNumberToObject(cfg, "position_closed", c->min);
	b->used[p] = true;
}

/* A cover: a settable "state" enum with OPEN and CLOSE (zigbee2mqtt's
 * shape), a settable "position", or both. */
static void cover(struct build *b)
{
	int s = find_cap(b, "state", HEARTH_CAP_ENUM);
	int p = find_cap(b, "position", HEARTH_CAP_NUMERIC);
	const struct cap *st = cap_at(b, s);
	if (st && (!settable(st) || !has_value(st, "OPEN") || !has_value(st, "CLOSE")))
		st = NULL;
	if (p >= 0 && !settable(cap_at(b, p)))
		p = -1;
	if (!st && p < 0)
		return;
	cJSON *cfg = entity(b, "cover", "cover", true, NULL);
	if (!cfg)
		return;
	if (st) {
		add_state(b, cfg, st, "state_topic", "value_template");
		cJSON_AddStringToObject(cfg, "command_topic", b->set_topic);
		cJSON_AddStringToObject(cfg, "payload_open", "{\"state\":\"OPEN\"}");
		cJSON_AddStringToObject(cfg, "payload_close", "{\"state\":\"CLOSE\"}");
		if (has_value(st, "STOP"))
			cJSON_AddStringToObject(cfg, "payload_stop", "{\"state\":\"STOP\"}");
		else
			cJSON_AddNullToObject(cfg, "payload_stop");
		cJSON_AddStringToObject(cfg, "state_open", "OPEN");
		cJSON_AddStringToObject(cfg, "state_closed", "CLOSE");
		if (has_value(st, "STOP"))
			cJSON_AddStringToObject(cfg, "state_stopped", "STOP");
		b->used[s] = true;
	}
	if (p >= 0)
		cover_position(b, cfg, p);
	emit(b, "cover", "cover", cfg);
}

/* Heating setpoints by the names zigbee2mqtt and others give them. */
static const char *const setpoints[] = {"occupied_heating_setpoint", "current_heating_setpoint",
					"target_temperature"};
/* HA's HVAC modes: a device's system_mode values outside these are left out. */
static const char *const hvac_modes[] = {"off", "heat", "cool", "auto", "dry", "fan_only",
					 "heat_cool"};

static void climate_modes(struct build *b, cJSON *cfg)
{
	int m = find_cap(b, "system_mode", HEARTH_CAP_ENUM);
	const struct cap *c = cap_at(b, m);
	cJSON *modes = cJSON_CreateArray();
	for (size_t i = 0; c && settable(c) && i < sizeof(hvac_modes) / sizeof(hvac_modes[0]); i++)
		if (has_value(c, hvac_modes[i]))
			cJSON_AddItemToArray(modes, cJSON_CreateString(hvac_modes[i]));
	if (cJSON_GetArraySize(modes) == 0) {
		cJSON_AddItemToArray(modes, cJSON_CreateString("heat"));
		cJSON_AddItemToObject(cfg, "modes", modes);
		return;
	}
	cJSON_AddItemToObject(cfg, "modes", modes);
	add_command(b, cfg, c, "mode_command_topic", "mode_command_template", true);
	add_state(b, cfg, c, "mode_state_topic", "mode_state_template");
	b->used[m] = true;
}

static void climate_current(struct build *b, cJSON *cfg)
{
	int t = find_cap(b, "local_temperature", HEARTH_CAP_NUMERIC);
	if (t >= 0 && published(cap_at(b, t))) {
		add_state(b, cfg, cap_at(b, t), "current_temperature_topic",
			  "current_temperature_template");
		b->used[t] = true;
	}
	int r = find_cap(b, "running_state", HEARTH_CAP_ENUM);
	if (r >= 0 && published(cap_at(b, r))) {
		char path[HA_TEXT_MAX / 2];
		json_path("running_state", path, sizeof(path));
		cJSON_AddStringToObject(cfg, "action_topic", b->state_topic);
		add_fmt(cfg, "action_template",
			"{%% set a = {'idle': 'idle', 'heat': 'heating', 'cool': 'cooling', "
			"'fan_only': 'fan'} %%}{{ a.get(%s, 'idle') }}",
			path);
		b->used[r] = true;
	}
}

/* A thermostat: a settable heating setpoint, with the room temperature,
 * system_mode and running_state when the device has them. */
static void climate(struct build *b)
{
	int sp = -1;
	for (size_t i = 0; sp < 0 && i < sizeof(setpoints) / sizeof(setpoints[0]); i++)
		sp = find_cap(b, setpoints[i], HEARTH_CAP_NUMERIC);
	const struct cap *c = cap_at(b, sp);
	if (!c || !settable(c))
		return;
	cJSON *cfg = entity(b, "climate", "climate", true, NULL);
	if (!cfg)
		return;
	add_command(b, cfg, c, "temperature_command_topic", "temperature_command_template", false);
	add_state(b, cfg, c, "temperature_state_topic", "temperature_state_template");
	if (c->flags & HEARTH_CAP_HAS_MIN)
		cJSON_AddNumberToObject(cfg, "min_temp", c->min);
	if (c->flags & HEARTH_CAP_HAS_MAX)
		cJSON_AddNumberToObject(cfg, "max_temp", c->max);
	cJSON_AddNumberToObject(cfg, "temp_step", (c->flags & HEARTH_CAP_HAS_STEP) ? c->step : 0.5);
	cJSON_AddStringToObject(cfg, "temperature_unit",
				c->unit && strcmp(c->unit, "°F") == 0 ? "F" : "C");
	b->used[sp] = true;
	climate_current(b, cfg);
	climate_modes(b, cfg);
	emit(b, "climate", "climate", cfg);
}

/* A fan: a settable fan_state ON/OFF, with fan_mode as its presets. */
static void fan(struct build *b)
{
	int s = find_cap(b, "fan_state", HEARTH_CAP_BINARY);
	const struct cap *c = cap_at(b, s);
	if (!c || !settable(c) || !cJSON_IsString(c->value_on) || !cJSON_IsString(c->value_off))
		return;
	cJSON *cfg = entity(b, "fan", "fan", true, NULL);
	if (!cfg)
		return;
	add_state(b, cfg, c, "state_topic", "state_value_template");
	add_command(b, cfg, c, "command_topic", "command_template", true);
	cJSON_AddStringToObject(cfg, "payload_on", c->value_on->valuestring);
	cJSON_AddStringToObject(cfg, "payload_off", c->value_off->valuestring);
	b->used[s] = true;
	int m = find_cap(b, "fan_mode", HEARTH_CAP_ENUM);
	const struct cap *mc = cap_at(b, m);
	if (mc && settable(mc)) {
		add_state(b, cfg, mc, "preset_mode_state_topic", "preset_mode_value_template");
		add_command(b, cfg, mc, "preset_mode_command_topic", "preset_mode_command_template",
			    true);
		cJSON_AddItemToObject(cfg, "preset_modes",
				      cJSON_CreateStringArray((const char *const *)mc->values,
							      (int)mc->n_values));
		b->used[m] = true;
	}
	emit(b, "fan", "fan", cfg);
}

/* ---- one entity per attribute ---------------------------------------------------------------- */

/* Binary attributes that are sensors whatever their access bits say (a
 * simulated sensor may be settable). inverted: HA's "on" is the
 * attribute's value_off (zigbee2mqtt's contact true = closed, HA's door
 * on = open). */
static const struct {
	const char *name;
	const char *device_class;
	bool inverted;
	bool diagnostic;
} binary_sensors[] = {
	{"occupancy", "occupancy", false, false},
	{"motion", "motion", false, false},
	{"presence", "presence", false, false},
	{"contact", "door", true, false},
	{"water_leak", "moisture", false, false},
	{"smoke", "smoke", false, false},
	{"gas", "gas", false, false},
	{"carbon_monoxide", "carbon_monoxide", false, false},
	{"vibration", "vibration", false, false},
	{"moving", "moving", false, false},
	{"tamper", "tamper", false, true},
	{"battery_low", "battery", false, true},
};

#define UNITS_MAX 8
/* Numeric attributes that are sensors whatever their access bits say. The
 * device class is given only when the unit is one HA accepts for it (HA
 * complains otherwise); units[0] NULL: any unit. */
static const struct {
	const char *name;
	const char *device_class;
	const char *state_class;
	const char *units[UNITS_MAX];
	bool diagnostic;
} sensors[] = {
	{"temperature", "temperature", "measurement", {"°C", "°F", "K"}, false},
	{"local_temperature", "temperature", "measurement", {"°C", "°F", "K"}, false},
	{"device_temperature", "temperature", "measurement", {"°C", "°F", "K"}, true},
	{"humidity", "humidity", "measurement", {"%"}, false},
	{"pressure", "pressure", "measurement",
	 {"hPa", "kPa", "Pa", "mbar", "bar", "psi", "inHg", "mmHg"}, false},
	{"illuminance", "illuminance", "measurement", {"lx"}, false},
	{"illuminance_lux", "illuminance", "measurement", {"lx"}, false},
	{"battery", "battery", "measurement", {"%"}, true},
	{"voltage", "voltage", "measurement", {"V", "mV"}, false},
	{"current", "current", "measurement", {"A", "mA"}, false},
	{"power", "power", "measurement", {"W", "kW"}, false},
	{"energy", "energy", "total_increasing", {"kWh", "Wh", "MWh"}, false},
	{"co2", "carbon_dioxide", "measurement", {"ppm"}, false},
	{"pm25", "pm25", "measurement", {"µg/m³"}, false},
	{"pm10", "pm10", "measurement", {"µg/m³"}, false},
	{"soil_moisture", "moisture", "measurement", {"%"}, false},
	{"frequency", "frequency", "measurement", {"Hz", "kHz"}, false},
	{"rssi", "signal_strength", "measurement", {"dBm", "dB"}, true},
	/* zigbee2mqtt gives link quality no class: HA has none for it */
	{"linkquality", NULL, "measurement", {NULL}, true},
};

static int binary_sensor_row(const char *name)
{
	for (size_t i = 0; i < sizeof(binary_sensors) / sizeof(binary_sensors[0]); i++)
		if (strcmp(binary_sensors[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int sensor_row(const char *name)
{
	for (size_t i = 0; i < sizeof(sensors) / sizeof(sensors[0]); i++)
		if (strcmp(sensors[i].name, name) == 0)
			return (int)i;
	return -1;
}

static bool unit_fits(int row, const char *unit)
{
	if (!sensors[row].units[0])
		return true;
	for (size_t i = 0; unit && i < UNITS_MAX && sensors[row].units[i]; i++)
		if (strcmp(sensors[row].units[i], unit) == 0)
			return true;
	return false;
}

static void binary_sensor(struct build *b, const struct cap *c)
{
	int row = binary_sensor_row(c->name);
	cJSON *cfg = entity(b, "binary_sensor", c->name, false, c->name);
	if (!cfg)
		return;
	add_state(b, cfg, c, "state_topic", "value_template");
	bool inverted = row >= 0 && binary_sensors[row].inverted;
	char on[256], off[256];
	rendered(inverted ? c->value_off : c->value_on, on, sizeof(on));
	rendered(inverted ? c->value_on : c->value_off, off, sizeof(off));
	cJSON_AddStringToObject(cfg, "payload_on", on);
	cJSON_AddStringToObject(cfg, "payload_off", off);
	if (row >= 0)
		cJSON_AddStringToObject(cfg, "device_class", binary_sensors[row].device_class);
	if (row >= 0 && binary_sensors[row].diagnostic)
		cJSON_AddStringToObject(cfg, "entity_category", "diagnostic");
	emit(b, "binary_sensor", c->name, cfg);
}

static void switch_entity(struct build *b, const struct cap *c)
{
	bool main = is_main(c);
	cJSON *cfg = entity(b, "switch", c->name, main, c->name);
	if (!cfg)
		return;
	add_state(b, cfg, c, "state_topic", "value_template");
	cJSON_AddStringToObject(cfg, "command_topic", b->set_topic);
	char *on = set_payload(c->name, c->value_on), *off = set_payload(c->name, c->value_off);
	add_string(cfg, "payload_on", on);
	add_string(cfg, "payload_off", off);
	cJSON_free(on);
	cJSON_free(off);
	char von[256], voff[256];
	rendered(c->value_on, von, sizeof(von));
	rendered(c->value_off, voff, sizeof(voff));
	cJSON_AddStringToObject(cfg, "state_on", von);
	cJSON_AddStringToObject(cfg, "state_off", voff);
	emit(b, "switch", c->name, cfg);
}

static void binary(struct build *b, const struct cap *c)
{
	if (binary_sensor_row(c->name) >= 0 || !settable(c)) {
		if (published(c))
			binary_sensor(b, c);
	} else {
		switch_entity(b, c);
	}
}

static void numeric_sensor(struct build *b, const struct cap *c)
{
	int row = sensor_row(c->name);
	cJSON *cfg = entity(b, "sensor", c->name, false, c->name);
	if (!cfg)
		return;
	add_state(b, cfg, c, "state_topic", "value_template");
	add_string(cfg, "unit_of_measurement", c->unit);
	if (row >= 0 && sensors[row].device_class && unit_fits(row, c->unit))
		cJSON_AddStringToObject(cfg, "device_class", sensors[row].device_class);
	cJSON_AddStringToObject(cfg, "state_class", row >= 0 ? sensors[row].state_class
							     : "measurement");
	if (row >= 0 && sensors[row].diagnostic)
		cJSON_AddStringToObject(cfg, "entity_category", "diagnostic");
	if (row >= 0 && strcmp(c->name, "linkquality") == 0) {
		cJSON_AddBoolToObject(cfg, "enabled_by_default", false);
		cJSON_AddStringToObject(cfg, "icon", "mdi:signal");
	}
	emit(b, "sensor", c->name, cfg);
}

/* HA's number entity defaults to 1..100: always say the range. */
#define NUMBER_UNBOUNDED 1e9

static void number(struct build *b, const struct cap *c)
{
	cJSON *cfg = entity(b, "number", c->name, false, c->name);
	if (!cfg)
		return;
	add_state(b, cfg, c, "state_topic", "value_template");
	add_command(b, cfg, c, "command_topic", "command_template", false);
	bool bounded = (c->flags & HEARTH_CAP_HAS_MIN) && (c->flags & HEARTH_CAP_HAS_MAX);
	cJSON_AddNumberToObject(cfg, "min", (c->flags & HEARTH_CAP_HAS_MIN) ? c->min
									   : -NUMBER_UNBOUNDED);
	cJSON_AddNumberToObject(cfg, "max", (c->flags & HEARTH_CAP_HAS_MAX) ? c->max
									   : NUMBER_UNBOUNDED);
	cJSON_AddNumberToObject(cfg, "step", (c->flags & HEARTH_CAP_HAS_STEP) ? c->step : 1);
	if (!bounded)
		cJSON_AddStringToObject(cfg, "mode", "box");
	add_string(cfg, "unit_of_measurement", c->unit);
	cJSON_AddStringToObject(cfg, "entity_category", "config");
	emit(b, "number", c->name, cfg);
}

static void numeric(struct build *b, const struct cap *c)
{
	if (sensor_row(c->name) >= 0 || !settable(c)) {
		if (published(c))
			numeric_sensor(b, c);
	} else {
		number(b, c);
	}
}

/* Button actions come as events on <base>/bridge/event (never retained, so
 * HA sees each press once); the template keeps this device's. */
static void event(struct build *b, const struct cap *c)
{
	char id[2 * REGISTRY_NAME_MAX + 1];
	size_t n = 0;
	for (const char *p = b->dev->id; *p && n + 2 < sizeof(id); p++) {
		if (*p == '\\' || *p == '\'')
			id[n++] = '\\';
		id[n++] = *p;
	}
	id[n] = '\0';
	cJSON *cfg = entity(b, "event", c->name, false, c->name);
	if (!cfg)
		return;
	add_fmt(cfg, "state_topic", "%s/bridge/event", b->ha->hub->base);
	char path[HA_TEXT_MAX / 2];
	snprintf(path, sizeof(path), "value_json.data%s%s%s", is_identifier(c->name) ? "." : "['",
		 c->name, is_identifier(c->name) ? "" : "']");
	add_fmt(cfg, "value_template",
		"{%% if value_json.type == 'device_event' and value_json.data.id == '%s' and "
		"value_json.data.event == '%s' %%}{{ {'event_type': %s} | to_json }}{%% endif %%}",
		id, c->name, path);
	cJSON_AddItemToObject(cfg, "event_types",
			      cJSON_CreateStringArray((const char *const *)c->values,
						      (int)c->n_values));
	emit(b, "event", c->name, cfg);
}

/* "action", or "action_<n>" for a device with several buttons. */
static bool is_action(const char *name)
{
	return strcmp(name, "action") == 0 || strncmp(name, "action_", 7) == 0;
}

static void enumeration(struct build *b, const struct cap *c)
{
	cJSON *options = cJSON_CreateStringArray((const char *const *)c->values, (int)c->n_values);
	if (is_action(c->name) && published(c)) {
		cJSON_Delete(options);
		event(b, c);
		return;
	}
	const char *component = settable(c) ? "select" : "sensor";
	cJSON *cfg = published(c) || settable(c) ? entity(b, component, c->name, false, c->name)
						 : NULL;
	if (!cfg) {
		cJSON_Delete(options);
		return;
	}
	add_state(b, cfg, c, "state_topic", "value_template");
	if (settable(c)) {
		add_command(b, cfg, c, "command_topic", "command_template", true);
		cJSON_AddItemToObject(cfg, "options", options);
		cJSON_AddStringToObject(cfg, "entity_category", "config");
	} else {
		cJSON_AddStringToObject(cfg, "device_class", "enum");
		cJSON_AddItemToObject(cfg, "options", options);
	}
	emit(b, component, c->name, cfg);
}

/* Settable text is a text entity (optimistic when write-only), published
 * text a sensor. */
static void text(struct build *b, const struct cap *c)
{
	const char *component = settable(c) ? "text" : "sensor";
	if (!settable(c) && !published(c))
		return;
	cJSON *cfg = entity(b, component, c->name, false, c->name);
	if (!cfg)
		return;
	add_state(b, cfg, c, "state_topic", "value_template");
	if (settable(c))
		add_command(b, cfg, c, "command_topic", "command_template", true);
	emit(b, component, c->name, cfg);
}

/* Composites other than a light's colour and lists have no HA entity. */
static void single(struct build *b, const struct cap *c)
{
	switch (c->type) {
	case HEARTH_CAP_BINARY:
		binary(b, c);
		break;
	case HEARTH_CAP_NUMERIC:
		numeric(b, c);
		break;
	case HEARTH_CAP_ENUM:
		enumeration(b, c);
		break;
	case HEARTH_CAP_TEXT:
		text(b, c);
		break;
	default:
		break;
	}
}

/* ---- a device's configs ---------------------------------------------------------------------- */

static int build_init(struct build *b, const struct ha_discovery *ha, const struct device *dev)
{
	memset(b, 0, sizeof(*b));
	b->ha = ha;
	b->dev = dev;
	topic_safe(dev->id, b->safe, sizeof(b->safe));
	slugify(dev->name, b->slug, sizeof(b->slug));
	const char *base = ha->hub->base;
	snprintf(b->state_topic, sizeof(b->state_topic), "%s/%s", base, dev->name);
	snprintf(b->set_topic, sizeof(b->set_topic), "%s/%s/set", base, dev->name);
	snprintf(b->avail_topic, sizeof(b->avail_topic), "%s/%s/availability", base, dev->name);
	b->out = cJSON_CreateObject();
	return b->out ? 0 : -ENOMEM;
}

cJSON *ha_discovery_configs(const struct ha_discovery *ha, const struct device *dev)
{
	struct build b;
	if (!ha || !dev || build_init(&b, ha, dev))
		return NULL;
	light(&b);
	locks(&b);
	cover(&b);
	climate(&b);
	fan(&b);
	for (size_t i = 0; i < dev->n_caps && i < CAP_MAX_PER_DEVICE; i++)
		if (!b.used[i] && name_usable(dev->caps[i].name))
			single(&b, &dev->caps[i]);
	return b.out;
}

cJSON *ha_discovery_bridge_configs(const struct ha_discovery *ha)
{
	cJSON *out = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
	if (!out || !cfg) {
		cJSON_Delete(out);
		cJSON_Delete(cfg);
		return NULL;
	}
	const char *base = ha->hub->base;
	cJSON_AddStringToObject(cfg, "name", "Connection state");
	cJSON_AddStringToObject(cfg, "unique_id", BRIDGE_NODE "_connection_state");
	cJSON_AddStringToObject(cfg, "default_entity_id",
				"binary_sensor." BRIDGE_NODE "_connection_state");
	add_fmt(cfg, "state_topic", "%s/bridge/state", base);
	cJSON_AddStringToObject(cfg, "value_template", "{{ value_json.state }}");
	cJSON_AddStringToObject(cfg, "payload_on", "online");
	cJSON_AddStringToObject(cfg, "payload_off", "offline");
	cJSON_AddStringToObject(cfg, "device_class", "connectivity");
	cJSON_AddStringToObject(cfg, "entity_category", "diagnostic");
	cJSON *dev = cJSON_AddObjectToObject(cfg, "device");
	cJSON *ids = cJSON_AddArrayToObject(dev, "identifiers");
	cJSON_AddItemToArray(ids, cJSON_CreateString(BRIDGE_NODE));
	cJSON_AddStringToObject(dev, "name", "hearth bridge");
	cJSON_AddStringToObject(dev, "manufacturer", "hearth");
	cJSON_AddStringToObject(dev, "model", "hearth hub");
	cJSON_AddStringToObject(dev, "sw_version", HEARTH_VERSION);
	cJSON_AddItemToObject(cfg, "origin", origin());
	char topic[HA_TOPIC_MAX];
	snprintf(topic, sizeof(topic), "%s/binary_sensor/" BRIDGE_NODE "/connection_state/config",
		 ha->prefix);
	cJSON_AddItemToObject(out, topic, cfg);
	return out;
}

/* ---- what was published ---------------------------------------------------------------------- */

static size_t bucket_of(const char *id)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (size_t)(h % HA_BUCKETS);
}

static struct record **record_slot(struct ha_discovery *ha, const char *id)
{
	struct record **p = &ha->buckets[bucket_of(id)];
	while (*p && strcmp((*p)->id, id) != 0)
		p = &(*p)->next;
	return p;
}

static void record_free(struct record *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->list);
	free(r);
}

/* "component/object" of <prefix>/<component>/<node>/<object>/config. */
static bool topic_entry(const struct ha_discovery *ha, const char *topic, char *out, size_t cap)
{
	size_t pl = strlen(ha->prefix);
	if (strncmp(topic, ha->prefix, pl) != 0 || topic[pl] != '/')
		return false;
	const char *comp = topic + pl + 1, *node = strchr(comp, '/');
	const char *obj = node ? strchr(node + 1, '/') : NULL;
	const char *end = obj ? strchr(obj + 1, '/') : NULL;
	if (!end)
		return false;
	int n = snprintf(out, cap, "%.*s/%.*s", (int)(node - comp), comp, (int)(end - obj - 1),
			 obj + 1);
	return n > 0 && (size_t)n < cap;
}

/* "\nlight/light\nsensor/battery\n": one line per config. */
static char *entry_list(const struct ha_discovery *ha, const cJSON *configs)
{
	size_t cap = 2, used = 1;
	const cJSON *c;
	cJSON_ArrayForEach(c, configs)
	cap += strlen(c->string) + 1;
	char *list = malloc(cap);
	if (!list)
		return NULL;
	list[0] = '\n';
	cJSON_ArrayForEach(c, configs)
	{
		char e[HA_TOPIC_MAX];
		if (!topic_entry(ha, c->string, e, sizeof(e)))
			continue;
		used += (size_t)snprintf(list + used, cap - used, "%s\n", e);
	}
	list[used] = '\0';
	return list;
}

static bool list_has(const char *list, const char *entry)
{
	size_t n = strlen(entry);
	for (const char *p = list; p && (p = strstr(p, entry)); p++)
		if (p > list && p[-1] == '\n' && p[n] == '\n')
			return true;
	return false;
}

static void publish_text(struct ha_discovery *ha, const char *topic, const char *text)
{
	struct hearth_hub *hub = ha->hub;
	int rc = mqtt_publish(hub->mqtt, topic, text, strlen(text), hub->config->mqtt.qos, true);
	if (rc && rc != -ENOTCONN)
		log_error(src, "publish to %s failed: %s", topic, strerror(-rc));
}

/* Clear the configs of list for device id that keep does not hold. */
static void clear_stale(struct ha_discovery *ha, const char *id, const char *list,
			const char *keep)
{
	char safe[HA_SAFE_MAX], topic[HA_TOPIC_MAX];
	topic_safe(id, safe, sizeof(safe));
	for (const char *p = list ? list + 1 : NULL; p && *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		char e[HA_TOPIC_MAX];
		snprintf(e, sizeof(e), "%.*s", (int)(nl - p), p);
		const char *slash = strchr(e, '/');
		if (slash && !(keep && list_has(keep, e))) {
			snprintf(topic, sizeof(topic), "%s/%.*s/hearth_%s/%s/config", ha->prefix,
				 (int)(slash - e), e, safe, slash + 1);
			publish_text(ha, topic, "");
		}
		p = nl + 1;
	}
}

static void publish_configs(struct ha_discovery *ha, const cJSON *configs)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, configs)
	{
		char *text = cJSON_PrintUnformatted(c);
		if (!text) {
			log_error(src, "out of memory printing %s", c->string);
			continue;
		}
		publish_text(ha, c->string, text);
		cJSON_free(text);
	}
}

static bool connected(const struct ha_discovery *ha)
{
	return ha->hub->mqtt && mqtt_is_connected(ha->hub->mqtt);
}

/* Publish one device's configs and clear those it no longer has. */
static void publish_device(struct ha_discovery *ha, const struct device *dev)
{
	if (!connected(ha))
		return;
	cJSON *configs = ha_discovery_configs(ha, dev);
	char *list = configs ? entry_list(ha, configs) : NULL;
	if (!list) {
		cJSON_Delete(configs);
		log_error(src, "out of memory building discovery for %s", dev->id);
		return;
	}
	struct record **slot = record_slot(ha, dev->id), *r = *slot;
	if (r)
		clear_stale(ha, r->id, r->list, list);
	publish_configs(ha, configs);
	cJSON_Delete(configs);
	if (!r && (r = calloc(1, sizeof(*r))) && !(r->id = strdup(dev->id))) {
		free(r);
		r = NULL;
	}
	if (!r) {
		free(list);
		return;
	}
	free(r->list);
	r->list = list;
	r->removed = false;
	if (!*slot)
		*slot = r;
}

/* Clear what devices that went away while the broker was away left. */
static void clear_tombstones(struct ha_discovery *ha)
{
	for (size_t i = 0; i < HA_BUCKETS; i++) {
		for (struct record **p = &ha->buckets[i]; *p;) {
			struct record *r = *p;
			if (!r->removed) {
				p = &r->next;
				continue;
			}
			clear_stale(ha, r->id, r->list, NULL);
			*p = r->next;
			record_free(r);
		}
	}
}

/* ---- the module's life ----------------------------------------------------------------------- */

static void on_batch(uv_timer_t *t)
{
	struct ha_discovery *ha = t->data;
	for (size_t n = 0; ha->cursor && n < HA_BATCH && connected(ha); n++) {
		const struct device *dev = ha->cursor;
		ha->cursor = registry_next(dev);
		publish_device(ha, dev);
	}
	if (ha->cursor && connected(ha)) {
		uv_timer_start(&ha->timer, on_batch, 0, 0);
		return;
	}
	if (ha->republishing && connected(ha))
		log_info(src, "discovery published for %zu devices under %s/",
			 registry_count(ha->hub->registry), ha->prefix);
	ha->republishing = false;
	ha->cursor = NULL;
}

int ha_discovery_new(struct hearth_hub *hub, struct ha_discovery **out)
{
	*out = NULL;
	if (!hub->config->homeassistant.enabled)
		return 0;
	struct ha_discovery *ha = calloc(1, sizeof(*ha));
	if (!ha)
		return -ENOMEM;
	ha->hub = hub;
	ha->prefix = hub->config->homeassistant.discovery_prefix;
	snprintf(ha->status_topic, sizeof(ha->status_topic), "%s/status", ha->prefix);
	uv_timer_init(hub->loop, &ha->timer);
	ha->timer.data = ha;
	ha->timer_open = true;
	if (hub->mqtt)
		mqtt_subscribe(hub->mqtt, ha->status_topic, hub->config->mqtt.qos);
	*out = ha;
	return 0;
}

void ha_discovery_free(struct ha_discovery *ha)
{
	if (!ha)
		return;
	if (ha->timer_open) {
		uv_close((uv_handle_t *)&ha->timer, NULL);
		/* the close completes on the next turn; the memory must outlive it */
		uv_run(ha->hub->loop, UV_RUN_NOWAIT);
	}
	for (size_t i = 0; i < HA_BUCKETS; i++) {
		while (ha->buckets[i]) {
			struct record *r = ha->buckets[i];
			ha->buckets[i] = r->next;
			record_free(r);
		}
	}
	free(ha);
}

void ha_discovery_publish_all(struct ha_discovery *ha)
{
	if (!ha || !connected(ha))
		return;
	cJSON *bridge = ha_discovery_bridge_configs(ha);
	publish_configs(ha, bridge);
	cJSON_Delete(bridge);
	clear_tombstones(ha);
	ha->cursor = registry_first(ha->hub->registry);
	ha->republishing = true;
	uv_timer_start(&ha->timer, on_batch, 0, 0);
}

void ha_discovery_device(struct ha_discovery *ha, const struct device *dev)
{
	if (ha && dev)
		publish_device(ha, dev);
}

void ha_discovery_device_removed(struct ha_discovery *ha, const struct device *dev)
{
	if (!ha || !dev)
		return;
	if (ha->cursor == dev)
		ha->cursor = registry_next(dev);
	struct record **slot = record_slot(ha, dev->id), *r = *slot;
	/* also what an earlier run published and this one has not yet */
	cJSON *configs = ha_discovery_configs(ha, dev);
	char *now = configs ? entry_list(ha, configs) : NULL;
	cJSON_Delete(configs);
	if (!connected(ha)) {
		if (r) {
			r->removed = true;
		} else if (now && (r = calloc(1, sizeof(*r))) && (r->id = strdup(dev->id))) {
			r->list = now;
			now = NULL;
			r->removed = true;
			*slot = r;
		} else {
			free(r);
		}
		free(now);
		return;
	}
	if (r) {
		clear_stale(ha, r->id, r->list, now);
		*slot = r->next;
		record_free(r);
	}
	clear_stale(ha, dev->id, now, NULL);
	free(now);
}

void ha_discovery_on_message(struct ha_discovery *ha, const char *topic, const void *payload,
			     size_t len)
{
	if (!ha || strcmp(topic, ha->status_topic) != 0)
		return;
	if (len == 6 && memcmp(payload, "online", 6) == 0) {
		log_info(src, "Home Assistant is online: publishing discovery again");
		ha_discovery_publish_all(ha);
	}
}
