/*
 * ctl_device: "devices" and "show", read from retained messages only:
 * <base>/bridge/devices, <base>/<name> and <base>/<name>/availability;
 * and ctl_retained(), which the other listings share.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_cmd.h"
#include "ctl_format.h"
#include "ctl_mqtt.h"

#define SNAP_MAX 3
#define EXIT_INTERRUPTED 130
#define RANGE_MAX 128

/* The latest retained payload of a few topics; topics[0] is required. */
struct snapshot {
	int n;
	char topics[SNAP_MAX][CTL_TOPIC_MAX];
	char *payload[SNAP_MAX];
	size_t len[SNAP_MAX];
};

static const char *str_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void snap_message(struct ctl_session *s, const struct mosquitto_message *msg)
{
	struct snapshot *sn = s->user;
	char *copy;
	int i;

	if (!msg) {
		s->done = 1;
		return;
	}
	if (msg->payloadlen <= 0 || msg->payloadlen > CTL_PAYLOAD_MAX)
		return;
	for (i = 0; i < sn->n; i++) {
		if (strcmp(msg->topic, sn->topics[i]) || !(copy = malloc((size_t)msg->payloadlen + 1)))
			continue;
		memcpy(copy, msg->payload, (size_t)msg->payloadlen);
		copy[msg->payloadlen] = '\0';
		free(sn->payload[i]);
		sn->payload[i] = copy;
		sn->len[i] = (size_t)msg->payloadlen;
	}
}

static void snap_free(struct snapshot *sn)
{
	int i;

	for (i = 0; i < sn->n; i++)
		free(sn->payload[i]);
}

/* Collect the retained messages; what names topics[0] in the error when
 * nothing is retained there. Returns an exit status. */
static int snap_take(struct ctl_ctx *c, struct snapshot *sn, const char *what)
{
	const struct ctl_opts *o = c->opts;
	const char *topics[SNAP_MAX];
	struct ctl_session s;
	int i, rc;

	for (i = 0; i < sn->n; i++)
		topics[i] = sn->topics[i];
	rc = ctl_session_open(&s, o, 1, snap_message, sn);
	if (!rc)
		rc = ctl_session_subscribe(&s, topics, sn->n);
	if (!rc)
		rc = ctl_session_run(&s);
	ctl_session_close(&s);
	/* A broker that drops the sync message still delivered the retained
	 * ones: use them. */
	if (rc == -ETIMEDOUT && sn->payload[0])
		rc = 0;
	if (rc == -EINTR)
		return EXIT_INTERRUPTED;
	if (rc == -ETIMEDOUT)
		fprintf(stderr,
			"error: no answer from hearth on %s:%d within %d s (is hearthd running?)\n",
			o->host, o->port, o->timeout_s);
	if (rc)
		return CTL_EXIT_FAIL;
	if (!sn->payload[0]) {
		fprintf(stderr,
			"error: no %s on %s at %s:%d (is hearthd running, with base "
			"topic '%s'?)\n",
			what, sn->topics[0], o->host, o->port, o->base);
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

int ctl_retained(struct ctl_ctx *c, const char *topic, const char *what, char **payload,
		 size_t *len)
{
	struct snapshot sn = { .n = 1 };
	int status;

	if (snprintf(sn.topics[0], CTL_TOPIC_MAX, "%s", topic) >= CTL_TOPIC_MAX) {
		fprintf(stderr, "error: topic '%.64s' is too long\n", topic);
		return CTL_EXIT_FAIL;
	}
	status = snap_take(c, &sn, what);
	if (status == CTL_EXIT_OK) {
		*payload = sn.payload[0];
		*len = sn.len[0];
		sn.payload[0] = NULL;
	}
	snap_free(&sn);
	return status;
}

static cJSON *parse_devices(const struct snapshot *sn)
{
	cJSON *list = cJSON_ParseWithLength(sn->payload[0], sn->len[0]);

	if (cJSON_IsArray(list))
		return list;
	cJSON_Delete(list);
	fprintf(stderr, "error: %s does not hold a JSON array\n", sn->topics[0]);
	return NULL;
}

static int by_name(const void *a, const void *b)
{
	const cJSON *const *x = a, *const *y = b;

	return strcmp(str_of(*x, "name"), str_of(*y, "name"));
}

static int device_row(struct ctl_table *t, const cJSON *d, int64_t now_ms)
{
	static const char *const yes_no[2][6] = {
		{ NULL, NULL, NULL, NULL, CTL_ANSI_RED, CTL_ANSI_DIM },
		{ NULL, NULL, NULL, NULL, CTL_ANSI_GREEN, CTL_ANSI_DIM },
	};
	const cJSON *seen = cJSON_GetObjectItemCaseSensitive(d, "last_seen");
	int up = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "available"));
	const char *cells[6];
	char ago[32];

	ctl_format_ago(ago, sizeof(ago), cJSON_IsNumber(seen) ? (int64_t)seen->valuedouble : 0,
		       now_ms);
	cells[0] = str_of(d, "name");
	cells[1] = str_of(d, "plugin");
	cells[2] = str_of(d, "model");
	cells[3] = str_of(d, "room");
	cells[4] = up ? "yes" : "no";
	cells[5] = ago;
	return ctl_table_add(t, cells, yes_no[up]);
}

