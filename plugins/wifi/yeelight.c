/*
 * The Yeelight driver: bulbs found by SSDP-style search (multicast with
 * discovery on; unicast to each bulb listed in yeelight_devices), one
 * persistent TCP connection per bulb with a non-blocking connect, JSON
 * lines, "props" notifications applied at once, and a per-bulb queue that
 * coalesces commands and keeps within the bulb's quota (yeelight_quota
 * commands a minute).
 *
 * A bulb's life: search answer (id, model, support) -> device_add ->
 * connect -> get_prop -> props notifications and a get_prop every
 * poll_interval_s. A lost connection is reconnected at once; a failed
 * connect makes the bulb unavailable and is retried with a doubling wait.
 */
#include "wifi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define INFLIGHT_MAX 4	 /* commands awaiting an answer per bulb */
#define QUEUE_MAX 16	 /* requests waiting per bulb */
#define WAITERS_MAX 8	 /* commands one coalesced request finishes */
#define WBUF_MAX 8192
#define QUOTA_WINDOW_MS 60500 /* a minute, and half a second for the way to the bulb */
#define IDLE_TIMER_MS 60000
#define RX_BURST 8
#define REQS_PER_SET 8

struct ylcmd {
	uint64_t hub_id;
	unsigned pending;
	int status;
	char error[160];
};

struct ylreq {
	struct ylreq *next;
	struct yl_req req;
	bool poll;
	bool sent;
	uint32_t id;
	int64_t deadline_ms;
	struct ylcmd *cmds[WAITERS_MAX];
	size_t n_cmds;
};

enum conn_state { C_DOWN, C_CONNECTING, C_UP };

struct yl_bulb {
	struct wifi *w;
	char host[WIFI_HOST_MAX];
	uint16_t port;
	bool configured;
	struct sockaddr_in addr;
	bool have_addr;
	char label[WIFI_HOST_MAX + 8];
	/* identity, from the search answer */
	bool known, added, online, warned;
	char id[WIFI_ID_MAX];
	char id_text[YL_ID_TEXT_MAX];
	char model[YL_MODEL_MAX];
	unsigned support;
	unsigned search_tries;
	int64_t search_at_ms;
	/* the connection */
	int fd;
	hearth_watch *watch;
	enum conn_state conn;
	int64_t conn_deadline_ms;
	char rbuf[YL_LINE_MAX];
	size_t rlen;
	bool rskip; /* dropping the rest of an overlong line */
	char wbuf[WBUF_MAX];
	size_t wlen;
	unsigned fail_streak;
	int64_t reconnect_at_ms;
	hearth_timer *timer;
	/* work */
	struct ylreq *queue;
	size_t n_queued;
	unsigned n_inflight;
	struct yl_quota quota;
	uint32_t next_id;
	struct yl_props props;
	struct yl_hints hints;
	int64_t next_poll_ms;
};

/* Support bits assumed when a bulb does not list them. */
#define SUPPORT_BASIC (YL_SUP_GET_PROP | YL_SUP_SET_POWER | YL_SUP_SET_BRIGHT)

static void service(struct yl_bulb *b);

/* ---- helpers ------------------------------------------------------------- */

static void log_bulb(struct yl_bulb *b, enum hearth_log_level level, const char *what)
{
	b->w->host->log(b->w->ctx, level, "Yeelight %s (%s): %s", b->added ? b->id : "bulb",
			b->label, what);
}

static struct yl_bulb *by_id(struct wifi *w, const char *id)
{
	for (size_t i = 0; id && i < w->n_bulbs; i++)
		if (w->bulbs[i]->added && strcmp(w->bulbs[i]->id, id) == 0)
			return w->bulbs[i];
	return NULL;
}

static uint64_t reply_wait(struct wifi *w)
{
	unsigned shift = w->opt.retries < 4 ? w->opt.retries : 4;
	return w->opt.timeout_ms << shift;
}

static void earliest(int64_t *next, int64_t t)
{
	if (t < *next)
		*next = t;
}

/* ---- commands and the queue ---------------------------------------------- */

static void cmd_part_done(struct yl_bulb *b, struct ylcmd *c, int status, const char *error)
{
	if (status && c->status == 0) {
		c->status = status;
		snprintf(c->error, sizeof(c->error), "%s", error ? error : strerror(-status));
	}
	if (--c->pending > 0)
		return;
	b->w->host->command_done(b->w->ctx, c->hub_id, c->status, c->status ? c->error : NULL);
	free(c);
}

