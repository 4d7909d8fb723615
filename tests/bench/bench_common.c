#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PUMP_MAX 8
#define READS_PER_PUMP 256

int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool bench_parse_long(const char *text, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = text ? strtol(text, &end, 10) : 0;
	if (!text || !*text || *end || errno || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool bench_parse_double(const char *text, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = text ? strtod(text, &end) : 0;
	if (!text || !*text || *end || errno || !(v >= min && v <= max))
		return false;
	*out = v;
	return true;
}

/* -- /proc ------------------------------------------------------------------- */

static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: skip past the last ')' */
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long status_kib(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static long long io_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static int read_small(pid_t pid, const char *name, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

int proc_sample(pid_t pid, struct proc_sample *out)
{
	char buf[4096];
	*out = (struct proc_sample){-1, -1, -1, -1, -1, -1, -1};
	if (pid <= 0 || read_small(pid, "status", buf, sizeof(buf)) != 0)
		return -1;
	out->rss_kib = status_kib(buf, "VmRSS:");
	out->hwm_kib = status_kib(buf, "VmHWM:");
	out->anon_kib = status_kib(buf, "RssAnon:");
	out->file_kib = status_kib(buf, "RssFile:");
	out->cpu_s = cpu_seconds(pid);
	if (read_small(pid, "io", buf, sizeof(buf)) == 0) {
		out->write_bytes = io_field(buf, "\nwrite_bytes:");
		out->wchar = io_field(buf, "wchar:");
	}
	return 0;
}

/* -- MQTT clients -------------------------------------------------------------- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	(void)mosq;
	(void)obj;
	if (rc)
		fprintf(stderr, "hearth-bench: the broker refused the connection: %s\n",
			mosquitto_connack_string(rc));
}

struct mosquitto *bench_client(int port, const char *id, void *user)
{
	static bool ready;
	if (!ready) {
		mosquitto_lib_init();
		ready = true;
	}
	struct mosquitto *mosq = mosquitto_new(id, true, user);
	if (!mosq)
		return NULL;
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_callback_set(mosq, on_connect);
	int rc = mosquitto_connect(mosq, BENCH_HOST, port, 60);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "hearth-bench: cannot connect to %s:%d: %s\n", BENCH_HOST, port,
			mosquitto_strerror(rc));
		mosquitto_destroy(mosq);
		return NULL;
	}
	int fd = mosquitto_socket(mosq);
	fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return mosq;
}

void bench_client_free(struct mosquitto *mosq)
{
	if (!mosq)
		return;
	mosquitto_disconnect(mosq);
	mosquitto_destroy(mosq);
}

/* Read until the socket has nothing more: libmosquitto reads one packet per
 * call when nothing is queued at QoS > 0. */
static int drain(struct mosquitto *mosq)
{
	for (int i = 0; i < READS_PER_PUMP; i++) {
		errno = 0;
		int rc = mosquitto_loop_read(mosq, 1);
		if (rc != MOSQ_ERR_SUCCESS)
			return -1;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
	}
	return 0;
}

int bench_pump(struct mosquitto **clients, size_t n, int64_t timeout_ns)
{
	struct pollfd pfd[PUMP_MAX];
	if (n > PUMP_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		pfd[i].fd = mosquitto_socket(clients[i]);
		pfd[i].events = POLLIN | (mosquitto_want_write(clients[i]) ? POLLOUT : 0);
		pfd[i].revents = 0;
		if (pfd[i].fd < 0)
			return -1;
	}
	if (timeout_ns < 0)
		timeout_ns = 0;
	struct timespec ts = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000)};
	int ready = ppoll(pfd, (nfds_t)n, &ts, NULL);
	if (ready < 0 && errno != EINTR)
		return -1;
	for (size_t i = 0; i < n && ready > 0; i++) {
		if ((pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) && drain(clients[i]))
			return -1;
		/* what the callbacks published goes out now, not on the next turn */
		if (((pfd[i].revents & POLLOUT) || mosquitto_want_write(clients[i])) &&
		    mosquitto_loop_write(clients[i], 1) != MOSQ_ERR_SUCCESS)
			return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (mosquitto_loop_misc(clients[i]) != MOSQ_ERR_SUCCESS)
			return -1;
	return 0;
}

void bench_flush(struct mosquitto **clients, size_t n, int timeout_ms)
{
	int64_t until = bench_now_ns() + (int64_t)timeout_ms * 1000000;
	while (bench_now_ns() < until) {
		bool pending = false;
		for (size_t i = 0; i < n; i++)
			pending |= mosquitto_want_write(clients[i]);
		if (!pending || bench_pump(clients, n, 10000000))
			return;
	}
}

/* -- ports ------------------------------------------------------------------------ */

int bench_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				.sin_port = htons((uint16_t)port)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

int bench_wait_port(int port, int timeout_ms)
{
	int64_t until = bench_now_ns() + (int64_t)timeout_ms * 1000000;
	do {
		if (port_open(port))
			return 0;
		bench_sleep_ms(10);
	} while (bench_now_ns() < until);
	return -1;
}
