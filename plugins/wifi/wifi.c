/*
 * wifi: Xiaomi miIO devices and Yeelight bulbs on the LAN, controlled
 * locally (no cloud).
 *
 * [plugin.wifi]
 *   discovery            = true   (miIO hello broadcast, Yeelight SSDP multicast)
 *   discovery_interval_s = 600
 *   miio_devices         = PATH   (JSON array with tokens; mode 600)
 *   yeelight_devices     = 192.168.1.30, 192.168.1.31:55443
 *   poll_interval_s      = 30
 *   timeout_ms           = 1000   retries = 2   backoff_max_s = 60
 *   yeelight_discovery_port = 1982   yeelight_quota = 60
 *
 * Devices are wifi:miio:<device id> and wifi:yeelight:<bulb id>. This file
 * talks to the host; miio.c and yeelight.c are the drivers.
 */
#include "wifi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define WIFI_VERSION "0.1.0"

/* ---- helpers ------------------------------------------------------------- */

int64_t wifi_now(struct wifi *w)
{
	return w->host->now_ms(w->ctx);
}

double wifi_random(struct wifi *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

uint64_t wifi_jitter(struct wifi *w, uint64_t ms)
{
	double f = 0.9 + 0.2 * wifi_random(w);
	return (uint64_t)((double)ms * f);
}

uint64_t wifi_backoff(struct wifi *w, unsigned step)
{
	uint64_t ms = w->opt.timeout_ms;
	for (unsigned i = 0; i < step && ms < w->opt.backoff_max_ms; i++)
		ms *= 2;
	return ms < w->opt.backoff_max_ms ? ms : w->opt.backoff_max_ms;
}

int wifi_udp_socket(bool broadcast)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

void wifi_watch_rearm(struct wifi *w, hearth_watch *watch, int fd, unsigned events)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (!(events & HEARTH_FD_ERROR) || !watch)
		return;
	(void)getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	w->host->fd_modify(w->ctx, watch, HEARTH_FD_READ);
}

int wifi_addr_parse(const char *host, uint16_t port, struct sockaddr_in *out)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (!host || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -EINVAL;
	*out = a;
	return 0;
}

const char *wifi_addr_text(const struct sockaddr_in *addr, char *buf, size_t cap)
{
	if (!inet_ntop(AF_INET, &addr->sin_addr, buf, (socklen_t)cap))
		snprintf(buf, cap, "?");
	return buf;
}

/* ---- name lookups on the thread pool ------------------------------------- */

struct resolve_job {
	char host[WIFI_HOST_MAX];
	struct in_addr addr;
	int status;
	wifi_resolved_fn cb;
	void *user;
};

static void resolve_work(void *user)
{
	struct resolve_job *job = user;
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(job->host, NULL, &hints, &res);
	job->status = rc == 0 && res ? 0 : -EHOSTUNREACH;
	if (job->status == 0)
		job->addr = ((const struct sockaddr_in *)res->ai_addr)->sin_addr;
	if (res)
		freeaddrinfo(res);
}

/* The plugin may be gone (-ECANCELED): then only the job is freed. */
static void resolve_done(void *user, int status)
{
	struct resolve_job *job = user;
	if (status != -ECANCELED)
		job->cb(job->user, status ? status : job->status, job->addr);
	free(job);
}

int wifi_resolve(struct wifi *w, const char *host, wifi_resolved_fn cb, void *user)
{
	struct resolve_job *job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	snprintf(job->host, sizeof(job->host), "%s", host);
	job->cb = cb;
	job->user = user;
	int rc = w->host->work_queue(w->ctx, resolve_work, resolve_done, job);
	if (rc)
		free(job);
	return rc;
}

/* ---- options ------------------------------------------------------------- */

struct number_option {
	const char *key;
	unsigned long long def, lo, hi, scale;
	size_t offset; /* in struct wifi_opts */
	int width;     /* 2: uint16_t, 4: unsigned, 8: uint64_t */
};

#define OPT(field) offsetof(struct wifi_opts, field), (int)sizeof(((struct wifi_opts *)0)->field)

static const struct number_option number_options[] = {
	{"discovery_interval_s", 600, 0, 86400, 1000, OPT(discovery_interval_ms)},
	{"poll_interval_s", 30, 1, 86400, 1000, OPT(poll_ms)},
	{"timeout_ms", 1000, 20, 60000, 1, OPT(timeout_ms)},
	{"retries", 2, 0, 10, 1, OPT(retries)},
	{"backoff_max_s", 60, 1, 3600, 1000, OPT(backoff_max_ms)},
	{"yeelight_discovery_port", YL_SSDP_PORT, 1, 65535, 1, OPT(yl_discovery_port)},
	{"yeelight_quota", 60, 1, YL_QUOTA_MAX, 1, OPT(yl_quota)},
};

