/*
 * ble: BLE sensors heard in their advertisements (BTHome v2, Xiaomi
 * MiBeacon, atc1441 and pvvx thermometer firmware) become hearth devices.
 *
 * A source (bluez.c, hci.c, replay.c) delivers advertisements; each service
 * data payload goes to its decoder; the decoded values are de-duplicated
 * by packet id / frame counter (dedup.c) and reported. This file holds the
 * configuration, the device table, capabilities, reports and availability.
 *
 * Store and rule churn: a repeated advertisement is not reported again; of
 * a new one only the values that changed are reported; the RSSI goes along
 * with other changes, or alone at most once a minute.
 */
#include "ble.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BLE_VERSION "0.1.0"
#define ID_PREFIX "ble:"
#define DEV_ATTRS_MAX 48
#define DEV_ACTIONS_MAX 64
#define DEV_BUCKETS 256
#define ATTR_NAME_MAX 48
#define ACTION_MAX 48
#define EVENTS_MAX 8
#define RSSI_INTERVAL_MS 60000
#define KEYS_FILE_MAX 65536
#define DEVICES_TEXT_MAX 16384
#define OFFLINE_DEFAULT_S 900
#define OFFLINE_MAX_S 31536000
#define MAX_DEVICES_DEFAULT 512
#define MAX_DEVICES_LIMIT 10000
#define REPLAY_SPEED_MAX 1000.0
#define CHECK_MIN_MS 250
#define CHECK_MAX_MS 30000

enum auto_add { ADD_KNOWN, ADD_NONE, ADD_ALL };

/* Warnings given once per device. */
#define WARN_NOKEY 1u
#define WARN_BADKEY 2u
#define WARN_KEYLEN 4u
#define WARN_DOWNGRADE 8u
#define WARN_REPLAY 16u
#define WARN_UNKNOWN 32u
#define WARN_ATTRS 64u

/* One attribute of a device, with what was last reported for it. */
struct dattr {
	char name[ATTR_NAME_MAX];
	uint16_t field;
	bool reported;
	enum hearth_value_type type;
	double number;
	bool boolean;
	uint32_t text_hash;
};

struct bdev {
	struct bdev *next;
	uint8_t mac[6];
	char id[sizeof(ID_PREFIX) + BLE_MAC_TEXT];
	const char *name; /* from `devices`, or NULL */
	bool listed, added, online, never_offline, declared;
	bool specific;		   /* identity from a model table or the device's name */
	enum ble_format format;	   /* of the identity */
	char vendor[40], model[64], description[80];
	int64_t last_seen_ms, rssi_ms;
	bool rssi_reported;
	int8_t rssi_last;
	struct ble_dedup dedup[BLE_FMT_PVVX_ENC + 1];
	unsigned warned;
	size_t n_attrs;
	struct dattr attrs[DEV_ATTRS_MAX];
	size_t n_actions;
	char actions[DEV_ACTIONS_MAX][ACTION_MAX];
};

struct listed {
	uint8_t mac[6];
	char *name;
};

struct ble {
	const struct hearth_host *host;
	hearth_plugin_ctx *ctx;
	enum auto_add auto_add;
	int64_t offline_after_ms; /* 0: never */
	size_t max_devices;
	struct ble_keyring keys;
	struct listed *listed;
	size_t n_listed;
	struct bdev *buckets[DEV_BUCKETS];
	size_t n_devs;
	bool full_warned;
	const struct ble_source_ops *source_ops;
	struct ble_source *source;
	struct ble_source_env env;
	hearth_timer *check_timer;
	struct ble_reading reading; /* scratch, one packet at a time */
};

/* ---- small helpers ------------------------------------------------------------- */

static const struct ble_source_ops *const sources[] = {
	&ble_source_bluez,
	&ble_source_hci,
	&ble_source_replay,
};

const struct ble_source_ops *ble_source_find(const char *value, const char **arg)
{
	*arg = NULL;
	for (size_t i = 0; value && i < sizeof(sources) / sizeof(sources[0]); i++) {
		size_t n = strlen(sources[i]->name);
		if (strncmp(value, sources[i]->name, n) != 0)
			continue;
		if (sources[i]->takes_arg && value[n] == ':') {
			*arg = value + n + 1;
			return sources[i];
		}
		if (!sources[i]->takes_arg && value[n] == '\0')
			return sources[i];
	}
	return NULL;
}

static int64_t now_ms(struct ble *b)
{
	return b->host->now_ms(b->ctx);
}

static uint32_t hash_text(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static size_t bucket_of(const uint8_t mac[6])
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	return h % DEV_BUCKETS;
}

static struct bdev *dev_find(struct ble *b, const uint8_t mac[6])
{
	for (struct bdev *d = b->buckets[bucket_of(mac)]; d; d = d->next)
		if (memcmp(d->mac, mac, 6) == 0)
			return d;
	return NULL;
}

