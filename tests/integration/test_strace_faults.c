/*
 * Storage faults injected from outside the daemon, which has no hook for
 * them: strace fails hearthd's pwrite64 calls with ENOSPC, or its fdatasync
 * calls with EIO, from the Nth call on, swept over N so that the fault lands
 * while the database opens, in the first commits and later. when=N..N+1
 * fails two calls and then the fault is gone (writes must resume in the same
 * process); when=N+ never ends (the hub must keep serving until stopped). A
 * real tmpfs filled to its last page does the same without strace, while
 * the hub runs and before it starts.
 *
 * Every case: no crash. A fault while the database opens may make hearthd
 * refuse to start, with exit status 1 and one clear log line; otherwise it
 * keeps serving MQTT from memory (a /set changes hearth/virtual/light-1, a
 * rename answers ok), logs what failed, and once the fault is gone writes
 * again by itself, losing nothing. After a normal restart on the same
 * database, integrity_check is ok and every device is there.
 *
 * A case waits out the hub's 5 s retry, so the cases of a sweep run side by
 * side, each in a child process with its own broker and hearthd; the child
 * reports one line through a pipe. Skipped without strace or ptrace; the
 * tmpfs case without the right to mount.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

#define VIRTUAL_CONF                                                                              \
	"[plugin.virtual]\ndevices = light:2, plug:1, climate:1, motion:1\ninterval_ms = 200\n"
#define DEVICES 5
#define PARALLEL 4		 /* cases at once (2 cores, shared with other tests) */
#define CASE_TIMEOUT_MS 90000	 /* a child still running then is killed */
#define FAULT_WAIT_MS 6000	 /* for the fault to show in the log */
#define RECOVER_WAIT_MS 13000	 /* the hub retries every 5 s */
#define TMPFS_KIB 512
#define REPORT_MAX 2048

/* The store's lines for a write that failed, and for writes that work again. */
#define FLUSH_FAILED "queued updates failed"
#define FLUSH_OK "writing works again"
#define PUT_FAILED "could not be saved"
#define PUT_OK "every device is saved"

/* -- reading logs and databases ------------------------------------------------ */

static int count_lines(const char *path, const char *text)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* The first line of path holding text, without its newline ("" if none). */
static void first_line(const char *path, const char *text, char *out, size_t cap)
{
	FILE *f = fopen(path, "re");
	char line[4096];
	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, text)) {
			size_t n = strcspn(line, "\n");
			n = n < cap ? n : cap - 1;
			memcpy(out, line, n);
			out[n] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
}

/* A log line from its source's name on (the timestamp dropped). */
static const char *from(const char *line, const char *source)
{
	const char *p = strstr(line, source);
	return p ? p : line;
}

/* Rows of light-1's brightness = value in table (state or history). */
static long long brightness_rows(const char *db, const char *table, int value)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM %s WHERE device_id = 'virtual:light-1' AND "
		 "attribute = 'brightness' AND value = '%d'",
		 table, value);
	return harness_db_ll(db, sql);
}

/* The rename made during the fault is in the devices table. */
static bool renamed(const char *db)
{
	return harness_db_ll(db, "SELECT count(*) FROM devices WHERE id = 'virtual:light-2' AND "
			 "name = 'den/lamp'") == 1;
}

/* PRAGMA integrity_check's first row into out ("ok" when whole). */
static bool integrity_ok(const char *path, char *out, size_t cap)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	snprintf(out, cap, "cannot open");
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return strcmp(out, "ok") == 0;
}

static void remove_db(const char *db)
{
	static const char *const sides[] = {"", "-wal", "-shm", "-journal"};
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", db, sides[i]);
		unlink(path);
	}
}

/* -- processes -------------------------------------------------------------------- */

/* Wait up to timeout_ms for pid: its exit status (0..255, 128+N for a
 * signal), or -1 while it still runs. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	long long until = harness_now_ms() + timeout_ms;
	int status;
	do {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0)
			return -1;
		harness_sleep_ms(10);
	} while (harness_now_ms() < until);
	return -1;
}

static void kill_reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static bool in_path(const char *name)
{
	const char *path = getenv("PATH");
	char dir[PATH_MAX], full[PATH_MAX + 64];
	while (path && *path) {
		size_t n = strcspn(path, ":");
		snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
		snprintf(full, sizeof(full), "%s/%s", dir[0] ? dir : ".", name);
		if (access(full, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* Run argv with its output thrown away; its exit status or -1. */
