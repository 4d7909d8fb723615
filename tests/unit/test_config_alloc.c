/*
 * config_load under allocation failure from libc itself.
 *
 * config_load allocates with libc alone (strdup, calloc, realloc, and
 * fopen's FILE and buffer), which no library hook reaches. This binary
 * defines malloc, calloc and realloc, passing each on to glibc's
 * __libc_malloc, __libc_calloc and __libc_realloc: the dynamic linker binds
 * every caller to these, libc's own internal callers (strdup, fopen)
 * included, and libc's free releases what they return. Armed, they fail the
 * Nth allocation after arming: that one only ("once"), or that one and
 * every later one ("from N").
 *
 * Each sweep loads one file for N = 1, 2, ... until a load completes
 * without reaching the Nth allocation, and checks every time:
 *  - the load succeeds with exactly the settings a load without faults
 *    gives, or fails with -ENOMEM, a message naming the file and saying so,
 *    and *out untouched;
 *  - every block allocated during the load was freed by the end of it (or
 *    by config_free): nothing leaked on any failure path. free is defined
 *    too, to strike blocks off.
 *
 * Where malloc is replaced already (a sanitized build, valgrind's memcheck
 * under make valgrind) faults cannot be injected this way: a probe finds
 * out and the tests are skipped there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* -- the counting allocator ------------------------------------------------ */

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);

#define LIVE_MAX 4096 /* blocks tracked at once; a load makes a few hundred */

static struct {
	bool armed;
	bool from_n; /* fail the Nth and every later one, not the Nth only */
	unsigned long n;
	unsigned long seen;   /* allocations since arming */
	unsigned long failed; /* of them, failed */
	bool tracking;	      /* blocks are being recorded */
	bool overflow;	      /* more than LIVE_MAX were live */
	void *live[LIVE_MAX];
	size_t n_live;
} fault;

static bool fail_now(void)
{
	if (!fault.armed)
		return false;
	unsigned long i = ++fault.seen;
	bool fail = fault.from_n ? i >= fault.n : i == fault.n;
	fault.failed += fail;
	return fail;
}

static void track(void *p)
{
	if (!fault.tracking || !p)
		return;
	if (fault.n_live == LIVE_MAX)
		fault.overflow = true;
	else
		fault.live[fault.n_live++] = p;
}

static void untrack(void *p)
{
	if (!fault.tracking || !p)
		return;
	for (size_t i = fault.n_live; i-- > 0;)
		if (fault.live[i] == p) {
			fault.live[i] = fault.live[--fault.n_live];
			return;
		}
}

void *malloc(size_t size)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __libc_malloc(size);
	track(p);
	return p;
}

void *calloc(size_t n, size_t size)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = __libc_calloc(n, size);
	track(p);
	return p;
}

void *realloc(void *p, size_t size)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	void *q = __libc_realloc(p, size);
	if (q || !size)
		untrack(p);
	track(q);
	return q;
}

void free(void *p)
{
	untrack(p);
	__libc_free(p);
}

static void track_start(void)
{
	fault.n_live = 0;
	fault.overflow = false;
	fault.tracking = true;
}

/* Blocks still live since track_start. */
static size_t track_stop(void)
{
	fault.tracking = false;
	assert_false(fault.overflow);
	return fault.n_live;
}

static void arm(unsigned long n, bool from_n)
{
	fault.n = n;
	fault.from_n = from_n;
	fault.seen = 0;
	fault.failed = 0;
	fault.armed = true;
}

static void disarm(void)
{
	fault.armed = false;
}

/* -- files and comparison ------------------------------------------------- */

/* Every section, lists, plugin sections with several keys. */
static const char conf_text[] =
	"# a full configuration\n"
	"[mqtt]\nhost = broker.lan\nport = 8883\nbase_topic = home/hearth\nclient_id = hub-1\n"
	"username = hearth\npassword_file = /etc/hearth/mqtt.secret\n"
	"tls_ca = /etc/hearth/ca.pem\ntls_cert = /etc/hearth/c.pem\ntls_key = /etc/hearth/k.pem\n"
	"keepalive = 60\nqos = 1\ncommand_timeout_ms = 5000\ncommand_max_age_s = 120\n"
	"[store]\npath = /var/lib/hearth/h.db\ncommit_interval_ms = 2000\nhistory_days = 7\n"
	"backup_dir = /var/lib/hearth/b\n"
	"[plugins]\ndir = /usr/lib/hearth/plugins\nenable = virtual, zigbee, ble, wifi, mqttdev\n"
	"[rules]\ndir = /etc/hearth/rules\n"
	"[location]\nlatitude = 52.3676\nlongitude = 4.9041\ntimezone = Europe/Amsterdam\n"
	"[log]\nlevel = debug\nformat = json\n"
	"[homeassistant]\nenabled = false\ndiscovery_prefix = ha\n"
	"[web]\nenabled = true\nlisten = 0.0.0.0:8443\nroot = /usr/share/hearth/web\n"
	"password_file = /etc/hearth/web.secret\ntls_cert = /etc/hearth/w.pem\n"
	"tls_key = /etc/hearth/wk.pem\n"
	"[plugin.virtual]\ndevices = light:2, plug:1, motion:1\ninterval_ms = 500\n"
	"[plugin.zigbee]\nbase_topic = zigbee2mqtt\n"
	"[plugin.wifi]\ndiscovery = false\ndevices = /etc/hearth/wifi.json\n";

