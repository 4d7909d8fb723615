/*
 * hearthd: arguments, config, signals, systemd notification, the loop.
 * The only file that knows hearth is a process.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "config.h"
#include "crash.h"
#include "hub.h"
#include "log.h"
#include "store.h"
#include "web_auth.h"

#ifndef HEARTH_SYSCONFDIR
#define HEARTH_SYSCONFDIR "/etc"
#endif

struct daemon {
	uv_loop_t *loop;
	struct hearth_hub *hub;
	const char *config_path;
	const char *restore_path; /* --restore FILE */
	int verbosity; /* -v adds, -q subtracts */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t watchdog;
	bool watchdog_on;
	bool stopping;
	uint64_t start_ns;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hearthd [-c FILE] [--check-config | --restore FILE] [-v|-q] [--version]\n"
		"       hearthd --hash-password\n"
		"  -c, --config FILE   configuration (default %s/hearth/hearth.conf)\n"
		"      --check-config  validate the configuration and exit (0 good, 1 bad)\n"
		"      --restore FILE  put a backup in place of the database and exit\n"
		"                      (refused while hearthd runs)\n"
		"      --hash-password read a dashboard password (asked twice on a terminal,\n"
		"                      else one line of standard input) and print its\n"
		"                      crypt(3) hash for [web] password_file\n"
		"  -v, --verbose       more log (repeat for debug)\n"
		"  -q, --quiet         less log (errors only)\n"
		"      --version       print the version and exit\n"
		"  -h, --help          this text\n",
		HEARTH_SYSCONFDIR);
}

static enum hearth_log_level adjusted(enum hearth_log_level level, int verbosity)
{
	int l = (int)level + verbosity;
	if (l < HEARTH_LOG_ERROR)
		l = HEARTH_LOG_ERROR;
	if (l > HEARTH_LOG_DEBUG)
		l = HEARTH_LOG_DEBUG;
	return (enum hearth_log_level)l;
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void stopped(void *user)
{
	struct daemon *d = user;
	close_handle((uv_handle_t *)&d->sig_term);
	close_handle((uv_handle_t *)&d->sig_int);
	close_handle((uv_handle_t *)&d->sig_hup);
	close_handle((uv_handle_t *)&d->watchdog);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	if (d->stopping) {
		log_warning("hearthd", "second %s: exiting at once", strsignal(signum));
		exit(1);
	}
	d->stopping = true;
	log_info("hearthd", "%s received, stopping", strsignal(signum));
	sd_notify(0, "STOPPING=1");
	hub_stop(d->hub, stopped, d);
}

static void on_hup(uv_signal_t *s, int signum)
{
	(void)signum;
	struct daemon *d = s->data;
	struct hearth_config *fresh = NULL;
	char err[512];
	sd_notify(0, "RELOADING=1");
	if (config_load(d->config_path, &fresh, err, sizeof(err)) != 0) {
		log_error("hearthd", "reload refused, keeping the running configuration: %s", err);
	} else {
		fresh->log.level = adjusted(fresh->log.level, d->verbosity);
		hub_reload(d->hub, fresh);
		config_free(fresh);
	}
	sd_notify(0, "READY=1");
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	sd_notify(0, "WATCHDOG=1");
}

static void on_ready(void *user)
{
	struct daemon *d = user;
	double ms = (double)(uv_hrtime() - d->start_ns) / 1e6;
	log_info("hearthd", "ready in %.1f ms", ms);
	sd_notifyf(0, "READY=1\nSTATUS=serving %s", d->hub->config->mqtt.base_topic);
}

/* One line of standard input, without its newline; echo off on a terminal. */
static int read_secret_line(const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fprintf(stderr, "%s", prompt);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	bool got = fgets(buf, (int)cap, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!got)
		return -1;
	size_t len = strcspn(buf, "\r\n");
	if (buf[len] == '\0' && len == cap - 1)
		return -2; /* longer than the buffer */
	buf[len] = '\0';
	return 0;
}

/* --hash-password: the line for [web] password_file. */
static int hash_password(void)
{
	char pw[1024], again[1024], hash[256];
	int rc = 1;
	bool tty = isatty(STDIN_FILENO);
	int r = read_secret_line("Dashboard password: ", pw, sizeof(pw));
	if (r) {
		fprintf(stderr, "hearthd: %s\n",
			r == -2 ? "the password is longer than 1023 bytes" : "no password given");
	} else if (!pw[0]) {
		fprintf(stderr, "hearthd: the password is empty\n");
	} else if (tty && (read_secret_line("Again: ", again, sizeof(again)) ||
			   strcmp(pw, again) != 0)) {
		fprintf(stderr, "hearthd: the two passwords differ\n");
	} else if (web_password_hash(pw, hash, sizeof(hash)) != 0) {
		fprintf(stderr, "hearthd: libcrypt could not hash the password\n");
	} else {
		printf("%s\n", hash);
		rc = 0;
	}
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(again, sizeof(again));
	explicit_bzero(hash, sizeof(hash));
	return rc;
}

static int parse_args(struct daemon *d, int argc, char **argv, bool *check_only)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},	  {"quiet", no_argument, NULL, 'q'},
		{"version", no_argument, NULL, 'V'},	  {"help", no_argument, NULL, 'h'},
		{"restore", required_argument, NULL, 'R'},
		{"hash-password", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "c:vqh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d->config_path = optarg;
			break;
		case 'C':
			*check_only = true;
			break;
		case 'R':
			d->restore_path = optarg;
			break;
		case 'v':
			d->verbosity++;
			break;
		case 'q':
			d->verbosity = -3;
			break;
		case 'H':
			exit(hash_password());
		case 'V':
			printf("hearthd %s (plugin ABI %d.%d)\n", HEARTH_VERSION, HEARTH_ABI_MAJOR,
			       HEARTH_ABI_MINOR);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hearthd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* --restore: a backup takes the place of store.path; the store refuses
 * while a hub has the database open. */
static int restore(const char *file, const struct hearth_config *config)
{
	struct store_file_info info;
	char err[512];
	if (store_restore(file, config->store.path, &info, err, sizeof(err)) != 0) {
		fprintf(stderr, "hearthd: restore refused: %s\n", err);
		return 1;
	}
	printf("restored %s to %s: schema version %d, %lld devices, %lld bytes\n", file,
	       config->store.path, info.schema_version, (long long)info.devices,
	       (long long)info.bytes);
	if (info.kept_old)
		printf("the database it replaced is kept as %s.before-restore\n",
		       config->store.path);
	return 0;
}

static void start_signals(struct daemon *d)
{
	uv_signal_t *sigs[] = {&d->sig_term, &d->sig_int, &d->sig_hup};
	for (size_t i = 0; i < 3; i++) {
		uv_signal_init(d->loop, sigs[i]);
		sigs[i]->data = d;
	}
	uv_signal_start(&d->sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&d->sig_int, on_stop_signal, SIGINT);
	uv_signal_start(&d->sig_hup, on_hup, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
}

static void start_watchdog(struct daemon *d)
{
	uint64_t usec = 0;
	uv_timer_init(d->loop, &d->watchdog);
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		/* ping at half the interval, as systemd recommends */
		uv_timer_start(&d->watchdog, on_watchdog, usec / 2000, usec / 2000);
		d->watchdog_on = true;
	}
}

/* A small daemon that sometimes sees a 1 MiB payload: big buffers go back
 * to the system when freed (glibc would otherwise raise its mmap threshold
 * and keep them), and the thread pool does not grow an arena per thread. */
static void tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_ARENA_MAX, 2);
}