static int print_devices(struct ctl_ctx *c, const cJSON *list)
{
	static const char *const headers[] = { "NAME",	    "PLUGIN",	 "MODEL",
					       "ROOM",	    "AVAILABLE", "LAST SEEN" };
	int n = cJSON_GetArraySize(list), i = 0, rc = 0;
	const cJSON **rows = calloc((size_t)n + 1, sizeof(*rows));
	struct ctl_table *t = ctl_table_new(6, headers);
	const cJSON *d;
	int64_t now_ms = ctl_wall_ms();

	if (!rows || !t) {
		rc = -ENOMEM;
		goto out;
	}
	cJSON_ArrayForEach(d, list)
	{
		if (cJSON_IsObject(d) && i < n)
			rows[i++] = d;
	}
	qsort(rows, (size_t)i, sizeof(*rows), by_name);
	for (n = i, i = 0; i < n && !rc; i++)
		rc = device_row(t, rows[i], now_ms);
	if (!rc)
		rc = ctl_print_owned(ctl_table_render(t, c->color));
out:
	if (rc == -ENOMEM)
		fprintf(stderr, "error: out of memory\n");
	ctl_table_free(t);
	free(rows);
	return rc ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

int ctl_cmd_devices(struct ctl_ctx *c, int argc, const char *const *argv)
{
	struct snapshot sn = { .n = 1 };
	cJSON *list = NULL;
	int status;

	(void)argc;
	(void)argv;
	if (ctl_topic(sn.topics[0], CTL_TOPIC_MAX, c->opts, "bridge/devices", NULL))
		return CTL_EXIT_FAIL;
	status = snap_take(c, &sn, "device list");
	if (status == CTL_EXIT_OK && !(list = parse_devices(&sn)))
		status = CTL_EXIT_FAIL;
	if (status == CTL_EXIT_OK && c->opts->json) {
		/* The array exactly as hearth published it. */
		fwrite(sn.payload[0], 1, sn.len[0], stdout);
		if (sn.payload[0][sn.len[0] - 1] != '\n')
			fputc('\n', stdout);
	} else if (status == CTL_EXIT_OK) {
		status = print_devices(c, list);
	}
	cJSON_Delete(list);
	snap_free(&sn);
	return status;
}

/* A number as text, or "" when v is not one. */
static void number_text(char *buf, size_t len, const cJSON *v)
{
	if (cJSON_IsNumber(v))
		ctl_format_value(buf, len, v);
	else
		buf[0] = '\0';
}

/* What a capability accepts, in a few words: "0..254 step 1", "ON/OFF",
 * "auto|heat|off". */
static void cap_range(char *buf, size_t len, const cJSON *cap)
{
	const char *type = str_of(cap, "type");
	char a[48], b[48];
	const cJSON *v;
	size_t at;

	buf[0] = '\0';
	if (!strcmp(type, "numeric")) {
		number_text(a, sizeof(a), cJSON_GetObjectItemCaseSensitive(cap, "value_min"));
		number_text(b, sizeof(b), cJSON_GetObjectItemCaseSensitive(cap, "value_max"));
		if (*a || *b)
			snprintf(buf, len, "%s..%s", a, b);
		v = cJSON_GetObjectItemCaseSensitive(cap, "value_step");
		if (cJSON_IsNumber(v)) {
			ctl_format_value(a, sizeof(a), v);
			at = strlen(buf);
			snprintf(buf + at, len - at, "%sstep %s", at ? " " : "", a);
		}
	} else if (!strcmp(type, "binary")) {
		ctl_format_value(a, sizeof(a), cJSON_GetObjectItemCaseSensitive(cap, "value_on"));
		ctl_format_value(b, sizeof(b), cJSON_GetObjectItemCaseSensitive(cap, "value_off"));
		snprintf(buf, len, "%s/%s", a, b);
	} else if (!strcmp(type, "enum")) {
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(cap, "values"))
		{
			ctl_format_value(a, sizeof(a), v);
			at = strlen(buf);
			snprintf(buf + at, len - at, "%s%s", at ? "|" : "", a);
		}
	}
}

