/*
 * The wifi plugin loaded with dlopen() as the hub loads it, driven through
 * a fake host table, against devices played by this test on 127.0.0.1: a
 * miIO plug (with the plugin's own codec, compiled in here) and a Yeelight
 * bulb (TCP control plus a UDP search answer).
 *
 * The fake host runs a small poll() loop over the plugin's fd watches and
 * the test's device sockets. Its clock is virtual: it follows real time
 * while there is traffic and jumps to the next timer when nothing moves,
 * so retries, back-off and a bulb's one-minute quota take no real time.
 * Like libuv, a watch that reports HEARTH_FD_ERROR stops until re-armed.
 *
 * The plugin is $B/plugins/wifi.so (B defaults to "build").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hearth/plugin.h>

#include "../../plugins/wifi/miio_codec.c"

#define TOKEN "00112233445566778899aabbccddeeff"
#define OTHER_TOKEN "ffeeddccbbaa99887766554433221100"
#define DID 4242
#define MAX_WATCHES 32
#define MAX_TIMERS 64
#define MAX_WORKS 8
#define MAX_DONE 64
#define MAX_ATTRS 256
#define MAX_SIDES 8
#define LOG_MAX 65536
#define TEXT 96

/* ---- the fake host ------------------------------------------------------- */

struct fwatch {
	bool used, active;
	int fd;
	unsigned events;
	hearth_fd_cb cb;
	void *user;
};

struct ftimer {
	bool used, armed;
	int64_t due, repeat;
	hearth_timer_cb cb;
	void *user;
};

struct fwork {
	bool used;
	hearth_work_fn fn;
	hearth_done_fn done;
	void *user;
};

/* The test's own sockets (the devices), served by the same loop. */
struct side {
	int fd;
	void (*cb)(int fd);
};

struct rec_attr {
	char id[TEXT], name[TEXT], value[TEXT];
};

static struct fake {
	int64_t vnow, real_base;
	struct fwatch watches[MAX_WATCHES];
	struct ftimer timers[MAX_TIMERS];
	struct fwork works[MAX_WORKS];
	struct side sides[MAX_SIDES];
	const char *keys[16], *values[16];
	size_t n_config;
	char dev_ids[8][TEXT], dev_names[8][TEXT], dev_models[8][TEXT];
	size_t dev_caps[8], n_devs;
	struct rec_attr attrs[MAX_ATTRS]; /* latest value per device and name */
	size_t n_attrs;
	struct {
		char id[TEXT];
		bool online;
	} avail[64];
	size_t n_avail;
	struct {
		uint64_t id;
		int status;
		char error[256];
	} done[MAX_DONE];
	size_t n_done;
	char log[LOG_MAX];
	size_t log_len;
} fk;

static int ctx_anchor;
#define CTX ((hearth_plugin_ctx *)&ctx_anchor)

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void text_copy(char *dst, const char *src)
{
	snprintf(dst, TEXT, "%s", src ? src : "");
}

static int f_device_add(hearth_plugin_ctx *ctx, const struct hearth_device_info *info)
{
	assert_ptr_equal(ctx, CTX);
	assert_int_equal(info->struct_size, sizeof(*info));
	for (size_t i = 0; i < fk.n_devs; i++)
		if (strcmp(fk.dev_ids[i], info->id) == 0) {
			fk.dev_caps[i] = info->n_caps;
			return 0;
		}
	assert_true(fk.n_devs < 8);
	text_copy(fk.dev_ids[fk.n_devs], info->id);
	text_copy(fk.dev_names[fk.n_devs], info->name);
	text_copy(fk.dev_models[fk.n_devs], info->model);
	fk.dev_caps[fk.n_devs++] = info->n_caps;
	return 0;
}

static int f_device_remove(hearth_plugin_ctx *ctx, const char *id)
{
	(void)ctx;
	(void)id;
	return 0;
}

static void value_text(const struct hearth_value *v, char *out)
{
	switch (v->type) {
	case HEARTH_VALUE_BOOL: snprintf(out, TEXT, "%s", v->u.boolean ? "true" : "false"); break;
	case HEARTH_VALUE_NUMBER: snprintf(out, TEXT, "%g", v->u.number); break;
	case HEARTH_VALUE_STRING:
	case HEARTH_VALUE_JSON: snprintf(out, TEXT, "%s", v->u.string); break;
	default: snprintf(out, TEXT, "null"); break;
	}
}

static int f_state_report(hearth_plugin_ctx *ctx, const char *id, const struct hearth_attr *attrs,
			  size_t n)
{
	assert_ptr_equal(ctx, CTX);
	for (size_t k = 0; k < n; k++) {
		struct rec_attr *r = NULL;
		for (size_t i = 0; i < fk.n_attrs && !r; i++)
			if (!strcmp(fk.attrs[i].id, id) && !strcmp(fk.attrs[i].name, attrs[k].name))
				r = &fk.attrs[i];
		if (!r) {
			assert_true(fk.n_attrs < MAX_ATTRS);
			r = &fk.attrs[fk.n_attrs++];
			text_copy(r->id, id);
			text_copy(r->name, attrs[k].name);
		}
		value_text(&attrs[k].value, r->value);
	}
	return 0;
}

static int f_event_report(hearth_plugin_ctx *ctx, const char *id, const char *type,
			  const struct hearth_attr *attrs, size_t n)
{
	(void)ctx, (void)id, (void)type, (void)attrs, (void)n;
	return 0;
}

