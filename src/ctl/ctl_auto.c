/*
 * ctl_auto: options, rule files and rendering for the automation commands.
 *
 * The unit test compiles this file together with ctl_format.c and
 * ctl_args.c, so its static names stay clear of theirs.
 */
#include "ctl_auto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_format.h"

/* How many ids a summary line names before "and N more". */
#define IDS_SHOWN 5
#define LINE_MAX_LEN CTL_CELL_MAX

static const char *auto_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double auto_num(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* ---- options ------------------------------------------------------------- */

static struct ctl_flag *flag_match(const char *arg, struct ctl_flag *flags, int nflags,
				   const char **value)
{
	size_t len;
	int i;

	*value = NULL;
	for (i = 0; i < nflags; i++) {
		struct ctl_flag *f = &flags[i];

		if (!strcmp(arg, f->long_name) || (f->short_name && !strcmp(arg, f->short_name)))
			return f;
		len = strlen(f->long_name);
		if (f->takes_value && !strncmp(arg, f->long_name, len) && arg[len] == '=') {
			*value = arg + len + 1;
			return f;
		}
	}
	return NULL;
}

int ctl_flags_take(int argc, const char *const *argv, struct ctl_flag *flags, int nflags,
		   const char **pos, char *err, size_t err_len)
{
	const char *value;
	struct ctl_flag *f;
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		f = flag_match(argv[i], flags, nflags, &value);
		if (!f) {
			if (!strncmp(argv[i], "--", 2)) {
				snprintf(err, err_len, "unknown option '%.64s'", argv[i]);
				return -EINVAL;
			}
			pos[n++] = argv[i];
			continue;
		}
		if (f->takes_value && !value) {
			if (i + 1 >= argc) {
				snprintf(err, err_len, "%s needs a value", f->long_name);
				return -EINVAL;
			}
			value = argv[++i];
		}
		f->seen = 1;
		f->value = value;
	}
	return n;
}

int ctl_id_valid(const char *id)
{
	size_t len, i;

	if (!id)
		return 0;
	len = strnlen(id, CTL_ID_MAX + 1);
	if (len == 0 || len > CTL_ID_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = id[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    c != '-' && c != '_' && c != '.')
			return 0;
	}
	return 1;
}

/* ---- rule files ---------------------------------------------------------- */