static int run_quiet(char *const argv[])
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	int st = wait_exit(pid, 10000);
	if (st < 0)
		kill_reap(pid);
	return st;
}

/* Why strace cannot be used here, or NULL when it can. */
static const char *strace_unusable(void)
{
	static int probed;
	static const char *why;
	if (probed++)
		return why;
	char *probe[] = {"strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync", "-e",
			 "inject=fdatasync:error=EIO:when=1..2", "--", "true", NULL};
	if (!in_path("strace"))
		why = "strace is not installed (Debian package strace)";
	else if (run_quiet(probe) != 0)
		why = "strace cannot trace a child here (ptrace not permitted)";
	return why;
}

#define NEED_STRACE()                                                                             \
	do {                                                                                      \
		if (strace_unusable()) {                                                          \
			print_message("%s: skipped\n", strace_unusable());                        \
			skip();                                                                   \
		}                                                                                 \
	} while (0)

/* hearthd under strace, its output appended to the hub's log and each
 * traced call written to trace_path. */
static pid_t spawn_traced(const struct hearthd *h, const char *inject, const char *trace_path)
{
	char bin[PATH_MAX], conf[sizeof(h->conf)], trace[PATH_MAX], expr[160];
	snprintf(bin, sizeof(bin), "%s/hearthd", harness_build_dir());
	snprintf(conf, sizeof(conf), "%s", h->conf);
	snprintf(trace, sizeof(trace), "%s", trace_path);
	snprintf(expr, sizeof(expr), "%s", inject);
	char *argv[] = {"strace", "-f",	 "-qq", "-o", trace, "-e", "trace=pwrite64,fdatasync,fsync",
			"-e",	  expr,	 "--",	bin,  "-c",  conf, NULL};
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	/* a sanitized build (make asan): LeakSanitizer cannot run under ptrace */
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
	execvp(argv[0], argv);
	_exit(127);
}

/* The process strace started: its only child. */
static pid_t child_of(pid_t parent)
{
	char path[64];
	int pid = 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
	FILE *f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

/* Until "ready in" is logged once more than before (1), or the process
 * ends (0, *status set), or timeout (-1). */
static int wait_ready(pid_t pid, const char *log, int before, int timeout_ms, int *status)
{
	long long until = harness_now_ms() + timeout_ms;
	while (harness_now_ms() < until) {
		if (count_lines(log, "ready in") > before)
			return 1;
		if ((*status = wait_exit(pid, 0)) >= 0)
			return 0;
		harness_sleep_ms(20);
	}
	return -1;
}

/* -- one case, in a child process ---------------------------------------------- */

struct fault_case {
	const char *inject; /* syscall:error=ERRNO */
	const char *says;   /* what the log must name: strerror of that errno, */
	const char *or_says; /* or SQLite's words for it */
	int first, last;    /* when=first..last; last 0: first+, never ends */
	bool fresh;	    /* no database before the run */
};

static bool names_fault(const struct fault_case *fc, const char *line)
{
	return strstr(line, fc->says) || strstr(line, fc->or_says);
}

struct report {
	char text[REPORT_MAX];
	size_t len;
};

static void say(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct report *r, const char *fmt, ...)
{
	if (r->len >= sizeof(r->text) - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->text + r->len, sizeof(r->text) - r->len, fmt, ap);
	va_end(ap);
	size_t room = sizeof(r->text) - 1 - r->len;
	if (n > 0)
		r->len += (size_t)n < room ? (size_t)n : room;
}

#define CHECK(cond, ...)                                                                          \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			say(r, "FAILED: " __VA_ARGS__);                                           \
			goto out;                                                                 \
		}                                                                                 \
	} while (0)

static bool has(const struct hearthd *h, const char *text)
{
	return count_lines(h->log, text) > 0;
}

/* The fault has passed: every failed write was written again since. */
static bool resumed(const struct hearthd *h)
{
	return (!has(h, FLUSH_FAILED) || has(h, FLUSH_OK)) &&
	       (!has(h, PUT_FAILED) || has(h, PUT_OK));
}

