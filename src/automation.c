#include "automation.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <uv.h>

#include "api.h"
#include "hub.h"
#include "log.h"
#include "mqtt.h"
#include "rules.h"
#include "scenes.h"
#include "store.h"

#define RULES_STATS_PUBLISH_MS 60000
#define RULE_FILE_MAX (1024 * 1024)
#define RULE_FILES_MAX 1000

static const char *src = "rules";

struct automation {
	struct hearth_hub *hub;
	struct rules *rules;
	struct scenes *scenes;
	uv_timer_t timer;
	uv_timer_t publish_timer;
	uv_timer_t stats_timer;
	bool stats_dirty; /* firing figures changed */
	bool defs_dirty;  /* rules themselves changed */
	bool rules_dirty, scenes_dirty;
	bool stopped;
	bool running; /* start triggers fired, timers armed */
	struct unsaved_doc *unsaved; /* rules and scenes the database refused */
};

/* A rule or scene whose stored copy differs from memory: written (or
 * deleted) again when the database takes writes. */
struct unsaved_doc {
	struct unsaved_doc *next;
	enum store_doc kind;
	char id[];
};

/* -- the engine's host ------------------------------------------------------------ */

static int64_t h_now(void *user)
{
	(void)user;
	return hub_now_ms();
}

static int h_set(void *user, const char *device_id, const cJSON *state, char *err, size_t len)
{
	struct automation *a = user;
	struct device *dev = registry_by_id(a->hub->registry, device_id);
	if (!dev) {
		snprintf(err, len, "device %s is gone", device_id);
		return -ENODEV;
	}
	return hub_device_set_from(a->hub, dev, state, rules_acting(a->rules), err, len);
}

static int activate(struct automation *a, const struct scene *s, cJSON *results);

static int h_scene(void *user, const char *scene_id, char *err, size_t len)
{
	struct automation *a = user;
	const struct scene *s = scenes_get(a->scenes, scene_id);
	if (!s) {
		snprintf(err, len, "no scene has the id '%s'", scene_id);
		return -ENOENT;
	}
	int failed = activate(a, s, NULL);
	if (failed)
		snprintf(err, len, "%d device(s) of scene '%s' refused the command", failed, scene_id);
	return failed ? -EIO : 0;
}

static int h_publish(void *user, const char *topic, const char *payload, bool retain)
{
	struct automation *a = user;
	int rc = mqtt_publish(a->hub->mqtt, topic, payload, strlen(payload), a->hub->config->mqtt.qos,
			      retain);
	return rc == -ENOTCONN ? 0 : rc; /* the broker is away: like any other publication */
}

static void h_fired(void *user, const cJSON *record)
{
	struct automation *a = user;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(record, "time");
	int64_t ts = cJSON_IsNumber(t) ? (int64_t)t->valuedouble : hub_now_ms();
	if (a->hub->store)
		store_event_queue(a->hub->store, ts, NULL, "rule_fired", record);
	api_publish_event(a->hub, "rule_fired", cJSON_Duplicate(record, 1));
	a->hub->firings++;
	ecosystem_count(&a->hub->eco, ECO_FIRINGS, ts);
	hub_ecosystem_counted(a->hub);
	hub_store_touched(a->hub);
}

/* Stored under the trace's own time, which a later amendment names. */
static int64_t trace_time(const cJSON *trace)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(trace, "time");
	return cJSON_IsNumber(t) ? (int64_t)t->valuedouble : hub_now_ms();
}

static void h_trace(void *user, const char *rule_id, const cJSON *trace)
{
	struct automation *a = user;
	if (a->hub->store) {
		store_trace_queue(a->hub->store, rule_id, trace, trace_time(trace));
		hub_store_touched(a->hub);
	}
}

void automation_command_failed(struct automation *a, const struct rules_origin *origin,
			       const char *error)
{
	if (!a || !a->rules)
		return;
	const cJSON *trace = rules_trace_amend(a->rules, origin, error);
	/* a finished firing's stored trace is rewritten; a running one is
	 * stored whole when it ends */
	if (trace && a->hub->store && cJSON_GetObjectItemCaseSensitive(trace, "outcome") &&
	    store_trace_update(a->hub->store, origin->rule_id, trace, origin->trace_ms) == 0)
		hub_store_touched(a->hub);
}

