/*
 * Yeelight codec: discovery text, control lines, capabilities, commands and
 * the quota. See yeelight_codec.h.
 */
#include "yeelight_codec.h"

#include "convert.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#define RW (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET)
#define RANGE (HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX)
#define VSTR(s) {.type = HEARTH_VALUE_STRING, .u.string = (s)}
#define DEFAULT_DURATION_MS 500
#define MIN_DURATION_MS 30

/* ---- small text helpers -------------------------------------------------- */

/* Copy [s, s+n) trimmed of blanks into out (cap bytes, NUL-terminated). */
static void copy_trimmed(char *out, size_t cap, const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/* A whole decimal number in lo..hi. */
static bool int_text(const char *s, long lo, long hi, long *out)
{
	char *end;
	if (!s[0] || strlen(s) > 20)
		return false;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* ---- properties ---------------------------------------------------------- */

struct prop_def {
	const char *key;
	unsigned bit;
	long lo, hi;
};

static const struct prop_def prop_defs[] = {
	{"bright", YL_HAS_BRIGHT, 0, 100},     {"ct", YL_HAS_CT, 1, 100000},
	{"rgb", YL_HAS_RGB, 0, 0xffffff},      {"hue", YL_HAS_HUE, 0, 359},
	{"sat", YL_HAS_SAT, 0, 100},	       {"color_mode", YL_HAS_COLOR_MODE, 1, 3},
};

static void prop_store(struct yl_props *p, unsigned bit, long v)
{
	switch (bit) {
	case YL_HAS_BRIGHT: p->bright = (int)v; break;
	case YL_HAS_CT: p->ct = (int)v; break;
	case YL_HAS_RGB: p->rgb = v; break;
	case YL_HAS_HUE: p->hue = (int)v; break;
	case YL_HAS_SAT: p->sat = (int)v; break;
	default: p->color_mode = (int)v; break;
	}
	p->has |= bit;
}

static bool name_ok(const char *v)
{
	size_t n = strlen(v);
	if (n >= YL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

int yl_prop_set(struct yl_props *p, const char *key, const char *value)
{
	long v;
	if (strcmp(key, "power") == 0) {
		if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
			return -EINVAL;
		p->power = strcmp(value, "on") == 0;
		p->has |= YL_HAS_POWER;
		return 0;
	}
	if (strcmp(key, "name") == 0) {
		if (!name_ok(value))
			return -EINVAL;
		snprintf(p->name, sizeof(p->name), "%s", value);
		p->has |= YL_HAS_NAME;
		return 0;
	}
	for (size_t i = 0; i < sizeof(prop_defs) / sizeof(prop_defs[0]); i++) {
		if (strcmp(key, prop_defs[i].key) != 0)
			continue;
		if (!int_text(value, prop_defs[i].lo, prop_defs[i].hi, &v))
			return -EINVAL;
		prop_store(p, prop_defs[i].bit, v);
		return 0;
	}
	return -ENOENT;
}

const char *const yl_prop_names[] = {"power", "bright", "ct", "rgb", "hue", "sat", "color_mode",
				     "name"};
const size_t yl_prop_count = sizeof(yl_prop_names) / sizeof(yl_prop_names[0]);

int yl_get_prop_params(char *buf, size_t cap)
{
	size_t used = 0;
	for (size_t i = 0; i < yl_prop_count; i++) {
		int n = snprintf(buf + used, cap - used, "%s\"%s\"%s", i ? "," : "[",
				 yl_prop_names[i], i + 1 == yl_prop_count ? "]" : "");
		if (n < 0 || (size_t)n >= cap - used)
			return -ENOSPC;
		used += (size_t)n;
	}
	return (int)used;
}

size_t yl_get_prop_apply(const struct yl_msg *m, const char *const *names, size_t n,
			 struct yl_props *props)
{
	size_t applied = 0;
	for (size_t i = 0; i < n && i < m->n_results; i++)
		if (m->results[i][0] && yl_prop_set(props, names[i], m->results[i]) == 0)
			applied++;
	return applied;
}

/* ---- discovery ----------------------------------------------------------- */

int yl_search_build(char *buf, size_t cap, const char *host_port)
{
	static const char head[] = "M-SEARCH * HTTP/1.1\r\nHOST: ";
	static const char tail[] = "\r\nMAN: \"ssdp:discover\"\r\nST: wifi_bulb\r\n\r\n";
	const char *host = host_port ? host_port : YL_SSDP_GROUP ":1982";
	size_t h = strlen(head), n = strlen(host), t = strlen(tail);
	if (h + n + t >= cap || h + n + t > YL_LINE_MAX)
		return -ENOSPC;
	memcpy(buf, head, h);
	memcpy(buf + h, host, n);
	memcpy(buf + h + n, tail, t + 1);
	return (int)(h + n + t);
}

static unsigned support_bits(const char *list)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{"get_prop", YL_SUP_GET_PROP},	 {"set_power", YL_SUP_SET_POWER},
		{"toggle", YL_SUP_TOGGLE},	 {"set_bright", YL_SUP_SET_BRIGHT},
		{"set_ct_abx", YL_SUP_SET_CT},	 {"set_rgb", YL_SUP_SET_RGB},
		{"set_hsv", YL_SUP_SET_HSV},	 {"set_name", YL_SUP_SET_NAME},
	};
	unsigned bits = 0;
	const char *p = list;
	while (*p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		for (size_t i = 0; n && i < sizeof(methods) / sizeof(methods[0]); i++)
			if (strlen(methods[i].name) == n && strncmp(methods[i].name, p, n) == 0)
				bits |= methods[i].bit;
		p += n;
	}
	return bits;
}

/* "yeelight://192.168.1.239:55443", tolerating blanks around the port. */
static int location_parse(const char *v, struct yl_discovery *d)
{
	static const char scheme[] = "yeelight://";
	if (strncasecmp(v, scheme, sizeof(scheme) - 1) != 0)
		return -EBADMSG;
	const char *host = v + sizeof(scheme) - 1;
	size_t hn = strcspn(host, ": /");
	char ip[16];
	long port = YL_PORT;
	if (hn == 0 || hn >= sizeof(ip))
		return -EBADMSG;
	memcpy(ip, host, hn);
	ip[hn] = '\0';
	for (size_t i = 0; i < hn; i++)
		if (!((ip[i] >= '0' && ip[i] <= '9') || ip[i] == '.'))
			return -EBADMSG;
	const char *rest = host + hn;
	if (*rest == ':') {
		char num[8];
		copy_trimmed(num, sizeof(num), rest + 1, strcspn(rest + 1, "/"));
		if (!int_text(num, 1, 65535, &port))
			return -EBADMSG;
	}
	memcpy(d->ip, ip, hn + 1);
	d->port = (uint16_t)port;
	return 0;
}

static int id_parse(const char *v, struct yl_discovery *d)
{
	const char *hex = (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) ? v + 2 : v;
	size_t n = strlen(hex);
	uint64_t id = 0;
	if (n == 0 || n > 16)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		char c = hex[i];
		int x = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (x < 0)
			return -EBADMSG;
		id = id << 4 | (uint64_t)x;
	}
	d->id = id;
	snprintf(d->id_text, sizeof(d->id_text), "0x%016llx", (unsigned long long)id);
	return 0;
}

static void max_age_parse(const char *v, struct yl_discovery *d)
{
	const char *p = strcasestr(v, "max-age");
	long age;
	char num[12];
	if (!p)
		return;
	p += strlen("max-age");
	while (*p == ' ' || *p == '=')
		p++;
	copy_trimmed(num, sizeof(num), p, strcspn(p, " ,;"));
	if (int_text(num, 0, 86400 * 7, &age))
		d->max_age = (unsigned)age;
}

/* One "key: value" header; unknown headers are ignored. */
static int header_apply(const char *key, const char *v, struct yl_discovery *d, bool *have_loc,
			bool *have_id)
{
	long n;
	if (strcasecmp(key, "location") == 0) {
		*have_loc = location_parse(v, d) == 0;
		return 0;
	}
	if (strcasecmp(key, "id") == 0) {
		*have_id = id_parse(v, d) == 0;
		return 0;
	}
	if (strcasecmp(key, "cache-control") == 0)
		max_age_parse(v, d);
	else if (strcasecmp(key, "model") == 0)
		copy_trimmed(d->model, sizeof(d->model), v, strlen(v));
	else if (strcasecmp(key, "fw_ver") == 0 && int_text(v, 0, 1000000, &n))
		d->fw_ver = (unsigned)n;
	else if (strcasecmp(key, "support") == 0)
		d->support = support_bits(v);
	else
		yl_prop_set(&d->props, key, v); /* power, bright, ...: bad values ignored */
	return 0;
}

static int start_line(const char *line, struct yl_discovery *d)
{
	if (strncasecmp(line, "HTTP/1.1 200", 12) == 0)
		d->notify = false;
	else if (strncasecmp(line, "NOTIFY ", 7) == 0)
		d->notify = true;
	else
		return -EBADMSG;
	return 0;
}

int yl_discovery_parse(const char *text, size_t len, struct yl_discovery *out)
{
	struct yl_discovery d;
	bool have_loc = false, have_id = false, first = true;
	char line[YL_LINE_MAX];
	if (!text || len == 0 || len > YL_LINE_MAX)
		return -EBADMSG;
	memset(&d, 0, sizeof(d));
	size_t pos = 0;
	while (pos < len) {
		size_t n = 0;
		while (pos + n < len && text[pos + n] != '\n' && text[pos + n] != '\0')
			n++;
		copy_trimmed(line, sizeof(line), text + pos, n);
		pos += n + 1;
		if (first) {
			if (start_line(line, &d))
				return -EBADMSG;
			first = false;
			continue;
		}
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		char key[32], value[YL_LINE_MAX];
		copy_trimmed(key, sizeof(key), line, strlen(line));
		copy_trimmed(value, sizeof(value), colon + 1, strlen(colon + 1));
		header_apply(key, value, &d, &have_loc, &have_id);
	}
	if (first || !have_loc || !have_id)
		return -EBADMSG;
	*out = d;
	return 0;
}

/* ---- control lines ------------------------------------------------------- */

/* A JSON scalar as text ("10" for both "10" and 10). */
static bool scalar_text(const cJSON *v, char *out, size_t cap)
{
	if (cJSON_IsString(v)) {
		if (strlen(v->valuestring) >= cap)
			return false;
		snprintf(out, cap, "%s", v->valuestring);
		return true;
	}
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
		snprintf(out, cap, "%.15g", v->valuedouble);
		return true;
	}
	return false;
}

