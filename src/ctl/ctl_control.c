/*
 * ctl_control: "set", "get" and "watch", the commands that talk to devices
 * through their topics rather than through bridge requests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_cmd.h"
#include "ctl_format.h"
#include "ctl_mqtt.h"

#define ERROR_TEXT_MAX 1024
#define EXIT_INTERRUPTED 130

struct set_wait {
	const char *name;
	const cJSON *want;
	char state_topic[CTL_TOPIC_MAX];
	char resp_topic[CTL_TOPIC_MAX];
	cJSON *state; /* the state that answered the set */
	char error[ERROR_TEXT_MAX];
};

struct get_wait {
	char state_topic[CTL_TOPIC_MAX];
	const char *const *attrs;
	int nattrs;
	cJSON *state;
};

struct watch_wait {
	const struct ctl_ctx *c;
	long seen;
};

/* Print a state (or part of it) as key: value lines or JSON. */
static int print_state(const struct ctl_ctx *c, const cJSON *state)
{
	if (c->opts->json ? ctl_print_json(state) : ctl_print_owned(ctl_render_kv(state)))
		return CTL_EXIT_FAIL;
	return CTL_EXIT_OK;
}

/* True when resp is an error about device name; its text goes to buf. */
static int set_error_for(const cJSON *resp, const char *name, char *buf, size_t len)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(resp, "status");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
	const cJSON *device = cJSON_GetObjectItemCaseSensitive(data, "device");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(resp, "error");

	if (!cJSON_IsString(status) || strcmp(status->valuestring, "error") ||
	    !cJSON_IsString(device) || strcmp(device->valuestring, name))
		return 0;
	snprintf(buf, len, "%s", cJSON_IsString(error) ? error->valuestring : "set refused");
	ctl_sanitize(buf);
	return 1;
}

static void set_message(struct ctl_session *s, const struct mosquitto_message *msg)
{
	struct set_wait *w = s->user;
	cJSON *j;

	if (!msg || s->done)
		return;
	if (!strcmp(msg->topic, w->state_topic)) {
		j = ctl_payload_json(msg);
		if (ctl_state_matches(j, w->want, msg->retain)) {
			w->state = j;
			s->status = CTL_EXIT_OK;
			s->done = 1;
			return;
		}
		cJSON_Delete(j);
	} else if (!msg->retain && !strcmp(msg->topic, w->resp_topic)) {
		j = ctl_payload_json(msg);
		if (set_error_for(j, w->name, w->error, sizeof(w->error))) {
			s->status = CTL_EXIT_FAIL;
			s->done = 1;
		}
		cJSON_Delete(j);
	}
}

/* Subscribe, publish payload to topic, wait. Returns 0 or a negative errno;
 * a timeout is reported with missing, what the device did not send. */
static int converse(const struct ctl_ctx *c, struct ctl_session *s, const char *const *topics,
		    int n, const char *topic, const char *payload, const char *missing)
{
	int rc = ctl_session_subscribe(s, topics, n);

	if (!rc)
		rc = ctl_session_publish(s, topic, payload);
	if (!rc)
		rc = ctl_session_run(s);
	if (rc == -ETIMEDOUT)
		fprintf(stderr, "error: no answer from hearth within %d s (%s)\n",
			c->opts->timeout_s, missing);
	return rc;
}

static int set_run(struct ctl_ctx *c, struct set_wait *w, const char *payload)
{
	const char *topics[2] = { w->state_topic, w->resp_topic };
	char topic[CTL_TOPIC_MAX], missing[CTL_NAME_MAX + 64];
	struct ctl_session s;
	int rc, status = CTL_EXIT_FAIL;

	if (ctl_topic(topic, sizeof(topic), c->opts, w->name, "set"))
		return CTL_EXIT_FAIL;
	snprintf(missing, sizeof(missing), "%s did not report the requested state", w->name);
	rc = ctl_session_open(&s, c->opts, 1, set_message, w);
	if (!rc)
		rc = converse(c, &s, topics, 2, topic, payload, missing);
	if (rc == -EINTR)
		status = EXIT_INTERRUPTED;
	else if (!rc && s.status == CTL_EXIT_OK)
		status = print_state(c, w->state);
	else if (!rc)
		fprintf(stderr, "error: %s\n", w->error);
	ctl_session_close(&s);
	return status;
}