/* "line L, column C" of offset at in text. */
static void where(char *buf, size_t len, const char *text, size_t at)
{
	size_t i, line = 1, col = 1;

	for (i = 0; i < at; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(buf, len, "line %zu, column %zu", line, col);
}

cJSON *ctl_file_items(const char *text, size_t len, char *err, size_t err_len)
{
	const char *end = NULL;
	char at[64];
	cJSON *doc, *items, *item;
	int i = 0;

	if (len > CTL_FILE_MAX) {
		snprintf(err, err_len, "larger than %d bytes", CTL_FILE_MAX);
		return NULL;
	}
	doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!end || end < text || end > text + len)
		end = text;
	/* Only blanks may follow the document. */
	while (doc && end < text + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (!doc || end < text + len) {
		where(at, sizeof(at), text, (size_t)(end - text));
		snprintf(err, err_len, "not valid JSON (%s)", at);
		cJSON_Delete(doc);
		return NULL;
	}
	if (cJSON_IsObject(doc)) {
		items = cJSON_CreateArray();
		if (!items || !cJSON_AddItemToArray(items, doc)) {
			cJSON_Delete(doc);
			cJSON_Delete(items);
			snprintf(err, err_len, "out of memory");
			return NULL;
		}
		return items;
	}
	if (!cJSON_IsArray(doc) || !doc->child) {
		snprintf(err, err_len, "%s", cJSON_IsArray(doc) ? "the array is empty"
					     : "must be a rule object or an array of them");
		cJSON_Delete(doc);
		return NULL;
	}
	cJSON_ArrayForEach(item, doc)
	{
		if (!cJSON_IsObject(item) || i >= CTL_FILE_ITEMS_MAX) {
			snprintf(err, err_len, i >= CTL_FILE_ITEMS_MAX ? "more than %d items"
								       : "[%d]: not a JSON object",
				 i >= CTL_FILE_ITEMS_MAX ? CTL_FILE_ITEMS_MAX : i);
			cJSON_Delete(doc);
			return NULL;
		}
		i++;
	}
	return doc;
}

int ctl_item_is_scene(const cJSON *item)
{
	return cJSON_GetObjectItemCaseSensitive(item, "targets") != NULL;
}

/* ---- tables -------------------------------------------------------------- */

static int by_id(const void *a, const void *b)
{
	const cJSON *const *x = a, *const *y = b;

	return strcmp(auto_str(*x, "id"), auto_str(*y, "id"));
}

/* The objects of an array, sorted by "id"; *n gets their number. NULL when
 * out of memory (an empty list is a valid, empty result). */
static const cJSON **sorted_by_id(const cJSON *list, int *n)
{
	int size = cJSON_GetArraySize(list), i = 0;
	const cJSON **rows = calloc((size_t)size + 1, sizeof(*rows));
	const cJSON *item;

	if (!rows)
		return NULL;
	cJSON_ArrayForEach(item, list)
	{
		if (cJSON_IsObject(item) && i < size)
			rows[i++] = item;
	}
	qsort(rows, (size_t)i, sizeof(*rows), by_id);
	*n = i;
	return rows;
}

/* Render and free t; NULL when t is NULL or rc failed. */
static char *finish(struct ctl_table *t, int rc, int color)
{
	char *out = t && !rc ? ctl_table_render(t, color) : NULL;

	ctl_table_free(t);
	return out;
}

static int rule_row(struct ctl_table *t, const cJSON *r, int64_t now_ms)
{
	const cJSON *enabled = cJSON_GetObjectItemCaseSensitive(r, "enabled");
	int on = !cJSON_IsFalse(enabled), running = (int)auto_num(r, "running");
	char fired[32], ago[32], run[32];
	const char *cells[7], *colors[7] = { NULL };

	snprintf(fired, sizeof(fired), "%.0f", auto_num(r, "fired_count"));
	ctl_format_ago(ago, sizeof(ago), (int64_t)auto_num(r, "last_fired"), now_ms);
	snprintf(run, sizeof(run), "%d", running);
	cells[0] = auto_str(r, "id");
	cells[1] = auto_str(r, "name");
	cells[2] = on ? "yes" : "no";
	cells[3] = auto_str(r, "source");
	cells[4] = fired;
	cells[5] = ago;
	cells[6] = run;
	colors[2] = on ? CTL_ANSI_GREEN : CTL_ANSI_YELLOW;
	colors[6] = running > 0 ? CTL_ANSI_CYAN : NULL;
	return ctl_table_add(t, cells, colors);
}

char *ctl_render_rules(const cJSON *rules, int64_t now_ms, int color)
{
	static const char *const headers[] = { "ID",	"NAME",	      "ENABLED", "SOURCE",
					       "FIRED", "LAST FIRED", "RUNNING" };
	struct ctl_table *t = ctl_table_new(7, headers);
	const cJSON **rows;
	int i, n = 0, rc = 0;

	if (!t)
		return NULL;
	rows = sorted_by_id(rules, &n);
	if (!rows)
		rc = -ENOMEM;
	for (i = 0; i < n && !rc; i++)
		rc = rule_row(t, rows[i], now_ms);
	free(rows);
	return finish(t, rc, color);
}

static int scene_row(struct ctl_table *t, const cJSON *s)
{
	const cJSON *tr = cJSON_GetObjectItemCaseSensitive(s, "transition");
	char count[32], transition[48];
	const char *cells[4];

	snprintf(count, sizeof(count), "%d",
		 cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "targets")));
	if (cJSON_IsNumber(tr))
		snprintf(transition, sizeof(transition), "%gs", tr->valuedouble);
	else
		snprintf(transition, sizeof(transition), "-");
	cells[0] = auto_str(s, "id");
	cells[1] = auto_str(s, "name");
	cells[2] = count;
	cells[3] = transition;
	return ctl_table_add(t, cells, NULL);
}

