/*
 * ctl_format: values, state matching and tables for hearthctl.
 */
#include "ctl_format.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A command-line value longer than this is refused rather than sent. */
#define VALUE_MAX 65536
/* Nested objects deeper than this print as compact JSON in kv lines. */
#define KV_DEPTH_MAX 8

/* A growing string; oom sticks once an allocation fails. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_pad(struct sbuf *b, size_t n)
{
	static const char blanks[] = "                                ";

	while (n > 0) {
		size_t k = n < sizeof(blanks) - 1 ? n : sizeof(blanks) - 1;

		sb_add(b, blanks, k);
		n -= k;
	}
}

/* The built string, or NULL (and nothing leaked) when memory ran out. An
 * empty buffer still yields "". */
static char *sb_take(struct sbuf *b)
{
	if (!b->oom && !b->p)
		sb_add(b, "", 0);
	if (b->oom) {
		free(b->p);
		return NULL;
	}
	return b->p;
}

/* Cut s to at most max bytes and drop a last character left incomplete,
 * by this cut or by an earlier snprintf truncation. */
static void utf8_cut(char *s, size_t max)
{
	size_t len = strnlen(s, max + 1), start, need;
	unsigned char lead;

	if (len > max)
		len = max;
	start = len;
	while (start > 0 && len - start < 4 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
		start--;
	if (start > 0) {
		lead = (unsigned char)s[start - 1];
		need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
		if (len - (start - 1) < need)
			len = start - 1;
	}
	s[len] = '\0';
}

/* Display width: UTF-8 characters, not bytes. */
static size_t utf8_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void ctl_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* JSON's number grammar: optional '-', no leading zeros, optional fraction
 * and exponent. strtod alone would also take "inf", "0x1p3" and " 5". */
static int is_json_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (isdigit((unsigned char)*p))
		while (isdigit((unsigned char)*p))
			p++;
	else
		return 0;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return *p == '\0';
}

static cJSON *parse_json_value(const char *text, char *err, size_t err_len)
{
	const char *end = NULL;
	cJSON *v = cJSON_ParseWithOpts(text, &end, 1);

	if (!v) {
		size_t at = end && end >= text ? (size_t)(end - text) : 0;

		snprintf(err, err_len, "'%.40s' is not valid JSON (at byte %zu)", text, at);
	}
	return v;
}

cJSON *ctl_value_parse(const char *text, char *err, size_t err_len)
{
	cJSON *v;

	if (strnlen(text, VALUE_MAX + 1) > VALUE_MAX) {
		snprintf(err, err_len, "value longer than %d bytes", VALUE_MAX);
		return NULL;
	}
	if (!strcmp(text, "true"))
		v = cJSON_CreateTrue();
	else if (!strcmp(text, "false"))
		v = cJSON_CreateFalse();
	else if (!strcmp(text, "null"))
		v = cJSON_CreateNull();
	else if (is_json_number(text) && isfinite(strtod(text, NULL)))
		v = cJSON_CreateNumber(strtod(text, NULL));
	else if (text[0] == '{' || text[0] == '[')
		return parse_json_value(text, err, err_len);
	else
		v = cJSON_CreateString(text);
	if (!v)
		snprintf(err, err_len, "out of memory");
	return v;
}

static int in_list(const char *key, const char *const *list)
{
	for (; list && *list; list++)
		if (!strcmp(key, *list))
			return 1;
	return 0;
}

/* Split "key=value": copy the key into key (CTL_KEY_MAX + 1 bytes), point
 * *value after the '='. */
