/*
 * zigbee: every device zigbee2mqtt knows becomes a hearth device, through
 * the broker the hub already uses.
 *
 * [plugin.zigbee]
 *   base_topic             = zigbee2mqtt
 *   include                = (empty: every device; else friendly-name globs)
 *   exclude                = (friendly-name globs)
 *   availability_timeout_s = 0   (0: trust zigbee2mqtt's availability alone)
 *
 * Devices are zigbee:<ieee_address>, groups zigbee:group:<id>, and the
 * bridge itself zigbee:bridge. One subscription, <base>/#, carries
 * everything; a message is routed by the longest friendly name that starts
 * its topic, because friendly names may contain "/".
 *
 * This file talks to the host; exposes.c maps capabilities and z2m.c parses
 * payloads.
 */
#include "zigbee.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZIGBEE_VERSION "0.1.0"
#define BASE_DEFAULT "zigbee2mqtt"
#define ID_PREFIX "zigbee:"
#define BRIDGE_ID "zigbee:bridge"
#define GROUP_PREFIX "zigbee:group:"
#define ID_MAX 64
#define TOPIC_MAX 1024
#define PATTERNS_TEXT_MAX 1024
#define WARNED_MODELS_MAX 256
#define EXPOSE_LOG_MAX 1000
#define TIMEOUT_MAX_S 86400
#define PERMIT_JOIN_ALL_S 254
#define COMMAND_ATTRS_MAX 256

enum ent_kind { ENT_DEVICE, ENT_GROUP };

struct ent {
	enum ent_kind kind;
	char id[ID_MAX];
	char ieee[ZB_IEEE_LEN + 1]; /* devices */
	int group_id;		    /* groups */
	char *friendly;
	struct zcaps caps;
	uint64_t fingerprint;
	int z2m_online; /* its own /availability: -1 not heard, 0, 1 */
	bool timed_out; /* silent for availability_timeout_s */
	bool added;	/* the host has it */
	bool seen;	/* in the latest bridge/devices or bridge/groups */
	int64_t last_msg_ms;
};

struct zb {
	const struct hearth_host *host;
	hearth_plugin_ctx *ctx;
	char base[129];
	size_t base_len;
	char inc_buf[PATTERNS_TEXT_MAX], exc_buf[PATTERNS_TEXT_MAX];
	const char *inc[ZB_PATTERNS_MAX], *exc[ZB_PATTERNS_MAX];
	size_t n_inc, n_exc;
	unsigned availability_timeout_s;
	hearth_timer *avail_timer;

	int bridge_online; /* -1 not heard, 0, 1 */
	bool bridge_added;
	bool permit_join;
	char version[64];

	struct ent **ents;
	size_t n_ents, cap_ents;
	struct ent **index; /* open addressing by friendly name */
	size_t index_cap;

	char **restored; /* ids of an earlier run, until bridge/devices decides */
	size_t n_restored;
	char *groups_payload; /* the latest bridge/groups, to redo after devices change */
	size_t groups_len;
	char *warned[WARNED_MODELS_MAX];
	size_t n_warned;
};

/* ---- small helpers ----------------------------------------------------------- */

#define LOG(z, level, ...) (z)->host->log((z)->ctx, (level), __VA_ARGS__)

static int publish(struct zb *z, const char *suffix, const char *payload)
{
	char topic[TOPIC_MAX];
	if ((size_t)snprintf(topic, sizeof(topic), "%s/%s", z->base, suffix) >= sizeof(topic))
		return -ENAMETOOLONG;
	return z->host->mqtt_publish(z->ctx, topic, payload, strlen(payload), 1, false);
}

static bool included(const struct zb *z, const char *friendly)
{
	if (z->n_inc && !z2m_patterns_match(z->inc, z->n_inc, friendly))
		return false;
	return !z2m_patterns_match(z->exc, z->n_exc, friendly);
}

static bool effective_online(const struct zb *z, const struct ent *e)
{
	return z->bridge_online != 0 && e->z2m_online != 0 && !e->timed_out;
}

static void apply_availability(struct zb *z, const struct ent *e)
{
	if (e->added)
		z->host->availability_set(z->ctx, e->id, effective_online(z, e));
}

/* ---- the table and its name index --------------------------------------------- */

static uint64_t name_hash(const char *s, size_t len)
{
	return z2m_hash(Z2M_FNV_INIT, s, len);
}

static void index_rebuild(struct zb *z)
{
	size_t want = 16;
	while (want < z->n_ents * 2)
		want *= 2;
	if (want != z->index_cap) {
		struct ent **idx = calloc(want, sizeof(*idx));
		if (!idx) {
			/* an empty index rather than a wrong one: lookups fail */
			if (z->index)
				memset(z->index, 0, z->index_cap * sizeof(*z->index));
			return;
		}
		free(z->index);
		z->index = idx;
		z->index_cap = want;
	} else {
		memset(z->index, 0, want * sizeof(*z->index));
	}
	for (size_t i = 0; i < z->n_ents; i++) {
		struct ent *e = z->ents[i];
		size_t len = strlen(e->friendly);
		size_t at = (size_t)name_hash(e->friendly, len) & (z->index_cap - 1);
		while (z->index[at])
			at = (at + 1) & (z->index_cap - 1);
		z->index[at] = e;
	}
}

/* The entity named by the len bytes at name (not NUL-terminated). A name
 * held twice (a group named as a device) routes to the first. */
