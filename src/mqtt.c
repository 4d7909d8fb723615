#include "mqtt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <openssl/crypto.h>
#include <mqtt_protocol.h>

#include "log.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define MISC_INTERVAL_MS 1000
#define MAX_PAYLOAD (256u * 1024u * 1024u)
#define READS_PER_WAKEUP 256

enum state {
	ST_IDLE,       /* created, not started */
	ST_CONNECTING, /* TCP connect running on the thread pool */
	ST_HANDSHAKE,  /* socket up, waiting for CONNACK */
	ST_ONLINE,
	ST_RETRY_WAIT, /* reconnect timer armed */
	ST_STOPPING,
	ST_STOPPED,
};

struct sub {
	char *filter;
	int qos;
	unsigned refs;
};

struct mqtt {
	uv_loop_t *loop;
	struct mosquitto *mosq;
	struct mqtt_options opt; /* strings owned */
	int protocol;		 /* MQTT_PROTOCOL_V5 or V311 */
	enum state state;
	mqtt_connect_fn connect_fn;
	mqtt_message_fn message_fn;
	void *user;

	uv_poll_t *poll; /* NULL when no socket is watched */
	int poll_events;
	uv_timer_t misc_timer;
	uv_timer_t retry_timer;
	uv_timer_t stop_timer;
	uv_work_t connect_work;
	int connect_rc;
	uint64_t backoff_ms;
	unsigned connects;
	bool logged_down; /* one log line per outage, not per attempt */

	struct sub *subs;
	size_t n_subs;

	void (*stop_done)(void *user);
	void *stop_user;
	unsigned handles_open;
	int64_t msg_sent_ms; /* of the message being delivered, 0: none */
};

static const char *src = "mqtt";

static void update_poll(struct mqtt *m);
static void schedule_retry(struct mqtt *m);
static void finish_stop(struct mqtt *m);

bool mqtt_topic_matches(const char *filter, const char *topic)
{
	bool result = false;
	if (mosquitto_topic_matches_sub(filter, topic, &result) != MOSQ_ERR_SUCCESS)
		return false;
	return result;
}

bool mqtt_topic_valid(const char *topic)
{
	size_t len = strlen(topic);
	return len > 0 && len <= 65535 && mosquitto_validate_utf8(topic, (int)len) == MOSQ_ERR_SUCCESS &&
	       mosquitto_pub_topic_check2(topic, len) == MOSQ_ERR_SUCCESS;
}

bool mqtt_filter_valid(const char *filter)
{
	size_t len = strlen(filter);
	return len > 0 && len <= 65535 &&
	       mosquitto_validate_utf8(filter, (int)len) == MOSQ_ERR_SUCCESS &&
	       mosquitto_sub_topic_check2(filter, len) == MOSQ_ERR_SUCCESS;
}

static void poll_closed(uv_handle_t *h)
{
	free(h);
}

static void close_poll(struct mqtt *m)
{
	if (!m->poll)
		return;
	uv_poll_stop(m->poll);
	uv_close((uv_handle_t *)m->poll, poll_closed);
	m->poll = NULL;
	m->poll_events = 0;
}

/* The socket is gone (or about to be): stop watching it, tell the hub, and
 * plan the next attempt. Safe to call twice. */
static void connection_down(struct mqtt *m, const char *why)
{
	bool was_online = m->state == ST_ONLINE;
	close_poll(m);
	if (m->state == ST_STOPPING) {
		finish_stop(m);
		return;
	}
	if (m->state == ST_RETRY_WAIT || m->state == ST_CONNECTING || m->state == ST_STOPPED)
		return;
	if (was_online) {
		log_warning(src, "connection to %s:%d lost (%s); reconnecting", m->opt.host, m->opt.port,
			    why);
		m->connect_fn(m->user, false);
	} else if (!m->logged_down) {
		log_warning(src, "cannot connect to %s:%d (%s); retrying with backoff up to %d s",
			    m->opt.host, m->opt.port, why, BACKOFF_MAX_MS / 1000);
		m->logged_down = true;
	}
	schedule_retry(m);
}

