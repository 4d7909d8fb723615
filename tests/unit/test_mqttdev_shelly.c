/*
 * The mqttdev plugin's Shelly Gen2+ parser and encoder on frames written
 * from Shelly's API documentation (tests/fixtures/mqttdev/README.md):
 * NotifyFullStatus, NotifyStatus and NotifyEvent, component statuses,
 * capabilities growing with components, JSON-RPC requests byte for byte,
 * and responses matched by id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/mqttdev/common.c"
#include "../../plugins/mqttdev/shelly.c"

#define FIX "tests/fixtures/mqttdev/"

static char *fixture(const char *name, size_t *len)
{
	char path[256];
	snprintf(path, sizeof(path), FIX "%s", name);
	FILE *f = fopen(path, "re");
	if (!f)
		fail_msg("cannot open %s (tests run from the repository root)", path);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *copy = malloc(n + 1);
	memcpy(copy, buf, n + 1);
	*len = n;
	return copy;
}

static void notify(struct shelly *s, const char *file, struct mstate *st)
{
	size_t len;
	char *p = fixture(file, &len);
	mstate_init(st);
	assert_int_equal(shelly_parse_notification(s, p, len, st), 0);
	free(p);
}

static const struct hearth_value *attr(const struct mstate *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->attrs[i].name, name) == 0)
			return &s->attrs[i].value;
	fail_msg("no attribute %s in the report", name);
	return NULL;
}

static bool has_attr(const struct mstate *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->attrs[i].name, name) == 0)
			return true;
	return false;
}

static void expect_num(const struct mstate *s, const char *name, double want)
{
	const struct hearth_value *v = attr(s, name);
	assert_int_equal(v->type, HEARTH_VALUE_NUMBER);
	if (fabs(v->u.number - want) > 1e-9)
		fail_msg("%s is %.9g, want %.9g", name, v->u.number, want);
}

static void expect_str(const struct mstate *s, const char *name, const char *want)
{
	const struct hearth_value *v = attr(s, name);
	assert_int_equal(v->type, HEARTH_VALUE_STRING);
	assert_string_equal(v->u.string, want);
}

static const struct hearth_capability *cap(const struct shelly *s, const char *name)
{
	int i = mcaps_find(&s->caps, name);
	if (i < 0)
		fail_msg("no capability %s", name);
	return &s->caps.caps[i].c;
}

/* The request frames a command becomes, each checked byte for byte. */
static void expect_frames(const struct shelly *s, const struct hearth_attr *attrs, size_t n,
			  const char *const *want, size_t n_want)
{
	struct sh_rpc rpcs[8];
	size_t got;
	assert_int_equal(shelly_encode(s, attrs, n, rpcs, 8, &got), 0);
	assert_int_equal(got, n_want);
	for (size_t i = 0; i < got; i++) {
		char frame[512];
		assert_int_equal(shelly_frame(100 + i, "hearth-mqttdev", &rpcs[i], frame,
					      sizeof(frame)),
				 0);
		assert_string_equal(frame, want[i]);
	}
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void plus1pm_full_status(void **state)
{
	(void)state;
	struct shelly s;
	assert_int_equal(shelly_init(&s, "shellyplus1pm-a8032ab12345"), 0);
	assert_string_equal(s.id, "shellyplus1pm-a8032ab12345");
	assert_string_equal(s.model, "shellyplus1pm");
	struct mstate st;
	notify(&s, "shelly_plus1pm_fullstatus.json", &st);
	assert_true(st.caps_changed);
	expect_str(&st, "state", "OFF");
	expect_num(&st, "power", 0);
	expect_num(&st, "voltage", 231.4);
	expect_num(&st, "current", 0);
	expect_num(&st, "energy", 1.234567); /* Wh from the device, kWh in hearth */
	expect_num(&st, "device_temperature", 43.1);
	expect_num(&st, "rssi", -58);
	assert_int_equal(attr(&st, "input")->type, HEARTH_VALUE_BOOL);
	assert_false(attr(&st, "input")->u.boolean);
	const struct hearth_capability *sw = cap(&s, "state");
	assert_int_equal(sw->type, HEARTH_CAP_BINARY);
	assert_true(sw->access & HEARTH_ACCESS_SET);
	assert_string_equal(cap(&s, "energy")->unit, "kWh");
	assert_false(cap(&s, "input")->access & HEARTH_ACCESS_SET);
	assert_int_equal(s.caps.n, 8);

	/* NotifyStatus carries what changed: no new capability */
	notify(&s, "shelly_plus1pm_notifystatus.json", &st);
	assert_false(st.caps_changed);
	assert_int_equal(st.n, 1);
	expect_str(&st, "state", "ON");

	size_t len;
	char *p = fixture("shelly_plus1pm_status_switch0.json", &len);
	mstate_init(&st);
	assert_int_equal(shelly_parse_status(&s, "switch:0", p, len, &st), 0);
	free(p);
	expect_num(&st, "power", 52.3);
	expect_num(&st, "energy", 1.24);
	assert_false(st.caps_changed);
}

static void switch_frames(void **state)
{
	(void)state;
	struct shelly s;
	struct mstate st;
	assert_int_equal(shelly_init(&s, "shellyplus1pm-a8032ab12345"), 0);
	notify(&s, "shelly_plus1pm_fullstatus.json", &st);
	struct hearth_attr on = {"state", HEARTH_STRING("ON")};
	static const char *const want_on[] = {
		"{\"id\":100,\"src\":\"hearth-mqttdev\",\"method\":\"Switch.Set\","
		"\"params\":{\"id\":0,\"on\":true}}"};
	expect_frames(&s, &on, 1, want_on, 1);
	struct hearth_attr off = {"state", HEARTH_STRING("OFF")};
	static const char *const want_off[] = {
		"{\"id\":100,\"src\":\"hearth-mqttdev\",\"method\":\"Switch.Set\","
		"\"params\":{\"id\":0,\"on\":false}}"};
	expect_frames(&s, &off, 1, want_off, 1);
	/* measured values and unknown names cannot be set */
	struct sh_rpc rpcs[4];
	size_t n;
	struct hearth_attr power = {"power", HEARTH_NUMBER(5)};
	assert_int_equal(shelly_encode(&s, &power, 1, rpcs, 4, &n), -EINVAL);
	struct hearth_attr nope = {"nope", HEARTH_STRING("ON")};
	assert_int_equal(shelly_encode(&s, &nope, 1, rpcs, 4, &n), -EINVAL);
	/* a source that would break the frame */
	assert_int_equal(shelly_frame(1, "bad\"src", &(struct sh_rpc){"Switch.Set", "{}"}, NULL, 0),
			 -EINVAL);
}

static void i4_buttons(void **state)
{
	(void)state;
	struct shelly s;
	struct mstate st;
	assert_int_equal(shelly_init(&s, "shellies/shellyplusi4-c4d8d5a1b2c3"), 0);
	assert_string_equal(s.id, "shellyplusi4-c4d8d5a1b2c3");
	notify(&s, "shelly_plusi4_fullstatus.json", &st);
	/* inputs 0 and 1 are buttons (no state): they get actions; 2 and 3 switches */
	const struct hearth_capability *a = cap(&s, "action");
	assert_int_equal(a->type, HEARTH_CAP_ENUM);
	assert_int_equal(a->n_values, 6);
	cap(&s, "action_1");
	assert_int_equal(mcaps_find(&s.caps, "action_2"), -1);
	assert_false(attr(&st, "input_2")->u.boolean);
	assert_true(attr(&st, "input_3")->u.boolean);
	notify(&s, "shelly_plusi4_event.json", &st);
	expect_str(&st, "action_1", "double_push");
	assert_int_equal(st.n_events, 1);
	assert_string_equal(st.events[0].type, "action_1");
	assert_string_equal(st.events[0].attr, "action_1");
	assert_string_equal(st.events[0].value, "double_push");
	assert_false(st.caps_changed);
	/* an event nobody knows is dropped */
	const char *odd = "{\"method\":\"NotifyEvent\",\"params\":{\"events\":[{\"component\":"
			  "\"input:0\",\"event\":\"config_changed\"},{\"component\":\"sys\","
			  "\"event\":\"single_push\"}]}}";
	mstate_init(&st);
	assert_int_equal(shelly_parse_notification(&s, odd, strlen(odd), &st), 0);
	assert_int_equal(st.n, 0);
	assert_int_equal(st.n_events, 0);
}

static void cover_frames(void **state)
{
	(void)state;
	struct shelly s;
	struct mstate st;
	assert_int_equal(shelly_init(&s, "shellyplus2pm-e465b8f0a1b2"), 0);
	notify(&s, "shelly_plus2pm_cover_fullstatus.json", &st);
	expect_str(&st, "state", "STOP");
	expect_num(&st, "position", 40);
	expect_num(&st, "energy", 0.010215);
	const struct hearth_capability *c = cap(&s, "state");
	assert_int_equal(c->type, HEARTH_CAP_ENUM);
	assert_string_equal(c->values[0], "OPEN");
	assert_int_equal(cap(&s, "position")->max, 100);
	struct hearth_attr open = {"state", HEARTH_STRING("OPEN")};
	static const char *const want_open[] = {
		"{\"id\":100,\"src\":\"hearth-mqttdev\",\"method\":\"Cover.Open\","
		"\"params\":{\"id\":0}}"};
	expect_frames(&s, &open, 1, want_open, 1);
	struct hearth_attr pos = {"position", HEARTH_NUMBER(75)};
	static const char *const want_pos[] = {
		"{\"id\":100,\"src\":\"hearth-mqttdev\",\"method\":\"Cover.GoToPosition\","
		"\"params\":{\"id\":0,\"pos\":75}}"};
	expect_frames(&s, &pos, 1, want_pos, 1);
	/* moving states read as where the cover is heading */
	const char *closing = "{\"method\":\"NotifyStatus\",\"params\":{\"cover:0\":{\"id\":0,"
			      "\"state\":\"closing\"}}}";
	mstate_init(&st);
	assert_int_equal(shelly_parse_notification(&s, closing, strlen(closing), &st), 0);
	expect_str(&st, "state", "CLOSE");
}

static void dimmer_frames(void **state)
{
	(void)state;
	struct shelly s;
	struct mstate st;
	assert_int_equal(shelly_init(&s, "shellyprodm1pm-30c6f7a1b2c3"), 0);
	notify(&s, "shelly_dimmer_fullstatus.json", &st);
	expect_str(&st, "state", "ON");
	expect_num(&st, "brightness", 35);
	assert_true(cap(&s, "brightness")->access & HEARTH_ACCESS_SET);
	/* on and brightness of one light in one call */
	struct hearth_attr set[] = {{"state", HEARTH_STRING("OFF")}, {"brightness", HEARTH_NUMBER(20)}};
	static const char *const want[] = {
		"{\"id\":100,\"src\":\"hearth-mqttdev\",\"method\":\"Light.Set\","
		"\"params\":{\"id\":0,\"on\":false,\"brightness\":20}}"};
	expect_frames(&s, set, 2, want, 1);
}

static void sensors(void **state)
{
	(void)state;
	struct shelly s;
	struct mstate st;
	assert_int_equal(shelly_init(&s, "shellyhtg3-e4b32382b1c0"), 0);
	notify(&s, "shelly_ht_fullstatus.json", &st);
	expect_num(&st, "temperature", 21.9);
	expect_num(&st, "humidity", 47.3);
	expect_num(&st, "battery", 83);
	assert_string_equal(cap(&s, "temperature")->unit, "°C");
	assert_string_equal(cap(&s, "humidity")->unit, "%");
	/* channel 1 is named apart from channel 0 */
	const char *two = "{\"method\":\"NotifyStatus\",\"params\":{\"temperature:1\":{\"id\":1,"
			  "\"tC\":5.5}}}";
	mstate_init(&st);
	assert_int_equal(shelly_parse_notification(&s, two, strlen(two), &st), 0);
	assert_true(st.caps_changed);
	expect_num(&st, "temperature_1", 5.5);
	assert_false(has_attr(&st, "temperature"));
}

static void responses(void **state)
{
	(void)state;
	size_t len;
	char *p = fixture("shelly_response_ok.json", &len);
	struct sh_response r;
	assert_int_equal(shelly_parse_response(p, len, &r), 0);
	free(p);
	assert_true(r.id == 4711);
	assert_int_equal(r.error_code, 0);
	assert_non_null(r.result);
	assert_string_equal(r.src, "shellyplus1pm-a8032ab12345");
	cJSON_Delete(r.root);
	p = fixture("shelly_response_error.json", &len);
	assert_int_equal(shelly_parse_response(p, len, &r), 0);
	free(p);
	assert_true(r.id == 4712);
	assert_int_equal(r.error_code, -103);
	assert_string_equal(r.error, "Invalid argument 'id': no such component");
	assert_null(r.result);
	cJSON_Delete(r.root);
	static const char *const bad[] = {"", "nope", "{\"result\":{}}", "{\"id\":\"x\"}", "[]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(shelly_parse_response(bad[i], strlen(bad[i]), &r), -EINVAL);
}

static void malformed(void **state)
{
	(void)state;
	struct shelly s;
	struct mstate st;
	assert_int_equal(shelly_init(&s, "shellyplus1-x"), 0);
	static const char *const bad[] = {
		"", "not json", "{\"method\":\"NotifyStatus\"}", "{\"params\":{}}",
		"{\"method\":1,\"params\":{}}", "{\"method\":\"NotifyStatus\",\"params\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mstate_init(&st);
		assert_int_equal(shelly_parse_notification(&s, bad[i], strlen(bad[i]), &st), -EINVAL);
	}
	/* keys that are no component, ids out of range, values of the wrong type */
	const char *odd = "{\"method\":\"NotifyStatus\",\"params\":{\"switch:abc\":{\"output\":true},"
			  "\"switch:1000\":{\"output\":true},\"switch:\":{\"output\":true},"
			  "\"switch:0\":{\"output\":\"yes\",\"apower\":\"12\"},\"gizmo:0\":{}}}";
	mstate_init(&st);
	assert_int_equal(shelly_parse_notification(&s, odd, strlen(odd), &st), 0);
	assert_int_equal(st.n, 0);
	assert_int_equal(s.caps.n, 0);
	/* prefixes */
	assert_int_equal(shelly_init(&s, ""), -EINVAL);
	assert_int_equal(shelly_init(&s, "a/+/b"), -EINVAL);
	assert_int_equal(shelly_init(&s, "trailing/"), -EINVAL);
	/* a device with many switches stops at the capability limit, safely */
	for (int i = 0; i < 40; i++) {
		char frame[256];
		snprintf(frame, sizeof(frame),
			 "{\"method\":\"NotifyStatus\",\"params\":{\"switch:%d\":{\"output\":true,"
			 "\"apower\":1,\"voltage\":230}}}",
			 i);
		mstate_init(&st);
		assert_int_equal(shelly_parse_notification(&s, frame, strlen(frame), &st), 0);
	}
	assert_int_equal(s.caps.n, MD_CAPS_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plus1pm_full_status), cmocka_unit_test(switch_frames),
		cmocka_unit_test(i4_buttons),	       cmocka_unit_test(cover_frames),
		cmocka_unit_test(dimmer_frames),       cmocka_unit_test(sensors),
		cmocka_unit_test(responses),	       cmocka_unit_test(malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