static struct ent *by_friendly(const struct zb *z, const char *name, size_t len)
{
	if (!z->index_cap)
		return NULL;
	size_t at = (size_t)name_hash(name, len) & (z->index_cap - 1);
	for (size_t probes = 0; z->index[at] && probes < z->index_cap; probes++) {
		const struct ent *e = z->index[at];
		if (strncmp(e->friendly, name, len) == 0 && e->friendly[len] == '\0')
			return z->index[at];
		at = (at + 1) & (z->index_cap - 1);
	}
	return NULL;
}

static struct ent *by_id(const struct zb *z, const char *id)
{
	for (size_t i = 0; i < z->n_ents; i++)
		if (strcmp(z->ents[i]->id, id) == 0)
			return z->ents[i];
	return NULL;
}

/* A device by IEEE address or friendly name, as zigbee2mqtt answers name one. */
static struct ent *by_ieee_or_name(const struct zb *z, const char *key)
{
	for (size_t i = 0; key && i < z->n_ents; i++) {
		struct ent *e = z->ents[i];
		if (e->kind == ENT_DEVICE &&
		    (strcasecmp(e->ieee, key) == 0 || strcmp(e->friendly, key) == 0))
			return e;
	}
	return NULL;
}

static void ent_free(struct ent *e)
{
	if (!e)
		return;
	zx_free(&e->caps);
	free(e->friendly);
	free(e);
}

static struct ent *ent_new(struct zb *z, enum ent_kind kind, const char *friendly)
{
	if (z->n_ents == z->cap_ents) {
		size_t cap = z->cap_ents ? z->cap_ents * 2 : 32;
		struct ent **ents = realloc(z->ents, cap * sizeof(*ents));
		if (!ents)
			return NULL;
		z->ents = ents;
		z->cap_ents = cap;
	}
	struct ent *e = calloc(1, sizeof(*e));
	if (!e || !(e->friendly = strdup(friendly))) {
		free(e);
		return NULL;
	}
	e->kind = kind;
	e->z2m_online = -1;
	e->last_msg_ms = z->host->now_ms(z->ctx);
	z->ents[z->n_ents++] = e;
	return e;
}

/* Drop entity i from hearth and from the table; the hub keeps its history. */
static void ent_remove(struct zb *z, size_t i, const char *why)
{
	struct ent *e = z->ents[i];
	if (e->added) {
		LOG(z, HEARTH_LOG_INFO, "%s ('%s') removed: %s", e->id, e->friendly, why);
		z->host->device_remove(z->ctx, e->id);
	}
	ent_free(e);
	z->ents[i] = z->ents[--z->n_ents];
}

static int ent_rename(struct zb *z, struct ent *e, const char *friendly)
{
	if (strcmp(e->friendly, friendly) == 0)
		return 0;
	char *copy = strdup(friendly);
	if (!copy)
		return -ENOMEM;
	/* hearth keeps the name the user sees; only the topic changes */
	LOG(z, HEARTH_LOG_INFO, "%s renamed in zigbee2mqtt from '%s' to '%s'; its hearth name stays",
	    e->id, e->friendly, friendly);
	free(e->friendly);
	e->friendly = copy;
	return 0;
}

/* ---- the bridge device ------------------------------------------------------------ */

static const struct hearth_capability bridge_caps[] = {
	{.name = "permit_join", .type = HEARTH_CAP_BINARY,
	 .access = HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET,
	 .description = "New devices may join (true opens for 254 s, false closes)",
	 .value_on = {.type = HEARTH_VALUE_BOOL, .u.boolean = true},
	 .value_off = {.type = HEARTH_VALUE_BOOL, .u.boolean = false}},
	{.name = "version", .type = HEARTH_CAP_TEXT, .access = HEARTH_ACCESS_PUBLISHED,
	 .description = "zigbee2mqtt version"},
};

static int bridge_add(struct zb *z)
{
	char name[160];
	snprintf(name, sizeof(name), "%s/bridge", z->base);
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = BRIDGE_ID,
		.name = name,
		.vendor = "zigbee2mqtt",
		.model = "bridge",
		.description = "The zigbee2mqtt bridge hearth talks to",
		.caps = bridge_caps,
		.n_caps = sizeof(bridge_caps) / sizeof(bridge_caps[0]),
	};
	int rc = z->host->device_add(z->ctx, &info);
	z->bridge_added = rc == 0;
	if (rc)
		LOG(z, HEARTH_LOG_ERROR, "cannot add the bridge device: %s", strerror(-rc));
	else
		z->host->availability_set(z->ctx, BRIDGE_ID, z->bridge_online == 1);
	return rc;
}

static void bridge_report(struct zb *z)
{
	if (!z->bridge_added || z->bridge_online != 1)
		return;
	struct hearth_attr attrs[2] = {{"permit_join", HEARTH_BOOL(z->permit_join)}};
	size_t n = 1;
	if (z->version[0])
		attrs[n++] = (struct hearth_attr){"version", HEARTH_STRING(z->version)};
	z->host->state_report(z->ctx, BRIDGE_ID, attrs, n);
}

static int send_permit_join(struct zb *z, unsigned seconds)
{
	char payload[32];
	snprintf(payload, sizeof(payload), "{\"time\":%u}", seconds);
	if (z->bridge_online == 0)
		LOG(z, HEARTH_LOG_WARNING, "permit_join %u s sent, but zigbee2mqtt is offline",
		    seconds);
	return publish(z, "bridge/request/permit_join", payload);
}

/* ---- mapping a device -------------------------------------------------------------- */

struct warn_ctx {
	struct zb *z;
	const char *model;
	const char *id;
};

static bool model_warned(const struct zb *z, const char *model)
{
	for (size_t i = 0; i < z->n_warned; i++)
		if (strcmp(z->warned[i], model) == 0)
			return true;
	return false;
}

