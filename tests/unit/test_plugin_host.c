/*
 * The plugin host inside a whole hub on a loop of the test's own, driven
 * with fake plugins built as real .so files (tests/fixtures/plugins): a
 * good plugin end to end, every refusal (ABI, symbol, descriptor, name,
 * duplicate, permissions, options), the rollback after a failed init or
 * start, a callback that blocks the loop, posts from another thread, the
 * MQTT topics a plugin may not use, and secrets. Every test ends by proving
 * the loop closes with no handle left.
 *
 * Fixtures come from $HEARTH_FIXTURE_DIR, else $B/tests/plugins, else
 * build/tests/plugins. No broker runs: mqtt.port is a free loopback port
 * nobody listens on. The hub logs to stderr; around every call into the hub
 * stderr goes to a file in the test's directory, which the test greps
 * (HEARTH_TEST_VERBOSE=1 replays it). Plugins report what they saw as
 * device state, since their symbols are hidden from the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "crash.h"
#include "hub.h"
#include "plugin_host.h"
#include "registry.h"

#define STOP_MAX_MS 3000
#define CAPTURE_MAX (4 * 1024 * 1024)
#define PATH_LEN 256

/* Lines make_config() writes before a test's own sections. */
#define CONF_HEADER_LINES 6

#define LAMP "fx_good:lamp"
#define SENSOR "fx_good:sensor"

struct t {
	char root[64];
	char dir[PATH_LEN]; /* plugins.dir */
	char conf[PATH_LEN];
	char db[PATH_LEN];
	char log[PATH_LEN];
	uv_loop_t loop;
	bool loop_open;
	struct hearth_hub *hub;
	int saved_stderr; /* -1 unless capturing */
	int pipe[2];
};

