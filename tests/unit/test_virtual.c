/*
 * The virtual plugin, loaded with dlopen() as the hub loads it and driven
 * through a fake host table: devices, reports, events, command completions
 * and timers are recorded, and timers fire only when a test fires them.
 *
 * The plugin is $HEARTH_VIRTUAL_SO, else $B/plugins/virtual.so, else
 * build/plugins/virtual.so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hearth/plugin.h>

#define MAX_DEVS 32
#define MAX_CAPS 8
#define MAX_VALUES 8
#define MAX_REPORTS 4096
#define MAX_EVENTS 512
#define MAX_DONE 64
#define MAX_TIMERS 8
#define MAX_CONFIG 4
#define TEXT 64

/* ---- the fake host --------------------------------------------------------- */

struct rec_value {
	char name[TEXT];
	enum hearth_value_type type;
	bool boolean;
	double number;
	char string[TEXT];
};

struct rec_cap {
	char name[TEXT];
	enum hearth_cap_type type;
	unsigned access;
	unsigned flags;
	double min, max;
	struct rec_value on, off;
	char values[MAX_VALUES][TEXT];
	size_t n_values;
};

struct rec_device {
	char id[TEXT], name[TEXT], vendor[TEXT], model[TEXT];
	bool has_description;
	struct rec_cap caps[MAX_CAPS];
	size_t n_caps;
};

struct rec_report {
	char id[TEXT];
	struct rec_value attrs[MAX_CAPS];
	size_t n;
};

struct rec_event {
	char id[TEXT], type[TEXT];
	struct rec_value attrs[MAX_CAPS];
	size_t n;
};

struct fake_timer {
	bool used, armed;
	uint64_t due_ms, repeat_ms;
	hearth_timer_cb cb;
	void *user;
};

/* Statistics of one attribute of one device across reports. */
struct watch {
	const char *id, *attr;
	size_t count;
	double min, max;
	size_t n_true, n_false;
};

static struct fake {
	struct rec_device devs[MAX_DEVS];
	size_t n_devs;
	struct rec_report reports[MAX_REPORTS]; /* a ring */
	size_t n_reports;
	struct rec_event events[MAX_EVENTS];
	size_t n_events;
	struct {
		uint64_t id;
		int status;
	} done[MAX_DONE];
	size_t n_done;
	struct fake_timer timers[MAX_TIMERS];
	size_t timers_started;
	const char *config_keys[MAX_CONFIG], *config_values[MAX_CONFIG];
	size_t n_config;
	char last_error[512];
	size_t n_logs;
	int64_t now_ms;
	/* Reported values that break a declared capability (or name none),
	 * and numbers with a long tail of binary noise. */
	size_t violations;
	char last_violation[2 * TEXT + 40];
	struct watch watches[8];
	size_t n_watches;
} fk;

static int fake_ctx_anchor;
#define CTX ((hearth_plugin_ctx *)&fake_ctx_anchor)

static void copy_text(char *dst, const char *src)
{
	snprintf(dst, TEXT, "%s", src ? src : "");
}

static void rec_value_set(struct rec_value *r, const char *name, const struct hearth_value *v)
{
	memset(r, 0, sizeof(*r));
	copy_text(r->name, name);
	r->type = v->type;
	if (v->type == HEARTH_VALUE_BOOL)
		r->boolean = v->u.boolean;
	else if (v->type == HEARTH_VALUE_NUMBER)
		r->number = v->u.number;
	else if (v->type == HEARTH_VALUE_STRING || v->type == HEARTH_VALUE_JSON)
		copy_text(r->string, v->u.string);
}

static bool rec_value_equal(const struct rec_value *a, const struct rec_value *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == HEARTH_VALUE_BOOL)
		return a->boolean == b->boolean;
	if (a->type == HEARTH_VALUE_NUMBER)
		return a->number == b->number;
	return strcmp(a->string, b->string) == 0;
}

static struct rec_device *fake_device(const char *id)
{
	for (size_t i = 0; i < fk.n_devs; i++)
		if (strcmp(fk.devs[i].id, id) == 0)
			return &fk.devs[i];
	return NULL;
}

static const struct rec_cap *fake_cap(const struct rec_device *d, const char *name)
{
	for (size_t i = 0; d && i < d->n_caps; i++)
		if (strcmp(d->caps[i].name, name) == 0)
			return &d->caps[i];
	return NULL;
}

static int fake_device_add(hearth_plugin_ctx *ctx, const struct hearth_device_info *info)
{
	assert_ptr_equal(ctx, CTX);
	assert_int_equal(info->struct_size, sizeof(*info));
	assert_true(fk.n_devs < MAX_DEVS);
	assert_true(info->n_caps <= MAX_CAPS);
	struct rec_device *d = &fk.devs[fk.n_devs++];
	memset(d, 0, sizeof(*d));
	copy_text(d->id, info->id);
	copy_text(d->name, info->name);
	copy_text(d->vendor, info->vendor);
	copy_text(d->model, info->model);
	d->has_description = info->description && info->description[0];
	d->n_caps = info->n_caps;
	for (size_t i = 0; i < info->n_caps; i++) {
		const struct hearth_capability *c = &info->caps[i];
		struct rec_cap *r = &d->caps[i];
		copy_text(r->name, c->name);
		r->type = c->type;
		r->access = c->access;
		r->flags = c->flags;
		r->min = c->min;
		r->max = c->max;
		if (c->type == HEARTH_CAP_BINARY) {
			rec_value_set(&r->on, "on", &c->value_on);
			rec_value_set(&r->off, "off", &c->value_off);
		}
		for (size_t k = 0; c->type == HEARTH_CAP_ENUM && k < c->n_values && k < MAX_VALUES;
		     k++)
			copy_text(r->values[r->n_values++], c->values[k]);
	}
	return 0;
}

