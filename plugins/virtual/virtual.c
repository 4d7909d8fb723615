/*
 * virtual: simulated lights, plugs and sensors, for demos, tests and as the
 * worked example of docs/plugins.md.
 *
 * [plugin.virtual]
 *   devices     = light:2, plug:1, motion:1, climate:1, contact:1, button:1
 *   interval_ms = 5000   (0: no periodic reports and no random events)
 *
 * Devices are virtual:<kind>-<n>. Virtual devices never join: permit_join
 * only logs. This file talks to the host; kinds.c holds the device kinds.
 */
#include "virtual.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIRTUAL_VERSION "0.1.0"
#define DEVICES_DEFAULT "light:2, plug:1, motion:1, climate:1, contact:1, button:1"
#define DEVICES_TEXT_MAX 1024
#define INTERVAL_DEFAULT_MS 5000
#define INTERVAL_MIN_MS 100
#define INTERVAL_MAX_MS 86400000
#define COMMAND_MAX_ATTRS 16
#define ID_PREFIX "virtual:"

/* ---- small helpers ------------------------------------------------------- */

/* splitmix64: small, fast and good enough for plausible noise. */
double virt_random(struct virt *v)
{
	uint64_t z = (v->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) / 9007199254740992.0;
}

int64_t virt_now(struct virt *v)
{
	return v->host->now_ms(v->ctx);
}

static struct vdev *find(struct virt *v, const char *id)
{
	size_t plen = strlen(ID_PREFIX);
	if (!id || strncmp(id, ID_PREFIX, plen) != 0)
		return NULL;
	const char *kind = id + plen;
	const char *dash = strrchr(kind, '-');
	if (!dash || dash[1] < '1' || dash[1] > '9' || strlen(dash + 1) > 4)
		return NULL;
	char *end;
	unsigned long n = strtoul(dash + 1, &end, 10);
	const struct kind *k = kind_find(kind, (size_t)(dash - kind));
	if (*end || !k)
		return NULL;
	for (size_t i = 0; i < v->n_groups; i++) {
		const struct group *g = &v->groups[i];
		if (g->kind == k && n <= g->count)
			return &v->devs[g->first + n - 1];
	}
	return NULL;
}

/* ---- reporting ----------------------------------------------------------- */

void virt_report(struct virt *v, struct vdev *d, unsigned mask)
{
	struct hearth_attr attrs[VDEV_MAX_CAPS];
	unsigned access[VDEV_MAX_CAPS];
	size_t n = 0;
	for (size_t i = 0; i < d->kind->n_caps; i++) {
		const struct hearth_capability *cap = &d->kind->caps[i];
		if (!(mask & (1u << i)) || d->val[i].type == HEARTH_VALUE_NULL ||
		    !(cap->access & HEARTH_ACCESS_PUBLISHED))
			continue;
		attrs[n] = (struct hearth_attr){.name = cap->name, .value = d->val[i]};
		access[n++] = cap->access;
	}
	if (n == 0)
		return;
	v->host->state_report(v->ctx, d->id, attrs, n);
	for (size_t i = 0; i < n; i++)
		if (!(access[i] & HEARTH_ACCESS_GET))
			v->host->event_report(v->ctx, d->id, attrs[i].name, &attrs[i], 1);
}

/* ---- timers -------------------------------------------------------------- */

static void on_tick(void *user)
{
	struct virt *v = user;
	for (size_t i = 0; i < v->n_devs; i++) {
		struct vdev *d = &v->devs[i];
		if (d->kind->tick)
			virt_report(v, d, kind_full_mask(d->kind) | d->kind->tick(v, d));
	}
}

static void on_fade(void *user)
{
	struct virt *v = user;
	int64_t now = virt_now(v);
	bool more = false;
	v->fade_armed = false;
	for (size_t i = 0; i < v->n_devs; i++)
		if (v->devs[i].fade.active)
			more |= kind_fade_step(v, &v->devs[i], now);
	if (more)
		virt_fade_arm(v);
}

/* The fade timer is a one-shot re-armed while a light fades, so it is
 * never stopped from inside its own callback. */