static void h_persist(void *user, const char *key, const char *rule_id, const cJSON *record)
{
	struct automation *a = user;
	if (a->hub->store &&
	    store_timer_put(a->hub->store, key, rule_id, record, hub_now_ms()) != 0)
		log_error(src, "rule '%s': its pending timer could not be saved; a restart would "
			       "lose it",
			  rule_id);
}

static void schedule_publish(struct automation *a);

static void h_changed(void *user)
{
	struct automation *a = user;
	a->rules_dirty = true;
	a->defs_dirty = true;
	schedule_publish(a);
}

static void on_stats(uv_timer_t *t)
{
	struct automation *a = t->data;
	if (a->stats_dirty) {
		a->rules_dirty = true;
		schedule_publish(a);
	}
}

/* Firings republish bridge/rules (its fired_count, last_fired, running) at
 * most every RULES_STATS_PUBLISH_MS: serialising 10,000 rules five times a
 * second while they fire cost more than the firings (docs/performance.md). */
static void h_ran(void *user)
{
	struct automation *a = user;
	a->stats_dirty = true;
	if (!a->stopped && !uv_is_active((uv_handle_t *)&a->stats_timer))
		uv_timer_start(&a->stats_timer, on_stats, RULES_STATS_PUBLISH_MS, 0);
}

static void h_mqtt_watch(void *user, const char *filter, bool add)
{
	struct automation *a = user;
	if (add)
		mqtt_subscribe(a->hub->mqtt, filter, a->hub->config->mqtt.qos);
	else
		mqtt_unsubscribe(a->hub->mqtt, filter);
}

static bool h_location(void *user, double *lat, double *lon)
{
	struct automation *a = user;
	const struct hearth_config *c = a->hub->config;
	if (!c->location.set)
		return false;
	*lat = c->location.latitude;
	*lon = c->location.longitude;
	return true;
}

/* -- timers ------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* After anything that may have moved the next deadline. */
static void rearm(struct automation *a)
{
	if (a->stopped || !a->running)
		return;
	int64_t next = rules_next_deadline(a->rules);
	if (next < 0) {
		uv_timer_stop(&a->timer);
		return;
	}
	int64_t wait = next - hub_now_ms();
	uv_timer_start(&a->timer, on_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct automation *a = t->data;
	rules_tick(a->rules);
	rearm(a);
}

static void on_publish(uv_timer_t *t)
{
	struct automation *a = t->data;
	/* only firing figures changed: the ecosystem view need not be redone now */
	bool figures_only = a->stats_dirty && !a->defs_dirty && !a->scenes_dirty;
	a->defs_dirty = false;
	if (a->rules_dirty) {
		a->rules_dirty = false;
		a->stats_dirty = false;
		cJSON *j = rules_to_json(a->rules);
		if (j)
			api_publish_bridge(a->hub, "rules", j, true);
		cJSON_Delete(j);
	}
	if (a->scenes_dirty) {
		a->scenes_dirty = false;
		cJSON *j = scenes_to_json(a->scenes);
		if (j)
			api_publish_bridge(a->hub, "scenes", j, true);
		cJSON_Delete(j);
	}
	if (figures_only)
		hub_ecosystem_counted(a->hub);
	else
		hub_ecosystem_changed(a->hub);
}

/* Bursts of changes publish once; a busy rule publishes at most every 200 ms. */
static void schedule_publish(struct automation *a)
{
	if (!a->stopped && !uv_is_active((uv_handle_t *)&a->publish_timer))
		uv_timer_start(&a->publish_timer, on_publish, 200, 0);
}

void automation_publish_all(struct automation *a)
{
	a->rules_dirty = a->scenes_dirty = true;
	on_publish(&a->publish_timer);
}

/* -- scenes ------------------------------------------------------------------------- */

/* Every command in one loop turn; the number that failed is returned and,
 * with results, each device's outcome. */
static int activate(struct automation *a, const struct scene *s, cJSON *results)
{
	int failed = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, s->targets)
	{
		struct device *dev = registry_by_id(a->hub->registry, t->string);
		char err[300] = "";
		cJSON *state = cJSON_Duplicate(t, 1);
		int rc = -ENOMEM;
		if (state && s->transition_s >= 0 && dev &&
		    cap_find(dev->caps, dev->n_caps, "transition") &&
		    !cJSON_GetObjectItemCaseSensitive(state, "transition"))
			cJSON_AddNumberToObject(state, "transition", s->transition_s);
		if (!dev)
			snprintf(err, sizeof(err), "device %s is gone", t->string);
		else if (state)
			rc = hub_device_set_from(a->hub, dev, state, rules_acting(a->rules), err,
						 sizeof(err));
		cJSON_Delete(state);
		if (!dev || rc)
			failed++;
		if (results) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddStringToObject(r, "device", dev ? dev->name : t->string);
			cJSON_AddStringToObject(r, "status", dev && !rc ? "ok" : "error");
			if (!dev || rc)
				cJSON_AddStringToObject(r, "error", err);
			cJSON_AddItemToArray(results, r);
		}
	}
	log_info(src, "scene '%s' activated (%d of %d failed)", s->id, failed,
		 cJSON_GetArraySize(s->targets));
	return failed;
}