int ctl_cmd_set(struct ctl_ctx *c, int argc, const char *const *argv)
{
	struct set_wait w = { .name = argv[0] };
	char err[256];
	char *payload = NULL;
	cJSON *want;
	int status = CTL_EXIT_FAIL;

	if (ctl_check_name(argv[0]))
		return CTL_EXIT_USAGE;
	want = ctl_kv_object(argc - 1, argv + 1, NULL, err, sizeof(err));
	if (!want) {
		fprintf(stderr, "error: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	w.want = want;
	if (ctl_topic(w.state_topic, CTL_TOPIC_MAX, c->opts, argv[0], NULL) ||
	    ctl_topic(w.resp_topic, CTL_TOPIC_MAX, c->opts, "bridge/response/device", "set"))
		goto out;
	payload = cJSON_PrintUnformatted(want);
	if (!payload) {
		fprintf(stderr, "error: out of memory\n");
		goto out;
	}
	status = set_run(c, &w, payload);
out:
	cJSON_free(payload);
	cJSON_Delete(w.state);
	cJSON_Delete(want);
	return status;
}

static int has_any(const cJSON *state, const char *const *attrs, int n)
{
	int i;

	if (n == 0)
		return 1;
	for (i = 0; i < n; i++)
		if (cJSON_GetObjectItemCaseSensitive(state, attrs[i]))
			return 1;
	return 0;
}

static void get_message(struct ctl_session *s, const struct mosquitto_message *msg)
{
	struct get_wait *w = s->user;
	cJSON *j;

	/* The retained state predates the request: wait for a fresh report. */
	if (!msg || s->done || msg->retain || strcmp(msg->topic, w->state_topic))
		return;
	j = ctl_payload_json(msg);
	if (!cJSON_IsObject(j) || !has_any(j, w->attrs, w->nattrs)) {
		cJSON_Delete(j);
		return;
	}
	w->state = j;
	s->done = 1;
}

/* {"a":"","b":""} for the attributes asked, {"state":""} for none. */
static cJSON *get_request(const char *const *attrs, int n)
{
	cJSON *req = cJSON_CreateObject();
	int i;

	if (!req)
		return NULL;
	for (i = 0; i < (n ? n : 1); i++) {
		const char *a = n ? attrs[i] : "state";

		if (cJSON_GetObjectItemCaseSensitive(req, a))
			continue;
		if (!cJSON_AddStringToObject(req, a, "")) {
			cJSON_Delete(req);
			return NULL;
		}
	}
	return req;
}

/* The asked attributes of state, or all of it. A new object, or NULL. */
static cJSON *pick(const cJSON *state, const char *const *attrs, int n)
{
	cJSON *out, *v;
	int i;

	if (n == 0)
		return cJSON_Duplicate(state, 1);
	out = cJSON_CreateObject();
	for (i = 0; out && i < n; i++) {
		const cJSON *have = cJSON_GetObjectItemCaseSensitive(state, attrs[i]);

		if (!have || cJSON_GetObjectItemCaseSensitive(out, attrs[i]))
			continue;
		v = cJSON_Duplicate(have, 1);
		if (!v || !cJSON_AddItemToObject(out, attrs[i], v)) {
			cJSON_Delete(v);
			cJSON_Delete(out);
			return NULL;
		}
	}
	return out;
}

static int check_attrs(const char *const *attrs, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		size_t len = strnlen(attrs[i], CTL_KEY_MAX + 1);
		const char *p;

		for (p = attrs[i]; *p && (unsigned char)*p >= 0x20 && *p != 0x7f; p++)
			;
		if (len == 0 || len > CTL_KEY_MAX || *p) {
			fprintf(stderr, "error: '%.64s' is not an attribute name\n", attrs[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int get_run(struct ctl_ctx *c, struct get_wait *w, const char *name, const char *payload)
{
	const char *topics[1] = { w->state_topic };
	char topic[CTL_TOPIC_MAX], missing[CTL_NAME_MAX + 64];
	struct ctl_session s;
	cJSON *shown;
	int rc, status = CTL_EXIT_FAIL;

	if (ctl_topic(topic, sizeof(topic), c->opts, name, "get"))
		return CTL_EXIT_FAIL;
	snprintf(missing, sizeof(missing), "%s reported no state", name);
	rc = ctl_session_open(&s, c->opts, 1, get_message, w);
	if (!rc)
		rc = converse(c, &s, topics, 1, topic, payload, missing);
	ctl_session_close(&s);
	if (rc == -EINTR)
		return EXIT_INTERRUPTED;
	if (rc)
		return CTL_EXIT_FAIL;
	shown = pick(w->state, w->attrs, w->nattrs);
	if (shown)
		status = print_state(c, shown);
	else
		fprintf(stderr, "error: out of memory\n");
	cJSON_Delete(shown);
	return status;
}

int ctl_cmd_get(struct ctl_ctx *c, int argc, const char *const *argv)
{
	struct get_wait w = { .attrs = argv + 1, .nattrs = argc - 1 };
	char *payload = NULL;
	cJSON *req;
	int status = CTL_EXIT_FAIL;

	if (ctl_check_name(argv[0]) || check_attrs(w.attrs, w.nattrs))
		return CTL_EXIT_USAGE;
	if (ctl_topic(w.state_topic, CTL_TOPIC_MAX, c->opts, argv[0], NULL))
		return CTL_EXIT_FAIL;
	req = get_request(w.attrs, w.nattrs);
	if (req)
		payload = cJSON_PrintUnformatted(req);
	if (payload)
		status = get_run(c, &w, argv[0], payload);
	else
		fprintf(stderr, "error: out of memory\n");
	cJSON_free(payload);
	cJSON_Delete(req);
	cJSON_Delete(w.state);
	return status;
}

static void print_watch_text(const struct ctl_ctx *c, const struct mosquitto_message *msg)
{
	const unsigned char *p = msg->payload;
	char clock[16];
	struct tm tm;
	time_t now = time(NULL);
	int i;

	localtime_r(&now, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	if (c->color)
		printf(CTL_ANSI_DIM "%s" CTL_ANSI_RESET " " CTL_ANSI_CYAN "%s" CTL_ANSI_RESET " ",
		       clock, msg->topic);
	else
		printf("%s %s ", clock, msg->topic);
	/* Payloads are the network's: never let one drive the terminal. */
	for (i = 0; i < msg->payloadlen; i++)
		putchar(p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i]);
	putchar('\n');
}

/* {"ts":ms,"topic":"...","payload":<JSON, or the text as a string>,
 * "retained":bool} */
static void print_watch_json(const struct mosquitto_message *msg)
{
	cJSON *line = cJSON_CreateObject();
	cJSON *payload = ctl_payload_json(msg);
	char *text;

	if (!payload && msg->payloadlen >= 0 && msg->payloadlen <= CTL_PAYLOAD_MAX &&
	    (text = malloc((size_t)msg->payloadlen + 1))) {
		memcpy(text, msg->payload ? msg->payload : "", (size_t)msg->payloadlen);
		text[msg->payloadlen] = '\0';
		payload = cJSON_CreateString(text);
		free(text);
	}
	if (line && payload && cJSON_AddNumberToObject(line, "ts", (double)ctl_wall_ms()) &&
	    cJSON_AddStringToObject(line, "topic", msg->topic) &&
	    cJSON_AddItemToObject(line, "payload", payload)) {
		payload = NULL;
		if (cJSON_AddBoolToObject(line, "retained", msg->retain))
			ctl_print_json(line);
	}
	cJSON_Delete(payload);
	cJSON_Delete(line);
}

static void watch_message(struct ctl_session *s, const struct mosquitto_message *msg)
{
	struct watch_wait *w = s->user;
	const struct ctl_opts *o = w->c->opts;

	if (!msg || s->done || (msg->retain && !o->retained))
		return;
	if (o->json)
		print_watch_json(msg);
	else
		print_watch_text(w->c, msg);
	fflush(stdout);
	w->seen++;
	if (o->count && w->seen >= o->count)
		s->done = 1;
	if (o->timeout_explicit)
		ctl_session_extend(s, o->timeout_s);
}

static int watch_status(const struct ctl_opts *o, const struct watch_wait *w, int rc)
{
	if (rc == 0 || rc == -EINTR)
		return CTL_EXIT_OK;
	if (rc != -ETIMEDOUT)
		return CTL_EXIT_FAIL;
	if (!o->count)
		return CTL_EXIT_OK;
	fprintf(stderr, "error: %ld of %ld messages, then nothing for %d s\n", w->seen, o->count,
		o->timeout_s);
	return CTL_EXIT_FAIL;
}

int ctl_cmd_watch(struct ctl_ctx *c, int argc, const char *const *argv)
{
	char topics[2][CTL_TOPIC_MAX];
	const char *subs[2] = { topics[0], topics[1] };
	struct watch_wait w = { .c = c };
	struct ctl_session s;
	int rc;

	if (argc > 0 && ctl_check_name(argv[0]))
		return CTL_EXIT_USAGE;
	if (argc > 0 ? ctl_topic(topics[0], CTL_TOPIC_MAX, c->opts, argv[0], NULL) ||
			       ctl_topic(topics[1], CTL_TOPIC_MAX, c->opts, argv[0], "availability")
		     : ctl_topic(topics[0], CTL_TOPIC_MAX, c->opts, "#", NULL))
		return CTL_EXIT_FAIL;
	/* The timeout bounds connecting; afterwards only an explicit -t
	 * limits how long the watch may stay idle. */
	rc = ctl_session_open(&s, c->opts, 1, watch_message, &w);
	if (!rc)
		rc = ctl_session_subscribe(&s, subs, argc > 0 ? 2 : 1);
	if (!rc) {
		s.deadline_ms = 0;
		if (c->opts->timeout_explicit)
			ctl_session_extend(&s, c->opts->timeout_s);
		rc = ctl_session_run(&s);
	} else if (rc != -EINTR) {
		rc = -EIO;
	}
	ctl_session_close(&s);
	return watch_status(c->opts, &w, rc);
}
