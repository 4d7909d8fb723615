#include "web_frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "hub.h"
#include "mqtt.h"

/* -- browser frames ------------------------------------------------------------ */

static const struct {
	const char *name;
	enum web_op op;
} ops[] = {
	{"subscribe", WEB_OP_SUBSCRIBE},
	{"unsubscribe", WEB_OP_UNSUBSCRIBE},
	{"publish", WEB_OP_PUBLISH},
};

static void take_id(const cJSON *frame, struct web_frame *out)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(frame, "id");
	if (cJSON_IsString(id) && strlen(id->valuestring) <= WEB_FRAME_ID_MAX)
		snprintf(out->id, sizeof(out->id), "%s", id->valuestring);
	else if (cJSON_IsNumber(id))
		snprintf(out->id, sizeof(out->id), "%.17g", id->valuedouble);
}

/* Under the base: "<base>/..." and nothing that reaches beyond it. */
static bool under_base(const char *base, const char *topic)
{
	size_t bl = strlen(base);
	return strncmp(topic, base, bl) == 0 && topic[bl] == '/' && topic[bl + 1];
}

static int check_filter(const char *base, const char *topic, char *err, size_t err_len)
{
	if (!mqtt_filter_valid(topic)) {
		snprintf(err, err_len, "'%.100s' is not a valid topic filter", topic);
		return -EINVAL;
	}
	if (!under_base(base, topic)) {
		snprintf(err, err_len, "only topics under '%s/' can be subscribed to", base);
		return -EPERM;
	}
	return 0;
}

/* What the hub takes as input, and nothing else: no retained state, no
 * bridge/state, no topics of other services. */
static int check_publish_topic(const char *base, const char *topic, char *err, size_t err_len)
{
	struct api_topic t;
	if (!mqtt_topic_valid(topic) || strpbrk(topic, "+#")) {
		snprintf(err, err_len, "'%.100s' is not a valid topic to publish to", topic);
		return -EINVAL;
	}
	if (!under_base(base, topic) || api_topic_parse(base, topic, &t) != 0 ||
	    t.kind == API_TOPIC_OTHER) {
		snprintf(err, err_len,
			 "only '%s/<device>/set', '/get' and '%s/bridge/request/...' can be "
			 "published to",
			 base, base);
		return -EPERM;
	}
	return 0;
}

static int take_payload(const cJSON *payload, struct web_frame *out, char *err, size_t err_len)
{
	char *text = NULL;
	if (!payload || cJSON_IsNull(payload))
		return 0;
	if (cJSON_IsString(payload))
		text = strdup(payload->valuestring);
	else
		text = cJSON_PrintUnformatted(payload);
	if (!text) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	out->payload_len = strlen(text);
	out->payload = text;
	if (out->payload_len > HUB_PAYLOAD_MAX) {
		snprintf(err, err_len, "payload of %zu bytes is over the limit of %d bytes",
			 out->payload_len, HUB_PAYLOAD_MAX);
		return -E2BIG;
	}
	return 0;
}

static int check_frame(const char *base, const cJSON *frame, struct web_frame *out, char *err,
		       size_t err_len)
{
	if (!cJSON_IsObject(frame)) {
		snprintf(err, err_len, "a frame must be a JSON object");
		return -EINVAL;
	}
	take_id(frame, out);
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(frame, "op");
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(frame, "topic");
	for (size_t i = 0; cJSON_IsString(op) && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(op->valuestring, ops[i].name) == 0)
			out->op = ops[i].op;
	if (!out->op) {
		snprintf(err, err_len, "'op' must be \"subscribe\", \"unsubscribe\" or \"publish\"");
		return -EINVAL;
	}
	if (!cJSON_IsString(topic) || !topic->valuestring[0] ||
	    strlen(topic->valuestring) > WEB_TOPIC_MAX) {
		snprintf(err, err_len, "'topic' must be text of 1 to %d bytes", WEB_TOPIC_MAX);
		return -EINVAL;
	}
	strcpy(out->topic, topic->valuestring);
	if (out->op != WEB_OP_PUBLISH)
		return check_filter(base, out->topic, err, err_len);
	int rc = check_publish_topic(base, out->topic, err, err_len);
	if (rc)
		return rc;
	return take_payload(cJSON_GetObjectItemCaseSensitive(frame, "payload"), out, err, err_len);
}

int web_frame_parse(const char *base, const void *text, size_t len, struct web_frame *out,
		    char *err, size_t err_len)
{
	cJSON *frame = NULL;
	memset(out, 0, sizeof(*out));
	/* the same limits as any MQTT payload the hub reads */
	int rc = api_json_parse(text, len, &frame, err, err_len);
	if (rc == 0)
		rc = check_frame(base, frame, out, err, err_len);
	cJSON_Delete(frame);
	if (rc) {
		char id[sizeof(out->id)];
		memcpy(id, out->id, sizeof(id));
		web_frame_clear(out);
		memcpy(out->id, id, sizeof(id));
	}
	return rc;
}

