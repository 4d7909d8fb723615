/* Tests of the SQLite store: schema, migrations, devices, batched state,
 * history and events, pruning, failure and recovery, load speed. Each test
 * works in its own temporary directory; a second sqlite3 connection checks
 * what is (and is not yet) on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "capability.h"
#include "log.h"
#include "registry.h"
#include "store.h"

#define DAY_MS 86400000LL
/* With nothing queued the store looks for old rows once a minute. */
#define IDLE_PRUNE_GAP_MS 60000

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/hearth-store-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/db/hearth.db", fx->dir);
	*state = fx;
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = nftw(fx->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return rc;
}

/* ---- helpers: a second connection -------------------------------------- */

static sqlite3 *db_open(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
					 NULL),
			 SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	return db;
}

static void db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static long long db_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The first column of the first row as a new string ("<null>" for NULL). */
static char *db_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const char *t = (const char *)sqlite3_column_text(st, 0);
	char *copy = strdup(t ? t : "<null>");
	sqlite3_finalize(st);
	assert_non_null(copy);
	return copy;
}

static long long count_at(const char *path, const char *sql)
{
	sqlite3 *db = db_open(path);
	long long n = db_int(db, sql);
	sqlite3_close(db);
	return n;
}

static void assert_text(sqlite3 *db, const char *sql, const char *want)
{
	char *got = db_text(db, sql);
	if (strcmp(got, want) != 0) {
		free(got);
		fail_msg("%s: expected %s", sql, want);
	}
	free(got);
}

static void assert_integrity(const char *path)
{
	sqlite3 *db = db_open(path);
	assert_text(db, "PRAGMA integrity_check", "ok");
	sqlite3_close(db);
}

static struct store *open_store(const char *path)
{
	struct store *s = NULL;
	char err[256] = "";
	int rc = store_open(path, &s, err, sizeof(err));
	if (rc)
		fail_msg("store_open: %d %s", rc, err);
	assert_non_null(s);
	return s;
}

/* ---- helpers: devices --------------------------------------------------- */

static const char *const modes[] = {"auto", "heat", "cool"};

static const struct hearth_capability color_features[] = {
	{.name = "x", .type = HEARTH_CAP_NUMERIC, .access = 7,
	 .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 0, .max = 1},
	{.name = "y", .type = HEARTH_CAP_NUMERIC, .access = 7,
	 .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 0, .max = 1},
};

static const struct hearth_capability all_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = 7,
	 .value_on = {.type = HEARTH_VALUE_STRING, .u.string = "ON"},
	 .value_off = {.type = HEARTH_VALUE_STRING, .u.string = "OFF"}},
	{.name = "occupancy", .type = HEARTH_CAP_BINARY, .access = 5,
	 .value_on = {.type = HEARTH_VALUE_BOOL, .u.boolean = true},
	 .value_off = {.type = HEARTH_VALUE_BOOL, .u.boolean = false}},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = 7, .unit = "%",
	 .description = "Light level", .flags = 7, .min = 0, .max = 254, .step = 1},
	{.name = "mode", .type = HEARTH_CAP_ENUM, .access = 3, .values = modes, .n_values = 3},
	{.name = "label", .type = HEARTH_CAP_TEXT, .access = 3},
	{.name = "color", .type = HEARTH_CAP_COMPOSITE, .access = 7, .features = color_features,
	 .n_features = 2},
	{.name = "scenes", .type = HEARTH_CAP_LIST, .access = 1},
};

static struct device *add_device(struct registry *reg, const char *id, const char *name,
				 const struct hearth_capability *abi, size_t n_abi)
{
	struct device *dev = NULL;
	char err[256] = "";
	if (registry_add(reg, id, name, "test", &dev, err, sizeof(err)))
		fail_msg("registry_add %s: %s", id, err);
	struct cap *caps = NULL;
	if (cap_array_from_abi(abi, n_abi, &caps, err, sizeof(err)))
		fail_msg("cap_array_from_abi: %s", err);
	registry_set_caps(dev, caps, n_abi);
	return dev;
}

