/*
 * Shelly Gen2+ (Plus, Pro, Gen3, Gen4) over MQTT: JSON-RPC 2.0 frames.
 * Notifications come on <prefix>/events/rpc (NotifyStatus carries what
 * changed, NotifyFullStatus everything, NotifyEvent button presses), whole
 * component statuses on <prefix>/status/<component>:<id>, availability on
 * <prefix>/online; requests go to <prefix>/rpc and their responses to
 * <src>/rpc, matched by id.
 *
 * A device's capabilities grow with the components and fields it reports:
 * switch:N, light:N, cover:N, input:N and the sensors. Channel 0 is named
 * plainly ("state", "power"), channel N gets "_N" ("state_1").
 *
 * Pure: cJSON only.
 */
#include "mqttdev.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RW (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET)
#define RO (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_GET)
#define RANGE (HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX)
#define VSTR(s) {.type = HEARTH_VALUE_STRING, .u.string = (s)}
#define VBOOL(b) {.type = HEARTH_VALUE_BOOL, .u.boolean = (b)}
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define ACTION_FIELD 0xff
#define IDX_MAX 99

enum conv {
	C_NUM,	 /* number as it is */
	C_ONOFF, /* bool -> "ON"/"OFF" */
	C_BOOL,	 /* bool as it is */
	C_KWH,	 /* Wh -> kWh */
	C_COVER, /* "open"/"closed"/... -> OPEN/CLOSE/STOP */
};

static const char *const cover_values[] = {"OPEN", "CLOSE", "STOP"};
static const char *const input_events[] = {"single_push", "double_push", "triple_push",
					   "long_push",	  "btn_down",	 "btn_up"};

/* One status field and the capability it becomes. */
struct field {
	const char *path;
	struct hearth_capability cap; /* name is the base name */
	enum conv conv;
};

#define F_NUM(p, n, u) {p, {.name = n, .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = u}, C_NUM}
#define F_METERING                                                                              \
	F_NUM("apower", "power", "W"), F_NUM("voltage", "voltage", "V"),                        \
		F_NUM("current", "current", "A"),                                               \
		{"aenergy.total",                                                               \
		 {.name = "energy", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "kWh"},   \
		 C_KWH},                                                                        \
		F_NUM("temperature.tC", "device_temperature", "°C")

#define F_OUTPUT                                                                                \
	{"output",                                                                              \
	 {.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),     \
	  .value_off = VSTR("OFF")},                                                            \
	 C_ONOFF}

static const struct field switch_fields[] = {F_OUTPUT, F_METERING};
static const struct field light_fields[] = {
	F_OUTPUT,
	{"brightness",
	 {.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "%",
	  .flags = RANGE, .min = 0, .max = 100},
	 C_NUM},
	F_METERING,
};
static const struct field cover_fields[] = {
	{"state",
	 {.name = "state", .type = HEARTH_CAP_ENUM, .access = RW, .values = cover_values,
	  .n_values = 3},
	 C_COVER},
	{"current_pos",
	 {.name = "position", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "%",
	  .flags = RANGE, .min = 0, .max = 100},
	 C_NUM},
	F_METERING,
};
static const struct field input_fields[] = {
	{"state",
	 {.name = "input", .type = HEARTH_CAP_BINARY, .access = RO, .value_on = VBOOL(true),
	  .value_off = VBOOL(false)},
	 C_BOOL},
};
static const struct field temperature_fields[] = {F_NUM("tC", "temperature", "°C")};
static const struct field humidity_fields[] = {F_NUM("rh", "humidity", "%")};
static const struct field devicepower_fields[] = {F_NUM("battery.percent", "battery", "%")};
static const struct field illuminance_fields[] = {F_NUM("lux", "illuminance", "lx")};
static const struct field smoke_fields[] = {
	{"alarm",
	 {.name = "smoke", .type = HEARTH_CAP_BINARY, .access = RO, .value_on = VBOOL(true),
	  .value_off = VBOOL(false)},
	 C_BOOL},
};
static const struct field wifi_fields[] = {F_NUM("rssi", "rssi", "dBm")};

static const struct {
	const char *name;
	const struct field *fields;
	size_t n;
} types[SH_TYPES] = {
	[SH_SWITCH] = {"switch", switch_fields, N(switch_fields)},
	[SH_LIGHT] = {"light", light_fields, N(light_fields)},
	[SH_COVER] = {"cover", cover_fields, N(cover_fields)},
	[SH_INPUT] = {"input", input_fields, N(input_fields)},
	[SH_TEMPERATURE] = {"temperature", temperature_fields, N(temperature_fields)},
	[SH_HUMIDITY] = {"humidity", humidity_fields, N(humidity_fields)},
	[SH_DEVICEPOWER] = {"devicepower", devicepower_fields, N(devicepower_fields)},
	[SH_ILLUMINANCE] = {"illuminance", illuminance_fields, N(illuminance_fields)},
	[SH_SMOKE] = {"smoke", smoke_fields, N(smoke_fields)},
	[SH_WIFI] = {"wifi", wifi_fields, N(wifi_fields)},
};

