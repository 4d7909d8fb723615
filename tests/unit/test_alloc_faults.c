/*
 * Allocation failure through cJSON's and SQLite's allocator hooks.
 *
 * main() installs counting allocators before anything else runs: cJSON's
 * through cJSON_InitHooks, SQLite's through SQLITE_CONFIG_MALLOC around the
 * default methods (lookaside off, so that SQLite's small allocations go
 * through them too). Armed, they fail the Nth allocation after arming:
 * only that one ("once") or that one and every one after it ("from N").
 *
 * Each sweep runs one operation for N = 1, 2, ... until it completes
 * without reaching the Nth allocation, each time in a fresh temporary
 * folder, and checks:
 *  - the operation succeeds with complete results, or returns a negative
 *    errno and leaves its out-parameters alone;
 *  - with faults disarmed afterwards, the database passes
 *    PRAGMA integrity_check, what was written before holds exactly what it
 *    held, what was queued is written by a retried flush, and a store opens
 *    and loads it whole;
 *  - no cJSON block and no SQLite byte is left allocated (the binary also
 *    runs under ASan and valgrind, which see libc's allocations too).
 * One summary line per sweep: N tried, how many made the operation fail,
 * how many faults were injected, 0 crashes (a crash ends the binary).
 *
 * The operations: store_open + store_load of a database with devices and
 * state; queued state, events and traces, a device written, store_flush
 * (and its retry); config_load (which allocates with libc alone: its sweeps
 * prove it never reaches either hook; test_config_alloc.c fails libc's own
 * allocations under it); api_json_parse of API payloads;
 * cJSON_Parse + rules_add of the rules in config/rules/; rules firing on an
 * MQTT message (traces, a command with values copied from the trigger, a
 * condition that fails); registry_merge +
 * registry_stamp of a plugin's state report.
 *
 * Sanitized builds and HEARTH_SLOW (make valgrind) step N more sparsely
 * past the first hundreds; HEARTH_ALLOC_DENSE=1 tries every N anyway.
 * HEARTH_ALLOC_VERBOSE=1 prints every bad outcome and keeps the log lines
 * of the failures; HEARTH_TEST_FILTER=test_queue_flush runs one test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "api.h"
#include "capability.h"
#include "config.h"
#include "log.h"
#include "registry.h"
#include "rules.h"
#include "rules_stub.h"
#include "store.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SWEEP_N_MAX 200000 /* an operation that never completes is a failure */
#define DENSE_N 400	   /* every N up to here; then sparser in slow runs, sparse sweeps */
#define BAD_SHOWN 5	   /* bad outcomes printed in full per sweep */

/* ---- the failing allocators ---------------------------------------------- */

enum fault_mode { FAULT_ONCE, FAULT_FROM };

struct fault {
	const char *name;
	bool armed;
	enum fault_mode mode;
	unsigned long fail_at;	/* the Nth allocation after arming fails */
	unsigned long calls;	/* allocations since arming */
	unsigned long injected; /* failures returned since arming */
	long live;		/* blocks not yet freed (cJSON only) */
};

static struct fault cjson_fault = {.name = "cJSON"};
static struct fault sqlite_fault = {.name = "SQLite"};
static sqlite3_mem_methods sqlite_default;

static bool fault_now(struct fault *f)
{
	if (!f->armed)
		return false;
	unsigned long n = ++f->calls;
	bool fail = f->mode == FAULT_ONCE ? n == f->fail_at : n >= f->fail_at;
	if (fail)
		f->injected++;
	return fail;
}

static void *cjson_malloc(size_t size)
{
	if (fault_now(&cjson_fault))
		return NULL;
	void *p = malloc(size);
	if (p)
		cjson_fault.live++;
	return p;
}

static void cjson_free(void *p)
{
	if (!p)
		return;
	cjson_fault.live--;
	free(p);
}

static void *sqlite_malloc(int n)
{
	return fault_now(&sqlite_fault) ? NULL : sqlite_default.xMalloc(n);
}

static void *sqlite_realloc(void *p, int n)
{
	return fault_now(&sqlite_fault) ? NULL : sqlite_default.xRealloc(p, n);
}

static void sqlite_free(void *p)
{
	sqlite_default.xFree(p);
}

static int sqlite_size(void *p)
{
	return sqlite_default.xSize(p);
}

static int sqlite_roundup(int n)
{
	return sqlite_default.xRoundup(n);
}

static int sqlite_init(void *app)
{
	(void)app;
	return sqlite_default.xInit(sqlite_default.pAppData);
}

static void sqlite_shutdown(void *app)
{
	(void)app;
	sqlite_default.xShutdown(sqlite_default.pAppData);
}

/* Before any other use of cJSON or SQLite in the process. */
static int install_allocators(void)
{
	static const sqlite3_mem_methods methods = {
		.xMalloc = sqlite_malloc,
		.xFree = sqlite_free,
		.xRealloc = sqlite_realloc,
		.xSize = sqlite_size,
		.xRoundup = sqlite_roundup,
		.xInit = sqlite_init,
		.xShutdown = sqlite_shutdown,
	};
	cJSON_Hooks hooks = {.malloc_fn = cjson_malloc, .free_fn = cjson_free};
	cJSON_InitHooks(&hooks);
	if (sqlite3_shutdown() != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_default) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_OK ||
	    sqlite3_initialize() != SQLITE_OK)
		return -1;
	return 0;
}

/*
 * The log lines of hundreds of expected failures say nothing new; they go
 * nowhere while faults are armed (HEARTH_ALLOC_VERBOSE keeps them). log.c
 * writes through stdio's stderr, which glibc lets a program point
 * elsewhere; sanitizer and valgrind reports write to fd 2 itself and stay
 * visible.
 */
static FILE *devnull, *saved_stderr;

static void quiet(bool on)
{
#ifdef __GLIBC__
	if (!devnull || getenv("HEARTH_ALLOC_VERBOSE"))
		return;
	if (on && !saved_stderr) {
		saved_stderr = stderr;
		stderr = devnull;
	} else if (!on && saved_stderr) {
		stderr = saved_stderr;
		saved_stderr = NULL;
	}
#else
	(void)on;
#endif
}

/* The fault the running sweep injects, armed by the operation around the
 * calls under test. */
static struct {
	struct fault *fault;
	enum fault_mode mode;
	unsigned long n;
} plan;

static void arm(void)
{
	struct fault *f = plan.fault;
	f->mode = plan.mode;
	f->fail_at = plan.n;
	f->calls = 0;
	f->injected = 0;
	f->armed = true;
	quiet(true);
}

static void disarm(void)
{
	cjson_fault.armed = false;
	sqlite_fault.armed = false;
	quiet(false);
}

/* ---- the sweep --------------------------------------------------------------- */

/*
 * An operation: runs with faults armed where it says, checks everything
 * with faults disarmed, and returns the operation's own result (0 or a
 * negative errno). A check that fails appends to why and returns
 * bad_outcome.
 */
#define BAD_OUTCOME 1
typedef int (*op_fn)(void *ctx, char *why, size_t why_len);

struct sweep_result {
	unsigned long tried, failed, injected, bad, last_n;
};

static char scratch_root[64];

static bool slow_run(void)
{
	return SLOW_BUILD || getenv("HEARTH_SLOW") != NULL;
}

/* Every N up to DENSE_N; past it, in slow runs or for a sparse sweep, N
 * grows by about 1 % (4 % under valgrind) per try. */
static unsigned long next_n(unsigned long n, bool sparse)
{
	if (n < DENSE_N || !(sparse || slow_run()) || getenv("HEARTH_ALLOC_DENSE"))
		return n + 1;
	return n + 1 + n / (getenv("HEARTH_SLOW") ? 25 : 100);
}

