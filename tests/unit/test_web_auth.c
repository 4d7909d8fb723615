/*
 * Unit tests for web_auth.c: listen addresses, the password file and its
 * crypt(3) hash, session tokens and their expiry, the session cookie, the
 * failed-login limiter, and the Host and Origin checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "web_auth.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* openssl passwd -6 -salt e2e.salt.hearth 'correct horse battery' */
static const char sha512_hash[] = "$6$e2e.salt.hearth$grmVBo5mvMiLVik60MMonOdObecREzKvd/fHesxZcLPb"
				  "jnYTU1i18LFP4dv1EsHAybsgfLKFpWkzYiu7/F1Xf0";

/* -- listen ------------------------------------------------------------------ */

static void test_listen_parse(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int rc;
		const char *host;
		int port;
		int ipv6, loopback;
	} cases[] = {
		{"127.0.0.1:8080", 0, "127.0.0.1", 8080, 0, 1},
		{"127.8.9.10:1", 0, "127.8.9.10", 1, 0, 1},
		{"0.0.0.0:8080", 0, "0.0.0.0", 8080, 0, 0},
		{"192.168.1.5:80", 0, "192.168.1.5", 80, 0, 0},
		{"localhost:8080", 0, "127.0.0.1", 8080, 0, 1},
		{"[::1]:8443", 0, "::1", 8443, 1, 1},
		{"[::]:8080", 0, "::", 8080, 1, 0},
		{"127.0.0.1:0", 0, "127.0.0.1", 0, 0, 1},
		{"127.0.0.1:65535", 0, "127.0.0.1", 65535, 0, 1},
		{"127.0.0.1:65536", -EINVAL, NULL, 0, 0, 0},
		{"127.0.0.1:-1", -EINVAL, NULL, 0, 0, 0},
		{"127.0.0.1:+80", -EINVAL, NULL, 0, 0, 0},
		{"127.0.0.1:", -EINVAL, NULL, 0, 0, 0},
		{"127.0.0.1", -EINVAL, NULL, 0, 0, 0},
		{":8080", -EINVAL, NULL, 0, 0, 0},
		{"example.com:8080", -EINVAL, NULL, 0, 0, 0},
		{"[::1]8080", -EINVAL, NULL, 0, 0, 0},
		{"[::1:8080", -EINVAL, NULL, 0, 0, 0},
		{"::1:8080", -EINVAL, NULL, 0, 0, 0},
		{"256.0.0.1:80", -EINVAL, NULL, 0, 0, 0},
		{"127.0.0.1:80x", -EINVAL, NULL, 0, 0, 0},
		{"", -EINVAL, NULL, 0, 0, 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct web_listen l = {.port = 4242};
		int rc = web_listen_parse(cases[i].text, &l);
		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d, expected %d", cases[i].text, rc, cases[i].rc);
		if (rc) {
			assert_int_equal(l.port, 4242); /* untouched */
			continue;
		}
		assert_string_equal(l.host, cases[i].host);
		assert_int_equal(l.port, cases[i].port);
		assert_int_equal(l.ipv6, cases[i].ipv6);
		assert_int_equal(l.loopback, cases[i].loopback);
	}
	assert_int_equal(web_listen_parse(NULL, &(struct web_listen){0}), -EINVAL);
}

/* -- password file --------------------------------------------------------------- */

static char tmp_path[64];