static bool set_light(struct client *c, int brightness)
{
	char payload[96], expect[32];
	snprintf(payload, sizeof(payload), "{\"brightness\":%d,\"transition\":0}", brightness);
	snprintf(expect, sizeof(expect), "\"brightness\":%d", brightness);
	client_publish(c, "hearth/virtual/light-1/set", payload, false);
	char *p = client_wait(c, "hearth/virtual/light-1", expect, 4000);
	free(p);
	return p != NULL;
}

static bool rename_ok(struct client *c, const char *from, const char *to)
{
	char body[160];
	snprintf(body, sizeof(body), "\"from\":\"%s\",\"to\":\"%s\"", from, to);
	cJSON *resp = client_request(c, "device/rename", body, 4000);
	const cJSON *status = cJSON_GetObjectItem(resp, "status");
	bool ok = cJSON_IsString(status) && strcmp(status->valuestring, "ok") == 0;
	cJSON_Delete(resp);
	return ok;
}

static double flush_failures(struct client *c)
{
	cJSON *resp = client_request(c, "health_check", "", 4000);
	const cJSON *store = cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "data"), "store");
	const cJSON *n = cJSON_GetObjectItem(store, "flush_failures");
	double v = cJSON_IsNumber(n) ? n->valuedouble : -1;
	cJSON_Delete(resp);
	return v;
}

/* Wait until the log holds one of the failure lines; ms waited or -1. */
static long long wait_fault(const struct hearthd *h, pid_t tracer, int timeout_ms)
{
	long long start = harness_now_ms();
	while (harness_now_ms() - start < timeout_ms) {
		if (has(h, FLUSH_FAILED) || has(h, PUT_FAILED))
			return harness_now_ms() - start;
		if (kill(tracer, 0) != 0)
			break;
		harness_sleep_ms(20);
	}
	return -1;
}

/* The part of a case while hearthd runs under strace: served from memory,
 * a clear line, and writes again once the fault is gone; then a clean stop. */
static int while_traced(const struct fault_case *fc, const struct hearthd *hub, int port,
			pid_t tracer, struct report *r)
{
	struct client *c = NULL;
	int rc = -1;
	pid_t daemon = child_of(tracer);
	char line[600];
	CHECK(daemon > 0, "no hearthd under strace");
	c = client_new(port);
	CHECK(c, "no MQTT client");
	client_subscribe(c, "hearth/virtual/light-1");
	long long fault_ms = wait_fault(hub, tracer, FAULT_WAIT_MS);
	/* served from memory, fault or not */
	CHECK(set_light(c, 11), "a /set during the fault changed no state");
	CHECK(rename_ok(c, "virtual/light-2", "den/lamp"), "a rename during the fault failed");
	if (fault_ms >= 0) {
		first_line(hub->log, has(hub, FLUSH_FAILED) ? FLUSH_FAILED : "cannot write device",
			   line, sizeof(line));
		CHECK(names_fault(fc, line), "the failure line does not say '%s': %s", fc->says,
		      line);
		say(r, "served from memory; logged \"%s\"", from(line, "store:"));
		if (has(hub, FLUSH_FAILED))
			CHECK(flush_failures(c) > 0, "health_check shows no flush failure");
	} else {
		say(r, "served; no write failed while running");
	}
	if (fault_ms >= 0 && fc->last) {
		long long start = harness_now_ms();
		while (!resumed(hub) && harness_now_ms() - start < RECOVER_WAIT_MS)
			client_pump(c, 100);
		CHECK(resumed(hub), "writes did not resume within %d ms of the fault's end",
		      RECOVER_WAIT_MS);
		say(r, "; writes resumed by themselves after %lld ms", harness_now_ms() - start);
	} else if (fault_ms >= 0) {
		client_pump(c, 300);
		CHECK(!resumed(hub), "writes resumed while the fault lasts");
	}
	CHECK(set_light(c, 33), "no state after the fault");
	client_pump(c, 400); /* several commit intervals */
	client_free(c);
	c = NULL;
	kill(daemon, SIGTERM);
	int st = wait_exit(tracer, 8000);
	CHECK(st == 0, "hearthd under strace ended with status %d after SIGTERM", st);
	rc = 0;
out:
	client_free(c);
	if (rc && daemon > 0)
		kill(daemon, SIGKILL);
	return rc;
}