/* libmosquitto reads one packet per call while nothing waits at QoS > 0:
 * read on until the socket is empty (at most READS_PER_WAKEUP packets), so a
 * burst costs one loop turn, not one per message. */
static int read_all(struct mqtt *m)
{
	int rc = MOSQ_ERR_SUCCESS;
	for (int i = 0; i < READS_PER_WAKEUP && rc == MOSQ_ERR_SUCCESS && m->poll; i++) {
		errno = 0;
		rc = mosquitto_loop_read(m->mosq, 1);
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
	}
	return rc;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct mqtt *m = h->data;
	int rc = MOSQ_ERR_SUCCESS;
	if (status < 0)
		rc = MOSQ_ERR_CONN_LOST;
	if (rc == MOSQ_ERR_SUCCESS && (events & UV_READABLE))
		rc = read_all(m);
	/* the read may have closed the connection and the poll with it; what
	 * the handlers published goes out now rather than on the next turn */
	if (rc == MOSQ_ERR_SUCCESS && m->poll &&
	    ((events & UV_WRITABLE) || mosquitto_want_write(m->mosq)))
		rc = mosquitto_loop_write(m->mosq, 64);
	if (rc != MOSQ_ERR_SUCCESS) {
		connection_down(m, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return;
	}
	update_poll(m);
}

static void update_poll(struct mqtt *m)
{
	if (!m->poll)
		return;
	int want = UV_READABLE | (mosquitto_want_write(m->mosq) ? UV_WRITABLE : 0);
	if (want != m->poll_events) {
		m->poll_events = want;
		uv_poll_start(m->poll, want, on_poll);
	}
}

static int watch_socket(struct mqtt *m)
{
	int fd = mosquitto_socket(m->mosq);
	if (fd < 0)
		return -ENOTCONN;
	fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	m->poll = malloc(sizeof(*m->poll));
	if (!m->poll)
		return -ENOMEM;
	int rc = uv_poll_init(m->loop, m->poll, fd);
	if (rc) {
		free(m->poll);
		m->poll = NULL;
		return rc;
	}
	m->poll->data = m;
	m->poll_events = 0;
	update_poll(m);
	if (!m->poll_events) {
		m->poll_events = UV_READABLE;
		uv_poll_start(m->poll, UV_READABLE, on_poll);
	}
	return 0;
}

/* Runs on a pool thread: the loop does not touch m->mosq meanwhile. */
static void connect_work(uv_work_t *req)
{
	struct mqtt *m = req->data;
	mosquitto_property *props = NULL;
	if (m->protocol == MQTT_PROTOCOL_V5 && m->opt.session_expiry_s)
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
					     m->opt.session_expiry_s);
	m->connect_rc = mosquitto_connect_bind_v5(m->mosq, m->opt.host, m->opt.port,
						  m->opt.keepalive_s, NULL, props);
	if (m->connect_rc == MOSQ_ERR_ERRNO)
		m->connect_rc = -errno;
	mosquitto_property_free_all(&props);
	/* OpenSSL keeps state per thread (errors, random generators) for a TLS
	 * connect; a pool thread never ends, so free it now, not never */
	OPENSSL_thread_stop();
}

static void connect_done(uv_work_t *req, int status)
{
	struct mqtt *m = req->data;
	m->handles_open--;
	if (m->state == ST_STOPPING || m->state == ST_STOPPED) {
		/* mosquitto_destroy() closes a socket that did come up */
		finish_stop(m);
		return;
	}
	int rc = m->connect_rc;
	if (status != 0 || rc != MOSQ_ERR_SUCCESS) {
		m->state = ST_HANDSHAKE; /* so connection_down schedules a retry */
		connection_down(m, rc < 0 ? strerror(-rc) : mosquitto_strerror(rc));
		return;
	}
	m->state = ST_HANDSHAKE;
	int wrc = watch_socket(m);
	if (wrc) {
		mosquitto_disconnect(m->mosq);
		connection_down(m, uv_strerror(wrc));
	}
}

