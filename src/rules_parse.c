#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capability.h"
#include "cron.h"
#include "rules_internal.h"
#include "sun.h"
#include "timeutil.h"

#define PATH_MAX_LEN 160
#define TRIGGERS_MAX 32
#define CONDITIONS_MAX 64
#define DEPTH_MAX 8

/* Compilation state: where we are in the JSON for error messages. */
struct pc {
	struct registry *reg;
	char *err;
	size_t err_len;
	struct rule *rule;
	int depth;
	int slots;
};

static int fail(struct pc *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct pc *c, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->err_len, "%s: %s", path, msg);
	return -EINVAL;
}

/* Paths longer than PATH_MAX_LEN are cut: they only label error messages. */
static void sub(char *out, const char *path, const char *key)
{
	if (snprintf(out, PATH_MAX_LEN, "%s%s%s", path, path[0] ? "." : "", key) >= PATH_MAX_LEN)
		out[PATH_MAX_LEN - 1] = '\0';
}

static void idx(char *out, const char *path, const char *key, int i)
{
	if (snprintf(out, PATH_MAX_LEN, "%s%s%s[%d]", path, path[0] && key[0] ? "." : "", key, i) >=
	    PATH_MAX_LEN)
		out[PATH_MAX_LEN - 1] = '\0';
}

/* Only the listed keys may appear: a typo is an error, not a silent no-op. */
static int only_keys(struct pc *c, const cJSON *o, const char *path, const char *const *keys)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, o)
	{
		bool ok = false;
		for (const char *const *k = keys; *k && !ok; k++)
			ok = strcmp(*k, item->string) == 0;
		if (!ok) {
			char p[PATH_MAX_LEN];
			sub(p, path, item->string);
			return fail(c, p, "unknown key");
		}
	}
	return 0;
}

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

static int get_string(struct pc *c, const cJSON *o, const char *path, const char *key,
		      bool required, const char **out)
{
	const cJSON *v = get(o, key);
	char p[PATH_MAX_LEN];
	sub(p, path, key);
	if (!v) {
		if (required)
			return fail(c, p, "is required");
		*out = NULL;
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 1024)
		return fail(c, p, "must be non-empty text");
	*out = v->valuestring;
	return 0;
}

static int get_duration(struct pc *c, const cJSON *o, const char *path, const char *key,
			bool allow_negative, int64_t *out)
{
	const cJSON *v = get(o, key);
	char p[PATH_MAX_LEN], why[128];
	sub(p, path, key);
	*out = 0;
	if (!v)
		return 0;
	if (cJSON_IsNumber(v)) {
		if (!isfinite(v->valuedouble) || fabs(v->valuedouble) > 400.0 * 86400)
			return fail(c, p, "is not a usable number of seconds");
		*out = (int64_t)llround(v->valuedouble * 1000.0);
	} else if (!cJSON_IsString(v) ||
		   timeutil_duration_parse(v->valuestring, out, why, sizeof(why)) != 0) {
		return fail(c, p, "is not a duration such as \"90s\", \"5m\", \"1h30m\" or \"00:05:00\"");
	}
	if (*out < 0 && !allow_negative)
		return fail(c, p, "must not be negative");
	return 0;
}

static int get_number(struct pc *c, const cJSON *o, const char *path, const char *key, bool *has,
		      double *out)
{
	const cJSON *v = get(o, key);
	*has = v != NULL;
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v)) {
		char p[PATH_MAX_LEN];
		sub(p, path, key);
		return fail(c, p, "must be a number");
	}
	*out = v->valuedouble;
	return 0;
}

static int dup_to(char **dst, const char *s)
{
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : -ENOMEM;
}

/* Resolve "device" (a name or an id) to an id, writing the id back into the
 * stored definition. */
static int resolve_device(struct pc *c, cJSON *o, const char *path, char **out)
{
	const char *name;
	int rc = get_string(c, o, path, "device", true, &name);
	if (rc)
		return rc;
	const struct device *dev = registry_lookup(c->reg, name);
	char p[PATH_MAX_LEN];
	sub(p, path, "device");
	if (!dev)
		return fail(c, p, "no device is named '%.128s'", name);
	if ((rc = dup_to(out, dev->id)))
		return rc;
	/* in place: cJSON_ReplaceItemInObject, out of memory, can leave the
	 * name, or a member with no key */
	return cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(o, "device"), dev->id)
		       ? 0
		       : -ENOMEM;
}

static int check_attribute(struct pc *c, const char *device_id, const cJSON *o, const char *path,
			   char **out)
{
	const char *attr;
	int rc = get_string(c, o, path, "attribute", true, &attr);
	if (rc)
		return rc;
	const struct device *dev = registry_by_id(c->reg, device_id);
	if (dev && !cap_find(dev->caps, dev->n_caps, attr) &&
	    !cJSON_GetObjectItemCaseSensitive(dev->state, attr)) {
		char p[PATH_MAX_LEN];
		sub(p, path, "attribute");
		return fail(c, p, "%s has no attribute '%.64s'", dev->name, attr);
	}
	return dup_to(out, attr);
}

static int parse_weekdays(struct pc *c, const cJSON *o, const char *path, unsigned *out)
{
	const cJSON *v = get(o, "weekdays");
	*out = 0x7f;
	if (!v)
		return 0;
	char p[PATH_MAX_LEN];
	sub(p, path, "weekdays");
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		return fail(c, p, "must be a list such as [\"mon\", \"fri\"]");
	*out = 0;
	const cJSON *d;
	cJSON_ArrayForEach(d, v)
	{
		unsigned bit;
		if (!cJSON_IsString(d) || timeutil_weekday_parse(d->valuestring, &bit) != 0)
			return fail(c, p, "'%s' is not a day (mon, tue, wed, thu, fri, sat, sun)",
				    cJSON_IsString(d) ? d->valuestring : "?");
		*out |= bit;
	}
	return 0;
}

