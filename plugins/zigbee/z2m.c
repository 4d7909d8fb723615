/*
 * zigbee2mqtt payloads: bridge/devices, bridge/groups, device state,
 * availability, the /set encoding, friendly-name patterns.
 *
 * Every function takes untrusted bytes: sizes, depths, counts and string
 * lengths are bounded here, so the plugin above only sees sane values.
 */
#include "zigbee.h"
#include "../../src/json_depth.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t z2m_hash(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	return s ? z2m_hash(h, s, strlen(s) + 1) : z2m_hash(h, "", 1);
}

cJSON *z2m_json_parse(const char *payload, size_t len, size_t max)
{
	if (!payload || len == 0 || len > max || !json_depth_ok(payload, len, ZB_JSON_DEPTH_MAX))
		return NULL;
	return cJSON_ParseWithLength(payload, len);
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* Text a friendly name may be: 1..255 bytes, no control character, no MQTT
 * wildcard, no empty topic level at either end. */
static bool friendly_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > ZB_NAME_MAX || s[0] == '/' || s[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '+' || s[i] == '#')
			return false;
	return true;
}

static bool ieee_ok(const char *s)
{
	if (!s || strlen(s) != ZB_IEEE_LEN || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return false;
	return strspn(s + 2, "0123456789abcdefABCDEF") == ZB_IEEE_LEN - 2;
}

/* ---- bridge/devices ----------------------------------------------------------- */

static bool interviewed(const cJSON *d)
{
	const cJSON *done = cJSON_GetObjectItemCaseSensitive(d, "interview_completed");
	if (cJSON_IsBool(done))
		return cJSON_IsTrue(done);
	const char *state = str_of(d, "interview_state"); /* 2.x spells it out */
	return state && strcmp(state, "SUCCESSFUL") == 0;
}

/* Everything the mapping depends on, so an unchanged device is not re-added
 * on every republish of bridge/devices. */
static uint64_t fingerprint(const struct zentry *e, const cJSON *definition)
{
	uint64_t h = hash_str(Z2M_FNV_INIT, e->friendly);
	char *def = cJSON_PrintUnformatted(definition);
	h = hash_str(h, def ? def : "?");
	cJSON_free(def);
	return h;
}

/* 0 and *e filled: a device worth a hearth device; 1: skipped (counted). */
static int entry_of(const cJSON *d, struct zentry *e, struct zskip *skip)
{
	const char *type = str_of(d, "type");
	const cJSON *def = cJSON_GetObjectItemCaseSensitive(d, "definition");
	const cJSON *supported = cJSON_GetObjectItemCaseSensitive(d, "supported");
	size_t *why = NULL;
	e->ieee = str_of(d, "ieee_address");
	e->friendly = str_of(d, "friendly_name");
	if (!cJSON_IsObject(d) || !ieee_ok(e->ieee) || !friendly_ok(e->friendly))
		why = &skip->malformed;
	else if (type && strcmp(type, "Coordinator") == 0)
		why = &skip->coordinator;
	else if (!interviewed(d))
		why = &skip->not_interviewed;
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "disabled")))
		why = &skip->disabled;
	else if (!cJSON_IsObject(def) || cJSON_IsFalse(supported))
		why = &skip->unsupported;
	if (why) {
		(*why)++;
		return 1;
	}
	e->vendor = str_of(def, "vendor");
	e->model = str_of(def, "model");
	e->description = str_of(def, "description");
	e->supports_ota = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(def, "supports_ota"));
	e->exposes = cJSON_GetObjectItemCaseSensitive(def, "exposes");
	e->fingerprint = fingerprint(e, def);
	return 0;
}

