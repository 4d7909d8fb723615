/*
 * zigbee2mqtt "exposes" -> hearth capabilities.
 *
 * A generic expose (binary, numeric, enum, text, list, composite) becomes one
 * capability named by its "property" (the key in the state JSON). A specific
 * expose (light, switch, lock, cover, climate, fan) is only a container: its
 * features are flattened into top-level capabilities. Composites keep one
 * level of features, as hearth's capability model does; the colour xy and hs
 * composites share the property "color" and merge into one.
 *
 * Numeric presets have no field in the ABI: they are written into the
 * capability's description ("Presets: coolest=153, ..."). An enum whose
 * values are numbers becomes a numeric with its range, and the plugin checks
 * the exact values itself.
 */
#include "zigbee.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCESS_ALL (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET)

struct mapper {
	struct zcaps *out;
	zx_warn_fn warn;
	void *user;
};

/* ---- owned text ------------------------------------------------------------ */

/* A copy of at most max bytes, cut on a UTF-8 character boundary, with
 * control characters turned into spaces. */
static char *text_dup(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	char *d = malloc(n + 1);
	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++)
		d[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	d[n] = '\0';
	return d;
}

/* 1..max bytes with no control character: what the hub accepts as a
 * capability name or an enum value. */
static bool text_ok(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max)
			return false;
	return n > 0;
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* ---- freeing and copying ----------------------------------------------------- */

static void value_clear(struct hearth_value *v)
{
	if (v->type == HEARTH_VALUE_STRING || v->type == HEARTH_VALUE_JSON)
		free((char *)v->u.string);
	v->type = HEARTH_VALUE_NULL;
}

static void cap_clear(struct hearth_capability *c)
{
	free((char *)c->name);
	free((char *)c->unit);
	free((char *)c->description);
	for (size_t i = 0; i < c->n_values; i++)
		free((char *)c->values[i]);
	free((void *)c->values);
	value_clear(&c->value_on);
	value_clear(&c->value_off);
	for (size_t i = 0; i < c->n_features; i++)
		cap_clear((struct hearth_capability *)&c->features[i]);
	free((void *)c->features);
	memset(c, 0, sizeof(*c));
}

static void meta_clear(struct zcap_meta *m)
{
	free(m->allowed);
	memset(m, 0, sizeof(*m));
}

void zx_free(struct zcaps *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->n; i++) {
		cap_clear(&z->caps[i]);
		meta_clear(&z->meta[i]);
	}
	free(z->caps);
	free(z->meta);
	memset(z, 0, sizeof(*z));
}

