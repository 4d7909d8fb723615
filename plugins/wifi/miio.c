/*
 * The miIO driver: one connected UDP socket per device, the hello
 * handshake, encrypted JSON-RPC with increasing ids, stamp tracking,
 * retries with a doubling wait, a small in-flight limit, polling, commands,
 * availability, and the hello broadcast that finds devices on the LAN.
 *
 * A device's life: hello -> (miIO.info when the model is not configured)
 * -> device_add -> polls every poll_interval_s and commands as they come.
 * A request unanswered after 1 + retries attempts makes the device
 * unavailable; it is then tried again with a doubling wait, and the first
 * encrypted answer makes it available again.
 *
 * Tokens never reach a log line.
 */
#include "wifi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define INFLIGHT_MAX 2	      /* requests awaiting an answer per device */
#define QUEUE_MAX 32	      /* requests waiting per device */
#define IDS_MAX 16	      /* ids one request may use across its attempts */
#define REHELLO_IDLE_MS 120000 /* a quiet device gets a fresh handshake */
#define ID_WRAP 9999	      /* some devices refuse larger ids */
#define ID_BUMP 100	      /* skip ahead when a device says an id is used */
#define RX_BURST 16	      /* datagrams read per wake-up */
#define FOUND_MAX 64	      /* devices a broadcast may list */
#define IDLE_TIMER_MS 60000
#define REFRESH_AFTER_SET_MS 300

enum req_kind { REQ_INFO, REQ_POLL, REQ_SET };

/* A hub command: done when all its requests are. The attributes to report
 * on success hold static strings only. */
struct mcmd {
	uint64_t hub_id;
	unsigned pending;
	int status;
	char error[160];
	size_t n_attrs;
	struct hearth_attr attrs[MIIO_PROPS_MAX];
	int prop_index[MIIO_PROPS_MAX];
};

struct mreq {
	struct mreq *next;
	enum req_kind kind;
	char method[48];
	char params[MIIO_PARAMS_MAX];
	uint32_t ids[IDS_MAX];
	unsigned n_ids;
	unsigned tries;
	bool in_flight;
	int64_t deadline_ms;
	size_t poll_start, poll_next;
	struct mcmd *cmd;
};

struct miio_dev {
	struct wifi *w;
	struct miio_conf conf;
	struct miio_keys keys;
	struct sockaddr_in addr;
	int fd;
	hearth_watch *watch;
	hearth_timer *timer;
	char id[WIFI_ID_MAX];
	char label[WIFI_HOST_MAX + 8]; /* host:port, for logs */
	char model[MIIO_MODEL_MAX];
	const struct miio_model *row; /* NULL until the model is known */
	bool added, online, warned_unreachable, warned_token, warned_did;
	bool proven; /* an encrypted answer came: the token is right */
	/* the session */
	bool session;
	uint32_t did, stamp;
	int64_t stamp_at_ms, last_rx_ms;
	bool hello_out;
	unsigned hello_tries;
	int64_t hello_deadline_ms;
	uint32_t next_id;
	/* work */
	struct mreq *queue;
	size_t n_queued;
	unsigned n_inflight;
	int64_t next_poll_ms;
	unsigned fail_streak;
	int64_t retry_at_ms;
	int hints[MIIO_PROPS_MAX];
};

/* A device that answered a broadcast hello. */
struct miio_found {
	uint32_t did;
	struct in_addr ip;
	bool has_token;
	struct miio_keys keys;
};

static const struct miio_prop no_props[1];
static const struct miio_model info_only_row = {
	"*", "miIO device without readable properties", MIIO_LEGACY, 16, 1700, 6500,
	NULL, 0, no_props, 0};

static void service(struct miio_dev *d);

/* ---- small helpers ------------------------------------------------------- */

static void logf_dev(struct miio_dev *d, enum hearth_log_level level, const char *what)
{
	d->w->host->log(d->w->ctx, level, "miIO %s (%s): %s", d->added ? d->id : "device",
			d->label, what);
}

static struct miio_dev *by_id(struct wifi *w, const char *id)
{
	for (size_t i = 0; id && i < w->n_miio; i++)
		if (w->miio[i].id[0] && strcmp(w->miio[i].id, id) == 0)
			return &w->miio[i];
	return NULL;
}

static uint32_t take_id(struct miio_dev *d)
{
	uint32_t id = d->next_id;
	d->next_id = id >= ID_WRAP ? 1 : id + 1;
	return id;
}