static void start_connect(struct mqtt *m)
{
	m->state = ST_CONNECTING;
	m->connect_work.data = m;
	if (uv_queue_work(m->loop, &m->connect_work, connect_work, connect_done) == 0) {
		m->handles_open++;
		return;
	}
	m->state = ST_HANDSHAKE;
	connection_down(m, "cannot queue the connect");
}

static void on_retry(uv_timer_t *t)
{
	struct mqtt *m = t->data;
	if (m->state == ST_RETRY_WAIT)
		start_connect(m);
}

static void schedule_retry(struct mqtt *m)
{
	m->state = ST_RETRY_WAIT;
	uv_timer_start(&m->retry_timer, on_retry, m->backoff_ms, 0);
	m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
}

static void on_misc(uv_timer_t *t)
{
	struct mqtt *m = t->data;
	if (m->state != ST_ONLINE && m->state != ST_HANDSHAKE)
		return;
	int rc = mosquitto_loop_misc(m->mosq);
	if (rc != MOSQ_ERR_SUCCESS && m->poll) {
		connection_down(m, mosquitto_strerror(rc));
		return;
	}
	update_poll(m);
}

static void resubscribe(struct mqtt *m)
{
	for (size_t i = 0; i < m->n_subs; i++) {
		int opts = m->protocol == MQTT_PROTOCOL_V5 ? MQTT_SUB_OPT_NO_LOCAL : 0;
		int rc = mosquitto_subscribe_v5(m->mosq, NULL, m->subs[i].filter, m->subs[i].qos,
						opts, NULL);
		if (rc != MOSQ_ERR_SUCCESS)
			log_error(src, "subscribe to '%s' failed: %s", m->subs[i].filter,
				  mosquitto_strerror(rc));
	}
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
		       const mosquitto_property *props)
{
	(void)mosq;
	(void)flags;
	(void)props;
	struct mqtt *m = obj;
	if (rc != 0) {
		if (m->protocol == MQTT_PROTOCOL_V5 &&
		    (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || rc == 1)) {
			log_warning(src, "broker %s:%d refuses MQTT 5; using MQTT 3.1.1",
				    m->opt.host, m->opt.port);
			m->protocol = MQTT_PROTOCOL_V311;
			mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, m->protocol);
			m->backoff_ms = 0;
		} else {
			log_error(src, "broker %s:%d refused the connection: %s", m->opt.host,
				  m->opt.port, mosquitto_reason_string(rc));
		}
		return; /* the broker closes the socket; on_disconnect follows */
	}
	m->state = ST_ONLINE;
	m->connects++;
	m->backoff_ms = BACKOFF_MIN_MS;
	/* the hub and the dashboard each have a client: say which */
	log_info(src, "%s connected to %s:%d (MQTT %s)", m->opt.client_id, m->opt.host,
		 m->opt.port, m->protocol == MQTT_PROTOCOL_V5 ? "5" : "3.1.1");
	m->logged_down = false;
	resubscribe(m);
	m->connect_fn(m->user, true);
	update_poll(m);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct mqtt *m = obj;
	connection_down(m, rc == 0 ? "disconnected" : mosquitto_strerror(rc));
}

static int64_t days_from_civil(int64_t y, int mo, int d)
{
	y -= mo <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int rfc3339_parse(const char *s, int64_t *out_ms)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 19)
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	const char *p = s + n;
	int64_t ms = 0;
	if (*p == '.') {
		int64_t scale = 100;
		if (!isdigit((unsigned char)*++p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++, scale /= 10)
			ms += (*p - '0') * scale;
	}
	int64_t offset_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, k = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
			return -EINVAL;
		offset_min = (*p == '-' ? -1 : 1) * (oh * 60 + om);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	*out_ms = (secs - offset_min * 60) * 1000 + ms;
	return 0;
}