static int value_copy(struct hearth_value *dst, const struct hearth_value *src)
{
	*dst = *src;
	if (src->type == HEARTH_VALUE_STRING || src->type == HEARTH_VALUE_JSON) {
		dst->u.string = strdup(src->u.string);
		if (!dst->u.string) {
			dst->type = HEARTH_VALUE_NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

static int dup_opt(const char **dst, const char *src)
{
	*dst = NULL;
	return src && !(*dst = strdup(src)) ? -ENOMEM : 0;
}

static int cap_copy(struct hearth_capability *dst, const struct hearth_capability *src)
{
	*dst = (struct hearth_capability){.type = src->type, .access = src->access,
					  .flags = src->flags, .min = src->min, .max = src->max,
					  .step = src->step};
	int rc = -ENOMEM;
	if (dup_opt(&dst->name, src->name) || dup_opt(&dst->unit, src->unit) ||
	    dup_opt(&dst->description, src->description) ||
	    value_copy(&dst->value_on, &src->value_on) || value_copy(&dst->value_off, &src->value_off))
		goto out;
	if (src->n_values) {
		const char **vals = calloc(src->n_values, sizeof(*vals));
		if (!vals)
			goto out;
		dst->values = vals;
		for (; dst->n_values < src->n_values; dst->n_values++)
			if (!(vals[dst->n_values] = strdup(src->values[dst->n_values])))
				goto out;
	}
	if (src->n_features) {
		struct hearth_capability *f = calloc(src->n_features, sizeof(*f));
		if (!f)
			goto out;
		dst->features = f;
		for (; dst->n_features < src->n_features; dst->n_features++)
			if (cap_copy(&f[dst->n_features], &src->features[dst->n_features]))
				goto out;
	}
	rc = 0;
out:
	if (rc)
		cap_clear(dst);
	return rc;
}

/* ---- the collection ------------------------------------------------------------ */

int zx_find(const struct zcaps *z, const char *name)
{
	for (size_t i = 0; i < z->n; i++)
		if (strcmp(z->caps[i].name, name) == 0)
			return (int)i;
	return -1;
}

bool zx_value_allowed(const struct zcaps *z, size_t i, const struct hearth_value *v)
{
	const struct zcap_meta *m = &z->meta[i];
	if (m->trigger)
		return v->type == HEARTH_VALUE_STRING && v->u.string[0] == '\0';
	if (!m->allowed)
		return true;
	for (size_t k = 0; k < m->n_allowed; k++)
		if (v->type == HEARTH_VALUE_NUMBER && m->allowed[k] == v->u.number)
			return true;
	return false;
}

static int grow(struct zcaps *z)
{
	if (z->n < z->cap)
		return 0;
	size_t cap = z->cap ? z->cap * 2 : 16;
	struct hearth_capability *caps = realloc(z->caps, cap * sizeof(*caps));
	if (!caps)
		return -ENOMEM;
	z->caps = caps;
	struct zcap_meta *meta = realloc(z->meta, cap * sizeof(*meta));
	if (!meta)
		return -ENOMEM;
	z->meta = meta;
	z->cap = cap;
	return 0;
}

/* Union of two composites' features, by name; the first of a name wins. */
static int merge_features(struct hearth_capability *dst, struct hearth_capability *src)
{
	size_t total = dst->n_features;
	for (size_t i = 0; i < src->n_features; i++) {
		bool dup = false;
		for (size_t k = 0; k < dst->n_features && !dup; k++)
			dup = strcmp(dst->features[k].name, src->features[i].name) == 0;
		total += !dup;
	}
	if (total > ZB_FEATURES_MAX)
		return -E2BIG;
	struct hearth_capability *f = realloc((void *)dst->features, total * sizeof(*f));
	if (!f)
		return -ENOMEM;
	dst->features = f;
	for (size_t i = 0; i < src->n_features; i++) {
		struct hearth_capability *s = (struct hearth_capability *)&src->features[i];
		bool dup = false;
		for (size_t k = 0; k < dst->n_features && !dup; k++)
			dup = strcmp(f[k].name, s->name) == 0;
		if (dup) {
			cap_clear(s);
		} else {
			f[dst->n_features++] = *s;
			memset(s, 0, sizeof(*s));
		}
	}
	src->n_features = 0;
	dst->access |= src->access;
	return 0;
}

/* Union of two enums' values. */
static int merge_values(struct hearth_capability *dst, struct hearth_capability *src)
{
	size_t total = dst->n_values + src->n_values;
	if (total > ZB_VALUES_MAX)
		return 0; /* keep the first: it is a valid capability on its own */
	const char **v = realloc((void *)dst->values, total * sizeof(*v));
	if (!v)
		return -ENOMEM;
	dst->values = v;
	for (size_t i = 0; i < src->n_values; i++) {
		bool dup = false;
		for (size_t k = 0; k < dst->n_values && !dup; k++)
			dup = strcmp(v[k], src->values[i]) == 0;
		if (dup) {
			free((char *)src->values[i]);
		} else {
			v[dst->n_values++] = src->values[i];
		}
	}
	src->n_values = 0;
	return 0;
}

/* Fold a second capability of the same name into the first: composites
 * join features, numerics widen their range, enums join values, access bits
 * add up. src is consumed. */
static int merge_into(struct hearth_capability *dst, struct zcap_meta *dm,
		      struct hearth_capability *src, struct zcap_meta *sm)
{
	int rc = 0;
	if (dst->type == src->type) {
		if (dst->type == HEARTH_CAP_COMPOSITE)
			rc = merge_features(dst, src);
		else if (dst->type == HEARTH_CAP_ENUM)
			rc = merge_values(dst, src);
		if (dst->type == HEARTH_CAP_NUMERIC && !dm->allowed) {
			if ((dst->flags & HEARTH_CAP_HAS_MIN) && (src->flags & HEARTH_CAP_HAS_MIN))
				dst->min = fmin(dst->min, src->min);
			else
				dst->flags &= ~HEARTH_CAP_HAS_MIN;
			if ((dst->flags & HEARTH_CAP_HAS_MAX) && (src->flags & HEARTH_CAP_HAS_MAX))
				dst->max = fmax(dst->max, src->max);
			else
				dst->flags &= ~HEARTH_CAP_HAS_MAX;
		}
		if (rc == 0)
			dst->access |= src->access;
	}
	dm->specific |= sm->specific;
	cap_clear(src);
	meta_clear(sm);
	return rc;
}

/* Take ownership of c and m: append, or merge into a capability of the same
 * name. On failure c and m are freed. */
static int put(struct zcaps *z, struct hearth_capability *c, struct zcap_meta *m)
{
	int i = zx_find(z, c->name);
	if (i >= 0)
		return merge_into(&z->caps[i], &z->meta[i], c, m);
	int rc = z->n >= ZB_CAPS_MAX ? -E2BIG : grow(z);
	if (rc) {
		cap_clear(c);
		meta_clear(m);
		return rc;
	}
	z->caps[z->n] = *c;
	z->meta[z->n] = *m;
	z->n++;
	return 0;
}

/* ---- one expose ------------------------------------------------------------------ */

/* Common fields: name from property, access, description. */
static int map_common(const cJSON *e, struct hearth_capability *c, const char **why)
{
	const char *prop = str_of(e, "property");
	if (!prop) {
		*why = "it has no property";
		return -EINVAL;
	}
	if (!text_ok(prop, ZB_CAP_NAME_MAX)) {
		*why = "its property is not 1..64 bytes of text";
		return -EINVAL;
	}
	const cJSON *access = cJSON_GetObjectItemCaseSensitive(e, "access");
	c->access = HEARTH_ACCESS_PUBLISHED;
	if (access) {
		if (!cJSON_IsNumber(access) || access->valuedouble < 0 || access->valuedouble > 7) {
			*why = "its access is not a number 0..7";
			return -EINVAL;
		}
		c->access = (unsigned)access->valueint & ACCESS_ALL;
	}
	const char *desc = str_of(e, "description");
	if (!desc)
		desc = str_of(e, "label");
	if (!(c->name = strdup(prop)) || (desc && !(c->description = text_dup(desc, ZB_CAP_DESC_MAX))))
		return -ENOMEM;
	return 0;
}

/* Append text to the capability's description, within ZB_CAP_DESC_MAX. */
static int describe_more(struct hearth_capability *c, const char *more)
{
	const char *old = c->description ? c->description : "";
	size_t len = strlen(old) + strlen(more) + 3;
	char *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	snprintf(buf, len, "%s%s%s", old, *old ? ". " : "", more);
	char *d = text_dup(buf, ZB_CAP_DESC_MAX);
	free(buf);
	if (!d)
		return -ENOMEM;
	free((char *)c->description);
	c->description = d;
	return 0;
}

static int scalar_value(const cJSON *j, struct hearth_value *v)
{
	if (cJSON_IsBool(j)) {
		*v = HEARTH_BOOL(cJSON_IsTrue(j));
	} else if (cJSON_IsNumber(j) && isfinite(j->valuedouble)) {
		*v = HEARTH_NUMBER(j->valuedouble);
	} else if (cJSON_IsString(j) && text_ok(j->valuestring, ZB_CAP_TEXT_MAX)) {
		char *s = strdup(j->valuestring);
		if (!s)
			return -ENOMEM;
		*v = HEARTH_STRING(s);
	} else {
		return -EINVAL;
	}
	return 0;
}

static bool values_equal(const struct hearth_value *a, const struct hearth_value *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == HEARTH_VALUE_BOOL)
		return a->u.boolean == b->u.boolean;
	if (a->type == HEARTH_VALUE_NUMBER)
		return a->u.number == b->u.number;
	return strcmp(a->u.string, b->u.string) == 0;
}

static int map_binary(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		      const char **why)
{
	(void)m;
	c->type = HEARTH_CAP_BINARY;
	int rc = scalar_value(cJSON_GetObjectItemCaseSensitive(e, "value_on"), &c->value_on);
	if (rc == 0)
		rc = scalar_value(cJSON_GetObjectItemCaseSensitive(e, "value_off"), &c->value_off);
	if (rc == 0 && values_equal(&c->value_on, &c->value_off))
		rc = -EINVAL;
	if (rc == -EINVAL)
		*why = "a binary needs two different scalar value_on/value_off";
	return rc;
}

static int presets_text(const cJSON *presets, struct hearth_capability *c)
{
	char buf[ZB_CAP_DESC_MAX];
	size_t used = (size_t)snprintf(buf, sizeof(buf), "Presets:");
	const cJSON *p;
	size_t n = 0;
	cJSON_ArrayForEach(p, presets)
	{
		const char *name = str_of(p, "name");
		const cJSON *val = cJSON_GetObjectItemCaseSensitive(p, "value");
		if (!name || !cJSON_IsNumber(val) || used + 8 >= sizeof(buf))
			continue;
		used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s %.64s=%g", n++ ? "," : "",
					 name, val->valuedouble);
		if (used >= sizeof(buf))
			used = sizeof(buf) - 1;
	}
	return n ? describe_more(c, buf) : 0;
}

static int map_numeric(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		       const char **why)
{
	(void)m;
	c->type = HEARTH_CAP_NUMERIC;
	static const struct {
		const char *key;
		unsigned flag;
		size_t offset;
	} range[] = {
		{"value_min", HEARTH_CAP_HAS_MIN, offsetof(struct hearth_capability, min)},
		{"value_max", HEARTH_CAP_HAS_MAX, offsetof(struct hearth_capability, max)},
		{"value_step", HEARTH_CAP_HAS_STEP, offsetof(struct hearth_capability, step)},
	};
	for (size_t i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		const cJSON *j = cJSON_GetObjectItemCaseSensitive(e, range[i].key);
		if (!j)
			continue;
		if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) {
			*why = "value_min, value_max or value_step is not a number";
			return -EINVAL;
		}
		c->flags |= range[i].flag;
		*(double *)((char *)c + range[i].offset) = j->valuedouble;
	}
	if ((c->flags & HEARTH_CAP_HAS_STEP) && !(c->step > 0))
		c->flags &= ~HEARTH_CAP_HAS_STEP; /* a step of 0 says nothing */
	if ((c->flags & HEARTH_CAP_HAS_MIN) && (c->flags & HEARTH_CAP_HAS_MAX) && c->min > c->max) {
		*why = "value_min is above value_max";
		return -EINVAL;
	}
	const char *unit = str_of(e, "unit");
	if (unit && unit[0] && !(c->unit = text_dup(unit, ZB_UNIT_MAX)))
		return -ENOMEM;
	const cJSON *presets = cJSON_GetObjectItemCaseSensitive(e, "presets");
	return cJSON_IsArray(presets) ? presets_text(presets, c) : 0;
}