static struct sweep_result sweep(const char *what, struct fault *f, enum fault_mode mode,
				 op_fn op, void *ctx, bool sparse)
{
	struct sweep_result r = {0};
	char why[1024];
	plan.fault = f;
	plan.mode = mode;
	for (unsigned long n = 1; n <= SWEEP_N_MAX; n = next_n(n, sparse)) {
		plan.n = n;
		why[0] = '\0';
		int rc = op(ctx, why, sizeof(why));
		disarm();
		r.tried++;
		r.last_n = n;
		r.injected += f->injected;
		if (rc == BAD_OUTCOME) {
			if (r.bad++ < BAD_SHOWN || getenv("HEARTH_ALLOC_VERBOSE"))
				print_message("  BAD %s, %s fault %s N=%lu: %.600s\n", what,
					      f->name, mode == FAULT_ONCE ? "once" : "from", n,
					      why);
		} else if (rc) {
			r.failed++;
		}
		if (f->injected == 0) /* it got through without reaching the Nth */
			break;
	}
	print_message("%-34s %-6s %-4s: %5lu N tried (last N %lu), %5lu failed the operation, "
		      "%6lu faults injected, %lu bad outcomes, 0 crashes\n",
		      what, f->name, mode == FAULT_ONCE ? "once" : "from", r.tried, r.last_n,
		      r.failed, r.injected, r.bad);
	return r;
}

/* Sweep op with each allocator in each mode; sparse for the slow ones. */
static void sweep_all(const char *what, op_fn op, void *ctx, bool use_sqlite, bool use_cjson,
		      bool sparse)
{
	struct fault *faults[] = {&sqlite_fault, &cjson_fault};
	bool used[] = {use_sqlite, use_cjson};
	for (size_t i = 0; i < ARRAY_LEN(faults); i++) {
		if (!used[i])
			continue;
		for (int mode = FAULT_ONCE; mode <= FAULT_FROM; mode++) {
			struct sweep_result r =
				sweep(what, faults[i], (enum fault_mode)mode, op, ctx, sparse);
			assert_int_equal(r.bad, 0);
			assert_true(r.last_n < SWEEP_N_MAX);
		}
	}
}

/* What an out-parameter holds before the call: a function that fails must
 * leave it so. Never dereferenced. */
static char sentinel_byte;
#define SENTINEL(type) ((type *)(void *)&sentinel_byte)

/* Append a reason to why; returns BAD_OUTCOME for the caller to return. */
static int bad(char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t why_len, const char *fmt, ...)
{
	size_t used = strlen(why);
	if (used + 3 < why_len) {
		if (used)
			strcat(why, "; ");
		used = strlen(why);
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why + used, why_len - used, fmt, ap);
		va_end(ap);
	}
	return BAD_OUTCOME;
}

/* ---- files and a second connection ------------------------------------------ */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new folder under the scratch root, holding path (not created). */
static void fresh_dir(char *dir, size_t dir_len, char *path, size_t path_len)
{
	snprintf(dir, dir_len, "%s/run-XXXXXX", scratch_root);
	assert_non_null(mkdtemp(dir));
	snprintf(path, path_len, "%s/hearth.db", dir);
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	assert_true(out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

/* The rows of one query as text, one per line, columns joined by '|'; a
 * new string, or NULL when the query fails. Faults must be disarmed. */
static char *db_rows(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	size_t cap = 256, len = 0;
	char *out = malloc(cap);
	assert_non_null(out);
	out[0] = '\0';
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const char *t = (const char *)sqlite3_column_text(st, i);
			if (!t)
				t = "<null>";
			size_t need = len + strlen(t) + 3;
			if (need > cap) {
				while (cap < need)
					cap *= 2;
				out = realloc(out, cap);
				assert_non_null(out);
			}
			len += (size_t)sprintf(out + len, "%s%s", i ? "|" : "", t);
		}
		out[len++] = '\n';
		out[len] = '\0';
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(out);
		return NULL;
	}
	return out;
}

/* What a hearth database holds, as text: every row of the tables a store
 * writes (history and events by count and content). */
static char *db_snapshot(const char *path, char *why, size_t why_len, int *bad_rc)
{
	static const char *const queries[] = {
		"PRAGMA integrity_check",
		"SELECT version FROM schema_version",
		"SELECT id, name, plugin, vendor, model, description, description_by_user, room,"
		" capabilities, created_ms, updated_ms FROM devices ORDER BY id",
		"SELECT device_id, attribute, value, updated_ms FROM state ORDER BY 1, 2",
		"SELECT count(*), group_concat(device_id || '/' || attribute || '=' || value"
		" || '@' || ts_ms, ' ') FROM (SELECT * FROM history ORDER BY id)",
		"SELECT count(*), group_concat(ts_ms || ':' || coalesce(device_id, '-') || ':'"
		" || type || ':' || coalesce(data, '-'), ' ')"
		" FROM (SELECT * FROM events ORDER BY id)",
		"SELECT kind, id, definition, source FROM documents ORDER BY 1, 2",
		"SELECT rule_id, ts_ms, trace FROM rule_traces ORDER BY id",
		"SELECT key, rule_id, record FROM rule_timers ORDER BY 1",
	};
	sqlite3 *db = NULL;
	*bad_rc = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		*bad_rc = bad(why, why_len, "cannot reopen %s: %s", path,
			      db ? sqlite3_errmsg(db) : "?");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 2000);
	size_t cap = 1024, len = 0;
	char *out = malloc(cap);
	assert_non_null(out);
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(queries); i++) {
		char *rows = db_rows(db, queries[i]);
		if (!rows) {
			*bad_rc = bad(why, why_len, "%s: %s", queries[i], sqlite3_errmsg(db));
			break;
		}
		if (i == 0 && strcmp(rows, "ok\n") != 0)
			*bad_rc = bad(why, why_len, "integrity_check: %s", rows);
		size_t need = len + strlen(queries[i]) + strlen(rows) + 8;
		if (need > cap) {
			while (cap < need)
				cap *= 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		len += (size_t)sprintf(out + len, "-- %s\n%s", queries[i], rows);
		free(rows);
	}
	sqlite3_close(db);
	if (*bad_rc) {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- the database every store sweep starts from ------------------------------ */

#define T0 1000 /* the template's rows are written at 1000..1100 */
#define T_FLUSH 2000

static const char *const modes[] = {"auto", "heat", "cool"};

static const struct hearth_capability lamp_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = 7,
	 .value_on = HEARTH_STRING("ON"), .value_off = HEARTH_STRING("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = 7, .unit = "%",
	 .description = "Light level", .flags = 7, .min = 0, .max = 254, .step = 1},
	{.name = "color_temp", .type = HEARTH_CAP_NUMERIC, .access = 7,
	 .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 153, .max = 500},
	{.name = "mode", .type = HEARTH_CAP_ENUM, .access = 3, .values = modes, .n_values = 3},
};

static const struct hearth_capability sensor_caps[] = {
	{.name = "occupancy", .type = HEARTH_CAP_BINARY, .access = 1,
	 .value_on = HEARTH_BOOL(true), .value_off = HEARTH_BOOL(false)},
	{.name = "temperature", .type = HEARTH_CAP_NUMERIC, .access = 1, .unit = "°C"},
};

static const char *const button_actions[] = {"single", "double", "long"};
static const struct hearth_capability button_caps[] = {
	{.name = "action", .type = HEARTH_CAP_ENUM, .access = 1, .values = button_actions,
	 .n_values = 3},
};

static const struct hearth_capability plug_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = 7,
	 .value_on = HEARTH_STRING("ON"), .value_off = HEARTH_STRING("OFF")},
	{.name = "power", .type = HEARTH_CAP_NUMERIC, .access = 1, .unit = "W"},
};

static const struct {
	const char *id, *name, *vendor, *room;
	const struct hearth_capability *caps;
	size_t n_caps;
} devices[] = {
	{"virtual:light-1", "virtual/light-1", "Acme", "hall", lamp_caps, ARRAY_LEN(lamp_caps)},
	{"virtual:motion-1", "virtual/motion-1", NULL, "hall", sensor_caps,
	 ARRAY_LEN(sensor_caps)},
	{"virtual:button-1", "virtual/button-1", "Acme", NULL, button_caps,
	 ARRAY_LEN(button_caps)},
	{"virtual:climate-1", "virtual/climate-1", NULL, "living", sensor_caps,
	 ARRAY_LEN(sensor_caps)},
	{"virtual:bare", NULL, NULL, NULL, NULL, 0},
};