static void queue_json(struct store *s, const char *id, const char *attr, const char *json,
		       int64_t ts_ms)
{
	cJSON *v = cJSON_Parse(json);
	assert_non_null(v);
	assert_int_equal(store_state_queue(s, id, attr, v, ts_ms), 0);
	cJSON_Delete(v);
}

static void queue_number(struct store *s, const char *id, const char *attr, double n,
			 int64_t ts_ms)
{
	cJSON *v = cJSON_CreateNumber(n);
	assert_non_null(v);
	assert_int_equal(store_state_queue(s, id, attr, v, ts_ms), 0);
	cJSON_Delete(v);
}

static void assert_caps_equal(const struct device *a, const struct device *b)
{
	cJSON *ja = cap_array_to_json(a->caps, a->n_caps);
	cJSON *jb = cap_array_to_json(b->caps, b->n_caps);
	assert_non_null(ja);
	assert_non_null(jb);
	assert_true(cJSON_Compare(ja, jb, 1));
	cJSON_Delete(ja);
	cJSON_Delete(jb);
}

static void assert_str_or_null(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got, want);
}

/* Counts error lines logged by the store. */
static int store_errors;

static void count_sink(void *user, enum hearth_log_level level, const char *source,
		       const char *msg)
{
	(void)user;
	(void)msg;
	if (level == HEARTH_LOG_ERROR && source && strcmp(source, "store") == 0)
		store_errors++;
}

/* ---- tests -------------------------------------------------------------- */

