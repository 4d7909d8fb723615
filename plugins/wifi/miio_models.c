/*
 * The miIO model table and the code that reads it. Rows first, then the
 * generic conversions every row shares. Property ids come from the
 * devices' published MIoT specifications and their legacy get_prop names.
 */
#include "miio_models.h"

#include "convert.h"

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
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define CAP_SWITCH(nm, desc)                                                                     \
	{.name = nm, .type = HEARTH_CAP_BINARY, .access = RW, .description = desc,               \
	 .value_on = VSTR("ON"), .value_off = VSTR("OFF")}
#define CAP_LOCK                                                                                 \
	{.name = "child_lock", .type = HEARTH_CAP_BINARY, .access = RW,                          \
	 .description = "Buttons on the device locked", .value_on = VSTR("LOCK"),                 \
	 .value_off = VSTR("UNLOCK")}
#define CAP_SENSOR(nm, u, desc)                                                                  \
	{.name = nm, .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = u, .description = desc}
#define CAP_RANGE(nm, acc, u, desc, lo, hi)                                                      \
	{.name = nm, .type = HEARTH_CAP_NUMERIC, .access = acc, .unit = u, .description = desc,  \
	 .flags = RANGE, .min = lo, .max = hi}
#define CAP_ENUM(nm, desc, vals)                                                                 \
	{.name = nm, .type = HEARTH_CAP_ENUM, .access = RW, .description = desc,                 \
	 .values = vals, .n_values = N(vals)}

#define TEMPERATURE CAP_SENSOR("temperature", "°C", "Temperature measured by the device")
#define HUMIDITY CAP_RANGE("humidity", RO, "%", "Relative humidity", 0, 100)
#define ROW(pat, desc, style, maxp, kmin, kmax, caps, props)                                     \
	{pat, desc, style, maxp, kmin, kmax, caps, N(caps), props, N(props)}

/* ---- smart plugs (legacy) ------------------------------------------------ */

static const struct hearth_capability plug_caps[] = {
	CAP_SWITCH("state", "Power of the socket"),
	TEMPERATURE,
};

static const struct miio_prop plug_props[] = {
	{.attr = "state", .prop = "power", .setter = "set_power", .conv = MIIO_CONV_ONOFF},
	{.attr = "temperature", .prop = "temperature"},
};

/* ---- air purifiers ------------------------------------------------------- */

static const char *const purifier_legacy_modes[] = {"auto", "silent", "favorite", "idle"};

static const struct hearth_capability purifier_legacy_caps[] = {
	CAP_SWITCH("state", "Power of the purifier"),
	CAP_ENUM("mode", "Operating mode", purifier_legacy_modes),
	CAP_SENSOR("pm25", "µg/m³", "PM2.5 concentration"),
	TEMPERATURE,
	HUMIDITY,
	CAP_RANGE("favorite_level", RW, NULL, "Fan level of the favourite mode", 0, 16),
	CAP_RANGE("filter_life", RO, "%", "Filter life left", 0, 100),
	CAP_SWITCH("led", "Display light"),
	CAP_SWITCH("buzzer", "Beeps on button presses"),
	CAP_LOCK,
};

static const struct miio_prop purifier_legacy_props[] = {
	{.attr = "state", .prop = "power", .setter = "set_power", .conv = MIIO_CONV_ONOFF},
	{.attr = "mode", .prop = "mode", .setter = "set_mode", .conv = MIIO_CONV_ENUM},
	{.attr = "pm25", .prop = "aqi"},
	{.attr = "temperature", .prop = "temp_dec", .scale = 10},
	{.attr = "humidity", .prop = "humidity"},
	{.attr = "favorite_level", .prop = "favorite_level", .setter = "set_level_favorite"},
	{.attr = "filter_life", .prop = "filter1_life"},
	{.attr = "led", .prop = "led", .setter = "set_led", .conv = MIIO_CONV_ONOFF},
	{.attr = "buzzer", .prop = "buzzer", .setter = "set_buzzer", .conv = MIIO_CONV_ONOFF},
	{.attr = "child_lock", .prop = "child_lock", .setter = "set_child_lock",
	 .conv = MIIO_CONV_ONOFF},
};

static const char *const purifier_miot_modes[] = {"auto", "silent", "favorite", "fan"};