/* Values as cJSON prints them unformatted. */
static const struct {
	const char *id, *attr, *json;
} template_state[] = {
	{"virtual:light-1", "state", "\"ON\""},
	{"virtual:light-1", "brightness", "180"},
	{"virtual:light-1", "color_temp", "370"},
	{"virtual:light-1", "mode", "\"heat\""},
	{"virtual:light-1", "color", "{\"x\":0.31,\"y\":0.32}"},
	{"virtual:motion-1", "occupancy", "true"},
	{"virtual:motion-1", "temperature", "21.5"},
	{"virtual:button-1", "action", "\"single\""},
	{"virtual:climate-1", "temperature", "23.25"},
	{"virtual:climate-1", "scenes", "[1,\"two\",[3],{\"four\":4},null,false]"},
};

static struct {
	char path[128];
	char *snapshot;	 /* db_snapshot() of the template */
	cJSON *registry; /* id -> {"name","caps","state"} as a store loads it */
} tmpl;

static struct device *add_device(struct registry *reg, size_t i)
{
	struct device *dev = NULL;
	char err[256] = "";
	if (registry_add(reg, devices[i].id, devices[i].name, "virtual", &dev, err, sizeof(err)))
		fail_msg("registry_add %s: %s", devices[i].id, err);
	struct cap *caps = NULL;
	if (cap_array_from_abi(devices[i].caps, devices[i].n_caps, &caps, err, sizeof(err)))
		fail_msg("cap_array_from_abi: %s", err);
	registry_set_caps(dev, caps, devices[i].n_caps);
	assert_int_equal(registry_set_text(&dev->vendor, devices[i].vendor), 0);
	assert_int_equal(registry_set_text(&dev->room, devices[i].room), 0);
	return dev;
}

/* A registry as JSON, for comparing loads: id -> {name, vendor, room,
 * caps, state, state_ms}. */
static cJSON *registry_json(struct registry *reg)
{
	cJSON *all = cJSON_CreateObject();
	assert_non_null(all);
	for (struct device *d = registry_first(reg); d; d = registry_next(d)) {
		cJSON *o = cJSON_CreateObject();
		assert_non_null(o);
		assert_non_null(cJSON_AddStringToObject(o, "name", d->name));
		assert_non_null(d->vendor ? cJSON_AddStringToObject(o, "vendor", d->vendor)
					  : cJSON_AddNullToObject(o, "vendor"));
		assert_non_null(d->room ? cJSON_AddStringToObject(o, "room", d->room)
					: cJSON_AddNullToObject(o, "room"));
		cJSON *caps = cap_array_to_json(d->caps, d->n_caps);
		assert_non_null(caps);
		assert_true(cJSON_AddItemToObject(o, "caps", caps));
		cJSON *state = cJSON_Duplicate(d->state, 1);
		assert_non_null(state);
		assert_true(cJSON_AddItemToObject(o, "state", state));
		cJSON *state_ms = cJSON_Duplicate(d->state_ms, 1);
		assert_non_null(state_ms);
		assert_true(cJSON_AddItemToObject(o, "state_ms", state_ms));
		assert_non_null(
			cJSON_AddNumberToObject(o, "last_seen_ms", (double)d->last_seen_ms));
		assert_true(cJSON_AddItemToObject(all, d->id, o));
	}
	return all;
}

static struct store *open_store(const char *path)
{
	struct store *s = NULL;
	char err[256] = "";
	int rc = store_open(path, &s, err, sizeof(err));
	if (rc)
		fail_msg("store_open: %d %s", rc, err);
	return s;
}

static void queue_text(struct store *s, const char *id, const char *attr, const char *json,
		       int64_t ts_ms)
{
	cJSON *v = cJSON_Parse(json);
	assert_non_null(v);
	char *printed = cJSON_PrintUnformatted(v);
	assert_non_null(printed);
	assert_string_equal(printed, json); /* the tables hold what cJSON prints */
	cJSON_free(printed);
	assert_int_equal(store_state_queue(s, id, attr, v, ts_ms), 0);
	cJSON_Delete(v);
}

static const char rule_doc[] =
	"{\"id\":\"hall\",\"triggers\":[{\"type\":\"state\",\"device\":\"virtual:motion-1\","
	"\"attribute\":\"occupancy\",\"to\":true}],\"actions\":[{\"type\":\"set\","
	"\"device\":\"virtual:light-1\",\"state\":{\"state\":\"ON\"}}]}";

/* Written once, copied into each run's folder. */
static void make_template(void)
{
	snprintf(tmpl.path, sizeof(tmpl.path), "%s/template.db", scratch_root);
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct store *s = open_store(tmpl.path);
	for (size_t i = 0; i < ARRAY_LEN(devices); i++)
		assert_int_equal(store_device_put(s, add_device(reg, i), T0 + (int64_t)i), 0);
	for (size_t i = 0; i < ARRAY_LEN(template_state); i++)
		queue_text(s, template_state[i].id, template_state[i].attr, template_state[i].json,
			   T0 + 10 + (int64_t)i);
	cJSON *data = cJSON_Parse("{\"action\":\"single\"}");
	assert_non_null(data);
	assert_int_equal(store_event_queue(s, T0 + 20, "virtual:button-1", "action", data), 0);
	cJSON_Delete(data);
	cJSON *doc = cJSON_Parse(rule_doc);
	assert_non_null(doc);
	assert_int_equal(store_doc_put(s, STORE_DOC_RULE, "hall", doc, 0, T0 + 30), 0);
	cJSON_Delete(doc);
	cJSON *trace = cJSON_Parse("{\"time\":1040,\"result\":\"ran\"}");
	assert_non_null(trace);
	assert_int_equal(store_trace_queue(s, "hall", trace, T0 + 40), 0);
	cJSON_Delete(trace);
	assert_int_equal(store_flush(s, T0 + 100, 30), 0);
	store_close(s, T0 + 100);
	registry_free(reg);

	char why[512] = "";
	int rc;
	tmpl.snapshot = db_snapshot(tmpl.path, why, sizeof(why), &rc);
	if (!tmpl.snapshot)
		fail_msg("template: %s", why);

	/* what a store loads from it */
	s = open_store(tmpl.path);
	reg = registry_new();
	assert_non_null(reg);
	char err[256] = "";
	assert_int_equal(store_load(s, reg, err, sizeof(err)), 0);
	store_close(s, T0 + 100);
	assert_int_equal(registry_count(reg), ARRAY_LEN(devices));
	tmpl.registry = registry_json(reg);
	registry_free(reg);
	for (size_t i = 0; i < ARRAY_LEN(template_state); i++) {
		cJSON *d = cJSON_GetObjectItemCaseSensitive(tmpl.registry, template_state[i].id);
		cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(d, "state"),
							    template_state[i].attr);
		char *printed = cJSON_PrintUnformatted(v);
		assert_non_null(printed);
		assert_string_equal(printed, template_state[i].json);
		cJSON_free(printed);
	}
}

/* Open and load path with faults disarmed; compare with want (a
 * registry_json()). */
static int check_loads(const char *path, const cJSON *want, char *why, size_t why_len)
{
	struct store *s = NULL;
	char err[256] = "";
	int rc = store_open(path, &s, err, sizeof(err));
	if (rc)
		return bad(why, why_len, "reopening: store_open %d %s", rc, err);
	struct registry *reg = registry_new();
	assert_non_null(reg);
	rc = store_load(s, reg, err, sizeof(err));
	int ret = 0;
	if (rc) {
		ret = bad(why, why_len, "reopening: store_load %d %s", rc, err);
	} else {
		cJSON *got = registry_json(reg);
		if (!cJSON_Compare(got, want, 1))
			ret = bad(why, why_len, "reopening: the registry loaded differs");
		cJSON_Delete(got);
	}
	registry_free(reg);
	store_close(s, T_FLUSH);
	return ret;
}

/* Nothing of cJSON or SQLite left allocated since the baseline. */
struct mem_mark {
	long cjson_live;
	sqlite3_int64 sqlite_used;
};

static struct mem_mark mem_mark(void)
{
	return (struct mem_mark){cjson_fault.live, sqlite3_memory_used()};
}