static void write_file(const char *text, mode_t mode)
{
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/hearth-web-auth-XXXXXX");
	int fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_password_read(void **state)
{
	(void)state;
	char hash[WEB_HASH_MAX], err[512], line[600];
	snprintf(line, sizeof(line), "%s\n", sha512_hash);

	write_file(line, 0600);
	assert_int_equal(web_password_read(tmp_path, hash, sizeof(hash), err, sizeof(err)), 0);
	assert_string_equal(hash, sha512_hash);
	unlink(tmp_path);

	/* readable by others: refused, and the message says what to do */
	write_file(line, 0644);
	assert_int_equal(web_password_read(tmp_path, hash, sizeof(hash), err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "chmod 600"));
	unlink(tmp_path);

	/* a plain password is not a hash */
	write_file("correct horse battery\n", 0600);
	assert_int_equal(web_password_read(tmp_path, hash, sizeof(hash), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "mkpasswd"));
	unlink(tmp_path);

	write_file("", 0600);
	assert_int_equal(web_password_read(tmp_path, hash, sizeof(hash), err, sizeof(err)), -EINVAL);
	unlink(tmp_path);

	write_file("$nonsense$abc\n", 0600);
	assert_int_equal(web_password_read(tmp_path, hash, sizeof(hash), err, sizeof(err)), -EINVAL);
	unlink(tmp_path);

	/* a buffer too small for the hash */
	write_file(line, 0600);
	assert_int_equal(web_password_read(tmp_path, hash, 16, err, sizeof(err)), -EINVAL);
	unlink(tmp_path);

	assert_int_equal(web_password_read("/nonexistent/hearth.pw", hash, sizeof(hash), err,
					   sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/hearth.pw"));
}

static void test_password_verify(void **state)
{
	(void)state;
	assert_true(web_password_verify("correct horse battery", sha512_hash));
	assert_false(web_password_verify("correct horse batterY", sha512_hash));
	assert_false(web_password_verify("", sha512_hash));
	assert_false(web_password_verify("correct horse battery", "$6$other$abc"));
	assert_false(web_password_verify("x", "not a hash"));
}

static void test_password_hash(void **state)
{
	(void)state;
	char a[256], b[256];
	assert_int_equal(web_password_hash("correct horse battery", a, sizeof(a)), 0);
	assert_int_equal(web_password_hash("correct horse battery", b, sizeof(b)), 0);
	assert_memory_equal(a, "$y$", 3);
	assert_string_not_equal(a, b); /* a fresh salt each time */
	assert_true(web_password_verify("correct horse battery", a));
	assert_true(web_password_verify("correct horse battery", b));
	assert_false(web_password_verify("correct horse batterY", a));
	assert_int_equal(web_password_hash("", a, sizeof(a)), -EINVAL);
	assert_int_equal(web_password_hash("x", a, 8), -EIO); /* no room */
}

/* hearthd --hash-password: what it prints is what the dashboard accepts. */
static void test_hash_password_option(void **state)
{
	(void)state;
	const char *b = getenv("B") ? getenv("B") : "build";
	char cmd[512], line[256] = "";
	snprintf(cmd, sizeof(cmd), "%s/hearthd", b);
	if (access(cmd, X_OK) != 0) {
		fprintf(stderr, "%s is not built (make all): skipped\n", cmd);
		skip();
	}
	snprintf(cmd, sizeof(cmd), "printf 'open sesame\\n' | %s/hearthd --hash-password", b);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	line[strcspn(line, "\n")] = '\0';
	assert_true(web_password_verify("open sesame", line));
	assert_false(web_password_verify("open sesame\n", line));
	snprintf(cmd, sizeof(cmd), "printf '\\n' | %s/hearthd --hash-password 2>/dev/null", b);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_null(fgets(line, sizeof(line), p));
	assert_int_equal(WEXITSTATUS(pclose(p)), 1);
}

/* -- sessions ------------------------------------------------------------------------- */

static void test_sessions(void **state)
{
	(void)state;
	struct web_sessions *ss = calloc(1, sizeof(*ss));
	char a[WEB_TOKEN_LEN + 1], b[WEB_TOKEN_LEN + 1];
	int64_t t = 1000000;
	assert_non_null(ss);
	assert_int_equal(web_session_new(ss, t, a), 0);
	assert_int_equal(web_session_new(ss, t, b), 0);
	assert_int_equal(strlen(a), WEB_TOKEN_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), WEB_TOKEN_LEN);
	assert_string_not_equal(a, b);
	assert_true(web_session_check(ss, a, t + 1));
	assert_true(web_session_check(ss, b, t + 1));

	char wrong[WEB_TOKEN_LEN + 1];
	memcpy(wrong, a, sizeof(wrong));
	wrong[5] = wrong[5] == '0' ? '1' : '0';
	assert_false(web_session_check(ss, wrong, t + 2));
	assert_false(web_session_check(ss, "", t + 2));
	assert_false(web_session_check(ss, NULL, t + 2));
	assert_false(web_session_check(ss, "abc", t + 2));

	web_session_end(ss, a);
	assert_false(web_session_check(ss, a, t + 3));
	assert_true(web_session_check(ss, b, t + 3));
	free(ss);
}

static void test_session_expiry(void **state)
{
	(void)state;
	struct web_sessions *ss = calloc(1, sizeof(*ss));
	char tok[WEB_TOKEN_LEN + 1];
	int64_t t = 5000000;
	assert_int_equal(web_session_new(ss, t, tok), 0);
	/* used every six days it lives until its 30 days are up */
	for (int day = 6; day < 30; day += 6)
		assert_true(web_session_check(ss, tok, t + day * 86400000LL));
	assert_false(web_session_check(ss, tok, t + WEB_SESSION_LIFE_MS + 1));
	assert_int_equal(ss->n, 0);

	/* unused for over a week: gone */
	assert_int_equal(web_session_new(ss, t, tok), 0);
	assert_true(web_session_check(ss, tok, t + WEB_SESSION_IDLE_MS));
	assert_false(web_session_check(ss, tok, t + 2 * WEB_SESSION_IDLE_MS + 1));
	free(ss);
}

static void test_session_table_full(void **state)
{
	(void)state;
	struct web_sessions *ss = calloc(1, sizeof(*ss));
	char first[WEB_TOKEN_LEN + 1], second[WEB_TOKEN_LEN + 1], tok[WEB_TOKEN_LEN + 1];
	assert_int_equal(web_session_new(ss, 1, first), 0);
	assert_int_equal(web_session_new(ss, 2, second), 0);
	for (int i = 2; i < WEB_SESSIONS_MAX; i++)
		assert_int_equal(web_session_new(ss, 10 + i, tok), 0);
	assert_int_equal(ss->n, WEB_SESSIONS_MAX);
	/* the first is used again, so the second is now the longest unused */
	assert_true(web_session_check(ss, first, 1000));
	assert_int_equal(web_session_new(ss, 1001, tok), 0);
	assert_int_equal(ss->n, WEB_SESSIONS_MAX);
	assert_true(web_session_check(ss, first, 1002));
	assert_false(web_session_check(ss, second, 1002));
	assert_true(web_session_check(ss, tok, 1002));
	free(ss);
}

static void test_cookie_token(void **state)
{
	(void)state;
	char tok[WEB_TOKEN_LEN + 1], cookie[300];
	const char *t = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	snprintf(cookie, sizeof(cookie), "hearth_session=%s", t);
	assert_int_equal(web_cookie_token(cookie, tok), 0);
	assert_string_equal(tok, t);
	snprintf(cookie, sizeof(cookie), "theme=dark; hearth_session=%s; other=1", t);
	assert_int_equal(web_cookie_token(cookie, tok), 0);
	assert_string_equal(tok, t);
	snprintf(cookie, sizeof(cookie), "xhearth_session=%s", t);
	assert_int_equal(web_cookie_token(cookie, tok), -ENOENT);
	snprintf(cookie, sizeof(cookie), "hearth_session=%.63s", t);
	assert_int_equal(web_cookie_token(cookie, tok), -ENOENT);
	snprintf(cookie, sizeof(cookie), "hearth_session=%sff", t);
	assert_int_equal(web_cookie_token(cookie, tok), -ENOENT);
	snprintf(cookie, sizeof(cookie), "hearth_session=%.63sX", t);
	assert_int_equal(web_cookie_token(cookie, tok), -ENOENT);
	assert_int_equal(web_cookie_token("", tok), -ENOENT);
	assert_int_equal(web_cookie_token(NULL, tok), -ENOENT);
}

/* -- failed logins ---------------------------------------------------------------------- */

static void test_limiter_per_address(void **state)
{
	(void)state;
	struct web_limiter *l = calloc(1, sizeof(*l));
	int64_t t = 10000000;
	for (int i = 1; i < WEB_LIMIT_FREE_FAILURES; i++) {
		web_limiter_failed(l, "10.0.0.9", t);
		assert_int_equal(web_limiter_wait_ms(l, "10.0.0.9", t), 0);
	}
	/* then each failure doubles the wait: 1 s, 2 s, 4 s ... */
	int64_t expect = 1000;
	for (int i = 0; i < 6; i++, expect *= 2) {
		web_limiter_failed(l, "10.0.0.9", t);
		assert_int_equal(web_limiter_wait_ms(l, "10.0.0.9", t), expect);
		assert_int_equal(web_limiter_wait_ms(l, "10.0.0.10", t), 0);
		t += expect;
		assert_int_equal(web_limiter_wait_ms(l, "10.0.0.9", t), 0);
	}
	for (int i = 0; i < 30; i++)
		web_limiter_failed(l, "10.0.0.9", t += WEB_LIMIT_GLOBAL_WINDOW_MS);
	assert_int_equal(web_limiter_wait_ms(l, "10.0.0.9", t), WEB_LIMIT_MAX_WAIT_MS);
	/* a right password starts the count again */
	web_limiter_passed(l, "10.0.0.9");
	assert_int_equal(web_limiter_wait_ms(l, "10.0.0.9", t), 0);
	free(l);
}

static void test_limiter_forgets_and_global(void **state)
{
	(void)state;
	struct web_limiter *l = calloc(1, sizeof(*l));
	int64_t t = 50000000;
	for (int i = 0; i < WEB_LIMIT_FREE_FAILURES - 1; i++)
		web_limiter_failed(l, "a", t);
	/* an hour of quiet forgives the earlier failures */
	t += WEB_LIMIT_FORGET_MS + 1;
	web_limiter_failed(l, "a", t);
	assert_int_equal(web_limiter_wait_ms(l, "a", t), 0);

	/* many addresses together close logins for the rest of the window */
	t += WEB_LIMIT_GLOBAL_WINDOW_MS;
	char addr[32];
	for (int i = 0; i < WEB_LIMIT_GLOBAL_FAILURES; i++) {
		snprintf(addr, sizeof(addr), "10.1.0.%d", i);
		assert_int_equal(web_limiter_wait_ms(l, addr, t + i), 0);
		web_limiter_failed(l, addr, t + i);
	}
	assert_true(web_limiter_wait_ms(l, "192.0.2.1", t + 100) > 0);
	assert_true(web_limiter_wait_ms(l, "192.0.2.1", t + 100) <= WEB_LIMIT_GLOBAL_WINDOW_MS);
	assert_int_equal(web_limiter_wait_ms(l, "192.0.2.1", t + WEB_LIMIT_GLOBAL_WINDOW_MS), 0);
	free(l);
}

static void test_limiter_table_full(void **state)
{
	(void)state;
	struct web_limiter *l = calloc(1, sizeof(*l));
	char addr[32];
	int64_t t = 1;
	/* the address being guessed from keeps its count while others come and go */
	for (int i = 0; i < WEB_LIMIT_FREE_FAILURES; i++)
		web_limiter_failed(l, "target", t);
	for (int i = 0; i < 3 * WEB_LIMIT_ADDRS; i++) {
		snprintf(addr, sizeof(addr), "other-%d", i);
		web_limiter_failed(l, addr, t += WEB_LIMIT_GLOBAL_WINDOW_MS);
		web_limiter_failed(l, "target", t);
	}
	assert_true(l->n <= WEB_LIMIT_ADDRS);
	assert_true(web_limiter_wait_ms(l, "target", t) > 0);
	free(l);
}

/* -- Host and Origin ----------------------------------------------------------------------- */

static void test_host_and_origin(void **state)
{
	(void)state;
	assert_true(web_host_is_loopback("127.0.0.1:8080"));
	assert_true(web_host_is_loopback("127.0.0.1"));
	assert_true(web_host_is_loopback("127.1.2.3:80"));
	assert_true(web_host_is_loopback("localhost:8080"));
	assert_true(web_host_is_loopback("LOCALHOST"));
	assert_true(web_host_is_loopback("[::1]:8080"));
	assert_true(web_host_is_loopback("[::1]"));
	assert_false(web_host_is_loopback("evil.example:8080"));
	assert_false(web_host_is_loopback("localhost.evil.example:8080"));
	assert_false(web_host_is_loopback("127.0.0.1.evil.example"));
	assert_false(web_host_is_loopback("192.168.1.2:8080"));
	assert_false(web_host_is_loopback("[::2]:8080"));
	assert_false(web_host_is_loopback("[::1]x"));
	assert_false(web_host_is_loopback(""));
	assert_false(web_host_is_loopback(NULL));

	assert_true(web_origin_ok("http://127.0.0.1:8080", "127.0.0.1:8080", false));
	assert_true(web_origin_ok("HTTP://Hearth.Local:8080", "hearth.local:8080", false));
	assert_true(web_origin_ok("https://hearth.local", "hearth.local", true));
	assert_false(web_origin_ok("http://hearth.local", "hearth.local", true));
	assert_false(web_origin_ok("https://hearth.local", "hearth.local", false));
	assert_false(web_origin_ok("http://evil.example", "127.0.0.1:8080", false));
	assert_false(web_origin_ok("http://127.0.0.1:8081", "127.0.0.1:8080", false));
	assert_false(web_origin_ok("http://127.0.0.1:8080/", "127.0.0.1:8080", false));
	assert_false(web_origin_ok("null", "127.0.0.1:8080", false));
	assert_false(web_origin_ok("", "127.0.0.1:8080", false));
	assert_false(web_origin_ok(NULL, "127.0.0.1:8080", false));
	assert_false(web_origin_ok("http://", "", false));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_password_read),
		cmocka_unit_test(test_password_verify),
		cmocka_unit_test(test_password_hash),
		cmocka_unit_test(test_hash_password_option),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_session_expiry),
		cmocka_unit_test(test_session_table_full),
		cmocka_unit_test(test_cookie_token),
		cmocka_unit_test(test_limiter_per_address),
		cmocka_unit_test(test_limiter_forgets_and_global),
		cmocka_unit_test(test_limiter_table_full),
		cmocka_unit_test(test_host_and_origin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
