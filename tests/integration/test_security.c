/*
 * MQTT authentication, ACLs and TLS against a mosquitto configured at test
 * time (password file, ACL file, certificates made with the openssl CLI),
 * and secrets that never leave the hub: not in its log, not on MQTT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define SECRET "s3cret-Pa55-word-7f3a"

struct env {
	char dir[256];
	int tls_port;
	struct broker broker;
	struct client *spy; /* an admin reading everything */
};

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated
 * CA that must not be trusted. */
static void make_certs(const char *d)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	assert_int_equal(run("cd %s && openssl req -x509 %s -keyout ca.key -out ca.crt -days 2 "
			     "-subj /CN=hearth-test-ca >/dev/null 2>&1",
			     d, ec),
			 0);
	assert_int_equal(run("cd %s && openssl req %s -keyout server.key -out server.csr "
			     "-subj /CN=127.0.0.1 >/dev/null 2>&1 && "
			     "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
			     "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
			     "-out server.crt -days 2 -extfile ext.cnf >/dev/null 2>&1",
			     d, ec),
			 0);
	assert_int_equal(run("cd %s && openssl req -x509 %s -keyout other.key -out other.crt -days 2 "
			     "-subj /CN=someone-else >/dev/null 2>&1",
			     d, ec),
			 0);
	run("chmod 644 %s/*.key", d); /* mosquitto runs as another user when started as root */
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/hearth-sec-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	chmod(e->dir, 0755);
	make_certs(e->dir);
	assert_int_equal(run("cd %s && mosquitto_passwd -c -b pw hearth %s && "
			     "mosquitto_passwd -b pw admin adminpw && chmod 644 pw",
			     e->dir, SECRET),
			 0);
	char acl[300];
	snprintf(acl, sizeof(acl), "%s/acl", e->dir);
	write_file(acl,
		   "user hearth\ntopic readwrite #\n\n"
		   "user admin\ntopic read #\ntopic write hearth/+/set\n"
		   "topic write hearth/+/+/set\ntopic write hearth/bridge/request/#\n",
		   0644);
	e->tls_port = harness_free_port();
	char conf[2048];
	snprintf(conf, sizeof(conf),
		 "allow_anonymous false\npassword_file %s/pw\nacl_file %s\n"
		 "listener %d 127.0.0.1\ncafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n",
		 e->dir, acl, e->tls_port, e->dir, e->dir, e->dir);
	assert_int_equal(broker_start_with(&e->broker, conf), 0);
	e->spy = client_new_auth(e->broker.port, "admin", "adminpw");
	assert_non_null(e->spy);
	client_subscribe(e->spy, "#");
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	client_free(e->spy);
	broker_stop(&e->broker);
	run("rm -rf '%s'", e->dir);
	free(e);
	return 0;
}

static void secret_file(struct env *e, const char *name, const char *text, mode_t mode)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	write_file(path, text, mode);
}

static void test_right_password_works_and_secret_stays_home(void **state)
{
	struct env *e = *state;
	secret_file(e, "hearth.pw", SECRET "\n", 0600);
	char mqtt[600];
	snprintf(mqtt, sizeof(mqtt), "username = hearth\npassword_file = %s/hearth.pw\n", e->dir);
	struct hearthd h;
	assert_int_equal(hearthd_start_full(&h, e->broker.port, mqtt, "virtual", NULL), 0);
	char *p = client_wait(e->spy, "hearth/bridge/state", "online", 5000);
	assert_non_null(p);
	free(p);
	/* a command from a client the ACL allows to write /set */
	client_publish(e->spy, "hearth/virtual/light-1/set", "{\"state\":\"ON\"}", false);
	p = client_wait(e->spy, "hearth/virtual/light-1", "\"ON\"", 3000);
	assert_non_null(p);
	free(p);
	client_pump(e->spy, 300);
	assert_int_equal(hearthd_signal_wait(&h, SIGTERM, 3000), 0);
	assert_false(hearthd_log_contains(&h, SECRET));
	assert_true(client_count(e->spy, "hearth/bridge/devices") > 0);
	assert_int_equal(client_count_containing(e->spy, SECRET), 0);
	assert_int_equal(hearthd_cleanup(&h), 0);
}

static void test_wrong_password_retries(void **state)
{
	struct env *e = *state;
	secret_file(e, "wrong.pw", "not-the-password\n", 0600);
	char mqtt[600];
	snprintf(mqtt, sizeof(mqtt), "username = hearth\npassword_file = %s/wrong.pw\n", e->dir);
	struct hearthd h;
	/* READY comes even with the broker refusing us: the hub serves its plugins */
	assert_int_equal(hearthd_start_full(&h, e->broker.port, mqtt, "virtual", NULL), 0);
	sleep(2);
	assert_int_equal(waitpid(h.pid, NULL, WNOHANG), 0);
	assert_true(hearthd_log_contains(&h, "refused the connection"));
	assert_false(hearthd_log_contains(&h, "not-the-password"));
	assert_int_equal(hearthd_cleanup(&h), 0);
}

static void test_readable_password_file_refused(void **state)
{
	struct env *e = *state;
	secret_file(e, "open.pw", SECRET "\n", 0644);
	char mqtt[600];
	snprintf(mqtt, sizeof(mqtt), "username = hearth\npassword_file = %s/open.pw\n", e->dir);
	struct hearthd h;
	assert_int_not_equal(hearthd_start_full(&h, e->broker.port, mqtt, "virtual", NULL), 0);
	/* refused cleanly: exit status 1, not a crash */
	assert_int_equal(h.last_status, 1);
	h.last_status = 0;
	assert_true(hearthd_log_contains(&h, "accessible by group or others"));
	assert_false(hearthd_log_contains(&h, SECRET));
	hearthd_cleanup(&h);
}

static void test_tls(void **state)
{
	struct env *e = *state;
	secret_file(e, "hearth.pw", SECRET "\n", 0600);
	char mqtt[900];
	snprintf(mqtt, sizeof(mqtt),
		 "username = hearth\npassword_file = %s/hearth.pw\ntls_ca = %s/ca.crt\n", e->dir,
		 e->dir);
	struct hearthd h;
	assert_int_equal(hearthd_start_full(&h, e->tls_port, mqtt, "virtual", NULL), 0);
	char *p = client_wait(e->spy, "hearth/bridge/state", "online", 5000);
	assert_non_null(p);
	free(p);
	assert_int_equal(hearthd_cleanup(&h), 0);

	/* a certificate from a CA we do not trust is refused */
	snprintf(mqtt, sizeof(mqtt),
		 "username = hearth\npassword_file = %s/hearth.pw\ntls_ca = %s/other.crt\n", e->dir,
		 e->dir);
	client_clear(e->spy);
	assert_int_equal(hearthd_start_full(&h, e->tls_port, mqtt, "virtual", NULL), 0);
	sleep(1);
	assert_null(client_wait(e->spy, "hearth/bridge/state", "online", 500));
	assert_int_equal(waitpid(h.pid, NULL, WNOHANG), 0);
	assert_true(hearthd_log_contains(&h, "cannot connect"));
	assert_int_equal(hearthd_cleanup(&h), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_right_password_works_and_secret_stays_home, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readable_password_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
	};
	return cmocka_run_group_tests_name("integration: security", tests, NULL, NULL);
}
