#include "web.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "hub.h"
#include "log.h"
#include "mqtt.h"
#include "web_internal.h"

#define SECRET_MAX 1024
#define FREE_TURNS_MAX 1000 /* loop turns web_free waits for lws to let go */

static const char *src = "web";

/* -- the retained cache ------------------------------------------------------ */

static size_t bucket_of(const char *topic)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % WEB_CACHE_BUCKETS;
}

static struct web_cached **cache_slot(struct web *w, const char *topic)
{
	struct web_cached **pp = &w->buckets[bucket_of(topic)];
	while (*pp && strcmp((*pp)->topic, topic) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void cache_unlink(struct web *w, struct web_cached **pp)
{
	struct web_cached *c = *pp;
	*pp = c->hnext;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		w->last = c->prev;
	w->n_cached--;
	w->cached_bytes -= c->len;
	free(c->topic);
	free(c->payload);
	free(c);
}

static void cache_clear(struct web *w)
{
	while (w->first)
		cache_unlink(w, cache_slot(w, w->first->topic));
}

static bool cache_room(struct web *w, size_t more)
{
	if (w->n_cached < WEB_CACHE_TOPICS_MAX && w->cached_bytes + more <= WEB_CACHE_BYTES_MAX)
		return true;
	if (!w->cache_full_logged)
		log_warning(src, "over %d retained topics or %u MiB: new browsers miss some state",
			    WEB_CACHE_TOPICS_MAX, WEB_CACHE_BYTES_MAX >> 20);
	w->cache_full_logged = true;
	return false;
}

/* Keep (or with an empty payload forget) the retained message of topic. */
static void cache_put(struct web *w, const char *topic, const void *payload, size_t len)
{
	struct web_cached **pp = cache_slot(w, topic);
	if (len == 0) {
		if (*pp)
			cache_unlink(w, pp);
		return;
	}
	char *copy = malloc(len);
	if (!copy)
		return;
	memcpy(copy, payload, len);
	if (*pp) {
		w->cached_bytes = w->cached_bytes - (*pp)->len + len;
		free((*pp)->payload);
		(*pp)->payload = copy;
		(*pp)->len = len;
		return;
	}
	struct web_cached *c = calloc(1, sizeof(*c));
	if (!cache_room(w, len) || !c || !(c->topic = strdup(topic))) {
		free(c);
		free(copy);
		return;
	}
	c->payload = copy;
	c->len = len;
	c->prev = w->last;
	if (w->last)
		w->last->next = c;
	else
		w->first = c;
	w->last = c;
	*pp = c;
	w->n_cached++;
	w->cached_bytes += len;
}

/* -- frames to a browser ------------------------------------------------------- */

static void conn_close(struct web_conn *c, const char *why)
{
	if (c->closing || !c->wsi)
		return;
	log_info(src, "closing a dashboard connection: %s", why);
	c->closing = true;
	lws_callback_on_writable(c->wsi);
}

/* Queue text (copied) for c; a browser too slow to keep up is let go. */
static void conn_send(struct web_conn *c, const char *text)
{
	if (!text || !c->wsi || c->closing)
		return;
	size_t len = strlen(text);
	if (c->queued + len > WEB_QUEUE_MAX) {
		conn_close(c, "it does not read what it is sent");
		return;
	}
	struct web_out *o = malloc(sizeof(*o) + LWS_PRE + len);
	if (!o)
		return;
	o->next = NULL;
	o->len = len;
	memcpy(o->buf + LWS_PRE, text, len);
	if (c->tail)
		c->tail->next = o;
	else
		c->head = o;
	c->tail = o;
	c->queued += len;
	lws_callback_on_writable(c->wsi);
}

static void conn_error(struct web_conn *c, const char *error, const char *id)
{
	char *text = web_frame_error(error, id);
	conn_send(c, text);
	free(text);
}

static bool conn_wants(const struct web_conn *c, const char *topic)
{
	for (size_t i = 0; i < c->n_subs; i++)
		if (mqtt_topic_matches(c->subs[i], topic))
			return true;
	return false;
}

static void send_status(struct web *w, struct web_conn *only)
{
	char text[64];
	snprintf(text, sizeof(text), "{\"op\":\"status\",\"connected\":%s}",
		 w->mqtt && mqtt_is_connected(w->mqtt) ? "true" : "false");
	for (struct web_conn *c = w->conns; c; c = c->next)
		if (!only || c == only)
			conn_send(c, text);
}

static void send_hello(struct web *w, struct web_conn *c)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "op", "hello");
	cJSON_AddStringToObject(o, "base", w->base);
	cJSON_AddStringToObject(o, "version", HEARTH_VERSION);
	cJSON_AddStringToObject(o, "auth", w->password_file ? "password" : "none");
	cJSON_AddBoolToObject(o, "loopback_only", w->listen.loopback);
	char *text = cJSON_PrintUnformatted(o);
	conn_send(c, text);
	cJSON_free(text);
	cJSON_Delete(o);
}