static void test_open_creates_schema(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	assert_int_equal(store_pending(s), 0);

	struct stat st;
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/db", fx->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);

	sqlite3 *db = db_open(fx->path);
	assert_text(db, "PRAGMA journal_mode", "wal");
	assert_int_equal(db_int(db, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(db_int(db, "SELECT version FROM schema_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(db_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
				    " name IN ('devices', 'state', 'history', 'events')"),
			 4);
	assert_int_equal(db_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
				    " name IN ('history_ts', 'history_device', 'events_ts')"),
			 3);
	sqlite3_close(db);
	store_close(s, 0);
	assert_integrity(fx->path);
}

static void test_reopen_keeps_schema(void **state)
{
	struct fixture *fx = *state;
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct store *s = open_store(fx->path);
	struct device *dev = add_device(reg, "test:1", "hall/light", all_caps, 1);
	assert_int_equal(store_device_put(s, dev, 1000), 0);
	store_close(s, 1000);

	/* Step 1 uses plain CREATE TABLE: running it again would fail. */
	s = open_store(fx->path);
	assert_int_equal(store_schema_version(s), STORE_SCHEMA_VERSION);
	store_close(s, 2000);
	sqlite3 *db = db_open(fx->path);
	assert_int_equal(db_int(db, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(db_int(db, "SELECT version FROM schema_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(db_int(db, "SELECT count(*) FROM devices"), 1);
	sqlite3_close(db);
	registry_free(reg);
	assert_integrity(fx->path);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *fx = *state;
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/db", fx->dir);
	assert_int_equal(mkdir(dir, 0750), 0);
	sqlite3 *db = db_open(fx->path);
	db_exec(db, "CREATE TABLE schema_version(version INTEGER NOT NULL);"
		    "INSERT INTO schema_version VALUES(99)");
	sqlite3_close(db);

	struct store *s = NULL;
	char err[256] = "";
	assert_int_equal(store_open(fx->path, &s, err, sizeof(err)), -EPROTO);
	assert_null(s);
	assert_non_null(strstr(err, "99"));
	char known[32];
	snprintf(known, sizeof(known), "version %d", STORE_SCHEMA_VERSION);
	assert_non_null(strstr(err, known));
	assert_non_null(strstr(err, fx->path));
	/* nothing was changed */
	assert_int_equal(count_at(fx->path, "SELECT version FROM schema_version"), 99);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM sqlite_master"
					    " WHERE name = 'devices'"),
			 0);
}

/* A file that is not a database is refused as it was, never opened in a
 * fallback mode (those are for disks that refuse, not damaged files), and
 * left as it is. */
static void test_not_a_database_refused(void **state)
{
	struct fixture *fx = *state;
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/db", fx->dir);
	assert_int_equal(mkdir(dir, 0750), 0);
	static const char junk[] = "this is not an SQLite database, but it is long enough to be "
				   "taken for one by a careless opener..............................";
	FILE *f = fopen(fx->path, "w");
	assert_non_null(f);
	for (int i = 0; i < 64; i++)
		fputs(junk, f);
	fclose(f);
	struct store *s = NULL;
	char err[256] = "";
	int rc = store_open(fx->path, &s, err, sizeof(err));
	assert_true(rc < 0);
	assert_null(s);
	assert_non_null(strstr(err, "not a database"));
	f = fopen(fx->path, "r");
	assert_non_null(f);
	char head[sizeof(junk)] = "";
	assert_true(fread(head, 1, sizeof(junk) - 1, f) == sizeof(junk) - 1);
	fclose(f);
	assert_string_equal(head, junk);
}

static void test_missing_grandparent_fails(void **state)
{
	struct fixture *fx = *state;
	char path[200];
	snprintf(path, sizeof(path), "%s/a/b/hearth.db", fx->dir);
	struct store *s = NULL;
	char err[256] = "";
	assert_int_equal(store_open(path, &s, err, sizeof(err)), -ENOENT);
	assert_null(s);
	assert_non_null(strstr(err, path));
}

static void test_device_roundtrip(void **state)
{
	struct fixture *fx = *state;
	static const char *const values[][2] = {
		{"state", "\"ON\""},
		{"occupancy", "true"},
		{"tamper", "false"},
		{"brightness", "254"},
		{"temperature", "21.37"},
		{"tiny", "-1.5e-07"},
		{"label", "null"},
		{"name", "\"K\\u00fcche \\\"1\\\"\""},
		{"color", "{\"x\":0.31,\"y\":0.32}"},
		{"scenes", "[1,\"two\",[3],{\"four\":4},null,false]"},
	};
	size_t n_values = sizeof(values) / sizeof(values[0]);
	struct registry *reg = registry_new();
	assert_non_null(reg);
	size_t n_caps = sizeof(all_caps) / sizeof(all_caps[0]);
	struct device *dev = add_device(reg, "test:lamp", "living/lamp", all_caps, n_caps);
	assert_int_equal(registry_set_text(&dev->vendor, "Acme"), 0);
	assert_int_equal(registry_set_text(&dev->model, "L-1"), 0);
	assert_int_equal(registry_set_text(&dev->description, "By the sofa"), 0);
	assert_int_equal(registry_set_text(&dev->room, "living"), 0);
	dev->description_by_user = true;
	dev->present = true;
	dev->available = true;
	struct device *bare = add_device(reg, "test:bare", NULL, NULL, 0);

	struct store *s = open_store(fx->path);
	assert_int_equal(store_device_put(s, dev, 1000), 0);
	assert_int_equal(store_device_put(s, bare, 1001), 0);
	cJSON *want = cJSON_CreateObject();
	for (size_t i = 0; i < n_values; i++) {
		queue_json(s, dev->id, values[i][0], values[i][1], 5000 + (int64_t)i);
		cJSON_AddItemToObject(want, values[i][0], cJSON_Parse(values[i][1]));
	}
	assert_int_equal(store_pending(s), n_values);
	assert_int_equal(store_flush(s, 6000, 30), 0);
	store_close(s, 6000);

	s = open_store(fx->path);
	struct registry *back = registry_new();
	assert_non_null(back);
	char err[256] = "";
	assert_int_equal(store_load(s, back, err, sizeof(err)), 0);
	assert_int_equal(registry_count(back), 2);
	struct device *got = registry_first(back);
	assert_string_equal(got->id, "test:lamp"); /* created first */
	assert_string_equal(got->name, "living/lamp");
	assert_string_equal(got->plugin, "test");
	assert_string_equal(got->vendor, "Acme");
	assert_string_equal(got->model, "L-1");
	assert_string_equal(got->description, "By the sofa");
	assert_string_equal(got->room, "living");
	assert_true(got->description_by_user);
	assert_false(got->present);
	assert_false(got->available);
	assert_int_equal(got->last_seen_ms, 5000 + (int64_t)n_values - 1);
	assert_int_equal(got->n_caps, n_caps);
	assert_caps_equal(got, dev);
	assert_int_equal(got->caps[5].n_features, 2);
	assert_int_equal(got->caps[3].n_values, 3);
	assert_true(cJSON_IsBool(got->caps[1].value_on));
	assert_true(cJSON_IsString(got->caps[0].value_on));
	assert_true(cJSON_Compare(got->state, want, 1));

	struct device *got_bare = registry_next(got);
	assert_non_null(got_bare);
	assert_string_equal(got_bare->name, "test:bare");
	assert_str_or_null(got_bare->vendor, NULL);
	assert_str_or_null(got_bare->room, NULL);
	assert_false(got_bare->description_by_user);
	assert_int_equal(got_bare->n_caps, 0);
	assert_int_equal(cJSON_GetArraySize(got_bare->state), 0);
	assert_int_equal(got_bare->last_seen_ms, 0);

	cJSON_Delete(want);
	store_close(s, 7000);
	registry_free(back);
	registry_free(reg);
	assert_integrity(fx->path);
}

static void test_rename_and_collision(void **state)
{
	struct fixture *fx = *state;
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct device *a = add_device(reg, "test:a", "kitchen/light", all_caps, 2);
	struct device *b = add_device(reg, "test:b", "hall/light", all_caps, 1);
	struct store *s = open_store(fx->path);
	assert_int_equal(store_device_put(s, a, 1000), 0);
	assert_int_equal(store_device_put(s, b, 1100), 0);

	char err[256] = "";
	assert_int_equal(registry_rename(reg, a, "kitchen/ceiling", err, sizeof(err)), 0);
	assert_int_equal(registry_set_text(&a->room, "kitchen"), 0);
	registry_set_caps(a, NULL, 0);
	assert_int_equal(store_device_put(s, a, 2000), 0);

	sqlite3 *db = db_open(fx->path);
	assert_int_equal(db_int(db, "SELECT count(*) FROM devices"), 2);
	assert_text(db, "SELECT name FROM devices WHERE id = 'test:a'", "kitchen/ceiling");
	assert_text(db, "SELECT room FROM devices WHERE id = 'test:a'", "kitchen");
	assert_text(db, "SELECT capabilities FROM devices WHERE id = 'test:a'", "[]");
	assert_int_equal(db_int(db, "SELECT created_ms FROM devices WHERE id = 'test:a'"), 1000);
	assert_int_equal(db_int(db, "SELECT updated_ms FROM devices WHERE id = 'test:a'"), 2000);

	/* b taking a's name while a's row still holds it */
	struct device clash = *b;
	clash.name = a->name;
	assert_int_equal(store_device_put(s, &clash, 3000), -EEXIST);
	assert_text(db, "SELECT name FROM devices WHERE id = 'test:b'", "hall/light");
	sqlite3_close(db);

	store_close(s, 3000);
	struct registry *back = registry_new();
	assert_non_null(back);
	s = open_store(fx->path);
	assert_int_equal(store_load(s, back, err, sizeof(err)), 0);
	assert_non_null(registry_by_name(back, "kitchen/ceiling"));
	assert_null(registry_by_name(back, "kitchen/light"));
	assert_int_equal(registry_by_id(back, "test:a")->n_caps, 0);
	store_close(s, 3000);
	registry_free(back);
	registry_free(reg);
	assert_integrity(fx->path);
}

static void test_delete(void **state)
{
	struct fixture *fx = *state;
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct device *a = add_device(reg, "test:a", NULL, NULL, 0);
	struct device *b = add_device(reg, "test:b", NULL, NULL, 0);
	struct store *s = open_store(fx->path);
	assert_int_equal(store_device_put(s, a, 1), 0);
	assert_int_equal(store_device_put(s, b, 2), 0);
	queue_number(s, "test:a", "power", 1, 10);
	queue_number(s, "test:b", "power", 2, 10);
	assert_int_equal(store_flush(s, 100, 30), 0);

	queue_number(s, "test:a", "power", 3, 20);
	queue_number(s, "test:a", "energy", 4, 20);
	queue_number(s, "test:b", "power", 5, 20);
	assert_int_equal(store_event_queue(s, 20, "test:a", "removed", NULL), 0);
	assert_int_equal(store_pending(s), 4);
	assert_int_equal(store_device_delete(s, "test:a"), 0);
	assert_int_equal(store_pending(s), 2); /* b's update and the event */
	assert_int_equal(store_device_delete(s, "test:nothing"), 0);
	assert_int_equal(store_flush(s, 200, 30), 0);

	sqlite3 *db = db_open(fx->path);
	assert_int_equal(db_int(db, "SELECT count(*) FROM devices"), 1);
	assert_int_equal(db_int(db, "SELECT count(*) FROM devices WHERE id = 'test:b'"), 1);
	assert_int_equal(db_int(db, "SELECT count(*) FROM state WHERE device_id = 'test:a'"), 0);
	assert_text(db, "SELECT value FROM state WHERE device_id = 'test:b'", "5");
	/* history of a stays until pruned; its unflushed update is gone */
	assert_int_equal(db_int(db, "SELECT count(*) FROM history WHERE device_id = 'test:a'"), 1);
	assert_int_equal(db_int(db, "SELECT count(*) FROM events WHERE device_id = 'test:a'"), 1);
	sqlite3_close(db);
	store_close(s, 300);
	registry_free(reg);
	assert_integrity(fx->path);
}

static void test_batching(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	struct store_stats before, after;
	store_get_stats(s, &before);
	for (int i = 0; i < 1000; i++)
		queue_number(s, "test:x", "power", i, 10000 + i);
	queue_number(s, "test:x", "voltage", 230.5, 10000);
	assert_int_equal(store_pending(s), 1001);

	/* nothing reaches the file before the flush */
	sqlite3 *db = db_open(fx->path);
	assert_int_equal(db_int(db, "SELECT count(*) FROM state"), 0);
	assert_int_equal(db_int(db, "SELECT count(*) FROM history"), 0);

	assert_int_equal(store_flush(s, 20000, 30), 0);
	store_get_stats(s, &after);
	assert_int_equal(store_pending(s), 0);
	assert_int_equal(after.commits, before.commits + 1);
	assert_int_equal(after.rows_written, before.rows_written + 1001 + 2);
	assert_int_equal(after.last_commit_ms, 20000);
	assert_int_equal(after.flush_failures, 0);

	assert_int_equal(db_int(db, "SELECT count(*) FROM state WHERE attribute = 'power'"), 1);
	assert_text(db, "SELECT value FROM state WHERE attribute = 'power'", "999");
	assert_int_equal(db_int(db, "SELECT updated_ms FROM state WHERE attribute = 'power'"),
			 10999);
	assert_int_equal(db_int(db, "SELECT count(*) FROM history WHERE attribute = 'power'"),
			 1000);
	assert_int_equal(db_int(db, "SELECT count(DISTINCT value) FROM history"), 1001);

	/* an empty flush right after writes nothing */
	assert_int_equal(store_flush(s, 20001, 30), 0);
	store_get_stats(s, &before);
	assert_int_equal(before.commits, after.commits);
	sqlite3_close(db);
	store_close(s, 30000);
	assert_integrity(fx->path);
}

static void test_no_history(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	for (int i = 0; i < 10; i++)
		queue_number(s, "test:x", "power", i, 1000 + i);
	assert_int_equal(store_event_queue(s, 1000, "test:x", "press", NULL), 0);
	assert_int_equal(store_flush(s, 2000, 0), 0);
	sqlite3 *db = db_open(fx->path);
	assert_int_equal(db_int(db, "SELECT count(*) FROM history"), 0);
	assert_int_equal(db_int(db, "SELECT count(*) FROM events"), 0);
	assert_text(db, "SELECT value FROM state", "9");
	sqlite3_close(db);
	store_close(s, 3000);
	assert_integrity(fx->path);
}

static void test_prune(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	/* 1,200 rows written when they were fresh */
	for (int i = 0; i < 1200; i++)
		queue_number(s, "test:x", "power", i, 1000 + i);
	for (int i = 0; i < 600; i++)
		assert_int_equal(store_event_queue(s, 1000 + i, NULL, "tick", NULL), 0);
	assert_int_equal(store_flush(s, 3000, 30), 0);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM history"), 1200);

	/* 40 days later: each flush deletes at most one batch per table */
	int64_t now = 1000 + 40 * DAY_MS;
	for (int i = 0; i < 5; i++)
		queue_number(s, "test:x", "power", 5000 + i, now - 1000 + i);
	assert_int_equal(store_flush(s, now, 30), 0);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM history"),
			 1200 + 5 - STORE_PRUNE_BATCH);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM events"),
			 600 - STORE_PRUNE_BATCH);
	/* the oldest went first */
	assert_int_equal(count_at(fx->path, "SELECT min(ts_ms) FROM history"),
			 1000 + STORE_PRUNE_BATCH);

	/* a backlog keeps draining on empty flushes */
	assert_int_equal(store_flush(s, now, 30), 0);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM history"),
			 1200 + 5 - 2 * STORE_PRUNE_BATCH);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM events"), 0);
	assert_int_equal(store_flush(s, now, 30), 0);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM history"), 5);
	assert_int_equal(count_at(fx->path, "SELECT min(ts_ms) FROM history"), now - 1000);
	/* the last state outlives its history */
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM state"), 1);

	/* history_days 0 clears what is left */
	assert_int_equal(store_flush(s, now + IDLE_PRUNE_GAP_MS, 0), 0);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM history"), 0);
	store_close(s, now);
	assert_integrity(fx->path);
}