static int parse_time_of_day(struct pc *c, const cJSON *o, const char *path, const char *key,
			     bool required, int *out)
{
	const char *text;
	int rc = get_string(c, o, path, key, required, &text);
	*out = -1;
	if (rc || !text)
		return rc;
	char why[128];
	if (timeutil_time_of_day_parse(text, out, why, sizeof(why)) != 0) {
		char p[PATH_MAX_LEN];
		sub(p, path, key);
		return fail(c, p, "'%.32s' is not a time of day HH:MM or HH:MM:SS", text);
	}
	return 0;
}

static int parse_sun_event(struct pc *c, const char *text, const char *path, int *out)
{
	if (strcmp(text, "sunrise") == 0)
		*out = SUN_SUNRISE;
	else if (strcmp(text, "sunset") == 0)
		*out = SUN_SUNSET;
	else
		return fail(c, path, "'%.32s' is neither \"sunrise\" nor \"sunset\"", text);
	return 0;
}

static int check_match_object(struct pc *c, const cJSON *o, const char *path, const char *key,
			      cJSON **out)
{
	const cJSON *m = get(o, key);
	if (!m)
		return 0;
	if (!cJSON_IsObject(m)) {
		char p[PATH_MAX_LEN];
		sub(p, path, key);
		return fail(c, p, "must be an object of values to match");
	}
	*out = cJSON_Duplicate(m, 1);
	return *out ? 0 : -ENOMEM;
}

/* -- triggers ---------------------------------------------------------------- */

static const struct {
	const char *name;
	enum trig_type type;
	const char *const keys[10];
} trigger_kinds[] = {
	{"state", T_STATE, {"type", "id", "debounce", "device", "attribute", "from", "to", "for"}},
	{"numeric", T_NUMERIC, {"type", "id", "debounce", "device", "attribute", "above", "below", "for"}},
	{"event", T_EVENT, {"type", "id", "debounce", "device", "event", "action", "match"}},
	{"time", T_TIME, {"type", "id", "debounce", "at", "weekdays"}},
	{"cron", T_CRON, {"type", "id", "debounce", "cron"}},
	{"sun", T_SUN, {"type", "id", "debounce", "event", "offset"}},
	{"mqtt", T_MQTT, {"type", "id", "debounce", "topic", "match"}},
	{"device_available", T_AVAILABLE, {"type", "id", "debounce", "device", "to"}},
	{"start", T_START, {"type", "id"}},
};

static int trigger_device_attr(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	int rc = resolve_device(c, j, path, &t->device);
	if (!rc)
		rc = check_attribute(c, t->device, j, path, &t->attribute);
	if (!rc)
		rc = get_duration(c, j, path, "for", false, &t->for_ms);
	return rc;
}

static int trigger_state(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	int rc = trigger_device_attr(c, j, path, t);
	if (rc)
		return rc;
	if (get(j, "from") && !(t->from = cJSON_Duplicate(get(j, "from"), 1)))
		return -ENOMEM;
	if (get(j, "to") && !(t->to = cJSON_Duplicate(get(j, "to"), 1)))
		return -ENOMEM;
	if (t->for_ms && !t->to)
		return fail(c, path, "'for' needs 'to': the state that has to hold");
	return 0;
}

static int trigger_numeric(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	int rc = trigger_device_attr(c, j, path, t);
	if (!rc)
		rc = get_number(c, j, path, "above", &t->has_above, &t->above);
	if (!rc)
		rc = get_number(c, j, path, "below", &t->has_below, &t->below);
	if (rc)
		return rc;
	if (!t->has_above && !t->has_below)
		return fail(c, path, "needs 'above', 'below' or both");
	if (t->has_above && t->has_below && t->above >= t->below)
		return fail(c, path, "'above' %g is not below 'below' %g: the range is empty",
			    t->above, t->below);
	return 0;
}

static int trigger_event(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	const char *event;
	int rc = resolve_device(c, j, path, &t->device);
	if (!rc)
		rc = get_string(c, j, path, "event", false, &event);
	if (!rc)
		rc = dup_to(&t->event, event ? event : "action");
	if (!rc)
		rc = check_match_object(c, j, path, "match", &t->match);
	if (rc)
		return rc;
	const cJSON *action = get(j, "action");
	if (action) {
		if (!cJSON_IsString(action) && !cJSON_IsArray(action)) {
			char p[PATH_MAX_LEN];
			sub(p, path, "action");
			return fail(c, p, "must be text or a list of texts");
		}
		if (!t->match && !(t->match = cJSON_CreateObject()))
			return -ENOMEM;
		/* a match without its action would take every event */
		cJSON *copy = cJSON_Duplicate(action, 1);
		if (!copy || !cJSON_AddItemToObject(t->match, "action", copy)) {
			cJSON_Delete(copy);
			return -ENOMEM;
		}
	}
	return 0;
}

static int trigger_sun(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	const char *event;
	int rc = get_string(c, j, path, "event", true, &event);
	char p[PATH_MAX_LEN];
	sub(p, path, "event");
	if (!rc)
		rc = parse_sun_event(c, event, p, &t->sun_event);
	if (!rc)
		rc = get_duration(c, j, path, "offset", true, &t->offset_ms);
	if (!rc && (t->offset_ms > SUN_OFFSET_MAX_MS || t->offset_ms < -SUN_OFFSET_MAX_MS)) {
		char op[PATH_MAX_LEN];
		sub(op, path, "offset");
		return fail(c, op, "must be within a day of the event");
	}
	return rc;
}

