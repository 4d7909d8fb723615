/*
 * hello: a hearth plugin built outside hearth's tree, from the installed
 * <hearth/plugin.h> and hearth-plugin.pc alone. One device, "hello/switch":
 * a settable on/off "state" and "on_time", the seconds it has been on,
 * reported every interval_s seconds ([plugin.hello] interval_s, 1..3600,
 * default 10). Its state survives restarts through the host's restore.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hearth/plugin.h>

#define DEVICE_ID "hello:switch"
#define INTERVAL_DEFAULT_S 10
#define INTERVAL_MAX_S 3600

struct hello {
	const struct hearth_host *host;
	hearth_plugin_ctx *ctx;
	hearth_timer *timer;
	unsigned long interval_s;
	bool on;
	double on_time_s;
};

static const struct hearth_capability caps[] = {
	{.name = "state",
	 .type = HEARTH_CAP_BINARY,
	 .access = HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET,
	 .value_on = HEARTH_STRING("ON"),
	 .value_off = HEARTH_STRING("OFF")},
	{.name = "on_time", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_PUBLISHED, .unit = "s"},
};

static const struct hearth_option options[] = {
	{"interval_s", "10", "seconds between reports, 1..3600"},
	{NULL, NULL, NULL},
};

static void report(struct hello *h)
{
	struct hearth_attr attrs[] = {
		{"state", HEARTH_STRING(h->on ? "ON" : "OFF")},
		{"on_time", HEARTH_NUMBER(h->on_time_s)},
	};
	h->host->state_report(h->ctx, DEVICE_ID, attrs, 2);
}

static void tick(void *user)
{
	struct hello *h = user;
	if (h->on)
		h->on_time_s += (double)h->interval_s;
	report(h);
}

static int read_interval(struct hello *h)
{
	const char *text = h->host->config_get(h->ctx, "interval_s");
	char *end;
	h->interval_s = INTERVAL_DEFAULT_S;
	if (!text)
		return 0;
	errno = 0;
	h->interval_s = strtoul(text, &end, 10);
	if (errno || end == text || *end || h->interval_s < 1 || h->interval_s > INTERVAL_MAX_S) {
		h->host->log(h->ctx, HEARTH_LOG_ERROR, "interval_s: '%s' is not 1..%d", text,
			     INTERVAL_MAX_S);
		return -EINVAL;
	}
	return 0;
}

static int hello_init(const struct hearth_host *host, hearth_plugin_ctx *ctx, void **state)
{
	if (!HEARTH_HOST_HAS(host, timer_start) || !HEARTH_HOST_HAS(host, now_ms))
		return -ENOTSUP;
	struct hello *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->host = host;
	h->ctx = ctx;
	const struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = DEVICE_ID,
		.name = "hello/switch",
		.vendor = "hearth examples",
		.model = "hello",
		.description = "a switch that counts its time on",
		.caps = caps,
		.n_caps = sizeof(caps) / sizeof(caps[0]),
	};
	int rc = read_interval(h);
	if (!rc)
		rc = host->device_add(ctx, &info);
	if (rc) {
		free(h);
		return rc;
	}
	*state = h;
	return 0;
}

static void hello_restore(void *state, const char *device_id, const struct hearth_attr *attrs,
			  size_t n_attrs)
{
	struct hello *h = state;
	if (strcmp(device_id, DEVICE_ID) != 0)
		return;
	for (size_t i = 0; i < n_attrs; i++) {
		const struct hearth_value *v = &attrs[i].value;
		if (!strcmp(attrs[i].name, "state") && v->type == HEARTH_VALUE_STRING)
			h->on = !strcmp(v->u.string, "ON");
		else if (!strcmp(attrs[i].name, "on_time") && v->type == HEARTH_VALUE_NUMBER)
			h->on_time_s = v->u.number;
	}
}

static int hello_start(void *state)
{
	struct hello *h = state;
	uint64_t ms = (uint64_t)h->interval_s * 1000;
	int rc = h->host->timer_start(h->ctx, ms, ms, tick, h, &h->timer);
	if (!rc)
		report(h);
	return rc;
}

static void hello_stop(void *state)
{
	struct hello *h = state;
	h->host->timer_stop(h->ctx, h->timer);
	free(h);
}

static int hello_command(void *state, const struct hearth_command *cmd)
{
	struct hello *h = state;
	bool on = h->on;
	if (strcmp(cmd->device_id, DEVICE_ID) != 0)
		return -ENOENT;
	/* the host validated the command; check anyway before changing anything */
	for (size_t i = 0; i < cmd->n_attrs; i++) {
		const struct hearth_value *v = &cmd->attrs[i].value;
		if (strcmp(cmd->attrs[i].name, "state") != 0 || v->type != HEARTH_VALUE_STRING)
			return -EINVAL;
		on = !strcmp(v->u.string, "ON");
	}
	h->on = on;
	report(h);
	h->host->command_done(h->ctx, cmd->id, 0, NULL);
	return 0;
}

static int hello_get(void *state, const char *device_id, const char *const *attrs,
		     size_t n_attrs)
{
	(void)attrs;
	(void)n_attrs;
	if (strcmp(device_id, DEVICE_ID) != 0)
		return -ENOENT;
	report(state);
	return 0;
}

static const struct hearth_plugin hello_plugin = {
	.struct_size = sizeof(struct hearth_plugin),
	.abi_version = HEARTH_ABI_VERSION(HEARTH_ABI_MAJOR, HEARTH_ABI_MINOR),
	.name = "hello",
	.version = "1.0",
	.description = "a switch that counts its time on (out-of-tree example)",
	.options = options,
	.init = hello_init,
	.restore = hello_restore,
	.start = hello_start,
	.stop = hello_stop,
	.command = hello_command,
	.get = hello_get,
};

HEARTH_PLUGIN_EXPORT const struct hearth_plugin *hearth_plugin_entry(const uint32_t *host_versions,
								    size_t n_versions)
{
	for (size_t i = 0; host_versions && i < n_versions; i++)
		if (HEARTH_ABI_VERSION_MAJOR(host_versions[i]) == HEARTH_ABI_MAJOR)
			return &hello_plugin;
	return NULL;
}
