/*
 * ctl_request: bridge requests (rename, remove, permit-join, options,
 * health) and the helpers the other commands share.
 *
 * A request goes to <base>/bridge/request/<path> with a random transaction;
 * the answer is the message on <base>/bridge/response/<path> that echoes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ctl_cmd.h"
#include "ctl_format.h"
#include "ctl_mqtt.h"

#define TRANSACTION_BYTES 8
#define ERROR_TEXT_MAX 1024
#define EXIT_INTERRUPTED 130

struct req {
	char resp_topic[CTL_TOPIC_MAX];
	char transaction[2 * TRANSACTION_BYTES + 1];
	cJSON *resp;
};

int ctl_topic(char *buf, size_t len, const struct ctl_opts *o, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s%s%s", o->base, a, b ? "/" : "", b ? b : "");

	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "error: topic for '%.64s' is too long\n", b ? b : a);
		return -ENAMETOOLONG;
	}
	return 0;
}

int ctl_check_name(const char *name)
{
	if (ctl_topic_part_valid(name, CTL_NAME_MAX))
		return 0;
	fprintf(stderr,
		"error: '%.64s' is not a device name (1-%d bytes, no '+', '#', control "
		"characters, or leading or trailing '/')\n",
		name, CTL_NAME_MAX);
	return -EINVAL;
}

int64_t ctl_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_print_owned(char *s)
{
	if (!s) {
		fprintf(stderr, "error: out of memory\n");
		return -ENOMEM;
	}
	fputs(s, stdout);
	if (!*s || s[strlen(s) - 1] != '\n')
		fputc('\n', stdout);
	free(s);
	return 0;
}

int ctl_print_json(const cJSON *v)
{
	char *text = cJSON_PrintUnformatted(v);

	if (!text) {
		fprintf(stderr, "error: out of memory\n");
		return -ENOMEM;
	}
	printf("%s\n", text);
	cJSON_free(text);
	return 0;
}

/* Uniqueness, not secrecy: a clock-and-pid mix will do if getrandom fails. */
static void make_transaction(char *buf, size_t len)
{
	unsigned char raw[TRANSACTION_BYTES];
	uint64_t mix;
	size_t i;

	if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
		mix = (uint64_t)ctl_now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32;
		memcpy(raw, &mix, sizeof(raw));
	}
	for (i = 0; i < sizeof(raw) && 2 * i + 2 < len; i++)
		snprintf(buf + 2 * i, 3, "%02x", raw[i]);
}

static void req_message(struct ctl_session *s, const struct mosquitto_message *msg)
{
	struct req *r = s->user;
	const cJSON *t;
	cJSON *j;

	if (!msg || r->resp || strcmp(msg->topic, r->resp_topic))
		return;
	j = ctl_payload_json(msg);
	t = cJSON_GetObjectItemCaseSensitive(j, "transaction");
	if (!cJSON_IsString(t) || strcmp(t->valuestring, r->transaction)) {
		cJSON_Delete(j);
		return;
	}
	r->resp = j;
	s->done = 1;
}

/* Turn a response into an exit status; on "ok" *data gets its data object
 * (detached, new; an empty object when there is none), on "error" error
 * (when not NULL) the hub's text. */
static int response_status(cJSON *resp, cJSON **data, char *error_out, size_t error_len)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(resp, "status");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(resp, "error");
	char text[ERROR_TEXT_MAX];

	if (cJSON_IsString(status) && !strcmp(status->valuestring, "ok")) {
		*data = cJSON_DetachItemFromObjectCaseSensitive(resp, "data");
		if (!*data)
			*data = cJSON_CreateObject();
		if (*data)
			return CTL_EXIT_OK;
		fprintf(stderr, "error: out of memory\n");
		return CTL_EXIT_FAIL;
	}
	if (cJSON_IsString(status) && !strcmp(status->valuestring, "error")) {
		snprintf(text, sizeof(text), "%s",
			 cJSON_IsString(error) ? error->valuestring : "hearth gave no reason");
		ctl_sanitize(text);
		fprintf(stderr, "error: %s\n", text);
		if (error_out)
			snprintf(error_out, error_len, "%s", text);
		return CTL_EXIT_FAIL;
	}
	fprintf(stderr, "error: hearth sent a response without a status\n");
	return CTL_EXIT_FAIL;
}

static int exchange(struct ctl_ctx *c, struct req *r, const char *topic, const char *payload)
{
	const struct ctl_opts *o = c->opts;
	const char *topics[1] = { r->resp_topic };
	struct ctl_session s;
	int rc;

	rc = ctl_session_open(&s, o, 1, req_message, r);
	if (!rc)
		rc = ctl_session_subscribe(&s, topics, 1);
	if (!rc)
		rc = ctl_session_publish(&s, topic, payload);
	if (!rc)
		rc = ctl_session_run(&s);
	ctl_session_close(&s);
	if (rc == -ETIMEDOUT)
		fprintf(stderr,
			"error: no answer from hearth on %s:%d within %d s (is hearthd running?)\n",
			o->host, o->port, o->timeout_s);
	return rc;
}