/* -- the broker ----------------------------------------------------------------- */

static void on_mqtt_connect(void *user, bool connected)
{
	struct web *w = user;
	/* the broker sends every retained message again after this */
	if (connected)
		cache_clear(w);
	send_status(w, NULL);
}

static void on_mqtt_message(void *user, const char *topic, const void *payload, size_t len,
			    bool retained)
{
	struct web *w = user;
	if (retained || web_topic_retained(w->base, topic) || *cache_slot(w, topic))
		cache_put(w, topic, payload, len);
	char *frame = NULL;
	for (struct web_conn *c = w->conns; c; c = c->next) {
		if (!conn_wants(c, topic))
			continue;
		if (!frame && !(frame = web_frame_message(topic, payload, len, retained)))
			return;
		conn_send(c, frame);
	}
	free(frame);
}

static int read_secret(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	int rc = 0;
	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)))
		rc = -EACCES;
	else if (!fgets(buf, (int)cap, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return rc;
}

static int start_mqtt(struct web *w)
{
	const struct hearth_config *c = w->hub->config;
	char client_id[300], password[SECRET_MAX] = "", filter[WEB_TOPIC_MAX + 3];
	snprintf(client_id, sizeof(client_id), "%s-web", c->mqtt.client_id);
	if (c->mqtt.password_file) {
		int rc = read_secret(c->mqtt.password_file, password, sizeof(password));
		if (rc) {
			log_error(src, "cannot read mqtt password_file %s: %s",
				  c->mqtt.password_file, strerror(-rc));
			return rc;
		}
	}
	struct mqtt_options o = {
		.host = c->mqtt.host,
		.port = c->mqtt.port,
		.client_id = client_id,
		.username = c->mqtt.username,
		.password = c->mqtt.password_file ? password : NULL,
		.tls_ca = c->mqtt.tls_ca,
		.tls_cert = c->mqtt.tls_cert,
		.tls_key = c->mqtt.tls_key,
		.tls_insecure = c->mqtt.tls_insecure,
		.keepalive_s = c->mqtt.keepalive,
	};
	int rc = mqtt_new(w->loop, &o, on_mqtt_connect, on_mqtt_message, w, &w->mqtt);
	explicit_bzero(password, sizeof(password));
	if (rc)
		return rc;
	snprintf(filter, sizeof(filter), "%s/#", w->base);
	mqtt_subscribe(w->mqtt, filter, c->mqtt.qos);
	mqtt_start(w->mqtt);
	return 0;
}

/* -- frames from a browser --------------------------------------------------------- */

static void replay(struct web *w, struct web_conn *c, const char *filter)
{
	for (struct web_cached *e = w->first; e && !c->closing; e = e->next) {
		if (!mqtt_topic_matches(filter, e->topic))
			continue;
		char *frame = web_frame_message(e->topic, e->payload, e->len, true);
		conn_send(c, frame);
		free(frame);
	}
}

/* Subscribing again to a filter it has replays the retained state again. */
static void subscribe(struct web_conn *c, const struct web_frame *f)
{
	char why[80];
	bool known = false;
	for (size_t i = 0; i < c->n_subs; i++)
		known = known || strcmp(c->subs[i], f->topic) == 0;
	if (!known && c->n_subs == WEB_SUBS_MAX) {
		snprintf(why, sizeof(why), "at most %d subscriptions per connection",
			 WEB_SUBS_MAX);
		conn_error(c, why, f->id);
		return;
	}
	if (!known && !(c->subs[c->n_subs] = strdup(f->topic))) {
		conn_error(c, "out of memory", f->id);
		return;
	}
	c->n_subs += !known;
	replay(c->web, c, f->topic);
}

static void unsubscribe(struct web_conn *c, const struct web_frame *f)
{
	for (size_t i = 0; i < c->n_subs; i++) {
		if (strcmp(c->subs[i], f->topic) == 0) {
			free(c->subs[i]);
			c->subs[i] = c->subs[--c->n_subs];
			return;
		}
	}
}

static void publish(struct web_conn *c, const struct web_frame *f)
{
	struct web *w = c->web;
	int rc = mqtt_publish(w->mqtt, f->topic, f->payload, f->payload_len,
			      w->hub->config->mqtt.qos, false);
	if (rc == -ENOTCONN)
		conn_error(c, "the hub's broker is not connected; try again", f->id);
	else if (rc)
		conn_error(c, strerror(-rc), f->id);
}

static void on_frame(struct web_conn *c, const char *text, size_t len)
{
	struct web_frame f;
	char err[300];
	if (web_frame_parse(c->web->base, text, len, &f, err, sizeof(err)) != 0) {
		conn_error(c, err, f.id);
		return;
	}
	switch (f.op) {
	case WEB_OP_SUBSCRIBE:
		subscribe(c, &f);
		break;
	case WEB_OP_UNSUBSCRIBE:
		unsubscribe(c, &f);
		break;
	case WEB_OP_PUBLISH:
		publish(c, &f);
		break;
	}
	web_frame_clear(&f);
}

/* A frame may arrive in pieces; past WEB_RX_MAX the rest is skipped. */
static void on_receive(struct web_conn *c, const void *in, size_t len)
{
	bool last = lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi);
	if (!c->rx_too_big && c->rx_len + len <= WEB_RX_MAX) {
		char *grown = realloc(c->rx, c->rx_len + len + 1);
		if (grown) {
			memcpy(grown + c->rx_len, in, len);
			c->rx = grown;
			c->rx_len += len;
		} else {
			c->rx_too_big = true;
		}
	} else {
		c->rx_too_big = true;
	}
	if (!last)
		return;
	if (c->rx_too_big)
		conn_error(c, "frame is over the limit of 64 KiB", NULL);
	else
		on_frame(c, c->rx ? c->rx : "", c->rx_len);
	free(c->rx);
	c->rx = NULL;
	c->rx_len = 0;
	c->rx_too_big = false;
}