void virt_fade_arm(struct virt *v)
{
	if (v->fade_armed)
		return;
	int rc;
	if (v->fade_timer)
		rc = v->host->timer_again(v->ctx, v->fade_timer, VIRT_FADE_STEP_MS, 0);
	else
		rc = v->host->timer_start(v->ctx, VIRT_FADE_STEP_MS, 0, on_fade, v, &v->fade_timer);
	v->fade_armed = rc == 0;
	if (rc == 0)
		return;
	v->host->log(v->ctx, HEARTH_LOG_WARNING, "no fade timer (%s): changes apply at once",
		     strerror(-rc));
	for (size_t i = 0; i < v->n_devs; i++)
		if (v->devs[i].fade.active)
			kind_fade_step(v, &v->devs[i], INT64_MAX);
}

/* ---- configuration ------------------------------------------------------- */

static int parse_interval(struct virt *v)
{
	const char *text = v->host->config_get(v->ctx, "interval_ms");
	v->interval_ms = INTERVAL_DEFAULT_MS;
	if (!text)
		return 0;
	char *end;
	errno = 0;
	unsigned long long ms = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' ||
	    (ms != 0 && (ms < INTERVAL_MIN_MS || ms > INTERVAL_MAX_MS))) {
		v->host->log(v->ctx, HEARTH_LOG_ERROR,
			     "interval_ms: '%s' is not 0 or a whole number of ms in %d..%d", text,
			     INTERVAL_MIN_MS, INTERVAL_MAX_MS);
		return -EINVAL;
	}
	v->interval_ms = ms;
	return 0;
}

static const char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* One "kind:count" entry into a new group. */
static int parse_entry(struct virt *v, const char *entry)
{
	const char *colon = strchr(entry, ':');
	const struct kind *kind = colon ? kind_find(entry, (size_t)(colon - entry)) : NULL;
	const char *why = "expected kind:count, kind one of light, plug, motion, climate, "
			  "contact, button";
	char *end = NULL;
	unsigned long count = 0;
	if (kind) {
		why = "count is not a whole number in 0..1000";
		if (colon[1] >= '0' && colon[1] <= '9')
			count = strtoul(colon + 1, &end, 10);
		if (end && *end == '\0' && count <= VIRT_MAX_PER_KIND)
			why = NULL;
	}
	for (size_t i = 0; kind && !why && i < v->n_groups; i++)
		if (v->groups[i].kind == kind)
			why = "kind listed twice";
	if (why) {
		v->host->log(v->ctx, HEARTH_LOG_ERROR, "devices: bad entry '%s': %s", entry, why);
		return -EINVAL;
	}
	v->groups[v->n_groups++] = (struct group){kind, v->n_devs, count};
	v->n_devs += count;
	return 0;
}

