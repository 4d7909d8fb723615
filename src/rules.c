#include "rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capability.h"
#include "cron.h"
#include "rules_internal.h"
#include "sun.h"
#include "timeutil.h"

#define STEPS_PER_RUN_MAX 100000
#define RULE_ACTION_DEPTH_MAX 8

/* -- a small string map (open addressing) ------------------------------------- */

struct map_entry {
	char *key;
	void *value;
};

struct map {
	struct map_entry *slots;
	size_t cap, count;
};

static size_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static struct map_entry *map_slot(const struct map *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
		if (!m->slots[i].key || strcmp(m->slots[i].key, key) == 0)
			return &m->slots[i];
}

static void *map_get(const struct map *m, const char *key)
{
	struct map_entry *e = map_slot(m, key);
	return e && e->key ? e->value : NULL;
}

static int map_put(struct map *m, const char *key, void *value)
{
	if ((m->count + 1) * 2 > m->cap) {
		struct map bigger = {calloc(m->cap ? m->cap * 2 : 64, sizeof(struct map_entry)),
				     m->cap ? m->cap * 2 : 64, 0};
		if (!bigger.slots)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key)
				*map_slot(&bigger, m->slots[i].key) = m->slots[i];
		bigger.count = m->count;
		free(m->slots);
		*m = bigger;
	}
	struct map_entry *e = map_slot(m, key);
	if (!e->key) {
		if (!(e->key = strdup(key)))
			return -ENOMEM;
		m->count++;
	}
	e->value = value;
	return 0;
}

/* Deletion with backward shift keeps probe chains intact. */
static void map_del(struct map *m, const char *key)
{
	struct map_entry *e = map_slot(m, key);
	if (!e || !e->key)
		return;
	free(e->key);
	e->key = NULL;
	m->count--;
	size_t i = (size_t)(e - m->slots);
	for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
		struct map_entry moved = m->slots[j];
		m->slots[j].key = NULL;
		*map_slot(m, moved.key) = moved;
	}
}

static void map_free(struct map *m, void (*free_value)(void *))
{
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key) {
			if (free_value)
				free_value(m->slots[i].value);
			free(m->slots[i].key);
		}
	}
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* -- structures ------------------------------------------------------------------ */

struct tref {
	struct rule *rule;
	struct trigger *trigger;
};

/* One watched (device, attribute), or a device (attribute ""): the triggers
 * watching it and the last value seen, for from/to and crossings. */
struct watch {
	struct tref *refs;
	size_t n, cap;
	cJSON *last;
};

enum run_state { R_READY, R_DELAY, R_WAIT, R_QUEUED, R_DONE };

struct run {
	struct rule *rule;
	uint64_t num;
	int pc;
	int counters[RULES_SLOTS_MAX];
	cJSON *snapshot; /* {"id","type",...,"data":{...}} */
	enum run_state state;
	int64_t deadline;     /* delay end / wait timeout; -1 none */
	int64_t wait_since;   /* a wait's for-hold started (0: none) */
	uint64_t wait_mark;   /* next_seq when its wait began: later events only */
	uint64_t seq;
	cJSON *trace;
	int64_t started_ms;
	bool missed;
	bool stepping; /* run_step is executing it (it is on the C stack) */
	bool stopped;  /* restarted while stepping: run_step frees it */
	unsigned steps;
	struct run *next;      /* in rule->runs or rule->queue */
	struct run *wait_next; /* in rules->waiting */
};

enum heap_kind { K_HOLD, K_DEBOUNCE, K_SCHED, K_RUN };

struct heap_entry {
	int64_t deadline;
	uint64_t seq;
	enum heap_kind kind;
	void *ptr;
	struct rule *rule;
};

struct rules {
	struct rules_host host;
	struct registry *reg;
	struct map by_id;   /* id -> struct rule */
	struct map watches; /* "device\x1fattr" -> struct watch */
	struct rule *head, *tail;
	struct tref *mqtt;
	size_t n_mqtt, cap_mqtt;
	struct heap_entry *heap;
	size_t n_heap, cap_heap;
	struct run *waiting;
	uint64_t next_seq;
	uint64_t next_run;
	int action_depth;
	bool started;
	struct rules_stats stats;
	struct rules_origin acting; /* rule_id NULL outside a set or scene action */
};

static int64_t now(const struct rules *r)
{
	return r->host.now_ms(r->host.user);
}

/* -- the heap ---------------------------------------------------------------------- */

static void heap_swap(struct heap_entry *a, struct heap_entry *b)
{
	struct heap_entry t = *a;
	*a = *b;
	*b = t;
}

static void heap_up(struct heap_entry *h, size_t i)
{
	while (i > 0 && h[(i - 1) / 2].deadline > h[i].deadline) {
		heap_swap(&h[(i - 1) / 2], &h[i]);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct heap_entry *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && h[l].deadline < h[m].deadline)
			m = l;
		if (r < n && h[r].deadline < h[m].deadline)
			m = r;
		if (m == i)
			return;
		heap_swap(&h[i], &h[m]);
		i = m;
	}
}