static uint64_t attempt_wait(struct miio_dev *d, unsigned tries)
{
	uint64_t ms = d->w->opt.timeout_ms;
	for (unsigned i = 1; i < tries && i < 8; i++)
		ms *= 2;
	return ms;
}

/* ---- the queue ----------------------------------------------------------- */

/* Commands go before polls not yet sent, so a /set never waits a poll. */
static void enqueue(struct miio_dev *d, struct mreq *r, bool urgent)
{
	struct mreq **p = &d->queue;
	while (*p && !(urgent && (*p)->kind == REQ_POLL && !(*p)->in_flight))
		p = &(*p)->next;
	r->next = *p;
	*p = r;
	d->n_queued++;
}

static void unlink_req(struct miio_dev *d, struct mreq *r)
{
	for (struct mreq **p = &d->queue; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			d->n_queued--;
			if (r->in_flight)
				d->n_inflight--;
			return;
		}
	}
}

/* Copy src into dst, cut to cap - 1 bytes. */
static void copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static struct mreq *req_new(enum req_kind kind, const char *method, const char *params)
{
	struct mreq *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->kind = kind;
	copy_text(r->method, sizeof(r->method), method);
	copy_text(r->params, sizeof(r->params), params);
	return r;
}

static bool has_kind(const struct miio_dev *d, enum req_kind kind)
{
	for (const struct mreq *r = d->queue; r; r = r->next)
		if (r->kind == kind)
			return true;
	return false;
}

/* ---- commands ------------------------------------------------------------ */

static void cmd_finish(struct miio_dev *d, struct mcmd *c)
{
	struct wifi *w = d->w;
	w->host->command_done(w->ctx, c->hub_id, c->status, c->status ? c->error : NULL);
	if (c->status == 0 && d->added) {
		for (size_t i = 0; i < c->n_attrs; i++) {
			if ((size_t)c->prop_index[i] >= d->row->n_props)
				continue; /* the row shrank while the command ran */
			const struct miio_prop *p = &d->row->props[c->prop_index[i]];
			if ((p->conv == MIIO_CONV_PERCENT || p->conv == MIIO_CONV_KELVIN) &&
			    c->attrs[i].value.type == HEARTH_VALUE_NUMBER)
				d->hints[c->prop_index[i]] = (int)c->attrs[i].value.u.number;
		}
		if (c->n_attrs)
			w->host->state_report(w->ctx, d->id, c->attrs, c->n_attrs);
		d->next_poll_ms = wifi_now(w) + REFRESH_AFTER_SET_MS;
	}
	free(c);
}

static void cmd_part_done(struct miio_dev *d, struct mcmd *c, int status, const char *error)
{
	if (status && c->status == 0) {
		c->status = status;
		snprintf(c->error, sizeof(c->error), "%s", error ? error : strerror(-status));
	}
	if (--c->pending == 0)
		cmd_finish(d, c);
}

static void req_drop(struct miio_dev *d, struct mreq *r, int status, const char *error)
{
	unlink_req(d, r);
	if (r->cmd)
		cmd_part_done(d, r->cmd, status, error);
	free(r);
}

static void drop_all(struct miio_dev *d, int status, const char *error)
{
	while (d->queue)
		req_drop(d, d->queue, status, error);
}

/* ---- availability -------------------------------------------------------- */

static void add_device(struct miio_dev *d)
{
	struct wifi *w = d->w;
	char name[WIFI_NAME_MAX];
	if (d->conf.name[0])
		snprintf(name, sizeof(name), "%s", d->conf.name);
	else
		snprintf(name, sizeof(name), "miio-%u", d->did);
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = d->id,
		.name = name,
		.vendor = "Xiaomi",
		.model = d->model[0] ? d->model : NULL,
		.description = d->row->description,
		.caps = d->row->caps,
		.n_caps = d->row->n_caps,
	};
	int rc = w->host->device_add(w->ctx, &info);
	if (rc) {
		w->host->log(w->ctx, HEARTH_LOG_ERROR, "cannot add %s (%s): %s", d->id, d->label,
			     strerror(-rc));
		return;
	}
	if (!d->added)
		w->host->log(w->ctx, HEARTH_LOG_INFO, "miIO %s (%s) is a %s", d->id, d->label,
			     d->model[0] ? d->model : "device of unknown model");
	d->added = true;
	d->online = true;
}

