#include "plugin_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "hub.h"
#include "log.h"
#include "mqtt.h"
#include "registry.h"

#define PLUGIN_NAME_MAX 32
#define SLOW_CALLBACK_NS (50u * 1000u * 1000u)

enum phase { P_INIT, P_READY, P_RUNNING, P_STOPPING, P_STOPPED };

static const char *const phase_names[] = {"init", "ready", "running", "stopping", "stopped"};

struct hearth_timer {
	uv_timer_t handle;
	struct hearth_plugin_ctx *ctx;
	hearth_timer_cb cb;
	void *user;
	struct hearth_timer *prev, *next;
};

struct hearth_watch {
	uv_poll_t handle;
	struct hearth_plugin_ctx *ctx;
	hearth_fd_cb cb;
	void *user;
	struct hearth_watch *prev, *next;
};

struct work {
	uv_work_t req;
	struct hearth_plugin_ctx *ctx;
	hearth_work_fn fn;
	hearth_done_fn done;
	void *user;
	struct work *prev, *next;
};

struct sub {
	char *filter;
	hearth_mqtt_cb cb;
	void *user;
	struct sub *next;
};

struct post {
	struct hearth_plugin_ctx *ctx;
	hearth_post_fn fn;
	void *user;
	struct post *next;
};

struct hearth_plugin_ctx {
	struct plugin_host *host;
	char *name;
	void *dl;
	const struct hearth_plugin *desc;
	void *state;
	const struct config_section *section;
	enum phase phase;
	struct hearth_timer *timers;
	struct hearth_watch *watches;
	struct work *works;
	struct sub *subs;
	struct hearth_plugin_ctx *next;
};

struct plugin_host {
	struct hearth_hub *hub;
	struct hearth_plugin_ctx *plugins;
	struct hearth_host table;
	uv_async_t async;
	pthread_mutex_t lock;
	struct post *posts, *posts_tail;
	bool closed;
	void (*stop_done)(void *user);
	void *stop_user;
};

static const char *src = "plugins";

/* -- helpers ---------------------------------------------------------------- */

/* The plugin callback running on this thread, for the crash report: a
 * thread-local the fatal-signal handler reads (callbacks may nest: a state
 * report fires a rule that commands another plugin). */
static __thread const char *running_plugin, *running_what;
static __thread bool pool_thread; /* work functions block by design */

struct call {
	uint64_t start;
	const char *plugin, *what; /* what ran before, put back at the end */
};

static struct call callback_start(struct hearth_plugin_ctx *ctx, const char *what)
{
	struct call c = {uv_hrtime(), running_plugin, running_what};
	running_plugin = ctx->name;
	running_what = what;
	return c;
}

/* A plugin that blocks the loop is named, so the user knows whom to blame.
 * ctx is used for its name only: the callback may have freed what it owns. */
static void callback_end(struct hearth_plugin_ctx *ctx, struct call c, const char *what)
{
	running_plugin = c.plugin;
	running_what = c.what;
	uint64_t ns = uv_hrtime() - c.start;
	if (ns > SLOW_CALLBACK_NS && !pool_thread)
		log_warning(ctx->name, "%s callback blocked the loop for %llu ms", what,
			    (unsigned long long)(ns / 1000000u));
}

void plugin_host_running(const char **plugin, const char **what)
{
	*plugin = running_plugin;
	*what = running_what;
}

static bool alive(const struct hearth_plugin_ctx *ctx)
{
	return ctx->phase == P_INIT || ctx->phase == P_READY || ctx->phase == P_RUNNING;
}

const char *plugin_host_owner_name(const void *owner)
{
	return owner ? ((const struct hearth_plugin_ctx *)owner)->name : NULL;
}

/* -- host table: devices ------------------------------------------------------ */

static int h_device_add(hearth_plugin_ctx *ctx, const struct hearth_device_info *info)
{
	if (!alive(ctx) || !info || info->struct_size < sizeof(struct hearth_device_info))
		return -EINVAL;
	return hub_device_add(ctx->host->hub, ctx->name, ctx, info);
}

static int h_device_remove(hearth_plugin_ctx *ctx, const char *id)
{
	if (!alive(ctx) || !id)
		return -EINVAL;
	return hub_device_remove_by_plugin(ctx->host->hub, ctx, id);
}

static int h_state_report(hearth_plugin_ctx *ctx, const char *id, const struct hearth_attr *attrs,
			  size_t n_attrs)
{
	if (!alive(ctx) || !id || (n_attrs && !attrs))
		return -EINVAL;
	return hub_state_report(ctx->host->hub, ctx, id, attrs, n_attrs);
}