static void on_unmapped(void *user, const char *why, const cJSON *expose)
{
	struct warn_ctx *w = user;
	char *json = cJSON_PrintUnformatted(expose);
	LOG(w->z, HEARTH_LOG_WARNING, "model %s (%s): an expose cannot be mapped (%s): %.*s%s",
	    w->model, w->id, why, EXPOSE_LOG_MAX, json ? json : "?",
	    json && strlen(json) > EXPOSE_LOG_MAX ? "..." : "");
	cJSON_free(json);
}

/* Map the exposes once more; unmappable ones are logged once per model. */
static int map_device(struct zb *z, struct ent *e, const struct zentry *ze)
{
	const char *model = ze->model ? ze->model : "(no model)";
	bool quiet = model_warned(z, model);
	struct warn_ctx w = {z, model, e->id};
	struct zcaps caps = {0};
	int rc = zx_map(ze->exposes, &caps, quiet ? NULL : on_unmapped, &w);
	if (rc == 0 && ze->supports_ota)
		rc = zx_add_ota(&caps);
	if (rc) {
		zx_free(&caps);
		return rc;
	}
	if (caps.n_unmapped && !quiet && z->n_warned < WARNED_MODELS_MAX)
		z->warned[z->n_warned++] = strdup(model); /* NULL only repeats a warning */
	zx_free(&e->caps);
	e->caps = caps;
	return 0;
}

static char *bounded(const char *s, size_t max, char *buf)
{
	if (!s)
		return NULL;
	snprintf(buf, max + 1, "%s", s);
	return buf;
}

static void add_to_host(struct zb *z, struct ent *e, const char *vendor, const char *model,
			const char *description)
{
	char v[ZB_TEXT_MAX + 1], m[ZB_TEXT_MAX + 1], d[ZB_DESC_MAX + 1];
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = e->id,
		.name = e->friendly,
		.vendor = bounded(vendor, ZB_TEXT_MAX, v),
		.model = bounded(model, ZB_TEXT_MAX, m),
		.description = bounded(description, ZB_DESC_MAX, d),
		.caps = e->caps.caps,
		.n_caps = e->caps.n,
	};
	int rc = z->host->device_add(z->ctx, &info);
	e->added = rc == 0;
	if (rc)
		LOG(z, HEARTH_LOG_ERROR, "cannot add %s ('%s'): %s", e->id, e->friendly,
		    strerror(-rc));
	else if (!effective_online(z, e))
		apply_availability(z, e); /* device_add marks it available */
}

static void device_seen(struct zb *z, const struct zentry *ze, size_t *fresh)
{
	char id[ID_MAX];
	snprintf(id, sizeof(id), ID_PREFIX "%s", ze->ieee);
	for (char *p = id + strlen(ID_PREFIX); *p; p++)
		*p = (char)tolower((unsigned char)*p);
	struct ent *e = by_id(z, id);
	if (!e) {
		if (!(e = ent_new(z, ENT_DEVICE, ze->friendly)))
			return;
		snprintf(e->id, sizeof(e->id), "%s", id);
		snprintf(e->ieee, sizeof(e->ieee), "%s", ze->ieee);
		(*fresh)++;
	} else if (ent_rename(z, e, ze->friendly)) {
		return;
	}
	e->seen = true;
	if (e->fingerprint == ze->fingerprint && e->added)
		return;
	e->fingerprint = ze->fingerprint;
	if (map_device(z, e, ze)) {
		LOG(z, HEARTH_LOG_ERROR, "%s: out of memory mapping its exposes", e->id);
		return;
	}
	add_to_host(z, e, ze->vendor, ze->model, ze->description);
}

/* A device of an earlier run that zigbee2mqtt no longer has: the ABI lets a
 * plugin remove only what it added in this run, so it is taken over first. */
static void forget_stale(struct zb *z, bool groups)
{
	for (size_t i = 0; i < z->n_restored; i++) {
		char *id = z->restored[i];
		if (!id || (strncmp(id, GROUP_PREFIX, strlen(GROUP_PREFIX)) == 0) != groups)
			continue;
		if (!by_id(z, id)) {
			struct hearth_device_info info = {.struct_size = sizeof(info), .id = id};
			if (z->host->device_add(z->ctx, &info) == 0 &&
			    z->host->device_remove(z->ctx, id) == 0)
				LOG(z, HEARTH_LOG_INFO,
				    "%s removed: zigbee2mqtt no longer has it (gone while hearth "
				    "was stopped, or excluded)",
				    id);
		}
		free(id);
		z->restored[i] = NULL;
	}
}

static void groups_refresh(struct zb *z);

static void on_devices(struct zb *z, const char *payload, size_t len)
{
	cJSON *root = NULL;
	struct zentry *list = NULL;
	size_t n = 0, fresh = 0, excluded = 0, removed = 0;
	struct zskip skip;
	int rc = z2m_parse_devices(payload, len, &root, &list, &n, &skip);
	if (rc) {
		LOG(z, HEARTH_LOG_WARNING, "bridge/devices ignored: %s",
		    rc == -EINVAL ? "not a JSON array of devices, too large or too deep"
				  : "out of memory");
		return;
	}
	for (size_t i = 0; i < z->n_ents; i++)
		if (z->ents[i]->kind == ENT_DEVICE)
			z->ents[i]->seen = false;
	for (size_t i = 0; i < n; i++) {
		if (included(z, list[i].friendly))
			device_seen(z, &list[i], &fresh);
		else
			excluded++;
	}
	for (size_t i = z->n_ents; i-- > 0;) {
		if (z->ents[i]->kind == ENT_DEVICE && !z->ents[i]->seen) {
			ent_remove(z, i, "zigbee2mqtt no longer lists it");
			removed++;
		}
	}
	forget_stale(z, false);
	index_rebuild(z);
	LOG(z, fresh || removed ? HEARTH_LOG_INFO : HEARTH_LOG_DEBUG,
	    "bridge/devices: %zu devices (%zu new, %zu removed, %zu excluded); not added: %zu "
	    "coordinator, %zu not interviewed, %zu unsupported, %zu disabled, %zu malformed",
	    n - excluded, fresh, removed, excluded, skip.coordinator, skip.not_interviewed,
	    skip.unsupported, skip.disabled, skip.malformed);
	free(list);
	cJSON_Delete(root);
	groups_refresh(z);
}