static int check_mem(struct mem_mark was, char *why, size_t why_len)
{
	struct mem_mark now = mem_mark();
	int ret = 0;
	if (now.cjson_live != was.cjson_live)
		ret = bad(why, why_len, "%ld cJSON blocks leaked", now.cjson_live - was.cjson_live);
	if (now.sqlite_used != was.sqlite_used)
		ret = bad(why, why_len, "%lld SQLite bytes leaked",
			  (long long)(now.sqlite_used - was.sqlite_used));
	return ret;
}

/* ---- 1. store_open + store_load of an existing database --------------------- */

static int op_open_load(void *ctx, char *why, size_t why_len)
{
	(void)ctx;
	char dir[96], path[128];
	fresh_dir(dir, sizeof(dir), path, sizeof(path));
	copy_file(tmpl.path, path);
	struct mem_mark mark = mem_mark();

	struct store *s = SENTINEL(struct store); /* untouched on failure */
	struct registry *reg = registry_new();
	assert_non_null(reg);
	char err[256] = "";
	arm();
	int rc = store_open(path, &s, err, sizeof(err));
	if (rc == 0)
		rc = store_load(s, reg, err, sizeof(err));
	disarm();
	int ret = rc;
	if (rc > 0)
		ret = bad(why, why_len, "returned %d", rc);
	if (rc < 0 && !err[0])
		ret = bad(why, why_len, "failed with %d and no message", rc);
	if (rc == 0) {
		cJSON *got = registry_json(reg);
		if (!cJSON_Compare(got, tmpl.registry, 1)) {
			char *text = cJSON_PrintUnformatted(got);
			ret = bad(why, why_len, "store_load returned 0 but loaded %s",
				  text ? text : "?");
			cJSON_free(text);
		}
		cJSON_Delete(got);
	}
	/* a store_open that failed leaves s alone; one that worked is closed */
	if (s != SENTINEL(struct store))
		store_close(s, T_FLUSH);
	else if (rc == 0)
		ret = bad(why, why_len, "store_open returned 0 without a store");
	registry_free(reg);

	int snap_rc;
	char *snap = db_snapshot(path, why, why_len, &snap_rc);
	if (!snap)
		ret = snap_rc;
	else if (strcmp(snap, tmpl.snapshot) != 0)
		ret = bad(why, why_len, "the database changed:\n%s", snap);
	free(snap);
	if (check_loads(path, tmpl.registry, why, why_len))
		ret = BAD_OUTCOME;
	if (check_mem(mark, why, why_len))
		ret = BAD_OUTCOME;
	remove_tree(dir);
	return ret;
}

static void test_open_load(void **state)
{
	(void)state;
	sweep_all("store_open + store_load", op_open_load, NULL, true, true, false);
}

/* A store_open that creates the database: its migrations are all or
 * nothing, and a later open finishes the job. */
static int op_create(void *ctx, char *why, size_t why_len)
{
	(void)ctx;
	char dir[96], path[128];
	fresh_dir(dir, sizeof(dir), path, sizeof(path));
	struct mem_mark mark = mem_mark();
	struct store *s = SENTINEL(struct store);
	char err[256] = "";
	arm();
	int rc = store_open(path, &s, err, sizeof(err));
	disarm();
	int ret = rc;
	if (rc > 0 || (rc < 0 && (!err[0] || s != SENTINEL(struct store))))
		ret = bad(why, why_len, "store_open: %d (%s)", rc, err);
	if (rc == 0)
		store_close(s, T_FLUSH);
	s = NULL;
	rc = store_open(path, &s, err, sizeof(err));
	if (rc)
		ret = bad(why, why_len, "reopening: %d %s", rc, err);
	else if (store_schema_version(s) != STORE_SCHEMA_VERSION)
		ret = bad(why, why_len, "schema version %d", store_schema_version(s));
	store_close(s, T_FLUSH);
	int snap_rc;
	char *snap = db_snapshot(path, why, why_len, &snap_rc);
	if (!snap)
		ret = snap_rc;
	free(snap);
	if (check_mem(mark, why, why_len))
		ret = BAD_OUTCOME;
	remove_tree(dir);
	return ret;
}

static void test_create(void **state)
{
	(void)state;
	/* thousands of allocations, each try a new file: sparse past DENSE_N */
	sweep_all("store_open of a new database", op_create, NULL, true, true, true);
}

/* ---- 2. queue state, events, traces and a device, then store_flush ----------- */

enum item_kind { I_STATE, I_EVENT, I_TRACE, I_TRACE_UPDATE };

static const struct item {
	enum item_kind kind;
	const char *id;	  /* device, or rule */
	const char *name; /* attribute, or event type */
	const char *json; /* as cJSON prints it; NULL: no event data */
	int64_t ts_ms;
} items[] = {
	{I_STATE, "virtual:light-1", "brightness", "10", 1500},
	{I_STATE, "virtual:light-1", "state", "\"OFF\"", 1501},
	{I_EVENT, "virtual:button-1", "action", "{\"action\":\"double\"}", 1502},
	{I_STATE, "virtual:motion-1", "temperature", "19.5", 1503},
	{I_TRACE, "hall", NULL, "{\"time\":1504,\"result\":\"running\",\"steps\":[1,2]}", 1504},
	{I_STATE, "virtual:light-1", "brightness", "20", 1505},
	{I_STATE, "virtual:plug-1", "power", "3.5", 1506},
	{I_EVENT, NULL, "rule_fired", "{\"rule\":\"hall\",\"outcome\":\"ran\"}", 1507},
	{I_EVENT, "virtual:plug-1", "removed", NULL, 1508},
	{I_TRACE_UPDATE, "hall", NULL, "{\"time\":1504,\"result\":\"ran\"}", 1504},
	{I_TRACE, "hall", NULL, "{\"time\":1509,\"result\":\"ran\"}", 1509},
	{I_STATE, "virtual:light-1", "color", "{\"x\":0.5,\"y\":0.4}", 1510},
};

static const char plug_id[] = "virtual:plug-1";

static int queue_item(struct store *s, const struct item *it, const cJSON *value)
{
	switch (it->kind) {
	case I_STATE:
		return store_state_queue(s, it->id, it->name, value, it->ts_ms);
	case I_EVENT:
		return store_event_queue(s, it->ts_ms, it->id, it->name, value);
	case I_TRACE:
		return store_trace_queue(s, it->id, value, it->ts_ms);
	case I_TRACE_UPDATE:
		return store_trace_update(s, it->id, value, it->ts_ms);
	}
	return -EINVAL;
}

static int64_t db_count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The text of one row, or NULL when there is none. */
static char *db_value(sqlite3 *db, const char *sql, const char *a, const char *b, int64_t c)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, c);
	char *out = NULL;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		out = strdup(t ? t : "<null>");
		assert_non_null(out);
	}
	sqlite3_finalize(st);
	return out;
}

static int row_is(sqlite3 *db, const char *sql, const char *a, const char *b, int64_t c,
			const char *want, char *why, size_t why_len)
{
	char *got = db_value(db, sql, a, b, c);
	int ret = 0;
	if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0))
		ret = bad(why, why_len, "%s [%s %s %lld]: got %s, want %s", sql, a, b ? b : "",
			  (long long)c, got ? got : "nothing", want ? want : "nothing");
	free(got);
	return ret;
}

/* The template's state value of (id, attr), or NULL. */
static const char *template_value(const char *id, const char *attr)
{
	for (size_t i = 0; i < ARRAY_LEN(template_state); i++)
		if (strcmp(template_state[i].id, id) == 0 &&
		    strcmp(template_state[i].attr, attr) == 0)
			return template_state[i].json;
	return NULL;
}