char *ctl_render_scenes(const cJSON *scenes, int color)
{
	static const char *const headers[] = { "ID", "NAME", "DEVICES", "TRANSITION" };
	struct ctl_table *t = ctl_table_new(4, headers);
	const cJSON **rows;
	int i, n = 0, rc = 0;

	if (!t)
		return NULL;
	rows = sorted_by_id(scenes, &n);
	if (!rows)
		rc = -ENOMEM;
	for (i = 0; i < n && !rc; i++)
		rc = scene_row(t, rows[i]);
	free(rows);
	return finish(t, rc, color);
}

/* "ok" green, errors red, skips and unmet conditions yellow. */
static const char *outcome_color(const char *outcome)
{
	if (!strcmp(outcome, "ok"))
		return CTL_ANSI_GREEN;
	if (strstr(outcome, "error") || strstr(outcome, "fail"))
		return CTL_ANSI_RED;
	if (strstr(outcome, "skipped") || strstr(outcome, "not met"))
		return CTL_ANSI_YELLOW;
	return NULL;
}

static void local_time(char *buf, size_t len, double ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !localtime_r(&s, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "?");
}

static int trace_row(struct ctl_table *t, const cJSON *tr)
{
	const cJSON *trig = cJSON_GetObjectItemCaseSensitive(tr, "trigger");
	const char *id = auto_str(trig, "id"), *type = auto_str(trig, "type");
	const cJSON *outcome = cJSON_GetObjectItemCaseSensitive(tr, "outcome");
	char when[32], trigger[2 * CTL_ID_MAX + 8], what[CTL_CELL_MAX];
	const char *cells[3], *colors[3] = { NULL };

	local_time(when, sizeof(when), auto_num(tr, "time"));
	if (!*id || !strcmp(id, type))
		snprintf(trigger, sizeof(trigger), "%.64s", *type ? type : "?");
	else
		snprintf(trigger, sizeof(trigger), "%.64s (%.64s)", id, *type ? type : "?");
	snprintf(what, sizeof(what), "%s%s",
		 cJSON_IsString(outcome) ? outcome->valuestring : "running",
		 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tr, "missed")) ? " (missed)" : "");
	cells[0] = when;
	cells[1] = trigger;
	cells[2] = what;
	colors[2] = outcome_color(what);
	return ctl_table_add(t, cells, colors);
}

char *ctl_render_traces(const cJSON *traces, int color)
{
	static const char *const headers[] = { "TIME", "TRIGGER", "OUTCOME" };
	struct ctl_table *t = ctl_table_new(3, headers);
	const cJSON *tr;
	int rc = 0;

	if (!t)
		return NULL;
	cJSON_ArrayForEach(tr, traces)
	{
		if (cJSON_IsObject(tr) && !rc)
			rc = trace_row(t, tr);
	}
	return finish(t, rc, color);
}

char *ctl_render_activation(const cJSON *devices, int color)
{
	static const char *const headers[] = { "DEVICE", "STATUS", "ERROR" };
	struct ctl_table *t = ctl_table_new(3, headers);
	const cJSON *d;
	int rc = 0;

	if (!t)
		return NULL;
	cJSON_ArrayForEach(d, devices)
	{
		const char *status = auto_str(d, "status");
		const char *cells[3] = { auto_str(d, "device"), status, auto_str(d, "error") };
		const char *colors[3] = { NULL, !strcmp(status, "ok") ? CTL_ANSI_GREEN : CTL_ANSI_RED,
					  NULL };

		if (cJSON_IsObject(d) && !rc)
			rc = ctl_table_add(t, cells, colors);
	}
	return finish(t, rc, color);
}

/* ---- the ecosystem summary ----------------------------------------------- */

static int by_count(const void *a, const void *b)
{
	const cJSON *const *x = a, *const *y = b;

	if ((*x)->valuedouble != (*y)->valuedouble)
		return (*x)->valuedouble < (*y)->valuedouble ? 1 : -1;
	return strcmp((*x)->string ? (*x)->string : "", (*y)->string ? (*y)->string : "");
}