static int f_availability_set(hearth_plugin_ctx *ctx, const char *id, bool online)
{
	(void)ctx;
	assert_true(fk.n_avail < 64);
	text_copy(fk.avail[fk.n_avail].id, id);
	fk.avail[fk.n_avail++].online = online;
	return 0;
}

static void f_command_done(hearth_plugin_ctx *ctx, uint64_t id, int status, const char *error)
{
	(void)ctx;
	for (size_t i = 0; i < fk.n_done; i++)
		if (fk.done[i].id == id)
			fail_msg("command %llu finished twice", (unsigned long long)id);
	assert_true(fk.n_done < MAX_DONE);
	fk.done[fk.n_done].id = id;
	fk.done[fk.n_done].status = status;
	snprintf(fk.done[fk.n_done++].error, 256, "%s", error ? error : "");
}

static int f_mqtt_subscribe(hearth_plugin_ctx *ctx, const char *f, int q, hearth_mqtt_cb cb, void *u)
{
	(void)ctx, (void)f, (void)q, (void)cb, (void)u;
	return -EPERM;
}

static int f_mqtt_unsubscribe(hearth_plugin_ctx *ctx, const char *f)
{
	(void)ctx, (void)f;
	return -ENOENT;
}

static int f_mqtt_publish(hearth_plugin_ctx *ctx, const char *t, const void *p, size_t n, int q,
			  bool r)
{
	(void)ctx, (void)t, (void)p, (void)n, (void)q, (void)r;
	return -EPERM;
}

static const char *f_config_get(hearth_plugin_ctx *ctx, const char *key)
{
	(void)ctx;
	for (size_t i = 0; i < fk.n_config; i++)
		if (strcmp(fk.keys[i], key) == 0)
			return fk.values[i];
	return NULL;
}

