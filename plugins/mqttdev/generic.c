/*
 * Generic JSON devices, declared in a devices file:
 *
 *   {"devices": [
 *     {"id": "bench-sensor-{i}", "name": "bench/sensor-{i}", "count": 100,
 *      "state_topic": "bench/sensor/{i}/state",
 *      "attributes": [{"name": "occupancy", "key": "motion", "type": "binary"},
 *                     {"name": "seq", "type": "numeric"}]}]}
 *
 * Each attribute names the hearth attribute, where it sits in the payload
 * (a dotted path, "$" for the whole payload), its type, unit, range, enum
 * values and, for binaries, hearth's value_on/value_off and the device's
 * payload_on/payload_off. With "count" an entry is a template: {i} in the
 * id, name, description and topics runs from "start" (default 0).
 *
 * Pure: cJSON only.
 */
#include "mqttdev.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ID_TEXT_MAX (MD_ID_MAX - 16) /* room for "mqttdev:" and a number */

/* ---- small helpers ------------------------------------------------------------------------ */

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static bool text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static bool in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(*list, key) == 0)
			return true;
	return false;
}

/* Every member of o is one of known; else err names the stranger. */
static int only_known(const cJSON *o, const char *const *known, const char *where, char *err,
		      size_t len)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, o)
	{
		if (!in_list(m->string, known)) {
			set_err(err, len, "%s: unknown field '%s'", where, m->string);
			return -EINVAL;
		}
	}
	return 0;
}

/* An optional string member: 0 (absent: *out NULL), or -EINVAL. */
static int opt_string(const cJSON *o, const char *key, size_t max, char **out, const char *where,
		      char *err, size_t len)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = NULL;
	if (!j)
		return 0;
	if (!cJSON_IsString(j) || !text_ok(j->valuestring, max)) {
		set_err(err, len, "%s: %s must be text of 1..%zu bytes", where, key, max);
		return -EINVAL;
	}
	*out = strdup(j->valuestring);
	return *out ? 0 : -ENOMEM;
}

static int opt_number(const cJSON *o, const char *key, double *out, bool *given, const char *where,
		      char *err, size_t len)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	*given = j != NULL;
	if (!j)
		return 0;
	if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) {
		set_err(err, len, "%s: %s must be a number", where, key);
		return -EINVAL;
	}
	*out = j->valuedouble;
	return 0;
}

static bool scalar(const cJSON *j)
{
	return cJSON_IsBool(j) || cJSON_IsNumber(j) ||
	       (cJSON_IsString(j) && text_ok(j->valuestring, MD_TEXT_MAX - 1));
}