static int msg_result(const cJSON *root, const cJSON *id, struct yl_msg *m)
{
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(root, "result");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 4294967295.0)
		return -EBADMSG;
	m->id = (uint32_t)id->valuedouble;
	if (cJSON_IsObject(error)) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(error, "message");
		m->kind = YL_MSG_ERROR;
		m->error_code = cJSON_IsNumber(code) && fabs(code->valuedouble) < 1e9
					? (int)code->valuedouble
					: 0;
		snprintf(m->error_message, sizeof(m->error_message), "%s",
			 cJSON_IsString(msg) ? msg->valuestring : "error");
		return 0;
	}
	if (!cJSON_IsArray(result))
		return -EBADMSG;
	m->kind = YL_MSG_RESULT;
	const cJSON *v;
	cJSON_ArrayForEach(v, result)
	{
		if (m->n_results == YL_RESULTS_MAX)
			break;
		if (!scalar_text(v, m->results[m->n_results], YL_NAME_MAX))
			m->results[m->n_results][0] = '\0';
		m->n_results++;
	}
	return 0;
}

static int msg_props(const cJSON *params, struct yl_msg *m)
{
	if (!cJSON_IsObject(params))
		return -EBADMSG;
	m->kind = YL_MSG_PROPS;
	const cJSON *v;
	char text[YL_NAME_MAX];
	cJSON_ArrayForEach(v, params)
	{
		if (v->string && scalar_text(v, text, sizeof(text)))
			yl_prop_set(&m->props, v->string, text);
	}
	return 0;
}