static void option_store(struct wifi_opts *o, const struct number_option *n,
			 unsigned long long v)
{
	char *p = (char *)o + n->offset;
	if (n->width == 2)
		*(uint16_t *)(void *)p = (uint16_t)v;
	else if (n->width == 4)
		*(unsigned *)(void *)p = (unsigned)v;
	else
		*(uint64_t *)(void *)p = v;
}

static int parse_options(struct wifi *w)
{
	const char *text = w->host->config_get(w->ctx, "discovery");
	w->opt.discovery = true;
	if (text && wifi_bool_parse(text, &w->opt.discovery)) {
		w->host->log(w->ctx, HEARTH_LOG_ERROR, "discovery: '%s' is not true or false", text);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(number_options) / sizeof(number_options[0]); i++) {
		const struct number_option *n = &number_options[i];
		unsigned long long v = n->def;
		text = w->host->config_get(w->ctx, n->key);
		if (text && wifi_number_parse(text, n->lo, n->hi, &v)) {
			w->host->log(w->ctx, HEARTH_LOG_ERROR,
				     "%s: '%s' is not a whole number in %llu..%llu", n->key, text,
				     n->lo, n->hi);
			return -EINVAL;
		}
		option_store(&w->opt, n, v * n->scale);
	}
	return 0;
}

/* The devices file holds tokens: it is read with secret_read, which refuses
 * a file others may read, and wiped from memory once parsed. */
static int load_miio(struct wifi *w)
{
	w->miio_path = w->host->config_get(w->ctx, "miio_devices");
	if (!w->miio_path || !w->miio_path[0])
		return wifi_miio_init(w, NULL, 0);
	char err[200];
	size_t n = 0;
	char *buf = malloc(WIFI_DEVICES_FILE_MAX);
	struct miio_conf *confs = calloc(WIFI_MIIO_DEVICES_MAX, sizeof(*confs));
	int rc = buf && confs ? 0 : -ENOMEM;
	if (rc == 0)
		rc = w->host->secret_read(w->ctx, w->miio_path, buf, WIFI_DEVICES_FILE_MAX);
	if (rc == 0) {
		rc = wifi_devices_parse(buf, strlen(buf), confs, WIFI_MIIO_DEVICES_MAX, &n, err,
					sizeof(err));
		if (rc)
			w->host->log(w->ctx, HEARTH_LOG_ERROR, "miio_devices %s: %s", w->miio_path,
				     err);
	} else if (rc != -ENOMEM) {
		w->host->log(w->ctx, HEARTH_LOG_ERROR, "miio_devices %s: cannot be read: %s",
			     w->miio_path, strerror(-rc));
	}
	if (rc == 0)
		rc = wifi_miio_init(w, confs, n);
	if (buf)
		OPENSSL_cleanse(buf, WIFI_DEVICES_FILE_MAX);
	if (confs)
		OPENSSL_cleanse(confs, WIFI_MIIO_DEVICES_MAX * sizeof(*confs));
	free(buf);
	free(confs);
	return rc;
}

static int load_yeelight(struct wifi *w)
{
	const char *text = w->host->config_get(w->ctx, "yeelight_devices");
	struct host_port hosts[WIFI_YEELIGHT_MAX];
	size_t n = 0;
	char err[160];
	if (text && wifi_hosts_parse(text, YL_PORT, hosts, WIFI_YEELIGHT_MAX, &n, err,
				     sizeof(err))) {
		w->host->log(w->ctx, HEARTH_LOG_ERROR, "yeelight_devices: %s", err);
		return -EINVAL;
	}
	return wifi_yl_init(w, hosts, n);
}

/* ---- discovery ----------------------------------------------------------- */

static void discover(struct wifi *w)
{
	wifi_miio_discover(w);
	wifi_yl_discover(w);
}

static void on_discovery_timer(void *user)
{
	discover(user);
}

/* ---- the plugin's callbacks ---------------------------------------------- */

static bool host_usable(const struct hearth_host *host)
{
	return HEARTH_HOST_HAS(host, device_add) && HEARTH_HOST_HAS(host, state_report) &&
	       HEARTH_HOST_HAS(host, availability_set) && HEARTH_HOST_HAS(host, command_done) &&
	       HEARTH_HOST_HAS(host, config_get) && HEARTH_HOST_HAS(host, secret_read) &&
	       HEARTH_HOST_HAS(host, log) && HEARTH_HOST_HAS(host, timer_start) &&
	       HEARTH_HOST_HAS(host, timer_again) && HEARTH_HOST_HAS(host, timer_stop) &&
	       HEARTH_HOST_HAS(host, fd_watch) && HEARTH_HOST_HAS(host, fd_modify) &&
	       HEARTH_HOST_HAS(host, fd_unwatch) && HEARTH_HOST_HAS(host, work_queue) &&
	       HEARTH_HOST_HAS(host, now_ms);
}

static void wifi_free(struct wifi *w)
{
	wifi_miio_stop(w);
	wifi_yl_stop(w);
	free(w);
}

