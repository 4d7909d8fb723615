/*
 * Tasmota: the retained discovery messages every Tasmota publishes under
 * tasmota/discovery/<MAC>/ (config: topics, relays, light type; sensors:
 * the measured values), its state messages (stat/RESULT, stat/POWER<n>,
 * tele/STATE, tele/SENSOR, tele/LWT, stat/STATUS10) and its commands
 * (cmnd/POWER<n>, Dimmer, CT, Color), all on the device's own full topic.
 *
 * Pure: cJSON only.
 */
#include "mqttdev.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RW (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET)
#define RO (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_GET)
#define RANGE (HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX)
#define VSTR(s) {.type = HEARTH_VALUE_STRING, .u.string = (s)}

enum { RL_NONE = 0, RL_RELAY = 1, RL_LIGHT = 2, RL_SHUTTER = 3 };

/* ---- discovery config ------------------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* Copy text that fits, has no control character and no wildcard. */
static bool copy_text(char *dst, size_t cap, const char *src)
{
	if (!src || strlen(src) >= cap)
		return false;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++)
		if (*p < 0x20 || *p == '+' || *p == '#')
			return false;
	snprintf(dst, cap, "%s", src);
	return true;
}

static bool parse_mac(const char *mac, char out[13])
{
	if (!mac || strlen(mac) != 12)
		return false;
	for (size_t i = 0; i < 12; i++) {
		char c = mac[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		out[i] = c;
	}
	out[12] = '\0';
	return true;
}

static void parse_relays(struct tasmota *t, const cJSON *rl)
{
	memset(t->relays, 0, sizeof(t->relays));
	size_t i = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, rl)
	{
		if (i >= TAS_RELAYS)
			break;
		if (cJSON_IsNumber(r) && r->valuedouble >= 0 && r->valuedouble <= 3)
			t->relays[i] = (uint8_t)r->valueint;
		i++;
	}
}

static int parse_strings(struct tasmota *t, const cJSON *root, const char **why)
{
	const char *ft = jstr(root, "ft");
	*why = "t (the topic) is missing or unusable";
	if (!copy_text(t->topic, sizeof(t->topic), jstr(root, "t")) || !t->topic[0] ||
	    strchr(t->topic, '/'))
		return -EINVAL;
	*why = "ft (the full topic) is missing, unusable or has no %prefix%";
	if (!copy_text(t->full_topic, sizeof(t->full_topic), ft) || !strstr(ft, "%prefix%"))
		return -EINVAL;
	static const char *const defaults[3] = {"cmnd", "stat", "tele"};
	const cJSON *tp = cJSON_GetObjectItemCaseSensitive(root, "tp");
	for (int i = 0; i < 3; i++) {
		const cJSON *p = cJSON_GetArrayItem(tp, i);
		const char *s = cJSON_IsString(p) ? p->valuestring : defaults[i];
		*why = "tp (the prefixes) holds an unusable prefix";
		if (!copy_text(t->prefix[i], sizeof(t->prefix[i]), s) || !s[0])
			return -EINVAL;
	}
	copy_text(t->hostname, sizeof(t->hostname), jstr(root, "hn"));
	if (!copy_text(t->name, sizeof(t->name), jstr(root, "dn")))
		snprintf(t->name, sizeof(t->name), "%s", t->topic);
	copy_text(t->model, sizeof(t->model), jstr(root, "md"));
	copy_text(t->sw, sizeof(t->sw), jstr(root, "sw"));
	if (!copy_text(t->online, sizeof(t->online), jstr(root, "onln")))
		snprintf(t->online, sizeof(t->online), "Online");
	if (!copy_text(t->offline, sizeof(t->offline), jstr(root, "ofln")))
		snprintf(t->offline, sizeof(t->offline), "Offline");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "state");
	const cJSON *off = cJSON_GetArrayItem(st, 0), *on = cJSON_GetArrayItem(st, 1);
	if (!cJSON_IsString(off) || !copy_text(t->state_off, sizeof(t->state_off), off->valuestring))
		snprintf(t->state_off, sizeof(t->state_off), "OFF");
	if (!cJSON_IsString(on) || !copy_text(t->state_on, sizeof(t->state_on), on->valuestring))
		snprintf(t->state_on, sizeof(t->state_on), "ON");
	return 0;
}