int yl_line_parse(const char *line, size_t len, struct yl_msg *out)
{
	if (!line || len == 0 || len > YL_LINE_MAX)
		return -EBADMSG;
	cJSON *root = cJSON_ParseWithLength(line, len);
	struct yl_msg *m = calloc(1, sizeof(*m));
	int rc = -EBADMSG;
	if (!m) {
		rc = -ENOMEM;
		goto out;
	}
	if (!cJSON_IsObject(root))
		goto out;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
	if (id)
		rc = msg_result(root, id, m);
	else if (cJSON_IsString(method) && strcmp(method->valuestring, "props") == 0)
		rc = msg_props(cJSON_GetObjectItemCaseSensitive(root, "params"), m);
	if (rc == 0)
		*out = *m;
out:
	free(m);
	cJSON_Delete(root);
	return rc;
}

int yl_command_format(char *buf, size_t cap, uint32_t id, const char *method, const char *params)
{
	if (!method || !method[0] || strlen(method) > 32 || strpbrk(method, "\"\\\r\n"))
		return -EINVAL;
	int n = snprintf(buf, cap, "{\"id\":%u,\"method\":\"%s\",\"params\":%s}\r\n", id, method,
			 params ? params : "[]");
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}

/* ---- capabilities -------------------------------------------------------- */