/* ---- the test's directory and loop -------------------------------------------- */

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->saved_stderr = -1;
	t->pipe[0] = t->pipe[1] = -1;
	snprintf(t->root, sizeof(t->root), "/tmp/hearth-phost-XXXXXX");
	if (!mkdtemp(t->root)) {
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/plugins", t->root);
	snprintf(t->conf, sizeof(t->conf), "%s/hearth.conf", t->root);
	snprintf(t->db, sizeof(t->db), "%s/hearth.db", t->root);
	snprintf(t->log, sizeof(t->log), "%s/stderr.log", t->root);
	if (mkdir(t->dir, 0755) != 0 || chmod(t->dir, 0755) != 0 || uv_loop_init(&t->loop) != 0) {
		free(t);
		return -1;
	}
	t->loop_open = true;
	*state = t;
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---- stderr capture ------------------------------------------------------------ */

static void cap_on(struct t *t)
{
	if (t->saved_stderr >= 0)
		return;
	fflush(stderr);
	int fd = open(t->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	t->saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (t->saved_stderr >= 0)
		dup2(fd, STDERR_FILENO);
	close(fd);
}

static void cap_off(struct t *t)
{
	if (t->saved_stderr < 0)
		return;
	fflush(stderr);
	dup2(t->saved_stderr, STDERR_FILENO);
	close(t->saved_stderr);
	t->saved_stderr = -1;
}

/* Everything captured so far (new, NUL-terminated), or NULL. */
static char *captured(const struct t *t)
{
	FILE *f = fopen(t->log, "re");
	char *text = calloc(1, CAPTURE_MAX + 1);
	if (f && text)
		fread(text, 1, CAPTURE_MAX, f);
	if (f)
		fclose(f);
	return text;
}

static size_t logged_count(const struct t *t, const char *needle)
{
	char *text = captured(t);
	size_t n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(text);
	return n;
}

static bool logged(const struct t *t, const char *needle)
{
	return logged_count(t, needle) > 0;
}

/* ---- configuration, hub up and down ------------------------------------------- */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int port = -1;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(s);
	return port;
}

static int replace(char **field, const char *text)
{
	char *copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

/* Defaults when sections is NULL; else a hearth.conf with them, loaded. */
static struct hearth_config *make_config(struct t *t, const char *sections, int port)
{
	struct hearth_config *c = NULL;
	char err[512];
	if (!sections) {
		c = config_defaults();
		if (c && (replace(&c->store.path, t->db) || replace(&c->plugins.dir, t->dir))) {
			config_free(c);
			return NULL;
		}
		if (c)
			c->mqtt.port = port;
		return c;
	}
	FILE *f = fopen(t->conf, "we");
	if (!f)
		return NULL;
	fprintf(f, "[mqtt]\nport = %d\n[store]\npath = %s\n[plugins]\ndir = %s\n%s", port, t->db,
		t->dir, sections);
	fclose(f);
	if (config_load(t->conf, &c, err, sizeof(err)) != 0) {
		print_error("%s\n", err);
		return NULL;
	}
	return c;
}

static void hub_up(struct t *t, const char *sections)
{
	int port = free_port();
	assert_true(port > 0);
	struct hearth_config *c = make_config(t, sections, port);
	assert_non_null(c);
	assert_int_equal(c->plugins.n_enable, 0);
	assert_int_equal(hub_new(&t->loop, c, &t->hub), 0);
	cap_on(t);
	int rc = hub_start(t->hub, NULL, NULL);
	cap_off(t);
	assert_int_equal(rc, 0);
}

static void set_flag(void *user)
{
	*(bool *)user = true;
}

static void name_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	print_error("left on the loop: %s handle%s\n", uv_handle_type_name(h->type),
		    uv_is_closing(h) ? " (closing)" : "");
}

/* Stop and free the hub, then close the loop. Returns uv_loop_close's
 * answer: 0 only when no handle or request is left. */
static int hub_down(struct t *t, bool *stopped)
{
	bool done = false;
	cap_on(t);
	hub_stop(t->hub, set_flag, &done);
	for (uint64_t end = uv_hrtime() + STOP_MAX_MS * 1000000ull; !done && uv_hrtime() < end;) {
		uv_run(&t->loop, UV_RUN_NOWAIT);
		sleep_ms(1);
	}
	hub_free(t->hub);
	t->hub = NULL;
	int rc = uv_loop_close(&t->loop);
	cap_off(t);
	if (rc == 0)
		t->loop_open = false;
	else
		uv_walk(&t->loop, name_handle, NULL);
	if (stopped)
		*stopped = done;
	return rc;
}

static void finish(struct t *t)
{
	bool stopped = false;
	int rc = hub_down(t, &stopped);
	assert_true(stopped);
	assert_int_equal(rc, 0);
}

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void replay_log(const struct t *t)
{
	char *text = captured(t);
	if (text && text[0])
		fprintf(stderr, "---- hub log ----\n%s---- end ----\n", text);
	free(text);
}

/* Close whatever a failed test left on the loop. Work may still run on
 * the pool, so wait for it (bounded); a loop that never closes is leaked
 * rather than freed under the pool's feet. */
static bool close_leftovers(struct t *t)
{
	for (int ms = 0; ms < STOP_MAX_MS; ms++) {
		uv_walk(&t->loop, close_any, NULL);
		uv_run(&t->loop, UV_RUN_NOWAIT);
		if (uv_loop_close(&t->loop) == 0)
			return true;
		sleep_ms(1);
	}
	return false;
}

/* Also after a failed test: the hub goes, then whatever it left behind. */
static int teardown(void **state)
{
	struct t *t = *state;
	cap_off(t);
	if (t->hub)
		hub_down(t, NULL);
	bool closed = !t->loop_open || close_leftovers(t);
	if (getenv("HEARTH_TEST_VERBOSE"))
		replay_log(t);
	for (int i = 0; i < 2; i++)
		if (t->pipe[i] >= 0)
			close(t->pipe[i]);
	chmod(t->dir, 0755);
	nftw(t->root, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	if (!closed) {
		print_error("the loop never closed; leaking it\n");
		return -1;
	}
	free(t);
	return 0;
}

/* ---- fixtures ------------------------------------------------------------------ */

static const char *fixture_dir(void)
{
	static char dir[PATH_LEN];
	const char *env = getenv("HEARTH_FIXTURE_DIR");
	const char *b = getenv("B");
	if (env)
		return env;
	snprintf(dir, sizeof(dir), "%s/tests/plugins", b && b[0] ? b : "build");
	return dir;
}

static int copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return -EIO;
	return n < 0 ? -errno : 0;
}

/* Copy fixture's .so into the plugin folder as <as>.so with mode. */
static int install(struct t *t, const char *fixture, const char *as, mode_t mode)
{
	char from[PATH_LEN * 2], to[PATH_LEN * 2];
	snprintf(from, sizeof(from), "%s/%s.so", fixture_dir(), fixture);
	snprintf(to, sizeof(to), "%s/%s.so", t->dir, as);
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		int e = errno;
		print_error("fixture %s: %s (build it first)\n", from, strerror(e));
		return -e;
	}
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = out < 0 ? -errno : copy_fd(in, out);
	if (rc == 0 && fchmod(out, mode) != 0)
		rc = -errno;
	close(in);
	if (out >= 0)
		close(out);
	return rc;
}

static int load(struct t *t, const char *name)
{
	cap_on(t);
	int rc = plugin_host_load(t->hub->plugins, t->dir, name);
	cap_off(t);
	return rc;
}