static int trigger_mqtt(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	const char *topic;
	int rc = get_string(c, j, path, "topic", true, &topic);
	if (rc)
		return rc;
	if (!rules_filter_valid(topic)) {
		char p[PATH_MAX_LEN];
		sub(p, path, "topic");
		return fail(c, p, "'%.64s' is not a valid MQTT topic filter", topic);
	}
	if ((rc = dup_to(&t->filter, topic)))
		return rc;
	return check_match_object(c, j, path, "match", &t->match);
}

static int trigger_available(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	int rc = resolve_device(c, j, path, &t->device);
	if (rc)
		return rc;
	const cJSON *to = get(j, "to");
	char p[PATH_MAX_LEN];
	sub(p, path, "to");
	if (cJSON_IsString(to) && strcmp(to->valuestring, "online") == 0)
		t->online = true;
	else if (cJSON_IsString(to) && strcmp(to->valuestring, "offline") == 0)
		t->online = false;
	else if (cJSON_IsBool(to))
		t->online = cJSON_IsTrue(to);
	else
		return fail(c, p, "must be \"online\" or \"offline\"");
	return 0;
}

static int trigger_body(struct pc *c, cJSON *j, const char *path, struct trigger *t)
{
	char why[128], p[PATH_MAX_LEN];
	const char *text;
	int rc;
	switch (t->type) {
	case T_STATE:
		return trigger_state(c, j, path, t);
	case T_NUMERIC:
		return trigger_numeric(c, j, path, t);
	case T_EVENT:
		return trigger_event(c, j, path, t);
	case T_TIME:
		rc = parse_time_of_day(c, j, path, "at", true, &t->at_s);
		return rc ? rc : parse_weekdays(c, j, path, &t->weekdays);
	case T_CRON:
		if ((rc = get_string(c, j, path, "cron", true, &text)))
			return rc;
		sub(p, path, "cron");
		if (cron_parse(text, &t->cron, why, sizeof(why)) != 0)
			return fail(c, p, "%s", why);
		return 0;
	case T_SUN:
		return trigger_sun(c, j, path, t);
	case T_MQTT:
		return trigger_mqtt(c, j, path, t);
	case T_AVAILABLE:
		return trigger_available(c, j, path, t);
	case T_START:
		return 0;
	}
	return -EINVAL;
}

int trigger_parse(const cJSON *cj, const char *path, struct registry *reg, struct trigger *t,
		  char *err, size_t err_len)
{
	struct pc c = {.reg = reg, .err = err, .err_len = err_len};
	cJSON *j = (cJSON *)cj;
	if (!cJSON_IsObject(j))
		return fail(&c, path, "a trigger must be an object");
	const char *type;
	int rc = get_string(&c, j, path, "type", true, &type);
	if (rc)
		return rc;
	size_t k;
	for (k = 0; k < sizeof(trigger_kinds) / sizeof(trigger_kinds[0]); k++)
		if (strcmp(trigger_kinds[k].name, type) == 0)
			break;
	if (k == sizeof(trigger_kinds) / sizeof(trigger_kinds[0])) {
		char p[PATH_MAX_LEN];
		sub(p, path, "type");
		return fail(&c, p,
			    "unknown trigger type '%.32s' (state, numeric, event, time, cron, sun, "
			    "mqtt, device_available, start)",
			    type);
	}
	t->type = trigger_kinds[k].type;
	if ((rc = only_keys(&c, j, path, trigger_kinds[k].keys)))
		return rc;
	const char *id;
	if ((rc = get_string(&c, j, path, "id", false, &id)) || (rc = dup_to(&t->id, id)))
		return rc;
	if ((rc = get_duration(&c, j, path, "debounce", false, &t->debounce_ms)))
		return rc;
	return trigger_body(&c, j, path, t);
}

void trigger_clear(struct trigger *t)
{
	free(t->id);
	free(t->device);
	free(t->attribute);
	cJSON_Delete(t->from);
	cJSON_Delete(t->to);
	free(t->event);
	cJSON_Delete(t->match);
	free(t->filter);
	cJSON_Delete(t->pending);
	cJSON_Delete(t->debounced);
	memset(t, 0, sizeof(*t));
}

/* -- conditions -------------------------------------------------------------------- */

static int cond_parse(struct pc *c, cJSON *j, const char *path, struct condition *out);

static int cond_list(struct pc *c, cJSON *list, const char *path, const char *key,
		     struct condition **out, size_t *n_out)
{
	char p[PATH_MAX_LEN];
	sub(p, path, key);
	if (!cJSON_IsArray(list))
		return fail(c, p, "must be a list of conditions");
	int n = cJSON_GetArraySize(list);
	if (n > CONDITIONS_MAX)
		return fail(c, p, "has %d conditions, at most %d", n, CONDITIONS_MAX);
	if (++c->depth > DEPTH_MAX)
		return fail(c, p, "conditions nest deeper than %d", DEPTH_MAX);
	*out = calloc((size_t)n + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	*n_out = (size_t)n;
	int i = 0, rc = 0;
	cJSON *item;
	cJSON_ArrayForEach(item, list)
	{
		char ip[PATH_MAX_LEN];
		idx(ip, path, key, i);
		if ((rc = cond_parse(c, item, ip, &(*out)[i++])))
			break;
	}
	c->depth--;
	return rc;
}

static int cond_sun(struct pc *c, cJSON *j, const char *path, struct condition *out)
{
	const char *after, *before;
	char p[PATH_MAX_LEN];
	int rc = get_string(c, j, path, "after", false, &after);
	if (!rc)
		rc = get_string(c, j, path, "before", false, &before);
	if (rc)
		return rc;
	if (!after && !before)
		return fail(c, path, "needs 'after', 'before' or both");
	out->sun_after = out->sun_before = -1;
	sub(p, path, "after");
	if (after && (rc = parse_sun_event(c, after, p, &out->sun_after)))
		return rc;
	sub(p, path, "before");
	if (before && (rc = parse_sun_event(c, before, p, &out->sun_before)))
		return rc;
	rc = get_duration(c, j, path, "after_offset", true, &out->sun_after_offset_ms);
	return rc ? rc : get_duration(c, j, path, "before_offset", true, &out->sun_before_offset_ms);
}

static int cond_trigger_ids(struct pc *c, cJSON *j, const char *path, struct condition *out)
{
	const cJSON *id = get(j, "id");
	char p[PATH_MAX_LEN];
	sub(p, path, "id");
	int n = cJSON_IsArray(id) ? cJSON_GetArraySize(id) : 1;
	if (!id || (!cJSON_IsString(id) && !cJSON_IsArray(id)) || n < 1 || n > TRIGGERS_MAX)
		return fail(c, p, "must be a trigger id or a list of them");
	out->trigger_ids = calloc((size_t)n, sizeof(char *));
	if (!out->trigger_ids)
		return -ENOMEM;
	out->n_trigger_ids = (size_t)n;
	if (cJSON_IsString(id))
		return dup_to(&out->trigger_ids[0], id->valuestring);
	int i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, id)
	{
		if (!cJSON_IsString(e))
			return fail(c, p, "must be a list of texts");
		int rc = dup_to(&out->trigger_ids[i++], e->valuestring);
		if (rc)
			return rc;
	}
	return 0;
}

