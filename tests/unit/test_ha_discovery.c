/*
 * Home Assistant discovery: the exact JSON of every component hearth
 * publishes, built from devices in a whole embedded hub (no broker: MQTT
 * points at a loopback port nobody listens on), checked field by field
 * against what HA's MQTT integration documents for each platform: every
 * key known to the platform, the required ones present, and the values a
 * hearth device's capabilities call for.
 *
 * Expected configs are written with ' for " to keep them readable; the
 * parts every entity shares (device, availability, origin) are checked once
 * per config and then left out of the comparison.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "ha_discovery.h"
#include "hub.h"
#include "log.h"
#include "registry.h"

#define STOP_MAX_MS 3000
#define RW (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET)
#define RO (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_GET)
#define RANGE (HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX)
#define VSTR(s) {.type = HEARTH_VALUE_STRING, .u.string = (s)}
#define VBOOL(b) {.type = HEARTH_VALUE_BOOL, .u.boolean = (b)}
#define N(a) (sizeof(a) / sizeof((a)[0]))

struct t {
	char root[64];
	char db[128];
	uv_loop_t loop;
	struct hearth_hub *hub;
};

/* ---- an embedded hub ----------------------------------------------------------------- */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int port = -1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(s);
	return port;
}

static int replace(char **field, const char *text)
{
	char *copy = strdup(text);
	if (!copy)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/hearth-hadisc-XXXXXX");
	if (!mkdtemp(t->root) || uv_loop_init(&t->loop) != 0) {
		free(t);
		return -1;
	}
	snprintf(t->db, sizeof(t->db), "%s/hearth.db", t->root);
	struct hearth_config *c = config_defaults();
	if (!c || replace(&c->store.path, t->db) || replace(&c->plugins.dir, t->root))
		return -1;
	c->mqtt.port = free_port();
	log_set_level(HEARTH_LOG_ERROR);
	if (hub_new(&t->loop, c, &t->hub) || hub_start(t->hub, NULL, NULL))
		return -1;
	*state = t;
	return 0;
}

static void set_flag(void *user)
{
	*(bool *)user = true;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The hub goes and the loop must close with nothing left on it. */
static int teardown(void **state)
{
	struct t *t = *state;
	bool done = false;
	hub_stop(t->hub, set_flag, &done);
	for (uint64_t end = uv_hrtime() + STOP_MAX_MS * 1000000ull; !done && uv_hrtime() < end;) {
		uv_run(&t->loop, UV_RUN_NOWAIT);
		sleep_ms(1);
	}
	hub_free(t->hub);
	int rc = uv_loop_close(&t->loop);
	nftw(t->root, remove_one, 8, FTW_DEPTH | FTW_PHYS);
	free(t);
	if (!done || rc != 0) {
		print_error("hub did not stop cleanly (stopped %d, loop close %d)\n", done, rc);
		return -1;
	}
	return 0;
}

/* ---- devices and their configs ------------------------------------------------------- */

static struct device *add(struct t *t, const char *id, const char *name, const char *vendor,
			  const char *model, const struct hearth_capability *caps, size_t n)
{
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = id,
		.name = name,
		.vendor = vendor,
		.model = model,
		.caps = caps,
		.n_caps = n,
	};
	assert_int_equal(hub_device_add(t->hub, "test", t, &info), 0);
	struct device *dev = registry_by_id(t->hub->registry, id);
	assert_non_null(dev);
	return dev;
}

static cJSON *configs_of(struct t *t, const struct device *dev)
{
	assert_non_null(t->hub->ha);
	cJSON *c = ha_discovery_configs(t->hub->ha, dev);
	assert_non_null(c);
	return c;
}

/* JSON written with ' for ". */
static cJSON *parse_q(const char *text)
{
	char *s = strdup(text);
	assert_non_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	cJSON *j = cJSON_Parse(s);
	if (!j)
		fail_msg("bad expected JSON: %s", s);
	free(s);
	return j;
}

static void expect_equal(const cJSON *want, const cJSON *got, const char *what)
{
	if (cJSON_Compare(want, got, true))
		return;
	char *w = cJSON_Print(want), *g = cJSON_Print(got);
	print_error("%s\nwant: %s\ngot:  %s\n", what, w, g);
	free(w);
	free(g);
	fail();
}

/* Options HA's MQTT platforms document, per platform (common ones apart). */
static const char *const common_keys[] = {
	"name", "unique_id", "default_entity_id", "device", "availability", "availability_mode",
	"origin", "entity_category", "enabled_by_default", "icon", "qos", NULL};

static const struct platform {
	const char *component;
	const char *required[4];
	const char *keys[40];
} platforms[] = {
	{"light",
	 {"command_topic", "schema", NULL},
	 {"schema", "command_topic", "state_topic", "brightness", "brightness_scale",
	  "supported_color_modes", "min_mireds", "max_mireds", "min_kelvin", "max_kelvin",
	  "color_temp_kelvin", "effect", "effect_list", "flash", "flash_time_long",
	  "flash_time_short", "transition", "optimistic", "retain", "white_scale", NULL}},
	{"switch",
	 {NULL},
	 {"command_topic", "state_topic", "value_template", "payload_on", "payload_off", "state_on",
	  "state_off", "device_class", "optimistic", "retain", NULL}},
	{"binary_sensor",
	 {"state_topic", NULL},
	 {"state_topic", "value_template", "payload_on", "payload_off", "device_class",
	  "expire_after", "force_update", "off_delay", NULL}},
	{"sensor",
	 {"state_topic", NULL},
	 {"state_topic", "value_template", "unit_of_measurement", "device_class", "state_class",
	  "expire_after", "force_update", "options", "suggested_display_precision", NULL}},
	{"number",
	 {"command_topic", NULL},
	 {"command_topic", "command_template", "state_topic", "value_template", "min", "max", "step",
	  "mode", "unit_of_measurement", "device_class", "optimistic", "retain", NULL}},
	{"select",
	 {"command_topic", "options", NULL},
	 {"command_topic", "command_template", "state_topic", "value_template", "options",
	  "optimistic", "retain", NULL}},
	{"text",
	 {"command_topic", NULL},
	 {"command_topic", "command_template", "state_topic", "value_template", "min", "max", "mode",
	  "pattern", "retain", NULL}},
	{"event",
	 {"state_topic", "event_types", NULL},
	 {"state_topic", "value_template", "event_types", "device_class", NULL}},
	{"lock",
	 {"command_topic", NULL},
	 {"command_topic", "command_template", "state_topic", "value_template", "payload_lock",
	  "payload_unlock", "payload_open", "state_locked", "state_unlocked", "state_locking",
	  "state_unlocking", "state_jammed", "optimistic", "retain", NULL}},
	{"cover",
	 {NULL},
	 {"command_topic", "state_topic", "value_template", "payload_open", "payload_close",
	  "payload_stop", "state_open", "state_closed", "state_opening", "state_closing",
	  "state_stopped", "position_topic", "position_template", "set_position_topic",
	  "set_position_template", "position_open", "position_closed", "device_class", "optimistic",
	  "retain", NULL}},
	{"climate",
	 {NULL},
	 {"temperature_command_topic", "temperature_command_template", "temperature_state_topic",
	  "temperature_state_template", "current_temperature_topic",
	  "current_temperature_template", "min_temp", "max_temp", "temp_step", "temperature_unit",
	  "precision", "modes", "mode_command_topic", "mode_command_template", "mode_state_topic",
	  "mode_state_template", "action_topic", "action_template", "optimistic", "retain", NULL}},
	{"fan",
	 {"command_topic", NULL},
	 {"command_topic", "command_template", "state_topic", "state_value_template", "payload_on",
	  "payload_off", "preset_mode_state_topic", "preset_mode_value_template",
	  "preset_mode_command_topic", "preset_mode_command_template", "preset_modes",
	  "optimistic", "retain", NULL}},
};