static void answered(struct miio_dev *d)
{
	d->proven = true;
	d->fail_streak = 0;
	d->retry_at_ms = 0;
	d->warned_unreachable = false;
	if (d->added && !d->online) {
		d->online = true;
		d->w->host->availability_set(d->w->ctx, d->id, true);
		logf_dev(d, HEARTH_LOG_INFO, "available again");
	}
}

static void lost(struct miio_dev *d, int64_t now, const char *why)
{
	struct wifi *w = d->w;
	if (d->session && !d->proven && !d->warned_token) {
		/* hello answered, requests not: the usual sign of a wrong token */
		logf_dev(d, HEARTH_LOG_WARNING,
			 "answers the hello but not requests; is its token right?");
		d->warned_token = true;
	}
	d->session = false;
	d->hello_out = false;
	d->hello_tries = 0;
	d->retry_at_ms = now + (int64_t)wifi_backoff(w, d->fail_streak);
	d->fail_streak++;
	if (d->added && d->online) {
		d->online = false;
		w->host->availability_set(w->ctx, d->id, false);
		logf_dev(d, HEARTH_LOG_WARNING, why);
	} else if (!d->added && !d->warned_unreachable) {
		logf_dev(d, HEARTH_LOG_WARNING, why);
	}
	d->warned_unreachable = true;
	drop_all(d, -EHOSTUNREACH, "the device does not answer");
}

/* ---- sending ------------------------------------------------------------- */

static void hello_send(struct miio_dev *d, int64_t now)
{
	uint8_t hello[MIIO_HEADER_LEN];
	miio_hello_build(hello);
	/* a failed send (ICMP from a previous one) is handled as a lost answer */
	(void)send(d->fd, hello, sizeof(hello), MSG_NOSIGNAL);
	d->hello_out = true;
	d->hello_tries++;
	d->hello_deadline_ms = now + (int64_t)attempt_wait(d, d->hello_tries);
}

static int req_send(struct miio_dev *d, struct mreq *r, int64_t now)
{
	char payload[MIIO_PARAMS_MAX + 128];
	uint8_t pkt[MIIO_PACKET_MAX];
	size_t len = 0;
	uint32_t id = take_id(d);
	int n = miio_request_format(payload, sizeof(payload), id, r->method, r->params);
	if (n < 0)
		return n;
	uint32_t stamp = d->stamp + (uint32_t)((now - d->stamp_at_ms) / 1000);
	int rc = miio_packet_build(&d->keys, d->did, stamp, payload, (size_t)n, pkt, sizeof(pkt),
				   &len);
	if (rc)
		return rc;
	(void)send(d->fd, pkt, len, MSG_NOSIGNAL);
	r->ids[r->n_ids++ % IDS_MAX] = id;
	r->tries++;
	r->deadline_ms = now + (int64_t)attempt_wait(d, r->tries);
	if (!r->in_flight)
		d->n_inflight++;
	r->in_flight = true;
	return 0;
}

static bool set_in_flight(const struct miio_dev *d)
{
	for (const struct mreq *r = d->queue; r; r = r->next)
		if (r->in_flight && r->kind == REQ_SET)
			return true;
	return false;
}

/* A command goes out only when the one before it has ended: were both in
 * flight, the older one's retry (its answer lost) could reach the device
 * after the newer one and undo it. Polls may overlap a command. */
static void send_ready(struct miio_dev *d, int64_t now)
{
	struct mreq *r = d->queue;
	while (r && d->n_inflight < INFLIGHT_MAX) {
		struct mreq *next = r->next;
		if (!r->in_flight && r->kind == REQ_SET && set_in_flight(d))
			break; /* in order: what follows waits too */
		if (!r->in_flight) {
			int rc = req_send(d, r, now);
			if (rc)
				req_drop(d, r, rc, "the request cannot be encoded");
		}
		r = next;
	}
}

/* ---- timeouts ------------------------------------------------------------ */

/* true if the device was given up on (the queue is then empty). */
static bool expire(struct miio_dev *d, int64_t now)
{
	unsigned attempts = 1 + d->w->opt.retries;
	if (d->hello_out && now >= d->hello_deadline_ms) {
		if (d->hello_tries < attempts) {
			hello_send(d, now);
		} else {
			lost(d, now, "no answer to the hello; unavailable");
			return true;
		}
	}
	for (struct mreq *r = d->queue; r; r = r->next) {
		if (!r->in_flight || now < r->deadline_ms)
			continue;
		if (r->tries < attempts && d->session) {
			req_send(d, r, now);
			continue;
		}
		lost(d, now, "no answer to requests; unavailable");
		return true;
	}
	return false;
}