static int h_event_report(hearth_plugin_ctx *ctx, const char *id, const char *type,
			  const struct hearth_attr *attrs, size_t n_attrs)
{
	if (!alive(ctx) || !id || !type || (n_attrs && !attrs))
		return -EINVAL;
	return hub_event_report(ctx->host->hub, ctx, id, type, attrs, n_attrs);
}

static int h_availability_set(hearth_plugin_ctx *ctx, const char *id, bool online)
{
	if (!alive(ctx) || !id)
		return -EINVAL;
	return hub_availability_set(ctx->host->hub, ctx, id, online);
}

static void h_command_done(hearth_plugin_ctx *ctx, uint64_t command_id, int status,
			   const char *error)
{
	hub_command_done(ctx->host->hub, ctx, command_id, status, error);
}

/* -- host table: MQTT ------------------------------------------------------------ */

/* A plugin may not listen inside the hub's own namespace: that is how loops
 * between a bridge plugin and the hub are made impossible. */
static bool filter_in_base(const char *base, const char *filter)
{
	size_t n = strlen(base);
	if (filter[0] == '#' || filter[0] == '+')
		return true;
	return strncmp(filter, base, n) == 0 && (filter[n] == '/' || filter[n] == '\0');
}

static int h_mqtt_subscribe(hearth_plugin_ctx *ctx, const char *filter, int qos, hearth_mqtt_cb cb,
			    void *user)
{
	struct hearth_hub *hub = ctx->host->hub;
	if (!alive(ctx) || !filter || !cb || !mqtt_filter_valid(filter) || qos < 0 || qos > 2)
		return -EINVAL;
	if (filter_in_base(hub->base, filter)) {
		log_error(ctx->name, "may not subscribe to '%s': it overlaps the hub's own topics",
			  filter);
		return -EPERM;
	}
	struct sub *s = calloc(1, sizeof(*s));
	if (!s || !(s->filter = strdup(filter))) {
		free(s);
		return -ENOMEM;
	}
	int rc = mqtt_subscribe(hub->mqtt, filter, qos);
	if (rc) {
		free(s->filter);
		free(s);
		return rc;
	}
	s->cb = cb;
	s->user = user;
	s->next = ctx->subs;
	ctx->subs = s;
	return 0;
}

static int h_mqtt_unsubscribe(hearth_plugin_ctx *ctx, const char *filter)
{
	for (struct sub **p = &ctx->subs; *p; p = &(*p)->next) {
		if (strcmp((*p)->filter, filter) == 0) {
			struct sub *s = *p;
			*p = s->next;
			mqtt_unsubscribe(ctx->host->hub->mqtt, s->filter);
			free(s->filter);
			free(s);
			return 0;
		}
	}
	return -ENOENT;
}

static int h_mqtt_publish(hearth_plugin_ctx *ctx, const char *topic, const void *payload,
			  size_t len, int qos, bool retain)
{
	struct hearth_hub *hub = ctx->host->hub;
	if (!alive(ctx) || !topic || !mqtt_topic_valid(topic) || (len && !payload))
		return -EINVAL;
	if (filter_in_base(hub->base, topic))
		return -EPERM;
	return mqtt_publish(hub->mqtt, topic, payload, len, qos, retain);
}

/* -- host table: config, secrets, log ------------------------------------------ */

static const char *h_config_get(hearth_plugin_ctx *ctx, const char *key)
{
	return key ? config_section_get(ctx->section, key) : NULL;
}

static int h_secret_read(hearth_plugin_ctx *ctx, const char *path, char *buf, size_t cap)
{
	if (!path || !buf || cap == 0)
		return -EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		log_error(ctx->name, "cannot open secret file %s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		log_error(ctx->name, "secret file %s is accessible by group or others; run chmod 600 %s",
			  path, path);
		rc = -EACCES;
		goto out;
	}
	ssize_t n = read(fd, buf, cap);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	if ((size_t)n >= cap) {
		explicit_bzero(buf, cap);
		rc = -ENAMETOOLONG;
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
out:
	close(fd);
	return rc;
}

static void h_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void h_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, ctx->name, fmt, ap);
	va_end(ap);
}

/* -- host table: timers ---------------------------------------------------------- */