int mqtt_timestamp_parse(const char *text, int64_t *out_ms)
{
	if (!text || !*text)
		return -EINVAL;
	if (strchr(text, '-') && strchr(text, ':'))
		return rfc3339_parse(text, out_ms);
	/* digits with at most one '.': no sign, exponent, hex, nan or inf */
	const char *dot = strchr(text, '.');
	if (text[strspn(text, "0123456789.")] || (dot && strchr(dot + 1, '.')))
		return -EINVAL;
	char *end = NULL;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v > 0) || v > 1e15)
		return -EINVAL;
	size_t digits = strspn(text, "0123456789");
	*out_ms = digits >= 13 ? (int64_t)v : (int64_t)(v * 1000.0 + 0.5);
	return 0;
}

static int64_t stamp_of(const mosquitto_property *props)
{
	const mosquitto_property *p = props;
	bool skip = false;
	for (;;) {
		char *name = NULL, *value = NULL;
		p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value,
							skip);
		if (!p)
			return 0;
		skip = true;
		int64_t ms = 0;
		bool found = name && strcmp(name, "timestamp") == 0;
		if (found && mqtt_timestamp_parse(value, &ms) != 0)
			ms = 0;
		free(name);
		free(value);
		if (found)
			return ms;
	}
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	(void)mosq;
	struct mqtt *m = obj;
	m->msg_sent_ms = props ? stamp_of(props) : 0;
	/* libmosquitto gives an empty message (a cleared retained one) a NULL
	 * payload; every reader gets a valid pointer (strndup(NULL, 0) is UB) */
	const void *payload = msg->payload ? msg->payload : "";
	m->message_fn(m->user, msg->topic, payload, (size_t)msg->payloadlen, msg->retain);
	m->msg_sent_ms = 0;
}

int64_t mqtt_message_sent_ms(const struct mqtt *m)
{
	return m ? m->msg_sent_ms : 0;
}

static char *dup_opt(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void options_free(struct mqtt_options *o)
{
	free((char *)o->host);
	free((char *)o->client_id);
	free((char *)o->username);
	if (o->password) {
		/* the secret does not linger in freed memory */
		explicit_bzero((char *)o->password, strlen(o->password));
		free((char *)o->password);
	}
	free((char *)o->tls_ca);
	free((char *)o->tls_cert);
	free((char *)o->tls_key);
	free((char *)o->will_topic);
	free((char *)o->will_payload);
}

static int options_copy(struct mqtt_options *dst, const struct mqtt_options *src_opt)
{
	*dst = *src_opt;
	dst->host = dup_opt(src_opt->host ? src_opt->host : "127.0.0.1");
	dst->client_id = dup_opt(src_opt->client_id ? src_opt->client_id : "hearthd");
	dst->username = dup_opt(src_opt->username);
	dst->password = dup_opt(src_opt->password);
	dst->tls_ca = dup_opt(src_opt->tls_ca);
	dst->tls_cert = dup_opt(src_opt->tls_cert);
	dst->tls_key = dup_opt(src_opt->tls_key);
	dst->will_topic = dup_opt(src_opt->will_topic);
	dst->will_payload = dup_opt(src_opt->will_payload);
	if (!dst->host || !dst->client_id || (src_opt->username && !dst->username) ||
	    (src_opt->password && !dst->password) || (src_opt->tls_ca && !dst->tls_ca) ||
	    (src_opt->tls_cert && !dst->tls_cert) || (src_opt->tls_key && !dst->tls_key) ||
	    (src_opt->will_topic && !dst->will_topic) ||
	    (src_opt->will_payload && !dst->will_payload))
		return -ENOMEM;
	return 0;
}

static int configure(struct mqtt *m)
{
	struct mosquitto *mosq = m->mosq;
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, m->protocol);
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
	mosquitto_message_v5_callback_set(mosq, on_message);
	if (m->opt.username &&
	    mosquitto_username_pw_set(mosq, m->opt.username, m->opt.password) != MOSQ_ERR_SUCCESS)
		return -ENOMEM;
	if (m->opt.tls_ca) {
		int rc = mosquitto_tls_set(mosq, m->opt.tls_ca, NULL, m->opt.tls_cert, m->opt.tls_key,
					   NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			log_error(src, "TLS set-up failed (tls_ca %s): %s", m->opt.tls_ca,
				  mosquitto_strerror(rc));
			return -EINVAL;
		}
		mosquitto_tls_insecure_set(mosq, m->opt.tls_insecure);
	}
	if (m->opt.will_topic) {
		const char *p = m->opt.will_payload ? m->opt.will_payload : "";
		int rc = mosquitto_will_set_v5(mosq, m->opt.will_topic, (int)strlen(p), p, 1, true,
					       NULL);
		if (rc != MOSQ_ERR_SUCCESS)
			return -EINVAL;
	}
	return 0;
}