/* -- loading ------------------------------------------------------------------------------ */

static void load_stored_rule(void *user, const char *id, const cJSON *doc, int source)
{
	struct automation *a = user;
	char err[400];
	(void)source;
	if (rules_add(a->rules, doc, RULES_SOURCE_API, err, sizeof(err)) != 0)
		log_error(src, "stored rule '%s' not loaded: %s", id, err);
}

static void load_stored_scene(void *user, const char *id, const cJSON *doc, int source)
{
	struct automation *a = user;
	char err[400];
	(void)source;
	if (scenes_add(a->scenes, doc, err, sizeof(err)) != 0)
		log_error(src, "stored scene '%s' not loaded: %s", id, err);
}

static void load_stored_rule_if_missing(void *user, const char *id, const cJSON *doc, int source)
{
	struct automation *a = user;
	if (!rules_exists(a->rules, id))
		load_stored_rule(user, id, doc, source);
}

static char *read_file(const char *path, char *err, size_t len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	struct stat st;
	if (!f) {
		snprintf(err, len, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || st.st_size > RULE_FILE_MAX) {
		snprintf(err, len, "larger than %d bytes", RULE_FILE_MAX);
		goto out;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(buf);
		buf = NULL;
		snprintf(err, len, "read failed");
	}
out:
	fclose(f);
	return buf;
}

static int json_name(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

/* Every rule of one file (an object or an array of them). */
static void load_rule_file(struct automation *a, const char *path, cJSON *seen)
{
	char err[400];
	char *text = read_file(path, err, sizeof(err));
	if (!text) {
		log_error(src, "%s: %s", path, err);
		return;
	}
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
	if (!j) {
		log_error(src, "%s: not valid JSON near byte %ld", path, end ? (long)(end - text) : 0L);
		free(text);
		return;
	}
	free(text);
	cJSON *one = cJSON_IsArray(j) ? j->child : j;
	for (; one; one = cJSON_IsArray(j) ? one->next : NULL) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(one, "id");
		/* a file may hold scenes too: objects with "targets" */
		if (cJSON_GetObjectItemCaseSensitive(one, "targets")) {
			if (scenes_add(a->scenes, one, err, sizeof(err)) != 0)
				log_error(src, "%s: %s; the others still load", path, err);
			else
				a->scenes_dirty = true;
			continue;
		}
		if (cJSON_IsString(id) && rules_exists(a->rules, id->valuestring) &&
		    rules_source_of(a->rules, id->valuestring) == RULES_SOURCE_API)
			log_warning(src, "rule '%s' from %s replaces the stored rule of that id (the "
					 "file wins)",
				    id->valuestring, path);
		if (rules_add(a->rules, one, RULES_SOURCE_FILE, err, sizeof(err)) != 0)
			log_error(src, "%s: %s; the other rules still load", path, err);
		else if (cJSON_IsString(id))
			cJSON_AddItemToArray(seen, cJSON_CreateString(id->valuestring));
	}
	cJSON_Delete(j);
}

/* Read rules.dir; file rules that vanished are dropped, and a stored rule
 * they had replaced comes back. */
/* at_start: every stored rule was just loaded, so none can be missing. */
static void load_rule_dir(struct automation *a, bool at_start)
{
	const char *dir = a->hub->config->rules.dir;
	struct dirent **names = NULL;
	int n = dir ? scandir(dir, &names, json_name, alphasort) : -1;
	if (n < 0) {
		if (dir && errno != ENOENT)
			log_warning(src, "cannot read rules.dir %s: %s", dir, strerror(errno));
		n = 0;
	}
	cJSON *seen = cJSON_CreateArray();
	for (int i = 0; i < n && seen; i++) {
		char path[4096];
		if (i < RULE_FILES_MAX &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) < sizeof(path))
			load_rule_file(a, path, seen);
		free(names[i]);
	}
	free(names);
	cJSON *ids = rules_ids(a->rules);
	const cJSON *id;
	cJSON_ArrayForEach(id, ids)
	{
		bool kept = false;
		const cJSON *s;
		cJSON_ArrayForEach(s, seen) kept = kept || strcmp(s->valuestring, id->valuestring) == 0;
		if (kept || rules_source_of(a->rules, id->valuestring) != RULES_SOURCE_FILE)
			continue;
		log_info(src, "rule '%s' is no longer in %s; removed", id->valuestring, dir);
		rules_remove(a->rules, id->valuestring);
	}
	/* stored rules shadowed by a file that is gone come back */
	if (a->hub->store && !at_start)
		store_doc_load(a->hub->store, STORE_DOC_RULE, load_stored_rule_if_missing, a);
	cJSON_Delete(ids);
	cJSON_Delete(seen);
}