static void timer_fired(uv_timer_t *t)
{
	struct hearth_timer *timer = t->data;
	struct hearth_plugin_ctx *ctx = timer->ctx;
	if (!alive(ctx))
		return;
	struct call c = callback_start(ctx, "timer");
	/* the callback may stop (free) the timer: only ctx is used after it */
	timer->cb(timer->user);
	callback_end(ctx, c, "timer");
}

static void timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static int h_timer_start(hearth_plugin_ctx *ctx, uint64_t timeout_ms, uint64_t repeat_ms,
			 hearth_timer_cb cb, void *user, hearth_timer **out)
{
	if (!alive(ctx) || !cb || !out)
		return -EINVAL;
	struct hearth_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	uv_timer_init(ctx->host->hub->loop, &t->handle);
	t->handle.data = t;
	t->ctx = ctx;
	t->cb = cb;
	t->user = user;
	t->next = ctx->timers;
	if (ctx->timers)
		ctx->timers->prev = t;
	ctx->timers = t;
	uv_timer_start(&t->handle, timer_fired, timeout_ms, repeat_ms);
	*out = t;
	return 0;
}

static int h_timer_again(hearth_plugin_ctx *ctx, hearth_timer *t, uint64_t timeout_ms,
			 uint64_t repeat_ms)
{
	if (!alive(ctx) || !t || t->ctx != ctx)
		return -EINVAL;
	uv_timer_start(&t->handle, timer_fired, timeout_ms, repeat_ms);
	return 0;
}

static void timer_release(struct hearth_timer *t)
{
	struct hearth_plugin_ctx *ctx = t->ctx;
	if (t->prev)
		t->prev->next = t->next;
	else
		ctx->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	uv_timer_stop(&t->handle);
	uv_close((uv_handle_t *)&t->handle, timer_closed);
}

static void h_timer_stop(hearth_plugin_ctx *ctx, hearth_timer *t)
{
	if (t && t->ctx == ctx)
		timer_release(t);
}

/* -- host table: fd watches ------------------------------------------------------- */

static void watch_fired(uv_poll_t *h, int status, int events)
{
	struct hearth_watch *w = h->data;
	if (!alive(w->ctx))
		return;
	unsigned ev = 0;
	if (events & UV_READABLE)
		ev |= HEARTH_FD_READ;
	if (events & UV_WRITABLE)
		ev |= HEARTH_FD_WRITE;
	if (status < 0 || (events & UV_DISCONNECT))
		ev |= HEARTH_FD_ERROR;
	struct hearth_plugin_ctx *ctx = w->ctx;
	struct call c = callback_start(ctx, "fd watch");
	w->cb(w->user, (int)h->io_watcher.fd, ev);
	callback_end(ctx, c, "fd watch");
}

static int to_uv_events(unsigned events)
{
	int ev = 0;
	if (events & HEARTH_FD_READ)
		ev |= UV_READABLE | UV_DISCONNECT;
	if (events & HEARTH_FD_WRITE)
		ev |= UV_WRITABLE;
	return ev;
}

static int h_fd_watch(hearth_plugin_ctx *ctx, int fd, unsigned events, hearth_fd_cb cb, void *user,
		      hearth_watch **out)
{
	if (!alive(ctx) || fd < 0 || !cb || !out || !(events & (HEARTH_FD_READ | HEARTH_FD_WRITE)))
		return -EINVAL;
	struct hearth_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int rc = uv_poll_init(ctx->host->hub->loop, &w->handle, fd);
	if (rc) {
		free(w);
		return rc;
	}
	w->handle.data = w;
	w->ctx = ctx;
	w->cb = cb;
	w->user = user;
	w->next = ctx->watches;
	if (ctx->watches)
		ctx->watches->prev = w;
	ctx->watches = w;
	uv_poll_start(&w->handle, to_uv_events(events), watch_fired);
	*out = w;
	return 0;
}

static int h_fd_modify(hearth_plugin_ctx *ctx, hearth_watch *w, unsigned events)
{
	if (!alive(ctx) || !w || w->ctx != ctx)
		return -EINVAL;
	if (!events)
		return uv_poll_stop(&w->handle);
	return uv_poll_start(&w->handle, to_uv_events(events), watch_fired);
}

static void watch_release(struct hearth_watch *w)
{
	struct hearth_plugin_ctx *ctx = w->ctx;
	if (w->prev)
		w->prev->next = w->next;
	else
		ctx->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	uv_poll_stop(&w->handle);
	uv_close((uv_handle_t *)&w->handle, timer_closed);
}

static void h_fd_unwatch(hearth_plugin_ctx *ctx, hearth_watch *w)
{
	if (w && w->ctx == ctx)
		watch_release(w);
}

