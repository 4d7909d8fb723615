/*
 * Schema notes beyond store.h (no extra columns):
 *   - state is a WITHOUT ROWID table: its primary key (device_id, attribute)
 *     is then its only b-tree, so a state upsert writes one tree, not two.
 *   - devices.description_by_user is INTEGER 0/1; devices.capabilities,
 *     state.value, history.value and events.data hold unformatted JSON text.
 *   - schema_version holds exactly one row.
 *   - No foreign keys: a state row whose device is gone is skipped at load.
 *
 * history_days = 0 keeps no time series at all: neither history nor event
 * rows are written, and rows left from earlier runs are pruned in batches.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"

#define BUSY_TIMEOUT_MS 2000
#define QUEUE_MAX 100000
#define DAY_MS 86400000LL
/* With nothing queued, old rows are looked for at most this often. */
#define IDLE_PRUNE_INTERVAL_MS 60000
#define LOAD_SKIP_LOG_MAX 10
#define NAME_MAX_BYTES REGISTRY_NAME_MAX
#define MSG_LEN 512

static const struct migration {
	int version;
	const char *sql;
} migrations[] = {
	{1, "CREATE TABLE devices("
	    " id TEXT PRIMARY KEY NOT NULL,"
	    " name TEXT NOT NULL UNIQUE,"
	    " plugin TEXT NOT NULL,"
	    " vendor TEXT, model TEXT, description TEXT,"
	    " description_by_user INTEGER NOT NULL DEFAULT 0,"
	    " room TEXT,"
	    " capabilities TEXT NOT NULL DEFAULT '[]',"
	    " created_ms INTEGER NOT NULL,"
	    " updated_ms INTEGER NOT NULL);"
	    "CREATE TABLE state("
	    " device_id TEXT NOT NULL, attribute TEXT NOT NULL, value TEXT NOT NULL,"
	    " updated_ms INTEGER NOT NULL,"
	    " PRIMARY KEY(device_id, attribute)) WITHOUT ROWID;"
	    "CREATE TABLE history("
	    " id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, attribute TEXT NOT NULL,"
	    " value TEXT NOT NULL, ts_ms INTEGER NOT NULL);"
	    "CREATE INDEX history_ts ON history(ts_ms);"
	    "CREATE INDEX history_device ON history(device_id, attribute, ts_ms);"
	    "CREATE TABLE events("
	    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, device_id TEXT,"
	    " type TEXT NOT NULL, data TEXT);"
	    "CREATE INDEX events_ts ON events(ts_ms);"},
	{2, "CREATE TABLE documents("
	    " kind TEXT NOT NULL, id TEXT NOT NULL, definition TEXT NOT NULL,"
	    " source INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,"
	    " PRIMARY KEY(kind, id)) WITHOUT ROWID;"
	    "CREATE TABLE rule_timers("
	    " key TEXT PRIMARY KEY NOT NULL, rule_id TEXT NOT NULL, record TEXT NOT NULL,"
	    " updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
	    "CREATE TABLE rule_traces("
	    " id INTEGER PRIMARY KEY, rule_id TEXT NOT NULL, ts_ms INTEGER NOT NULL,"
	    " trace TEXT NOT NULL);"
	    "CREATE INDEX rule_traces_rule ON rule_traces(rule_id, id);"},
};

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_DEV_PUT,
	S_DEV_DELETE,
	S_STATE_DELETE_DEV,
	S_STATE_PUT,
	S_HISTORY_ADD,
	S_EVENT_ADD,
	S_HISTORY_PRUNE,
	S_EVENT_PRUNE,
	S_DEV_LOAD,
	S_STATE_LOAD,
	S_DOC_PUT,
	S_DOC_DELETE,
	S_DOC_LOAD,
	S_TIMER_PUT,
	S_TIMER_DELETE,
	S_TIMER_DELETE_RULE,
	S_TIMER_LOAD,
	S_TRACE_ADD,
	S_TRACE_UPDATE,
	S_TRACE_TRIM,
	S_TRACE_DELETE_RULE,
	S_TRACE_LOAD,
	S_FIRING_STATS,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_DEV_PUT] = "INSERT INTO devices(id, name, plugin, vendor, model, description,"
		      " description_by_user, room, capabilities, created_ms, updated_ms)"
		      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)"
		      " ON CONFLICT(id) DO UPDATE SET name = excluded.name,"
		      " plugin = excluded.plugin, vendor = excluded.vendor,"
		      " model = excluded.model, description = excluded.description,"
		      " description_by_user = excluded.description_by_user,"
		      " room = excluded.room, capabilities = excluded.capabilities,"
		      " updated_ms = excluded.updated_ms",
	[S_DEV_DELETE] = "DELETE FROM devices WHERE id = ?1",
	[S_STATE_DELETE_DEV] = "DELETE FROM state WHERE device_id = ?1",
	[S_STATE_PUT] = "INSERT INTO state(device_id, attribute, value, updated_ms)"
			" VALUES(?1, ?2, ?3, ?4) ON CONFLICT(device_id, attribute)"
			" DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
	[S_HISTORY_ADD] = "INSERT INTO history(device_id, attribute, value, ts_ms)"
			  " VALUES(?1, ?2, ?3, ?4)",
	[S_EVENT_ADD] = "INSERT INTO events(ts_ms, device_id, type, data) VALUES(?1, ?2, ?3, ?4)",
	[S_HISTORY_PRUNE] = "DELETE FROM history WHERE id IN (SELECT id FROM history"
			    " WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
	[S_EVENT_PRUNE] = "DELETE FROM events WHERE id IN (SELECT id FROM events"
			  " WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
	[S_DEV_LOAD] = "SELECT id, name, plugin, vendor, model, description,"
		       " description_by_user, room, capabilities"
		       " FROM devices ORDER BY created_ms, rowid",
	[S_STATE_LOAD] = "SELECT device_id, attribute, value, updated_ms FROM state",
	[S_DOC_PUT] = "INSERT INTO documents(kind, id, definition, source, updated_ms)"
		      " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind, id) DO UPDATE SET"
		      " definition = excluded.definition, source = excluded.source,"
		      " updated_ms = excluded.updated_ms",
	[S_DOC_DELETE] = "DELETE FROM documents WHERE kind = ?1 AND id = ?2",
	[S_DOC_LOAD] = "SELECT id, definition, source FROM documents WHERE kind = ?1"
		       " ORDER BY updated_ms, id",
	[S_TIMER_PUT] = "INSERT INTO rule_timers(key, rule_id, record, updated_ms)"
			" VALUES(?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET"
			" rule_id = excluded.rule_id, record = excluded.record,"
			" updated_ms = excluded.updated_ms",
	[S_TIMER_DELETE] = "DELETE FROM rule_timers WHERE key = ?1",
	[S_TIMER_DELETE_RULE] = "DELETE FROM rule_timers WHERE rule_id = ?1",
	[S_TIMER_LOAD] = "SELECT key, rule_id, record FROM rule_timers",
	[S_TRACE_ADD] = "INSERT INTO rule_traces(rule_id, ts_ms, trace) VALUES(?2, ?4, ?3)",
	[S_TRACE_UPDATE] = "UPDATE rule_traces SET trace = ?3 WHERE rule_id = ?2 AND ts_ms = ?4",
	[S_TRACE_TRIM] = "DELETE FROM rule_traces WHERE rule_id = ?1 AND id NOT IN"
			 " (SELECT id FROM rule_traces WHERE rule_id = ?1 ORDER BY id DESC LIMIT ?2)",
	[S_TRACE_DELETE_RULE] = "DELETE FROM rule_traces WHERE rule_id = ?1",
	[S_TRACE_LOAD] = "SELECT rule_id, trace FROM rule_traces ORDER BY id",
	[S_FIRING_STATS] = "SELECT json_extract(data, '$.rule'), count(*), max(ts_ms) FROM events"
			   " WHERE type = 'rule_fired' GROUP BY 1",
};

enum entry_kind { ENTRY_STATE, ENTRY_EVENT, ENTRY_TRACE, ENTRY_TRACE_UPDATE };

