/*
 * The zigbee plugin loaded with dlopen() as the hub loads it, driven through
 * a fake host table: configuration checks, include/exclude patterns, topic
 * routing by the longest friendly name, devices of an earlier run,
 * availability (bridge, device, timeout), commands and their refusals, and
 * one warning per model for an expose that cannot be mapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hearth/plugin.h>

#define MAX_DEVICES 32
#define MAX_PUBS 64

struct rec_device {
	char id[64];
	char name[128];
	size_t n_caps;
	bool present;
	bool available;
	int reports;
	char last_attr[64];
};

static struct fake {
	struct rec_device devices[MAX_DEVICES];
	size_t n_devices;
	int adds, removes;
	char pub_topic[MAX_PUBS][256];
	char pub_payload[MAX_PUBS][512];
	int n_pubs;
	hearth_mqtt_cb cb;
	void *cb_user;
	const char *config[8][2];
	hearth_timer_cb timer_cb;
	void *timer_user;
	uint64_t timer_period;
	int64_t now;
	int warnings;
	char last_log[1024];
	int done_status;
	char done_error[128];
	char last_event[64];
} fk;

static int ctx_anchor;
#define CTX ((hearth_plugin_ctx *)&ctx_anchor)

static struct rec_device *dev(const char *id)
{
	for (size_t i = 0; i < fk.n_devices; i++)
		if (strcmp(fk.devices[i].id, id) == 0)
			return &fk.devices[i];
	return NULL;
}

static int f_device_add(hearth_plugin_ctx *ctx, const struct hearth_device_info *info)
{
	(void)ctx;
	struct rec_device *d = dev(info->id);
	if (!d) {
		assert_true(fk.n_devices < MAX_DEVICES);
		d = &fk.devices[fk.n_devices++];
		snprintf(d->id, sizeof(d->id), "%s", info->id);
		snprintf(d->name, sizeof(d->name), "%s", info->name ? info->name : info->id);
	}
	d->n_caps = info->n_caps;
	d->present = true;
	d->available = true;
	fk.adds++;
	return 0;
}

static int f_device_remove(hearth_plugin_ctx *ctx, const char *id)
{
	(void)ctx;
	struct rec_device *d = dev(id);
	if (!d || !d->present)
		return -ENOENT;
	d->present = false;
	fk.removes++;
	return 0;
}

static int f_state_report(hearth_plugin_ctx *ctx, const char *id, const struct hearth_attr *attrs,
			  size_t n)
{
	(void)ctx;
	struct rec_device *d = dev(id);
	if (!d || !d->present)
		return -ENOENT;
	d->reports++;
	d->available = true;
	if (n)
		snprintf(d->last_attr, sizeof(d->last_attr), "%s", attrs[0].name);
	return 0;
}

static int f_event_report(hearth_plugin_ctx *ctx, const char *id, const char *type,
			  const struct hearth_attr *attrs, size_t n)
{
	(void)ctx, (void)id, (void)attrs, (void)n;
	snprintf(fk.last_event, sizeof(fk.last_event), "%s", type);
	return 0;
}

static int f_availability_set(hearth_plugin_ctx *ctx, const char *id, bool online)
{
	(void)ctx;
	struct rec_device *d = dev(id);
	if (!d)
		return -ENOENT;
	d->available = online;
	return 0;
}

static void f_command_done(hearth_plugin_ctx *ctx, uint64_t id, int status, const char *error)
{
	(void)ctx, (void)id;
	fk.done_status = status;
	snprintf(fk.done_error, sizeof(fk.done_error), "%s", error ? error : "");
}

static int f_subscribe(hearth_plugin_ctx *ctx, const char *filter, int qos, hearth_mqtt_cb cb,
		       void *user)
{
	(void)ctx, (void)qos;
	assert_string_equal(filter, "z2m/#");
	fk.cb = cb;
	fk.cb_user = user;
	return 0;
}

static int f_unsubscribe(hearth_plugin_ctx *ctx, const char *filter)
{
	(void)ctx, (void)filter;
	return 0;
}

static int f_publish(hearth_plugin_ctx *ctx, const char *topic, const void *payload, size_t len,
		     int qos, bool retain)
{
	(void)ctx, (void)qos, (void)retain;
	assert_true(fk.n_pubs < MAX_PUBS);
	snprintf(fk.pub_topic[fk.n_pubs], sizeof(fk.pub_topic[0]), "%s", topic);
	snprintf(fk.pub_payload[fk.n_pubs], sizeof(fk.pub_payload[0]), "%.*s", (int)len,
		 (const char *)payload);
	fk.n_pubs++;
	return 0;
}

static const char *f_config_get(hearth_plugin_ctx *ctx, const char *key)
{
	(void)ctx;
	for (int i = 0; i < 8 && fk.config[i][0]; i++)
		if (strcmp(fk.config[i][0], key) == 0)
			return fk.config[i][1];
	return NULL;
}

static void f_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void f_log(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
{
	(void)ctx;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fk.last_log, sizeof(fk.last_log), fmt, ap);
	va_end(ap);
	fk.warnings += level == HEARTH_LOG_WARNING;
}

static int f_timer_start(hearth_plugin_ctx *ctx, uint64_t timeout_ms, uint64_t repeat_ms,
			 hearth_timer_cb cb, void *user, hearth_timer **out)
{
	(void)ctx, (void)timeout_ms;
	fk.timer_cb = cb;
	fk.timer_user = user;
	fk.timer_period = repeat_ms;
	*out = (hearth_timer *)&fk.timer_cb;
	return 0;
}

static void f_timer_stop(hearth_plugin_ctx *ctx, hearth_timer *t)
{
	(void)ctx;
	if (t)
		fk.timer_cb = NULL;
}

static int64_t f_now_ms(hearth_plugin_ctx *ctx)
{
	(void)ctx;
	return fk.now;
}

static const struct hearth_host host = {
	.size = sizeof(struct hearth_host),
	.abi_minor = HEARTH_ABI_MINOR,
	.device_add = f_device_add,
	.device_remove = f_device_remove,
	.state_report = f_state_report,
	.event_report = f_event_report,
	.availability_set = f_availability_set,
	.command_done = f_command_done,
	.mqtt_subscribe = f_subscribe,
	.mqtt_unsubscribe = f_unsubscribe,
	.mqtt_publish = f_publish,
	.config_get = f_config_get,
	.log = f_log,
	.timer_start = f_timer_start,
	.timer_stop = f_timer_stop,
	.now_ms = f_now_ms,
};

static void *so;
static const struct hearth_plugin *plugin;

static int load(void **state)
{
	(void)state;
	const char *b = getenv("B");
	char path[512];
	snprintf(path, sizeof(path), "%s/plugins/zigbee.so", b ? b : "build");
	so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!so) {
		fprintf(stderr, "%s\n", dlerror());
		return -1;
	}
	hearth_plugin_entry_fn entry;
	*(void **)&entry = dlsym(so, HEARTH_PLUGIN_ENTRY_SYMBOL);
	const uint32_t versions[] = {HEARTH_ABI_VERSION(2, 0), HEARTH_ABI_VERSION(1, 0)};
	plugin = entry ? entry(versions, 2) : NULL;
	return plugin ? 0 : -1;
}

static int unload(void **state)
{
	(void)state;
	dlclose(so);
	return 0;
}

/* A fresh fake and a started plugin with config key/value pairs. */
static void *start(const char *const *config, size_t n)
{
	memset(&fk, 0, sizeof(fk));
	fk.config[0][0] = "base_topic";
	fk.config[0][1] = "z2m";
	for (size_t i = 0; i < n; i++) {
		fk.config[i + 1][0] = config[2 * i];
		fk.config[i + 1][1] = config[2 * i + 1];
	}
	fk.now = 1000000;
	void *st = NULL;
	assert_int_equal(plugin->init(&host, CTX, &st), 0);
	assert_int_equal(plugin->start(st), 0);
	assert_non_null(fk.cb);
	return st;
}

