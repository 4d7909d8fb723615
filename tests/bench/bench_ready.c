/*
 * hearth-bench ready: start a daemon with NOTIFY_SOCKET pointing at a
 * socket of our own and time how long it takes to say READY=1 (the
 * sd_notify protocol). Then, after a settle time, sample its memory and
 * CPU, print one JSON line, and either stop it (SIGTERM, bounded wait) or,
 * with --serve, stay its parent until we are told to stop ourselves.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define LABELS_MAX 16
#define STOP_TIMEOUT_MS 15000

static volatile sig_atomic_t told_to_stop;

struct ready {
	long timeout_ms;
	long settle_ms;
	bool serve;
	const char *pidfile;
	const char *log;
	const char *labels[LABELS_MAX];
	size_t n_labels;
	char **cmd;
	char dir[64];
	char sock_path[108];
	int sock;
	pid_t pid;
	int64_t launch_wall_ns;
};

static void on_signal(int sig)
{
	(void)sig;
	told_to_stop = 1;
}

static int open_socket(struct ready *r)
{
	snprintf(r->dir, sizeof(r->dir), "/tmp/hearth-bench-notify-XXXXXX");
	if (!mkdtemp(r->dir))
		return -1;
	snprintf(r->sock_path, sizeof(r->sock_path), "%s/notify", r->dir);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", r->sock_path);
	r->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (r->sock < 0 || bind(r->sock, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	return 0;
}

static void close_socket(struct ready *r)
{
	if (r->sock >= 0)
		close(r->sock);
	unlink(r->sock_path);
	rmdir(r->dir);
}

static int launch(struct ready *r)
{
	r->launch_wall_ns = bench_wall_ns();
	r->pid = fork();
	if (r->pid < 0)
		return -1;
	if (r->pid > 0)
		return 0;
	setenv("NOTIFY_SOCKET", r->sock_path, 1);
	int fd = open(r->log ? r->log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execvp(r->cmd[0], r->cmd);
	_exit(127);
}

/* ms until READY=1, or -1 (the daemon exited, or the timeout passed). */
static double wait_ready(struct ready *r)
{
	int64_t t0 = bench_now_ns(), until = t0 + (int64_t)r->timeout_ms * 1000000;
	char buf[1024];
	while (bench_now_ns() < until) {
		struct pollfd p = {.fd = r->sock, .events = POLLIN};
		if (poll(&p, 1, 10) > 0) {
			ssize_t n = recv(r->sock, buf, sizeof(buf) - 1, 0);
			if (n > 0) {
				buf[n] = '\0';
				if (strstr(buf, "READY=1"))
					return (double)(bench_now_ns() - t0) / 1e6;
			}
		}
		if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
			r->pid = 0;
			fprintf(stderr, "hearth-bench ready: %s exited before READY\n", r->cmd[0]);
			return -1;
		}
	}
	fprintf(stderr, "hearth-bench ready: no READY=1 within %ld ms\n", r->timeout_ms);
	return -1;
}

/* SIGTERM, wait up to STOP_TIMEOUT_MS, then SIGKILL. Exit status, or -1. */
static int stop_child(struct ready *r)
{
	if (r->pid <= 0)
		return -1;
	kill(r->pid, SIGTERM);
	int64_t until = bench_now_ns() + (int64_t)STOP_TIMEOUT_MS * 1000000;
	int status = 0;
	while (bench_now_ns() < until) {
		if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
			r->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		bench_sleep_ms(10);
	}
	fprintf(stderr, "hearth-bench ready: pid %d ignored SIGTERM; killed\n", (int)r->pid);
	kill(r->pid, SIGKILL);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
	return -1;
}

static void put_labels(const struct ready *r)
{
	for (size_t i = 0; i < r->n_labels; i++) {
		const char *eq = strchr(r->labels[i], '=');
		printf(",\"%.*s\":\"", (int)(eq - r->labels[i]), r->labels[i]);
		for (const char *p = eq + 1; *p; p++)
			if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
				putchar(*p);
		putchar('"');
	}
}

