/*
 * Backup and restore, end to end: bridge/request/backup (and hearthctl
 * backup) write a copy that passes integrity_check and holds the devices;
 * hearthd --restore (and hearthctl restore) put it back into a stopped
 * hub's database, refuse while the hub runs, and refuse a damaged file or
 * one with a newer schema, leaving the database as it was.
 *
 * The harness writes its own [store] section, and store.backup_dir belongs
 * there, so this test writes its config and starts hearthd itself; the
 * harness's struct hearthd still serves for stopping and cleaning up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

#define OUT_MAX 8192
#define CMD_TIMEOUT_MS 20000

struct fixture {
	struct broker broker;
	struct hearthd hub;
	char backups[300];
	char bin[PATH_MAX];
	char ctl[PATH_MAX];
};

static int write_conf(struct fixture *f)
{
	char cwd[PATH_MAX];
	const char *b = harness_build_dir();
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	FILE *file = fopen(f->hub.conf, "w");
	if (!file)
		return -1;
	fprintf(file,
		"[mqtt]\nhost = 127.0.0.1\nport = %d\nclient_id = hearthd-backup-%d\n"
		"keepalive = 5\n"
		"[store]\npath = %s\ncommit_interval_ms = 100\nbackup_dir = %s\n"
		"[plugins]\ndir = %s%s%s/plugins\nenable = virtual\n"
		"[plugin.virtual]\ndevices = light:2, plug:1\ninterval_ms = 60000\n"
		"[log]\nlevel = debug\n",
		f->hub.port, (int)getpid(), f->hub.db, f->backups, b[0] == '/' ? "" : cwd,
		b[0] == '/' ? "" : "/", b);
	return fclose(file) == 0 ? 0 : -1;
}

static int count_in_log(const struct hearthd *h, const char *text)
{
	FILE *file = fopen(h->log, "r");
	char line[4096];
	int n = 0;
	while (file && fgets(line, sizeof(line), file))
		n += strstr(line, text) != NULL;
	if (file)
		fclose(file);
	return n;
}

/* Start hearthd on the fixture's config; wait for "ready in" (5 s). */
static int hub_launch(struct fixture *f)
{
	int before = count_in_log(&f->hub, "ready in");
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(f->hub.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execl(f->bin, f->bin, "-c", f->hub.conf, (char *)NULL);
		_exit(127);
	}
	f->hub.pid = pid;
	for (long long until = harness_now_ms() + 5000; harness_now_ms() < until; harness_sleep_ms(10)) {
		if (count_in_log(&f->hub, "ready in") > before)
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			f->hub.pid = 0;
			return -1;
		}
	}
	return -1;
}

/* Run argv, its stdout and stderr into out; the exit status, or -1. */
static int run(char *const argv[], char *out, size_t cap)
{
	int fds[2];
	size_t len = 0;
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	long long until = harness_now_ms() + CMD_TIMEOUT_MS;
	for (long long left = CMD_TIMEOUT_MS; pid > 0 && left > 0; left = until - harness_now_ms()) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(fds[0], out + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len + 1 >= cap)
			break;
	}
	out[len] = '\0';
	close(fds[0]);
	int status;
	if (pid < 0)
		return -1;
	for (long long left = until - harness_now_ms(); left > 0; left = until - harness_now_ms()) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		harness_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* hearthd --restore FILE -c CONF, or the same through hearthctl. */
