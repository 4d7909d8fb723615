/*
 * Unit tests for the rule engine (rules.c, rules_parse.c, rules_cond.c),
 * driven through rules.h with a real registry and a fake host: a clock the
 * tests move, and a record of every set, publish, firing, trace, durable
 * timer and MQTT watch. Covers validation messages (a table), device names
 * against ids, every trigger type, conditions and their explanations,
 * actions, modes under bursts, cooldown and debounce, durable timers across
 * an engine restart, and a printed performance figure for 10,000 rules.
 *
 * Rule JSON is written with single quotes (J() turns them into double
 * quotes) so the tables stay readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <time.h>

#include "capability.h"
#include "registry.h"
#include "rules.h"
#include "rules_internal.h"
#include "sun.h"
#include "timeutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Sanitizers change memory figures and speed; some checks skip there. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
/* Monday 2024-03-04 00:00 in Europe/Amsterdam (CET); no DST change that month
 * before the 31st. */
#define BASE_MS 1709506800000LL
#define ADVANCE_STEPS_MAX 1000000

#define LIGHT "zigbee:light1"
#define MOTION "zigbee:motion1"
#define BUTTON "zigbee:button1"
#define THERMO "zigbee:thermo1"

/* ---------------------------------------------------------------------------
 * The fake host
 * ------------------------------------------------------------------------- */

struct fake {
	int64_t now;
	struct registry *reg;
	struct rules *rules;
	struct device *light, *motion, *button, *thermo;
	cJSON *sets;	  /* [{"device","state","at"}] */
	cJSON *scenes;	  /* ["id"] */
	cJSON *publishes; /* [{"topic","payload","retain","at"}] */
	cJSON *fired;	  /* the records, in order */
	cJSON *traces;	  /* [{"rule","trace"}] */
	cJSON *persisted; /* key -> {"rule","record"} */
	cJSON *watches;	  /* [{"filter","add"}] */
	int changed;
	bool have_location;
	double lat, lon;
	/* called after each set is recorded: a device that reacts */
	void (*on_set)(struct fake *f, const char *device_id, const cJSON *state);
};

static int64_t h_now(void *user)
{
	return ((struct fake *)user)->now;
}

static int h_set(void *user, const char *device_id, const cJSON *state, char *err, size_t len)
{
	struct fake *f = user;
	(void)err;
	(void)len;
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	cJSON_AddStringToObject(o, "device", device_id);
	cJSON_AddItemToObject(o, "state", cJSON_Duplicate(state, 1));
	cJSON_AddNumberToObject(o, "at", (double)f->now);
	cJSON_AddItemToArray(f->sets, o);
	if (f->on_set)
		f->on_set(f, device_id, state);
	return 0;
}

static int h_scene(void *user, const char *scene_id, char *err, size_t len)
{
	(void)err;
	(void)len;
	cJSON_AddItemToArray(((struct fake *)user)->scenes, cJSON_CreateString(scene_id));
	return 0;
}

static int h_publish(void *user, const char *topic, const char *payload, bool retain)
{
	struct fake *f = user;
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	cJSON_AddStringToObject(o, "topic", topic);
	cJSON_AddStringToObject(o, "payload", payload);
	cJSON_AddBoolToObject(o, "retain", retain);
	cJSON_AddNumberToObject(o, "at", (double)f->now);
	cJSON_AddItemToArray(f->publishes, o);
	return 0;
}

static void h_fired(void *user, const cJSON *record)
{
	cJSON_AddItemToArray(((struct fake *)user)->fired, cJSON_Duplicate(record, 1));
}

static void h_trace(void *user, const char *rule_id, const cJSON *trace)
{
	struct fake *f = user;
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	cJSON_AddStringToObject(o, "rule", rule_id);
	cJSON_AddItemToObject(o, "trace", cJSON_Duplicate(trace, 1));
	cJSON_AddItemToArray(f->traces, o);
}

static void h_persist(void *user, const char *key, const char *rule_id, const cJSON *record)
{
	struct fake *f = user;
	cJSON_DeleteItemFromObjectCaseSensitive(f->persisted, key);
	if (!record)
		return;
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	cJSON_AddStringToObject(o, "rule", rule_id);
	cJSON_AddItemToObject(o, "record", cJSON_Duplicate(record, 1));
	cJSON_AddItemToObject(f->persisted, key, o);
}

static void h_changed(void *user)
{
	((struct fake *)user)->changed++;
}

static void h_mqtt_watch(void *user, const char *filter, bool add)
{
	struct fake *f = user;
	cJSON *o = cJSON_CreateObject();
	assert_non_null(o);
	cJSON_AddStringToObject(o, "filter", filter);
	cJSON_AddBoolToObject(o, "add", add);
	cJSON_AddItemToArray(f->watches, o);
}

static bool h_location(void *user, double *lat, double *lon)
{
	struct fake *f = user;
	if (!f->have_location)
		return false;
	*lat = f->lat;
	*lon = f->lon;
	return true;
}

static struct rules *engine_new(struct fake *f)
{
	struct rules_host host = {
		.user = f,
		.now_ms = h_now,
		.set = h_set,
		.scene = h_scene,
		.publish = h_publish,
		.fired = h_fired,
		.trace = h_trace,
		.persist = h_persist,
		.changed = h_changed,
		.mqtt_watch = h_mqtt_watch,
		.location = h_location,
	};
	struct rules *r = rules_new(&host, f->reg);
	assert_non_null(r);
	return r;
}

/* ---------------------------------------------------------------------------
 * Devices and state
 * ------------------------------------------------------------------------- */

static struct device *add_device(struct fake *f, const char *id, const char *name,
				 const struct hearth_capability *caps, size_t n)
{
	struct device *d = NULL;
	struct cap *owned = NULL;
	char err[256] = "";
	if (registry_add(f->reg, id, name, "zigbee", &d, err, sizeof(err)) != 0)
		fail_msg("registry_add %s: %s", id, err);
	if (cap_array_from_abi(caps, n, &owned, err, sizeof(err)) != 0)
		fail_msg("caps of %s: %s", id, err);
	registry_set_caps(d, owned, n);
	return d;
}

#define RW (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET)
#define RO HEARTH_ACCESS_PUBLISHED
#define MINMAX (HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX)