static int count_injected(const char *trace)
{
	return count_lines(trace, "(INJECTED)");
}

/* What the database holds after a normal restart: the state and rename made
 * during the fault, unless the log says they were lost at the stop. */
static int check_db(const struct hearthd *hub, bool served, struct report *r)
{
	char ic[256];
	int rc = -1;
	CHECK(integrity_ok(hub->db, ic, sizeof(ic)), "integrity_check: %s", ic);
	long long n = harness_db_ll(hub->db, "SELECT count(*) FROM devices");
	CHECK(n == DEVICES, "%lld devices in the database, want %d", n, DEVICES);
	bool lost = has(hub, "not written") || has(hub, "not saved");
	if (served && !lost) {
		CHECK(renamed(hub->db), "the rename made during the fault is not in the database");
		CHECK(brightness_rows(hub->db, "history", 11) == 1,
		      "the state change made during the fault is not in history");
		CHECK(brightness_rows(hub->db, "state", 33) == 1,
		      "the last state is not in the database");
		say(r, "; nothing lost");
	} else if (served) {
		char line[600];
		first_line(hub->log, has(hub, "not written") ? "not written" : "not saved", line,
			   sizeof(line));
		say(r, "; stopped during the fault: \"%s\"", from(line, "store:"));
	}
	say(r, "; integrity ok, %lld devices", n);
	rc = 0;
out:
	return rc;
}

/* Shared by the children of a sweep. The harness picks a port that is free
 * now and then starts mosquitto on it: two children doing so at once may
 * pick the same one, and the loser's hub would talk to the winner's broker. */
static sem_t *broker_lock;

static int start_broker(struct broker *b)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10; /* a child killed while holding it blocks no one for long */
	bool locked = broker_lock && sem_timedwait(broker_lock, &until) == 0;
	int rc = broker_start(b);
	if (locked)
		sem_post(broker_lock);
	return rc;
}

static int run_case(const struct fault_case *fc, struct report *r)
{
	struct broker broker = {0};
	struct hearthd hub;
	char inject[160], trace[PATH_MAX], line[600];
	pid_t tracer = 0;
	bool served = false;
	int rc = -1;
	memset(&hub, 0, sizeof(hub));
	if (fc->last)
		snprintf(inject, sizeof(inject), "inject=%s:when=%d..%d", fc->inject, fc->first,
			 fc->last);
	else
		snprintf(inject, sizeof(inject), "inject=%s:when=%d+", fc->inject, fc->first);
	say(r, "%-38s %s db: ", inject, fc->fresh ? "new" : "old");
	CHECK(start_broker(&broker) == 0, "no broker");
	CHECK(hearthd_start_full(&hub, broker.port, NULL, "virtual", VIRTUAL_CONF) == 0,
	      "hearthd did not start before the fault");
	CHECK(hearthd_signal_wait(&hub, SIGTERM, 5000) == 0, "hearthd did not stop cleanly");
	if (fc->fresh)
		remove_db(hub.db);
	snprintf(trace, sizeof(trace), "%s/strace.out", hub.dir);
	int ready_before = count_lines(hub.log, "ready in");
	tracer = spawn_traced(&hub, inject, trace);
	CHECK(tracer > 0, "cannot start strace");
	int st = -1, ready = wait_ready(tracer, hub.log, ready_before, 8000, &st);
	CHECK(ready != -1, "hearthd under strace neither ready nor ended in 8 s");
	if (!ready) {
		tracer = 0;
		/* refused: the fault hit while the database opened */
		CHECK(st == 1, "hearthd under strace ended with status %d at start-up", st);
		first_line(hub.log, "cannot open the database", line, sizeof(line));
		CHECK(line[0], "refused to start without saying why");
		CHECK(names_fault(fc, line), "the start-up failure does not say '%s': %s", fc->says,
		      line);
		say(r, "refused to start: \"%s\"", from(line, "hub:"));
	} else {
		served = true;
		pid_t t = tracer;
		tracer = 0;
		if (while_traced(fc, &hub, broker.port, t, r)) {
			kill_reap(t);
			goto out;
		}
	}
	say(r, "; fault injected %d times", count_injected(trace));
	CHECK(hearthd_restart(&hub) == 0, "no normal start after the fault (status %d)",
	      hub.last_status);
	CHECK(hearthd_signal_wait(&hub, SIGTERM, 5000) == 0, "the normal run did not stop cleanly");
	rc = check_db(&hub, served, r);
out:
	kill_reap(tracer);
	if (hub.dir[0]) {
		if (rc)
			hub.last_status = 1; /* the log goes to stderr */
		hearthd_cleanup(&hub);
	}
	if (broker.dir[0])
		broker_stop(&broker);
	return rc;
}

