/*
 * The ble plugin, loaded with dlopen() as the hub loads it and driven
 * through a fake host: a replay file feeds advertisements, time is the
 * fake host's and moves only when a test moves it, and everything the
 * plugin hands the host (devices, capabilities, reports, events,
 * availability, log lines) is recorded for assertions.
 *
 * The plugin is $B/plugins/ble.so (B defaults to "build").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hearth/plugin.h>

#define MAX_ADDS 64
#define MAX_CAPS 64
#define MAX_REPORTS 256
#define MAX_ATTRS 16
#define MAX_EVENTS 64
#define MAX_AVAIL 64
#define MAX_LOGS 256
#define MAX_TIMERS 8
#define MAX_CONFIG 12
#define TEXT 96

/* ---- the fake host ---------------------------------------------------------- */

struct rec_cap {
	char name[TEXT];
	enum hearth_cap_type type;
	unsigned access;
	size_t n_values;
	char first_value[TEXT];
};

struct rec_add {
	char id[TEXT], name[TEXT], vendor[TEXT], model[TEXT];
	size_t n_caps;
	struct rec_cap caps[MAX_CAPS];
};

struct rec_attr {
	char name[TEXT];
	enum hearth_value_type type;
	double number;
	bool boolean;
	char text[TEXT];
};

struct rec_report {
	char id[TEXT];
	size_t n;
	struct rec_attr attrs[MAX_ATTRS];
};

struct fake_timer {
	bool used, armed;
	int64_t due_ms;
	uint64_t repeat_ms;
	hearth_timer_cb cb;
	void *user;
};

static struct fake {
	struct rec_add adds[MAX_ADDS];
	size_t n_adds;
	struct rec_report reports[MAX_REPORTS];
	size_t n_reports;
	struct rec_report events[MAX_EVENTS];
	size_t n_events;
	struct {
		char id[TEXT];
		bool online;
	} avail[MAX_AVAIL];
	size_t n_avail;
	struct {
		enum hearth_log_level level;
		char text[400];
	} logs[MAX_LOGS];
	size_t n_logs;
	struct fake_timer timers[MAX_TIMERS];
	const char *keys[MAX_CONFIG], *values[MAX_CONFIG];
	size_t n_config;
	int64_t now_ms;
} fk;

static int ctx_anchor;
#define CTX ((hearth_plugin_ctx *)&ctx_anchor)

static void text_copy(char *dst, const char *src)
{
	snprintf(dst, TEXT, "%s", src ? src : "");
}

static int f_device_add(hearth_plugin_ctx *ctx, const struct hearth_device_info *info)
{
	assert_ptr_equal(ctx, CTX);
	assert_true(fk.n_adds < MAX_ADDS);
	assert_true(info->n_caps <= MAX_CAPS);
	struct rec_add *a = &fk.adds[fk.n_adds++];
	memset(a, 0, sizeof(*a));
	text_copy(a->id, info->id);
	text_copy(a->name, info->name);
	text_copy(a->vendor, info->vendor);
	text_copy(a->model, info->model);
	a->n_caps = info->n_caps;
	for (size_t i = 0; i < info->n_caps; i++) {
		const struct hearth_capability *c = &info->caps[i];
		text_copy(a->caps[i].name, c->name);
		a->caps[i].type = c->type;
		a->caps[i].access = c->access;
		a->caps[i].n_values = c->n_values;
		if (c->n_values)
			text_copy(a->caps[i].first_value, c->values[0]);
		/* the host would refuse these */
		if (c->type == HEARTH_CAP_BINARY)
			assert_true(c->value_on.type == HEARTH_VALUE_BOOL &&
				    c->value_off.type == HEARTH_VALUE_BOOL);
		if (c->type == HEARTH_CAP_ENUM)
			assert_true(c->n_values > 0 && c->values);
	}
	return 0;
}

