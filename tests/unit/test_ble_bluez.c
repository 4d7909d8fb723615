/*
 * The bluez source (plugins/ble/bluez.c, compiled in) against a fake
 * bluetoothd on a private bus.
 *
 * A dbus-daemon is started on a socket in a temp dir (skipped, with the
 * package to install, if dbus-daemon is missing). The fake bluetoothd is a
 * child process using sd-bus: it owns org.bluez, exports an ObjectManager
 * with /org/bluez/hci0 (Adapter1, AdvertisementMonitorManager1) and
 * devices (Device1 with Address, RSSI, ServiceData), takes commands on a
 * pipe (emit an advertisement, remove or add the adapter, power it off or
 * on, quit) and reports what clients did to it on another pipe (discovery
 * filter, StartDiscovery, a registered monitor's Type and Patterns, read
 * back from the client like bluetoothd does).
 *
 * The source runs under a fake host whose loop polls its fd watches and
 * real-time timers; every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "../../plugins/ble/ad.c"
#include "../../plugins/ble/bluez.c"

#define WAIT_MS 5000

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ===== the fake bluetoothd (child process) ===================================== */

#define FB_DEVS 4

struct fb_dev {
	bool used;
	char path[64];
	char address[18];
	int16_t rssi;
	uint16_t uuid;
	uint8_t data[64];
	size_t len;
	sd_bus_slot *slot;
};

struct fb {
	sd_bus *bus;
	int report_fd;
	bool powered;
	sd_bus_slot *adapter_slot, *manager_slot;
	struct fb_dev devs[FB_DEVS];
	char monitor_owner[64], monitor_path[128];
};

static void fb_report(struct fb *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fb_report(struct fb *f, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(f->report_fd, line, (size_t)n) < 0)
		_exit(3);
}

static int fb_set_filter(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct fb *f = user;
	(void)err;
	char transport[16] = "";
	int dup = -1;
	if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
		return -EINVAL;
	while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
		const char *key, *text;
		int b;
		if (sd_bus_message_read(m, "s", &key) < 0)
			return -EINVAL;
		if (strcmp(key, "Transport") == 0 && sd_bus_message_read(m, "v", "s", &text) >= 0)
			snprintf(transport, sizeof(transport), "%s", text);
		else if (strcmp(key, "DuplicateData") == 0 && sd_bus_message_read(m, "v", "b", &b) >= 0)
			dup = b;
		else
			sd_bus_message_skip(m, "v");
		sd_bus_message_exit_container(m);
	}
	sd_bus_message_exit_container(m);
	fb_report(f, "filter transport=%s duplicate=%d", transport, dup);
	return sd_bus_reply_method_return(m, "");
}

static int fb_start(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct fb *f = user;
	if (!f->powered)
		return sd_bus_error_set(err, "org.bluez.Error.NotReady", "Resource Not Ready");
	fb_report(f, "start");
	return sd_bus_reply_method_return(m, "");
}

static int fb_stop(sd_bus_message *m, void *user, sd_bus_error *err)
{
	(void)err;
	fb_report(user, "stop");
	return sd_bus_reply_method_return(m, "");
}

static int fb_powered(sd_bus *bus, const char *path, const char *iface, const char *prop,
		      sd_bus_message *reply, void *user, sd_bus_error *err)
{
	(void)bus, (void)path, (void)iface, (void)prop, (void)err;
	struct fb *f = user;
	return sd_bus_message_append(reply, "b", f->powered);
}

static int fb_on_activated(sd_bus_message *m, void *user, sd_bus_error *err)
{
	(void)err;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	fb_report(user, "activated %s", e ? e->name : "ok");
	return 0;
}

/* What bluetoothd does after RegisterMonitor: read the client's monitors
 * with GetManagedObjects, then Activate them. */