/* One queued state update or event; its strings live in text[]. */
struct entry {
	struct entry *next;
	int64_t ts_ms;
	enum entry_kind kind;
	bool superseded;       /* a later update of the same attribute is queued */
	const char *device_id; /* NULL for an event about no device */
	const char *name;      /* attribute, or event type */
	const char *json;      /* value, or event data (may be NULL) */
	char text[];
};

/* How the database is open. Only STORE_NORMAL is chosen when things are
 * well; the others are what store_open falls back to when the disk refuses
 * (see store.h), left for STORE_NORMAL as soon as it works again. */
enum open_mode {
	MODE_NORMAL,	/* read-write, WAL with its -shm file */
	MODE_EXCLUSIVE, /* read-write, WAL index in memory: no -shm to create */
	MODE_READ_ONLY, /* the file as it is on disk; writes fail */
	MODE_CLOSED,	/* nothing open (the file went away): everything fails */
};

static const char *const mode_words[] = {"normal", "exclusive", "read-only", "closed"};

struct store {
	sqlite3 *db;
	char *path;
	enum open_mode mode;
	int last_code;		 /* SQLite's primary result code of the last failure noted */
	int64_t reopen_tried_ms; /* monotonic; retries of MODE_NORMAL are spaced */
	sqlite3_stmt *stmt[S_COUNT];
	int version;
	struct entry *head, *tail;
	size_t n_queued;
	uint64_t n_dropped;	 /* entries dropped since the last good flush */
	uint64_t n_failed;	 /* flushes failed in the current streak */
	int history_days;	 /* as last given to store_flush; -1 before */
	bool pruned_once;
	bool prune_backlog;	 /* the last prune hit its batch limit */
	int64_t last_prune_ms;
	struct store_stats stats;
	char msg[MSG_LEN]; /* the last failure, for the log line */
};