static void report(const struct ready *r, double ready_ms, const struct proc_sample *s)
{
	printf("{\"tool\":\"hearth-bench\",\"mode\":\"ready\"");
	put_labels(r);
	printf(",\"pid\":%d,\"launch_wall_ns\":%lld", (int)r->pid, (long long)r->launch_wall_ns);
	if (ready_ms >= 0)
		printf(",\"ready_ms\":%.3f", ready_ms);
	else
		printf(",\"ready_ms\":null");
	if (s->rss_kib >= 0)
		printf(",\"rss_kib\":%ld,\"hwm_kib\":%ld,\"anon_kib\":%ld,\"file_kib\":%ld"
		       ",\"cpu_ms\":%.1f",
		       s->rss_kib, s->hwm_kib, s->anon_kib, s->file_kib, s->cpu_s * 1000.0);
	printf("}\n");
	fflush(stdout);
}

static int write_pidfile(const struct ready *r)
{
	FILE *f = r->pidfile ? fopen(r->pidfile, "we") : NULL;
	if (!f)
		return r->pidfile ? -1 : 0;
	fprintf(f, "%d\n", (int)r->pid);
	return fclose(f) == 0 ? 0 : -1;
}

static int run(struct ready *r)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (open_socket(r) || launch(r)) {
		fprintf(stderr, "hearth-bench ready: cannot start %s: %s\n", r->cmd[0],
			strerror(errno));
		close_socket(r);
		return 1;
	}
	double ms = wait_ready(r);
	struct proc_sample s = {.rss_kib = -1};
	int settle = (int)r->settle_ms;
	while (ms >= 0 && settle > 0 && !told_to_stop) {
		bench_sleep_ms(settle > 50 ? 50 : settle);
		settle -= 50;
	}
	if (ms >= 0)
		proc_sample(r->pid, &s);
	report(r, ms, &s);
	if (ms >= 0 && write_pidfile(r))
		fprintf(stderr, "hearth-bench ready: cannot write %s\n", r->pidfile);
	/* serving: the daemon runs until we are told to stop, then it is */
	while (ms >= 0 && r->serve && !told_to_stop && waitpid(r->pid, NULL, WNOHANG) == 0)
		bench_sleep_ms(50);
	int status = stop_child(r);
	if (status > 0)
		fprintf(stderr, "hearth-bench ready: %s exited with status %d\n", r->cmd[0], status);
	close_socket(r);
	return ms >= 0 && status == 0 ? 0 : 1;
}

int bench_ready_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"timeout-ms", required_argument, NULL, 't'},
		{"settle-ms", required_argument, NULL, 's'},
		{"serve", no_argument, NULL, 'S'},
		{"pidfile", required_argument, NULL, 'P'},
		{"log", required_argument, NULL, 'l'},
		{"label", required_argument, NULL, 'L'},
		{NULL, 0, NULL, 0},
	};
	struct ready r = {.timeout_ms = 30000, .settle_ms = 500, .sock = -1};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		bool ok = true;
		if (opt == 't')
			ok = bench_parse_long(optarg, 1, 600000, &r.timeout_ms);
		else if (opt == 's')
			ok = bench_parse_long(optarg, 0, 600000, &r.settle_ms);
		else if (opt == 'S')
			r.serve = true;
		else if (opt == 'P')
			r.pidfile = optarg;
		else if (opt == 'l')
			r.log = optarg;
		else if (opt == 'L' && strchr(optarg, '=') && r.n_labels < LABELS_MAX)
			r.labels[r.n_labels++] = optarg;
		else
			ok = false;
		if (!ok)
			goto usage;
	}
	if (optind >= argc)
		goto usage;
	r.cmd = &argv[optind];
	return run(&r);
usage:
	fprintf(stderr, "usage: hearth-bench ready [--timeout-ms MS] [--settle-ms MS] [--serve] "
			"[--pidfile F] [--log F] [--label k=v] -- COMMAND ARGS...\n");
	return 2;
}