static void test_flush_failure_keeps_queue(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	for (int i = 0; i < 10; i++)
		queue_number(s, "test:x", "power", i, 1000 + i);
	assert_int_equal(store_event_queue(s, 1000, "test:x", "press", NULL), 0);

	sqlite3 *lock = db_open(fx->path);
	db_exec(lock, "BEGIN EXCLUSIVE; INSERT INTO events(ts_ms, type) VALUES(1, 'lock')");
	log_set_sink(count_sink, NULL);
	store_errors = 0;
	/* each try waits out the busy timeout */
	int rc = store_flush(s, 2000, 30);
	assert_true(rc < 0);
	assert_int_equal(rc, -EBUSY);
	assert_int_equal(store_pending(s), 11);
	assert_int_equal(store_flush(s, 3000, 30), -EBUSY);
	assert_int_equal(store_pending(s), 11);
	assert_int_equal(store_errors, 1); /* one line per failure streak */
	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.flush_failures, 2);
	assert_int_equal(st.commits, 0);

	db_exec(lock, "COMMIT");
	sqlite3_close(lock);
	assert_int_equal(store_flush(s, 4000, 30), 0);
	log_set_sink(NULL, NULL);
	assert_int_equal(store_errors, 1);
	assert_int_equal(store_pending(s), 0);
	store_get_stats(s, &st);
	assert_int_equal(st.commits, 1);
	assert_int_equal(st.last_commit_ms, 4000);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM history"), 10);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM events"), 2);
	assert_int_equal(count_at(fx->path, "SELECT value FROM state"), 9);
	store_close(s, 5000);
	assert_integrity(fx->path);
}