static void set_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
	if (!err || !err_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static const struct {
	int sqlite_rc;
	int err;
} rc_map[] = {
	{SQLITE_FULL, -ENOSPC},	    {SQLITE_READONLY, -EROFS}, {SQLITE_NOMEM, -ENOMEM},
	{SQLITE_BUSY, -EBUSY},	    {SQLITE_LOCKED, -EBUSY},   {SQLITE_CONSTRAINT, -EEXIST},
	{SQLITE_CANTOPEN, -EACCES}, {SQLITE_PERM, -EACCES},
};

/* A negative errno for an SQLite result code (extended codes accepted). */
static int errno_of(int rc)
{
	for (size_t i = 0; i < sizeof(rc_map) / sizeof(rc_map[0]); i++)
		if (rc_map[i].sqlite_rc == (rc & 0xff))
			return rc_map[i].err;
	return -EIO;
}

/* Remember what failed for the caller's log line; returns the errno. A full
 * disk met while SQLite grows its -shm file (as the database opens) is only
 * "disk I/O error" (SQLITE_IOERR_SHMSIZE): name what the system said. */
static int note(struct store *s, int rc, const char *what)
{
	s->last_code = rc & 0xff;
	int sys = rc == SQLITE_IOERR_SHMSIZE ? sqlite3_system_errno(s->db) : 0;
	if (sys > 0)
		snprintf(s->msg, sizeof(s->msg), "%s: %s (code %d: %s)", what,
			 sqlite3_errmsg(s->db), rc, strerror(sys));
	else
		snprintf(s->msg, sizeof(s->msg), "%s: %s (code %d)", what, sqlite3_errmsg(s->db),
			 rc);
	return sys == ENOSPC || sys == EDQUOT ? -ENOSPC : errno_of(rc);
}

/* Step a statement that returns no rows, then make it ready for reuse. */
static int not_open(struct store *s, const char *what)
{
	snprintf(s->msg, sizeof(s->msg), "%s: the database is not open", what);
	return -EIO;
}

static int run(struct store *s, enum stmt_id id, const char *what)
{
	if (!s->db)
		return not_open(s, what);
	sqlite3_stmt *st = s->stmt[id];
	int rc = sqlite3_step(st);
	int ret = rc == SQLITE_DONE ? 0 : note(s, rc, what);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

static int exec(struct store *s, const char *sql, const char *what)
{
	if (!s->db)
		return not_open(s, what);
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : note(s, rc, what);
}

/* Strings bound are the caller's and outlive the step (run() resets). */
static void bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (text)
		sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static void rollback(struct store *s)
{
	/* SQLite may have rolled back by itself (full disk, I/O error). */
	if (!s->db || sqlite3_get_autocommit(s->db))
		return;
	sqlite3_step(s->stmt[S_ROLLBACK]);
	sqlite3_reset(s->stmt[S_ROLLBACK]);
}

/* ---- the queue --------------------------------------------------------- */

static char *put_text(char **p, const char *text)
{
	if (!text)
		return NULL;
	char *start = *p;
	size_t n = strlen(text) + 1;
	memcpy(start, text, n);
	*p += n;
	return start;
}

static struct entry *entry_new(enum entry_kind kind, int64_t ts_ms, const char *device_id,
			       const char *name, const char *json)
{
	size_t n = strlen(name) + 1;
	n += device_id ? strlen(device_id) + 1 : 0;
	n += json ? strlen(json) + 1 : 0;
	struct entry *e = malloc(sizeof(*e) + n);
	if (!e)
		return NULL;
	char *p = e->text;
	e->next = NULL;
	e->ts_ms = ts_ms;
	e->kind = kind;
	e->superseded = false;
	e->device_id = put_text(&p, device_id);
	e->name = put_text(&p, name);
	e->json = put_text(&p, json);
	return e;
}

static void drop_oldest(struct store *s)
{
	struct entry *e = s->head;
	s->head = e->next;
	if (!s->head)
		s->tail = NULL;
	s->n_queued--;
	free(e);
	if (s->n_dropped++ == 0)
		log_warning("store",
			    "%s: %d updates wait to be written; dropping the oldest until a "
			    "flush succeeds",
			    s->path, QUEUE_MAX);
}

static void enqueue(struct store *s, struct entry *e)
{
	if (s->n_queued >= QUEUE_MAX)
		drop_oldest(s);
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	s->n_queued++;
}

static void queue_clear(struct store *s)
{
	struct entry *e = s->head;
	while (e) {
		struct entry *next = e->next;
		free(e);
		e = next;
	}
	s->head = s->tail = NULL;
	s->n_queued = 0;
}

static int reopen_normal(struct store *s);

/* A store open read-only or not at all tries the normal mode before each
 * write (at most once a second); an exclusive one writes as it is. */
static void before_write(struct store *s)
{
	if (s->mode == MODE_READ_ONLY || s->mode == MODE_CLOSED)
		reopen_normal(s);
}

static bool name_ok(const char *name)
{
	return name && name[0] && strnlen(name, NAME_MAX_BYTES + 1) <= NAME_MAX_BYTES;
}

int store_state_queue(struct store *store, const char *device_id, const char *attribute,
		      const cJSON *value, int64_t ts_ms)
{
	if (!name_ok(device_id) || !name_ok(attribute) || !value)
		return -EINVAL;
	char *json = cJSON_PrintUnformatted(value);
	if (!json)
		return -ENOMEM;
	struct entry *e = entry_new(ENTRY_STATE, ts_ms, device_id, attribute, json);
	cJSON_free(json);
	if (!e)
		return -ENOMEM;
	enqueue(store, e);
	return 0;
}

int store_event_queue(struct store *store, int64_t ts_ms, const char *device_id,
		      const char *type, const cJSON *data)
{
	if (!name_ok(type) || (device_id && !name_ok(device_id)))
		return -EINVAL;
	char *json = NULL;
	if (data && !(json = cJSON_PrintUnformatted(data)))
		return -ENOMEM;
	struct entry *e = entry_new(ENTRY_EVENT, ts_ms, device_id, type, json);
	cJSON_free(json);
	if (!e)
		return -ENOMEM;
	enqueue(store, e);
	return 0;
}

size_t store_pending(const struct store *store)
{
	return store->n_queued;
}

/* ---- flush ------------------------------------------------------------- */

static size_t key_hash(const struct entry *e)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a over "id\0attribute" */
	for (const char *p = e->device_id ? e->device_id : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h *= 1099511628211ull;
	for (const char *p = e->name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (size_t)h;
}

static bool same_key(const struct entry *a, const struct entry *b)
{
	return a->kind == b->kind &&
	       strcmp(a->device_id ? a->device_id : "", b->device_id ? b->device_id : "") == 0 &&
	       strcmp(a->name, b->name) == 0;
}

static bool keyed(const struct entry *e)
{
	return e->kind == ENTRY_STATE || e->kind == ENTRY_TRACE;
}

/* Mark every state update and trace that a later one of the same key
 * overrides: the last state table gets one write per attribute, and a
 * rule's traces are trimmed once per flush. */
static int mark_superseded(struct store *s)
{
	size_t n = 0;
	for (struct entry *e = s->head; e; e = e->next) {
		e->superseded = false;
		n += keyed(e);
	}
	if (n < 2)
		return 0;
	size_t cap = 4;
	while (cap < 2 * n)
		cap <<= 1;
	struct entry **slots = calloc(cap, sizeof(*slots));
	if (!slots) {
		snprintf(s->msg, sizeof(s->msg), "out of memory");
		return -ENOMEM;
	}
	for (struct entry *e = s->head; e; e = e->next) {
		if (!keyed(e))
			continue;
		size_t i = key_hash(e) & (cap - 1);
		while (slots[i] && !same_key(slots[i], e))
			i = (i + 1) & (cap - 1);
		if (slots[i])
			slots[i]->superseded = true;
		slots[i] = e;
	}
	free(slots);
	return 0;
}

static void bind_entry(sqlite3_stmt *st, const struct entry *e)
{
	bind_text(st, 1, e->device_id);
	bind_text(st, 2, e->name);
	bind_text(st, 3, e->json);
	sqlite3_bind_int64(st, 4, e->ts_ms);
}

static int write_state(struct store *s, const struct entry *e, bool keep_history,
		       uint64_t *written)
{
	int rc;
	if (keep_history) {
		bind_entry(s->stmt[S_HISTORY_ADD], e);
		if ((rc = run(s, S_HISTORY_ADD, "insert history")))
			return rc;
		(*written)++;
	}
	if (e->superseded)
		return 0;
	bind_entry(s->stmt[S_STATE_PUT], e);
	if ((rc = run(s, S_STATE_PUT, "write state")))
		return rc;
	(*written)++;
	return 0;
}

static int write_event(struct store *s, const struct entry *e, uint64_t *written)
{
	sqlite3_stmt *st = s->stmt[S_EVENT_ADD];
	sqlite3_bind_int64(st, 1, e->ts_ms);
	bind_text(st, 2, e->device_id);
	bind_text(st, 3, e->name);
	bind_text(st, 4, e->json);
	int rc = run(s, S_EVENT_ADD, "insert event");
	if (!rc)
		(*written)++;
	return rc;
}

/* A trace row (device_id unused, name = rule id, json = trace); after the
 * rule's last trace of this flush, its older traces beyond the kept number
 * go (one trim per rule and flush, not per firing). */
static int write_trace(struct store *s, const struct entry *e, uint64_t *written)
{
	bind_entry(s->stmt[S_TRACE_ADD], e);
	int rc = run(s, S_TRACE_ADD, "insert trace");
	if (rc)
		return rc;
	(*written)++;
	if (e->superseded)
		return 0;
	sqlite3_stmt *st = s->stmt[S_TRACE_TRIM];
	bind_text(st, 1, e->name);
	sqlite3_bind_int(st, 2, STORE_TRACES_KEPT);
	return run(s, S_TRACE_TRIM, "trim traces");
}

/* A trace written before, amended (found by rule and time; gone: nothing). */
static int update_trace(struct store *s, const struct entry *e, uint64_t *written)
{
	bind_entry(s->stmt[S_TRACE_UPDATE], e);
	int rc = run(s, S_TRACE_UPDATE, "update trace");
	if (!rc)
		(*written)++;
	return rc;
}

static int write_queue(struct store *s, bool keep_history, uint64_t *written)
{
	for (struct entry *e = s->head; e; e = e->next) {
		int rc = 0;
		if (e->kind == ENTRY_STATE)
			rc = write_state(s, e, keep_history, written);
		else if (e->kind == ENTRY_TRACE)
			rc = write_trace(s, e, written);
		else if (e->kind == ENTRY_TRACE_UPDATE)
			rc = update_trace(s, e, written);
		else if (keep_history)
			rc = write_event(s, e, written);
		if (rc)
			return rc;
	}
	return 0;
}

static int prune_table(struct store *s, enum stmt_id id, int64_t cutoff_ms, uint64_t *deleted)
{
	sqlite3_bind_int64(s->stmt[id], 1, cutoff_ms);
	sqlite3_bind_int(s->stmt[id], 2, STORE_PRUNE_BATCH);
	int rc = run(s, id, id == S_HISTORY_PRUNE ? "prune history" : "prune events");
	if (rc)
		return rc;
	int n = sqlite3_changes(s->db);
	*deleted += (uint64_t)n;
	if (n >= STORE_PRUNE_BATCH)
		s->prune_backlog = true;
	return 0;
}

static int prune(struct store *s, int64_t cutoff_ms, uint64_t *deleted)
{
	s->prune_backlog = false;
	int rc = prune_table(s, S_HISTORY_PRUNE, cutoff_ms, deleted);
	return rc ? rc : prune_table(s, S_EVENT_PRUNE, cutoff_ms, deleted);
}

static bool prune_due(const struct store *s, int history_days, int64_t now_ms)
{
	if (history_days < 0)
		return false;
	if (s->head || s->prune_backlog || !s->pruned_once)
		return true;
	return now_ms - s->last_prune_ms >= IDLE_PRUNE_INTERVAL_MS;
}

static void flush_failed(struct store *s, int rc)
{
	s->stats.flush_failures++;
	if (s->n_failed++ == 0)
		log_error("store",
			  "%s: writing %zu queued updates failed (%s), kept for the next try: %s",
			  s->path, s->n_queued, strerror(-rc), s->msg);
}

static void flush_done(struct store *s, int64_t now_ms, uint64_t written, uint64_t deleted,
		       bool pruned)
{
	if (s->n_failed)
		log_info("store", "%s: writing works again after %llu failed flushes", s->path,
			 (unsigned long long)s->n_failed);
	if (s->n_dropped)
		log_warning("store", "%s: %llu queued updates were dropped before this flush",
			    s->path, (unsigned long long)s->n_dropped);
	s->n_failed = 0;
	s->n_dropped = 0;
	queue_clear(s);
	if (pruned) {
		s->pruned_once = true;
		s->last_prune_ms = now_ms;
	}
	if (written + deleted == 0)
		return;
	s->stats.commits++;
	s->stats.rows_written += written;
	s->stats.last_commit_ms = now_ms;
}

/* history_days < 0: not known yet; write history, prune nothing. */
static int flush(struct store *s, int64_t now_ms, int history_days)
{
	bool pruning = prune_due(s, history_days, now_ms);
	if (!s->head && !pruning)
		return 0;
	uint64_t written = 0, deleted = 0;
	int rc = mark_superseded(s);
	if (!rc)
		rc = run(s, S_BEGIN, "begin");
	if (!rc)
		rc = write_queue(s, history_days != 0, &written);
	if (!rc && pruning)
		rc = prune(s, now_ms - (int64_t)history_days * DAY_MS, &deleted);
	if (!rc)
		rc = run(s, S_COMMIT, "commit");
	if (rc) {
		rollback(s);
		flush_failed(s, rc);
		return rc;
	}
	flush_done(s, now_ms, written, deleted, pruning);
	return 0;
}

int store_flush(struct store *store, int64_t now_ms, int history_days)
{
	store->history_days = history_days < 0 ? 0 : history_days;
	before_write(store);
	int rc = flush(store, now_ms, store->history_days);
	/* writes work in memory-index mode: the disk has room for a -shm again */
	if (!rc && store->mode == MODE_EXCLUSIVE)
		reopen_normal(store);
	return rc;
}

/* ---- devices ----------------------------------------------------------- */

int store_device_put(struct store *store, const struct device *dev, int64_t now_ms)
{
	before_write(store);
	cJSON *caps = cap_array_to_json(dev->caps, dev->n_caps);
	char *caps_text = caps ? cJSON_PrintUnformatted(caps) : NULL;
	cJSON_Delete(caps);
	if (!caps_text) {
		log_error("store", "%s: cannot write device '%s': out of memory", store->path,
			  dev->id);
		return -ENOMEM;
	}
	sqlite3_stmt *st = store->stmt[S_DEV_PUT];
	bind_text(st, 1, dev->id);
	bind_text(st, 2, dev->name);
	bind_text(st, 3, dev->plugin ? dev->plugin : "");
	bind_text(st, 4, dev->vendor);
	bind_text(st, 5, dev->model);
	bind_text(st, 6, dev->description);
	sqlite3_bind_int(st, 7, dev->description_by_user ? 1 : 0);
	bind_text(st, 8, dev->room);
	bind_text(st, 9, caps_text);
	sqlite3_bind_int64(st, 10, now_ms);
	int rc = run(store, S_DEV_PUT, "write device");
	cJSON_free(caps_text);
	if (rc == -EEXIST)
		log_error("store", "%s: cannot write device '%s': another stored device holds the "
			  "name '%s' (%s)", store->path, dev->id, dev->name, store->msg);
	else if (rc)
		log_error("store", "%s: cannot write device '%s': %s", store->path, dev->id,
			  store->msg);
	return rc;
}

static void unqueue_device(struct store *s, const char *id)
{
	struct entry **p = &s->head;
	s->tail = NULL;
	while (*p) {
		struct entry *e = *p;
		if (e->kind == ENTRY_STATE && strcmp(e->device_id, id) == 0) {
			*p = e->next;
			s->n_queued--;
			free(e);
			continue;
		}
		s->tail = e;
		p = &e->next;
	}
}

int store_device_delete(struct store *store, const char *id)
{
	before_write(store);
	unqueue_device(store, id);
	int rc = run(store, S_BEGIN, "begin");
	if (!rc) {
		bind_text(store->stmt[S_DEV_DELETE], 1, id);
		rc = run(store, S_DEV_DELETE, "delete device");
	}
	if (!rc) {
		bind_text(store->stmt[S_STATE_DELETE_DEV], 1, id);
		rc = run(store, S_STATE_DELETE_DEV, "delete state");
	}
	if (!rc)
		rc = run(store, S_COMMIT, "commit");
	if (rc) {
		rollback(store);
		log_error("store", "%s: cannot delete device '%s': %s", store->path, id,
			  store->msg);
	}
	return rc;
}

/* ---- load -------------------------------------------------------------- */

struct load_counts {
	size_t devices;
	size_t values;
	size_t skipped;
	size_t orphans;
};

static void skip(struct store *s, struct load_counts *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void skip(struct store *s, struct load_counts *c, const char *fmt, ...)
{
	if (c->skipped++ >= LOAD_SKIP_LOG_MAX)
		return;
	char why[MSG_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warning("store", "%s: skipped while loading: %s", s->path, why);
}

/*
 * Why cJSON could not parse a stored text: -EINVAL when it is not JSON (a
 * damaged row, skipped), -ENOMEM when it is (cJSON ran out of memory, and
 * skipping the row would lose it) or when SQLite cannot tell either. Asked
 * only on that path, so loading pays nothing for it.
 */
static int unparsed(struct store *s, const char *text)
{
	sqlite3_stmt *st = NULL;
	int rc = -ENOMEM;
	if (sqlite3_prepare_v2(s->db, "SELECT json_valid(?1)", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0)
		rc = -EINVAL;
	sqlite3_finalize(st);
	return rc;
}

/* 0, or -ENOMEM: capabilities that cannot be used are skipped. */
static int load_caps(struct store *s, struct load_counts *c, struct device *dev,
		     const char *text)
{
	cJSON *json = text ? cJSON_Parse(text) : NULL;
	struct cap *caps = NULL;
	size_t n = 0;
	char why[256] = "not JSON";
	int rc = -EINVAL;
	if (json)
		rc = cap_array_from_json(json, &caps, &n, why, sizeof(why));
	else if (text)
		rc = unparsed(s, text);
	cJSON_Delete(json);
	if (rc == 0)
		registry_set_caps(dev, caps, n);
	else if (rc != -ENOMEM)
		skip(s, c, "capabilities of device '%s' (kept without them): %s", dev->id, why);
	return rc == -ENOMEM ? rc : 0;
}

/* 0, or -ENOMEM: a row that cannot be used is skipped. */
static int load_device(struct store *s, struct registry *reg, sqlite3_stmt *st,
		       struct load_counts *c)
{
	const char *id = col_text(st, 0);
	struct device *dev;
	char why[256];
	if (!id) {
		skip(s, c, "a device row without an id");
		return 0;
	}
	int rc = registry_add(reg, id, col_text(st, 1), col_text(st, 2), &dev, why, sizeof(why));
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		skip(s, c, "device '%s': %s", id, why);
		return 0;
	}
	if (registry_set_text(&dev->vendor, col_text(st, 3)) ||
	    registry_set_text(&dev->model, col_text(st, 4)) ||
	    registry_set_text(&dev->description, col_text(st, 5)) ||
	    registry_set_text(&dev->room, col_text(st, 7)))
		return -ENOMEM;
	dev->description_by_user = sqlite3_column_int(st, 6) != 0;
	dev->present = false;
	dev->available = false;
	dev->last_seen_ms = 0;
	if (load_caps(s, c, dev, col_text(st, 8)))
		return -ENOMEM;
	c->devices++;
	return 0;
}

static int load_value(struct store *s, struct registry *reg, sqlite3_stmt *st,
		      struct load_counts *c)
{
	const char *id = col_text(st, 0), *attr = col_text(st, 1), *text = col_text(st, 2);
	struct device *dev = id ? registry_by_id(reg, id) : NULL;
	if (!dev) {
		c->orphans++; /* its device was skipped, or deleted by an older build */
		return 0;
	}
	cJSON *value = text ? cJSON_ParseWithOpts(text, NULL, 1) : NULL;
	cJSON *object = cJSON_CreateObject();
	int rc = -EINVAL;
	if (!object)
		rc = -ENOMEM;
	else if (!value && text)
		rc = unparsed(s, text);
	if (!attr || !attr[0] || !value || !object)
		goto out;
	/* attr outlives object: it is deleted before the next step */
	cJSON_AddItemToObjectCS(object, attr, value);
	value = NULL;
	rc = registry_merge_json(dev, object, NULL, 0);
out:
	cJSON_Delete(value);
	cJSON_Delete(object);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		skip(s, c, "state '%s' of device '%s'", attr ? attr : "", id);
		return 0;
	}
	int64_t ts_ms = sqlite3_column_int64(st, 3);
	if (ts_ms > dev->last_seen_ms)
		dev->last_seen_ms = ts_ms;
	/* state rows are written only on change: this is when it last changed */
	if (registry_stamp(dev, &attr, 1, ts_ms) != 0)
		return -ENOMEM;
	c->values++;
	return 0;
}

typedef int (*load_row_fn)(struct store *s, struct registry *reg, sqlite3_stmt *st,
			   struct load_counts *c);

/* One pass over a table; stops at the first -ENOMEM or SQLite error. */
static int load_table(struct store *s, struct registry *reg, enum stmt_id id, load_row_fn fn,
		      struct load_counts *c, char *err, size_t err_len)
{
	sqlite3_stmt *st = s->stmt[id];
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((ret = fn(s, reg, st, c)))
			break;
	if (ret)
		set_err(err, err_len, "%s: loading: out of memory", s->path);
	else if (rc != SQLITE_DONE) {
		ret = note(s, rc, id == S_DEV_LOAD ? "read devices" : "read state");
		set_err(err, err_len, "%s: %s", s->path, s->msg);
	}
	sqlite3_reset(st);
	return ret;
}

int store_load(struct store *store, struct registry *reg, char *err, size_t err_len)
{
	char local[MSG_LEN] = "";
	if (!err || !err_len) {
		err = local;
		err_len = sizeof(local);
	}
	struct load_counts c = {0};
	int rc = load_table(store, reg, S_DEV_LOAD, load_device, &c, err, err_len);
	if (!rc)
		rc = load_table(store, reg, S_STATE_LOAD, load_value, &c, err, err_len);
	if (rc) {
		log_error("store", "%s", err);
		return rc;
	}
	if (c.skipped > LOAD_SKIP_LOG_MAX)
		log_warning("store", "%s: %zu more rows skipped while loading", store->path,
			    c.skipped - LOAD_SKIP_LOG_MAX);
	log_info("store", "%s: loaded %zu devices, %zu state values (%zu of removed devices)",
		 store->path, c.devices, c.values, c.orphans);
	return 0;
}

/* ---- open and close ---------------------------------------------------- */

/* Create the database's directory when missing (one level only). */
static int make_parent(const char *path, char *err, size_t err_len)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	char *dir = strndup(path, (size_t)(slash - path));
	if (!dir) {
		set_err(err, err_len, "out of memory");
		return -ENOMEM;
	}
	struct stat st;
	int rc = 0;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			set_err(err, err_len, "database '%s': '%s' is not a directory", path, dir);
			rc = -ENOTDIR;
		}
	} else if (errno != ENOENT || mkdir(dir, 0750) != 0) {
		rc = -errno;
		set_err(err, err_len, "database '%s': cannot create directory '%s': %s", path, dir,
			strerror(errno));
	}
	free(dir);
	return rc;
}

static int check_wal(struct store *s)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return note(s, rc, "set WAL mode");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *mode = col_text(st, 0);
		if (!mode || strcmp(mode, "wal") != 0)
			log_warning("store", "%s: journal mode is '%s', not WAL", s->path,
				    mode ? mode : "?");
		rc = SQLITE_OK;
	}
	int ret = rc == SQLITE_OK ? 0 : note(s, rc, "set WAL mode");
	sqlite3_finalize(st);
	return ret;
}