/* ---- attributes ----------------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum hearth_cap_type type;
} type_names[] = {
	{"binary", HEARTH_CAP_BINARY},
	{"numeric", HEARTH_CAP_NUMERIC},
	{"enum", HEARTH_CAP_ENUM},
	{"text", HEARTH_CAP_TEXT},
};

static int attr_type(const cJSON *a, struct gen_attr *g, const char *where, char *err, size_t len)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(a, "type");
	for (size_t i = 0; cJSON_IsString(t) && i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcmp(type_names[i].name, t->valuestring) == 0) {
			g->type = type_names[i].type;
			return 0;
		}
	}
	set_err(err, len, "%s: type must be binary, numeric, enum or text", where);
	return -EINVAL;
}

static int attr_access(const cJSON *a, struct gen_attr *g, const char *where, char *err,
		       size_t len)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(a, "access");
	const char *s = cJSON_IsString(j) ? j->valuestring : j ? "" : "r";
	if (strcmp(s, "r") == 0)
		g->access = HEARTH_ACCESS_PUBLISHED;
	else if (strcmp(s, "w") == 0)
		g->access = HEARTH_ACCESS_SET;
	else if (strcmp(s, "rw") == 0)
		g->access = HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET;
	else {
		set_err(err, len, "%s: access must be \"r\", \"w\" or \"rw\"", where);
		return -EINVAL;
	}
	return 0;
}

static int attr_range(const cJSON *a, struct gen_attr *g, const char *where, char *err,
		      size_t len)
{
	bool given;
	static const struct {
		const char *key;
		unsigned flag;
	} keys[] = {{"min", HEARTH_CAP_HAS_MIN}, {"max", HEARTH_CAP_HAS_MAX},
		    {"step", HEARTH_CAP_HAS_STEP}};
	double *dst[] = {&g->min, &g->max, &g->step};
	for (size_t i = 0; i < 3; i++) {
		if (opt_number(a, keys[i].key, dst[i], &given, where, err, len))
			return -EINVAL;
		if (given)
			g->flags |= keys[i].flag;
	}
	if ((g->flags & HEARTH_CAP_HAS_MIN) && (g->flags & HEARTH_CAP_HAS_MAX) && g->min > g->max) {
		set_err(err, len, "%s: min is above max", where);
		return -EINVAL;
	}
	if ((g->flags & HEARTH_CAP_HAS_STEP) && !(g->step > 0)) {
		set_err(err, len, "%s: step must be above 0", where);
		return -EINVAL;
	}
	return 0;
}

static int attr_values(const cJSON *a, struct gen_attr *g, const char *where, char *err,
		       size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "values");
	int n = cJSON_GetArraySize(v);
	if (!cJSON_IsArray(v) || n < 1 || n > 256) {
		set_err(err, len, "%s: an enum needs values, 1..256 strings", where);
		return -EINVAL;
	}
	g->values = calloc((size_t)n, sizeof(*g->values));
	if (!g->values)
		return -ENOMEM;
	const cJSON *s;
	cJSON_ArrayForEach(s, v)
	{
		if (!cJSON_IsString(s) || !text_ok(s->valuestring, 255)) {
			set_err(err, len, "%s: enum values must be text", where);
			return -EINVAL;
		}
		if (!(g->values[g->n_values++] = strdup(s->valuestring)))
			return -ENOMEM;
	}
	return 0;
}

/* value_on/off (hearth's, default true/false) and payload_on/off (the
 * device's, default the same). */
static int attr_binary(const cJSON *a, struct gen_attr *g, const char *where, char *err,
		       size_t len)
{
	static const char *const keys[] = {"value_on", "value_off", "payload_on", "payload_off"};
	cJSON **dst[] = {&g->value_on, &g->value_off, &g->payload_on, &g->payload_off};
	for (size_t i = 0; i < 4; i++) {
		const cJSON *j = cJSON_GetObjectItemCaseSensitive(a, keys[i]);
		if (j && !scalar(j)) {
			set_err(err, len, "%s: %s must be true/false, a number or text", where,
				keys[i]);
			return -EINVAL;
		}
		if (j)
			*dst[i] = cJSON_Duplicate(j, 0);
		else if (i < 2)
			*dst[i] = cJSON_CreateBool(i == 0);
		else
			*dst[i] = cJSON_Duplicate(i == 2 ? g->value_on : g->value_off, 0);
		if (!*dst[i])
			return -ENOMEM;
	}
	if (cJSON_Compare(g->value_on, g->value_off, true) ||
	    cJSON_Compare(g->payload_on, g->payload_off, true)) {
		set_err(err, len, "%s: the on and off values must differ", where);
		return -EINVAL;
	}
	if (cJSON_IsString(g->value_on) && !(g->on_text = strdup(g->value_on->valuestring)))
		return -ENOMEM;
	if (cJSON_IsString(g->value_off) && !(g->off_text = strdup(g->value_off->valuestring)))
		return -ENOMEM;
	return 0;
}

static const char *const attr_keys[] = {"name",	     "key",	 "type",       "access",
					"unit",	     "min",	 "max",	       "step",
					"values",    "value_on", "value_off",  "payload_on",
					"payload_off", NULL};