static const struct hearth_capability color_features[] = {
	{.name = "hue", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 359},
	{.name = "saturation", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 100},
	{.name = "r", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 255},
	{.name = "g", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 255},
	{.name = "b", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 255},
};

static const char *const color_modes[] = {"rgb", "color_temp", "hs"};

enum { CAP_STATE, CAP_BRIGHT, CAP_CT_WIDE, CAP_CT_NARROW, CAP_COLOR, CAP_MODE, CAP_TRANS, CAP_NAME };

static const struct hearth_capability bulb_caps[] = {
	[CAP_STATE] = {.name = "state", .type = HEARTH_CAP_BINARY, .access = RW,
		       .description = "On/off state of the light", .value_on = VSTR("ON"),
		       .value_off = VSTR("OFF")},
	[CAP_BRIGHT] = {.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RW,
			.description = "Brightness of the light", .flags = RANGE, .min = 0,
			.max = 254},
	[CAP_CT_WIDE] = {.name = "color_temp", .type = HEARTH_CAP_NUMERIC, .access = RW,
			 .unit = "mired", .description = "Colour temperature of the light",
			 .flags = RANGE, .min = 154, .max = 588},
	[CAP_CT_NARROW] = {.name = "color_temp", .type = HEARTH_CAP_NUMERIC, .access = RW,
			   .unit = "mired", .description = "Colour temperature of the light",
			   .flags = RANGE, .min = 154, .max = 370},
	[CAP_COLOR] = {.name = "color", .type = HEARTH_CAP_COMPOSITE, .access = RW,
		       .description = "Colour as hue/saturation or r/g/b",
		       .features = color_features,
		       .n_features = sizeof(color_features) / sizeof(color_features[0])},
	[CAP_MODE] = {.name = "color_mode", .type = HEARTH_CAP_ENUM,
		      .access = HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_GET,
		      .description = "Which of colour and colour temperature the light shows",
		      .values = color_modes, .n_values = 3},
	[CAP_TRANS] = {.name = "transition", .type = HEARTH_CAP_NUMERIC,
		       .access = HEARTH_ACCESS_SET, .unit = "s",
		       .description = "Seconds a change takes (0: at once)", .flags = RANGE,
		       .min = 0, .max = 60},
	[CAP_NAME] = {.name = "bulb_name", .type = HEARTH_CAP_TEXT, .access = RW,
		      .description = "Name stored in the bulb"},
};