/* As the host: refuse files others may read. */
static int f_secret_read(hearth_plugin_ctx *ctx, const char *path, char *buf, size_t cap)
{
	struct stat st;
	(void)ctx;
	if (stat(path, &st) != 0)
		return -errno;
	if (st.st_mode & 077)
		return -EACCES;
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

static void f_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void f_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
{
	va_list ap;
	(void)ctx;
	(void)level;
	if (fk.log_len + 2 >= LOG_MAX)
		return;
	size_t room = LOG_MAX - fk.log_len - 2;
	va_start(ap, fmt);
	int n = vsnprintf(fk.log + fk.log_len, room + 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		fk.log_len += (size_t)n < room ? (size_t)n : room;
	fk.log[fk.log_len++] = '\n';
	fk.log[fk.log_len] = '\0';
}

static int f_timer_start(hearth_plugin_ctx *ctx, uint64_t timeout, uint64_t repeat,
			 hearth_timer_cb cb, void *user, hearth_timer **out)
{
	(void)ctx;
	for (size_t i = 0; i < MAX_TIMERS; i++) {
		if (fk.timers[i].used)
			continue;
		fk.timers[i] = (struct ftimer){true, true, fk.vnow + (int64_t)timeout,
					       (int64_t)repeat, cb, user};
		*out = (hearth_timer *)&fk.timers[i];
		return 0;
	}
	fail_msg("out of fake timers");
	return -ENOMEM;
}

static int f_timer_again(hearth_plugin_ctx *ctx, hearth_timer *t, uint64_t timeout,
			 uint64_t repeat)
{
	struct ftimer *ft = (struct ftimer *)t;
	(void)ctx;
	assert_true(ft->used);
	ft->armed = true;
	ft->due = fk.vnow + (int64_t)timeout;
	ft->repeat = (int64_t)repeat;
	return 0;
}

static void f_timer_stop(hearth_plugin_ctx *ctx, hearth_timer *t)
{
	(void)ctx;
	if (t)
		memset(t, 0, sizeof(struct ftimer));
}

static int f_fd_watch(hearth_plugin_ctx *ctx, int fd, unsigned events, hearth_fd_cb cb,
		      void *user, hearth_watch **out)
{
	(void)ctx;
	assert_true(fd >= 0);
	for (size_t i = 0; i < MAX_WATCHES; i++) {
		if (fk.watches[i].used)
			continue;
		fk.watches[i] = (struct fwatch){true, true, fd, events, cb, user};
		*out = (hearth_watch *)&fk.watches[i];
		return 0;
	}
	fail_msg("out of fake watches");
	return -ENOMEM;
}

static int f_fd_modify(hearth_plugin_ctx *ctx, hearth_watch *w, unsigned events)
{
	struct fwatch *fw = (struct fwatch *)w;
	(void)ctx;
	assert_true(fw->used);
	fw->events = events;
	fw->active = events != 0;
	return 0;
}

static void f_fd_unwatch(hearth_plugin_ctx *ctx, hearth_watch *w)
{
	(void)ctx;
	if (w)
		memset(w, 0, sizeof(struct fwatch));
}

/* Work runs on the loop's next turn, never inside work_queue. */
static int f_work_queue(hearth_plugin_ctx *ctx, hearth_work_fn fn, hearth_done_fn done, void *user)
{
	(void)ctx;
	for (size_t i = 0; i < MAX_WORKS; i++) {
		if (!fk.works[i].used) {
			fk.works[i] = (struct fwork){true, fn, done, user};
			return 0;
		}
	}
	return -ENOMEM;
}

static int f_post(hearth_plugin_ctx *ctx, hearth_post_fn fn, void *user)
{
	(void)ctx, (void)fn, (void)user;
	return -ESHUTDOWN;
}

static int64_t f_now_ms(hearth_plugin_ctx *ctx)
{
	(void)ctx;
	return fk.vnow;
}

static const struct hearth_host host = {
	.size = sizeof(struct hearth_host),
	.abi_minor = HEARTH_ABI_MINOR,
	.device_add = f_device_add,
	.device_remove = f_device_remove,
	.state_report = f_state_report,
	.event_report = f_event_report,
	.availability_set = f_availability_set,
	.command_done = f_command_done,
	.mqtt_subscribe = f_mqtt_subscribe,
	.mqtt_unsubscribe = f_mqtt_unsubscribe,
	.mqtt_publish = f_mqtt_publish,
	.config_get = f_config_get,
	.secret_read = f_secret_read,
	.log = f_log,
	.timer_start = f_timer_start,
	.timer_again = f_timer_again,
	.timer_stop = f_timer_stop,
	.fd_watch = f_fd_watch,
	.fd_modify = f_fd_modify,
	.fd_unwatch = f_fd_unwatch,
	.work_queue = f_work_queue,
	.post = f_post,
	.now_ms = f_now_ms,
};

/* ---- the loop ------------------------------------------------------------ */

static void run_works(void)
{
	for (size_t i = 0; i < MAX_WORKS; i++) {
		if (!fk.works[i].used)
			continue;
		struct fwork w = fk.works[i];
		fk.works[i].used = false;
		w.fn(w.user);
		if (w.done)
			w.done(w.user, 0);
	}
}

static void fire_timers(void)
{
	for (size_t i = 0; i < MAX_TIMERS; i++) {
		struct ftimer *t = &fk.timers[i];
		if (!t->used || !t->armed || t->due > fk.vnow)
			continue;
		t->armed = t->repeat > 0;
		t->due += t->repeat;
		t->cb(t->user); /* may stop or re-arm t */
	}
}

static int64_t next_due(void)
{
	int64_t next = INT64_MAX;
	for (size_t i = 0; i < MAX_TIMERS; i++)
		if (fk.timers[i].used && fk.timers[i].armed && fk.timers[i].due < next)
			next = fk.timers[i].due;
	return next;
}

static short poll_events(unsigned ev)
{
	return (short)((ev & HEARTH_FD_READ ? POLLIN : 0) | (ev & HEARTH_FD_WRITE ? POLLOUT : 0));
}

/* One turn: I/O for up to 5 ms of real time, then timers. With nothing
 * to do the virtual clock jumps to the next timer (not beyond limit). */
static void turn(int64_t limit)
{
	struct pollfd pfd[MAX_WATCHES + MAX_SIDES];
	size_t idx[MAX_WATCHES + MAX_SIDES];
	nfds_t n = 0;
	for (size_t i = 0; i < MAX_WATCHES; i++)
		if (fk.watches[i].used && fk.watches[i].active) {
			pfd[n] = (struct pollfd){fk.watches[i].fd, poll_events(fk.watches[i].events), 0};
			idx[n++] = i;
		}
	for (size_t i = 0; i < MAX_SIDES; i++)
		if (fk.sides[i].cb) {
			pfd[n] = (struct pollfd){fk.sides[i].fd, POLLIN, 0};
			idx[n++] = MAX_WATCHES + i;
		}
	int64_t start = real_ms();
	int rc = poll(pfd, n, 5);
	fk.vnow += real_ms() - start;
	for (nfds_t k = 0; rc > 0 && k < n; k++) {
		if (!pfd[k].revents)
			continue;
		if (idx[k] >= MAX_WATCHES) {
			struct side *s = &fk.sides[idx[k] - MAX_WATCHES];
			if (s->cb)
				s->cb(s->fd);
			continue;
		}
		struct fwatch *w = &fk.watches[idx[k]];
		if (!w->used || !w->active || w->fd != pfd[k].fd)
			continue;
		unsigned ev = (pfd[k].revents & (POLLIN | POLLHUP) ? HEARTH_FD_READ : 0) |
			      (pfd[k].revents & POLLOUT ? HEARTH_FD_WRITE : 0);
		if (pfd[k].revents & (POLLERR | POLLHUP)) {
			ev |= HEARTH_FD_ERROR;
			w->active = false; /* libuv stops a poll handle on error */
		}
		w->cb(w->user, w->fd, ev);
	}
	run_works();
	if (rc == 0) {
		int64_t due = next_due();
		if (due > fk.vnow)
			fk.vnow = due < limit ? due : limit;
	}
	fire_timers();
}

/* Run until cond() or virtual_ms have passed; false on a timeout. Real time
 * is bounded too. */
static bool run_until(bool (*cond)(void), int64_t virtual_ms)
{
	int64_t limit = fk.vnow + virtual_ms, real_limit = real_ms() + 5000;
	while (fk.vnow < limit && real_ms() < real_limit) {
		if (cond && cond())
			return true;
		turn(limit);
	}
	return cond ? cond() : true;
}

static void run_for(int64_t virtual_ms)
{
	run_until(NULL, virtual_ms);
}

static void side_add(int fd, void (*cb)(int fd))
{
	for (size_t i = 0; i < MAX_SIDES; i++)
		if (!fk.sides[i].cb) {
			fk.sides[i] = (struct side){fd, cb};
			return;
		}
	fail_msg("out of sides");
}

static void side_remove(int fd)
{
	for (size_t i = 0; i < MAX_SIDES; i++)
		if (fk.sides[i].cb && fk.sides[i].fd == fd)
			fk.sides[i].cb = NULL;
}

static void config_set(const char *key, const char *value)
{
	for (size_t i = 0; i < fk.n_config; i++)
		if (strcmp(fk.keys[i], key) == 0) {
			fk.values[i] = value;
			return;
		}
	assert_true(fk.n_config < 16);
	fk.keys[fk.n_config] = key;
	fk.values[fk.n_config++] = value;
}

static const char *attr_value(const char *id, const char *name)
{
	for (size_t i = 0; i < fk.n_attrs; i++)
		if (!strcmp(fk.attrs[i].id, id) && !strcmp(fk.attrs[i].name, name))
			return fk.attrs[i].value;
	return NULL;
}

static int done_status(uint64_t id, bool *found)
{
	for (size_t i = 0; i < fk.n_done; i++)
		if (fk.done[i].id == id) {
			*found = true;
			return fk.done[i].status;
		}
	*found = false;
	return 0;
}

static const char *done_error(uint64_t id)
{
	for (size_t i = 0; i < fk.n_done; i++)
		if (fk.done[i].id == id)
			return fk.done[i].error;
	return NULL;
}

/* ---- loading the plugin -------------------------------------------------- */

struct loaded {
	void *dl;
	const struct hearth_plugin *p;
	void *state;
	char dir[64];
	char devices[128];
};

static struct loaded pl;

static void load(void)
{
	const char *b = getenv("B") ? getenv("B") : "build";
	char path[512];
	snprintf(path, sizeof(path), "%s/plugins/wifi.so", b);
	pl.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!pl.dl)
		fail_msg("dlopen %s: %s", path, dlerror());
	hearth_plugin_entry_fn entry = (hearth_plugin_entry_fn)dlsym(pl.dl, HEARTH_PLUGIN_ENTRY_SYMBOL);
	assert_non_null(entry);
	uint32_t versions[] = {HEARTH_ABI_VERSION(1, 0)};
	pl.p = entry(versions, 1);
	assert_non_null(pl.p);
	assert_string_equal(pl.p->name, "wifi");
}

static int plugin_init(void)
{
	return pl.p->init(&host, CTX, &pl.state);
}

static void plugin_start(void)
{
	assert_int_equal(plugin_init(), 0);
	assert_int_equal(pl.p->start(pl.state), 0);
}

static void plugin_stop(void)
{
	if (pl.state)
		pl.p->stop(pl.state);
	pl.state = NULL;
}

static void fresh(void)
{
	memset(&fk, 0, sizeof(fk));
	fk.vnow = 1700000000000;
	config_set("discovery", "false");
	config_set("poll_interval_s", "3600");
	config_set("timeout_ms", "50");
	config_set("retries", "2");
	config_set("backoff_max_s", "1");
}

static int bind_loopback(int type, int *port)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* ---- a miIO plug played by the test -------------------------------------- */

enum mmode { M_NORMAL, M_HOLD, M_DROP_FIRST_SET, M_SILENT, M_ID_ERROR_ONCE, M_REFUSE };

static struct mdev {
	int fd, port;
	struct miio_keys keys;
	uint32_t stamp;
	bool power;
	enum mmode mode;
	unsigned hellos;
	size_t n_req;
	uint32_t ids[256];
	char methods[256][32];
	bool dropped_set, id_error_sent;
	size_t n_held;
	struct held {
		struct sockaddr_in from;
		uint32_t id;
		char method[32];
		char params[128];
	} held[16];
	struct sockaddr_in last_from;
	uint32_t first_set_id;
} md;

static void mdev_send(const struct sockaddr_in *to, const char *json)
{
	uint8_t pkt[MIIO_PACKET_MAX];
	size_t len = 0;
	assert_int_equal(miio_packet_build(&md.keys, DID, md.stamp, json, strlen(json), pkt,
					   sizeof(pkt), &len),
			 0);
	assert_int_equal(sendto(md.fd, pkt, len, 0, (const struct sockaddr *)to, sizeof(*to)),
			 (ssize_t)len);
}

static void mdev_answer(const struct sockaddr_in *to, uint32_t id, const char *method,
			const char *params)
{
	char out[256];
	if (strcmp(method, "get_prop") == 0) {
		snprintf(out, sizeof(out), "{\"id\":%u,\"result\":[\"%s\",24.5]}", id,
			 md.power ? "on" : "off");
	} else if (strcmp(method, "set_power") == 0) {
		md.power = strstr(params, "\"on\"") != NULL;
		snprintf(out, sizeof(out), "{\"id\":%u,\"result\":[\"ok\"]}", id);
	} else {
		snprintf(out, sizeof(out), "{\"id\":%u,\"error\":{\"code\":-32601,\"message\":\"no\"}}",
			 id);
	}
	mdev_send(to, out);
}

static bool mdev_special(const struct sockaddr_in *from, uint32_t id, const char *method,
			 const char *params)
{
	char out[160];
	bool set = strcmp(method, "set_power") == 0;
	if (md.mode == M_HOLD && md.n_held < 16) {
		struct held *h = &md.held[md.n_held++];
		*h = (struct held){.from = *from, .id = id};
		snprintf(h->method, sizeof(h->method), "%s", method);
		snprintf(h->params, sizeof(h->params), "%s", params);
		return true;
	}
	if (md.mode == M_DROP_FIRST_SET && set && !md.dropped_set) {
		md.dropped_set = true;
		md.first_set_id = id;
		return true;
	}
	if (md.mode == M_ID_ERROR_ONCE && set && !md.id_error_sent) {
		md.id_error_sent = true;
		md.first_set_id = id;
		snprintf(out, sizeof(out),
			 "{\"id\":%u,\"error\":{\"code\":-30001,\"message\":\"id used\"}}", id);
		mdev_send(from, out);
		return true;
	}
	if (md.mode == M_REFUSE && set) {
		snprintf(out, sizeof(out),
			 "{\"id\":%u,\"error\":{\"code\":-5001,\"message\":\"invalid_arg\"}}", id);
		mdev_send(from, out);
		return true;
	}
	return false;
}

static void mdev_readable(int fd)
{
	uint8_t buf[MIIO_PACKET_MAX];
	char text[MIIO_PAYLOAD_MAX];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	struct miio_header hdr;
	size_t n = 0;
	ssize_t len = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
	md.hellos += len == MIIO_HEADER_LEN;
	if (len <= 0 || md.mode == M_SILENT)
		return;
	md.last_from = from;
	if (len == MIIO_HEADER_LEN) {
		uint8_t hello[MIIO_HEADER_LEN];
		miio_hello_reply_build(DID, md.stamp, NULL, hello);
		sendto(fd, hello, sizeof(hello), 0, (struct sockaddr *)&from, flen);
		return;
	}
	if (miio_packet_open(&md.keys, buf, (size_t)len, &hdr, text, sizeof(text), &n) != 0)
		return; /* a device ignores what it cannot read */
	assert_int_equal(hdr.device_id, DID);
	assert_true(hdr.stamp >= md.stamp && hdr.stamp < md.stamp + 600);
	cJSON *req = cJSON_Parse(text);
	uint32_t id = (uint32_t)cJSON_GetObjectItem(req, "id")->valuedouble;
	const char *method = cJSON_GetObjectItem(req, "method")->valuestring;
	char *params = cJSON_PrintUnformatted(cJSON_GetObjectItem(req, "params"));
	if (md.n_req < 256) {
		md.ids[md.n_req] = id;
		snprintf(md.methods[md.n_req++], 32, "%s", method);
	}
	if (!mdev_special(&from, id, method, params))
		mdev_answer(&from, id, method, params);
	free(params);
	cJSON_Delete(req);
}

static void mdev_release_held(void)
{
	for (size_t i = 0; i < md.n_held; i++)
		mdev_answer(&md.held[i].from, md.held[i].id, md.held[i].method, md.held[i].params);
	md.n_held = 0;
}

static void write_devices(const char *token, mode_t mode)
{
	snprintf(pl.dir, sizeof(pl.dir), "/tmp/hearth-wifi-unit-XXXXXX");
	assert_non_null(mkdtemp(pl.dir));
	snprintf(pl.devices, sizeof(pl.devices), "%s/devices.json", pl.dir);
	FILE *f = fopen(pl.devices, "w");
	assert_non_null(f);
	fprintf(f, "[{\"host\":\"127.0.0.1\",\"port\":%d,\"token\":\"%s\",\"model\":"
		   "\"chuangmi.plug.m1\",\"name\":\"plug\"}]\n",
		md.port, token);
	fclose(f);
	assert_int_equal(chmod(pl.devices, mode), 0);
	config_set("miio_devices", pl.devices);
}

static bool plug_ready(void)
{
	return fk.n_devs == 1 && attr_value("wifi:miio:4242", "state") != NULL;
}

static int miio_setup(void **state)
{
	(void)state;
	fresh();
	memset(&md, 0, sizeof(md));
	md.fd = bind_loopback(SOCK_DGRAM, &md.port);
	md.stamp = 5000;
	uint8_t token[16];
	assert_int_equal(miio_token_parse(TOKEN, token), 0);
	assert_int_equal(miio_keys_init(&md.keys, token), 0);
	side_add(md.fd, mdev_readable);
	write_devices(TOKEN, 0600);
	return 0;
}

static int miio_teardown(void **state)
{
	(void)state;
	plugin_stop();
	side_remove(md.fd);
	close(md.fd);
	unlink(pl.devices);
	rmdir(pl.dir);
	/* whatever happened, no token reached a log line */
	assert_null(strstr(fk.log, TOKEN));
	assert_null(strstr(fk.log, OTHER_TOKEN));
	return 0;
}

static void command(uint64_t id, const char *device, const char *name, struct hearth_value v)
{
	struct hearth_attr a = {name, v};
	struct hearth_command cmd = {id, device, &a, 1};
	assert_int_equal(pl.p->command(pl.state, &cmd), 0);
}

/* ---- miIO tests ---------------------------------------------------------- */

static void test_miio_handshake_and_poll(void **state)
{
	(void)state;
	plugin_start();
	assert_true(run_until(plug_ready, 2000));
	assert_string_equal(fk.dev_ids[0], "wifi:miio:4242");
	assert_string_equal(fk.dev_names[0], "plug");
	assert_string_equal(fk.dev_models[0], "chuangmi.plug.m1");
	assert_int_equal(fk.dev_caps[0], 2);
	assert_string_equal(attr_value("wifi:miio:4242", "state"), "OFF");
	assert_string_equal(attr_value("wifi:miio:4242", "temperature"), "24.5");
	assert_int_equal(md.hellos, 1);
	assert_int_equal(md.n_req, 1);
	assert_string_equal(md.methods[0], "get_prop");
	assert_int_equal(fk.n_avail, 0);
	/* get asks again, with a larger id */
	assert_int_equal(pl.p->get(pl.state, "wifi:miio:4242", NULL, 0), 0);
	run_for(20);
	assert_int_equal(md.n_req, 2);
	assert_true(md.ids[1] > md.ids[0]);
	assert_int_equal(pl.p->get(pl.state, "wifi:miio:9", NULL, 0), -ENOENT);
}

static bool first_done(void)
{
	return fk.n_done >= 1;
}

static void test_miio_retry_uses_new_id(void **state)
{
	(void)state;
	plugin_start();
	assert_true(run_until(plug_ready, 2000));
	md.mode = M_DROP_FIRST_SET;
	command(11, "wifi:miio:4242", "state", HEARTH_STRING("ON"));
	assert_true(run_until(first_done, 2000));
	bool found;
	assert_int_equal(done_status(11, &found), 0);
	assert_true(found);
	assert_true(md.power);
	assert_string_equal(attr_value("wifi:miio:4242", "state"), "ON");
	size_t sets = 0;
	uint32_t last = 0;
	for (size_t i = 0; i < md.n_req; i++)
		if (strcmp(md.methods[i], "set_power") == 0) {
			assert_true(md.ids[i] > last);
			last = md.ids[i];
			sets++;
		}
	assert_int_equal(sets, 2);
	/* the answer to the first try turns up late: ignored */
	char late[64];
	snprintf(late, sizeof(late), "{\"id\":%u,\"result\":[\"ok\"]}", md.first_set_id);
	mdev_send(&md.last_from, late);
	run_for(50);
	assert_int_equal(fk.n_done, 1);
	assert_int_equal(fk.n_avail, 0);
}

static bool five_done(void)
{
	return fk.n_done == 5;
}

/* Commands to one device go one at a time, in order: with two in flight,
 * a retry of the older (its answer lost) could reach the device after the
 * newer and undo it. */
static void test_miio_inflight_limit(void **state)
{
	(void)state;
	plugin_start();
	assert_true(run_until(plug_ready, 2000));
	md.mode = M_HOLD;
	for (uint64_t i = 0; i < 5; i++)
		command(20 + i, "wifi:miio:4242", "state", HEARTH_STRING(i % 2 ? "OFF" : "ON"));
	for (int round = 0; round < 5; round++) {
		run_for(20); /* less than the 50 ms a retry waits */
		assert_int_equal(md.n_held, 1);
		mdev_release_held();
	}
	assert_true(run_until(five_done, 500));
	for (uint64_t i = 0; i < 5; i++) {
		bool found;
		assert_int_equal(done_status(20 + i, &found), 0);
		assert_true(found);
	}
	assert_true(md.power); /* the last one said ON */
}

static void test_miio_id_refused(void **state)
{
	(void)state;
	plugin_start();
	assert_true(run_until(plug_ready, 2000));
	md.mode = M_ID_ERROR_ONCE;
	command(31, "wifi:miio:4242", "state", HEARTH_STRING("ON"));
	assert_true(run_until(first_done, 2000));
	bool found;
	assert_int_equal(done_status(31, &found), 0);
	uint32_t second = md.ids[md.n_req - 1];
	assert_string_equal(md.methods[md.n_req - 1], "set_power");
	assert_true(second >= md.first_set_id + 100 || second < md.first_set_id);
	assert_true(md.power);
}

static void test_miio_device_refuses(void **state)
{
	(void)state;
	plugin_start();
	assert_true(run_until(plug_ready, 2000));
	md.mode = M_REFUSE;
	command(41, "wifi:miio:4242", "state", HEARTH_STRING("ON"));
	assert_true(run_until(first_done, 2000));
	bool found;
	assert_int_equal(done_status(41, &found), -EREMOTEIO);
	assert_non_null(strstr(done_error(41), "invalid_arg"));
	/* an attribute the row cannot set is finished with a reason */
	command(42, "wifi:miio:4242", "temperature", HEARTH_NUMBER(3));
	assert_int_equal(done_status(42, &found), -EINVAL);
	assert_true(found);
	assert_non_null(strstr(done_error(42), "temperature"));
	struct hearth_attr a = {"state", HEARTH_STRING("ON")};
	struct hearth_command cmd = {43, "wifi:yeelight:0x1", &a, 1};
	assert_int_equal(pl.p->command(pl.state, &cmd), -ENOENT);
}

static bool went_offline(void)
{
	return fk.n_avail >= 1 && !fk.avail[fk.n_avail - 1].online;
}

static bool came_back(void)
{
	return fk.n_avail >= 2 && fk.avail[fk.n_avail - 1].online;
}

static void test_miio_unavailable_and_back(void **state)
{
	(void)state;
	plugin_start();
	assert_true(run_until(plug_ready, 2000));
	md.mode = M_SILENT;
	command(51, "wifi:miio:4242", "state", HEARTH_STRING("ON"));
	/* 50 + 100 + 200 ms of tries, then it counts as gone */
	assert_true(run_until(went_offline, 1000));
	assert_string_equal(fk.avail[0].id, "wifi:miio:4242");
	bool found;
	assert_int_equal(done_status(51, &found), -EHOSTUNREACH);
	assert_true(found);
	/* it keeps being tried, with waits of at most backoff_max_s */
	unsigned hellos = md.hellos;
	run_for(5000);
	assert_true(md.hellos > hellos + 3);
	md.mode = M_NORMAL;
	md.stamp = 20; /* rebooted: a new stamp */
	assert_true(run_until(came_back, 3000));
	assert_string_equal(fk.avail[fk.n_avail - 1].id, "wifi:miio:4242");
	assert_non_null(strstr(fk.log, "unavailable"));
}

static void test_miio_wrong_token(void **state)
{
	(void)state;
	/* the file says one token, the device has another */
	unlink(pl.devices);
	rmdir(pl.dir);
	write_devices(OTHER_TOKEN, 0600);
	plugin_start();
	run_for(3000);
	assert_true(md.hellos >= 1);
	assert_int_equal(fk.n_devs, 1); /* added after the hello */
	assert_null(attr_value("wifi:miio:4242", "state"));
	assert_non_null(strstr(fk.log, "is its token right?"));
}

static void test_miio_config_refused(void **state)
{
	(void)state;
	/* a devices file others may read is refused */
	assert_int_equal(chmod(pl.devices, 0644), 0);
	assert_int_equal(plugin_init(), -EACCES);
	assert_int_equal(chmod(pl.devices, 0600), 0);
	static const char *const bad[][2] = {
		{"poll_interval_s", "0"}, {"timeout_ms", "fast"}, {"discovery", "maybe"},
		{"retries", "11"},	  {"yeelight_devices", "1.2.3.4:99999"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *old = f_config_get(CTX, bad[i][0]);
		config_set(bad[i][0], bad[i][1]);
		pl.state = NULL;
		assert_int_equal(plugin_init(), -EINVAL);
		assert_null(pl.state);
		config_set(bad[i][0], old);
	}
	assert_non_null(strstr(fk.log, "poll_interval_s"));
	config_set("miio_devices", "/nonexistent/devices.json");
	assert_int_equal(plugin_init(), -ENOENT);
}

/* ---- a Yeelight bulb played by the test ---------------------------------- */

static struct bulb {
	int listen_fd, udp_fd, client_fd, port, dport;
	char buf[4096];
	size_t used;
	unsigned accepted, searches;
	size_t n_lines;
	int64_t times[64];
	char methods[64][24];
	char params[64][64];
	int bright;
	bool power;
} yb;

static void bulb_line(const char *line)
{
	cJSON *req = cJSON_Parse(line);
	assert_non_null(req);
	int id = cJSON_GetObjectItem(req, "id")->valueint;
	const char *m = cJSON_GetObjectItem(req, "method")->valuestring;
	char *params = cJSON_PrintUnformatted(cJSON_GetObjectItem(req, "params"));
	char out[256];
	assert_true(yb.n_lines < 64);
	yb.times[yb.n_lines] = fk.vnow;
	snprintf(yb.methods[yb.n_lines], 24, "%s", m);
	snprintf(yb.params[yb.n_lines++], 64, "%s", params);
	if (strcmp(m, "get_prop") == 0) {
		snprintf(out, sizeof(out),
			 "{\"id\":%d,\"result\":[\"%s\",\"%d\",\"4000\",\"\",\"\",\"\",\"2\",\"\"]}\r\n",
			 id, yb.power ? "on" : "off", yb.bright);
	} else {
		if (strcmp(m, "set_bright") == 0)
			yb.bright = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "params"), 0)->valueint;
		int n = snprintf(out, sizeof(out), "{\"id\":%d,\"result\":[\"ok\"]}\r\n", id);
		snprintf(out + n, sizeof(out) - (size_t)n,
			 "{\"method\":\"props\",\"params\":{\"bright\":\"%d\"}}\r\n", yb.bright);
	}
	assert_true(send(yb.client_fd, out, strlen(out), MSG_NOSIGNAL) > 0);
	free(params);
	cJSON_Delete(req);
}