int ctl_request(struct ctl_ctx *c, const char *path, cJSON *body, cJSON **data, char *error,
		size_t error_len)
{
	char topic[CTL_TOPIC_MAX];
	struct req r = { 0 };
	char *payload = NULL;
	int rc, status = CTL_EXIT_FAIL;

	make_transaction(r.transaction, sizeof(r.transaction));
	if (!body || !cJSON_AddStringToObject(body, "transaction", r.transaction) ||
	    !(payload = cJSON_PrintUnformatted(body))) {
		fprintf(stderr, "error: out of memory\n");
		goto out;
	}
	if (ctl_topic(topic, sizeof(topic), c->opts, "bridge/request", path) ||
	    ctl_topic(r.resp_topic, sizeof(r.resp_topic), c->opts, "bridge/response", path))
		goto out;
	rc = exchange(c, &r, topic, payload);
	if (rc == -EINTR)
		status = EXIT_INTERRUPTED;
	else if (rc == 0)
		status = response_status(r.resp, data, error, error_len);
out:
	cJSON_free(payload);
	cJSON_Delete(body);
	cJSON_Delete(r.resp);
	return status;
}

int ctl_request_confirm(struct ctl_ctx *c, const char *path, cJSON *body,
			const char *confirmation)
{
	cJSON *data = NULL;
	int status = ctl_request(c, path, body, &data, NULL, 0);

	if (status == CTL_EXIT_OK) {
		if (c->opts->json ? ctl_print_json(data) : (puts(confirmation) < 0 ? -EIO : 0))
			status = CTL_EXIT_FAIL;
	}
	cJSON_Delete(data);
	return status;
}

int ctl_cmd_rename(struct ctl_ctx *c, int argc, const char *const *argv)
{
	char text[2 * CTL_NAME_MAX + 32];
	cJSON *body;

	(void)argc;
	if (ctl_check_name(argv[0]) || ctl_check_name(argv[1]))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body && (!cJSON_AddStringToObject(body, "from", argv[0]) ||
		     !cJSON_AddStringToObject(body, "to", argv[1]))) {
		cJSON_Delete(body);
		body = NULL;
	}
	snprintf(text, sizeof(text), "renamed %s to %s", argv[0], argv[1]);
	return ctl_request_confirm(c, "device/rename", body, text);
}

int ctl_cmd_remove(struct ctl_ctx *c, int argc, const char *const *argv)
{
	char text[CTL_NAME_MAX + 32];
	cJSON *body;

	(void)argc;
	if (ctl_check_name(argv[0]))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body && !cJSON_AddStringToObject(body, "id", argv[0])) {
		cJSON_Delete(body);
		body = NULL;
	}
	snprintf(text, sizeof(text), "removed %s", argv[0]);
	return ctl_request_confirm(c, "device/remove", body, text);
}

int ctl_cmd_permit_join(struct ctl_ctx *c, int argc, const char *const *argv)
{
	char text[64];
	cJSON *body;
	long seconds;

	(void)argc;
	if (ctl_parse_long(argv[0], 0, 65535, &seconds)) {
		fprintf(stderr, "error: '%.32s' is not a number of seconds (0-65535)\n", argv[0]);
		return CTL_EXIT_USAGE;
	}
	body = cJSON_CreateObject();
	if (body && !cJSON_AddNumberToObject(body, "time", (double)seconds)) {
		cJSON_Delete(body);
		body = NULL;
	}
	if (seconds > 0)
		snprintf(text, sizeof(text), "devices may join for %ld s", seconds);
	else
		snprintf(text, sizeof(text), "joining disabled");
	return ctl_request_confirm(c, "permit_join", body, text);
}

int ctl_cmd_options(struct ctl_ctx *c, int argc, const char *const *argv)
{
	/* These options are text: "room=2" means the room named "2". */
	static const char *const string_keys[] = { "room", "description", NULL };
	char err[256], text[CTL_NAME_MAX + 32];
	cJSON *body, *options;

	if (ctl_check_name(argv[0]))
		return CTL_EXIT_USAGE;
	options = ctl_kv_object(argc - 1, argv + 1, string_keys, err, sizeof(err));
	if (!options) {
		fprintf(stderr, "error: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	body = cJSON_CreateObject();
	if (!body || !cJSON_AddStringToObject(body, "id", argv[0]) ||
	    !cJSON_AddItemToObject(body, "options", options)) {
		cJSON_Delete(options);
		cJSON_Delete(body);
		body = NULL;
	}
	snprintf(text, sizeof(text), "updated options of %s", argv[0]);
	return ctl_request_confirm(c, "device/options", body, text);
}

int ctl_cmd_health(struct ctl_ctx *c, int argc, const char *const *argv)
{
	cJSON *data = NULL;
	int status;

	(void)argc;
	(void)argv;
	status = ctl_request(c, "health_check", cJSON_CreateObject(), &data, NULL, 0);
	if (status == CTL_EXIT_OK &&
	    (c->opts->json ? ctl_print_json(data) : ctl_print_owned(ctl_render_kv(data))))
		status = CTL_EXIT_FAIL;
	cJSON_Delete(data);
	return status;
}