static const struct hearth_capability purifier_miot_caps[] = {
	CAP_SWITCH("state", "Power of the purifier"),
	CAP_ENUM("mode", "Operating mode", purifier_miot_modes),
	CAP_RANGE("fan_level", RW, NULL, "Fan level of the fan mode", 1, 3),
	CAP_SENSOR("pm25", "µg/m³", "PM2.5 concentration"),
	TEMPERATURE,
	HUMIDITY,
	CAP_RANGE("filter_life", RO, "%", "Filter life left", 0, 100),
	CAP_RANGE("favorite_level", RW, NULL, "Fan level of the favourite mode", 0, 14),
	CAP_SWITCH("led", "Display light"),
	CAP_SWITCH("buzzer", "Beeps on button presses"),
	CAP_LOCK,
};

/* zhimi.airpurifier.ma4/mb3/va1/vb2 and kin (MIoT spec "air-purifier"). */
static const struct miio_prop purifier_miot_props[] = {
	{.attr = "state", .siid = 2, .piid = 2, .conv = MIIO_CONV_BOOL},
	{.attr = "mode", .siid = 2, .piid = 5, .conv = MIIO_CONV_ENUM},
	{.attr = "fan_level", .siid = 2, .piid = 4},
	{.attr = "pm25", .siid = 3, .piid = 6},
	{.attr = "temperature", .siid = 3, .piid = 8},
	{.attr = "humidity", .siid = 3, .piid = 7},
	{.attr = "filter_life", .siid = 4, .piid = 3},
	{.attr = "favorite_level", .siid = 10, .piid = 10},
	{.attr = "led", .siid = 6, .piid = 6, .conv = MIIO_CONV_BOOL},
	{.attr = "buzzer", .siid = 5, .piid = 1, .conv = MIIO_CONV_BOOL},
	{.attr = "child_lock", .siid = 7, .piid = 1, .conv = MIIO_CONV_BOOL},
};

/* ---- lamps: Mi Desk Lamp and Yeelight lights in miIO mode (legacy) ------ */

static const struct hearth_capability desk_lamp_caps[] = {
	CAP_SWITCH("state", "On/off state of the lamp"),
	CAP_RANGE("brightness", RW, NULL, "Brightness of the lamp", 0, 254),
	CAP_RANGE("color_temp", RW, "mired", "Colour temperature of the lamp", 154, 370),
};

static const struct hearth_capability yeelink_caps[] = {
	CAP_SWITCH("state", "On/off state of the light"),
	CAP_RANGE("brightness", RW, NULL, "Brightness of the light", 0, 254),
	CAP_RANGE("color_temp", RW, "mired", "Colour temperature of the light", 154, 588),
};

#define SMOOTH "\"smooth\",500"
static const struct miio_prop lamp_props[] = {
	{.attr = "state", .prop = "power", .setter = "set_power", .set_extra = SMOOTH,
	 .conv = MIIO_CONV_ONOFF},
	{.attr = "brightness", .prop = "bright", .setter = "set_bright", .set_extra = SMOOTH,
	 .conv = MIIO_CONV_PERCENT},
	{.attr = "color_temp", .prop = "ct", .setter = "set_ct_abx", .set_extra = SMOOTH,
	 .conv = MIIO_CONV_KELVIN},
};

/* ---- humidifiers --------------------------------------------------------- */

static const char *const humid_v1_modes[] = {"silent", "medium", "high"};
static const char *const humid_ca1_modes[] = {"auto", "silent", "medium", "high"};

#define HUMID_LEGACY_CAPS(modes)                                                                 \
	CAP_SWITCH("state", "Power of the humidifier"),                                          \
		CAP_ENUM("mode", "Operating mode", modes), HUMIDITY, TEMPERATURE,                \
		CAP_RANGE("target_humidity", RW, "%", "Humidity to keep", 30, 80),               \
		CAP_SWITCH("buzzer", "Beeps on button presses"), CAP_LOCK

static const struct hearth_capability humid_v1_caps[] = {HUMID_LEGACY_CAPS(humid_v1_modes)};
static const struct hearth_capability humid_ca1_caps[] = {HUMID_LEGACY_CAPS(humid_ca1_modes)};