/* An enum of numbers ([1, 2]) stays numbers on the wire: a numeric over
 * their range, and the exact list for the plugin to check. */
static int numeric_enum(const cJSON *values, int n, struct hearth_capability *c,
			struct zcap_meta *m)
{
	c->type = HEARTH_CAP_NUMERIC;
	if (!(m->allowed = calloc((size_t)n, sizeof(double))))
		return -ENOMEM;
	char list[ZB_CAP_DESC_MAX] = "One of:";
	size_t used = strlen(list);
	const cJSON *v;
	cJSON_ArrayForEach(v, values)
	{
		double x = v->valuedouble;
		m->allowed[m->n_allowed++] = x;
		c->min = m->n_allowed == 1 ? x : fmin(c->min, x);
		c->max = m->n_allowed == 1 ? x : fmax(c->max, x);
		if (used + 24 < sizeof(list))
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s %g",
						 m->n_allowed > 1 ? "," : "", x);
	}
	c->flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX;
	return describe_more(c, list);
}

static int map_enum(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		    const char **why)
{
	const cJSON *values = cJSON_GetObjectItemCaseSensitive(e, "values");
	int n = cJSON_GetArraySize(values);
	if (!cJSON_IsArray(values) || n < 1 || n > ZB_VALUES_MAX) {
		*why = "an enum needs 1..256 values";
		return -EINVAL;
	}
	size_t strings = 0, numbers = 0, empty = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, values)
	{
		strings += cJSON_IsString(v) && text_ok(v->valuestring, ZB_CAP_TEXT_MAX);
		numbers += cJSON_IsNumber(v) && isfinite(v->valuedouble);
		empty += cJSON_IsString(v) && v->valuestring[0] == '\0';
	}
	if (numbers == (size_t)n)
		return numeric_enum(values, n, c, m);
	if (empty == (size_t)n) {
		/* hearth's enums refuse "": a text the plugin holds to "" */
		c->type = HEARTH_CAP_TEXT;
		m->trigger = true;
		return describe_more(c, "Write \"\" to trigger it");
	}
	if (strings != (size_t)n) {
		*why = "enum values must all be non-empty text of at most 256 bytes, or all numbers";
		return -EINVAL;
	}
	c->type = HEARTH_CAP_ENUM;
	const char **vals = calloc((size_t)n, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	c->values = vals;
	cJSON_ArrayForEach(v, values)
	{
		bool dup = false;
		for (size_t k = 0; k < c->n_values && !dup; k++)
			dup = strcmp(vals[k], v->valuestring) == 0;
		if (dup)
			continue;
		if (!(vals[c->n_values] = strdup(v->valuestring)))
			return -ENOMEM;
		c->n_values++;
	}
	return 0;
}