int mqtt_new(uv_loop_t *loop, const struct mqtt_options *options, mqtt_connect_fn connect_fn,
	     mqtt_message_fn message_fn, void *user, struct mqtt **out)
{
	static bool lib_ready;
	if (!lib_ready) {
		mosquitto_lib_init();
		lib_ready = true;
	}
	struct mqtt *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	int rc = options_copy(&m->opt, options);
	if (rc)
		goto fail;
	m->loop = loop;
	m->connect_fn = connect_fn;
	m->message_fn = message_fn;
	m->user = user;
	m->protocol = MQTT_PROTOCOL_V5;
	m->backoff_ms = BACKOFF_MIN_MS;
	m->mosq = mosquitto_new(m->opt.client_id, m->opt.session_expiry_s == 0, m);
	if (!m->mosq) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = configure(m)))
		goto fail;
	uv_timer_init(loop, &m->misc_timer);
	uv_timer_init(loop, &m->retry_timer);
	uv_timer_init(loop, &m->stop_timer);
	m->misc_timer.data = m->retry_timer.data = m->stop_timer.data = m;
	m->handles_open = 3;
	*out = m;
	return 0;
fail:
	if (m->mosq)
		mosquitto_destroy(m->mosq);
	options_free(&m->opt);
	free(m);
	return rc;
}

void mqtt_start(struct mqtt *m)
{
	if (m->state != ST_IDLE)
		return;
	uv_timer_start(&m->misc_timer, on_misc, MISC_INTERVAL_MS, MISC_INTERVAL_MS);
	start_connect(m);
}

static int add_sub(struct mqtt *m, const char *filter, int qos)
{
	for (size_t i = 0; i < m->n_subs; i++) {
		if (strcmp(m->subs[i].filter, filter) == 0) {
			m->subs[i].refs++;
			return 0;
		}
	}
	struct sub *subs = realloc(m->subs, (m->n_subs + 1) * sizeof(*subs));
	if (!subs)
		return -ENOMEM;
	m->subs = subs;
	char *copy = strdup(filter);
	if (!copy)
		return -ENOMEM;
	m->subs[m->n_subs++] = (struct sub){.filter = copy, .qos = qos, .refs = 1};
	return 1;
}

int mqtt_subscribe(struct mqtt *m, const char *filter, int qos)
{
	if (!m)
		return -ENOTCONN;
	if (!mqtt_filter_valid(filter) || qos < 0 || qos > 2)
		return -EINVAL;
	int rc = add_sub(m, filter, qos);
	if (rc <= 0 || m->state != ST_ONLINE)
		return rc < 0 ? rc : 0;
	int opts = m->protocol == MQTT_PROTOCOL_V5 ? MQTT_SUB_OPT_NO_LOCAL : 0;
	rc = mosquitto_subscribe_v5(m->mosq, NULL, filter, qos, opts, NULL);
	update_poll(m);
	return rc == MOSQ_ERR_SUCCESS ? 0 : -EIO;
}