static void test_queue_is_bounded(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	for (int i = 0; i < 100005; i++)
		queue_number(s, "test:x", "power", i, i);
	assert_int_equal(store_pending(s), 100000);
	assert_int_equal(store_flush(s, 200000, 30), 0);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM history"), 100000);
	assert_int_equal(count_at(fx->path, "SELECT min(ts_ms) FROM history"), 5);
	assert_int_equal(count_at(fx->path, "SELECT value FROM state"), 100004);
	store_close(s, 200000);
	assert_integrity(fx->path);
}

static void test_events_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	cJSON *data = cJSON_Parse("{\"action\":\"single\",\"n\":[1,2.5,true,null]}");
	assert_non_null(data);
	assert_int_equal(store_event_queue(s, 1000, "test:btn", "action", data), 0);
	cJSON_Delete(data); /* the store kept its own copy */
	assert_int_equal(store_event_queue(s, 1001, NULL, "rule_fired", NULL), 0);
	assert_int_equal(store_event_queue(s, 1002, "", "bad", NULL), -EINVAL);
	assert_int_equal(store_event_queue(s, 1002, NULL, "", NULL), -EINVAL);
	assert_int_equal(store_pending(s), 2);
	assert_int_equal(store_flush(s, 2000, 30), 0);

	sqlite3 *db = db_open(fx->path);
	assert_int_equal(db_int(db, "SELECT count(*) FROM events"), 2);
	assert_text(db, "SELECT data FROM events WHERE ts_ms = 1000",
		    "{\"action\":\"single\",\"n\":[1,2.5,true,null]}");
	assert_text(db, "SELECT device_id FROM events WHERE ts_ms = 1000", "test:btn");
	assert_text(db, "SELECT type FROM events WHERE ts_ms = 1000", "action");
	assert_text(db, "SELECT device_id FROM events WHERE ts_ms = 1001", "<null>");
	assert_text(db, "SELECT data FROM events WHERE ts_ms = 1001", "<null>");
	assert_text(db, "SELECT type FROM events WHERE ts_ms = 1001", "rule_fired");
	sqlite3_close(db);
	/* close flushes what is still queued */
	assert_int_equal(store_event_queue(s, 3000, NULL, "stopping", NULL), 0);
	store_close(s, 3000);
	assert_int_equal(count_at(fx->path, "SELECT count(*) FROM events"), 3);
	assert_integrity(fx->path);
}