/* Append to a line, cut at its end (the table cuts cells there anyway). */
static void line_add(char *line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line_add(char *line, const char *fmt, ...)
{
	size_t at = strnlen(line, LINE_MAX_LEN);
	va_list ap;

	if (at + 1 >= LINE_MAX_LEN)
		return;
	va_start(ap, fmt);
	vsnprintf(line + at, LINE_MAX_LEN - at, fmt, ap);
	va_end(ap);
}

/* "virtual 7, zigbee 3" from {"virtual":7,"zigbee":3}, the largest first,
 * at most max of them; "none" for an empty object. */
static int count_line(char *line, const cJSON *counts, int max)
{
	int size = cJSON_GetArraySize(counts), n = 0, i;
	const cJSON **items = calloc((size_t)size + 1, sizeof(*items));
	const cJSON *c;

	if (!items)
		return -ENOMEM;
	cJSON_ArrayForEach(c, counts)
	{
		if (cJSON_IsNumber(c) && c->string && n < size)
			items[n++] = c;
	}
	qsort(items, (size_t)n, sizeof(*items), by_count);
	for (i = 0; i < n && i < max; i++)
		line_add(line, "%s%s %.0f", i ? ", " : "", items[i]->string, items[i]->valuedouble);
	if (n > max)
		line_add(line, " and %d more", n - max);
	if (n == 0)
		line_add(line, "none");
	free(items);
	return 0;
}

/* "3, 1 across plugins: a" from a count and a list of ids. */
static void cross_line(char *line, double total, const cJSON *cross)
{
	int n = cJSON_GetArraySize(cross), i = 0;
	const cJSON *id;

	line_add(line, "%.0f, %d across plugins", total, n);
	cJSON_ArrayForEach(id, cross)
	{
		if (i < IDS_SHOWN && cJSON_IsString(id))
			line_add(line, "%s%s", i ? ", " : ": ", id->valuestring);
		i++;
	}
	if (n > IDS_SHOWN)
		line_add(line, " and %d more", n - IDS_SHOWN);
}

static void window_line(char *line, const cJSON *o)
{
	line_add(line, "%.0f in the last hour, %.0f in the last day", auto_num(o, "hour"),
		 auto_num(o, "day"));
}

enum line_kind { LINE_DEVICES, LINE_COUNTS, LINE_CROSS, LINE_WINDOW };

/* One line of the summary: its label, how it is made, from which keys. */
struct eco_line {
	const char *label;
	enum line_kind kind;
	const char *key;
	const char *key2;
	int max;
};

static const struct eco_line eco_lines[] = {
	{ "devices", LINE_DEVICES, "devices", "devices_online", 0 },
	{ "plugins", LINE_COUNTS, "by_plugin", NULL, 16 },
	{ "vendors", LINE_COUNTS, "by_vendor", NULL, 8 },
	{ "capabilities", LINE_COUNTS, "by_capability", NULL, CTL_TOP_CAPS },
	{ "rules", LINE_CROSS, "rules", "cross_plugin_rules", 0 },
	{ "scenes", LINE_CROSS, "scenes", "cross_plugin_scenes", 0 },
	{ "rule firings", LINE_WINDOW, "firings", NULL, 0 },
	{ "commands", LINE_WINDOW, "commands", NULL, 0 },
};

static int eco_row(struct ctl_table *t, const cJSON *eco, const struct eco_line *l)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(eco, l->key);
	const char *colors[2] = { CTL_ANSI_BOLD, NULL };
	char line[LINE_MAX_LEN] = "";
	const char *cells[2] = { l->label, line };
	int rc = 0;

	switch (l->kind) {
	case LINE_DEVICES:
		line_add(line, "%.0f (%.0f online)", auto_num(eco, l->key), auto_num(eco, l->key2));
		break;
	case LINE_COUNTS:
		rc = count_line(line, v, l->max);
		break;
	case LINE_CROSS:
		cross_line(line, auto_num(eco, l->key), cJSON_GetObjectItemCaseSensitive(eco, l->key2));
		break;
	case LINE_WINDOW:
		window_line(line, v);
		break;
	}
	return rc ? rc : ctl_table_add(t, cells, colors);
}

char *ctl_render_ecosystem(const cJSON *eco, int color)
{
	struct ctl_table *t = ctl_table_new(2, NULL);
	size_t i;
	int rc = 0;

	if (!t)
		return NULL;
	for (i = 0; i < sizeof(eco_lines) / sizeof(eco_lines[0]) && !rc; i++)
		rc = eco_row(t, eco, &eco_lines[i]);
	return finish(t, rc, color);
}
