#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rules_internal.h"
#include "sun.h"
#include "timeutil.h"

static bool utf8_text(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 65535 && !strchr(s, '\x7f');
}

bool rules_filter_valid(const char *filter)
{
	if (!utf8_text(filter))
		return false;
	for (const char *p = filter; *p; p++) {
		if (*p == '#' && (p[1] != '\0' || (p != filter && p[-1] != '/')))
			return false;
		if (*p == '+' && ((p != filter && p[-1] != '/') || (p[1] != '\0' && p[1] != '/')))
			return false;
	}
	return true;
}

bool rules_topic_valid(const char *topic)
{
	return utf8_text(topic) && !strpbrk(topic, "+#");
}

bool rules_topic_matches(const char *filter, const char *topic)
{
	/* topics starting with '$' are not matched by leading wildcards */
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	const char *f = filter, *t = topic;
	for (;;) {
		size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");
		if (fl == 1 && f[0] == '#')
			return true;
		if (!(fl == 1 && f[0] == '+') && (fl != tl || strncmp(f, t, fl) != 0))
			return false;
		bool fend = f[fl] == '\0', tend = t[tl] == '\0';
		if (fend || tend)
			/* "a/#" also matches "a" */
			return (fend && tend) || (tend && strcmp(f + fl, "/#") == 0);
		f += fl + 1;
		t += tl + 1;
	}
}

bool rules_value_matches(const cJSON *spec, const cJSON *value)
{
	if (!spec)
		return true;
	if (!value)
		return false;
	if (cJSON_IsArray(spec)) {
		const cJSON *e;
		cJSON_ArrayForEach(e, spec) if (cap_json_equal(e, value)) return true;
		return false;
	}
	return cap_json_equal(spec, value);
}

static void text_of(const cJSON *v, char *buf, size_t len)
{
	if (!v) {
		snprintf(buf, len, "unknown");
		return;
	}
	char *s = cJSON_PrintUnformatted(v);
	snprintf(buf, len, "%s", s ? s : "?");
	cJSON_free(s);
}