static void restore_timer(void *user, const char *key, const char *rule_id, const cJSON *record)
{
	struct automation *a = user;
	int rc = rules_restore_timer(a->rules, key, rule_id, record);
	if (rc == 0) {
		log_info(src, "rule '%s': resumed %s", rule_id, key);
		return;
	}
	/* a hold whose state changed meanwhile, or a rule that is gone */
	log_info(src, "rule '%s': %s no longer applies (%s); dropped", rule_id, key,
		 rc == -ESTALE ? "the state changed while the hub was down" : strerror(-rc));
	store_timer_put(a->hub->store, key, rule_id, NULL, hub_now_ms());
}

static void restore_trace(void *user, const char *rule_id, const cJSON *trace)
{
	struct automation *a = user;
	/* stored oldest first, kept newest first */
	cJSON *copy = cJSON_Duplicate(trace, 1);
	if (copy) {
		rules_trace_restore(a->rules, rule_id, copy);
		cJSON_Delete(copy);
	}
}

static void restore_firings(void *user, const char *rule_id, uint64_t count, int64_t last_ms)
{
	struct automation *a = user;
	rules_set_fired(a->rules, rule_id, count, last_ms);
}

int automation_start(struct hearth_hub *hub, struct automation **out)
{
	struct automation *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->hub = hub;
	struct rules_host host = {
		.user = a,
		.now_ms = h_now,
		.set = h_set,
		.scene = h_scene,
		.publish = h_publish,
		.fired = h_fired,
		.trace = h_trace,
		.persist = h_persist,
		.changed = h_changed,
		.mqtt_watch = h_mqtt_watch,
		.location = h_location,
		.ran = h_ran,
	};
	a->rules = rules_new(&host, hub->registry);
	a->scenes = scenes_new(hub->registry);
	if (!a->rules || !a->scenes) {
		automation_free(a);
		return -ENOMEM;
	}
	uv_timer_init(hub->loop, &a->timer);
	uv_timer_init(hub->loop, &a->publish_timer);
	uv_timer_init(hub->loop, &a->stats_timer);
	a->timer.data = a->publish_timer.data = a->stats_timer.data = a;
	*out = a;
	uint64_t t0 = uv_hrtime();
	if (hub->store) {
		store_doc_load(hub->store, STORE_DOC_SCENE, load_stored_scene, a);
		store_doc_load(hub->store, STORE_DOC_RULE, load_stored_rule, a);
	}
	load_rule_dir(a, true);
	if (hub->store) {
		store_trace_load(hub->store, restore_trace, a);
		store_firing_stats(hub->store, restore_firings, a);
		store_timer_load(hub->store, restore_timer, a);
	}
	log_info(src, "%zu rules and %zu scenes loaded in %.1f ms", rules_count(a->rules),
		 scenes_count(a->scenes), (double)(uv_hrtime() - t0) / 1e6);
	a->rules_dirty = a->scenes_dirty = true;
	return 0;
}