int tasmota_parse_config(struct tasmota *t, const char *payload, size_t len, char *err,
			 size_t err_len)
{
	cJSON *root = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	const char *why = "not a JSON object";
	int rc = -EINVAL;
	if (!cJSON_IsObject(root))
		goto out;
	char mac[13];
	why = "mac is missing or not 12 hex digits";
	if (!parse_mac(jstr(root, "mac"), mac))
		goto out;
	if (t->have_config && strcmp(mac, t->mac) != 0) {
		why = "mac differs from the device's";
		goto out;
	}
	struct tasmota fresh = *t;
	memcpy(fresh.mac, mac, sizeof(fresh.mac));
	if ((rc = parse_strings(&fresh, root, &why)))
		goto out;
	parse_relays(&fresh, cJSON_GetObjectItemCaseSensitive(root, "rl"));
	const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "lt_st");
	fresh.light_subtype = cJSON_IsNumber(lt) && lt->valueint >= 0 && lt->valueint <= 5
				      ? lt->valueint
				      : 0;
	fresh.have_config = true;
	*t = fresh;
	rc = 0;
out:
	if (rc && err)
		snprintf(err, err_len, "%s", why);
	cJSON_Delete(root);
	return rc;
}

/* ---- sensors ------------------------------------------------------------------------------ */

/* Tasmota's measured keys and hearth's names for them (unit NULL: from
 * TempUnit or PressureUnit; energy: only under "ENERGY"). */
static const struct {
	const char *key;
	const char *attr;
	const char *unit;
	bool energy;
} known_keys[] = {
	{"Temperature", "temperature", NULL, false},
	{"Humidity", "humidity", "%", false},
	{"DewPoint", "dew_point", NULL, false},
	{"Pressure", "pressure", NULL, false},
	{"SeaPressure", "sea_pressure", NULL, false},
	{"Illuminance", "illuminance", "lx", false},
	{"CarbonDioxide", "co2", "ppm", false},
	{"eCO2", "co2", "ppm", false},
	{"Distance", "distance", "cm", false},
	{"Total", "energy", "kWh", true},
	{"Today", "energy_today", "kWh", true},
	{"Yesterday", "energy_yesterday", "kWh", true},
	{"Power", "power", "W", false},
	{"ApparentPower", "apparent_power", "VA", true},
	{"ReactivePower", "reactive_power", "var", true},
	{"Factor", "power_factor", NULL, true},
	{"Voltage", "voltage", "V", false},
	{"Current", "current", "A", false},
};

static int known_key(const char *key)
{
	for (size_t i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]); i++)
		if (strcmp(known_keys[i].key, key) == 0)
			return (int)i;
	return -1;
}

/* Lower case, [a-z0-9_] only. */
static void lower_name(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 1 < cap; in++) {
		char c = *in;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		out[n++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
	}
	out[n] = '\0';
}

static int sensor_find(const struct tasmota *t, const char *sensor, const char *key)
{
	for (size_t i = 0; i < t->n_sensors; i++)
		if (strcmp(t->sensors[i].sensor, sensor) == 0 && strcmp(t->sensors[i].key, key) == 0)
			return (int)i;
	return -1;
}

static const char *unit_of(const struct tasmota *t, int k)
{
	if (k < 0)
		return NULL;
	if (known_keys[k].unit)
		return known_keys[k].unit;
	if (strcmp(known_keys[k].key, "Temperature") == 0 ||
	    strcmp(known_keys[k].key, "DewPoint") == 0)
		return strcmp(t->temp_unit, "F") == 0 ? "°F" : "°C";
	if (strstr(known_keys[k].key, "Pressure"))
		return t->pressure_unit[0] ? t->pressure_unit : "hPa";
	return NULL;
}

/* The capability of a measured value: named by the table, or by sensor and
 * key; a second sensor with the same quantity gets its sensor's name first. */