/* A number the state JSON shows as typed (21.5, not 21.500000000000004). */
static bool number_short(double x)
{
	char text[32];
	snprintf(text, sizeof(text), "%.15g", x);
	return strtod(text, NULL) == x;
}

static bool value_fits(const struct rec_cap *c, const struct rec_value *v)
{
	switch (c->type) {
	case HEARTH_CAP_BINARY:
		return rec_value_equal(v, &c->on) || rec_value_equal(v, &c->off);
	case HEARTH_CAP_NUMERIC:
		return v->type == HEARTH_VALUE_NUMBER && isfinite(v->number) && number_short(v->number) &&
		       (!(c->flags & HEARTH_CAP_HAS_MIN) || v->number >= c->min) &&
		       (!(c->flags & HEARTH_CAP_HAS_MAX) || v->number <= c->max);
	case HEARTH_CAP_ENUM:
		for (size_t i = 0; v->type == HEARTH_VALUE_STRING && i < c->n_values; i++)
			if (strcmp(c->values[i], v->string) == 0)
				return true;
		return false;
	default:
		return false;
	}
}

static void watch_see(const char *id, const struct rec_value *v)
{
	for (size_t i = 0; i < fk.n_watches; i++) {
		struct watch *w = &fk.watches[i];
		if (strcmp(w->id, id) != 0 || strcmp(w->attr, v->name) != 0)
			continue;
		if (v->type == HEARTH_VALUE_BOOL)
			*(v->boolean ? &w->n_true : &w->n_false) += 1;
		if (w->count == 0 || v->number < w->min)
			w->min = v->number;
		if (w->count == 0 || v->number > w->max)
			w->max = v->number;
		w->count++;
	}
}

static void record_attrs(struct rec_value *dst, size_t *n_out, const char *id,
			 const struct hearth_attr *attrs, size_t n)
{
	const struct rec_device *d = fake_device(id);
	*n_out = 0;
	if (!d || n > MAX_CAPS) {
		fk.violations++;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		rec_value_set(&dst[i], attrs[i].name, &attrs[i].value);
		const struct rec_cap *c = fake_cap(d, dst[i].name);
		if (!c || !(c->access & HEARTH_ACCESS_PUBLISHED) || !value_fits(c, &dst[i])) {
			fk.violations++;
			snprintf(fk.last_violation, sizeof(fk.last_violation), "%s %s (%.17g)", id,
				 dst[i].name, dst[i].number);
		}
		watch_see(id, &dst[i]);
	}
	*n_out = n;
}

static int fake_state_report(hearth_plugin_ctx *ctx, const char *id, const struct hearth_attr *attrs,
			     size_t n_attrs)
{
	assert_ptr_equal(ctx, CTX);
	struct rec_report *r = &fk.reports[fk.n_reports++ % MAX_REPORTS];
	copy_text(r->id, id);
	record_attrs(r->attrs, &r->n, id, attrs, n_attrs);
	return 0;
}

static int fake_event_report(hearth_plugin_ctx *ctx, const char *id, const char *type,
			     const struct hearth_attr *attrs, size_t n_attrs)
{
	assert_ptr_equal(ctx, CTX);
	assert_true(fk.n_events < MAX_EVENTS);
	struct rec_event *e = &fk.events[fk.n_events++];
	copy_text(e->id, id);
	copy_text(e->type, type);
	record_attrs(e->attrs, &e->n, id, attrs, n_attrs);
	return 0;
}

static void fake_command_done(hearth_plugin_ctx *ctx, uint64_t command_id, int status,
			      const char *error)
{
	(void)error;
	assert_ptr_equal(ctx, CTX);
	assert_true(fk.n_done < MAX_DONE);
	fk.done[fk.n_done].id = command_id;
	fk.done[fk.n_done++].status = status;
}

static const char *fake_config_get(hearth_plugin_ctx *ctx, const char *key)
{
	assert_ptr_equal(ctx, CTX);
	for (size_t i = 0; i < fk.n_config; i++)
		if (strcmp(fk.config_keys[i], key) == 0)
			return fk.config_values[i];
	return NULL;
}

static void fake_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fake_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
{
	assert_ptr_equal(ctx, CTX);
	fk.n_logs++;
	if (level != HEARTH_LOG_ERROR)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fk.last_error, sizeof(fk.last_error), fmt, ap);
	va_end(ap);
}

static int fake_timer_start(hearth_plugin_ctx *ctx, uint64_t timeout_ms, uint64_t repeat_ms,
			    hearth_timer_cb cb, void *user, hearth_timer **out)
{
	assert_ptr_equal(ctx, CTX);
	for (size_t i = 0; i < MAX_TIMERS; i++) {
		struct fake_timer *t = &fk.timers[i];
		if (t->used)
			continue;
		*t = (struct fake_timer){true, true, timeout_ms, repeat_ms, cb, user};
		fk.timers_started++;
		*out = (hearth_timer *)t;
		return 0;
	}
	return -ENOMEM;
}

static int fake_timer_again(hearth_plugin_ctx *ctx, hearth_timer *timer, uint64_t timeout_ms,
			    uint64_t repeat_ms)
{
	assert_ptr_equal(ctx, CTX);
	struct fake_timer *t = (struct fake_timer *)timer;
	assert_true(t->used);
	t->armed = true;
	t->due_ms = timeout_ms;
	t->repeat_ms = repeat_ms;
	return 0;
}