void web_frame_clear(struct web_frame *f)
{
	if (!f)
		return;
	free(f->payload);
	memset(f, 0, sizeof(*f));
}

/* -- hub frames ------------------------------------------------------------------ */

static bool utf8_valid(const unsigned char *s, size_t len)
{
	static const struct {
		unsigned char mask, lead, bits;
		uint32_t min;
	} leads[] = {{0xe0, 0xc0, 0x1f, 0x80}, {0xf0, 0xe0, 0x0f, 0x800}, {0xf8, 0xf0, 0x07, 0x10000}};
	for (size_t i = 0; i < len;) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = 0;
		while (n < 3 && (s[i] & leads[n].mask) != leads[n].lead)
			n++;
		if (n == 3 || len - i < n + 2)
			return false;
		uint32_t cp = s[i] & leads[n].bits;
		for (size_t k = 1; k <= n + 1; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < leads[n].min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 2;
	}
	return true;
}

/* Is the payload one whole JSON value (white space around it allowed)? */
static bool is_json(const char *text, size_t len)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!j)
		return false;
	cJSON_Delete(j);
	size_t at = (size_t)(end - text);
	while (at < len && strchr(" \t\r\n", text[at]))
		at++;
	return at == len;
}

static char *quoted(const char *text)
{
	cJSON *s = cJSON_CreateString(text);
	char *out = s ? cJSON_PrintUnformatted(s) : NULL;
	cJSON_Delete(s);
	return out;
}

char *web_frame_message(const char *topic, const void *payload, size_t len, bool retained)
{
	char *t = quoted(topic), *p = NULL, *raw = NULL, *out = NULL;
	const char *body = "null";
	if (!t)
		goto out;
	if (len > 0 && !memchr(payload, '\0', len) && utf8_valid(payload, len)) {
		if (!(raw = strndup(payload, len)))
			goto out;
		if (is_json(raw, len))
			body = raw;
		else if ((p = quoted(raw)))
			body = p;
		else
			goto out;
	}
	/* binary payloads have no place in a text frame: they come as null */
	static const char fmt[] = "{\"op\":\"message\",\"topic\":%s,\"retained\":%s,\"payload\":%s}";
	size_t cap = sizeof(fmt) + strlen(t) + strlen(body) + 8;
	if ((out = malloc(cap)))
		snprintf(out, cap, fmt, t, retained ? "true" : "false", body);
out:
	free(t);
	free(raw);
	free(p);
	return out;
}

char *web_frame_error(const char *error, const char *id)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "op", "error");
	cJSON_AddStringToObject(o, "error", error);
	if (id && id[0])
		cJSON_AddStringToObject(o, "id", id);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

bool web_topic_retained(const char *base, const char *topic)
{
	static const char *const transient[] = {"bridge/event", "bridge/logging",
						 "bridge/response/", "bridge/request/"};
	struct api_topic t;
	if (!under_base(base, topic) || api_topic_parse(base, topic, &t) != 0 ||
	    t.kind != API_TOPIC_OTHER)
		return false;
	const char *rest = topic + strlen(base) + 1;
	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
		size_t n = strlen(transient[i]);
		if (strncmp(rest, transient[i], n) == 0 &&
		    (transient[i][n - 1] == '/' || rest[n] == '\0' || rest[n] == '/'))
			return false;
	}
	return true;
}

/* -- static files ------------------------------------------------------------------- */

static const struct {
	const char *ext;
	const char *mime;
} types[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".json", "application/json"},
	{".webmanifest", "application/manifest+json"},
	{".ico", "image/x-icon"},
};

static bool segment_ok(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			    s[i]))
			return false;
	return true;
}

int web_path_map(const char *path, char *rel, size_t cap, const char **mime)
{
	if (!path || path[0] != '/' || strlen(path) > 128)
		return -EINVAL;
	const char *p = path + 1;
	if (!*p)
		p = "index.html";
	for (const char *s = p; *s;) {
		size_t n = strcspn(s, "/");
		if (!segment_ok(s, n))
			return -EINVAL;
		s += n;
		if (*s == '/' && !*++s)
			return -EINVAL;
	}
	const char *dot = strrchr(p, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(dot, types[i].ext) == 0) {
			if (strlen(p) >= cap)
				return -EINVAL;
			strcpy(rel, p);
			*mime = types[i].mime;
			return 0;
		}
	}
	return -ENOENT;
}

bool web_path_public(const char *rel)
{
	static const char *const open[] = {"login.html", "login.js", "style.css", "icon.svg"};
	for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++)
		if (strcmp(rel, open[i]) == 0)
			return true;
	return false;
}