static int fb_on_monitors(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct fb *f = user;
	(void)err;
	if (sd_bus_message_get_error(m)) {
		fb_report(f, "monitor-objects error %s", sd_bus_message_get_error(m)->name);
		return 0;
	}
	char type[32] = "", patterns[256] = "", path_seen[128] = "";
	sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
	while (sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}") > 0) {
		const char *path;
		sd_bus_message_read(m, "o", &path);
		sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
		while (sd_bus_message_enter_container(m, 'e', "sa{sv}") > 0) {
			const char *iface;
			sd_bus_message_read(m, "s", &iface);
			bool monitor = strcmp(iface, "org.bluez.AdvertisementMonitor1") == 0;
			if (monitor)
				snprintf(path_seen, sizeof(path_seen), "%s", path);
			sd_bus_message_enter_container(m, 'a', "{sv}");
			while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
				const char *key, *t;
				sd_bus_message_read(m, "s", &key);
				if (monitor && strcmp(key, "Type") == 0 &&
				    sd_bus_message_read(m, "v", "s", &t) >= 0) {
					snprintf(type, sizeof(type), "%s", t);
				} else if (monitor && strcmp(key, "Patterns") == 0) {
					sd_bus_message_enter_container(m, 'v', "a(yyay)");
					sd_bus_message_enter_container(m, 'a', "(yyay)");
					while (sd_bus_message_enter_container(m, 'r', "yyay") > 0) {
						uint8_t start, ad_type;
						const uint8_t *content;
						size_t n;
						sd_bus_message_read(m, "yy", &start, &ad_type);
						sd_bus_message_read_array(m, 'y', (const void **)&content, &n);
						size_t used = strlen(patterns);
						snprintf(patterns + used, sizeof(patterns) - used,
							 "%s%u:%02x:", used ? "," : "", start, ad_type);
						for (size_t i = 0; i < n; i++) {
							used = strlen(patterns);
							snprintf(patterns + used, sizeof(patterns) - used,
								 "%02x", content[i]);
						}
						sd_bus_message_exit_container(m);
					}
					sd_bus_message_exit_container(m);
					sd_bus_message_exit_container(m);
				} else {
					sd_bus_message_skip(m, "v");
				}
				sd_bus_message_exit_container(m);
			}
			sd_bus_message_exit_container(m);
			sd_bus_message_exit_container(m);
		}
		sd_bus_message_exit_container(m);
		sd_bus_message_exit_container(m);
	}
	fb_report(f, "monitor path=%s type=%s patterns=%s", path_seen, type, patterns);
	if (path_seen[0])
		sd_bus_call_method_async(f->bus, NULL, f->monitor_owner, path_seen,
					 "org.bluez.AdvertisementMonitor1", "Activate",
					 fb_on_activated, f, "");
	return 0;
}

static int fb_register(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct fb *f = user;
	(void)err;
	const char *path;
	if (sd_bus_message_read(m, "o", &path) < 0)
		return -EINVAL;
	snprintf(f->monitor_owner, sizeof(f->monitor_owner), "%s", sd_bus_message_get_sender(m));
	snprintf(f->monitor_path, sizeof(f->monitor_path), "%s", path);
	fb_report(f, "register %s", path);
	int r = sd_bus_reply_method_return(m, "");
	sd_bus_call_method_async(f->bus, NULL, f->monitor_owner, f->monitor_path,
				 "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
				 fb_on_monitors, f, "");
	return r;
}

static int fb_unregister(sd_bus_message *m, void *user, sd_bus_error *err)
{
	(void)user, (void)err;
	return sd_bus_reply_method_return(m, "");
}

static const sd_bus_vtable fb_adapter_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("SetDiscoveryFilter", "a{sv}", "", fb_set_filter, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("StartDiscovery", "", "", fb_start, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("StopDiscovery", "", "", fb_stop, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Powered", "b", fb_powered, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_VTABLE_END,
};

static const sd_bus_vtable fb_manager_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("RegisterMonitor", "o", "", fb_register, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("UnregisterMonitor", "o", "", fb_unregister, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END,
};

static int fb_dev_prop(sd_bus *bus, const char *path, const char *iface, const char *prop,
		       sd_bus_message *reply, void *user, sd_bus_error *err)
{
	(void)bus, (void)path, (void)iface, (void)err;
	struct fb_dev *d = user;
	if (strcmp(prop, "Address") == 0)
		return sd_bus_message_append(reply, "s", d->address);
	if (strcmp(prop, "RSSI") == 0)
		return sd_bus_message_append(reply, "n", d->rssi);
	char uuid[40];
	snprintf(uuid, sizeof(uuid), "0000%04x-0000-1000-8000-00805f9b34fb", d->uuid);
	int r = sd_bus_message_open_container(reply, 'a', "{sv}");
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'e', "sv");
	if (r >= 0)
		r = sd_bus_message_append(reply, "s", uuid);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'v', "ay");
	if (r >= 0)
		r = sd_bus_message_append_array(reply, 'y', d->data, d->len);
	for (int i = 0; i < 3 && r >= 0; i++)
		r = sd_bus_message_close_container(reply);
	return r;
}

static const sd_bus_vtable fb_device_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Address", "s", fb_dev_prop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("RSSI", "n", fb_dev_prop, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("ServiceData", "a{sv}", fb_dev_prop, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_VTABLE_END,
};