static int heap_push(struct rules *r, int64_t deadline, uint64_t seq, enum heap_kind kind, void *ptr,
		     struct rule *rule)
{
	if (r->n_heap == r->cap_heap) {
		size_t cap = r->cap_heap ? r->cap_heap * 2 : 64;
		struct heap_entry *h = realloc(r->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		r->heap = h;
		r->cap_heap = cap;
	}
	r->heap[r->n_heap] = (struct heap_entry){deadline, seq, kind, ptr, rule};
	heap_up(r->heap, r->n_heap++);
	return 0;
}

static void heap_pop(struct rules *r)
{
	r->heap[0] = r->heap[--r->n_heap];
	heap_down(r->heap, r->n_heap, 0);
}

static bool entry_valid(const struct heap_entry *e)
{
	switch (e->kind) {
	case K_RUN:
		return ((struct run *)e->ptr)->seq == e->seq;
	case K_DEBOUNCE:
		return ((struct trigger *)e->ptr)->debounce_seq == e->seq;
	default:
		return ((struct trigger *)e->ptr)->seq == e->seq;
	}
}

/* Drop every entry of a rule that is going away (rare: a linear pass). */
static void heap_purge_rule(struct rules *r, const struct rule *rule)
{
	size_t w = 0;
	for (size_t i = 0; i < r->n_heap; i++)
		if (r->heap[i].rule != rule)
			r->heap[w++] = r->heap[i];
	r->n_heap = w;
	for (size_t i = r->n_heap / 2 + 1; i-- > 0;)
		heap_down(r->heap, r->n_heap, i);
}

static void heap_purge_run(struct rules *r, const struct run *run)
{
	size_t w = 0;
	for (size_t i = 0; i < r->n_heap; i++)
		if (!(r->heap[i].kind == K_RUN && r->heap[i].ptr == run))
			r->heap[w++] = r->heap[i];
	r->n_heap = w;
	for (size_t i = r->n_heap / 2 + 1; i-- > 0;)
		heap_down(r->heap, r->n_heap, i);
}

int64_t rules_next_deadline(const struct rules *cr)
{
	struct rules *r = (struct rules *)cr;
	while (r->n_heap && !entry_valid(&r->heap[0]))
		heap_pop(r);
	return r->n_heap ? r->heap[0].deadline : -1;
}

/* -- traces and records ---------------------------------------------------------------- */

static void keep_trace(struct rules *r, struct rule *rule, cJSON *trace)
{
	r->host.trace(r->host.user, rule->id, trace);
	cJSON_InsertItemInArray(rule->traces, 0, trace);
	while (cJSON_GetArraySize(rule->traces) > RULES_TRACES_KEPT)
		cJSON_DeleteItemFromArray(rule->traces, RULES_TRACES_KEPT);
}

static cJSON *new_trace(struct rules *r, const cJSON *snapshot)
{
	cJSON *t = cJSON_CreateObject();
	if (!t)
		return NULL;
	cJSON_AddNumberToObject(t, "time", (double)now(r));
	cap_json_add(t, "trigger", snapshot ? cJSON_Duplicate(snapshot, 1)
						     : cJSON_CreateObject());
	cJSON_AddArrayToObject(t, "conditions");
	cJSON_AddArrayToObject(t, "actions");
	return t;
}

static void record_firing(struct rules *r, struct rule *rule, const cJSON *snapshot,
			  const char *outcome, int64_t started_ms, bool missed)
{
	cJSON *rec = cJSON_CreateObject();
	if (!rec)
		return;
	const cJSON *tid = cJSON_GetObjectItemCaseSensitive(snapshot, "id");
	const cJSON *ttype = cJSON_GetObjectItemCaseSensitive(snapshot, "type");
	cJSON_AddStringToObject(rec, "rule", rule->id);
	cJSON_AddStringToObject(rec, "name", rule->name);
	cJSON_AddStringToObject(rec, "trigger", cJSON_IsString(ttype) ? ttype->valuestring : "manual");
	cJSON_AddStringToObject(rec, "trigger_id", cJSON_IsString(tid) ? tid->valuestring : "");
	cJSON_AddNumberToObject(rec, "time", (double)started_ms);
	cJSON_AddStringToObject(rec, "outcome", outcome);
	cJSON_AddNumberToObject(rec, "duration_ms", (double)(now(r) - started_ms));
	if (missed)
		cJSON_AddBoolToObject(rec, "missed", true);
	r->host.fired(r->host.user, rec);
	cJSON_Delete(rec);
}

/* -- runs ---------------------------------------------------------------------------------- */

static void run_key(const struct run *run, char *key, size_t len)
{
	snprintf(key, len, "run:%s:%llu", run->rule->id, (unsigned long long)run->num);
}

static void run_persist(struct rules *r, struct run *run)
{
	char key[128];
	run_key(run, key, sizeof(key));
	if (run->state != R_DELAY && run->state != R_WAIT && run->state != R_QUEUED) {
		r->host.persist(r->host.user, key, run->rule->id, NULL);
		return;
	}
	cJSON *rec = cJSON_CreateObject();
	if (!rec)
		return;
	static const char *const states[] = {"ready", "delay", "wait", "queued", "done"};
	cJSON_AddStringToObject(rec, "kind", "run");
	cJSON_AddStringToObject(rec, "state", states[run->state]);
	cJSON_AddNumberToObject(rec, "pc", run->pc);
	cap_json_add(rec, "counters", cJSON_CreateIntArray(run->counters, RULES_SLOTS_MAX));
	cJSON_AddNumberToObject(rec, "deadline", (double)run->deadline);
	cJSON_AddNumberToObject(rec, "wait_since", (double)run->wait_since);
	cJSON_AddNumberToObject(rec, "started", (double)run->started_ms);
	cap_json_add(rec, "trigger", cJSON_Duplicate(run->snapshot, 1));
	r->host.persist(r->host.user, key, run->rule->id, rec);
	cJSON_Delete(rec);
}

static void unlink_waiting(struct rules *r, struct run *run)
{
	for (struct run **p = &r->waiting; *p; p = &(*p)->wait_next) {
		if (*p == run) {
			*p = run->wait_next;
			run->wait_next = NULL;
			return;
		}
	}
}

static void unlink_from(struct run **list, struct run *run)
{
	for (struct run **p = list; *p; p = &(*p)->next) {
		if (*p == run) {
			*p = run->next;
			return;
		}
	}
}

static void run_free(struct rules *r, struct run *run)
{
	unlink_waiting(r, run);
	heap_purge_run(r, run);
	run->state = R_DONE;
	run_persist(r, run);
	cJSON_Delete(run->snapshot);
	cJSON_Delete(run->trace);
	free(run);
	r->stats.runs_active--;
}

static struct run *run_new(struct rules *r, struct rule *rule, const cJSON *snapshot)
{
	struct run *run = calloc(1, sizeof(*run));
	if (!run)
		return NULL;
	run->rule = rule;
	run->num = ++r->next_run;
	run->snapshot = snapshot ? cJSON_Duplicate(snapshot, 1) : cJSON_CreateObject();
	run->trace = new_trace(r, snapshot);
	run->deadline = -1;
	run->started_ms = now(r);
	run->seq = ++r->next_seq;
	r->stats.runs_active++;
	if (!run->snapshot || !run->trace) {
		run_free(r, run);
		return NULL;
	}
	return run;
}

static void run_step(struct rules *r, struct run *run);

/* Firings change figures only: the host may tell them at leisure. */
static void ran(struct rules *r)
{
	if (r->host.ran)
		r->host.ran(r->host.user);
	else
		r->host.changed(r->host.user);
}

static void start_queued(struct rules *r, struct rule *rule)
{
	while (rule->queue && !rule->runs) {
		struct run *run = rule->queue;
		rule->queue = run->next;
		run->next = NULL;
		run->state = R_READY;
		rule->runs = run;
		run_persist(r, run);
		run_step(r, run);
	}
}

/* A run ended: trace, record, and let a queued run start. */
static void run_finish(struct rules *r, struct run *run, const char *outcome)
{
	struct rule *rule = run->rule;
	unlink_from(&rule->runs, run);
	cJSON_AddStringToObject(run->trace, "outcome", outcome);
	if (run->missed)
		cJSON_AddBoolToObject(run->trace, "missed", true);
	keep_trace(r, rule, run->trace);
	run->trace = NULL;
	record_firing(r, rule, run->snapshot, outcome, run->started_ms, run->missed);
	rule->last_end_ms = now(r);
	run_free(r, run);
	start_queued(r, rule);
	ran(r);
}

static void action_note(struct run *run, const struct instr *in, const char *result, int64_t t0,
			int64_t t1)
{
	cJSON *actions = cJSON_GetObjectItemCaseSensitive(run->trace, "actions");
	cJSON *o = cJSON_CreateObject();
	if (!actions || !o) {
		cJSON_Delete(o);
		return;
	}
	cJSON_AddStringToObject(o, "path", in->path ? in->path : "");
	cJSON_AddStringToObject(o, "result", result);
	cJSON_AddNumberToObject(o, "ms", (double)(t1 - t0));
	cJSON_AddItemToArray(actions, o);
}

/* A set state with {"from_trigger": name} values filled in. */
static cJSON *resolve_state(const struct instr *in, const cJSON *snapshot, char *err, size_t len)
{
	cJSON *out = cJSON_Duplicate(in->state, 1);
	if (!out) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(snapshot, "data");
	cJSON *item, *next;
	/* not cJSON_ArrayForEach: replacing frees the item it would step from */
	for (item = out->child; item; item = next) {
		next = item->next;
		const cJSON *ft =
			cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "from_trigger")
					     : NULL;
		if (!ft)
			continue;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, ft->valuestring);
		cJSON *copy = v ? cJSON_Duplicate(v, 1) : NULL;
		if (!copy) {
			snprintf(err, len, "from_trigger '%s': the trigger carried no such value",
				 ft->valuestring);
			cJSON_Delete(out);
			return NULL;
		}
		/* the key moves over: a replace that copied it could lose it */
		if (cap_json_put(out, item->string, copy) != 0) {
			snprintf(err, len, "out of memory");
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

static struct cond_ctx cond_ctx_for(struct rules *r, const cJSON *snapshot, cJSON *trace)
{
	struct cond_ctx ctx = {.reg = r->reg, .now_ms = now(r), .trace = trace};
	const cJSON *tid = cJSON_GetObjectItemCaseSensitive(snapshot, "id");
	ctx.trigger_id = cJSON_IsString(tid) ? tid->valuestring : NULL;
	ctx.have_location = r->host.location(r->host.user, &ctx.lat, &ctx.lon);
	return ctx;
}

static int rule_action(struct rules *r, const struct instr *in, char *err, size_t len);

/* Note which action sends commands now; returns what to restore after. */
static struct rules_origin act_as(struct rules *r, const struct run *run, const struct instr *in)
{
	struct rules_origin before = r->acting;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(run->trace, "time");
	r->acting = (struct rules_origin){.rule_id = run->rule->id,
					  .trace_ms = cJSON_IsNumber(t) ? (int64_t)t->valuedouble : 0,
					  .path = in->path ? in->path : ""};
	return before;
}

/* Execute one instruction. Returns 1 to go on, 0 when the run suspended,
 * -1 when it failed (err set). */
static int exec(struct rules *r, struct run *run, const struct instr *in, char *err, size_t len)
{
	int rc = 0;
	struct cond_ctx ctx;
	cJSON *state;
	struct rules_origin acting;
	switch (in->op) {
	case OP_SET:
		if (!(state = resolve_state(in, run->snapshot, err, len)))
			return -1;
		acting = act_as(r, run, in);
		rc = r->host.set(r->host.user, in->device, state, err, len);
		r->acting = acting;
		cJSON_Delete(state);
		break;
	case OP_SCENE:
		acting = act_as(r, run, in);
		rc = r->host.scene(r->host.user, in->scene, err, len);
		r->acting = acting;
		break;
	case OP_PUBLISH:
		rc = r->host.publish(r->host.user, in->topic, in->payload, in->retain);
		if (rc)
			snprintf(err, len, "publish to %s failed", in->topic);
		break;
	case OP_RULE:
		rc = rule_action(r, in, err, len);
		break;
	case OP_DELAY:
		run->state = R_DELAY;
		run->deadline = now(r) + in->ms;
		run->seq = ++r->next_seq;
		heap_push(r, run->deadline, run->seq, K_RUN, run, run->rule);
		run->pc++;
		run_persist(r, run);
		return 0;
	case OP_WAIT:
		run->state = R_WAIT;
		run->wait_since = 0;
		run->deadline = in->ms > 0 ? now(r) + in->ms : -1;
		run->seq = ++r->next_seq;
		run->wait_mark = run->seq;
		if (run->deadline >= 0)
			heap_push(r, run->deadline, run->seq, K_RUN, run, run->rule);
		run->wait_next = r->waiting;
		r->waiting = run;
		run_persist(r, run);
		return 0;
	case OP_JUMP:
		run->pc = in->target;
		return 1;
	case OP_JUMP_IF_NOT:
		ctx = cond_ctx_for(r, run->snapshot, NULL);
		run->pc = cond_eval(in->cond, &ctx) ? run->pc + 1 : in->target;
		return 1;
	case OP_LOOP_INIT:
		run->counters[in->slot] = 0;
		break;
	case OP_LOOP_COUNT:
		run->pc = ++run->counters[in->slot] > in->count ? in->target : run->pc + 1;
		return 1;
	case OP_LOOP_WHILE:
		ctx = cond_ctx_for(r, run->snapshot, NULL);
		run->pc = (++run->counters[in->slot] > in->count || !cond_eval(in->cond, &ctx))
				  ? in->target
				  : run->pc + 1;
		return 1;
	case OP_LOOP_UNTIL:
		ctx = cond_ctx_for(r, run->snapshot, NULL);
		run->pc = (++run->counters[in->slot] >= in->count || cond_eval(in->cond, &ctx))
				  ? run->pc + 1
				  : in->target;
		return 1;
	}
	if (rc)
		return -1;
	run->pc++;
	return 1;
}

static void run_step(struct rules *r, struct run *run)
{
	struct rule *rule = run->rule;
	while (run->state == R_READY && run->pc >= 0 && (size_t)run->pc < rule->n_prog) {
		const struct instr *in = &rule->prog[run->pc];
		char err[300] = "";
		if (++run->steps > STEPS_PER_RUN_MAX) {
			run_finish(r, run, "error: the run took too many steps");
			return;
		}
		int64_t t0 = now(r);
		run->stepping = true;
		int rc = exec(r, run, in, err, sizeof(err));
		run->stepping = false;
		if (run->stopped) {
			/* a "rule" action restarted this very run */
			run_free(r, run);
			return;
		}
		bool visible = in->op <= OP_RULE;
		if (rc < 0) {
			char outcome[400];
			action_note(run, in, err, t0, now(r));
			snprintf(outcome, sizeof(outcome), "error: %s: %s", in->path, err);
			run_finish(r, run, outcome);
			return;
		}
		if (visible)
			action_note(run, in, rc == 0 ? "waiting" : "ok", t0, now(r));
		if (rc == 0)
			return;
	}
	if (run->state == R_READY)
		run_finish(r, run, "ok");
}

/* -- firing ----------------------------------------------------------------------------------- */

static int run_rule(struct rules *r, struct rule *rule, const cJSON *snapshot, bool check_conditions,
		    bool missed)
{
	int64_t t = now(r);
	r->stats.evaluations++;
	if (rule->cooldown_ms && rule->last_fired_ms && t - rule->last_fired_ms < rule->cooldown_ms) {
		cJSON *trace = new_trace(r, snapshot);
		if (trace) {
			cJSON_AddStringToObject(trace, "outcome", "skipped: cooldown");
			keep_trace(r, rule, trace);
		}
		return 0;
	}
	cJSON *cond_trace = cJSON_CreateArray();
	struct cond_ctx ctx = cond_ctx_for(r, snapshot, cond_trace);
	if (check_conditions && !cond_eval_all(rule->conditions, rule->n_conditions, &ctx)) {
		cJSON *trace = new_trace(r, snapshot);
		if (trace) {
			cap_json_put(trace, "conditions", cond_trace);
			cond_trace = NULL;
			cJSON_AddStringToObject(trace, "outcome", "conditions not met");
			keep_trace(r, rule, trace);
		}
		cJSON_Delete(cond_trace);
		return 0;
	}
	size_t active = 0, queued = 0;
	for (struct run *x = rule->runs; x; x = x->next)
		active++;
	for (struct run *x = rule->queue; x; x = x->next)
		queued++;
	const char *skip = NULL;
	if (active && rule->mode == MODE_SINGLE)
		skip = "skipped: single mode and a run is in progress";
	else if (rule->mode == MODE_PARALLEL && active >= (size_t)rule->max)
		skip = "skipped: parallel runs at their max";
	else if (rule->mode == MODE_QUEUED && active && queued >= (size_t)rule->max)
		skip = "skipped: the queue is full";
	if (skip) {
		record_firing(r, rule, snapshot, skip, t, missed);
		cJSON *trace = new_trace(r, snapshot);
		if (trace) {
			cJSON_AddStringToObject(trace, "outcome", skip);
			keep_trace(r, rule, trace);
		}
		cJSON_Delete(cond_trace);
		return 0;
	}
	if (rule->mode == MODE_RESTART) {
		while (rule->runs) {
			struct run *old = rule->runs;
			rule->runs = old->next;
			old->next = NULL;
			cJSON_AddStringToObject(old->trace, "outcome", "restarted");
			keep_trace(r, rule, old->trace);
			old->trace = NULL;
			if (old->stepping) {
				/* our caller's caller is executing it: stop it
				 * here, run_step frees it when exec returns */
				old->stopped = true;
				old->state = R_DONE;
				unlink_waiting(r, old);
				heap_purge_run(r, old);
				continue;
			}
			run_free(r, old);
		}
	}
	struct run *run = run_new(r, rule, snapshot);
	if (!run) {
		cJSON_Delete(cond_trace);
		return -ENOMEM;
	}
	cap_json_put(run->trace, "conditions", cond_trace);
	run->missed = missed;
	rule->fired_count++;
	rule->last_fired_ms = t;
	r->stats.firings++;
	if (rule->mode == MODE_QUEUED && active) {
		run->state = R_QUEUED;
		struct run **p = &rule->queue;
		while (*p)
			p = &(*p)->next;
		*p = run;
		run_persist(r, run);
		return 0;
	}
	struct run **p = &rule->runs;
	while (*p)
		p = &(*p)->next;
	*p = run;
	run_step(r, run);
	ran(r);
	return 0;
}

static void fire(struct rules *r, struct trigger *t, cJSON *snapshot, bool missed)
{
	struct rule *rule = t->rule;
	if (!rule->enabled) {
		cJSON_Delete(snapshot);
		return;
	}
	if (t->debounce_ms > 0 && !missed) {
		/* the last of a burst fires, once things have been quiet; a
		 * hold or a schedule of the same trigger keeps its own entry */
		cJSON_Delete(t->debounced);
		t->debounced = snapshot;
		t->debounce_seq = ++r->next_seq;
		heap_push(r, now(r) + t->debounce_ms, t->debounce_seq, K_DEBOUNCE, t, rule);
		return;
	}
	run_rule(r, rule, snapshot, true, missed);
	cJSON_Delete(snapshot);
}

static const char *const type_names[] = {"state", "numeric", "event",   "time",
					 "cron",  "sun",     "mqtt",    "device_available",
					 "start"};

static cJSON *snapshot_new(const struct trigger *t)
{
	cJSON *s = cJSON_CreateObject();
	if (!s)
		return NULL;
	cJSON_AddStringToObject(s, "id", t->id);
	cJSON_AddStringToObject(s, "type", type_names[t->type]);
	if (t->device)
		cJSON_AddStringToObject(s, "device", t->device);
	if (t->attribute)
		cJSON_AddStringToObject(s, "attribute", t->attribute);
	cJSON_AddObjectToObject(s, "data");
	return s;
}

/* State snapshot: the device's whole state at trigger time, plus from/to. */
static cJSON *snapshot_state(const struct trigger *t, const struct device *dev, const cJSON *old,
			     const cJSON *cur)
{
	cJSON *s = snapshot_new(t);
	if (!s)
		return NULL;
	cJSON *data = cJSON_GetObjectItemCaseSensitive(s, "data");
	const cJSON *item;
	cJSON_ArrayForEach(item, dev->state)
		cap_json_add(data, item->string, cJSON_Duplicate(item, 1));
	cap_json_add(s, "from", old ? cJSON_Duplicate(old, 1) : cJSON_CreateNull());
	cap_json_add(s, "to", cur ? cJSON_Duplicate(cur, 1) : cJSON_CreateNull());
	cap_json_add(data, "value", cur ? cJSON_Duplicate(cur, 1) : cJSON_CreateNull());
	return s;
}

static void hold_cancel(struct rules *r, struct trigger *t)
{
	if (!t->hold_since_ms)
		return;
	t->hold_since_ms = 0;
	t->seq = ++r->next_seq;
	cJSON_Delete(t->pending);
	t->pending = NULL;
	char key[128];
	snprintf(key, sizeof(key), "hold:%s:%d", t->rule->id, t->index);
	r->host.persist(r->host.user, key, t->rule->id, NULL);
}

static void hold_start(struct rules *r, struct trigger *t, cJSON *snapshot, int64_t since)
{
	hold_cancel(r, t);
	t->hold_since_ms = since;
	t->pending = snapshot;
	t->seq = ++r->next_seq;
	heap_push(r, since + t->for_ms, t->seq, K_HOLD, t, t->rule);
	char key[128];
	snprintf(key, sizeof(key), "hold:%s:%d", t->rule->id, t->index);
	cJSON *rec = cJSON_CreateObject();
	if (rec) {
		cJSON_AddStringToObject(rec, "kind", "hold");
		cJSON_AddNumberToObject(rec, "trigger", t->index);
		cJSON_AddNumberToObject(rec, "since", (double)since);
		cap_json_add(rec, "snapshot", cJSON_Duplicate(snapshot, 1));
		r->host.persist(r->host.user, key, t->rule->id, rec);
		cJSON_Delete(rec);
	}
}

static bool in_range(const struct trigger *t, const cJSON *v)
{
	return cJSON_IsNumber(v) && (!t->has_above || v->valuedouble > t->above) &&
	       (!t->has_below || v->valuedouble < t->below);
}

/* Did this change fire the trigger (true), and should a pending hold stay? */
static bool state_matches(const struct trigger *t, const cJSON *old, const cJSON *cur, bool *keep)
{
	if (t->type == T_NUMERIC) {
		*keep = in_range(t, cur);
		return in_range(t, cur) && !in_range(t, old);
	}
	*keep = t->to ? rules_value_matches(t->to, cur) : false;
	if (old && cur && cap_json_equal(old, cur))
		return false;
	return rules_value_matches(t->from, old) && rules_value_matches(t->to, cur);
}

static void check_state_trigger(struct rules *r, struct trigger *t, const struct device *dev,
				const cJSON *old, const cJSON *cur)
{
	bool keep;
	bool hit = state_matches(t, old, cur, &keep);
	if (t->hold_since_ms && !keep)
		hold_cancel(r, t);
	if (!hit)
		return;
	cJSON *snap = snapshot_state(t, dev, old, cur);
	if (!snap)
		return;
	if (t->for_ms > 0) {
		if (!t->hold_since_ms)
			hold_start(r, t, snap, now(r));
		else
			cJSON_Delete(snap);
		return;
	}
	fire(r, t, snap, false);
}

/* -- waits ------------------------------------------------------------------------------------- */

static void wait_done(struct rules *r, struct run *run, bool timed_out)
{
	unlink_waiting(r, run);
	const struct instr *in = &run->rule->prog[run->pc];
	run->seq = ++r->next_seq;
	run->deadline = -1;
	run->wait_since = 0;
	cJSON_AddBoolToObject(run->snapshot, "wait_timed_out", timed_out);
	if (timed_out && !in->continue_on_timeout) {
		action_note(run, in, "timed out", now(r), now(r));
		run_finish(r, run, "stopped: the wait timed out");
		return;
	}
	action_note(run, in, timed_out ? "timed out, continuing" : "done", now(r), now(r));
	run->state = R_READY;
	run->pc++;
	run_persist(r, run);
	run_step(r, run);
}

/* One waiting run and a change of the attribute its wait watches: start or
 * break its for-hold; true when the wait is over now. */
static bool wait_state_hit(struct rules *r, struct run *run, const cJSON *old, const cJSON *cur)
{
	struct trigger *t = run->rule->prog[run->pc].wait;
	bool keep;
	bool hit = state_matches(t, old, cur, &keep);
	if (run->wait_since && !keep) {
		/* the hold broke: back to waiting, timeout unchanged */
		run->wait_since = 0;
		run->seq = ++r->next_seq;
		if (run->deadline >= 0)
			heap_push(r, run->deadline, run->seq, K_RUN, run, run->rule);
		run_persist(r, run);
	}
	if (!hit)
		return false;
	if (t->for_ms <= 0)
		return true;
	if (!run->wait_since) {
		run->wait_since = now(r);
		int64_t due = run->wait_since + t->for_ms;
		int64_t at = run->deadline >= 0 && run->deadline < due ? run->deadline : due;
		run->seq = ++r->next_seq;
		heap_push(r, at, run->seq, K_RUN, run, run->rule);
		run_persist(r, run);
	}
	return false;
}

static bool waits_on(const struct run *run, const struct device *dev, const char *attr)
{
	const struct trigger *t = run->rule->prog[run->pc].wait;
	return (t->type == T_STATE || t->type == T_NUMERIC) && strcmp(t->device, dev->id) == 0 &&
	       strcmp(t->attribute, attr) == 0;
}

/* Waits begun after mark (by this very change) are not finished by it. A
 * finished wait runs actions that may end other runs (a restart), so the
 * walk starts over from the head; handling a run twice changes nothing. */
static void check_waits_state(struct rules *r, const struct device *dev, const char *attr,
			      const cJSON *old, const cJSON *cur, uint64_t mark)
{
	struct run *run = r->waiting;
	while (run) {
		if (run->wait_mark <= mark && waits_on(run, dev, attr) &&
		    wait_state_hit(r, run, old, cur)) {
			wait_done(r, run, false);
			run = r->waiting;
		} else {
			run = run->wait_next;
		}
	}
}

/* -- events in ------------------------------------------------------------------------------- */

static void watch_key(char *key, size_t len, const char *device, const char *attr)
{
	snprintf(key, len, "%s\x1f%s", device, attr ? attr : "");
}

void rules_on_state(struct rules *r, const struct device *dev, const char *const *changed,
		    size_t n_changed)
{
	for (size_t i = 0; i < n_changed; i++) {
		char key[300];
		watch_key(key, sizeof(key), dev->id, changed[i]);
		struct watch *w = map_get(&r->watches, key);
		const cJSON *cur = cJSON_GetObjectItemCaseSensitive(dev->state, changed[i]);
		cJSON *old = w ? w->last : NULL;
		uint64_t mark = r->next_seq;
		if (w) {
			w->last = cur ? cJSON_Duplicate(cur, 1) : NULL;
			/* refs without a trigger only keep last for waits */
			for (size_t k = 0; k < w->n; k++)
				if (w->refs[k].trigger)
					check_state_trigger(r, w->refs[k].trigger, dev, old, cur);
		}
		if (r->waiting)
			check_waits_state(r, dev, changed[i], old, cur, mark);
		cJSON_Delete(old);
	}
}

static bool match_object(const cJSON *match, const cJSON *data)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, match)
	{
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, m->string);
		if (!rules_value_matches(m, v))
			return false;
	}
	return true;
}

