/*
 * Unit tests for the rule engine when rules act on each other while they
 * run: a "restart" rule triggered from its own run (directly or through
 * another rule), and a wait finishing that restarts another waiting run.
 * Kept apart from test_rules.c because a memory error here aborts the
 * whole binary under AddressSanitizer.
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

#include "registry.h"
#include "rules.h"

#define BASE_MS 1709550000000LL

struct fake {
	int64_t now;
	struct registry *reg;
	struct rules *rules;
	struct device *button;
	cJSON *publishes; /* topics */
	cJSON *fired;	  /* records */
};

static int64_t h_now(void *user)
{
	return ((struct fake *)user)->now;
}

static int h_set(void *user, const char *device_id, const cJSON *state, char *err, size_t len)
{
	(void)user;
	(void)device_id;
	(void)state;
	(void)err;
	(void)len;
	return 0;
}

static int h_scene(void *user, const char *scene_id, char *err, size_t len)
{
	(void)user;
	(void)scene_id;
	(void)err;
	(void)len;
	return 0;
}

static int h_publish(void *user, const char *topic, const char *payload, bool retain)
{
	(void)payload;
	(void)retain;
	cJSON_AddItemToArray(((struct fake *)user)->publishes, cJSON_CreateString(topic));
	return 0;
}

static void h_fired(void *user, const cJSON *record)
{
	cJSON_AddItemToArray(((struct fake *)user)->fired, cJSON_Duplicate(record, 1));
}

static void h_trace(void *user, const char *rule_id, const cJSON *trace)
{
	(void)user;
	(void)rule_id;
	(void)trace;
}

static void h_persist(void *user, const char *key, const char *rule_id, const cJSON *record)
{
	(void)user;
	(void)key;
	(void)rule_id;
	(void)record;
}

static void h_changed(void *user)
{
	(void)user;
}

static void h_mqtt_watch(void *user, const char *filter, bool add)
{
	(void)user;
	(void)filter;
	(void)add;
}

static bool h_location(void *user, double *lat, double *lon)
{
	(void)user;
	(void)lat;
	(void)lon;
	return false;
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->now = BASE_MS;
	f->reg = registry_new();
	f->publishes = cJSON_CreateArray();
	f->fired = cJSON_CreateArray();
	char err[256];
	if (!f->reg || !f->publishes || !f->fired ||
	    registry_add(f->reg, "zigbee:button1", "hall/button", "zigbee", &f->button, err,
			 sizeof(err)) != 0)
		return -1;
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
	f->rules = rules_new(&host, f->reg);
	if (!f->rules)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;
	rules_free(f->rules);
	registry_free(f->reg);
	cJSON_Delete(f->publishes);
	cJSON_Delete(f->fired);
	free(f);
	return 0;
}

static void add_rule(struct fake *f, const char *text)
{
	char *s = strdup(text);
	assert_non_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	cJSON *def = cJSON_Parse(s);
	if (!def)
		fail_msg("test JSON does not parse: %s", s);
	char err[512] = "";
	int rc = rules_add(f->rules, def, RULES_SOURCE_API, err, sizeof(err));
	cJSON_Delete(def);
	free(s);
	if (rc)
		fail_msg("rules_add: %d %s", rc, err);
}

static int publishes_to(struct fake *f, const char *topic)
{
	int n = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, f->publishes) n += strcmp(p->valuestring, topic) == 0;
	return n;
}

static size_t runs_active(struct fake *f)
{
	struct rules_stats st;
	rules_get_stats(f->rules, &st);
	return st.runs_active;
}

/* A restart rule that triggers itself: each new run restarts (stops) the
 * run that is executing the "rule" action. */
static void test_restart_self_trigger(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'loop','mode':'restart','triggers':[{'type':'start'}],'actions':["
		    "{'type':'publish','topic':'a'},{'type':'rule','rule':'loop','action':'trigger'},"
		    "{'type':'publish','topic':'b'}]}");
	char err[256] = "";
	assert_int_equal(rules_trigger(f->rules, "loop", false, err, sizeof(err)), 0);
	/* eight runs start (the manual one and seven nested), each stopped
	 * by the next; the eighth ends on the depth limit */
	assert_int_equal(publishes_to(f, "a"), 8);
	const cJSON *rec = cJSON_GetArrayItem(f->fired, cJSON_GetArraySize(f->fired) - 1);
	assert_non_null(rec);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(rec, "outcome")->valuestring,
			    "error: actions[1]: rules trigger each other more than 8 deep");
	assert_int_equal(publishes_to(f, "b"), 0);
	assert_int_equal(runs_active(f), 0);
}

/* The same through a second rule: A (restart) triggers B, B triggers A. */
static void test_restart_cross_trigger(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'a','mode':'restart','triggers':[{'type':'start'}],'actions':["
		    "{'type':'publish','topic':'a'},{'type':'rule','rule':'b','action':'trigger'},"
		    "{'type':'publish','topic':'a-end'}]}");
	add_rule(f, "{'id':'b','mode':'parallel','triggers':[{'type':'start'}],'actions':["
		    "{'type':'rule','rule':'a','action':'trigger'}]}");
	char err[256] = "";
	assert_int_equal(rules_trigger(f->rules, "a", false, err, sizeof(err)), 0);
	assert_true(publishes_to(f, "a") >= 2);
	/* every run of a was restarted by the next one except the last */
	assert_true(publishes_to(f, "a-end") <= 1);
	assert_int_equal(runs_active(f), 0);
}

/* Two runs wait for the same press. The first to finish restarts the
 * other rule, whose run is next in the list of waits. */
static void test_wait_done_restarts_waiting_run(void **state)
{
	struct fake *f = *state;
	add_rule(f, "{'id':'r','mode':'restart','triggers':[{'type':'start'}],'actions':["
		    "{'type':'wait','trigger':{'type':'event','device':'hall/button','action':'double'},"
		    "'timeout':'1h'},{'type':'publish','topic':'r'}]}");
	add_rule(f, "{'id':'w','triggers':[{'type':'start'}],'actions':["
		    "{'type':'wait','trigger':{'type':'event','device':'hall/button','action':'double'},"
		    "'timeout':'1h'},{'type':'rule','rule':'r','action':'trigger'},"
		    "{'type':'publish','topic':'w'}]}");
	rules_start(f->rules);
	assert_int_equal(runs_active(f), 2);
	cJSON *data = cJSON_CreateObject();
	assert_non_null(data);
	cJSON_AddStringToObject(data, "action", "double");
	rules_on_event(f->rules, f->button, "action", data);
	cJSON_Delete(data);
	assert_int_equal(publishes_to(f, "w"), 1);
	/* r's old run was restarted before the press reached it; the new
	 * run waits for the next press */
	assert_int_equal(publishes_to(f, "r"), 0);
	assert_int_equal(runs_active(f), 1);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_restart_self_trigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_cross_trigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_done_restarts_waiting_run, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
