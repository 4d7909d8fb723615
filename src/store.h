/*
 * store: the SQLite database. The only file that includes sqlite3.h.
 *
 * Schema with numbered migrations (table schema_version), WAL mode,
 * prepared statements reused. Registry changes (add, update, rename, remove)
 * commit at once. State and events are queued in memory and written by
 * store_flush() in one transaction; the hub calls it every
 * store.commit_interval_ms. Within one flush, several updates of the same
 * (device, attribute) write one last-state row; every queued update becomes
 * one history row (when history is kept).
 *
 * Tables (version 1):
 *   devices(id PK, name UNIQUE, plugin, vendor, model, description,
 *           description_by_user, room, capabilities JSON, created_ms, updated_ms)
 *   state(device_id, attribute, value JSON, updated_ms, PK(device_id, attribute))
 *   history(id PK, device_id, attribute, value JSON, ts_ms) + index (ts_ms),
 *           index (device_id, attribute, ts_ms)
 *   events(id PK, ts_ms, device_id, type, data JSON) + index (ts_ms)
 * Version 2 (the automation engine):
 *   documents(kind "rule"|"scene", id, definition JSON, source, updated_ms)
 *   rule_timers(key PK, rule_id, record JSON, updated_ms): durable deadlines
 *   rule_traces(id PK, rule_id, ts_ms, trace JSON): the last 20 per rule
 *   Firings are events of type "rule_fired" (kept like history).
 *
 * Edge module: logs its own failures. Loop thread only.
 */
#ifndef HEARTH_STORE_H
#define HEARTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "registry.h"

#define STORE_SCHEMA_VERSION 2
#define STORE_TRACES_KEPT 20 /* per rule */
#define STORE_PRUNE_BATCH 500 /* history rows deleted per flush at most */

struct store;

/*
 * Open (creating if needed) the database at path, set WAL and
 * synchronous=NORMAL, run pending migrations in one transaction each.
 * Refuses a database whose schema_version is newer than this build knows
 * (-EPROTO). Returns 0 with *out, or a negative errno with err set.
 *
 * When the disk refuses (full, read-only, I/O error) and the file exists
 * with a current schema, the store opens in a fallback mode instead, with a
 * warning: first read-write with SQLite's WAL index in memory (no -shm file
 * to create; the file is locked for other processes meanwhile), else
 * read-only (through the WAL when a crash left its -shm, else immutable
 * when no -wal is left). Writes then fail like any refused write, and the
 * store goes back to the normal mode by itself: before a write when
 * read-only, after a good flush when exclusive (at most once a second).
 */
int store_open(const char *path, struct store **out, char *err, size_t err_len);

/* True while the store runs in a fallback mode (see store_open). */
bool store_degraded(const struct store *store);

/* Flush what is queued, finalize statements, close. NULL is accepted. */
void store_close(struct store *store, int64_t now_ms);

/* The schema version of the open database. */
int store_schema_version(struct store *store);

/* Insert or update a device's row: identity, texts, capabilities. Commits
 * at once. 0 or -EIO. */
int store_device_put(struct store *store, const struct device *dev, int64_t now_ms);

/* Delete a device, its last state and its queued updates (history rows
 * stay until pruned). Commits at once. */
int store_device_delete(struct store *store, const char *id);

/* Queue an attribute's new value (value is copied). 0 or -ENOMEM. */
int store_state_queue(struct store *store, const char *device_id, const char *attribute,
		      const cJSON *value, int64_t ts_ms);

/* Queue an event row (data may be NULL; copied). 0 or -ENOMEM. */
int store_event_queue(struct store *store, int64_t ts_ms, const char *device_id,
		      const char *type, const cJSON *data);

/* Number of queued updates and events. */
size_t store_pending(const struct store *store);

/*
 * Write everything queued in one transaction, and delete at most
 * STORE_PRUNE_BATCH history and event rows older than history_days (0: keep
 * no history at all: history rows are not written). On failure the queue is
 * kept for the next flush (bounded: past 100,000 queued entries the oldest
 * history rows are dropped, with a log line) and a negative errno returned.
 */
int store_flush(struct store *store, int64_t now_ms, int history_days);

/*
 * Load every stored device with its capabilities and last state into reg
 * (which must not hold those ids yet). Devices come back with present =
 * false and available = false. Returns 0 or a negative errno with err set;
 * a row that cannot be loaded is logged and skipped, never fatal.
 */
int store_load(struct store *store, struct registry *reg, char *err, size_t err_len);

/* -- rules and scenes (commit at once) -------------------------------------- */

enum store_doc { STORE_DOC_RULE = 0, STORE_DOC_SCENE = 1 };

/* Insert or replace a rule or scene definition. 0 or negative errno. */
int store_doc_put(struct store *store, enum store_doc kind, const char *id, const cJSON *doc,
		  int source, int64_t now_ms);