static int install_load(struct t *t, const char *fixture)
{
	assert_int_equal(install(t, fixture, fixture, 0644), 0);
	return load(t, fixture);
}

static void start_all(struct t *t)
{
	cap_on(t);
	plugin_host_start_all(t->hub->plugins);
	cap_off(t);
}

static int permit_join(struct t *t, const char *plugin, unsigned seconds)
{
	char err[256];
	cap_on(t);
	int rc = hub_permit_join(t->hub, plugin, seconds, err, sizeof(err));
	cap_off(t);
	return rc;
}

static void mqtt_in(struct t *t, const char *topic, const char *payload)
{
	cap_on(t);
	plugin_host_mqtt_message(t->hub->plugins, topic, payload, strlen(payload), false);
	cap_off(t);
}

static int device_set(struct t *t, const char *id, const char *json, char *err, size_t err_len)
{
	struct device *dev = registry_by_id(t->hub->registry, id);
	cJSON *payload = cJSON_Parse(json);
	assert_non_null(dev);
	assert_non_null(payload);
	err[0] = '\0';
	cap_on(t);
	int rc = hub_device_set(t->hub, dev, payload, err, err_len);
	cap_off(t);
	cJSON_Delete(payload);
	return rc;
}

/* ---- device state ----------------------------------------------------------------- */

static const cJSON *attr(const struct t *t, const char *id, const char *name)
{
	const struct device *dev = registry_by_id(t->hub->registry, id);
	return dev ? cJSON_GetObjectItemCaseSensitive(dev->state, name) : NULL;
}

static double num(const struct t *t, const char *id, const char *name)
{
	const cJSON *v = attr(t, id, name);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *text(const struct t *t, const char *id, const char *name)
{
	const cJSON *v = attr(t, id, name);
	return cJSON_IsString(v) ? v->valuestring : "(absent)";
}

/* ---- driving the loop ---------------------------------------------------------------- */

typedef bool (*until_fn)(const struct t *t, const void *arg);

/* Run the loop until until() holds or max_ms pass; bounded in time and
 * turns. Returns whether until() held. */
static bool run_until(struct t *t, unsigned max_ms, until_fn until, const void *arg)
{
	uint64_t end = uv_hrtime() + (uint64_t)max_ms * 1000000u;
	bool reached = false;
	cap_on(t);
	for (unsigned turn = 0; turn < 2 * max_ms + 10; turn++) {
		if (until && (reached = until(t, arg)))
			break;
		if (uv_hrtime() >= end)
			break;
		uv_run(&t->loop, UV_RUN_NOWAIT);
		sleep_ms(1);
	}
	cap_off(t);
	return reached;
}

static void run_for(struct t *t, unsigned ms)
{
	run_until(t, ms, NULL, NULL);
}

struct want {
	const char *id, *attr;
	double at_least;
	const char *text;
};

static bool state_reached(const struct t *t, const void *arg)
{
	const struct want *w = arg;
	const cJSON *v = attr(t, w->id, w->attr);
	if (w->text)
		return cJSON_IsString(v) && strcmp(v->valuestring, w->text) == 0;
	return cJSON_IsNumber(v) && v->valuedouble >= w->at_least;
}

static bool wait_number(struct t *t, const char *id, const char *name, double at_least,
			unsigned max_ms)
{
	struct want w = {.id = id, .attr = name, .at_least = at_least};
	return run_until(t, max_ms, state_reached, &w);
}

static bool wait_text(struct t *t, const char *id, const char *name, const char *value,
		      unsigned max_ms)
{
	struct want w = {.id = id, .attr = name, .text = value};
	return run_until(t, max_ms, state_reached, &w);
}

static bool no_commands_pending(const struct t *t, const void *arg)
{
	(void)arg;
	return t->hub->n_commands == 0;
}

/* The one plugin in plugin_host_to_json, checked field by field. */
static void check_json(struct t *t, const char *name, const char *version, int abi_minor,
		       const char *phase)
{
	cJSON *a = plugin_host_to_json(t->hub->plugins);
	assert_non_null(a);
	assert_int_equal(cJSON_GetArraySize(a), 1);
	const cJSON *o = cJSON_GetArrayItem(a, 0);
	assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, name);
	assert_string_equal(cJSON_GetObjectItem(o, "version")->valuestring, version);
	char abi[16];
	snprintf(abi, sizeof(abi), "%d.%d", HEARTH_ABI_MAJOR, abi_minor);
	assert_string_equal(cJSON_GetObjectItem(o, "abi")->valuestring, abi);
	assert_string_equal(cJSON_GetObjectItem(o, "state")->valuestring, phase);
	cJSON_Delete(a);
}