static const struct hearth_capability light_caps[] = {
	{.name = "state",
	 .type = HEARTH_CAP_BINARY,
	 .access = RW,
	 .value_on = HEARTH_STRING("ON"),
	 .value_off = HEARTH_STRING("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RW, .flags = MINMAX, .max = 254},
	{.name = "color_temp",
	 .type = HEARTH_CAP_NUMERIC,
	 .access = RW,
	 .flags = MINMAX,
	 .min = 153,
	 .max = 500,
	 .unit = "mired"},
};

static const struct hearth_capability motion_caps[] = {
	{.name = "occupancy",
	 .type = HEARTH_CAP_BINARY,
	 .access = RO,
	 .value_on = HEARTH_BOOL(true),
	 .value_off = HEARTH_BOOL(false)},
	{.name = "illuminance", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "lx"},
};

static const char *const button_actions[] = {"single", "double", "long"};
static const struct hearth_capability button_caps[] = {
	{.name = "action",
	 .type = HEARTH_CAP_ENUM,
	 .access = RO,
	 .values = button_actions,
	 .n_values = 3},
};

static const struct hearth_capability thermo_caps[] = {
	{.name = "temperature", .type = HEARTH_CAP_NUMERIC, .access = RO, .unit = "°C"},
};

/* Merge, stamp and tell the engine, as the hub does for a state report. */
static void change(struct fake *f, struct device *d, const struct hearth_attr *attrs, size_t n)
{
	const char *changed[16];
	assert_true(n <= ARRAY_LEN(changed));
	int k = registry_merge(d, attrs, n, changed);
	assert_true(k >= 0);
	if (k == 0)
		return;
	assert_int_equal(registry_stamp(d, changed, (size_t)k, f->now), 0);
	if (f->rules)
		rules_on_state(f->rules, d, changed, (size_t)k);
}

static void put_num(struct fake *f, struct device *d, const char *name, double v)
{
	struct hearth_attr a = {name, HEARTH_NUMBER(v)};
	change(f, d, &a, 1);
}

static void put_bool(struct fake *f, struct device *d, const char *name, bool v)
{
	struct hearth_attr a = {name, HEARTH_BOOL(v)};
	change(f, d, &a, 1);
}

static void put_str(struct fake *f, struct device *d, const char *name, const char *v)
{
	struct hearth_attr a = {name, HEARTH_STRING(v)};
	change(f, d, &a, 1);
}

/* A button press: the event the hub forwards, with n to tell presses apart. */
static void press(struct fake *f, const char *action, int n)
{
	cJSON *data = cJSON_CreateObject();
	assert_non_null(data);
	cJSON_AddStringToObject(data, "action", action);
	cJSON_AddNumberToObject(data, "n", n);
	rules_on_event(f->rules, f->button, "action", data);
	cJSON_Delete(data);
}

static void mqtt_in(struct fake *f, const char *topic, const char *payload)
{
	rules_on_mqtt(f->rules, topic, payload, strlen(payload));
}

/* ---------------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------------- */

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->now = BASE_MS + 12 * HOUR;
	f->reg = registry_new();
	f->sets = cJSON_CreateArray();
	f->scenes = cJSON_CreateArray();
	f->publishes = cJSON_CreateArray();
	f->fired = cJSON_CreateArray();
	f->traces = cJSON_CreateArray();
	f->persisted = cJSON_CreateObject();
	f->watches = cJSON_CreateArray();
	if (!f->reg || !f->sets || !f->scenes || !f->publishes || !f->fired || !f->traces ||
	    !f->persisted || !f->watches)
		return -1;
	f->lat = 52.37;
	f->lon = 4.90;
	f->light = add_device(f, LIGHT, "hall/light", light_caps, ARRAY_LEN(light_caps));
	f->motion = add_device(f, MOTION, "hall/motion", motion_caps, ARRAY_LEN(motion_caps));
	f->button = add_device(f, BUTTON, "hall/button", button_caps, ARRAY_LEN(button_caps));
	f->thermo = add_device(f, THERMO, "living/thermo", thermo_caps, ARRAY_LEN(thermo_caps));
	/* initial state, an hour old, before the engine exists */
	int64_t t = f->now;
	f->now -= HOUR;
	put_str(f, f->light, "state", "OFF");
	put_num(f, f->light, "brightness", 0);
	put_num(f, f->light, "color_temp", 300);
	put_bool(f, f->motion, "occupancy", false);
	put_num(f, f->motion, "illuminance", 100);
	put_num(f, f->thermo, "temperature", 20);
	f->now = t;
	f->rules = engine_new(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;
	rules_free(f->rules);
	registry_free(f->reg);
	cJSON_Delete(f->sets);
	cJSON_Delete(f->scenes);
	cJSON_Delete(f->publishes);
	cJSON_Delete(f->fired);
	cJSON_Delete(f->traces);
	cJSON_Delete(f->persisted);
	cJSON_Delete(f->watches);
	free(f);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

/* JSON from text written with single quotes. */
static cJSON *J(const char *text)
{
	char *s = strdup(text);
	assert_non_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	cJSON *j = cJSON_Parse(s);
	if (!j)
		fail_msg("test JSON does not parse: %s", s);
	free(s);
	return j;
}

static int try_rule(struct fake *f, const char *text, enum rules_source src, char *err,
		    size_t len)
{
	cJSON *def = J(text);
	int rc = rules_add(f->rules, def, src, err, len);
	cJSON_Delete(def);
	return rc;
}

static void add_rule(struct fake *f, const char *text)
{
	char err[512] = "";
	int rc = try_rule(f, text, RULES_SOURCE_API, err, sizeof(err));
	if (rc)
		fail_msg("rules_add: %d %s", rc, err);
}

/* Move the clock by ms, running every deadline at its own instant. */
static void advance(struct fake *f, int64_t ms)
{
	int64_t target = f->now + ms;
	int steps = 0;
	while (f->rules) {
		int64_t d = rules_next_deadline(f->rules);
		if (d < 0 || d > target)
			break;
		if (d > f->now)
			f->now = d;
		rules_tick(f->rules);
		if (++steps > ADVANCE_STEPS_MAX)
			fail_msg("advance: deadlines never end");
	}
	f->now = target;
}

static void advance_to(struct fake *f, int64_t t)
{
	assert_true(t >= f->now);
	advance(f, t - f->now);
}

static int count(const cJSON *array)
{
	return cJSON_GetArraySize(array);
}

static const cJSON *item(const cJSON *array, int i)
{
	const cJSON *it = cJSON_GetArrayItem(array, i);
	if (!it)
		fail_msg("no item %d (there are %d)", i, count(array));
	return it;
}

static const cJSON *field(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

static int64_t num_of(const cJSON *o, const char *key)
{
	const cJSON *v = field(o, key);
	if (!cJSON_IsNumber(v))
		fail_msg("'%s' is not a number", key);
	return (int64_t)v->valuedouble;
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = field(o, key);
	if (!cJSON_IsString(v))
		fail_msg("'%s' is not text", key);
	return v->valuestring;
}

static void expect_json(const char *label, const cJSON *got, const char *want_text)
{
	cJSON *want = J(want_text);
	bool same = cJSON_Compare(got, want, true);
	cJSON_Delete(want);
	if (!same) {
		char *g = got ? cJSON_PrintUnformatted(got) : NULL;
		print_error("%s:\n  got  %s\n  want %s\n", label, g ? g : "(null)", want_text);
		cJSON_free(g);
		fail();
	}
}

/* The i-th set went to device with exactly this state, at this time. */
static void expect_set(struct fake *f, int i, const char *device, const char *state, int64_t at)
{
	const cJSON *s = item(f->sets, i);
	assert_string_equal(str_of(s, "device"), device);
	expect_json("set state", field(s, "state"), state);
	if (at >= 0)
		assert_int_equal(num_of(s, "at"), at);
}

static int publishes_to(struct fake *f, const char *topic)
{
	int n = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, f->publishes) n += strcmp(str_of(p, "topic"), topic) == 0;
	return n;
}

static const cJSON *last(const cJSON *array)
{
	return item(array, count(array) - 1);
}

/* Firing records of one rule, counted by outcome prefix (NULL: all). */
static int fired_with(struct fake *f, const char *rule, const char *outcome_prefix)
{
	int n = 0;
	const cJSON *rec;
	cJSON_ArrayForEach(rec, f->fired)
	{
		if (strcmp(str_of(rec, "rule"), rule) != 0)
			continue;
		if (!outcome_prefix ||
		    strncmp(str_of(rec, "outcome"), outcome_prefix, strlen(outcome_prefix)) == 0)
			n++;
	}
	return n;
}

/* The newest trace the host got for a rule. */
static const cJSON *last_trace(struct fake *f, const char *rule)
{
	const cJSON *found = NULL, *t;
	cJSON_ArrayForEach(t, f->traces) if (strcmp(str_of(t, "rule"), rule) == 0) found =
		field(t, "trace");
	if (!found)
		fail_msg("no trace for rule '%s'", rule);
	return found;
}

static bool text_contains(const cJSON *j, const char *needle)
{
	char *s = cJSON_PrintUnformatted(j);
	bool yes = s && strstr(s, needle);
	cJSON_free(s);
	return yes;
}

static void trigger_now(struct fake *f, const char *id, bool check)
{
	char err[256] = "";
	int rc = rules_trigger(f->rules, id, check, err, sizeof(err));
	if (rc)
		fail_msg("rules_trigger %s: %d %s", id, rc, err);
}

/* Restart: free the engine (durable records stay with the host), build a
 * new one, add the rules again and resume every persisted timer. Returns
 * the restore codes in key order. */
static void restart_engine(struct fake *f, const char *const *rules_text, size_t n_rules,
			   int *codes, size_t n_codes)
{
	rules_free(f->rules);
	f->rules = engine_new(f);
	for (size_t i = 0; i < n_rules; i++)
		add_rule(f, rules_text[i]);
	/* restoring persists again: walk a copy */
	cJSON *copy = cJSON_Duplicate(f->persisted, 1);
	assert_non_null(copy);
	size_t k = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, copy)
	{
		int rc = rules_restore_timer(f->rules, e->string, str_of(e, "rule"),
					     field(e, "record"));
		if (k < n_codes)
			codes[k] = rc;
		k++;
	}
	assert_int_equal(k, n_codes);
	cJSON_Delete(copy);
}

/* ---------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------- */

#define TRIG_START "'triggers':[{'type':'start'}]"
#define ACT_PUB "'actions':[{'type':'publish','topic':'t'}]"
#define BODY TRIG_START "," ACT_PUB

struct bad_rule {
	const char *json;
	int rc;
	const char *err;
};

static const struct bad_rule bad_rules[] = {
	{"{'id':'r'," BODY ",'colour':'red'}", -EINVAL, "rule 'r': colour: unknown key"},
	{"{" BODY "}", -EINVAL, "rule '?': id: is required"},
	{"{'id':'a b'," BODY "}", -EINVAL,
	 "rule 'a b': id: 'a b' is not 1..64 of letters, digits, '-', '_', '.'"},
	{"{'id':'a/b'," BODY "}", -EINVAL,
	 "rule 'a/b': id: 'a/b' is not 1..64 of letters, digits, '-', '_', '.'"},
	{"{'id':'r','triggers':[{'type':'motion'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].type: unknown trigger type 'motion' (state, numeric, event, time, "
	 "cron, sun, mqtt, device_available, start)"},
	{"{'id':'r','triggers':[{'type':'start'},{'type':'state','device':'attic/lamp',"
	 "'attribute':'state'}]," ACT_PUB "}",
	 -EINVAL, "rule 'r': triggers[1].device: no device is named 'attic/lamp'"},
	{"{'id':'r','triggers':[{'type':'state','device':'hall/motion','attribute':'colour'}]," ACT_PUB
	 "}",
	 -EINVAL, "rule 'r': triggers[0].attribute: hall/motion has no attribute 'colour'"},
	{"{'id':'r','triggers':[{'type':'state','device':'hall/motion','attribute':'occupancy',"
	 "'for':'2m'}]," ACT_PUB "}",
	 -EINVAL, "rule 'r': triggers[0]: 'for' needs 'to': the state that has to hold"},
	{"{'id':'r','triggers':[{'type':'numeric','device':'living/thermo','attribute':'temperature'}],"
	 ACT_PUB "}",
	 -EINVAL, "rule 'r': triggers[0]: needs 'above', 'below' or both"},
	{"{'id':'r','triggers':[{'type':'numeric','device':'living/thermo','attribute':'temperature',"
	 "'above':30,'below':10}]," ACT_PUB "}",
	 -EINVAL, "rule 'r': triggers[0]: 'above' 30 is not below 'below' 10: the range is empty"},
	{"{'id':'r','triggers':[{'type':'numeric','device':'living/thermo','attribute':'temperature',"
	 "'above':10,'below':10}]," ACT_PUB "}",
	 -EINVAL, "rule 'r': triggers[0]: 'above' 10 is not below 'below' 10: the range is empty"},
	{"{'id':'r','triggers':[{'type':'state','device':'hall/motion','attribute':'occupancy',"
	 "'to':true,'for':'5 minutes'}]," ACT_PUB "}",
	 -EINVAL,
	 "rule 'r': triggers[0].for: is not a duration such as \"90s\", \"5m\", \"1h30m\" or "
	 "\"00:05:00\""},
	{"{'id':'r','triggers':[{'type':'state','device':'hall/motion','attribute':'occupancy',"
	 "'to':true,'for':'-5m'}]," ACT_PUB "}",
	 -EINVAL, "rule 'r': triggers[0].for: must not be negative"},
	{"{'id':'r','triggers':[{'type':'cron','cron':'0 24 * * *'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].cron: cron field 2 (hour): 24 is out of range 0..23"},
	{"{'id':'r','triggers':[{'type':'cron','cron':'every day'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].cron: cron: expected 5 fields (minute hour day-of-month month "
	 "day-of-week), got 2"},
	{"{'id':'r','triggers':[{'type':'time','at':'25:00'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].at: '25:00' is not a time of day HH:MM or HH:MM:SS"},
	{"{'id':'r','triggers':[{'type':'time','at':'7.30'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].at: '7.30' is not a time of day HH:MM or HH:MM:SS"},
	{"{'id':'r','triggers':[{'type':'time','at':'07:30','weekdays':['mon','funday']}]," ACT_PUB
	 "}",
	 -EINVAL,
	 "rule 'r': triggers[0].weekdays: 'funday' is not a day (mon, tue, wed, thu, fri, sat, sun)"},
	{"{'id':'r','triggers':[{'type':'time','at':'07:30','weekdays':[]}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].weekdays: must be a list such as [\"mon\", \"fri\"]"},
	{"{'id':'r','triggers':[{'type':'mqtt','topic':'home/#/x'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].topic: 'home/#/x' is not a valid MQTT topic filter"},
	{"{'id':'r','triggers':[{'type':'mqtt','topic':'home/x+'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': triggers[0].topic: 'home/x+' is not a valid MQTT topic filter"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'set','device':'hall/motion',"
	 "'state':{'occupancy':true}}]}",
	 -EINVAL, "rule 'r': actions[0].state.occupancy: is read-only on hall/motion"},
	{"{'id':'hall'," TRIG_START ",'actions':[{'type':'set','device':'hall/light','state':{'state':"
	 "'ON'}},{'type':'delay','duration':'1s'},{'type':'set','device':'hall/light',"
	 "'state':{'state':'ON','brightness':300}}]}",
	 -EINVAL, "rule 'hall': actions[2].state.brightness: 300 is above the maximum 254"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'set','device':'hall/light',"
	 "'state':{'colour':'red'}}]}",
	 -EINVAL, "rule 'r': actions[0].state.colour: hall/light has no attribute 'colour'"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'shell','command':'reboot'}]}", -EINVAL,
	 "rule 'r': actions[0].type: unknown action type 'shell' (set, scene, delay, wait, publish, "
	 "rule, choose, repeat)"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'choose','choose':[{'actions':[{'type':"
	 "'publish','topic':'t'}]}]}]}",
	 -EINVAL, "rule 'r': actions[0].choose[0].conditions: must be a list of conditions"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'repeat','count':2,'while':[{'type':'time',"
	 "'after':'10:00'}],'actions':[{'type':'publish','topic':'t'}]}]}",
	 -EINVAL, "rule 'r': actions[0]: a repeat needs exactly one of 'count', 'while' or 'until'"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'repeat','count':0,"
	 "'actions':[{'type':'publish','topic':'t'}]}]}",
	 -EINVAL, "rule 'r': actions[0].count: must be a whole number from 1 to 1000"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'repeat','count':5000,"
	 "'actions':[{'type':'publish','topic':'t'}]}]}",
	 -EINVAL, "rule 'r': actions[0].count: must be a whole number from 1 to 1000"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'delay'}]}", -EINVAL,
	 "rule 'r': actions[0].duration: is required"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'wait','trigger':{'type':'time','at':'10:00'}}]}",
	 -EINVAL,
	 "rule 'r': actions[0].trigger: a wait can be for state, numeric, event, mqtt or "
	 "device_available"},
	{"{'id':'r'," TRIG_START ",'actions':[{'type':'publish','topic':'a/+'}]}", -EINVAL,
	 "rule 'r': actions[0].topic: 'a/+' is not a topic one can publish to"},
	{"{'id':'r'," TRIG_START ",'conditions':[{'type':'weather'}]," ACT_PUB "}", -EINVAL,
	 "rule 'r': conditions[0].type: unknown condition type 'weather' (state, numeric, time, sun, "
	 "and, or, not, trigger)"},
	{"{'id':'r'," TRIG_START ",'conditions':[{'type':'or','conditions':[{'type':'numeric',"
	 "'device':'living/thermo','attribute':'temperature'}]}]," ACT_PUB "}",
	 -EINVAL, "rule 'r': conditions[0].conditions[0]: needs 'above', 'below' or both"},
	{"{'id':'r','mode':'sometimes'," BODY "}", -EINVAL,
	 "rule 'r': mode: 'sometimes' is not single, restart, queued or parallel"},
	{"{'id':'r','max':65," BODY "}", -EINVAL, "rule 'r': max: must be a whole number from 1 to 64"},
	{"{'id':'r','triggers':[]," ACT_PUB "}", -EINVAL, "rule 'r': triggers: must be a non-empty list"},
	{"{'id':'r'," TRIG_START ",'actions':[]}", -EINVAL,
	 "rule 'r': actions: must be a non-empty list of actions"},
};

static void test_validation_table(void **state)
{
	struct fake *f = *state;
	for (size_t i = 0; i < ARRAY_LEN(bad_rules); i++) {
		char err[512] = "";
		int before = f->changed;
		int rc = try_rule(f, bad_rules[i].json, RULES_SOURCE_API, err, sizeof(err));
		if (rc != bad_rules[i].rc || strcmp(err, bad_rules[i].err) != 0)
			fail_msg("case %zu: got %d \"%s\"\n  want %d \"%s\"", i, rc, err,
				 bad_rules[i].rc, bad_rules[i].err);
		/* on error nothing changes */
		assert_int_equal(rules_count(f->rules), 0);
		assert_int_equal(f->changed, before);
	}
}

/* A rule nesting repeats (or conditions) depth levels deep. */
static char *nested_repeats(int depth)
{
	size_t cap = 200 + (size_t)depth * 120;
	char *s = malloc(cap);
	assert_non_null(s);
	int n = snprintf(s, cap, "{'id':'deep'," TRIG_START ",'actions':[");
	for (int i = 0; i < depth; i++)
		n += snprintf(s + n, cap - (size_t)n, "{'type':'repeat','count':2,'actions':[");
	n += snprintf(s + n, cap - (size_t)n, "{'type':'publish','topic':'t'}");
	for (int i = 0; i < depth; i++)
		n += snprintf(s + n, cap - (size_t)n, "]}");
	snprintf(s + n, cap - (size_t)n, "]}");
	return s;
}