/* ---- set up ------------------------------------------------------------------------------- */

/* "shellyplus1pm-a8032ab12345" is a Shelly Plus 1PM. */
static void model_from_id(const char *id, char *out, size_t cap)
{
	const char *dash = strrchr(id, '-');
	size_t n = dash && strncmp(id, "shelly", 6) == 0 ? (size_t)(dash - id) : strlen(id);
	snprintf(out, cap, "%.*s", (int)n, id);
}

int shelly_init(struct shelly *s, const char *prefix)
{
	memset(s, 0, sizeof(*s));
	if (!md_topic_ok(prefix) || strlen(prefix) + 16 >= MD_TOPIC_MAX)
		return -EINVAL;
	const char *last = strrchr(prefix, '/');
	last = last ? last + 1 : prefix;
	if (strlen(last) >= sizeof(s->id))
		return -EINVAL;
	snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
	snprintf(s->id, sizeof(s->id), "%s", last);
	model_from_id(s->id, s->model, sizeof(s->model));
	return 0;
}

/* "switch:0" -> SH_SWITCH, 0; "wifi" -> SH_WIFI, 0. -1 for others. */
static int component(const char *key, int *idx)
{
	const char *colon = strchr(key, ':');
	size_t n = colon ? (size_t)(colon - key) : strlen(key);
	*idx = 0;
	if (colon) {
		char *end;
		long v = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end || v < 0 || v > IDX_MAX)
			return -1;
		*idx = (int)v;
	}
	for (int t = 0; t < SH_TYPES; t++)
		if (strlen(types[t].name) == n && strncmp(types[t].name, key, n) == 0)
			return t;
	return -1;
}

static void channel_name(const char *base, int idx, char *out, size_t cap)
{
	if (idx == 0)
		snprintf(out, cap, "%s", base);
	else
		snprintf(out, cap, "%s_%d", base, idx);
}

/* The capability for (type, idx, field), added when new. */
static int ensure_cap(struct shelly *s, int type, int idx, int field,
		      const struct hearth_capability *tmpl, struct mstate *out)
{
	char name[MD_NAME_MAX];
	channel_name(tmpl->name, idx, name, sizeof(name));
	int i = mcaps_find(&s->caps, name);
	if (i >= 0)
		return i;
	struct hearth_capability c = *tmpl;
	c.name = name;
	i = mcaps_add(&s->caps, &c);
	if (i < 0)
		return i;
	s->refs[i] = (struct sh_ref){(uint8_t)type, (uint8_t)idx, (uint8_t)field};
	out->caps_changed = true;
	return i;
}

static int action_cap(struct shelly *s, int idx, struct mstate *out)
{
	struct hearth_capability c = {.name = "action", .type = HEARTH_CAP_ENUM,
				      .access = HEARTH_ACCESS_PUBLISHED, .values = input_events,
				      .n_values = N(input_events)};
	return ensure_cap(s, SH_INPUT, idx, ACTION_FIELD, &c, out);
}

/* ---- status ------------------------------------------------------------------------------- */

static const char *cover_state(const char *shelly)
{
	static const struct {
		const char *from, *to;
	} map[] = {{"open", "OPEN"},   {"opening", "OPEN"},  {"closed", "CLOSE"},
		   {"closing", "CLOSE"}, {"stopped", "STOP"}};
	for (size_t i = 0; i < N(map); i++)
		if (strcmp(map[i].from, shelly) == 0)
			return map[i].to;
	return NULL;
}

static void put_value(const struct mcap *c, enum conv conv, const cJSON *v, struct mstate *out)
{
	switch (conv) {
	case C_NUM:
	case C_KWH:
		if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
			mstate_num(out, c->name, conv == C_KWH ? v->valuedouble / 1000 : v->valuedouble);
		break;
	case C_ONOFF:
		if (cJSON_IsBool(v))
			mstate_str(out, c->name, cJSON_IsTrue(v) ? "ON" : "OFF");
		break;
	case C_BOOL:
		if (cJSON_IsBool(v))
			mstate_bool(out, c->name, cJSON_IsTrue(v));
		break;
	case C_COVER: {
		const char *st = cJSON_IsString(v) ? cover_state(v->valuestring) : NULL;
		if (st)
			mstate_str(out, c->name, st);
		break;
	}
	}
}