/* -- host table: thread pool and post ------------------------------------------ */

static void finish_stop(struct hearth_plugin_ctx *ctx);
static void unlink_ctx(struct hearth_plugin_ctx *ctx);
static void ctx_free(struct hearth_plugin_ctx *ctx);
static void check_all_stopped(struct plugin_host *host);

static void work_run(uv_work_t *req)
{
	struct work *w = req->data;
	pool_thread = true;
	struct call c = callback_start(w->ctx, "work");
	w->fn(w->user);
	callback_end(w->ctx, c, "work");
}

static void work_after(uv_work_t *req, int status)
{
	struct work *w = req->data;
	struct hearth_plugin_ctx *ctx = w->ctx;
	if (w->prev)
		w->prev->next = w->next;
	else
		ctx->works = w->next;
	if (w->next)
		w->next->prev = w->prev;
	int st = status == UV_ECANCELED || !alive(ctx) ? -ECANCELED : status;
	if (w->done) {
		struct call c = callback_start(ctx, "work done");
		w->done(w->user, st);
		callback_end(ctx, c, "work done");
	}
	free(w);
	if (ctx->works)
		return;
	if (ctx->phase == P_STOPPING) {
		finish_stop(ctx);
	} else if (ctx->phase == P_STOPPED) {
		/* refused (init or start failed) while its work ran: it goes
		 * now that the last work is done */
		struct plugin_host *host = ctx->host;
		unlink_ctx(ctx);
		ctx_free(ctx);
		check_all_stopped(host);
	}
}

static int h_work_queue(hearth_plugin_ctx *ctx, hearth_work_fn fn, hearth_done_fn done, void *user)
{
	if (!alive(ctx) || !fn)
		return -EINVAL;
	struct work *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->req.data = w;
	w->ctx = ctx;
	w->fn = fn;
	w->done = done;
	w->user = user;
	int rc = uv_queue_work(ctx->host->hub->loop, &w->req, work_run, work_after);
	if (rc) {
		free(w);
		return rc;
	}
	w->next = ctx->works;
	if (ctx->works)
		ctx->works->prev = w;
	ctx->works = w;
	return 0;
}

static int h_post(hearth_plugin_ctx *ctx, hearth_post_fn fn, void *user)
{
	if (!fn)
		return -EINVAL;
	struct plugin_host *host = ctx->host;
	struct post *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ctx = ctx;
	p->fn = fn;
	p->user = user;
	pthread_mutex_lock(&host->lock);
	if (host->closed) {
		pthread_mutex_unlock(&host->lock);
		free(p);
		return -ESHUTDOWN;
	}
	if (host->posts_tail)
		host->posts_tail->next = p;
	else
		host->posts = p;
	host->posts_tail = p;
	pthread_mutex_unlock(&host->lock);
	uv_async_send(&host->async);
	return 0;
}

static void posts_run(uv_async_t *a)
{
	struct plugin_host *host = a->data;
	pthread_mutex_lock(&host->lock);
	struct post *p = host->posts;
	host->posts = host->posts_tail = NULL;
	pthread_mutex_unlock(&host->lock);
	while (p) {
		struct post *next = p->next;
		if (alive(p->ctx)) {
			struct call c = callback_start(p->ctx, "post");
			p->fn(p->user);
			callback_end(p->ctx, c, "post");
		}
		free(p);
		p = next;
	}
}

static int64_t h_now_ms(hearth_plugin_ctx *ctx)
{
	(void)ctx;
	return hub_now_ms();
}

/* -- loading ---------------------------------------------------------------------- */

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > PLUGIN_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_'))
			return false;
	return true;
}

static struct hearth_plugin_ctx *find(const struct plugin_host *host, const char *name)
{
	for (struct hearth_plugin_ctx *c = host->plugins; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int check_not_writable(const char *name, const char *path, const char *what)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		int e = errno;
		log_error(src, "plugin '%s' refused: %s %s: %s", name, what, path, strerror(e));
		return -e;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_error(src, "plugin '%s' refused: %s %s is writable by group or others", name,
			  what, path);
		return -EPERM;
	}
	/* whoever owns the code the hub runs must be trusted as much as the hub */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		log_error(src, "plugin '%s' refused: %s %s belongs to uid %u, neither root nor the "
			       "service's own user",
			  name, what, path, (unsigned)st.st_uid);
		return -EPERM;
	}
	return 0;
}