static bool event_matches(const struct trigger *t, const struct device *dev, const char *type,
			  const cJSON *data)
{
	return t->type == T_EVENT && strcmp(t->device, dev->id) == 0 && strcmp(t->event, type) == 0 &&
	       match_object(t->match, data);
}

static cJSON *snapshot_data(const struct trigger *t, const cJSON *data)
{
	cJSON *s = snapshot_new(t);
	if (s && data)
		cap_json_put(s, "data", cJSON_Duplicate(data, 1));
	return s;
}

typedef bool (*hit_fn)(const struct trigger *t, const void *arg);

/* Fire every indexed trigger the event hits, and finish every wait it
 * satisfies. */
static void fire_matching(struct rules *r, const struct tref *refs, size_t n, hit_fn hit,
			  const void *arg, const cJSON *data)
{
	uint64_t mark = r->next_seq;
	for (size_t k = 0; k < n; k++) {
		struct trigger *t = refs[k].trigger;
		if (t && hit(t, arg)) {
			cJSON *snap = snapshot_data(t, data);
			if (snap)
				fire(r, t, snap, false);
		}
	}
	/* as check_waits_state: only waits older than this event, and start
	 * over after each, whose actions may have ended other runs */
	struct run *run = r->waiting;
	while (run) {
		if (run->wait_mark <= mark && hit(run->rule->prog[run->pc].wait, arg)) {
			wait_done(r, run, false);
			run = r->waiting;
		} else {
			run = run->wait_next;
		}
	}
}