/* Is every row the run should have written there, and only those? */
static int check_flushed(const char *path, const char *plug_caps_json, const bool *queued,
			 char *why, size_t why_len)
{
	bool plug_put = plug_caps_json != NULL;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	int ret = 0;
	int64_t n_state = 0, n_event = 0, n_trace = 0;
	for (size_t i = 0; i < ARRAY_LEN(items); i++) {
		if (!queued[i])
			continue;
		n_state += items[i].kind == I_STATE;
		n_event += items[i].kind == I_EVENT;
		n_trace += items[i].kind == I_TRACE;
	}
	if (db_count(db, "SELECT count(*) FROM devices") != (int64_t)ARRAY_LEN(devices) + plug_put)
		ret = bad(why, why_len, "devices: %lld rows",
			  (long long)db_count(db, "SELECT count(*) FROM devices"));
	if (plug_put && (row_is(db, "SELECT name FROM devices WHERE id = ?1 AND ?3 = ?3", plug_id,
				NULL, 0, "hall/plug", why, why_len) ||
			 row_is(db, "SELECT capabilities FROM devices WHERE id = ?1 AND ?3 = ?3",
				plug_id, NULL, 0, plug_caps_json, why, why_len)))
		ret = BAD_OUTCOME;
	if (db_count(db, "SELECT count(*) FROM history") !=
	    (int64_t)ARRAY_LEN(template_state) + n_state)
		ret = bad(why, why_len, "history: %lld rows, want %lld",
			  (long long)db_count(db, "SELECT count(*) FROM history"),
			  (long long)ARRAY_LEN(template_state) + n_state);
	if (db_count(db, "SELECT count(*) FROM events") != 1 + n_event)
		ret = bad(why, why_len, "events: %lld rows, want %lld",
			  (long long)db_count(db, "SELECT count(*) FROM events"),
			  (long long)(1 + n_event));
	if (db_count(db, "SELECT count(*) FROM rule_traces") != 1 + n_trace)
		ret = bad(why, why_len, "traces: %lld rows, want %lld",
			  (long long)db_count(db, "SELECT count(*) FROM rule_traces"),
			  (long long)(1 + n_trace));
	/* each attribute holds its last queued value, or the template's */
	for (size_t i = 0; i < ARRAY_LEN(items); i++) {
		const struct item *it = &items[i];
		if (it->kind == I_STATE) {
			const char *want = template_value(it->id, it->name);
			for (size_t k = 0; k < ARRAY_LEN(items); k++)
				if (queued[k] && items[k].kind == I_STATE &&
				    strcmp(items[k].id, it->id) == 0 &&
				    strcmp(items[k].name, it->name) == 0)
					want = items[k].json;
			if (row_is(db, "SELECT value FROM state WHERE device_id = ?1"
					 " AND attribute = ?2 AND ?3 = ?3",
					 it->id, it->name, 0, want, why, why_len))
				ret = BAD_OUTCOME;
		}
		if (it->kind == I_TRACE) {
			const char *want = queued[i] ? it->json : NULL;
			for (size_t k = 0; queued[i] && k < ARRAY_LEN(items); k++)
				if (queued[k] && items[k].kind == I_TRACE_UPDATE &&
				    items[k].ts_ms == it->ts_ms)
					want = items[k].json;
			if (row_is(db, "SELECT trace FROM rule_traces WHERE rule_id = ?1"
					 " AND coalesce(?2, '') = '' AND ts_ms = ?3",
					 it->id, NULL, it->ts_ms, want, why, why_len))
				ret = BAD_OUTCOME;
		}
	}
	sqlite3_close(db);
	return ret;
}

static int op_queue_flush(void *ctx, char *why, size_t why_len)
{
	(void)ctx;
	char dir[96], path[128];
	fresh_dir(dir, sizeof(dir), path, sizeof(path));
	copy_file(tmpl.path, path);
	struct mem_mark mark = mem_mark();

	/* values are parsed beforehand: the store's own allocations are swept */
	cJSON *values[ARRAY_LEN(items)];
	for (size_t i = 0; i < ARRAY_LEN(items); i++) {
		values[i] = items[i].json ? cJSON_Parse(items[i].json) : NULL;
		assert_true(values[i] || !items[i].json);
	}
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct device *plug = NULL;
	char err[256] = "";
	assert_int_equal(registry_add(reg, plug_id, "hall/plug", "virtual", &plug, err,
				      sizeof(err)), 0);
	struct cap *caps = NULL;
	assert_int_equal(cap_array_from_abi(plug_caps, ARRAY_LEN(plug_caps), &caps, err,
					    sizeof(err)), 0);
	registry_set_caps(plug, caps, ARRAY_LEN(plug_caps));
	cJSON *caps_json = cap_array_to_json(plug->caps, plug->n_caps);
	assert_non_null(caps_json);
	char *caps_text = cJSON_PrintUnformatted(caps_json); /* as the store writes them */
	assert_non_null(caps_text);
	cJSON_Delete(caps_json);

	struct store *s = open_store(path);
	bool queued[ARRAY_LEN(items)] = {false};
	size_t n_queued = 0;
	int ret = 0;
	arm();
	int put_rc = store_device_put(s, plug, T_FLUSH - 100);
	for (size_t i = 0; i < ARRAY_LEN(items); i++) {
		int rc = queue_item(s, &items[i], values[i]);
		if (rc && rc != -ENOMEM)
			ret = bad(why, why_len, "queueing item %zu: %d", i, rc);
		queued[i] = rc == 0;
		n_queued += rc == 0;
	}
	int flush_rc = store_flush(s, T_FLUSH, 30);
	disarm();
	if (put_rc > 0 || flush_rc > 0)
		ret = bad(why, why_len, "returned %d, %d", put_rc, flush_rc);
	if (store_pending(s) != (flush_rc ? n_queued : 0))
		ret = bad(why, why_len, "flush %d left %zu pending of %zu queued", flush_rc,
			  store_pending(s), n_queued);
	int op_rc = put_rc ? put_rc : flush_rc;
	for (size_t i = 0; i < ARRAY_LEN(items); i++)
		if (!queued[i])
			op_rc = -ENOMEM;
	/* what could not be written is written by the next flush */
	if (flush_rc) {
		int rc = store_flush(s, T_FLUSH + 1, 30);
		if (rc)
			ret = bad(why, why_len, "the retried flush failed: %d", rc);
		if (store_pending(s))
			ret = bad(why, why_len, "%zu pending after the retry", store_pending(s));
	}
	store_close(s, T_FLUSH + 2);
	for (size_t i = 0; i < ARRAY_LEN(items); i++)
		cJSON_Delete(values[i]);

	int snap_rc;
	char *snap = db_snapshot(path, why, why_len, &snap_rc); /* integrity_check */
	if (!snap)
		ret = snap_rc;
	free(snap);
	if (check_flushed(path, put_rc == 0 ? caps_text : NULL, queued, why, why_len))
		ret = BAD_OUTCOME;
	cJSON_free(caps_text);

	/* and a store loads it: the template's devices plus the plug */
	struct store *check = open_store(path);
	struct registry *back = registry_new();
	assert_non_null(back);
	if (store_load(check, back, err, sizeof(err)))
		ret = bad(why, why_len, "loading after the flush: %s", err);
	else if (registry_count(back) != ARRAY_LEN(devices) + (put_rc == 0))
		ret = bad(why, why_len, "%zu devices loaded", registry_count(back));
	store_close(check, T_FLUSH + 3);
	registry_free(back);
	registry_free(reg);
	if (check_mem(mark, why, why_len))
		ret = BAD_OUTCOME;
	remove_tree(dir);
	return ret ? ret : op_rc;
}

static void test_queue_flush(void **state)
{
	(void)state;
	sweep_all("queue + store_flush", op_queue_flush, NULL, true, true, false);
}

/* ---- 3. config_load of a realistic file -------------------------------------- */

static const char config_text[] =
	"# as config/hearth.dev.conf, with every section a hub reads\n"
	"[mqtt]\nhost = 127.0.0.1\nport = 1883\nbase_topic = hearth\nclient_id = hearthd-dev\n"
	"keepalive = 60\nqos = 1\n\n"
	"[store]\npath = build/dev/hearth.db\ncommit_interval_ms = 1000\nhistory_days = 14\n\n"
	"[plugins]\ndir = build/plugins\nenable = virtual, zigbee\n\n"
	"[rules]\ndir = config/rules\n\n"
	"[location]\nlatitude = 52.3676\nlongitude = 4.9041\ntimezone = Europe/Amsterdam\n\n"
	"[log]\nlevel = info\nformat = json\n\n"
	"[homeassistant]\nenabled = true\n\n"
	"[web]\nenabled = true\nlisten = 127.0.0.1:8080\nroot = build/web\n\n"
	"[plugin.virtual]\ndevices = light:2, plug:1, motion:1, climate:1, contact:1, button:1\n"
	"interval_ms = 5000\n\n"
	"[plugin.zigbee]\nbase_topic = zigbee2mqtt\n";