/* A file with a mistake on its last line: the error path after most of
 * the allocations. */
static const char bad_text[] = "[mqtt]\nhost = broker.lan\n[plugins]\nenable = a, b\n"
			       "[plugin.x]\nk = v\n[store]\ncommit_interval_ms = soon\n";

static char dir[] = "/tmp/hearth-config-alloc-XXXXXX";
static char good_path[64], bad_path[64];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(good_path, sizeof(good_path), "%s/good.conf", dir);
	snprintf(bad_path, sizeof(bad_path), "%s/bad.conf", dir);
	write_file(good_path, conf_text);
	write_file(bad_path, bad_text);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(good_path);
	unlink(bad_path);
	rmdir(dir);
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Every field config_load sets, compared. */
static bool same_config(const struct hearth_config *a, const struct hearth_config *b)
{
	bool same = same_str(a->path, b->path) && same_str(a->mqtt.host, b->mqtt.host) &&
		    a->mqtt.port == b->mqtt.port &&
		    same_str(a->mqtt.base_topic, b->mqtt.base_topic) &&
		    same_str(a->mqtt.client_id, b->mqtt.client_id) &&
		    same_str(a->mqtt.username, b->mqtt.username) &&
		    same_str(a->mqtt.password_file, b->mqtt.password_file) &&
		    same_str(a->mqtt.tls_ca, b->mqtt.tls_ca) &&
		    same_str(a->mqtt.tls_cert, b->mqtt.tls_cert) &&
		    same_str(a->mqtt.tls_key, b->mqtt.tls_key) &&
		    a->mqtt.tls_insecure == b->mqtt.tls_insecure &&
		    a->mqtt.keepalive == b->mqtt.keepalive && a->mqtt.qos == b->mqtt.qos &&
		    a->mqtt.command_timeout_ms == b->mqtt.command_timeout_ms &&
		    a->mqtt.command_max_age_s == b->mqtt.command_max_age_s &&
		    same_str(a->store.path, b->store.path) &&
		    a->store.commit_interval_ms == b->store.commit_interval_ms &&
		    a->store.history_days == b->store.history_days &&
		    same_str(a->store.backup_dir, b->store.backup_dir) &&
		    same_str(a->plugins.dir, b->plugins.dir) &&
		    a->plugins.n_enable == b->plugins.n_enable && same_str(a->rules.dir, b->rules.dir) &&
		    a->location.set == b->location.set &&
		    a->location.latitude == b->location.latitude &&
		    a->location.longitude == b->location.longitude &&
		    same_str(a->location.timezone, b->location.timezone) &&
		    a->log.level == b->log.level && a->log.json == b->log.json &&
		    a->homeassistant.enabled == b->homeassistant.enabled &&
		    same_str(a->homeassistant.discovery_prefix, b->homeassistant.discovery_prefix) &&
		    a->web.enabled == b->web.enabled && same_str(a->web.listen, b->web.listen) &&
		    same_str(a->web.root, b->web.root) &&
		    same_str(a->web.password_file, b->web.password_file) &&
		    same_str(a->web.tls_cert, b->web.tls_cert) &&
		    same_str(a->web.tls_key, b->web.tls_key) && a->n_sections == b->n_sections;
	for (size_t i = 0; same && i < a->plugins.n_enable; i++)
		same = same_str(a->plugins.enable[i], b->plugins.enable[i]);
	for (size_t i = 0; same && i < a->n_sections; i++) {
		const struct config_section *x = &a->sections[i], *y = &b->sections[i];
		same = same_str(x->name, y->name) && x->line == y->line && x->n_kv == y->n_kv;
		for (size_t k = 0; same && k < x->n_kv; k++)
			same = same_str(x->kv[k].key, y->kv[k].key) &&
			       same_str(x->kv[k].value, y->kv[k].value) &&
			       x->kv[k].line == y->kv[k].line;
	}
	return same;
}