static int restore(struct fixture *f, const char *file, bool via_ctl, char *out, size_t cap)
{
	char *hearthd[] = {f->bin, "--restore", (char *)file, "-c", f->hub.conf, NULL};
	char *ctl[] = {f->ctl, "restore", (char *)file, "-c", f->hub.conf, NULL};
	return run(via_ctl ? ctl : hearthd, out, cap);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || broker_start(&f->broker) != 0) {
		free(f);
		return -1;
	}
	struct hearthd *h = &f->hub;
	h->port = f->broker.port;
	snprintf(h->dir, sizeof(h->dir), "/tmp/hearth-backup-XXXXXX");
	if (!mkdtemp(h->dir))
		return -1;
	snprintf(h->conf, sizeof(h->conf), "%s/hearth.conf", h->dir);
	snprintf(h->db, sizeof(h->db), "%s/hearth.db", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/hearthd.log", h->dir);
	snprintf(f->backups, sizeof(f->backups), "%s/backups", h->dir);
	snprintf(f->bin, sizeof(f->bin), "%s/hearthd", harness_build_dir());
	snprintf(f->ctl, sizeof(f->ctl), "%s/hearthctl", harness_build_dir());
	if (write_conf(f) != 0 || hub_launch(f) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int status = hearthd_cleanup(&f->hub);
	broker_stop(&f->broker);
	free(f);
	return status == 0 ? 0 : -1;
}

/* One integer from a query on a database file, or -1. */
static long long query_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static bool integrity_ok(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = false;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	assert_non_null(in);
	assert_non_null(out);
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static void overwrite(const char *path, long offset, int byte, size_t n)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	char buf[4096];
	assert_true(n <= sizeof(buf));
	memset(buf, byte, n);
	assert_int_equal(pwrite(fd, buf, n, offset), (ssize_t)n);
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* The names in the retained bridge/devices list contain name? */
static bool hub_has_device(struct fixture *f, const char *name)
{
	char quoted[300];
	snprintf(quoted, sizeof(quoted), "\"name\":\"%s\"", name);
	char *devices = client_retained(f->broker.port, "hearth/bridge/devices", 3000);
	bool found = devices && strstr(devices, quoted);
	free(devices);
	return found;
}

static cJSON *rename_device(struct client *c, const char *from, const char *to)
{
	char body[256];
	snprintf(body, sizeof(body), "\"from\":\"%s\",\"to\":\"%s\"", from, to);
	return client_request(c, "device/rename", body, 5000);
}

static void stop_hub(struct fixture *f)
{
	assert_int_equal(hearthd_signal_wait(&f->hub, SIGTERM, 5000), 0);
}

/*
 * The whole story: rename, back up over MQTT, check the copy, refuse to
 * restore while running, rename again, stop, restore, start: the name of
 * the backup's time is back.
 */
static void test_backup_and_restore(void **state)
{
	struct fixture *f = *state;
	char out[OUT_MAX], kept[400];
	struct client *c = client_new(f->broker.port);
	assert_non_null(c);
	cJSON *r = rename_device(c, "virtual/light-1", "kitchen/ceiling");
	assert_non_null(r);
	assert_string_equal(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
	cJSON_Delete(r);

	r = client_request(c, "backup", "", 10000);
	assert_non_null(r);
	assert_string_equal(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
	cJSON *data = cJSON_GetObjectItem(r, "data");
	const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(data, "path"));
	assert_non_null(path);
	char backup[PATH_MAX];
	snprintf(backup, sizeof(backup), "%s", path);
	assert_memory_equal(backup, f->backups, strlen(f->backups));
	struct stat st;
	assert_int_equal(stat(backup, &st), 0);
	assert_int_equal((double)st.st_size,
			 cJSON_GetNumberValue(cJSON_GetObjectItem(data, "bytes")));
	assert_int_equal(st.st_mode & 0777, 0640);
	cJSON_Delete(r);

	/* a self-contained, whole copy holding the devices and the rename */
	assert_true(integrity_ok(backup));
	assert_int_equal(query_int(backup, "SELECT count(*) FROM devices"), 3);
	assert_int_equal(query_int(backup, "SELECT count(*) FROM devices"
					   " WHERE name = 'kitchen/ceiling'"),
			 1);
	assert_int_equal(query_int(backup, "SELECT max(version) FROM schema_version"), 2);
	char side[PATH_MAX + 8];
	snprintf(side, sizeof(side), "%s-wal", backup);
	assert_false(exists(side));

	/* the hub runs: refused, through hearthctl as through hearthd */
	assert_int_equal(restore(f, backup, true, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "in use"));
	assert_int_equal(restore(f, backup, false, out, sizeof(out)), 1);

	r = rename_device(c, "kitchen/ceiling", "hall/lamp");
	assert_non_null(r);
	cJSON_Delete(r);
	client_free(c);
	stop_hub(f);
	assert_int_equal(query_int(f->hub.db, "SELECT count(*) FROM devices"
					      " WHERE name = 'hall/lamp'"),
			 1);

	/* stopped: restored */
	assert_int_equal(restore(f, backup, true, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "3 devices"));
	snprintf(kept, sizeof(kept), "%s.before-restore", f->hub.db);
	assert_true(exists(kept));
	assert_int_equal(query_int(kept, "SELECT count(*) FROM devices"
					 " WHERE name = 'hall/lamp'"),
			 1);
	assert_true(integrity_ok(f->hub.db));

	assert_int_equal(hub_launch(f), 0);
	assert_true(hub_has_device(f, "kitchen/ceiling"));
	assert_false(hub_has_device(f, "hall/lamp"));
}

/* hearthctl backup prints where the copy went; a second copy in the same
 * second gets a name of its own. */
static void test_hearthctl_backup(void **state)
{
	struct fixture *f = *state;
	char out[OUT_MAX], port[16], path[PATH_MAX];
	snprintf(port, sizeof(port), "%d", f->broker.port);
	char *argv[] = {f->ctl, "-p", port, "backup", NULL};
	char *json_argv[] = {f->ctl, "-p", port, "--json", "backup", NULL};
	assert_int_equal(run(argv, out, sizeof(out)), 0);
	const char *at = strstr(out, "backup written to ");
	assert_non_null(at);
	assert_int_equal(sscanf(at, "backup written to %4095s", path), 1);
	assert_true(integrity_ok(path));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(run(json_argv, out, sizeof(out)), 0);
		cJSON *j = cJSON_Parse(out);
		assert_non_null(j);
		const char *again = cJSON_GetStringValue(cJSON_GetObjectItem(j, "path"));
		assert_non_null(again);
		assert_string_not_equal(again, path);
		assert_true(integrity_ok(again));
		cJSON_Delete(j);
	}
}

/* Damaged files, foreign files and newer schemas are refused, and the
 * database stays exactly as it was. */
static void test_restore_refuses_bad_files(void **state)
{
	struct fixture *f = *state;
	char out[OUT_MAX], good[400], bad[400];
	struct client *c = client_new(f->broker.port);
	assert_non_null(c);
	cJSON *r = client_request(c, "backup", "", 10000);
	assert_non_null(r);
	assert_string_equal(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
	snprintf(good, sizeof(good), "%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "data"), "path")));
	cJSON_Delete(r);
	client_free(c);
	stop_hub(f);
	long long devices = query_int(f->hub.db, "SELECT count(*) FROM devices");
	struct stat before, after;
	assert_int_equal(stat(f->hub.db, &before), 0);
	snprintf(bad, sizeof(bad), "%s/bad.db", f->hub.dir);

	/* a newer schema */
	copy_file(good, bad);
	exec_sql(bad, "UPDATE schema_version SET version = 99");
	assert_int_equal(restore(f, bad, false, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "newer"));

	/* pages overwritten: integrity_check fails (or SQLite gives up at once) */
	copy_file(good, bad);
	assert_int_equal(stat(bad, &after), 0);
	assert_true(after.st_size >= 3 * 4096);
	overwrite(bad, 4096, 0x5a, 4096);
	overwrite(bad, 2 * 4096 + 100, 0xff, 200);
	assert_false(integrity_ok(bad));
	assert_int_equal(restore(f, bad, true, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "not a usable database"));

	/* not a database at all; a database that is not hearth's; no file */
	copy_file(good, bad);
	overwrite(bad, 0, 'x', 100);
	assert_int_equal(restore(f, bad, false, out, sizeof(out)), 1);
	unlink(bad);
	exec_sql(bad, "CREATE TABLE notes(text)");
	assert_int_equal(restore(f, bad, false, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "not a hearth database"));
	unlink(bad);
	assert_int_equal(restore(f, bad, false, out, sizeof(out)), 1);
	assert_int_equal(restore(f, f->hub.db, false, out, sizeof(out)), 1);

	/* the database was not touched by any of them */
	assert_int_equal(stat(f->hub.db, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(query_int(f->hub.db, "SELECT count(*) FROM devices"), devices);
	assert_int_equal(hub_launch(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backup_and_restore),
		cmocka_unit_test(test_hearthctl_backup),
		cmocka_unit_test(test_restore_refuses_bad_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