static int read_version(struct store *s, int *out);

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A "file:" URI for path with the query given ('%', '?' and '#' escaped). */
static char *file_uri(const char *path, const char *query)
{
	size_t n = strlen(path);
	char *uri = malloc(3 * n + strlen(query) + 8);
	if (!uri)
		return NULL;
	char *p = uri + sprintf(uri, "file:");
	for (const char *c = path; *c; c++)
		p += (*c == '%' || *c == '?' || *c == '#') ? sprintf(p, "%%%02X", (unsigned char)*c)
							   : sprintf(p, "%c", *c);
	sprintf(p, "?%s", query);
	return uri;
}

/* A -wal file with something in it: changes an immutable open would not see. */
static bool wal_has_content(const char *path)
{
	char wal[PATH_MAX];
	struct stat st;
	if (snprintf(wal, sizeof(wal), "%s-wal", path) >= (int)sizeof(wal))
		return true;
	return stat(wal, &st) == 0 && st.st_size > 0;
}

static int open_as(struct store *s, const char *name, int flags)
{
	int rc = sqlite3_open_v2(name, &s->db, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
				 NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
		return 0;
	}
	if (s->db)
		return note(s, rc, "open");
	snprintf(s->msg, sizeof(s->msg), "open: %s", sqlite3_errstr(rc));
	s->last_code = rc & 0xff;
	return errno_of(rc);
}