static int map_text(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		    const char **why)
{
	(void)e, (void)m, (void)why;
	c->type = HEARTH_CAP_TEXT;
	return 0;
}

/* hearth's list has no item type: the item_type is not kept, values pass as
 * JSON arrays. */
static int map_list(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		    const char **why)
{
	(void)e, (void)m, (void)why;
	c->type = HEARTH_CAP_LIST;
	return 0;
}

static int map_leaf(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		    const char **why);

static int map_composite(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
			 const char **why)
{
	(void)m;
	c->type = HEARTH_CAP_COMPOSITE;
	const cJSON *features = cJSON_GetObjectItemCaseSensitive(e, "features");
	int n = cJSON_GetArraySize(features);
	if (!cJSON_IsArray(features) || n < 1 || n > ZB_FEATURES_MAX) {
		*why = "a composite needs 1..32 features";
		return -EINVAL;
	}
	struct hearth_capability *f = calloc((size_t)n, sizeof(*f));
	if (!f)
		return -ENOMEM;
	c->features = f;
	const cJSON *fe;
	cJSON_ArrayForEach(fe, features)
	{
		const char *type = str_of(fe, "type");
		if (type && strcmp(type, "composite") == 0) {
			*why = "a composite inside a composite: hearth keeps one level of features";
			return -EINVAL;
		}
		struct zcap_meta fm = {0};
		int rc = map_leaf(fe, &f[c->n_features], &fm, why);
		/* a numeric enum or a trigger inside a composite cannot be checked
		 * value by value */
		bool checked = fm.allowed == NULL && !fm.trigger;
		meta_clear(&fm);
		c->n_features++;
		if (rc)
			return rc;
		if (!checked) {
			*why = "an enum of numbers inside a composite";
			return -EINVAL;
		}
		for (size_t k = 0; k + 1 < c->n_features; k++) {
			if (strcmp(f[k].name, f[c->n_features - 1].name) == 0) {
				*why = "a composite names one feature twice";
				return -EINVAL;
			}
		}
	}
	return 0;
}