static void record_attrs(struct rec_report *r, const char *id, const struct hearth_attr *attrs,
			 size_t n)
{
	memset(r, 0, sizeof(*r));
	text_copy(r->id, id);
	assert_true(n <= MAX_ATTRS);
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		struct rec_attr *a = &r->attrs[i];
		text_copy(a->name, attrs[i].name);
		a->type = attrs[i].value.type;
		if (a->type == HEARTH_VALUE_NUMBER)
			a->number = attrs[i].value.u.number;
		else if (a->type == HEARTH_VALUE_BOOL)
			a->boolean = attrs[i].value.u.boolean;
		else
			text_copy(a->text, attrs[i].value.u.string);
	}
}

static int f_state_report(hearth_plugin_ctx *ctx, const char *id, const struct hearth_attr *attrs,
			  size_t n)
{
	assert_ptr_equal(ctx, CTX);
	assert_true(fk.n_reports < MAX_REPORTS);
	assert_true(n > 0);
	record_attrs(&fk.reports[fk.n_reports++], id, attrs, n);
	return 0;
}

static int f_event_report(hearth_plugin_ctx *ctx, const char *id, const char *type,
			  const struct hearth_attr *attrs, size_t n)
{
	assert_ptr_equal(ctx, CTX);
	assert_string_equal(type, "action");
	assert_true(fk.n_events < MAX_EVENTS);
	record_attrs(&fk.events[fk.n_events++], id, attrs, n);
	return 0;
}

static int f_availability_set(hearth_plugin_ctx *ctx, const char *id, bool online)
{
	assert_ptr_equal(ctx, CTX);
	assert_true(fk.n_avail < MAX_AVAIL);
	text_copy(fk.avail[fk.n_avail].id, id);
	fk.avail[fk.n_avail++].online = online;
	return 0;
}

static const char *f_config_get(hearth_plugin_ctx *ctx, const char *key)
{
	(void)ctx;
	for (size_t i = 0; i < fk.n_config; i++)
		if (strcmp(fk.keys[i], key) == 0)
			return fk.values[i];
	return NULL;
}

/* As the real host: refuse a file group or others may read. */
static int f_secret_read(hearth_plugin_ctx *ctx, const char *path, char *buf, size_t cap)
{
	(void)ctx;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0)
		rc = -errno;
	else if (st.st_mode & (S_IRWXG | S_IRWXO))
		rc = -EACCES;
	ssize_t n = rc ? 0 : read(fd, buf, cap);
	if (rc == 0 && (n < 0 || (size_t)n >= cap))
		rc = n < 0 ? -errno : -ENAMETOOLONG;
	if (rc == 0)
		buf[n] = '\0';
	close(fd);
	return rc;
}

static void f_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void f_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
{
	(void)ctx;
	if (fk.n_logs >= MAX_LOGS)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fk.logs[fk.n_logs].text, sizeof(fk.logs[0].text), fmt, ap);
	va_end(ap);
	fk.logs[fk.n_logs++].level = level;
}

static int f_timer_start(hearth_plugin_ctx *ctx, uint64_t timeout_ms, uint64_t repeat_ms,
			 hearth_timer_cb cb, void *user, hearth_timer **out)
{
	(void)ctx;
	for (size_t i = 0; i < MAX_TIMERS; i++) {
		struct fake_timer *t = &fk.timers[i];
		if (t->used)
			continue;
		*t = (struct fake_timer){true, true, fk.now_ms + (int64_t)timeout_ms, repeat_ms, cb,
					 user};
		*out = (hearth_timer *)t;
		return 0;
	}
	fail_msg("too many timers");
	return -ENOMEM;
}

static int f_timer_again(hearth_plugin_ctx *ctx, hearth_timer *timer, uint64_t timeout_ms,
			 uint64_t repeat_ms)
{
	(void)ctx;
	struct fake_timer *t = (struct fake_timer *)timer;
	assert_true(t->used);
	t->armed = true;
	t->due_ms = fk.now_ms + (int64_t)timeout_ms;
	t->repeat_ms = repeat_ms;
	return 0;
}

static void f_timer_stop(hearth_plugin_ctx *ctx, hearth_timer *timer)
{
	(void)ctx;
	if (timer)
		memset(timer, 0, sizeof(struct fake_timer));
}