static unsigned long config_hook_calls;

static int op_config(void *ctx, char *why, size_t why_len)
{
	const char *path = ctx;
	struct hearth_config *const untouched = SENTINEL(struct hearth_config);
	struct hearth_config *c = untouched;
	char err[512] = "";
	arm();
	int rc = config_load(path, &c, err, sizeof(err));
	config_hook_calls += plan.fault->calls;
	disarm();
	int ret = rc;
	if (rc == 0) {
		if (c == untouched || c->mqtt.keepalive != 60 || c->store.history_days != 14 ||
		    c->plugins.n_enable != 2 || c->n_sections != 2 || !c->location.set ||
		    strcmp(c->location.timezone, "Europe/Amsterdam") != 0 ||
		    strcmp(config_section_get(config_section_find(c, "zigbee"), "base_topic"),
			   "zigbee2mqtt") != 0)
			ret = bad(why, why_len, "config_load returned 0 with other values");
		if (c != untouched)
			config_free(c);
	} else if (c != untouched || rc > 0 || !err[0]) {
		ret = bad(why, why_len, "failed with %d (%s) and touched *out", rc, err);
	}
	return ret;
}

static void test_config_load(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/hearth.conf", scratch_root);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(config_text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	config_hook_calls = 0;
	sweep_all("config_load", op_config, path, true, true, false);
	/* config.c and libinih allocate with libc only: neither hook is reached,
	 * so these sweeps stop at N = 1 with the file read whole
	 * (test_config_alloc.c sweeps libc's allocator). */
	print_message("config_load: %lu allocations through the cJSON and SQLite hooks\n",
		      config_hook_calls);
	unlink(path);
}

/* ---- 4. API payloads and rule definitions ------------------------------------ */

static const char *const payloads[] = {
	"{\"state\":\"ON\",\"brightness\":180,\"color\":{\"x\":0.31,\"y\":0.32},"
	"\"transaction\":\"7\"}",
	"{\"from\":\"virtual/light-1\",\"to\":\"kitchen/ceiling\",\"transaction\":\"1\"}",
	"  [1, 2.5, -3e2, true, false, null, \"K\\u00fcche \\\"1\\\"\", [], {},"
	" [[{\"a\":[1]}]]] \n",
	"\"TOGGLE\"",
	"{\"id\":\"r\",\"triggers\":[{\"type\":\"state\",\"device\":\"a/b\",\"to\":true}],"
	"\"actions\":[{\"type\":\"delay\",\"for\":\"5s\"}],\"enabled\":false}",
};

static int op_api_parse(void *ctx, char *why, size_t why_len)
{
	cJSON **want = ctx;
	struct mem_mark mark = mem_mark();
	int op_rc = 0, ret = 0;
	for (size_t i = 0; i < ARRAY_LEN(payloads); i++) {
		cJSON *got = SENTINEL(cJSON);
		char err[256] = "";
		arm();
		int rc = api_json_parse(payloads[i], strlen(payloads[i]), &got, err, sizeof(err));
		disarm();
		if (rc == 0) {
			if (got == SENTINEL(cJSON) || !cJSON_Compare(got, want[i], 1))
				ret = bad(why, why_len, "payload %zu parsed to something else", i);
			if (got != SENTINEL(cJSON))
				cJSON_Delete(got);
		} else {
			op_rc = rc;
			if (rc > 0 || got != SENTINEL(cJSON) || !err[0])
				ret = bad(why, why_len, "payload %zu: %d (%s) and touched *out", i,
					  rc, err);
		}
	}
	if (check_mem(mark, why, why_len))
		ret = BAD_OUTCOME;
	return ret ? ret : op_rc;
}

static void test_api_parse(void **state)
{
	(void)state;
	cJSON *want[ARRAY_LEN(payloads)];
	for (size_t i = 0; i < ARRAY_LEN(payloads); i++) {
		char err[256] = "";
		assert_int_equal(api_json_parse(payloads[i], strlen(payloads[i]), &want[i], err,
						sizeof(err)), 0);
	}
	sweep_all("api_json_parse", op_api_parse, want, false, true, false);
	for (size_t i = 0; i < ARRAY_LEN(payloads); i++)
		cJSON_Delete(want[i]);
}

/* The rules of config/rules/, with the devices a registry holds. */
static const char *const rule_texts[] = {
	"{\"id\":\"hall-motion-light\",\"name\":\"Hall light follows motion\",\"mode\":\"restart\","
	"\"triggers\":[{\"type\":\"state\",\"device\":\"virtual/motion-1\","
	"\"attribute\":\"occupancy\",\"to\":true}],"
	"\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\","
	"\"state\":{\"state\":\"ON\",\"brightness\":180}},"
	"{\"type\":\"wait\",\"trigger\":{\"type\":\"state\",\"device\":\"virtual/motion-1\","
	"\"attribute\":\"occupancy\",\"to\":false,\"for\":\"2m\"},\"timeout\":\"30m\"},"
	"{\"type\":\"set\",\"device\":\"virtual/light-1\",\"state\":{\"state\":\"OFF\"}}]}",
	"{\"id\":\"climate-fan\",\"name\":\"Fan above 24\",\"mode\":\"single\","
	"\"cooldown\":\"10m\","
	"\"triggers\":[{\"type\":\"numeric\",\"device\":\"virtual/climate-1\","
	"\"attribute\":\"temperature\",\"above\":24,\"for\":\"1m\"}],"
	"\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\","
	"\"state\":{\"state\":\"ON\"}},"
	"{\"type\":\"wait\",\"trigger\":{\"type\":\"numeric\",\"device\":\"virtual/climate-1\","
	"\"attribute\":\"temperature\",\"below\":22.5},\"timeout\":\"3h\"},"
	"{\"type\":\"set\",\"device\":\"virtual/light-1\",\"state\":{\"state\":\"OFF\"}}]}",
	"{\"id\":\"sunset-lights\",\"name\":\"Before sunset\","
	"\"triggers\":[{\"type\":\"sun\",\"event\":\"sunset\",\"offset\":\"-30m\"}],"
	"\"conditions\":[{\"type\":\"state\",\"device\":\"virtual/light-1\","
	"\"attribute\":\"state\",\"state\":\"OFF\"}],"
	"\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\","
	"\"state\":{\"state\":\"ON\",\"brightness\":100}}]}",
	"{\"id\":\"button-scenes\",\"name\":\"Button\","
	"\"triggers\":[{\"id\":\"single\",\"type\":\"event\",\"device\":\"virtual/button-1\","
	"\"action\":\"single\"},{\"id\":\"double\",\"type\":\"event\","
	"\"device\":\"virtual/button-1\",\"action\":\"double\"}],"
	"\"actions\":[{\"type\":\"choose\",\"choose\":[{\"conditions\":[{\"type\":\"trigger\","
	"\"id\":\"single\"}],\"actions\":[{\"type\":\"scene\",\"scene\":\"evening\"}]}],"
	"\"default\":[{\"type\":\"scene\",\"scene\":\"all-off\"},"
	"{\"type\":\"repeat\",\"count\":3,\"actions\":[{\"type\":\"publish\","
	"\"topic\":\"hall/beep\",\"payload\":\"1\"},{\"type\":\"delay\",\"duration\":\"1s\"}]}]}]}",
};

struct rules_ctx {
	struct registry *reg;
	cJSON *want[ARRAY_LEN(rule_texts)]; /* rules_definition() of each */
};

static const char *rule_id(size_t i)
{
	static const char *const ids[] = {"hall-motion-light", "climate-fan", "sunset-lights",
					  "button-scenes"};
	return ids[i];
}

static int check_rules(struct rules *r, const struct rules_ctx *c, const bool *added,
		       char *why, size_t why_len)
{
	int ret = 0;
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_LEN(rule_texts); i++) {
		n += added[i];
		if (rules_exists(r, rule_id(i)) != added[i]) {
			ret = bad(why, why_len, "rule %s %s", rule_id(i),
				  added[i] ? "missing" : "there after a failed add");
			continue;
		}
		if (!added[i])
			continue;
		cJSON *def = rules_definition(r, rule_id(i));
		if (!def || !cJSON_Compare(def, c->want[i], 1)) {
			char *text = def ? cJSON_PrintUnformatted(def) : NULL;
			ret = bad(why, why_len, "rule %s stored as %s", rule_id(i),
				  text ? text : "nothing");
			cJSON_free(text);
		}
		cJSON_Delete(def);
	}
	if (rules_count(r) != n)
		ret = bad(why, why_len, "%zu rules, want %zu", rules_count(r), n);
	return ret;
}