static bool usable(const struct field *f, const cJSON *v)
{
	switch (f->conv) {
	case C_NUM:
	case C_KWH:
		return cJSON_IsNumber(v);
	case C_ONOFF:
	case C_BOOL:
		return cJSON_IsBool(v);
	case C_COVER:
		return cJSON_IsString(v);
	}
	return false;
}

static int apply_status(struct shelly *s, const char *key, const cJSON *obj, struct mstate *out)
{
	int idx, type = component(key, &idx);
	if (type < 0 || !cJSON_IsObject(obj))
		return 0; /* sys, cloud, mqtt, ...: nothing to report */
	for (size_t f = 0; f < types[type].n; f++) {
		const struct field *fd = &types[type].fields[f];
		const cJSON *v = md_path(obj, fd->path);
		if (!usable(fd, v))
			continue;
		int i = ensure_cap(s, type, idx, (int)f, &fd->cap, out);
		if (i >= 0)
			put_value(&s->caps.caps[i], fd->conv, v, out);
	}
	/* an input in button mode has no state: it sends events */
	if (type == SH_INPUT && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, "state")))
		action_cap(s, idx, out);
	return 0;
}

int shelly_apply_full(struct shelly *s, const cJSON *status, struct mstate *out)
{
	if (!cJSON_IsObject(status))
		return -EINVAL;
	const cJSON *c;
	cJSON_ArrayForEach(c, status)
	apply_status(s, c->string, c, out);
	return 0;
}

int shelly_parse_status(struct shelly *s, const char *key, const char *payload, size_t len,
			struct mstate *out)
{
	cJSON *root = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	int rc = cJSON_IsObject(root) ? apply_status(s, key, root, out) : -EINVAL;
	cJSON_Delete(root);
	return rc;
}

/* ---- notifications ------------------------------------------------------------------------ */

static bool known_event(const char *ev)
{
	for (size_t i = 0; i < N(input_events); i++)
		if (strcmp(input_events[i], ev) == 0)
			return true;
	return false;
}

static void events(struct shelly *s, const cJSON *list, struct mstate *out)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, list)
	{
		const cJSON *comp = cJSON_GetObjectItemCaseSensitive(e, "component");
		const cJSON *ev = cJSON_GetObjectItemCaseSensitive(e, "event");
		int idx;
		if (!cJSON_IsString(comp) || !cJSON_IsString(ev) ||
		    component(comp->valuestring, &idx) != SH_INPUT || !known_event(ev->valuestring))
			continue;
		int i = action_cap(s, idx, out);
		if (i < 0)
			continue;
		const char *name = s->caps.caps[i].name;
		mstate_str(out, name, ev->valuestring);
		/* the event is named after its attribute, as every plugin does */
		mstate_event(out, name, name, ev->valuestring);
	}
}

int shelly_parse_notification(struct shelly *s, const char *payload, size_t len,
			      struct mstate *out)
{
	cJSON *root = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "params");
	int rc = 0;
	if (!cJSON_IsString(method) || !cJSON_IsObject(params)) {
		rc = -EINVAL;
	} else if (strcmp(method->valuestring, "NotifyStatus") == 0 ||
		   strcmp(method->valuestring, "NotifyFullStatus") == 0) {
		shelly_apply_full(s, params, out);
	} else if (strcmp(method->valuestring, "NotifyEvent") == 0) {
		events(s, cJSON_GetObjectItemCaseSensitive(params, "events"), out);
	}
	cJSON_Delete(root);
	return rc;
}

int shelly_parse_response(const char *payload, size_t len, struct sh_response *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(id)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	out->root = root;
	out->id = id->valuedouble;
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "src");
	if (cJSON_IsString(src))
		snprintf(out->src, sizeof(out->src), "%s", src->valuestring);
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (cJSON_IsObject(err)) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
		out->error_code = cJSON_IsNumber(code) && code->valueint ? code->valueint : -1;
		snprintf(out->error, sizeof(out->error), "%s",
			 cJSON_IsString(msg) ? msg->valuestring : "error");
	} else {
		out->result = cJSON_GetObjectItemCaseSensitive(root, "result");
	}
	return 0;
}

/* ---- commands ------------------------------------------------------------------------------- */

/* What one component is asked to do. */
struct call {
	int type, idx;
	int on;	 /* -1: not given */
	double level; /* brightness or position; NAN: not given */
	const char *cover; /* OPEN/CLOSE/STOP or NULL */
};