static void bulb_readable(int fd)
{
	ssize_t n = recv(fd, yb.buf + yb.used, sizeof(yb.buf) - yb.used - 1, 0);
	if (n <= 0) {
		side_remove(fd);
		close(fd);
		yb.client_fd = -1;
		return;
	}
	yb.used += (size_t)n;
	yb.buf[yb.used] = '\0';
	char *nl;
	while ((nl = strstr(yb.buf, "\r\n"))) {
		*nl = '\0';
		bulb_line(yb.buf);
		yb.used -= (size_t)(nl + 2 - yb.buf);
		memmove(yb.buf, nl + 2, yb.used + 1);
	}
}

static void bulb_accept(int fd)
{
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	if (yb.client_fd >= 0) {
		side_remove(yb.client_fd);
		close(yb.client_fd);
	}
	yb.client_fd = c;
	yb.used = 0;
	yb.accepted++;
	side_add(c, bulb_readable);
}

static void bulb_search(int fd)
{
	char buf[512], out[512];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &flen);
	if (n <= 0)
		return;
	buf[n] = '\0';
	assert_non_null(strstr(buf, "M-SEARCH * HTTP/1.1\r\n"));
	assert_non_null(strstr(buf, "ST: wifi_bulb\r\n"));
	yb.searches++;
	int len = snprintf(out, sizeof(out),
			   "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\n"
			   "Location: yeelight://127.0.0.1:%d\r\nid: 0x00000000000000b1\r\n"
			   "model: color\r\nfw_ver: 18\r\nsupport: get_prop set_power set_bright "
			   "set_ct_abx set_rgb\r\npower: on\r\nbright: 50\r\nname: desk\r\n\r\n",
			   yb.port);
	sendto(fd, out, (size_t)len, 0, (struct sockaddr *)&from, flen);
}