static int op_rules(void *ctx, char *why, size_t why_len)
{
	struct rules_ctx *c = ctx;
	struct mem_mark mark = mem_mark();
	struct rules *r = rules_new(&rules_stub_host, c->reg);
	assert_non_null(r);
	bool added[ARRAY_LEN(rule_texts)] = {false};
	int op_rc = 0, ret = 0;
	arm();
	for (size_t i = 0; i < ARRAY_LEN(rule_texts); i++) {
		char err[400] = "";
		cJSON *def = cJSON_Parse(rule_texts[i]);
		int rc = def ? rules_add(r, def, RULES_SOURCE_API, err, sizeof(err)) : -ENOMEM;
		cJSON_Delete(def);
		if (rc > 0 || (rc && def && !err[0]))
			ret = bad(why, why_len, "rule %zu: %d without a message", i, rc);
		if (rc && rc != -ENOMEM)
			ret = bad(why, why_len, "rule %zu: %d (%s) for an allocation failure", i,
				  rc, err);
		added[i] = rc == 0;
		if (rc)
			op_rc = rc;
	}
	disarm();
	if (check_rules(r, c, added, why, why_len))
		ret = BAD_OUTCOME;
	/* disarmed, the engine takes the rules that failed */
	for (size_t i = 0; i < ARRAY_LEN(rule_texts); i++) {
		char err[400] = "";
		cJSON *def = cJSON_Parse(rule_texts[i]);
		assert_non_null(def);
		int rc = rules_add(r, def, RULES_SOURCE_API, err, sizeof(err));
		cJSON_Delete(def);
		if (rc)
			ret = bad(why, why_len, "rule %zu added afterwards: %d %s", i, rc, err);
		added[i] = true;
	}
	if (check_rules(r, c, added, why, why_len))
		ret = BAD_OUTCOME;
	cJSON *all = rules_to_json(r);
	if (cJSON_GetArraySize(all) != (int)ARRAY_LEN(rule_texts))
		ret = bad(why, why_len, "rules_to_json: %d rules", cJSON_GetArraySize(all));
	cJSON_Delete(all);
	rules_free(r);
	if (check_mem(mark, why, why_len))
		ret = BAD_OUTCOME;
	return ret ? ret : op_rc;
}

static void test_rules_add(void **state)
{
	(void)state;
	struct rules_ctx c = {.reg = registry_new()};
	assert_non_null(c.reg);
	for (size_t i = 0; i < ARRAY_LEN(devices); i++)
		add_device(c.reg, i);
	struct rules *r = rules_new(&rules_stub_host, c.reg);
	assert_non_null(r);
	for (size_t i = 0; i < ARRAY_LEN(rule_texts); i++) {
		char err[400] = "";
		cJSON *def = cJSON_Parse(rule_texts[i]);
		assert_non_null(def);
		if (rules_add(r, def, RULES_SOURCE_API, err, sizeof(err)))
			fail_msg("rule %zu: %s", i, err);
		cJSON_Delete(def);
		c.want[i] = rules_definition(r, rule_id(i));
		assert_non_null(c.want[i]);
	}
	rules_free(r);
	sweep_all("cJSON_Parse + rules_add", op_rules, &c, false, true, false);
	for (size_t i = 0; i < ARRAY_LEN(rule_texts); i++)
		cJSON_Delete(c.want[i]);
	registry_free(c.reg);
}

/* ---- 4b. rules firing: traces and commands built under allocation failure ------- */

/* Two rules on one MQTT trigger: "copy" passes its condition and sets the
 * lamp with a value copied from the payload; "refuse" fails its condition
 * and leaves a trace that says so. */
static const char *const fire_texts[] = {
	"{\"id\":\"copy\",\"triggers\":[{\"type\":\"mqtt\",\"topic\":\"alloc/go\",\"id\":\"go\"}],"
	"\"conditions\":[{\"type\":\"trigger\",\"id\":\"go\"}],"
	"\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\","
	"\"state\":{\"state\":\"ON\",\"brightness\":{\"from_trigger\":\"level\"},"
	"\"color_temp\":{\"from_trigger\":\"warmth\"}}}]}",
	"{\"id\":\"refuse\",\"triggers\":[{\"type\":\"mqtt\",\"topic\":\"alloc/go\",\"id\":\"go\"}],"
	"\"conditions\":[{\"type\":\"trigger\",\"id\":\"elsewhere\"}],"
	"\"actions\":[{\"type\":\"publish\",\"topic\":\"alloc/never\",\"payload\":\"1\"}]}",
};

#define FIRE_PAYLOAD "{\"level\":77,\"warmth\":370}"

/* What the engine handed its host, checked as it was handed (no copies:
 * a copy would allocate under the faults). */
static struct {
	int sets;	 /* commands sent */
	int sets_whole;	 /* of them, with every member keyed and copied right */
	int traces;	 /* traces kept */
	int traces_bad;	 /* of them, with a member no lookup reaches */
	int published;	 /* "refuse" ran its action: its condition was skipped */
} fired;

/* Every member of every object below j has a key a lookup finds. */
static bool keys_whole(const cJSON *j)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, j)
	{
		if (cJSON_IsObject(j) &&
		    (!item->string || cJSON_GetObjectItemCaseSensitive(j, item->string) != item))
			return false;
		if ((cJSON_IsObject(item) || cJSON_IsArray(item)) && !keys_whole(item))
			return false;
	}
	return true;
}

static int fire_set(void *u, const char *d, const cJSON *state, char *e, size_t l)
{
	(void)u, (void)e, (void)l;
	fired.sets++;
	const cJSON *on = cJSON_GetObjectItemCaseSensitive(state, "state");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(state, "brightness");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(state, "color_temp");
	if (strcmp(d, "virtual:light-1") == 0 && keys_whole(state) &&
	    cJSON_GetArraySize(state) == 3 && cJSON_IsString(on) &&
	    strcmp(on->valuestring, "ON") == 0 && cJSON_IsNumber(b) && b->valuedouble == 77 &&
	    cJSON_IsNumber(ct) && ct->valuedouble == 370)
		fired.sets_whole++;
	return 0;
}

static void fire_trace(void *u, const char *id, const cJSON *t)
{
	(void)u, (void)id;
	fired.traces++;
	if (!keys_whole(t))
		fired.traces_bad++;
}

static int fire_publish(void *u, const char *t, const char *p, bool r)
{
	(void)u, (void)p, (void)r;
	fired.published += strcmp(t, "alloc/never") == 0;
	return 0;
}

static const struct rules_host fire_host = {
	.now_ms = stub_now,
	.set = fire_set,
	.scene = stub_scene,
	.publish = fire_publish,
	.fired = stub_fired,
	.trace = fire_trace,
	.persist = stub_persist,
	.changed = stub_changed,
	.mqtt_watch = stub_watch,
	.location = stub_location,
};