/* -- the sweep ---------------------------------------------------------------- */

struct sweep {
	unsigned long tried;	 /* values of N */
	unsigned long failed;	 /* loads that returned -ENOMEM */
	unsigned long injected; /* allocations failed in all */
};

/* One load with the Nth allocation failing; true once N was not reached. */
static bool load_once(const char *path, const struct hearth_config *want, const char *want_err,
		      unsigned long n, bool from_n, struct sweep *sw)
{
	struct hearth_config *sentinel = (struct hearth_config *)&fault, *c = sentinel;
	char err[512] = "";
	track_start();
	arm(n, from_n);
	int rc = config_load(path, &c, err, sizeof(err));
	disarm();
	sw->tried++;
	sw->injected += fault.failed;
	if (!fault.failed) {
		/* every allocation was made: the plain outcome */
		if (want) {
			assert_int_equal(rc, 0);
			assert_true(same_config(c, want));
			config_free(c);
		} else {
			assert_int_equal(rc, -EINVAL);
			assert_string_equal(err, want_err);
			assert_ptr_equal(c, sentinel);
		}
		assert_int_equal(track_stop(), 0);
		return true;
	}
	if (rc == 0) {
		/* a failure something recovered from: the result must be whole */
		assert_non_null(want);
		assert_true(same_config(c, want));
		config_free(c);
	} else if (rc == -ENOMEM) {
		sw->failed++;
		assert_ptr_equal(c, sentinel);
		if (!strstr(err, path) ||
		    (!strstr(err, "out of memory") && !strstr(err, strerror(ENOMEM))))
			fail_msg("N=%lu: the message does not name the file and the lack of "
				 "memory: %s",
				 n, err);
	} else {
		/* a bad file still fails as bad when memory is short elsewhere */
		assert_null(want);
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err, want_err);
		assert_ptr_equal(c, sentinel);
	}
	size_t left = track_stop();
	if (left)
		fail_msg("N=%lu%s: %zu blocks allocated by the load are still live: a leak", n,
			 from_n ? "+" : "", left);
	return false;
}

static void sweep(const char *what, const char *path, bool good)
{
	struct hearth_config *want = NULL;
	char want_err[512] = "";
	int rc = config_load(path, &want, want_err, sizeof(want_err));
	assert_int_equal(rc, good ? 0 : -EINVAL);
	for (int mode = 0; mode < 2; mode++) {
		struct sweep sw = {0};
		unsigned long n = 1;
		while (!load_once(path, good ? want : NULL, want_err, n, mode == 1, &sw))
			assert_true(++n < 100000);
		print_message("%s, %s: N = 1..%lu, %lu loads failed with ENOMEM, %lu allocations "
			      "failed, no leak\n",
			      what, mode ? "from N on" : "Nth only", n, sw.failed, sw.injected);
		assert_true(n > 10); /* the sweep reached the loader's allocations */
		assert_true(sw.failed > 0);
	}
	config_free(want);
}

/* Faults reach callers only when this binary's malloc is the one used. */
static bool injectable(void)
{
	if (SANITIZED)
		return false;
	/* through a pointer: a direct call to malloc the compiler may elide */
	void *(*volatile alloc)(size_t) = malloc;
	arm(1, false);
	void *p = alloc(16);
	disarm();
	free(p);
	if (p)
		print_message("malloc is replaced already (valgrind?): skipped\n");
	return !p;
}

static void test_good_file(void **state)
{
	(void)state;
	if (!injectable())
		skip();
	sweep("a full configuration", good_path, true);
}

static void test_bad_file(void **state)
{
	(void)state;
	if (!injectable())
		skip();
	sweep("a configuration with a mistake", bad_path, false);
}

/* The allocator this binary defines is the one libc's own callers use. */
static void test_hook_reaches_libc(void **state)
{
	(void)state;
	if (!injectable())
		skip();
	arm(1, true);
	char *s = strdup("x");
	FILE *f = fopen(good_path, "re");
	disarm();
	assert_null(s);
	if (f)
		fclose(f);
	assert_null(f);
	assert_true(fault.failed >= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hook_reaches_libc),
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_bad_file),
	};
	return cmocka_run_group_tests_name("config_load under allocation failure", tests, setup,
					   teardown);
}