static const struct miio_prop humid_legacy_props[] = {
	{.attr = "state", .prop = "power", .setter = "set_power", .conv = MIIO_CONV_ONOFF},
	{.attr = "mode", .prop = "mode", .setter = "set_mode", .conv = MIIO_CONV_ENUM},
	{.attr = "humidity", .prop = "humidity"},
	{.attr = "temperature", .prop = "temp_dec", .scale = 10},
	{.attr = "target_humidity", .prop = "limit_hum", .setter = "set_limit_hum"},
	{.attr = "buzzer", .prop = "buzzer", .setter = "set_buzzer", .conv = MIIO_CONV_ONOFF},
	{.attr = "child_lock", .prop = "child_lock", .setter = "set_child_lock",
	 .conv = MIIO_CONV_ONOFF},
};

static const char *const humid_miot_modes[] = {"auto", "low", "medium", "high"};

static const struct hearth_capability humid_miot_caps[] = {
	CAP_SWITCH("state", "Power of the humidifier"),
	CAP_ENUM("mode", "Operating mode", humid_miot_modes),
	HUMIDITY,
	TEMPERATURE,
	CAP_RANGE("target_humidity", RW, "%", "Humidity to keep", 30, 80),
	CAP_SWITCH("buzzer", "Beeps on button presses"),
	CAP_LOCK,
};

/* zhimi.humidifier.ca4 (MIoT spec "humidifier"). */
static const struct miio_prop humid_miot_props[] = {
	{.attr = "state", .siid = 2, .piid = 1, .conv = MIIO_CONV_BOOL},
	{.attr = "mode", .siid = 2, .piid = 5, .conv = MIIO_CONV_ENUM},
	{.attr = "target_humidity", .siid = 2, .piid = 6},
	{.attr = "temperature", .siid = 3, .piid = 7},
	{.attr = "humidity", .siid = 3, .piid = 9},
	{.attr = "buzzer", .siid = 4, .piid = 1, .conv = MIIO_CONV_BOOL},
	{.attr = "child_lock", .siid = 6, .piid = 1, .conv = MIIO_CONV_BOOL},
};

/* ---- the table ----------------------------------------------------------- */

static const struct hearth_capability generic_caps[] = {
	CAP_SWITCH("state", "Power of the device"),
};

static const struct miio_prop generic_props[] = {
	{.attr = "state", .prop = "power", .setter = "set_power", .conv = MIIO_CONV_ONOFF},
};

static const struct miio_model generic_row =
	ROW("*", "miIO device (model not in the table)", MIIO_LEGACY, 16, 1700, 6500,
	    generic_caps, generic_props);

/* Exact rows before the prefix rows they refine: the first match wins. */
static const struct miio_model rows[] = {
	ROW("chuangmi.plug.m1", "Mi Smart Plug (Wi-Fi)", MIIO_LEGACY, 16, 0, 0, plug_caps,
	    plug_props),
	ROW("chuangmi.plug.*", "Mi Smart Plug (legacy miIO)", MIIO_LEGACY, 16, 0, 0, plug_caps,
	    plug_props),
	ROW("zhimi.airpurifier.m1", "Mi Air Purifier 2 mini", MIIO_LEGACY, 16, 0, 0,
	    purifier_legacy_caps, purifier_legacy_props),
	ROW("zhimi.airpurifier.m2", "Mi Air Purifier 2", MIIO_LEGACY, 16, 0, 0,
	    purifier_legacy_caps, purifier_legacy_props),
	ROW("zhimi.airpurifier.v6", "Mi Air Purifier Pro", MIIO_LEGACY, 16, 0, 0,
	    purifier_legacy_caps, purifier_legacy_props),
	ROW("zhimi.airpurifier.v7", "Mi Air Purifier Pro v7", MIIO_LEGACY, 16, 0, 0,
	    purifier_legacy_caps, purifier_legacy_props),
	ROW("zhimi.airpurifier.mc1", "Mi Air Purifier 2S", MIIO_LEGACY, 16, 0, 0,
	    purifier_legacy_caps, purifier_legacy_props),
	ROW("zhimi.airpurifier.*", "Mi Air Purifier (MIoT: 3, 3H, Pro H and later)", MIIO_MIOT, 15,
	    0, 0, purifier_miot_caps, purifier_miot_props),
	ROW("yeelink.light.lamp1", "Mi Desk Lamp", MIIO_LEGACY, 16, 2700, 6500, desk_lamp_caps,
	    lamp_props),
	ROW("yeelink.light.*", "Yeelight light in miIO mode", MIIO_LEGACY, 16, 1700, 6500,
	    yeelink_caps, lamp_props),
	ROW("zhimi.humidifier.v1", "Smartmi Humidifier", MIIO_LEGACY, 16, 0, 0, humid_v1_caps,
	    humid_legacy_props),
	ROW("zhimi.humidifier.ca1", "Smartmi Evaporative Humidifier", MIIO_LEGACY, 16, 0, 0,
	    humid_ca1_caps, humid_legacy_props),
	ROW("zhimi.humidifier.ca4", "Smartmi Evaporative Humidifier 2", MIIO_MIOT, 15, 0, 0,
	    humid_miot_caps, humid_miot_props),
};