static bool listed(const char *const *list, const char *key)
{
	for (; *list; list++)
		if (strcmp(*list, key) == 0)
			return true;
	return false;
}

static const struct platform *platform_of(const char *component)
{
	for (size_t i = 0; i < N(platforms); i++)
		if (strcmp(platforms[i].component, component) == 0)
			return &platforms[i];
	fail_msg("no HA platform '%s'", component);
	return NULL;
}

/* Every key is one the platform documents; every required one is there. */
static void check_schema(const char *component, const cJSON *cfg)
{
	const struct platform *p = platform_of(component);
	const cJSON *item;
	cJSON_ArrayForEach(item, cfg)
	{
		if (!listed(common_keys, item->string) && !listed(p->keys, item->string))
			fail_msg("%s config has '%s', which HA's %s platform does not know", component,
				 item->string, component);
	}
	for (size_t i = 0; p->required[i]; i++)
		if (!cJSON_GetObjectItemCaseSensitive(cfg, p->required[i]))
			fail_msg("%s config lacks required '%s'", component, p->required[i]);
}

/* The shared parts of every entity of dev, as they must be. */
static void check_common(const struct device *dev, const char *safe, const cJSON *cfg)
{
	char want[2048];
	snprintf(want, sizeof(want),
		 "[{'topic':'hearth/bridge/state','value_template':'{{ value_json.state }}'},"
		 "{'topic':'hearth/%s/availability','value_template':'{{ value_json.state }}'}]",
		 dev->name);
	cJSON *a = parse_q(want);
	expect_equal(a, cJSON_GetObjectItemCaseSensitive(cfg, "availability"), "availability");
	cJSON_Delete(a);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(cfg, "availability_mode")->valuestring,
			    "all");
	cJSON *dv = cJSON_CreateObject();
	cJSON *ids = cJSON_AddArrayToObject(dv, "identifiers");
	snprintf(want, sizeof(want), "hearth_%s", safe);
	cJSON_AddItemToArray(ids, cJSON_CreateString(want));
	cJSON_AddStringToObject(dv, "name", dev->name);
	if (dev->vendor)
		cJSON_AddStringToObject(dv, "manufacturer", dev->vendor);
	if (dev->model)
		cJSON_AddStringToObject(dv, "model", dev->model);
	if (dev->room)
		cJSON_AddStringToObject(dv, "suggested_area", dev->room);
	cJSON_AddStringToObject(dv, "via_device", "hearth_bridge");
	expect_equal(dv, cJSON_GetObjectItemCaseSensitive(cfg, "device"), "device block");
	cJSON_Delete(dv);
	cJSON *o = parse_q("{'name':'hearth','sw_version':'" HEARTH_VERSION "'}");
	expect_equal(o, cJSON_GetObjectItemCaseSensitive(cfg, "origin"), "origin");
	cJSON_Delete(o);
}

/*
 * The config under <prefix>/<component>/hearth_<safe>/<object>/config must
 * be exactly want (' for ") plus the shared parts.
 */
static void expect_config(const cJSON *configs, const struct device *dev, const char *safe,
			  const char *component, const char *object, const char *want)
{
	char topic[512];
	snprintf(topic, sizeof(topic), "homeassistant/%s/hearth_%s/%s/config", component, safe,
		 object);
	const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(configs, topic);
	if (!cfg) {
		char *all = cJSON_Print(configs);
		fail_msg("no config %s in %s", topic, all);
	}
	check_schema(component, cfg);
	check_common(dev, safe, cfg);
	cJSON *rest = cJSON_Duplicate(cfg, 1);
	static const char *const shared[] = {"device", "availability", "availability_mode",
					     "origin"};
	for (size_t i = 0; i < N(shared); i++)
		cJSON_DeleteItemFromObjectCaseSensitive(rest, shared[i]);
	cJSON *w = parse_q(want);
	expect_equal(w, rest, topic);
	cJSON_Delete(w);
	cJSON_Delete(rest);
}

static void expect_count(const cJSON *configs, int n)
{
	if (cJSON_GetArraySize(configs) != n) {
		char *all = cJSON_Print(configs);
		fail_msg("%d configs, want %d: %s", cJSON_GetArraySize(configs), n, all);
	}
}

/* ---- lights ----------------------------------------------------------------------------- */

static const struct hearth_capability xy_hs[] = {
	{.name = "x", .type = HEARTH_CAP_NUMERIC, .access = RW},
	{.name = "y", .type = HEARTH_CAP_NUMERIC, .access = RW},
	{.name = "h", .type = HEARTH_CAP_NUMERIC, .access = RW},
	{.name = "s", .type = HEARTH_CAP_NUMERIC, .access = RW},
};

static const char *const effects[] = {"blink", "breathe", "okay"};

static const struct hearth_capability colour_light[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 254},
	{.name = "color_temp", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "mired",
	 .flags = RANGE, .min = 153, .max = 500},
	{.name = "color", .type = HEARTH_CAP_COMPOSITE, .access = RW, .features = xy_hs,
	 .n_features = N(xy_hs)},
	{.name = "transition", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_SET,
	 .unit = "s", .flags = RANGE, .min = 0, .max = 3600},
	{.name = "effect", .type = HEARTH_CAP_ENUM, .access = HEARTH_ACCESS_SET, .values = effects,
	 .n_values = N(effects)},
	{.name = "linkquality", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "lqi",
	 .flags = RANGE, .min = 0, .max = 255},
};