static char *nested_conditions(int depth)
{
	size_t cap = 300 + (size_t)depth * 60;
	char *s = malloc(cap);
	assert_non_null(s);
	int n = snprintf(s, cap, "{'id':'deep'," TRIG_START ",'conditions':[");
	for (int i = 0; i < depth; i++)
		n += snprintf(s + n, cap - (size_t)n, "{'type':'not','conditions':[");
	n += snprintf(s + n, cap - (size_t)n, "{'type':'time','after':'10:00'}");
	for (int i = 0; i < depth; i++)
		n += snprintf(s + n, cap - (size_t)n, "]}");
	snprintf(s + n, cap - (size_t)n, "]," ACT_PUB "}");
	return s;
}

static void test_validation_nesting(void **state)
{
	struct fake *f = *state;
	char err[512] = "";
	/* top-level actions are level 1: seven nested repeats reach 8 */
	char *ok = nested_repeats(7);
	assert_int_equal(try_rule(f, ok, RULES_SOURCE_API, err, sizeof(err)), 0);
	free(ok);
	char *deep = nested_repeats(8);
	assert_int_equal(try_rule(f, deep, RULES_SOURCE_API, err, sizeof(err)), -EINVAL);
	free(deep);
	assert_non_null(strstr(err, "nest deeper than 8"));
	assert_string_equal(err, "rule 'deep': actions[0].actions[0].actions[0].actions[0].actions[0]"
				 ".actions[0].actions[0].actions[0].actions: actions nest deeper "
				 "than 8");
	char *conds = nested_conditions(9);
	assert_int_equal(try_rule(f, conds, RULES_SOURCE_API, err, sizeof(err)), -EINVAL);
	free(conds);
	assert_non_null(strstr(err, "conditions nest deeper than 8"));
	/* the good one is still there, unchanged */
	assert_int_equal(rules_count(f->rules), 1);
	assert_true(rules_exists(f->rules, "deep"));
}