static int f_fd_watch(hearth_plugin_ctx *ctx, int fd, unsigned events, hearth_fd_cb cb, void *user,
		      hearth_watch **out)
{
	(void)ctx, (void)fd, (void)events, (void)cb, (void)user, (void)out;
	return -ENOSYS;
}

static int f_fd_modify(hearth_plugin_ctx *ctx, hearth_watch *w, unsigned events)
{
	(void)ctx, (void)w, (void)events;
	return -ENOSYS;
}

static void f_fd_unwatch(hearth_plugin_ctx *ctx, hearth_watch *w)
{
	(void)ctx, (void)w;
}

static int64_t f_now_ms(hearth_plugin_ctx *ctx)
{
	(void)ctx;
	return fk.now_ms;
}

static const struct hearth_host host = {
	.size = sizeof(struct hearth_host),
	.abi_minor = HEARTH_ABI_MINOR,
	.device_add = f_device_add,
	.state_report = f_state_report,
	.event_report = f_event_report,
	.availability_set = f_availability_set,
	.config_get = f_config_get,
	.secret_read = f_secret_read,
	.log = f_log,
	.timer_start = f_timer_start,
	.timer_again = f_timer_again,
	.timer_stop = f_timer_stop,
	.fd_watch = f_fd_watch,
	.fd_modify = f_fd_modify,
	.fd_unwatch = f_fd_unwatch,
	.now_ms = f_now_ms,
};

/* Move time on by ms, firing every timer that falls due, in order. */
static void advance(int64_t ms)
{
	int64_t until = fk.now_ms + ms;
	for (int guard = 0; guard < 100000; guard++) {
		struct fake_timer *next = NULL;
		for (size_t i = 0; i < MAX_TIMERS; i++) {
			struct fake_timer *t = &fk.timers[i];
			if (t->used && t->armed && t->due_ms <= until &&
			    (!next || t->due_ms < next->due_ms))
				next = t;
		}
		if (!next)
			break;
		if (next->due_ms > fk.now_ms)
			fk.now_ms = next->due_ms;
		next->armed = next->repeat_ms != 0;
		next->due_ms += (int64_t)next->repeat_ms;
		next->cb(next->user);
	}
	fk.now_ms = until;
}

/* ---- helpers ------------------------------------------------------------------------- */

static const struct hearth_plugin *plugin;
static char dir[64];

static void config(const char *key, const char *value)
{
	assert_true(fk.n_config < MAX_CONFIG);
	fk.keys[fk.n_config] = key;
	fk.values[fk.n_config++] = value;
}

static size_t logs_with(enum hearth_log_level level, const char *text)
{
	size_t n = 0;
	for (size_t i = 0; i < fk.n_logs; i++)
		n += fk.logs[i].level == level && strstr(fk.logs[i].text, text);
	return n;
}

static const struct rec_add *last_add(const char *id)
{
	for (size_t i = fk.n_adds; i-- > 0;)
		if (strcmp(fk.adds[i].id, id) == 0)
			return &fk.adds[i];
	return NULL;
}

static size_t adds_of(const char *id)
{
	size_t n = 0;
	for (size_t i = 0; i < fk.n_adds; i++)
		n += strcmp(fk.adds[i].id, id) == 0;
	return n;
}

static const struct rec_cap *cap_of(const struct rec_add *a, const char *name)
{
	for (size_t i = 0; a && i < a->n_caps; i++)
		if (strcmp(a->caps[i].name, name) == 0)
			return &a->caps[i];
	return NULL;
}

static size_t reports_of(const char *id)
{
	size_t n = 0;
	for (size_t i = 0; i < fk.n_reports; i++)
		n += strcmp(fk.reports[i].id, id) == 0;
	return n;
}

static const struct rec_attr *attr_in(const struct rec_report *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->attrs[i].name, name) == 0)
			return &r->attrs[i];
	return NULL;
}