static void light_json_schema(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "zigbee:0x0017880104e45517", "hall/ceiling", "Philips",
				 "9290012573A", colour_light, N(colour_light));
	cJSON *c = configs_of(t, dev);
	const char *safe = "zigbee_0x0017880104e45517";
	expect_config(c, dev, safe, "light", "light",
		      "{'name':null,'unique_id':'hearth_zigbee_0x0017880104e45517_light',"
		      "'default_entity_id':'light.hall_ceiling','schema':'json',"
		      "'command_topic':'hearth/hall/ceiling/set','state_topic':'hearth/hall/ceiling',"
		      "'brightness':true,'brightness_scale':254,"
		      "'supported_color_modes':['color_temp','hs','xy'],"
		      "'min_mireds':153,'max_mireds':500,'flash':false,"
		      "'effect':true,'effect_list':['blink','breathe','okay']}");
	expect_config(c, dev, safe, "sensor", "linkquality",
		      "{'name':'Linkquality','unique_id':'hearth_zigbee_0x0017880104e45517_"
		      "linkquality','default_entity_id':'sensor.hall_ceiling_linkquality',"
		      "'state_topic':'hearth/hall/ceiling',"
		      "'value_template':'{{ value_json.linkquality }}','unit_of_measurement':'lqi',"
		      "'state_class':'measurement','entity_category':'diagnostic',"
		      "'enabled_by_default':false,'icon':'mdi:signal'}");
	/* state, brightness, colour, transition and effect all belong to the light */
	expect_count(c, 2);
	cJSON_Delete(c);
}

static const struct hearth_capability dimmer[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 100},
	{.name = "color_temp", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "K",
	 .flags = RANGE, .min = 2700, .max = 6500},
};

static const struct hearth_capability hue_sat[] = {
	{.name = "hue", .type = HEARTH_CAP_NUMERIC, .access = RW},
	{.name = "saturation", .type = HEARTH_CAP_NUMERIC, .access = RW},
};

static const struct hearth_capability hs_light[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "color", .type = HEARTH_CAP_COMPOSITE, .access = RW, .features = hue_sat,
	 .n_features = N(hue_sat)},
};

/* zigbee2mqtt's color_hs (hue, saturation) is offered as "hs": the hub takes
 * the h and s Home Assistant sends under those names. */
static void light_hue_saturation_is_hs(void **state)
{
	struct t *t = *state;
	struct device *dev =
		add(t, "zigbee:0x01", "hall/strip", NULL, NULL, hs_light, N(hs_light));
	cJSON *c = configs_of(t, dev);
	const cJSON *cfg = NULL, *item;
	cJSON_ArrayForEach(item, c)
	{
		if (strstr(item->string, "/light/"))
			cfg = item;
	}
	assert_non_null(cfg);
	const cJSON *modes = cJSON_GetObjectItem(cfg, "supported_color_modes");
	assert_int_equal(cJSON_GetArraySize(modes), 1);
	assert_string_equal(cJSON_GetArrayItem(modes, 0)->valuestring, "hs");
	cJSON_Delete(c);
	/* what HA sends for it passes the device's capability */
	char err[256];
	cJSON *hs = cJSON_Parse("{\"h\":30,\"s\":90}"), *out = NULL;
	const struct cap *color = cap_find(dev->caps, dev->n_caps, "color");
	assert_int_equal(cap_validate_value(color, hs, NULL, &out, err, sizeof(err)), 0);
	assert_int_equal(cJSON_GetObjectItem(out, "hue")->valueint, 30);
	assert_int_equal(cJSON_GetObjectItem(out, "saturation")->valueint, 90);
	cJSON_Delete(out);
	cJSON_Delete(hs);
}

/* Merge one attribute into dev's state, changed at ms. */
static void report(struct device *dev, const char *name, struct hearth_value v, int64_t ms)
{
	struct hearth_attr a = {.name = name, .value = v};
	const char *changed[1];
	assert_int_equal(registry_merge(dev, &a, 1, changed), 1);
	assert_int_equal(registry_stamp(dev, changed, 1, ms), 0);
}

/* HA's JSON light shows colour back only from a state naming its mode: the
 * mode of what changed last, unless the device names it itself. */
static void light_color_mode_in_state(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "virtual:light-9", "den/lamp", NULL, NULL, colour_light,
				 N(colour_light));
	assert_null(ha_color_mode(dev)); /* nothing known yet */
	report(dev, "brightness", HEARTH_NUMBER(120), 1000);
	assert_null(ha_color_mode(dev));
	report(dev, "color_temp", HEARTH_NUMBER(370), 2000);
	assert_string_equal(ha_color_mode(dev), "color_temp");
	report(dev, "color", HEARTH_JSON("{\"x\":0.3,\"y\":0.4}"), 3000);
	assert_string_equal(ha_color_mode(dev), "xy");
	report(dev, "color_temp", HEARTH_NUMBER(250), 4000);
	assert_string_equal(ha_color_mode(dev), "color_temp");
	report(dev, "color", HEARTH_JSON("{\"h\":120,\"s\":80}"), 5000);
	assert_string_equal(ha_color_mode(dev), "hs");
	/* a colour without the members of any mode names none */
	report(dev, "color", HEARTH_JSON("{\"r\":1}"), 6000);
	assert_string_equal(ha_color_mode(dev), "color_temp");
	/* zigbee2mqtt sends its own */
	report(dev, "color_mode", HEARTH_STRING("xy"), 7000);
	assert_null(ha_color_mode(dev));

	/* a light that never reported a colour temperature has none */
	struct device *d2 = add(t, "virtual:dim-1", "den/dim", NULL, NULL, dimmer, N(dimmer));
	report(d2, "brightness", HEARTH_NUMBER(10), 1000);
	assert_null(ha_color_mode(d2));
}


static void light_kelvin_and_no_transition(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "mqttdev:shelly:dimmer-1", "study lamp", "Shelly", NULL, dimmer,
				 N(dimmer));
	cJSON *c = configs_of(t, dev);
	expect_config(c, dev, "mqttdev_shelly_dimmer-1", "light", "light",
		      "{'name':null,'unique_id':'hearth_mqttdev_shelly_dimmer-1_light',"
		      "'default_entity_id':'light.study_lamp','schema':'json',"
		      "'command_topic':'hearth/study lamp/set','state_topic':'hearth/study lamp',"
		      "'brightness':true,'brightness_scale':100,'supported_color_modes':['color_temp'],"
		      "'color_temp_kelvin':true,'min_kelvin':2700,'max_kelvin':6500,"
		      "'transition':false,'flash':false}");
	expect_count(c, 1);
	cJSON_Delete(c);
}

/* ON/OFF with a brightness that cannot be set is no light. */
static const struct hearth_capability relay_with_level[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RO, .flags = RANGE, .min = 0,
	 .max = 254},
};

static void light_needs_a_settable_level(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "test:relay", "relay", NULL, NULL, relay_with_level,
				 N(relay_with_level));
	cJSON *c = configs_of(t, dev);
	expect_count(c, 2);
	assert_non_null(cJSON_GetObjectItem(c, "homeassistant/switch/hearth_test_relay/state/config"));
	assert_non_null(
		cJSON_GetObjectItem(c, "homeassistant/sensor/hearth_test_relay/brightness/config"));
	cJSON_Delete(c);
}