static void poll_enqueue(struct miio_dev *d)
{
	char params[MIIO_PARAMS_MAX];
	const char *method;
	size_t start = 0, next = 0;
	if (has_kind(d, REQ_POLL))
		return;
	if (d->row->n_props == 0) {
		/* nothing to read: miIO.info shows the device is there */
		struct mreq *r = req_new(REQ_POLL, "miIO.info", "[]");
		if (r)
			enqueue(d, r, false);
		return;
	}
	while (d->n_queued < QUEUE_MAX &&
	       miio_poll_build(d->row, start, &method, params, sizeof(params), &next) == 0) {
		struct mreq *r = req_new(REQ_POLL, method, params);
		if (!r)
			return;
		r->poll_start = start;
		r->poll_next = next;
		enqueue(d, r, false);
		start = next;
	}
}

static bool session_fresh(const struct miio_dev *d, int64_t now)
{
	return d->session && now - d->last_rx_ms < REHELLO_IDLE_MS;
}

static void earliest(int64_t *next, int64_t t)
{
	if (t < *next)
		*next = t;
}

/* Wake for the next deadline, poll or retry. Work that waits on an answer
 * (in-flight limit, hello out) wakes with that answer, not the timer. */
static void arm(struct miio_dev *d, int64_t now)
{
	int64_t next = now + IDLE_TIMER_MS;
	if (d->hello_out)
		earliest(&next, d->hello_deadline_ms);
	for (const struct mreq *r = d->queue; r; r = r->next)
		if (r->in_flight)
			earliest(&next, r->deadline_ms);
	if (d->row)
		earliest(&next, d->next_poll_ms > d->retry_at_ms ? d->next_poll_ms : d->retry_at_ms);
	if ((d->fail_streak || d->queue) && d->retry_at_ms > now)
		earliest(&next, d->retry_at_ms);
	d->w->host->timer_again(d->w->ctx, d->timer, next > now ? (uint64_t)(next - now) : 0, 0);
}

static void service(struct miio_dev *d)
{
	struct wifi *w = d->w;
	int64_t now = wifi_now(w);
	if (d->fd < 0)
		return;
	expire(d, now);
	if (!d->row && !has_kind(d, REQ_INFO)) {
		struct mreq *r = req_new(REQ_INFO, "miIO.info", "[]");
		if (r)
			enqueue(d, r, true);
	}
	if (d->row && now >= d->next_poll_ms && now >= d->retry_at_ms) {
		poll_enqueue(d);
		d->next_poll_ms = now + (int64_t)wifi_jitter(w, w->opt.poll_ms);
	}
	bool want = d->queue || d->fail_streak;
	if (want && now >= d->retry_at_ms) {
		if (session_fresh(d, now))
			send_ready(d, now);
		else if (!d->hello_out)
			hello_send(d, now);
	}
	arm(d, now);
}

static void on_timer(void *user)
{
	service(user);
}

/* ---- answers ------------------------------------------------------------- */

static void hello_answer(struct miio_dev *d, const struct miio_hello *h, int64_t now)
{
	if (h->request || !d->hello_out)
		return;
	if (d->did && h->device_id != d->did) {
		if (!d->warned_did)
			d->w->host->log(d->w->ctx, HEARTH_LOG_WARNING,
					"miIO %s (%s): answered as device %u; ignored", d->id,
					d->label, h->device_id);
		d->warned_did = true;
		return;
	}
	d->session = true;
	d->stamp = h->stamp;
	d->stamp_at_ms = d->last_rx_ms = now;
	d->hello_out = false;
	d->hello_tries = 0;
	if (!d->did) {
		d->did = h->device_id;
		snprintf(d->id, sizeof(d->id), "wifi:miio:%u", d->did);
	}
	if (d->row && !d->added)
		add_device(d);
	if (d->fail_streak)
		d->next_poll_ms = now; /* probe at once: is it really back? */
}

static void info_answer(struct miio_dev *d, const struct miio_reply *rep)
{
	if (!rep->is_error && miio_info_model(rep->result, d->model, sizeof(d->model)) == 0) {
		d->row = miio_model_find(d->model);
	} else {
		logf_dev(d, HEARTH_LOG_WARNING, "miIO.info gave no model; only power is tried");
		d->row = miio_model_generic();
	}
	add_device(d);
}