void yl_kelvin_range(const char *model, int *kmin, int *kmax)
{
	bool narrow = model && (strncmp(model, "mono", 4) == 0 || strncmp(model, "ceiling", 7) == 0);
	*kmin = narrow ? 2700 : CONV_KELVIN_MIN;
	*kmax = CONV_KELVIN_MAX;
}

size_t yl_caps_build(unsigned support, const char *model, struct hearth_capability *out,
		     size_t cap)
{
	size_t n = 0;
	int kmin, kmax;
	yl_kelvin_range(model, &kmin, &kmax);
	unsigned want[8];
	size_t k = 0;
	want[k++] = CAP_STATE; /* every bulb has power, even if it forgets to say so */
	if (support & YL_SUP_SET_BRIGHT)
		want[k++] = CAP_BRIGHT;
	if (support & YL_SUP_SET_CT)
		want[k++] = kmin > CONV_KELVIN_MIN ? CAP_CT_NARROW : CAP_CT_WIDE;
	if (support & (YL_SUP_SET_RGB | YL_SUP_SET_HSV)) {
		want[k++] = CAP_COLOR;
		want[k++] = CAP_MODE;
	}
	want[k++] = CAP_TRANS;
	if (support & YL_SUP_SET_NAME)
		want[k++] = CAP_NAME;
	for (size_t i = 0; i < k && n < cap; i++)
		out[n++] = bulb_caps[want[i]];
	return n;
}

/* ---- state -> attributes ------------------------------------------------- */

static size_t color_attr(const struct yl_props *p, char *buf, size_t cap)
{
	int r, g, b, n;
	conv_rgb_split(p->rgb, &r, &g, &b);
	n = snprintf(buf, cap, "{\"hue\":%d,\"saturation\":%d,\"r\":%d,\"g\":%d,\"b\":%d}",
		     p->has & YL_HAS_HUE ? p->hue : 0, p->has & YL_HAS_SAT ? p->sat : 0, r, g, b);
	return n > 0 && (size_t)n < cap;
}

size_t yl_props_attrs(const struct yl_props *p, unsigned mask, unsigned support,
		      const char *model, const struct yl_hints *hints, struct hearth_attr *out,
		      size_t cap, char *color_buf, size_t color_cap)
{
	size_t n = 0;
	int kmin, kmax;
	unsigned have = p->has & mask;
	bool color = support & (YL_SUP_SET_RGB | YL_SUP_SET_HSV);
	yl_kelvin_range(model, &kmin, &kmax);
	if ((have & YL_HAS_POWER) && n < cap)
		out[n++] = (struct hearth_attr){"state", HEARTH_STRING(p->power ? "ON" : "OFF")};
	if ((have & YL_HAS_BRIGHT) && n < cap)
		out[n++] = (struct hearth_attr){
			"brightness",
			HEARTH_NUMBER(conv_bright_from_pct(p->bright, hints ? hints->bright : -1))};
	if ((have & YL_HAS_CT) && (support & YL_SUP_SET_CT) && n < cap)
		out[n++] = (struct hearth_attr){
			"color_temp", HEARTH_NUMBER(conv_mired_from_kelvin(
					      p->ct, hints ? hints->mired : -1, kmin, kmax))};
	if (color && (have & (YL_HAS_RGB | YL_HAS_HUE | YL_HAS_SAT)) && n < cap &&
	    color_attr(p, color_buf, color_cap))
		out[n++] = (struct hearth_attr){"color", HEARTH_JSON(color_buf)};
	if (color && (have & YL_HAS_COLOR_MODE) && n < cap)
		out[n++] = (struct hearth_attr){"color_mode",
						HEARTH_STRING(color_modes[p->color_mode - 1])};
	if ((have & YL_HAS_NAME) && (support & YL_SUP_SET_NAME) && n < cap)
		out[n++] = (struct hearth_attr){"bulb_name", HEARTH_STRING(p->name)};
	return n;
}