bool miio_model_matches(const char *pattern, const char *model)
{
	size_t n = strlen(pattern);
	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, model, n - 1) == 0;
	return strcmp(pattern, model) == 0;
}

const struct miio_model *miio_model_find(const char *model)
{
	if (!model || !model[0])
		return &generic_row;
	for (size_t pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < N(rows); i++) {
			bool prefix = strchr(rows[i].pattern, '*') != NULL;
			if (prefix == (pass == 1) && miio_model_matches(rows[i].pattern, model))
				return &rows[i];
		}
	return &generic_row;
}

const struct miio_model *miio_model_generic(void)
{
	return &generic_row;
}

const struct miio_model *miio_model_at(size_t i)
{
	return i < N(rows) ? &rows[i] : NULL;
}

size_t miio_model_count(void)
{
	return N(rows);
}

int miio_prop_index(const struct miio_model *m, const char *attr)
{
	for (size_t i = 0; attr && i < m->n_props; i++)
		if (strcmp(m->props[i].attr, attr) == 0)
			return (int)i;
	return -1;
}

const struct hearth_capability *miio_prop_cap(const struct miio_model *m, size_t i)
{
	for (size_t c = 0; i < m->n_props && c < m->n_caps; c++)
		if (strcmp(m->caps[c].name, m->props[i].attr) == 0)
			return &m->caps[c];
	return NULL;
}

/* ---- values: wire -> hearth ---------------------------------------------- */

/* A device may send a number as text ("24.5"): both are read. */
static bool wire_number(const cJSON *v, double *out)
{
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return isfinite(*out);
	}
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 32)
		return false;
	char *end;
	double d = strtod(v->valuestring, &end);
	if (*end || !isfinite(d))
		return false;
	*out = d;
	return true;
}

/* on/off in any of the forms devices use: "on"/"off", true/false, 1/0. */
static bool wire_switch(const cJSON *v, bool *on)
{
	if (cJSON_IsBool(v)) {
		*on = cJSON_IsTrue(v);
		return true;
	}
	if (cJSON_IsString(v)) {
		bool yes = strcasecmp(v->valuestring, "on") == 0 || strcmp(v->valuestring, "1") == 0;
		bool no = strcasecmp(v->valuestring, "off") == 0 || strcmp(v->valuestring, "0") == 0;
		*on = yes;
		return yes || no;
	}
	if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) {
		*on = v->valuedouble == 1;
		return true;
	}
	return false;
}

/* MIoT enums are numbers on the wire, legacy ones text. */
static bool wire_enum(enum miio_style style, const struct miio_prop *p,
		      const struct hearth_capability *cap, const cJSON *v, struct hearth_value *out)
{
	double d;
	for (size_t i = 0; i < cap->n_values; i++) {
		bool hit;
		if (style == MIIO_MIOT)
			hit = wire_number(v, &d) &&
			      d == (p->wire_numbers ? p->wire_numbers[i] : (int)i);
		else
			hit = cJSON_IsString(v) &&
			      strcmp(v->valuestring,
				     p->wire_texts ? p->wire_texts[i] : cap->values[i]) == 0;
		if (hit) {
			*out = HEARTH_STRING(cap->values[i]);
			return true;
		}
	}
	return false;
}