static void device_level(struct rules *r, const struct device *dev, hit_fn hit, const void *arg,
			 const cJSON *data)
{
	char key[300];
	watch_key(key, sizeof(key), dev->id, NULL);
	struct watch *w = map_get(&r->watches, key);
	fire_matching(r, w ? w->refs : NULL, w ? w->n : 0, hit, arg, data);
}

struct event_arg {
	const struct device *dev;
	const char *type;
	const cJSON *data;
	bool online;
};

static bool event_hit(const struct trigger *t, const void *arg)
{
	const struct event_arg *a = arg;
	return event_matches(t, a->dev, a->type, a->data);
}

void rules_on_event(struct rules *r, const struct device *dev, const char *type, const cJSON *data)
{
	struct event_arg a = {.dev = dev, .type = type, .data = data};
	device_level(r, dev, event_hit, &a, data);
}

static bool available_hit(const struct trigger *t, const void *arg)
{
	const struct event_arg *a = arg;
	return t->type == T_AVAILABLE && strcmp(t->device, a->dev->id) == 0 && t->online == a->online;
}

void rules_on_availability(struct rules *r, const struct device *dev, bool online)
{
	cJSON *data = cJSON_CreateObject();
	if (!data)
		return;
	cJSON_AddStringToObject(data, "availability", online ? "online" : "offline");
	struct event_arg a = {.dev = dev, .online = online};
	device_level(r, dev, available_hit, &a, data);
	cJSON_Delete(data);
}