static const struct listed *listed_find(const struct ble *b, const uint8_t mac[6])
{
	for (size_t i = 0; i < b->n_listed; i++)
		if (memcmp(b->listed[i].mac, mac, 6) == 0)
			return &b->listed[i];
	return NULL;
}

/* The device entry for mac, created if the table has room (NULL if not). */
static struct bdev *dev_get(struct ble *b, const uint8_t mac[6])
{
	struct bdev *d = dev_find(b, mac);
	if (d)
		return d;
	if (b->n_devs >= b->max_devices) {
		if (!b->full_warned)
			b->host->log(b->ctx, HEARTH_LOG_WARNING,
				     "%zu devices known, the max_devices limit: ignoring new ones",
				     b->n_devs);
		b->full_warned = true;
		return NULL;
	}
	if (!(d = calloc(1, sizeof(*d))))
		return NULL;
	memcpy(d->mac, mac, 6);
	char text[BLE_MAC_TEXT];
	ble_mac_format(mac, text);
	snprintf(d->id, sizeof(d->id), ID_PREFIX "%s", text);
	const struct listed *l = listed_find(b, mac);
	d->listed = l != NULL;
	d->name = l ? l->name : NULL;
	size_t h = bucket_of(mac);
	d->next = b->buckets[h];
	b->buckets[h] = d;
	b->n_devs++;
	return d;
}

/* ---- identity and capabilities ---------------------------------------------------- */

struct format_info {
	const char *vendor, *model, *description;
	const uint8_t *fields; /* what every packet of the format carries */
};

#define FIELDS(...) ((const uint8_t[]){__VA_ARGS__, F_COUNT_})
static const struct format_info formats[] = {
	[BLE_FMT_NONE] = {"unknown", "BLE device", "BLE advertiser", FIELDS(F_RSSI)},
	[BLE_FMT_BTHOME] = {"BTHome", "BTHome v2 sensor", "BTHome v2 device", FIELDS(F_RSSI)},
	[BLE_FMT_MIBEACON] = {"Xiaomi", "MiBeacon device", "Xiaomi MiBeacon device",
			      FIELDS(F_RSSI)},
	[BLE_FMT_ATC1441] = {"ATC_MiThermometer", "atc1441 format",
			     "Thermometer with atc1441 or pvvx firmware (atc1441 format)",
			     FIELDS(F_TEMPERATURE, F_HUMIDITY, F_BATTERY, F_VOLTAGE, F_RSSI)},
	[BLE_FMT_PVVX] = {"ATC_MiThermometer", "pvvx custom format",
			  "Thermometer with pvvx firmware (custom format)",
			  FIELDS(F_TEMPERATURE, F_HUMIDITY, F_BATTERY, F_VOLTAGE, F_RSSI)},
	[BLE_FMT_ATC1441_ENC] = {"ATC_MiThermometer", "atc1441 format, encrypted",
				 "Thermometer with pvvx firmware (encrypted atc1441 format)",
				 FIELDS(F_TEMPERATURE, F_HUMIDITY, F_BATTERY, F_RSSI)},
	[BLE_FMT_PVVX_ENC] = {"ATC_MiThermometer", "pvvx custom format, encrypted",
			      "Thermometer with pvvx firmware (encrypted custom format)",
			      FIELDS(F_TEMPERATURE, F_HUMIDITY, F_BATTERY, F_RSSI)},
};
#undef FIELDS

/* Copy src into dst (cap bytes, truncated); true if dst changed. */
static bool set_text(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	if (strncmp(dst, src, n) == 0 && dst[n] == '\0')
		return false;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return true;
}

/* Vendor, model and description from the format, the MiBeacon product id
 * or a BTHome device's local name. The first identity stays, unless a
 * specific one (model table, device name) comes to replace a generic one:
 * a device that alternates formats (pvvx firmware can) or sends its name
 * only now and then must not flip between identities. True if changed. */
static bool adopt_identity(struct bdev *d, const struct ble_reading *r, const struct ble_advert *adv)
{
	const struct format_info *f = &formats[r->format];
	const char *vendor = f->vendor, *desc = f->description;
	char model[64], name[32];
	bool specific = true;
	snprintf(model, sizeof(model), "%s", f->model);
	if (r->model) {
		vendor = r->model->vendor;
		desc = r->model->description;
		snprintf(model, sizeof(model), "%s", r->model->model);
	} else if (r->format == BLE_FMT_MIBEACON) {
		snprintf(model, sizeof(model), "MiBeacon product 0x%04x", r->product_id);
	} else if (r->format == BLE_FMT_BTHOME &&
		   ble_ad_local_name(adv->ad, adv->ad_len, name, sizeof(name)) == 0) {
		/* Shelly BLU devices name themselves by model: SBHT-003C. */
		if (strncmp(name, "SB", 2) == 0 && strchr(name, '-'))
			vendor = "Shelly";
		snprintf(model, sizeof(model), "%s", name);
	} else {
		specific = false;
	}
	d->never_offline = r->trigger_based || (r->model && (r->model->flags & MI_SLEEPY));
	if (d->vendor[0] && !(specific && (!d->specific || d->format == r->format)))
		return false;
	d->format = r->format;
	d->specific = specific;
	bool changed = set_text(d->vendor, sizeof(d->vendor), vendor);
	changed |= set_text(d->model, sizeof(d->model), model);
	changed |= set_text(d->description, sizeof(d->description), desc);
	return changed;
}