void automation_go(struct automation *a)
{
	if (!a || a->running)
		return;
	a->running = true;
	rules_start(a->rules);
	rearm(a);
	schedule_publish(a);
}

void automation_reload(struct automation *a)
{
	load_rule_dir(a, false);
	rearm(a);
	log_info(src, "rules reloaded: %zu rules", rules_count(a->rules));
}

void automation_stop(struct automation *a)
{
	if (!a)
		return;
	a->stopped = true;
	uv_timer_stop(&a->timer);
	uv_timer_stop(&a->publish_timer);
	uv_timer_stop(&a->stats_timer);
}

static void closed(uv_handle_t *h)
{
	(void)h;
}

/* Make the stored copy of a rule or scene what memory holds: its definition
 * (rules made through the API only; rules from files are read from there),
 * or no row once it is gone. */
static int sync_doc(struct automation *a, enum store_doc kind, const char *id)
{
	struct store *st = a->hub->store;
	if (kind == STORE_DOC_SCENE) {
		const struct scene *sc = scenes_get(a->scenes, id);
		return sc ? store_doc_put(st, kind, id, sc->definition, 0, hub_now_ms())
			  : store_doc_delete(st, kind, id);
	}
	if (!rules_exists(a->rules, id))
		return store_doc_delete(st, kind, id);
	if (rules_source_of(a->rules, id) != RULES_SOURCE_API)
		return 0;
	cJSON *d = rules_definition(a->rules, id);
	int rc = d ? store_doc_put(st, kind, id, d, 0, hub_now_ms()) : -ENOMEM;
	cJSON_Delete(d);
	return rc;
}

static struct unsaved_doc **unsaved_find(struct automation *a, enum store_doc kind,
					 const char *id)
{
	struct unsaved_doc **p = &a->unsaved;
	while (*p && ((*p)->kind != kind || strcmp((*p)->id, id) != 0))
		p = &(*p)->next;
	return p;
}

/* Save a change to a rule or scene; one the database refuses is kept and
 * written again with the hub's other refused writes. */
static void save_doc(struct automation *a, enum store_doc kind, const char *id)
{
	if (!a->hub->store)
		return;
	struct unsaved_doc **p = unsaved_find(a, kind, id);
	if (sync_doc(a, kind, id) == 0) {
		if (*p) {
			struct unsaved_doc *u = *p;
			*p = u->next;
			free(u);
		}
		return;
	}
	const char *what = kind == STORE_DOC_RULE ? "rule" : "scene";
	if (*p)
		return;
	struct unsaved_doc *u = malloc(sizeof(*u) + strlen(id) + 1);
	if (!u) {
		log_error(src, "%s '%s' could not be saved, and there is no memory to try again",
			  what, id);
		return;
	}
	u->kind = kind;
	strcpy(u->id, id);
	u->next = NULL;
	*p = u;
	log_error(src, "%s '%s' could not be saved; it is kept in memory and saved when the "
		       "database takes writes again",
		  what, id);
	hub_store_touched(a->hub);
}

bool automation_retry_unsaved(struct automation *a)
{
	if (!a || !a->hub->store || !a->unsaved)
		return false;
	struct unsaved_doc **p = &a->unsaved;
	size_t saved = 0;
	while (*p) {
		struct unsaved_doc *u = *p;
		if (sync_doc(a, u->kind, u->id) == 0) {
			*p = u->next;
			free(u);
			saved++;
		} else {
			p = &u->next;
		}
	}
	if (saved && !a->unsaved)
		log_info(src, "the database takes writes again; every rule and scene is saved");
	return a->unsaved != NULL;
}

