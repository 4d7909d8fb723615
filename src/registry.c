#include "registry.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Two chained hash tables (by id, by name) over the same devices, plus a
 * doubly linked list for insertion order. Tables double when the load
 * factor passes 1. */
struct registry {
	struct device **by_id;
	struct device **by_name;
	size_t n_buckets;
	size_t count;
	struct device *head, *tail;
};

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

static size_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

struct registry *registry_new(void)
{
	struct registry *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	reg->n_buckets = 64;
	reg->by_id = calloc(reg->n_buckets, sizeof(*reg->by_id));
	reg->by_name = calloc(reg->n_buckets, sizeof(*reg->by_name));
	if (!reg->by_id || !reg->by_name) {
		registry_free(reg);
		return NULL;
	}
	return reg;
}

static void device_free(struct device *dev)
{
	free(dev->id);
	free(dev->name);
	free(dev->plugin);
	free(dev->vendor);
	free(dev->model);
	free(dev->description);
	free(dev->room);
	cap_array_free(dev->caps, dev->n_caps);
	cJSON_Delete(dev->state);
	cJSON_Delete(dev->state_ms);
	free(dev);
}

void registry_free(struct registry *reg)
{
	if (!reg)
		return;
	struct device *d = reg->head;
	while (d) {
		struct device *next = d->next;
		device_free(d);
		d = next;
	}
	free(reg->by_id);
	free(reg->by_name);
	free(reg);
}

size_t registry_count(const struct registry *reg)
{
	return reg->count;
}

struct device *registry_first(const struct registry *reg)
{
	return reg->head;
}

struct device *registry_next(const struct device *dev)
{
	return dev->next;
}