static const struct {
	const char *type;
	int (*map)(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		   const char **why);
} leaf_kinds[] = {
	{"binary", map_binary}, {"numeric", map_numeric}, {"enum", map_enum},
	{"text", map_text},	{"list", map_list},	  {"composite", map_composite},
};

/* One generic expose into c and m. On failure c and m hold what must be
 * freed and *why (for -EINVAL) says what was wrong. */
static int map_leaf(const cJSON *e, struct hearth_capability *c, struct zcap_meta *m,
		    const char **why)
{
	const char *type = str_of(e, "type");
	if (!cJSON_IsObject(e) || !type) {
		*why = "it is not an object with a type";
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(leaf_kinds) / sizeof(leaf_kinds[0]); i++) {
		if (strcmp(leaf_kinds[i].type, type) != 0)
			continue;
		int rc = map_common(e, c, why);
		return rc ? rc : leaf_kinds[i].map(e, c, m, why);
	}
	*why = "its type is not one hearth knows";
	return -EINVAL;
}

/* ---- the walk ---------------------------------------------------------------------- */

static const char *const specific_kinds[] = {"light", "switch", "lock", "cover", "climate", "fan"};

static bool is_specific(const char *type)
{
	for (size_t i = 0; i < sizeof(specific_kinds) / sizeof(specific_kinds[0]); i++)
		if (strcmp(type, specific_kinds[i]) == 0)
			return true;
	return false;
}