static int attr_index(const struct bdev *d, const char *name)
{
	for (size_t i = 0; i < d->n_attrs; i++)
		if (strcmp(d->attrs[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* The state name of a value: "temperature", "temperature_2"; false if the
 * value is never reported. */
static bool value_attr(const struct ble_value *v, char *out, size_t cap)
{
	const char *base = ble_field_attr(v->field);
	if (!base || ble_fields[v->field].kind == BLE_EVENT)
		return false;
	if (v->index)
		snprintf(out, cap, "%s_%u", base, v->index);
	else
		snprintf(out, cap, "%s", base);
	return true;
}

static bool learn_attr(struct ble *b, struct bdev *d, const char *name, uint16_t field)
{
	if (attr_index(d, name) >= 0)
		return false;
	if (d->n_attrs >= DEV_ATTRS_MAX) {
		if (!(d->warned & WARN_ATTRS))
			b->host->log(b->ctx, HEARTH_LOG_WARNING, "%s: more than %d attributes; '%s' "
				     "and later ones are not declared", d->id, DEV_ATTRS_MAX, name);
		d->warned |= WARN_ATTRS;
		return false;
	}
	struct dattr *a = &d->attrs[d->n_attrs++];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->field = field;
	return true;
}

/* The action text of an event: "press", "button_2_press". */
static void action_text(const struct ble_value *v, const char *event, char *out, size_t cap)
{
	if (v->index)
		snprintf(out, cap, "%s_%u_%s", ble_fields[v->field].name, v->index, event);
	else
		snprintf(out, cap, "%s", event);
}

/* The events an event value can be one of, so the action enum is complete
 * as soon as a device shows one. */
static const char *const *event_family(uint16_t field, size_t *n)
{
	static const char *const button[] = {"press",	      "double_press",	   "triple_press",
					     "long_press",    "long_double_press", "long_triple_press",
					     "hold_press"};
	static const char *const dimmer[] = {"rotate_left", "rotate_right", "press", "long_press"};
	static const char *const command[] = {"off", "on", "toggle", "step_up", "step_down"};
	if (field == F_E_DIMMER) {
		*n = sizeof(dimmer) / sizeof(dimmer[0]);
		return dimmer;
	}
	if (field == F_E_COMMAND) {
		*n = sizeof(command) / sizeof(command[0]);
		return command;
	}
	*n = sizeof(button) / sizeof(button[0]);
	return button;
}

static bool learn_actions(struct ble *b, struct bdev *d, const struct ble_value *v)
{
	bool grew = learn_attr(b, d, "action", F_ACTION);
	size_t n;
	const char *const *family = event_family(v->field, &n);
	for (size_t i = 0; i < n; i++) {
		char text[ACTION_MAX];
		action_text(v, family[i], text, sizeof(text));
		bool known = false;
		for (size_t k = 0; k < d->n_actions && !known; k++)
			known = strcmp(d->actions[k], text) == 0;
		if (known || d->n_actions >= DEV_ACTIONS_MAX)
			continue;
		snprintf(d->actions[d->n_actions++], ACTION_MAX, "%s", text);
		grew = true;
	}
	return grew;
}

static bool learn_fields(struct ble *b, struct bdev *d, const uint8_t *fields)
{
	bool grew = false;
	for (size_t i = 0; fields && fields[i] != F_COUNT_; i++) {
		const char *attr = ble_field_attr(fields[i]);
		if (ble_fields[fields[i]].kind == BLE_EVENT) {
			struct ble_value v = {.field = fields[i]};
			grew |= learn_actions(b, d, &v);
		} else if (attr) {
			grew |= learn_attr(b, d, attr, fields[i]);
		}
	}
	return grew;
}

/* Declare what the packet carries (and, the first time, what the format
 * or model can carry). True if the capability list grew. */
static bool learn(struct ble *b, struct bdev *d, const struct ble_reading *r)
{
	bool grew = false;
	if (!d->declared) {
		d->declared = true;
		grew |= learn_fields(b, d, formats[r->format].fields);
		if (r->model)
			grew |= learn_fields(b, d, r->model->fields);
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct ble_value *v = &r->v[i];
		char name[ATTR_NAME_MAX];
		if (ble_fields[v->field].kind == BLE_EVENT) {
			if (v->event)
				grew |= learn_actions(b, d, v);
		} else if (value_attr(v, name, sizeof(name))) {
			grew |= learn_attr(b, d, name, v->field);
		}
	}
	return grew;
}

static void cap_of(const struct bdev *d, const struct dattr *a, struct hearth_capability *c,
		   const char **actions)
{
	const struct ble_field *f = &ble_fields[a->field];
	memset(c, 0, sizeof(*c));
	c->name = a->name;
	c->access = HEARTH_ACCESS_PUBLISHED; /* sensors: read-only */
	c->description = f->description;
	c->unit = f->unit;
	if (a->field == F_ACTION) {
		c->type = d->n_actions ? HEARTH_CAP_ENUM : HEARTH_CAP_TEXT;
		for (size_t i = 0; i < d->n_actions; i++)
			actions[i] = d->actions[i];
		c->values = actions;
		c->n_values = d->n_actions;
	} else if (f->kind == BLE_BINARY) {
		c->type = HEARTH_CAP_BINARY;
		c->value_on = HEARTH_BOOL(true);
		c->value_off = HEARTH_BOOL(false);
	} else if (f->kind == BLE_TEXT) {
		c->type = HEARTH_CAP_TEXT;
	} else {
		c->type = HEARTH_CAP_NUMERIC;
		if (f->unit && strcmp(f->unit, "%") == 0) {
			c->flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX;
			c->max = 100;
		}
	}
}

static int device_add(struct ble *b, struct bdev *d)
{
	struct hearth_capability caps[DEV_ATTRS_MAX];
	const char *actions[DEV_ACTIONS_MAX];
	for (size_t i = 0; i < d->n_attrs; i++)
		cap_of(d, &d->attrs[i], &caps[i], actions);
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = d->id,
		.name = d->name,
		.vendor = d->vendor,
		.model = d->model,
		.description = d->description,
		.caps = caps,
		.n_caps = d->n_attrs,
	};
	int rc = b->host->device_add(b->ctx, &info);
	if (rc) {
		b->host->log(b->ctx, HEARTH_LOG_ERROR, "cannot add %s: %s", d->id, strerror(-rc));
		return rc;
	}
	if (!d->added)
		b->host->log(b->ctx, HEARTH_LOG_INFO, "%s: %s %s", d->id, d->vendor, d->model);
	d->added = d->online = true;
	return 0;
}

/* ---- reports -------------------------------------------------------------------------- */

struct event_note {
	char action[ACTION_MAX];
	bool has_steps;
	int32_t steps;
};

struct report {
	size_t n;
	struct hearth_attr attrs[BLE_VALUES_MAX + 2];
	size_t n_events;
	struct event_note events[EVENTS_MAX];
};

static bool same_as_reported(const struct dattr *a, const struct hearth_value *v, uint32_t hash)
{
	if (!a->reported || a->type != v->type)
		return false;
	if (v->type == HEARTH_VALUE_NUMBER)
		return a->number == v->u.number;
	if (v->type == HEARTH_VALUE_BOOL)
		return a->boolean == v->u.boolean;
	return a->text_hash == hash;
}

/* Add a value if it differs from what was last reported for the attr. A
 * name given twice in one packet (MiBeacon) keeps the last value. */
static void report_value(struct report *rep, struct dattr *a, struct hearth_value v)
{
	uint32_t hash = v.type == HEARTH_VALUE_STRING ? hash_text(v.u.string) : 0;
	if (same_as_reported(a, &v, hash))
		return;
	size_t i = 0;
	while (i < rep->n && strcmp(rep->attrs[i].name, a->name) != 0)
		i++;
	rep->attrs[i] = (struct hearth_attr){.name = a->name, .value = v};
	if (i == rep->n)
		rep->n++;
	a->reported = true;
	a->type = v.type;
	a->number = v.type == HEARTH_VALUE_NUMBER ? v.u.number : 0;
	a->boolean = v.type == HEARTH_VALUE_BOOL && v.u.boolean;
	a->text_hash = hash;
}

static void report_event(struct report *rep, const struct ble_value *v)
{
	if (rep->n_events >= EVENTS_MAX)
		return;
	struct event_note *e = &rep->events[rep->n_events++];
	action_text(v, v->event, e->action, sizeof(e->action));
	e->has_steps = v->has_steps;
	e->steps = v->steps;
}

static void collect(struct bdev *d, const struct ble_reading *r, struct report *rep)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct ble_value *v = &r->v[i];
		enum ble_kind kind = ble_fields[v->field].kind;
		char name[ATTR_NAME_MAX];
		if (kind == BLE_EVENT) {
			if (v->event)
				report_event(rep, v);
			continue;
		}
		int k = value_attr(v, name, sizeof(name)) ? attr_index(d, name) : -1;
		if (k < 0)
			continue;
		struct hearth_value hv = kind == BLE_SENSOR  ? HEARTH_NUMBER(v->number)
					 : kind == BLE_TEXT ? HEARTH_STRING(ble_value_text(r, v))
							    : HEARTH_BOOL(v->boolean);
		report_value(rep, &d->attrs[k], hv);
	}
}

static void send_events(struct ble *b, struct bdev *d, const struct report *rep)
{
	for (size_t i = 0; i < rep->n_events; i++) {
		struct hearth_attr attrs[2] = {
			{.name = "action", .value = HEARTH_STRING(rep->events[i].action)},
			{.name = "steps", .value = HEARTH_NUMBER(rep->events[i].steps)},
		};
		b->host->event_report(b->ctx, d->id, "action", attrs,
				      rep->events[i].has_steps ? 2 : 1);
	}
}

/* RSSI goes along when something else changed, or alone once a minute. */
static void add_rssi(struct bdev *d, const struct ble_advert *adv, struct report *rep,
		     int64_t now)
{
	if (!adv->has_rssi || (d->rssi_reported && d->rssi_last == adv->rssi))
		return;
	if (rep->n == 0 && d->rssi_reported && now - d->rssi_ms < RSSI_INTERVAL_MS)
		return;
	int k = attr_index(d, "rssi");
	if (k < 0)
		return;
	rep->attrs[rep->n++] = (struct hearth_attr){.name = d->attrs[k].name,
						    .value = HEARTH_NUMBER(adv->rssi)};
	d->rssi_reported = true;
	d->rssi_last = adv->rssi;
	d->rssi_ms = now;
}

static void report(struct ble *b, struct bdev *d, const struct ble_reading *r,
		   const struct ble_advert *adv, int64_t now)
{
	struct report rep = {0};
	if (r)
		collect(d, r, &rep);
	char action[ACTION_MAX];
	if (rep.n_events) {
		snprintf(action, sizeof(action), "%s", rep.events[rep.n_events - 1].action);
		rep.attrs[rep.n++] = (struct hearth_attr){.name = "action",
							  .value = HEARTH_STRING(action)};
	}
	add_rssi(d, adv, &rep, now);
	if (rep.n) {
		int rc = b->host->state_report(b->ctx, d->id, rep.attrs, rep.n);
		if (rc)
			b->host->log(b->ctx, HEARTH_LOG_WARNING, "%s: report refused (%s)", d->id,
				     strerror(-rc));
		d->online = true;
	}
	send_events(b, d, &rep);
}

/* ---- one advertisement --------------------------------------------------------- */

static void warn_once(struct ble *b, struct bdev *d, unsigned bit, enum hearth_log_level level,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void warn_once(struct ble *b, struct bdev *d, unsigned bit, enum hearth_log_level level,
		      const char *fmt, ...)
{
	char text[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	b->host->log(b->ctx, d->warned & bit ? HEARTH_LOG_DEBUG : level, "%s: %s", d->id, text);
	d->warned |= bit;
}

static void decode_failed(struct ble *b, struct bdev *d, const struct ble_reading *r, int rc,
			  const struct ble_key *key)
{
	const char *fmt = ble_format_name(r->format);
	if (rc == -EBADMSG)
		warn_once(b, d, WARN_BADKEY, HEARTH_LOG_ERROR,
			  "cannot decrypt %s advertisements: the bind key in keys_file does not "
			  "match this device (MIC check failed)",
			  fmt);
	else if (rc == -ENOKEY && key)
		warn_once(b, d, WARN_KEYLEN, HEARTH_LOG_ERROR,
			  "the bind key in keys_file has the wrong length for %s v%u "
			  "(32 hex digits; 24 for MiBeacon v2/v3)",
			  fmt, r->version);
	else if (rc == -ENOKEY)
		warn_once(b, d, WARN_NOKEY, HEARTH_LOG_INFO,
			  "encrypted %s advertisements and no bind key for it in keys_file", fmt);
	else
		b->host->log(b->ctx, HEARTH_LOG_DEBUG, "%s: %s advertisement skipped: %s", d->id,
			     fmt, ble_decode_strerror(rc));
}

static void note_odd(struct ble *b, struct bdev *d, const struct ble_reading *r)
{
	if (r->stopped_unknown)
		warn_once(b, d, WARN_UNKNOWN, HEARTH_LOG_WARNING,
			  "%s object id 0x%02x is unknown; the rest of the packet is skipped",
			  ble_format_name(r->format), r->unknown_id);
	else if (r->has_unknown)
		b->host->log(b->ctx, HEARTH_LOG_DEBUG, "%s: %s object 0x%04x unknown, skipped",
			     d->id, ble_format_name(r->format), r->unknown_id);
	if (r->truncated)
		b->host->log(b->ctx, HEARTH_LOG_DEBUG, "%s: %s object 0x%02x truncated", d->id,
			     ble_format_name(r->format), r->truncated_id);
}

static bool may_add(const struct ble *b, const struct bdev *d, const struct ble_reading *r)
{
	if (d->added || d->listed || b->auto_add == ADD_ALL)
		return true;
	/* known: what decodes, and a MiBeacon identity frame of a known model */
	return b->auto_add == ADD_KNOWN && (r->n > 0 || r->model);
}

/* Decode one service-data payload and report what is new. */
static void handle_sd(struct ble *b, struct bdev *d, ble_decoder_fn fn, const uint8_t *sd,
		      size_t len, const struct ble_advert *adv, int64_t now)
{
	const struct ble_key *key = ble_keys_find(&b->keys, d->mac);
	struct ble_reading *r = &b->reading;
	int rc = fn(sd, len, adv->mac, key ? key->key : NULL, key ? key->len : 0, r);
	if (rc) {
		decode_failed(b, d, r, rc, key);
		return;
	}
	note_odd(b, d, r);
	/* With a key, plain data from this MAC is not the device talking. */
	if (key && !r->encrypted && r->n > 0 && r->format != BLE_FMT_MIBEACON) {
		warn_once(b, d, WARN_DOWNGRADE, HEARTH_LOG_WARNING,
			  "unencrypted %s advertisement although a bind key is set: ignored",
			  ble_format_name(r->format));
		return;
	}
	if (!may_add(b, d, r))
		return;
	enum ble_verdict verdict = ble_dedup_check(&d->dedup[r->format], r, now);
	if (verdict == BLE_REPLAY) {
		warn_once(b, d, WARN_REPLAY, HEARTH_LOG_WARNING,
			  "encryption counter %u went backwards: replayed advertisement ignored",
			  r->counter32);
		return;
	}
	bool changed = adopt_identity(d, r, adv);
	changed |= learn(b, d, r);
	if ((changed || !d->added) && device_add(b, d))
		return;
	if (verdict == BLE_NEW)
		report(b, d, r, adv, now);
}

/* A device nothing decodes, with auto_add = all: its RSSI. */
static void handle_unknown(struct ble *b, struct bdev *d, const struct ble_advert *adv)
{
	if (d->added || b->auto_add != ADD_ALL)
		return;
	static struct ble_reading none;
	char name[32];
	snprintf(d->vendor, sizeof(d->vendor), "%s", formats[BLE_FMT_NONE].vendor);
	snprintf(d->model, sizeof(d->model), "%s",
		 ble_ad_local_name(adv->ad, adv->ad_len, name, sizeof(name)) == 0
			 ? name
			 : formats[BLE_FMT_NONE].model);
	snprintf(d->description, sizeof(d->description), "%s", formats[BLE_FMT_NONE].description);
	learn(b, d, &none);
	device_add(b, d);
}

static void on_advert(void *user, const struct ble_advert *adv)
{
	struct ble *b = user;
	int64_t now = now_ms(b);
	struct bdev *d = dev_find(b, adv->mac);
	if (!d && b->auto_add == ADD_NONE && !listed_find(b, adv->mac))
		return;
	size_t off = 0, n;
	uint8_t type;
	const uint8_t *data;
	bool decodable = false;
	int rc;
	while ((rc = ble_ad_next(adv->ad, adv->ad_len, &off, &type, &data, &n)) == 1) {
		ble_decoder_fn fn = type == 0x16 && n >= 2 ? ble_decoder_for(ble_le16(data)) : NULL;
		if (!fn || (!d && !(d = dev_get(b, adv->mac))))
			continue;
		decodable = true;
		handle_sd(b, d, fn, data + 2, n - 2, adv, now);
	}
	if (rc < 0 && d)
		b->host->log(b->ctx, HEARTH_LOG_DEBUG, "%s: malformed AD data", d->id);
	if (!decodable && b->auto_add == ADD_ALL && (d || (d = dev_get(b, adv->mac))))
		handle_unknown(b, d, adv);
	if (!d || !d->added)
		return;
	d->last_seen_ms = now;
	if (!d->online) {
		b->host->availability_set(b->ctx, d->id, true);
		d->online = true;
	}
	report(b, d, NULL, adv, now); /* RSSI alone, if due */
}

/* ---- availability ------------------------------------------------------------------- */

static void on_check(void *user)
{
	struct ble *b = user;
	int64_t now = now_ms(b);
	for (size_t i = 0; i < DEV_BUCKETS; i++) {
		for (struct bdev *d = b->buckets[i]; d; d = d->next) {
			if (!d->added || !d->online || d->never_offline ||
			    now - d->last_seen_ms < b->offline_after_ms)
				continue;
			d->online = false;
			b->host->availability_set(b->ctx, d->id, false);
			b->host->log(b->ctx, HEARTH_LOG_INFO, "%s: silent for %lld s: offline", d->id,
				     (long long)((now - d->last_seen_ms) / 1000));
		}
	}
}

/* ---- configuration ---------------------------------------------------------------- */

static int bad(struct ble *b, const char *key, const char *value, const char *why)
{
	b->host->log(b->ctx, HEARTH_LOG_ERROR, "%s = '%s': %s", key, value, why);
	return -EINVAL;
}

static int parse_bool(struct ble *b, const char *key, bool def, bool *out)
{
	const char *v = b->host->config_get(b->ctx, key);
	*out = def;
	if (!v)
		return 0;
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	}
	return bad(b, key, v, "expected true or false");
}

static int parse_number(struct ble *b, const char *key, double def, double min, double max,
			bool whole, double *out)
{
	const char *v = b->host->config_get(b->ctx, key);
	*out = def;
	if (!v)
		return 0;
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(x) || x < min || x > max ||
	    (whole && x != floor(x))) {
		char why[100];
		snprintf(why, sizeof(why), "expected a%s number in %g..%g", whole ? " whole" : "",
			 min, max);
		return bad(b, key, v, why);
	}
	*out = x;
	return 0;
}

static int parse_auto_add(struct ble *b)
{
	const char *v = b->host->config_get(b->ctx, "auto_add");
	static const char *const names[] = {[ADD_KNOWN] = "known", [ADD_NONE] = "none",
					    [ADD_ALL] = "all"};
	b->auto_add = ADD_KNOWN;
	if (!v)
		return 0;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(v, names[i]) == 0)
			return b->auto_add = (enum auto_add)i, 0;
	return bad(b, "auto_add", v, "expected known, none or all");
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* devices = aa:bb:cc:dd:ee:ff[=name], ... */
static int parse_entry(struct ble *b, char *entry)
{
	char *eq = strchr(entry, '=');
	char *name = eq ? trim(eq + 1) : NULL;
	if (eq)
		*eq = '\0';
	struct listed l = {0};
	if (ble_mac_parse(trim(entry), l.mac))
		return bad(b, "devices", entry, "expected aa:bb:cc:dd:ee:ff or aa:bb:cc:dd:ee:ff=name");
	if (listed_find(b, l.mac))
		return bad(b, "devices", entry, "listed twice");
	if (name && *name && !(l.name = strdup(name)))
		return -ENOMEM;
	struct listed *grown = realloc(b->listed, (b->n_listed + 1) * sizeof(*grown));
	if (!grown) {
		free(l.name);
		return -ENOMEM;
	}
	b->listed = grown;
	b->listed[b->n_listed++] = l;
	return 0;
}

static int parse_devices(struct ble *b)
{
	const char *v = b->host->config_get(b->ctx, "devices");
	if (!v)
		return 0;
	if (strlen(v) >= DEVICES_TEXT_MAX)
		return bad(b, "devices", "...", "longer than 16 KiB");
	char *copy = strdup(v);
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	for (char *next = copy; next && rc == 0;) {
		char *entry = next;
		next = strchr(entry, ',');
		if (next)
			*next++ = '\0';
		if (*trim(entry))
			rc = parse_entry(b, entry);
	}
	free(copy);
	return rc;
}

static int read_keys(struct ble *b)
{
	const char *path = b->host->config_get(b->ctx, "keys_file");
	if (!path || !*path)
		return 0;
	char *text = malloc(KEYS_FILE_MAX);
	if (!text)
		return -ENOMEM;
	int rc = b->host->secret_read(b->ctx, path, text, KEYS_FILE_MAX);
	char err[200];
	if (rc == 0) {
		rc = ble_keys_parse(text, &b->keys, err, sizeof(err));
		if (rc == 0 && err[0])
			b->host->log(b->ctx, HEARTH_LOG_WARNING, "keys_file %s: %s", path, err);
		else if (rc)
			b->host->log(b->ctx, HEARTH_LOG_ERROR, "keys_file %s: %s", path, err);
	} else {
		b->host->log(b->ctx, HEARTH_LOG_ERROR, "keys_file %s: %s", path,
			     rc == -EACCES ? "readable by group or others (chmod 600 it)"
			     : rc == -ENAMETOOLONG ? "larger than 64 KiB"
						   : strerror(-rc));
	}
	memset(text, 0, KEYS_FILE_MAX);
	free(text);
	if (rc == 0)
		b->host->log(b->ctx, HEARTH_LOG_INFO, "%zu bind key%s from %s", b->keys.n,
			     b->keys.n == 1 ? "" : "s", path);
	return rc;
}

static int parse_config(struct ble *b)
{
	double offline_s, max_devices, speed;
	bool discovery;
	const char *source = b->host->config_get(b->ctx, "source");
	const char *arg = NULL;
	b->source_ops = ble_source_find(source ? source : "bluez", &arg);
	if (!b->source_ops)
		return bad(b, "source", source, "expected bluez, hci or replay:PATH");
	int rc = parse_bool(b, "discovery", true, &discovery);
	if (rc == 0)
		rc = parse_number(b, "offline_after_s", OFFLINE_DEFAULT_S, 0, OFFLINE_MAX_S, true,
				  &offline_s);
	if (rc == 0)
		rc = parse_number(b, "max_devices", MAX_DEVICES_DEFAULT, 1, MAX_DEVICES_LIMIT, true,
				  &max_devices);
	if (rc == 0)
		rc = parse_number(b, "replay_speed", 1, 0, REPLAY_SPEED_MAX, false, &speed);
	if (rc == 0)
		rc = parse_auto_add(b);
	if (rc == 0)
		rc = parse_devices(b);
	if (rc)
		return rc;
	b->offline_after_ms = (int64_t)offline_s * 1000;
	b->max_devices = (size_t)max_devices;
	const char *adapter = b->host->config_get(b->ctx, "adapter");
	b->env = (struct ble_source_env){
		.host = b->host,
		.ctx = b->ctx,
		.deliver = on_advert,
		.user = b,
		.adapter = adapter ? adapter : "hci0",
		.active = discovery,
		.dbus_address = b->host->config_get(b->ctx, "dbus_address"),
		.replay_speed = speed,
	};
	if ((rc = b->source_ops->open(&b->env, arg, &b->source)))
		return rc;
	return 0;
}

/* ---- the plugin's callbacks ------------------------------------------------------ */

static void free_all(struct ble *b)
{
	if (!b)
		return;
	if (b->source)
		b->source_ops->close(b->source);
	for (size_t i = 0; i < DEV_BUCKETS; i++) {
		for (struct bdev *d = b->buckets[i], *next; d; d = next) {
			next = d->next;
			free(d);
		}
	}
	for (size_t i = 0; i < b->n_listed; i++)
		free(b->listed[i].name);
	free(b->listed);
	ble_keys_free(&b->keys);
	free(b);
}

static bool host_usable(const struct hearth_host *host)
{
	return HEARTH_HOST_HAS(host, device_add) && HEARTH_HOST_HAS(host, state_report) &&
	       HEARTH_HOST_HAS(host, event_report) && HEARTH_HOST_HAS(host, availability_set) &&
	       HEARTH_HOST_HAS(host, config_get) && HEARTH_HOST_HAS(host, secret_read) &&
	       HEARTH_HOST_HAS(host, log) && HEARTH_HOST_HAS(host, timer_start) &&
	       HEARTH_HOST_HAS(host, timer_again) && HEARTH_HOST_HAS(host, timer_stop) &&
	       HEARTH_HOST_HAS(host, fd_watch) && HEARTH_HOST_HAS(host, fd_modify) &&
	       HEARTH_HOST_HAS(host, fd_unwatch) && HEARTH_HOST_HAS(host, now_ms);
}

static int ble_init(const struct hearth_host *host, hearth_plugin_ctx *ctx, void **state)
{
	if (!host_usable(host))
		return -EPROTO;
	struct ble *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->host = host;
	b->ctx = ctx;
	int rc = read_keys(b);
	if (rc == 0)
		rc = parse_config(b);
	if (rc) {
		free_all(b);
		return rc;
	}
	*state = b;
	return 0;
}

static int ble_start(void *state)
{
	struct ble *b = state;
	if (b->offline_after_ms > 0) {
		uint64_t every = (uint64_t)b->offline_after_ms / 4;
		every = every < CHECK_MIN_MS ? CHECK_MIN_MS : every > CHECK_MAX_MS ? CHECK_MAX_MS : every;
		int rc = b->host->timer_start(b->ctx, every, every, on_check, b, &b->check_timer);
		if (rc)
			return rc;
	}
	return b->source_ops->start(b->source);
}

static void ble_stop(void *state)
{
	struct ble *b = state;
	if (!b)
		return;
	b->host->timer_stop(b->ctx, b->check_timer);
	free_all(b);
}

/* Sensors only talk; there is nothing to set. */
static int ble_command(void *state, const struct hearth_command *cmd)
{
	(void)state;
	(void)cmd;
	return -ENOTSUP;
}

static const struct hearth_option ble_options[] = {
	{"source", "bluez", "where advertisements come from: bluez, hci or replay:PATH"},
	{"adapter", "hci0", "Bluetooth adapter (bluez and hci sources)"},
	{"discovery", "true", "true: active scanning; false: passive (no scan requests sent)"},
	{"dbus_address", NULL, "D-Bus address of bluetoothd's bus; default: the system bus"},
	{"replay_speed", "1", "replay timing factor; 0: as fast as possible"},
	{"keys_file", NULL, "bind keys, one 'aa:bb:cc:dd:ee:ff <32 hex>' per line (mode 600)"},
	{"auto_add", "known", "known: devices that decode; none: only `devices`; all: every advertiser"},
	{"devices", NULL, "MACs to add, with optional names: aa:bb:cc:dd:ee:ff=kitchen/thermometer, ..."},
	{"offline_after_s", "900", "seconds of silence before a device is offline; 0: never"},
	{"max_devices", "512", "how many BLE devices the plugin tracks at most"},
	{NULL, NULL, NULL},
};

static const struct hearth_plugin ble_plugin = {
	.struct_size = sizeof(struct hearth_plugin),
	.abi_version = HEARTH_ABI_VERSION(1, 0),
	.name = "ble",
	.version = BLE_VERSION,
	.description = "BLE sensors: BTHome v2, Xiaomi MiBeacon, atc1441 and pvvx thermometers",
	.options = ble_options,
	.init = ble_init,
	.start = ble_start,
	.stop = ble_stop,
	.command = ble_command,
};

HEARTH_PLUGIN_EXPORT const struct hearth_plugin *hearth_plugin_entry(const uint32_t *host_versions,
								    size_t n_versions)
{
	for (size_t i = 0; host_versions && i < n_versions; i++)
		if (HEARTH_ABI_VERSION_MAJOR(host_versions[i]) == HEARTH_ABI_MAJOR)
			return &ble_plugin;
	return NULL;
}
