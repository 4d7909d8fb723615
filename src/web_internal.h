/*
 * web_internal: what web.c (life cycle, MQTT, WebSockets) and web_http.c
 * (files, login) share. Not a contract for anyone else.
 */
#ifndef HEARTH_WEB_INTERNAL_H
#define HEARTH_WEB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <uv.h>

#include "web_auth.h"
#include "web_frame.h"

#define WEB_CONNS_MAX 32		/* WebSockets open at once */
#define WEB_SUBS_MAX 32			/* filters per WebSocket */
#define WEB_QUEUE_MAX (32u << 20)	/* bytes waiting for a slow browser */
#define WEB_RX_MAX (64 * 1024 + 4096)	/* one frame from a browser */
#define WEB_BODY_MAX 1024		/* a login request */
#define WEB_LOGINS_IN_FLIGHT 4		/* password checks on the thread pool */
#define WEB_CACHE_BUCKETS 4096
#define WEB_CACHE_TOPICS_MAX 100000
#define WEB_CACHE_BYTES_MAX (64u << 20)
#define WEB_MQTT_STOP_MS 500

struct mqtt;
struct hearth_hub;
struct login_job;

/* One frame waiting to be written; buf has LWS_PRE bytes in front. */
struct web_out {
	struct web_out *next;
	size_t len;
	unsigned char buf[];
};

struct web_conn {
	struct web *web;
	struct lws *wsi;
	struct web_conn *next;
	char *subs[WEB_SUBS_MAX];
	size_t n_subs;
	struct web_out *head, *tail;
	size_t queued; /* bytes */
	char *rx;      /* a frame arriving in pieces */
	size_t rx_len;
	bool rx_too_big;
	bool closing;
	char token[WEB_TOKEN_LEN + 1]; /* the session it came with ("" without) */
};

/* A retained message seen under the base, in arrival order. */
struct web_cached {
	struct web_cached *prev, *next; /* arrival order */
	struct web_cached *hnext;	/* bucket chain */
	char *topic;
	char *payload;
	size_t len;
};

struct web {
	struct hearth_hub *hub;
	uv_loop_t *loop;
	const char *base;
	struct lws_context *ctx;
	struct web_listen listen;
	int port;
	bool tls;
	const char *password_file; /* NULL: no password (loopback only) */
	bool stopping;

	struct mqtt *mqtt;
	bool mqtt_stopped;

	struct web_conn *conns;
	size_t n_conns;

	struct web_sessions sessions;
	struct web_limiter limiter;
	unsigned logins_in_flight;

	struct lws_protocols protocols[3]; /* lws keeps a pointer for the context's life */

	struct web_cached *buckets[WEB_CACHE_BUCKETS];
	struct web_cached *first, *last;
	size_t n_cached;
	size_t cached_bytes;
	bool cache_full_logged;
};

/* The HTTP side (web_http.c): the lws callback of protocol "http". */
int web_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		      size_t len);
size_t web_http_session_size(void);
/* A login job that may still be running: forget its connection. */
void web_http_detach(void *pss);

/*
 * May this request through? Checks the Host (loopback names when there is
 * no password), the Origin when need_origin, and the session cookie when
 * there is a password (its token copied to token). 0, or the HTTP status
 * to refuse with (403 bad Host or Origin, 401 no session).
 */
int web_gate(struct web *w, struct lws *wsi, bool need_origin, char token[WEB_TOKEN_LEN + 1]);

/* Close every WebSocket of a session (at logout). */
void web_close_session(struct web *w, const char *token);

/* Copy a header into buf ("" when absent or too long). */
void web_header(struct lws *wsi, enum lws_token_indexes token, char *buf, size_t cap);

#endif