static void unlink_req(struct yl_bulb *b, struct ylreq *r)
{
	for (struct ylreq **p = &b->queue; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			b->n_queued--;
			if (r->sent)
				b->n_inflight--;
			return;
		}
	}
}

static void req_finish(struct yl_bulb *b, struct ylreq *r, int status, const char *error)
{
	unlink_req(b, r);
	for (size_t i = 0; i < r->n_cmds; i++)
		cmd_part_done(b, r->cmds[i], status, error);
	free(r);
}

static void append(struct yl_bulb *b, struct ylreq *r)
{
	struct ylreq **p = &b->queue;
	while (*p)
		p = &(*p)->next;
	r->next = NULL;
	*p = r;
	b->n_queued++;
}

static struct ylreq *queued_group(struct yl_bulb *b, const char *group)
{
	for (struct ylreq *r = b->queue; r; r = r->next)
		if (!r->sent && !r->poll && r->req.group && strcmp(r->req.group, group) == 0)
			return r;
	return NULL;
}

/* A newer request of the same group replaces a queued one (the bulb ends
 * where the last command says, and the quota is spent once); the commands
 * it served finish with the newer one. */
static void coalesce_enqueue(struct yl_bulb *b, const struct yl_req *req, struct ylcmd *c)
{
	struct ylreq *old = queued_group(b, req->group);
	struct ylreq *r = calloc(1, sizeof(*r));
	if (!r || (!old && b->n_queued >= QUEUE_MAX)) {
		free(r);
		cmd_part_done(b, c, r ? -EBUSY : -ENOMEM, "too many commands wait for the bulb");
		return;
	}
	r->req = *req;
	if (old) {
		unlink_req(b, old);
		for (size_t i = 0; i < old->n_cmds; i++) {
			if (r->n_cmds < WAITERS_MAX - 1)
				r->cmds[r->n_cmds++] = old->cmds[i];
			else
				cmd_part_done(b, old->cmds[i], 0, NULL);
		}
		free(old);
	}
	r->cmds[r->n_cmds++] = c;
	append(b, r);
}

static void poll_enqueue(struct yl_bulb *b)
{
	for (struct ylreq *r = b->queue; r; r = r->next)
		if (r->poll)
			return;
	struct ylreq *r = calloc(1, sizeof(*r));
	if (!r || b->n_queued >= QUEUE_MAX || yl_get_prop_params(r->req.params, sizeof(r->req.params)) < 0) {
		free(r);
		return;
	}
	snprintf(r->req.method, sizeof(r->req.method), "get_prop");
	r->req.group = "poll";
	r->poll = true;
	append(b, r);
}

/* ---- reporting ----------------------------------------------------------- */

static void report(struct yl_bulb *b, unsigned mask)
{
	struct hearth_attr attrs[8];
	char color[160];
	if (!b->added)
		return;
	size_t n = yl_props_attrs(&b->props, mask, b->support, b->model, &b->hints, attrs, 8,
				  color, sizeof(color));
	if (n)
		b->w->host->state_report(b->w->ctx, b->id, attrs, n);
}

/* Take the fields src holds into the bulb's state; returns which. */
static unsigned merge(struct yl_bulb *b, const struct yl_props *src)
{
	struct yl_props *p = &b->props;
	unsigned has = src->has;
	if (has & YL_HAS_POWER)
		p->power = src->power;
	if (has & YL_HAS_BRIGHT)
		p->bright = src->bright;
	if (has & YL_HAS_CT)
		p->ct = src->ct;
	if (has & YL_HAS_RGB)
		p->rgb = src->rgb;
	if (has & YL_HAS_HUE)
		p->hue = src->hue;
	if (has & YL_HAS_SAT)
		p->sat = src->sat;
	if (has & YL_HAS_COLOR_MODE)
		p->color_mode = src->color_mode;
	if (has & YL_HAS_NAME)
		memcpy(p->name, src->name, sizeof(p->name));
	p->has |= has;
	return has;
}