static int op_fire(void *ctx, char *why, size_t why_len)
{
	struct registry *reg = ctx;
	struct mem_mark mark = mem_mark();
	struct rules *r = rules_new(&fire_host, reg);
	assert_non_null(r);
	for (size_t i = 0; i < ARRAY_LEN(fire_texts); i++) {
		char err[400] = "";
		cJSON *def = cJSON_Parse(fire_texts[i]);
		assert_non_null(def);
		if (rules_add(r, def, RULES_SOURCE_API, err, sizeof(err)))
			fail_msg("rule %zu: %s", i, err);
		cJSON_Delete(def);
	}
	memset(&fired, 0, sizeof(fired));
	int ret = 0;
	arm();
	rules_on_mqtt(r, "alloc/go", FIRE_PAYLOAD, strlen(FIRE_PAYLOAD));
	disarm();
	/* a command that went out went out whole; a trace kept is whole */
	if (fired.sets != fired.sets_whole)
		ret = bad(why, why_len, "%d of %d commands lost or garbled a value",
			  fired.sets - fired.sets_whole, fired.sets);
	if (fired.traces_bad)
		ret = bad(why, why_len, "%d traces with a member no lookup reaches",
			  fired.traces_bad);
	if (fired.published)
		ret = bad(why, why_len, "a rule whose condition fails ran its action");
	int op_rc = fired.sets_whole == 1 && fired.traces == 2 ? 0 : -ENOMEM;
	/* disarmed, the same engine fires whole */
	memset(&fired, 0, sizeof(fired));
	rules_stub_now_ms += 1000;
	rules_on_mqtt(r, "alloc/go", FIRE_PAYLOAD, strlen(FIRE_PAYLOAD));
	if (fired.sets != 1 || fired.sets_whole != 1 || fired.traces != 2 || fired.traces_bad ||
	    fired.published)
		ret = bad(why, why_len,
			  "afterwards: %d commands (%d whole), %d traces (%d bad), %d published",
			  fired.sets, fired.sets_whole, fired.traces, fired.traces_bad,
			  fired.published);
	rules_free(r);
	if (check_mem(mark, why, why_len))
		ret = BAD_OUTCOME;
	return ret ? ret : op_rc;
}

static void test_rules_fire(void **state)
{
	(void)state;
	struct registry *reg = registry_new();
	assert_non_null(reg);
	for (size_t i = 0; i < ARRAY_LEN(devices); i++)
		add_device(reg, i);
	sweep_all("rules firing (traces, from_trigger)", op_fire, reg, false, true, false);
	registry_free(reg);
}

/* ---- 5. a plugin's state report: registry_merge + registry_stamp -------------- */

static const struct hearth_attr first_report[] = {
	{"state", HEARTH_STRING("ON")},
	{"brightness", HEARTH_NUMBER(180)},
	{"color", HEARTH_JSON("{\"x\":0.31,\"y\":0.32}")},
	{"mode", HEARTH_STRING("heat")},
	{"color_temp", HEARTH_NUMBER(370)},
};

static const struct hearth_attr next_report[] = {
	{"state", HEARTH_STRING("OFF")},		      /* changed */
	{"brightness", HEARTH_NUMBER(42)},		      /* changed */
	{"linkquality", HEARTH_NUMBER(87)},		      /* new */
	{"color", HEARTH_JSON("{\"x\":0.5,\"y\":0.4}")},     /* changed */
	{"mode", HEARTH_STRING("heat")},		      /* the same */
	{"update", HEARTH_JSON("{\"state\":\"idle\"}")},       /* new */
};

#define REPORT_CHANGED 5
#define REPORT_MS 5000

/* Every member of o has a key, and a lookup by that key finds it: a
 * member without a key would hide the ones after it. */
static bool members_reachable(const cJSON *o)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, o)
	{
		if (!item->string || cJSON_GetObjectItemCaseSensitive(o, item->string) != item)
			return false;
	}
	return true;
}

static int op_merge(void *ctx, char *why, size_t why_len)
{
	const cJSON *want = ctx; /* the state after both reports */
	struct mem_mark mark = mem_mark();
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct device *dev = add_device(reg, 0);
	const char *changed[ARRAY_LEN(next_report)];
	int n = registry_merge(dev, first_report, ARRAY_LEN(first_report), changed);
	assert_int_equal(n, ARRAY_LEN(first_report));
	assert_int_equal(registry_stamp(dev, changed, (size_t)n, 1000), 0);
	for (size_t i = 0; i < ARRAY_LEN(changed); i++)
		changed[i] = SENTINEL(const char);

	arm();
	n = registry_merge(dev, next_report, ARRAY_LEN(next_report), changed);
	int stamp_rc = n > 0 ? registry_stamp(dev, changed, (size_t)n, REPORT_MS) : 0;
	disarm();
	int ret = n < 0 ? n : stamp_rc;
	/* -EINVAL too: cap_value_to_json() cannot tell a JSON value that does
	 * not parse from one cJSON had no memory for (nothing is merged) */
	if (n != -ENOMEM && n != -EINVAL && n != REPORT_CHANGED)
		ret = bad(why, why_len, "registry_merge returned %d", n);
	if (stamp_rc != 0 && stamp_rc != -ENOMEM)
		ret = bad(why, why_len, "registry_stamp returned %d", stamp_rc);
	if (!members_reachable(dev->state) || !members_reachable(dev->state_ms))
		ret = bad(why, why_len, "a state member lost its key");
	if (n == REPORT_CHANGED) {
		for (int i = 0; i < n; i++)
			if (changed[i] == SENTINEL(const char) || !changed[i] ||
			    !cJSON_GetObjectItemCaseSensitive(dev->state, changed[i]))
				ret = bad(why, why_len, "changed[%d] is not in the state", i);
		if (!cJSON_Compare(dev->state, want, 1))
			ret = bad(why, why_len, "the state merged is not the one reported");
	}
	if (n == REPORT_CHANGED && stamp_rc == 0) {
		for (int i = 0; i < n; i++) {
			if (changed[i] == SENTINEL(const char) || !changed[i])
				continue; /* reported above */
			const cJSON *ms =
				cJSON_GetObjectItemCaseSensitive(dev->state_ms, changed[i]);
			if (!cJSON_IsNumber(ms) || ms->valuedouble != REPORT_MS)
				ret = bad(why, why_len, "%s is not stamped", changed[i]);
		}
	}
	/* whatever was merged holds a value of one report or the other */
	const cJSON *item;
	cJSON_ArrayForEach(item, dev->state)
	{
		const cJSON *next = cJSON_GetObjectItemCaseSensitive(want, item->string);
		bool first = false;
		for (size_t i = 0; i < ARRAY_LEN(first_report); i++) {
			cJSON *v = NULL;
			if (strcmp(first_report[i].name, item->string ? item->string : "") == 0) {
				assert_int_equal(cap_value_to_json(&first_report[i].value, &v), 0);
				first = cJSON_Compare(v, item, 1);
				cJSON_Delete(v);
			}
		}
		if (!first && !cJSON_Compare(next, item, 1))
			ret = bad(why, why_len, "%s holds a value never reported",
				  item->string ? item->string : "a member");
	}
	registry_free(reg);
	if (check_mem(mark, why, why_len))
		ret = BAD_OUTCOME;
	return ret;
}

static void test_registry_merge(void **state)
{
	(void)state;
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct device *dev = add_device(reg, 0);
	assert_int_equal(registry_merge(dev, first_report, ARRAY_LEN(first_report), NULL),
			 ARRAY_LEN(first_report));
	assert_int_equal(registry_merge(dev, next_report, ARRAY_LEN(next_report), NULL),
			 REPORT_CHANGED);
	cJSON *want = cJSON_Duplicate(dev->state, 1);
	assert_non_null(want);
	registry_free(reg);
	sweep_all("registry_merge + registry_stamp", op_merge, want, false, true, false);
	cJSON_Delete(want);
}

/* ---- main ---------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	snprintf(scratch_root, sizeof(scratch_root), "/tmp/hearth-alloc-XXXXXX");
	if (!mkdtemp(scratch_root))
		return -1;
	devnull = fopen("/dev/null", "we");
	make_template();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(tmpl.snapshot);
	cJSON_Delete(tmpl.registry);
	remove_tree(scratch_root);
	if (devnull)
		fclose(devnull);
	return 0;
}

int main(void)
{
	if (install_allocators() != 0) {
		fprintf(stderr, "cannot install the failing allocators\n");
		return 1;
	}
	log_set_level(HEARTH_LOG_WARNING);
	if (getenv("HEARTH_TEST_FILTER")) /* e.g. "test_open_load" */
		cmocka_set_test_filter(getenv("HEARTH_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_open_load),
		cmocka_unit_test(test_queue_flush),
		cmocka_unit_test(test_config_load),
		cmocka_unit_test(test_api_parse),
		cmocka_unit_test(test_rules_add),
		cmocka_unit_test(test_rules_fire),
		cmocka_unit_test(test_registry_merge),
	};
	int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
	sqlite3_shutdown();
	return failed;
}