struct mqtt_arg {
	const char *topic;
	const cJSON *payload;
};

static bool mqtt_hit(const struct trigger *t, const void *arg)
{
	const struct mqtt_arg *a = arg;
	if (t->type != T_MQTT || !rules_topic_matches(t->filter, a->topic))
		return false;
	return !t->match || (cJSON_IsObject(a->payload) && match_object(t->match, a->payload));
}

static cJSON *mqtt_data(const char *topic, const char *payload, size_t len, cJSON *parsed)
{
	cJSON *data = cJSON_IsObject(parsed) ? cJSON_Duplicate(parsed, 1) : cJSON_CreateObject();
	if (!data)
		return NULL;
	cJSON_AddStringToObject(data, "topic", topic);
	char *text = strndup(payload, len);
	if (text) {
		cJSON_AddStringToObject(data, "payload", text);
		free(text);
	}
	return data;
}

void rules_on_mqtt(struct rules *r, const char *topic, const char *payload, size_t len)
{
	if (!r->n_mqtt && !r->waiting)
		return;
	cJSON *parsed = len <= 65536 ? cJSON_ParseWithLength(payload, len) : NULL;
	cJSON *data = mqtt_data(topic, payload, len, parsed);
	struct mqtt_arg a = {topic, parsed};
	if (data)
		fire_matching(r, r->mqtt, r->n_mqtt, mqtt_hit, &a, data);
	cJSON_Delete(parsed);
	cJSON_Delete(data);
}

/* -- time --------------------------------------------------------------------------------------- */

static int next_occurrence(struct rules *r, const struct trigger *t, int64_t after, int64_t *out)
{
	double lat, lon;
	switch (t->type) {
	case T_TIME:
		return timeutil_next_time_of_day(after, t->at_s, t->weekdays, out);
	case T_CRON:
		return cron_next(&t->cron, after, out);
	case T_SUN:
		if (!r->host.location(r->host.user, &lat, &lon))
			return -ENOENT;
		return sun_next(lat, lon, (enum sun_event)t->sun_event, t->offset_ms, after, out);
	default:
		return -EINVAL;
	}
}

static void schedule(struct rules *r, struct trigger *t, int64_t after)
{
	int64_t at;
	t->seq = ++r->next_seq;
	if (next_occurrence(r, t, after, &at) == 0) {
		t->next_ms = at;
		heap_push(r, at, t->seq, K_SCHED, t, t->rule);
	}
}

static void due_hold(struct rules *r, struct trigger *t)
{
	cJSON *snap = t->pending;
	t->pending = NULL;
	bool missed = t->hold_missed;
	t->hold_missed = false;
	hold_cancel(r, t);
	if (snap && missed)
		cJSON_AddBoolToObject(snap, "missed", true);
	if (snap)
		fire(r, t, snap, missed);
}

static void due_run(struct rules *r, struct run *run)
{
	if (run->state == R_DELAY) {
		run->state = R_READY;
		run->deadline = -1;
		run->seq = ++r->next_seq;
		action_note(run, &run->rule->prog[run->pc - 1], "delay over", now(r), now(r));
		run_persist(r, run);
		run_step(r, run);
		return;
	}
	if (run->state != R_WAIT)
		return;
	const struct trigger *t = run->rule->prog[run->pc].wait;
	bool held = run->wait_since && now(r) >= run->wait_since + t->for_ms;
	wait_done(r, run, !held);
}

void rules_tick(struct rules *r)
{
	int64_t t = now(r);
	/* bounded: an entry re-armed for "now" waits for the next tick */
	size_t budget = r->n_heap + 16;
	while (r->n_heap && r->heap[0].deadline <= t && budget--) {
		struct heap_entry e = r->heap[0];
		heap_pop(r);
		if (!entry_valid(&e))
			continue;
		struct trigger *tr = e.ptr;
		cJSON *snap;
		switch (e.kind) {
		case K_HOLD:
			due_hold(r, tr);
			break;
		case K_DEBOUNCE:
			tr->debounce_seq = ++r->next_seq;
			snap = tr->debounced;
			tr->debounced = NULL;
			if (snap && tr->rule->enabled)
				run_rule(r, tr->rule, snap, true, false);
			cJSON_Delete(snap);
			break;
		case K_SCHED:
			snap = snapshot_new(tr);
			if (snap) {
				cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(snap, "data"),
							"scheduled", (double)e.deadline);
				fire(r, tr, snap, t - e.deadline > 60000);
			}
			/* after downtime, no storm of catch-up firings */
			schedule(r, tr, e.deadline > t ? e.deadline : t);
			break;
		case K_RUN:
			due_run(r, e.ptr);
			break;
		}
	}
}

/* -- the rule set ------------------------------------------------------------------------------ */

/* fires false: a wait's trigger, indexed only so last tracks its value. */
static int watch_add(struct rules *r, struct rule *rule, struct trigger *t, bool fires)
{
	char key[300];
	bool device_level_only = t->type == T_EVENT || t->type == T_AVAILABLE;
	watch_key(key, sizeof(key), t->device, device_level_only ? NULL : t->attribute);
	struct watch *w = map_get(&r->watches, key);
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w || map_put(&r->watches, key, w)) {
			free(w);
			return -ENOMEM;
		}
		const struct device *dev = registry_by_id(r->reg, t->device);
		const cJSON *cur = dev && t->attribute
					   ? cJSON_GetObjectItemCaseSensitive(dev->state, t->attribute)
					   : NULL;
		w->last = cur ? cJSON_Duplicate(cur, 1) : NULL;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4;
		struct tref *refs = realloc(w->refs, cap * sizeof(*refs));
		if (!refs)
			return -ENOMEM;
		w->refs = refs;
		w->cap = cap;
	}
	w->refs[w->n++] = (struct tref){rule, fires ? t : NULL};
	return 0;
}