/* ---- groups -------------------------------------------------------------------------- */

/* A group offers what its members' lights, switches, covers... offer. */
static int group_caps(struct zb *z, const struct zgroup_entry *g, struct zcaps *out,
		      uint64_t *fp)
{
	*fp = g->fingerprint;
	for (size_t i = 0; i < g->n_members; i++) {
		const struct ent *m = by_ieee_or_name(z, g->members[i]);
		if (!m)
			continue;
		*fp = z2m_hash(*fp, &m->fingerprint, sizeof(m->fingerprint));
		int rc = zx_merge_specific(out, &m->caps);
		if (rc)
			return rc;
	}
	return 0;
}

static void group_seen(struct zb *z, const struct zgroup_entry *g)
{
	char id[ID_MAX];
	snprintf(id, sizeof(id), GROUP_PREFIX "%d", g->id);
	struct ent *e = by_id(z, id);
	if (!e) {
		if (!(e = ent_new(z, ENT_GROUP, g->friendly)))
			return;
		snprintf(e->id, sizeof(e->id), "%s", id);
		e->group_id = g->id;
	} else if (ent_rename(z, e, g->friendly)) {
		return;
	}
	e->seen = true;
	struct zcaps caps = {0};
	uint64_t fp;
	if (group_caps(z, g, &caps, &fp)) {
		zx_free(&caps);
		return;
	}
	if (fp == e->fingerprint && e->added) {
		zx_free(&caps);
		return;
	}
	zx_free(&e->caps);
	e->caps = caps;
	e->fingerprint = fp;
	char desc[64];
	snprintf(desc, sizeof(desc), "zigbee2mqtt group %d (%zu members)", g->id, g->n_members);
	add_to_host(z, e, "zigbee2mqtt", "group", desc);
}

static void groups_apply(struct zb *z, const char *payload, size_t len)
{
	cJSON *root = NULL;
	struct zgroup_entry *list = NULL;
	size_t n = 0;
	if (z2m_parse_groups(payload, len, &root, &list, &n)) {
		LOG(z, HEARTH_LOG_WARNING, "bridge/groups ignored: not a JSON array of groups");
		return;
	}
	for (size_t i = 0; i < z->n_ents; i++)
		if (z->ents[i]->kind == ENT_GROUP)
			z->ents[i]->seen = false;
	for (size_t i = 0; i < n; i++)
		if (included(z, list[i].friendly))
			group_seen(z, &list[i]);
	for (size_t i = z->n_ents; i-- > 0;)
		if (z->ents[i]->kind == ENT_GROUP && !z->ents[i]->seen)
			ent_remove(z, i, "zigbee2mqtt no longer lists the group");
	forget_stale(z, true);
	index_rebuild(z);
	free(list);
	cJSON_Delete(root);
}

static void on_groups(struct zb *z, const char *payload, size_t len)
{
	char *copy = len <= ZB_DEVICES_PAYLOAD_MAX ? malloc(len + 1) : NULL;
	if (copy) {
		memcpy(copy, payload, len);
		copy[len] = '\0';
		free(z->groups_payload);
		z->groups_payload = copy;
		z->groups_len = len;
	}
	groups_apply(z, payload, len);
}

/* Members' capabilities may have changed: the groups follow. */
static void groups_refresh(struct zb *z)
{
	if (z->groups_payload)
		groups_apply(z, z->groups_payload, z->groups_len);
}

/* ---- bridge topics ------------------------------------------------------------------- */

static void on_bridge_state(struct zb *z, const char *payload, size_t len)
{
	int online = z2m_parse_online(payload, len);
	if (online < 0) {
		LOG(z, HEARTH_LOG_WARNING, "bridge/state ignored: not online or offline");
		return;
	}
	if (online == z->bridge_online)
		return;
	z->bridge_online = online;
	LOG(z, HEARTH_LOG_INFO, "zigbee2mqtt is %s", online ? "online" : "offline");
	if (z->bridge_added)
		z->host->availability_set(z->ctx, BRIDGE_ID, online);
	for (size_t i = 0; i < z->n_ents; i++)
		apply_availability(z, z->ents[i]);
	bridge_report(z);
}

static void on_info(struct zb *z, const char *payload, size_t len)
{
	cJSON *doc = z2m_json_parse(payload, len, ZB_PAYLOAD_MAX);
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(doc, "version");
	const cJSON *permit = cJSON_GetObjectItemCaseSensitive(doc, "permit_join");
	if (cJSON_IsString(version))
		snprintf(z->version, sizeof(z->version), "%s", version->valuestring);
	if (cJSON_IsBool(permit))
		z->permit_join = cJSON_IsTrue(permit);
	cJSON_Delete(doc);
	bridge_report(z);
}

/* {"status":"ok","data":{...}} or {"status":"error","error":"..."}: the
 * attributes of the event that relays it. */
