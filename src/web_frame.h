/*
 * web_frame: the dashboard's WebSocket frames and static file names,
 * checked without any HTTP library so they can be tested alone.
 *
 * Browser -> hub, one JSON object per WebSocket message:
 *   {"op":"subscribe","topic":"hearth/#"}        a filter under the base topic
 *   {"op":"unsubscribe","topic":"hearth/#"}
 *   {"op":"publish","topic":"hearth/x/set","payload":{...}}
 * Only topics the hub itself takes as input may be published to (a device's
 * /set and /get, bridge/request/...): the frame becomes an MQTT message and
 * the hub checks it exactly as it checks any client's (api.c). A payload
 * that is a JSON string is sent as its bare text ("ON" for .../set/state).
 * Any "id" (a string or number) is echoed in an error about the frame.
 *
 * Hub -> browser:
 *   {"op":"hello","base":"hearth","version":"...","auth":"password"|"none"}
 *   {"op":"status","connected":true}             the hub's broker link
 *   {"op":"message","topic":"...","payload":<JSON or text>,"retained":bool}
 *   {"op":"error","error":"...","id":...}
 *
 * Pure module. Loop thread only.
 */
#ifndef HEARTH_WEB_FRAME_H
#define HEARTH_WEB_FRAME_H

#include <stdbool.h>
#include <stddef.h>

#define WEB_TOPIC_MAX 512
#define WEB_FRAME_ID_MAX 64

enum web_op {
	WEB_OP_SUBSCRIBE = 1,
	WEB_OP_UNSUBSCRIBE,
	WEB_OP_PUBLISH,
};

struct web_frame {
	enum web_op op;
	char topic[WEB_TOPIC_MAX + 1];
	char *payload; /* publish: the bytes to send (owned; NULL: empty) */
	size_t payload_len;
	char id[WEB_FRAME_ID_MAX + 1]; /* "" when none */
};

/*
 * Parse and check one frame from a browser against the base topic. 0 with
 * *out filled (free with web_frame_clear), or -EINVAL / -E2BIG / -ELOOP /
 * -EPERM (a topic outside what a browser may use) with err set for the
 * error frame; out->id is filled whenever the frame carried a usable id.
 */
int web_frame_parse(const char *base, const void *text, size_t len, struct web_frame *out,
		    char *err, size_t err_len);
void web_frame_clear(struct web_frame *f);

/* {"op":"message",...}: payload embedded as JSON when it is JSON, else as
 * a string; empty is null (a retained message being cleared). New string
 * (free()), NULL on ENOMEM. */
char *web_frame_message(const char *topic, const void *payload, size_t len, bool retained);
/* {"op":"error","error":error[,"id":id]}; id may be NULL or "". */
char *web_frame_error(const char *error, const char *id);

/* Is topic one the hub publishes retained (a device's state and
 * availability, bridge/devices, bridge/rules, ...), rather than an event,
 * log line, response or command? By the topic API's contract (pure). */
bool web_topic_retained(const char *base, const char *topic);

/*
 * Map a request path to a file under the web root: "/" is index.html; only
 * [A-Za-z0-9._-] segments, no segment starting with '.', at most 128 bytes,
 * and a known file type. 0 with rel ("index.html") and *mime, or -EINVAL
 * (a path never served) / -ENOENT (an unknown type).
 */
int web_path_map(const char *path, char *rel, size_t cap, const char **mime);
/* May rel be served before logging in (the login page and what it needs)? */
bool web_path_public(const char *rel);

#endif
