/*
 * automation: the edge around the rule engine and scenes. It loads rules
 * (stored ones, then the .json files of rules.dir, where a file wins over a
 * stored rule of the same id), keeps durable timers, traces and firings in the store,
 * answers the rule and scene bridge requests, publishes
 * <base>/bridge/rules and <base>/bridge/scenes, and drives the engine's one
 * timer from the hub's loop.
 *
 * Edge module: logs. Loop thread only.
 */
#ifndef HEARTH_AUTOMATION_H
#define HEARTH_AUTOMATION_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "registry.h"

struct hearth_hub;
struct automation;

/* Create, load rules and scenes, restore durable timers. 0 or -ENOMEM
 * (load problems are logged, never fatal). */
int automation_start(struct hearth_hub *hub, struct automation **out);
/* The hub is ready (its retained state is out): fire start triggers, run
 * what came due while it was down, arm the timer. Once. */
void automation_go(struct automation *a);
/* Stop the timer (before the loop ends); durable timers stay stored. */
void automation_stop(struct automation *a);
void automation_free(struct automation *a);
/* SIGHUP: read rules.dir again. */
void automation_reload(struct automation *a);

void automation_on_state(struct automation *a, const struct device *dev, const char *const *changed,
			 size_t n);
void automation_on_event(struct automation *a, const struct device *dev, const char *type,
			 const cJSON *data);
void automation_on_availability(struct automation *a, const struct device *dev, bool online);
void automation_on_mqtt(struct automation *a, const char *topic, const void *payload, size_t len);
/* A device id changed hands (device/replace): rebind rules and scenes. */
int automation_replace_device(struct automation *a, const char *old_id, const char *new_id);

/* A bridge request under rule/ or scene/. Returns -ENOENT for a path it
 * does not know, else 0 or negative errno with err set; data receives the
 * answer. */
int automation_request(struct automation *a, const char *path, const cJSON *req, cJSON *data,
		       char *err, size_t err_len);

/* The trace's story in plain words (new string, free()). */
char *automation_explain(const cJSON *trace);
/* A command a rule's action sent was not confirmed: tell it in the trace
 * of that firing (kept in memory and stored). a may be NULL. */
struct rules_origin;
void automation_command_failed(struct automation *a, const struct rules_origin *origin,
			       const char *error);

/* Retained topics on (re)connect. */
void automation_publish_all(struct automation *a);

/* Rules and scenes whose change the database refused are written again
 * (the hub calls this with its other retries); true while some still wait. */
bool automation_retry_unsaved(struct automation *a);

/* For the ecosystem view and health. */
struct rules *automation_rules(struct automation *a);
struct scenes *automation_scenes(struct automation *a);

#endif