static void fake_timer_stop(hearth_plugin_ctx *ctx, hearth_timer *timer)
{
	assert_ptr_equal(ctx, CTX);
	struct fake_timer *t = (struct fake_timer *)timer;
	if (!t)
		return;
	assert_true(t->used);
	memset(t, 0, sizeof(*t));
}

static int64_t fake_now_ms(hearth_plugin_ctx *ctx)
{
	assert_ptr_equal(ctx, CTX);
	return fk.now_ms;
}

static const struct hearth_host fake_host = {
	.size = sizeof(struct hearth_host),
	.abi_minor = HEARTH_ABI_MINOR,
	.device_add = fake_device_add,
	.state_report = fake_state_report,
	.event_report = fake_event_report,
	.command_done = fake_command_done,
	.config_get = fake_config_get,
	.log = fake_log,
	.timer_start = fake_timer_start,
	.timer_again = fake_timer_again,
	.timer_stop = fake_timer_stop,
	.now_ms = fake_now_ms,
};

/* An armed timer: the repeating sensor tick, or the one-shot fade timer. */
static struct fake_timer *armed_timer(bool repeating)
{
	for (size_t i = 0; i < MAX_TIMERS; i++) {
		struct fake_timer *t = &fk.timers[i];
		if (t->used && t->armed && (t->repeat_ms != 0) == repeating)
			return t;
	}
	return NULL;
}

static void fire(struct fake_timer *t)
{
	assert_non_null(t);
	assert_true(t->armed);
	fk.now_ms += (int64_t)t->due_ms;
	if (t->repeat_ms)
		t->due_ms = t->repeat_ms;
	else
		t->armed = false;
	t->cb(t->user);
}

static size_t timers_in_use(void)
{
	size_t n = 0;
	for (size_t i = 0; i < MAX_TIMERS; i++)
		n += fk.timers[i].used;
	return n;
}

static void set_config(const char *key, const char *value)
{
	assert_true(fk.n_config < MAX_CONFIG);
	fk.config_keys[fk.n_config] = key;
	fk.config_values[fk.n_config++] = value;
}

static void forget_reports(void)
{
	fk.n_reports = 0;
	fk.n_events = 0;
	fk.n_done = 0;
}

/* The newest value of attr reported for id, or NULL. */
static const struct rec_value *last_value(const char *id, const char *attr)
{
	size_t oldest = fk.n_reports > MAX_REPORTS ? fk.n_reports - MAX_REPORTS : 0;
	for (size_t i = fk.n_reports; i-- > oldest;) {
		const struct rec_report *r = &fk.reports[i % MAX_REPORTS];
		for (size_t k = 0; k < r->n && strcmp(r->id, id) == 0; k++)
			if (strcmp(r->attrs[k].name, attr) == 0)
				return &r->attrs[k];
	}
	return NULL;
}

static size_t reports_for(const char *id)
{
	size_t n = 0;
	for (size_t i = 0; i < fk.n_reports && i < MAX_REPORTS; i++)
		n += strcmp(fk.reports[i].id, id) == 0;
	return n;
}

static struct watch *add_watch(const char *id, const char *attr)
{
	assert_true(fk.n_watches < sizeof(fk.watches) / sizeof(fk.watches[0]));
	struct watch *w = &fk.watches[fk.n_watches++];
	*w = (struct watch){.id = id, .attr = attr};
	return w;
}

static void assert_number(const char *id, const char *attr, double want)
{
	const struct rec_value *v = last_value(id, attr);
	assert_non_null(v);
	assert_int_equal(v->type, HEARTH_VALUE_NUMBER);
	assert_true(fabs(v->number - want) < 1e-9);
}

static void assert_string(const char *id, const char *attr, const char *want)
{
	const struct rec_value *v = last_value(id, attr);
	assert_non_null(v);
	assert_int_equal(v->type, HEARTH_VALUE_STRING);
	assert_string_equal(v->string, want);
}

static void assert_bool(const char *id, const char *attr, bool want)
{
	const struct rec_value *v = last_value(id, attr);
	assert_non_null(v);
	assert_int_equal(v->type, HEARTH_VALUE_BOOL);
	assert_int_equal(v->boolean, want);
}

/* ---- loading the plugin ---------------------------------------------------- */

static void *so_handle;
static hearth_plugin_entry_fn entry;
static const struct hearth_plugin *plugin;
static void *pstate; /* the running plugin's state, stopped by teardown */

static int group_setup(void **unused)
{
	(void)unused;
	char path[PATH_MAX];
	const char *so = getenv("HEARTH_VIRTUAL_SO");
	const char *b = getenv("B");
	if (so)
		snprintf(path, sizeof(path), "%s", so);
	else
		snprintf(path, sizeof(path), "%s/plugins/virtual.so", b && *b ? b : "build");
	so_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!so_handle) {
		fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
		return -1;
	}
	entry = (hearth_plugin_entry_fn)(uintptr_t)dlsym(so_handle, HEARTH_PLUGIN_ENTRY_SYMBOL);
	const uint32_t v1 = HEARTH_ABI_VERSION(1, 0);
	plugin = entry ? entry(&v1, 1) : NULL;
	return plugin ? 0 : -1;
}

static int group_teardown(void **unused)
{
	(void)unused;
	if (so_handle)
		dlclose(so_handle);
	return 0;
}

static int setup(void **unused)
{
	(void)unused;
	memset(&fk, 0, sizeof(fk));
	fk.now_ms = 1700000000000;
	pstate = NULL;
	return 0;
}

static int teardown(void **unused)
{
	(void)unused;
	if (pstate)
		plugin->stop(pstate);
	pstate = NULL;
	assert_int_equal(timers_in_use(), 0);
	if (fk.violations)
		fail_msg("%zu reported values break their capability; last: %s", fk.violations,
			 fk.last_violation);
	return 0;
}