static int parse_attr(const cJSON *a, struct gen_attr *g, const char *dev, size_t i, char *err,
		      size_t len)
{
	char where[192];
	snprintf(where, sizeof(where), "device %.64s, attribute %zu", dev, i + 1);
	if (!cJSON_IsObject(a)) {
		set_err(err, len, "%s: must be an object", where);
		return -EINVAL;
	}
	int rc = only_known(a, attr_keys, where, err, len);
	if (!rc && !(rc = opt_string(a, "name", MD_NAME_MAX - 1, &g->name, where, err, len)) &&
	    !g->name) {
		set_err(err, len, "%s: name is missing", where);
		rc = -EINVAL;
	}
	if (!rc && g->name)
		snprintf(where, sizeof(where), "device %.64s, attribute %.64s", dev, g->name);
	if (!rc)
		rc = opt_string(a, "key", 255, &g->key, where, err, len);
	if (!rc && !g->key && !(g->key = strdup(g->name)))
		rc = -ENOMEM;
	if (!rc)
		rc = attr_type(a, g, where, err, len);
	if (!rc)
		rc = attr_access(a, g, where, err, len);
	if (!rc)
		rc = opt_string(a, "unit", MD_UNIT_MAX - 1, &g->unit, where, err, len);
	if (!rc && g->type == HEARTH_CAP_NUMERIC)
		rc = attr_range(a, g, where, err, len);
	if (!rc && g->type == HEARTH_CAP_ENUM)
		rc = attr_values(a, g, where, err, len);
	if (!rc && g->type == HEARTH_CAP_BINARY)
		rc = attr_binary(a, g, where, err, len);
	return rc;
}

static void attr_free(struct gen_attr *g)
{
	free(g->name);
	free(g->key);
	free(g->unit);
	for (size_t i = 0; i < g->n_values; i++)
		free(g->values[i]);
	free(g->values);
	cJSON_Delete(g->value_on);
	cJSON_Delete(g->value_off);
	cJSON_Delete(g->payload_on);
	cJSON_Delete(g->payload_off);
	free(g->on_text);
	free(g->off_text);
	memset(g, 0, sizeof(*g));
}

/* ---- devices ----------------------------------------------------------------------------- */

static const char *const spec_keys[] = {"id",
					"name",
					"count",
					"start",
					"vendor",
					"model",
					"description",
					"state_topic",
					"command_topic",
					"availability_topic",
					"payload_available",
					"payload_not_available",
					"qos",
					"retain",
					"optimistic",
					"attributes",
					NULL};

/* Ids become "mqttdev:<id>": plain characters only. */
static bool id_ok(const char *id)
{
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("_-.:{}", *p)))
			return false;
	return id[0] != '\0';
}

/* A topic template: a usable topic once {i} is filled. */
static bool topic_tmpl_ok(const char *t)
{
	char *x = generic_expand(t, 0);
	bool ok = x && md_topic_ok(x);
	free(x);
	return ok;
}

static int spec_count(const cJSON *o, struct gen_spec *s, const char *where, char *err, size_t len)
{
	bool given;
	double count = 0, start = 0;
	if (opt_number(o, "count", &count, &given, where, err, len) ||
	    opt_number(o, "start", &start, &given, where, err, len))
		return -EINVAL;
	if (count != floor(count) || count < 0 || count > GEN_COUNT_MAX || start != floor(start) ||
	    start < 0 || start > 1e9) {
		set_err(err, len, "%s: count must be a whole number 1..%d and start 0..1e9", where,
			GEN_COUNT_MAX);
		return -EINVAL;
	}
	s->count = (long)count;
	s->start = (long)start;
	if (s->count > 0 && (!strstr(s->id, "{i}") || (s->name && !strstr(s->name, "{i}")) ||
			     (s->state_topic && !strstr(s->state_topic, "{i}")) ||
			     (s->command_topic && !strstr(s->command_topic, "{i}")))) {
		set_err(err, len, "%s: with count, the id, name and topics must hold {i}", where);
		return -EINVAL;
	}
	return 0;
}