/* -- running cases side by side ------------------------------------------------- */

struct job {
	pid_t pid;
	int fd;
	long long started_ms;
	int status;
	struct report report;
};

static void job_start(struct job *j, const struct fault_case *fc)
{
	int fds[2];
	memset(j, 0, sizeof(*j));
	j->status = -1;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		say(&j->report, "FAILED: pipe: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	j->pid = fork();
	if (j->pid == 0) {
		/* its own group: a child that hangs is stopped with all it started */
		setpgid(0, 0);
		close(fds[0]);
		struct report r = {.len = 0};
		int rc = run_case(fc, &r);
		if (write(fds[1], r.text, r.len) < 0)
			rc = -1;
		exit(rc ? 1 : 0); /* exit: the harness stops what it started */
	}
	close(fds[1]);
	j->fd = fds[0];
	j->started_ms = harness_now_ms();
	if (j->pid < 0) {
		say(&j->report, "FAILED: fork: %s", strerror(errno));
		close(j->fd);
		j->fd = -1;
	}
}

/* 1 when the job has ended (its report read), 0 while it runs. */
static int job_poll(struct job *j)
{
	if (j->pid <= 0)
		return 1;
	int st = wait_exit(j->pid, 0);
	if (st < 0 && harness_now_ms() - j->started_ms > CASE_TIMEOUT_MS) {
		kill(-j->pid, SIGKILL);
		kill_reap(j->pid);
		say(&j->report, "FAILED: still running after %d ms", CASE_TIMEOUT_MS);
		st = 1;
	} else if (st < 0) {
		return 0;
	} else {
		ssize_t n = read(j->fd, j->report.text, sizeof(j->report.text) - 1);
		j->report.len = n > 0 ? (size_t)n : 0;
		j->report.text[j->report.len] = '\0';
	}
	close(j->fd);
	j->status = st;
	j->pid = 0;
	return 1;
}

static void run_sweep(const char *title, const struct fault_case *cases, size_t n)
{
	struct job *jobs = calloc(n, sizeof(*jobs));
	assert_non_null(jobs);
	broker_lock = mmap(NULL, sizeof(*broker_lock), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(broker_lock != MAP_FAILED);
	assert_int_equal(sem_init(broker_lock, 1, 1), 0);
	size_t next = 0, done = 0, running = 0;
	long long start = harness_now_ms();
	while (done < n) {
		while (running < PARALLEL && next < n) {
			job_start(&jobs[next], &cases[next]);
			next++;
			running++;
		}
		for (size_t i = 0; i < next; i++) {
			if (jobs[i].status == -1 && job_poll(&jobs[i])) {
				if (jobs[i].status == -1)
					jobs[i].status = 1;
				running--;
				done++;
			}
		}
		harness_sleep_ms(50);
	}
	int failed = 0;
	print_message("%s (%zu cases, %.1f s)\n", title, n, (double)(harness_now_ms() - start) / 1000);
	for (size_t i = 0; i < n; i++) {
		failed += jobs[i].status != 0;
		print_message("  %s %s\n", jobs[i].status == 0 ? "ok  " : "FAIL", jobs[i].report.text);
	}
	free(jobs);
	sem_destroy(broker_lock);
	munmap(broker_lock, sizeof(*broker_lock));
	broker_lock = NULL;
	assert_int_equal(failed, 0);
}

/* -- the sweeps ------------------------------------------------------------------- */

#define ENOSPC_SAYS "No space left on device", "disk is full"
#define EIO_SAYS "Input/output error", "disk I/O error"

/* pwrite64 counts every write: with a database there, 1..8 grow the -shm
 * file as it opens, 9 on the first commits (~70 calls a second); a new
 * database is created and migrated in the first ~45. */
static void test_pwrite_enospc(void **state)
{
	(void)state;
	NEED_STRACE();
	static const struct fault_case cases[] = {
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 1, 2, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 3, 4, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 8, 9, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 9, 10, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 13, 14, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 21, 22, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 40, 41, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 80, 81, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 160, 161, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 40, 0, false},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 2, 3, true},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 12, 13, true},
		{"pwrite64:error=ENOSPC", ENOSPC_SAYS, 60, 61, true},
	};
	run_sweep("pwrite64 fails with ENOSPC", cases, sizeof(cases) / sizeof(cases[0]));
}