/* Keep reported numbers free of binary noise (24.500000000000004). */
static double tidy(double x)
{
	return round(x * 1e6) / 1e6;
}

static bool from_wire(const struct miio_model *m, size_t i, const cJSON *v, int hint,
		      struct hearth_value *out)
{
	const struct miio_prop *p = &m->props[i];
	const struct hearth_capability *cap = miio_prop_cap(m, i);
	double d;
	bool on;
	if (!cap)
		return false;
	switch (p->conv) {
	case MIIO_CONV_NUMBER:
		if (!wire_number(v, &d))
			return false;
		*out = HEARTH_NUMBER(tidy(d / (p->scale ? p->scale : 1)));
		return true;
	case MIIO_CONV_ONOFF:
	case MIIO_CONV_BOOL:
		if (cap->type != HEARTH_CAP_BINARY || !wire_switch(v, &on))
			return false;
		*out = on ? cap->value_on : cap->value_off;
		return true;
	case MIIO_CONV_ENUM:
		return cap->type == HEARTH_CAP_ENUM && wire_enum(m->style, p, cap, v, out);
	case MIIO_CONV_PERCENT:
		if (!wire_number(v, &d) || d < 0 || d > 100)
			return false;
		*out = HEARTH_NUMBER(conv_bright_from_pct((int)lround(d), hint));
		return true;
	case MIIO_CONV_KELVIN:
		if (!wire_number(v, &d) || d < 1 || d > 100000)
			return false;
		*out = HEARTH_NUMBER(conv_mired_from_kelvin((int)lround(d), hint, m->kelvin_min,
							    m->kelvin_max));
		return true;
	}
	return false;
}

/* ---- poll ---------------------------------------------------------------- */

static bool polled(const struct miio_model *m, size_t i)
{
	return m->style == MIIO_MIOT ? m->props[i].siid && m->props[i].piid
				     : m->props[i].prop != NULL;
}

int miio_poll_build(const struct miio_model *m, size_t start, const char **method, char *params,
		    size_t cap, size_t *next)
{
	size_t used = 0, count = 0, i = start;
	unsigned max = m->max_props ? m->max_props : 16;
	if (cap < 3)
		return -ENOSPC;
	params[used++] = '[';
	for (; i < m->n_props && count < max; i++) {
		if (!polled(m, i))
			continue;
		const struct miio_prop *p = &m->props[i];
		int n = m->style == MIIO_MIOT
				? snprintf(params + used, cap - used,
					   "%s{\"did\":\"%s\",\"siid\":%u,\"piid\":%u}",
					   count ? "," : "", p->attr, p->siid, p->piid)
				: snprintf(params + used, cap - used, "%s\"%s\"", count ? "," : "",
					   p->prop);
		if (n < 0 || (size_t)n + 2 > cap - used)
			return -ENOSPC;
		used += (size_t)n;
		count++;
	}
	if (count == 0)
		return -ENOENT;
	params[used++] = ']';
	params[used] = '\0';
	*method = m->style == MIIO_MIOT ? "get_properties" : "get_prop";
	*next = i;
	return 0;
}

static int attr_push(const struct miio_model *m, size_t i, const cJSON *v, const int *hints,
		     struct hearth_attr *out, size_t cap, size_t *n)
{
	struct hearth_value value;
	if (!from_wire(m, i, v, hints ? hints[i] : -1, &value))
		return 0;
	if (*n >= cap)
		return -ENOSPC;
	out[(*n)++] = (struct hearth_attr){.name = m->props[i].attr, .value = value};
	return 0;
}

static int parse_miot(const struct miio_model *m, size_t start, size_t next, const cJSON *result,
		      const int *hints, struct hearth_attr *out, size_t cap, size_t *n)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, result)
	{
		const cJSON *siid = cJSON_GetObjectItemCaseSensitive(item, "siid");
		const cJSON *piid = cJSON_GetObjectItemCaseSensitive(item, "piid");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(item, "code");
		if (!cJSON_IsNumber(siid) || !cJSON_IsNumber(piid) ||
		    (code && (!cJSON_IsNumber(code) || code->valuedouble != 0)))
			continue;
		for (size_t i = start; i < next && i < m->n_props; i++) {
			if (!polled(m, i) || m->props[i].siid != siid->valuedouble ||
			    m->props[i].piid != piid->valuedouble)
				continue;
			int rc = attr_push(m, i, cJSON_GetObjectItemCaseSensitive(item, "value"),
					   hints, out, cap, n);
			if (rc)
				return rc;
			break;
		}
	}
	return 0;
}