static int check_descriptor(const char *name, const struct hearth_plugin *d)
{
	const char *why = NULL;
	if (d->struct_size < offsetof(struct hearth_plugin, permit_join))
		why = "its descriptor is too small";
	else if (HEARTH_ABI_VERSION_MAJOR(d->abi_version) != HEARTH_ABI_MAJOR)
		why = "it speaks another ABI major version";
	else if (HEARTH_ABI_VERSION_MINOR(d->abi_version) > HEARTH_ABI_MINOR)
		why = "it needs a newer ABI minor version than this hub has";
	else if (!d->name || strcmp(d->name, name) != 0)
		why = "its name differs from its file name";
	else if (!d->init || !d->start || !d->stop || !d->command)
		why = "it lacks a required callback (init, start, stop, command)";
	if (why) {
		log_error(src, "plugin '%s' refused: %s (plugin ABI %u.%u, host ABI %d.%d)", name,
			  why, HEARTH_ABI_VERSION_MAJOR(d->abi_version),
			  HEARTH_ABI_VERSION_MINOR(d->abi_version), HEARTH_ABI_MAJOR,
			  HEARTH_ABI_MINOR);
		return -EPROTO;
	}
	return 0;
}

static int check_options(struct hearth_plugin_ctx *ctx)
{
	const struct hearth_option *opts = ctx->desc->options;
	const struct config_section *sec = ctx->section;
	if (!opts || !sec)
		return 0;
	for (size_t i = 0; i < sec->n_kv; i++) {
		bool known = false;
		for (const struct hearth_option *o = opts; o->key && !known; o++)
			known = strcmp(o->key, sec->kv[i].key) == 0;
		if (!known) {
			const char *file = ctx->host->hub->config->path;
			log_error(src, "%s:%d: [plugin.%s] %s: unknown key; plugin '%s' not loaded",
				  file ? file : "config", sec->kv[i].line, ctx->name, sec->kv[i].key,
				  ctx->name);
			return -EINVAL;
		}
	}
	return 0;
}

/* Drop everything the plugin registered with the loop and the broker. */
static void release_all(struct hearth_plugin_ctx *ctx)
{
	while (ctx->timers)
		timer_release(ctx->timers);
	while (ctx->watches)
		watch_release(ctx->watches);
	for (struct work *w = ctx->works; w; w = w->next)
		uv_cancel((uv_req_t *)&w->req);
	while (ctx->subs) {
		struct sub *s = ctx->subs;
		ctx->subs = s->next;
		mqtt_unsubscribe(ctx->host->hub->mqtt, s->filter);
		free(s->filter);
		free(s);
	}
	hub_plugin_gone(ctx->host->hub, ctx);
}

static void unlink_ctx(struct hearth_plugin_ctx *ctx)
{
	for (struct hearth_plugin_ctx **p = &ctx->host->plugins; *p; p = &(*p)->next) {
		if (*p == ctx) {
			*p = ctx->next;
			return;
		}
	}
}

/* Posts still queued for a plugin that goes away are dropped: their
 * functions live in the object about to be closed. */
static void drop_posts(struct hearth_plugin_ctx *ctx)
{
	struct plugin_host *host = ctx->host;
	pthread_mutex_lock(&host->lock);
	host->posts_tail = NULL;
	for (struct post **p = &host->posts; *p;) {
		if ((*p)->ctx == ctx) {
			struct post *gone = *p;
			*p = gone->next;
			free(gone);
		} else {
			host->posts_tail = *p;
			p = &(*p)->next;
		}
	}
	pthread_mutex_unlock(&host->lock);
}

static void ctx_free(struct hearth_plugin_ctx *ctx)
{
	drop_posts(ctx);
	/* code may still run on the pool: the object stays mapped until then */
	if (ctx->dl && !ctx->works)
		dlclose(ctx->dl);
	free(ctx->name);
	free(ctx);
}