static void add_device(struct yl_bulb *b)
{
	struct wifi *w = b->w;
	struct hearth_capability caps[8];
	char name[WIFI_NAME_MAX];
	size_t n = yl_caps_build(b->support, b->model, caps, 8);
	const char *tail = b->id_text + 2;
	while (tail[0] == '0' && tail[1])
		tail++;
	if (b->props.has & YL_HAS_NAME && b->props.name[0])
		snprintf(name, sizeof(name), "%s", b->props.name);
	else
		snprintf(name, sizeof(name), "yeelight-%s", tail);
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = b->id,
		.name = name,
		.vendor = "Yeelight",
		.model = b->model[0] ? b->model : NULL,
		.description = "Yeelight light (LAN control)",
		.caps = caps,
		.n_caps = n,
	};
	int rc = w->host->device_add(w->ctx, &info);
	if (rc) {
		w->host->log(w->ctx, HEARTH_LOG_ERROR, "cannot add %s (%s): %s", b->id, b->label,
			     strerror(-rc));
		return;
	}
	b->added = true;
	b->online = true;
	w->host->log(w->ctx, HEARTH_LOG_INFO, "Yeelight %s (%s) is a '%s' bulb", b->id, b->label,
		     b->model[0] ? b->model : "unknown");
	report(b, ~0u);
}

/* ---- the connection ------------------------------------------------------ */

static void conn_close(struct yl_bulb *b)
{
	if (b->watch)
		b->w->host->fd_unwatch(b->w->ctx, b->watch);
	b->watch = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	b->conn = C_DOWN;
	b->rlen = b->wlen = 0;
	b->rskip = false;
}

/* Requests sent on a closed connection will get no answer. */
static void fail_sent(struct yl_bulb *b, const char *why)
{
	struct ylreq *r = b->queue;
	while (r) {
		struct ylreq *next = r->next;
		if (r->sent)
			req_finish(b, r, -EIO, why);
		r = next;
	}
}

/* The connection broke: reconnect at once (or after the current wait). */
static void lost(struct yl_bulb *b, int64_t now, const char *why)
{
	log_bulb(b, HEARTH_LOG_DEBUG, why);
	conn_close(b);
	fail_sent(b, "the connection to the bulb was lost");
	b->reconnect_at_ms = now + (b->fail_streak ? (int64_t)wifi_backoff(b->w, b->fail_streak - 1) : 0);
}

/* A connect failed: the bulb is unavailable until one works. */
static void conn_failed(struct yl_bulb *b, int64_t now, const char *why)
{
	struct wifi *w = b->w;
	conn_close(b);
	b->reconnect_at_ms = now + (int64_t)wifi_backoff(w, b->fail_streak);
	b->fail_streak++;
	if (b->added && b->online) {
		b->online = false;
		w->host->availability_set(w->ctx, b->id, false);
		log_bulb(b, HEARTH_LOG_WARNING, why);
	} else if (!b->warned) {
		log_bulb(b, HEARTH_LOG_WARNING, why);
	}
	b->warned = true;
	while (b->queue)
		req_finish(b, b->queue, -EHOSTUNREACH, "the bulb cannot be reached");
}

static void answered(struct yl_bulb *b)
{
	b->fail_streak = 0;
	b->warned = false;
	if (b->added && !b->online) {
		b->online = true;
		b->w->host->availability_set(b->w->ctx, b->id, true);
		log_bulb(b, HEARTH_LOG_INFO, "available again");
	}
}

/* Write interest only while connecting or while output waits. */
static void watch_set(struct yl_bulb *b)
{
	unsigned ev = b->conn == C_CONNECTING ? HEARTH_FD_WRITE
					       : HEARTH_FD_READ | (b->wlen ? HEARTH_FD_WRITE : 0);
	b->w->host->fd_modify(b->w->ctx, b->watch, ev);
}

static void flush(struct yl_bulb *b, int64_t now)
{
	while (b->wlen) {
		ssize_t n = send(b->fd, b->wbuf, b->wlen, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			lost(b, now, "write failed");
			return;
		}
		memmove(b->wbuf, b->wbuf + n, b->wlen - (size_t)n);
		b->wlen -= (size_t)n;
	}
	watch_set(b);
}

static void conn_up(struct yl_bulb *b, int64_t now)
{
	b->conn = C_UP;
	b->next_poll_ms = now; /* learn the state at once */
	watch_set(b);
}

static void line(struct yl_bulb *b, const char *text, size_t len);