void automation_free(struct automation *a)
{
	if (!a)
		return;
	if (a->rules && a->scenes) {
		uv_close((uv_handle_t *)&a->timer, closed);
		uv_close((uv_handle_t *)&a->publish_timer, closed);
		uv_close((uv_handle_t *)&a->stats_timer, closed);
		uv_run(a->hub->loop, UV_RUN_NOWAIT);
	}
	rules_free(a->rules);
	scenes_free(a->scenes);
	while (a->unsaved) {
		struct unsaved_doc *u = a->unsaved;
		a->unsaved = u->next;
		free(u);
	}
	free(a);
}

struct rules *automation_rules(struct automation *a)
{
	return a->rules;
}

struct scenes *automation_scenes(struct automation *a)
{
	return a->scenes;
}

/* -- events in --------------------------------------------------------------------------- */

void automation_on_state(struct automation *a, const struct device *dev, const char *const *changed,
			 size_t n)
{
	rules_on_state(a->rules, dev, changed, n);
	rearm(a);
}

void automation_on_event(struct automation *a, const struct device *dev, const char *type,
			 const cJSON *data)
{
	rules_on_event(a->rules, dev, type, data);
	rearm(a);
}

void automation_on_availability(struct automation *a, const struct device *dev, bool online)
{
	rules_on_availability(a->rules, dev, online);
	rearm(a);
}

void automation_on_mqtt(struct automation *a, const char *topic, const void *payload, size_t len)
{
	rules_on_mqtt(a->rules, topic, payload, len);
	rearm(a);
}

int automation_replace_device(struct automation *a, const char *old_id, const char *new_id)
{
	int n = rules_replace_device(a->rules, old_id, new_id);
	int m = scenes_replace_device(a->scenes, old_id, new_id);
	if (a->hub->store) {
		cJSON *ids = rules_ids(a->rules);
		const cJSON *id;
		cJSON_ArrayForEach(id, ids)
		{
			save_doc(a, STORE_DOC_RULE, id->valuestring);
		}
		cJSON_Delete(ids);
		for (const struct scene *s = scenes_first(a->scenes); s; s = s->next)
			save_doc(a, STORE_DOC_SCENE, s->id);
	}
	a->scenes_dirty = true;
	schedule_publish(a);
	rearm(a);
	return n + m;
}

/* -- requests ------------------------------------------------------------------------------ */

static const char *req_id(const cJSON *req, char *err, size_t len)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	if (!cJSON_IsString(id)) {
		snprintf(err, len, "'id' is missing or not a string");
		return NULL;
	}
	return id->valuestring;
}

/* The definition in a request: the request object itself, or its "rule" /
 * "scene" member; "transaction" is not part of it. */
static cJSON *definition_of(const cJSON *req, const char *member)
{
	const cJSON *inner = cJSON_GetObjectItemCaseSensitive(req, member);
	cJSON *d = cJSON_Duplicate(cJSON_IsObject(inner) ? inner : req, 1);
	if (d)
		cJSON_DeleteItemFromObjectCaseSensitive(d, "transaction");
	return d;
}

static int rule_add(struct automation *a, const cJSON *req, cJSON *data, bool must_exist,
		    char *err, size_t len)
{
	cJSON *def = definition_of(req, "rule");
	if (!def)
		return -ENOMEM;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(def, "id");
	int rc = 0;
	if (must_exist && (!cJSON_IsString(id) || !rules_exists(a->rules, id->valuestring))) {
		snprintf(err, len, "no rule has the id '%.64s'; use rule/add",
			 cJSON_IsString(id) ? id->valuestring : "?");
		rc = -ENOENT;
	} else if (!must_exist && cJSON_IsString(id) && rules_exists(a->rules, id->valuestring)) {
		snprintf(err, len, "a rule with the id '%.64s' exists; use rule/update",
			 id->valuestring);
		rc = -EEXIST;
	}
	if (!rc)
		rc = rules_add(a->rules, def, RULES_SOURCE_API, err, len);
	if (!rc) {
		save_doc(a, STORE_DOC_RULE, id->valuestring);
		cJSON_AddStringToObject(data, "id", id->valuestring);
		log_info(src, "rule '%s' %s", id->valuestring, must_exist ? "updated" : "added");
	}
	cJSON_Delete(def);
	rearm(a);
	return rc;
}