static int open_plugin(struct plugin_host *host, const char *dir, const char *name,
		       struct hearth_plugin_ctx **out)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.so", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	int rc = check_not_writable(name, dir, "folder");
	if (rc || (rc = check_not_writable(name, path, "file")))
		return rc;
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		log_error(src, "plugin '%s' refused: %s", name, dlerror());
		return -ENOEXEC;
	}
	hearth_plugin_entry_fn entry;
	*(void **)&entry = dlsym(dl, HEARTH_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		log_error(src, "plugin '%s' refused: %s has no symbol %s", name, path,
			  HEARTH_PLUGIN_ENTRY_SYMBOL);
		dlclose(dl);
		return -ENOEXEC;
	}
	static const uint32_t versions[] = {HEARTH_ABI_VERSION(HEARTH_ABI_MAJOR, HEARTH_ABI_MINOR)};
	const struct hearth_plugin *desc = entry(versions, sizeof(versions) / sizeof(versions[0]));
	if (!desc) {
		log_error(src, "plugin '%s' refused: it supports none of the host's ABI versions (%d.%d)",
			  name, HEARTH_ABI_MAJOR, HEARTH_ABI_MINOR);
		dlclose(dl);
		return -EPROTO;
	}
	if ((rc = check_descriptor(name, desc))) {
		dlclose(dl);
		return rc;
	}
	struct hearth_plugin_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx || !(ctx->name = strdup(name))) {
		free(ctx);
		dlclose(dl);
		return -ENOMEM;
	}
	ctx->host = host;
	ctx->dl = dl;
	ctx->desc = desc;
	ctx->section = config_section_find(host->hub->config, name);
	*out = ctx;
	return 0;
}

int plugin_host_load(struct plugin_host *host, const char *dir, const char *name)
{
	if (!name_ok(name)) {
		log_error(src, "plugin '%s' refused: a name is 1..%d of [a-z0-9_]", name,
			  PLUGIN_NAME_MAX);
		return -EINVAL;
	}
	if (find(host, name)) {
		log_error(src, "plugin '%s' refused: a plugin of that name is loaded already", name);
		return -EEXIST;
	}
	struct hearth_plugin_ctx *ctx = NULL;
	int rc = open_plugin(host, dir, name, &ctx);
	if (rc)
		return rc;
	ctx->next = host->plugins;
	host->plugins = ctx;
	if ((rc = check_options(ctx)))
		goto fail;
	ctx->phase = P_INIT;
	struct call c = callback_start(ctx, "init");
	rc = ctx->desc->init(&host->table, ctx, &ctx->state);
	callback_end(ctx, c, "init");
	if (rc) {
		log_error(src, "plugin '%s' refused: its init failed (%s); the hub runs on without it",
			  name, strerror(rc < 0 ? -rc : rc));
		goto fail;
	}
	ctx->phase = P_READY;
	log_info(src, "loaded '%s' %s (%s)", name, ctx->desc->version ? ctx->desc->version : "",
		 ctx->desc->description ? ctx->desc->description : "");
	return 0;
fail:
	ctx->phase = P_STOPPED;
	release_all(ctx);
	/* work still running keeps the context (and the object) until host free */
	if (!ctx->works) {
		unlink_ctx(ctx);
		ctx_free(ctx);
	}
	return rc ? rc : -EINVAL;
}

size_t plugin_host_load_enabled(struct plugin_host *host)
{
	const struct hearth_config *cfg = host->hub->config;
	size_t loaded = 0;
	for (size_t i = 0; i < cfg->plugins.n_enable; i++)
		if (plugin_host_load(host, cfg->plugins.dir, cfg->plugins.enable[i]) == 0)
			loaded++;
	return loaded;
}

/* -- restore, start, stop ----------------------------------------------------------- */

#define RESTORE_ATTRS_MAX 256

static void restore_device(struct hearth_plugin_ctx *ctx, const struct device *dev)
{
	struct hearth_attr attrs[RESTORE_ATTRS_MAX] = {0};
	char *scratch[RESTORE_ATTRS_MAX];
	size_t n = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, dev->state)
	{
		if (n == RESTORE_ATTRS_MAX)
			break;
		attrs[n].name = item->string;
		cap_value_from_json(item, &attrs[n].value, &scratch[n]);
		n++;
	}
	struct call c = callback_start(ctx, "restore");
	ctx->desc->restore(ctx->state, dev->id, attrs, n);
	callback_end(ctx, c, "restore");
	for (size_t i = 0; i < n; i++)
		cJSON_free(scratch[i]);
}

static void restore_plugin(struct hearth_plugin_ctx *ctx)
{
	if (!ctx->desc->restore)
		return;
	for (struct device *d = registry_first(ctx->host->hub->registry); d; d = registry_next(d))
		if (strcmp(d->plugin, ctx->name) == 0 && cJSON_GetArraySize(d->state) > 0)
			restore_device(ctx, d);
}

static void call_stop(struct hearth_plugin_ctx *ctx)
{
	struct call c = callback_start(ctx, "stop");
	ctx->desc->stop(ctx->state);
	callback_end(ctx, c, "stop");
}