static void note(const struct cond_ctx *ctx, const struct condition *c, bool result,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void note(const struct cond_ctx *ctx, const struct condition *c, bool result,
		 const char *fmt, ...)
{
	if (!ctx->trace)
		return;
	char detail[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "path", c->path ? c->path : "");
	cJSON_AddBoolToObject(o, "result", result);
	cJSON_AddStringToObject(o, "detail", detail);
	cJSON_AddItemToArray(ctx->trace, o);
}

static const char *dev_name(const struct device *d, const char *id)
{
	return d ? d->name : id;
}

static bool eval_state(const struct condition *c, const struct cond_ctx *ctx)
{
	const struct device *d = registry_by_id(ctx->reg, c->device);
	const cJSON *v = d ? cJSON_GetObjectItemCaseSensitive(d->state, c->attribute) : NULL;
	bool ok = rules_value_matches(c->value, v);
	char got[64], want[96];
	text_of(v, got, sizeof(got));
	text_of(c->value, want, sizeof(want));
	if (ok && c->for_ms > 0 && d) {
		const cJSON *ts = d->state_ms ? cJSON_GetObjectItemCaseSensitive(d->state_ms,
										 c->attribute)
					      : NULL;
		int64_t since = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : ctx->now_ms;
		if (ctx->now_ms - since < c->for_ms) {
			note(ctx, c, false, "%s %s has been %s for %lld s, needs %lld s",
			     dev_name(d, c->device), c->attribute, got,
			     (long long)((ctx->now_ms - since) / 1000), (long long)(c->for_ms / 1000));
			return false;
		}
	}
	note(ctx, c, ok, "%s %s was %s, needs %s", dev_name(d, c->device), c->attribute, got, want);
	return ok;
}

static bool eval_numeric(const struct condition *c, const struct cond_ctx *ctx)
{
	const struct device *d = registry_by_id(ctx->reg, c->device);
	const cJSON *v = d ? cJSON_GetObjectItemCaseSensitive(d->state, c->attribute) : NULL;
	char got[64], need[96] = "";
	text_of(v, got, sizeof(got));
	if (c->has_above && c->has_below)
		snprintf(need, sizeof(need), "above %g and below %g", c->above, c->below);
	else if (c->has_above)
		snprintf(need, sizeof(need), "above %g", c->above);
	else
		snprintf(need, sizeof(need), "below %g", c->below);
	bool ok = cJSON_IsNumber(v) && (!c->has_above || v->valuedouble > c->above) &&
		  (!c->has_below || v->valuedouble < c->below);
	note(ctx, c, ok, "%s %s was %s, needs %s", dev_name(d, c->device), c->attribute, got, need);
	return ok;
}

static void hhmm(int s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%02d:%02d", s / 3600, s / 60 % 60);
}

static bool eval_time(const struct condition *c, const struct cond_ctx *ctx)
{
	bool ok = timeutil_in_window(ctx->now_ms, c->after_s, c->before_s, c->weekdays);
	char now[16], a[16], b[16];
	hhmm(timeutil_local_seconds_of_day(ctx->now_ms), now, sizeof(now));
	hhmm(c->after_s, a, sizeof(a));
	hhmm(c->before_s, b, sizeof(b));
	note(ctx, c, ok, "time was %s, needs after %s and before %s on the given days", now, a, b);
	return ok;
}

/* Today's event plus offset, or -1 when the sun does not rise or set today. */
static int64_t sun_today(const struct cond_ctx *ctx, int ev, int64_t offset)
{
	int64_t t;
	if (sun_event_on(ctx->lat, ctx->lon, ctx->now_ms, (enum sun_event)ev, &t) != 0)
		return -1;
	return t + offset;
}

static bool eval_sun(const struct condition *c, const struct cond_ctx *ctx)
{
	if (!ctx->have_location) {
		note(ctx, c, false, "no [location] is configured, so the sun cannot be placed");
		return false;
	}
	int64_t after = c->sun_after >= 0 ? sun_today(ctx, c->sun_after, c->sun_after_offset_ms) : -1;
	int64_t before =
		c->sun_before >= 0 ? sun_today(ctx, c->sun_before, c->sun_before_offset_ms) : -1;
	bool ok;
	if ((c->sun_after >= 0 && after < 0) || (c->sun_before >= 0 && before < 0)) {
		/* polar day or night: "after sunset" means "the sun is down" */
		bool up = sun_is_up(ctx->lat, ctx->lon, ctx->now_ms);
		int ev = c->sun_after >= 0 ? c->sun_after : c->sun_before;
		bool want_up = (c->sun_after >= 0) == (ev == SUN_SUNRISE);
		ok = up == want_up;
	} else {
		bool a = c->sun_after < 0 || ctx->now_ms >= after;
		bool b = c->sun_before < 0 || ctx->now_ms < before;
		/* after sunset, before sunrise: a window across midnight */
		ok = (c->sun_after >= 0 && c->sun_before >= 0 && after > before) ? (a || b) : (a && b);
	}
	note(ctx, c, ok, "the sun is %s", sun_is_up(ctx->lat, ctx->lon, ctx->now_ms) ? "up" : "down");
	return ok;
}

static bool eval_trigger(const struct condition *c, const struct cond_ctx *ctx)
{
	bool ok = false;
	for (size_t i = 0; i < c->n_trigger_ids && ctx->trigger_id; i++)
		ok = ok || strcmp(c->trigger_ids[i], ctx->trigger_id) == 0;
	note(ctx, c, ok, "the rule was triggered by '%s'",
	     ctx->trigger_id ? ctx->trigger_id : "(manual)");
	return ok;
}

bool cond_eval(const struct condition *c, const struct cond_ctx *ctx)
{
	size_t i;
	bool ok;
	switch (c->type) {
	case C_STATE:
		return eval_state(c, ctx);
	case C_NUMERIC:
		return eval_numeric(c, ctx);
	case C_TIME:
		return eval_time(c, ctx);
	case C_SUN:
		return eval_sun(c, ctx);
	case C_TRIGGER:
		return eval_trigger(c, ctx);
	case C_AND:
		ok = cond_eval_all(c->children, c->n_children, ctx);
		break;
	case C_OR:
		ok = false;
		for (i = 0; i < c->n_children && !ok; i++)
			ok = cond_eval(&c->children[i], ctx);
		break;
	case C_NOT:
		ok = true;
		for (i = 0; i < c->n_children && ok; i++)
			ok = !cond_eval(&c->children[i], ctx);
		break;
	default:
		return false;
	}
	note(ctx, c, ok, "%s of %zu conditions", c->type == C_AND ? "all" : c->type == C_OR ? "any" : "none",
	     c->n_children);
	return ok;
}

bool cond_eval_all(const struct condition *c, size_t n, const struct cond_ctx *ctx)
{
	for (size_t i = 0; i < n; i++)
		if (!cond_eval(&c[i], ctx))
			return false;
	return true;
}