/* fdatasync is rare in WAL mode with synchronous=NORMAL: with a database
 * there, 1 syncs the new WAL's header on the first commit, 2 its directory
 * (SQLite ignores that failure), 3 and 4 come with the checkpoint at the
 * stop; a new database syncs its rollback journal and file first. */
static void test_fdatasync_eio(void **state)
{
	(void)state;
	NEED_STRACE();
	static const struct fault_case cases[] = {
		{"fdatasync:error=EIO", EIO_SAYS, 1, 2, false},
		{"fdatasync:error=EIO", EIO_SAYS, 2, 3, false},
		{"fdatasync:error=EIO", EIO_SAYS, 3, 4, false},
		{"fdatasync:error=EIO", EIO_SAYS, 4, 5, false},
		{"fdatasync:error=EIO", EIO_SAYS, 1, 0, false},
		{"fdatasync:error=EIO", EIO_SAYS, 1, 2, true},
		{"fdatasync:error=EIO", EIO_SAYS, 4, 5, true},
		{"fdatasync:error=EIO", EIO_SAYS, 5, 6, true},
		{"fdatasync:error=EIO", EIO_SAYS, 7, 8, true},
	};
	run_sweep("fdatasync fails with EIO", cases, sizeof(cases) / sizeof(cases[0]));
}

/* -- a real full disk: a small tmpfs ------------------------------------------- */

#define TMPFS_CONF "[plugin.virtual]\ndevices = light:2, plug:1\ninterval_ms = 0\n"
#define TMPFS_DEVICES 3

static struct {
	char mnt[280];
	bool mounted;
} disk;

/* Runs even when the test failed half-way. */
static int tmpfs_teardown(void **state)
{
	(void)state;
	if (disk.mounted && umount2(disk.mnt, MNT_DETACH) != 0)
		fprintf(stderr, "cannot unmount %s: %s\n", disk.mnt, strerror(errno));
	if (disk.mnt[0])
		rmdir(disk.mnt);
	disk.mounted = false;
	disk.mnt[0] = '\0';
	return 0;
}

/* Fill the file system of path to its last page. */
static void fill(const char *path)
{
	static const char page[4096];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	int err = 0;
	for (int i = 0; i < TMPFS_KIB / 4 + 16 && !err; i++) {
		ssize_t n = write(fd, page, sizeof(page));
		if (n < 0)
			err = errno;
	}
	close(fd);
	assert_int_equal(err, ENOSPC);
}

static void wait_log(const struct hearthd *h, const char *text, int timeout_ms, struct client *c)
{
	long long start = harness_now_ms();
	while (!has(h, text) && harness_now_ms() - start < timeout_ms)
		client_pump(c, 50);
	if (!has(h, text))
		fail_msg("no '%s' in the log within %d ms", text, timeout_ms);
}

/* The disk fills while the hub runs: served from memory, a clear line,
 * and once space is back every change reaches the database. */