int z2m_parse_devices(const char *payload, size_t len, cJSON **root, struct zentry **entries,
		      size_t *n_entries, struct zskip *skip)
{
	struct zskip unused;
	if (!skip)
		skip = &unused;
	memset(skip, 0, sizeof(*skip));
	cJSON *doc = z2m_json_parse(payload, len, ZB_DEVICES_PAYLOAD_MAX);
	if (!cJSON_IsArray(doc)) {
		cJSON_Delete(doc);
		return -EINVAL;
	}
	size_t n = (size_t)cJSON_GetArraySize(doc);
	struct zentry *list = calloc(n ? n : 1, sizeof(*list));
	if (!list) {
		cJSON_Delete(doc);
		return -ENOMEM;
	}
	size_t k = 0;
	const cJSON *d;
	cJSON_ArrayForEach(d, doc)
	{
		if (k == ZB_DEVICES_MAX) {
			skip->malformed++;
			continue;
		}
		if (entry_of(d, &list[k], skip) == 0)
			k++;
	}
	*root = doc;
	*entries = list;
	*n_entries = k;
	return 0;
}

/* ---- bridge/groups ------------------------------------------------------------- */

static int group_of(const cJSON *g, struct zgroup_entry *e)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(g, "id");
	const cJSON *members = cJSON_GetObjectItemCaseSensitive(g, "members");
	e->friendly = str_of(g, "friendly_name");
	if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 65535 ||
	    id->valuedouble != floor(id->valuedouble) || !friendly_ok(e->friendly))
		return -EINVAL;
	e->id = id->valueint;
	e->n_members = 0;
	uint64_t h = hash_str(z2m_hash(Z2M_FNV_INIT, &e->id, sizeof(e->id)), e->friendly);
	const cJSON *m;
	if (!cJSON_IsArray(members))
		members = NULL;
	cJSON_ArrayForEach(m, members)
	{
		const char *ieee = str_of(m, "ieee_address");
		if (!ieee_ok(ieee) || e->n_members == ZB_GROUP_MEMBERS_MAX)
			continue;
		e->members[e->n_members++] = ieee;
		h = hash_str(h, ieee);
	}
	e->fingerprint = h;
	return 0;
}

int z2m_parse_groups(const char *payload, size_t len, cJSON **root, struct zgroup_entry **groups,
		     size_t *n_groups)
{
	cJSON *doc = z2m_json_parse(payload, len, ZB_DEVICES_PAYLOAD_MAX);
	if (!cJSON_IsArray(doc)) {
		cJSON_Delete(doc);
		return -EINVAL;
	}
	size_t n = (size_t)cJSON_GetArraySize(doc);
	if (n > ZB_GROUPS_MAX)
		n = ZB_GROUPS_MAX;
	struct zgroup_entry *list = calloc(n ? n : 1, sizeof(*list));
	if (!list) {
		cJSON_Delete(doc);
		return -ENOMEM;
	}
	size_t k = 0;
	const cJSON *g;
	cJSON_ArrayForEach(g, doc)
	{
		if (k < n && group_of(g, &list[k]) == 0)
			k++;
	}
	*root = doc;
	*groups = list;
	*n_groups = k;
	return 0;
}

/* ---- state, availability ---------------------------------------------------------- */

static bool attr_name_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= ZB_CAP_NAME_MAX)
			return false;
	return n > 0;
}

void z2m_state_free(struct zstate *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		cJSON_free(s->scratch[i]);
	cJSON_Delete(s->root);
	memset(s, 0, sizeof(*s));
}

/* One value; -EINVAL for a name already seen (JSON allows duplicate keys,
 * the hub's state does not). */
static int state_value(struct zstate *s, const cJSON *item)
{
	struct hearth_value *v = &s->attrs[s->n].value;
	s->scratch[s->n] = NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->attrs[i].name, item->string) == 0)
			return -EINVAL;
	if (cJSON_IsBool(item)) {
		*v = HEARTH_BOOL(cJSON_IsTrue(item));
	} else if (cJSON_IsNumber(item)) {
		if (!isfinite(item->valuedouble))
			return -EINVAL;
		*v = HEARTH_NUMBER(item->valuedouble);
	} else if (cJSON_IsString(item)) {
		*v = HEARTH_STRING(item->valuestring);
	} else if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
		if (!(s->scratch[s->n] = cJSON_PrintUnformatted(item)))
			return -ENOMEM;
		*v = HEARTH_JSON(s->scratch[s->n]);
	} else {
		v->type = HEARTH_VALUE_NULL;
	}
	s->attrs[s->n].name = item->string;
	s->n++;
	return 0;
}