/* ---- /set -> requests ---------------------------------------------------- */

struct effect {
	const char *name;
	long duration_ms;
};

static const struct hearth_attr *find_attr(const struct hearth_attr *attrs, size_t n,
					   const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (attrs[i].name && strcmp(attrs[i].name, name) == 0)
			return &attrs[i];
	return NULL;
}

static int effect_get(const struct hearth_attr *attrs, size_t n, struct effect *e, char *err,
		      size_t err_len)
{
	const struct hearth_attr *t = find_attr(attrs, n, "transition");
	*e = (struct effect){"smooth", DEFAULT_DURATION_MS};
	if (!t)
		return 0;
	if (t->value.type != HEARTH_VALUE_NUMBER || !(t->value.u.number >= 0) ||
	    t->value.u.number > 60) {
		snprintf(err, err_len, "transition: expected 0..60 seconds");
		return -EINVAL;
	}
	long ms = lround(t->value.u.number * 1000);
	*e = ms == 0 ? (struct effect){"sudden", 0}
		     : (struct effect){"smooth", ms < MIN_DURATION_MS ? MIN_DURATION_MS : ms};
	return 0;
}

static int number_of(const struct hearth_attr *a, double lo, double hi, double *out, char *err,
		     size_t err_len)
{
	if (a->value.type != HEARTH_VALUE_NUMBER || !(a->value.u.number >= lo) ||
	    !(a->value.u.number <= hi)) {
		snprintf(err, err_len, "%s: expected a number in %g..%g", a->name, lo, hi);
		return -EINVAL;
	}
	*out = a->value.u.number;
	return 0;
}