static const struct {
	const char *name;
	enum cond_type type;
	const char *const keys[8];
} cond_kinds[] = {
	{"state", C_STATE, {"type", "device", "attribute", "state", "for"}},
	{"numeric", C_NUMERIC, {"type", "device", "attribute", "above", "below"}},
	{"time", C_TIME, {"type", "after", "before", "weekdays"}},
	{"sun", C_SUN, {"type", "after", "before", "after_offset", "before_offset"}},
	{"and", C_AND, {"type", "conditions"}},
	{"or", C_OR, {"type", "conditions"}},
	{"not", C_NOT, {"type", "conditions"}},
	{"trigger", C_TRIGGER, {"type", "id"}},
};

static int cond_body(struct pc *c, cJSON *j, const char *path, struct condition *out)
{
	int rc;
	char p[PATH_MAX_LEN];
	switch (out->type) {
	case C_STATE:
		if ((rc = resolve_device(c, j, path, &out->device)) ||
		    (rc = check_attribute(c, out->device, j, path, &out->attribute)) ||
		    (rc = get_duration(c, j, path, "for", false, &out->for_ms)))
			return rc;
		sub(p, path, "state");
		if (!get(j, "state"))
			return fail(c, p, "is required: the value (or list of values) to test for");
		out->value = cJSON_Duplicate(get(j, "state"), 1);
		return out->value ? 0 : -ENOMEM;
	case C_NUMERIC:
		if ((rc = resolve_device(c, j, path, &out->device)) ||
		    (rc = check_attribute(c, out->device, j, path, &out->attribute)) ||
		    (rc = get_number(c, j, path, "above", &out->has_above, &out->above)) ||
		    (rc = get_number(c, j, path, "below", &out->has_below, &out->below)))
			return rc;
		if (!out->has_above && !out->has_below)
			return fail(c, path, "needs 'above', 'below' or both");
		return 0;
	case C_TIME:
		if ((rc = parse_time_of_day(c, j, path, "after", false, &out->after_s)) ||
		    (rc = parse_time_of_day(c, j, path, "before", false, &out->before_s)) ||
		    (rc = parse_weekdays(c, j, path, &out->weekdays)))
			return rc;
		if (out->after_s < 0 && out->before_s < 0 && !get(j, "weekdays"))
			return fail(c, path, "needs 'after', 'before' or 'weekdays'");
		return 0;
	case C_SUN:
		return cond_sun(c, j, path, out);
	case C_AND:
	case C_OR:
	case C_NOT:
		return cond_list(c, (cJSON *)get(j, "conditions"), path, "conditions",
				 &out->children, &out->n_children);
	case C_TRIGGER:
		return cond_trigger_ids(c, j, path, out);
	}
	return -EINVAL;
}

static int cond_parse(struct pc *c, cJSON *j, const char *path, struct condition *out)
{
	if (!cJSON_IsObject(j))
		return fail(c, path, "a condition must be an object");
	const char *type;
	int rc = get_string(c, j, path, "type", true, &type);
	if (rc)
		return rc;
	size_t k;
	for (k = 0; k < sizeof(cond_kinds) / sizeof(cond_kinds[0]); k++)
		if (strcmp(cond_kinds[k].name, type) == 0)
			break;
	if (k == sizeof(cond_kinds) / sizeof(cond_kinds[0])) {
		char p[PATH_MAX_LEN];
		sub(p, path, "type");
		return fail(c, p,
			    "unknown condition type '%.32s' (state, numeric, time, sun, and, or, not, "
			    "trigger)",
			    type);
	}
	out->type = cond_kinds[k].type;
	if ((rc = dup_to(&out->path, path)) || (rc = only_keys(c, j, path, cond_kinds[k].keys)))
		return rc;
	return cond_body(c, j, path, out);
}

void cond_clear(struct condition *cnd)
{
	free(cnd->path);
	free(cnd->device);
	free(cnd->attribute);
	cJSON_Delete(cnd->value);
	for (size_t i = 0; i < cnd->n_trigger_ids; i++)
		free(cnd->trigger_ids[i]);
	free(cnd->trigger_ids);
	for (size_t i = 0; i < cnd->n_children; i++)
		cond_clear(&cnd->children[i]);
	free(cnd->children);
	memset(cnd, 0, sizeof(*cnd));
}