static int sensor_cap(struct tasmota *t, const char *sensor, const char *key)
{
	int k = known_key(key);
	char base[2 * MD_NAME_MAX], name[3 * MD_NAME_MAX], ls[32], lk[32];
	lower_name(sensor, ls, sizeof(ls));
	lower_name(key, lk, sizeof(lk));
	if (k >= 0 && known_keys[k].energy && strcmp(sensor, "ENERGY") != 0)
		k = -1;
	if (k >= 0)
		snprintf(base, sizeof(base), "%s", known_keys[k].attr);
	else
		snprintf(base, sizeof(base), "%s_%s", ls, lk);
	if (mcaps_find(&t->caps, base) >= 0)
		snprintf(name, sizeof(name), "%s_%s", ls, base);
	else
		snprintf(name, sizeof(name), "%s", base);
	struct hearth_capability c = {.name = name, .type = HEARTH_CAP_NUMERIC, .access = RO,
				      .unit = unit_of(t, k)};
	return mcaps_add(&t->caps, &c);
}

/* Remember sensor.key; its capability is made when the caps are built. */
static int sensor_add(struct tasmota *t, const char *sensor, const char *key)
{
	int i = sensor_find(t, sensor, key);
	if (i >= 0)
		return i;
	if (t->n_sensors >= TAS_SENSORS_MAX || strlen(sensor) >= sizeof(t->sensors[0].sensor) ||
	    strlen(key) >= sizeof(t->sensors[0].key))
		return -ENOSPC;
	struct tas_sensor *s = &t->sensors[t->n_sensors];
	snprintf(s->sensor, sizeof(s->sensor), "%s", sensor);
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->cap = -1;
	return (int)t->n_sensors++;
}

static void read_units(struct tasmota *t, const cJSON *sn)
{
	const char *tu = jstr(sn, "TempUnit"), *pu = jstr(sn, "PressureUnit");
	if (tu)
		snprintf(t->temp_unit, sizeof(t->temp_unit), "%s", strcmp(tu, "F") == 0 ? "F" : "C");
	if (pu && copy_text(t->pressure_unit, sizeof(t->pressure_unit), pu) && !pu[0])
		t->pressure_unit[0] = '\0';
}

/* Every numeric sensor.key of a SENSOR-shaped object. */
static void collect_sensors(struct tasmota *t, const cJSON *sn)
{
	const cJSON *s;
	cJSON_ArrayForEach(s, sn)
	{
		if (!cJSON_IsObject(s))
			continue;
		const cJSON *v;
		cJSON_ArrayForEach(v, s)
		if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
			sensor_add(t, s->string, v->string);
	}
}

