/*
 * hearth-bench: the benchmark's load generator, its trivial echo engine
 * (the ceiling) and its start-up timer. Everything talks to 127.0.0.1 only;
 * every wait is bounded in time.
 *
 * Shared parts: clock, /proc sampling of the engine under test, the MQTT
 * client set-up and one poll step over several clients.
 */
#ifndef HEARTH_BENCH_H
#define HEARTH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <mosquitto.h>

#define BENCH_HOST "127.0.0.1"
#define BENCH_CONNECT_TIMEOUT_MS 5000

/* Monotonic and wall clocks, in nanoseconds. */
int64_t bench_now_ns(void);
int64_t bench_wall_ns(void);
void bench_sleep_ms(int ms);

/* What /proc tells about one process. Fields are -1 when unreadable. */
struct proc_sample {
	double cpu_s;		/* utime + stime */
	long rss_kib;		/* VmRSS */
	long hwm_kib;		/* VmHWM: the peak resident size */
	long anon_kib;		/* RssAnon: heap, stacks (the process's own) */
	long file_kib;		/* RssFile: mapped code and libraries (shareable) */
	long long write_bytes;	/* bytes this process caused to be written to storage */
	long long wchar;	/* bytes passed to write(2) and friends, sockets included */
};

/* Sample pid; 0 or -1 (the process is gone). */
int proc_sample(pid_t pid, struct proc_sample *out);

/* A connected client with TCP_NODELAY, or NULL (message on stderr). The
 * client is non-blocking and driven by bench_pump(). */
struct mosquitto *bench_client(int port, const char *id, void *user);
/* One wait of at most timeout_ns for any of the clients' sockets, then
 * reads and writes what is ready (reads until the socket is drained, at
 * most 256 packets). Returns 0, or -1 when a connection is lost. */
int bench_pump(struct mosquitto **clients, size_t n, int64_t timeout_ns);
/* Pump until every client's queued packets are written or timeout_ms. */
void bench_flush(struct mosquitto **clients, size_t n, int timeout_ms);
void bench_client_free(struct mosquitto *mosq);

/* A free TCP port on 127.0.0.1, or -1. */
int bench_free_port(void);
/* Wait until something listens on 127.0.0.1:port; 0 or -1 after timeout_ms. */
int bench_wait_port(int port, int timeout_ms);

/* Subcommands. argc/argv start at the subcommand's own arguments. */
int bench_load_main(int argc, char **argv);
int bench_echo_main(int argc, char **argv);
int bench_ready_main(int argc, char **argv);

/* Parse a whole number in [min, max]; false when it is not one. */
bool bench_parse_long(const char *text, long min, long max, long *out);
bool bench_parse_double(const char *text, double min, double max, double *out);

#endif