static void test_load_skips_bad_rows(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	sqlite3 *db = db_open(fx->path);
	db_exec(db, "INSERT INTO devices(id, name, plugin, capabilities, created_ms, updated_ms)"
		    " VALUES('test:good', 'good', 'test', '[]', 1, 1),"
		    " ('test:badcaps', 'badcaps', 'test', '{not json', 2, 2),"
		    " ('test:oddcaps', 'oddcaps', 'test',"
		    "  '[{\"name\":\"x\",\"type\":\"nope\"}]', 3, 3),"
		    " ('test:badname', 'a+b', 'test', '[]', 4, 4),"
		    " ('nocolon', 'nocolon', 'test', '[]', 5, 5);"
		    "INSERT INTO state VALUES('test:good', 'power', '12', 50),"
		    " ('test:good', 'broken', '{x', 60),"
		    " ('test:good', 'trailing', '1 2', 70),"
		    " ('test:gone', 'power', '1', 80),"
		    " ('test:badcaps', 'on', 'true', 90)");
	sqlite3_close(db);

	struct registry *reg = registry_new();
	assert_non_null(reg);
	char err[256] = "";
	assert_int_equal(store_load(s, reg, err, sizeof(err)), 0);
	assert_int_equal(registry_count(reg), 3);
	struct device *good = registry_by_id(reg, "test:good");
	assert_non_null(good);
	assert_int_equal(cJSON_GetArraySize(good->state), 1);
	assert_int_equal(cJSON_GetObjectItem(good->state, "power")->valueint, 12);
	assert_int_equal(good->last_seen_ms, 50);
	struct device *bad = registry_by_id(reg, "test:badcaps");
	assert_non_null(bad);
	assert_int_equal(bad->n_caps, 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(bad->state, "on")));
	assert_non_null(registry_by_id(reg, "test:oddcaps"));
	assert_null(registry_by_id(reg, "test:badname"));
	assert_null(registry_by_id(reg, "nocolon"));
	registry_free(reg);
	store_close(s, 100);
	assert_integrity(fx->path);
}