/* ---- a good plugin, end to end ------------------------------------------------------- */

static void check_devices(struct t *t)
{
	struct device *lamp = registry_by_id(t->hub->registry, LAMP);
	struct device *sensor = registry_by_id(t->hub->registry, SENSOR);
	assert_non_null(lamp);
	assert_non_null(sensor);
	assert_int_equal(registry_count(t->hub->registry), 2);
	assert_non_null(lamp->owner);
	assert_ptr_equal(lamp->owner, sensor->owner);
	assert_string_equal(plugin_host_owner_name(lamp->owner), "fx_good");
	/* ABI 1.1 flags: fx_good says a repeated command does no harm */
	assert_true(plugin_host_retry_safe(lamp->owner));
	assert_false(plugin_host_retry_safe(NULL));
	assert_string_equal(lamp->plugin, "fx_good");
	assert_string_equal(lamp->name, "fx/lamp");
	assert_string_equal(lamp->model, "FX-L1");
	assert_string_equal(sensor->name, SENSOR);
	assert_int_equal(lamp->n_caps, 2);
	assert_string_equal(lamp->caps[1].name, "brightness");
	assert_int_equal(sensor->n_caps, 1);
	assert_true(lamp->available);
	assert_true(sensor->available);
	assert_string_equal(text(t, LAMP, "state"), "OFF");
	assert_true(num(t, SENSOR, "temperature") == 21.5);
}

/* Timer, work on the pool, fd watch: each reports back as state. */
static void check_loop_services(struct t *t)
{
	assert_true(wait_number(t, SENSOR, "ticks", 3, 2000));
	assert_true(wait_number(t, SENSOR, "work_result", 500500, 2000));
	assert_true(num(t, SENSOR, "work_status") == 0);
	assert_int_equal(write(t->pipe[1], "abc", 3), 3);
	assert_true(wait_number(t, SENSOR, "pipe_bytes", 3, 2000));
	assert_true(num(t, SENSOR, "pipe_bytes") == 3);
}

static void check_commands(struct t *t)
{
	char err[256];
	assert_int_equal(device_set(t, LAMP, "{\"state\":\"ON\",\"brightness\":80}", err,
				    sizeof(err)),
			 0);
	assert_true(wait_text(t, LAMP, "last_command", "state=ON brightness=80", 2000));
	/* finished later, through command_done */
	assert_true(run_until(t, 2000, no_commands_pending, NULL));
	assert_string_equal(text(t, LAMP, "state"), "ON");
	assert_true(num(t, LAMP, "brightness") == 80);
	assert_int_equal(t->hub->commands_sent, 1);

	/* TOGGLE is resolved by the hub before the plugin sees it */
	assert_int_equal(device_set(t, LAMP, "{\"state\":\"TOGGLE\"}", err, sizeof(err)), 0);
	assert_true(wait_text(t, LAMP, "last_command", "state=OFF", 2000));
	assert_true(run_until(t, 2000, no_commands_pending, NULL));

	/* refused by the plugin: the hub forgets the command */
	assert_int_equal(device_set(t, LAMP, "{\"brightness\":13}", err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "refused"));
	/* refused by the hub: the plugin never hears of it */
	assert_int_equal(device_set(t, LAMP, "{\"brightness\":300}", err, sizeof(err)), -EINVAL);
	assert_int_equal(device_set(t, LAMP, "{\"colour\":1}", err, sizeof(err)), -EINVAL);
	assert_int_equal(t->hub->n_commands, 0);
	run_for(t, 30);
	assert_string_equal(text(t, LAMP, "last_command"), "state=OFF");
}

static void test_good_plugin(void **state)
{
	struct t *t = *state;
	char sections[128], err[256];
	assert_int_equal(pipe2(t->pipe, O_CLOEXEC | O_NONBLOCK), 0);
	snprintf(sections, sizeof(sections), "[plugin.fx_good]\nwatch_fd = %d\n", t->pipe[0]);
	hub_up(t, sections);
	assert_int_equal(install_load(t, "fx_good"), 0);
	assert_true(logged(t, "loaded 'fx_good' 1.2.3"));
	assert_int_equal(plugin_host_count(t->hub->plugins), 1);
	check_json(t, "fx_good", "1.2.3", HEARTH_ABI_MINOR, "ready");
	check_devices(t);
	/* until start, nothing is sent to the plugin */
	assert_int_equal(device_set(t, LAMP, "{\"state\":\"ON\"}", err, sizeof(err)), -ENODEV);

	start_all(t);
	check_json(t, "fx_good", "1.2.3", HEARTH_ABI_MINOR, "running");
	check_loop_services(t);
	check_commands(t);

	/* MQTT messages reach the plugin by its own filters only */
	mqtt_in(t, "fx/other", "no");
	mqtt_in(t, "fx/ext/a", "hi");
	assert_string_equal(text(t, SENSOR, "mqtt_last"), "fx/ext/a:hi");
	mqtt_in(t, "hearthling/x", "yo");
	assert_string_equal(text(t, SENSOR, "mqtt_last"), "hearthling/x:yo");

	assert_int_equal(permit_join(t, "fx_good", 30), 1);
	assert_true(num(t, LAMP, "permit_join") == 30);
	assert_int_equal(permit_join(t, "fx_none", 30), -ENOENT);

	finish(t);
	assert_true(logged(t, "fx_good: stopped with 0 commands unfinished"));
}