static void msg(const char *topic, const char *payload)
{
	fk.cb(fk.cb_user, topic, payload, strlen(payload), false);
}

#define ENTRY(ieee, name, model, exposes)                                                          \
	"{\"ieee_address\":\"" ieee "\",\"friendly_name\":\"" name "\",\"type\":\"Router\","      \
	"\"interview_completed\":true,\"supported\":true,\"definition\":{\"vendor\":\"V\","       \
	"\"model\":\"" model "\",\"exposes\":" exposes "}}"

#define SWITCH                                                                                     \
	"[{\"type\":\"switch\",\"features\":[{\"type\":\"binary\",\"property\":\"state\","        \
	"\"access\":7,\"value_on\":\"ON\",\"value_off\":\"OFF\"}]},{\"type\":\"enum\","           \
	"\"property\":\"mode\",\"access\":7,\"values\":[1,2]}]"

static void test_config_refused(void **state)
{
	(void)state;
	static const char *const bad[][2] = {
		{"base_topic", "z/#"},
		{"base_topic", "/z"},
		{"availability_timeout_s", "-1"},
		{"availability_timeout_s", "ten"},
		{"availability_timeout_s", "90000"},
		{"include", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,1,2,3,4,5,6,7"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&fk, 0, sizeof(fk));
		fk.config[0][0] = bad[i][0];
		fk.config[0][1] = bad[i][1];
		void *st = NULL;
		assert_int_equal(plugin->init(&host, CTX, &st), -EINVAL);
		assert_non_null(strstr(fk.last_log, bad[i][0]));
		assert_int_equal(fk.n_devices, 0);
	}
}

static void test_include_exclude_and_routing(void **state)
{
	(void)state;
	static const char *const cfg[] = {"include", "kitchen*, a*", "exclude", "*leak"};
	void *st = start(cfg, 2);
	/* the bridge device is there from init, unavailable until zigbee2mqtt speaks */
	assert_non_null(dev("zigbee:bridge"));
	assert_string_equal(dev("zigbee:bridge")->name, "z2m/bridge");
	assert_false(dev("zigbee:bridge")->available);
	msg("z2m/bridge/state", "{\"state\":\"online\"}");
	assert_true(dev("zigbee:bridge")->available);
	msg("z2m/bridge/devices",
	    "[" ENTRY("0x0000000000000001", "kitchen/light", "S1", SWITCH) "," ENTRY(
		    "0x0000000000000002", "kitchen/leak", "S1", SWITCH) "," ENTRY("0x0000000000000003",
										   "hall/x", "S1", SWITCH)
		    "," ENTRY("0x00000000000000AA", "a", "S1", SWITCH) "," ENTRY(
			    "0x00000000000000AB", "a/b", "S1", SWITCH) "]");
	assert_non_null(dev("zigbee:0x0000000000000001"));
	assert_null(dev("zigbee:0x0000000000000002")); /* excluded */
	assert_null(dev("zigbee:0x0000000000000003")); /* not included */
	assert_non_null(dev("zigbee:0x00000000000000aa")); /* ids in lower case */
	assert_int_equal(dev("zigbee:0x0000000000000001")->n_caps, 2);
	/* the longest friendly name wins */
	msg("z2m/a/b", "{\"state\":\"ON\"}");
	assert_int_equal(dev("zigbee:0x00000000000000ab")->reports, 1);
	assert_int_equal(dev("zigbee:0x00000000000000aa")->reports, 0);
	msg("z2m/a", "{\"linkquality\":9}");
	assert_int_equal(dev("zigbee:0x00000000000000aa")->reports, 1);
	/* commands and unknown suffixes are not state */
	msg("z2m/a/b/set", "{\"state\":\"OFF\"}");
	msg("z2m/a/c", "{\"state\":\"OFF\"}");
	msg("z2m/a/b/get", "{\"state\":\"\"}");
	msg("z2m/nobody", "{\"state\":\"OFF\"}");
	msg("z2m/a/b", "not json");
	assert_int_equal(dev("zigbee:0x00000000000000ab")->reports, 1);
	assert_int_equal(dev("zigbee:0x00000000000000aa")->reports, 1);
	/* per-device availability */
	msg("z2m/a/b/availability", "offline");
	assert_false(dev("zigbee:0x00000000000000ab")->available);
	msg("z2m/a/b/availability", "{\"state\":\"online\"}");
	assert_true(dev("zigbee:0x00000000000000ab")->available);
	/* an unchanged republish adds nothing again */
	int adds = fk.adds;
	msg("z2m/bridge/devices",
	    "[" ENTRY("0x0000000000000001", "kitchen/light", "S1", SWITCH) "," ENTRY(
		    "0x00000000000000AA", "a", "S1", SWITCH) "," ENTRY("0x00000000000000AB", "a/b",
								       "S1", SWITCH) "]");
	assert_int_equal(fk.adds, adds);
	plugin->stop(st);
}

static void test_commands(void **state)
{
	(void)state;
	void *st = start(NULL, 0);
	msg("z2m/bridge/state", "online");
	msg("z2m/bridge/devices", "[" ENTRY("0x0000000000000001", "x/y", "S1", SWITCH) "]");
	struct hearth_attr on[] = {{"state", HEARTH_STRING("ON")}};
	struct hearth_command cmd = {7, "zigbee:0x0000000000000001", on, 1};
	assert_int_equal(plugin->command(st, &cmd), 0);
	assert_string_equal(fk.pub_topic[fk.n_pubs - 1], "z2m/x/y/set");
	assert_string_equal(fk.pub_payload[fk.n_pubs - 1], "{\"state\":\"ON\"}");
	assert_int_equal(fk.done_status, 0);
	/* a numeric enum takes its listed numbers only */
	struct hearth_attr three[] = {{"mode", HEARTH_NUMBER(3)}};
	cmd.attrs = three;
	assert_int_equal(plugin->command(st, &cmd), -EINVAL);
	struct hearth_attr two[] = {{"mode", HEARTH_NUMBER(2)}};
	cmd.attrs = two;
	assert_int_equal(plugin->command(st, &cmd), 0);
	assert_string_equal(fk.pub_payload[fk.n_pubs - 1], "{\"mode\":2}");
	/* unknown device, unknown attribute */
	cmd.device_id = "zigbee:0x00000000000000ff";
	assert_int_equal(plugin->command(st, &cmd), -ENOENT);
	cmd.device_id = "zigbee:0x0000000000000001";
	struct hearth_attr nope[] = {{"nope", HEARTH_NUMBER(1)}};
	cmd.attrs = nope;
	assert_int_equal(plugin->command(st, &cmd), -EINVAL);
	/* /get: the gettable attributes asked for */
	const char *const want[] = {"state"};
	assert_int_equal(plugin->get(st, "zigbee:0x0000000000000001", want, 1), 0);
	assert_string_equal(fk.pub_topic[fk.n_pubs - 1], "z2m/x/y/get");
	assert_string_equal(fk.pub_payload[fk.n_pubs - 1], "{\"state\":\"\"}");
	/* a rename in zigbee2mqtt moves the topic, not the hearth name */
	msg("z2m/bridge/devices", "[" ENTRY("0x0000000000000001", "x/z", "S1", SWITCH) "]");
	assert_string_equal(dev("zigbee:0x0000000000000001")->name, "x/y");
	cmd.attrs = on;
	assert_int_equal(plugin->command(st, &cmd), 0);
	assert_string_equal(fk.pub_topic[fk.n_pubs - 1], "z2m/x/z/set");
	/* zigbee2mqtt offline: everything unavailable, commands answered with why */
	msg("z2m/bridge/state", "{\"state\":\"offline\"}");
	assert_false(dev("zigbee:0x0000000000000001")->available);
	assert_false(dev("zigbee:bridge")->available);
	int pubs = fk.n_pubs;
	assert_int_equal(plugin->command(st, &cmd), 0);
	assert_int_equal(fk.done_status, -EHOSTDOWN);
	assert_string_equal(fk.done_error, "zigbee2mqtt is offline");
	assert_int_equal(fk.n_pubs, pubs);
	/* retained leftovers while offline are not reports */
	int reports = dev("zigbee:0x0000000000000001")->reports;
	msg("z2m/x/z", "{\"state\":\"ON\"}");
	assert_int_equal(dev("zigbee:0x0000000000000001")->reports, reports);
	msg("z2m/bridge/state", "{\"state\":\"online\"}");
	assert_true(dev("zigbee:0x0000000000000001")->available);
	/* permit_join, in the 2.x form */
	assert_int_equal(plugin->permit_join(st, 300), 0);
	assert_string_equal(fk.pub_topic[fk.n_pubs - 1], "z2m/bridge/request/permit_join");
	assert_string_equal(fk.pub_payload[fk.n_pubs - 1], "{\"time\":254}");
	msg("z2m/bridge/response/permit_join", "{\"status\":\"ok\",\"data\":{\"time\":254}}");
	assert_string_equal(fk.last_event, "permit_join");
	/* a leave removes the device */
	msg("z2m/bridge/event",
	    "{\"type\":\"device_leave\",\"data\":{\"ieee_address\":\"0x0000000000000001\"}}");
	assert_false(dev("zigbee:0x0000000000000001")->present);
	plugin->stop(st);
}

static void test_earlier_run_and_timeout(void **state)
{
	(void)state;
	static const char *const cfg[] = {"availability_timeout_s", "10"};
	memset(&fk, 0, sizeof(fk));
	void *st = NULL;
	fk.config[0][0] = "base_topic";
	fk.config[0][1] = "z2m";
	fk.config[1][0] = cfg[0];
	fk.config[1][1] = cfg[1];
	fk.now = 1000;
	assert_int_equal(plugin->init(&host, CTX, &st), 0);
	/* two devices of an earlier run; zigbee2mqtt keeps one of them */
	plugin->restore(st, "zigbee:0x0000000000000001", NULL, 0);
	plugin->restore(st, "zigbee:0x0000000000000009", NULL, 0);
	plugin->restore(st, "virtual:light-1", NULL, 0);
	assert_int_equal(plugin->start(st), 0);
	assert_non_null(fk.timer_cb);
	assert_true(fk.timer_period >= 250 && fk.timer_period <= 10000);
	msg("z2m/bridge/state", "online");
	msg("z2m/bridge/devices", "[" ENTRY("0x0000000000000001", "kept", "S1", SWITCH) "]");
	assert_true(dev("zigbee:0x0000000000000001")->present);
	assert_non_null(dev("zigbee:0x0000000000000009"));
	assert_false(dev("zigbee:0x0000000000000009")->present); /* taken over, removed */
	assert_null(dev("virtual:light-1"));
	assert_int_equal(fk.removes, 1);
	/* silent for longer than the timeout: unavailable until it speaks */
	fk.now += 5000;
	fk.timer_cb(fk.timer_user);
	assert_true(dev("zigbee:0x0000000000000001")->available);
	fk.now += 6000;
	fk.timer_cb(fk.timer_user);
	assert_false(dev("zigbee:0x0000000000000001")->available);
	msg("z2m/kept", "{\"state\":\"OFF\"}");
	assert_true(dev("zigbee:0x0000000000000001")->available);
	plugin->stop(st);
	assert_null(fk.timer_cb);
}

static void test_unmapped_warned_once_per_model(void **state)
{
	(void)state;
	void *st = start(NULL, 0);
	msg("z2m/bridge/state", "online");
	const char *devices =
		"[" ENTRY("0x0000000000000001", "one", "ODD-1", "[{\"type\":\"gizmo\",\"property\":\"g\"},"
								"{\"type\":\"text\",\"property\":\"t\"}]")
		"," ENTRY("0x0000000000000002", "two", "ODD-1", "[{\"type\":\"gizmo\",\"property\":\"g\"},"
								"{\"type\":\"text\",\"property\":\"t\"}]") "]";
	msg("z2m/bridge/devices", devices);
	assert_int_equal(fk.warnings, 1);
	assert_int_equal(dev("zigbee:0x0000000000000002")->n_caps, 1);
	/* a malformed bridge/devices changes nothing */
	msg("z2m/bridge/devices", "{\"not\":\"an array\"}");
	assert_int_equal(fk.warnings, 2);
	assert_true(dev("zigbee:0x0000000000000001")->present);
	plugin->stop(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_refused),
		cmocka_unit_test(test_include_exclude_and_routing),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_earlier_run_and_timeout),
		cmocka_unit_test(test_unmapped_warned_once_per_model),
	};
	return cmocka_run_group_tests(tests, load, unload);
}