static int parse_legacy(const struct miio_model *m, size_t start, size_t next,
			const cJSON *result, const int *hints, struct hearth_attr *out, size_t cap,
			size_t *n)
{
	const cJSON *v = result->child;
	for (size_t i = start; i < next && i < m->n_props && v; i++) {
		if (!polled(m, i))
			continue;
		int rc = attr_push(m, i, v, hints, out, cap, n);
		if (rc)
			return rc;
		v = v->next;
	}
	return 0;
}

int miio_poll_parse(const struct miio_model *m, size_t start, size_t next, const cJSON *result,
		    const int *hints, struct hearth_attr *out, size_t cap, size_t *n_out)
{
	size_t n = 0;
	if (!cJSON_IsArray(result))
		return -EBADMSG;
	int rc = m->style == MIIO_MIOT
			 ? parse_miot(m, start, next, result, hints, out, cap, &n)
			 : parse_legacy(m, start, next, result, hints, out, cap, &n);
	if (rc == 0)
		*n_out = n;
	return rc;
}

/* ---- values: hearth -> wire ---------------------------------------------- */

static bool value_equal(const struct hearth_value *a, const struct hearth_value *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == HEARTH_VALUE_BOOL)
		return a->u.boolean == b->u.boolean;
	if (a->type == HEARTH_VALUE_STRING)
		return a->u.string && b->u.string && strcmp(a->u.string, b->u.string) == 0;
	return false;
}

static int switch_value(const struct hearth_capability *cap, const struct hearth_value *v,
			bool *on)
{
	if (cap->type != HEARTH_CAP_BINARY)
		return -EINVAL;
	if (value_equal(v, &cap->value_on))
		*on = true;
	else if (value_equal(v, &cap->value_off))
		*on = false;
	else
		return -EINVAL;
	return 0;
}

static int enum_wire(enum miio_style style, const struct miio_prop *p,
		     const struct hearth_capability *cap, const struct hearth_value *v, char *buf,
		     size_t cap_len)
{
	if (cap->type != HEARTH_CAP_ENUM || v->type != HEARTH_VALUE_STRING || !v->u.string)
		return -EINVAL;
	for (size_t i = 0; i < cap->n_values; i++) {
		if (strcmp(cap->values[i], v->u.string) != 0)
			continue;
		if (style == MIIO_MIOT)
			snprintf(buf, cap_len, "%d", p->wire_numbers ? p->wire_numbers[i] : (int)i);
		else
			snprintf(buf, cap_len, "\"%s\"", p->wire_texts ? p->wire_texts[i]
								       : cap->values[i]);
		return 0;
	}
	return -EINVAL;
}

static int number_value(const struct hearth_capability *cap, const struct hearth_value *v,
			double *out)
{
	if (v->type != HEARTH_VALUE_NUMBER || !isfinite(v->u.number))
		return -EINVAL;
	double d = v->u.number;
	if (((cap->flags & HEARTH_CAP_HAS_MIN) && d < cap->min) ||
	    ((cap->flags & HEARTH_CAP_HAS_MAX) && d > cap->max))
		return -ERANGE;
	*out = d;
	return 0;
}