static void test_load_10000_devices(void **state)
{
	struct fixture *fx = *state;
	enum { N_DEV = 10000, N_ATTR = 10 };
	struct registry *reg = registry_new();
	assert_non_null(reg);
	struct store *s = open_store(fx->path);
	char id[64], name[64], attr[16];
	for (int i = 0; i < N_DEV; i++) {
		snprintf(id, sizeof(id), "test:%d", i);
		snprintf(name, sizeof(name), "room%d/device%d", i % 20, i);
		struct device *dev = add_device(reg, id, name, all_caps, 3);
		assert_int_equal(store_device_put(s, dev, 1000 + i), 0);
		for (int k = 0; k < N_ATTR; k++) {
			snprintf(attr, sizeof(attr), "attr%d", k);
			queue_number(s, id, attr, i * 100 + k, 50000 + k);
		}
	}
	assert_int_equal(store_flush(s, 60000, 0), 0);
	store_close(s, 60000);
	registry_free(reg);

	s = open_store(fx->path);
	reg = registry_new();
	assert_non_null(reg);
	char err[256] = "";
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_load(s, reg, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("store_load: %d devices with %d state values each in %.1f ms\n", N_DEV, N_ATTR, ms);

	assert_int_equal(registry_count(reg), N_DEV);
	assert_string_equal(registry_first(reg)->id, "test:0");
	struct device *d = registry_by_id(reg, "test:9999");
	assert_non_null(d);
	assert_null(registry_next(d)); /* loaded in creation order */
	assert_string_equal(d->name, "room19/device9999");
	assert_int_equal(d->n_caps, 3);
	assert_int_equal(cJSON_GetArraySize(d->state), N_ATTR);
	assert_int_equal(cJSON_GetObjectItem(d->state, "attr7")->valueint, 999907);
	assert_int_equal(d->last_seen_ms, 50000 + N_ATTR - 1);
	store_close(s, 70000);
	registry_free(reg);
	assert_integrity(fx->path);
}

static void test_bad_arguments(void **state)
{
	struct fixture *fx = *state;
	struct store *s = open_store(fx->path);
	cJSON *v = cJSON_CreateNumber(1);
	char long_id[REGISTRY_NAME_MAX + 2];
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(store_state_queue(s, long_id, "power", v, 1), -EINVAL);
	assert_int_equal(store_state_queue(s, "test:x", "", v, 1), -EINVAL);
	assert_int_equal(store_state_queue(s, "test:x", "power", NULL, 1), -EINVAL);
	assert_int_equal(store_pending(s), 0);
	cJSON_Delete(v);
	store_close(s, 1);
	store_close(NULL, 1);
}

int main(void)
{
	log_set_level(HEARTH_LOG_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_grandparent_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_and_collision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_failure_keeps_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_skips_bad_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_10000_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