/* A condition list as one node (an implicit "and"), owned by an instr. */
static int cond_node(struct pc *c, cJSON *list, const char *path, const char *key,
		     struct condition **out)
{
	struct condition *node = calloc(1, sizeof(*node));
	if (!node)
		return -ENOMEM;
	node->type = C_AND;
	*out = node;
	int rc = dup_to(&node->path, path);
	return rc ? rc : cond_list(c, list, path, key, &node->children, &node->n_children);
}

/* -- actions: compiled to a flat program ----------------------------------------- */

static void instr_clear(struct instr *in);

static int emit(struct pc *c, const char *path, enum op op, struct instr **out)
{
	struct rule *r = c->rule;
	if (r->n_prog >= RULES_ACTIONS_MAX)
		return fail(c, path, "the rule compiles to more than %d steps", RULES_ACTIONS_MAX);
	struct instr *in = &r->prog[r->n_prog++];
	memset(in, 0, sizeof(*in));
	in->op = op;
	in->target = -1;
	*out = in;
	return dup_to(&in->path, path);
}

static int actions_compile(struct pc *c, cJSON *list, const char *path, const char *key);

static int action_set(struct pc *c, cJSON *j, const char *path, struct instr *in)
{
	int rc = resolve_device(c, j, path, &in->device);
	if (rc)
		return rc;
	cJSON *state = (cJSON *)get(j, "state");
	char p[PATH_MAX_LEN];
	sub(p, path, "state");
	if (!cJSON_IsObject(state) || !state->child)
		return fail(c, p, "must be an object of attributes to set");
	const struct device *dev = registry_by_id(c->reg, in->device);
	cJSON *item;
	cJSON_ArrayForEach(item, state)
	{
		char ap[PATH_MAX_LEN], why[200];
		sub(ap, p, item->string);
		const struct cap *cap = cap_find(dev->caps, dev->n_caps, item->string);
		if (!cap)
			return fail(c, ap, "%s has no attribute '%.64s'", dev->name, item->string);
		if (!(cap->access & HEARTH_ACCESS_SET))
			return fail(c, ap, "is read-only on %s", dev->name);
		const cJSON *ft = cJSON_IsObject(item) ? get(item, "from_trigger") : NULL;
		if (ft) {
			if (!cJSON_IsString(ft) || cJSON_GetArraySize(item) != 1)
				return fail(c, ap, "from_trigger takes the name of one trigger value");
			continue;
		}
		cJSON *ok = NULL;
		int vrc = cap_validate_value(cap, item, NULL, &ok, why, sizeof(why));
		if (vrc == -ENOMEM)
			return vrc;
		if (vrc) {
			/* the capability's own message starts with its name again */
			const char *colon = strstr(why, ": ");
			return fail(c, ap, "%s", colon ? colon + 2 : why);
		}
		cJSON_Delete(ok);
	}
	in->state = cJSON_Duplicate(state, 1);
	return in->state ? 0 : -ENOMEM;
}

static int action_wait(struct pc *c, cJSON *j, const char *path, struct instr *in)
{
	char p[PATH_MAX_LEN];
	sub(p, path, "trigger");
	cJSON *tj = (cJSON *)get(j, "trigger");
	if (!tj)
		return fail(c, p, "is required: what to wait for");
	in->wait = calloc(1, sizeof(*in->wait));
	if (!in->wait)
		return -ENOMEM;
	int rc = trigger_parse(tj, p, c->reg, in->wait, c->err, c->err_len);
	if (rc)
		return rc;
	if (in->wait->type == T_START || in->wait->type == T_TIME || in->wait->type == T_CRON ||
	    in->wait->type == T_SUN)
		return fail(c, p, "a wait can be for state, numeric, event, mqtt or device_available");
	if ((rc = get_duration(c, j, path, "timeout", false, &in->ms)))
		return rc;
	const cJSON *cot = get(j, "continue_on_timeout");
	if (cot && !cJSON_IsBool(cot)) {
		sub(p, path, "continue_on_timeout");
		return fail(c, p, "must be true or false");
	}
	in->continue_on_timeout = !cot || cJSON_IsTrue(cot);
	return 0;
}

static int action_publish(struct pc *c, cJSON *j, const char *path, struct instr *in)
{
	const char *topic;
	int rc = get_string(c, j, path, "topic", true, &topic);
	if (rc)
		return rc;
	char p[PATH_MAX_LEN];
	sub(p, path, "topic");
	if (!rules_topic_valid(topic))
		return fail(c, p, "'%.64s' is not a topic one can publish to", topic);
	if ((rc = dup_to(&in->topic, topic)))
		return rc;
	const cJSON *payload = get(j, "payload");
	if (cJSON_IsString(payload))
		rc = dup_to(&in->payload, payload->valuestring);
	else if (payload)
		rc = (in->payload = cJSON_PrintUnformatted(payload)) ? 0 : -ENOMEM;
	else
		rc = dup_to(&in->payload, "");
	const cJSON *retain = get(j, "retain");
	if (retain && !cJSON_IsBool(retain)) {
		sub(p, path, "retain");
		return fail(c, p, "must be true or false");
	}
	in->retain = cJSON_IsTrue(retain);
	return rc;
}

static int action_rule(struct pc *c, cJSON *j, const char *path, struct instr *in)
{
	const char *target, *verb;
	int rc = get_string(c, j, path, "rule", true, &target);
	if (!rc)
		rc = get_string(c, j, path, "action", true, &verb);
	if (rc)
		return rc;
	char p[PATH_MAX_LEN];
	sub(p, path, "action");
	if (strcmp(verb, "enable") == 0)
		in->verb = VERB_ENABLE;
	else if (strcmp(verb, "disable") == 0)
		in->verb = VERB_DISABLE;
	else if (strcmp(verb, "trigger") == 0)
		in->verb = VERB_TRIGGER;
	else
		return fail(c, p, "must be \"enable\", \"disable\" or \"trigger\"");
	return dup_to(&in->target_rule, target);
}