static int rule_simple(struct automation *a, const char *verb, const cJSON *req, cJSON *data,
		       char *err, size_t len)
{
	const char *id = req_id(req, err, len);
	if (!id)
		return -EINVAL;
	if (!rules_exists(a->rules, id)) {
		snprintf(err, len, "no rule has the id '%.64s'", id);
		return -ENOENT;
	}
	int rc = 0;
	bool api = rules_source_of(a->rules, id) == RULES_SOURCE_API;
	if (strcmp(verb, "remove") == 0) {
		if (!api) {
			snprintf(err, len, "rule '%s' comes from a file in rules.dir; remove the file",
				 id);
			return -EPERM;
		}
		rc = rules_remove(a->rules, id);
		if (!rc)
			save_doc(a, STORE_DOC_RULE, id);
	} else if (strcmp(verb, "trigger") == 0) {
		const cJSON *check = cJSON_GetObjectItemCaseSensitive(req, "conditions");
		rc = rules_trigger(a->rules, id, cJSON_IsTrue(check), err, len);
	} else {
		rc = rules_enable(a->rules, id, strcmp(verb, "enable") == 0);
		if (!rc && api)
			save_doc(a, STORE_DOC_RULE, id);
	}
	if (!rc) {
		cJSON_AddStringToObject(data, "id", id);
		log_info(src, "rule '%s': %s", id, verb);
	}
	rearm(a);
	return rc;
}

static int rule_trace(struct automation *a, const cJSON *req, cJSON *data, char *err, size_t len)
{
	const char *id = req_id(req, err, len);
	if (!id)
		return -EINVAL;
	cJSON *traces = rules_traces(a->rules, id);
	if (!traces) {
		snprintf(err, len, "no rule has the id '%.64s'", id);
		return -ENOENT;
	}
	cJSON_AddStringToObject(data, "id", id);
	char *story = traces->child ? automation_explain(traces->child)
				    : strdup("the rule has not been triggered yet");
	cJSON_AddStringToObject(data, "explanation", story ? story : "");
	free(story);
	cap_json_add(data, "traces", traces);
	return 0;
}

static int scene_add(struct automation *a, const cJSON *req, cJSON *data, char *err, size_t len)
{
	cJSON *def = definition_of(req, "scene");
	if (!def)
		return -ENOMEM;
	int rc = scenes_add(a->scenes, def, err, len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(def, "id");
	if (!rc) {
		save_doc(a, STORE_DOC_SCENE, id->valuestring);
		cJSON_AddStringToObject(data, "id", id->valuestring);
		a->scenes_dirty = true;
		schedule_publish(a);
	}
	cJSON_Delete(def);
	return rc;
}

static int scene_verb(struct automation *a, const char *verb, const cJSON *req, cJSON *data,
		      char *err, size_t len)
{
	const char *id = req_id(req, err, len);
	if (!id)
		return -EINVAL;
	if (strcmp(verb, "capture") == 0) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
		int rc = scenes_capture(a->scenes, id, cJSON_IsString(name) ? name->valuestring : NULL,
					cJSON_GetObjectItemCaseSensitive(req, "devices"), err, len);
		if (rc)
			return rc;
		const struct scene *s = scenes_get(a->scenes, id);
		save_doc(a, STORE_DOC_SCENE, id);
		cJSON_AddStringToObject(data, "id", id);
		cJSON_AddNumberToObject(data, "devices", cJSON_GetArraySize(s->targets));
		a->scenes_dirty = true;
		schedule_publish(a);
		return 0;
	}
	const struct scene *s = scenes_get(a->scenes, id);
	if (!s) {
		snprintf(err, len, "no scene has the id '%.64s'", id);
		return -ENOENT;
	}
	cJSON_AddStringToObject(data, "id", id);
	if (strcmp(verb, "activate") == 0) {
		cJSON *results = cJSON_AddArrayToObject(data, "devices");
		int failed = activate(a, s, results);
		cJSON_AddNumberToObject(data, "failed", failed);
		return 0;
	}
	scenes_remove(a->scenes, id);
	save_doc(a, STORE_DOC_SCENE, id);
	a->scenes_dirty = true;
	schedule_publish(a);
	return 0;
}