static int yl_setup(void **state)
{
	(void)state;
	static char hosts[64], dport[16];
	fresh();
	memset(&yb, 0, sizeof(yb));
	yb.client_fd = -1;
	yb.bright = 50;
	yb.power = true;
	yb.listen_fd = bind_loopback(SOCK_STREAM, &yb.port);
	assert_int_equal(listen(yb.listen_fd, 4), 0);
	yb.udp_fd = bind_loopback(SOCK_DGRAM, &yb.dport);
	side_add(yb.listen_fd, bulb_accept);
	side_add(yb.udp_fd, bulb_search);
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", yb.port);
	snprintf(dport, sizeof(dport), "%d", yb.dport);
	config_set("yeelight_devices", hosts);
	config_set("yeelight_discovery_port", dport);
	config_set("yeelight_quota", "3");
	return 0;
}

static int yl_teardown(void **state)
{
	(void)state;
	plugin_stop();
	if (yb.client_fd >= 0) {
		side_remove(yb.client_fd);
		close(yb.client_fd);
	}
	side_remove(yb.listen_fd);
	side_remove(yb.udp_fd);
	if (yb.listen_fd >= 0)
		close(yb.listen_fd);
	close(yb.udp_fd);
	return 0;
}

#define BULB_ID "wifi:yeelight:0x00000000000000b1"