static void poll_answer(struct miio_dev *d, const struct mreq *r, const struct miio_reply *rep)
{
	struct wifi *w = d->w;
	struct hearth_attr attrs[MIIO_PROPS_MAX];
	size_t n = 0;
	if (rep->is_error) {
		if (d->row->n_props == 0)
			return;
		char why[320];
		snprintf(why, sizeof(why), "%s refused (%d %s); from now on only miIO.info is read",
			 r->method, rep->error_code, rep->error_message);
		logf_dev(d, HEARTH_LOG_WARNING, why);
		d->row = &info_only_row;
		add_device(d); /* the capabilities shrink to none */
		return;
	}
	if (d->row->n_props == 0 ||
	    miio_poll_parse(d->row, r->poll_start, r->poll_next, rep->result, d->hints, attrs,
			    MIIO_PROPS_MAX, &n) != 0)
		return;
	if (n && d->added)
		w->host->state_report(w->ctx, d->id, attrs, n);
}

static void set_answer(struct miio_dev *d, struct mreq *r, const struct miio_reply *rep)
{
	char err[200];
	struct mcmd *c = r->cmd;
	r->cmd = NULL;
	if (rep->is_error) {
		snprintf(err, sizeof(err), "%s: %s (%d)", r->method, rep->error_message,
			 rep->error_code);
		cmd_part_done(d, c, -EREMOTEIO, err);
	} else if (miio_set_result_check(d->row, rep->result, err, sizeof(err))) {
		cmd_part_done(d, c, -EREMOTEIO, err);
	} else {
		cmd_part_done(d, c, 0, NULL);
	}
}

static struct mreq *req_by_answer(struct miio_dev *d, uint32_t id)
{
	for (struct mreq *r = d->queue; r; r = r->next)
		for (unsigned i = 0; r->in_flight && i < r->n_ids && i < IDS_MAX; i++)
			if (r->ids[i] == id)
				return r;
	return NULL;
}

/* A device that says the id was used already gets the next ones. */
static bool id_refused(struct miio_dev *d, struct mreq *r, const struct miio_reply *rep,
		       int64_t now)
{
	if (!rep->is_error || (rep->error_code != -30001 && rep->error_code != -9999) ||
	    r->tries >= 1 + d->w->opt.retries)
		return false;
	d->next_id = (d->next_id + ID_BUMP) % ID_WRAP + 1;
	req_send(d, r, now);
	return true;
}

static void answer(struct miio_dev *d, const struct miio_header *hdr, const char *text,
		   size_t len, int64_t now)
{
	struct miio_reply rep;
	if (hdr->device_id != d->did || miio_reply_parse(text, len, &rep) != 0)
		return;
	d->stamp = hdr->stamp;
	d->stamp_at_ms = d->last_rx_ms = now;
	struct mreq *r = req_by_answer(d, rep.id);
	if (!r || id_refused(d, r, &rep, now)) {
		miio_reply_free(&rep);
		return;
	}
	answered(d);
	unlink_req(d, r);
	if (r->kind == REQ_INFO)
		info_answer(d, &rep);
	else if (r->kind == REQ_POLL)
		poll_answer(d, r, &rep);
	else
		set_answer(d, r, &rep);
	miio_reply_free(&rep);
	free(r);
}

static void packet(struct miio_dev *d, const uint8_t *buf, size_t len, int64_t now)
{
	struct miio_hello h;
	struct miio_header hdr;
	char text[MIIO_PAYLOAD_MAX];
	size_t n = 0;
	if (len == MIIO_HEADER_LEN) {
		if (miio_hello_parse(buf, len, &h) == 0)
			hello_answer(d, &h, now);
		OPENSSL_cleanse(&h, sizeof(h));
		return;
	}
	int rc = miio_packet_open(&d->keys, buf, len, &hdr, text, sizeof(text), &n);
	if (rc == -EACCES && !d->warned_token) {
		logf_dev(d, HEARTH_LOG_WARNING, "a packet's checksum does not match the token");
		d->warned_token = true;
	}
	if (rc == 0)
		answer(d, &hdr, text, n, now);
}