static void fb_add_adapter(struct fb *f)
{
	sd_bus_add_object_vtable(f->bus, &f->adapter_slot, "/org/bluez/hci0", "org.bluez.Adapter1",
				 fb_adapter_vtable, f);
	sd_bus_add_object_vtable(f->bus, &f->manager_slot, "/org/bluez/hci0",
				 "org.bluez.AdvertisementMonitorManager1", fb_manager_vtable, f);
}

static struct fb_dev *fb_device(struct fb *f, const char *mac, bool *fresh)
{
	char path[64];
	snprintf(path, sizeof(path), "/org/bluez/hci0/dev_%s", mac);
	for (char *p = path; *p; p++)
		if (*p == ':')
			*p = '_';
	struct fb_dev *free_slot = NULL;
	for (int i = 0; i < FB_DEVS; i++) {
		if (f->devs[i].used && strcasecmp(f->devs[i].path, path) == 0)
			return *fresh = false, &f->devs[i];
		if (!f->devs[i].used && !free_slot)
			free_slot = &f->devs[i];
	}
	if (!free_slot)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = true;
	snprintf(free_slot->path, sizeof(free_slot->path), "%s", path);
	snprintf(free_slot->address, sizeof(free_slot->address), "%s", mac);
	*fresh = true;
	return free_slot;
}

/* "adv MAC RSSI UUID16 HEX", "rssi MAC RSSI", "remove-adapter", "add-adapter",
 * "power 0|1". */
static void fb_command(struct fb *f, char *cmd)
{
	char mac[18] = "", hexd[130] = "";
	int rssi = 0;
	unsigned uuid = 0;
	bool fresh = false;
	if (sscanf(cmd, "adv %17s %d %x %129s", mac, &rssi, &uuid, hexd) == 4) {
		struct fb_dev *d = fb_device(f, mac, &fresh);
		if (!d)
			return;
		d->rssi = (int16_t)rssi;
		d->uuid = (uint16_t)uuid;
		int n = ble_hex_decode(hexd, strlen(hexd), d->data, sizeof(d->data));
		d->len = n > 0 ? (size_t)n : 0;
		if (fresh) {
			sd_bus_add_object_vtable(f->bus, &d->slot, d->path, "org.bluez.Device1",
						 fb_device_vtable, d);
			sd_bus_emit_object_added(f->bus, d->path);
		} else {
			sd_bus_emit_properties_changed(f->bus, d->path, "org.bluez.Device1",
						       "ServiceData", "RSSI", NULL);
		}
	} else if (sscanf(cmd, "rssi %17s %d", mac, &rssi) == 2) {
		struct fb_dev *d = fb_device(f, mac, &fresh);
		if (d && !fresh) {
			d->rssi = (int16_t)rssi;
			sd_bus_emit_properties_changed(f->bus, d->path, "org.bluez.Device1", "RSSI",
						       NULL);
		}
	} else if (strcmp(cmd, "remove-adapter") == 0) {
		sd_bus_emit_object_removed(f->bus, "/org/bluez/hci0");
		f->adapter_slot = sd_bus_slot_unref(f->adapter_slot);
		f->manager_slot = sd_bus_slot_unref(f->manager_slot);
	} else if (strcmp(cmd, "add-adapter") == 0) {
		fb_add_adapter(f);
		sd_bus_emit_object_added(f->bus, "/org/bluez/hci0");
	} else if (sscanf(cmd, "power %d", &rssi) == 1) {
		f->powered = rssi != 0;
		sd_bus_emit_properties_changed(f->bus, "/org/bluez/hci0", "org.bluez.Adapter1",
					       "Powered", NULL);
	}
	sd_bus_flush(f->bus);
}

