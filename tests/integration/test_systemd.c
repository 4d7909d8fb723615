/*
 * hearthd under a stand-in for systemd: NOTIFY_SOCKET names a datagram
 * socket this test owns, as systemd's would. READY=1 must come once the hub
 * is up, WATCHDOG=1 at half of WATCHDOG_USEC for as long as it runs,
 * RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM; and no
 * WATCHDOG=1 at all when no watchdog was asked for.
 *
 * hearthd inherits the variables from this process (the harness forks and
 * execs), so they are set around hearthd_start() and removed after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WATCHDOG_USEC "200000" /* pings every 100 ms */
#define MSG_MAX 4096

struct notify {
	int fd;
	char dir[64];
	char path[108];
	int ready, watchdog, reloading, stopping;
	char status[256];
	char order[64]; /* first letters of the events in arrival: R W L S */
	size_t n_order;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify_open(struct notify *n)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "/tmp/hearth-notify-XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	snprintf(n->path, sizeof(n->path), "%s/notify", n->dir);
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(n->fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", n->path);
	assert_int_equal(bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", n->path, 1), 0);
}

static void notify_close(struct notify *n)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	close(n->fd);
	unlink(n->path);
	rmdir(n->dir);
}

static void note(struct notify *n, char what)
{
	if (n->n_order + 1 < sizeof(n->order))
		n->order[n->n_order++] = what;
}

/* One datagram: newline-separated VAR=value assignments. */
static void parse(struct notify *n, char *msg)
{
	for (char *save = NULL, *line = strtok_r(msg, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "READY=1") == 0) {
			n->ready++;
			note(n, 'R');
		} else if (strcmp(line, "WATCHDOG=1") == 0) {
			n->watchdog++;
			note(n, 'W');
		} else if (strcmp(line, "RELOADING=1") == 0) {
			n->reloading++;
			note(n, 'L');
		} else if (strcmp(line, "STOPPING=1") == 0) {
			n->stopping++;
			note(n, 'S');
		} else if (strncmp(line, "STATUS=", 7) == 0) {
			snprintf(n->status, sizeof(n->status), "%s", line + 7);
		}
	}
}

/* Read what arrives for ms, or until *counter reaches want (want 0: the
 * whole time). */
static void drain(struct notify *n, int ms, const int *counter, int want)
{
	char msg[MSG_MAX + 1];
	long long until = now_ms() + ms;
	for (long long left = ms; left > 0; left = until - now_ms()) {
		if (counter && want && *counter >= want)
			return;
		struct pollfd p = {.fd = n->fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t len;
		while ((len = recv(n->fd, msg, MSG_MAX, 0)) > 0) {
			msg[len] = '\0';
			parse(n, msg);
		}
	}
}

static int setup(void **state)
{
	static struct broker b;
	if (broker_start(&b) != 0)
		return -1;
	*state = &b;
	return 0;
}

static int teardown(void **state)
{
	broker_stop(*state);
	return 0;
}

static void test_watchdog_pings(void **state)
{
	struct broker *b = *state;
	struct notify n;
	struct hearthd h;
	notify_open(&n);
	assert_int_equal(setenv("WATCHDOG_USEC", WATCHDOG_USEC, 1), 0);
	int started = hearthd_start(&h, b->port, NULL);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	assert_int_equal(started, 0);

	drain(&n, 2000, &n.ready, 1);
	assert_int_equal(n.ready, 1);
	assert_non_null(strstr(n.status, "serving hearth"));
	/* 100 ms apart: a second of running brings about ten */
	int before = n.watchdog;
	drain(&n, 1000, NULL, 0);
	int in_a_second = n.watchdog - before;
	assert_in_range(in_a_second, 4, 15);

	/* SIGHUP: reloading, then ready again, and the pings go on */
	assert_int_equal(kill(h.pid, SIGHUP), 0);
	drain(&n, 2000, &n.ready, 2);
	assert_int_equal(n.reloading, 1);
	assert_int_equal(n.ready, 2);
	const char *l = strrchr(n.order, 'L');
	assert_non_null(l);
	assert_non_null(strchr(l, 'R'));
	before = n.watchdog;
	drain(&n, 500, NULL, 0);
	assert_true(n.watchdog - before >= 2);

	assert_int_equal(n.stopping, 0);
	assert_int_equal(hearthd_signal_wait(&h, SIGTERM, 5000), 0);
	drain(&n, 200, NULL, 0);
	assert_int_equal(n.stopping, 1);
	/* nothing after STOPPING but pings while the hub winds down */
	const char *s = strchr(n.order, 'S');
	assert_null(strchr(s, 'R'));
	assert_int_equal(hearthd_cleanup(&h), 0);
	notify_close(&n);
}

/* Without WATCHDOG_USEC there is READY and STOPPING but never a ping. */
static void test_no_watchdog_asked(void **state)
{
	struct broker *b = *state;
	struct notify n;
	struct hearthd h;
	notify_open(&n);
	unsetenv("WATCHDOG_USEC");
	int started = hearthd_start(&h, b->port, NULL);
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(started, 0);
	drain(&n, 2000, &n.ready, 1);
	assert_int_equal(n.ready, 1);
	drain(&n, 500, NULL, 0);
	assert_int_equal(n.watchdog, 0);
	assert_int_equal(hearthd_signal_wait(&h, SIGTERM, 5000), 0);
	drain(&n, 200, NULL, 0);
	assert_int_equal(n.stopping, 1);
	assert_int_equal(n.watchdog, 0);
	assert_int_equal(hearthd_cleanup(&h), 0);
	notify_close(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watchdog_pings),
		cmocka_unit_test(test_no_watchdog_asked),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