int tasmota_parse_sensors(struct tasmota *t, const char *payload, size_t len)
{
	cJSON *root = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	const cJSON *sn = cJSON_GetObjectItemCaseSensitive(root, "sn");
	if (!cJSON_IsObject(sn)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	read_units(t, sn);
	collect_sensors(t, sn);
	cJSON_Delete(root);
	return 0;
}

/* ---- capabilities ------------------------------------------------------------------------ */

static const struct hearth_capability rgb_features[] = {
	{.name = "r", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0, .max = 255},
	{.name = "g", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0, .max = 255},
	{.name = "b", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0, .max = 255},
};

static int powered(const struct tasmota *t)
{
	int n = 0;
	for (int i = 0; i < TAS_RELAYS; i++)
		n += t->relays[i] == RL_RELAY || t->relays[i] == RL_LIGHT;
	return n;
}

/* The slot (1-based) whose power is "state": the first light, else the
 * only relay; 0 when several relays share the device. */
static int main_slot(const struct tasmota *t)
{
	for (int i = 0; i < TAS_RELAYS; i++)
		if (t->relays[i] == RL_LIGHT)
			return i + 1;
	for (int i = 0; powered(t) == 1 && i < TAS_RELAYS; i++)
		if (t->relays[i] == RL_RELAY)
			return i + 1;
	return 0;
}

static void slot_name(const struct tasmota *t, int slot, char *out, size_t cap)
{
	if (slot == main_slot(t))
		snprintf(out, cap, "state");
	else
		snprintf(out, cap, "state_%d", slot);
}

static void light_caps(struct tasmota *t)
{
	struct hearth_capability bri = {.name = "brightness", .type = HEARTH_CAP_NUMERIC,
					.access = RW, .unit = "%", .flags = RANGE, .min = 0,
					.max = 100};
	mcaps_add(&t->caps, &bri);
	if (t->light_subtype == 2 || t->light_subtype == 5) {
		struct hearth_capability ct = {.name = "color_temp", .type = HEARTH_CAP_NUMERIC,
					       .access = RW, .unit = "mired", .flags = RANGE,
					       .min = 153, .max = 500};
		mcaps_add(&t->caps, &ct);
	}
	if (t->light_subtype >= 3) {
		struct hearth_capability col = {.name = "color", .type = HEARTH_CAP_COMPOSITE,
						.access = RW, .features = rgb_features,
						.n_features = 3};
		mcaps_add(&t->caps, &col);
	}
}

void tasmota_build_caps(struct tasmota *t)
{
	t->caps.n = 0;
	bool light = false;
	for (int i = 0; i < TAS_RELAYS; i++) {
		if (t->relays[i] != RL_RELAY && t->relays[i] != RL_LIGHT)
			continue;
		char name[MD_NAME_MAX];
		slot_name(t, i + 1, name, sizeof(name));
		struct hearth_capability c = {.name = name, .type = HEARTH_CAP_BINARY, .access = RW,
					      .value_on = VSTR("ON"), .value_off = VSTR("OFF")};
		mcaps_add(&t->caps, &c);
		light |= t->relays[i] == RL_LIGHT;
	}
	if (light)
		light_caps(t);
	for (size_t i = 0; i < t->n_sensors; i++)
		t->sensors[i].cap = sensor_cap(t, t->sensors[i].sensor, t->sensors[i].key);
	struct hearth_capability rssi = {.name = "rssi", .type = HEARTH_CAP_NUMERIC, .access = RO,
					 .unit = "dBm"};
	mcaps_add(&t->caps, &rssi);
}

/* ---- topics -------------------------------------------------------------------------------- */

int tasmota_topic(const struct tasmota *t, int prefix, const char *command, char *out, size_t cap)
{
	if (prefix < 0 || prefix > 2 || !t->have_config)
		return -EINVAL;
	char id[7];
	for (int i = 0; i < 6; i++) {
		char c = t->mac[6 + i];
		id[i] = c >= 'a' && c <= 'f' ? (char)(c - 'a' + 'A') : c;
	}
	id[6] = '\0';
	static const char *const vars[] = {"%prefix%", "%topic%", "%hostname%", "%id%"};
	const char *vals[] = {t->prefix[prefix], t->topic, t->hostname, id};
	size_t n = 0;
	for (const char *p = t->full_topic; *p;) {
		size_t i = 0;
		while (i < 4 && strncmp(p, vars[i], strlen(vars[i])) != 0)
			i++;
		const char *piece = i < 4 ? vals[i] : p;
		size_t len = i < 4 ? strlen(vals[i]) : 1;
		if (n + len >= cap)
			return -ENAMETOOLONG;
		memcpy(out + n, piece, len);
		n += len;
		p += i < 4 ? strlen(vars[i]) : 1;
	}
	if (n == 0 || out[n - 1] != '/') {
		if (n + 1 >= cap)
			return -ENAMETOOLONG;
		out[n++] = '/';
	}
	int w = snprintf(out + n, cap - n, "%s", command);
	if (w < 0 || (size_t)w >= cap - n)
		return -ENAMETOOLONG;
	return out[0] == '/' ? -EINVAL : 0;
}

/* ---- state messages ------------------------------------------------------------------------ */

/* "POWER" is slot 1, "POWER3" slot 3; 0 for anything else. */
static int power_slot(const char *key)
{
	if (strncmp(key, "POWER", 5) != 0)
		return 0;
	if (!key[5])
		return 1;
	if (key[5] < '1' || key[5] > '8' || key[6])
		return 0;
	return key[5] - '0';
}

static void power_value(const struct tasmota *t, int slot, const char *text, struct mstate *out)
{
	if (slot < 1 || slot > TAS_RELAYS ||
	    (t->relays[slot - 1] != RL_RELAY && t->relays[slot - 1] != RL_LIGHT))
		return;
	bool on;
	if (strcasecmp(text, t->state_on) == 0 || strcasecmp(text, "ON") == 0)
		on = true;
	else if (strcasecmp(text, t->state_off) == 0 || strcasecmp(text, "OFF") == 0)
		on = false;
	else
		return;
	char name[MD_NAME_MAX];
	slot_name(t, slot, name, sizeof(name));
	mstate_str(out, name, on ? "ON" : "OFF");
}

/* "FF8000", "FF8000FF00" (with white channels) or "255,128,0". */
static bool parse_color(const char *s, int rgb[3])
{
	if (strchr(s, ',')) {
		char *end;
		for (int i = 0; i < 3; i++) {
			long v = strtol(s, &end, 10);
			if (end == s || v < 0 || v > 255 || (i < 2 && *end != ','))
				return false;
			rgb[i] = (int)v;
			s = end + 1;
		}
		return true;
	}
	if (strlen(s) < 6)
		return false;
	for (int i = 0; i < 3; i++) {
		char hex[3] = {s[2 * i], s[2 * i + 1], '\0'};
		char *end;
		long v = strtol(hex, &end, 16);
		if (*end)
			return false;
		rgb[i] = (int)v;
	}
	return true;
}

static bool has_cap(const struct tasmota *t, const char *name)
{
	return mcaps_find(&t->caps, name) >= 0;
}

/* One member of a STATE or RESULT object. */
static void state_member(const struct tasmota *t, const cJSON *v, struct mstate *out)
{
	int slot = power_slot(v->string);
	if (slot && cJSON_IsString(v)) {
		power_value(t, slot, v->valuestring, out);
	} else if (strcmp(v->string, "Dimmer") == 0 && cJSON_IsNumber(v) &&
		   has_cap(t, "brightness")) {
		mstate_num(out, "brightness", fmin(fmax(v->valuedouble, 0), 100));
	} else if (strcmp(v->string, "CT") == 0 && cJSON_IsNumber(v) && has_cap(t, "color_temp")) {
		mstate_num(out, "color_temp", v->valuedouble);
	} else if (strcmp(v->string, "Color") == 0 && cJSON_IsString(v) && has_cap(t, "color")) {
		int rgb[3];
		char json[64];
		if (parse_color(v->valuestring, rgb)) {
			snprintf(json, sizeof(json), "{\"r\":%d,\"g\":%d,\"b\":%d}", rgb[0], rgb[1],
				 rgb[2]);
			mstate_json(out, "color", json);
		}
	} else if (strcmp(v->string, "Wifi") == 0) {
		const cJSON *sig = cJSON_GetObjectItemCaseSensitive(v, "Signal");
		if (cJSON_IsNumber(sig))
			mstate_num(out, "rssi", sig->valuedouble);
	}
}

static void state_object(const struct tasmota *t, const cJSON *root, struct mstate *out)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, root)
	state_member(t, v, out);
}