static void watch_free(void *p)
{
	struct watch *w = p;
	cJSON_Delete(w->last);
	free(w->refs);
	free(w);
}

static void watch_remove(struct rules *r, const struct rule *rule, const struct trigger *t)
{
	char key[300];
	bool device_level_only = t->type == T_EVENT || t->type == T_AVAILABLE;
	watch_key(key, sizeof(key), t->device, device_level_only ? NULL : t->attribute);
	struct watch *w = map_get(&r->watches, key);
	if (!w)
		return;
	size_t k = 0;
	for (size_t i = 0; i < w->n; i++)
		if (w->refs[i].rule != rule)
			w->refs[k++] = w->refs[i];
	w->n = k;
	if (!w->n) {
		map_del(&r->watches, key);
		watch_free(w);
	}
}

static int index_rule(struct rules *r, struct rule *rule)
{
	for (size_t i = 0; i < rule->n_triggers; i++) {
		struct trigger *t = &rule->triggers[i];
		int rc = 0;
		switch (t->type) {
		case T_STATE:
		case T_NUMERIC:
		case T_EVENT:
		case T_AVAILABLE:
			rc = watch_add(r, rule, t, true);
			break;
		case T_MQTT:
			if (r->n_mqtt == r->cap_mqtt) {
				size_t cap = r->cap_mqtt ? r->cap_mqtt * 2 : 8;
				struct tref *m = realloc(r->mqtt, cap * sizeof(*m));
				if (!m)
					return -ENOMEM;
				r->mqtt = m;
				r->cap_mqtt = cap;
			}
			r->mqtt[r->n_mqtt++] = (struct tref){rule, t};
			r->host.mqtt_watch(r->host.user, t->filter, true);
			break;
		case T_TIME:
		case T_CRON:
		case T_SUN:
			if (r->started)
				schedule(r, t, now(r));
			break;
		case T_START:
			break;
		}
		if (rc)
			return rc;
	}
	/* a wait's from/to and crossings need the attribute's last value */
	for (size_t i = 0; i < rule->n_prog; i++) {
		struct trigger *t = rule->prog[i].wait;
		int rc = 0;
		if (rule->prog[i].op == OP_WAIT && (t->type == T_STATE || t->type == T_NUMERIC))
			rc = watch_add(r, rule, t, false);
		if (rc)
			return rc;
	}
	return 0;
}

static void unindex_rule(struct rules *r, struct rule *rule)
{
	for (size_t i = 0; i < rule->n_prog; i++) {
		struct trigger *t = rule->prog[i].wait;
		if (rule->prog[i].op == OP_WAIT && (t->type == T_STATE || t->type == T_NUMERIC))
			watch_remove(r, rule, t);
	}
	for (size_t i = 0; i < rule->n_triggers; i++) {
		struct trigger *t = &rule->triggers[i];
		if (t->type == T_STATE || t->type == T_NUMERIC || t->type == T_EVENT ||
		    t->type == T_AVAILABLE)
			watch_remove(r, rule, t);
		if (t->type == T_MQTT)
			r->host.mqtt_watch(r->host.user, t->filter, false);
		hold_cancel(r, t);
	}
	size_t k = 0;
	for (size_t i = 0; i < r->n_mqtt; i++)
		if (r->mqtt[i].rule != rule)
			r->mqtt[k++] = r->mqtt[i];
	r->n_mqtt = k;
}

static void stop_runs(struct rules *r, struct rule *rule)
{
	while (rule->runs) {
		struct run *run = rule->runs;
		rule->runs = run->next;
		run_free(r, run);
	}
	while (rule->queue) {
		struct run *run = rule->queue;
		rule->queue = run->next;
		run_free(r, run);
	}
}

static void unlink_rule(struct rules *r, struct rule *rule)
{
	struct rule *prev = NULL;
	for (struct rule **p = &r->head; *p; prev = *p, p = &(*p)->next) {
		if (*p == rule) {
			*p = rule->next;
			if (r->tail == rule)
				r->tail = prev;
			break;
		}
	}
	map_del(&r->by_id, rule->id);
}

static void drop_rule(struct rules *r, struct rule *rule)
{
	stop_runs(r, rule);
	unindex_rule(r, rule);
	heap_purge_rule(r, rule);
	unlink_rule(r, rule);
	rule_free(rule);
}

static bool needs_location(const cJSON *node)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(node, "type");
	if (cJSON_IsString(type) && strcmp(type->valuestring, "sun") == 0)
		return true;
	const cJSON *child;
	cJSON_ArrayForEach(child, node) if ((cJSON_IsObject(child) || cJSON_IsArray(child)) &&
					    needs_location(child)) return true;
	return false;
}

int rules_add(struct rules *r, const cJSON *definition, enum rules_source source, char *err,
	      size_t err_len)
{
	char why[400];
	struct rule *rule = NULL;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(definition, "id");
	const char *name = cJSON_IsString(id) ? id->valuestring : "?";
	int rc = rule_compile(definition, r->reg, &rule, why, sizeof(why));
	if (rc) {
		snprintf(err, err_len, "rule '%.64s': %s", name, why);
		return rc;
	}
	double lat, lon;
	if (needs_location(rule->definition) && !r->host.location(r->host.user, &lat, &lon)) {
		snprintf(err, err_len,
			 "rule '%s': sun triggers and conditions need [location] latitude and "
			 "longitude in hearth.conf",
			 rule->id);
		rule_free(rule);
		return -EINVAL;
	}
	struct rule *old = map_get(&r->by_id, rule->id);
	if (old && old->source == source && cJSON_Compare(old->definition, rule->definition, 1)) {
		rule_free(rule);
		return 0;
	}
	if (old && old->source == RULES_SOURCE_FILE && source == RULES_SOURCE_API) {
		snprintf(err, err_len,
			 "rule '%s' comes from a file in rules.dir; change it there (the file wins)",
			 rule->id);
		rule_free(rule);
		return -EPERM;
	}
	if (!old && map_get(&r->by_id, rule->id) == NULL && r->by_id.count >= RULES_MAX) {
		snprintf(err, err_len, "rule '%s': there are %d rules already, the limit", rule->id,
			 RULES_MAX);
		rule_free(rule);
		return -ENOSPC;
	}
	rule->source = source;
	if (old) {
		rule->fired_count = old->fired_count;
		rule->last_fired_ms = old->last_fired_ms;
		cJSON_Delete(rule->traces);
		rule->traces = old->traces;
		old->traces = NULL;
		drop_rule(r, old);
	}
	if ((rc = map_put(&r->by_id, rule->id, rule)) || (rc = index_rule(r, rule))) {
		unindex_rule(r, rule);
		map_del(&r->by_id, rule->id);
		rule_free(rule);
		snprintf(err, err_len, "out of memory");
		return rc;
	}
	/* kept in insertion order for listings; the tail keeps adding O(1) */
	if (r->tail)
		r->tail->next = rule;
	else
		r->head = rule;
	r->tail = rule;
	r->host.changed(r->host.user);
	return 0;
}

int rules_remove(struct rules *r, const char *id)
{
	struct rule *rule = map_get(&r->by_id, id);
	if (!rule)
		return -ENOENT;
	drop_rule(r, rule);
	r->host.changed(r->host.user);
	return 0;
}

void rules_remove_source(struct rules *r, enum rules_source source)
{
	struct rule *next;
	for (struct rule *rule = r->head; rule; rule = next) {
		next = rule->next;
		if (rule->source == source)
			drop_rule(r, rule);
	}
	r->host.changed(r->host.user);
}

int rules_enable(struct rules *r, const char *id, bool enabled)
{
	struct rule *rule = map_get(&r->by_id, id);
	if (!rule)
		return -ENOENT;
	if (cap_json_put(rule->definition, "enabled", cJSON_CreateBool(enabled)) != 0)
		return -ENOMEM;
	rule->enabled = enabled;
	if (!enabled) {
		for (size_t i = 0; i < rule->n_triggers; i++)
			hold_cancel(r, &rule->triggers[i]);
	}
	r->host.changed(r->host.user);
	return 0;
}