/* Read the file as it is: through its WAL when the -shm is there to read it
 * by (after a crash), else as an immutable file (after a clean stop, when
 * no -wal is left). The first read proves it. */
static int open_read_only(struct store *s)
{
	int rc = open_as(s, s->path, SQLITE_OPEN_READONLY);
	int version;
	if (!rc && !(rc = read_version(s, &version)))
		return 0;
	sqlite3_close(s->db);
	s->db = NULL;
	if (wal_has_content(s->path))
		return rc;
	char *uri = file_uri(s->path, "immutable=1");
	if (!uri)
		return -ENOMEM;
	rc = open_as(s, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
	free(uri);
	return rc;
}

/* SQLite opens a file it may not write read-only without a word. */
static int check_writable(struct store *s)
{
	if (sqlite3_db_readonly(s->db, "main") != 1)
		return 0;
	snprintf(s->msg, sizeof(s->msg), "open: the file or its file system is read-only");
	s->last_code = SQLITE_READONLY;
	return -EROFS;
}

static int open_db(struct store *s, enum open_mode mode)
{
	int rc;
	s->mode = mode;
	switch (mode) {
	case MODE_NORMAL:
		if ((rc = open_as(s, s->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) ||
		    (rc = check_writable(s)) || (rc = check_wal(s)))
			return rc;
		return exec(s, "PRAGMA synchronous=NORMAL", "set synchronous");
	case MODE_EXCLUSIVE:
		/* before WAL is first used: SQLite then keeps the WAL index in
		 * memory and never creates the -shm a full disk refuses */
		if ((rc = open_as(s, s->path, SQLITE_OPEN_READWRITE)) ||
		    (rc = check_writable(s)) ||
		    (rc = exec(s, "PRAGMA locking_mode=EXCLUSIVE", "set exclusive locking")) ||
		    (rc = check_wal(s)))
			return rc;
		return exec(s, "PRAGMA synchronous=NORMAL", "set synchronous");
	case MODE_READ_ONLY:
		return open_read_only(s);
	case MODE_CLOSED:
		break;
	}
	return not_open(s, "open");
}

/* Finalize the statements and close the connection; the queue stays. */
static void close_conn(struct store *s)
{
	for (int i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(s->stmt[i]);
		s->stmt[i] = NULL;
	}
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		log_error("store", "%s: close: %s", s->path, sqlite3_errmsg(s->db));
	s->db = NULL;
}

static int read_version(struct store *s, int *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return note(s, rc, "read schema_version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	int ret = rc == SQLITE_ROW ? 0 : note(s, rc, "read schema_version");
	sqlite3_finalize(st);
	return ret;
}

static const struct migration *migration_find(int version)
{
	for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++)
		if (migrations[i].version == version)
			return &migrations[i];
	return NULL;
}

/* Run the next pending step with its version bump in one transaction.
 * Sets *done when the schema is current. */
static int migrate_step(struct store *s, bool *done, char *err, size_t err_len)
{
	int version = 0, rc;
	char bump[96], what[64];
	if ((rc = exec(s, "BEGIN IMMEDIATE", "begin migration")) ||
	    (rc = exec(s, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
		       "create schema_version")) ||
	    (rc = read_version(s, &version)))
		goto out;
	s->version = version;
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(s->msg, sizeof(s->msg),
			 "the database has schema version %d, newer than version %d that this "
			 "build knows; use a newer hearthd",
			 version, STORE_SCHEMA_VERSION);
		rc = -EPROTO;
		goto out;
	}
	if (version == STORE_SCHEMA_VERSION) {
		*done = true;
		rc = exec(s, "COMMIT", "commit");
		goto out;
	}
	const struct migration *m = migration_find(version + 1);
	if (!m) {
		snprintf(s->msg, sizeof(s->msg), "no migration to schema version %d", version + 1);
		rc = -EPROTO;
		goto out;
	}
	snprintf(what, sizeof(what), "migrate to schema version %d", m->version);
	snprintf(bump, sizeof(bump),
		 "DELETE FROM schema_version; INSERT INTO schema_version(version) VALUES(%d)",
		 m->version);
	if (!(rc = exec(s, m->sql, what)) && !(rc = exec(s, bump, "bump schema_version")) &&
	    !(rc = exec(s, "COMMIT", "commit migration"))) {
		s->version = m->version;
		log_info("store", "%s: schema migrated to version %d", s->path, m->version);
	}
out:
	if (rc) {
		rollback(s);
		set_err(err, err_len, "database '%s': %s", s->path, s->msg);
	}
	return rc;
}

static int migrate(struct store *s, char *err, size_t err_len)
{
	bool done = false;
	/* bounded: each step raises the version by one */
	for (int i = 0; i <= STORE_SCHEMA_VERSION && !done; i++) {
		int rc = migrate_step(s, &done, err, err_len);
		if (rc)
			return rc;
	}
	return 0;
}

static int prepare_all(struct store *s)
{
	for (int i = 0; i < S_COUNT; i++) {
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return note(s, rc, "prepare statement");
	}
	return 0;
}

static void close_db(struct store *s)
{
	if (!s)
		return;
	close_conn(s);
	queue_clear(s);
	free(s->path);
	free(s);
}

/* Open in a fallback mode: the schema must be current already, since
 * nothing can be migrated on a disk that refuses writes. */
static int open_fallback(struct store *s, enum open_mode mode)
{
	int version = 0;
	int rc = open_db(s, mode);
	if (!rc && !(rc = read_version(s, &version)) && version != STORE_SCHEMA_VERSION) {
		snprintf(s->msg, sizeof(s->msg), "schema version %d needs migrating to %d first",
			 version, STORE_SCHEMA_VERSION);
		rc = -EPROTO;
	}
	if (!rc)
		rc = prepare_all(s);
	if (rc)
		close_conn(s);
	return rc;
}

/* Errors of the disk rather than of the file: worth a fallback when the
 * database exists. Not a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB), not
 * a newer schema, not another process holding it. */
static bool disk_refused(const struct store *s)
{
	switch (s->last_code) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
		return true;
	default:
		return false;
	}
}

