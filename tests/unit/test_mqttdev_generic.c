/*
 * The mqttdev plugin's generic JSON devices: the devices file (the bench
 * file the benchmark uses, a small home's file, and every refusal with the
 * device and field it names), {i} templates and their wildcard
 * subscriptions, state payloads with dotted keys and value mapping, and
 * the exact payload a hearth /set becomes.
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
#include "../../plugins/mqttdev/generic.c"

#define FIX "tests/fixtures/mqttdev/"

static char *fixture(const char *name, size_t *len, size_t *lines)
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
	if (lines) {
		*lines = 0;
		for (size_t i = 0; i < n; i++)
			*lines += buf[i] == '\n';
	}
	char *copy = malloc(n + 1);
	memcpy(copy, buf, n + 1);
	*len = n;
	return copy;
}

static void load(struct gen_file *f, const char *name)
{
	size_t len;
	char err[256] = "", *p = fixture(name, &len, NULL);
	if (generic_parse(p, len, f, err, sizeof(err)))
		fail_msg("%s: %s", name, err);
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

static void state_of(const struct gen_spec *spec, const char *payload, struct mstate *s)
{
	mstate_init(s);
	assert_int_equal(generic_parse_state(spec, payload, strlen(payload), s), 0);
}

static void expect_encoded(const struct gen_spec *spec, const struct hearth_attr *a, size_t n,
			   const char *want)
{
	char *out = NULL;
	assert_int_equal(generic_encode(spec, a, n, &out), 0);
	assert_string_equal(out, want);
	free(out);
}

/* ---- the benchmark's file ------------------------------------------------------------------- */

