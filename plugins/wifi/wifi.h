/*
 * The Wi-Fi plugin's shared parts. wifi.c talks to the host (entry,
 * options, dispatch, discovery timer, helpers); miio.c drives miIO devices
 * over UDP; yeelight.c drives Yeelight bulbs over TCP and their SSDP-style
 * discovery. The codecs (miio_codec.c, miio_models.c, yeelight_codec.c,
 * convert.c, wifi_config.c) know nothing of the host.
 *
 * Everything runs on the host's loop thread, except the body of a name
 * lookup, which runs on the host's thread pool and touches only its job.
 */
#ifndef WIFI_H
#define WIFI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>

#include <hearth/plugin.h>

#include "miio_codec.h"
#include "miio_models.h"
#include "wifi_config.h"
#include "yeelight_codec.h"

#define WIFI_ID_MAX 64
#define WIFI_PLUGIN_NAME "wifi"

struct wifi_opts {
	bool discovery;
	uint64_t discovery_interval_ms; /* 0: at start and on permit_join only */
	uint64_t poll_ms;
	uint64_t timeout_ms; /* first wait for an answer; doubles on each retry */
	unsigned retries;
	uint64_t backoff_max_ms;
	uint16_t yl_discovery_port; /* where unicast searches to listed bulbs go */
	unsigned yl_quota;	    /* commands per minute per bulb */
};

struct miio_dev;
struct yl_bulb;
struct miio_found;

struct wifi {
	const struct hearth_host *host;
	hearth_plugin_ctx *ctx;
	struct wifi_opts opt;
	uint64_t rng;
	const char *miio_path;
	hearth_timer *discovery_timer;

	/* miIO (miio.c) */
	struct miio_dev *miio;
	size_t n_miio;
	int hello_fd; /* discovery: broadcast hello and its answers */
	hearth_watch *hello_watch;
	struct miio_found *found; /* devices that answered a broadcast */
	size_t n_found;

	/* Yeelight (yeelight.c) */
	struct yl_bulb **bulbs;
	size_t n_bulbs;
	int ssdp_fd; /* searches and their answers */
	hearth_watch *ssdp_watch;
	int notify_fd; /* advertisements on 239.255.255.250:1982, discovery only */
	hearth_watch *notify_watch;
};

/* ---- wifi.c: helpers for the drivers ------------------------------------- */

int64_t wifi_now(struct wifi *w);
/* A number in [0, 1). */
double wifi_random(struct wifi *w);
/* ms spread by +-10 %, so devices polled together drift apart. */
uint64_t wifi_jitter(struct wifi *w, uint64_t ms);
/* Wait before attempt step+1 after step failures: timeout_ms doubling,
 * at most backoff_max_ms. */
uint64_t wifi_backoff(struct wifi *w, unsigned step);
/* A UDP socket, O_NONBLOCK | O_CLOEXEC. fd or a negative errno. */
int wifi_udp_socket(bool broadcast);
/* After HEARTH_FD_ERROR the host's watch has stopped (an ICMP error on a
 * UDP socket, say): clear the socket's error and watch it again. */
void wifi_watch_rearm(struct wifi *w, hearth_watch *watch, int fd, unsigned events);
/* host must be an IPv4 literal. 0 or -EINVAL. */
int wifi_addr_parse(const char *host, uint16_t port, struct sockaddr_in *out);
/* The dotted form of addr into buf (>= 16 bytes). */
const char *wifi_addr_text(const struct sockaddr_in *addr, char *buf, size_t cap);

/* Look a host name up on the thread pool; cb(user, 0, addr) or
 * cb(user, -errno, ...) later on the loop. Not called when the plugin is
 * unloaded first. */
typedef void (*wifi_resolved_fn)(void *user, int status, struct in_addr addr);
int wifi_resolve(struct wifi *w, const char *host, wifi_resolved_fn cb, void *user);

/* ---- miio.c -------------------------------------------------------------- */

int wifi_miio_init(struct wifi *w, const struct miio_conf *confs, size_t n);
int wifi_miio_start(struct wifi *w);
void wifi_miio_stop(struct wifi *w);
/* -ENOENT: not a miIO device of this plugin. */
int wifi_miio_command(struct wifi *w, const struct hearth_command *cmd);
int wifi_miio_get(struct wifi *w, const char *device_id);
/* Broadcast a hello; answers are logged. */
void wifi_miio_discover(struct wifi *w);

/* ---- yeelight.c ---------------------------------------------------------- */

int wifi_yl_init(struct wifi *w, const struct host_port *hosts, size_t n);
int wifi_yl_start(struct wifi *w);
void wifi_yl_stop(struct wifi *w);
int wifi_yl_command(struct wifi *w, const struct hearth_command *cmd);
int wifi_yl_get(struct wifi *w, const char *device_id);
/* Multicast an M-SEARCH; answers add bulbs. */
void wifi_yl_discover(struct wifi *w);

#endif