/* ---- switches and sensors ------------------------------------------------------------------- */

static const struct hearth_capability plug[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "power", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "W"},
	{.name = "energy", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "kWh"},
	{.name = "voltage", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "V"},
	{.name = "child_led", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
};

static void switch_and_power_sensors(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "virtual:plug-1", "virtual/plug-1", "hearth", "Virtual plug",
				 plug, N(plug));
	cJSON *c = configs_of(t, dev);
	const char *safe = "virtual_plug-1";
	expect_config(c, dev, safe, "switch", "state",
		      "{'name':null,'unique_id':'hearth_virtual_plug-1_state',"
		      "'default_entity_id':'switch.virtual_plug_1',"
		      "'state_topic':'hearth/virtual/plug-1','value_template':'{{ value_json.state }}',"
		      "'command_topic':'hearth/virtual/plug-1/set',"
		      "'payload_on':'{\\'state\\':\\'ON\\'}','payload_off':'{\\'state\\':\\'OFF\\'}',"
		      "'state_on':'ON','state_off':'OFF'}");
	expect_config(c, dev, safe, "switch", "child_led",
		      "{'name':'Child led','unique_id':'hearth_virtual_plug-1_child_led',"
		      "'default_entity_id':'switch.virtual_plug_1_child_led',"
		      "'state_topic':'hearth/virtual/plug-1',"
		      "'value_template':'{{ value_json.child_led }}',"
		      "'command_topic':'hearth/virtual/plug-1/set',"
		      "'payload_on':'{\\'child_led\\':true}','payload_off':'{\\'child_led\\':false}',"
		      "'state_on':'True','state_off':'False'}");
	/* settable, but a measured quantity: a sensor, not a number */
	expect_config(c, dev, safe, "sensor", "power",
		      "{'name':'Power','unique_id':'hearth_virtual_plug-1_power',"
		      "'default_entity_id':'sensor.virtual_plug_1_power',"
		      "'state_topic':'hearth/virtual/plug-1','value_template':'{{ value_json.power }}',"
		      "'unit_of_measurement':'W','device_class':'power','state_class':'measurement'}");
	expect_config(c, dev, safe, "sensor", "energy",
		      "{'name':'Energy','unique_id':'hearth_virtual_plug-1_energy',"
		      "'default_entity_id':'sensor.virtual_plug_1_energy',"
		      "'state_topic':'hearth/virtual/plug-1','value_template':'{{ value_json.energy }}',"
		      "'unit_of_measurement':'kWh','device_class':'energy',"
		      "'state_class':'total_increasing'}");
	expect_config(c, dev, safe, "sensor", "voltage",
		      "{'name':'Voltage','unique_id':'hearth_virtual_plug-1_voltage',"
		      "'default_entity_id':'sensor.virtual_plug_1_voltage',"
		      "'state_topic':'hearth/virtual/plug-1',"
		      "'value_template':'{{ value_json.voltage }}','unit_of_measurement':'V',"
		      "'device_class':'voltage','state_class':'measurement'}");
	expect_count(c, 5);
	cJSON_Delete(c);
}

/* The payloads the parser above unescapes must be exactly hearth's /set. */
static void switch_payload_is_hearth_set(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "virtual:plug-2", "plug2", NULL, NULL, plug, 1);
	cJSON *c = configs_of(t, dev);
	cJSON *cfg = cJSON_GetObjectItem(c, "homeassistant/switch/hearth_virtual_plug-2/state/config");
	assert_non_null(cfg);
	assert_string_equal(cJSON_GetObjectItem(cfg, "payload_on")->valuestring, "{\"state\":\"ON\"}");
	cJSON_Delete(c);
}

static const struct hearth_capability motion[] = {
	{.name = "occupancy", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
	{.name = "illuminance", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "lx",
	 .flags = RANGE, .min = 0, .max = 100000},
	{.name = "battery", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "%", .flags = RANGE,
	 .min = 0, .max = 100},
	{.name = "temperature", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "mystery"},
	{.name = "tamper", .type = HEARTH_CAP_BINARY, .access = RO, .value_on = VSTR("1"),
	 .value_off = VSTR("0")},
};

static void motion_sensor(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "virtual:motion-1", "hall/motion", "hearth", NULL, motion,
				 N(motion));
	cJSON *c = configs_of(t, dev);
	const char *safe = "virtual_motion-1";
	expect_config(c, dev, safe, "binary_sensor", "occupancy",
		      "{'name':'Occupancy','unique_id':'hearth_virtual_motion-1_occupancy',"
		      "'default_entity_id':'binary_sensor.hall_motion_occupancy',"
		      "'state_topic':'hearth/hall/motion','value_template':'{{ value_json.occupancy }}',"
		      "'payload_on':'True','payload_off':'False','device_class':'occupancy'}");
	expect_config(c, dev, safe, "sensor", "illuminance",
		      "{'name':'Illuminance','unique_id':'hearth_virtual_motion-1_illuminance',"
		      "'default_entity_id':'sensor.hall_motion_illuminance',"
		      "'state_topic':'hearth/hall/motion',"
		      "'value_template':'{{ value_json.illuminance }}','unit_of_measurement':'lx',"
		      "'device_class':'illuminance','state_class':'measurement'}");
	expect_config(c, dev, safe, "sensor", "battery",
		      "{'name':'Battery','unique_id':'hearth_virtual_motion-1_battery',"
		      "'default_entity_id':'sensor.hall_motion_battery',"
		      "'state_topic':'hearth/hall/motion','value_template':'{{ value_json.battery }}',"
		      "'unit_of_measurement':'%','device_class':'battery',"
		      "'state_class':'measurement','entity_category':'diagnostic'}");
	/* a unit HA does not accept for the class: the class is left out */
	expect_config(c, dev, safe, "sensor", "temperature",
		      "{'name':'Temperature','unique_id':'hearth_virtual_motion-1_temperature',"
		      "'default_entity_id':'sensor.hall_motion_temperature',"
		      "'state_topic':'hearth/hall/motion',"
		      "'value_template':'{{ value_json.temperature }}',"
		      "'unit_of_measurement':'mystery','state_class':'measurement'}");
	expect_config(c, dev, safe, "binary_sensor", "tamper",
		      "{'name':'Tamper','unique_id':'hearth_virtual_motion-1_tamper',"
		      "'default_entity_id':'binary_sensor.hall_motion_tamper',"
		      "'state_topic':'hearth/hall/motion','value_template':'{{ value_json.tamper }}',"
		      "'payload_on':'1','payload_off':'0','device_class':'tamper',"
		      "'entity_category':'diagnostic'}");
	expect_count(c, 5);
	cJSON_Delete(c);
}