static int cap_row(struct ctl_table *t, const char *name, const cJSON *cap, const cJSON *value)
{
	const cJSON *access = cJSON_GetObjectItemCaseSensitive(cap, "access");
	char shown[CTL_CELL_MAX], range[RANGE_MAX];
	const char *cells[6];

	ctl_format_value(shown, sizeof(shown), value);
	cap_range(range, sizeof(range), cap);
	cells[0] = name;
	cells[1] = cap ? str_of(cap, "type") : "-";
	cells[2] = shown;
	cells[3] = cap ? str_of(cap, "unit") : "";
	cells[4] = range;
	cells[5] = !cap ? "-" : cJSON_IsNumber(access) && ((int)access->valuedouble & 2) ? "yes" : "no";
	return ctl_table_add(t, cells, NULL);
}

/* One row per capability, one per feature of a composite ("color.x"), then
 * the state keys no capability describes. */
static int cap_rows(struct ctl_table *t, const cJSON *caps, const cJSON *state)
{
	char name[2 * CTL_KEY_MAX + 2];
	const cJSON *cap, *f, *v;
	int rc = 0;

	cJSON_ArrayForEach(cap, caps)
	{
		const char *cname = str_of(cap, "name");

		v = cJSON_GetObjectItemCaseSensitive(state, cname);
		rc = rc ? rc : cap_row(t, cname, cap, v);
		cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(cap, "features"))
		{
			snprintf(name, sizeof(name), "%s.%s", cname, str_of(f, "name"));
			rc = rc ? rc : cap_row(t, name, f,
					       cJSON_GetObjectItemCaseSensitive(v, str_of(f, "name")));
		}
	}
	cJSON_ArrayForEach(v, state)
	{
		int known = 0;

		cJSON_ArrayForEach(cap, caps)
			known |= !strcmp(str_of(cap, "name"), v->string);
		if (!known)
			rc = rc ? rc : cap_row(t, v->string, NULL, v);
	}
	return rc;
}

static int info_row(struct ctl_table *t, const char *label, const char *value,
		    const char *color)
{
	const char *cells[2] = { label, value };
	const char *colors[2] = { CTL_ANSI_BOLD, color };

	return ctl_table_add(t, cells, colors);
}

static int info_rows(struct ctl_table *t, const cJSON *d, const char *avail)
{
	static const char *const fields[] = { "name",  "id",	      "plugin", "vendor",
					      "model", "description", "room" };
	const cJSON *seen = cJSON_GetObjectItemCaseSensitive(d, "last_seen");
	int online = !strcmp(avail, "online");
	char ago[32];
	size_t i;
	int rc = 0;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]) && !rc; i++)
		rc = info_row(t, fields[i], str_of(d, fields[i]), NULL);
	ctl_format_ago(ago, sizeof(ago), cJSON_IsNumber(seen) ? (int64_t)seen->valuedouble : 0,
		       ctl_wall_ms());
	if (!rc)
		rc = info_row(t, "available", avail, online ? CTL_ANSI_GREEN : CTL_ANSI_RED);
	if (!rc)
		rc = info_row(t, "last seen", ago, NULL);
	return rc;
}