static int spec_strings(const cJSON *o, struct gen_spec *s, const char *where, char *err,
			size_t len)
{
	struct {
		const char *key;
		char **dst;
		size_t max;
	} f[] = {
		{"id", &s->id, ID_TEXT_MAX},
		{"name", &s->name, 120},
		{"vendor", &s->vendor, 255},
		{"model", &s->model, 255},
		{"description", &s->description, 1000},
		{"state_topic", &s->state_topic, MD_TOPIC_MAX - 16},
		{"command_topic", &s->command_topic, MD_TOPIC_MAX - 16},
		{"availability_topic", &s->availability_topic, MD_TOPIC_MAX - 16},
		{"payload_available", &s->payload_available, 64},
		{"payload_not_available", &s->payload_not_available, 64},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (opt_string(o, f[i].key, f[i].max, f[i].dst, where, err, len))
			return -EINVAL;
	if (!s->id || !id_ok(s->id)) {
		set_err(err, len, "%s: id must be letters, digits, _ - . : and {i}", where);
		return -EINVAL;
	}
	const char *topics[] = {s->state_topic, s->command_topic, s->availability_topic};
	for (size_t i = 0; i < 3; i++) {
		if (topics[i] && !topic_tmpl_ok(topics[i])) {
			set_err(err, len, "%s: '%s' is not a usable topic", where, topics[i]);
			return -EINVAL;
		}
	}
	if ((!s->payload_available && !(s->payload_available = strdup("online"))) ||
	    (!s->payload_not_available && !(s->payload_not_available = strdup("offline"))))
		return -ENOMEM;
	return 0;
}

static int spec_flags(const cJSON *o, struct gen_spec *s, const char *where, char *err, size_t len)
{
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "qos");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "retain");
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "optimistic");
	s->qos = 1;
	if (q && (!cJSON_IsNumber(q) || (q->valuedouble != 0 && q->valuedouble != 1 &&
					 q->valuedouble != 2))) {
		set_err(err, len, "%s: qos must be 0, 1 or 2", where);
		return -EINVAL;
	}
	if ((r && !cJSON_IsBool(r)) || (op && !cJSON_IsBool(op))) {
		set_err(err, len, "%s: retain and optimistic must be true or false", where);
		return -EINVAL;
	}
	if (q)
		s->qos = q->valueint;
	s->retain = cJSON_IsTrue(r);
	/* a device that never reports: hearth shows what it was told */
	s->optimistic = op ? cJSON_IsTrue(op) : s->state_topic == NULL;
	return 0;
}

static void spec_caps(struct gen_spec *s)
{
	for (size_t i = 0; i < s->n_attrs; i++) {
		const struct gen_attr *g = &s->attrs[i];
		struct hearth_capability *c = &s->caps[i];
		*c = (struct hearth_capability){.name = g->name, .type = g->type,
						.access = g->access, .unit = g->unit,
						.flags = g->flags, .min = g->min, .max = g->max,
						.step = g->step,
						.values = (const char *const *)g->values,
						.n_values = g->n_values};
		if (g->type == HEARTH_CAP_BINARY) {
			const cJSON *v[2] = {g->value_on, g->value_off};
			const char *t[2] = {g->on_text, g->off_text};
			struct hearth_value *dst[2] = {&c->value_on, &c->value_off};
			for (int k = 0; k < 2; k++)
				*dst[k] = cJSON_IsBool(v[k])	 ? HEARTH_BOOL(cJSON_IsTrue(v[k]))
					  : cJSON_IsNumber(v[k]) ? HEARTH_NUMBER(v[k]->valuedouble)
								 : HEARTH_STRING(t[k]);
		}
	}
}

static int spec_attrs(const cJSON *o, struct gen_spec *s, const char *where, char *err,
		      size_t len)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "attributes");
	int n = cJSON_GetArraySize(a);
	if (!cJSON_IsArray(a) || n < 1 || n > GEN_ATTRS_MAX) {
		set_err(err, len, "%s: attributes must list 1..%d attributes", where, GEN_ATTRS_MAX);
		return -EINVAL;
	}
	bool settable = false;
	const cJSON *x;
	cJSON_ArrayForEach(x, a)
	{
		struct gen_attr *g = &s->attrs[s->n_attrs];
		int rc = parse_attr(x, g, s->id, s->n_attrs, err, len);
		s->n_attrs++;
		if (rc)
			return rc;
		for (size_t k = 0; k + 1 < s->n_attrs; k++) {
			if (strcmp(s->attrs[k].name, g->name) == 0) {
				set_err(err, len, "%s: attribute %s is listed twice", where, g->name);
				return -EINVAL;
			}
		}
		settable |= (g->access & HEARTH_ACCESS_SET) != 0;
	}
	if (settable && !s->command_topic) {
		set_err(err, len, "%s: settable attributes need a command_topic", where);
		return -EINVAL;
	}
	spec_caps(s);
	return 0;
}

static void spec_free(struct gen_spec *s)
{
	char *strs[] = {s->id,		  s->name,	     s->vendor,
			s->model,	  s->description,    s->state_topic,
			s->command_topic, s->availability_topic, s->payload_available,
			s->payload_not_available};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(strs[i]);
	for (size_t i = 0; i < s->n_attrs; i++)
		attr_free(&s->attrs[i]);
	memset(s, 0, sizeof(*s));
}