/* The last value of attr reported for id, or NULL. */
static const struct rec_attr *last_value(const char *id, const char *name)
{
	for (size_t i = fk.n_reports; i-- > 0;) {
		if (strcmp(fk.reports[i].id, id) != 0)
			continue;
		const struct rec_attr *a = attr_in(&fk.reports[i], name);
		if (a)
			return a;
	}
	return NULL;
}

/* A replay line: "<ts> <mac> <rssi> 020106 + <AD of the service data>". */
static void line(FILE *f, int64_t ts, const char *mac, int rssi, unsigned uuid, const char *sd)
{
	fprintf(f, "%lld %s %d 020106%02zx16%02x%02x%s\n", (long long)ts, mac, rssi,
		strlen(sd) / 2 + 3, uuid & 0xff, uuid >> 8, sd);
}

static char replay_path[128], keys_path[128], source[160];

static FILE *replay_open(void)
{
	snprintf(replay_path, sizeof(replay_path), "%s/test.replay", dir);
	FILE *f = fopen(replay_path, "w");
	assert_non_null(f);
	snprintf(source, sizeof(source), "replay:%s", replay_path);
	config("source", source);
	return f;
}

static void keys_write(const char *text, mode_t mode)
{
	snprintf(keys_path, sizeof(keys_path), "%s/keys", dir);
	FILE *f = fopen(keys_path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(keys_path, mode), 0);
	config("keys_file", keys_path);
}

static void *state;

static int start(void)
{
	int rc = plugin->init(&host, CTX, &state);
	if (rc)
		return rc;
	rc = plugin->start(state);
	assert_int_equal(rc, 0);
	return 0;
}

