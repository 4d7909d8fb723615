/*
 * ctl_format: the pure parts of hearthctl — turning key=value arguments into
 * JSON, deciding whether a state message answers a set, and rendering
 * values, ages and aligned tables as text. No I/O, so it is unit-tested.
 */
#ifndef HEARTHCTL_FORMAT_H
#define HEARTHCTL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CTL_KEY_MAX 64
#define CTL_CELL_MAX 256
#define CTL_TABLE_MAX_ROWS 100000
#define CTL_TABLE_MAX_COLS 16

/* ANSI colours a table cell may carry; each is a static string. */
#define CTL_ANSI_BOLD "\033[1m"
#define CTL_ANSI_DIM "\033[2m"
#define CTL_ANSI_RED "\033[31m"
#define CTL_ANSI_GREEN "\033[32m"
#define CTL_ANSI_YELLOW "\033[33m"
#define CTL_ANSI_CYAN "\033[36m"
#define CTL_ANSI_RESET "\033[0m"

/*
 * Parse one command-line value: a JSON number (no leading zeros, so "007"
 * stays a string) becomes a number, true/false a bool, null a null, text
 * starting with '{' or '[' must be valid JSON, anything else is a string.
 * Returns a new cJSON item, or NULL with err set (bad JSON or no memory).
 */
cJSON *ctl_value_parse(const char *text, char *err, size_t err_len);

/*
 * Build an object from n "key=value" arguments. Keys are 1..CTL_KEY_MAX
 * printable bytes and may not repeat. Values are parsed with ctl_value_parse()
 * except for keys listed in string_keys (NULL-terminated, may be NULL), whose
 * values stay strings. Returns a new object or NULL with err set.
 */
cJSON *ctl_kv_object(int n, const char *const *args, const char *const *string_keys,
		     char *err, size_t err_len);

/*
 * True when a reported value have satisfies a requested value want: numbers
 * numerically, strings without regard to case, a number and a numeric string
 * by value, objects when every requested member matches, arrays element by
 * element.
 */
int ctl_value_matches(const cJSON *have, const cJSON *want);

/*
 * True when state answers the set request want: every requested key is in
 * state with a matching value. {"state":"TOGGLE"} accepts any state value,
 * but only from a live (non-retained) message, since a retained one predates
 * the command. "transition", an option of the command rather than a value
 * the device reports, is not waited for.
 */
int ctl_state_matches(const cJSON *state, const cJSON *want, int retained);

/* "just now", "12s ago", "5m ago", "3h ago", "2d ago", or "never" when
 * then_ms is 0 or negative. */
void ctl_format_ago(char *buf, size_t len, int64_t then_ms, int64_t now_ms);

/* A value as a user reads it: strings bare, numbers shortest, true/false,
 * null, objects and arrays as compact JSON, "-" for a missing (NULL) value.
 * Control characters become '?'. Truncated to fit buf. */
void ctl_format_value(char *buf, size_t len, const cJSON *v);

/* Replace control characters (which could drive the terminal) with '?'. */
void ctl_sanitize(char *s);

/*
 * "key: value" lines for an object, one per member; nested objects are
 * flattened with dots ("plugins.zigbee: ok"). Returns a new string for
 * free(), or NULL when out of memory.
 */
char *ctl_render_kv(const cJSON *obj);

/* An aligned text table. */
struct ctl_table;

/* ncols columns (1..CTL_TABLE_MAX_COLS); headers NULL for a table without a
 * header row. The header strings are copied. NULL when out of memory or ncols
 * is out of range. */
struct ctl_table *ctl_table_new(int ncols, const char *const *headers);

/*
 * Append a row of ncols cells (NULL cells print empty), copied, sanitized and
 * cut to CTL_CELL_MAX bytes. colors is NULL or ncols CTL_ANSI_* strings (or
 * NULL) kept by pointer. Returns 0, -ENOSPC past CTL_TABLE_MAX_ROWS, -ENOMEM.
 */
int ctl_table_add(struct ctl_table *t, const char *const *cells, const char *const *colors);

/* Number of rows added so far (the header excluded). */
int ctl_table_rows(const struct ctl_table *t);

/*
 * The table as text: columns separated by two spaces and aligned by display
 * width (UTF-8 characters), no trailing blanks, one '\n' per line. With color
 * the header is bold and cells carry their colours. A new string for free(),
 * or NULL when out of memory.
 */
char *ctl_table_render(const struct ctl_table *t, int color);

/* Free a table; NULL is fine. */
void ctl_table_free(struct ctl_table *t);

#endif