static struct call *call_for(struct call *calls, size_t *n, size_t max, int type, int idx)
{
	for (size_t i = 0; i < *n; i++)
		if (calls[i].type == type && calls[i].idx == idx)
			return &calls[i];
	if (*n >= max)
		return NULL;
	calls[*n] = (struct call){type, idx, -1, NAN, NULL};
	return &calls[(*n)++];
}

static int take(struct call *c, const struct sh_ref *ref, const struct hearth_value *v)
{
	const struct field *f = &types[ref->type].fields[ref->field];
	if (f->conv == C_ONOFF && v->type == HEARTH_VALUE_STRING)
		c->on = strcmp(v->u.string, "ON") == 0;
	else if (f->conv == C_COVER && v->type == HEARTH_VALUE_STRING)
		c->cover = strcmp(v->u.string, "OPEN") == 0	 ? "Open"
			   : strcmp(v->u.string, "CLOSE") == 0 ? "Close"
							       : "Stop";
	else if (f->conv == C_NUM && v->type == HEARTH_VALUE_NUMBER &&
		 (f->cap.access & HEARTH_ACCESS_SET))
		c->level = v->u.number;
	else
		return -EINVAL;
	return 0;
}

/* One call into at most two RPCs (a cover may stop and move). */
static void emit_call(const struct call *c, struct sh_rpc *out, size_t max, size_t *n)
{
	struct sh_rpc *r = *n < max ? &out[*n] : NULL;
	if (!r)
		return;
	if (c->type == SH_SWITCH && c->on >= 0) {
		snprintf(r->method, sizeof(r->method), "Switch.Set");
		snprintf(r->params, sizeof(r->params), "{\"id\":%d,\"on\":%s}", c->idx,
			 c->on ? "true" : "false");
		(*n)++;
	} else if (c->type == SH_LIGHT) {
		int w = snprintf(r->params, sizeof(r->params), "{\"id\":%d", c->idx);
		if (c->on >= 0)
			w += snprintf(r->params + w, sizeof(r->params) - (size_t)w, ",\"on\":%s",
				      c->on ? "true" : "false");
		if (!isnan(c->level))
			w += snprintf(r->params + w, sizeof(r->params) - (size_t)w,
				      ",\"brightness\":%.0f", c->level);
		snprintf(r->params + w, sizeof(r->params) - (size_t)w, "}");
		snprintf(r->method, sizeof(r->method), "Light.Set");
		(*n)++;
	} else if (c->type == SH_COVER) {
		if (c->cover) {
			snprintf(r->method, sizeof(r->method), "Cover.%s", c->cover);
			snprintf(r->params, sizeof(r->params), "{\"id\":%d}", c->idx);
			(*n)++;
			r = *n < max ? &out[*n] : NULL;
		}
		if (r && !isnan(c->level)) {
			snprintf(r->method, sizeof(r->method), "Cover.GoToPosition");
			snprintf(r->params, sizeof(r->params), "{\"id\":%d,\"pos\":%.0f}", c->idx,
				 c->level);
			(*n)++;
		}
	}
}

int shelly_encode(const struct shelly *s, const struct hearth_attr *attrs, size_t n,
		  struct sh_rpc *out, size_t max, size_t *n_out)
{
	struct call calls[MD_ATTRS_MAX];
	size_t n_calls = 0;
	*n_out = 0;
	for (size_t i = 0; i < n; i++) {
		int k = attrs[i].name ? mcaps_find(&s->caps, attrs[i].name) : -1;
		const struct sh_ref *ref = k >= 0 ? &s->refs[k] : NULL;
		if (!ref || ref->field == ACTION_FIELD ||
		    !(s->caps.caps[k].c.access & HEARTH_ACCESS_SET))
			return -EINVAL;
		struct call *c = call_for(calls, &n_calls, MD_ATTRS_MAX, ref->type, ref->idx);
		if (!c || take(c, ref, &attrs[i].value))
			return -EINVAL;
	}
	for (size_t i = 0; i < n_calls; i++)
		emit_call(&calls[i], out, max, n_out);
	return *n_out ? 0 : -EINVAL;
}

/* src goes into JSON unescaped: check it needs none. */
static bool plain(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == '"' || *p == '\\')
			return false;
	return s[0] != '\0';
}

int shelly_frame(uint64_t id, const char *src, const struct sh_rpc *rpc, char *out, size_t cap)
{
	if (!plain(src) || !plain(rpc->method))
		return -EINVAL;
	int n = snprintf(out, cap, "{\"id\":%llu,\"src\":\"%s\",\"method\":\"%s\",\"params\":%s}",
			 (unsigned long long)id, src, rpc->method,
			 rpc->params[0] ? rpc->params : "{}");
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}