int rules_trigger(struct rules *r, const char *id, bool check_conditions, char *err, size_t len)
{
	struct rule *rule = map_get(&r->by_id, id);
	if (!rule) {
		snprintf(err, len, "no rule has the id '%.64s'", id);
		return -ENOENT;
	}
	if (r->action_depth >= RULE_ACTION_DEPTH_MAX) {
		snprintf(err, len, "rules trigger each other more than %d deep", RULE_ACTION_DEPTH_MAX);
		return -ELOOP;
	}
	cJSON *snap = cJSON_CreateObject();
	if (!snap)
		return -ENOMEM;
	cJSON_AddStringToObject(snap, "id", "manual");
	cJSON_AddStringToObject(snap, "type", "manual");
	cJSON_AddObjectToObject(snap, "data");
	r->action_depth++;
	int rc = run_rule(r, rule, snap, check_conditions, false);
	r->action_depth--;
	cJSON_Delete(snap);
	return rc;
}

static int rule_action(struct rules *r, const struct instr *in, char *err, size_t len)
{
	int rc;
	switch (in->verb) {
	case VERB_ENABLE:
	case VERB_DISABLE:
		rc = rules_enable(r, in->target_rule, in->verb == VERB_ENABLE);
		if (rc)
			snprintf(err, len, "no rule has the id '%s'", in->target_rule);
		return rc;
	default:
		return rules_trigger(r, in->target_rule, true, err, len);
	}
}

bool rules_exists(const struct rules *r, const char *id)
{
	return map_get(&r->by_id, id) != NULL;
}

size_t rules_count(const struct rules *r)
{
	return r->by_id.count;
}

enum rules_source rules_source_of(const struct rules *r, const char *id)
{
	struct rule *rule = map_get(&r->by_id, id);
	return rule ? rule->source : RULES_SOURCE_API;
}

cJSON *rules_definition(const struct rules *r, const char *id)
{
	struct rule *rule = map_get(&r->by_id, id);
	return rule ? cJSON_Duplicate(rule->definition, 1) : NULL;
}

cJSON *rules_to_json(const struct rules *r)
{
	cJSON *a = cJSON_CreateArray();
	for (struct rule *rule = r->head; rule && a; rule = rule->next) {
		cJSON *d = cJSON_Duplicate(rule->definition, 1);
		if (!d)
			break;
		rule_definition_show(d, r->reg);
		cJSON_DeleteItemFromObjectCaseSensitive(d, "enabled");
		cJSON_AddBoolToObject(d, "enabled", rule->enabled);
		cJSON_AddStringToObject(d, "source", rule->source == RULES_SOURCE_FILE ? "file" : "api");
		cJSON_AddNumberToObject(d, "fired_count", (double)rule->fired_count);
		cJSON_AddNumberToObject(d, "last_fired", (double)rule->last_fired_ms);
		size_t running = 0;
		for (struct run *x = rule->runs; x; x = x->next)
			running++;
		cJSON_AddNumberToObject(d, "running", (double)running);
		cJSON_AddItemToArray(a, d);
	}
	return a;
}

cJSON *rules_traces(const struct rules *r, const char *id)
{
	struct rule *rule = map_get(&r->by_id, id);
	if (!rule)
		return NULL;
	cJSON *all = cJSON_Duplicate(rule->traces, 1);
	/* runs still going come first: "why is the light still on?" */
	for (struct run *run = rule->runs; run && all; run = run->next) {
		cJSON *t = cJSON_Duplicate(run->trace, 1);
		if (!t)
			break;
		static const char *const states[] = {"running", "waiting for its delay",
						     "waiting for its wait trigger", "queued",
						     "done"};
		char what[200];
		const struct instr *in = (size_t)run->pc < rule->n_prog ? &rule->prog[run->pc] : NULL;
		snprintf(what, sizeof(what), "%s (at %s)", states[run->state],
			 run->state == R_DELAY && run->pc > 0 ? rule->prog[run->pc - 1].path
			 : in				      ? in->path
							      : "the end");
		cJSON_AddStringToObject(t, "outcome", what);
		cJSON_InsertItemInArray(all, 0, t);
	}
	return all;
}

void rules_set_fired(struct rules *r, const char *id, uint64_t count, int64_t last_ms)
{
	struct rule *rule = map_get(&r->by_id, id);
	if (rule) {
		rule->fired_count = count;
		rule->last_fired_ms = last_ms;
	}
}

const struct rules_origin *rules_acting(const struct rules *r)
{
	return r && r->acting.rule_id ? &r->acting : NULL;
}

static bool trace_at(const cJSON *trace, int64_t ms)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(trace, "time");
	return cJSON_IsNumber(t) && (int64_t)t->valuedouble == ms;
}

const cJSON *rules_trace_amend(struct rules *r, const struct rules_origin *origin,
			       const char *error)
{
	struct rule *rule = origin && origin->rule_id ? map_get(&r->by_id, origin->rule_id) : NULL;
	if (!rule)
		return NULL;
	cJSON *trace = NULL, *t;
	for (struct run *run = rule->runs; run && !trace; run = run->next)
		if (run->trace && trace_at(run->trace, origin->trace_ms))
			trace = run->trace;
	cJSON_ArrayForEach(t, rule->traces)
	{
		if (!trace && trace_at(t, origin->trace_ms))
			trace = t;
	}
	if (!trace)
		return NULL;
	cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(trace, "actions"))
	{
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(a, "path");
		if (!cJSON_IsString(path) || strcmp(path->valuestring, origin->path) != 0)
			continue;
		cap_json_put(a, "result", cJSON_CreateString("unconfirmed"));
		/* one action may send several commands (a scene): every error stays */
		cJSON *old = cJSON_GetObjectItemCaseSensitive(a, "error");
		if (cJSON_IsString(old)) {
			size_t n = strlen(old->valuestring) + strlen(error) + 3;
			char *both = malloc(n);
			if (both) {
				snprintf(both, n, "%s; %s", old->valuestring, error);
				cap_json_put(a, "error", cJSON_CreateString(both));
				free(both);
			}
		} else {
			cJSON_AddStringToObject(a, "error", error);
		}
		return trace;
	}
	return NULL;
}

void rules_trace_restore(struct rules *r, const char *id, const cJSON *trace)
{
	struct rule *rule = map_get(&r->by_id, id);
	if (!rule)
		return;
	/* stored oldest first: each one goes in front */
	cJSON_InsertItemInArray(rule->traces, 0, cJSON_Duplicate(trace, 1));
	while (cJSON_GetArraySize(rule->traces) > RULES_TRACES_KEPT)
		cJSON_DeleteItemFromArray(rule->traces, RULES_TRACES_KEPT);
}

int rules_replace_device(struct rules *r, const char *old_id, const char *new_id)
{
	int changed = 0;
	char err[400];
	/* recompiling re-indexes; collect first, the list changes under us */
	cJSON *defs = cJSON_CreateArray();
	for (struct rule *rule = r->head; rule; rule = rule->next) {
		cJSON *d = cJSON_Duplicate(rule->definition, 1);
		if (d && rule_definition_rebind(d, old_id, new_id) > 0) {
			cJSON_AddNumberToObject(d, "__source", rule->source);
			cJSON_AddItemToArray(defs, d);
		} else {
			cJSON_Delete(d);
		}
	}
	cJSON *d;
	cJSON_ArrayForEach(d, defs)
	{
		enum rules_source src =
			(enum rules_source)cJSON_GetObjectItemCaseSensitive(d, "__source")->valueint;
		cJSON_DeleteItemFromObjectCaseSensitive(d, "__source");
		if (rules_add(r, d, src, err, sizeof(err)) == 0)
			changed++;
	}
	cJSON_Delete(defs);
	return changed;
}

int rules_links(const struct rules *r, const char *id, cJSON **reads, cJSON **writes)
{
	struct rule *rule = map_get(&r->by_id, id);
	if (!rule)
		return -ENOENT;
	*reads = cJSON_CreateArray();
	*writes = cJSON_CreateArray();
	if (!*reads || !*writes) {
		cJSON_Delete(*reads);
		cJSON_Delete(*writes);
		return -ENOMEM;
	}
	rule_definition_links(rule->definition, *reads, *writes);
	return 0;
}