/* -- WebSocket connections ------------------------------------------------------------ */

static void conn_free(struct web_conn *c)
{
	while (c->head) {
		struct web_out *o = c->head;
		c->head = o->next;
		free(o);
	}
	for (size_t i = 0; i < c->n_subs; i++)
		free(c->subs[i]);
	free(c->rx);
	explicit_bzero(c->token, sizeof(c->token));
	free(c);
}

static void conn_remove(struct web *w, struct web_conn *c)
{
	for (struct web_conn **pp = &w->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			w->n_conns--;
			break;
		}
	}
	conn_free(c);
}

static int write_one(struct web_conn *c)
{
	if (c->closing) {
		lws_close_reason(c->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
		return -1;
	}
	struct web_out *o = c->head;
	if (!o)
		return 0;
	if (lws_write(c->wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_TEXT) < (int)o->len)
		return -1;
	c->head = o->next;
	if (!c->head)
		c->tail = NULL;
	c->queued -= o->len;
	free(o);
	if (c->head)
		lws_callback_on_writable(c->wsi);
	return 0;
}

static int ws_filter(struct web *w, struct lws *wsi, char *token)
{
	char uri[16];
	web_header(wsi, WSI_TOKEN_GET_URI, uri, sizeof(uri));
	if (strcmp(uri, "/ws") != 0 || w->stopping)
		return -1;
	if (w->n_conns >= WEB_CONNS_MAX) {
		log_warning(src, "refused a dashboard connection: %d are open", WEB_CONNS_MAX);
		return -1;
	}
	return web_gate(w, wsi, true, token) ? -1 : 0;
}

static int ws_established(struct web *w, struct lws *wsi, struct web_conn **slot)
{
	struct web_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->web = w;
	c->wsi = wsi;
	/* the filter let it in; remember its session for logout */
	if (w->password_file) {
		char cookie[4096];
		web_header(wsi, WSI_TOKEN_HTTP_COOKIE, cookie, sizeof(cookie));
		web_cookie_token(cookie, c->token);
	}
	c->next = w->conns;
	w->conns = c;
	w->n_conns++;
	*slot = c;
	send_hello(w, c);
	send_status(w, c);
	return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		       size_t len)
{
	struct web *w = lws_context_user(lws_get_context(wsi));
	struct web_conn **slot = user;
	char token[WEB_TOKEN_LEN + 1];
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ws_filter(w, wsi, token);
	case LWS_CALLBACK_ESTABLISHED:
		return ws_established(w, wsi, slot);
	case LWS_CALLBACK_RECEIVE:
		if (*slot)
			on_receive(*slot, in, len);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return *slot ? write_one(*slot) : 0;
	case LWS_CALLBACK_CLOSED:
		if (*slot)
			conn_remove(w, *slot);
		*slot = NULL;
		return 0;
	default:
		return 0;
	}
}