static void fb_run(const char *address, int cmd_fd, int report_fd)
{
	struct fb f = {.report_fd = report_fd, .powered = true};
	if (sd_bus_new(&f.bus) < 0 || sd_bus_set_address(f.bus, address) < 0 ||
	    sd_bus_set_bus_client(f.bus, 1) < 0 || sd_bus_start(f.bus) < 0)
		_exit(2);
	sd_bus_add_object_manager(f.bus, NULL, "/");
	fb_add_adapter(&f);
	if (sd_bus_request_name(f.bus, "org.bluez", 0) < 0)
		_exit(2);
	fb_report(&f, "ready");
	char buf[1024];
	size_t used = 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = sd_bus_get_fd(f.bus), .events = (short)sd_bus_get_events(f.bus)},
				      {.fd = cmd_fd, .events = POLLIN}};
		poll(p, 2, 20);
		while (sd_bus_process(f.bus, NULL) > 0)
			;
		if (!(p[1].revents & (POLLIN | POLLHUP)))
			continue;
		ssize_t n = read(cmd_fd, buf + used, sizeof(buf) - used - 1);
		if (n <= 0)
			_exit(0);
		used += (size_t)n;
		buf[used] = '\0';
		char *nl;
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			if (strcmp(buf, "quit") == 0)
				_exit(0);
			fb_command(&f, buf);
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used + 1);
		}
	}
}

/* ===== the test side ============================================================== */

#define MAX_WATCHES 4
#define MAX_TIMERS 8
#define MAX_LOGS 512
#define MAX_ADVERTS 64

struct fake_watch {
	bool used;
	int fd;
	unsigned events;
	hearth_fd_cb cb;
	void *user;
};

struct fake_timer {
	bool used, armed;
	int64_t due;
	uint64_t repeat;
	hearth_timer_cb cb;
	void *user;
};

struct got_advert {
	uint8_t mac[6];
	bool has_rssi;
	int rssi;
	uint8_t ad[BLE_AD_MAX];
	size_t len;
};

static struct {
	struct fake_watch watches[MAX_WATCHES];
	struct fake_timer timers[MAX_TIMERS];
	char logs[MAX_LOGS][300];
	size_t n_logs;
	struct got_advert adverts[MAX_ADVERTS];
	size_t n_adverts;
	char reports[8192];
	size_t reports_len;
} fh;

static struct {
	char dir[64];
	char address[128];
	pid_t daemon;
	pid_t bluez;
	int cmd_fd, report_fd;
} bus_env;

static int hctx;
#define HCTX ((hearth_plugin_ctx *)&hctx)

static void h_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void h_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
{
	(void)ctx, (void)level;
	if (fh.n_logs >= MAX_LOGS)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fh.logs[fh.n_logs++], sizeof(fh.logs[0]), fmt, ap);
	va_end(ap);
}

static int h_timer_start(hearth_plugin_ctx *ctx, uint64_t timeout_ms, uint64_t repeat_ms,
			 hearth_timer_cb cb, void *user, hearth_timer **out)
{
	(void)ctx;
	for (int i = 0; i < MAX_TIMERS; i++) {
		if (fh.timers[i].used)
			continue;
		fh.timers[i] = (struct fake_timer){true, true, mono_ms() + (int64_t)timeout_ms,
						   repeat_ms, cb, user};
		*out = (hearth_timer *)&fh.timers[i];
		return 0;
	}
	return -ENOMEM;
}

static int h_timer_again(hearth_plugin_ctx *ctx, hearth_timer *timer, uint64_t timeout_ms,
			 uint64_t repeat_ms)
{
	(void)ctx;
	struct fake_timer *t = (struct fake_timer *)timer;
	t->armed = true;
	t->due = mono_ms() + (int64_t)timeout_ms;
	t->repeat = repeat_ms;
	return 0;
}

static void h_timer_stop(hearth_plugin_ctx *ctx, hearth_timer *timer)
{
	(void)ctx;
	if (timer)
		memset(timer, 0, sizeof(struct fake_timer));
}

static int h_fd_watch(hearth_plugin_ctx *ctx, int fd, unsigned events, hearth_fd_cb cb, void *user,
		      hearth_watch **out)
{
	(void)ctx;
	for (int i = 0; i < MAX_WATCHES; i++) {
		if (fh.watches[i].used)
			continue;
		fh.watches[i] = (struct fake_watch){true, fd, events, cb, user};
		*out = (hearth_watch *)&fh.watches[i];
		return 0;
	}
	return -ENOMEM;
}

static int h_fd_modify(hearth_plugin_ctx *ctx, hearth_watch *w, unsigned events)
{
	(void)ctx;
	((struct fake_watch *)w)->events = events;
	return 0;
}