int main(int argc, char **argv)
{
	struct daemon d = {.config_path = HEARTH_SYSCONFDIR "/hearth/hearth.conf"};
	bool check_only = false;
	d.start_ns = uv_hrtime();
	crash_report_install();
	tune_malloc();
	if (parse_args(&d, argc, argv, &check_only))
		return 2;
	struct hearth_config *config = NULL;
	char err[512];
	if (config_load(d.config_path, &config, err, sizeof(err)) != 0) {
		fprintf(stderr, "hearthd: %s\n", err);
		return 1;
	}
	if (check_only) {
		printf("%s: configuration is valid\n", d.config_path);
		config_free(config);
		return 0;
	}
	if (d.restore_path) {
		int restore_rc = restore(d.restore_path, config);
		config_free(config);
		return restore_rc;
	}
	/* rules read local time: [location] timezone, else the system's */
	if (config->location.timezone) {
		setenv("TZ", config->location.timezone, 1);
	}
	tzset();
	config->log.level = adjusted(config->log.level, d.verbosity);
	log_set_level(config->log.level);
	log_set_format(config->log.json);
	d.loop = uv_default_loop();
	if (hub_new(d.loop, config, &d.hub) != 0) {
		fprintf(stderr, "hearthd: out of memory\n");
		config_free(config);
		return 1;
	}
	start_signals(&d);
	start_watchdog(&d);
	log_info("hearthd", "hearth %s starting with %s", HEARTH_VERSION, d.config_path);
	int rc = hub_start(d.hub, on_ready, &d);
	if (rc) {
		log_error("hearthd", "start-up failed: %s", strerror(-rc));
		d.stopping = true;
		hub_stop(d.hub, stopped, &d);
	}
	uv_run(d.loop, UV_RUN_DEFAULT);
	hub_free(d.hub);
	uv_run(d.loop, UV_RUN_NOWAIT);
	int close_rc = uv_loop_close(d.loop);
	if (close_rc)
		log_warning("hearthd", "loop closed with handles still open");
	log_info("hearthd", "stopped");
	return rc ? 1 : 0;
}