static int parse_devices(struct virt *v)
{
	const char *text = v->host->config_get(v->ctx, "devices");
	char buf[DEVICES_TEXT_MAX];
	if (!text)
		text = DEVICES_DEFAULT;
	if (strlen(text) >= sizeof(buf)) {
		v->host->log(v->ctx, HEARTH_LOG_ERROR, "devices: longer than %zu bytes",
			     sizeof(buf) - 1);
		return -EINVAL;
	}
	strcpy(buf, text);
	if (*trim(buf) == '\0')
		return 0;
	char *next = buf;
	while (next) {
		char *entry = next;
		next = strchr(entry, ',');
		if (next)
			*next++ = '\0';
		int rc = parse_entry(v, trim(entry));
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- devices ------------------------------------------------------------- */

static int add_device(struct virt *v, struct vdev *d, const struct kind *kind, size_t n)
{
	d->kind = kind;
	snprintf(d->id, sizeof(d->id), ID_PREFIX "%s-%zu", kind->name, n);
	snprintf(d->name, sizeof(d->name), "virtual/%s-%zu", kind->name, n);
	kind->setup(v, d);
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = d->id,
		.name = d->name,
		.vendor = "hearth",
		.model = kind->model,
		.description = kind->description,
		.caps = kind->caps,
		.n_caps = kind->n_caps,
	};
	int rc = v->host->device_add(v->ctx, &info);
	if (rc)
		v->host->log(v->ctx, HEARTH_LOG_ERROR, "cannot add %s: %s", d->id, strerror(-rc));
	return rc;
}

static int add_devices(struct virt *v)
{
	if (v->n_devs == 0)
		return 0;
	v->devs = calloc(v->n_devs, sizeof(*v->devs));
	if (!v->devs)
		return -ENOMEM;
	for (size_t g = 0; g < v->n_groups; g++) {
		const struct group *grp = &v->groups[g];
		for (size_t i = 0; i < grp->count; i++) {
			int rc = add_device(v, &v->devs[grp->first + i], grp->kind, i + 1);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Apply one parsed value as if the device measured or was set to it. */
static void adopt(struct virt *v, struct vdev *d, size_t cap, const struct hearth_value *value)
{
	d->val[cap] = *value;
	if (d->kind->adopt)
		d->kind->adopt(v, d, cap);
}

/* ---- the plugin's callbacks ---------------------------------------------- */

/* Every ABI 1.0 member this plugin calls must be there. */
static bool host_usable(const struct hearth_host *host)
{
	return HEARTH_HOST_HAS(host, device_add) && HEARTH_HOST_HAS(host, state_report) &&
	       HEARTH_HOST_HAS(host, event_report) && HEARTH_HOST_HAS(host, command_done) &&
	       HEARTH_HOST_HAS(host, config_get) && HEARTH_HOST_HAS(host, log) &&
	       HEARTH_HOST_HAS(host, timer_start) && HEARTH_HOST_HAS(host, timer_again) &&
	       HEARTH_HOST_HAS(host, timer_stop) && HEARTH_HOST_HAS(host, now_ms);
}

static int virtual_init(const struct hearth_host *host, hearth_plugin_ctx *ctx, void **state)
{
	if (!host_usable(host))
		return -EPROTO;
	struct virt *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->host = host;
	v->ctx = ctx;
	v->rng = (uint64_t)host->now_ms(ctx);
	int rc = parse_interval(v);
	if (rc == 0)
		rc = parse_devices(v);
	if (rc == 0)
		rc = add_devices(v);
	if (rc)
		goto out;
	host->log(ctx, HEARTH_LOG_INFO, "%zu virtual devices, reports every %llu ms", v->n_devs,
		  (unsigned long long)v->interval_ms);
	*state = v;
out:
	if (rc) {
		free(v->devs);
		free(v);
	}
	return rc;
}

/* Adopt a device's last stored values, so state survives a restart.
 * Attributes the kind does not keep (linkquality, action) are skipped. */
static void virtual_restore(void *state, const char *device_id, const struct hearth_attr *attrs,
			    size_t n_attrs)
{
	struct virt *v = state;
	struct vdev *d = find(v, device_id);
	if (!d)
		return;
	for (size_t i = 0; i < n_attrs; i++) {
		int cap = attrs[i].name ? kind_cap_index(d->kind, attrs[i].name) : -1;
		struct hearth_value value;
		if (cap < 0 || !(d->kind->caps[cap].access & HEARTH_ACCESS_GET) ||
		    kind_value_parse(&d->kind->caps[cap], &attrs[i].value, &value))
			continue;
		adopt(v, d, (size_t)cap, &value);
	}
}

static int virtual_start(void *state)
{
	struct virt *v = state;
	if (v->interval_ms) {
		int rc = v->host->timer_start(v->ctx, v->interval_ms, v->interval_ms, on_tick, v,
					      &v->tick_timer);
		if (rc)
			return rc;
	}
	int64_t now = virt_now(v);
	for (size_t i = 0; i < v->n_devs; i++) {
		v->devs[i].last_tick_ms = now;
		virt_report(v, &v->devs[i], kind_full_mask(v->devs[i].kind));
	}
	return 0;
}

static void virtual_stop(void *state)
{
	struct virt *v = state;
	if (!v)
		return;
	v->host->timer_stop(v->ctx, v->tick_timer);
	v->host->timer_stop(v->ctx, v->fade_timer);
	free(v->devs);
	free(v);
}

/* Parse every value before changing anything, so a bad command leaves the
 * device as it was. */
static int parse_command(struct virt *v, const struct vdev *d, const struct hearth_command *cmd,
			 size_t *caps, struct hearth_value *values)
{
	if (cmd->n_attrs > COMMAND_MAX_ATTRS)
		return -EINVAL;
	for (size_t i = 0; i < cmd->n_attrs; i++) {
		const char *name = cmd->attrs[i].name;
		int cap = name ? kind_cap_index(d->kind, name) : -1;
		if (cap < 0 || !(d->kind->caps[cap].access & HEARTH_ACCESS_SET) ||
		    kind_value_parse(&d->kind->caps[cap], &cmd->attrs[i].value, &values[i])) {
			v->host->log(v->ctx, HEARTH_LOG_WARNING, "%s: cannot set '%s'", d->id,
				     name ? name : "");
			return -EINVAL;
		}
		caps[i] = (size_t)cap;
	}
	return 0;
}

static int virtual_command(void *state, const struct hearth_command *cmd)
{
	struct virt *v = state;
	struct vdev *d = find(v, cmd->device_id);
	size_t caps[COMMAND_MAX_ATTRS];
	struct hearth_value values[COMMAND_MAX_ATTRS];
	if (!d)
		return -ENOENT;
	int rc = parse_command(v, d, cmd, caps, values);
	if (rc)
		return rc;
	unsigned mask = kind_full_mask(d->kind);
	if (d->kind->command) {
		d->kind->command(v, d, caps, values, cmd->n_attrs);
	} else {
		for (size_t i = 0; i < cmd->n_attrs; i++) {
			adopt(v, d, caps[i], &values[i]);
			mask |= 1u << caps[i];
		}
	}
	virt_report(v, d, mask);
	v->host->command_done(v->ctx, cmd->id, 0, NULL);
	return 0;
}

static int virtual_permit_join(void *state, unsigned seconds)
{
	struct virt *v = state;
	v->host->log(v->ctx, HEARTH_LOG_INFO,
		     "permit_join %us: virtual devices do not join; list them in "
		     "[plugin.virtual] devices",
		     seconds);
	return 0;
}

static int virtual_get(void *state, const char *device_id, const char *const *attrs,
		       size_t n_attrs)
{
	struct virt *v = state;
	struct vdev *d = find(v, device_id);
	if (!d)
		return -ENOENT;
	unsigned full = kind_full_mask(d->kind);
	unsigned mask = n_attrs ? 0 : full;
	for (size_t i = 0; i < n_attrs; i++) {
		int cap = attrs[i] ? kind_cap_index(d->kind, attrs[i]) : -1;
		if (cap < 0 || !(full & (1u << cap)))
			return -EINVAL;
		mask |= 1u << cap;
	}
	virt_report(v, d, mask);
	return 0;
}

/* ---- descriptor and entry ------------------------------------------------ */

static const struct hearth_option virtual_options[] = {
	{"devices", DEVICES_DEFAULT,
	 "Devices to simulate, as kind:count pairs separated by commas; kinds are light, plug, "
	 "motion, climate, contact and button; count 0..1000"},
	{"interval_ms", "5000",
	 "Milliseconds between sensor reports and random events; 0 turns both off"},
	{NULL, NULL, NULL},
};

/* One descriptor per ABI minor it speaks: a 1.0 host gets one without the
 * 1.1 flags (it would refuse a descriptor that says 1.1). */
#define VIRTUAL_DESCRIPTOR(minor, plugin_flags)                                                  \
	{                                                                                        \
		.struct_size = sizeof(struct hearth_plugin),                                     \
		.abi_version = HEARTH_ABI_VERSION(1, minor), .name = "virtual",                  \
		.version = VIRTUAL_VERSION,                                                      \
		.description = "Simulated lights, plugs and sensors for demos and tests",        \
		.options = virtual_options, .init = virtual_init, .restore = virtual_restore,    \
		.start = virtual_start, .stop = virtual_stop, .command = virtual_command,        \
		.permit_join = virtual_permit_join, .get = virtual_get, .flags = plugin_flags,   \
	}

static const struct hearth_plugin virtual_plugin = VIRTUAL_DESCRIPTOR(1, HEARTH_PLUGIN_RETRY_SAFE);
static const struct hearth_plugin virtual_plugin_1_0 = VIRTUAL_DESCRIPTOR(0, 0);

HEARTH_PLUGIN_EXPORT const struct hearth_plugin *hearth_plugin_entry(const uint32_t *host_versions,
								    size_t n_versions)
{
	const struct hearth_plugin *best = NULL;
	for (size_t i = 0; host_versions && i < n_versions; i++) {
		if (HEARTH_ABI_VERSION_MAJOR(host_versions[i]) != 1)
			continue;
		if (HEARTH_ABI_VERSION_MINOR(host_versions[i]) >= 1)
			return &virtual_plugin;
		best = &virtual_plugin_1_0;
	}
	return best;
}