static int wifi_init(const struct hearth_host *host, hearth_plugin_ctx *ctx, void **state)
{
	if (!host_usable(host))
		return -EPROTO;
	struct wifi *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->host = host;
	w->ctx = ctx;
	w->rng = (uint64_t)host->now_ms(ctx) ^ (uint64_t)getpid() << 32;
	w->hello_fd = w->ssdp_fd = w->notify_fd = -1;
	int rc = parse_options(w);
	if (rc == 0)
		rc = load_miio(w);
	if (rc == 0)
		rc = load_yeelight(w);
	if (rc) {
		wifi_free(w);
		return rc;
	}
	host->log(ctx, HEARTH_LOG_INFO,
		  "%zu miIO devices, %zu Yeelight bulbs listed; discovery %s; polls every %llu s",
		  w->n_miio, w->n_bulbs, w->opt.discovery ? "on" : "off",
		  (unsigned long long)(w->opt.poll_ms / 1000));
	*state = w;
	return 0;
}

static int wifi_start(void *state)
{
	struct wifi *w = state;
	int rc = wifi_miio_start(w);
	if (rc == 0)
		rc = wifi_yl_start(w);
	if (rc == 0 && w->opt.discovery)
		rc = w->host->timer_start(w->ctx, 0, w->opt.discovery_interval_ms,
					  on_discovery_timer, w, &w->discovery_timer);
	return rc;
}

static void wifi_stop(void *state)
{
	struct wifi *w = state;
	if (!w)
		return;
	w->host->timer_stop(w->ctx, w->discovery_timer);
	wifi_free(w);
}

static int wifi_command(void *state, const struct hearth_command *cmd)
{
	struct wifi *w = state;
	int rc = wifi_miio_command(w, cmd);
	if (rc == -ENOENT)
		rc = wifi_yl_command(w, cmd);
	return rc;
}

static int wifi_get(void *state, const char *device_id, const char *const *attrs, size_t n_attrs)
{
	struct wifi *w = state;
	(void)attrs;
	(void)n_attrs; /* the devices answer with everything at once */
	int rc = wifi_miio_get(w, device_id);
	if (rc == -ENOENT)
		rc = wifi_yl_get(w, device_id);
	return rc;
}

static int wifi_permit_join(void *state, unsigned seconds)
{
	struct wifi *w = state;
	if (seconds == 0)
		return 0;
	if (!w->opt.discovery) {
		w->host->log(w->ctx, HEARTH_LOG_INFO,
			     "permit_join: discovery is off; list devices in miio_devices and "
			     "yeelight_devices");
		return 0;
	}
	w->host->log(w->ctx, HEARTH_LOG_INFO, "permit_join: searching the LAN for devices");
	discover(w);
	return 0;
}

/* ---- descriptor and entry ------------------------------------------------ */

static const struct hearth_option wifi_options[] = {
	{"discovery", "true",
	 "Find devices by miIO hello broadcast and Yeelight SSDP multicast (found miIO devices are "
	 "logged so their tokens can be added; found bulbs are added)"},
	{"discovery_interval_s", "600",
	 "Seconds between discovery rounds; 0: only at start and on permit_join"},
	{"miio_devices", NULL,
	 "JSON file listing miIO devices with their tokens; must be readable by hearth alone"},
	{"yeelight_devices", NULL, "Yeelight bulbs as host[:port], comma-separated (port 55443)"},
	{"poll_interval_s", "30", "Seconds between state polls of each device (jittered)"},
	{"timeout_ms", "1000", "Milliseconds to wait for an answer before a retry (doubles)"},
	{"retries", "2", "Retries of a miIO request before the device counts as unavailable"},
	{"backoff_max_s", "60", "Longest wait between attempts to reach an unavailable device"},
	{"yeelight_discovery_port", "1982",
	 "UDP port unicast searches to listed bulbs are sent to"},
	{"yeelight_quota", "60", "Commands per minute sent to one bulb at most"},
	{NULL, NULL, NULL},
};

static const struct hearth_plugin wifi_plugin = {
	.struct_size = sizeof(struct hearth_plugin),
	.abi_version = HEARTH_ABI_VERSION(1, 1),
	.name = WIFI_PLUGIN_NAME,
	.version = WIFI_VERSION,
	.description = "Xiaomi miIO devices and Yeelight bulbs on the LAN, without the cloud",
	.options = wifi_options,
	.init = wifi_init,
	.start = wifi_start,
	.stop = wifi_stop,
	.command = wifi_command,
	.permit_join = wifi_permit_join,
	.get = wifi_get,
	.flags = HEARTH_PLUGIN_RETRY_SAFE,
};

HEARTH_PLUGIN_EXPORT const struct hearth_plugin *hearth_plugin_entry(const uint32_t *host_versions,
								    size_t n_versions)
{
	for (size_t i = 0; host_versions && i < n_versions; i++)
		if (HEARTH_ABI_VERSION_MAJOR(host_versions[i]) == HEARTH_ABI_MAJOR)
			return &wifi_plugin;
	return NULL;
}