void web_close_session(struct web *w, const char *token)
{
	for (struct web_conn *c = w->conns; c; c = c->next)
		if (c->token[0] && strcmp(c->token, token) == 0)
			conn_close(c, "its session ended");
}

/* -- life cycle ----------------------------------------------------------------------- */

static void lws_log(int level, const char *line)
{
	size_t len = strcspn(line, "\n");
	/* lws starts its lines with its own time stamp: "[2026/...] E: " */
	const char *text = line[0] == '[' && strstr(line, "] ") ? strstr(line, "] ") + 2 : line;
	len -= (size_t)(text - line);
	if (level & LLL_ERR)
		log_error(src, "%.*s", (int)len, text);
	else
		log_warning(src, "%.*s", (int)len, text);
}

static int check_files(struct web *w)
{
	const struct hearth_config *c = w->hub->config;
	struct stat st;
	char hash[WEB_HASH_MAX], err[512];
	if (!!c->web.tls_cert != !!c->web.tls_key) {
		log_error(src, "[web] tls_cert and tls_key go together: give both or neither");
		return -EINVAL;
	}
	if (stat(c->web.root, &st) != 0 || !S_ISDIR(st.st_mode))
		log_warning(src, "[web] root %s is not a folder: the dashboard will show nothing",
			    c->web.root);
	if (!w->password_file)
		return 0;
	int rc = web_password_read(w->password_file, hash, sizeof(hash), err, sizeof(err));
	explicit_bzero(hash, sizeof(hash));
	if (rc)
		log_error(src, "%s", err);
	return rc;
}

/* Without a password only this machine may reach the dashboard. */
static void choose_address(struct web *w)
{
	if (w->password_file || w->listen.loopback)
		return;
	log_warning(src,
		    "[web] password_file is not set: listening on 127.0.0.1:%d only, not %s; set "
		    "a password to open the dashboard to the network",
		    w->listen.port, w->hub->config->web.listen);
	snprintf(w->listen.host, sizeof(w->listen.host), "127.0.0.1");
	w->listen.ipv6 = false;
	w->listen.loopback = true;
}