static int print_show_text(struct ctl_ctx *c, const cJSON *d, const cJSON *state,
			   const char *avail)
{
	static const char *const headers[] = { "CAPABILITY", "TYPE",  "VALUE",
					       "UNIT",	     "RANGE", "SETTABLE" };
	struct ctl_table *info = ctl_table_new(2, NULL);
	struct ctl_table *caps = ctl_table_new(6, headers);
	int rc = -ENOMEM;

	if (info && caps && !info_rows(info, d, avail) &&
	    !cap_rows(caps, cJSON_GetObjectItemCaseSensitive(d, "capabilities"), state)) {
		rc = ctl_print_owned(ctl_table_render(info, c->color));
		if (!rc && ctl_table_rows(caps) > 0) {
			putchar('\n');
			rc = ctl_print_owned(ctl_table_render(caps, c->color));
		}
	} else {
		fprintf(stderr, "error: out of memory\n");
	}
	ctl_table_free(info);
	ctl_table_free(caps);
	return rc ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

static int print_show_json(const cJSON *d, cJSON *state, const char *avail)
{
	cJSON *out = cJSON_Duplicate(d, 1);
	cJSON *st = state ? cJSON_Duplicate(state, 1) : cJSON_CreateNull();
	int rc = -ENOMEM;

	if (out && st && cJSON_AddItemToObject(out, "state", st)) {
		st = NULL;
		if (cJSON_AddStringToObject(out, "availability", avail))
			rc = ctl_print_json(out);
	}
	if (rc == -ENOMEM)
		fprintf(stderr, "error: out of memory\n");
	cJSON_Delete(st);
	cJSON_Delete(out);
	return rc ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

static const cJSON *find_device(const cJSON *list, const char *name)
{
	const cJSON *d;

	cJSON_ArrayForEach(d, list)
	{
		if (!strcmp(str_of(d, "name"), name))
			return d;
	}
	return NULL;
}

/* "online"/"offline" from the availability topic, else from the list. */
static const char *availability(const struct snapshot *sn, const cJSON *d, char *buf, size_t len)
{
	cJSON *a = sn->payload[2] ? cJSON_ParseWithLength(sn->payload[2], sn->len[2]) : NULL;
	const char *s = str_of(a, "state");

	snprintf(buf, len, "%s",
		 *s ? s : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "available")) ? "online"
											 : "offline");
	ctl_sanitize(buf);
	cJSON_Delete(a);
	return buf;
}

static int show(struct ctl_ctx *c, const struct snapshot *sn, const char *name)
{
	cJSON *list = parse_devices(sn), *state = NULL;
	const cJSON *d;
	char avail[32];
	int status = CTL_EXIT_FAIL;

	if (!list)
		return CTL_EXIT_FAIL;
	d = find_device(list, name);
	if (!d) {
		fprintf(stderr, "error: no device named '%s'\n", name);
		goto out;
	}
	if (sn->payload[1])
		state = cJSON_ParseWithLength(sn->payload[1], sn->len[1]);
	if (!cJSON_IsObject(state)) {
		cJSON_Delete(state);
		state = NULL;
	}
	availability(sn, d, avail, sizeof(avail));
	status = c->opts->json ? print_show_json(d, state, avail)
			       : print_show_text(c, d, state, avail);
out:
	cJSON_Delete(state);
	cJSON_Delete(list);
	return status;
}

int ctl_cmd_show(struct ctl_ctx *c, int argc, const char *const *argv)
{
	struct snapshot sn = { .n = 3 };
	int status;

	(void)argc;
	if (ctl_check_name(argv[0]))
		return CTL_EXIT_USAGE;
	if (ctl_topic(sn.topics[0], CTL_TOPIC_MAX, c->opts, "bridge/devices", NULL) ||
	    ctl_topic(sn.topics[1], CTL_TOPIC_MAX, c->opts, argv[0], NULL) ||
	    ctl_topic(sn.topics[2], CTL_TOPIC_MAX, c->opts, argv[0], "availability"))
		return CTL_EXIT_FAIL;
	status = snap_take(c, &sn, "device list");
	if (status == CTL_EXIT_OK)
		status = show(c, &sn, argv[0]);
	snap_free(&sn);
	return status;
}