static void read_lines(struct yl_bulb *b, int64_t now)
{
	for (int i = 0; i < RX_BURST && b->conn == C_UP; i++) {
		ssize_t n = recv(b->fd, b->rbuf + b->rlen, sizeof(b->rbuf) - b->rlen, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			lost(b, now, n == 0 ? "the bulb closed the connection" : strerror(errno));
			return;
		}
		b->rlen += (size_t)n;
		size_t start = 0;
		for (size_t k = 0; k < b->rlen && b->conn == C_UP; k++) {
			if (b->rbuf[k] != '\n')
				continue;
			if (!b->rskip)
				line(b, b->rbuf + start, k - start);
			b->rskip = false;
			start = k + 1;
		}
		if (b->conn != C_UP)
			return;
		memmove(b->rbuf, b->rbuf + start, b->rlen - start);
		b->rlen -= start;
		if (b->rlen == sizeof(b->rbuf)) { /* no line end in sight: drop it */
			b->rlen = 0;
			b->rskip = true;
		}
	}
}

static void on_io(void *user, int fd, unsigned events)
{
	struct yl_bulb *b = user;
	int64_t now = wifi_now(b->w);
	if (b->conn == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err == 0)
			conn_up(b, now);
		else if (err != EINPROGRESS)
			conn_failed(b, now, strerror(err));
	} else if (b->conn == C_UP) {
		if (events & (HEARTH_FD_READ | HEARTH_FD_ERROR))
			read_lines(b, now);
		if (b->conn == C_UP && (events & HEARTH_FD_WRITE))
			flush(b, now);
	}
	service(b);
}

static void conn_start(struct yl_bulb *b, int64_t now)
{
	struct wifi *w = b->w;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_failed(b, now, strerror(errno));
		return;
	}
	int rc = connect(fd, (const struct sockaddr *)&b->addr, sizeof(b->addr));
	int err = rc == 0 ? 0 : errno;
	if (rc != 0 && err != EINPROGRESS) {
		close(fd);
		conn_failed(b, now, strerror(err));
		return;
	}
	b->fd = fd;
	b->conn = C_CONNECTING;
	b->conn_deadline_ms = now + (int64_t)reply_wait(w);
	if (w->host->fd_watch(w->ctx, fd, HEARTH_FD_WRITE, on_io, b, &b->watch)) {
		conn_failed(b, now, "cannot watch the socket");
		return;
	}
	if (rc == 0)
		conn_up(b, now);
}

/* ---- answers and notifications ------------------------------------------- */

static void result(struct yl_bulb *b, const struct yl_msg *m)
{
	struct ylreq *r = b->queue;
	while (r && !(r->sent && r->id == m->id))
		r = r->next;
	if (!r)
		return;
	answered(b);
	if (r->poll && m->kind == YL_MSG_RESULT) {
		struct yl_props got = {0};
		yl_get_prop_apply(m, yl_prop_names, yl_prop_count, &got);
		report(b, merge(b, &got));
	}
	char why[200];
	snprintf(why, sizeof(why), "%s: %s (%d)", r->req.method, m->error_message, m->error_code);
	req_finish(b, r, m->kind == YL_MSG_ERROR ? -EREMOTEIO : 0, why);
}

static void line(struct yl_bulb *b, const char *text, size_t len)
{
	struct yl_msg *m = malloc(sizeof(*m));
	if (!m)
		return;
	while (len && (text[len - 1] == '\r' || text[len - 1] == ' '))
		len--;
	if (len && yl_line_parse(text, len, m) == 0) {
		if (m->kind == YL_MSG_PROPS)
			report(b, merge(b, &m->props));
		else
			result(b, m);
	}
	free(m);
}

/* ---- sending ------------------------------------------------------------- */

static bool req_send(struct yl_bulb *b, struct ylreq *r, int64_t now)
{
	char text[YL_PARAMS_MAX + 96];
	uint32_t id = b->next_id++;
	if (b->next_id == 0)
		b->next_id = 1;
	int n = yl_command_format(text, sizeof(text), id, r->req.method, r->req.params);
	if (n < 0) {
		req_finish(b, r, -EINVAL, "the command cannot be encoded");
		return true;
	}
	if (b->wlen + (size_t)n > sizeof(b->wbuf))
		return false;
	memcpy(b->wbuf + b->wlen, text, (size_t)n);
	b->wlen += (size_t)n;
	r->sent = true;
	r->id = id;
	r->deadline_ms = now + (int64_t)reply_wait(b->w);
	b->n_inflight++;
	yl_quota_take(&b->quota, now);
	return true;
}