/* The JSON text of a value as the device wants it. */
static int to_wire(const struct miio_model *m, size_t i, const struct hearth_value *v, char *buf,
		   size_t cap_len)
{
	const struct miio_prop *p = &m->props[i];
	const struct hearth_capability *cap = miio_prop_cap(m, i);
	bool on;
	double d;
	int rc = cap ? 0 : -EINVAL;
	switch (rc ? MIIO_CONV_NUMBER : p->conv) {
	case MIIO_CONV_ONOFF:
	case MIIO_CONV_BOOL:
		if ((rc = switch_value(cap, v, &on)) == 0)
			snprintf(buf, cap_len, "%s",
				 p->conv == MIIO_CONV_BOOL ? (on ? "true" : "false")
							   : (on ? "\"on\"" : "\"off\""));
		return rc;
	case MIIO_CONV_ENUM:
		return enum_wire(m->style, p, cap, v, buf, cap_len);
	case MIIO_CONV_PERCENT:
		if (rc == 0 && (rc = number_value(cap, v, &d)) == 0)
			snprintf(buf, cap_len, "%d", conv_pct_from_bright(d));
		return rc;
	case MIIO_CONV_KELVIN:
		if (rc == 0 && (rc = number_value(cap, v, &d)) == 0)
			snprintf(buf, cap_len, "%d",
				 conv_kelvin_from_mired(d, m->kelvin_min, m->kelvin_max));
		return rc;
	case MIIO_CONV_NUMBER:
		if (rc == 0 && (rc = number_value(cap, v, &d)) == 0)
			snprintf(buf, cap_len, "%.10g", tidy(d * (p->scale ? p->scale : 1)));
		return rc;
	}
	return -EINVAL;
}

/* ---- set ----------------------------------------------------------------- */

static int settable(const struct miio_model *m, const struct hearth_attr *a, char *err,
		    size_t err_len)
{
	int i = miio_prop_index(m, a->name);
	const struct hearth_capability *cap = i >= 0 ? miio_prop_cap(m, (size_t)i) : NULL;
	bool ok = cap && (cap->access & HEARTH_ACCESS_SET) &&
		  (m->style == MIIO_MIOT ? m->props[i].siid != 0 : m->props[i].setter != NULL);
	if (!ok) {
		snprintf(err, err_len, "'%s' cannot be set on %s", a->name ? a->name : "",
			 m->description);
		return -EINVAL;
	}
	return i;
}

static bool is_power_off(const struct miio_model *m, size_t i, const struct hearth_value *v)
{
	const struct hearth_capability *cap = miio_prop_cap(m, i);
	bool on;
	return strcmp(m->props[i].attr, "state") == 0 && cap && switch_value(cap, v, &on) == 0 &&
	       !on;
}

static int legacy_req(const struct miio_model *m, size_t i, const struct hearth_value *v,
		      struct miio_set_req *r, char *err, size_t err_len)
{
	char value[128];
	const struct miio_prop *p = &m->props[i];
	int rc = to_wire(m, i, v, value, sizeof(value));
	if (rc) {
		snprintf(err, err_len, "'%s': the value cannot be sent to the device", p->attr);
		return -EINVAL;
	}
	snprintf(r->method, sizeof(r->method), "%s", p->setter);
	snprintf(r->params, sizeof(r->params), "[%s%s%s]", value, p->set_extra ? "," : "",
		 p->set_extra ? p->set_extra : "");
	r->props_mask = 1u << i;
	return 0;
}

static int miot_append(const struct miio_model *m, size_t i, const struct hearth_value *v,
		       struct miio_set_req *r, size_t *used, char *err, size_t err_len)
{
	char value[128];
	const struct miio_prop *p = &m->props[i];
	if (to_wire(m, i, v, value, sizeof(value))) {
		snprintf(err, err_len, "'%s': the value cannot be sent to the device", p->attr);
		return -EINVAL;
	}
	int n = snprintf(r->params + *used, sizeof(r->params) - *used,
			 "%s{\"did\":\"%s\",\"siid\":%u,\"piid\":%u,\"value\":%s}",
			 r->props_mask ? "," : "", p->attr, p->siid, p->piid, value);
	if (n < 0 || (size_t)n + 2 > sizeof(r->params) - *used)
		return -ENOSPC;
	*used += (size_t)n;
	r->props_mask |= 1u << i;
	return 0;
}

/* Index of the attribute setting props[i], or -1. */
static int attr_for(size_t n, const int *idx, size_t i)
{
	for (size_t k = 0; k < n; k++)
		if (idx[k] == (int)i)
			return (int)k;
	return -1;
}

static int build_miot(const struct miio_model *m, const struct hearth_attr *attrs, size_t n,
		      const int *idx, struct miio_set_req *r, char *err, size_t err_len)
{
	size_t used = 1;
	memset(r, 0, sizeof(*r));
	snprintf(r->method, sizeof(r->method), "set_properties");
	r->params[0] = '[';
	for (size_t i = 0; i < m->n_props; i++) {
		int k = attr_for(n, idx, i);
		int rc = k < 0 ? 0 : miot_append(m, i, &attrs[k].value, r, &used, err, err_len);
		if (rc)
			return rc;
	}
	r->params[used++] = ']';
	r->params[used] = '\0';
	return 0;
}