static bool bulb_ready(void)
{
	return fk.n_devs == 1 && yb.n_lines >= 1 && attr_value(BULB_ID, "color_temp") != NULL;
}

static bool six_done(void)
{
	return fk.n_done == 6;
}

static void test_yeelight_found_by_unicast_search(void **state)
{
	(void)state;
	plugin_start();
	assert_true(run_until(bulb_ready, 2000));
	assert_int_equal(yb.searches, 1);
	assert_string_equal(fk.dev_ids[0], BULB_ID);
	assert_string_equal(fk.dev_names[0], "desk");
	assert_string_equal(fk.dev_models[0], "color");
	assert_int_equal(fk.dev_caps[0], 6); /* state, brightness, color_temp, color, mode, transition */
	assert_string_equal(yb.methods[0], "get_prop");
	assert_string_equal(attr_value(BULB_ID, "brightness"), "127");
	assert_string_equal(attr_value(BULB_ID, "color_temp"), "250");
}

/* Six /set in a burst against a quota of 3 a minute: two go at once (the
 * first get_prop took one), the other four coalesce into one request that
 * goes when the minute is up, with the last value. */
static void test_yeelight_quota_and_coalescing(void **state)
{
	(void)state;
	static const double values[] = {25, 51, 76, 102, 127, 254};
	plugin_start();
	assert_true(run_until(bulb_ready, 2000));
	for (size_t i = 0; i < 6; i++)
		command(100 + i, BULB_ID, "brightness", HEARTH_NUMBER(values[i]));
	run_for(1000);
	assert_int_equal(yb.n_lines, 3);
	assert_int_equal(fk.n_done, 2);
	assert_true(run_until(six_done, 70000));
	for (size_t i = 0; i < 6; i++) {
		bool found;
		assert_int_equal(done_status(100 + i, &found), 0);
	}
	assert_int_equal(yb.n_lines, 4);
	assert_string_equal(yb.methods[1], "set_bright");
	assert_string_equal(yb.params[1], "[10,\"smooth\",500]");
	assert_string_equal(yb.params[2], "[20,\"smooth\",500]");
	assert_string_equal(yb.params[3], "[100,\"smooth\",500]");
	/* never more than 3 in a minute */
	assert_true(yb.times[3] - yb.times[0] >= 60000);
	assert_string_equal(attr_value(BULB_ID, "brightness"), "254");
}