static size_t response_attrs(const cJSON *doc, struct hearth_attr *attrs, size_t max,
			     const char *const *keys, size_t n_keys)
{
	const char *status = NULL, *error = NULL;
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(doc, "status");
	status = cJSON_IsString(j) ? j->valuestring : "unknown";
	j = cJSON_GetObjectItemCaseSensitive(doc, "error");
	error = cJSON_IsString(j) ? j->valuestring : NULL;
	size_t n = 0;
	attrs[n++] = (struct hearth_attr){"status", HEARTH_STRING(status)};
	if (error)
		attrs[n++] = (struct hearth_attr){"error", HEARTH_STRING(error)};
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(doc, "data");
	for (size_t i = 0; i < n_keys && n < max; i++) {
		j = cJSON_GetObjectItemCaseSensitive(data, keys[i]);
		if (cJSON_IsBool(j))
			attrs[n++] = (struct hearth_attr){keys[i], HEARTH_BOOL(cJSON_IsTrue(j))};
		else if (cJSON_IsNumber(j))
			attrs[n++] = (struct hearth_attr){keys[i], HEARTH_NUMBER(j->valuedouble)};
		else if (cJSON_IsString(j))
			attrs[n++] = (struct hearth_attr){keys[i], HEARTH_STRING(j->valuestring)};
	}
	return n;
}

static void on_permit_response(struct zb *z, const char *payload, size_t len)
{
	static const char *const keys[] = {"time"};
	cJSON *doc = z2m_json_parse(payload, len, ZB_PAYLOAD_MAX);
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return;
	}
	struct hearth_attr attrs[4];
	size_t n = response_attrs(doc, attrs, 4, keys, 1);
	bool ok = strcmp(attrs[0].value.u.string, "ok") == 0;
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
	LOG(z, ok ? HEARTH_LOG_INFO : HEARTH_LOG_WARNING, "zigbee2mqtt answered permit_join: %s%s%s",
	    attrs[0].value.u.string, cJSON_IsString(error) ? ": " : "",
	    cJSON_IsString(error) ? error->valuestring : "");
	if (z->bridge_added)
		z->host->event_report(z->ctx, BRIDGE_ID, "permit_join", attrs, n);
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "data"), "time");
	if (ok && cJSON_IsNumber(time)) {
		z->permit_join = time->valuedouble > 0;
		bridge_report(z);
	}
	cJSON_Delete(doc);
}

static void on_ota_response(struct zb *z, const char *what, const char *payload, size_t len)
{
	static const char *const keys[] = {"update_available", "from", "to"};
	cJSON *doc = z2m_json_parse(payload, len, ZB_PAYLOAD_MAX);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "data"), "id");
	struct ent *e = cJSON_IsString(id) ? by_ieee_or_name(z, id->valuestring) : NULL;
	if (e && e->added) {
		struct hearth_attr attrs[6];
		size_t n = response_attrs(doc, attrs, 6, keys, 3);
		char type[32];
		snprintf(type, sizeof(type), "ota_%s", what);
		LOG(z, HEARTH_LOG_INFO, "%s: firmware %s: %s", e->id, what, attrs[0].value.u.string);
		z->host->event_report(z->ctx, e->id, type, attrs, n);
	}
	cJSON_Delete(doc);
}

static void on_event(struct zb *z, const char *payload, size_t len)
{
	cJSON *doc = z2m_json_parse(payload, len, ZB_PAYLOAD_MAX);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(doc, "type");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(doc, "data");
	const cJSON *ieee = cJSON_GetObjectItemCaseSensitive(data, "ieee_address");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(data, "status");
	const char *who = cJSON_IsString(ieee) ? ieee->valuestring : "?";
	if (!cJSON_IsString(type))
		goto out;
	if (strcmp(type->valuestring, "device_leave") == 0) {
		struct ent *e = by_ieee_or_name(z, who);
		for (size_t i = 0; e && i < z->n_ents; i++) {
			if (z->ents[i] == e) {
				ent_remove(z, i, "it left the Zigbee network");
				break;
			}
		}
		index_rebuild(z);
	} else if (strcmp(type->valuestring, "device_joined") == 0) {
		LOG(z, HEARTH_LOG_INFO, "%s joined; it appears once zigbee2mqtt has interviewed it",
		    who);
	} else if (strcmp(type->valuestring, "device_interview") == 0 && cJSON_IsString(status) &&
		   strcmp(status->valuestring, "failed") == 0) {
		LOG(z, HEARTH_LOG_WARNING, "%s: zigbee2mqtt's interview failed; re-pair it", who);
	}
out:
	cJSON_Delete(doc);
}

static void bridge_message(struct zb *z, const char *what, const char *payload, size_t len)
{
	static const char ota[] = "response/device/ota_update/";
	if (strcmp(what, "state") == 0)
		on_bridge_state(z, payload, len);
	else if (strcmp(what, "devices") == 0)
		on_devices(z, payload, len);
	else if (strcmp(what, "groups") == 0)
		on_groups(z, payload, len);
	else if (strcmp(what, "event") == 0)
		on_event(z, payload, len);
	else if (strcmp(what, "info") == 0)
		on_info(z, payload, len);
	else if (strcmp(what, "response/permit_join") == 0)
		on_permit_response(z, payload, len);
	else if (strncmp(what, ota, sizeof(ota) - 1) == 0)
		on_ota_response(z, what + sizeof(ota) - 1, payload, len);
}

/* ---- device topics ------------------------------------------------------------------- */

/* The entity whose friendly name is the longest that starts rest, with
 * *suffix pointing after it. */