static const struct hearth_capability door[] = {
	{.name = "contact", .type = HEARTH_CAP_BINARY, .access = RO, .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
	{.name = "water_leak", .type = HEARTH_CAP_BINARY, .access = RO, .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
	{.name = "smoke", .type = HEARTH_CAP_BINARY, .access = RO, .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
	{.name = "vibration", .type = HEARTH_CAP_BINARY, .access = RO, .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
	{.name = "humidity", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "%"},
	{.name = "pressure", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "hPa"},
};

/* zigbee2mqtt's contact is true when closed; HA's door is on when open. */
static void door_is_inverted(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "zigbee:0x00158d0001a2b3c4", "front door", "Aqara", "MCCGQ11LM",
				 door, N(door));
	cJSON *c = configs_of(t, dev);
	const char *safe = "zigbee_0x00158d0001a2b3c4";
	expect_config(c, dev, safe, "binary_sensor", "contact",
		      "{'name':'Contact','unique_id':'hearth_zigbee_0x00158d0001a2b3c4_contact',"
		      "'default_entity_id':'binary_sensor.front_door_contact',"
		      "'state_topic':'hearth/front door','value_template':'{{ value_json.contact }}',"
		      "'payload_on':'False','payload_off':'True','device_class':'door'}");
	static const char *const classes[][2] = {
		{"water_leak", "moisture"}, {"smoke", "smoke"}, {"vibration", "vibration"}};
	for (size_t i = 0; i < N(classes); i++) {
		char topic[256];
		snprintf(topic, sizeof(topic), "homeassistant/binary_sensor/hearth_%s/%s/config", safe,
			 classes[i][0]);
		cJSON *cfg = cJSON_GetObjectItem(c, topic);
		assert_non_null(cfg);
		check_schema("binary_sensor", cfg);
		assert_string_equal(cJSON_GetObjectItem(cfg, "device_class")->valuestring,
				    classes[i][1]);
		assert_string_equal(cJSON_GetObjectItem(cfg, "payload_on")->valuestring, "True");
	}
	expect_config(c, dev, safe, "sensor", "humidity",
		      "{'name':'Humidity','unique_id':'hearth_zigbee_0x00158d0001a2b3c4_humidity',"
		      "'default_entity_id':'sensor.front_door_humidity',"
		      "'state_topic':'hearth/front door','value_template':'{{ value_json.humidity }}',"
		      "'unit_of_measurement':'%','device_class':'humidity',"
		      "'state_class':'measurement'}");
	expect_config(c, dev, safe, "sensor", "pressure",
		      "{'name':'Pressure','unique_id':'hearth_zigbee_0x00158d0001a2b3c4_pressure',"
		      "'default_entity_id':'sensor.front_door_pressure',"
		      "'state_topic':'hearth/front door','value_template':'{{ value_json.pressure }}',"
		      "'unit_of_measurement':'hPa','device_class':'pressure',"
		      "'state_class':'measurement'}");
	expect_count(c, 6);
	cJSON_Delete(c);
}

/* ---- events, selects, numbers, text ------------------------------------------------------- */

static const char *const actions[] = {"single", "double", "hold", "release"};
static const char *const behaviours[] = {"off", "on", "toggle", "previous"};
static const char *const modes_ro[] = {"idle", "busy"};

static const struct hearth_capability button[] = {
	{.name = "action", .type = HEARTH_CAP_ENUM, .access = RW, .values = actions,
	 .n_values = N(actions)},
	{.name = "power_on_behavior", .type = HEARTH_CAP_ENUM, .access = RW, .values = behaviours,
	 .n_values = N(behaviours)},
	{.name = "motion_timeout", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "s",
	 .flags = RANGE | HEARTH_CAP_HAS_STEP, .min = 0, .max = 600, .step = 5},
	{.name = "offset", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_SET},
	{.name = "activity", .type = HEARTH_CAP_ENUM, .access = RO, .values = modes_ro,
	 .n_values = N(modes_ro)},
	{.name = "label", .type = HEARTH_CAP_TEXT, .access = RW},
	{.name = "firmware", .type = HEARTH_CAP_TEXT, .access = RO},
	{.name = "action_2", .type = HEARTH_CAP_ENUM, .access = HEARTH_ACCESS_PUBLISHED,
	 .values = actions, .n_values = N(actions)},
};

static void event_select_number_text(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "ble:a4:c1:38:00:11:22", "desk button", NULL, NULL, button,
				 N(button));
	cJSON *c = configs_of(t, dev);
	const char *safe = "ble_a4_c1_38_00_11_22";
	char want[2048];
	snprintf(want, sizeof(want), "%s",
		 "{\"name\":\"Action\",\"unique_id\":\"hearth_ble_a4_c1_38_00_11_22_action\","
		 "\"default_entity_id\":\"event.desk_button_action\","
		 "\"state_topic\":\"hearth/bridge/event\",\"value_template\":\"{% if value_json.type "
		 "== 'device_event' and value_json.data.id == 'ble:a4:c1:38:00:11:22' and "
		 "value_json.data.event == 'action' %}{{ {'event_type': value_json.data.action} | "
		 "to_json }}{% endif %}\",\"event_types\":[\"single\",\"double\",\"hold\","
		 "\"release\"]}");
	/* parse_q would turn the template's quotes: compare this one by hand */
	const cJSON *ev = cJSON_GetObjectItem(c, "homeassistant/event/hearth_ble_a4_c1_38_00_11_22/"
					      "action/config");
	assert_non_null(ev);
	check_schema("event", ev);
	check_common(dev, safe, ev);
	cJSON *rest = cJSON_Duplicate(ev, 1), *w = cJSON_Parse(want);
	static const char *const shared[] = {"device", "availability", "availability_mode",
					     "origin"};
	for (size_t i = 0; i < N(shared); i++)
		cJSON_DeleteItemFromObjectCaseSensitive(rest, shared[i]);
	expect_equal(w, rest, "event");
	cJSON_Delete(w);
	cJSON_Delete(rest);
	expect_config(c, dev, safe, "select", "power_on_behavior",
		      "{'name':'Power on behavior',"
		      "'unique_id':'hearth_ble_a4_c1_38_00_11_22_power_on_behavior',"
		      "'default_entity_id':'select.desk_button_power_on_behavior',"
		      "'state_topic':'hearth/desk button',"
		      "'value_template':'{{ value_json.power_on_behavior }}',"
		      "'command_topic':'hearth/desk button/set',"
		      "'command_template':'{\\'power_on_behavior\\': {{ value | to_json }}}',"
		      "'options':['off','on','toggle','previous'],'entity_category':'config'}");
	expect_config(c, dev, safe, "number", "motion_timeout",
		      "{'name':'Motion timeout',"
		      "'unique_id':'hearth_ble_a4_c1_38_00_11_22_motion_timeout',"
		      "'default_entity_id':'number.desk_button_motion_timeout',"
		      "'state_topic':'hearth/desk button',"
		      "'value_template':'{{ value_json.motion_timeout }}',"
		      "'command_topic':'hearth/desk button/set',"
		      "'command_template':'{\\'motion_timeout\\': {{ value }}}',"
		      "'min':0,'max':600,'step':5,'unit_of_measurement':'s',"
		      "'entity_category':'config'}");
	/* write-only and unbounded: no state topic, a box with wide limits */
	expect_config(c, dev, safe, "number", "offset",
		      "{'name':'Offset','unique_id':'hearth_ble_a4_c1_38_00_11_22_offset',"
		      "'default_entity_id':'number.desk_button_offset',"
		      "'command_topic':'hearth/desk button/set',"
		      "'command_template':'{\\'offset\\': {{ value }}}',"
		      "'min':-1e9,'max':1e9,'step':1,'mode':'box','entity_category':'config'}");
	expect_config(c, dev, safe, "sensor", "activity",
		      "{'name':'Activity','unique_id':'hearth_ble_a4_c1_38_00_11_22_activity',"
		      "'default_entity_id':'sensor.desk_button_activity',"
		      "'state_topic':'hearth/desk button',"
		      "'value_template':'{{ value_json.activity }}','device_class':'enum',"
		      "'options':['idle','busy']}");
	expect_config(c, dev, safe, "text", "label",
		      "{'name':'Label','unique_id':'hearth_ble_a4_c1_38_00_11_22_label',"
		      "'default_entity_id':'text.desk_button_label',"
		      "'state_topic':'hearth/desk button','value_template':'{{ value_json.label }}',"
		      "'command_topic':'hearth/desk button/set',"
		      "'command_template':'{\\'label\\': {{ value | to_json }}}'}");
	expect_config(c, dev, safe, "sensor", "firmware",
		      "{'name':'Firmware','unique_id':'hearth_ble_a4_c1_38_00_11_22_firmware',"
		      "'default_entity_id':'sensor.desk_button_firmware',"
		      "'state_topic':'hearth/desk button',"
		      "'value_template':'{{ value_json.firmware }}'}");
	/* a second button of the same device: its own event entity */
	const cJSON *ev2 = cJSON_GetObjectItem(c, "homeassistant/event/hearth_ble_a4_c1_38_00_11_22/"
					       "action_2/config");
	assert_non_null(ev2);
	const char *tpl = cJSON_GetObjectItem(ev2, "value_template")->valuestring;
	assert_non_null(strstr(tpl, "value_json.data.event == 'action_2'"));
	assert_non_null(strstr(tpl, "{'event_type': value_json.data.action_2}"));
	expect_count(c, 8);
	cJSON_Delete(c);
}

/* ---- lock, cover, climate, fan -------------------------------------------------------------- */

static const struct hearth_capability lock_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("LOCK"),
	 .value_off = VSTR("UNLOCK")},
	{.name = "child_lock", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("LOCK"),
	 .value_off = VSTR("UNLOCK")},
};