struct device *registry_by_id(const struct registry *reg, const char *id)
{
	for (struct device *d = reg->by_id[hash(id) % reg->n_buckets]; d; d = d->next_id)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

struct device *registry_by_name(const struct registry *reg, const char *name)
{
	for (struct device *d = reg->by_name[hash(name) % reg->n_buckets]; d; d = d->next_name)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

struct device *registry_lookup(const struct registry *reg, const char *name_or_id)
{
	struct device *d = registry_by_name(reg, name_or_id);
	return d ? d : registry_by_id(reg, name_or_id);
}

static void link_name(struct registry *reg, struct device *dev)
{
	size_t b = hash(dev->name) % reg->n_buckets;
	dev->next_name = reg->by_name[b];
	reg->by_name[b] = dev;
}

static void unlink_name(struct registry *reg, struct device *dev)
{
	struct device **p = &reg->by_name[hash(dev->name) % reg->n_buckets];
	while (*p && *p != dev)
		p = &(*p)->next_name;
	if (*p)
		*p = dev->next_name;
}

static void link_id(struct registry *reg, struct device *dev)
{
	size_t b = hash(dev->id) % reg->n_buckets;
	dev->next_id = reg->by_id[b];
	reg->by_id[b] = dev;
}

static int grow(struct registry *reg)
{
	size_t n = reg->n_buckets * 2;
	struct device **by_id = calloc(n, sizeof(*by_id));
	struct device **by_name = calloc(n, sizeof(*by_name));
	if (!by_id || !by_name) {
		free(by_id);
		free(by_name);
		return -ENOMEM;
	}
	free(reg->by_id);
	free(reg->by_name);
	reg->by_id = by_id;
	reg->by_name = by_name;
	reg->n_buckets = n;
	for (struct device *d = reg->head; d; d = d->next) {
		link_id(reg, d);
		link_name(reg, d);
	}
	return 0;
}

/* Length of a well-formed UTF-8 sequence at s (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF), or 0. C1 controls and non-characters count
 * as malformed too: MQTT brokers refuse them in topics. */
static size_t utf8_len(const unsigned char *s)
{
	static const struct {
		unsigned char mask, lead;
		size_t len;
		uint32_t min;
	} forms[] = {
		{0x80, 0x00, 1, 0x0},
		{0xe0, 0xc0, 2, 0x80},
		{0xf0, 0xe0, 3, 0x800},
		{0xf8, 0xf0, 4, 0x10000},
	};
	for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
		if ((s[0] & forms[f].mask) != forms[f].lead)
			continue;
		uint32_t cp = s[0] & (unsigned char)~forms[f].mask;
		for (size_t i = 1; i < forms[f].len; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		bool bad = cp < forms[f].min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
			   (cp >= 0x80 && cp <= 0x9f) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
			   (cp & 0xfffe) == 0xfffe;
		return bad ? 0 : forms[f].len;
	}
	return 0;
}

static int text_check(const char *what, const char *s, char *err, size_t err_len)
{
	size_t len = strlen(s);
	if (len == 0 || len > REGISTRY_NAME_MAX) {
		set_err(err, err_len, "%s must be 1 to %d bytes long", what, REGISTRY_NAME_MAX);
		return -EINVAL;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		if (*p < 0x20 || *p == 0x7f) {
			set_err(err, err_len, "%s contains a control character", what);
			return -EINVAL;
		}
		if (*p == '+' || *p == '#') {
			set_err(err, err_len, "%s contains '%c', an MQTT wildcard", what, *p);
			return -EINVAL;
		}
		size_t n = utf8_len(p);
		if (!n) {
			set_err(err, err_len, "%s is not valid UTF-8", what);
			return -EINVAL;
		}
		p += n;
	}
	return 0;
}

int registry_name_check(const char *name, char *err, size_t err_len)
{
	if (!name) {
		set_err(err, err_len, "name is missing");
		return -EINVAL;
	}
	int rc = text_check("name", name, err, err_len);
	if (rc)
		return rc;
	size_t len = strlen(name);
	if (name[0] == '/' || name[len - 1] == '/' || strstr(name, "//")) {
		set_err(err, err_len, "name '%s' has an empty '/' segment", name);
		return -EINVAL;
	}
	for (const char *seg = name; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
		size_t n = strcspn(seg, "/");
		bool last = seg[n] == '\0';
		if ((n == 3 && (strncmp(seg, "set", 3) == 0 || strncmp(seg, "get", 3) == 0)) ||
		    (last && strcmp(seg, "availability") == 0)) {
			set_err(err, err_len, "name '%s' has a segment '%.*s', which is reserved for topics",
				name, (int)n, seg);
			return -EINVAL;
		}
	}
	if (strcmp(name, "bridge") == 0 || strncmp(name, "bridge/", 7) == 0) {
		set_err(err, err_len, "name '%s' starts with 'bridge', which is reserved", name);
		return -EINVAL;
	}
	return 0;
}

int registry_id_check(const char *id, char *err, size_t err_len)
{
	if (!id) {
		set_err(err, err_len, "id is missing");
		return -EINVAL;
	}
	int rc = text_check("id", id, err, err_len);
	if (rc)
		return rc;
	const char *colon = strchr(id, ':');
	if (!colon || colon == id || colon[1] == '\0') {
		set_err(err, err_len, "id '%s' is not of the form <plugin>:<address>", id);
		return -EINVAL;
	}
	return 0;
}

int registry_add(struct registry *reg, const char *id, const char *name, const char *plugin,
		 struct device **out, char *err, size_t err_len)
{
	if (!name)
		name = id;
	int rc = registry_id_check(id, err, err_len);
	if (rc)
		return rc;
	if ((rc = registry_name_check(name, err, err_len)))
		return rc;
	if (registry_by_id(reg, id)) {
		set_err(err, err_len, "a device with id '%s' exists already", id);
		return -EEXIST;
	}
	if (registry_by_name(reg, name)) {
		set_err(err, err_len, "the name '%s' is taken by another device", name);
		return -EEXIST;
	}
	if (reg->count >= REGISTRY_DEVICES_MAX) {
		set_err(err, err_len, "the registry holds %d devices, its limit", REGISTRY_DEVICES_MAX);
		return -ENOSPC;
	}
	if (reg->count >= reg->n_buckets && grow(reg))
		return -ENOMEM;
	struct device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->id = strdup(id);
	dev->name = strdup(name);
	dev->plugin = strdup(plugin ? plugin : "");
	dev->state = cJSON_CreateObject();
	dev->state_ms = cJSON_CreateObject();
	if (!dev->id || !dev->name || !dev->plugin || !dev->state || !dev->state_ms) {
		device_free(dev);
		set_err(err, err_len, "out of memory");
		return -ENOMEM;
	}
	link_id(reg, dev);
	link_name(reg, dev);
	dev->prev = reg->tail;
	if (reg->tail)
		reg->tail->next = dev;
	else
		reg->head = dev;
	reg->tail = dev;
	reg->count++;
	*out = dev;
	return 0;
}

int registry_rename(struct registry *reg, struct device *dev, const char *name, char *err,
		    size_t err_len)
{
	int rc = registry_name_check(name, err, err_len);
	if (rc)
		return rc;
	if (strcmp(dev->name, name) == 0)
		return 0;
	if (registry_by_name(reg, name)) {
		set_err(err, err_len, "the name '%s' is taken by another device", name);
		return -EEXIST;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	unlink_name(reg, dev);
	free(dev->name);
	dev->name = copy;
	link_name(reg, dev);
	return 0;
}

void registry_remove(struct registry *reg, struct device *dev)
{
	struct device **p = &reg->by_id[hash(dev->id) % reg->n_buckets];
	while (*p && *p != dev)
		p = &(*p)->next_id;
	if (*p)
		*p = dev->next_id;
	unlink_name(reg, dev);
	if (dev->prev)
		dev->prev->next = dev->next;
	else
		reg->head = dev->next;
	if (dev->next)
		dev->next->prev = dev->prev;
	else
		reg->tail = dev->prev;
	reg->count--;
	device_free(dev);
}

int registry_set_text(char **field, const char *text)
{
	char *copy = NULL;
	if (text && *text && !(copy = strdup(text)))
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

void registry_set_caps(struct device *dev, struct cap *caps, size_t n_caps)
{
	cap_array_free(dev->caps, dev->n_caps);
	dev->caps = caps;
	dev->n_caps = n_caps;
}

/* Put value in place of old, under old's key. Allocates nothing, so it
 * cannot fail: cJSON_ReplaceItemInObject copies the key, and when that copy
 * fails (cJSON 1.7.15) it puts the value in with no key at all, which
 * hides every later member from lookups. */
static void replace_item(cJSON *object, cJSON *old, cJSON *value)
{
	if (!(value->type & cJSON_StringIsConst))
		cJSON_free(value->string);
	value->string = old->string;
	value->type = (value->type & ~cJSON_StringIsConst) | (old->type & cJSON_StringIsConst);
	old->string = NULL;
	cJSON_ReplaceItemViaPointer(object, old, value);
}

/* Put value under name in state; returns 1 if it changed, 0 if equal,
 * -ENOMEM (state unchanged). Takes ownership of value. */
static int put_value(cJSON *state, const char *name, cJSON *value, const char **changed_name)
{
	cJSON *old = cJSON_GetObjectItemCaseSensitive(state, name);
	if (old && cap_json_equal(old, value)) {
		cJSON_Delete(value);
		return 0;
	}
	if (old) {
		replace_item(state, old, value);
	} else if (!cJSON_AddItemToObject(state, name, value)) {
		cJSON_Delete(value); /* copying the key failed */
		return -ENOMEM;
	}
	if (changed_name)
		*changed_name = value->string;
	return 1;
}

/* Number of names not yet in state, or -EINVAL for a missing, empty,
 * over-long or repeated name (a repeat would replace, and so free, a name
 * already reported as changed). */
static int new_names(const cJSON *state, const char *const *names, size_t n)
{
	int fresh = 0;
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || !names[i][0] || strnlen(names[i], 65) > 64)
			return -EINVAL;
		for (size_t k = 0; k < i; k++)
			if (strcmp(names[k], names[i]) == 0)
				return -EINVAL;
		if (!cJSON_GetObjectItemCaseSensitive(state, names[i]))
			fresh++;
	}
	return fresh;
}

int registry_merge(struct device *dev, const struct hearth_attr *attrs, size_t n_attrs,
		   const char **changed)
{
	if (n_attrs > REGISTRY_ATTRS_MAX)
		return -EINVAL;
	const char *names[REGISTRY_ATTRS_MAX];
	for (size_t i = 0; i < n_attrs; i++)
		names[i] = attrs[i].name;
	int fresh = new_names(dev->state, names, n_attrs);
	if (fresh < 0 || cJSON_GetArraySize(dev->state) + fresh > REGISTRY_ATTRS_MAX)
		return -EINVAL;
	/* Convert everything first so a bad value merges nothing. */
	cJSON *values[REGISTRY_ATTRS_MAX];
	size_t i;
	int rc = 0;
	for (i = 0; i < n_attrs; i++)
		if ((rc = cap_value_to_json(&attrs[i].value, &values[i])))
			break;
	if (rc) {
		while (i--)
			cJSON_Delete(values[i]);
		return rc;
	}
	int n_changed = 0;
	for (i = 0; i < n_attrs; i++) {
		if (rc) {
			cJSON_Delete(values[i]);
			continue;
		}
		int put = put_value(dev->state, names[i], values[i],
				    changed ? &changed[n_changed] : NULL);
		if (put < 0)
			rc = put;
		else
			n_changed += put;
	}
	return rc ? rc : n_changed;
}

int registry_merge_json(struct device *dev, const cJSON *object, const char **changed,
			size_t changed_cap)
{
	if (!cJSON_IsObject(object) || cJSON_GetArraySize(object) > REGISTRY_ATTRS_MAX)
		return -EINVAL;
	const char *names[REGISTRY_ATTRS_MAX];
	size_t n = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, object)
		names[n++] = item->string;
	int fresh = new_names(dev->state, names, n);
	if (fresh < 0 || cJSON_GetArraySize(dev->state) + fresh > REGISTRY_ATTRS_MAX)
		return -EINVAL;
	int n_changed = 0;
	cJSON_ArrayForEach(item, object)
	{
		cJSON *copy = cJSON_Duplicate(item, 1);
		if (!copy)
			return -ENOMEM;
		const char *name = NULL;
		int put = put_value(dev->state, item->string, copy, &name);
		if (put < 0)
			return put;
		if (put) {
			if (changed && (size_t)n_changed < changed_cap)
				changed[n_changed] = name;
			n_changed++;
		}
	}
	return n_changed;
}

int registry_stamp(struct device *dev, const char *const *names, size_t n, int64_t ms)
{
	for (size_t i = 0; i < n; i++) {
		cJSON *old = cJSON_GetObjectItemCaseSensitive(dev->state_ms, names[i]);
		if (old) {
			cJSON_SetNumberValue(old, (double)ms);
			continue;
		}
		cJSON *v = cJSON_CreateNumber((double)ms);
		if (!v || !cJSON_AddItemToObject(dev->state_ms, names[i], v)) {
			cJSON_Delete(v);
			return -ENOMEM;
		}
	}
	return 0;
}

static void add_text(cJSON *o, const char *key, const char *value)
{
	if (value)
		cJSON_AddStringToObject(o, key, value);
	else
		cJSON_AddNullToObject(o, key);
}

cJSON *registry_device_to_json(const struct device *dev)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", dev->id);
	cJSON_AddStringToObject(o, "name", dev->name);
	cJSON_AddStringToObject(o, "plugin", dev->plugin);
	add_text(o, "vendor", dev->vendor);
	add_text(o, "model", dev->model);
	add_text(o, "description", dev->description);
	add_text(o, "room", dev->room);
	cJSON_AddBoolToObject(o, "available", dev->available);
	cJSON_AddNumberToObject(o, "last_seen", (double)dev->last_seen_ms);
	cJSON *caps = cap_array_to_json(dev->caps, dev->n_caps);
	if (!caps) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddItemToObject(o, "capabilities", caps);
	return o;
}