static struct ent *route(const struct zb *z, const char *rest, const char **suffix)
{
	size_t len = strlen(rest);
	for (;;) {
		struct ent *e = by_friendly(z, rest, len);
		if (e) {
			*suffix = rest + len;
			return e;
		}
		const char *slash = memrchr(rest, '/', len);
		if (!slash)
			return NULL;
		len = (size_t)(slash - rest);
	}
}

/* A button press is state and an event: rules can trigger on either. */
static void report_action(struct zb *z, const struct ent *e, const struct zstate *s)
{
	struct hearth_attr attrs[8];
	size_t n = 0;
	bool pressed = false;
	for (size_t i = 0; i < s->n && n < 8; i++) {
		const struct hearth_attr *a = &s->attrs[i];
		if (strcmp(a->name, "action") != 0 && strncmp(a->name, "action_", 7) != 0)
			continue;
		if (strcmp(a->name, "action") == 0)
			pressed = a->value.type == HEARTH_VALUE_STRING && a->value.u.string[0];
		attrs[n++] = *a;
	}
	if (pressed)
		z->host->event_report(z->ctx, e->id, "action", attrs, n);
}

static void on_state(struct zb *z, struct ent *e, const char *payload, size_t len)
{
	if (z->bridge_online == 0)
		return; /* zigbee2mqtt is down: only retained leftovers arrive */
	struct zstate s;
	int rc = z2m_parse_state(payload, len, &s);
	if (rc) {
		LOG(z, HEARTH_LOG_DEBUG, "%s: state message ignored: not a JSON object", e->id);
		return;
	}
	e->last_msg_ms = z->host->now_ms(z->ctx);
	e->timed_out = false;
	if (s.n && e->added) {
		rc = z->host->state_report(z->ctx, e->id, s.attrs, s.n);
		if (rc)
			LOG(z, HEARTH_LOG_WARNING, "%s: state report refused: %s", e->id,
			    strerror(-rc));
		report_action(z, e, &s);
		if (!effective_online(z, e))
			apply_availability(z, e); /* a report marks it available */
	}
	z2m_state_free(&s);
}

static void on_availability(struct zb *z, struct ent *e, const char *payload, size_t len)
{
	int online = z2m_parse_online(payload, len);
	if (online < 0)
		return;
	e->z2m_online = online;
	if (online) {
		e->timed_out = false;
		e->last_msg_ms = z->host->now_ms(z->ctx);
	}
	apply_availability(z, e);
}

static void on_message(void *user, const char *topic, const void *payload, size_t len,
		       bool retained)
{
	(void)retained;
	struct zb *z = user;
	if (strncmp(topic, z->base, z->base_len) != 0 || topic[z->base_len] != '/' ||
	    strlen(topic) >= TOPIC_MAX)
		return;
	const char *rest = topic + z->base_len + 1;
	if (strncmp(rest, "bridge/", 7) == 0) {
		bridge_message(z, rest + 7, payload, len);
		return;
	}
	const char *suffix = NULL;
	struct ent *e = route(z, rest, &suffix);
	if (!e)
		return;
	if (*suffix == '\0')
		on_state(z, e, payload, len);
	else if (strcmp(suffix, "/availability") == 0)
		on_availability(z, e, payload, len);
	/* /set and /get are commands (ours or anyone's), not state */
}

/* ---- availability timeout ------------------------------------------------------------ */

static void on_avail_tick(void *user)
{
	struct zb *z = user;
	int64_t now = z->host->now_ms(z->ctx);
	int64_t limit = (int64_t)z->availability_timeout_s * 1000;
	for (size_t i = 0; i < z->n_ents; i++) {
		struct ent *e = z->ents[i];
		if (e->kind != ENT_DEVICE || e->timed_out || now - e->last_msg_ms <= limit)
			continue;
		e->timed_out = true;
		LOG(z, HEARTH_LOG_INFO, "%s ('%s'): silent for %u s, marked unavailable", e->id,
		    e->friendly, z->availability_timeout_s);
		apply_availability(z, e);
	}
}

/* ---- configuration ------------------------------------------------------------------- */

static int parse_patterns(struct zb *z, const char *key, char *buf, const char **pats,
			  size_t *n)
{
	int rc = z2m_patterns_split(z->host->config_get(z->ctx, key), buf, PATTERNS_TEXT_MAX, pats,
				    ZB_PATTERNS_MAX);
	if (rc < 0) {
		LOG(z, HEARTH_LOG_ERROR, "%s: at most %d patterns and %d bytes", key,
		    ZB_PATTERNS_MAX, PATTERNS_TEXT_MAX - 1);
		return -EINVAL;
	}
	*n = (size_t)rc;
	return 0;
}

static int parse_config(struct zb *z)
{
	const char *base = z->host->config_get(z->ctx, "base_topic");
	if (!base)
		base = BASE_DEFAULT;
	if (!z2m_base_ok(base)) {
		LOG(z, HEARTH_LOG_ERROR,
		    "base_topic: '%s' must be 1..128 bytes, without + or # and without / at "
		    "either end",
		    base);
		return -EINVAL;
	}
	snprintf(z->base, sizeof(z->base), "%s", base);
	z->base_len = strlen(z->base);
	const char *t = z->host->config_get(z->ctx, "availability_timeout_s");
	if (t) {
		char *end;
		errno = 0;
		unsigned long s = strtoul(t, &end, 10);
		if (errno || end == t || *end || t[0] == '-' || s > TIMEOUT_MAX_S) {
			LOG(z, HEARTH_LOG_ERROR,
			    "availability_timeout_s: '%s' is not a whole number 0..%d", t,
			    TIMEOUT_MAX_S);
			return -EINVAL;
		}
		z->availability_timeout_s = (unsigned)s;
	}
	int rc = parse_patterns(z, "include", z->inc_buf, z->inc, &z->n_inc);
	return rc ? rc : parse_patterns(z, "exclude", z->exc_buf, z->exc, &z->n_exc);
}