static int split_kv(const char *arg, char *key, const char **value, char *err, size_t err_len)
{
	const char *eq = strchr(arg, '=');
	size_t klen, i;

	if (!eq || eq == arg) {
		snprintf(err, err_len, "'%.64s' is not key=value", arg);
		return -EINVAL;
	}
	klen = (size_t)(eq - arg);
	if (klen > CTL_KEY_MAX) {
		snprintf(err, err_len, "key '%.24s...' is longer than %d bytes", arg, CTL_KEY_MAX);
		return -EINVAL;
	}
	for (i = 0; i < klen; i++) {
		if ((unsigned char)arg[i] < 0x20 || arg[i] == 0x7f) {
			snprintf(err, err_len, "key of '%.64s' has a control character", arg);
			return -EINVAL;
		}
	}
	memcpy(key, arg, klen);
	key[klen] = '\0';
	*value = eq + 1;
	return 0;
}

static int kv_add(cJSON *obj, const char *arg, const char *const *string_keys, char *err,
		  size_t err_len)
{
	char key[CTL_KEY_MAX + 1];
	const char *text;
	cJSON *v;

	if (split_kv(arg, key, &text, err, err_len))
		return -EINVAL;
	if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
		snprintf(err, err_len, "key '%s' given twice", key);
		return -EINVAL;
	}
	v = in_list(key, string_keys) ? cJSON_CreateString(text) : ctl_value_parse(text, err, err_len);
	if (!v) {
		if (in_list(key, string_keys))
			snprintf(err, err_len, "out of memory");
		return -EINVAL;
	}
	if (!cJSON_AddItemToObject(obj, key, v)) {
		cJSON_Delete(v);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

cJSON *ctl_kv_object(int n, const char *const *args, const char *const *string_keys,
		     char *err, size_t err_len)
{
	cJSON *obj = cJSON_CreateObject();
	int i;

	if (!obj) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (kv_add(obj, args[i], string_keys, err, err_len)) {
			cJSON_Delete(obj);
			return NULL;
		}
	}
	return obj;
}

/* The numeric value of a number or a numeric string. */
static int number_of(const cJSON *v, double *out)
{
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return 1;
	}
	if (cJSON_IsString(v) && is_json_number(v->valuestring)) {
		*out = strtod(v->valuestring, NULL);
		return 1;
	}
	return 0;
}

/* Devices report floats back through their own conversions; a relative
 * tolerance keeps 0.1 + 0.2 equal to 0.3 without merging distinct values. */
static int numbers_equal(double a, double b)
{
	/* By hand: hearthctl does not link libm. */
	double abs_a = a < 0 ? -a : a, abs_b = b < 0 ? -b : b, diff = a - b;
	double scale = abs_a > abs_b ? abs_a : abs_b;

	if (scale < 1.0)
		scale = 1.0;
	return (diff < 0 ? -diff : diff) <= 1e-9 * scale;
}

static int members_match(const cJSON *have, const cJSON *want)
{
	const cJSON *w;

	if (!cJSON_IsObject(have))
		return 0;
	cJSON_ArrayForEach(w, want)
	{
		if (!ctl_value_matches(cJSON_GetObjectItemCaseSensitive(have, w->string), w))
			return 0;
	}
	return 1;
}

static int elements_match(const cJSON *have, const cJSON *want)
{
	const cJSON *h, *w;

	if (!cJSON_IsArray(have) || cJSON_GetArraySize(have) != cJSON_GetArraySize(want))
		return 0;
	for (h = have->child, w = want->child; h && w; h = h->next, w = w->next)
		if (!ctl_value_matches(h, w))
			return 0;
	return 1;
}

int ctl_value_matches(const cJSON *have, const cJSON *want)
{
	double a, b;

	if (!have || !want)
		return 0;
	if (cJSON_IsNumber(want) || (cJSON_IsNumber(have) && cJSON_IsString(want)))
		return number_of(have, &a) && number_of(want, &b) && numbers_equal(a, b);
	if (cJSON_IsString(want))
		return cJSON_IsString(have) && !strcasecmp(have->valuestring, want->valuestring);
	if (cJSON_IsBool(want))
		return cJSON_IsBool(have) && !cJSON_IsTrue(have) == !cJSON_IsTrue(want);
	if (cJSON_IsNull(want))
		return cJSON_IsNull(have);
	if (cJSON_IsObject(want))
		return members_match(have, want);
	if (cJSON_IsArray(want))
		return elements_match(have, want);
	return 0;
}