cJSON *rules_ids(const struct rules *r)
{
	cJSON *a = cJSON_CreateArray();
	for (struct rule *rule = r->head; rule && a; rule = rule->next)
		cJSON_AddItemToArray(a, cJSON_CreateString(rule->id));
	return a;
}

void rules_start(struct rules *r)
{
	r->started = true;
	for (struct rule *rule = r->head; rule; rule = rule->next) {
		for (size_t i = 0; i < rule->n_triggers; i++) {
			struct trigger *t = &rule->triggers[i];
			if (t->type == T_TIME || t->type == T_CRON || t->type == T_SUN)
				schedule(r, t, now(r));
			if (t->type == T_START && rule->enabled) {
				cJSON *snap = snapshot_new(t);
				if (snap)
					fire(r, t, snap, false);
			}
		}
	}
}

/* -- durable timers -------------------------------------------------------------------------- */

static int restore_hold(struct rules *r, struct rule *rule, const cJSON *rec)
{
	const cJSON *ti = cJSON_GetObjectItemCaseSensitive(rec, "trigger");
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(rec, "since");
	const cJSON *snap = cJSON_GetObjectItemCaseSensitive(rec, "snapshot");
	if (!cJSON_IsNumber(ti) || ti->valueint < 0 || (size_t)ti->valueint >= rule->n_triggers ||
	    !cJSON_IsNumber(since) || !cJSON_IsObject(snap))
		return -EINVAL;
	struct trigger *t = &rule->triggers[ti->valueint];
	if (!t->for_ms || !t->device)
		return -EINVAL;
	/* still holding? the value must still match and must not have changed
	 * since the hold began */
	const struct device *dev = registry_by_id(r->reg, t->device);
	const cJSON *cur = dev ? cJSON_GetObjectItemCaseSensitive(dev->state, t->attribute) : NULL;
	const cJSON *ts = dev && dev->state_ms
				  ? cJSON_GetObjectItemCaseSensitive(dev->state_ms, t->attribute)
				  : NULL;
	bool keep = t->type == T_NUMERIC ? in_range(t, cur) : rules_value_matches(t->to, cur);
	if (!keep || (cJSON_IsNumber(ts) && ts->valuedouble > since->valuedouble))
		return -ESTALE;
	cJSON *copy = cJSON_Duplicate(snap, 1);
	if (!copy)
		return -ENOMEM;
	hold_start(r, t, copy, (int64_t)since->valuedouble);
	t->hold_missed = (int64_t)since->valuedouble + t->for_ms <= now(r);
	return 0;
}

/* The run number in a key "run:<rule>:<num>", or 0. */
static uint64_t key_run_num(const char *key)
{
	const char *colon = key ? strrchr(key, ':') : NULL;
	if (!colon || colon[1] < '1' || colon[1] > '9')
		return 0;
	char *end;
	unsigned long long n = strtoull(colon + 1, &end, 10);
	return *end == '\0' ? (uint64_t)n : 0;
}

/* A restored wait's for-hold goes on if its state has held since. */
static void restore_wait_hold(struct rules *r, struct run *run, const cJSON *rec)
{
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(rec, "wait_since");
	const struct trigger *t = run->rule->prog[run->pc].wait;
	if (!cJSON_IsNumber(ws) || ws->valuedouble <= 0 || t->for_ms <= 0 || !t->device)
		return;
	const struct device *dev = registry_by_id(r->reg, t->device);
	const cJSON *cur = dev ? cJSON_GetObjectItemCaseSensitive(dev->state, t->attribute) : NULL;
	const cJSON *ts = dev ? cJSON_GetObjectItemCaseSensitive(dev->state_ms, t->attribute) : NULL;
	bool keep = t->type == T_NUMERIC ? in_range(t, cur) : rules_value_matches(t->to, cur);
	if (!keep || (cJSON_IsNumber(ts) && ts->valuedouble > ws->valuedouble))
		return;
	run->wait_since = (int64_t)ws->valuedouble;
}

static int restore_run(struct rules *r, struct rule *rule, const char *key, const cJSON *rec)
{
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(rec, "state");
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(rec, "pc");
	const cJSON *deadline = cJSON_GetObjectItemCaseSensitive(rec, "deadline");
	const cJSON *counters = cJSON_GetObjectItemCaseSensitive(rec, "counters");
	if (!cJSON_IsString(state) || !cJSON_IsNumber(pc) || pc->valueint < 0 ||
	    (size_t)pc->valueint > rule->n_prog || !cJSON_IsNumber(deadline))
		return -EINVAL;
	struct run *run = run_new(r, rule, cJSON_GetObjectItemCaseSensitive(rec, "trigger"));
	if (!run)
		return -ENOMEM;
	/* keep the number: the record is forgotten under the key it has */
	uint64_t num = key_run_num(key);
	if (num) {
		run->num = num;
		if (r->next_run < num)
			r->next_run = num;
	}
	run->wait_mark = run->seq;
	run->pc = pc->valueint;
	int i = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, counters) if (i < RULES_SLOTS_MAX && cJSON_IsNumber(c))
		run->counters[i++] = c->valueint;
	const cJSON *started = cJSON_GetObjectItemCaseSensitive(rec, "started");
	if (cJSON_IsNumber(started))
		run->started_ms = (int64_t)started->valuedouble;
	run->deadline = (int64_t)deadline->valuedouble;
	run->missed = run->deadline >= 0 && run->deadline < now(r);
	cJSON_AddBoolToObject(run->trace, "resumed", true);
	if (strcmp(state->valuestring, "queued") == 0) {
		run->state = R_QUEUED;
		struct run **p = &rule->queue;
		while (*p)
			p = &(*p)->next;
		*p = run;
		return 0;
	}
	struct run **p = &rule->runs;
	while (*p)
		p = &(*p)->next;
	*p = run;
	if (strcmp(state->valuestring, "delay") == 0) {
		run->state = R_DELAY;
	} else if (strcmp(state->valuestring, "wait") == 0 && (size_t)run->pc < rule->n_prog &&
		   rule->prog[run->pc].op == OP_WAIT) {
		run->state = R_WAIT;
		run->wait_next = r->waiting;
		r->waiting = run;
		restore_wait_hold(r, run, rec);
	} else {
		run_free(r, run);
		return -EINVAL;
	}
	int64_t at = run->deadline;
	if (run->wait_since) {
		int64_t due = run->wait_since + rule->prog[run->pc].wait->for_ms;
		if (at < 0 || due < at)
			at = due;
	}
	if (at >= 0)
		heap_push(r, at, run->seq, K_RUN, run, rule);
	return 0;
}

int rules_restore_timer(struct rules *r, const char *key, const char *rule_id,
			const cJSON *record)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(record, "kind");
	struct rule *rule = rule_id ? map_get(&r->by_id, rule_id) : NULL;
	if (!rule || !cJSON_IsString(kind))
		return -ENOENT;
	if (strcmp(kind->valuestring, "hold") == 0)
		return restore_hold(r, rule, record);
	if (strcmp(kind->valuestring, "run") == 0)
		return restore_run(r, rule, key, record);
	return -EINVAL;
}

/* -- life cycle -------------------------------------------------------------------------------- */

struct rules *rules_new(const struct rules_host *host, struct registry *reg)
{
	struct rules *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->host = *host;
	r->reg = reg;
	return r;
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	struct rule *next;
	for (struct rule *rule = r->head; rule; rule = next) {
		next = rule->next;
		/* runs are freed without forgetting their durable records */
		while (rule->runs) {
			struct run *run = rule->runs;
			rule->runs = run->next;
			cJSON_Delete(run->snapshot);
			cJSON_Delete(run->trace);
			free(run);
		}
		while (rule->queue) {
			struct run *run = rule->queue;
			rule->queue = run->next;
			cJSON_Delete(run->snapshot);
			cJSON_Delete(run->trace);
			free(run);
		}
		rule_free(rule);
	}
	map_free(&r->by_id, NULL);
	map_free(&r->watches, watch_free);
	free(r->mqtt);
	free(r->heap);
	free(r);
}

void rules_get_stats(const struct rules *r, struct rules_stats *out)
{
	*out = r->stats;
	out->timers_pending = r->n_heap;
}
