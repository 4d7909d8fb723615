/*
 * rules: the automation engine. Rules are JSON (docs/rules.md); each is
 * validated and compiled once into triggers, condition trees and a flat
 * action program (choose and repeat become jumps), so a running rule is a
 * program counter, a few loop counters and a trigger snapshot: small enough
 * to persist as an absolute deadline and resume after a restart.
 *
 * Triggers are indexed by (device id, attribute), by device for events and
 * availability, and by MQTT filter: a state change evaluates only the rules
 * that watch it. Every time-based wait (for holds, delays, waits, time, cron
 * and sun triggers, debounce) lives in one min-heap; the hub arms a single
 * timer for rules_next_deadline().
 *
 * Pure module: no MQTT, no SQL, no libuv. Time comes through the host.
 * Loop thread only.
 */
#ifndef HEARTH_RULES_H
#define HEARTH_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "registry.h"

#define RULES_MAX 20000
#define RULES_ACTIONS_MAX 256	/* compiled instructions per rule */
#define RULES_RUNS_MAX 64	/* runs of one rule at once (queued + parallel) */
#define RULES_REPEAT_CAP 1000	/* iterations of one repeat, whatever it says */
#define RULES_TRACES_KEPT 20

enum rules_source { RULES_SOURCE_API = 0, RULES_SOURCE_FILE = 1 };

/* What the engine asks of the world. Every callback is synchronous. */
struct rules_host {
	void *user;
	int64_t (*now_ms)(void *user);
	/* Send state (a JSON object, already resolved) to a device, validated
	 * like /set. 0 or negative errno with err. */
	int (*set)(void *user, const char *device_id, const cJSON *state, char *err,
		   size_t err_len);
	/* Activate a scene. */
	int (*scene)(void *user, const char *scene_id, char *err, size_t err_len);
	/* Publish on MQTT. */
	int (*publish)(void *user, const char *topic, const char *payload, bool retain);
	/* A firing ended (or was refused): record and announce it. record is
	 * {"rule","name","trigger","trigger_id","time","outcome","duration_ms",
	 * "missed"?}; borrowed. */
	void (*fired)(void *user, const cJSON *record);
	/* A trace of one evaluation (borrowed), for storage. */
	void (*trace)(void *user, const char *rule_id, const cJSON *trace);
	/* Persist (record non-NULL) or forget (NULL) a durable timer by key. */
	void (*persist)(void *user, const char *key, const char *rule_id, const cJSON *record);
	/* The set of rules changed (bridge/rules should be republished). */
	void (*changed)(void *user);
	/* An MQTT filter is needed (add true) or no longer needed. */
	void (*mqtt_watch)(void *user, const char *filter, bool add);
	/* Location for sun triggers and conditions; false when not configured. */
	bool (*location)(void *user, double *lat, double *lon);
	/* A run started or ended: only fired_count, last_fired and running
	 * changed, which bridge/rules may tell later. NULL: changed is called. */
	void (*ran)(void *user);
};

struct rules;

/* New engine reading devices from reg. NULL on ENOMEM. */
struct rules *rules_new(const struct rules_host *host, struct registry *reg);
void rules_free(struct rules *rules);

/*
 * Add or replace (same id) a rule from its JSON definition. Device names
 * are resolved to ids. On error nothing changes, -EINVAL is returned and
 * err holds "rule '<id>': <path>: <reason>", e.g.
 * "rule 'hall': actions[2].state.brightness: 300 is above the maximum 254".
 * A file rule replaces a stored one of the same id (logged by the caller);
 * an API rule may not replace a file rule (-EPERM). Adding a definition
 * identical to the current one changes nothing (pending holds and runs
 * survive a reload of unchanged files).
 */
int rules_add(struct rules *rules, const cJSON *definition, enum rules_source source, char *err,
	      size_t err_len);