static void test_validation_sun_needs_location(void **state)
{
	struct fake *f = *state;
	char err[512] = "";
	static const char trig[] = "{'id':'dusk','triggers':[{'type':'sun','event':'sunset'}]," ACT_PUB
				   "}";
	static const char cond[] = "{'id':'dark'," TRIG_START ",'conditions':[{'type':'or',"
				   "'conditions':[{'type':'sun','after':'sunset'}]}]," ACT_PUB "}";
	f->have_location = false;
	assert_int_equal(try_rule(f, trig, RULES_SOURCE_API, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "rule 'dusk': "));
	assert_non_null(strstr(err, "[location]"));
	assert_int_equal(try_rule(f, cond, RULES_SOURCE_API, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[location]"));
	assert_int_equal(rules_count(f->rules), 0);
	f->have_location = true;
	assert_int_equal(try_rule(f, trig, RULES_SOURCE_API, err, sizeof(err)), 0);
	assert_int_equal(try_rule(f, cond, RULES_SOURCE_API, err, sizeof(err)), 0);
	/* a bad sun event name is a path error */
	assert_int_equal(try_rule(f, "{'id':'x','triggers':[{'type':'sun','event':'noon'}]," ACT_PUB
				     "}",
				  RULES_SOURCE_API, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err,
			    "rule 'x': triggers[0].event: 'noon' is neither \"sunrise\" nor \"sunset\"");
}

static void test_validation_sources(void **state)
{
	struct fake *f = *state;
	char err[512] = "";
	static const char file_v1[] = "{'id':'f'," TRIG_START
				      ",'actions':[{'type':'publish','topic':'file'}]}";
	static const char api_v1[] = "{'id':'f'," TRIG_START
				     ",'actions':[{'type':'publish','topic':'api'}]}";
	/* a file rule may not be replaced through the API */
	assert_int_equal(try_rule(f, file_v1, RULES_SOURCE_FILE, err, sizeof(err)), 0);
	assert_int_equal(try_rule(f, api_v1, RULES_SOURCE_API, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "rule 'f' comes from a file"));
	assert_int_equal(rules_source_of(f->rules, "f"), RULES_SOURCE_FILE);
	trigger_now(f, "f", false);
	assert_int_equal(publishes_to(f, "file"), 1);
	/* even with the same text, the API cannot claim it */
	assert_int_equal(try_rule(f, file_v1, RULES_SOURCE_API, err, sizeof(err)), -EPERM);
	/* a file rule replaces an API rule of the same id */
	static const char g_api[] = "{'id':'g'," TRIG_START
				    ",'actions':[{'type':'publish','topic':'g-api'}]}";
	static const char g_file[] = "{'id':'g'," TRIG_START
				     ",'actions':[{'type':'publish','topic':'g-file'}]}";
	assert_int_equal(try_rule(f, g_api, RULES_SOURCE_API, err, sizeof(err)), 0);
	assert_int_equal(rules_source_of(f->rules, "g"), RULES_SOURCE_API);
	assert_int_equal(try_rule(f, g_file, RULES_SOURCE_FILE, err, sizeof(err)), 0);
	assert_int_equal(rules_source_of(f->rules, "g"), RULES_SOURCE_FILE);
	trigger_now(f, "g", false);
	assert_int_equal(publishes_to(f, "g-file"), 1);
	assert_int_equal(publishes_to(f, "g-api"), 0);
	assert_int_equal(rules_count(f->rules), 2);
	/* removing a source removes only its rules */
	assert_int_equal(try_rule(f, "{'id':'h'," BODY "}", RULES_SOURCE_API, err, sizeof(err)), 0);
	rules_remove_source(f->rules, RULES_SOURCE_FILE);
	assert_int_equal(rules_count(f->rules), 1);
	assert_true(rules_exists(f->rules, "h"));
	assert_int_equal(rules_remove(f->rules, "f"), -ENOENT);
}

/* ---------------------------------------------------------------------------
 * Names and ids
 * ------------------------------------------------------------------------- */

static const char named_rule[] =
	"{'id':'names','triggers':[{'type':'state','device':'hall/motion','attribute':'occupancy',"
	"'to':true}],'conditions':[{'type':'numeric','device':'living/thermo',"
	"'attribute':'temperature','below':40}],"
	"'actions':[{'type':'set','device':'hall/light','state':{'state':'ON'}},"
	"{'type':'wait','trigger':{'type':'event','device':'hall/button','action':'single'},"
	"'timeout':'1m'}]}";

static void test_names_resolved_to_ids(void **state)
{
	struct fake *f = *state;
	add_rule(f, named_rule);
	cJSON *def = rules_definition(f->rules, "names");
	assert_non_null(def);
	const cJSON *trig = item(field(def, "triggers"), 0);
	const cJSON *cond = item(field(def, "conditions"), 0);
	const cJSON *set = item(field(def, "actions"), 0);
	const cJSON *wait = field(item(field(def, "actions"), 1), "trigger");
	assert_string_equal(str_of(trig, "device"), MOTION);
	assert_string_equal(str_of(cond, "device"), THERMO);
	assert_string_equal(str_of(set, "device"), LIGHT);
	assert_string_equal(str_of(wait, "device"), BUTTON);
	cJSON_Delete(def);

	cJSON *all = rules_to_json(f->rules);
	assert_int_equal(count(all), 1);
	const cJSON *shown = item(all, 0);
	assert_string_equal(str_of(item(field(shown, "triggers"), 0), "device"), "hall/motion");
	assert_string_equal(str_of(item(field(shown, "actions"), 0), "device"), "hall/light");
	assert_string_equal(str_of(field(item(field(shown, "actions"), 1), "trigger"), "device"),
			    "hall/button");
	assert_string_equal(str_of(shown, "source"), "api");
	assert_true(cJSON_IsTrue(field(shown, "enabled")));
	assert_int_equal(num_of(shown, "fired_count"), 0);
	cJSON_Delete(all);

	/* a rename shows through; the stored form keeps the id */
	char err[256];
	assert_int_equal(registry_rename(f->reg, f->light, "hall/ceiling", err, sizeof(err)), 0);
	all = rules_to_json(f->rules);
	assert_string_equal(str_of(item(field(item(all, 0), "actions"), 0), "device"),
			    "hall/ceiling");
	cJSON_Delete(all);
	def = rules_definition(f->rules, "names");
	assert_string_equal(str_of(item(field(def, "actions"), 0), "device"), LIGHT);
	cJSON_Delete(def);
	/* and the rule still drives the renamed device */
	put_bool(f, f->motion, "occupancy", true);
	assert_int_equal(count(f->sets), 1);
	expect_set(f, 0, LIGHT, "{'state':'ON'}", f->now);
	cJSON *reads = NULL, *writes = NULL;
	assert_int_equal(rules_links(f->rules, "names", &reads, &writes), 0);
	expect_json("writes", writes, "['" LIGHT "']");
	assert_int_equal(count(reads), 3);
	cJSON_Delete(reads);
	cJSON_Delete(writes);
	assert_null(rules_definition(f->rules, "nope"));
}

static void test_names_ids_accepted(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'byid','triggers':[{'type':'state','device':'" MOTION
		    "','attribute':'occupancy','to':true}],'actions':[{'type':'set','device':'" LIGHT
		    "','state':{'brightness':10}}]}");
	put_bool(f, f->motion, "occupancy", true);
	assert_int_equal(count(f->sets), 1);
	expect_set(f, 0, LIGHT, "{'brightness':10}", -1);
	/* an identical definition changes nothing */
	int before = f->changed;
	add_rule(f, "{'id':'byid','triggers':[{'type':'state','device':'" MOTION
		    "','attribute':'occupancy','to':true}],'actions':[{'type':'set','device':'" LIGHT
		    "','state':{'brightness':10}}]}");
	assert_int_equal(f->changed, before);
}

/* ---------------------------------------------------------------------------
 * State triggers
 * ------------------------------------------------------------------------- */

static void test_state_from_to(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'ft','triggers':[{'type':'state','device':'hall/motion','attribute':"
		    "'occupancy','from':false,'to':true}],'actions':[{'type':'publish','topic':'on'}]}");
	put_bool(f, f->motion, "occupancy", true);
	assert_int_equal(publishes_to(f, "on"), 1);
	put_bool(f, f->motion, "occupancy", false);
	assert_int_equal(publishes_to(f, "on"), 1);
	put_bool(f, f->motion, "occupancy", true);
	assert_int_equal(publishes_to(f, "on"), 2);
	const cJSON *rec = last(f->fired);
	assert_string_equal(str_of(rec, "rule"), "ft");
	assert_string_equal(str_of(rec, "trigger"), "state");
	assert_string_equal(str_of(rec, "trigger_id"), "0");
	assert_string_equal(str_of(rec, "outcome"), "ok");
	assert_int_equal(num_of(rec, "time"), f->now);
	assert_null(field(rec, "missed"));
	/* from alone: any change away from false */
	add_rule(f, "{'id':'from','triggers':[{'type':'state','device':'hall/light','attribute':"
		    "'state','from':'OFF'}],'actions':[{'type':'publish','topic':'left-off'}]}");
	put_str(f, f->light, "state", "ON");
	put_str(f, f->light, "state", "OFF");
	assert_int_equal(publishes_to(f, "left-off"), 1);
}

static void test_state_to_list_and_unchanged(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'list','triggers':[{'type':'state','device':'living/thermo','attribute':"
		    "'temperature','to':[21,22]}],'actions':[{'type':'publish','topic':'mild'}]}");
	add_rule(f, "{'id':'any','triggers':[{'type':'state','device':'living/thermo','attribute':"
		    "'temperature'}],'actions':[{'type':'publish','topic':'any'}]}");
	static const double seq[] = {21, 22, 23, 21};
	for (size_t i = 0; i < ARRAY_LEN(seq); i++)
		put_num(f, f->thermo, "temperature", seq[i]);
	assert_int_equal(publishes_to(f, "mild"), 3);
	assert_int_equal(publishes_to(f, "any"), 4);
	/* the same value again: registry_merge reports nothing */
	put_num(f, f->thermo, "temperature", 21);
	/* and should a caller name it anyway, the engine sees no change */
	const char *names[] = {"temperature"};
	rules_on_state(f->rules, f->thermo, names, 1);
	assert_int_equal(publishes_to(f, "mild"), 3);
	assert_int_equal(publishes_to(f, "any"), 4);
	/* a change to an attribute nobody watches fires nothing */
	put_num(f, f->light, "color_temp", 400);
	assert_int_equal(count(f->publishes), 7);
}

static const char hold_rule[] =
	"{'id':'hold','triggers':[{'type':'state','device':'hall/motion','attribute':'occupancy',"
	"'to':true,'for':'2m'}],'actions':[{'type':'publish','topic':'held'}]}";

static void test_state_for_exact(void **state)
{
	struct fake *f = *state;
	add_rule(f, hold_rule);
	int64_t t0 = f->now;
	put_bool(f, f->motion, "occupancy", true);
	assert_int_equal(rules_next_deadline(f->rules), t0 + 2 * MIN);
	advance(f, 2 * MIN - 1);
	assert_int_equal(publishes_to(f, "held"), 0);
	advance(f, 1);
	assert_int_equal(publishes_to(f, "held"), 1);
	assert_int_equal(num_of(last(f->publishes), "at"), t0 + 2 * MIN);
	/* fires once, not again while the state stays */
	advance(f, HOUR);
	assert_int_equal(publishes_to(f, "held"), 1);
	/* the snapshot is the state when the hold began */
	const cJSON *trig = field(last_trace(f, "hold"), "trigger");
	assert_true(cJSON_IsTrue(field(trig, "to")));
	assert_true(cJSON_IsFalse(field(trig, "from")));
}

static void test_state_for_cancelled(void **state)
{
	struct fake *f = *state;
	add_rule(f, hold_rule);
	put_bool(f, f->motion, "occupancy", true);
	assert_non_null(field(f->persisted, "hold:hold:0"));
	advance(f, 1 * MIN);
	put_bool(f, f->motion, "occupancy", false);
	/* the durable record goes with the hold */
	assert_null(field(f->persisted, "hold:hold:0"));
	advance(f, 10 * MIN);
	assert_int_equal(publishes_to(f, "held"), 0);
	/* a new hold starts from the new change */
	int64_t t1 = f->now;
	put_bool(f, f->motion, "occupancy", true);
	advance(f, 10 * MIN);
	assert_int_equal(publishes_to(f, "held"), 1);
	assert_int_equal(num_of(last(f->publishes), "at"), t1 + 2 * MIN);
}

static void test_state_for_not_restarted(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'warm','triggers':[{'type':'state','device':'living/thermo','attribute':"
		    "'temperature','to':[21,22],'for':'1m'}],'actions':[{'type':'publish',"
		    "'topic':'warm'}]}");
	int64_t t0 = f->now;
	put_num(f, f->thermo, "temperature", 21);
	advance(f, 30 * SEC);
	/* another value that matches keeps the hold as it is */
	put_num(f, f->thermo, "temperature", 22);
	advance(f, 10 * SEC);
	const char *names[] = {"temperature"};
	rules_on_state(f->rules, f->thermo, names, 1);
	advance(f, 20 * SEC - 1);
	assert_int_equal(publishes_to(f, "warm"), 0);
	advance(f, 1);
	assert_int_equal(publishes_to(f, "warm"), 1);
	assert_int_equal(num_of(last(f->publishes), "at"), t0 + MIN);
	advance(f, 5 * MIN);
	assert_int_equal(publishes_to(f, "warm"), 1);
}

/* ---------------------------------------------------------------------------
 * Numeric triggers
 * ------------------------------------------------------------------------- */

static void test_numeric_crossing(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'hot','triggers':[{'type':'numeric','device':'living/thermo','attribute':"
		    "'temperature','above':25}],'actions':[{'type':'publish','topic':'hot'}]}");
	add_rule(f, "{'id':'band','triggers':[{'type':'numeric','device':'living/thermo',"
		    "'attribute':'temperature','above':18,'below':22}],'actions':[{'type':'publish',"
		    "'topic':'band'}]}");
	/* 20 is inside the band already: staying inside does not fire */
	static const struct {
		double v;
		int hot, band;
	} steps[] = {
		{21, 0, 0}, {24, 0, 0}, {26, 1, 0}, {27, 1, 0}, {25.5, 1, 0}, {25, 1, 0},
		{26, 2, 0}, {21, 2, 1}, {19, 2, 1}, {22, 2, 1}, {18.5, 2, 2}, {30, 3, 2},
	};
	for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
		put_num(f, f->thermo, "temperature", steps[i].v);
		if (publishes_to(f, "hot") != steps[i].hot || publishes_to(f, "band") != steps[i].band)
			fail_msg("step %zu (%g): hot %d band %d, want %d %d", i, steps[i].v,
				 publishes_to(f, "hot"), publishes_to(f, "band"), steps[i].hot,
				 steps[i].band);
	}
	/* the snapshot carries the value */
	const cJSON *trig = field(last_trace(f, "hot"), "trigger");
	assert_int_equal(num_of(field(trig, "data"), "value"), 30);
}

static void test_numeric_for(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'hotfor','triggers':[{'type':'numeric','device':'living/thermo',"
		    "'attribute':'temperature','above':25,'for':'1m'}],'actions':[{'type':'publish',"
		    "'topic':'hot'}]}");
	int64_t t0 = f->now;
	put_num(f, f->thermo, "temperature", 26);
	advance(f, 30 * SEC);
	put_num(f, f->thermo, "temperature", 27); /* inside: the hold goes on */
	advance(f, 30 * SEC - 1);
	assert_int_equal(publishes_to(f, "hot"), 0);
	advance(f, 1);
	assert_int_equal(publishes_to(f, "hot"), 1);
	assert_int_equal(num_of(last(f->publishes), "at"), t0 + MIN);
	/* leaving before the minute is up cancels */
	put_num(f, f->thermo, "temperature", 20);
	put_num(f, f->thermo, "temperature", 28);
	advance(f, 40 * SEC);
	put_num(f, f->thermo, "temperature", 24);
	advance(f, 5 * MIN);
	assert_int_equal(publishes_to(f, "hot"), 1);
}

/* ---------------------------------------------------------------------------
 * Events, availability, MQTT
 * ------------------------------------------------------------------------- */

static void test_event_trigger(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'one','triggers':[{'type':'event','device':'hall/button','action':"
		    "'single'}],'actions':[{'type':'publish','topic':'one'}]}");
	add_rule(f, "{'id':'more','triggers':[{'type':'event','device':'hall/button','action':"
		    "['double','long']}],'actions':[{'type':'publish','topic':'more'}]}");
	add_rule(f, "{'id':'scene','triggers':[{'type':'event','device':'hall/button','event':"
		    "'scene','match':{'scene':3}}],'actions':[{'type':'publish','topic':'scene'}]}");
	press(f, "single", 1);
	press(f, "double", 2);
	press(f, "long", 3);
	press(f, "triple", 4);
	assert_int_equal(publishes_to(f, "one"), 1);
	assert_int_equal(publishes_to(f, "more"), 2);
	assert_int_equal(publishes_to(f, "scene"), 0);
	/* another event type, matched on its data */
	cJSON *data = J("{'scene':3}");
	rules_on_event(f->rules, f->button, "scene", data);
	cJSON_Delete(data);
	data = J("{'scene':4}");
	rules_on_event(f->rules, f->button, "scene", data);
	cJSON_Delete(data);
	assert_int_equal(publishes_to(f, "scene"), 1);
	assert_int_equal(publishes_to(f, "one"), 1);
	/* another device's event is not this button's */
	data = J("{'action':'single'}");
	rules_on_event(f->rules, f->motion, "action", data);
	cJSON_Delete(data);
	assert_int_equal(publishes_to(f, "one"), 1);
	const cJSON *rec = last(f->fired);
	assert_string_equal(str_of(rec, "trigger"), "event");
}

static void test_device_available(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'gone','triggers':[{'type':'device_available','device':'hall/motion',"
		    "'to':'offline'}],'actions':[{'type':'publish','topic':'gone'}]}");
	add_rule(f, "{'id':'back','triggers':[{'type':'device_available','device':'hall/motion',"
		    "'to':'online'}],'actions':[{'type':'publish','topic':'back'}]}");
	rules_on_availability(f->rules, f->motion, false);
	assert_int_equal(publishes_to(f, "gone"), 1);
	assert_int_equal(publishes_to(f, "back"), 0);
	rules_on_availability(f->rules, f->motion, true);
	assert_int_equal(publishes_to(f, "back"), 1);
	rules_on_availability(f->rules, f->thermo, false);
	assert_int_equal(publishes_to(f, "gone"), 1);
	const cJSON *data = field(field(last_trace(f, "back"), "trigger"), "data");
	assert_string_equal(str_of(data, "availability"), "online");
}

static void test_mqtt_trigger(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'temp','triggers':[{'type':'mqtt','topic':'home/+/temp'}],"
		    "'actions':[{'type':'publish','topic':'seen/temp'}]}");
	add_rule(f, "{'id':'on','triggers':[{'type':'mqtt','topic':'home/#','match':"
		    "{'state':['on','ON']}}],'actions':[{'type':'publish','topic':'seen/on'}]}");
	add_rule(f, "{'id':'exact','triggers':[{'type':'mqtt','topic':'x/y','match':"
		    "{'n':5}}],'actions':[{'type':'publish','topic':'seen/exact'}]}");
	expect_json("watches", f->watches,
		    "[{'filter':'home/+/temp','add':true},{'filter':'home/#','add':true},"
		    "{'filter':'x/y','add':true}]");
	mqtt_in(f, "home/kitchen/temp", "21.5");
	mqtt_in(f, "home/kitchen/hum", "40");
	mqtt_in(f, "home/a/b/temp", "1");
	assert_int_equal(publishes_to(f, "seen/temp"), 1);
	assert_int_equal(publishes_to(f, "seen/on"), 0);
	mqtt_in(f, "home/plug", "{\"state\":\"on\"}");
	mqtt_in(f, "home/plug", "{\"state\":\"ON\",\"power\":3}");
	mqtt_in(f, "home/plug", "{\"state\":\"off\"}");
	mqtt_in(f, "home/plug", "on");
	mqtt_in(f, "home", "{\"state\":\"on\"}"); /* "home/#" matches "home" */
	mqtt_in(f, "office/plug", "{\"state\":\"on\"}");
	assert_int_equal(publishes_to(f, "seen/on"), 3);
	mqtt_in(f, "x/y", "{\"n\":5.0}");
	mqtt_in(f, "x/y", "{\"n\":6}");
	mqtt_in(f, "x/y", "{\"n\":\"5\"}");
	assert_int_equal(publishes_to(f, "seen/exact"), 1);
	/* the data carries topic, payload and the parsed fields */
	const cJSON *data = field(field(last_trace(f, "on"), "trigger"), "data");
	assert_string_equal(str_of(data, "topic"), "home");
	assert_string_equal(str_of(data, "state"), "on");
	assert_string_equal(str_of(data, "payload"), "{\"state\":\"on\"}");
	/* removal gives the filter back */
	assert_int_equal(rules_remove(f->rules, "temp"), 0);
	expect_json("last watch", last(f->watches), "{'filter':'home/+/temp','add':false}");
	mqtt_in(f, "home/kitchen/temp", "21.5");
	assert_int_equal(publishes_to(f, "seen/temp"), 1);
}

static void test_topic_matches_table(void **state)
{
	(void)state;
	static const struct {
		const char *filter, *topic;
		bool match;
	} cases[] = {
		{"a/b", "a/b", true},	  {"a/b", "a/c", false},     {"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},  {"a/+", "a/b", true},	     {"a/+", "a/b/c", false},
		{"a/+", "a", false},	  {"a/+", "a/", true},	     {"+/+", "a/b", true},
		{"+/b", "a/b", true},	  {"a/+/c", "a/x/c", true},  {"a/#", "a", true},
		{"a/#", "a/b", true},	  {"a/#", "a/b/c", true},    {"a/#", "ab", false},
		{"a/#", "b/a", false},	  {"#", "a/b/c", true},	     {"#", "a", true},
		{"#", "$SYS/x", false},	  {"+/x", "$SYS/x", false},  {"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true}, {"a/b/#", "a/b", true},  {"a//b", "a//b", true},
		{"a/+/b", "a//b", true},  {"/a", "/a", true},	     {"+/a", "/a", true},
		{"a", "A", false},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		if (rules_topic_matches(cases[i].filter, cases[i].topic) != cases[i].match)
			fail_msg("case %zu: '%s' vs '%s' should %smatch", i, cases[i].filter,
				 cases[i].topic, cases[i].match ? "" : "not ");
	static const struct {
		const char *filter;
		bool valid;
	} filters[] = {
		{"a/b", true},	  {"#", true},	    {"a/#", true},   {"+", true},   {"+/a/+", true},
		{"a/#/b", false}, {"a#", false},    {"a/b#", false}, {"a+", false}, {"a/+b", false},
		{"", false},	  {"$SYS/#", true},
	};
	for (size_t i = 0; i < ARRAY_LEN(filters); i++)
		if (rules_filter_valid(filters[i].filter) != filters[i].valid)
			fail_msg("filter '%s' should be %svalid", filters[i].filter,
				 filters[i].valid ? "" : "in");
	assert_true(rules_topic_valid("a/b"));
	assert_false(rules_topic_valid("a/+"));
	assert_false(rules_topic_valid("a/#"));
	assert_false(rules_topic_valid(""));
}

/* ---------------------------------------------------------------------------
 * Time, cron and sun triggers
 * ------------------------------------------------------------------------- */

static void test_time_trigger_weekdays(void **state)
{
	struct fake *f = *state;
	f->now = BASE_MS; /* Monday 00:00 */
	add_rule(f, "{'id':'wake','triggers':[{'type':'time','at':'07:30','weekdays':['mon','wed']}],"
		    "'actions':[{'type':'publish','topic':'wake'}]}");
	/* nothing is scheduled until the engine starts */
	assert_int_equal(rules_next_deadline(f->rules), -1);
	rules_start(f->rules);
	assert_int_equal(rules_next_deadline(f->rules), BASE_MS + 7 * HOUR + 30 * MIN);
	advance(f, 7 * DAY);
	assert_int_equal(publishes_to(f, "wake"), 2);
	assert_int_equal(num_of(item(f->publishes, 0), "at"), BASE_MS + 7 * HOUR + 30 * MIN);
	assert_int_equal(num_of(item(f->publishes, 1), "at"), BASE_MS + 2 * DAY + 7 * HOUR + 30 * MIN);
	assert_string_equal(str_of(item(f->fired, 0), "trigger"), "time");
	/* every day at 23:59:30, added after the start */
	add_rule(f, "{'id':'late','triggers':[{'type':'time','at':'23:59:30'}],"
		    "'actions':[{'type':'publish','topic':'late'}]}");
	advance(f, 3 * DAY);
	assert_int_equal(publishes_to(f, "late"), 3);
	assert_int_equal(timeutil_local_seconds_of_day(num_of(last(f->publishes), "at")),
			 23 * 3600 + 59 * 60 + 30);
	/* a disabled rule lets its times pass */
	assert_int_equal(rules_enable(f->rules, "late", false), 0);
	advance(f, DAY);
	assert_int_equal(publishes_to(f, "late"), 3);
}

static void test_cron_trigger(void **state)
{
	struct fake *f = *state;
	assert_int_equal(f->now, BASE_MS + 12 * HOUR);
	add_rule(f, "{'id':'quarter','triggers':[{'type':'cron','cron':'*/15 * * * *'}],"
		    "'actions':[{'type':'publish','topic':'q'}]}");
	rules_start(f->rules);
	advance(f, HOUR);
	assert_int_equal(publishes_to(f, "q"), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(num_of(item(f->publishes, i), "at"),
				 BASE_MS + 12 * HOUR + (i + 1) * 15 * MIN);
	assert_string_equal(str_of(last(f->fired), "trigger"), "cron");
}

static void test_sun_trigger(void **state)
{
	struct fake *f = *state;
	f->have_location = true;
	f->now = BASE_MS;
	add_rule(f, "{'id':'dusk','triggers':[{'type':'sun','event':'sunset','offset':'-30m'}],"
		    "'actions':[{'type':'publish','topic':'dusk'}]}");
	rules_start(f->rules);
	int64_t sunset1, sunset2;
	assert_int_equal(sun_event_on(f->lat, f->lon, BASE_MS + 12 * HOUR, SUN_SUNSET, &sunset1), 0);
	assert_int_equal(sun_event_on(f->lat, f->lon, BASE_MS + DAY + 12 * HOUR, SUN_SUNSET, &sunset2),
			 0);
	/* Amsterdam in early March: sunset a little after 18:00 */
	assert_true(sunset1 > BASE_MS + 18 * HOUR && sunset1 < BASE_MS + 19 * HOUR);
	advance(f, DAY + 20 * HOUR);
	assert_int_equal(publishes_to(f, "dusk"), 2);
	int64_t at1 = num_of(item(f->publishes, 0), "at");
	int64_t at2 = num_of(item(f->publishes, 1), "at");
	assert_true(llabs(at1 - (sunset1 - 30 * MIN)) <= SEC);
	assert_true(llabs(at2 - (sunset2 - 30 * MIN)) <= SEC);
	assert_string_equal(str_of(last(f->fired), "trigger"), "sun");
}

/* ---------------------------------------------------------------------------
 * Conditions
 * ------------------------------------------------------------------------- */

static int runs_when_triggered(struct fake *f, const char *id)
{
	int before = count(f->publishes);
	trigger_now(f, id, true);
	return count(f->publishes) - before;
}

static void test_condition_state_numeric(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'c1'," TRIG_START ",'conditions':[{'type':'state','device':'hall/light',"
		    "'attribute':'state','state':'ON'}]," ACT_PUB "}");
	add_rule(f, "{'id':'c2'," TRIG_START ",'conditions':[{'type':'state','device':'hall/light',"
		    "'attribute':'state','state':['ON','OFF']}]," ACT_PUB "}");
	add_rule(f, "{'id':'c3'," TRIG_START ",'conditions':[{'type':'numeric','device':"
		    "'hall/motion','attribute':'illuminance','below':30}]," ACT_PUB "}");
	add_rule(f, "{'id':'c4'," TRIG_START ",'conditions':[{'type':'state','device':'hall/light',"
		    "'attribute':'state','state':'ON','for':'5m'}]," ACT_PUB "}");
	assert_int_equal(runs_when_triggered(f, "c1"), 0);
	assert_int_equal(runs_when_triggered(f, "c2"), 1);
	assert_int_equal(runs_when_triggered(f, "c3"), 0);
	put_str(f, f->light, "state", "ON");
	put_num(f, f->motion, "illuminance", 12);
	assert_int_equal(runs_when_triggered(f, "c1"), 1);
	assert_int_equal(runs_when_triggered(f, "c3"), 1);
	/* "for": the state must have held that long */
	assert_int_equal(runs_when_triggered(f, "c4"), 0);
	advance(f, 5 * MIN);
	assert_int_equal(runs_when_triggered(f, "c4"), 1);
	/* without the check, conditions are skipped */
	put_str(f, f->light, "state", "OFF");
	char err[128];
	int before = count(f->publishes);
	assert_int_equal(rules_trigger(f->rules, "c1", false, err, sizeof(err)), 0);
	assert_int_equal(count(f->publishes), before + 1);
	assert_int_equal(rules_trigger(f->rules, "none", false, err, sizeof(err)), -ENOENT);
}

static void test_condition_explained(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'dark','triggers':[{'type':'state','device':'hall/motion',"
		    "'attribute':'occupancy','to':true}],'conditions':[{'type':'numeric','device':"
		    "'hall/motion','attribute':'illuminance','below':30}]," ACT_PUB "}");
	put_num(f, f->motion, "illuminance", 54);
	put_bool(f, f->motion, "occupancy", true);
	assert_int_equal(count(f->publishes), 0);
	const cJSON *trace = last_trace(f, "dark");
	assert_string_equal(str_of(trace, "outcome"), "conditions not met");
	assert_true(text_contains(trace, "illuminance was 54, needs below 30"));
	const cJSON *c0 = item(field(trace, "conditions"), 0);
	assert_string_equal(str_of(c0, "path"), "conditions[0]");
	assert_true(cJSON_IsFalse(field(c0, "result")));
	assert_string_equal(str_of(c0, "detail"), "hall/motion illuminance was 54, needs below 30");
	/* the rule's own traces, newest first */
	cJSON *kept = rules_traces(f->rules, "dark");
	assert_int_equal(count(kept), 1);
	assert_string_equal(str_of(item(kept, 0), "outcome"), "conditions not met");
	cJSON_Delete(kept);
	/* conditions not met is not a firing */
	assert_int_equal(fired_with(f, "dark", NULL), 0);
}

static void test_condition_time_midnight(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'night'," TRIG_START ",'conditions':[{'type':'time','after':'22:00',"
		    "'before':'06:00'}]," ACT_PUB "}");
	add_rule(f, "{'id':'weekend'," TRIG_START ",'conditions':[{'type':'time','weekdays':"
		    "['sat','sun']}]," ACT_PUB "}");
	static const struct {
		int64_t at;
		int night, weekend;
	} cases[] = {
		{BASE_MS + 12 * HOUR, 0, 0},
		{BASE_MS + 21 * HOUR + 59 * MIN, 0, 0},
		{BASE_MS + 22 * HOUR, 1, 0},
		{BASE_MS + 23 * HOUR, 1, 0},
		{BASE_MS + DAY + 3 * HOUR, 1, 0},
		{BASE_MS + DAY + 5 * HOUR + 59 * MIN, 1, 0},
		{BASE_MS + DAY + 6 * HOUR, 0, 0},
		{BASE_MS + 5 * DAY + 12 * HOUR, 0, 1}, /* Saturday */
		{BASE_MS + 6 * DAY + 23 * HOUR, 1, 1}, /* Sunday night */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		f->now = cases[i].at;
		int n = runs_when_triggered(f, "night"), w = runs_when_triggered(f, "weekend");
		if (n != cases[i].night || w != cases[i].weekend)
			fail_msg("case %zu: night %d weekend %d, want %d %d", i, n, w, cases[i].night,
				 cases[i].weekend);
	}
}

static void test_condition_nested(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'nest'," TRIG_START ",'conditions':[{'type':'and','conditions':["
		    "{'type':'or','conditions':[{'type':'numeric','device':'living/thermo',"
		    "'attribute':'temperature','above':25},{'type':'state','device':'hall/light',"
		    "'attribute':'state','state':'ON'}]},{'type':'not','conditions':[{'type':'state',"
		    "'device':'hall/motion','attribute':'occupancy','state':true}]}]}]," ACT_PUB "}");
	static const struct {
		double temp;
		const char *light;
		bool occ;
		int runs;
	} cases[] = {
		{30, "OFF", false, 1}, {20, "OFF", false, 0}, {20, "ON", false, 1},
		{20, "OFF", true, 0},  {30, "ON", true, 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		put_num(f, f->thermo, "temperature", cases[i].temp);
		put_str(f, f->light, "state", cases[i].light);
		put_bool(f, f->motion, "occupancy", cases[i].occ);
		int got = runs_when_triggered(f, "nest");
		if (got != cases[i].runs)
			fail_msg("case %zu: %d runs, want %d", i, got, cases[i].runs);
	}
	/* the trace names nested paths */
	const cJSON *trace = last_trace(f, "nest");
	assert_true(text_contains(trace, "conditions[0].conditions[1].conditions[0]"));
	assert_true(text_contains(trace, "hall/motion occupancy was true, needs true"));
}

static void test_condition_trigger_id(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'which','triggers':[{'type':'event','id':'tap','device':'hall/button',"
		    "'action':'single'},{'type':'event','id':'twice','device':'hall/button',"
		    "'action':'double'}],'conditions':[{'type':'trigger','id':'twice'}]," ACT_PUB "}");
	press(f, "single", 1);
	assert_int_equal(count(f->publishes), 0);
	assert_true(text_contains(last_trace(f, "which"), "the rule was triggered by 'tap'"));
	press(f, "double", 2);
	assert_int_equal(count(f->publishes), 1);
	assert_string_equal(str_of(last(f->fired), "trigger_id"), "twice");
	/* a manual run has no trigger id */
	assert_int_equal(runs_when_triggered(f, "which"), 0);
}

/* ---------------------------------------------------------------------------
 * Actions
 * ------------------------------------------------------------------------- */

static void test_action_set_from_trigger(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'dim','triggers':[{'type':'event','device':'hall/button','action':"
		    "'single'}],'actions':[{'type':'set','device':'hall/light','state':{'state':'ON',"
		    "'brightness':{'from_trigger':'n'}}}]}");
	press(f, "single", 77);
	assert_int_equal(count(f->sets), 1);
	expect_set(f, 0, LIGHT, "{'state':'ON','brightness':77}", f->now);
	/* a value the trigger did not carry is an error of that action */
	cJSON *data = J("{'action':'single'}");
	rules_on_event(f->rules, f->button, "action", data);
	cJSON_Delete(data);
	assert_int_equal(count(f->sets), 1);
	assert_string_equal(str_of(last(f->fired), "outcome"),
			    "error: actions[0]: from_trigger 'n': the trigger carried no such value");
	/* the state trigger's value is there as "value" */
	add_rule(f, "{'id':'follow','triggers':[{'type':'state','device':'living/thermo',"
		    "'attribute':'temperature'}],'actions':[{'type':'set','device':'hall/light',"
		    "'state':{'brightness':{'from_trigger':'value'}}}]}");
	put_num(f, f->thermo, "temperature", 33);
	expect_set(f, 1, LIGHT, "{'brightness':33}", f->now);
}

static const char delay_rule[] =
	"{'id':'delay','triggers':[{'type':'event','device':'hall/button','action':'single'}],"
	"'actions':[{'type':'set','device':'hall/light','state':{'state':'ON'}},"
	"{'type':'delay','duration':'90s'},"
	"{'type':'set','device':'hall/light','state':{'state':'OFF'}}]}";

static void test_action_delay(void **state)
{
	struct fake *f = *state;
	add_rule(f, delay_rule);
	int64_t t0 = f->now;
	press(f, "single", 1);
	assert_int_equal(count(f->sets), 1);
	cJSON *running = rules_to_json(f->rules);
	assert_int_equal(num_of(item(running, 0), "running"), 1);
	cJSON_Delete(running);
	cJSON *traces = rules_traces(f->rules, "delay");
	assert_string_equal(str_of(item(traces, 0), "outcome"),
			    "waiting for its delay (at actions[1])");
	cJSON_Delete(traces);
	advance(f, 90 * SEC - 1);
	assert_int_equal(count(f->sets), 1);
	advance(f, 1);
	assert_int_equal(count(f->sets), 2);
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", t0 + 90 * SEC);
	const cJSON *rec = last(f->fired);
	assert_string_equal(str_of(rec, "outcome"), "ok");
	assert_int_equal(num_of(rec, "time"), t0);
	assert_int_equal(num_of(rec, "duration_ms"), 90 * SEC);
	/* nothing durable is left behind */
	assert_int_equal(count(f->persisted), 0);
	struct rules_stats st;
	rules_get_stats(f->rules, &st);
	assert_int_equal(st.runs_active, 0);
	assert_int_equal(st.firings, 1);
}

static const char wait_rule_fmt[] =
	"{'id':'wait','triggers':[{'type':'event','device':'hall/button','action':'single'}],"
	"'actions':[{'type':'set','device':'hall/light','state':{'state':'ON'}},"
	"{'type':'wait','trigger':%s,'timeout':'10m'%s},"
	"{'type':'set','device':'hall/light','state':{'state':'OFF'}}]}";

static void add_wait_rule(struct fake *f, const char *trigger, const char *extra)
{
	char text[1024];
	snprintf(text, sizeof(text), wait_rule_fmt, trigger, extra);
	add_rule(f, text);
}

static void test_action_wait_event(void **state)
{
	struct fake *f = *state;
	add_wait_rule(f, "{'type':'event','device':'hall/button','action':'double'}", "");
	press(f, "single", 1);
	advance(f, 30 * SEC);
	press(f, "long", 2);
	assert_int_equal(count(f->sets), 1);
	press(f, "double", 3);
	assert_int_equal(count(f->sets), 2);
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", f->now);
	assert_string_equal(str_of(last(f->fired), "outcome"), "ok");
	/* the timeout entry went with the wait */
	advance(f, HOUR);
	assert_int_equal(count(f->sets), 2);
}

static void test_action_wait_state_for(void **state)
{
	struct fake *f = *state;
	add_wait_rule(f,
		      "{'type':'state','device':'hall/motion','attribute':'occupancy','to':false,"
		      "'for':'2m'}",
		      "");
	put_bool(f, f->motion, "occupancy", true);
	press(f, "single", 1);
	advance(f, 10 * SEC);
	put_bool(f, f->motion, "occupancy", false);
	advance(f, MIN);
	/* motion again: the hold breaks */
	put_bool(f, f->motion, "occupancy", true);
	advance(f, 5 * MIN);
	assert_int_equal(count(f->sets), 1);
	int64_t t1 = f->now;
	put_bool(f, f->motion, "occupancy", false);
	advance(f, 2 * MIN - 1);
	assert_int_equal(count(f->sets), 1);
	advance(f, 1);
	assert_int_equal(count(f->sets), 2);
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", t1 + 2 * MIN);
}

static void test_action_wait_timeout(void **state)
{
	struct fake *f = *state;
	/* continue_on_timeout false: the run stops */
	add_wait_rule(f, "{'type':'event','device':'hall/button','action':'double'}",
		      ",'continue_on_timeout':false");
	int64_t t0 = f->now;
	press(f, "single", 1);
	advance(f, 10 * MIN);
	assert_int_equal(count(f->sets), 1);
	assert_string_equal(str_of(last(f->fired), "outcome"), "stopped: the wait timed out");
	assert_int_equal(num_of(last(f->fired), "duration_ms"), 10 * MIN);
	/* the default (true) goes on at the timeout */
	assert_int_equal(rules_remove(f->rules, "wait"), 0);
	add_wait_rule(f, "{'type':'event','device':'hall/button','action':'double'}", "");
	t0 = f->now;
	press(f, "single", 2);
	advance(f, 10 * MIN - 1);
	assert_int_equal(count(f->sets), 2);
	advance(f, 1);
	assert_int_equal(count(f->sets), 3);
	expect_set(f, 2, LIGHT, "{'state':'OFF'}", t0 + 10 * MIN);
	assert_string_equal(str_of(last(f->fired), "outcome"), "ok");
	assert_true(text_contains(last_trace(f, "wait"), "timed out, continuing"));
}

static void test_action_publish(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'pub'," TRIG_START ",'actions':[{'type':'publish','topic':'a/b',"
		    "'payload':{'x':1,'y':[true]}},{'type':'publish','topic':'a/c','payload':'hi',"
		    "'retain':true},{'type':'publish','topic':'a/d'}]}");
	trigger_now(f, "pub", true);
	assert_int_equal(count(f->publishes), 3);
	static const struct {
		const char *topic, *payload;
		bool retain;
	} want[] = {{"a/b", "{\"x\":1,\"y\":[true]}", false}, {"a/c", "hi", true}, {"a/d", "", false}};
	for (int i = 0; i < 3; i++) {
		const cJSON *p = item(f->publishes, i);
		assert_string_equal(str_of(p, "topic"), want[i].topic);
		assert_string_equal(str_of(p, "payload"), want[i].payload);
		assert_int_equal(cJSON_IsTrue(field(p, "retain")), want[i].retain);
		assert_int_equal(num_of(p, "at"), f->now);
	}
}

static void test_action_rule_verbs(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'target','triggers':[{'type':'event','device':'hall/button','action':"
		    "'single'}],'conditions':[{'type':'numeric','device':'living/thermo','attribute':"
		    "'temperature','below':25}],'actions':[{'type':'publish','topic':'target'}]}");
	add_rule(f, "{'id':'off'," TRIG_START
		    ",'actions':[{'type':'rule','rule':'target','action':'disable'}]}");
	add_rule(f, "{'id':'on'," TRIG_START
		    ",'actions':[{'type':'rule','rule':'target','action':'enable'}]}");
	add_rule(f, "{'id':'kick'," TRIG_START
		    ",'actions':[{'type':'rule','rule':'target','action':'trigger'}]}");
	add_rule(f, "{'id':'ghost'," TRIG_START
		    ",'actions':[{'type':'rule','rule':'nobody','action':'trigger'}]}");
	trigger_now(f, "off", true);
	press(f, "single", 1);
	assert_int_equal(publishes_to(f, "target"), 0);
	cJSON *all = rules_to_json(f->rules);
	assert_true(cJSON_IsFalse(field(item(all, 0), "enabled")));
	cJSON_Delete(all);
	trigger_now(f, "on", true);
	press(f, "single", 2);
	assert_int_equal(publishes_to(f, "target"), 1);
	trigger_now(f, "kick", true);
	assert_int_equal(publishes_to(f, "target"), 2);
	/* "trigger" checks the target's conditions */
	put_num(f, f->thermo, "temperature", 30);
	trigger_now(f, "kick", true);
	assert_int_equal(publishes_to(f, "target"), 2);
	trigger_now(f, "ghost", true);
	assert_string_equal(str_of(last(f->fired), "outcome"),
			    "error: actions[0]: no rule has the id 'nobody'");
}

static void test_action_choose(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'pick'," TRIG_START ",'actions':[{'type':'choose','choose':["
		    "{'conditions':[{'type':'numeric','device':'living/thermo','attribute':"
		    "'temperature','above':25}],'actions':[{'type':'set','device':'hall/light',"
		    "'state':{'brightness':200}}]},"
		    "{'conditions':[{'type':'numeric','device':'living/thermo','attribute':"
		    "'temperature','below':15}],'actions':[{'type':'set','device':'hall/light',"
		    "'state':{'brightness':50}},{'type':'publish','topic':'cold'}]}],"
		    "'default':[{'type':'set','device':'hall/light','state':{'brightness':100}}]},"
		    "{'type':'publish','topic':'after'}]}");
	static const struct {
		double temp;
		int brightness;
	} cases[] = {{30, 200}, {10, 50}, {20, 100}, {25, 100}, {26, 200}};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		put_num(f, f->thermo, "temperature", cases[i].temp);
		trigger_now(f, "pick", true);
		assert_int_equal(count(f->sets), (int)i + 1);
		assert_int_equal(num_of(field(last(f->sets), "state"), "brightness"),
				 cases[i].brightness);
	}
	assert_int_equal(publishes_to(f, "cold"), 1);
	assert_int_equal(publishes_to(f, "after"), (int)ARRAY_LEN(cases));
}

/* A heater: every set warms the thermometer by one degree. */
static void warm_up(struct fake *f, const char *device_id, const cJSON *st)
{
	(void)device_id;
	(void)st;
	const cJSON *t = field(f->thermo->state, "temperature");
	struct hearth_attr a = {"temperature", HEARTH_NUMBER(t->valuedouble + 1)};
	assert_int_equal(registry_merge(f->thermo, &a, 1, NULL), 1);
}

static void test_action_repeat(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'three'," TRIG_START ",'actions':[{'type':'repeat','count':3,'actions':"
		    "[{'type':'set','device':'hall/light','state':{'brightness':1}}]},"
		    "{'type':'publish','topic':'done'}]}");
	trigger_now(f, "three", true);
	assert_int_equal(count(f->sets), 3);
	assert_int_equal(publishes_to(f, "done"), 1);
	/* while: test first; 20 -> 23 takes three rounds */
	f->on_set = warm_up;
	add_rule(f, "{'id':'while'," TRIG_START ",'actions':[{'type':'repeat','while':[{'type':"
		    "'numeric','device':'living/thermo','attribute':'temperature','below':23}],"
		    "'actions':[{'type':'set','device':'hall/light','state':{'brightness':2}}]}]}");
	trigger_now(f, "while", true);
	assert_int_equal(count(f->sets), 6);
	assert_int_equal(num_of(f->thermo->state, "temperature"), 23);
	/* already false: no round at all */
	trigger_now(f, "while", true);
	assert_int_equal(count(f->sets), 6);
	/* until: test after; at least one round */
	add_rule(f, "{'id':'until'," TRIG_START ",'actions':[{'type':'repeat','until':[{'type':"
		    "'numeric','device':'living/thermo','attribute':'temperature','above':25}],"
		    "'actions':[{'type':'set','device':'hall/light','state':{'brightness':3}}]}]}");
	trigger_now(f, "until", true); /* 23 -> 26 */
	assert_int_equal(count(f->sets), 9);
	trigger_now(f, "until", true); /* once, then 27 > 25 */
	assert_int_equal(count(f->sets), 10);
	/* nested counts multiply */
	f->on_set = NULL;
	add_rule(f, "{'id':'grid'," TRIG_START ",'actions':[{'type':'repeat','count':4,'actions':"
		    "[{'type':'repeat','count':5,'actions':[{'type':'publish','topic':'cell'}]}]}]}");
	trigger_now(f, "grid", true);
	assert_int_equal(publishes_to(f, "cell"), 20);
}

static void test_action_repeat_cap(void **state)
{
	struct fake *f = *state;
	/* never false, never true: both end at the cap */
	add_rule(f, "{'id':'forever'," TRIG_START ",'actions':[{'type':'repeat','while':[{'type':"
		    "'not','conditions':[{'type':'numeric','device':'living/thermo','attribute':"
		    "'temperature','above':1000}]}],'actions':[{'type':'publish','topic':'w'}]},"
		    "{'type':'publish','topic':'end'}]}");
	trigger_now(f, "forever", true);
	assert_int_equal(publishes_to(f, "w"), RULES_REPEAT_CAP);
	assert_int_equal(publishes_to(f, "end"), 1);
	assert_string_equal(str_of(last(f->fired), "outcome"), "ok");
	add_rule(f, "{'id':'never'," TRIG_START ",'actions':[{'type':'repeat','until':[{'type':"
		    "'numeric','device':'living/thermo','attribute':'temperature','above':1000}],"
		    "'actions':[{'type':'publish','topic':'u'}]}]}");
	trigger_now(f, "never", true);
	assert_int_equal(publishes_to(f, "u"), RULES_REPEAT_CAP);
	/* a delay inside a loop suspends and resumes with its counter */
	add_rule(f, "{'id':'slow'," TRIG_START ",'actions':[{'type':'repeat','count':3,'actions':"
		    "[{'type':'publish','topic':'tick'},{'type':'delay','duration':'1s'}]}]}");
	int64_t t0 = f->now;
	trigger_now(f, "slow", true);
	advance(f, 10 * SEC);
	assert_int_equal(publishes_to(f, "tick"), 3);
	assert_int_equal(num_of(last(f->publishes), "at"), t0 + 2 * SEC);
	assert_int_equal(fired_with(f, "slow", "ok"), 1);
}

static void test_action_scene(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'sc'," TRIG_START ",'actions':[{'type':'scene','scene':'evening'}]}");
	trigger_now(f, "sc", true);
	expect_json("scenes", f->scenes, "['evening']");
}

/* ---------------------------------------------------------------------------
 * Modes, cooldown, debounce
 * ------------------------------------------------------------------------- */

/* Press sets ON with the press number as brightness, waits 10 s, sets OFF. */
static void add_mode_rule(struct fake *f, const char *mode, int max)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "{'id':'m','mode':'%s','max':%d,'triggers':[{'type':'event','device':"
		 "'hall/button','action':'single'}],'actions':[{'type':'set','device':'hall/light',"
		 "'state':{'state':'ON','brightness':{'from_trigger':'n'}}},{'type':'delay',"
		 "'duration':'10s'},{'type':'set','device':'hall/light','state':{'state':'OFF'}}]}",
		 mode, max);
	add_rule(f, text);
}

static int brightness_of_set(struct fake *f, int i)
{
	return (int)num_of(field(item(f->sets, i), "state"), "brightness");
}

static void test_mode_single(void **state)
{
	struct fake *f = *state;
	add_mode_rule(f, "single", 10);
	int64_t t0 = f->now;
	press(f, "single", 1);
	press(f, "single", 2);
	advance(f, 5 * SEC);
	press(f, "single", 3);
	assert_int_equal(fired_with(f, "m", "skipped: single mode"), 2);
	advance(f, 10 * SEC);
	assert_int_equal(count(f->sets), 2);
	assert_int_equal(brightness_of_set(f, 0), 1);
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", t0 + 10 * SEC);
	/* free again: a new press runs */
	press(f, "single", 4);
	assert_int_equal(count(f->sets), 3);
	assert_int_equal(brightness_of_set(f, 2), 4);
}

static void test_mode_restart(void **state)
{
	struct fake *f = *state;
	add_mode_rule(f, "restart", 10);
	int64_t t0 = f->now;
	press(f, "single", 1);
	advance(f, SEC);
	press(f, "single", 2);
	advance(f, 8 * SEC);
	press(f, "single", 3);
	advance(f, 10 * SEC - 1);
	/* no OFF from the first two: they were stopped */
	assert_int_equal(count(f->sets), 3);
	advance(f, 1);
	assert_int_equal(count(f->sets), 4);
	expect_set(f, 3, LIGHT, "{'state':'OFF'}", t0 + 19 * SEC);
	assert_int_equal(brightness_of_set(f, 2), 3);
	assert_int_equal(fired_with(f, "m", "ok"), 1);
	cJSON *traces = rules_traces(f->rules, "m");
	int restarted = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, traces) restarted += strcmp(str_of(t, "outcome"), "restarted") == 0;
	cJSON_Delete(traces);
	assert_int_equal(restarted, 2);
	assert_int_equal(count(f->persisted), 0);
}

static void test_mode_queued(void **state)
{
	struct fake *f = *state;
	add_mode_rule(f, "queued", 2);
	int64_t t0 = f->now;
	for (int i = 1; i <= 4; i++)
		press(f, "single", i);
	assert_int_equal(fired_with(f, "m", "skipped: the queue is full"), 1);
	assert_int_equal(count(f->sets), 1);
	advance(f, MIN);
	/* one after another: 1 on, 1 off + 2 on, 2 off + 3 on, 3 off */
	assert_int_equal(count(f->sets), 6);
	static const struct {
		const char *state;
		int brightness;
		int64_t at;
	} want[] = {{"ON", 1, 0}, {"OFF", -1, 10}, {"ON", 2, 10}, {"OFF", -1, 20}, {"ON", 3, 20},
		    {"OFF", -1, 30}};
	for (int i = 0; i < 6; i++) {
		const cJSON *s = item(f->sets, i);
		assert_string_equal(str_of(field(s, "state"), "state"), want[i].state);
		if (want[i].brightness >= 0)
			assert_int_equal(brightness_of_set(f, i), want[i].brightness);
		assert_int_equal(num_of(s, "at"), t0 + want[i].at * SEC);
	}
	assert_int_equal(fired_with(f, "m", "ok"), 3);
	assert_int_equal(count(f->persisted), 0);
}

static void test_mode_parallel(void **state)
{
	struct fake *f = *state;
	add_mode_rule(f, "parallel", 2);
	int64_t t0 = f->now;
	press(f, "single", 1);
	advance(f, SEC);
	press(f, "single", 2);
	press(f, "single", 3);
	assert_int_equal(fired_with(f, "m", "skipped: parallel runs at their max"), 1);
	cJSON *all = rules_to_json(f->rules);
	assert_int_equal(num_of(item(all, 0), "running"), 2);
	cJSON_Delete(all);
	advance(f, MIN);
	assert_int_equal(count(f->sets), 4);
	expect_set(f, 2, LIGHT, "{'state':'OFF'}", t0 + 10 * SEC);
	expect_set(f, 3, LIGHT, "{'state':'OFF'}", t0 + 11 * SEC);
	assert_int_equal(fired_with(f, "m", "ok"), 2);
}

static void test_cooldown(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'cool','cooldown':'1m','triggers':[{'type':'event','device':"
		    "'hall/button','action':'single'}],'actions':[{'type':'publish','topic':'c'}]}");
	press(f, "single", 1);
	advance(f, 30 * SEC);
	press(f, "single", 2);
	advance(f, 30 * SEC - 1);
	press(f, "single", 3);
	assert_int_equal(publishes_to(f, "c"), 1);
	assert_string_equal(str_of(last_trace(f, "cool"), "outcome"), "skipped: cooldown");
	advance(f, 1);
	press(f, "single", 4);
	assert_int_equal(publishes_to(f, "c"), 2);
}

static void test_debounce(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'calm','triggers':[{'type':'event','device':'hall/button','action':"
		    "'single','debounce':'2s'}],'actions':[{'type':'set','device':'hall/light',"
		    "'state':{'brightness':{'from_trigger':'n'}}}]}");
	for (int i = 1; i <= 5; i++) {
		press(f, "single", i);
		advance(f, 500);
	}
	int64_t last_press = f->now - 500;
	assert_int_equal(count(f->sets), 0);
	advance(f, 2 * SEC);
	assert_int_equal(count(f->sets), 1);
	expect_set(f, 0, LIGHT, "{'brightness':5}", last_press + 2 * SEC);
	assert_int_equal(fired_with(f, "calm", NULL), 1);
	/* state triggers debounce the same way */
	add_rule(f, "{'id':'settle','triggers':[{'type':'state','device':'living/thermo',"
		    "'attribute':'temperature','debounce':'10s'}],'actions':[{'type':'set',"
		    "'device':'hall/light','state':{'brightness':{'from_trigger':'value'}}}]}");
	for (int v = 21; v <= 25; v++) {
		put_num(f, f->thermo, "temperature", v);
		advance(f, SEC);
	}
	advance(f, MIN);
	assert_int_equal(count(f->sets), 2);
	expect_set(f, 1, LIGHT, "{'brightness':25}", -1);
}

/* ---------------------------------------------------------------------------
 * Durable timers
 * ------------------------------------------------------------------------- */

static const char durable_hold[] =
	"{'id':'dh','triggers':[{'type':'state','device':'hall/motion','attribute':'occupancy',"
	"'to':true,'for':'5m'}],'actions':[{'type':'publish','topic':'held'}]}";

static void test_durable_hold_resumes(void **state)
{
	struct fake *f = *state;
	add_rule(f, durable_hold);
	int64_t t0 = f->now;
	put_bool(f, f->motion, "occupancy", true);
	const cJSON *rec = field(field(f->persisted, "hold:dh:0"), "record");
	assert_non_null(rec);
	assert_string_equal(str_of(rec, "kind"), "hold");
	assert_int_equal(num_of(rec, "since"), t0);
	advance(f, 2 * MIN);
	/* free keeps the records */
	rules_free(f->rules);
	f->rules = NULL;
	assert_non_null(field(f->persisted, "hold:dh:0"));
	f->now = t0 + 3 * MIN;
	const char *rules_text[] = {durable_hold};
	int rc[1];
	restart_engine(f, rules_text, 1, rc, 1);
	assert_int_equal(rc[0], 0);
	advance_to(f, t0 + 5 * MIN - 1);
	assert_int_equal(publishes_to(f, "held"), 0);
	advance(f, 1);
	assert_int_equal(publishes_to(f, "held"), 1);
	assert_int_equal(num_of(last(f->publishes), "at"), t0 + 5 * MIN);
	assert_null(field(last(f->fired), "missed"));
	assert_int_equal(count(f->persisted), 0);
}

static void test_durable_hold_missed(void **state)
{
	struct fake *f = *state;
	add_rule(f, durable_hold);
	int64_t t0 = f->now;
	put_bool(f, f->motion, "occupancy", true);
	advance(f, MIN);
	rules_free(f->rules);
	f->rules = NULL;
	/* down for ten minutes, the motion still on */
	f->now = t0 + 10 * MIN;
	const char *rules_text[] = {durable_hold};
	int rc[1];
	restart_engine(f, rules_text, 1, rc, 1);
	assert_int_equal(rc[0], 0);
	advance(f, 0);
	assert_int_equal(publishes_to(f, "held"), 1);
	assert_int_equal(num_of(last(f->publishes), "at"), t0 + 10 * MIN);
	const cJSON *fired = last(f->fired);
	assert_true(cJSON_IsTrue(field(fired, "missed")));
	assert_string_equal(str_of(fired, "outcome"), "ok");
	assert_int_equal(count(f->persisted), 0);
}

static void test_durable_hold_stale(void **state)
{
	struct fake *f = *state;
	add_rule(f, durable_hold);
	int64_t t0 = f->now;
	put_bool(f, f->motion, "occupancy", true);
	advance(f, MIN);
	rules_free(f->rules);
	f->rules = NULL;
	/* while down: the motion stopped and came back (newer stamp) */
	advance_to(f, t0 + 2 * MIN);
	put_bool(f, f->motion, "occupancy", false);
	advance_to(f, t0 + 3 * MIN);
	put_bool(f, f->motion, "occupancy", true);
	const char *rules_text[] = {durable_hold};
	int rc[1];
	restart_engine(f, rules_text, 1, rc, 1);
	assert_int_equal(rc[0], -ESTALE);
	advance(f, HOUR);
	assert_int_equal(publishes_to(f, "held"), 0);
	/* and simply changed: also stale */
	rules_free(f->rules);
	f->rules = NULL;
	put_bool(f, f->motion, "occupancy", false);
	cJSON *rec = J("{'kind':'hold','trigger':0,'since':0,'snapshot':{}}");
	cJSON_ReplaceItemInObjectCaseSensitive(rec, "since", cJSON_CreateNumber((double)f->now));
	f->rules = engine_new(f);
	add_rule(f, durable_hold);
	assert_int_equal(rules_restore_timer(f->rules, "hold:dh:0", "dh", rec), -ESTALE);
	/* a rule that is gone */
	assert_int_equal(rules_restore_timer(f->rules, "hold:x:0", "x", rec), -ENOENT);
	cJSON_Delete(rec);
}

static void test_durable_delay_resumes(void **state)
{
	struct fake *f = *state;
	add_rule(f, delay_rule);
	int64_t t0 = f->now;
	press(f, "single", 1);
	const cJSON *rec = field(field(f->persisted, "run:delay:1"), "record");
	assert_non_null(rec);
	assert_string_equal(str_of(rec, "state"), "delay");
	assert_int_equal(num_of(rec, "deadline"), t0 + 90 * SEC);
	advance(f, 30 * SEC);
	rules_free(f->rules);
	f->rules = NULL;
	f->now += 10 * SEC; /* down for a while */
	const char *rules_text[] = {delay_rule};
	int rc[1];
	restart_engine(f, rules_text, 1, rc, 1);
	assert_int_equal(rc[0], 0);
	advance_to(f, t0 + 90 * SEC - 1);
	assert_int_equal(count(f->sets), 1);
	advance(f, 1);
	assert_int_equal(count(f->sets), 2);
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", t0 + 90 * SEC);
	const cJSON *fired = last(f->fired);
	assert_string_equal(str_of(fired, "outcome"), "ok");
	assert_null(field(fired, "missed"));
	assert_int_equal(num_of(fired, "time"), t0);
	assert_int_equal(count(f->persisted), 0);
}

static void test_durable_delay_missed(void **state)
{
	struct fake *f = *state;
	add_rule(f, delay_rule);
	press(f, "single", 1);
	advance(f, 30 * SEC);
	rules_free(f->rules);
	f->rules = NULL;
	f->now += 5 * MIN;
	const char *rules_text[] = {delay_rule};
	int rc[1];
	restart_engine(f, rules_text, 1, rc, 1);
	assert_int_equal(rc[0], 0);
	advance(f, 0);
	assert_int_equal(count(f->sets), 2);
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", f->now);
	assert_true(cJSON_IsTrue(field(last(f->fired), "missed")));
	assert_int_equal(count(f->persisted), 0);
}

/*
 * A resumed run must forget the record it was resumed from. The run here is
 * the rule's second (key "run:delay:2"); the new engine numbers its runs
 * from 1 again.
 */
static void test_durable_run_record_forgotten(void **state)
{
	struct fake *f = *state;
	add_rule(f, delay_rule);
	press(f, "single", 1);
	advance(f, 2 * MIN);
	press(f, "single", 2);
	assert_non_null(field(f->persisted, "run:delay:2"));
	assert_int_equal(count(f->persisted), 1);
	advance(f, 30 * SEC);
	const char *rules_text[] = {delay_rule};
	int rc[1];
	restart_engine(f, rules_text, 1, rc, 1);
	assert_int_equal(rc[0], 0);
	advance(f, 5 * MIN);
	assert_int_equal(count(f->sets), 4);
	/* finished: nothing may be left to resume at the next start */
	if (count(f->persisted) != 0) {
		char *p = cJSON_PrintUnformatted(f->persisted);
		print_error("records left after the resumed run ended: %s\n", p);
		cJSON_free(p);
		fail();
	}
}

/*
 * The hall light: on with motion, off two minutes after it stops. The
 * restart comes in the middle of the two minutes; the motion stays off, so
 * no new state change arrives after the restart.
 */
static const char hall_rule[] =
	"{'id':'hall','mode':'restart','triggers':[{'type':'state','device':'hall/motion',"
	"'attribute':'occupancy','to':true}],'actions':[{'type':'set','device':'hall/light',"
	"'state':{'state':'ON','brightness':180}},{'type':'wait','trigger':{'type':'state',"
	"'device':'hall/motion','attribute':'occupancy','to':false,'for':'2m'},'timeout':'30m'},"
	"{'type':'set','device':'hall/light','state':{'state':'OFF'}}]}";

static void test_durable_wait_hold_resumes(void **state)
{
	struct fake *f = *state;
	add_rule(f, hall_rule);
	int64_t t0 = f->now;
	put_bool(f, f->motion, "occupancy", true);
	advance(f, 10 * SEC);
	put_bool(f, f->motion, "occupancy", false);
	const cJSON *rec = field(field(f->persisted, "run:hall:1"), "record");
	assert_non_null(rec);
	assert_int_equal(num_of(rec, "wait_since"), t0 + 10 * SEC);
	advance(f, MIN);
	const char *rules_text[] = {hall_rule};
	int rc[1];
	restart_engine(f, rules_text, 1, rc, 1);
	assert_int_equal(rc[0], 0);
	advance(f, HOUR);
	assert_int_equal(count(f->sets), 2);
	/* off two minutes after the motion stopped, not at the 30 m timeout */
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", t0 + 10 * SEC + 2 * MIN);
}

/* ---------------------------------------------------------------------------
 * Waits on attributes no trigger watches
 * ------------------------------------------------------------------------- */

static void test_wait_from_to_unwatched(void **state)
{
	struct fake *f = *state;
	/* the rule starts on a button; nothing else watches the light */
	add_wait_rule(f,
		      "{'type':'state','device':'hall/light','attribute':'state','from':'ON',"
		      "'to':'OFF'}",
		      "");
	put_str(f, f->light, "state", "ON");
	press(f, "single", 1);
	advance(f, SEC);
	put_str(f, f->light, "state", "OFF");
	/* ON -> OFF happened: the wait is over */
	assert_int_equal(count(f->sets), 2);
	expect_set(f, 1, LIGHT, "{'state':'OFF'}", f->now);
}

static void test_schedule_with_debounce(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'slowcron','triggers':[{'type':'cron','cron':'*/15 * * * *',"
		    "'debounce':'1s'}],'actions':[{'type':'publish','topic':'q'}]}");
	rules_start(f->rules);
	advance(f, HOUR + 2 * SEC);
	if (publishes_to(f, "q") == 0)
		fail_msg("a cron trigger with a debounce never fires (0 firings in an hour)");
	/* each quarter fires once, a second late */
	assert_int_equal(publishes_to(f, "q"), 4);
	assert_int_equal(num_of(item(f->publishes, 0), "at"), BASE_MS + 12 * HOUR + 15 * MIN + SEC);
}

/*
 * A wait begun by a press is for the next press: the press that started the
 * run must not also end its wait (a double tap would fire on one tap).
 */
static void test_wait_not_ended_by_its_own_trigger(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'tap2','triggers':[{'type':'event','device':'hall/button','action':"
		    "'single'}],'actions':[{'type':'wait','trigger':{'type':'event','device':"
		    "'hall/button','action':'single'},'timeout':'2s','continue_on_timeout':false},"
		    "{'type':'publish','topic':'double-tap'}]}");
	press(f, "single", 1);
	assert_int_equal(publishes_to(f, "double-tap"), 0);
	advance(f, 3 * SEC);
	assert_int_equal(fired_with(f, "tap2", "stopped: the wait timed out"), 1);
	press(f, "single", 2);
	advance(f, SEC);
	press(f, "single", 3);
	assert_int_equal(publishes_to(f, "double-tap"), 1);
	/* the same for state: a change starts the run, the next one ends its wait */
	add_rule(f, "{'id':'next','triggers':[{'type':'state','device':'living/thermo','attribute':"
		    "'temperature','to':21}],'actions':[{'type':'wait','trigger':{'type':'state',"
		    "'device':'living/thermo','attribute':'temperature'},'timeout':'1h'},"
		    "{'type':'publish','topic':'next-change'}]}");
	put_num(f, f->thermo, "temperature", 21);
	assert_int_equal(publishes_to(f, "next-change"), 0);
	put_num(f, f->thermo, "temperature", 22);
	assert_int_equal(publishes_to(f, "next-change"), 1);
}

/*
 * A trigger with both "for" and "debounce": the hold completes, the debounce
 * waits for quiet; a second hold that starts and breaks meanwhile must not
 * lose the pending firing (nor leak its snapshot).
 */
static void test_debounce_with_hold(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'dh2','triggers':[{'type':'state','device':'hall/motion','attribute':"
		    "'occupancy','to':true,'for':'1s','debounce':'10s'}],'actions':[{'type':"
		    "'publish','topic':'quiet'}]}");
	int64_t t0 = f->now;
	put_bool(f, f->motion, "occupancy", true);
	advance(f, 2 * SEC); /* held at t0+1s: debounce until t0+11s */
	put_bool(f, f->motion, "occupancy", false);
	advance(f, SEC);
	put_bool(f, f->motion, "occupancy", true); /* a new hold ... */
	advance(f, 500);
	put_bool(f, f->motion, "occupancy", false); /* ... that breaks */
	advance(f, MIN);
	assert_int_equal(publishes_to(f, "quiet"), 1);
	assert_int_equal(num_of(last(f->publishes), "at"), t0 + 11 * SEC);
}

/* ---------------------------------------------------------------------------
 * Misc: enable, remove, stats, start triggers
 * ------------------------------------------------------------------------- */

static void test_start_and_remove(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'boot','triggers':[{'type':'start'}],'actions':[{'type':'publish',"
		    "'topic':'up'}]}");
	add_rule(f, "{'id':'idle','enabled':false,'triggers':[{'type':'start'}],'actions':[{'type':"
		    "'publish','topic':'idle'}]}");
	rules_start(f->rules);
	assert_int_equal(publishes_to(f, "up"), 1);
	assert_int_equal(publishes_to(f, "idle"), 0);
	assert_string_equal(str_of(last(f->fired), "trigger"), "start");
	/* a removed rule's pending work goes with it */
	add_rule(f, delay_rule);
	press(f, "single", 1);
	assert_int_equal(count(f->persisted), 1);
	assert_int_equal(rules_remove(f->rules, "delay"), 0);
	assert_int_equal(count(f->persisted), 0);
	assert_int_equal(rules_next_deadline(f->rules), -1);
	advance(f, HOUR);
	assert_int_equal(count(f->sets), 1);
	cJSON *ids = rules_ids(f->rules);
	expect_json("ids", ids, "['boot','idle']");
	cJSON_Delete(ids);
	struct rules_stats st;
	rules_get_stats(f->rules, &st);
	assert_int_equal(st.runs_active, 0);
	assert_int_equal(st.firings, 2);
}

/* ---------------------------------------------------------------------------
 * Performance (printed, never asserted on time)
 * ------------------------------------------------------------------------- */

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_perf_many_rules(void **state)
{
	struct fake *f = *state;
	enum { DEVICES = 1000, ATTRS = 10, CALLS = 100000 };
	struct device **devs = calloc(DEVICES, sizeof(*devs));
	assert_non_null(devs);
	char err[256], id[64], name[64], attr[16];
	for (int d = 0; d < DEVICES; d++) {
		snprintf(id, sizeof(id), "perf:dev%d", d);
		snprintf(name, sizeof(name), "perf/dev%d", d);
		assert_int_equal(registry_add(f->reg, id, name, "perf", &devs[d], err, sizeof(err)), 0);
		struct hearth_attr attrs[ATTRS + 1];
		char names[ATTRS + 1][16];
		for (int a = 0; a <= ATTRS; a++) {
			snprintf(names[a], sizeof(names[a]), "a%d", a);
			attrs[a] = (struct hearth_attr){names[a], HEARTH_NUMBER(0)};
		}
		assert_int_equal(registry_merge(devs[d], attrs, ATTRS + 1, NULL), ATTRS + 1);
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char text[512];
	for (int d = 0; d < DEVICES; d++) {
		for (int a = 0; a < ATTRS; a++) {
			snprintf(text, sizeof(text),
				 "{'id':'p%d-%d','triggers':[{'type':'numeric','device':'perf:dev%d',"
				 "'attribute':'a%d','above':10}],'actions':[{'type':'publish','topic':"
				 "'perf/%d/%d'}]}",
				 d, a, d, a, d, a);
			add_rule(f, text);
		}
	}
	double add_s = seconds_since(&t0);
	assert_int_equal(rules_count(f->rules), DEVICES * ATTRS);
	/* an attribute no rule watches (a10), updated over and over */
	snprintf(attr, sizeof(attr), "a%d", ATTRS);
	const char *changed[] = {attr};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < CALLS; i++)
		rules_on_state(f->rules, devs[i % DEVICES], changed, 1);
	double hot_s = seconds_since(&t0);
	struct rules_stats st;
	rules_get_stats(f->rules, &st);
	assert_int_equal(st.evaluations, 0);
	assert_int_equal(count(f->publishes), 0);
	/* a watched attribute fires exactly its own rule */
	put_num(f, devs[500], "a7", 11);
	assert_int_equal(count(f->publishes), 1);
	assert_string_equal(str_of(item(f->publishes, 0), "topic"), "perf/500/7");
	print_message("[ perf     ] %d rules added in %.1f ms (%.1f us each)\n", DEVICES * ATTRS,
		      add_s * 1e3, add_s * 1e6 / (DEVICES * ATTRS));
	print_message("[ perf     ] %d rules_on_state on an unwatched attribute: %.1f ms "
		      "(%.0f ns each)\n",
		      CALLS, hot_s * 1e3, hot_s * 1e9 / CALLS);
	free(devs);
}

/*
 * DESIGN: under 8 MiB resident with 1,000 devices and 1,000 rules. Counted
 * as bytes the allocator hands out (resident figures depend on what it
 * reuses), 1,000 small rules alone must not use it all.
 */
static void test_memory_1000_rules(void **state)
{
	struct fake *f = *state;
	if (SLOW_BUILD)
		skip(); /* the sanitizers' allocator keeps no such figures */
	char err[256], id[64], text[512];
	for (int d = 0; d < 1000; d++) {
		struct device *dev;
		snprintf(id, sizeof(id), "mem:dev%d", d);
		assert_int_equal(registry_add(f->reg, id, NULL, "mem", &dev, err, sizeof(err)), 0);
		struct hearth_attr a = {"level", HEARTH_NUMBER(0)};
		assert_int_equal(registry_merge(dev, &a, 1, NULL), 1);
	}
	size_t before = mallinfo2().uordblks;
	for (int i = 0; i < 1000; i++) {
		snprintf(text, sizeof(text),
			 "{'id':'mem%d','triggers':[{'type':'numeric','device':'mem:dev%d',"
			 "'attribute':'level','above':10}],'actions':[{'type':'set','device':"
			 "'hall/light','state':{'state':'ON'}},{'type':'delay','duration':'5m'},"
			 "{'type':'set','device':'hall/light','state':{'state':'OFF'}}]}",
			 i, i);
		add_rule(f, text);
	}
	size_t grown = mallinfo2().uordblks - before;
	print_message("[ memory   ] 1000 rules: %zu KiB allocated (%.1f KiB each)\n", grown / 1024,
		      (double)grown / 1024 / 1000);
	if (grown >= 8u << 20)
		fail_msg("1000 rules hold %zu KiB, more than the 8 MiB DESIGN gives the whole hub "
			 "with 1,000 devices and 1,000 rules",
			 grown / 1024);
}

/* ---------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------- */

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
	setenv("TZ", "Europe/Amsterdam", 1);
	tzset();
	/* ./test_rules 'test_mode_*' runs a subset */
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	const struct CMUnitTest tests[] = {
		T(test_validation_table),
		T(test_validation_nesting),
		T(test_validation_sun_needs_location),
		T(test_validation_sources),
		T(test_names_resolved_to_ids),
		T(test_names_ids_accepted),
		T(test_state_from_to),
		T(test_state_to_list_and_unchanged),
		T(test_state_for_exact),
		T(test_state_for_cancelled),
		T(test_state_for_not_restarted),
		T(test_numeric_crossing),
		T(test_numeric_for),
		T(test_event_trigger),
		T(test_device_available),
		T(test_mqtt_trigger),
		T(test_topic_matches_table),
		T(test_time_trigger_weekdays),
		T(test_cron_trigger),
		T(test_sun_trigger),
		T(test_condition_state_numeric),
		T(test_condition_explained),
		T(test_condition_time_midnight),
		T(test_condition_nested),
		T(test_condition_trigger_id),
		T(test_action_set_from_trigger),
		T(test_action_delay),
		T(test_action_wait_event),
		T(test_action_wait_state_for),
		T(test_action_wait_timeout),
		T(test_action_publish),
		T(test_action_rule_verbs),
		T(test_action_choose),
		T(test_action_repeat),
		T(test_action_repeat_cap),
		T(test_action_scene),
		T(test_mode_single),
		T(test_mode_restart),
		T(test_mode_queued),
		T(test_mode_parallel),
		T(test_cooldown),
		T(test_debounce),
		T(test_durable_hold_resumes),
		T(test_durable_hold_missed),
		T(test_durable_hold_stale),
		T(test_durable_delay_resumes),
		T(test_durable_delay_missed),
		T(test_durable_run_record_forgotten),
		T(test_durable_wait_hold_resumes),
		T(test_wait_from_to_unwatched),
		T(test_schedule_with_debounce),
		T(test_wait_not_ended_by_its_own_trigger),
		T(test_debounce_with_hold),
		T(test_start_and_remove),
		T(test_perf_many_rules),
		T(test_memory_1000_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