int automation_request(struct automation *a, const char *path, const cJSON *req, cJSON *data,
		       char *err, size_t err_len)
{
	if (strcmp(path, "rule/add") == 0)
		return rule_add(a, req, data, false, err, err_len);
	if (strcmp(path, "rule/update") == 0)
		return rule_add(a, req, data, true, err, err_len);
	if (strcmp(path, "rule/trace") == 0)
		return rule_trace(a, req, data, err, err_len);
	static const char *const rule_verbs[] = {"remove", "enable", "disable", "trigger"};
	for (size_t i = 0; i < 4; i++)
		if (strncmp(path, "rule/", 5) == 0 && strcmp(path + 5, rule_verbs[i]) == 0)
			return rule_simple(a, rule_verbs[i], req, data, err, err_len);
	if (strcmp(path, "scene/add") == 0)
		return scene_add(a, req, data, err, err_len);
	static const char *const scene_verbs[] = {"remove", "activate", "capture"};
	for (size_t i = 0; i < 3; i++)
		if (strncmp(path, "scene/", 6) == 0 && strcmp(path + 6, scene_verbs[i]) == 0)
			return scene_verb(a, scene_verbs[i], req, data, err, err_len);
	return -ENOENT;
}

/* -- "why did it (not) run?" --------------------------------------------------------------------- */

static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return;
		}
		char *bigger = realloc(*buf, *cap * 2 + (size_t)n);
		if (!bigger)
			return;
		*buf = bigger;
		*cap = *cap * 2 + (size_t)n;
	}
}

char *automation_explain(const cJSON *trace)
{
	size_t len = 0, cap = 256;
	char *buf = calloc(1, cap);
	if (!buf)
		return NULL;
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(trace, "time");
	const cJSON *trig = cJSON_GetObjectItemCaseSensitive(trace, "trigger");
	const cJSON *tid = cJSON_GetObjectItemCaseSensitive(trig, "id");
	const cJSON *ttype = cJSON_GetObjectItemCaseSensitive(trig, "type");
	const cJSON *outcome = cJSON_GetObjectItemCaseSensitive(trace, "outcome");
	char when[32] = "?";
	if (cJSON_IsNumber(time)) {
		time_t s = (time_t)(time->valuedouble / 1000);
		struct tm tm;
		localtime_r(&s, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	}
	append(&buf, &len, &cap, "At %s, trigger '%s' (%s) fired", when,
	       cJSON_IsString(tid) ? tid->valuestring : "?",
	       cJSON_IsString(ttype) ? ttype->valuestring : "?");
	const cJSON *to = cJSON_GetObjectItemCaseSensitive(trig, "to");
	if (to) {
		char *v = cJSON_PrintUnformatted(to);
		append(&buf, &len, &cap, " with %s", v ? v : "?");
		cJSON_free(v);
	}
	append(&buf, &len, &cap, ". ");
	int i = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(trace, "conditions"))
	{
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(c, "result");
		const cJSON *detail = cJSON_GetObjectItemCaseSensitive(c, "detail");
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(c, "path");
		i++;
		append(&buf, &len, &cap, "%s %s: %s. ",
		       cJSON_IsString(path) ? path->valuestring : "condition",
		       cJSON_IsTrue(res) ? "passed" : "failed",
		       cJSON_IsString(detail) ? detail->valuestring : "");
	}
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(trace, "actions"))
	{
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(c, "path");
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(c, "result");
		const cJSON *error = cJSON_GetObjectItemCaseSensitive(c, "error");
		append(&buf, &len, &cap, "%s: %s%s%s%s. ",
		       cJSON_IsString(path) ? path->valuestring : "?",
		       cJSON_IsString(res) ? res->valuestring : "?",
		       cJSON_IsString(error) ? " (" : "",
		       cJSON_IsString(error) ? error->valuestring : "", cJSON_IsString(error) ? ")" : "");
	}
	append(&buf, &len, &cap, "Outcome: %s.",
	       cJSON_IsString(outcome) ? outcome->valuestring : "still running");
	(void)i;
	return buf;
}