static bool reconnected(void)
{
	return yb.accepted >= 2;
}

static bool bulb_offline(void)
{
	return fk.n_avail >= 1 && !fk.avail[fk.n_avail - 1].online;
}

static void test_yeelight_reconnect_and_unavailable(void **state)
{
	(void)state;
	config_set("yeelight_quota", "60");
	plugin_start();
	assert_true(run_until(bulb_ready, 2000));
	/* the bulb drops the connection: hearth connects again at once */
	side_remove(yb.client_fd);
	close(yb.client_fd);
	yb.client_fd = -1;
	assert_true(run_until(reconnected, 1000));
	run_for(100);
	assert_int_equal(fk.n_avail, 0);
	/* the bulb is gone: connecting fails, it goes offline */
	side_remove(yb.client_fd);
	close(yb.client_fd);
	yb.client_fd = -1;
	side_remove(yb.listen_fd);
	close(yb.listen_fd);
	yb.listen_fd = -1;
	assert_true(run_until(bulb_offline, 2000));
	assert_string_equal(fk.avail[0].id, BULB_ID);
	/* a command for an unreachable bulb fails, and wakes a retry */
	command(200, BULB_ID, "state", HEARTH_STRING("OFF"));
	bool found = false;
	run_until(first_done, 2000);
	assert_int_equal(done_status(200, &found), -EHOSTUNREACH);
	assert_true(found);
}