static int create_context(struct web *w)
{
	const struct hearth_config *c = w->hub->config;
	void *loops[1] = {w->loop};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
		       LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
	if (!w->listen.ipv6)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.foreign_loops = loops;
	info.pcontext = &w->ctx;
	info.user = w;
	info.iface = w->listen.host;
	info.port = w->listen.port;
	w->protocols[0] = (struct lws_protocols){.name = "http",
						 .callback = web_http_callback,
						 .per_session_data_size = web_http_session_size()};
	w->protocols[1] = (struct lws_protocols){.name = "hearth",
						 .callback = ws_callback,
						 .per_session_data_size = sizeof(struct web_conn *),
						 .rx_buffer_size = 16384};
	info.protocols = w->protocols;
	info.server_string = "hearth";
	info.alpn = "http/1.1";
	info.timeout_secs = 30;
	/* browsers send long headers (cookies, user agents): room for them */
	info.max_http_header_data = 8192;
	if (c->web.tls_cert) {
		w->tls = true;
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = c->web.tls_cert;
		info.ssl_private_key_filepath = c->web.tls_key;
	}
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
	w->ctx = lws_create_context(&info);
	if (!w->ctx)
		return -EADDRINUSE;
	struct lws_vhost *vh = lws_get_vhost_by_name(w->ctx, "default");
	w->port = vh ? lws_get_vhost_listen_port(vh) : w->listen.port;
	return 0;
}

int web_start(struct hearth_hub *hub, struct web **out)
{
	const struct hearth_config *c = hub->config;
	struct web *w = calloc(1, sizeof(*w));
	int rc;
	if (!w)
		return -ENOMEM;
	w->hub = hub;
	w->loop = hub->loop;
	w->base = hub->base;
	w->password_file = c->web.password_file;
	if (web_listen_parse(c->web.listen, &w->listen) != 0) {
		log_error(src, "[web] listen '%s' is not address:port", c->web.listen);
		rc = -EINVAL;
		goto fail;
	}
	choose_address(w);
	if ((rc = check_files(w)))
		goto fail;
	if ((rc = create_context(w))) {
		log_error(src, "cannot serve the dashboard on %s:%d (taken, or TLS files unusable)",
			  w->listen.host, w->listen.port);
		goto fail;
	}
	/* last: a client that has started is only freed after it stops */
	if ((rc = start_mqtt(w)))
		goto fail;
	log_info(src, "dashboard at http%s://%s%s%s:%d/%s", w->tls ? "s" : "",
		 w->listen.ipv6 ? "[" : "", w->listen.host, w->listen.ipv6 ? "]" : "", w->port,
		 w->password_file ? "" : " (no password: this machine only)");
	*out = w;
	return 0;
fail:
	web_free(w);
	return rc;
}

static void mqtt_stopped(void *user)
{
	struct web *w = user;
	w->mqtt_stopped = true;
}

void web_stop(struct web *w)
{
	if (!w || w->stopping)
		return;
	w->stopping = true;
	/* lws closes the listener and every connection over the next turns */
	if (w->ctx)
		lws_context_destroy(w->ctx);
	if (w->mqtt)
		mqtt_stop(w->mqtt, WEB_MQTT_STOP_MS, mqtt_stopped, w);
}

void web_free(struct web *w)
{
	if (!w)
		return;
	w->stopping = true;
	/* a foreign loop: lws frees the context once its handles have closed
	 * and it is asked again with the loop idle */
	for (int turns = 0; w->ctx && turns < FREE_TURNS_MAX; turns++) {
		lws_context_destroy(w->ctx);
		if (w->ctx)
			uv_run(w->loop, UV_RUN_NOWAIT);
	}
	if (w->ctx)
		log_error(src, "the dashboard's server did not close");
	for (int turns = 0; w->logins_in_flight && turns < FREE_TURNS_MAX; turns++)
		uv_run(w->loop, UV_RUN_ONCE);
	mqtt_free(w->mqtt);
	while (w->conns)
		conn_remove(w, w->conns);
	cache_clear(w);
	explicit_bzero(&w->sessions, sizeof(w->sessions));
	free(w);
}

int web_port(const struct web *w)
{
	return w ? w->port : -1;
}