static void send_ready(struct yl_bulb *b, int64_t now)
{
	struct ylreq *r = b->queue;
	bool wrote = false;
	while (r && b->n_inflight < INFLIGHT_MAX && yl_quota_wait(&b->quota, now) == 0) {
		struct ylreq *next = r->next;
		if (!r->sent) {
			if (!req_send(b, r, now))
				break;
			wrote = true;
		}
		r = next;
	}
	if (wrote)
		flush(b, now);
}

/* ---- search -------------------------------------------------------------- */

static void search_send(struct yl_bulb *b, int64_t now)
{
	struct wifi *w = b->w;
	char text[256];
	struct sockaddr_in to = b->addr;
	to.sin_port = htons(w->opt.yl_discovery_port);
	int n = yl_search_build(text, sizeof(text), NULL);
	if (n > 0 && w->ssdp_fd >= 0)
		(void)sendto(w->ssdp_fd, text, (size_t)n, MSG_NOSIGNAL, (const struct sockaddr *)&to,
			     sizeof(to));
	b->search_at_ms = now + (int64_t)wifi_backoff(w, b->search_tries);
	if (b->search_tries++ == 1 + w->opt.retries)
		log_bulb(b, HEARTH_LOG_WARNING, "no answer to the search yet; still asking");
}

/* ---- the bulb's clock ---------------------------------------------------- */

static void expire(struct yl_bulb *b, int64_t now)
{
	if (b->conn == C_CONNECTING && now >= b->conn_deadline_ms) {
		conn_failed(b, now, "connect timed out");
		return;
	}
	for (struct ylreq *r = b->queue; b->conn == C_UP && r; r = r->next) {
		if (r->sent && now >= r->deadline_ms) {
			lost(b, now, "no answer to a command");
			return;
		}
	}
}

static void arm(struct yl_bulb *b, int64_t now)
{
	int64_t next = now + IDLE_TIMER_MS;
	if (b->conn == C_CONNECTING)
		earliest(&next, b->conn_deadline_ms);
	for (const struct ylreq *r = b->queue; r; r = r->next)
		if (r->sent)
			earliest(&next, r->deadline_ms);
	if (!b->known && b->configured && b->have_addr)
		earliest(&next, b->search_at_ms);
	if (b->known && b->have_addr && b->conn == C_DOWN)
		earliest(&next, b->reconnect_at_ms);
	if (b->conn == C_UP) {
		earliest(&next, b->next_poll_ms);
		int64_t wait = yl_quota_wait(&b->quota, now);
		if (wait > 0 && b->n_queued > b->n_inflight)
			earliest(&next, now + wait);
	}
	b->w->host->timer_again(b->w->ctx, b->timer, next > now ? (uint64_t)(next - now) : 0, 0);
}

static void service(struct yl_bulb *b)
{
	struct wifi *w = b->w;
	int64_t now = wifi_now(w);
	if (!b->have_addr)
		return;
	expire(b, now);
	if (!b->known) {
		if (b->configured && now >= b->search_at_ms)
			search_send(b, now);
	} else if (b->conn == C_DOWN && now >= b->reconnect_at_ms) {
		conn_start(b, now);
	}
	if (b->conn == C_UP) {
		if (now >= b->next_poll_ms) {
			poll_enqueue(b);
			b->next_poll_ms = now + (int64_t)wifi_jitter(w, w->opt.poll_ms);
		}
		send_ready(b, now);
	}
	arm(b, now);
}

static void on_timer(void *user)
{
	service(user);
}

/* ---- bulbs --------------------------------------------------------------- */

static struct yl_bulb *bulb_new(struct wifi *w, const char *host, uint16_t port, bool configured)
{
	if (w->n_bulbs >= WIFI_YEELIGHT_MAX)
		return NULL;
	struct yl_bulb *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->w = w;
	b->fd = -1;
	b->port = port;
	b->configured = configured;
	snprintf(b->host, sizeof(b->host), "%s", host);
	snprintf(b->label, sizeof(b->label), "%s:%u", host, port);
	yl_quota_init(&b->quota, w->opt.yl_quota, QUOTA_WINDOW_MS);
	b->hints = (struct yl_hints){-1, -1};
	b->next_id = 1;
	w->bulbs[w->n_bulbs++] = b;
	return b;
}

static int bulb_start(struct yl_bulb *b)
{
	return b->w->host->timer_start(b->w->ctx, 0, 0, on_timer, b, &b->timer);
}