static bool exists_with_data(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Try the fallbacks in order; on success log what it means. */
static int open_degraded(struct store *s, const char *why)
{
	static const enum open_mode order[] = {MODE_EXCLUSIVE, MODE_READ_ONLY};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (open_fallback(s, order[i]))
			continue;
		if (s->mode == MODE_EXCLUSIVE)
			log_warning("store",
				    "%s: opened with its WAL index in memory instead (%s); hearthd "
				    "holds the file exclusively until it can open it normally",
				    s->path, why);
		else
			log_warning("store",
				    "%s: opened read-only instead (%s); the hub runs on what is "
				    "stored, keeps state and device changes in memory and writes "
				    "them when the disk takes writes again",
				    s->path, why);
		s->reopen_tried_ms = mono_ms();
		return 0;
	}
	s->mode = MODE_CLOSED;
	return -EIO;
}

/* Leave a fallback mode for the normal one, at most once a second. The
 * connection is closed first (an exclusive one holds the lock); when the
 * normal open fails, the fallbacks are tried again, and failing those too
 * the store stays closed, every call failing, until a later try works. */
static int reopen_normal(struct store *s)
{
	if (s->mode == MODE_NORMAL)
		return 0;
	int64_t now = mono_ms();
	if (s->reopen_tried_ms && now - s->reopen_tried_ms < 1000)
		return -EAGAIN;
	s->reopen_tried_ms = now;
	enum open_mode was = s->mode;
	close_conn(s);
	int rc = open_db(s, MODE_NORMAL);
	if (!rc)
		rc = prepare_all(s);
	if (!rc) {
		log_info("store", "%s: open normally again (was %s)", s->path, mode_words[was]);
		return 0;
	}
	char why[MSG_LEN];
	snprintf(why, sizeof(why), "%s", s->msg);
	close_conn(s);
	if (was != MODE_CLOSED && open_fallback(s, was) == 0)
		return rc;
	if (open_degraded(s, why) != 0 && was != MODE_CLOSED)
		log_error("store", "%s: the database cannot be opened any more (%s); changes are "
			  "kept in memory", s->path, why);
	snprintf(s->msg, sizeof(s->msg), "%s", why);
	return rc;
}