static int is_toggle(const cJSON *v)
{
	return cJSON_IsString(v) && !strcasecmp(v->valuestring, "TOGGLE");
}

/* Keys that shape a command but never appear in a state. */
static int is_command_option(const char *key)
{
	return !strcmp(key, "transition");
}

int ctl_state_matches(const cJSON *state, const cJSON *want, int retained)
{
	const cJSON *w, *h;

	if (!cJSON_IsObject(state) || !cJSON_IsObject(want))
		return 0;
	cJSON_ArrayForEach(w, want)
	{
		if (is_command_option(w->string))
			continue;
		h = cJSON_GetObjectItemCaseSensitive(state, w->string);
		if (!h)
			return 0;
		if (is_toggle(w)) {
			if (retained)
				return 0;
			continue;
		}
		if (!ctl_value_matches(h, w))
			return 0;
	}
	return 1;
}

void ctl_format_ago(char *buf, size_t len, int64_t then_ms, int64_t now_ms)
{
	long long s;

	if (then_ms <= 0) {
		snprintf(buf, len, "never");
		return;
	}
	if (now_ms - then_ms < 1000) {
		snprintf(buf, len, "just now");
		return;
	}
	s = (long long)((now_ms - then_ms) / 1000);
	if (s < 60)
		snprintf(buf, len, "%llds ago", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm ago", s / 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh ago", s / 3600);
	else
		snprintf(buf, len, "%lldd ago", s / 86400);
}

void ctl_format_value(char *buf, size_t len, const cJSON *v)
{
	char *json;

	if (len == 0)
		return;
	if (!v)
		snprintf(buf, len, "-");
	else if (cJSON_IsString(v))
		snprintf(buf, len, "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(buf, len, "%.15g", v->valuedouble);
	else if (cJSON_IsBool(v))
		snprintf(buf, len, "%s", cJSON_IsTrue(v) ? "true" : "false");
	else if (cJSON_IsNull(v))
		snprintf(buf, len, "null");
	else if ((json = cJSON_PrintUnformatted(v))) {
		snprintf(buf, len, "%s", json);
		cJSON_free(json);
	} else
		snprintf(buf, len, "?");
	utf8_cut(buf, len - 1);
	ctl_sanitize(buf);
}

static void kv_lines(struct sbuf *b, const cJSON *obj, const char *prefix, int depth)
{
	char key[256], value[1024];
	const cJSON *c;

	cJSON_ArrayForEach(c, obj)
	{
		snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
			 c->string ? c->string : "");
		if (cJSON_IsObject(c) && c->child && depth < KV_DEPTH_MAX) {
			kv_lines(b, c, key, depth + 1);
			continue;
		}
		utf8_cut(key, sizeof(key) - 1);
		ctl_sanitize(key);
		ctl_format_value(value, sizeof(value), c);
		sb_str(b, key);
		sb_str(b, ": ");
		sb_str(b, value);
		sb_str(b, "\n");
	}
}

char *ctl_render_kv(const cJSON *obj)
{
	struct sbuf b = { 0 };

	if (cJSON_IsObject(obj))
		kv_lines(&b, obj, "", 0);
	return sb_take(&b);
}

struct ctl_table {
	int ncols;
	char **header; /* ncols strings, or NULL */
	char **cells;  /* nrows * ncols */
	const char **colors;
	int nrows;
	int cap;
};

static char *cell_copy(const char *s)
{
	size_t n = s ? strnlen(s, CTL_CELL_MAX + 8) : 0;
	char *c = malloc(n + 1);

	if (!c)
		return NULL;
	memcpy(c, s ? s : "", n);
	c[n] = '\0';
	utf8_cut(c, CTL_CELL_MAX);
	ctl_sanitize(c);
	return c;
}

struct ctl_table *ctl_table_new(int ncols, const char *const *headers)
{
	struct ctl_table *t;
	int i;