static void unmapped(struct mapper *mp, const char *why, const cJSON *e)
{
	mp->out->n_unmapped++;
	if (mp->warn)
		mp->warn(mp->user, why, e);
}

static int map_one(struct mapper *mp, const cJSON *e, bool specific, int depth);
static int add_copy(struct zcaps *z, const struct hearth_capability *src,
		    const struct zcap_meta *src_meta, bool specific);

/* zigbee2mqtt takes "transition" with any light's /set without exposing it. */
static const struct hearth_capability transition_cap = {
	.name = "transition", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_SET, .unit = "s",
	.description = "Seconds a change of state, brightness or colour takes",
	.flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 0, .max = 3600};

static int map_container(struct mapper *mp, const cJSON *e, int depth)
{
	const cJSON *features = cJSON_GetObjectItemCaseSensitive(e, "features");
	if (!cJSON_IsArray(features) || depth >= ZB_EXPOSE_DEPTH_MAX) {
		unmapped(mp, depth >= ZB_EXPOSE_DEPTH_MAX ? "specific exposes nested too deep"
							  : "a specific expose without a features array",
			 e);
		return 0;
	}
	const cJSON *f;
	cJSON_ArrayForEach(f, features)
	{
		int rc = map_one(mp, f, true, depth + 1);
		if (rc)
			return rc;
	}
	const char *type = str_of(e, "type");
	if (strcmp(type, "light") == 0 && zx_find(mp->out, transition_cap.name) < 0)
		return add_copy(mp->out, &transition_cap, NULL, true);
	return 0;
}