int store_open(const char *path, struct store **out, char *err, size_t err_len)
{
	char local[MSG_LEN] = "";
	if (!err || !err_len) {
		err = local;
		err_len = sizeof(local);
	}
	struct store *s = NULL;
	int rc = make_parent(path, err, err_len);
	if (rc)
		goto out;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		set_err(err, err_len, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	s->history_days = -1;
	if ((rc = open_db(s, MODE_NORMAL)))
		set_err(err, err_len, "database '%s': %s", path, s->msg);
	else if (!(rc = migrate(s, err, err_len)) && (rc = prepare_all(s)))
		set_err(err, err_len, "database '%s': %s", path, s->msg);
	if (rc && rc != -EPROTO && disk_refused(s) && exists_with_data(path)) {
		char why[MSG_LEN];
		snprintf(why, sizeof(why), "%s", s->msg);
		close_conn(s);
		if (open_degraded(s, why) == 0) {
			rc = 0;
			err[0] = '\0';
		}
	}
	if (rc)
		goto out;
	*out = s;
	s = NULL;
out:
	if (rc)
		log_error("store", "%s", err);
	close_db(s);
	return rc;
}

bool store_degraded(const struct store *store)
{
	return store->mode != MODE_NORMAL;
}

void store_close(struct store *store, int64_t now_ms)
{
	if (!store)
		return;
	if (store->head && flush(store, now_ms, store->history_days))
		log_error("store", "%s: closing with %zu updates not written", store->path,
			  store->n_queued);
	close_db(store);
}

int store_schema_version(struct store *store)
{
	return store->version;
}

/* -- rules, scenes, durable timers, traces ----------------------------------- */

static const char *const doc_kinds[] = {"rule", "scene"};

int store_doc_put(struct store *store, enum store_doc kind, const char *id, const cJSON *doc,
		  int source, int64_t now_ms)
{
	before_write(store);
	char *text = cJSON_PrintUnformatted(doc);
	if (!text)
		return -ENOMEM;
	sqlite3_stmt *st = store->stmt[S_DOC_PUT];
	bind_text(st, 1, doc_kinds[kind]);
	bind_text(st, 2, id);
	bind_text(st, 3, text);
	sqlite3_bind_int(st, 4, source);
	sqlite3_bind_int64(st, 5, now_ms);
	int rc = run(store, S_DOC_PUT, "write document");
	cJSON_free(text);
	return rc;
}

int store_doc_delete(struct store *store, enum store_doc kind, const char *id)
{
	before_write(store);
	sqlite3_stmt *st = store->stmt[S_DOC_DELETE];
	bind_text(st, 1, doc_kinds[kind]);
	bind_text(st, 2, id);
	int rc = run(store, S_DOC_DELETE, "delete document");
	if (rc || kind != STORE_DOC_RULE)
		return rc;
	bind_text(store->stmt[S_TIMER_DELETE_RULE], 1, id);
	if ((rc = run(store, S_TIMER_DELETE_RULE, "delete rule timers")))
		return rc;
	bind_text(store->stmt[S_TRACE_DELETE_RULE], 1, id);
	return run(store, S_TRACE_DELETE_RULE, "delete rule traces");
}

/* Step through a SELECT, handing each row to fn; a row fn refuses is
 * skipped. Returns 0 or the SQLite failure as errno. */
static int each_row(struct store *s, enum stmt_id id, int (*fn)(sqlite3_stmt *, void *),
		    void *user, const char *what)
{
	if (!s->db)
		return not_open(s, what);
	sqlite3_stmt *st = s->stmt[id];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fn(st, user);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : note(s, rc, what);
}

struct doc_load {
	store_doc_fn fn;
	void *user;
};

static int doc_row(sqlite3_stmt *st, void *user)
{
	struct doc_load *l = user;
	cJSON *doc = cJSON_Parse(col_text(st, 1) ? col_text(st, 1) : "");
	if (doc && col_text(st, 0))
		l->fn(l->user, col_text(st, 0), doc, sqlite3_column_int(st, 2));
	cJSON_Delete(doc);
	return 0;
}

int store_doc_load(struct store *store, enum store_doc kind, store_doc_fn fn, void *user)
{
	struct doc_load l = {fn, user};
	bind_text(store->stmt[S_DOC_LOAD], 1, doc_kinds[kind]);
	return each_row(store, S_DOC_LOAD, doc_row, &l, "load documents");
}

int store_timer_put(struct store *store, const char *key, const char *rule_id,
		    const cJSON *record, int64_t now_ms)
{
	before_write(store);
	int rc;
	if (!record) {
		bind_text(store->stmt[S_TIMER_DELETE], 1, key);
		return run(store, S_TIMER_DELETE, "delete rule timer");
	}
	char *text = cJSON_PrintUnformatted(record);
	if (!text)
		return -ENOMEM;
	sqlite3_stmt *st = store->stmt[S_TIMER_PUT];
	bind_text(st, 1, key);
	bind_text(st, 2, rule_id);
	bind_text(st, 3, text);
	sqlite3_bind_int64(st, 4, now_ms);
	rc = run(store, S_TIMER_PUT, "write rule timer");
	cJSON_free(text);
	return rc;
}

struct timer_load {
	store_timer_fn fn;
	void *user;
};

static int timer_row(sqlite3_stmt *st, void *user)
{
	struct timer_load *l = user;
	cJSON *rec = cJSON_Parse(col_text(st, 2) ? col_text(st, 2) : "");
	if (rec && col_text(st, 0) && col_text(st, 1))
		l->fn(l->user, col_text(st, 0), col_text(st, 1), rec);
	cJSON_Delete(rec);
	return 0;
}

int store_timer_load(struct store *store, store_timer_fn fn, void *user)
{
	struct timer_load l = {fn, user};
	return each_row(store, S_TIMER_LOAD, timer_row, &l, "load rule timers");
}

static int queue_trace(struct store *store, enum entry_kind kind, const char *rule_id,
		       const cJSON *trace, int64_t ts_ms)
{
	if (!name_ok(rule_id) || !trace)
		return -EINVAL;
	char *json = cJSON_PrintUnformatted(trace);
	if (!json)
		return -ENOMEM;
	struct entry *e = entry_new(kind, ts_ms, NULL, rule_id, json);
	cJSON_free(json);
	if (!e)
		return -ENOMEM;
	enqueue(store, e);
	return 0;
}

int store_trace_queue(struct store *store, const char *rule_id, const cJSON *trace, int64_t ts_ms)
{
	return queue_trace(store, ENTRY_TRACE, rule_id, trace, ts_ms);
}

int store_trace_update(struct store *store, const char *rule_id, const cJSON *trace,
		       int64_t ts_ms)
{
	return queue_trace(store, ENTRY_TRACE_UPDATE, rule_id, trace, ts_ms);
}

struct trace_load {
	store_trace_fn fn;
	void *user;
};

static int trace_row(sqlite3_stmt *st, void *user)
{
	struct trace_load *l = user;
	cJSON *trace = cJSON_Parse(col_text(st, 1) ? col_text(st, 1) : "");
	if (trace && col_text(st, 0))
		l->fn(l->user, col_text(st, 0), trace);
	cJSON_Delete(trace);
	return 0;
}

int store_trace_load(struct store *store, store_trace_fn fn, void *user)
{
	struct trace_load l = {fn, user};
	return each_row(store, S_TRACE_LOAD, trace_row, &l, "load traces");
}

struct firing_load {
	store_firing_fn fn;
	void *user;
};

static int firing_row(sqlite3_stmt *st, void *user)
{
	struct firing_load *l = user;
	if (col_text(st, 0))
		l->fn(l->user, col_text(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
		      sqlite3_column_int64(st, 2));
	return 0;
}

int store_firing_stats(struct store *store, store_firing_fn fn, void *user)
{
	struct firing_load l = {fn, user};
	return each_row(store, S_FIRING_STATS, firing_row, &l, "count firings");
}

void store_get_stats(const struct store *store, struct store_stats *out)
{
	*out = store->stats;
	out->mode = mode_words[store->mode];
	out->failing = store->n_failed > 0;
}

/* -- backup and restore ---------------------------------------------------------- */

#define COPY_BUSY_TRIES 50 /* a source another process writes: 50 x 100 ms */
#define COPY_MODE 0640

/* path + suffix into buf: 0 or -ENAMETOOLONG (err set). */
static int with_suffix(char *buf, size_t cap, const char *path, const char *suffix, char *err,
		       size_t err_len)
{
	int n = snprintf(buf, cap, "%s%s", path, suffix);
	if (n >= 0 && (size_t)n < cap)
		return 0;
	set_err(err, err_len, "path '%.200s...' is too long", path);
	return -ENAMETOOLONG;
}

static int sync_fd_of(const char *path, int flags)
{
	int fd = open(path, flags | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

/* Make a rename in path's folder durable. */
static int sync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return sync_fd_of(".", O_DIRECTORY);
	if (slash == path)
		return sync_fd_of("/", O_DIRECTORY);
	char *dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	int rc = sync_fd_of(dir, O_DIRECTORY);
	free(dir);
	return rc;
}

/* Step a backup to its end; a source written by another process at the
 * same time is retried a bounded number of times. */
static int backup_all(sqlite3_backup *b)
{
	int rc = SQLITE_OK;
	for (int i = 0; i < COPY_BUSY_TRIES; i++) {
		rc = sqlite3_backup_step(b, -1);
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		sqlite3_sleep(100);
	}
	return rc;
}

/*
 * Copy every page of src into a new file at path (a stale one is replaced)
 * as a self-contained rollback-journal database: a copy of a WAL database
 * would otherwise need its -wal and -shm files beside it.
 */
static int copy_db(sqlite3 *src, const char *path, char *err, size_t err_len)
{
	sqlite3 *dst = NULL;
	int rc;
	if (unlink(path) != 0 && errno != ENOENT) {
		rc = -errno;
		set_err(err, err_len, "cannot replace '%s': %s", path, strerror(errno));
		return rc;
	}
	rc = sqlite3_open_v2(path, &dst,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
			     NULL);
	if (rc == SQLITE_OK) {
		sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
		if (!b) {
			rc = sqlite3_extended_errcode(dst);
		} else {
			rc = backup_all(b);
			/* finish leaves its error on dst */
			int finish_rc = sqlite3_backup_finish(b);
			rc = rc == SQLITE_DONE ? finish_rc : rc;
		}
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		set_err(err, err_len, "writing '%s': %s", path,
			dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
	if (sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK) {
		rc = SQLITE_IOERR;
		set_err(err, err_len, "closing '%s': %s", path, sqlite3_errmsg(dst));
	}
	if (rc == SQLITE_OK)
		return 0;
	unlink(path);
	return errno_of(rc);
}

/* Sync the finished copy and rename it into place, durably. */
static int put_in_place(const char *part, const char *dest, char *err, size_t err_len)
{
	int rc = sync_fd_of(part, 0);
	if (!rc && rename(part, dest) != 0)
		rc = -errno;
	if (!rc)
		rc = sync_parent(dest);
	if (rc) {
		set_err(err, err_len, "cannot put '%s' in place: %s", dest, strerror(-rc));
		unlink(part);
	}
	return rc;
}

int store_backup(struct store *store, const char *dest_path, char *err, size_t err_len)
{
	char part[PATH_MAX];
	struct stat st;
	int rc = with_suffix(part, sizeof(part), dest_path, ".part", err, err_len);
	if (rc)
		return rc;
	if (lstat(dest_path, &st) == 0) {
		set_err(err, err_len, "'%s' exists already; not overwritten", dest_path);
		return -EEXIST;
	}
	if (!store->db) {
		set_err(err, err_len, "the database is not open");
		return -EIO;
	}
	if ((rc = make_parent(dest_path, err, err_len)) ||
	    (rc = copy_db(store->db, part, err, err_len)))
		return rc;
	if (chmod(part, COPY_MODE) != 0) {
		rc = -errno;
		set_err(err, err_len, "chmod '%s': %s", part, strerror(errno));
		unlink(part);
		return rc;
	}
	return put_in_place(part, dest_path, err, err_len);
}

/* The first row of a one-value query as text into out (or "" for NULL). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *text = col_text(st, 0);
		snprintf(out, cap, "%s", text ? text : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		snprintf(out, cap, "%s", "");
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Is the file a whole hearth database this build can use? */
static int check_source(sqlite3 *db, const char *path, struct store_file_info *info, char *err,
			size_t err_len)
{
	char text[256];
	int rc = query_text(db, "PRAGMA integrity_check(5)", text, sizeof(text));
	if (rc != SQLITE_OK || strcmp(text, "ok") != 0) {
		set_err(err, err_len, "'%s' is not a usable database: %s", path,
			rc != SQLITE_OK ? sqlite3_errmsg(db) : text);
		return -EINVAL;
	}
	if (query_text(db, "SELECT coalesce(max(version), 0) FROM schema_version", text,
		       sizeof(text)) != SQLITE_OK ||
	    (info->schema_version = atoi(text)) < 1) {
		set_err(err, err_len, "'%s' is not a hearth database (no schema version)", path);
		return -EINVAL;
	}
	if (info->schema_version > STORE_SCHEMA_VERSION) {
		set_err(err, err_len,
			"'%s' has schema version %d, newer than version %d that this hearthd "
			"knows; restore it with a newer hearth",
			path, info->schema_version, STORE_SCHEMA_VERSION);
		return -EPROTO;
	}
	if (query_text(db, "SELECT count(*) FROM devices", text, sizeof(text)) != SQLITE_OK) {
		set_err(err, err_len, "'%s' is not a hearth database (no devices table)", path);
		return -EINVAL;
	}
	info->devices = atoll(text);
	return 0;
}

static int open_source(const char *path, sqlite3 **out, struct store_file_info *info, char *err,
		       size_t err_len)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
				 NULL);
	if (rc != SQLITE_OK) {
		set_err(err, err_len, "cannot open '%s': %s", path,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return errno_of(rc);
	}
	if ((rc = check_source(db, path, info, err, err_len))) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

/*
 * Take db_path for ourselves, held until *out is closed. A hub keeps its
 * WAL database open, which makes leaving WAL mode fail with SQLITE_BUSY:
 * that is how a running hearthd is noticed. hearthd sets WAL again on open.
 * A database SQLite cannot read at all leaves *out NULL and is not refused.
 */
static int lock_target(const char *path, sqlite3 **out, char *err, size_t err_len)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
				 NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		*out = db;
		return 0;
	}
	/* a damaged database is what a restore is for: it is replaced unlocked */
	if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
		sqlite3_close(db);
		return 0;
	}
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		set_err(err, err_len,
			"'%s' is in use, most likely by a running hearthd: stop it first "
			"(systemctl stop hearth)",
			path);
	else
		set_err(err, err_len, "cannot open '%s': %s", path,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_close(db);
	return errno_of(rc);
}

/* Give the copy the owner (when root) and mode of what it replaces. */
static int adopt_owner(const char *copy, const char *db_path, const struct stat *old,
		       char *err, size_t err_len)
{
	struct stat folder;
	const struct stat *ref = old;
	mode_t mode = old ? old->st_mode & 0777 : COPY_MODE;
	if (!ref) {
		char *dir = strdup(db_path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		if (stat(slash ? dir : ".", &folder) == 0)
			ref = &folder;
		free(dir);
	}
	if ((ref && geteuid() == 0 && chown(copy, ref->st_uid, ref->st_gid) != 0) ||
	    chmod(copy, mode) != 0) {
		int rc = -errno;
		set_err(err, err_len, "cannot set the owner of '%s': %s", copy, strerror(errno));
		return rc;
	}
	return 0;
}

/* Keep the old database as kept, then put the copy in its place with one
 * atomic rename (two renames where hard links are not supported). */
static int swap_in(const char *copy, const char *db_path, const char *kept, bool have_db,
		   char *err, size_t err_len)
{
	char side[PATH_MAX];
	int rc = 0;
	if (have_db) {
		if (unlink(kept) != 0 && errno != ENOENT)
			rc = -errno;
		else if (link(db_path, kept) != 0 && rename(db_path, kept) != 0)
			rc = -errno;
		if (rc) {
			set_err(err, err_len, "cannot keep the old database as '%s': %s", kept,
				strerror(-rc));
			unlink(copy);
			return rc;
		}
	}
	/* a -wal left beside the new file would be replayed into it */
	static const char *const sides[] = {"-wal", "-shm", "-journal"};
	for (size_t i = 0; i < sizeof(sides) / sizeof(sides[0]); i++)
		if (with_suffix(side, sizeof(side), db_path, sides[i], NULL, 0) == 0)
			unlink(side);
	return put_in_place(copy, db_path, err, err_len);
}

int store_restore(const char *src_path, const char *db_path, struct store_file_info *info,
		  char *err, size_t err_len)
{
	char local[MSG_LEN], copy[PATH_MAX], kept[PATH_MAX];
	struct store_file_info found = {0};
	struct stat src_st, db_st;
	sqlite3 *src = NULL, *lock = NULL;
	bool have_db = false;
	int rc;
	if (!err || !err_len) {
		err = local;
		err_len = sizeof(local);
	}
	if ((rc = with_suffix(copy, sizeof(copy), db_path, ".restore", err, err_len)) ||
	    (rc = with_suffix(kept, sizeof(kept), db_path, ".before-restore", err, err_len)))
		goto out;
	if (stat(src_path, &src_st) != 0) {
		rc = -errno;
		set_err(err, err_len, "'%s': %s", src_path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(src_st.st_mode)) {
		set_err(err, err_len, "'%s' is not a regular file", src_path);
		rc = -EINVAL;
		goto out;
	}
	have_db = stat(db_path, &db_st) == 0;
	if (have_db && db_st.st_dev == src_st.st_dev && db_st.st_ino == src_st.st_ino) {
		set_err(err, err_len, "'%s' is the database itself", src_path);
		rc = -EINVAL;
		goto out;
	}
	if ((rc = open_source(src_path, &src, &found, err, err_len)) ||
	    (have_db && (rc = lock_target(db_path, &lock, err, err_len))) ||
	    (!have_db && (rc = make_parent(db_path, err, err_len))) ||
	    (rc = copy_db(src, copy, err, err_len)))
		goto out;
	if ((rc = adopt_owner(copy, db_path, have_db ? &db_st : NULL, err, err_len))) {
		unlink(copy);
		goto out;
	}
	if ((rc = swap_in(copy, db_path, kept, have_db, err, err_len)))
		goto out;
	if (stat(db_path, &db_st) == 0)
		found.bytes = (int64_t)db_st.st_size;
	found.kept_old = have_db;
	if (info)
		*info = found;
out:
	sqlite3_close(src);
	sqlite3_close(lock);
	return rc;
}

/* -- reading back, for the dashboard ---------------------------------------------
 * Rare requests: prepared when asked, not kept. */

/* Prepare sql and bind device_id as ?1; 0 or a negative errno. */
static int prepare_for(struct store *s, const char *sql, const char *device_id, sqlite3_stmt **st)
{
	if (!s->db)
		return not_open(s, "prepare a history query");
	int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return note(s, rc, "prepare a history query");
	bind_text(*st, 1, device_id);
	return 0;
}

static cJSON *json_or_null(const char *text)
{
	cJSON *v = text ? cJSON_Parse(text) : NULL;
	return v ? v : cJSON_CreateNull();
}

int store_history(struct store *store, const char *device_id, const char *attribute,
		  int64_t since_ms, int limit, cJSON *points)
{
	sqlite3_stmt *st = NULL;
	/* the newest rows by the (device_id, attribute, ts_ms) index, then turned */
	int rc = prepare_for(store,
			     "SELECT ts_ms, value FROM (SELECT ts_ms, value FROM history"
			     " WHERE device_id = ?1 AND attribute = ?2 AND ts_ms >= ?3"
			     " ORDER BY ts_ms DESC LIMIT ?4) ORDER BY ts_ms",
			     device_id, &st);
	if (rc)
		return rc;
	bind_text(st, 2, attribute);
	sqlite3_bind_int64(st, 3, since_ms);
	sqlite3_bind_int(st, 4, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *pt = cJSON_CreateArray();
		if (!pt)
			break;
		cJSON_AddItemToArray(pt, cJSON_CreateNumber((double)sqlite3_column_int64(st, 0)));
		cJSON_AddItemToArray(pt, json_or_null(col_text(st, 1)));
		cJSON_AddItemToArray(points, pt);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : note(store, rc, "read history");
}

int store_device_events(struct store *store, const char *device_id, int limit, cJSON *events)
{
	sqlite3_stmt *st = NULL;
	int rc = prepare_for(store,
			     "SELECT ts_ms, type, data FROM events WHERE device_id = ?1"
			     " ORDER BY ts_ms DESC LIMIT ?2",
			     device_id, &st);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *e = cJSON_CreateObject();
		if (!e)
			break;
		cJSON_AddNumberToObject(e, "time", (double)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(e, "type", col_text(st, 1) ? col_text(st, 1) : "");
		cJSON_AddItemToObject(e, "data", json_or_null(col_text(st, 2)));
		cJSON_AddItemToArray(events, e);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : note(store, rc, "read events");
}