/* Delete one (a rule's timers and traces go with it). */
int store_doc_delete(struct store *store, enum store_doc kind, const char *id);
/* Every stored definition of a kind, oldest first; doc is borrowed. */
typedef void (*store_doc_fn)(void *user, const char *id, const cJSON *doc, int source);
int store_doc_load(struct store *store, enum store_doc kind, store_doc_fn fn, void *user);

/* Durable rule timers: record NULL deletes. Commit at once. */
int store_timer_put(struct store *store, const char *key, const char *rule_id,
		    const cJSON *record, int64_t now_ms);
typedef void (*store_timer_fn)(void *user, const char *key, const char *rule_id,
			       const cJSON *record);
int store_timer_load(struct store *store, store_timer_fn fn, void *user);

/* Queue a rule trace (batched like state; the newest STORE_TRACES_KEPT per
 * rule stay). */
int store_trace_queue(struct store *store, const char *rule_id, const cJSON *trace, int64_t ts_ms);
/* Queue a new text for the trace stored under rule_id and ts_ms (the
 * trace's own time); nothing happens when it is no longer kept. */
int store_trace_update(struct store *store, const char *rule_id, const cJSON *trace,
		       int64_t ts_ms);
/* Every stored trace, oldest first. */
typedef void (*store_trace_fn)(void *user, const char *rule_id, const cJSON *trace);
int store_trace_load(struct store *store, store_trace_fn fn, void *user);
/* Per rule: firings recorded (within the history window) and the last time. */
typedef void (*store_firing_fn)(void *user, const char *rule_id, uint64_t count, int64_t last_ms);
int store_firing_stats(struct store *store, store_firing_fn fn, void *user);

/* Figures for health_check and the benchmark. */
struct store_stats {
	uint64_t commits;	   /* flushes that wrote something */
	uint64_t rows_written;	   /* state + history + event rows */
	uint64_t flush_failures;
	int64_t last_commit_ms;
	const char *mode; /* "normal", or the fallback: "exclusive", "read-only", "closed" */
	bool failing;	  /* the last flush failed */
};
void store_get_stats(const struct store *store, struct store_stats *out);

/* -- backup and restore -------------------------------------------------------- */

/*
 * Write a consistent copy of the open database to dest_path with SQLite's
 * online backup API, after what is already committed (queued updates are
 * not in it: flush first). The copy is written to "<dest_path>.part", made a
 * self-contained file (rollback journal, no -wal), synced, mode 0640, then
 * renamed into place; dest_path's folder is created when missing (one
 * level). Blocks the calling thread for the copy. Does not log.
 * Returns 0, or a negative errno with err set (-ENAMETOOLONG, -EEXIST when
 * dest_path exists, -ENOSPC, -EACCES, -EIO ...).
 */
int store_backup(struct store *store, const char *dest_path, char *err, size_t err_len);

/* What store_restore() found in the file it restored. */
struct store_file_info {
	int schema_version;
	int64_t devices;
	int64_t bytes;
	bool kept_old; /* the replaced database is now <db_path>.before-restore */
};

/*
 * Replace the database at db_path with a copy of src_path, for
 * "hearthd --restore": never while a hub has db_path open.
 *  - src_path must be a hearth database that passes PRAGMA integrity_check
 *    and whose schema_version is 1..STORE_SCHEMA_VERSION (an older one is
 *    migrated when hearthd next starts); otherwise -EINVAL (not a hearth
 *    database, or damaged) or -EPROTO (newer schema), and db_path is left
 *    as it was.
 *  - db_path, when it exists, must be in use by no other connection:
 *    -EBUSY otherwise (a file SQLite cannot read at all is replaced without
 *    that check). It is kept as "<db_path>.before-restore".
 *  - The copy is written beside db_path, synced and renamed into place;
 *    when run as root it gets the owner and mode of the database it
 *    replaces (or of its folder), so the service can still write it.
 * info (may be NULL) is filled on success. Does not log. Returns 0 or a
 * negative errno with err set.
 */
int store_restore(const char *src_path, const char *db_path, struct store_file_info *info,
		  char *err, size_t err_len);

/* -- reading back, for the dashboard ----------------------------------------- */

/*
 * Append to points (a JSON array) the newest limit history values of one
 * attribute recorded at or after since_ms, oldest first, each as
 * [ts_ms, value]. What is still queued (at most one commit interval) is not
 * included. 0 or a negative errno.
 */
int store_history(struct store *store, const char *device_id, const char *attribute,
		  int64_t since_ms, int limit, cJSON *points);

/* Append to events (a JSON array) the newest limit events of a device,
 * newest first, each as {"time":ms,"type":"...","data":{...}}. */
int store_device_events(struct store *store, const char *device_id, int limit, cJSON *events);

#endif