static void on_readable(void *user, int fd, unsigned events)
{
	struct miio_dev *d = user;
	uint8_t buf[MIIO_PACKET_MAX + 1];
	/* nobody at the device's port (ICMP): its answer's timeout handles it */
	wifi_watch_rearm(d->w, d->watch, fd, events);
	for (int i = 0; i < RX_BURST; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 || (size_t)n > MIIO_PACKET_MAX)
			continue;
		packet(d, buf, (size_t)n, wifi_now(d->w));
	}
	service(d);
}

/* ---- commands from the hub ----------------------------------------------- */

/* The table's own form of a commanded value (the command's strings are
 * borrowed). false if it has none. */
static bool canonical(const struct hearth_capability *cap, const struct hearth_value *v,
		      struct hearth_value *out)
{
	if (v->type == HEARTH_VALUE_NUMBER || v->type == HEARTH_VALUE_BOOL) {
		*out = *v;
		return true;
	}
	if (v->type != HEARTH_VALUE_STRING || !v->u.string)
		return false;
	if (cap->type == HEARTH_CAP_BINARY && cap->value_on.type == HEARTH_VALUE_STRING &&
	    cap->value_off.type == HEARTH_VALUE_STRING) {
		*out = strcmp(v->u.string, cap->value_on.u.string) == 0 ? cap->value_on
									 : cap->value_off;
		return true;
	}
	for (size_t e = 0; cap->type == HEARTH_CAP_ENUM && e < cap->n_values; e++) {
		if (strcmp(cap->values[e], v->u.string) == 0) {
			*out = HEARTH_STRING(cap->values[e]);
			return true;
		}
	}
	return false;
}

/* What to report once the device has taken the command. */
static void cmd_attrs(const struct miio_model *m, const struct hearth_command *cmd,
		      struct mcmd *c)
{
	for (size_t k = 0; k < cmd->n_attrs && c->n_attrs < MIIO_PROPS_MAX; k++) {
		int i = miio_prop_index(m, cmd->attrs[k].name);
		const struct hearth_capability *cap = i >= 0 ? miio_prop_cap(m, (size_t)i) : NULL;
		struct hearth_value out;
		if (!cap || !canonical(cap, &cmd->attrs[k].value, &out))
			continue;
		c->prop_index[c->n_attrs] = i;
		c->attrs[c->n_attrs++] = (struct hearth_attr){.name = m->props[i].attr, .value = out};
	}
}

static int command_queue(struct miio_dev *d, const struct hearth_command *cmd,
			 const struct miio_set_req *reqs, size_t n)
{
	struct mcmd *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->hub_id = cmd->id;
	cmd_attrs(d->row, cmd, c);
	struct mreq *list[MIIO_PROPS_MAX];
	for (size_t i = 0; i < n; i++) {
		list[i] = req_new(REQ_SET, reqs[i].method, reqs[i].params);
		if (!list[i]) {
			while (i-- > 0)
				free(list[i]);
			free(c);
			return -ENOMEM;
		}
		list[i]->cmd = c;
	}
	c->pending = (unsigned)n;
	/* urgent requests go before the first unsent poll, in order */
	for (size_t i = n; i-- > 0;)
		enqueue(d, list[i], true);
	return 0;
}

int wifi_miio_command(struct wifi *w, const struct hearth_command *cmd)
{
	struct miio_dev *d = by_id(w, cmd->device_id);
	struct miio_set_req reqs[MIIO_PROPS_MAX];
	char err[200];
	size_t n = 0;
	if (!d)
		return -ENOENT;
	if (!d->added || !d->row)
		return -ENODEV;
	int rc = miio_set_build(d->row, cmd->attrs, cmd->n_attrs, reqs, MIIO_PROPS_MAX, &n, err,
				sizeof(err));
	if (rc == 0 && d->n_queued + n > QUEUE_MAX) {
		snprintf(err, sizeof(err), "too many requests wait for the device; try again");
		rc = -EBUSY;
	}
	if (rc == 0)
		rc = command_queue(d, cmd, reqs, n);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		w->host->command_done(w->ctx, cmd->id, rc, err);
		return 0;
	}
	if (d->fail_streak)
		d->retry_at_ms = 0; /* a user is waiting: try the device now */
	service(d);
	return 0;
}

int wifi_miio_get(struct wifi *w, const char *device_id)
{
	struct miio_dev *d = by_id(w, device_id);
	if (!d)
		return -ENOENT;
	if (!d->added)
		return -ENODEV;
	d->next_poll_ms = 0;
	d->retry_at_ms = 0;
	service(d);
	return 0;
}

/* ---- set-up -------------------------------------------------------------- */