/* ---- refusals ---------------------------------------------------------------------- */

static const struct refusal {
	const char *fixture; /* NULL: no such file; "-": a file that is not ELF */
	const char *as;
	int rc;
	const char *why;
} refusals[] = {
	{"fx_abi2", "fx_abi2", -EPROTO, "it supports none of the host's ABI versions"},
	{"fx_major", "fx_major", -EPROTO, "it speaks another ABI major version"},
	{"fx_minor", "fx_minor", -EPROTO, "it needs a newer ABI minor version than this hub has"},
	{"fx_small", "fx_small", -EPROTO, "its descriptor is too small"},
	{"fx_nosym", "fx_nosym", -ENOEXEC, "has no symbol hearth_plugin_entry"},
	{"fx_nocommand", "fx_nocommand", -EPROTO, "it lacks a required callback"},
	{"fx_badname", "fx_badname", -EPROTO, "its name differs from its file name"},
	{NULL, "Fx-Good", -EINVAL, "a name is 1..32 of [a-z0-9_]"},
	{NULL, "fx_absent", -ENOENT, "No such file or directory"},
	{"-", "fx_junk", -ENOEXEC, "fx_junk.so"},
};

static void install_refusal(struct t *t, const struct refusal *r)
{
	if (!r->fixture)
		return;
	if (strcmp(r->fixture, "-") != 0) {
		assert_int_equal(install(t, r->fixture, r->as, 0644), 0);
		return;
	}
	char path[PATH_LEN * 2];
	snprintf(path, sizeof(path), "%s/%s.so", t->dir, r->as);
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);
}

static void test_refusals(void **state)
{
	struct t *t = *state;
	char line[256];
	hub_up(t, NULL);
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *r = &refusals[i];
		install_refusal(t, r);
		int rc = load(t, r->as);
		if (rc != r->rc)
			fail_msg("%s: load returned %d, expected %d", r->as, rc, r->rc);
		snprintf(line, sizeof(line), "plugin '%s' refused", r->as);
		if (!logged(t, line) || !logged(t, r->why))
			fail_msg("%s: no log line \"%s: ... %s\"", r->as, line, r->why);
		assert_int_equal(plugin_host_count(t->hub->plugins), 0);
	}
	assert_int_equal(registry_count(t->hub->registry), 0);
	assert_false(logged(t, "init ran"));
	finish(t);
}

static void test_duplicate(void **state)
{
	struct t *t = *state;
	char err[256];
	hub_up(t, NULL);
	assert_int_equal(install_load(t, "fx_good"), 0);
	assert_int_equal(load(t, "fx_good"), -EEXIST);
	assert_true(logged(t, "plugin 'fx_good' refused: a plugin of that name is loaded already"));
	assert_int_equal(logged_count(t, "loaded 'fx_good'"), 1);
	assert_int_equal(plugin_host_count(t->hub->plugins), 1);
	assert_int_equal(registry_count(t->hub->registry), 2);
	/* the first one is untouched and works */
	start_all(t);
	check_json(t, "fx_good", "1.2.3", HEARTH_ABI_MINOR, "running");
	assert_int_equal(device_set(t, LAMP, "{\"state\":\"ON\"}", err, sizeof(err)), 0);
	assert_true(wait_text(t, LAMP, "last_command", "state=ON", 2000));
	assert_true(run_until(t, 2000, no_commands_pending, NULL));
	finish(t);
}