static int parse_spec(const cJSON *o, struct gen_spec *s, size_t i, char *err, size_t len)
{
	char where[128];
	snprintf(where, sizeof(where), "device %zu", i + 1);
	if (!cJSON_IsObject(o)) {
		set_err(err, len, "%s: must be an object", where);
		return -EINVAL;
	}
	int rc = only_known(o, spec_keys, where, err, len);
	if (!rc)
		rc = spec_strings(o, s, where, err, len);
	if (!rc)
		snprintf(where, sizeof(where), "device %.64s", s->id);
	if (!rc)
		rc = spec_count(o, s, where, err, len);
	if (!rc)
		rc = spec_flags(o, s, where, err, len);
	if (!rc)
		rc = spec_attrs(o, s, where, err, len);
	return rc;
}

int generic_parse(const char *text, size_t len, struct gen_file *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = md_json_parse(text, len, MD_FILE_MAX);
	const cJSON *list = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "devices");
	int rc = -EINVAL, n = cJSON_GetArraySize(list);
	if (!cJSON_IsArray(list)) {
		set_err(err, err_len, "not JSON with a \"devices\" list (or too large or too deep)");
		goto out;
	}
	if (cJSON_IsObject(root) && only_known(root, (const char *const[]){"devices", NULL}, "file",
					       err, err_len))
		goto out;
	if (n > 0 && !(out->specs = calloc((size_t)n, sizeof(*out->specs)))) {
		rc = -ENOMEM;
		goto out;
	}
	const cJSON *o;
	cJSON_ArrayForEach(o, list)
	{
		struct gen_spec *s = &out->specs[out->n_specs++];
		if ((rc = parse_spec(o, s, out->n_specs - 1, err, err_len)))
			goto out;
		out->n_devices += s->count ? (size_t)s->count : 1;
		if (out->n_devices > GEN_COUNT_MAX) {
			set_err(err, err_len, "more than %d devices", GEN_COUNT_MAX);
			rc = -EINVAL;
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc)
		generic_free(out);
	return rc;
}

void generic_free(struct gen_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_specs; i++)
		spec_free(&f->specs[i]);
	free(f->specs);
	memset(f, 0, sizeof(*f));
}

/* ---- templates ------------------------------------------------------------------------------- */

char *generic_expand(const char *s, long i)
{
	if (!s)
		return NULL;
	char num[24];
	int nl = snprintf(num, sizeof(num), "%ld", i);
	size_t n = 0;
	for (const char *p = s; (p = strstr(p, "{i}")); p += 3)
		n++;
	size_t len = strlen(s) + n * (size_t)nl + 1;
	char *out = malloc(len), *w = out;
	if (!out)
		return NULL;
	for (const char *p = s; *p;) {
		if (strncmp(p, "{i}", 3) == 0) {
			memcpy(w, num, (size_t)nl);
			w += nl;
			p += 3;
		} else {
			*w++ = *p++;
		}
	}
	*w = '\0';
	return out;
}

int generic_wildcard(const char *tmpl, char *filter, size_t cap)
{
	if (!tmpl)
		return -1;
	int seg = 0, found = -1;
	size_t n = 0;
	for (const char *p = tmpl;; p++) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool whole = len == 3 && strncmp(p, "{i}", 3) == 0;
		if (!whole && memmem(p, len, "{i}", 3))
			return -1; /* {i} inside a level: one subscription per device */
		if (whole) {
			if (found >= 0)
				return -1;
			found = seg;
		}
		if (n + (whole ? 1 : len) + 2 >= cap)
			return -1;
		if (whole)
			filter[n++] = '+';
		else
			memcpy(filter + n, p, len), n += len;
		if (!end)
			break;
		filter[n++] = '/';
		p = end;
		seg++;
	}
	filter[n] = '\0';
	return found;
}