int main(void)
{
	load();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_miio_handshake_and_poll, miio_setup,
						miio_teardown),
		cmocka_unit_test_setup_teardown(test_miio_retry_uses_new_id, miio_setup,
						miio_teardown),
		cmocka_unit_test_setup_teardown(test_miio_inflight_limit, miio_setup, miio_teardown),
		cmocka_unit_test_setup_teardown(test_miio_id_refused, miio_setup, miio_teardown),
		cmocka_unit_test_setup_teardown(test_miio_device_refuses, miio_setup, miio_teardown),
		cmocka_unit_test_setup_teardown(test_miio_unavailable_and_back, miio_setup,
						miio_teardown),
		cmocka_unit_test_setup_teardown(test_miio_wrong_token, miio_setup, miio_teardown),
		cmocka_unit_test_setup_teardown(test_miio_config_refused, miio_setup, miio_teardown),
		cmocka_unit_test_setup_teardown(test_yeelight_found_by_unicast_search, yl_setup,
						yl_teardown),
		cmocka_unit_test_setup_teardown(test_yeelight_quota_and_coalescing, yl_setup,
						yl_teardown),
		cmocka_unit_test_setup_teardown(test_yeelight_reconnect_and_unavailable, yl_setup,
						yl_teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	dlclose(pl.dl);
	return rc;
}