static void test_writable(void **state)
{
	struct t *t = *state;
	char file[PATH_LEN * 2], line[PATH_LEN * 3];
	snprintf(file, sizeof(file), "%s/fx_good.so", t->dir);
	hub_up(t, NULL);

	assert_int_equal(install(t, "fx_good", "fx_good", 0666), 0);
	assert_int_equal(load(t, "fx_good"), -EPERM);
	snprintf(line, sizeof(line), "plugin 'fx_good' refused: file %s is writable by group or others",
		 file);
	assert_true(logged(t, line));
	assert_int_equal(chmod(file, 0664), 0);
	assert_int_equal(load(t, "fx_good"), -EPERM);

	assert_int_equal(chmod(file, 0644), 0);
	assert_int_equal(chmod(t->dir, 0777), 0);
	assert_int_equal(load(t, "fx_good"), -EPERM);
	snprintf(line, sizeof(line),
		 "plugin 'fx_good' refused: folder %s is writable by group or others", t->dir);
	assert_true(logged(t, line));
	assert_int_equal(chmod(t->dir, 0775), 0);
	assert_int_equal(load(t, "fx_good"), -EPERM);
	assert_int_equal(plugin_host_count(t->hub->plugins), 0);
	assert_int_equal(registry_count(t->hub->registry), 0);

	/* a file owned by someone else is not trusted (only root can make one) */
	assert_int_equal(chmod(t->dir, 0755), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(file, 12345, 12345), 0);
		assert_int_equal(load(t, "fx_good"), -EPERM);
		snprintf(line, sizeof(line),
			 "plugin 'fx_good' refused: file %s belongs to uid 12345, neither root nor "
			 "the service's own user",
			 file);
		assert_true(logged(t, line));
		assert_int_equal(chown(file, 0, 0), 0);
	}

	/* the modes and the owner were the only reasons */
	assert_int_equal(load(t, "fx_good"), 0);
	assert_int_equal(plugin_host_count(t->hub->plugins), 1);
	finish(t);
}

/* ---- options, MQTT topics, secrets ----------------------------------------------------- */

static void test_options_unknown_key(void **state)
{
	struct t *t = *state;
	char line[PATH_LEN * 2];
	hub_up(t, "[plugin.fx_options]\ninterval = 250\ncolour = red\n");
	assert_int_equal(install_load(t, "fx_options"), -EINVAL);
	snprintf(line, sizeof(line),
		 "%s:%d: [plugin.fx_options] colour: unknown key; plugin 'fx_options' not loaded",
		 t->conf, CONF_HEADER_LINES + 3);
	assert_true(logged(t, line));
	assert_int_equal(plugin_host_count(t->hub->plugins), 0);
	/* refused before init: no device */
	assert_int_equal(registry_count(t->hub->registry), 0);
	finish(t);
}

static void test_options_known_key(void **state)
{
	struct t *t = *state;
	hub_up(t, "[plugin.fx_options]\ninterval = 250\n");
	assert_int_equal(install_load(t, "fx_options"), 0);
	assert_string_equal(text(t, "fx_options:dev", "interval"), "250");
	/* an ABI 1.0 plugin has no flags: its commands are never repeated */
	assert_false(plugin_host_retry_safe(registry_by_id(t->hub->registry, "fx_options:dev")->owner));
	finish(t);
}