static void full_while_running(struct hearthd *hub, const char *filler)
{
	assert_int_equal(hearthd_restart(hub), 0);
	struct client *c = client_new(hub->port);
	assert_non_null(c);
	client_subscribe(c, "hearth/virtual/light-1");
	assert_true(set_light(c, 11));
	client_pump(c, 300);
	fill(filler);
	assert_true(set_light(c, 22));
	assert_true(rename_ok(c, "virtual/light-2", "den/lamp"));
	wait_log(hub, FLUSH_FAILED, 3000, c);
	char line[600];
	first_line(hub->log, FLUSH_FAILED, line, sizeof(line));
	print_message("  disk full while running: \"%s\"\n", from(line, "store:"));
	assert_non_null(strstr(line, "No space left on device"));
	assert_true(flush_failures(c) > 0);
	assert_true(set_light(c, 23)); /* still served */
	assert_int_equal(unlink(filler), 0);
	long long start = harness_now_ms();
	while (!resumed(hub) && harness_now_ms() - start < RECOVER_WAIT_MS)
		client_pump(c, 100);
	assert_true(resumed(hub));
	print_message("  space back: writes resumed by themselves after %lld ms\n",
		      harness_now_ms() - start);
	assert_true(set_light(c, 33));
	client_pump(c, 400);
	client_free(c);
	assert_int_equal(hearthd_signal_wait(hub, SIGTERM, 5000), 0);
	char ic[256];
	assert_true(integrity_ok(hub->db, ic, sizeof(ic)));
	assert_true(renamed(hub->db));
	assert_int_equal(brightness_rows(hub->db, "history", 22), 1);
	assert_int_equal(brightness_rows(hub->db, "history", 23), 1);
	assert_int_equal(brightness_rows(hub->db, "state", 33), 1);
}

static const char *store_mode(struct client *c)
{
	static char mode[32];
	cJSON *resp = client_request(c, "health_check", "", 4000);
	const cJSON *store = cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "data"), "store");
	const cJSON *m = cJSON_GetObjectItem(store, "mode");
	snprintf(mode, sizeof(mode), "%s", cJSON_IsString(m) ? m->valuestring : "?");
	cJSON_Delete(resp);
	return mode;
}

static long long named(const char *db, const char *id, const char *name)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM devices WHERE id = '%s' AND name = '%s'",
		 id, name);
	return harness_db_ll(db, sql);
}

enum start_fault { DISK_FULL, READ_ONLY };

static void set_fault(enum start_fault f, const char *filler, bool on)
{
	if (f == DISK_FULL && on)
		fill(filler);
	else if (f == DISK_FULL)
		assert_int_equal(unlink(filler), 0);
	else if (mount(NULL, disk.mnt, NULL, MS_REMOUNT | (on ? MS_RDONLY : 0), NULL) != 0)
		fail_msg("cannot remount %s %s: %s", disk.mnt, on ? "read-only" : "read-write",
			 strerror(errno));
}

/* The disk refuses writes when the hub starts: full, or mounted read-only
 * (what the kernel does to an SD card that failed). After a clean stop no
 * -shm is left for SQLite to read the database by, after a kill -9 it is.
 * Either way the hub starts on what is stored, serves from memory, says
 * how the database is open, and once the fault is gone writes what changed
 * meanwhile by itself. */