/* choose: [{conditions, actions}...], default: [...] */
static int action_choose(struct pc *c, cJSON *j, const char *path)
{
	cJSON *options = (cJSON *)get(j, "choose");
	char p[PATH_MAX_LEN];
	sub(p, path, "choose");
	if (!cJSON_IsArray(options) || cJSON_GetArraySize(options) == 0)
		return fail(c, p, "must be a list of {\"conditions\": [...], \"actions\": [...]}");
	int ends[64], n_ends = 0, i = 0, rc;
	cJSON *opt;
	cJSON_ArrayForEach(opt, options)
	{
		char op[PATH_MAX_LEN];
		idx(op, path, "choose", i++);
		static const char *const keys[] = {"conditions", "actions", NULL};
		if (!cJSON_IsObject(opt))
			return fail(c, op, "must be an object");
		if ((rc = only_keys(c, opt, op, keys)))
			return rc;
		struct instr *test;
		if ((rc = emit(c, op, OP_JUMP_IF_NOT, &test)) ||
		    (rc = cond_node(c, (cJSON *)get(opt, "conditions"), op, "conditions",
				    &test->cond)) ||
		    (rc = actions_compile(c, (cJSON *)get(opt, "actions"), op, "actions")))
			return rc;
		struct instr *jump;
		if (n_ends == 64)
			return fail(c, op, "too many options");
		if ((rc = emit(c, op, OP_JUMP, &jump)))
			return rc;
		ends[n_ends++] = (int)(jump - c->rule->prog);
		/* the test jumps past this option's actions */
		test->target = (int)c->rule->n_prog;
	}
	cJSON *def = (cJSON *)get(j, "default");
	if (def && (rc = actions_compile(c, def, path, "default")))
		return rc;
	for (int k = 0; k < n_ends; k++)
		c->rule->prog[ends[k]].target = (int)c->rule->n_prog;
	return 0;
}

static int action_repeat(struct pc *c, cJSON *j, const char *path)
{
	const cJSON *count = get(j, "count");
	cJSON *wh = (cJSON *)get(j, "while"), *until = (cJSON *)get(j, "until");
	if (!!count + !!wh + !!until != 1)
		return fail(c, path, "a repeat needs exactly one of 'count', 'while' or 'until'");
	if (c->slots >= RULES_SLOTS_MAX)
		return fail(c, path, "repeats nest deeper than %d", RULES_SLOTS_MAX);
	int slot = c->slots++, rc;
	struct instr *init, *test = NULL;
	if ((rc = emit(c, path, OP_LOOP_INIT, &init)))
		return rc;
	init->slot = slot;
	int top = (int)c->rule->n_prog;
	if (count) {
		char p[PATH_MAX_LEN];
		sub(p, path, "count");
		if (!cJSON_IsNumber(count) || count->valuedouble < 1 ||
		    count->valuedouble > RULES_REPEAT_CAP || count->valuedouble != count->valueint)
			return fail(c, p, "must be a whole number from 1 to %d", RULES_REPEAT_CAP);
		if ((rc = emit(c, path, OP_LOOP_COUNT, &test)))
			return rc;
		test->count = count->valueint;
	} else if (wh) {
		if ((rc = emit(c, path, OP_LOOP_WHILE, &test)) ||
		    (rc = cond_node(c, wh, path, "while", &test->cond)))
			return rc;
		test->count = RULES_REPEAT_CAP;
	}
	if (test)
		test->slot = slot;
	size_t test_at = test ? (size_t)(test - c->rule->prog) : 0;
	if ((rc = actions_compile(c, (cJSON *)get(j, "actions"), path, "actions")))
		return rc;
	struct instr *back;
	if (until) {
		if ((rc = emit(c, path, OP_LOOP_UNTIL, &back)) ||
		    (rc = cond_node(c, until, path, "until", &back->cond)))
			return rc;
		back->slot = slot;
		back->count = RULES_REPEAT_CAP;
		back->target = top;
	} else {
		if ((rc = emit(c, path, OP_JUMP, &back)))
			return rc;
		back->target = top;
		c->rule->prog[test_at].target = (int)c->rule->n_prog;
	}
	c->slots--;
	return 0;
}

static const struct {
	const char *name;
	const char *const keys[8];
} action_kinds[] = {
	{"set", {"type", "device", "state"}},
	{"scene", {"type", "scene"}},
	{"delay", {"type", "duration"}},
	{"wait", {"type", "trigger", "timeout", "continue_on_timeout"}},
	{"publish", {"type", "topic", "payload", "retain"}},
	{"rule", {"type", "rule", "action"}},
	{"choose", {"type", "choose", "default"}},
	{"repeat", {"type", "count", "while", "until", "actions"}},
};

