/*
 * ecosystem: the flywheel view. Devices by plugin, vendor and capability;
 * rules and scenes that span two or more plugins; firings and commands over
 * the last hour and day; the linkage graph (trigger device -> rule -> target
 * device), as JSON and as Graphviz DOT.
 *
 * Pure module. Loop thread only.
 */
#ifndef HEARTH_ECOSYSTEM_H
#define HEARTH_ECOSYSTEM_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "registry.h"
#include "rules.h"
#include "scenes.h"

#define ECOSYSTEM_MINUTES 1440 /* a day of per-minute counts */

enum eco_counter { ECO_FIRINGS = 0, ECO_COMMANDS = 1, ECO_COUNTERS };

/* Per-minute counts over the last day. */
struct eco_counts {
	int64_t minute[ECO_COUNTERS][ECOSYSTEM_MINUTES]; /* which minute a slot holds */
	uint32_t count[ECO_COUNTERS][ECOSYSTEM_MINUTES];
};

void ecosystem_count(struct eco_counts *c, enum eco_counter which, int64_t now_ms);
/* Sum over the last window_ms (at most a day). */
uint64_t ecosystem_sum(const struct eco_counts *c, enum eco_counter which, int64_t now_ms,
		       int64_t window_ms);

/* The whole view (new object). rules and scenes may be NULL. */
cJSON *ecosystem_json(const struct registry *reg, const struct rules *rules,
		      const struct scenes *scenes, const struct eco_counts *counts, int64_t now_ms);
/* The linkage graph as Graphviz DOT (new string, free()). */
char *ecosystem_dot(const cJSON *view);

#endif