static int map_one(struct mapper *mp, const cJSON *e, bool specific, int depth)
{
	const char *type = str_of(e, "type");
	if (type && cJSON_IsObject(e) && is_specific(type))
		return map_container(mp, e, depth);
	struct hearth_capability c = {0};
	struct zcap_meta m = {.specific = specific};
	const char *why = "out of memory";
	int rc = map_leaf(e, &c, &m, &why);
	if (rc == 0)
		rc = put(mp->out, &c, &m);
	else {
		cap_clear(&c);
		meta_clear(&m);
	}
	if (rc == -E2BIG)
		why = "more capabilities or composite features than hearth allows";
	if (rc == -EINVAL || rc == -E2BIG) {
		unmapped(mp, why, e);
		rc = 0;
	}
	return rc;
}

int zx_map(const cJSON *exposes, struct zcaps *out, zx_warn_fn warn, void *user)
{
	struct mapper mp = {.out = out, .warn = warn, .user = user};
	if (!exposes)
		return 0;
	if (!cJSON_IsArray(exposes)) {
		unmapped(&mp, "exposes is not an array", exposes);
		return 0;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, exposes)
	{
		int rc = map_one(&mp, e, false, 0);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- additions ---------------------------------------------------------------------- */

static const char *const update_states[] = {"idle", "available", "updating", "scheduled"};
static const char *const ota_actions[] = {"check", "update"};

static const struct hearth_capability update_features[] = {
	{.name = "state", .type = HEARTH_CAP_ENUM, .access = HEARTH_ACCESS_PUBLISHED,
	 .description = "Firmware update state", .values = update_states, .n_values = 4},
	{.name = "progress", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_PUBLISHED,
	 .unit = "%", .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 0, .max = 100},
	{.name = "remaining", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_PUBLISHED,
	 .unit = "s"},
	{.name = "installed_version", .type = HEARTH_CAP_NUMERIC,
	 .access = HEARTH_ACCESS_PUBLISHED},
	{.name = "latest_version", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_PUBLISHED},
};

static const struct hearth_capability ota_caps[] = {
	{.name = "update", .type = HEARTH_CAP_COMPOSITE, .access = HEARTH_ACCESS_PUBLISHED,
	 .description = "Firmware update as zigbee2mqtt reports it, with progress while updating",
	 .features = update_features, .n_features = 5},
	{.name = "ota", .type = HEARTH_CAP_ENUM, .access = HEARTH_ACCESS_SET,
	 .description = "Ask zigbee2mqtt to check for or install a firmware update",
	 .values = ota_actions, .n_values = 2},
};

/* Add a copy of src (and of the allowed numbers in src_meta, may be NULL);
 * a name present already is merged. Past the limits the copy is dropped. */
static int add_copy(struct zcaps *z, const struct hearth_capability *src,
		    const struct zcap_meta *src_meta, bool specific)
{
	struct hearth_capability c;
	struct zcap_meta m = {.specific = specific, .trigger = src_meta && src_meta->trigger};
	if (src_meta && src_meta->allowed) {
		if (!(m.allowed = malloc(src_meta->n_allowed * sizeof(double))))
			return -ENOMEM;
		memcpy(m.allowed, src_meta->allowed, src_meta->n_allowed * sizeof(double));
		m.n_allowed = src_meta->n_allowed;
	}
	int rc = cap_copy(&c, src);
	if (rc) {
		meta_clear(&m);
		return rc;
	}
	rc = put(z, &c, &m);
	return rc == -E2BIG ? 0 : rc;
}

int zx_add_ota(struct zcaps *z)
{
	for (size_t i = 0; i < sizeof(ota_caps) / sizeof(ota_caps[0]); i++) {
		if (zx_find(z, ota_caps[i].name) >= 0)
			continue;
		int rc = add_copy(z, &ota_caps[i], NULL, false);
		if (rc)
			return rc;
	}
	return 0;
}

int zx_merge_specific(struct zcaps *dst, const struct zcaps *src)
{
	for (size_t i = 0; i < src->n; i++) {
		if (!src->meta[i].specific)
			continue;
		int rc = add_copy(dst, &src->caps[i], &src->meta[i], true);
		if (rc)
			return rc;
	}
	return 0;
}