/* Values of a SENSOR-shaped object; unseen ones become capabilities. */
static void sensor_object(struct tasmota *t, const cJSON *sn, struct mstate *out)
{
	read_units(t, sn);
	const cJSON *s;
	cJSON_ArrayForEach(s, sn)
	{
		if (!cJSON_IsObject(s))
			continue;
		const cJSON *v;
		cJSON_ArrayForEach(v, s)
		{
			if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
				continue;
			int i = sensor_find(t, s->string, v->string);
			if (i < 0 && (i = sensor_add(t, s->string, v->string)) >= 0) {
				t->sensors[i].cap = sensor_cap(t, s->string, v->string);
				out->caps_changed |= t->sensors[i].cap >= 0;
			}
			if (i >= 0 && t->sensors[i].cap >= 0)
				mstate_num(out, t->caps.caps[t->sensors[i].cap].name, v->valuedouble);
		}
	}
}

static int json_message(struct tasmota *t, const char *suffix, const char *payload, size_t len,
			struct mstate *out)
{
	cJSON *root = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	if (strcmp(suffix, "SENSOR") == 0) {
		sensor_object(t, root, out);
	} else if (strncmp(suffix, "STATUS", 6) == 0) {
		const cJSON *sns = cJSON_GetObjectItemCaseSensitive(root, "StatusSNS");
		const cJSON *sts = cJSON_GetObjectItemCaseSensitive(root, "StatusSTS");
		if (cJSON_IsObject(sns))
			sensor_object(t, sns, out);
		if (cJSON_IsObject(sts))
			state_object(t, sts, out);
	} else {
		state_object(t, root, out);
	}
	cJSON_Delete(root);
	return 0;
}

static int lwt(const struct tasmota *t, const char *payload, size_t len, struct mstate *out)
{
	char text[64];
	if (len >= sizeof(text))
		return -EINVAL;
	memcpy(text, payload, len);
	text[len] = '\0';
	if (strcmp(text, t->online) == 0)
		out->online = 1;
	else if (strcmp(text, t->offline) == 0)
		out->online = 0;
	else
		return -EINVAL;
	return 0;
}