long generic_index(const struct gen_spec *spec, const char *topic, int seg)
{
	const char *p = topic;
	for (int i = 0; i < seg && p; i++) {
		p = strchr(p, '/');
		if (p)
			p++;
	}
	if (!p || *p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		return -1;
	char *end;
	long v = strtol(p, &end, 10);
	if ((*end && *end != '/') || v < spec->start || v >= spec->start + spec->count)
		return -1;
	return v;
}

/* ---- state ---------------------------------------------------------------------------------- */

/* Text form of a scalar, as it would sit in a plain payload. */
static void scalar_text(const cJSON *j, char *out, size_t cap)
{
	if (cJSON_IsString(j))
		snprintf(out, cap, "%s", j->valuestring);
	else if (cJSON_IsNumber(j))
		snprintf(out, cap, "%.17g", j->valuedouble);
	else if (cJSON_IsBool(j))
		snprintf(out, cap, "%s", cJSON_IsTrue(j) ? "true" : "false");
	else
		out[0] = '\0';
}

/* A device's payload value against one declared: same type and value, or,
 * when one of them is text, the same text ("1" and 1 alike). */
static bool same_payload(const cJSON *want, const cJSON *got)
{
	if (cJSON_IsNumber(want) && cJSON_IsNumber(got))
		return want->valuedouble == got->valuedouble;
	if (cJSON_IsBool(want) && cJSON_IsBool(got))
		return cJSON_IsTrue(want) == cJSON_IsTrue(got);
	if (!cJSON_IsString(want) && !cJSON_IsString(got))
		return false;
	char a[MD_TEXT_MAX], b[MD_TEXT_MAX];
	scalar_text(want, a, sizeof(a));
	scalar_text(got, b, sizeof(b));
	return a[0] && strcasecmp(a, b) == 0;
}

static void put_scalar(struct mstate *out, const char *name, const cJSON *v)
{
	if (cJSON_IsBool(v))
		mstate_bool(out, name, cJSON_IsTrue(v));
	else if (cJSON_IsNumber(v))
		mstate_num(out, name, v->valuedouble);
	else if (cJSON_IsString(v))
		mstate_str(out, name, v->valuestring);
}

static void put_binary(const struct gen_attr *g, const cJSON *v, struct mstate *out)
{
	if (same_payload(g->payload_on, v))
		put_scalar(out, g->name, g->value_on);
	else if (same_payload(g->payload_off, v))
		put_scalar(out, g->name, g->value_off);
}

static void put_attr(const struct gen_attr *g, const cJSON *v, struct mstate *out)
{
	if (!v)
		return;
	switch (g->type) {
	case HEARTH_CAP_BINARY:
		put_binary(g, v, out);
		break;
	case HEARTH_CAP_NUMERIC:
		if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
			mstate_num(out, g->name, v->valuedouble);
		} else if (cJSON_IsString(v)) {
			char *end;
			double x = strtod(v->valuestring, &end);
			if (end != v->valuestring && !*end && isfinite(x))
				mstate_num(out, g->name, x);
		}
		break;
	case HEARTH_CAP_ENUM:
		for (size_t i = 0; cJSON_IsString(v) && i < g->n_values; i++)
			if (strcmp(g->values[i], v->valuestring) == 0)
				mstate_str(out, g->name, v->valuestring);
		break;
	case HEARTH_CAP_TEXT:
		if (cJSON_IsString(v))
			mstate_str(out, g->name, v->valuestring);
		break;
	default:
		break;
	}
}

/* The whole payload as a value: JSON when it parses, else the text. */
static cJSON *whole(const char *payload, size_t len)
{
	cJSON *j = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	if (j && !cJSON_IsObject(j) && !cJSON_IsArray(j))
		return j;
	cJSON_Delete(j);
	char *t = md_text(payload, len, MD_TEXT_MAX - 1);
	j = t ? cJSON_CreateString(t) : NULL;
	free(t);
	return j;
}

int generic_parse_state(const struct gen_spec *spec, const char *payload, size_t len,
			struct mstate *out)
{
	cJSON *root = md_json_parse(payload, len, MD_PAYLOAD_MAX);
	cJSON *raw = NULL;
	for (size_t i = 0; i < spec->n_attrs; i++) {
		const struct gen_attr *g = &spec->attrs[i];
		if (!(g->access & HEARTH_ACCESS_PUBLISHED))
			continue;
		if (strcmp(g->key, "$") == 0) {
			if (!raw && !(raw = whole(payload, len)))
				continue;
			put_attr(g, raw, out);
		} else if (cJSON_IsObject(root)) {
			put_attr(g, md_path(root, g->key), out);
		}
	}
	int rc = cJSON_IsObject(root) || raw ? 0 : -EINVAL;
	cJSON_Delete(root);
	cJSON_Delete(raw);
	return rc;
}