static void unload_failed(struct hearth_plugin_ctx *ctx)
{
	call_stop(ctx);
	ctx->phase = P_STOPPED;
	release_all(ctx);
	if (!ctx->works) {
		unlink_ctx(ctx);
		ctx_free(ctx);
	}
}

void plugin_host_start_all(struct plugin_host *host)
{
	struct hearth_plugin_ctx *next;
	for (struct hearth_plugin_ctx *ctx = host->plugins; ctx; ctx = next) {
		next = ctx->next;
		if (ctx->phase != P_READY)
			continue;
		restore_plugin(ctx);
		struct call c = callback_start(ctx, "start");
		int rc = ctx->desc->start(ctx->state);
		callback_end(ctx, c, "start");
		if (rc) {
			log_error(src, "plugin '%s' failed to start (%s); unloading it", ctx->name,
				  strerror(rc < 0 ? -rc : rc));
			unload_failed(ctx);
			continue;
		}
		ctx->phase = P_RUNNING;
	}
}

static void check_all_stopped(struct plugin_host *host)
{
	for (struct hearth_plugin_ctx *c = host->plugins; c; c = c->next)
		if (c->phase == P_STOPPING || (c->phase == P_STOPPED && c->works))
			return;
	if (host->stop_done) {
		void (*done)(void *) = host->stop_done;
		host->stop_done = NULL;
		done(host->stop_user);
	}
}

static void finish_stop(struct hearth_plugin_ctx *ctx)
{
	call_stop(ctx);
	ctx->phase = P_STOPPED;
	release_all(ctx);
	check_all_stopped(ctx->host);
}

void plugin_host_stop_all(struct plugin_host *host, void (*done)(void *user), void *user)
{
	host->stop_done = done;
	host->stop_user = user;
	pthread_mutex_lock(&host->lock);
	host->closed = true;
	pthread_mutex_unlock(&host->lock);
	for (struct hearth_plugin_ctx *c = host->plugins; c; c = c->next)
		if (alive(c))
			c->phase = P_STOPPING;
	for (struct hearth_plugin_ctx *c = host->plugins; c; c = c->next) {
		if (c->phase != P_STOPPING)
			continue;
		for (struct work *w = c->works; w; w = w->next)
			uv_cancel((uv_req_t *)&w->req);
		if (!c->works)
			finish_stop(c);
	}
	check_all_stopped(host);
}

/* -- commands and messages ---------------------------------------------------------- */

int plugin_host_command(struct plugin_host *host, struct device *dev, uint64_t command_id,
			const struct hearth_attr *attrs, size_t n_attrs)
{
	(void)host;
	struct hearth_plugin_ctx *ctx = dev->owner;
	if (!ctx || ctx->phase != P_RUNNING)
		return -ENODEV;
	struct hearth_command cmd = {
		.id = command_id, .device_id = dev->id, .attrs = attrs, .n_attrs = n_attrs};
	struct call c = callback_start(ctx, "command");
	int rc = ctx->desc->command(ctx->state, &cmd);
	callback_end(ctx, c, "command");
	return rc > 0 ? -EINVAL : rc;
}

int plugin_host_get(struct plugin_host *host, struct device *dev, const char *const *attrs,
		    size_t n_attrs)
{
	(void)host;
	struct hearth_plugin_ctx *ctx = dev->owner;
	if (!ctx || ctx->phase != P_RUNNING)
		return -ENODEV;
	if (!ctx->desc->get || ctx->desc->struct_size < offsetof(struct hearth_plugin, get) +
								 sizeof(ctx->desc->get))
		return -ENOTSUP;
	struct call c = callback_start(ctx, "get");
	int rc = ctx->desc->get(ctx->state, dev->id, attrs, n_attrs);
	callback_end(ctx, c, "get");
	return rc;
}

bool plugin_host_retry_safe(const void *owner)
{
	const struct hearth_plugin_ctx *ctx = owner;
	if (!ctx || !ctx->desc || HEARTH_ABI_VERSION_MINOR(ctx->desc->abi_version) < 1 ||
	    ctx->desc->struct_size < offsetof(struct hearth_plugin, flags) + sizeof(ctx->desc->flags))
		return false;
	return (ctx->desc->flags & HEARTH_PLUGIN_RETRY_SAFE) != 0;
}