static int push(struct yl_req *out, size_t cap, size_t *n, const char *method, const char *group,
		const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int push(struct yl_req *out, size_t cap, size_t *n, const char *method, const char *group,
		const char *fmt, ...)
{
	if (*n >= cap)
		return -ENOSPC;
	struct yl_req *r = &out[*n];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(r->params, sizeof(r->params), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(r->params))
		return -ENOSPC;
	snprintf(r->method, sizeof(r->method), "%s", method);
	r->group = group;
	(*n)++;
	return 0;
}

static int state_of(const struct hearth_attr *a, bool *on, char *err, size_t err_len)
{
	const struct hearth_value *v = &a->value;
	if (v->type == HEARTH_VALUE_BOOL) {
		*on = v->u.boolean;
		return 0;
	}
	if (v->type == HEARTH_VALUE_STRING && v->u.string &&
	    (strcmp(v->u.string, "ON") == 0 || strcmp(v->u.string, "OFF") == 0)) {
		*on = strcmp(v->u.string, "ON") == 0;
		return 0;
	}
	snprintf(err, err_len, "state: expected ON or OFF");
	return -EINVAL;
}

struct color_cmd {
	bool rgb, hsv;
	double r, g, b, hue, sat;
};

/* {"hue":..,"saturation":..} or {"r":..,"g":..,"b":..}; the parts left out
 * keep the bulb's current values. */
static int color_parse(const struct hearth_attr *a, const struct yl_props *cur,
		       struct color_cmd *c, char *err, size_t err_len)
{
	int r, g, b;
	conv_rgb_split(cur->rgb, &r, &g, &b);
	*c = (struct color_cmd){.r = r, .g = g, .b = b, .hue = cur->hue, .sat = cur->sat};
	const struct {
		const char *key;
		double max;
		bool *seen;
		double *value;
	} members[] = {
		{"hue", 359, &c->hsv, &c->hue}, {"saturation", 100, &c->hsv, &c->sat},
		{"r", 255, &c->rgb, &c->r},	{"g", 255, &c->rgb, &c->g},
		{"b", 255, &c->rgb, &c->b},
	};
	const char *text = a->value.type == HEARTH_VALUE_JSON ? a->value.u.string : NULL;
	cJSON *o = text ? cJSON_ParseWithLength(text, strlen(text)) : NULL;
	int rc = cJSON_IsObject(o) ? 0 : -EINVAL;
	for (size_t i = 0; rc == 0 && i < sizeof(members) / sizeof(members[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, members[i].key);
		if (!v)
			continue;
		if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > members[i].max)
			rc = -EINVAL;
		*members[i].seen = true;
		*members[i].value = v->valuedouble;
	}
	cJSON_Delete(o);
	if (rc == 0 && c->rgb == c->hsv)
		rc = -EINVAL;
	if (rc)
		snprintf(err, err_len, "color: expected {\"hue\":0..359,\"saturation\":0..100} or "
				       "{\"r\":..,\"g\":..,\"b\":..} (0..255)");
	return rc;
}

static int color_req(const struct hearth_attr *a, const struct yl_props *cur, unsigned support,
		     const struct effect *e, struct yl_req *out, size_t cap, size_t *n, char *err,
		     size_t err_len)
{
	struct color_cmd c;
	int rc = color_parse(a, cur, &c, err, err_len);
	if (rc)
		return rc;
	if (c.rgb && (support & YL_SUP_SET_RGB))
		return push(out, cap, n, "set_rgb", "color", "[%ld,\"%s\",%ld]",
			    conv_rgb_join((int)lround(c.r), (int)lround(c.g), (int)lround(c.b)),
			    e->name, e->duration_ms);
	if (c.hsv && (support & YL_SUP_SET_HSV))
		return push(out, cap, n, "set_hsv", "color", "[%ld,%ld,\"%s\",%ld]", lround(c.hue),
			    lround(c.sat), e->name, e->duration_ms);
	snprintf(err, err_len, "color: the bulb does not take %s", c.rgb ? "rgb" : "hue/saturation");
	return -EINVAL;
}

static int name_req(const struct hearth_attr *a, struct yl_req *out, size_t cap, size_t *n,
		    char *err, size_t err_len)
{
	const char *s = a->value.type == HEARTH_VALUE_STRING ? a->value.u.string : NULL;
	if (!s || !name_ok(s) || strpbrk(s, "\"\\")) {
		snprintf(err, err_len, "bulb_name: at most %d printable characters, no quotes",
			 YL_NAME_MAX - 1);
		return -EINVAL;
	}
	return push(out, cap, n, "set_name", "name", "[\"%s\"]", s);
}

static bool supported(const char *name, unsigned support)
{
	static const struct {
		const char *attr;
		unsigned bits;
	} need[] = {
		{"state", ~0u},
		{"transition", ~0u},
		{"brightness", YL_SUP_SET_BRIGHT},
		{"color_temp", YL_SUP_SET_CT},
		{"color", YL_SUP_SET_RGB | YL_SUP_SET_HSV},
		{"bulb_name", YL_SUP_SET_NAME},
	};
	for (size_t i = 0; name && i < sizeof(need) / sizeof(need[0]); i++)
		if (strcmp(name, need[i].attr) == 0)
			return support & need[i].bits;
	return false;
}

static int check_attrs(const struct hearth_attr *attrs, size_t n, unsigned support, char *err,
		       size_t err_len)
{
	for (size_t i = 0; i < n; i++)
		if (!supported(attrs[i].name, support)) {
			snprintf(err, err_len, "'%s' cannot be set on this bulb",
				 attrs[i].name ? attrs[i].name : "");
			return -EINVAL;
		}
	return 0;
}

static int middle_reqs(const struct hearth_attr *attrs, size_t n, const struct yl_props *cur,
		       unsigned support, const char *model, const struct effect *e,
		       struct yl_req *out, size_t cap, size_t *count, struct yl_hints *h,
		       char *err, size_t err_len)
{
	const struct hearth_attr *a;
	double d;
	int rc = 0, kmin, kmax;
	yl_kelvin_range(model, &kmin, &kmax);
	if ((a = find_attr(attrs, n, "brightness")) &&
	    !(rc = number_of(a, 0, CONV_BRIGHT_MAX, &d, err, err_len))) {
		rc = push(out, cap, count, "set_bright", "bright", "[%d,\"%s\",%ld]",
			  conv_pct_from_bright(d), e->name, e->duration_ms);
		h->bright = (int)lround(d);
	}
	if (!rc && (a = find_attr(attrs, n, "color_temp")) &&
	    !(rc = number_of(a, 1, 1e6, &d, err, err_len))) {
		rc = push(out, cap, count, "set_ct_abx", "color", "[%d,\"%s\",%ld]",
			  conv_kelvin_from_mired(d, kmin, kmax), e->name, e->duration_ms);
		h->mired = (int)lround(d);
	}
	if (!rc && (a = find_attr(attrs, n, "color")))
		rc = color_req(a, cur, support, e, out, cap, count, err, err_len);
	if (!rc && (a = find_attr(attrs, n, "bulb_name")))
		rc = name_req(a, out, cap, count, err, err_len);
	return rc;
}

int yl_set_build(const struct hearth_attr *attrs, size_t n, const struct yl_props *current,
		 unsigned support, const char *model, struct yl_req *out, size_t cap,
		 size_t *n_out, struct yl_hints *hints, char *err, size_t err_len)
{
	struct effect e;
	struct yl_hints h = *hints;
	size_t count = 0;
	bool on = false;
	const struct hearth_attr *power = find_attr(attrs, n, "state");
	int rc = check_attrs(attrs, n, support, err, err_len);
	if (!rc)
		rc = effect_get(attrs, n, &e, err, err_len);
	if (!rc && power)
		rc = state_of(power, &on, err, err_len);
	if (!rc && power && on)
		rc = push(out, cap, &count, "set_power", "power", "[\"on\",\"%s\",%ld]", e.name,
			  e.duration_ms);
	if (!rc)
		rc = middle_reqs(attrs, n, current, support, model, &e, out, cap, &count, &h, err,
				 err_len);
	if (!rc && power && !on)
		rc = push(out, cap, &count, "set_power", "power", "[\"off\",\"%s\",%ld]", e.name,
			  e.duration_ms);
	if (!rc && count == 0) {
		snprintf(err, err_len, "nothing to set");
		rc = -EINVAL;
	}
	if (rc)
		return rc;
	*hints = h;
	*n_out = count;
	return 0;
}

/* ---- quota --------------------------------------------------------------- */

void yl_quota_init(struct yl_quota *q, unsigned limit, int64_t window_ms)
{
	memset(q, 0, sizeof(*q));
	q->limit = limit == 0 ? 1 : limit > YL_QUOTA_MAX ? YL_QUOTA_MAX : limit;
	q->window_ms = window_ms;
}

int64_t yl_quota_wait(const struct yl_quota *q, int64_t now_ms)
{
	if (q->count < q->limit)
		return 0;
	int64_t oldest = q->sent[q->head];
	int64_t wait = oldest + q->window_ms - now_ms;
	return wait > 0 ? wait : 0;
}

void yl_quota_take(struct yl_quota *q, int64_t now_ms)
{
	if (q->count < q->limit) {
		q->sent[(q->head + q->count) % q->limit] = now_ms;
		q->count++;
		return;
	}
	q->sent[q->head] = now_ms;
	q->head = (q->head + 1) % q->limit;
}