int tasmota_parse_message(struct tasmota *t, int which, const char *suffix, const char *payload,
			  size_t len, struct mstate *out)
{
	if (!t->have_config || !suffix || (len && !payload))
		return -EINVAL;
	if (which == TAS_TELE && strcmp(suffix, "LWT") == 0)
		return lwt(t, payload, len, out);
	if (which == TAS_TELE && (strcmp(suffix, "STATE") == 0 || strcmp(suffix, "SENSOR") == 0))
		return json_message(t, suffix, payload, len, out);
	if (which == TAS_STAT && (strcmp(suffix, "RESULT") == 0 || strcmp(suffix, "STATUS10") == 0 ||
				  strcmp(suffix, "STATUS8") == 0 || strcmp(suffix, "STATUS11") == 0))
		return json_message(t, suffix, payload, len, out);
	int slot = which == TAS_STAT ? power_slot(suffix) : 0;
	if (slot) {
		char text[32];
		if (len >= sizeof(text))
			return -EINVAL;
		memcpy(text, payload, len);
		text[len] = '\0';
		power_value(t, slot, text, out);
	}
	return 0;
}

/* ---- commands ------------------------------------------------------------------------------- */

static int state_slot(const struct tasmota *t, const char *name)
{
	for (int i = 1; i <= TAS_RELAYS; i++) {
		if (t->relays[i - 1] != RL_RELAY && t->relays[i - 1] != RL_LIGHT)
			continue;
		char n[MD_NAME_MAX];
		slot_name(t, i, n, sizeof(n));
		if (strcmp(n, name) == 0)
			return i;
	}
	return 0;
}

static int encode_one(const struct tasmota *t, const struct hearth_attr *a, struct tas_cmd *c)
{
	const struct hearth_value *v = &a->value;
	int slot = state_slot(t, a->name);
	if (slot) {
		if (v->type != HEARTH_VALUE_STRING)
			return -EINVAL;
		if (powered(t) == 1)
			snprintf(c->command, sizeof(c->command), "POWER");
		else
			snprintf(c->command, sizeof(c->command), "POWER%c", '0' + slot); /* 1..8 */
		snprintf(c->payload, sizeof(c->payload), "%s",
			 strcmp(v->u.string, "ON") == 0 ? "ON" : "OFF");
		return 0;
	}
	static const struct {
		const char *attr, *command;
	} numeric[] = {{"brightness", "Dimmer"}, {"color_temp", "CT"}};
	for (size_t i = 0; i < 2; i++) {
		if (strcmp(a->name, numeric[i].attr) != 0 || !has_cap(t, a->name))
			continue;
		if (v->type != HEARTH_VALUE_NUMBER)
			return -EINVAL;
		snprintf(c->command, sizeof(c->command), "%s", numeric[i].command);
		snprintf(c->payload, sizeof(c->payload), "%.0f", v->u.number);
		return 0;
	}
	if (strcmp(a->name, "color") == 0 && has_cap(t, "color") && v->type == HEARTH_VALUE_JSON) {
		cJSON *j = md_json_parse(v->u.string, strlen(v->u.string), 256);
		int rgb[3] = {0, 0, 0};
		static const char *const ch[] = {"r", "g", "b"};
		for (int i = 0; i < 3; i++) {
			const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, ch[i]);
			if (cJSON_IsNumber(x))
				rgb[i] = (int)fmin(fmax(x->valuedouble, 0), 255);
		}
		cJSON_Delete(j);
		snprintf(c->command, sizeof(c->command), "Color");
		snprintf(c->payload, sizeof(c->payload), "%d,%d,%d", rgb[0], rgb[1], rgb[2]);
		return 0;
	}
	return -EINVAL;
}

int tasmota_encode(const struct tasmota *t, const struct hearth_attr *attrs, size_t n,
		   struct tas_cmd *out, size_t max, size_t *n_out)
{
	*n_out = 0;
	for (size_t i = 0; i < n; i++) {
		if (*n_out >= max)
			return -E2BIG;
		int rc = encode_one(t, &attrs[i], &out[*n_out]);
		if (rc)
			return rc;
		(*n_out)++;
	}
	return 0;
}