static void init_plugin(void)
{
	assert_int_equal(plugin->init(&fake_host, CTX, &pstate), 0);
	assert_non_null(pstate);
}

static void start_plugin(void)
{
	init_plugin();
	assert_int_equal(plugin->start(pstate), 0);
}

static int command(const char *id, uint64_t cmd_id, const struct hearth_attr *attrs, size_t n)
{
	struct hearth_command cmd = {.id = cmd_id, .device_id = id, .attrs = attrs, .n_attrs = n};
	return plugin->command(pstate, &cmd);
}

/* Fire the fade timer until no light fades; how many times it fired. */
static size_t run_fades(void)
{
	size_t fired = 0;
	struct fake_timer *t;
	while ((t = armed_timer(false)) && fired < 100000) {
		fire(t);
		fired++;
	}
	assert_null(armed_timer(false));
	return fired;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_entry_versions(void **unused)
{
	(void)unused;
	const uint32_t only2[] = {HEARTH_ABI_VERSION(2, 0)};
	const uint32_t both[] = {HEARTH_ABI_VERSION(2, 0), HEARTH_ABI_VERSION(1, 0)};
	const uint32_t newer_minor[] = {HEARTH_ABI_VERSION(1, 7)};
	assert_null(entry(only2, 1));
	assert_null(entry(both, 0));
	assert_null(entry(NULL, 0));
	/* a 1.0 host gets a 1.0 descriptor, without the 1.1 flags */
	const struct hearth_plugin *old = entry(both, 2);
	assert_non_null(old);
	assert_int_equal(old->abi_version, HEARTH_ABI_VERSION(1, 0));
	assert_int_equal(old->flags, 0);
	assert_true(old->init == entry(newer_minor, 1)->init);
	/* a 1.1 host (or newer minor) gets the 1.1 one: its commands may repeat */
	const uint32_t current[] = {HEARTH_ABI_VERSION(2, 0), HEARTH_ABI_VERSION(1, 1),
				    HEARTH_ABI_VERSION(1, 0)};
	const struct hearth_plugin *p = entry(current, 3);
	assert_non_null(p);
	assert_ptr_equal(entry(newer_minor, 1), p);
	assert_int_equal(p->struct_size, sizeof(struct hearth_plugin));
	assert_int_equal(p->abi_version, HEARTH_ABI_VERSION(1, 1));
	assert_int_equal(p->flags, HEARTH_PLUGIN_RETRY_SAFE);
	assert_string_equal(p->name, "virtual");
	assert_non_null(p->version);
	assert_non_null(p->description);
	assert_true(p->init && p->start && p->stop && p->command);
	assert_true(p->restore && p->get && p->permit_join);
}

static void test_entry_options_and_symbols(void **unused)
{
	(void)unused;
	const struct hearth_option *o = plugin->options;
	assert_non_null(o);
	assert_string_equal(o[0].key, "devices");
	assert_string_equal(o[0].default_value,
			    "light:2, plug:1, motion:1, climate:1, contact:1, button:1");
	assert_true(strlen(o[0].help) > 10);
	assert_string_equal(o[1].key, "interval_ms");
	assert_string_equal(o[1].default_value, "5000");
	assert_true(strlen(o[1].help) > 10);
	assert_null(o[2].key);
	/* built with -fvisibility=hidden: only the entry is exported */
	assert_null(dlsym(so_handle, "virtual_init"));
	assert_null(dlsym(so_handle, "kind_find"));
	assert_null(dlsym(so_handle, "virt_report"));
}

static const struct {
	const char *id, *name, *model;
	const char *caps[MAX_CAPS];
} default_devices[] = {
	{"virtual:light-1", "virtual/light-1", "Virtual light",
	 {"state", "brightness", "color_temp", "transition"}},
	{"virtual:light-2", "virtual/light-2", "Virtual light",
	 {"state", "brightness", "color_temp", "transition"}},
	{"virtual:plug-1", "virtual/plug-1", "Virtual plug", {"state", "power", "energy", "voltage"}},
	{"virtual:motion-1", "virtual/motion-1", "Virtual motion sensor",
	 {"occupancy", "illuminance", "battery"}},
	{"virtual:climate-1", "virtual/climate-1", "Virtual climate sensor",
	 {"temperature", "humidity", "pressure", "battery"}},
	{"virtual:contact-1", "virtual/contact-1", "Virtual contact sensor", {"contact", "battery"}},
	{"virtual:button-1", "virtual/button-1", "Virtual button", {"action", "battery"}},
};

static unsigned expected_access(const char *cap)
{
	if (strcmp(cap, "transition") == 0)
		return HEARTH_ACCESS_SET;
	if (strcmp(cap, "action") == 0)
		return HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET;
	return HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET;
}

static void test_default_devices(void **unused)
{
	(void)unused;
	init_plugin();
	size_t n = sizeof(default_devices) / sizeof(default_devices[0]);
	assert_int_equal(fk.n_devs, n);
	for (size_t i = 0; i < n; i++) {
		const struct rec_device *d = &fk.devs[i];
		assert_string_equal(d->id, default_devices[i].id);
		assert_string_equal(d->name, default_devices[i].name);
		assert_string_equal(d->model, default_devices[i].model);
		assert_string_equal(d->vendor, "hearth");
		assert_true(d->has_description);
		size_t n_caps = 0;
		while (n_caps < MAX_CAPS && default_devices[i].caps[n_caps])
			n_caps++;
		assert_int_equal(d->n_caps, n_caps);
		for (size_t k = 0; k < n_caps; k++) {
			assert_string_equal(d->caps[k].name, default_devices[i].caps[k]);
			assert_int_equal(d->caps[k].access, expected_access(d->caps[k].name));
		}
	}
	/* shapes the MQTT API depends on */
	const struct rec_cap *state = fake_cap(&fk.devs[0], "state");
	assert_int_equal(state->type, HEARTH_CAP_BINARY);
	assert_string_equal(state->on.string, "ON");
	assert_string_equal(state->off.string, "OFF");
	const struct rec_cap *bri = fake_cap(&fk.devs[0], "brightness");
	assert_int_equal(bri->type, HEARTH_CAP_NUMERIC);
	assert_true(bri->min == 0 && bri->max == 254);
	const struct rec_cap *occ = fake_cap(&fk.devs[3], "occupancy");
	assert_int_equal(occ->on.type, HEARTH_VALUE_BOOL);
	assert_true(occ->on.boolean && !occ->off.boolean);
	const struct rec_cap *action = fake_cap(&fk.devs[6], "action");
	assert_int_equal(action->type, HEARTH_CAP_ENUM);
	assert_int_equal(action->n_values, 4);
	assert_string_equal(action->values[2], "hold");
	/* no reports before start */
	assert_int_equal(fk.n_reports, 0);
}

static void test_custom_devices(void **unused)
{
	(void)unused;
	set_config("devices", "light:3");
	init_plugin();
	assert_int_equal(fk.n_devs, 3);
	assert_string_equal(fk.devs[0].id, "virtual:light-1");
	assert_string_equal(fk.devs[2].id, "virtual:light-3");
	assert_string_equal(fk.devs[2].name, "virtual/light-3");
	plugin->stop(pstate);
	pstate = NULL;

	memset(&fk, 0, sizeof(fk));
	set_config("devices", "  button:2 ,light:0,\tclimate:1 ");
	init_plugin();
	assert_int_equal(fk.n_devs, 3);
	assert_string_equal(fk.devs[0].id, "virtual:button-1");
	assert_string_equal(fk.devs[1].id, "virtual:button-2");
	assert_string_equal(fk.devs[2].id, "virtual:climate-1");
}

static void test_bad_config(void **unused)
{
	(void)unused;
	static const struct {
		const char *key, *value, *named;
	} bad[] = {
		{"devices", "lamp:2", "lamp:2"},
		{"devices", "light:x", "light:x"},
		{"devices", "light:1001", "light:1001"},
		{"devices", "light:-1", "light:-1"},
		{"devices", "light", "light"},
		{"devices", "light:", "light:"},
		{"devices", "light:2 plug:1", "light:2 plug:1"},
		{"devices", "light:2, light:1", "light:1"},
		{"devices", "light:2,,plug:1", "''"},
		{"devices", "plug:1, climate:99999999999999999999", "climate:99999999999999999999"},
		{"interval_ms", "abc", "interval_ms"},
		{"interval_ms", "50", "interval_ms"},
		{"interval_ms", "-5000", "interval_ms"},
		{"interval_ms", "99999999999", "interval_ms"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&fk, 0, sizeof(fk));
		set_config(bad[i].key, bad[i].value);
		void *st = NULL;
		assert_int_equal(plugin->init(&fake_host, CTX, &st), -EINVAL);
		assert_null(st);
		assert_int_equal(fk.n_devs, 0);
		if (!strstr(fk.last_error, bad[i].named))
			fail_msg("'%s': error '%s' does not name '%s'", bad[i].value, fk.last_error,
				 bad[i].named);
	}
	char long_text[2048];
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	memset(&fk, 0, sizeof(fk));
	set_config("devices", long_text);
	void *st = NULL;
	assert_int_equal(plugin->init(&fake_host, CTX, &st), -EINVAL);
	assert_null(st);
}

static void test_host_too_small(void **unused)
{
	(void)unused;
	struct hearth_host small = fake_host;
	small.size = offsetof(struct hearth_host, now_ms);
	void *st = NULL;
	assert_int_equal(plugin->init(&small, CTX, &st), -EPROTO);
	assert_null(st);
	assert_int_equal(fk.n_devs, 0);
}

static void test_start_reports_everything(void **unused)
{
	(void)unused;
	start_plugin();
	assert_int_equal(fk.n_reports, 7);
	assert_non_null(armed_timer(true));
	assert_int_equal(armed_timer(true)->due_ms, 5000);
	assert_string_equal(fk.reports[0].id, "virtual:light-1");
	assert_int_equal(fk.reports[0].n, 3); /* transition is not state */
	assert_string_equal(fk.reports[6].id, "virtual:button-1");
	assert_int_equal(fk.reports[6].n, 1); /* battery; action is an event */
	assert_string_equal(fk.reports[6].attrs[0].name, "battery");
	assert_string_equal(last_value("virtual:light-1", "state")->string, "OFF");
	assert_bool("virtual:contact-1", "contact", true);
	assert_int_equal(fk.n_events, 0);
}

static void test_light_command(void **unused)
{
	(void)unused;
	start_plugin();
	forget_reports();
	const struct hearth_attr on[] = {
		{"state", HEARTH_STRING("ON")},
		{"brightness", HEARTH_NUMBER(100)},
	};
	assert_int_equal(command("virtual:light-1", 42, on, 2), 0);
	assert_int_equal(fk.n_done, 1);
	assert_int_equal(fk.done[0].id, 42);
	assert_int_equal(fk.done[0].status, 0);
	assert_string("virtual:light-1", "state", "ON");
	assert_number("virtual:light-1", "brightness", 100);
	assert_null(armed_timer(false)); /* from off without transition: at once */
	assert_int_equal(reports_for("virtual:light-2"), 0);

	/* off keeps the brightness; on restores it */
	const struct hearth_attr off[] = {{"state", HEARTH_STRING("OFF")}};
	assert_int_equal(command("virtual:light-1", 43, off, 1), 0);
	assert_string("virtual:light-1", "state", "OFF");
	assert_number("virtual:light-1", "brightness", 100);
	const struct hearth_attr on_again[] = {{"state", HEARTH_STRING("on")}};
	assert_int_equal(command("virtual:light-1", 44, on_again, 1), 0);
	assert_string("virtual:light-1", "state", "ON");
	assert_number("virtual:light-1", "brightness", 100);

	/* brightness alone switches a light on, 0 switches it off */
	const struct hearth_attr bri[] = {{"brightness", HEARTH_NUMBER(60)}};
	assert_int_equal(command("virtual:light-2", 45, bri, 1), 0);
	assert_string("virtual:light-2", "state", "ON");
	assert_number("virtual:light-2", "brightness", 60);
	const struct hearth_attr zero[] = {{"brightness", HEARTH_NUMBER(0)}};
	assert_int_equal(command("virtual:light-2", 46, zero, 1), 0);
	assert_string("virtual:light-2", "state", "OFF");
	assert_number("virtual:light-2", "brightness", 60);
	assert_int_equal(fk.n_done, 5);
}

static void test_light_transition(void **unused)
{
	(void)unused;
	start_plugin();
	const struct hearth_attr on[] = {{"state", HEARTH_STRING("ON")},
					 {"brightness", HEARTH_NUMBER(100)}};
	assert_int_equal(command("virtual:light-1", 1, on, 2), 0);
	forget_reports();

	const struct hearth_attr fade[] = {{"brightness", HEARTH_NUMBER(200)},
					   {"color_temp", HEARTH_NUMBER(250)},
					   {"transition", HEARTH_NUMBER(1)}};
	int64_t t0 = fk.now_ms;
	assert_int_equal(command("virtual:light-1", 2, fade, 3), 0);
	assert_int_equal(fk.n_done, 1);
	assert_int_equal(fk.done[0].status, 0);
	assert_number("virtual:light-1", "brightness", 100); /* the start of the fade */
	assert_null(last_value("virtual:light-1", "transition"));
	assert_non_null(armed_timer(false));

	size_t fired = run_fades();
	assert_true(fired >= 5 && fired <= 20);
	assert_true(fk.now_ms - t0 >= 1000);
	double prev_bri = 100, prev_ct = 370;
	size_t between = 0;
	for (size_t i = 1; i < fk.n_reports; i++) {
		const struct rec_report *r = &fk.reports[i];
		assert_string_equal(r->id, "virtual:light-1");
		double bri = r->attrs[1].number;
		double ct = r->attrs[2].number;
		assert_string_equal(r->attrs[1].name, "brightness");
		assert_true(bri >= prev_bri && bri <= 200);
		assert_true(ct <= prev_ct && ct >= 250);
		between += bri > 100 && bri < 200;
		prev_bri = bri;
		prev_ct = ct;
	}
	assert_true(between >= 5);
	assert_string("virtual:light-1", "state", "ON");
	assert_number("virtual:light-1", "brightness", 200);
	assert_number("virtual:light-1", "color_temp", 250);

	/* fading out goes down while on, then ends off with the brightness kept */
	forget_reports();
	const struct hearth_attr out[] = {{"state", HEARTH_STRING("OFF")},
					  {"transition", HEARTH_NUMBER(0.5)}};
	assert_int_equal(command("virtual:light-1", 3, out, 2), 0);
	assert_string("virtual:light-1", "state", "ON");
	run_fades();
	assert_true(fk.n_reports >= 4);
	assert_string_equal(fk.reports[1].attrs[0].string, "ON");
	assert_true(fk.reports[1].attrs[1].number < 200);
	assert_string("virtual:light-1", "state", "OFF");
	assert_number("virtual:light-1", "brightness", 200);

	/* a brightness change while on fades by default */
	assert_int_equal(command("virtual:light-1", 4, on, 2), 0);
	run_fades();
	forget_reports();
	const struct hearth_attr dim[] = {{"brightness", HEARTH_NUMBER(20)}};
	assert_int_equal(command("virtual:light-1", 5, dim, 1), 0);
	assert_non_null(armed_timer(false));
	assert_true(run_fades() >= 2);
	assert_number("virtual:light-1", "brightness", 20);
}

static void test_restore_then_start(void **unused)
{
	(void)unused;
	set_config("interval_ms", "60000");
	init_plugin();
	const struct hearth_attr light[] = {
		{"state", HEARTH_STRING("ON")},
		{"brightness", HEARTH_NUMBER(80)},
		{"color_temp", HEARTH_NUMBER(250)},
		{"linkquality", HEARTH_NUMBER(50)},
		{"brightness", HEARTH_STRING("not a number")},
	};
	const struct hearth_attr plug[] = {
		{"energy", HEARTH_NUMBER(12.5)},
		{"state", HEARTH_STRING("ON")},
		{"power", HEARTH_NUMBER(100)},
	};
	const struct hearth_attr climate[] = {{"temperature", HEARTH_NUMBER(30.5)}};
	const struct hearth_attr button[] = {{"action", HEARTH_STRING("single")}};
	plugin->restore(pstate, "virtual:light-1", light, 5);
	plugin->restore(pstate, "virtual:plug-1", plug, 3);
	plugin->restore(pstate, "virtual:climate-1", climate, 1);
	plugin->restore(pstate, "virtual:button-1", button, 1);
	plugin->restore(pstate, "virtual:light-99", light, 3); /* no longer configured */
	plugin->restore(pstate, "virtual:lamp-1", light, 3);
	plugin->restore(pstate, "zigbee:0x1", light, 3);
	assert_int_equal(fk.n_reports, 0);

	assert_int_equal(plugin->start(pstate), 0);
	assert_int_equal(fk.n_reports, 7);
	assert_string("virtual:light-1", "state", "ON");
	assert_number("virtual:light-1", "brightness", 80);
	assert_number("virtual:light-1", "color_temp", 250);
	assert_string("virtual:light-2", "state", "OFF");
	assert_number("virtual:plug-1", "energy", 12.5);
	assert_number("virtual:plug-1", "power", 100);
	assert_number("virtual:climate-1", "temperature", 30.5);
	assert_int_equal(fk.n_events, 0); /* a stored action is not replayed */

	/* the energy counter goes on from the stored value: ~100 W for 10 min */
	for (int i = 0; i < 10; i++)
		fire(armed_timer(true));
	double energy = last_value("virtual:plug-1", "energy")->number;
	assert_true(energy > 12.5 + 0.010 && energy < 12.5 + 0.025);
	double temp = last_value("virtual:climate-1", "temperature")->number;
	assert_true(temp > 28 && temp < 33);
}

static void test_sensor_bounds(void **unused)
{
	(void)unused;
	start_plugin();
	struct watch *temp = add_watch("virtual:climate-1", "temperature");
	struct watch *hum = add_watch("virtual:climate-1", "humidity");
	struct watch *pressure = add_watch("virtual:climate-1", "pressure");
	struct watch *occ = add_watch("virtual:motion-1", "occupancy");
	struct watch *contact = add_watch("virtual:contact-1", "contact");
	struct watch *light = add_watch("virtual:light-1", "state");
	for (int i = 0; i < 1000; i++)
		fire(armed_timer(true));
	/* every value of every report fits its capability (checked by the
	 * fake host); here the drift itself */
	assert_int_equal(temp->count, 1000);
	assert_true(temp->min >= -40 && temp->max <= 80);
	assert_true(temp->min > 10 && temp->max < 35);
	assert_true(temp->max > temp->min);
	assert_true(hum->min >= 0 && hum->max <= 100 && hum->max > hum->min);
	assert_true(pressure->min >= 300 && pressure->max <= 1100 && pressure->count == 1000);
	assert_true(occ->n_true > 0 && occ->n_false > occ->n_true);
	assert_true(contact->n_true > contact->n_false && contact->n_false > 0);
	/* the lights do not report on ticks; the button now and then acts */
	assert_int_equal(light->count, 0);
	assert_true(fk.n_events > 0);
	for (size_t i = 0; i < fk.n_events; i++) {
		assert_string_equal(fk.events[i].id, "virtual:button-1");
		assert_string_equal(fk.events[i].type, "action");
		assert_int_equal(fk.events[i].n, 1);
	}
}

static void test_plug_power(void **unused)
{
	(void)unused;
	start_plugin();
	const struct hearth_attr off[] = {{"state", HEARTH_STRING("OFF")}};
	assert_int_equal(command("virtual:plug-1", 1, off, 1), 0);
	assert_number("virtual:plug-1", "power", 0);
	fire(armed_timer(true));
	assert_number("virtual:plug-1", "power", 0);
	const struct hearth_attr on[] = {{"state", HEARTH_STRING("ON")}};
	assert_int_equal(command("virtual:plug-1", 2, on, 1), 0);
	for (int i = 0; i < 50; i++) {
		fire(armed_timer(true));
		double w = last_value("virtual:plug-1", "power")->number;
		assert_true(w >= 30 && w <= 75);
	}
}

static void test_set_sensor_values(void **unused)
{
	(void)unused;
	start_plugin();
	forget_reports();
	const struct hearth_attr temp[] = {{"temperature", HEARTH_NUMBER(21.5)}};
	assert_int_equal(command("virtual:climate-1", 7, temp, 1), 0);
	assert_number("virtual:climate-1", "temperature", 21.5);
	assert_int_equal(fk.done[0].id, 7);
	const struct hearth_attr occ[] = {{"occupancy", HEARTH_BOOL(true)}};
	assert_int_equal(command("virtual:motion-1", 8, occ, 1), 0);
	assert_bool("virtual:motion-1", "occupancy", true);
	const struct hearth_attr open[] = {{"contact", HEARTH_BOOL(false)}};
	assert_int_equal(command("virtual:contact-1", 9, open, 1), 0);
	assert_bool("virtual:contact-1", "contact", false);
	assert_int_equal(fk.n_done, 3);
	/* motion clears a few ticks later, as a real sensor does */
	int ticks = 0;
	while (last_value("virtual:motion-1", "occupancy")->boolean && ticks < 10) {
		fire(armed_timer(true));
		ticks++;
	}
	assert_true(ticks >= 2 && ticks <= 6);
}

static void test_button_action(void **unused)
{
	(void)unused;
	start_plugin();
	forget_reports();
	const struct hearth_attr press[] = {{"action", HEARTH_STRING("double")}};
	assert_int_equal(command("virtual:button-1", 11, press, 1), 0);
	assert_int_equal(fk.n_done, 1);
	assert_int_equal(fk.done[0].status, 0);
	assert_string("virtual:button-1", "action", "double");
	assert_int_equal(fk.n_events, 1);
	assert_string_equal(fk.events[0].id, "virtual:button-1");
	assert_string_equal(fk.events[0].type, "action");
	assert_int_equal(fk.events[0].n, 1);
	assert_string_equal(fk.events[0].attrs[0].name, "action");
	assert_string_equal(fk.events[0].attrs[0].string, "double");
	/* a get reports state, never replays the action */
	assert_int_equal(plugin->get(pstate, "virtual:button-1", NULL, 0), 0);
	assert_int_equal(fk.n_events, 1);
}

static void test_command_refused(void **unused)
{
	(void)unused;
	start_plugin();
	forget_reports();
	const struct hearth_attr unknown[] = {{"state", HEARTH_STRING("ON")},
					      {"hue", HEARTH_NUMBER(3)}};
	const struct hearth_attr bad_type[] = {{"state", HEARTH_NUMBER(5)}};
	const struct hearth_attr bad_enum[] = {{"action", HEARTH_STRING("triple")}};
	const struct hearth_attr on[] = {{"state", HEARTH_STRING("ON")}};
	assert_int_equal(command("virtual:light-1", 1, unknown, 2), -EINVAL);
	assert_int_equal(command("virtual:light-1", 2, bad_type, 1), -EINVAL);
	assert_int_equal(command("virtual:button-1", 3, bad_enum, 1), -EINVAL);
	assert_int_equal(command("virtual:light-3", 4, on, 1), -ENOENT);
	assert_int_equal(command("virtual:light-0", 5, on, 1), -ENOENT);
	assert_int_equal(command("virtual:lamp-1", 6, on, 1), -ENOENT);
	assert_int_equal(command("zigbee:0x01", 7, on, 1), -ENOENT);
	assert_int_equal(command("virtual:light-1x", 8, on, 1), -ENOENT);
	/* refused commands change nothing and are not completed */
	assert_int_equal(fk.n_done, 0);
	assert_int_equal(fk.n_reports, 0);
	assert_int_equal(fk.n_events, 0);
}

static void test_get(void **unused)
{
	(void)unused;
	start_plugin();
	forget_reports();
	assert_int_equal(plugin->get(pstate, "virtual:light-2", NULL, 0), 0);
	assert_int_equal(fk.n_reports, 1);
	assert_int_equal(fk.reports[0].n, 3);
	const char *const hum[] = {"humidity"};
	assert_int_equal(plugin->get(pstate, "virtual:climate-1", hum, 1), 0);
	assert_int_equal(fk.n_reports, 2);
	assert_int_equal(fk.reports[1].n, 1);
	assert_string_equal(fk.reports[1].attrs[0].name, "humidity");
	const char *const nope[] = {"colour"};
	const char *const action[] = {"action"};
	assert_int_equal(plugin->get(pstate, "virtual:climate-1", nope, 1), -EINVAL);
	assert_int_equal(plugin->get(pstate, "virtual:button-1", action, 1), -EINVAL);
	assert_int_equal(plugin->get(pstate, "virtual:climate-9", NULL, 0), -ENOENT);
	assert_int_equal(fk.n_reports, 2);
}

static void test_interval_off_and_permit_join(void **unused)
{
	(void)unused;
	set_config("interval_ms", "0");
	start_plugin();
	assert_int_equal(fk.timers_started, 0);
	assert_int_equal(fk.n_reports, 7);
	size_t logs = fk.n_logs;
	assert_int_equal(plugin->permit_join(pstate, 60), 0);
	assert_int_equal(fk.n_logs, logs + 1);
	assert_int_equal(fk.n_devs, 7);
}

static void test_stop_mid_fade(void **unused)
{
	(void)unused;
	start_plugin();
	const struct hearth_attr fade[] = {{"state", HEARTH_STRING("ON")},
					   {"transition", HEARTH_NUMBER(10)}};
	assert_int_equal(command("virtual:light-1", 1, fade, 2), 0);
	fire(armed_timer(false));
	assert_int_equal(timers_in_use(), 2);
	plugin->stop(pstate);
	pstate = NULL;
	assert_int_equal(timers_in_use(), 0);
}

/* Read a source file of the tree (run from its root, or HEARTH_SRCDIR). */
static char *read_source(const char *rel)
{
	const char *dir = getenv("HEARTH_SRCDIR");
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : ".", rel);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s (run from the source tree or set HEARTH_SRCDIR)", path);
	size_t cap = 1 << 20;
	char *text = malloc(cap);
	assert_non_null(text);
	size_t n = fread(text, 1, cap - 1, f);
	fclose(f);
	assert_true(n < cap - 1);
	text[n] = '\0';
	return text;
}