int plugin_host_permit_join(struct plugin_host *host, const char *plugin, unsigned seconds)
{
	int accepted = 0;
	bool found = false;
	for (struct hearth_plugin_ctx *c = host->plugins; c; c = c->next) {
		if (plugin && strcmp(plugin, c->name) != 0)
			continue;
		found = true;
		if (c->phase != P_RUNNING || !c->desc->permit_join)
			continue;
		struct call call = callback_start(c, "permit_join");
		if (c->desc->permit_join(c->state, seconds) == 0)
			accepted++;
		callback_end(c, call, "permit_join");
	}
	if (!found && plugin)
		return -ENOENT;
	return accepted ? accepted : -ENOTSUP;
}

void plugin_host_mqtt_message(struct plugin_host *host, const char *topic, const void *payload,
			      size_t len, bool retained)
{
	for (struct hearth_plugin_ctx *c = host->plugins; c; c = c->next) {
		if (c->phase != P_RUNNING && c->phase != P_READY)
			continue;
		for (struct sub *s = c->subs; s; s = s->next) {
			if (!mqtt_topic_matches(s->filter, topic))
				continue;
			struct call call = callback_start(c, "mqtt message");
			s->cb(s->user, topic, payload, len, retained);
			callback_end(c, call, "mqtt message");
			break; /* one delivery per plugin, as a broker does */
		}
	}
}

cJSON *plugin_host_to_json(const struct plugin_host *host)
{
	cJSON *a = cJSON_CreateArray();
	if (!a)
		return NULL;
	for (const struct hearth_plugin_ctx *c = host->plugins; c; c = c->next) {
		cJSON *o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddStringToObject(o, "name", c->name);
		cJSON_AddStringToObject(o, "version", c->desc->version ? c->desc->version : "");
		cJSON_AddStringToObject(o, "description",
					c->desc->description ? c->desc->description : "");
		char abi[16];
		snprintf(abi, sizeof(abi), "%u.%u", HEARTH_ABI_VERSION_MAJOR(c->desc->abi_version),
			 HEARTH_ABI_VERSION_MINOR(c->desc->abi_version));
		cJSON_AddStringToObject(o, "abi", abi);
		cJSON_AddStringToObject(o, "state", phase_names[c->phase]);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

size_t plugin_host_count(const struct plugin_host *host)
{
	size_t n = 0;
	for (const struct hearth_plugin_ctx *c = host->plugins; c; c = c->next)
		n++;
	return n;
}

/* -- life cycle ------------------------------------------------------------------------ */

int plugin_host_new(struct hearth_hub *hub, struct plugin_host **out)
{
	struct plugin_host *host = calloc(1, sizeof(*host));
	if (!host)
		return -ENOMEM;
	host->hub = hub;
	pthread_mutex_init(&host->lock, NULL);
	uv_async_init(hub->loop, &host->async, posts_run);
	host->async.data = host;
	/* posts alone never keep the hub running */
	uv_unref((uv_handle_t *)&host->async);
	host->table = (struct hearth_host){
		.size = sizeof(struct hearth_host),
		.abi_minor = HEARTH_ABI_MINOR,
		.device_add = h_device_add,
		.device_remove = h_device_remove,
		.state_report = h_state_report,
		.event_report = h_event_report,
		.availability_set = h_availability_set,
		.command_done = h_command_done,
		.mqtt_subscribe = h_mqtt_subscribe,
		.mqtt_unsubscribe = h_mqtt_unsubscribe,
		.mqtt_publish = h_mqtt_publish,
		.config_get = h_config_get,
		.secret_read = h_secret_read,
		.log = h_log,
		.timer_start = h_timer_start,
		.timer_again = h_timer_again,
		.timer_stop = h_timer_stop,
		.fd_watch = h_fd_watch,
		.fd_modify = h_fd_modify,
		.fd_unwatch = h_fd_unwatch,
		.work_queue = h_work_queue,
		.post = h_post,
		.now_ms = h_now_ms,
	};
	*out = host;
	return 0;
}

static void async_closed(uv_handle_t *h)
{
	struct plugin_host *host = h->data;
	host->async.data = NULL;
}

void plugin_host_free(struct plugin_host *host)
{
	if (!host)
		return;
	while (host->plugins) {
		struct hearth_plugin_ctx *c = host->plugins;
		host->plugins = c->next;
		if (alive(c)) {
			call_stop(c);
			c->phase = P_STOPPED;
			release_all(c);
		}
		ctx_free(c);
	}
	uv_close((uv_handle_t *)&host->async, async_closed);
	while (host->async.data)
		uv_run(host->hub->loop, UV_RUN_ONCE);
	struct post *p = host->posts;
	while (p) {
		struct post *next = p->next;
		free(p);
		p = next;
	}
	pthread_mutex_destroy(&host->lock);
	free(host);
}