static int dev_open(struct miio_dev *d)
{
	struct wifi *w = d->w;
	int fd = wifi_udp_socket(false);
	if (fd < 0)
		return fd;
	/* a connected socket hears only its device */
	if (connect(fd, (const struct sockaddr *)&d->addr, sizeof(d->addr)) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	int rc = w->host->fd_watch(w->ctx, fd, HEARTH_FD_READ, on_readable, d, &d->watch);
	if (rc) {
		close(fd);
		return rc;
	}
	d->fd = fd;
	service(d);
	return 0;
}

static void on_resolved(void *user, int status, struct in_addr addr)
{
	struct miio_dev *d = user;
	if (status) {
		logf_dev(d, HEARTH_LOG_ERROR, "the host name does not resolve; device ignored");
		return;
	}
	d->addr.sin_addr = addr;
	int rc = dev_open(d);
	if (rc)
		logf_dev(d, HEARTH_LOG_ERROR, strerror(-rc));
}

int wifi_miio_init(struct wifi *w, const struct miio_conf *confs, size_t n)
{
	if (n == 0)
		return 0;
	w->miio = calloc(n, sizeof(*w->miio));
	if (!w->miio)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct miio_dev *d = &w->miio[i];
		d->w = w;
		d->fd = -1;
		d->conf = confs[i];
		int rc = miio_keys_init(&d->keys, d->conf.token);
		if (rc)
			return rc;
		snprintf(d->label, sizeof(d->label), "%s:%u", d->conf.host, d->conf.port);
		snprintf(d->model, sizeof(d->model), "%s", d->conf.model);
		d->row = d->model[0] ? miio_model_find(d->model) : NULL;
		d->next_id = 1 + (uint32_t)(wifi_random(w) * (ID_WRAP / 2));
		for (size_t k = 0; k < MIIO_PROPS_MAX; k++)
			d->hints[k] = -1;
		w->n_miio++;
	}
	return 0;
}

int wifi_miio_start(struct wifi *w)
{
	for (size_t i = 0; i < w->n_miio; i++) {
		struct miio_dev *d = &w->miio[i];
		int rc = w->host->timer_start(w->ctx, IDLE_TIMER_MS, 0, on_timer, d, &d->timer);
		if (rc)
			return rc;
		d->addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(d->conf.port)};
		if (wifi_addr_parse(d->conf.host, d->conf.port, &d->addr) == 0)
			rc = dev_open(d);
		else
			rc = wifi_resolve(w, d->conf.host, on_resolved, d);
		if (rc)
			logf_dev(d, HEARTH_LOG_ERROR, strerror(-rc));
	}
	return 0;
}

void wifi_miio_stop(struct wifi *w)
{
	for (size_t i = 0; i < w->n_miio; i++) {
		struct miio_dev *d = &w->miio[i];
		if (d->watch)
			w->host->fd_unwatch(w->ctx, d->watch);
		if (d->fd >= 0)
			close(d->fd);
		w->host->timer_stop(w->ctx, d->timer);
		while (d->queue) {
			struct mreq *r = d->queue;
			d->queue = r->next;
			if (r->cmd && --r->cmd->pending == 0)
				free(r->cmd);
			free(r);
		}
	}
	if (w->miio)
		OPENSSL_cleanse(w->miio, w->n_miio * sizeof(*w->miio));
	free(w->miio);
	w->miio = NULL;
	w->n_miio = 0;
	if (w->hello_watch)
		w->host->fd_unwatch(w->ctx, w->hello_watch);
	if (w->hello_fd >= 0)
		close(w->hello_fd);
	w->hello_fd = -1;
	if (w->found)
		OPENSSL_cleanse(w->found, FOUND_MAX * sizeof(*w->found));
	free(w->found);
	w->found = NULL;
}

/* ---- discovery ----------------------------------------------------------- */

static bool configured_at(struct wifi *w, struct in_addr ip)
{
	for (size_t i = 0; i < w->n_miio; i++)
		if (w->miio[i].fd >= 0 && w->miio[i].addr.sin_addr.s_addr == ip.s_addr)
			return true;
	return false;
}

static struct miio_found *found_by(struct wifi *w, uint32_t did, struct in_addr ip)
{
	for (size_t i = 0; i < w->n_found; i++)
		if ((did && w->found[i].did == did) ||
		    (!did && w->found[i].ip.s_addr == ip.s_addr))
			return &w->found[i];
	return NULL;
}