static void bench_file(void **state)
{
	(void)state;
	size_t len, lines;
	free(fixture("bench.json", &len, &lines));
	/* 100 sensors and 100 lights in a few lines */
	assert_true(lines <= 30);
	struct gen_file f;
	load(&f, "bench.json");
	assert_int_equal(f.n_specs, 2);
	assert_int_equal(f.n_devices, 200);
	const struct gen_spec *sensor = &f.specs[0], *light = &f.specs[1];
	assert_int_equal(sensor->count, 100);
	assert_int_equal(sensor->start, 0);
	assert_false(sensor->optimistic);
	assert_true(light->optimistic); /* no state topic: hearth shows what it sent */
	assert_int_equal(light->qos, 0);

	char *id = generic_expand(sensor->id, 42), *topic = generic_expand(sensor->state_topic, 42);
	assert_string_equal(id, "bench-sensor-42");
	assert_string_equal(topic, "bench/sensor/42/state");
	free(id);
	free(topic);
	char *cmd = generic_expand(light->command_topic, 99);
	assert_string_equal(cmd, "bench/light/99/set");
	free(cmd);

	/* one subscription for all 100 sensors; the index comes from the topic */
	char filter[MD_TOPIC_MAX];
	assert_int_equal(generic_wildcard(sensor->state_topic, filter, sizeof(filter)), 2);
	assert_string_equal(filter, "bench/sensor/+/state");
	assert_int_equal(generic_index(sensor, "bench/sensor/0/state", 2), 0);
	assert_int_equal(generic_index(sensor, "bench/sensor/99/state", 2), 99);
	assert_int_equal(generic_index(sensor, "bench/sensor/100/state", 2), -1);
	assert_int_equal(generic_index(sensor, "bench/sensor/007/state", 2), -1);
	assert_int_equal(generic_index(sensor, "bench/sensor/-1/state", 2), -1);
	assert_int_equal(generic_index(sensor, "bench/sensor/x/state", 2), -1);
	assert_int_equal(generic_index(sensor, "bench/sensor/5x/state", 2), -1);

	struct mstate s;
	state_of(sensor, "{\"motion\":true,\"seq\":12345}", &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(attr(&s, "motion")->type, HEARTH_VALUE_BOOL);
	assert_true(attr(&s, "motion")->u.boolean);
	assert_true(attr(&s, "seq")->u.number == 12345);
	state_of(sensor, "{\"motion\":false}", &s);
	assert_false(attr(&s, "motion")->u.boolean);

	const struct hearth_capability *st = &light->caps[0];
	assert_string_equal(st->name, "state");
	assert_int_equal(st->type, HEARTH_CAP_BINARY);
	assert_string_equal(st->value_on.u.string, "ON");
	assert_true(st->access & HEARTH_ACCESS_SET);
	struct hearth_attr on[] = {{"state", HEARTH_STRING("ON")}, {"seq", HEARTH_NUMBER(7)}};
	expect_encoded(light, on, 2, "{\"state\":\"ON\",\"seq\":7}");
	generic_free(&f);
}

/* ---- a small home's file --------------------------------------------------------------------- */

static void home_file(void **state)
{
	(void)state;
	struct gen_file f;
	load(&f, "devices.json");
	assert_int_equal(f.n_devices, 3);
	const struct gen_spec *climate = &f.specs[0], *relay = &f.specs[1], *door = &f.specs[2];
	assert_int_equal(climate->count, 0);
	assert_string_equal(climate->vendor, "DIY");
	assert_string_equal(climate->caps[0].unit, "°C");
	assert_int_equal(climate->caps[2].flags, HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX);
	struct mstate s;
	state_of(climate,
		 "{\"bme280\":{\"temperature\":21.25,\"humidity\":\"48.5\"},\"power\":{\"battery\":"
		 "97},\"uptime\":100}",
		 &s);
	assert_true(attr(&s, "temperature")->u.number == 21.25);
	assert_true(attr(&s, "humidity")->u.number == 48.5); /* numeric text accepted */
	assert_true(attr(&s, "battery")->u.number == 97);
	assert_int_equal(s.n, 3);

	/* 1/0 on the wire, ON/OFF in hearth, both ways */
	state_of(relay, "{\"relay\":1,\"mode\":\"auto\",\"out\":{\"level\":4}}", &s);
	assert_string_equal(attr(&s, "state")->u.string, "ON");
	assert_string_equal(attr(&s, "mode")->u.string, "auto");
	assert_true(attr(&s, "level")->u.number == 4);
	state_of(relay, "{\"relay\":0,\"mode\":\"party\"}", &s);
	assert_string_equal(attr(&s, "state")->u.string, "OFF");
	assert_int_equal(s.n, 1); /* "party" is no value of the enum */
	struct hearth_attr off = {"state", HEARTH_STRING("OFF")};
	expect_encoded(relay, &off, 1, "{\"relay\":0}");
	struct hearth_attr both[] = {{"state", HEARTH_STRING("ON")},
				     {"level", HEARTH_NUMBER(3)},
				     {"mode", HEARTH_STRING("manual")}};
	expect_encoded(relay, both, 3, "{\"relay\":1,\"out\":{\"level\":3},\"mode\":\"manual\"}");
	assert_int_equal(generic_parse_availability(relay, "1", 1), 1);
	assert_int_equal(generic_parse_availability(relay, "0", 1), 0);
	assert_int_equal(generic_parse_availability(relay, "online", 6), -1);
	assert_int_equal(generic_parse_availability(climate, "{\"state\":\"offline\"}", 19), 0);
	assert_int_equal(generic_parse_availability(climate, "online", 6), 1);

	/* the whole payload is the value: "closed" is hearth's true */
	state_of(door, "closed", &s);
	assert_true(attr(&s, "contact")->u.boolean);
	state_of(door, "OPEN", &s);
	assert_false(attr(&s, "contact")->u.boolean);
	state_of(door, "ajar", &s);
	assert_int_equal(s.n, 0);

	/* read-only attributes cannot be encoded */
	struct hearth_attr t = {"temperature", HEARTH_NUMBER(20)};
	char *out = NULL;
	assert_int_equal(generic_encode(climate, &t, 1, &out), -EINVAL);
	assert_null(out);
	generic_free(&f);
}

static void raw_commands(void **state)
{
	(void)state;
	const char *file = "[{\"id\":\"plug\",\"command_topic\":\"plug/cmd\",\"state_topic\":"
			   "\"plug/state\",\"attributes\":[{\"name\":\"state\",\"key\":\"$\","
			   "\"type\":\"binary\",\"access\":\"rw\",\"value_on\":\"ON\","
			   "\"value_off\":\"OFF\",\"payload_on\":\"1\",\"payload_off\":\"0\"}]}]";
	struct gen_file f;
	char err[256];
	assert_int_equal(generic_parse(file, strlen(file), &f, err, sizeof(err)), 0);
	struct hearth_attr on = {"state", HEARTH_STRING("ON")};
	expect_encoded(&f.specs[0], &on, 1, "1");
	struct mstate s;
	state_of(&f.specs[0], "0", &s);
	assert_string_equal(attr(&s, "state")->u.string, "OFF");
	generic_free(&f);
}

/* ---- refusals ------------------------------------------------------------------------------- */

static void refusals(void **state)
{
	(void)state;
	static const struct {
		const char *file;
		const char *names;
	} bad[] = {
		{"", "devices"},
		{"{\"things\":[]}", "devices"},
		{"{\"devices\":[],\"extra\":1}", "unknown field 'extra'"},
		{"[{\"name\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"text\"}]}]", "id"},
		{"[{\"id\":\"a b\",\"attributes\":[{\"name\":\"a\",\"type\":\"text\"}]}]", "id"},
		{"[{\"id\":\"x\",\"colour\":1,\"attributes\":[]}]", "device 1: unknown field 'colour'"},
		{"[{\"id\":\"x\",\"attributes\":[]}]", "device x: attributes"},
		{"[{\"id\":\"x\",\"attributes\":[{\"type\":\"text\"}]}]", "name is missing"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"colour\"}]}]", "type"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"enum\"}]}]", "values"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"text\",\"access\":\"rw\"}]}]",
		 "command_topic"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"text\",\"access\":\"x\"}]}]",
		 "access"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"text\"},{\"name\":\"a\","
		 "\"type\":\"text\"}]}]",
		 "listed twice"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"numeric\",\"min\":5,"
		 "\"max\":1}]}]",
		 "min is above max"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"binary\",\"value_on\":1,"
		 "\"value_off\":1}]}]",
		 "must differ"},
		{"[{\"id\":\"x\",\"attributes\":[{\"name\":\"a\",\"type\":\"binary\",\"payload_on\":"
		 "[1]}]}]",
		 "payload_on"},
		{"[{\"id\":\"x-{i}\",\"count\":3,\"state_topic\":\"s/x\",\"attributes\":[{\"name\":"
		 "\"a\",\"type\":\"text\"}]}]",
		 "must hold {i}"},
		{"[{\"id\":\"x\",\"count\":3,\"attributes\":[{\"name\":\"a\",\"type\":\"text\"}]}]",
		 "must hold {i}"},
		{"[{\"id\":\"x-{i}\",\"count\":10001,\"attributes\":[{\"name\":\"a\",\"type\":"
		 "\"text\"}]}]",
		 "count"},
		{"[{\"id\":\"x-{i}\",\"count\":2.5,\"attributes\":[{\"name\":\"a\",\"type\":"
		 "\"text\"}]}]",
		 "count"},
		{"[{\"id\":\"x\",\"state_topic\":\"a/#\",\"attributes\":[{\"name\":\"a\",\"type\":"
		 "\"text\"}]}]",
		 "not a usable topic"},
		{"[{\"id\":\"x\",\"state_topic\":\"/a\",\"attributes\":[{\"name\":\"a\",\"type\":"
		 "\"text\"}]}]",
		 "not a usable topic"},
		{"[{\"id\":\"x\",\"qos\":3,\"attributes\":[{\"name\":\"a\",\"type\":\"text\"}]}]",
		 "qos"},
		{"[{\"id\":\"x\",\"retain\":\"yes\",\"attributes\":[{\"name\":\"a\",\"type\":"
		 "\"text\"}]}]",
		 "retain"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gen_file f;
		char err[256] = "";
		int rc = generic_parse(bad[i].file, strlen(bad[i].file), &f, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("accepted: %s", bad[i].file);
		if (!strstr(err, bad[i].names))
			fail_msg("for %s the error '%s' does not say '%s'", bad[i].file, err,
				 bad[i].names);
		assert_null(f.specs);
	}
	/* more than 10000 devices in all */
	char big[4096];
	size_t n = (size_t)snprintf(big, sizeof(big), "[");
	for (int k = 0; k < 3; k++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
				      "%s{\"id\":\"d%d-{i}\",\"count\":4000,\"attributes\":[{\"name\":"
				      "\"a\",\"type\":\"text\"}]}",
				      k ? "," : "", k);
	snprintf(big + n, sizeof(big) - n, "]");
	struct gen_file f;
	char err[256] = "";
	assert_int_equal(generic_parse(big, strlen(big), &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 10000"));
}

static void templates(void **state)
{
	(void)state;
	char *s = generic_expand("a-{i}-b{i}", 7);
	assert_string_equal(s, "a-7-b7");
	free(s);
	assert_null(generic_expand(NULL, 1));
	char filter[64];
	/* {i} inside a level: no wildcard; the hub would refuse "+/x" anyway */
	assert_int_equal(generic_wildcard("a/dev{i}/state", filter, sizeof(filter)), -1);
	assert_int_equal(generic_wildcard("{i}/state", filter, sizeof(filter)), 0);
	assert_string_equal(filter, "+/state");
	assert_int_equal(generic_wildcard("a/{i}/{i}", filter, sizeof(filter)), -1);
	assert_int_equal(generic_wildcard("a/b/{i}", filter, sizeof(filter)), 2);
	assert_string_equal(filter, "a/b/+");
	assert_int_equal(generic_wildcard("a/b/{i}", filter, 4), -1);
}

/* ---- docs/mqtt-devices.md ---------------------------------------------------------------- */

/* The next ```json block after *pos (malloc'd), or NULL. */
static char *next_json_block(const char **pos)
{
	const char *start = strstr(*pos, "```json\n");
	if (!start)
		return NULL;
	start += 8;
	const char *end = strstr(start, "```");
	if (!end)
		return NULL;
	*pos = end + 3;
	return strndup(start, (size_t)(end - start));
}

/* Every devices file in the docs is one hearth takes, the bench example is
 * the fixture the tests run, and what the text says the first example does,
 * it does. */
static void docs_examples(void **state)
{
	(void)state;
	FILE *f = fopen("docs/mqtt-devices.md", "re");
	assert_non_null(f);
	static char doc[131072];
	size_t n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	const char *pos = doc;
	int files = 0;
	char *block;
	while ((block = next_json_block(&pos))) {
		if (!strstr(block, "\"devices\"")) {
			free(block);
			continue;
		}
		struct gen_file g;
		char err[256] = "";
		if (generic_parse(block, strlen(block), &g, err, sizeof(err)))
			fail_msg("docs/mqtt-devices.md example %d: %s", files + 1, err);
		if (files == 0) {
			struct mstate s;
			state_of(&g.specs[0],
				 "{\"relay\":1,\"out\":{\"level\":4},\"sensors\":{\"temp\":21.5}}", &s);
			assert_string_equal(attr(&s, "state")->u.string, "ON");
			assert_true(attr(&s, "level")->u.number == 4);
			assert_true(attr(&s, "temperature")->u.number == 21.5);
			struct hearth_attr set[] = {{"state", HEARTH_STRING("OFF")},
						    {"level", HEARTH_NUMBER(3)}};
			expect_encoded(&g.specs[0], set, 2, "{\"relay\":0,\"out\":{\"level\":3}}");
		}
		if (strstr(block, "bench-sensor")) {
			size_t len;
			char *fix = fixture("bench.json", &len, NULL);
			cJSON *a = cJSON_Parse(block), *b = cJSON_Parse(fix);
			if (!cJSON_Compare(a, b, true))
				fail_msg("the bench example in docs/mqtt-devices.md differs from "
					 "tests/fixtures/mqttdev/bench.json");
			cJSON_Delete(a);
			cJSON_Delete(b);
			free(fix);
		}
		generic_free(&g);
		free(block);
		files++;
	}
	assert_int_equal(files, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bench_file), cmocka_unit_test(home_file),
		cmocka_unit_test(raw_commands), cmocka_unit_test(refusals),
		cmocka_unit_test(templates), cmocka_unit_test(docs_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
