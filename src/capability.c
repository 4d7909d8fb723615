#include "capability.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAP_NAME_MAX 64
#define CAP_TEXT_MAX 256

static const struct {
	enum hearth_cap_type type;
	const char *name;
} type_names[] = {
	{HEARTH_CAP_BINARY, "binary"},	     {HEARTH_CAP_NUMERIC, "numeric"},
	{HEARTH_CAP_ENUM, "enum"},	     {HEARTH_CAP_TEXT, "text"},
	{HEARTH_CAP_COMPOSITE, "composite"}, {HEARTH_CAP_LIST, "list"},
};

const char *cap_type_name(enum hearth_cap_type type)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (type_names[i].type == type)
			return type_names[i].name;
	return NULL;
}

static int type_from_name(const char *name, enum hearth_cap_type *out)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcmp(type_names[i].name, name) == 0) {
			*out = type_names[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
	if (!err || !err_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static bool text_ok(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || n >= max)
			return false;
	return n > 0;
}

static char *dup_opt(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void cap_clear(struct cap *c)
{
	free(c->name);
	free(c->unit);
	free(c->description);
	for (size_t i = 0; i < c->n_values; i++)
		free(c->values[i]);
	free(c->values);
	cJSON_Delete(c->value_on);
	cJSON_Delete(c->value_off);
	cap_array_free(c->features, c->n_features);
	memset(c, 0, sizeof(*c));
}

void cap_array_free(struct cap *caps, size_t n)
{
	if (!caps)
		return;
	for (size_t i = 0; i < n; i++)
		cap_clear(&caps[i]);
	free(caps);
}

int cap_value_to_json(const struct hearth_value *value, cJSON **out)
{
	cJSON *j = NULL;
	switch (value->type) {
	case HEARTH_VALUE_NULL:
		j = cJSON_CreateNull();
		break;
	case HEARTH_VALUE_BOOL:
		j = cJSON_CreateBool(value->u.boolean);
		break;
	case HEARTH_VALUE_NUMBER:
		if (!isfinite(value->u.number))
			return -EINVAL;
		j = cJSON_CreateNumber(value->u.number);
		break;
	case HEARTH_VALUE_STRING:
		if (!value->u.string)
			return -EINVAL;
		j = cJSON_CreateString(value->u.string);
		break;
	case HEARTH_VALUE_JSON:
		if (!value->u.string)
			return -EINVAL;
		j = cJSON_ParseWithOpts(value->u.string, NULL, true);
		if (!j)
			return -EINVAL;
		if (!cJSON_IsObject(j) && !cJSON_IsArray(j)) {
			cJSON_Delete(j);
			return -EINVAL;
		}
		break;
	default:
		return -EINVAL;
	}
	if (!j)
		return -ENOMEM;
	*out = j;
	return 0;
}

void cap_value_from_json(const cJSON *json, struct hearth_value *value, char **scratch)
{
	*scratch = NULL;
	if (cJSON_IsBool(json)) {
		*value = HEARTH_BOOL(cJSON_IsTrue(json));
	} else if (cJSON_IsNumber(json)) {
		*value = HEARTH_NUMBER(json->valuedouble);
	} else if (cJSON_IsString(json)) {
		*value = HEARTH_STRING(json->valuestring);
	} else if (cJSON_IsObject(json) || cJSON_IsArray(json)) {
		*scratch = cJSON_PrintUnformatted(json);
		if (*scratch)
			*value = HEARTH_JSON(*scratch);
		else
			value->type = HEARTH_VALUE_NULL;
	} else {
		value->type = HEARTH_VALUE_NULL;
	}
}

static int binary_value_from_abi(const struct hearth_value *v, cJSON **out)
{
	if (v->type != HEARTH_VALUE_BOOL && v->type != HEARTH_VALUE_STRING &&
	    v->type != HEARTH_VALUE_NUMBER)
		return -EINVAL;
	return cap_value_to_json(v, out);
}

static int cap_from_abi(struct cap *dst, const struct hearth_capability *src, int depth, char *err,
			size_t err_len);

static int features_from_abi(struct cap *dst, const struct hearth_capability *src, int depth,
			     char *err, size_t err_len)
{
	if (src->n_features == 0 || !src->features || src->n_features > CAP_MAX_FEATURES || depth > 0) {
		set_err(err, err_len, "capability '%s': a composite needs 1..%d features, one level deep",
			src->name, CAP_MAX_FEATURES);
		return -EINVAL;
	}
	dst->features = calloc(src->n_features, sizeof(*dst->features));
	if (!dst->features)
		return -ENOMEM;
	dst->n_features = src->n_features;
	for (size_t i = 0; i < src->n_features; i++) {
		int rc = cap_from_abi(&dst->features[i], &src->features[i], depth + 1, err, err_len);
		if (rc)
			return rc;
		if (cap_find(dst->features, i, dst->features[i].name)) {
			set_err(err, err_len, "capability '%s': feature '%s' is declared twice",
				src->name, dst->features[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

static int values_from_abi(struct cap *dst, const struct hearth_capability *src, char *err,
			   size_t err_len)
{
	if (src->n_values == 0 || !src->values || src->n_values > CAP_MAX_VALUES) {
		set_err(err, err_len, "capability '%s': an enum needs 1..%d values", src->name,
			CAP_MAX_VALUES);
		return -EINVAL;
	}
	dst->values = calloc(src->n_values, sizeof(char *));
	if (!dst->values)
		return -ENOMEM;
	dst->n_values = src->n_values;
	for (size_t i = 0; i < src->n_values; i++) {
		if (!src->values[i] || !text_ok(src->values[i], CAP_TEXT_MAX)) {
			set_err(err, err_len, "capability '%s': enum value %zu is empty or not text",
				src->name, i);
			return -EINVAL;
		}
		if (!(dst->values[i] = strdup(src->values[i])))
			return -ENOMEM;
	}
	return 0;
}

static int cap_from_abi(struct cap *dst, const struct hearth_capability *src, int depth, char *err,
			size_t err_len)
{
	if (!src->name || !text_ok(src->name, CAP_NAME_MAX)) {
		set_err(err, err_len, "a capability has no name, or a name over %d bytes", CAP_NAME_MAX);
		return -EINVAL;
	}
	if (!cap_type_name(src->type)) {
		set_err(err, err_len, "capability '%s': unknown type %d", src->name, (int)src->type);
		return -EINVAL;
	}
	if ((src->flags & HEARTH_CAP_HAS_MIN) && (src->flags & HEARTH_CAP_HAS_MAX) &&
	    src->min > src->max) {
		set_err(err, err_len, "capability '%s': min %g is above max %g", src->name, src->min,
			src->max);
		return -EINVAL;
	}
	if ((src->flags & HEARTH_CAP_HAS_STEP) && !(src->step > 0)) {
		set_err(err, err_len, "capability '%s': step must be above 0", src->name);
		return -EINVAL;
	}
	dst->type = src->type;
	dst->access = src->access & 7u;
	dst->flags = src->flags & 7u;
	dst->min = src->min;
	dst->max = src->max;
	dst->step = src->step;
	if (!(dst->name = strdup(src->name)))
		return -ENOMEM;
	if ((src->unit && !(dst->unit = dup_opt(src->unit))) ||
	    (src->description && !(dst->description = dup_opt(src->description))))
		return -ENOMEM;
	switch (src->type) {
	case HEARTH_CAP_BINARY: {
		int rc = binary_value_from_abi(&src->value_on, &dst->value_on);
		if (!rc)
			rc = binary_value_from_abi(&src->value_off, &dst->value_off);
		if (rc == -ENOMEM)
			return rc;
		if (rc || cap_json_equal(dst->value_on, dst->value_off)) {
			set_err(err, err_len,
				"capability '%s': a binary needs two different value_on/value_off",
				src->name);
			return -EINVAL;
		}
		return 0;
	}
	case HEARTH_CAP_ENUM:
		return values_from_abi(dst, src, err, err_len);
	case HEARTH_CAP_COMPOSITE:
		return features_from_abi(dst, src, depth, err, err_len);
	default:
		return 0;
	}
}

int cap_array_from_abi(const struct hearth_capability *src, size_t n, struct cap **out, char *err,
		       size_t err_len)
{
	if (n > CAP_MAX_PER_DEVICE || (n && !src)) {
		set_err(err, err_len, "%zu capabilities, at most %d allowed", n, CAP_MAX_PER_DEVICE);
		return -EINVAL;
	}
	struct cap *caps = calloc(n ? n : 1, sizeof(*caps));
	if (!caps)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		rc = cap_from_abi(&caps[i], &src[i], 0, err, err_len);
		for (size_t j = 0; j < i && !rc; j++) {
			if (strcmp(caps[j].name, caps[i].name) == 0) {
				set_err(err, err_len, "capability '%s' is declared twice", caps[i].name);
				rc = -EINVAL;
			}
		}
	}
	if (rc) {
		cap_array_free(caps, n);
		if (rc == -ENOMEM)
			set_err(err, err_len, "out of memory");
		return rc;
	}
	*out = caps;
	return 0;
}

/* Add item (may be NULL) to o under key; false when either allocation
 * failed (item is then freed). */
static bool add_item(cJSON *o, const char *key, cJSON *item)
{
	if (item && cJSON_AddItemToObject(o, key, item))
		return true;
	cJSON_Delete(item);
	return false;
}

/* NULL when any member cannot be added: a capability missing its name or
 * type would be stored, and refused when loaded. */
static cJSON *cap_to_json(const struct cap *c)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	bool ok = cJSON_AddStringToObject(o, "name", c->name) &&
		  cJSON_AddStringToObject(o, "type", cap_type_name(c->type)) &&
		  cJSON_AddNumberToObject(o, "access", c->access);
	if (ok && c->unit)
		ok = cJSON_AddStringToObject(o, "unit", c->unit);
	if (ok && c->description)
		ok = cJSON_AddStringToObject(o, "description", c->description);
	if (ok && (c->flags & HEARTH_CAP_HAS_MIN))
		ok = cJSON_AddNumberToObject(o, "value_min", c->min);
	if (ok && (c->flags & HEARTH_CAP_HAS_MAX))
		ok = cJSON_AddNumberToObject(o, "value_max", c->max);
	if (ok && (c->flags & HEARTH_CAP_HAS_STEP))
		ok = cJSON_AddNumberToObject(o, "value_step", c->step);
	if (ok && c->type == HEARTH_CAP_BINARY)
		ok = add_item(o, "value_on", cJSON_Duplicate(c->value_on, 1)) &&
		     add_item(o, "value_off", cJSON_Duplicate(c->value_off, 1));
	if (ok && c->type == HEARTH_CAP_ENUM)
		ok = add_item(o, "values",
			      cJSON_CreateStringArray((const char *const *)c->values,
						      (int)c->n_values));
	if (ok && c->type == HEARTH_CAP_COMPOSITE)
		ok = add_item(o, "features", cap_array_to_json(c->features, c->n_features));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *cap_array_to_json(const struct cap *caps, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	if (!a)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cap_to_json(&caps[i]);
		if (!o) {
			cJSON_Delete(a);
			return NULL;
		}
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

/* The JSON form is turned back into the ABI form so that both paths share
 * one validator. Temporary arrays are kept in a scratch list freed at the end. */
struct scratch {
	void **ptrs;
	size_t n, cap;
};

static void *scratch_calloc(struct scratch *s, size_t n, size_t size)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		void **ptrs = realloc(s->ptrs, cap * sizeof(*ptrs));
		if (!ptrs)
			return NULL;
		s->ptrs = ptrs;
		s->cap = cap;
	}
	void *p = calloc(n ? n : 1, size);
	if (p)
		s->ptrs[s->n++] = p;
	return p;
}

static void scratch_free(struct scratch *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->ptrs[i]);
	free(s->ptrs);
	free(s);
}

static int abi_from_json(const cJSON *o, struct hearth_capability *c, struct scratch *s, int depth,
			 char *err, size_t err_len);

static int abi_values_from_json(const cJSON *values, struct hearth_capability *c, struct scratch *s,
				char *err, size_t err_len)
{
	int n = cJSON_GetArraySize(values);
	if (n > CAP_MAX_VALUES) {
		set_err(err, err_len, "capability '%s': an enum needs 1..%d values", c->name,
			CAP_MAX_VALUES);
		return -EINVAL;
	}
	const char **vals = scratch_calloc(s, (size_t)n, sizeof(char *));
	if (!vals)
		return -ENOMEM;
	int i = 0;
	const cJSON *j;
	cJSON_ArrayForEach(j, values) vals[i++] = cJSON_IsString(j) ? j->valuestring : NULL;
	c->values = vals;
	c->n_values = (size_t)n;
	return 0;
}

static int abi_features_from_json(const cJSON *features, struct hearth_capability *c,
				  struct scratch *s, int depth, char *err, size_t err_len)
{
	int n = cJSON_GetArraySize(features);
	if (n > CAP_MAX_FEATURES || depth > 0) {
		set_err(err, err_len, "capability '%s': a composite needs 1..%d features, one level deep",
			c->name, CAP_MAX_FEATURES);
		return -EINVAL;
	}
	struct hearth_capability *feats = scratch_calloc(s, (size_t)n, sizeof(*feats));
	if (!feats)
		return -ENOMEM;
	int i = 0;
	const cJSON *j;
	cJSON_ArrayForEach(j, features)
	{
		int rc = abi_from_json(j, &feats[i++], s, depth + 1, err, err_len);
		if (rc)
			return rc;
	}
	c->features = feats;
	c->n_features = (size_t)n;
	return 0;
}

static int abi_from_json(const cJSON *o, struct hearth_capability *c, struct scratch *s, int depth,
			 char *err, size_t err_len)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	if (!cJSON_IsObject(o) || !cJSON_IsString(name) || !cJSON_IsString(type) ||
	    type_from_name(type->valuestring, &c->type)) {
		set_err(err, err_len, "a capability has no name or an unknown type");
		return -EINVAL;
	}
	c->name = name->valuestring;
	const cJSON *j;
	if (cJSON_IsNumber(j = cJSON_GetObjectItemCaseSensitive(o, "access")))
		c->access = (unsigned)j->valueint;
	if (cJSON_IsString(j = cJSON_GetObjectItemCaseSensitive(o, "unit")))
		c->unit = j->valuestring;
	if (cJSON_IsString(j = cJSON_GetObjectItemCaseSensitive(o, "description")))
		c->description = j->valuestring;
	if (cJSON_IsNumber(j = cJSON_GetObjectItemCaseSensitive(o, "value_min")))
		c->flags |= HEARTH_CAP_HAS_MIN, c->min = j->valuedouble;
	if (cJSON_IsNumber(j = cJSON_GetObjectItemCaseSensitive(o, "value_max")))
		c->flags |= HEARTH_CAP_HAS_MAX, c->max = j->valuedouble;
	if (cJSON_IsNumber(j = cJSON_GetObjectItemCaseSensitive(o, "value_step")))
		c->flags |= HEARTH_CAP_HAS_STEP, c->step = j->valuedouble;
	/* binary values are scalars, so no scratch text is ever produced */
	char *unused;
	if ((j = cJSON_GetObjectItemCaseSensitive(o, "value_on")) && !cJSON_IsObject(j) &&
	    !cJSON_IsArray(j))
		cap_value_from_json(j, &c->value_on, &unused);
	if ((j = cJSON_GetObjectItemCaseSensitive(o, "value_off")) && !cJSON_IsObject(j) &&
	    !cJSON_IsArray(j))
		cap_value_from_json(j, &c->value_off, &unused);
	int rc = 0;
	if (cJSON_IsArray(j = cJSON_GetObjectItemCaseSensitive(o, "values")))
		rc = abi_values_from_json(j, c, s, err, err_len);
	if (!rc && cJSON_IsArray(j = cJSON_GetObjectItemCaseSensitive(o, "features")))
		rc = abi_features_from_json(j, c, s, depth, err, err_len);
	return rc;
}

int cap_array_from_json(const cJSON *array, struct cap **out, size_t *n_out, char *err,
			size_t err_len)
{
	if (!cJSON_IsArray(array)) {
		set_err(err, err_len, "capabilities are not a JSON array");
		return -EINVAL;
	}
	size_t n = (size_t)cJSON_GetArraySize(array);
	if (n > CAP_MAX_PER_DEVICE) {
		set_err(err, err_len, "%zu capabilities, at most %d allowed", n, CAP_MAX_PER_DEVICE);
		return -EINVAL;
	}
	struct scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = -ENOMEM;
	struct hearth_capability *abi = scratch_calloc(s, n, sizeof(*abi));
	if (!abi)
		goto out;
	size_t i = 0;
	const cJSON *o;
	cJSON_ArrayForEach(o, array)
	{
		rc = abi_from_json(o, &abi[i++], s, 0, err, err_len);
		if (rc)
			goto out;
	}
	rc = cap_array_from_abi(abi, n, out, err, err_len);
	if (rc == 0)
		*n_out = n;
out:
	scratch_free(s);
	return rc;
}

const struct cap *cap_find(const struct cap *caps, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(caps[i].name, name) == 0)
			return &caps[i];
	return NULL;
}

int cap_json_put(cJSON *object, const char *key, cJSON *value)
{
	if (!object || !value) {
		cJSON_Delete(value);
		return -ENOMEM;
	}
	cJSON *old = cJSON_GetObjectItemCaseSensitive(object, key);
	if (!old)
		return cJSON_AddItemToObject(object, key, value) ? 0 : (cJSON_Delete(value), -ENOMEM);
	if (!(value->type & cJSON_StringIsConst))
		cJSON_free(value->string);
	value->string = old->string;
	value->type = (value->type & ~cJSON_StringIsConst) | (old->type & cJSON_StringIsConst);
	old->string = NULL;
	old->type &= ~cJSON_StringIsConst;
	cJSON_ReplaceItemViaPointer(object, old, value);
	return 0;
}

int cap_json_add(cJSON *object, const char *key, cJSON *value)
{
	if (object && value && cJSON_AddItemToObject(object, key, value))
		return 0;
	cJSON_Delete(value);
	return -ENOMEM;
}

bool cap_json_equal(const cJSON *a, const cJSON *b)
{
	if (!a || !b)
		return a == b;
	if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
		return a->valuedouble == b->valuedouble;
	return cJSON_Compare(a, b, 1);
}

/* Short text of a JSON value for error messages. */
static void describe(const cJSON *v, char *buf, size_t len)
{
	char *s = cJSON_PrintUnformatted(v);
	if (!s) {
		snprintf(buf, len, "?");
		return;
	}
	if (strlen(s) > 40)
		snprintf(buf, len, "%.37s...", s);
	else
		snprintf(buf, len, "%s", s);
	cJSON_free(s);
}

static int validate_binary(const struct cap *c, const cJSON *v, const cJSON *current, cJSON **out,
			   char *err, size_t err_len)
{
	const cJSON *pick = NULL;
	if (cap_json_equal(v, c->value_on) || cap_json_equal(v, c->value_off))
		pick = v;
	else if (cJSON_IsString(v) && strcasecmp(v->valuestring, "TOGGLE") == 0)
		pick = cap_json_equal(current, c->value_on) ? c->value_off : c->value_on;
	else if (cJSON_IsString(v) && cJSON_IsString(c->value_on) && cJSON_IsString(c->value_off) &&
		 (strcasecmp(v->valuestring, c->value_on->valuestring) == 0 ||
		  strcasecmp(v->valuestring, c->value_off->valuestring) == 0))
		/* "on" for "ON": accepted as zigbee2mqtt does */
		pick = strcasecmp(v->valuestring, c->value_on->valuestring) == 0 ? c->value_on
										 : c->value_off;
	if (!pick) {
		char got[48], on[48], off[48];
		describe(v, got, sizeof(got));
		describe(c->value_on, on, sizeof(on));
		describe(c->value_off, off, sizeof(off));
		set_err(err, err_len, "%s: %s is not one of %s, %s or \"TOGGLE\"", c->name, got, on,
			off);
		return -EINVAL;
	}
	*out = cJSON_Duplicate(pick, 1);
	return *out ? 0 : -ENOMEM;
}

static int validate_numeric(const struct cap *c, const cJSON *v, cJSON **out, char *err,
			    size_t err_len)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
		char got[48];
		describe(v, got, sizeof(got));
		set_err(err, err_len, "%s: %s is not a number", c->name, got);
		return -EINVAL;
	}
	double x = v->valuedouble;
	if ((c->flags & HEARTH_CAP_HAS_MIN) && x < c->min) {
		set_err(err, err_len, "%s: %g is below the minimum %g", c->name, x, c->min);
		return -EINVAL;
	}
	if ((c->flags & HEARTH_CAP_HAS_MAX) && x > c->max) {
		set_err(err, err_len, "%s: %g is above the maximum %g", c->name, x, c->max);
		return -EINVAL;
	}
	*out = cJSON_Duplicate(v, 1);
	return *out ? 0 : -ENOMEM;
}

static int validate_enum(const struct cap *c, const cJSON *v, cJSON **out, char *err,
			 size_t err_len)
{
	if (cJSON_IsString(v)) {
		for (size_t i = 0; i < c->n_values; i++) {
			if (strcmp(c->values[i], v->valuestring) == 0) {
				*out = cJSON_Duplicate(v, 1);
				return *out ? 0 : -ENOMEM;
			}
		}
	}
	char got[48];
	describe(v, got, sizeof(got));
	char allowed[200] = "";
	size_t used = 0;
	for (size_t i = 0; i < c->n_values && used + 4 < sizeof(allowed); i++)
		used += (size_t)snprintf(allowed + used, sizeof(allowed) - used, "%s%s", i ? ", " : "",
					 c->values[i]);
	set_err(err, err_len, "%s: %s is not one of: %s", c->name, got, allowed);
	return -EINVAL;
}

/* Short names Home Assistant's JSON light sends for members a device may
 * call by their long names (zigbee2mqtt's color_hs: hue, saturation). */
static const struct cap *find_feature(const struct cap *c, const char *name)
{
	static const char *const aliases[][2] = {{"h", "hue"}, {"s", "saturation"}};
	const struct cap *f = cap_find(c->features, c->n_features, name);
	for (size_t i = 0; !f && i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(name, aliases[i][0]) == 0)
			f = cap_find(c->features, c->n_features, aliases[i][1]);
	return f;
}

static int validate_composite(const struct cap *c, const cJSON *v, cJSON **out, char *err,
			      size_t err_len)
{
	if (!cJSON_IsObject(v)) {
		set_err(err, err_len, "%s: must be an object", c->name);
		return -EINVAL;
	}
	cJSON *res = cJSON_CreateObject();
	if (!res)
		return -ENOMEM;
	const cJSON *item;
	cJSON_ArrayForEach(item, v)
	{
		const struct cap *f = find_feature(c, item->string);
		cJSON *ok = NULL;
		int rc;
		if (f && strcmp(f->name, item->string) != 0 &&
		    cJSON_GetObjectItemCaseSensitive(v, f->name)) {
			set_err(err, err_len, "%s: '%s' and '%s' are the same member", c->name,
				item->string, f->name);
			rc = -EINVAL;
		} else if (!f) {
			set_err(err, err_len, "%s: has no member '%s'", c->name, item->string);
			rc = -EINVAL;
		} else {
			rc = cap_validate_value(f, item, NULL, &ok, err, err_len);
		}
		if (!rc && !add_item(res, f->name, ok))
			rc = -ENOMEM;
		if (rc) {
			cJSON_Delete(res);
			return rc;
		}
	}
	*out = res;
	return 0;
}

static int validate(const struct cap *cap, const cJSON *value, const cJSON *current, cJSON **out,
		    char *err, size_t err_len)
{
	switch (cap->type) {
	case HEARTH_CAP_BINARY:
		return validate_binary(cap, value, current, out, err, err_len);
	case HEARTH_CAP_NUMERIC:
		return validate_numeric(cap, value, out, err, err_len);
	case HEARTH_CAP_ENUM:
		return validate_enum(cap, value, out, err, err_len);
	case HEARTH_CAP_TEXT:
		if (!cJSON_IsString(value) || strlen(value->valuestring) > 4096) {
			set_err(err, err_len, "%s: must be text of at most 4096 bytes", cap->name);
			return -EINVAL;
		}
		break;
	case HEARTH_CAP_COMPOSITE:
		return validate_composite(cap, value, out, err, err_len);
	case HEARTH_CAP_LIST:
		if (!cJSON_IsArray(value)) {
			set_err(err, err_len, "%s: must be a list", cap->name);
			return -EINVAL;
		}
		break;
	}
	*out = cJSON_Duplicate(value, 1);
	return *out ? 0 : -ENOMEM;
}

int cap_validate_value(const struct cap *cap, const cJSON *value, const cJSON *current,
		       cJSON **out, char *err, size_t err_len)
{
	int rc = validate(cap, value, current, out, err, err_len);
	if (rc == -ENOMEM) /* callers pass err on */
		set_err(err, err_len, "%s: out of memory", cap->name);
	return rc;
}