int generic_parse_availability(const struct gen_spec *spec, const char *payload, size_t len)
{
	char text[80];
	if (len >= sizeof(text))
		return -1;
	memcpy(text, payload, len);
	text[len] = '\0';
	/* {"state":"online"}, as hearth and zigbee2mqtt publish it, works too */
	cJSON *j = md_json_parse(payload, len, sizeof(text));
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "state");
	if (cJSON_IsString(st))
		snprintf(text, sizeof(text), "%s", st->valuestring);
	cJSON_Delete(j);
	if (strcmp(text, spec->payload_available) == 0)
		return 1;
	if (strcmp(text, spec->payload_not_available) == 0)
		return 0;
	return -1;
}

/* ---- commands ------------------------------------------------------------------------------ */

static const struct gen_attr *attr_named(const struct gen_spec *spec, const char *name)
{
	for (size_t i = 0; name && i < spec->n_attrs; i++)
		if (strcmp(spec->attrs[i].name, name) == 0)
			return &spec->attrs[i];
	return NULL;
}

static bool value_is(const struct hearth_value *v, const cJSON *j)
{
	switch (v->type) {
	case HEARTH_VALUE_BOOL:
		return cJSON_IsBool(j) && cJSON_IsTrue(j) == v->u.boolean;
	case HEARTH_VALUE_NUMBER:
		return cJSON_IsNumber(j) && j->valuedouble == v->u.number;
	case HEARTH_VALUE_STRING:
		return cJSON_IsString(j) && strcasecmp(j->valuestring, v->u.string) == 0;
	default:
		return false;
	}
}

/* The device's form of one hearth value (new). */
static cJSON *wire_value(const struct gen_attr *g, const struct hearth_value *v)
{
	if (g->type == HEARTH_CAP_BINARY) {
		if (value_is(v, g->value_on))
			return cJSON_Duplicate(g->payload_on, 0);
		if (value_is(v, g->value_off))
			return cJSON_Duplicate(g->payload_off, 0);
		return NULL;
	}
	if (v->type == HEARTH_VALUE_NUMBER && g->type == HEARTH_CAP_NUMERIC)
		return cJSON_CreateNumber(v->u.number);
	if (v->type == HEARTH_VALUE_STRING && g->type != HEARTH_CAP_NUMERIC)
		return cJSON_CreateString(v->u.string);
	return NULL;
}

/* Put value at a dotted path, making the objects on the way. Takes value. */
static int put_path(cJSON *root, const char *path, cJSON *value)
{
	char part[256];
	cJSON *o = root;
	for (;;) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		if (n == 0 || n >= sizeof(part) || !cJSON_IsObject(o)) {
			cJSON_Delete(value);
			return -EINVAL;
		}
		memcpy(part, path, n);
		part[n] = '\0';
		if (!dot) {
			cJSON_DeleteItemFromObjectCaseSensitive(o, part);
			cJSON_AddItemToObject(o, part, value);
			return 0;
		}
		cJSON *next = cJSON_GetObjectItemCaseSensitive(o, part);
		if (!next && !(next = cJSON_AddObjectToObject(o, part))) {
			cJSON_Delete(value);
			return -ENOMEM;
		}
		o = next;
		path = dot + 1;
	}
}

/* The whole payload is one value: its text form. */
static char *raw_text(const cJSON *v)
{
	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	return cJSON_PrintUnformatted(v);
}

int generic_encode(const struct gen_spec *spec, const struct hearth_attr *attrs, size_t n,
		   char **out)
{
	*out = NULL;
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct gen_attr *g = attr_named(spec, attrs[i].name);
		cJSON *v = g && (g->access & HEARTH_ACCESS_SET) ? wire_value(g, &attrs[i].value)
							       : NULL;
		if (!v) {
			rc = -EINVAL;
		} else if (strcmp(g->key, "$") == 0) {
			if (n != 1)
				rc = -EINVAL;
			else if (!(*out = raw_text(v)))
				rc = -ENOMEM;
			cJSON_Delete(v);
		} else {
			rc = put_path(root, g->key, v);
		}
	}
	if (!rc && !*out && !(*out = cJSON_PrintUnformatted(root)))
		rc = -ENOMEM;
	cJSON_Delete(root);
	return rc;
}