static int setup(void **unused)
{
	(void)unused;
	memset(&fk, 0, sizeof(fk));
	fk.now_ms = 1700000000000;
	state = NULL;
	snprintf(dir, sizeof(dir), "/tmp/hearth-bleplug-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **unused)
{
	(void)unused;
	if (state)
		plugin->stop(state);
	state = NULL;
	unlink(replay_path);
	unlink(keys_path);
	rmdir(dir);
	return 0;
}

#define SHELLY "ble:3c:2e:f5:aa:bb:01"
#define SHELLY_MAC "3c:2e:f5:aa:bb:01"

/* ---- tests ------------------------------------------------------------------------ */

/* Repeats of a packet id are not reported again; a new id is, with only
 * what changed; a button press sent three times is one event. */
static void test_repeats_and_changes(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	int64_t t = 1000;
	line(f, t, SHELLY_MAC, -60, 0xfcd2, "44004e01642e3f45df00");
	line(f, t += 100, SHELLY_MAC, -61, 0xfcd2, "44004e01642e3f45df00");
	line(f, t += 100, SHELLY_MAC, -62, 0xfcd2, "44004e01642e3f45df00");
	line(f, t += 100, SHELLY_MAC, -60, 0xfcd2, "44004f01642e3f45e200"); /* only temp moved */
	for (int i = 0; i < 3; i++)
		line(f, t += 100, SHELLY_MAC, -60, 0xfcd2, "44005001643a02");
	fclose(f);
	config("replay_speed", "0");
	assert_int_equal(start(), 0);
	advance(10);
	assert_int_equal(logs_with(HEARTH_LOG_INFO, "finished: 7 advertisements, 0 bad"), 1);

	const struct rec_add *a = last_add(SHELLY);
	assert_non_null(a);
	assert_int_equal(adds_of(SHELLY), 2); /* grew by "action" at the press */
	for (size_t i = 0; i < a->n_caps; i++)
		assert_int_equal(a->caps[i].access, HEARTH_ACCESS_PUBLISHED);
	assert_non_null(cap_of(a, "temperature"));
	assert_non_null(cap_of(a, "rssi"));
	assert_null(cap_of(a, "packet_id"));
	const struct rec_cap *action = cap_of(a, "action");
	assert_non_null(action);
	assert_int_equal(action->type, HEARTH_CAP_ENUM);
	assert_int_equal(action->n_values, 7);

	assert_int_equal(reports_of(SHELLY), 3);
	const struct rec_report *r = &fk.reports[0];
	assert_non_null(attr_in(r, "temperature"));
	assert_non_null(attr_in(r, "humidity"));
	assert_non_null(attr_in(r, "battery"));
	assert_non_null(attr_in(r, "rssi"));
	r = &fk.reports[1]; /* only the temperature changed, RSSI not due */
	assert_int_equal(r->n, 1);
	assert_true(fabs(attr_in(r, "temperature")->number - 22.6) < 1e-9);
	r = &fk.reports[2];
	assert_string_equal(attr_in(r, "action")->text, "double_press");
	assert_int_equal(fk.n_events, 1);
	assert_string_equal(fk.events[0].attrs[0].text, "double_press");
}

/* A new object type grows the capability list; RSSI alone is reported at
 * most once a minute. */
static void test_growth_and_rssi(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	const char *mac = "a4:c1:38:00:00:01";
	line(f, 0, mac, -70, 0xfcd2, "400001" "02c409");
	line(f, 1000, mac, -71, 0xfcd2, "400002" "02c409" "05138a14");
	line(f, 2000, mac, -72, 0xfcd2, "400002" "02c409" "05138a14");  /* repeat */
	line(f, 30000, mac, -73, 0xfcd2, "400002" "02c409" "05138a14"); /* repeat */
	line(f, 62000, mac, -74, 0xfcd2, "400002" "02c409" "05138a14"); /* repeat, RSSI due */
	fclose(f);
	assert_int_equal(start(), 0);
	advance(1);
	const char *id = "ble:a4:c1:38:00:00:01";
	assert_int_equal(adds_of(id), 1);
	assert_null(cap_of(last_add(id), "illuminance"));
	advance(1000);
	assert_int_equal(adds_of(id), 2);
	assert_non_null(cap_of(last_add(id), "illuminance"));
	assert_int_equal(reports_of(id), 2);
	assert_null(attr_in(&fk.reports[1], "temperature")); /* unchanged */
	assert_non_null(attr_in(&fk.reports[1], "illuminance"));
	assert_true(fabs(attr_in(&fk.reports[1], "rssi")->number + 71) < 1e-9);
	advance(29000);
	assert_int_equal(reports_of(id), 2);
	advance(32000);
	assert_int_equal(reports_of(id), 3);
	assert_int_equal(fk.reports[2].n, 1);
	assert_true(fabs(attr_in(&fk.reports[2], "rssi")->number + 74) < 1e-9);
	assert_int_equal(adds_of(id), 2);
}

/* Silence past offline_after_s: offline; the next packet: online again. A
 * trigger-based device is never marked offline. */
static void test_availability(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	line(f, 0, "a4:c1:38:00:00:02", -70, 0xfcd2, "400001" "02c409");
	line(f, 0, SHELLY_MAC, -60, 0xfcd2, "44000101643a01");
	line(f, 5000, "a4:c1:38:00:00:02", -70, 0xfcd2, "400002" "02c409");
	fclose(f);
	config("offline_after_s", "2");
	assert_int_equal(start(), 0);
	advance(1);
	assert_int_equal(fk.n_avail, 0);
	advance(3000);
	assert_int_equal(fk.n_avail, 1);
	assert_string_equal(fk.avail[0].id, "ble:a4:c1:38:00:00:02");
	assert_false(fk.avail[0].online);
	assert_int_equal(logs_with(HEARTH_LOG_INFO, "silent for"), 1);
	advance(2000);
	assert_int_equal(fk.n_avail, 2);
	assert_true(fk.avail[1].online);
	advance(60000);
	for (size_t i = 0; i < fk.n_avail; i++)
		assert_string_not_equal(fk.avail[i].id, SHELLY);
}

/* Keys: encrypted devices decode; a wrong key is one error however many
 * packets; plain data from a MAC with a key is refused; no key is info. */
static void test_keys(void **unused)
{
	(void)unused;
	keys_write("# keys\n"
		   "54:48:e6:8f:80:a5 231d39c1d7cc1ab1aee224cd096db932\n"
		   "54:ef:44:e0:c4:0f 814aac74c4f17b6c1581e1ab87816b99  # wrong\n"
		   "a4:c1:38:00:00:03 00112233445566778899aabbccddeeff\n",
		   0600);
	FILE *f = replay_open();
	line(f, 0, "54:48:e6:8f:80:a5", -60, 0xfcd2, "41e445f3c9962b332211006c7c4519");
	for (int i = 0; i < 4; i++)
		line(f, 10 * i, "54:ef:44:e0:c4:0f", -60, 0xfe95,
		     "58598d0a170fc4e044ef547cc27a5c03a1000000790df258");
	line(f, 50, "a4:c1:38:00:00:03", -60, 0xfcd2, "400001" "02c409");
	line(f, 60, "a4:c1:38:02:83:f4", -60, 0xfe95, "58585b0550f4830238c1a495ef58763c26000097e2abb5");
	line(f, 70, "a4:c1:38:02:83:f4", -60, 0xfe95, "58585b0550f4830238c1a495ef58763c26000097e2abb5");
	fclose(f);
	config("replay_speed", "0");
	assert_int_equal(start(), 0);
	advance(1);
	assert_true(fabs(last_value("ble:54:48:e6:8f:80:a5", "temperature")->number - 25.06) < 1e-9);
	assert_int_equal(logs_with(HEARTH_LOG_ERROR, "MIC check failed"), 1);
	assert_null(last_add("ble:54:ef:44:e0:c4:0f"));
	assert_int_equal(logs_with(HEARTH_LOG_WARNING, "although a bind key is set"), 1);
	assert_null(last_add("ble:a4:c1:38:00:00:03"));
	assert_int_equal(logs_with(HEARTH_LOG_INFO, "no bind key for it"), 1);
	assert_null(last_add("ble:a4:c1:38:02:83:f4"));
	for (size_t i = 0; i < fk.n_logs; i++)
		assert_null(strstr(fk.logs[i].text, "231d39c1"));
}

static void test_keys_file_readable_by_others(void **unused)
{
	(void)unused;
	keys_write("54:48:e6:8f:80:a5 231d39c1d7cc1ab1aee224cd096db932\n", 0640);
	FILE *f = replay_open();
	fclose(f);
	assert_int_equal(start(), -EACCES);
	assert_int_equal(logs_with(HEARTH_LOG_ERROR, "readable by group or others"), 1);
}

static void test_keys_file_bad_line(void **unused)
{
	(void)unused;
	keys_write("54:48:e6:8f:80:a5 231d39c1d7cc1ab1aee224cd096db932\n"
		   "54:48:e6:8f:80:a6 231d39c1d7cc1ab1aee224cd096db9\n",
		   0600);
	FILE *f = replay_open();
	fclose(f);
	assert_int_equal(start(), -EINVAL);
	assert_int_equal(logs_with(HEARTH_LOG_ERROR, "line 2: the key must be 32 hex digits"), 1);
	for (size_t i = 0; i < fk.n_logs; i++)
		assert_null(strstr(fk.logs[i].text, "231d39c1"));
}

/* auto_add = none: only listed devices, with their names. */
static void test_auto_add_none(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	line(f, 0, "a4:c1:38:00:00:04", -60, 0xfcd2, "400001" "02c409");
	line(f, 0, "a4:c1:38:00:00:05", -60, 0xfcd2, "400001" "02c409");
	fclose(f);
	config("auto_add", "none");
	config("devices", " A4:C1:38:00:00:05 = garden/thermometer , a4:c1:38:00:00:06");
	config("replay_speed", "0");
	assert_int_equal(start(), 0);
	advance(1);
	assert_int_equal(fk.n_adds, 1);
	assert_string_equal(fk.adds[0].id, "ble:a4:c1:38:00:00:05");
	assert_string_equal(fk.adds[0].name, "garden/thermometer");
}

/* auto_add = all: an advertiser nothing decodes is a device with an RSSI. */
static void test_auto_add_all(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	fprintf(f, "0 11:22:33:44:55:66 -77 0201060709546167676564\n");
	fclose(f);
	config("auto_add", "all");
	config("replay_speed", "0");
	assert_int_equal(start(), 0);
	advance(1);
	const struct rec_add *a = last_add("ble:11:22:33:44:55:66");
	assert_non_null(a);
	assert_string_equal(a->model, "Tagged");
	assert_int_equal(a->n_caps, 1);
	assert_string_equal(a->caps[0].name, "rssi");
	assert_true(fabs(last_value("ble:11:22:33:44:55:66", "rssi")->number + 77) < 1e-9);
}

/* Declared up front from the format or model: an atc1441 thermometer and
 * a MiBeacon MiFlora carry what their format can carry. */
static void test_declared_capabilities(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	line(f, 0, "a4:c1:38:d5:d4:98", -52, 0x181a, "a4c138d5d498ffd33e510b7b62");
	line(f, 0, "c4:7c:8d:6b:4f:f3", -80, 0xfe95, "7120980012f34f6b8d7cc40d041002c400");
	fclose(f);
	config("replay_speed", "0");
	assert_int_equal(start(), 0);
	advance(1);
	const struct rec_add *atc = last_add("ble:a4:c1:38:d5:d4:98");
	assert_non_null(atc);
	const char *want[] = {"temperature", "humidity", "battery", "voltage", "rssi"};
	for (size_t i = 0; i < 5; i++)
		assert_non_null(cap_of(atc, want[i]));
	const struct rec_add *flora = last_add("ble:c4:7c:8d:6b:4f:f3");
	assert_non_null(flora);
	assert_string_equal(flora->vendor, "Xiaomi");
	assert_string_equal(flora->model, "HHCCJCY01");
	const char *plant[] = {"temperature", "illuminance", "moisture", "conductivity", "battery"};
	for (size_t i = 0; i < 5; i++)
		assert_non_null(cap_of(flora, plant[i]));
}

/* A device that alternates formats (pvvx firmware can send its own and
 * BTHome) keeps its first identity and is not re-added each packet. A
 * button model declares its whole action list at first sight. */
static void test_identity_stable(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	const char *mac = "a4:c1:38:ee:c8:5c";
	line(f, 0, mac, -50, 0x181a, "5cc8ee38c1a4b008c314ca0a501405");
	line(f, 10, mac, -50, 0xfcd2, "400001" "0150" "02b008" "03c314" "0cca0a");
	line(f, 20, mac, -50, 0x181a, "5cc8ee38c1a4b108c314ca0a501505");
	line(f, 30, mac, -50, 0xfcd2, "400002" "0150" "02b108" "03c314" "0cca0a");
	line(f, 40, "a4:c1:38:07:bf:01", -50, 0xfe95, "5040bf070101bf0738c1a4011003000000");
	fclose(f);
	config("replay_speed", "0");
	assert_int_equal(start(), 0);
	advance(1);
	const char *id = "ble:a4:c1:38:ee:c8:5c";
	assert_int_equal(adds_of(id), 1);
	assert_string_equal(last_add(id)->model, "pvvx custom format");
	assert_true(fabs(last_value(id, "temperature")->number - 22.25) < 1e-9);
	const struct rec_add *sw = last_add("ble:a4:c1:38:07:bf:01");
	assert_non_null(sw);
	assert_string_equal(sw->vendor, "Yeelight");
	assert_int_equal(adds_of("ble:a4:c1:38:07:bf:01"), 1);
	const struct rec_cap *action = cap_of(sw, "action");
	assert_non_null(action);
	assert_int_equal(action->type, HEARTH_CAP_ENUM);
	assert_int_equal(action->n_values, 7);
	assert_string_equal(action->first_value, "press");
	assert_string_equal(last_value("ble:a4:c1:38:07:bf:01", "action")->text, "press");
}

static void test_command_refused(void **unused)
{
	(void)unused;
	FILE *f = replay_open();
	fclose(f);
	assert_int_equal(start(), 0);
	struct hearth_attr attr = {.name = "temperature", .value = HEARTH_NUMBER(20)};
	struct hearth_command cmd = {.id = 1, .device_id = "ble:a4:c1:38:00:00:01", .attrs = &attr,
				     .n_attrs = 1};
	assert_int_equal(plugin->command(state, &cmd), -ENOTSUP);
}

static void test_bad_config(void **unused)
{
	(void)unused;
	static const char *const cases[][3] = {
		{"source", "bluetooth", "expected bluez, hci or replay:PATH"},
		{"source", "replay:", "needs a path"},
		{"discovery", "maybe", "expected true or false"},
		{"offline_after_s", "-1", "whole number"},
		{"replay_speed", "fast", "number"},
		{"auto_add", "some", "expected known, none or all"},
		{"devices", "a4:c1:38", "expected aa:bb:cc:dd:ee:ff"},
		{"adapter", "hci", "is not hciN"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fk.n_config = 0;
		fk.n_logs = 0;
		config(cases[i][0], cases[i][1]);
		if (strcmp(cases[i][0], "adapter") == 0)
			config("source", "hci");
		else if (strcmp(cases[i][0], "source") != 0)
			config("source", "replay:/dev/null");
		assert_int_equal(plugin->init(&host, CTX, &state), -EINVAL);
		state = NULL;
		if (logs_with(HEARTH_LOG_ERROR, cases[i][2]) != 1)
			fail_msg("%s = %s: no error naming '%s'", cases[i][0], cases[i][1], cases[i][2]);
	}
}

/* Without an adapter (as here) the hci source says why and retries. */
static void test_hci_without_adapter(void **unused)
{
	(void)unused;
	config("source", "hci");
	config("adapter", "hci7");
	assert_int_equal(start(), 0);
	assert_true(logs_with(HEARTH_LOG_WARNING, "hci7:") == 1);
	size_t before = fk.n_logs;
	advance(5000);
	/* the retry happened, and was not logged loudly again */
	assert_true(fk.n_logs > before);
	assert_int_equal(logs_with(HEARTH_LOG_WARNING, "hci7:"), 1);
}

/* Every option is documented in docs/ble.md and config/hearth.conf, with
 * its default. */
static void test_options_documented(void **unused)
{
	(void)unused;
	static char doc[1 << 17], conf[1 << 16];
	const char *paths[] = {"docs/ble.md", "config/hearth.conf"};
	char *bufs[] = {doc, conf};
	size_t caps[] = {sizeof(doc), sizeof(conf)};
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(paths[i], "r");
		assert_non_null(f);
		size_t n = fread(bufs[i], 1, caps[i] - 1, f);
		bufs[i][n] = '\0';
		fclose(f);
	}
	const char *section = strstr(conf, "[plugin.ble]");
	assert_non_null(section);
	for (const struct hearth_option *o = plugin->options; o->key; o++) {
		char want[128];
		snprintf(want, sizeof(want), "| `%s` | ", o->key);
		if (!strstr(doc, want))
			fail_msg("docs/ble.md does not document %s", o->key);
		if (o->default_value)
			snprintf(want, sizeof(want), "# %s = %s\n", o->key, o->default_value);
		else
			snprintf(want, sizeof(want), "# %s =", o->key);
		if (!strstr(section, want))
			fail_msg("config/hearth.conf lacks '%s'", want);
	}
}

int main(void)
{
	const char *b = getenv("B");
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/plugins/ble.so", b && *b ? b : "build");
	void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!so) {
		fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
		return 1;
	}
	hearth_plugin_entry_fn entry = (hearth_plugin_entry_fn)dlsym(so, HEARTH_PLUGIN_ENTRY_SYMBOL);
	const uint32_t versions[] = {HEARTH_ABI_VERSION(HEARTH_ABI_MAJOR, HEARTH_ABI_MINOR)};
	plugin = entry ? entry(versions, 1) : NULL;
	if (!plugin) {
		fprintf(stderr, "%s: no descriptor\n", path);
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_repeats_and_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_growth_and_rssi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_availability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_file_readable_by_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_file_bad_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_add_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_add_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_declared_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hci_without_adapter, setup, teardown),
		cmocka_unit_test(test_options_documented),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	dlclose(so);
	return rc;
}