static void lock_entities(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "zigbee:0x01", "front/lock", NULL, NULL, lock_caps,
				 N(lock_caps));
	cJSON *c = configs_of(t, dev);
	expect_config(c, dev, "zigbee_0x01", "lock", "lock",
		      "{'name':null,'unique_id':'hearth_zigbee_0x01_lock',"
		      "'default_entity_id':'lock.front_lock','state_topic':'hearth/front/lock',"
		      "'value_template':'{{ value_json.state }}',"
		      "'command_topic':'hearth/front/lock/set',"
		      "'payload_lock':'{\\'state\\':\\'LOCK\\'}',"
		      "'payload_unlock':'{\\'state\\':\\'UNLOCK\\'}',"
		      "'state_locked':'LOCK','state_unlocked':'UNLOCK'}");
	expect_config(c, dev, "zigbee_0x01", "lock", "child_lock",
		      "{'name':'Child lock','unique_id':'hearth_zigbee_0x01_child_lock',"
		      "'default_entity_id':'lock.front_lock_child_lock',"
		      "'state_topic':'hearth/front/lock',"
		      "'value_template':'{{ value_json.child_lock }}',"
		      "'command_topic':'hearth/front/lock/set',"
		      "'payload_lock':'{\\'child_lock\\':\\'LOCK\\'}',"
		      "'payload_unlock':'{\\'child_lock\\':\\'UNLOCK\\'}',"
		      "'state_locked':'LOCK','state_unlocked':'UNLOCK','entity_category':'config'}");
	expect_count(c, 2);
	cJSON_Delete(c);
}

static const char *const cover_states[] = {"OPEN", "CLOSE", "STOP"};

static const struct hearth_capability cover_caps[] = {
	{.name = "state", .type = HEARTH_CAP_ENUM, .access = RW, .values = cover_states,
	 .n_values = N(cover_states)},
	{.name = "position", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "%",
	 .flags = RANGE, .min = 0, .max = 100},
};

static void cover_entity(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "mqttdev:shelly:shellyplus2pm-c4d8d5", "living/blind", NULL,
				 NULL, cover_caps, N(cover_caps));
	cJSON *c = configs_of(t, dev);
	expect_config(c, dev, "mqttdev_shelly_shellyplus2pm-c4d8d5", "cover", "cover",
		      "{'name':null,'unique_id':'hearth_mqttdev_shelly_shellyplus2pm-c4d8d5_cover',"
		      "'default_entity_id':'cover.living_blind','state_topic':'hearth/living/blind',"
		      "'value_template':'{{ value_json.state }}',"
		      "'command_topic':'hearth/living/blind/set',"
		      "'payload_open':'{\\'state\\':\\'OPEN\\'}',"
		      "'payload_close':'{\\'state\\':\\'CLOSE\\'}',"
		      "'payload_stop':'{\\'state\\':\\'STOP\\'}','state_open':'OPEN',"
		      "'state_closed':'CLOSE','state_stopped':'STOP',"
		      "'position_topic':'hearth/living/blind',"
		      "'position_template':'{{ value_json.position }}',"
		      "'set_position_topic':'hearth/living/blind/set',"
		      "'set_position_template':'{\\'position\\': {{ position }}}',"
		      "'position_open':100,'position_closed':0}");
	expect_count(c, 1);
	cJSON_Delete(c);
}

static const char *const system_modes[] = {"off", "auto", "heat", "eco"};
static const char *const running[] = {"idle", "heat"};

static const struct hearth_capability trv[] = {
	{.name = "occupied_heating_setpoint", .type = HEARTH_CAP_NUMERIC, .access = RW,
	 .unit = "°C", .flags = RANGE | HEARTH_CAP_HAS_STEP, .min = 5, .max = 30, .step = 0.5},
	{.name = "local_temperature", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "°C"},
	{.name = "system_mode", .type = HEARTH_CAP_ENUM, .access = RW, .values = system_modes,
	 .n_values = N(system_modes)},
	{.name = "running_state", .type = HEARTH_CAP_ENUM, .access = RO, .values = running,
	 .n_values = N(running)},
	{.name = "battery", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "%"},
};