static int build_legacy(const struct miio_model *m, const struct hearth_attr *attrs, size_t n,
			const int *idx, struct miio_set_req *out, size_t cap, size_t *n_out,
			char *err, size_t err_len)
{
	size_t count = 0;
	int off = -1; /* a power-off goes last, after what it would refuse */
	for (size_t i = 0; i < m->n_props; i++) {
		int k = attr_for(n, idx, i);
		if (k < 0)
			continue;
		if (is_power_off(m, i, &attrs[k].value)) {
			off = (int)i;
			continue;
		}
		if (count >= cap)
			return -ENOSPC;
		int rc = legacy_req(m, i, &attrs[k].value, &out[count++], err, err_len);
		if (rc)
			return rc;
	}
	if (off >= 0) {
		if (count >= cap)
			return -ENOSPC;
		int rc = legacy_req(m, (size_t)off, &attrs[attr_for(n, idx, (size_t)off)].value,
				    &out[count++], err, err_len);
		if (rc)
			return rc;
	}
	*n_out = count;
	return 0;
}

int miio_set_build(const struct miio_model *m, const struct hearth_attr *attrs, size_t n,
		   struct miio_set_req *out, size_t cap, size_t *n_out, char *err, size_t err_len)
{
	int idx[MIIO_PROPS_MAX];
	if (n == 0 || n > MIIO_PROPS_MAX || m->n_props > MIIO_PROPS_MAX) {
		snprintf(err, err_len, "%zu attributes: expected 1..%d", n, MIIO_PROPS_MAX);
		return -EINVAL;
	}
	for (size_t k = 0; k < n; k++) {
		int i = settable(m, &attrs[k], err, err_len);
		if (i < 0)
			return i;
		for (size_t j = 0; j < k; j++)
			if (idx[j] == i) {
				snprintf(err, err_len, "'%s' is given twice", attrs[k].name);
				return -EINVAL;
			}
		idx[k] = i;
	}
	if (m->style == MIIO_LEGACY)
		return build_legacy(m, attrs, n, idx, out, cap, n_out, err, err_len);
	if (cap < 1)
		return -ENOSPC;
	int rc = build_miot(m, attrs, n, idx, &out[0], err, err_len);
	if (rc == 0)
		*n_out = 1;
	return rc;
}

int miio_set_result_check(const struct miio_model *m, const cJSON *result, char *err,
			  size_t err_len)
{
	if (m->style == MIIO_LEGACY) {
		const cJSON *first = cJSON_IsArray(result) ? result->child : NULL;
		if (cJSON_IsString(first) && strcasecmp(first->valuestring, "ok") != 0) {
			snprintf(err, err_len, "the device answered '%.64s'", first->valuestring);
			return -EREMOTEIO;
		}
		return 0;
	}
	if (!cJSON_IsArray(result)) {
		snprintf(err, err_len, "the device's answer is not a list");
		return -EREMOTEIO;
	}
	const cJSON *item;
	cJSON_ArrayForEach(item, result)
	{
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(item, "code");
		if (cJSON_IsNumber(code) && code->valuedouble != 0) {
			const cJSON *s = cJSON_GetObjectItemCaseSensitive(item, "siid");
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(item, "piid");
			snprintf(err, err_len, "the device refused siid %d piid %d (code %d)",
				 cJSON_IsNumber(s) ? s->valueint : 0,
				 cJSON_IsNumber(p) ? p->valueint : 0, code->valueint);
			return -EREMOTEIO;
		}
	}
	return 0;
}

int miio_info_model(const cJSON *result, char *model, size_t cap)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(result, "model");
	if (!cJSON_IsString(m))
		return -EBADMSG;
	size_t n = strlen(m->valuestring);
	if (n == 0 || n >= cap || n >= MIIO_MODEL_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		char c = m->valuestring[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return -EBADMSG;
	}
	memcpy(model, m->valuestring, n + 1);
	return 0;
}