static void fault_at_start(struct hearthd *hub, const char *filler, enum start_fault f,
			   bool after_kill, const char *new_name, int level)
{
	const char *how = after_kill ? "after a kill -9" : "after a clean stop";
	const char *what = f == DISK_FULL ? "disk full" : "read-only file system";
	assert_int_equal(hearthd_restart(hub), 0);
	assert_int_equal(hearthd_signal_wait(hub, after_kill ? SIGKILL : SIGTERM, 5000),
			 after_kill ? 128 + SIGKILL : 0);
	set_fault(f, filler, true);
	if (hearthd_restart(hub) != 0) {
		char line[600];
		first_line(hub->log, "cannot open the database", line, sizeof(line));
		set_fault(f, filler, false);
		fail_msg("%s at start %s: refused (status %d): \"%s\"", what, how,
			 hub->last_status, from(line, "hub:"));
	}
	struct client *c = client_new(hub->port);
	assert_non_null(c);
	client_subscribe(c, "hearth/virtual/light-1");
	char mode[32];
	snprintf(mode, sizeof(mode), "%s", store_mode(c));
	/* no -shm to be made: the WAL index in memory, or the file as it is */
	if (!after_kill)
		assert_string_equal(mode, f == DISK_FULL ? "exclusive" : "read-only");
	else
		assert_string_not_equal(mode, "closed");
	assert_true(set_light(c, level));
	assert_true(rename_ok(c, "virtual:light-2", new_name));
	client_pump(c, 300);
	set_fault(f, filler, false);
	long long start = harness_now_ms();
	while ((strcmp(store_mode(c), "normal") != 0 ||
		named(hub->db, "virtual:light-2", new_name) != 1) &&
	       harness_now_ms() - start < RECOVER_WAIT_MS)
		client_pump(c, 200);
	long long took = harness_now_ms() - start;
	assert_string_equal(store_mode(c), "normal");
	print_message("  %s at start %s: served (database %s), open normally and the rename "
		      "saved %lld ms after the fault ended\n",
		      what, how, mode, took);
	char line[600];
	first_line(hub->log, f == DISK_FULL ? "in memory instead" : "read-only instead", line,
		   sizeof(line));
	if (line[0])
		print_message("    \"%s\"\n", from(line, "store:"));
	assert_true(set_light(c, level + 1));
	client_pump(c, 400);
	client_free(c);
	assert_int_equal(hearthd_signal_wait(hub, SIGTERM, 5000), 0);
	char ic[256];
	assert_true(integrity_ok(hub->db, ic, sizeof(ic)));
	assert_int_equal(harness_db_ll(hub->db, "SELECT count(*) FROM devices"), TMPFS_DEVICES);
	assert_int_equal(named(hub->db, "virtual:light-2", new_name), 1);
	assert_int_equal(brightness_rows(hub->db, "history", level), 1);
	assert_int_equal(brightness_rows(hub->db, "state", level + 1), 1);
}

static void test_tmpfs_full(void **state)
{
	(void)state;
	struct broker broker;
	struct hearthd hub;
	char filler[PATH_MAX + 16];
	memset(&hub, 0, sizeof(hub));
	assert_int_equal(broker_start(&broker), 0);
	hub.port = broker.port;
	snprintf(hub.enable, sizeof(hub.enable), "virtual");
	snprintf(hub.extra, sizeof(hub.extra), "%s", TMPFS_CONF);
	snprintf(hub.dir, sizeof(hub.dir), "/tmp/hearth-test-XXXXXX");
	assert_non_null(mkdtemp(hub.dir));
	snprintf(hub.conf, sizeof(hub.conf), "%s/hearth.conf", hub.dir);
	snprintf(hub.log, sizeof(hub.log), "%s/hearthd.log", hub.dir);
	snprintf(disk.mnt, sizeof(disk.mnt), "%s/disk", hub.dir);
	assert_int_equal(mkdir(disk.mnt, 0700), 0);
	char opts[64];
	snprintf(opts, sizeof(opts), "size=%dk,mode=0700", TMPFS_KIB);
	if (mount("tmpfs", disk.mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
		print_message("cannot mount a tmpfs (%s; needs root or CAP_SYS_ADMIN): skipped\n",
			      strerror(errno));
		tmpfs_teardown(NULL);
		hearthd_cleanup(&hub);
		broker_stop(&broker);
		skip();
	}
	disk.mounted = true;
	snprintf(hub.db, sizeof(hub.db), "%s/hearth.db", disk.mnt);
	snprintf(filler, sizeof(filler), "%s/filler", disk.mnt);
	print_message("tmpfs of %d KiB holding the database:\n", TMPFS_KIB);
	full_while_running(&hub, filler);
	fault_at_start(&hub, filler, DISK_FULL, false, "den/lamp-a", 40);
	fault_at_start(&hub, filler, DISK_FULL, true, "den/lamp-b", 50);
	fault_at_start(&hub, filler, READ_ONLY, false, "den/lamp-c", 60);
	fault_at_start(&hub, filler, READ_ONLY, true, "den/lamp-d", 70);
	tmpfs_teardown(NULL);
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
}

int main(int argc, char **argv)
{
	if (argc > 1) /* e.g. test_tmpfs_full */
		cmocka_set_test_filter(argv[1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pwrite_enospc),
		cmocka_unit_test(test_fdatasync_eio),
		cmocka_unit_test_teardown(test_tmpfs_full, tmpfs_teardown),
	};
	return cmocka_run_group_tests_name("integration: storage faults under strace", tests, NULL,
					   NULL);
}