/* -ENOENT when no such rule. Running instances stop. */
int rules_remove(struct rules *rules, const char *id);
int rules_enable(struct rules *rules, const char *id, bool enabled);
/* Run the actions now (conditions skipped unless check_conditions). */
int rules_trigger(struct rules *rules, const char *id, bool check_conditions, char *err,
		  size_t err_len);
bool rules_exists(const struct rules *rules, const char *id);
size_t rules_count(const struct rules *rules);
enum rules_source rules_source_of(const struct rules *rules, const char *id);
/* Remove every rule of a source (before reloading rules.dir). */
void rules_remove_source(struct rules *rules, enum rules_source source);

/* The stored form of a rule: its definition with device ids (new object),
 * or NULL. */
cJSON *rules_definition(const struct rules *rules, const char *id);
/* Every rule as users see it: definitions with current device names, plus
 * "enabled", "source", "fired_count", "last_fired", "running" (new array). */
cJSON *rules_to_json(const struct rules *rules);
/* The last traces of a rule, newest first (new array), or NULL. */
cJSON *rules_traces(const struct rules *rules, const char *id);
/* Firing figures restored from the store. */
void rules_set_fired(struct rules *rules, const char *id, uint64_t count, int64_t last_ms);
/* A trace restored from the store (appended oldest first). */
void rules_trace_restore(struct rules *rules, const char *id, const cJSON *trace);

/* Where a command comes from while a rule's set or scene action runs. */
struct rules_origin {
	const char *rule_id; /* NULL: not from a rule */
	int64_t trace_ms;    /* the "time" of the firing's trace */
	const char *path;    /* the action, e.g. "actions[2]" */
};
/* The action executing now (inside host->set or host->scene), or NULL. */
const struct rules_origin *rules_acting(const struct rules *rules);
/* A command that action sent was not confirmed: its entry in the trace
 * (kept or still running) becomes "unconfirmed" with error. Returns the
 * amended trace (borrowed) or NULL when it is no longer kept. */
const cJSON *rules_trace_amend(struct rules *rules, const struct rules_origin *origin,
			       const char *error);
/* Rebind every rule from device old_id to new_id. Returns rules changed. */
int rules_replace_device(struct rules *rules, const char *old_id, const char *new_id);
/* Devices a rule reads (triggers, conditions) and writes (set actions), as
 * two new arrays of ids; for the ecosystem view. */
int rules_links(const struct rules *rules, const char *id, cJSON **reads, cJSON **writes);
/* Ids of every rule (new array). */
cJSON *rules_ids(const struct rules *rules);

/* -- events in ------------------------------------------------------------- */

/* Fire "start" triggers and schedule time triggers. Call once, after rules
 * are loaded and durable timers restored. */
void rules_start(struct rules *rules);
/* Attributes of dev changed (names as registry_merge reports them). */
void rules_on_state(struct rules *rules, const struct device *dev, const char *const *changed,
		    size_t n_changed);
/* A device event (button action); data is the event's attributes. */
void rules_on_event(struct rules *rules, const struct device *dev, const char *type,
		    const cJSON *data);
void rules_on_availability(struct rules *rules, const struct device *dev, bool online);
void rules_on_mqtt(struct rules *rules, const char *topic, const char *payload, size_t len);
/* Run everything due at now. */
void rules_tick(struct rules *rules);
/* The earliest pending deadline (ms since the epoch), or -1. */
int64_t rules_next_deadline(const struct rules *rules);

/* Resume a durable timer persisted before a restart. Deadlines already past
 * complete at once, marked "missed". Returns 0 or -ENOENT (rule gone). */
int rules_restore_timer(struct rules *rules, const char *key, const char *rule_id,
			const cJSON *record);

/* Figures for health and the ecosystem view. */
struct rules_stats {
	uint64_t firings;
	uint64_t evaluations;
	size_t runs_active;
	size_t timers_pending;
};
void rules_get_stats(const struct rules *rules, struct rules_stats *out);

#endif