static int action_compile(struct pc *c, cJSON *j, const char *path)
{
	if (!cJSON_IsObject(j))
		return fail(c, path, "an action must be an object");
	const char *type;
	int rc = get_string(c, j, path, "type", true, &type);
	if (rc)
		return rc;
	size_t k;
	for (k = 0; k < sizeof(action_kinds) / sizeof(action_kinds[0]); k++)
		if (strcmp(action_kinds[k].name, type) == 0)
			break;
	if (k == sizeof(action_kinds) / sizeof(action_kinds[0])) {
		char p[PATH_MAX_LEN];
		sub(p, path, "type");
		return fail(c, p,
			    "unknown action type '%.32s' (set, scene, delay, wait, publish, rule, "
			    "choose, repeat)",
			    type);
	}
	if ((rc = only_keys(c, j, path, action_kinds[k].keys)))
		return rc;
	struct instr *in;
	const char *text;
	switch (k) {
	case 0:
		return (rc = emit(c, path, OP_SET, &in)) ? rc : action_set(c, j, path, in);
	case 1:
		if ((rc = get_string(c, j, path, "scene", true, &text)) ||
		    (rc = emit(c, path, OP_SCENE, &in)))
			return rc;
		return dup_to(&in->scene, text);
	case 2:
		if ((rc = emit(c, path, OP_DELAY, &in)) ||
		    (rc = get_duration(c, j, path, "duration", false, &in->ms)))
			return rc;
		if (!get(j, "duration")) {
			char p[PATH_MAX_LEN];
			sub(p, path, "duration");
			return fail(c, p, "is required");
		}
		return 0;
	case 3:
		return (rc = emit(c, path, OP_WAIT, &in)) ? rc : action_wait(c, j, path, in);
	case 4:
		return (rc = emit(c, path, OP_PUBLISH, &in)) ? rc : action_publish(c, j, path, in);
	case 5:
		return (rc = emit(c, path, OP_RULE, &in)) ? rc : action_rule(c, j, path, in);
	case 6:
		return action_choose(c, j, path);
	default:
		return action_repeat(c, j, path);
	}
}

static int actions_compile(struct pc *c, cJSON *list, const char *path, const char *key)
{
	char p[PATH_MAX_LEN];
	sub(p, path, key);
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
		return fail(c, p, "must be a non-empty list of actions");
	if (++c->depth > DEPTH_MAX)
		return fail(c, p, "actions nest deeper than %d", DEPTH_MAX);
	int i = 0, rc = 0;
	cJSON *a;
	cJSON_ArrayForEach(a, list)
	{
		char ap[PATH_MAX_LEN];
		idx(ap, path, key, i++);
		if ((rc = action_compile(c, a, ap)))
			break;
	}
	c->depth--;
	return rc;
}

/* -- the rule --------------------------------------------------------------------- */

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

static int rule_header(struct pc *c, cJSON *def, struct rule *r)
{
	const char *id, *name, *mode;
	int rc;
	if ((rc = get_string(c, def, "", "id", true, &id)))
		return rc;
	if (!id_ok(id))
		return fail(c, "id", "'%.64s' is not 1..64 of letters, digits, '-', '_', '.'", id);
	if ((rc = dup_to(&r->id, id)) || (rc = get_string(c, def, "", "name", false, &name)) ||
	    (rc = dup_to(&r->name, name ? name : id)) ||
	    (rc = get_string(c, def, "", "mode", false, &mode)))
		return rc;
	static const char *const modes[] = {"single", "restart", "queued", "parallel"};
	r->mode = MODE_SINGLE;
	if (mode) {
		size_t m;
		for (m = 0; m < 4 && strcmp(modes[m], mode) != 0; m++)
			;
		if (m == 4)
			return fail(c, "mode", "'%.32s' is not single, restart, queued or parallel",
				    mode);
		r->mode = (enum mode)m;
	}
	const cJSON *max = get(def, "max");
	r->max = 10;
	if (max) {
		if (!cJSON_IsNumber(max) || max->valueint < 1 || max->valueint > RULES_RUNS_MAX ||
		    max->valuedouble != max->valueint)
			return fail(c, "max", "must be a whole number from 1 to %d", RULES_RUNS_MAX);
		r->max = max->valueint;
	}
	const cJSON *enabled = get(def, "enabled");
	if (enabled && !cJSON_IsBool(enabled))
		return fail(c, "enabled", "must be true or false");
	r->enabled = !enabled || cJSON_IsTrue(enabled);
	const cJSON *desc = get(def, "description");
	if (desc && !cJSON_IsString(desc))
		return fail(c, "description", "must be text");
	return get_duration(c, def, "", "cooldown", false, &r->cooldown_ms);
}

static int rule_triggers(struct pc *c, cJSON *def, struct rule *r)
{
	cJSON *list = (cJSON *)get(def, "triggers");
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
		return fail(c, "triggers", "must be a non-empty list");
	int n = cJSON_GetArraySize(list);
	if (n > TRIGGERS_MAX)
		return fail(c, "triggers", "has %d triggers, at most %d", n, TRIGGERS_MAX);
	r->triggers = calloc((size_t)n, sizeof(*r->triggers));
	if (!r->triggers)
		return -ENOMEM;
	r->n_triggers = (size_t)n;
	int i = 0;
	cJSON *t;
	cJSON_ArrayForEach(t, list)
	{
		char p[PATH_MAX_LEN];
		idx(p, "", "triggers", i);
		struct trigger *tr = &r->triggers[i];
		int rc = trigger_parse(t, p, c->reg, tr, c->err, c->err_len);
		if (rc)
			return rc;
		if (!tr->id) {
			char num[16];
			snprintf(num, sizeof(num), "%d", i);
			if ((rc = dup_to(&tr->id, num)))
				return rc;
		}
		tr->rule = r;
		tr->index = i++;
	}
	return 0;
}