int mqtt_unsubscribe(struct mqtt *m, const char *filter)
{
	if (!m)
		return -ENOENT;
	for (size_t i = 0; i < m->n_subs; i++) {
		if (strcmp(m->subs[i].filter, filter) != 0)
			continue;
		if (--m->subs[i].refs > 0)
			return 0;
		if (m->state == ST_ONLINE) {
			mosquitto_unsubscribe(m->mosq, NULL, filter);
			update_poll(m);
		}
		free(m->subs[i].filter);
		m->subs[i] = m->subs[--m->n_subs];
		return 0;
	}
	return -ENOENT;
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		 bool retain)
{
	if (len > MAX_PAYLOAD || qos < 0 || qos > 2)
		return -EINVAL;
	if (!m || m->state != ST_ONLINE)
		return -ENOTCONN;
	int rc = mosquitto_publish_v5(m->mosq, NULL, topic, (int)len, payload, qos, retain, NULL);
	if (rc == MOSQ_ERR_SUCCESS) {
		update_poll(m);
		return 0;
	}
	if (rc == MOSQ_ERR_NOMEM)
		return -ENOMEM;
	if (rc == MOSQ_ERR_NO_CONN)
		return -ENOTCONN;
	return -EINVAL;
}

bool mqtt_is_connected(const struct mqtt *m)
{
	return m && m->state == ST_ONLINE;
}

unsigned mqtt_connect_count(const struct mqtt *m)
{
	return m ? m->connects : 0;
}

static void handle_closed(uv_handle_t *h)
{
	struct mqtt *m = h->data;
	m->handles_open--;
}

static void finish_stop(struct mqtt *m)
{
	if (m->state == ST_STOPPED)
		return;
	close_poll(m);
	m->state = ST_STOPPED;
	uv_timer_stop(&m->stop_timer);
	uv_timer_stop(&m->misc_timer);
	uv_timer_stop(&m->retry_timer);
	if (m->stop_done) {
		void (*done)(void *) = m->stop_done;
		m->stop_done = NULL;
		done(m->stop_user);
	}
}

static void on_stop_timeout(uv_timer_t *t)
{
	struct mqtt *m = t->data;
	log_warning(src, "broker did not confirm the disconnect in time; closing");
	finish_stop(m);
}

void mqtt_stop(struct mqtt *m, uint64_t timeout_ms, void (*done)(void *user), void *user)
{
	m->stop_done = done;
	m->stop_user = user;
	enum state was = m->state;
	m->state = ST_STOPPING;
	uv_timer_stop(&m->retry_timer);
	uv_timer_stop(&m->misc_timer);
	if (was == ST_CONNECTING) {
		/* connect_done finishes the stop */
		uv_timer_start(&m->stop_timer, on_stop_timeout, timeout_ms, 0);
		return;
	}
	if (m->poll && (was == ST_ONLINE || was == ST_HANDSHAKE)) {
		mosquitto_disconnect(m->mosq);
		/* with nothing queued the DISCONNECT is written and the socket
		 * closed at once */
		if (mosquitto_socket(m->mosq) < 0) {
			finish_stop(m);
			return;
		}
		update_poll(m);
		uv_timer_start(&m->stop_timer, on_stop_timeout, timeout_ms, 0);
		return;
	}
	finish_stop(m);
}

void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	close_poll(m);
	uv_close((uv_handle_t *)&m->misc_timer, handle_closed);
	uv_close((uv_handle_t *)&m->retry_timer, handle_closed);
	uv_close((uv_handle_t *)&m->stop_timer, handle_closed);
	/* the handles close on the next loop turn; run it so m can go now */
	while (m->handles_open > 0)
		uv_run(m->loop, UV_RUN_ONCE);
	mosquitto_destroy(m->mosq);
	for (size_t i = 0; i < m->n_subs; i++)
		free(m->subs[i].filter);
	free(m->subs);
	options_free(&m->opt);
	free(m);
}