static void on_resolved(void *user, int status, struct in_addr addr)
{
	struct yl_bulb *b = user;
	if (status) {
		log_bulb(b, HEARTH_LOG_ERROR, "the host name does not resolve; bulb ignored");
		return;
	}
	b->addr.sin_addr = addr;
	b->have_addr = true;
	service(b);
}

/* What a search answer or an advertisement says about a bulb. */
static void learn(struct yl_bulb *b, const struct yl_discovery *d)
{
	if (b->known && strcmp(b->id_text, d->id_text) != 0) {
		if (!b->warned)
			log_bulb(b, HEARTH_LOG_WARNING, "another bulb answers at this address; ignored");
		b->warned = true;
		return;
	}
	if (!b->known) {
		b->known = true;
		memcpy(b->id_text, d->id_text, sizeof(b->id_text));
		snprintf(b->id, sizeof(b->id), "wifi:yeelight:%s", d->id_text);
		b->reconnect_at_ms = 0;
	}
	snprintf(b->model, sizeof(b->model), "%s", d->model);
	if (d->support || !b->support)
		b->support = d->support ? d->support : SUPPORT_BASIC;
	unsigned changed = merge(b, &d->props);
	if (!b->added)
		add_device(b);
	else
		report(b, changed);
	service(b);
}

static struct yl_bulb *bulb_at(struct wifi *w, const struct yl_discovery *d)
{
	struct in_addr ip;
	if (inet_pton(AF_INET, d->ip, &ip) != 1)
		return NULL;
	for (size_t i = 0; i < w->n_bulbs; i++) {
		struct yl_bulb *b = w->bulbs[i];
		if (b->have_addr && b->addr.sin_addr.s_addr == ip.s_addr && b->port == d->port)
			return b;
	}
	if (!w->opt.discovery)
		return NULL; /* only listed bulbs are used */
	struct yl_bulb *b = bulb_new(w, d->ip, d->port, false);
	if (!b)
		return NULL;
	if (wifi_addr_parse(d->ip, d->port, &b->addr) || bulb_start(b)) {
		w->bulbs[--w->n_bulbs] = NULL;
		free(b);
		return NULL;
	}
	b->have_addr = true;
	return b;
}

static void on_ssdp_readable(void *user, int fd, unsigned events)
{
	struct wifi *w = user;
	char buf[YL_LINE_MAX + 1];
	wifi_watch_rearm(w, fd == w->ssdp_fd ? w->ssdp_watch : w->notify_watch, fd, events);
	for (int i = 0; i < RX_BURST; i++) {
		struct yl_discovery d;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0 || (size_t)n > YL_LINE_MAX || yl_discovery_parse(buf, (size_t)n, &d))
			continue;
		struct yl_bulb *b = bulb_at(w, &d);
		if (b)
			learn(b, &d);
	}
}

/* ---- the plugin's entry points ------------------------------------------- */

int wifi_yl_init(struct wifi *w, const struct host_port *hosts, size_t n)
{
	w->bulbs = calloc(WIFI_YEELIGHT_MAX, sizeof(*w->bulbs));
	if (!w->bulbs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!bulb_new(w, hosts[i].host, hosts[i].port, true))
			return -ENOMEM;
	return 0;
}

static int ssdp_open(struct wifi *w)
{
	int fd = wifi_udp_socket(false);
	if (fd < 0)
		return fd;
	int rc = w->host->fd_watch(w->ctx, fd, HEARTH_FD_READ, on_ssdp_readable, w, &w->ssdp_watch);
	if (rc) {
		close(fd);
		return rc;
	}
	w->ssdp_fd = fd;
	return 0;
}

/* Advertisements arrive on the group's port; joining is a multicast act,
 * so it happens only with discovery on. */
static int notify_open(struct wifi *w)
{
	int fd = wifi_udp_socket(false), one = 1;
	if (fd < 0)
		return fd;
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(YL_SSDP_PORT),
				  .sin_addr.s_addr = htonl(INADDR_ANY)};
	struct ip_mreq mreq = {.imr_interface.s_addr = htonl(INADDR_ANY)};
	int rc = inet_pton(AF_INET, YL_SSDP_GROUP, &mreq.imr_multiaddr) == 1 ? 0 : -EINVAL;
	if (rc == 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
			bind(fd, (const struct sockaddr *)&any, sizeof(any)) != 0 ||
			setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0))
		rc = -errno;
	if (rc == 0)
		rc = w->host->fd_watch(w->ctx, fd, HEARTH_FD_READ, on_ssdp_readable, w,
				       &w->notify_watch);
	if (rc) {
		close(fd);
		return rc;
	}
	w->notify_fd = fd;
	return 0;
}

