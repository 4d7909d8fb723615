/*
 * rules_internal: the compiled form of rules, shared by rules_parse.c
 * (JSON -> compiled, with validation), rules_cond.c (conditions and their
 * explanations) and rules.c (the engine). Not a public contract.
 */
#ifndef HEARTH_RULES_INTERNAL_H
#define HEARTH_RULES_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cron.h"
#include "registry.h"
#include "rules.h"

#define RULES_SLOTS_MAX 8 /* nested repeats in one rule */

enum trig_type {
	T_STATE,
	T_NUMERIC,
	T_EVENT,
	T_TIME,
	T_CRON,
	T_SUN,
	T_MQTT,
	T_AVAILABLE,
	T_START,
};

struct rule;

struct trigger {
	enum trig_type type;
	char *id;	 /* the user's id, or its index as text */
	char *device;	 /* device id */
	char *attribute;
	cJSON *from;	 /* state: value or array of values; NULL any */
	cJSON *to;
	bool has_above, has_below;
	double above, below;
	int64_t for_ms;
	int64_t debounce_ms;
	char *event;	 /* event: the event type, default "action" */
	cJSON *match;	 /* event / mqtt: object of key -> value (or array) */
	int at_s;	 /* time */
	unsigned weekdays;
	struct cron_expr cron;
	int sun_event;	 /* enum sun_event */
	int64_t offset_ms;
	char *filter;	 /* mqtt */
	bool online;	 /* device_available */

	/* run time */
	struct rule *rule;
	int index;
	uint64_t seq;		/* bumps to cancel its heap entry */
	int64_t hold_since_ms;	/* a pending for-hold started then (0: none) */
	bool hold_missed;	/* restored after its deadline passed while the hub was down */
	int64_t next_ms;	/* scheduled time trigger / debounce deadline */
	cJSON *pending;		/* snapshot held for a for-hold */
	uint64_t debounce_seq;	/* bumps to cancel its debounce heap entry */
	cJSON *debounced;	/* the last snapshot of a burst, until quiet */
};

enum cond_type { C_STATE, C_NUMERIC, C_TIME, C_SUN, C_AND, C_OR, C_NOT, C_TRIGGER };

struct condition {
	enum cond_type type;
	char *path; /* "conditions[1].conditions[0]" for explanations */
	char *device;
	char *attribute;
	cJSON *value; /* state: value or array of values */
	int64_t for_ms;
	bool has_above, has_below;
	double above, below;
	int after_s, before_s; /* time: -1 open */
	unsigned weekdays;
	int sun_after, sun_before; /* -1 none, else enum sun_event */
	int64_t sun_after_offset_ms, sun_before_offset_ms;
	char **trigger_ids;
	size_t n_trigger_ids;
	struct condition *children;
	size_t n_children;
};

enum op {
	OP_SET,
	OP_SCENE,
	OP_DELAY,
	OP_WAIT,
	OP_PUBLISH,
	OP_RULE,
	OP_JUMP_IF_NOT, /* cond false -> target */
	OP_JUMP,
	OP_LOOP_INIT,	/* counters[slot] = 0 */
	OP_LOOP_COUNT,	/* if ++counters[slot] > count -> target */
	OP_LOOP_WHILE,	/* if !cond or ++counters[slot] > cap -> target */
	OP_LOOP_UNTIL,	/* if cond or ++counters[slot] >= cap -> fall through, else -> target */
};

enum rule_verb { VERB_ENABLE, VERB_DISABLE, VERB_TRIGGER };

struct instr {
	enum op op;
	char *path; /* "actions[2]" */
	char *device;
	cJSON *state; /* set: values, or {"from_trigger": name} */
	char *scene;
	int64_t ms;   /* delay; wait timeout (0: none) */
	struct trigger *wait;
	bool continue_on_timeout;
	char *topic;
	char *payload;
	bool retain;
	char *target_rule;
	enum rule_verb verb;
	struct condition *cond;
	int target;
	int slot;
	int count;
};

enum mode { MODE_SINGLE, MODE_RESTART, MODE_QUEUED, MODE_PARALLEL };

struct run;

struct rule {
	char *id;
	char *name;
	enum mode mode;
	int max;
	int64_t cooldown_ms;
	bool enabled;
	enum rules_source source;
	cJSON *definition; /* stored form, device ids */
	struct trigger *triggers;
	size_t n_triggers;
	struct condition *conditions; /* an implicit "and" */
	size_t n_conditions;
	struct instr *prog;
	size_t n_prog;

	struct run *runs;  /* active, oldest first */
	struct run *queue; /* waiting (queued mode), oldest first */
	uint64_t fired_count;
	int64_t last_fired_ms;
	int64_t last_end_ms;
	cJSON *traces; /* newest first */
	struct rule *next;
};

/* -- rules_parse.c --------------------------------------------------------- */

/* Compile a definition. On error returns -EINVAL with err "<path>: <reason>"
 * (no rule prefix). reg resolves device names to ids and validates set
 * states. *out is a new rule with definition set to the stored form. */
int rule_compile(const cJSON *def, struct registry *reg, struct rule **out, char *err,
		 size_t err_len);
void rule_free(struct rule *rule);
void trigger_clear(struct trigger *t);
/* Parse one trigger (also for wait actions). path names it for errors. */
int trigger_parse(const cJSON *j, const char *path, struct registry *reg, struct trigger *t,
		  char *err, size_t err_len);
/* Replace device ids in a definition by current names (for users), in place. */
void rule_definition_show(cJSON *def, struct registry *reg);
/* Rewrite device ids old -> new in a definition; returns how many. */
int rule_definition_rebind(cJSON *def, const char *old_id, const char *new_id);
/* Collect device ids a definition reads (triggers, conditions) and writes. */
void rule_definition_links(const cJSON *def, cJSON *reads, cJSON *writes);

/* -- rules_cond.c ---------------------------------------------------------- */

struct cond_ctx {
	struct registry *reg;
	int64_t now_ms;
	const char *trigger_id;
	bool have_location;
	double lat, lon;
	cJSON *trace; /* array to append {"path","result","detail"} to, or NULL */
};

bool cond_eval(const struct condition *c, const struct cond_ctx *ctx);
/* All of an array (the rule's implicit "and"); stops at the first false. */
bool cond_eval_all(const struct condition *c, size_t n, const struct cond_ctx *ctx);
void cond_clear(struct condition *c);

/* MQTT topic rules without the MQTT library (this module stays pure). */
bool rules_topic_matches(const char *filter, const char *topic);
bool rules_filter_valid(const char *filter);
bool rules_topic_valid(const char *topic);

/* True when value matches spec: equal, or equal to one element of an array
 * spec; numbers compare numerically. NULL spec matches anything. */
bool rules_value_matches(const cJSON *spec, const cJSON *value);

#endif