	if (ncols < 1 || ncols > CTL_TABLE_MAX_COLS)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	if (!headers)
		return t;
	t->header = calloc((size_t)ncols, sizeof(char *));
	if (!t->header)
		goto fail;
	for (i = 0; i < ncols; i++)
		if (!(t->header[i] = cell_copy(headers[i])))
			goto fail;
	return t;
fail:
	ctl_table_free(t);
	return NULL;
}

static int grow(struct ctl_table *t)
{
	int cap = t->cap ? t->cap * 2 : 16;
	size_t n = (size_t)cap * (size_t)t->ncols;
	char **cells;
	const char **colors;

	cells = realloc(t->cells, n * sizeof(*cells));
	if (!cells)
		return -ENOMEM;
	t->cells = cells;
	colors = realloc(t->colors, n * sizeof(*colors));
	if (!colors)
		return -ENOMEM;
	t->colors = colors;
	t->cap = cap;
	return 0;
}

int ctl_table_add(struct ctl_table *t, const char *const *cells, const char *const *colors)
{
	size_t base;
	int i;

	if (t->nrows >= CTL_TABLE_MAX_ROWS)
		return -ENOSPC;
	if (t->nrows == t->cap && grow(t))
		return -ENOMEM;
	base = (size_t)t->nrows * (size_t)t->ncols;
	for (i = 0; i < t->ncols; i++) {
		t->cells[base + i] = cell_copy(cells[i]);
		t->colors[base + i] = colors ? colors[i] : NULL;
		if (!t->cells[base + i]) {
			while (i-- > 0)
				free(t->cells[base + i]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

int ctl_table_rows(const struct ctl_table *t)
{
	return t->nrows;
}

static void widths(const struct ctl_table *t, size_t *w)
{
	int r, c;

	for (c = 0; c < t->ncols; c++)
		w[c] = t->header ? utf8_width(t->header[c]) : 0;
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			size_t cw = utf8_width(t->cells[(size_t)r * (size_t)t->ncols + (size_t)c]);

			if (cw > w[c])
				w[c] = cw;
		}
	}
}

static void render_line(struct sbuf *b, const struct ctl_table *t, char *const *cells,
			const char *const *colors, const size_t *w)
{
	int c;

	for (c = 0; c < t->ncols; c++) {
		const char *color = colors ? colors[c] : NULL;

		if (c > 0)
			sb_str(b, "  ");
		if (color && *cells[c])
			sb_str(b, color);
		sb_str(b, cells[c]);
		if (color && *cells[c])
			sb_str(b, CTL_ANSI_RESET);
		if (c + 1 < t->ncols)
			sb_pad(b, w[c] - utf8_width(cells[c]));
	}
	while (!b->oom && b->len > 0 && b->p[b->len - 1] == ' ')
		b->p[--b->len] = '\0';
	sb_str(b, "\n");
}

char *ctl_table_render(const struct ctl_table *t, int color)
{
	const char *bold[CTL_TABLE_MAX_COLS];
	size_t w[CTL_TABLE_MAX_COLS];
	struct sbuf b = { 0 };
	size_t at;
	int c, r;

	widths(t, w);
	for (c = 0; c < t->ncols; c++)
		bold[c] = CTL_ANSI_BOLD;
	if (t->header)
		render_line(&b, t, t->header, color ? bold : NULL, w);
	for (r = 0; r < t->nrows; r++) {
		at = (size_t)r * (size_t)t->ncols;
		render_line(&b, t, t->cells + at, color ? t->colors + at : NULL, w);
	}
	return sb_take(&b);
}

void ctl_table_free(struct ctl_table *t)
{
	size_t i, n;
	int c;

	if (!t)
		return;
	n = (size_t)t->nrows * (size_t)t->ncols;
	for (i = 0; i < n; i++)
		free(t->cells[i]);
	if (t->header)
		for (c = 0; c < t->ncols; c++)
			free(t->header[c]);
	free(t->header);
	free(t->cells);
	free(t->colors);
	free(t);
}