static void test_mqtt_own_topics_refused(void **state)
{
	struct t *t = *state;
	hub_up(t, NULL);
	assert_int_equal(install_load(t, "fx_good"), 0);
	assert_true(num(t, SENSOR, "sub_ext") == 0);
	assert_true(num(t, SENSOR, "sub_sibling") == 0);
	assert_true(num(t, SENSOR, "sub_base") == -EPERM);
	assert_true(num(t, SENSOR, "sub_base_exact") == -EPERM);
	assert_true(num(t, SENSOR, "sub_all") == -EPERM);
	assert_true(num(t, SENSOR, "sub_plus") == -EPERM);
	assert_true(num(t, SENSOR, "pub_base") == -EPERM);
	assert_true(logged(t, "fx_good: may not subscribe to 'hearth/#'"));
	assert_true(logged(t, "fx_good: may not subscribe to '#'"));
	/* and nothing under the base topic is delivered to it */
	start_all(t);
	mqtt_in(t, "hearth/fx/lamp", "{}");
	assert_string_equal(text(t, SENSOR, "mqtt_last"), "(absent)");
	finish(t);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_secret_read(void **state)
{
	struct t *t = *state;
	char good[PATH_LEN], open_to_all[PATH_LEN], sections[4 * PATH_LEN];
	snprintf(good, sizeof(good), "%s/secret_ok", t->root);
	snprintf(open_to_all, sizeof(open_to_all), "%s/secret_open", t->root);
	write_file(good, "s3cret-token\n", 0600);
	write_file(open_to_all, "visible-token\n", 0644);
	snprintf(sections, sizeof(sections),
		 "[plugin.fx_secret]\ngood = %s\nopen = %s\nmissing = %s/nope\nexpect = s3cret-token\n",
		 good, open_to_all, t->root);
	hub_up(t, sections);
	assert_int_equal(install_load(t, "fx_secret"), 0);
	const char *dev = "fx_secret:dev";
	assert_true(num(t, dev, "good_rc") == 0);
	assert_true(cJSON_IsTrue(attr(t, dev, "good_match")));
	assert_true(num(t, dev, "good_len") == strlen("s3cret-token"));
	assert_true(num(t, dev, "open_rc") == -EACCES);
	assert_true(num(t, dev, "missing_rc") == -ENOENT);
	assert_true(num(t, dev, "small_rc") == -ENAMETOOLONG);
	assert_true(logged(t, "is accessible by group or others"));
	/* contents never reach the log */
	assert_false(logged(t, "s3cret-token"));
	assert_false(logged(t, "visible-token"));
	finish(t);
}

/* ---- a slow callback, a second thread ------------------------------------------------ */

static void test_slow_callback(void **state)
{
	struct t *t = *state;
	const char *needle = "fx_slow: timer callback blocked the loop for ";
	hub_up(t, NULL);
	assert_int_equal(install_load(t, "fx_slow"), 0);
	start_all(t);
	/* the first tick blocks 120 ms; the plugin keeps running after it */
	assert_true(wait_number(t, "fx_slow:dev", "ticks", 3, 3000));
	char *log = captured(t);
	const char *at = log ? strstr(log, needle) : NULL;
	unsigned long long ms = 0;
	int parsed = at ? sscanf(at + strlen(needle), "%llu ms", &ms) : 0;
	free(log);
	assert_int_equal(parsed, 1);
	assert_true(ms >= 100 && ms < 2000);
	assert_int_equal(logged_count(t, "blocked the loop"), 1);
	check_json(t, "fx_slow", "0.0.1", 0, "running");
	finish(t);
}

/* A plugin that crashes takes hearthd down (it runs inside it), but the last
 * line names it and its callback. In a child process: the crash is real. */
static void test_crash_names_plugin(void **state)
{
	struct t *t = *state;
	int out[2];
	assert_int_equal(pipe(out), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(out[0]);
		/* as in hearthd: cmocka's own handler (which would carry on with
		 * the tests) is not there to take over */
		signal(SIGSEGV, SIG_DFL);
		crash_report_install();
		hub_up(t, NULL);
		if (install_load(t, "fx_crash") != 0)
			_exit(3);
		start_all(t);
		struct device *dev = registry_by_id(t->hub->registry, "fx_crash:lamp");
		cJSON *on = cJSON_Parse("{\"state\":\"ON\"}");
		if (!dev || !on)
			_exit(5);
		/* not through device_set: its capture would take stderr */
		dup2(out[1], STDERR_FILENO);
		char err[256];
		hub_device_set(t->hub, dev, on, err, sizeof(err));
		_exit(4); /* not reached */
	}
	close(out[1]);
	char text[4096];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(text) - 1 && (n = read(out[0], text + len, sizeof(text) - 1 - len)) > 0)
		len += (size_t)n;
	text[len] = '\0';
	close(out[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	print_message("%s", text);
	assert_non_null(strstr(text, "hearthd: crash: SIGSEGV (invalid memory access) in plugin "
				     "'fx_crash', in its command callback"));
	/* then the default action: killed by the signal (a core when enabled);
	 * under make valgrind, memcheck reports the bad read and exits itself */
	if (getenv("VALGRIND") && WIFEXITED(status)) {
		assert_int_not_equal(WEXITSTATUS(status), 0);
	} else {
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGSEGV);
	}
}

static void test_post_from_thread(void **state)
{
	struct t *t = *state;
	const char *dev = "fx_thread:counter";
	hub_up(t, NULL);
	assert_int_equal(install_load(t, "fx_thread"), 0);
	start_all(t);
	assert_true(wait_number(t, dev, "count", 1000, 5000));
	run_for(t, 30);
	assert_true(num(t, dev, "count") == 1000);
	assert_true(num(t, dev, "wrong_thread") == 0);
	/* stop joins the thread, which saw post refused once the hub stopped */
	finish(t);
	assert_true(logged(t, "fx_thread: post after stop: ESHUTDOWN; post errors: 0"));
}

/* ---- rollback -------------------------------------------------------------------------- */

static void test_init_fails_half_way(void **state)
{
	struct t *t = *state;
	char sections[128], done_line[64];
	const char *dev_id = "fx_halfinit:dev";
	assert_int_equal(pipe2(t->pipe, O_CLOEXEC | O_NONBLOCK), 0);
	snprintf(sections, sizeof(sections), "[plugin.fx_halfinit]\nwatch_fd = %d\n", t->pipe[0]);
	hub_up(t, sections);
	assert_int_equal(install_load(t, "fx_halfinit"), -EIO);
	assert_true(logged(t, "fx_halfinit: init registered everything; failing now"));
	assert_true(logged(t, "plugin 'fx_halfinit' refused: its init failed"));

	/* the device stays known, as stored devices do, but nobody owns it */
	struct device *dev = registry_by_id(t->hub->registry, dev_id);
	assert_non_null(dev);
	assert_null(dev->owner);
	assert_false(dev->available);

	/* the 5 ms timer, the watch, the subscription and the post are gone */
	assert_int_equal(write(t->pipe[1], "x", 1), 1);
	mqtt_in(t, "fx/half/x", "1");
	run_for(t, 300);
	assert_false(logged(t, "timer fired"));
	assert_null(attr(t, dev_id, "ticks"));
	assert_false(logged(t, "watch fired"));
	assert_false(logged(t, "mqtt message on"));
	assert_false(logged(t, "post ran"));
	assert_false(logged(t, "start ran"));
	assert_false(logged(t, "stop ran"));
	assert_false(logged(t, "command reached"));

	/* the work item, already running, is finished once and as cancelled;
	 * then nothing of the plugin is left */
	size_t dones = logged_count(t, "fx_halfinit: work done with status");
	snprintf(done_line, sizeof(done_line), "fx_halfinit: work done with status %d", -ECANCELED);
	bool cancelled = logged(t, done_line);
	size_t left = plugin_host_count(t->hub->plugins);
	finish(t);
	assert_int_equal(dones, 1);
	if (!cancelled || left != 0)
		fail_msg("after the failed init, the running work's done() %s -ECANCELED and "
			 "%zu plugin(s) were still listed once it ended",
			 cancelled ? "got" : "did not get", left);
}

/* The same, but the hub stops while the refused plugin's work still runs:
 * the stop waits for it and the loop then closes clean. */
static void test_init_fails_then_stop_at_once(void **state)
{
	struct t *t = *state;
	char sections[128];
	bool stopped = false;
	assert_int_equal(pipe2(t->pipe, O_CLOEXEC | O_NONBLOCK), 0);
	snprintf(sections, sizeof(sections), "[plugin.fx_halfinit]\nwatch_fd = %d\n", t->pipe[0]);
	hub_up(t, sections);
	assert_int_equal(install_load(t, "fx_halfinit"), -EIO);
	int rc = hub_down(t, &stopped);
	assert_true(stopped);
	if (rc != 0)
		fail_msg("uv_loop_close: %s: the hub stopped before the refused plugin's work ended",
			 uv_strerror(rc));
	assert_int_equal(logged_count(t, "fx_halfinit: work done with status"), 1);
}

static void test_start_fails(void **state)
{
	struct t *t = *state;
	char err[256];
	const char *dev_id = "fx_startfail:dev";
	hub_up(t, NULL);
	assert_int_equal(install_load(t, "fx_startfail"), 0);
	assert_non_null(registry_by_id(t->hub->registry, dev_id)->owner);
	start_all(t);
	assert_true(logged(t, "fx_startfail: start registered everything; failing now"));
	assert_true(logged(t, "plugin 'fx_startfail' failed to start"));
	assert_true(logged(t, "fx_startfail: stop ran after the failed start"));
	assert_int_equal(plugin_host_count(t->hub->plugins), 0);

	struct device *dev = registry_by_id(t->hub->registry, dev_id);
	assert_non_null(dev);
	assert_null(dev->owner);
	assert_false(dev->available);
	assert_int_equal(device_set(t, dev_id, "{\"ticks\":1}", err, sizeof(err)), -ENODEV);

	/* its timer, subscription and post died with it */
	mqtt_in(t, "fx/startfail/x", "1");
	run_for(t, 200);
	assert_false(logged(t, "timer fired"));
	assert_false(logged(t, "mqtt message on"));
	assert_false(logged(t, "post ran"));
	assert_false(logged(t, "command reached"));
	finish(t);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_good_plugin),
		T(test_refusals),
		T(test_duplicate),
		T(test_writable),
		T(test_options_unknown_key),
		T(test_options_known_key),
		T(test_mqtt_own_topics_refused),
		T(test_secret_read),
		T(test_slow_callback),
		T(test_crash_names_plugin),
		T(test_post_from_thread),
		T(test_init_fails_half_way),
		T(test_init_fails_then_stop_at_once),
		T(test_start_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