int z2m_parse_state(const char *payload, size_t len, struct zstate *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *doc = z2m_json_parse(payload, len, ZB_PAYLOAD_MAX);
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return -EINVAL;
	}
	out->root = doc;
	const cJSON *item;
	cJSON_ArrayForEach(item, doc)
	{
		if (out->n == ZB_STATE_ATTRS_MAX || !item->string || !attr_name_ok(item->string)) {
			out->skipped++;
			continue;
		}
		int rc = state_value(out, item);
		if (rc == -ENOMEM) {
			z2m_state_free(out);
			return rc;
		}
		out->skipped += rc != 0;
	}
	return 0;
}

int z2m_parse_online(const char *payload, size_t len)
{
	static const char *const words[] = {"offline", "online"};
	if (!payload || len == 0 || len > 1024)
		return -EINVAL;
	for (int i = 0; i < 2; i++)
		if (len == strlen(words[i]) && memcmp(payload, words[i], len) == 0)
			return i;
	cJSON *doc = z2m_json_parse(payload, len, 1024);
	const char *state = str_of(doc, "state");
	int rc = -EINVAL;
	for (int i = 0; state && i < 2; i++)
		if (strcmp(state, words[i]) == 0)
			rc = i;
	cJSON_Delete(doc);
	return rc;
}

/* ---- commands ------------------------------------------------------------------------ */

static cJSON *value_json(const struct hearth_value *v)
{
	switch (v->type) {
	case HEARTH_VALUE_BOOL:
		return cJSON_CreateBool(v->u.boolean);
	case HEARTH_VALUE_NUMBER:
		return isfinite(v->u.number) ? cJSON_CreateNumber(v->u.number) : NULL;
	case HEARTH_VALUE_STRING:
		return v->u.string ? cJSON_CreateString(v->u.string) : NULL;
	case HEARTH_VALUE_JSON:
		return v->u.string ? z2m_json_parse(v->u.string, strlen(v->u.string), ZB_PAYLOAD_MAX)
				   : NULL;
	default:
		return cJSON_CreateNull();
	}
}

int z2m_encode_set(const struct hearth_attr *attrs, size_t n, char **out)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		cJSON *v = attrs[i].name ? value_json(&attrs[i].value) : NULL;
		if (!v)
			rc = -EINVAL;
		else
			cJSON_AddItemToObject(o, attrs[i].name, v);
	}
	char *text = rc ? NULL : cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (rc)
		return rc;
	if (!text)
		return -ENOMEM;
	*out = text;
	return 0;
}

/* ---- configuration --------------------------------------------------------------------- */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

int z2m_patterns_split(const char *text, char *buf, size_t buf_len, const char **pats,
		       size_t max)
{
	if (!text)
		return 0;
	if (strlen(text) >= buf_len)
		return -EINVAL;
	strcpy(buf, text);
	size_t n = 0;
	for (char *next = buf; next;) {
		char *p = next;
		next = strchr(p, ',');
		if (next)
			*next++ = '\0';
		p = trim(p);
		if (!*p)
			continue;
		if (n == max)
			return -EINVAL;
		pats[n++] = p;
	}
	return (int)n;
}

bool z2m_patterns_match(const char *const *pats, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(pats[i], name, 0) == 0)
			return true;
	return false;
}

bool z2m_base_ok(const char *base)
{
	size_t n = base ? strlen(base) : 0;
	if (n == 0 || n > 128 || base[0] == '/' || base[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)base[i] < 0x20 || base[i] == '+' || base[i] == '#')
			return false;
	return true;
}