static void climate_entity(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "zigbee:0x02", "bedroom/trv", "Danfoss", "014G2461", trv,
				 N(trv));
	cJSON *c = configs_of(t, dev);
	char want[4096];
	snprintf(want, sizeof(want), "%s",
		 "{\"name\":null,\"unique_id\":\"hearth_zigbee_0x02_climate\","
		 "\"default_entity_id\":\"climate.bedroom_trv\","
		 "\"temperature_command_topic\":\"hearth/bedroom/trv/set\","
		 "\"temperature_command_template\":\"{\\\"occupied_heating_setpoint\\\": {{ value }}}\","
		 "\"temperature_state_topic\":\"hearth/bedroom/trv\","
		 "\"temperature_state_template\":\"{{ value_json.occupied_heating_setpoint }}\","
		 "\"min_temp\":5,\"max_temp\":30,\"temp_step\":0.5,\"temperature_unit\":\"C\","
		 "\"current_temperature_topic\":\"hearth/bedroom/trv\","
		 "\"current_temperature_template\":\"{{ value_json.local_temperature }}\","
		 "\"action_topic\":\"hearth/bedroom/trv\","
		 "\"action_template\":\"{% set a = {'idle': 'idle', 'heat': 'heating', 'cool': "
		 "'cooling', 'fan_only': 'fan'} %}{{ a.get(value_json.running_state, 'idle') }}\","
		 "\"modes\":[\"off\",\"heat\",\"auto\"],"
		 "\"mode_command_topic\":\"hearth/bedroom/trv/set\","
		 "\"mode_command_template\":\"{\\\"system_mode\\\": {{ value | to_json }}}\","
		 "\"mode_state_topic\":\"hearth/bedroom/trv\","
		 "\"mode_state_template\":\"{{ value_json.system_mode }}\"}");
	const cJSON *cfg = cJSON_GetObjectItem(c, "homeassistant/climate/hearth_zigbee_0x02/climate/"
					       "config");
	assert_non_null(cfg);
	check_schema("climate", cfg);
	check_common(dev, "zigbee_0x02", cfg);
	cJSON *rest = cJSON_Duplicate(cfg, 1), *w = cJSON_Parse(want);
	assert_non_null(w);
	static const char *const shared[] = {"device", "availability", "availability_mode",
					     "origin"};
	for (size_t i = 0; i < N(shared); i++)
		cJSON_DeleteItemFromObjectCaseSensitive(rest, shared[i]);
	expect_equal(w, rest, "climate");
	cJSON_Delete(w);
	cJSON_Delete(rest);
	/* the thermostat takes four attributes; the battery stays a sensor */
	expect_count(c, 2);
	assert_non_null(cJSON_GetObjectItem(c, "homeassistant/sensor/hearth_zigbee_0x02/battery/"
					       "config"));
	cJSON_Delete(c);
}

static const char *const fan_modes[] = {"low", "medium", "high", "auto"};

static const struct hearth_capability fan_caps[] = {
	{.name = "fan_state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "fan_mode", .type = HEARTH_CAP_ENUM, .access = RW, .values = fan_modes,
	 .n_values = N(fan_modes)},
};

static void fan_entity(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "zigbee:0x03", "ceiling fan", NULL, NULL, fan_caps,
				 N(fan_caps));
	cJSON *c = configs_of(t, dev);
	expect_config(c, dev, "zigbee_0x03", "fan", "fan",
		      "{'name':null,'unique_id':'hearth_zigbee_0x03_fan',"
		      "'default_entity_id':'fan.ceiling_fan','state_topic':'hearth/ceiling fan',"
		      "'state_value_template':'{{ value_json.fan_state }}',"
		      "'command_topic':'hearth/ceiling fan/set',"
		      "'command_template':'{\\'fan_state\\': {{ value | to_json }}}',"
		      "'payload_on':'ON','payload_off':'OFF',"
		      "'preset_mode_state_topic':'hearth/ceiling fan',"
		      "'preset_mode_value_template':'{{ value_json.fan_mode }}',"
		      "'preset_mode_command_topic':'hearth/ceiling fan/set',"
		      "'preset_mode_command_template':'{\\'fan_mode\\': {{ value | to_json }}}',"
		      "'preset_modes':['low','medium','high','auto']}");
	expect_count(c, 1);
	cJSON_Delete(c);
}

/* ---- the bridge, names, renames ------------------------------------------------------------- */

static void bridge_device(void **state)
{
	struct t *t = *state;
	cJSON *c = ha_discovery_bridge_configs(t->hub->ha);
	assert_non_null(c);
	const cJSON *cfg = cJSON_GetObjectItem(
		c, "homeassistant/binary_sensor/hearth_bridge/connection_state/config");
	assert_non_null(cfg);
	check_schema("binary_sensor", cfg);
	cJSON *w = parse_q("{'name':'Connection state','unique_id':'hearth_bridge_connection_state',"
			   "'default_entity_id':'binary_sensor.hearth_bridge_connection_state',"
			   "'state_topic':'hearth/bridge/state',"
			   "'value_template':'{{ value_json.state }}','payload_on':'online',"
			   "'payload_off':'offline','device_class':'connectivity',"
			   "'entity_category':'diagnostic','device':{'identifiers':['hearth_bridge'],"
			   "'name':'hearth bridge','manufacturer':'hearth','model':'hearth hub',"
			   "'sw_version':'" HEARTH_VERSION "'},"
			   "'origin':{'name':'hearth','sw_version':'" HEARTH_VERSION "'}}");
	expect_equal(w, cfg, "bridge");
	cJSON_Delete(w);
	expect_count(c, 1);
	cJSON_Delete(c);
}

static const struct hearth_capability odd_names[] = {
	{.name = "items", .type = HEARTH_CAP_NUMERIC, .access = RO},
	{.name = "co2-level", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "ppm"},
	{.name = "bad{{name}}", .type = HEARTH_CAP_NUMERIC, .access = RO},
	{.name = "quote'd", .type = HEARTH_CAP_NUMERIC, .access = RO},
	{.name = "a.b", .type = HEARTH_CAP_NUMERIC, .access = RO},
	{.name = "a_b", .type = HEARTH_CAP_NUMERIC, .access = RO},
	{.name = "shape", .type = HEARTH_CAP_LIST, .access = RO},
};

/* Names that are dict methods or not identifiers are read with [''];
 * names a template cannot hold are left out; two names that become the
 * same object id both get a config; lists have no HA entity. */