static void h_fd_unwatch(hearth_plugin_ctx *ctx, hearth_watch *w)
{
	(void)ctx;
	if (w)
		memset(w, 0, sizeof(struct fake_watch));
}

static int64_t h_now_ms(hearth_plugin_ctx *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct hearth_host fake_host = {
	.size = sizeof(struct hearth_host),
	.abi_minor = HEARTH_ABI_MINOR,
	.log = h_log,
	.timer_start = h_timer_start,
	.timer_again = h_timer_again,
	.timer_stop = h_timer_stop,
	.fd_watch = h_fd_watch,
	.fd_modify = h_fd_modify,
	.fd_unwatch = h_fd_unwatch,
	.now_ms = h_now_ms,
};

static void on_advert(void *user, const struct ble_advert *adv)
{
	(void)user;
	if (fh.n_adverts >= MAX_ADVERTS)
		return;
	struct got_advert *g = &fh.adverts[fh.n_adverts++];
	memcpy(g->mac, adv->mac, 6);
	g->has_rssi = adv->has_rssi;
	g->rssi = adv->rssi;
	g->len = adv->ad_len;
	memcpy(g->ad, adv->ad, adv->ad_len);
}

static void read_reports(void)
{
	for (;;) {
		size_t room = sizeof(fh.reports) - fh.reports_len - 1;
		if (room == 0)
			return;
		ssize_t n = read(bus_env.report_fd, fh.reports + fh.reports_len, room);
		if (n <= 0)
			return;
		fh.reports_len += (size_t)n;
		fh.reports[fh.reports_len] = '\0';
	}
}

static size_t count_in(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static size_t reported(const char *text)
{
	return count_in(fh.reports, text);
}

static size_t logged(const char *text)
{
	size_t n = 0;
	for (size_t i = 0; i < fh.n_logs; i++)
		n += strstr(fh.logs[i], text) != NULL;
	return n;
}

/* One turn of the fake host's loop. */
static void loop_once(int max_wait_ms)
{
	struct pollfd p[MAX_WATCHES + 1];
	int idx[MAX_WATCHES + 1], n = 0;
	int64_t now = mono_ms(), wait = max_wait_ms;
	for (int i = 0; i < MAX_TIMERS; i++)
		if (fh.timers[i].used && fh.timers[i].armed && fh.timers[i].due - now < wait)
			wait = fh.timers[i].due - now;
	for (int i = 0; i < MAX_WATCHES; i++) {
		if (!fh.watches[i].used)
			continue;
		short ev = 0;
		if (fh.watches[i].events & HEARTH_FD_READ)
			ev |= POLLIN;
		if (fh.watches[i].events & HEARTH_FD_WRITE)
			ev |= POLLOUT;
		p[n] = (struct pollfd){.fd = fh.watches[i].fd, .events = ev};
		idx[n++] = i;
	}
	if (bus_env.report_fd >= 0) {
		p[n] = (struct pollfd){.fd = bus_env.report_fd, .events = POLLIN};
		idx[n++] = -1;
	}
	poll(p, (nfds_t)n, wait < 0 ? 0 : (int)wait);
	read_reports();
	for (int k = 0; k < n; k++) {
		struct fake_watch *w = idx[k] >= 0 ? &fh.watches[idx[k]] : NULL;
		if (!w || !p[k].revents || !w->used || w->fd != p[k].fd)
			continue;
		unsigned ev = 0;
		if (p[k].revents & POLLIN)
			ev |= HEARTH_FD_READ;
		if (p[k].revents & POLLOUT)
			ev |= HEARTH_FD_WRITE;
		if (p[k].revents & (POLLERR | POLLHUP))
			ev |= HEARTH_FD_ERROR | HEARTH_FD_READ;
		w->cb(w->user, w->fd, ev);
	}
	now = mono_ms();
	for (int i = 0; i < MAX_TIMERS; i++) {
		struct fake_timer *t = &fh.timers[i];
		if (!t->used || !t->armed || t->due > now)
			continue;
		t->armed = t->repeat != 0;
		t->due = now + (int64_t)t->repeat;
		t->cb(t->user);
	}
}

static bool run_until(bool (*done)(const void *), const void *arg, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	while (mono_ms() < end) {
		if (done(arg))
			return true;
		loop_once(20);
	}
	return done(arg);
}

static bool has_report(const void *text)
{
	return reported(text) > 0;
}

static bool has_log(const void *text)
{
	return logged(text) > 0;
}

struct count_wait {
	const char *text;
	size_t n;
};

static bool report_count(const void *arg)
{
	const struct count_wait *w = arg;
	return reported(w->text) >= w->n;
}

static bool advert_count(const void *arg)
{
	return fh.n_adverts >= *(const size_t *)arg;
}

static void pump(int ms)
{
	int64_t end = mono_ms() + ms;
	while (mono_ms() < end)
		loop_once(10);
}

/* ---- the bus and the fake bluetoothd ------------------------------------------ */

static bool socket_ready(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a.sun_path))
		return false;
	memcpy(a.sun_path, path, strlen(path) + 1);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int daemon_start(void)
{
	char path[128], arg[160];
	snprintf(path, sizeof(path), "%s/bus", bus_env.dir);
	unlink(path);
	snprintf(arg, sizeof(arg), "--address=unix:path=%s", path);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		dup2(null, 1);
		dup2(null, 2);
		execlp("dbus-daemon", "dbus-daemon", "--session", "--nofork", "--nopidfile", arg,
		       (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	bus_env.daemon = pid;
	for (int i = 0; i < 250; i++) {
		if (socket_ready(path))
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		nap_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	bus_env.daemon = 0;
	return -1;
}

static void reap(pid_t *pid, int sig)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	for (int i = 0; i < 200; i++) {
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		nap_ms(10);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

static void bluez_stop(int sig)
{
	if (bus_env.cmd_fd >= 0)
		close(bus_env.cmd_fd);
	bus_env.cmd_fd = -1;
	reap(&bus_env.bluez, sig);
	read_reports();
	if (bus_env.report_fd >= 0)
		close(bus_env.report_fd);
	bus_env.report_fd = -1;
}

/* A fresh fake bluetoothd; its earlier reports are forgotten. */
static void bluez_start(void)
{
	int cmd[2], rep[2];
	assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		fb_run(bus_env.address, cmd[0], rep[1]);
		_exit(0);
	}
	close(cmd[0]);
	close(rep[1]);
	fcntl(rep[0], F_SETFL, O_NONBLOCK);
	bus_env.bluez = pid;
	bus_env.cmd_fd = cmd[1];
	bus_env.report_fd = rep[0];
	fh.reports_len = 0;
	fh.reports[0] = '\0';
	assert_true(run_until(has_report, "ready", WAIT_MS));
}

static void bluez_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bluez_cmd(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	assert_int_equal(write(bus_env.cmd_fd, line, (size_t)n), n);
}

static struct ble_source *source;

static void source_start(bool active)
{
	struct ble_source_env env = {
		.host = &fake_host,
		.ctx = HCTX,
		.deliver = on_advert,
		.adapter = "hci0",
		.active = active,
		.dbus_address = bus_env.address,
	};
	assert_int_equal(ble_source_bluez.open(&env, NULL, &source), 0);
	assert_int_equal(ble_source_bluez.start(source), 0);
}

static bool have_daemon;

/* cmocka's skip(), with the reason, when there is no dbus-daemon. */
#define NEED_BUS()                                                                              \
	do {                                                                                    \
		if (!have_daemon) {                                                             \
			print_message("dbus-daemon is not installed (Debian package "          \
				      "dbus-daemon): skipped\n");                              \
			skip();                                                                 \
		}                                                                               \
	} while (0)

static int setup(void **state)
{
	(void)state;
	memset(&fh, 0, sizeof(fh));
	bus_env.cmd_fd = bus_env.report_fd = -1;
	bus_env.dir[0] = '\0';
	if (!have_daemon)
		return 0;
	snprintf(bus_env.dir, sizeof(bus_env.dir), "/tmp/hearth-blebus-XXXXXX");
	assert_non_null(mkdtemp(bus_env.dir));
	snprintf(bus_env.address, sizeof(bus_env.address), "unix:path=%s/bus", bus_env.dir);
	if (daemon_start() != 0) {
		rmdir(bus_env.dir);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (source)
		ble_source_bluez.close(source);
	source = NULL;
	bluez_stop(SIGTERM);
	reap(&bus_env.daemon, SIGTERM);
	if (bus_env.dir[0]) {
		char path[128];
		snprintf(path, sizeof(path), "%s/bus", bus_env.dir);
		unlink(path);
		rmdir(bus_env.dir);
	}
	for (int i = 0; i < MAX_WATCHES; i++)
		assert_false(fh.watches[i].used); /* close released everything */
	for (int i = 0; i < MAX_TIMERS; i++)
		assert_false(fh.timers[i].used);
	return 0;
}

static void dump_logs(void)
{
	for (size_t i = 0; i < fh.n_logs; i++)
		print_message("  log: %s\n", fh.logs[i]);
	print_message("  bluez: %s\n", fh.reports);
}

#define EXPECT(cond)                                                                            \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			dump_logs();                                                            \
			fail_msg("%s", #cond);                                                  \
		}                                                                               \
	} while (0)

/* ---- tests -------------------------------------------------------------------------- */

static void test_active_discovery_and_adverts(void **state)
{
	(void)state;
	NEED_BUS();
	bluez_start();
	source_start(true);
	EXPECT(run_until(has_report, "start", WAIT_MS));
	EXPECT(reported("filter transport=le duplicate=1") == 1);
	EXPECT(run_until(has_log, "active discovery started", WAIT_MS));

	bluez_cmd("adv A4:C1:38:8D:18:B2 -60 fcd2 4002ca0903bf13");
	size_t want = 1;
	EXPECT(run_until(advert_count, &want, WAIT_MS));
	struct got_advert *g = &fh.adverts[0];
	uint8_t mac[6];
	ble_mac_parse("a4:c1:38:8d:18:b2", mac);
	assert_memory_equal(g->mac, mac, 6);
	assert_true(g->has_rssi);
	assert_int_equal(g->rssi, -60);
	size_t n;
	const uint8_t *sd = ble_ad_service_data(g->ad, g->len, 0xfcd2, &n);
	assert_non_null(sd);
	assert_int_equal(n, 7);
	assert_memory_equal(sd, "\x40\x02\xca\x09\x03\xbf\x13", 7);

	/* a change of data: PropertiesChanged */
	bluez_cmd("adv A4:C1:38:8D:18:B2 -61 fcd2 4002cb09");
	want = 2;
	EXPECT(run_until(advert_count, &want, WAIT_MS));
	sd = ble_ad_service_data(fh.adverts[1].ad, fh.adverts[1].len, 0xfcd2, &n);
	assert_non_null(sd);
	assert_int_equal(n, 4);
	assert_memory_equal(sd, "\x40\x02\xcb\x09", 4);
	assert_int_equal(fh.adverts[1].rssi, -61);
	/* an RSSI change alone is a sign of life without data */
	bluez_cmd("rssi A4:C1:38:8D:18:B2 -70");
	want = 3;
	EXPECT(run_until(advert_count, &want, WAIT_MS));
	assert_int_equal(fh.adverts[2].len, 0);
	assert_int_equal(fh.adverts[2].rssi, -70);
	/* MiBeacon and the 0x181A formats come through the same way */
	bluez_cmd("adv 58:2D:34:35:93:21 -55 fe95 5020aa01da219335342d580d1004fe004802");
	want = 4;
	EXPECT(run_until(advert_count, &want, WAIT_MS));
	assert_non_null(ble_ad_service_data(fh.adverts[3].ad, fh.adverts[3].len, 0xfe95, &n));
}

/* The adapter goes away and comes back; it is powered off and on; each
 * time discovery is armed again. */
static void test_adapter_reset_and_power(void **state)
{
	(void)state;
	NEED_BUS();
	bluez_start();
	source_start(true);
	struct count_wait w = {"start", 1};
	EXPECT(run_until(report_count, &w, WAIT_MS));
	bluez_cmd("remove-adapter");
	EXPECT(run_until(has_log, "adapter removed", WAIT_MS));
	bluez_cmd("add-adapter");
	w.n = 2;
	EXPECT(run_until(report_count, &w, WAIT_MS));
	EXPECT(logged("adapter appeared") == 1);

	bluez_cmd("power 0");
	EXPECT(run_until(has_log, "adapter powered off", WAIT_MS));
	pump(100);
	EXPECT(reported("start") == 2);
	bluez_cmd("power 1");
	w.n = 3;
	EXPECT(run_until(report_count, &w, WAIT_MS));
}

/* bluetoothd dies and another one starts: discovery is armed on it. */
static void test_bluetoothd_restart(void **state)
{
	(void)state;
	NEED_BUS();
	bluez_start();
	source_start(true);
	EXPECT(run_until(has_report, "start", WAIT_MS));
	bluez_stop(SIGKILL);
	EXPECT(run_until(has_log, "bluetoothd left the bus", WAIT_MS));
	bluez_start();
	EXPECT(run_until(has_report, "start", WAIT_MS));
	EXPECT(reported("filter transport=le") == 1);
	bluez_cmd("adv A4:C1:38:8D:18:B2 -60 fcd2 4002ca09");
	size_t want = 1;
	EXPECT(run_until(advert_count, &want, WAIT_MS));
}

/* No bluetoothd when the source starts: it waits, then arms. */
static void test_bluetoothd_late(void **state)
{
	(void)state;
	NEED_BUS();
	source_start(true);
	EXPECT(run_until(has_log, "bluetoothd not reachable", WAIT_MS));
	bluez_start();
	EXPECT(run_until(has_report, "start", WAIT_MS));
}

/* discovery = false: a passive advertisement monitor, which bluetoothd
 * reads back with the patterns of the three service-data UUIDs. */
static void test_passive_monitor(void **state)
{
	(void)state;
	NEED_BUS();
	bluez_start();
	source_start(false);
	EXPECT(run_until(has_report, "activated", WAIT_MS));
	EXPECT(reported("register /org/hearth/ble") == 1);
	EXPECT(reported("monitor path=/org/hearth/ble/monitor0 type=or_patterns "
			"patterns=0:16:d2fc,0:16:95fe,0:16:1a18") == 1);
	EXPECT(reported("activated ok") == 1);
	EXPECT(reported("start") == 0); /* no active scan */
	EXPECT(logged("passive scanning with an advertisement monitor") == 1);
	bluez_cmd("adv A4:C1:38:8D:18:B2 -60 fcd2 4002ca09");
	size_t want = 1;
	EXPECT(run_until(advert_count, &want, WAIT_MS));
}

/* The bus itself restarts: the source reconnects and arms again. */
static void test_bus_restart(void **state)
{
	(void)state;
	NEED_BUS();
	bluez_start();
	source_start(true);
	EXPECT(run_until(has_report, "start", WAIT_MS));
	bluez_stop(SIGKILL);
	reap(&bus_env.daemon, SIGTERM);
	EXPECT(run_until(has_log, "D-Bus connection lost", WAIT_MS));
	assert_int_equal(daemon_start(), 0);
	bluez_start();
	EXPECT(run_until(has_report, "start", 3 * WAIT_MS));
}

static void test_path_and_uuid_helpers(void **state)
{
	(void)state;
	uint8_t mac[6];
	assert_int_equal(bluez_path_mac("/org/bluez/hci0/dev_A4_C1_38_8D_18_B2", "hci0", mac), 0);
	assert_int_equal(mac[0], 0xa4);
	assert_int_equal(mac[5], 0xb2);
	assert_int_equal(bluez_path_mac("/org/bluez/hci1/dev_A4_C1_38_8D_18_B2", "hci0", mac),
			 -EINVAL);
	assert_int_equal(bluez_path_mac("/org/bluez/hci0/dev_A4_C1_38_8D_18_B2/service0001", "hci0",
					mac),
			 -EINVAL);
	assert_int_equal(bluez_path_mac("/org/bluez/hci0/dev_A4:C1:38:8D:18:B2", "hci0", mac),
			 -EINVAL);
	assert_int_equal(bluez_uuid16("0000fcd2-0000-1000-8000-00805f9b34fb"), 0xfcd2);
	assert_int_equal(bluez_uuid16("0000FE95-0000-1000-8000-00805F9B34FB"), 0xfe95);
	assert_int_equal(bluez_uuid16("1234fcd2-0000-1000-8000-00805f9b34fb"), -EINVAL);
	assert_int_equal(bluez_uuid16("0000fcd2-0000-1000-8000-00805f9b34fc"), -EINVAL);
	assert_int_equal(bluez_uuid16("fcd2"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest helpers[] = {
		cmocka_unit_test(test_path_and_uuid_helpers),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_active_discovery_and_adverts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adapter_reset_and_power, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bluetoothd_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bluetoothd_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passive_monitor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bus_restart, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	have_daemon = system("command -v dbus-daemon >/dev/null 2>&1") == 0;
	int failed = cmocka_run_group_tests_name("bluez_helpers", helpers, NULL, NULL);
	return failed + cmocka_run_group_tests_name("bluez_source", tests, NULL, NULL);
}