int rule_compile(const cJSON *cdef, struct registry *reg, struct rule **out, char *err,
		 size_t err_len)
{
	struct pc c = {.reg = reg, .err = err, .err_len = err_len};
	if (!cJSON_IsObject(cdef))
		return fail(&c, "rule", "must be a JSON object");
	static const char *const keys[] = {"id",      "name",	  "description", "enabled",
					   "mode",    "max",	  "cooldown",	 "triggers",
					   "conditions", "actions", NULL};
	int rc = only_keys(&c, cdef, "", keys);
	if (rc)
		return rc;
	/* Compiled into one scratch program with room for RULES_ACTIONS_MAX
	 * steps (pointers into it stay put while nested actions compile), then
	 * copied to an exact fit: zeroing a fresh 30 KiB program per rule cost
	 * more than compiling it, with thousands of rules. Loop thread only. */
	static struct instr scratch[RULES_ACTIONS_MAX];
	struct rule *r = calloc(1, sizeof(*r));
	cJSON *def = cJSON_Duplicate(cdef, 1);
	if (!r || !def || !(r->traces = cJSON_CreateArray())) {
		rc = -ENOMEM;
		goto out;
	}
	r->prog = scratch;
	r->definition = def;
	c.rule = r;
	if ((rc = rule_header(&c, def, r)) || (rc = rule_triggers(&c, def, r)))
		goto out;
	cJSON *conds = (cJSON *)get(def, "conditions");
	if (conds && (rc = cond_list(&c, conds, "", "conditions", &r->conditions,
				     &r->n_conditions)))
		goto out;
	if ((rc = actions_compile(&c, (cJSON *)get(def, "actions"), "", "actions")))
		goto out;
	struct instr *fit = malloc((r->n_prog ? r->n_prog : 1) * sizeof(*r->prog));
	if (!fit) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(fit, scratch, r->n_prog * sizeof(*r->prog));
	r->prog = fit;
	*out = r;
	return 0;
out:
	if (r && !r->definition)
		cJSON_Delete(def);
	if (r && r->prog == scratch) {
		for (size_t i = 0; i < r->n_prog; i++)
			instr_clear(&scratch[i]);
		r->prog = NULL;
	}
	rule_free(r);
	if (rc == -ENOMEM)
		snprintf(err, err_len, "out of memory");
	return rc;
}

static void instr_clear(struct instr *in)
{
	free(in->path);
	free(in->device);
	cJSON_Delete(in->state);
	free(in->scene);
	if (in->wait) {
		trigger_clear(in->wait);
		free(in->wait);
	}
	free(in->topic);
	free(in->payload);
	free(in->target_rule);
	if (in->cond) {
		cond_clear(in->cond);
		free(in->cond);
	}
}

void rule_free(struct rule *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->name);
	cJSON_Delete(r->definition);
	for (size_t i = 0; i < r->n_triggers; i++)
		trigger_clear(&r->triggers[i]);
	free(r->triggers);
	for (size_t i = 0; i < r->n_conditions; i++)
		cond_clear(&r->conditions[i]);
	free(r->conditions);
	for (size_t i = 0; r->prog && i < r->n_prog; i++)
		instr_clear(&r->prog[i]);
	free(r->prog);
	cJSON_Delete(r->traces);
	free(r);
}

/* -- definitions: names for people, ids for storage ------------------------------------ */

typedef void (*device_fn)(cJSON *holder, void *user, bool writes);

/* Visit every object holding a "device" key, knowing whether it is written
 * to (a set action) or read. */
static void walk(cJSON *node, device_fn fn, void *user, bool in_actions)
{
	if (cJSON_IsObject(node)) {
		cJSON *dev = cJSON_GetObjectItemCaseSensitive(node, "device");
		cJSON *type = cJSON_GetObjectItemCaseSensitive(node, "type");
		if (cJSON_IsString(dev))
			fn(node, user,
			   in_actions && cJSON_IsString(type) && strcmp(type->valuestring, "set") == 0);
	}
	cJSON *child;
	cJSON_ArrayForEach(child, node)
	{
		bool acts = in_actions;
		if (child->string && strcmp(child->string, "actions") == 0)
			acts = true;
		else if (child->string &&
			 (strcmp(child->string, "triggers") == 0 ||
			  strcmp(child->string, "conditions") == 0 ||
			  strcmp(child->string, "trigger") == 0 || strcmp(child->string, "while") == 0 ||
			  strcmp(child->string, "until") == 0))
			acts = false;
		if (cJSON_IsObject(child) || cJSON_IsArray(child))
			walk(child, fn, user, acts);
	}
}

static void show_name(cJSON *holder, void *user, bool writes)
{
	(void)writes;
	cJSON *dev = cJSON_GetObjectItemCaseSensitive(holder, "device");
	const struct device *d = registry_by_id(user, dev->valuestring);
	if (d) /* out of memory, the id stays */
		cJSON_SetValuestring(dev, d->name);
}

void rule_definition_show(cJSON *def, struct registry *reg)
{
	walk(def, show_name, reg, false);
}

struct rebind {
	const char *old_id, *new_id;
	int n;
};

static void rebind_one(cJSON *holder, void *user, bool writes)
{
	(void)writes;
	struct rebind *rb = user;
	cJSON *dev = cJSON_GetObjectItemCaseSensitive(holder, "device");
	if (strcmp(dev->valuestring, rb->old_id) == 0 && cJSON_SetValuestring(dev, rb->new_id))
		rb->n++;
}

int rule_definition_rebind(cJSON *def, const char *old_id, const char *new_id)
{
	struct rebind rb = {old_id, new_id, 0};
	walk(def, rebind_one, &rb, false);
	return rb.n;
}

struct links {
	cJSON *reads, *writes;
};

static void add_unique(cJSON *array, const char *id)
{
	cJSON *e;
	cJSON_ArrayForEach(e, array) if (strcmp(e->valuestring, id) == 0) return;
	cJSON_AddItemToArray(array, cJSON_CreateString(id));
}

static void link_one(cJSON *holder, void *user, bool writes)
{
	struct links *l = user;
	cJSON *dev = cJSON_GetObjectItemCaseSensitive(holder, "device");
	add_unique(writes ? l->writes : l->reads, dev->valuestring);
}

void rule_definition_links(const cJSON *def, cJSON *reads, cJSON *writes)
{
	struct links l = {reads, writes};
	walk((cJSON *)def, link_one, &l, false);
}