/* ---- the plugin's callbacks ---------------------------------------------------------- */

static bool host_usable(const struct hearth_host *host)
{
	return HEARTH_HOST_HAS(host, device_add) && HEARTH_HOST_HAS(host, device_remove) &&
	       HEARTH_HOST_HAS(host, state_report) && HEARTH_HOST_HAS(host, event_report) &&
	       HEARTH_HOST_HAS(host, availability_set) && HEARTH_HOST_HAS(host, command_done) &&
	       HEARTH_HOST_HAS(host, mqtt_subscribe) && HEARTH_HOST_HAS(host, mqtt_publish) &&
	       HEARTH_HOST_HAS(host, config_get) && HEARTH_HOST_HAS(host, log) &&
	       HEARTH_HOST_HAS(host, timer_start) && HEARTH_HOST_HAS(host, timer_stop) &&
	       HEARTH_HOST_HAS(host, now_ms);
}

static void zb_free(struct zb *z)
{
	for (size_t i = 0; i < z->n_ents; i++)
		ent_free(z->ents[i]);
	free(z->ents);
	free(z->index);
	for (size_t i = 0; i < z->n_restored; i++)
		free(z->restored[i]);
	free(z->restored);
	for (size_t i = 0; i < z->n_warned; i++)
		free(z->warned[i]);
	free(z->groups_payload);
	free(z);
}

static int zigbee_init(const struct hearth_host *host, hearth_plugin_ctx *ctx, void **state)
{
	if (!host_usable(host))
		return -EPROTO;
	struct zb *z = calloc(1, sizeof(*z));
	if (!z)
		return -ENOMEM;
	z->host = host;
	z->ctx = ctx;
	z->bridge_online = -1;
	int rc = parse_config(z);
	if (rc == 0)
		rc = bridge_add(z);
	if (rc) {
		zb_free(z);
		return rc;
	}
	LOG(z, HEARTH_LOG_INFO, "bridging zigbee2mqtt at %s/#%s", z->base,
	    z->n_inc || z->n_exc ? " (with include/exclude patterns)" : "");
	*state = z;
	return 0;
}

static void zigbee_restore(void *state, const char *device_id, const struct hearth_attr *attrs,
			   size_t n_attrs)
{
	(void)attrs, (void)n_attrs;
	struct zb *z = state;
	if (!device_id || strncmp(device_id, ID_PREFIX, strlen(ID_PREFIX)) != 0 ||
	    strcmp(device_id, BRIDGE_ID) == 0 || z->n_restored >= ZB_DEVICES_MAX + ZB_GROUPS_MAX)
		return;
	char **list = realloc(z->restored, (z->n_restored + 1) * sizeof(*list));
	if (!list)
		return;
	z->restored = list;
	if ((list[z->n_restored] = strdup(device_id)))
		z->n_restored++;
}

static int zigbee_start(void *state)
{
	struct zb *z = state;
	char filter[TOPIC_MAX];
	snprintf(filter, sizeof(filter), "%s/#", z->base);
	int rc = z->host->mqtt_subscribe(z->ctx, filter, 1, on_message, z);
	if (rc) {
		LOG(z, HEARTH_LOG_ERROR, "cannot subscribe to %s: %s", filter, strerror(-rc));
		return rc;
	}
	if (z->availability_timeout_s) {
		uint64_t period = (uint64_t)z->availability_timeout_s * 250;
		period = period < 250 ? 250 : period > 60000 ? 60000 : period;
		rc = z->host->timer_start(z->ctx, period, period, on_avail_tick, z,
					  &z->avail_timer);
	}
	return rc;
}

static void zigbee_stop(void *state)
{
	struct zb *z = state;
	if (!z)
		return;
	z->host->timer_stop(z->ctx, z->avail_timer);
	zb_free(z);
}

static int bridge_command(struct zb *z, const struct hearth_command *cmd)
{
	for (size_t i = 0; i < cmd->n_attrs; i++) {
		const struct hearth_attr *a = &cmd->attrs[i];
		if (strcmp(a->name, "permit_join") != 0 || a->value.type != HEARTH_VALUE_BOOL)
			return -EINVAL;
	}
	for (size_t i = 0; i < cmd->n_attrs; i++) {
		int rc = send_permit_join(z, cmd->attrs[i].value.u.boolean ? PERMIT_JOIN_ALL_S : 0);
		if (rc)
			return rc;
	}
	z->host->command_done(z->ctx, cmd->id, 0, NULL);
	return 0;
}

static int send_ota(struct zb *z, const struct ent *e, const struct hearth_value *v)
{
	if (v->type != HEARTH_VALUE_STRING ||
	    (strcmp(v->u.string, "check") != 0 && strcmp(v->u.string, "update") != 0))
		return -EINVAL;
	char topic[64], payload[64];
	snprintf(topic, sizeof(topic), "bridge/request/device/ota_update/%s", v->u.string);
	snprintf(payload, sizeof(payload), "{\"id\":\"%s\"}", e->ieee);
	return publish(z, topic, payload);
}

/* The plugin checks what the hub cannot: the exact numbers of a numeric
 * enum, the "" of a trigger. */