/* An unprovisioned device offers its token: ask it what it is. */
static void found_ask(struct wifi *w, struct miio_found *f, const struct sockaddr_in *from,
		      uint32_t stamp)
{
	char payload[96];
	uint8_t pkt[256];
	size_t len = 0;
	int n = miio_request_format(payload, sizeof(payload), 1, "miIO.info", "[]");
	if (n > 0 && miio_packet_build(&f->keys, f->did, stamp, payload, (size_t)n, pkt,
				       sizeof(pkt), &len) == 0)
		(void)sendto(w->hello_fd, pkt, len, MSG_NOSIGNAL, (const struct sockaddr *)from,
			     sizeof(*from));
}

static void found_hello(struct wifi *w, const uint8_t *buf, size_t len,
			const struct sockaddr_in *from)
{
	struct miio_hello h;
	char ip[16];
	if (miio_hello_parse(buf, len, &h) || h.request || configured_at(w, from->sin_addr) ||
	    found_by(w, h.device_id, from->sin_addr) || w->n_found >= FOUND_MAX)
		goto out;
	struct miio_found *f = &w->found[w->n_found++];
	*f = (struct miio_found){.did = h.device_id, .ip = from->sin_addr, .has_token = h.has_token};
	w->host->log(w->ctx, HEARTH_LOG_INFO,
		     "found miIO device %u at %s%s", h.device_id,
		     wifi_addr_text(from, ip, sizeof(ip)),
		     h.has_token ? " (not set up yet: it offers its token)"
				 : "; add it with its token to miio_devices");
	if (h.has_token && miio_keys_init(&f->keys, h.token) == 0)
		found_ask(w, f, from, h.stamp);
out:
	OPENSSL_cleanse(&h, sizeof(h));
}

static void found_info(struct wifi *w, const uint8_t *buf, size_t len,
		       const struct sockaddr_in *from)
{
	struct miio_found *f = found_by(w, 0, from->sin_addr);
	struct miio_header hdr;
	struct miio_reply rep;
	char text[2048], model[MIIO_MODEL_MAX], ip[16];
	size_t n = 0;
	if (!f || !f->has_token ||
	    miio_packet_open(&f->keys, buf, len, &hdr, text, sizeof(text), &n) != 0 ||
	    miio_reply_parse(text, n, &rep) != 0)
		return;
	if (!rep.is_error && miio_info_model(rep.result, model, sizeof(model)) == 0)
		w->host->log(w->ctx, HEARTH_LOG_INFO, "miIO device %u at %s is a %s (%s)", f->did,
			     wifi_addr_text(from, ip, sizeof(ip)), model,
			     miio_model_find(model)->description);
	miio_reply_free(&rep);
}

static void on_hello_readable(void *user, int fd, unsigned events)
{
	struct wifi *w = user;
	uint8_t buf[4096];
	wifi_watch_rearm(w, w->hello_watch, fd, events);
	for (int i = 0; i < RX_BURST; i++) {
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 || flen != sizeof(from) || from.sin_family != AF_INET)
			continue;
		if (n == MIIO_HEADER_LEN)
			found_hello(w, buf, (size_t)n, &from);
		else
			found_info(w, buf, (size_t)n, &from);
	}
}

void wifi_miio_discover(struct wifi *w)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(MIIO_PORT),
				 .sin_addr.s_addr = htonl(INADDR_BROADCAST)};
	uint8_t hello[MIIO_HEADER_LEN];
	if (w->hello_fd < 0) {
		int fd = wifi_udp_socket(true);
		if (fd < 0) {
			w->host->log(w->ctx, HEARTH_LOG_WARNING, "miIO discovery: %s", strerror(-fd));
			return;
		}
		if (!w->found && !(w->found = calloc(FOUND_MAX, sizeof(*w->found)))) {
			close(fd);
			return;
		}
		if (w->host->fd_watch(w->ctx, fd, HEARTH_FD_READ, on_hello_readable, w,
				      &w->hello_watch)) {
			close(fd);
			return;
		}
		w->hello_fd = fd;
	}
	miio_hello_build(hello);
	if (sendto(w->hello_fd, hello, sizeof(hello), MSG_NOSIGNAL, (const struct sockaddr *)&to,
		   sizeof(to)) < 0)
		w->host->log(w->ctx, HEARTH_LOG_WARNING, "miIO discovery: broadcast failed: %s",
			     strerror(errno));
}