static void awkward_names(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "test:odd/1", "odd", NULL, NULL, odd_names, N(odd_names));
	cJSON *c = configs_of(t, dev);
	const cJSON *items = cJSON_GetObjectItem(c, "homeassistant/sensor/hearth_test_odd_1/items/"
						 "config");
	assert_non_null(items);
	assert_string_equal(cJSON_GetObjectItem(items, "value_template")->valuestring,
			    "{{ value_json['items'] }}");
	const cJSON *co2 = cJSON_GetObjectItem(c, "homeassistant/sensor/hearth_test_odd_1/co2-level/"
					       "config");
	assert_non_null(co2);
	assert_string_equal(cJSON_GetObjectItem(co2, "value_template")->valuestring,
			    "{{ value_json['co2-level'] }}");
	const cJSON *ab1 = cJSON_GetObjectItem(c, "homeassistant/sensor/hearth_test_odd_1/a_b/config");
	const cJSON *ab2 = cJSON_GetObjectItem(c, "homeassistant/sensor/hearth_test_odd_1/a_b_2/"
					       "config");
	assert_non_null(ab1);
	assert_non_null(ab2);
	assert_string_not_equal(cJSON_GetObjectItem(ab1, "unique_id")->valuestring,
				cJSON_GetObjectItem(ab2, "unique_id")->valuestring);
	expect_count(c, 4);
	cJSON_Delete(c);
}

/* Topics use the id, so a rename keeps every config topic and changes the
 * topics inside. */
static void rename_keeps_config_topics(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "virtual:plug-9", "old/name", NULL, NULL, plug, N(plug));
	cJSON *before = configs_of(t, dev);
	char err[256];
	assert_int_equal(hub_device_rename(t->hub, dev, "new/name", err, sizeof(err)), 0);
	cJSON *after = configs_of(t, dev);
	assert_int_equal(cJSON_GetArraySize(before), cJSON_GetArraySize(after));
	const cJSON *b;
	cJSON_ArrayForEach(b, before)
	{
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(after, b->string);
		assert_non_null(a);
		assert_string_equal(cJSON_GetObjectItem(a, "unique_id")->valuestring,
				    cJSON_GetObjectItem(b, "unique_id")->valuestring);
		const cJSON *st = cJSON_GetObjectItem(a, "state_topic");
		if (st)
			assert_string_equal(st->valuestring, "hearth/new/name");
	}
	const cJSON *sw = cJSON_GetObjectItem(after, "homeassistant/switch/hearth_virtual_plug-9/"
					      "state/config");
	assert_string_equal(cJSON_GetObjectItem(sw, "command_topic")->valuestring,
			    "hearth/new/name/set");
	cJSON *dev_block = cJSON_GetObjectItem(sw, "device");
	assert_string_equal(cJSON_GetObjectItem(dev_block, "name")->valuestring, "new/name");
	cJSON_Delete(before);
	cJSON_Delete(after);
}

/* A room given with device/options becomes HA's suggested area. */
static void room_is_suggested_area(void **state)
{
	struct t *t = *state;
	struct device *dev = add(t, "virtual:plug-8", "kitchen plug", NULL, NULL, plug, 1);
	assert_int_equal(registry_set_text(&dev->room, "Kitchen"), 0);
	cJSON *c = configs_of(t, dev);
	expect_config(c, dev, "virtual_plug-8", "switch", "state",
		      "{'name':null,'unique_id':'hearth_virtual_plug-8_state',"
		      "'default_entity_id':'switch.kitchen_plug',"
		      "'state_topic':'hearth/kitchen plug','value_template':'{{ value_json.state }}',"
		      "'command_topic':'hearth/kitchen plug/set',"
		      "'payload_on':'{\\'state\\':\\'ON\\'}','payload_off':'{\\'state\\':\\'OFF\\'}',"
		      "'state_on':'ON','state_off':'OFF'}");
	cJSON_Delete(c);
}

/* The example in docs/home-assistant.md is what hearth publishes for the
 * virtual plugin's light (its capabilities as plugins/virtual declares them). */
static const struct hearth_capability virtual_light[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW, .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = RANGE, .min = 0,
	 .max = 254},
	{.name = "color_temp", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "mired",
	 .flags = RANGE, .min = 150, .max = 500},
	{.name = "transition", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_SET, .unit = "s",
	 .flags = RANGE, .min = 0, .max = 3600},
};

static void docs_example(void **state)
{
	struct t *t = *state;
	FILE *f = fopen("docs/home-assistant.md", "re");
	assert_non_null(f);
	static char doc[65536];
	size_t n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	char *start = strstr(doc, "```json\n"), *end = start ? strstr(start + 8, "```") : NULL;
	assert_non_null(end);
	*end = '\0';
	cJSON *want = cJSON_Parse(start + 8);
	assert_non_null(want);
	struct device *dev = add(t, "virtual:light-1", "virtual/light-1", "hearth", "Virtual light",
				 virtual_light, N(virtual_light));
	cJSON *c = configs_of(t, dev);
	cJSON *got = cJSON_Duplicate(
		cJSON_GetObjectItem(c, "homeassistant/light/hearth_virtual_light-1/light/config"), 1);
	assert_non_null(got);
	/* the version moves on; the rest must not */
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(want, "origin"), "name")
				    ->valuestring,
			    "hearth");
	cJSON_DeleteItemFromObject(want, "origin");
	cJSON_DeleteItemFromObject(got, "origin");
	expect_equal(want, got, "docs/home-assistant.md example");
	cJSON_Delete(want);
	cJSON_Delete(got);
	cJSON_Delete(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(light_json_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(light_kelvin_and_no_transition, setup, teardown),
		cmocka_unit_test_setup_teardown(light_color_mode_in_state, setup, teardown),
		cmocka_unit_test_setup_teardown(light_hue_saturation_is_hs, setup, teardown),
		cmocka_unit_test_setup_teardown(light_needs_a_settable_level, setup, teardown),
		cmocka_unit_test_setup_teardown(switch_and_power_sensors, setup, teardown),
		cmocka_unit_test_setup_teardown(switch_payload_is_hearth_set, setup, teardown),
		cmocka_unit_test_setup_teardown(motion_sensor, setup, teardown),
		cmocka_unit_test_setup_teardown(door_is_inverted, setup, teardown),
		cmocka_unit_test_setup_teardown(event_select_number_text, setup, teardown),
		cmocka_unit_test_setup_teardown(lock_entities, setup, teardown),
		cmocka_unit_test_setup_teardown(cover_entity, setup, teardown),
		cmocka_unit_test_setup_teardown(climate_entity, setup, teardown),
		cmocka_unit_test_setup_teardown(fan_entity, setup, teardown),
		cmocka_unit_test_setup_teardown(bridge_device, setup, teardown),
		cmocka_unit_test_setup_teardown(awkward_names, setup, teardown),
		cmocka_unit_test_setup_teardown(rename_keeps_config_topics, setup, teardown),
		cmocka_unit_test_setup_teardown(room_is_suggested_area, setup, teardown),
		cmocka_unit_test_setup_teardown(docs_example, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