static int check_command(struct zb *z, const struct ent *e, const struct hearth_command *cmd)
{
	if (cmd->n_attrs > COMMAND_ATTRS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < cmd->n_attrs; i++) {
		const struct hearth_attr *a = &cmd->attrs[i];
		int at = a->name ? zx_find(&e->caps, a->name) : -1;
		if (at < 0 || !(e->caps.caps[at].access & HEARTH_ACCESS_SET)) {
			LOG(z, HEARTH_LOG_WARNING, "%s: cannot set '%s'", e->id, a->name ? a->name : "");
			return -EINVAL;
		}
		if (!zx_value_allowed(&e->caps, (size_t)at, &a->value)) {
			LOG(z, HEARTH_LOG_WARNING, "%s: '%s' does not take that value (%s)", e->id,
			    a->name, e->caps.caps[at].description ? e->caps.caps[at].description : "");
			return -EINVAL;
		}
	}
	return 0;
}

static int zigbee_command(void *state, const struct hearth_command *cmd)
{
	struct zb *z = state;
	if (strcmp(cmd->device_id, BRIDGE_ID) == 0)
		return bridge_command(z, cmd);
	struct ent *e = by_id(z, cmd->device_id);
	if (!e || !e->added)
		return -ENOENT;
	int rc = check_command(z, e, cmd);
	if (rc)
		return rc;
	if (z->bridge_online == 0) {
		z->host->command_done(z->ctx, cmd->id, -EHOSTDOWN, "zigbee2mqtt is offline");
		return 0;
	}
	struct hearth_attr attrs[COMMAND_ATTRS_MAX];
	size_t n = 0;
	for (size_t i = 0; i < cmd->n_attrs && rc == 0; i++) {
		if (e->kind == ENT_DEVICE && strcmp(cmd->attrs[i].name, "ota") == 0)
			rc = send_ota(z, e, &cmd->attrs[i].value);
		else
			attrs[n++] = cmd->attrs[i];
	}
	char *payload = NULL;
	if (rc == 0 && n)
		rc = z2m_encode_set(attrs, n, &payload);
	if (rc == 0 && n) {
		char suffix[TOPIC_MAX];
		snprintf(suffix, sizeof(suffix), "%s/set", e->friendly);
		rc = publish(z, suffix, payload);
	}
	free(payload);
	if (rc)
		return rc;
	/* zigbee2mqtt confirms nothing per command: the device's new state is
	 * the answer, and arrives as a state message */
	z->host->command_done(z->ctx, cmd->id, 0, NULL);
	return 0;
}

static int zigbee_permit_join(void *state, unsigned seconds)
{
	struct zb *z = state;
	if (seconds > PERMIT_JOIN_ALL_S)
		seconds = PERMIT_JOIN_ALL_S;
	return send_permit_join(z, seconds);
}

static int zigbee_get(void *state, const char *device_id, const char *const *attrs,
		      size_t n_attrs)
{
	struct zb *z = state;
	struct ent *e = by_id(z, device_id);
	if (!e || !e->added)
		return strcmp(device_id, BRIDGE_ID) == 0 ? -ENOTSUP : -ENOENT;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < e->caps.n; i++) {
		const struct hearth_capability *c = &e->caps.caps[i];
		bool asked = n_attrs == 0;
		for (size_t k = 0; k < n_attrs && !asked; k++)
			asked = attrs[k] && strcmp(attrs[k], c->name) == 0;
		if (asked && (c->access & HEARTH_ACCESS_GET))
			cJSON_AddStringToObject(o, c->name, "");
	}
	int rc = -ENOTSUP; /* nothing gettable: the hub answers from what it knows */
	char *payload = o->child ? cJSON_PrintUnformatted(o) : NULL;
	if (payload) {
		char suffix[TOPIC_MAX];
		snprintf(suffix, sizeof(suffix), "%s/get", e->friendly);
		rc = publish(z, suffix, payload);
	} else if (o->child) {
		rc = -ENOMEM;
	}
	cJSON_free(payload);
	cJSON_Delete(o);
	return rc;
}

/* ---- descriptor and entry ------------------------------------------------------------- */

static const struct hearth_option zigbee_options[] = {
	{"base_topic", BASE_DEFAULT, "zigbee2mqtt's base topic (its mqtt.base_topic)"},
	{"include", "",
	 "Comma-separated friendly-name patterns (* and ? match any text, / included); when set, "
	 "only matching devices and groups are bridged"},
	{"exclude", "", "Comma-separated friendly-name patterns of devices and groups to leave out"},
	{"availability_timeout_s", "0",
	 "Mark a device unavailable after this many seconds without a message; 0 relies on "
	 "zigbee2mqtt's availability alone"},
	{NULL, NULL, NULL},
};

static const struct hearth_plugin zigbee_plugin = {
	.struct_size = sizeof(struct hearth_plugin),
	.abi_version = HEARTH_ABI_VERSION(1, 1),
	.name = "zigbee",
	.version = ZIGBEE_VERSION,
	.description = "Zigbee devices through zigbee2mqtt on the same broker",
	.options = zigbee_options,
	.init = zigbee_init,
	.restore = zigbee_restore,
	.start = zigbee_start,
	.stop = zigbee_stop,
	.command = zigbee_command,
	.permit_join = zigbee_permit_join,
	.get = zigbee_get,
	.flags = HEARTH_PLUGIN_RETRY_SAFE,
};

HEARTH_PLUGIN_EXPORT const struct hearth_plugin *hearth_plugin_entry(const uint32_t *host_versions,
								    size_t n_versions)
{
	for (size_t i = 0; host_versions && i < n_versions; i++)
		if (HEARTH_ABI_VERSION_MAJOR(host_versions[i]) == HEARTH_ABI_MAJOR)
			return &zigbee_plugin;
	return NULL;
}