int wifi_yl_start(struct wifi *w)
{
	int rc = 0;
	if (w->n_bulbs || w->opt.discovery)
		rc = ssdp_open(w);
	if (rc)
		return rc;
	if (w->opt.discovery && (rc = notify_open(w)))
		w->host->log(w->ctx, HEARTH_LOG_WARNING,
			     "Yeelight advertisements will not be heard: %s", strerror(-rc));
	for (size_t i = 0; i < w->n_bulbs; i++) {
		struct yl_bulb *b = w->bulbs[i];
		if ((rc = bulb_start(b)))
			return rc;
		b->addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(b->port)};
		if (wifi_addr_parse(b->host, b->port, &b->addr) == 0)
			b->have_addr = true;
		else if ((rc = wifi_resolve(w, b->host, on_resolved, b)))
			log_bulb(b, HEARTH_LOG_ERROR, strerror(-rc));
	}
	return 0;
}

void wifi_yl_stop(struct wifi *w)
{
	for (size_t i = 0; i < w->n_bulbs; i++) {
		struct yl_bulb *b = w->bulbs[i];
		conn_close(b);
		w->host->timer_stop(w->ctx, b->timer);
		while (b->queue) {
			struct ylreq *r = b->queue;
			b->queue = r->next;
			for (size_t k = 0; k < r->n_cmds; k++)
				if (--r->cmds[k]->pending == 0)
					free(r->cmds[k]);
			free(r);
		}
		free(b);
	}
	free(w->bulbs);
	w->bulbs = NULL;
	w->n_bulbs = 0;
	if (w->ssdp_watch)
		w->host->fd_unwatch(w->ctx, w->ssdp_watch);
	if (w->ssdp_fd >= 0)
		close(w->ssdp_fd);
	if (w->notify_watch)
		w->host->fd_unwatch(w->ctx, w->notify_watch);
	if (w->notify_fd >= 0)
		close(w->notify_fd);
	w->ssdp_fd = w->notify_fd = -1;
}

int wifi_yl_command(struct wifi *w, const struct hearth_command *cmd)
{
	struct yl_bulb *b = by_id(w, cmd->device_id);
	struct yl_req reqs[REQS_PER_SET];
	char err[200];
	size_t n = 0;
	if (!b)
		return -ENOENT;
	int rc = yl_set_build(cmd->attrs, cmd->n_attrs, &b->props, b->support, b->model, reqs,
			      REQS_PER_SET, &n, &b->hints, err, sizeof(err));
	if (rc) {
		w->host->command_done(w->ctx, cmd->id, rc, err);
		return 0;
	}
	struct ylcmd *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->hub_id = cmd->id;
	c->pending = (unsigned)n + 1; /* held until every part is queued */
	for (size_t i = 0; i < n; i++)
		coalesce_enqueue(b, &reqs[i], c);
	cmd_part_done(b, c, 0, NULL);
	if (b->conn == C_DOWN)
		b->reconnect_at_ms = 0; /* a user is waiting: try the bulb now */
	service(b);
	return 0;
}

int wifi_yl_get(struct wifi *w, const char *device_id)
{
	struct yl_bulb *b = by_id(w, device_id);
	if (!b)
		return -ENOENT;
	b->next_poll_ms = 0;
	if (b->conn == C_DOWN)
		b->reconnect_at_ms = 0;
	service(b);
	return 0;
}

void wifi_yl_discover(struct wifi *w)
{
	char text[256];
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(YL_SSDP_PORT)};
	int n = yl_search_build(text, sizeof(text), NULL);
	if (w->ssdp_fd < 0 || n < 0 || inet_pton(AF_INET, YL_SSDP_GROUP, &to.sin_addr) != 1)
		return;
	if (sendto(w->ssdp_fd, text, (size_t)n, MSG_NOSIGNAL, (const struct sockaddr *)&to,
		   sizeof(to)) < 0)
		w->host->log(w->ctx, HEARTH_LOG_WARNING, "Yeelight search failed: %s",
			     strerror(errno));
}