/* docs/plugins.md promises its C examples are copied from the plugin (or
 * from plugin.h): every ```c block must appear there verbatim. */
static void test_docs_examples_match_source(void **unused)
{
	(void)unused;
	char *doc = read_source("docs/plugins.md");
	char *src[] = {read_source("plugins/virtual/virtual.c"),
		       read_source("plugins/virtual/kinds.c"), read_source("include/hearth/plugin.h")};
	size_t blocks = 0;
	char *p = doc;
	while ((p = strstr(p, "\n```c\n"))) {
		char *start = p + 6;
		char *end = strstr(start, "\n```\n");
		assert_non_null(end);
		char saved = end[1];
		end[1] = '\0'; /* the block with its last newline */
		bool found = false;
		for (size_t i = 0; i < sizeof(src) / sizeof(src[0]) && !found; i++)
			found = strstr(src[i], start) != NULL;
		if (!found)
			fail_msg("docs/plugins.md example not found in the sources:\n%s", start);
		end[1] = saved;
		blocks++;
		p = end;
	}
	assert_true(blocks >= 10);
	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		free(src[i]);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_entry_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_options_and_symbols, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_custom_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_too_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_reports_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_light_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_light_transition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_then_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sensor_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plug_power, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_sensor_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_button_action, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interval_off_and_permit_join, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_mid_fade, setup, teardown),
		cmocka_unit_test(test_docs_examples_match_source),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
