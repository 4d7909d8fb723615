/*
 * Unit tests of hearthctl's pure parts: argument and environment parsing,
 * key=value to JSON, set-answer matching, value and age formatting, tables,
 * and the automation commands' options, rule files and renderings.
 * hearthctl is a separate program, so its sources are compiled in here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/ctl/ctl_args.c"
#include "../../src/ctl/ctl_auto.c"
#include "../../src/ctl/ctl_format.c"

#define ARGV(...) ((char *[]){ "hearthctl", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "hearthctl", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) ctl_args_parse(o, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof(err))

/* ---- arguments ---------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct ctl_opts o;

	(void)state;
	ctl_opts_init(&o);
	assert_string_equal(o.host, "127.0.0.1");
	assert_int_equal(o.port, 1883);
	assert_string_equal(o.base, "hearth");
	assert_int_equal(o.timeout_s, 5);
	assert_false(o.timeout_explicit);
	assert_false(o.json);
	assert_int_equal(o.nargs, 0);
}

static void test_env(void **state)
{
	struct ctl_opts o;
	char err[256];

	(void)state;
	ctl_opts_init(&o);
	assert_int_equal(ctl_opts_env(&o, "hub.local", "1884", "home/hearth", err, sizeof(err)), 0);
	assert_string_equal(o.host, "hub.local");
	assert_int_equal(o.port, 1884);
	assert_string_equal(o.base, "home/hearth");

	/* Unset and empty variables leave the values alone. */
	assert_int_equal(ctl_opts_env(&o, NULL, "", NULL, err, sizeof(err)), 0);
	assert_int_equal(o.port, 1884);

	assert_int_equal(ctl_opts_env(&o, NULL, "70000", NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "HEARTH_PORT"));
	assert_int_equal(o.port, 1884);
	assert_int_equal(ctl_opts_env(&o, NULL, NULL, "a/#", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "HEARTH_BASE"));
	assert_string_equal(o.base, "home/hearth");
}

static void test_args_global_options(void **state)
{
	struct ctl_opts o;
	char err[256];

	(void)state;
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "-H", "10.0.0.2", "-p", "1999", "-b", "h2", "-t", "9",
			       "--json", "devices"),
			 0);
	assert_string_equal(o.host, "10.0.0.2");
	assert_int_equal(o.port, 1999);
	assert_string_equal(o.base, "h2");
	assert_int_equal(o.timeout_s, 9);
	assert_true(o.timeout_explicit);
	assert_true(o.json);
	assert_int_equal(o.nargs, 1);
	assert_string_equal(o.args[0], "devices");
}

static void test_args_inline_values_and_late_options(void **state)
{
	struct ctl_opts o;
	char err[256];

	(void)state;
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "--host=broker", "-p1884", "show", "lamp", "--json",
			       "--timeout=2"),
			 0);
	assert_string_equal(o.host, "broker");
	assert_int_equal(o.port, 1884);
	assert_int_equal(o.timeout_s, 2);
	assert_true(o.json);
	assert_int_equal(o.nargs, 2);
	assert_string_equal(o.args[1], "lamp");
}

static void test_args_dash_values_after_command(void **state)
{
	struct ctl_opts o;
	char err[256];

	(void)state;
	/* After the command an unknown "-x" is a value, not an option. */
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "permit-join", "-1"), 0);
	assert_int_equal(o.nargs, 2);
	assert_string_equal(o.args[1], "-1");

	/* "--" ends the options, even known ones. */
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "set", "lamp", "--", "--json"), 0);
	assert_false(o.json);
	assert_int_equal(o.nargs, 3);
	assert_string_equal(o.args[2], "--json");
}

static void test_args_watch_options(void **state)
{
	struct ctl_opts o;
	char err[256];

	(void)state;
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "watch", "lamp", "--count", "3", "--retained"), 0);
	assert_int_equal(o.count, 3);
	assert_true(o.retained);
	assert_false(o.timeout_explicit);

	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "devices", "--count", "3"), -EINVAL);
	assert_non_null(strstr(err, "watch"));
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "watch", "--count", "0"), -EINVAL);
}

static void test_args_errors(void **state)
{
	const struct {
		int argc;
		char **argv;
		const char *needle;
	} cases[] = {
		{ ARGC("--frob", "devices"), ARGV("--frob", "devices"), "unknown option" },
		{ ARGC("devices", "-p"), ARGV("devices", "-p"), "needs a value" },
		{ ARGC("-p", "0", "devices"), ARGV("-p", "0", "devices"), "not a port" },
		{ ARGC("-p", "65536", "devices"), ARGV("-p", "65536", "devices"), "not a port" },
		{ ARGC("-p", "12a", "devices"), ARGV("-p", "12a", "devices"), "not a port" },
		{ ARGC("-t", "0", "devices"), ARGV("-t", "0", "devices"), "seconds" },
		{ ARGC("-t", "3601", "devices"), ARGV("-t", "3601", "devices"), "seconds" },
		{ ARGC("-b", "/hearth", "devices"), ARGV("-b", "/hearth", "devices"), "base topic" },
		{ ARGC("-b", "a+b", "devices"), ARGV("-b", "a+b", "devices"), "base topic" },
		{ ARGC("-H", "", "devices"), ARGV("-H", "", "devices"), "host" },
		{ ARGC("--json"), ARGV("--json"), "missing command" },
	};
	struct ctl_opts o;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ctl_opts_init(&o);
		err[0] = '\0';
		assert_int_equal(ctl_args_parse(&o, cases[i].argc, cases[i].argv, err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, cases[i].needle))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
	}
}

static void test_args_help_version_and_limits(void **state)
{
	char *argv[CTL_ARGS_MAX + 3];
	struct ctl_opts o;
	char err[256];
	int i;

	(void)state;
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "--help"), 0);
	assert_true(o.help);
	ctl_opts_init(&o);
	assert_int_equal(PARSE(&o, err, "-V"), 0);
	assert_true(o.version);

	argv[0] = "hearthctl";
	for (i = 1; i < CTL_ARGS_MAX + 2; i++)
		argv[i] = "x";
	argv[CTL_ARGS_MAX + 2] = NULL;
	ctl_opts_init(&o);
	assert_int_equal(ctl_args_parse(&o, CTL_ARGS_MAX + 2, argv, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many"));
}

static void test_parse_long(void **state)
{
	long v = 77;

	(void)state;
	assert_int_equal(ctl_parse_long("120", 0, 200, &v), 0);
	assert_int_equal(v, 120);
	assert_int_equal(ctl_parse_long("-3", -5, 5, &v), 0);
	assert_int_equal(v, -3);
	v = 77;
	assert_int_equal(ctl_parse_long("", 0, 9, &v), -EINVAL);
	assert_int_equal(ctl_parse_long(" 5", 0, 9, &v), -EINVAL);
	assert_int_equal(ctl_parse_long("+5", 0, 9, &v), -EINVAL);
	assert_int_equal(ctl_parse_long("5x", 0, 9, &v), -EINVAL);
	assert_int_equal(ctl_parse_long("10", 0, 9, &v), -EINVAL);
	assert_int_equal(ctl_parse_long("99999999999999999999", 0, 9, &v), -EINVAL);
	assert_int_equal(v, 77);
}

static void test_topic_part_valid(void **state)
{
	(void)state;
	assert_true(ctl_topic_part_valid("kitchen/light", 255));
	assert_true(ctl_topic_part_valid("zigbee:0x00158d0001a2b3c4", 255));
	assert_false(ctl_topic_part_valid("", 255));
	assert_false(ctl_topic_part_valid("a+b", 255));
	assert_false(ctl_topic_part_valid("a/#", 255));
	assert_false(ctl_topic_part_valid("/lamp", 255));
	assert_false(ctl_topic_part_valid("lamp/", 255));
	assert_false(ctl_topic_part_valid("la\nmp", 255));
	assert_false(ctl_topic_part_valid("lamp", 3));
	assert_true(ctl_topic_part_valid("lamp", 4));
}

/* ---- values and key=value ----------------------------------------------- */

static void test_value_parse(void **state)
{
	static const struct {
		const char *text;
		const char *json; /* compact JSON expected */
	} cases[] = {
		{ "42", "42" },
		{ "-1.5", "-1.5" },
		{ "0", "0" },
		{ "1e3", "1000" },
		{ "0.25", "0.25" },
		{ "true", "true" },
		{ "false", "false" },
		{ "null", "null" },
		{ "ON", "\"ON\"" },
		{ "", "\"\"" },
		{ "007", "\"007\"" },
		{ "1.", "\"1.\"" },
		{ ".5", "\".5\"" },
		{ "+5", "\"+5\"" },
		{ " 5", "\" 5\"" },
		{ "inf", "\"inf\"" },
		{ "0x10", "\"0x10\"" },
		{ "1e999", "\"1e999\"" },
		{ "True", "\"True\"" },
		{ "{\"x\":0.3,\"y\":0.3}", "{\"x\":0.3,\"y\":0.3}" },
		{ "[1, 2]", "[1,2]" },
		{ "#ff0000", "\"#ff0000\"" },
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *v = ctl_value_parse(cases[i].text, err, sizeof(err));
		char *out;

		if (!v)
			fail_msg("'%s' refused: %s", cases[i].text, err);
		out = cJSON_PrintUnformatted(v);
		assert_non_null(out);
		if (strcmp(out, cases[i].json))
			fail_msg("'%s' gave %s, expected %s", cases[i].text, out, cases[i].json);
		cJSON_free(out);
		cJSON_Delete(v);
	}
}

static void test_value_parse_bad_json(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(ctl_value_parse("{bad", err, sizeof(err)));
	assert_non_null(strstr(err, "not valid JSON"));
	assert_null(ctl_value_parse("[1,2", err, sizeof(err)));
	assert_null(ctl_value_parse("{\"a\":1} trailing", err, sizeof(err)));
}

static char *kv_json(int n, const char *const *args, const char *const *string_keys,
		     char *err, size_t err_len)
{
	cJSON *obj = ctl_kv_object(n, args, string_keys, err, err_len);
	char *out;

	if (!obj)
		return NULL;
	out = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	return out;
}

static void test_kv_object(void **state)
{
	static const char *const args[] = { "state=ON", "brightness=120", "color={\"x\":0.3}",
					    "note=a=b", "transition=0.5", "enabled=false" };
	char err[256];
	char *out;

	(void)state;
	out = kv_json(6, args, NULL, err, sizeof(err));
	assert_non_null(out);
	assert_string_equal(out, "{\"state\":\"ON\",\"brightness\":120,\"color\":{\"x\":0.3},"
				 "\"note\":\"a=b\",\"transition\":0.5,\"enabled\":false}");
	cJSON_free(out);
}

static void test_kv_string_keys(void **state)
{
	static const char *const args[] = { "room=2", "description=true", "level=2" };
	static const char *const strings[] = { "room", "description", NULL };
	char err[256];
	char *out;

	(void)state;
	out = kv_json(3, args, strings, err, sizeof(err));
	assert_non_null(out);
	assert_string_equal(out, "{\"room\":\"2\",\"description\":\"true\",\"level\":2}");
	cJSON_free(out);
}

static void test_kv_errors(void **state)
{
	static const struct {
		const char *arg[2];
		const char *needle;
	} cases[] = {
		{ { "state", NULL }, "not key=value" },
		{ { "=ON", NULL }, "not key=value" },
		{ { "a=1", "a=2" }, "given twice" },
		{ { "k\x01=1", NULL }, "control character" },
		{ { "x=[1,", NULL }, "not valid JSON" },
		{ { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", NULL },
		  "longer than" },
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = cases[i].arg[1] ? 2 : 1;

		err[0] = '\0';
		assert_null(ctl_kv_object(n, cases[i].arg, NULL, err, sizeof(err)));
		if (!strstr(err, cases[i].needle))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
	}
}

/* ---- does a state answer a set? ----------------------------------------- */

static int matches_json(const char *state, const char *want, int retained)
{
	cJSON *s = cJSON_Parse(state), *w = cJSON_Parse(want);
	int r;

	assert_non_null(s);
	assert_non_null(w);
	r = ctl_state_matches(s, w, retained);
	cJSON_Delete(s);
	cJSON_Delete(w);
	return r;
}

static void test_state_matches(void **state)
{
	static const struct {
		const char *state;
		const char *want;
		int retained;
		int expect;
	} cases[] = {
		{ "{\"state\":\"ON\",\"brightness\":120}", "{\"state\":\"ON\"}", 0, 1 },
		{ "{\"state\":\"ON\",\"brightness\":120}", "{\"state\":\"ON\"}", 1, 1 },
		{ "{\"state\":\"ON\"}", "{\"state\":\"on\"}", 0, 1 },
		{ "{\"state\":\"OFF\"}", "{\"state\":\"ON\"}", 0, 0 },
		{ "{\"brightness\":120}", "{\"brightness\":120.0}", 0, 1 },
		{ "{\"brightness\":121}", "{\"brightness\":120}", 0, 0 },
		{ "{\"t\":0.30000000000000004}", "{\"t\":0.3}", 0, 1 },
		{ "{\"mode\":\"1\"}", "{\"mode\":1}", 0, 1 },
		{ "{\"mode\":1}", "{\"mode\":\"1\"}", 0, 1 },
		{ "{\"mode\":\"auto\"}", "{\"mode\":1}", 0, 0 },
		{ "{\"state\":\"ON\"}", "{\"state\":\"ON\",\"brightness\":5}", 0, 0 },
		{ "{\"lock\":true}", "{\"lock\":true}", 0, 1 },
		{ "{\"lock\":false}", "{\"lock\":true}", 0, 0 },
		{ "{\"lock\":\"true\"}", "{\"lock\":true}", 0, 0 },
		{ "{\"x\":null}", "{\"x\":null}", 0, 1 },
		{ "{\"color\":{\"x\":0.3,\"y\":0.2}}", "{\"color\":{\"x\":0.3}}", 0, 1 },
		{ "{\"color\":{\"x\":0.4,\"y\":0.2}}", "{\"color\":{\"x\":0.3}}", 0, 0 },
		{ "{\"l\":[1,2]}", "{\"l\":[1,2]}", 0, 1 },
		{ "{\"l\":[1,2,3]}", "{\"l\":[1,2]}", 0, 0 },
		/* TOGGLE: any value, but only from a live message. */
		{ "{\"state\":\"OFF\"}", "{\"state\":\"TOGGLE\"}", 0, 1 },
		{ "{\"state\":\"ON\"}", "{\"state\":\"toggle\"}", 0, 1 },
		{ "{\"state\":\"ON\"}", "{\"state\":\"TOGGLE\"}", 1, 0 },
		{ "{\"brightness\":3}", "{\"state\":\"TOGGLE\"}", 0, 0 },
		{ "[1]", "{\"state\":\"ON\"}", 0, 0 },
		/* transition is an option of the command, never reported */
		{ "{\"brightness\":60}", "{\"brightness\":60,\"transition\":0}", 0, 1 },
		{ "{\"brightness\":61}", "{\"brightness\":60,\"transition\":2}", 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = matches_json(cases[i].state, cases[i].want, cases[i].retained);

		if (got != cases[i].expect)
			fail_msg("case %zu: %s vs %s (retained %d) gave %d", i, cases[i].state,
				 cases[i].want, cases[i].retained, got);
	}
	assert_false(ctl_state_matches(NULL, NULL, 0));
	assert_false(ctl_value_matches(NULL, NULL));
}

/* ---- formatting --------------------------------------------------------- */

static void test_format_ago(void **state)
{
	static const struct {
		int64_t then_ms;
		int64_t now_ms;
		const char *text;
	} cases[] = {
		{ 0, 1000000, "never" },
		{ -5, 1000000, "never" },
		{ 1000000, 1000500, "just now" },
		{ 1000000, 999000, "just now" },
		{ 1000000, 1012000, "12s ago" },
		{ 1000000, 1059999, "59s ago" },
		{ 1000000, 1060000, "1m ago" },
		{ 1000000, 1000000 + 5 * 60000 + 59000, "5m ago" },
		{ 1000000, 1000000 + 3 * 3600000, "3h ago" },
		{ 1000000, 1000000 + 2 * 86400000LL + 5, "2d ago" },
	};
	char buf[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ctl_format_ago(buf, sizeof(buf), cases[i].then_ms, cases[i].now_ms);
		assert_string_equal(buf, cases[i].text);
	}
}

static void test_format_value(void **state)
{
	cJSON *v;
	char buf[64], small[6];

	(void)state;
	ctl_format_value(buf, sizeof(buf), NULL);
	assert_string_equal(buf, "-");
	v = cJSON_CreateNumber(21.5);
	ctl_format_value(buf, sizeof(buf), v);
	assert_string_equal(buf, "21.5");
	cJSON_Delete(v);
	v = cJSON_CreateNumber(1795438154000.0);
	ctl_format_value(buf, sizeof(buf), v);
	assert_string_equal(buf, "1795438154000");
	cJSON_Delete(v);
	v = cJSON_CreateString("evil\033[2Jtext\n");
	ctl_format_value(buf, sizeof(buf), v);
	assert_string_equal(buf, "evil?[2Jtext?");
	cJSON_Delete(v);
	v = cJSON_Parse("{\"x\":0.31,\"y\":[1,true]}");
	ctl_format_value(buf, sizeof(buf), v);
	assert_string_equal(buf, "{\"x\":0.31,\"y\":[1,true]}");
	cJSON_Delete(v);
	/* "°C°" is 2+1+2 bytes: a cut never leaves half a character. */
	v = cJSON_CreateString("\xc2\xb0" "C\xc2\xb0");
	ctl_format_value(small, sizeof(small), v);
	assert_string_equal(small, "\xc2\xb0" "C\xc2\xb0");
	ctl_format_value(small, sizeof(small) - 1, v);
	assert_string_equal(small, "\xc2\xb0" "C");
	ctl_format_value(small, 3, v);
	assert_string_equal(small, "\xc2\xb0");
	ctl_format_value(small, 2, v);
	assert_string_equal(small, "");
	cJSON_Delete(v);
}

static void test_render_kv(void **state)
{
	cJSON *obj = cJSON_Parse("{\"healthy\":true,\"uptime_s\":42,\"plugins\":{\"zigbee\":\"ok\","
				 "\"ble\":{\"state\":\"down\"}},\"list\":[1,2],\"empty\":{}}");
	char *out;

	(void)state;
	assert_non_null(obj);
	out = ctl_render_kv(obj);
	assert_non_null(out);
	assert_string_equal(out, "healthy: true\n"
				 "uptime_s: 42\n"
				 "plugins.zigbee: ok\n"
				 "plugins.ble.state: down\n"
				 "list: [1,2]\n"
				 "empty: {}\n");
	free(out);
	cJSON_Delete(obj);
	out = ctl_render_kv(NULL);
	assert_non_null(out);
	assert_string_equal(out, "");
	free(out);
}

/* ---- tables ------------------------------------------------------------- */

static void test_table_plain(void **state)
{
	static const char *const headers[] = { "NAME", "ROOM", "AVAILABLE" };
	static const char *const r1[] = { "kitchen/light", "kitchen", "yes" };
	static const char *const r2[] = { "plug", "", "no" };
	static const char *const r3[] = { "lamp", "hall", "" };
	struct ctl_table *t = ctl_table_new(3, headers);
	char *out;

	(void)state;
	assert_non_null(t);
	assert_int_equal(ctl_table_add(t, r1, NULL), 0);
	assert_int_equal(ctl_table_add(t, r2, NULL), 0);
	assert_int_equal(ctl_table_add(t, r3, NULL), 0);
	assert_int_equal(ctl_table_rows(t), 3);
	out = ctl_table_render(t, 0);
	assert_non_null(out);
	assert_string_equal(out, "NAME           ROOM     AVAILABLE\n"
				 "kitchen/light  kitchen  yes\n"
				 "plug                    no\n"
				 "lamp           hall\n");
	free(out);
	ctl_table_free(t);
}

static void test_table_utf8_and_colour(void **state)
{
	static const char *const headers[] = { "UNIT", "V" };
	static const char *const r1[] = { "\xc2\xb0" "C", "21" };
	static const char *const r2[] = { "%", "48" };
	static const char *const colors[] = { NULL, CTL_ANSI_GREEN };
	struct ctl_table *t = ctl_table_new(2, headers);
	char *out;

	(void)state;
	assert_non_null(t);
	assert_int_equal(ctl_table_add(t, r1, colors), 0);
	assert_int_equal(ctl_table_add(t, r2, NULL), 0);
	/* "°C" is two columns wide although three bytes long. */
	out = ctl_table_render(t, 0);
	assert_non_null(out);
	assert_string_equal(out, "UNIT  V\n\xc2\xb0" "C    21\n%     48\n");
	free(out);
	out = ctl_table_render(t, 1);
	assert_non_null(out);
	assert_string_equal(out, "\033[1mUNIT\033[0m  \033[1mV\033[0m\n"
				 "\xc2\xb0" "C    \033[32m21\033[0m\n"
				 "%     48\n");
	free(out);
	ctl_table_free(t);
}

static void test_table_sanitize_cut_headerless(void **state)
{
	char long_cell[CTL_CELL_MAX + 100];
	const char *row[2] = { "a\033]0;x\007b", long_cell };
	struct ctl_table *t = ctl_table_new(2, NULL);
	char *out, *nl;

	(void)state;
	memset(long_cell, 'z', sizeof(long_cell) - 1);
	long_cell[sizeof(long_cell) - 1] = '\0';
	assert_non_null(t);
	assert_int_equal(ctl_table_add(t, row, NULL), 0);
	out = ctl_table_render(t, 0);
	assert_non_null(out);
	assert_memory_equal(out, "a?]0;x?b  zzz", 13);
	nl = strchr(out, '\n');
	assert_non_null(nl);
	assert_int_equal(nl - out, 10 + CTL_CELL_MAX);
	assert_null(strchr(out, '\033'));
	free(out);
	ctl_table_free(t);
	assert_null(ctl_table_new(0, NULL));
	assert_null(ctl_table_new(CTL_TABLE_MAX_COLS + 1, NULL));
	ctl_table_free(NULL);
}

/* ---- automation commands ------------------------------------------------ */

static void test_flags_take(void **state)
{
	const char *const argv[] = { "scene1", "--name", "Reading", "lamp", "-v", "plug" };
	const char *const inline_argv[] = { "--name=Evening light", "lamp" };
	struct ctl_flag flags[2] = { { "--name", NULL, 1, 0, NULL }, { "--verbose", "-v", 0, 0, NULL } };
	const char *pos[8];
	char err[128];

	(void)state;
	assert_int_equal(ctl_flags_take(6, argv, flags, 2, pos, err, sizeof(err)), 3);
	assert_string_equal(pos[0], "scene1");
	assert_string_equal(pos[1], "lamp");
	assert_string_equal(pos[2], "plug");
	assert_true(flags[0].seen);
	assert_string_equal(flags[0].value, "Reading");
	assert_true(flags[1].seen);
	assert_null(flags[1].value);

	flags[0].seen = flags[1].seen = 0;
	assert_int_equal(ctl_flags_take(2, inline_argv, flags, 2, pos, err, sizeof(err)), 1);
	assert_string_equal(flags[0].value, "Evening light");
	assert_false(flags[1].seen);
	assert_string_equal(pos[0], "lamp");
}

static void test_flags_take_errors(void **state)
{
	const char *const unknown[] = { "id", "--conditons" };
	const char *const missing[] = { "id", "--name" };
	const char *const dash[] = { "-1", "--dot=x" };
	struct ctl_flag name = { "--name", NULL, 1, 0, NULL };
	struct ctl_flag dot = { "--dot", NULL, 0, 0, NULL };
	const char *pos[4];
	char err[128];

	(void)state;
	/* A mistyped option is never taken for a name. */
	assert_int_equal(ctl_flags_take(2, unknown, &name, 1, pos, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown option '--conditons'");
	assert_int_equal(ctl_flags_take(2, missing, &name, 1, pos, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--name needs a value");
	/* A flag without a value takes no "=value"; "-1" is an argument. */
	assert_int_equal(ctl_flags_take(2, dash, &dot, 1, pos, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown option '--dot=x'");
	assert_int_equal(ctl_flags_take(1, dash, &dot, 1, pos, err, sizeof(err)), 1);
	assert_string_equal(pos[0], "-1");
	assert_int_equal(ctl_flags_take(0, NULL, NULL, 0, pos, err, sizeof(err)), 0);
}

static void test_id_valid(void **state)
{
	char long_id[CTL_ID_MAX + 2];

	(void)state;
	assert_true(ctl_id_valid("hall-night_light.2"));
	assert_true(ctl_id_valid("A"));
	assert_false(ctl_id_valid(""));
	assert_false(ctl_id_valid(NULL));
	assert_false(ctl_id_valid("bad id"));
	assert_false(ctl_id_valid("a/b"));
	assert_false(ctl_id_valid("caf\xc3\xa9"));
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_false(ctl_id_valid(long_id));
	long_id[CTL_ID_MAX] = '\0';
	assert_true(ctl_id_valid(long_id));
}

static cJSON *items_of(const char *text, char *err, size_t len)
{
	return ctl_file_items(text, strlen(text), err, len);
}

static void test_file_items(void **state)
{
	char err[128];
	cJSON *items;

	(void)state;
	items = items_of("{\"id\":\"a\",\"triggers\":[]}", err, sizeof(err));
	assert_true(cJSON_IsArray(items));
	assert_int_equal(cJSON_GetArraySize(items), 1);
	assert_string_equal(cJSON_GetObjectItem(items->child, "id")->valuestring, "a");
	assert_false(ctl_item_is_scene(items->child));
	cJSON_Delete(items);

	items = items_of(" [{\"id\":\"r\"}, {\"id\":\"s\",\"targets\":{}}]\n", err, sizeof(err));
	assert_int_equal(cJSON_GetArraySize(items), 2);
	assert_false(ctl_item_is_scene(cJSON_GetArrayItem(items, 0)));
	assert_true(ctl_item_is_scene(cJSON_GetArrayItem(items, 1)));
	cJSON_Delete(items);
}

static void test_file_items_errors(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{ "{\"id\":\"x\",\n \"triggers\": [}\n", "not valid JSON (line 2, column 15)" },
		{ "", "not valid JSON (line 1, column 1)" },
		{ "{} trailing", "not valid JSON (line 1, column 4)" },
		{ "[]", "the array is empty" },
		{ "42", "must be a rule object or an array of them" },
		{ "[{\"id\":\"a\"}, 3]", "[1]: not a JSON object" },
	};
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_null(items_of(cases[i].text, err, sizeof(err)));
		if (strcmp(err, cases[i].err))
			fail_msg("case %zu: '%s', not '%s'", i, err, cases[i].err);
	}
}

static void test_file_items_limits(void **state)
{
	size_t n = 3 * (CTL_FILE_ITEMS_MAX + 1) + 2, at = 0;
	char *text = malloc(n + 1), err[128];
	int i;

	(void)state;
	assert_non_null(text);
	text[at++] = '[';
	for (i = 0; i <= CTL_FILE_ITEMS_MAX; i++)
		at += (size_t)sprintf(text + at, "%s{}", i ? "," : "");
	text[at++] = ']';
	text[at] = '\0';
	assert_null(ctl_file_items(text, at, err, sizeof(err)));
	assert_string_equal(err, "more than 1000 items");
	assert_null(ctl_file_items(text, CTL_FILE_MAX + 1, err, sizeof(err)));
	assert_string_equal(err, "larger than 1048576 bytes");
	free(text);
}

static char *render_json(char *(*fn)(const cJSON *, int), const char *json, int color)
{
	cJSON *v = cJSON_Parse(json);
	char *out;

	assert_non_null(v);
	out = fn(v, color);
	cJSON_Delete(v);
	assert_non_null(out);
	return out;
}

static void test_render_rules(void **state)
{
	const int64_t now = 1700000000000;
	cJSON *list = cJSON_Parse(
		"[{\"id\":\"zeta\",\"enabled\":false,\"source\":\"file\",\"fired_count\":0,"
		"\"last_fired\":0,\"running\":0},"
		" {\"id\":\"alpha\",\"name\":\"Hall light\",\"enabled\":true,\"source\":\"api\","
		"\"fired_count\":12,\"last_fired\":1699999700000,\"running\":1}, 7]");
	char *out;

	(void)state;
	assert_non_null(list);
	out = ctl_render_rules(list, now, 0);
	assert_non_null(out);
	assert_string_equal(out,
			    "ID     NAME        ENABLED  SOURCE  FIRED  LAST FIRED  RUNNING\n"
			    "alpha  Hall light  yes      api     12     5m ago      1\n"
			    "zeta               no       file    0      never       0\n");
	free(out);
	out = ctl_render_rules(list, now, 1);
	assert_non_null(strstr(out, CTL_ANSI_GREEN "yes" CTL_ANSI_RESET));
	assert_non_null(strstr(out, CTL_ANSI_YELLOW "no" CTL_ANSI_RESET));
	assert_non_null(strstr(out, CTL_ANSI_CYAN "1" CTL_ANSI_RESET));
	free(out);
	cJSON_Delete(list);
}

static void test_render_scenes(void **state)
{
	char *out = render_json(ctl_render_scenes,
				"[{\"id\":\"evening\",\"name\":\"Evening\",\"transition\":2.5,"
				"\"targets\":{\"a\":{},\"b\":{},\"c\":{}}},"
				" {\"id\":\"all-off\",\"targets\":{\"a\":{}}}]",
				0);

	(void)state;
	assert_string_equal(out, "ID       NAME     DEVICES  TRANSITION\n"
				 "all-off           1        -\n"
				 "evening  Evening  3        2.5s\n");
	free(out);
}

static void test_render_traces(void **state)
{
	char *out;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	out = render_json(ctl_render_traces,
			  "[{\"time\":1700000000000,\"trigger\":{\"id\":\"0\",\"type\":\"state\"},"
			  "\"outcome\":\"conditions not met\"},"
			  " {\"time\":1699990000000,\"trigger\":{\"id\":\"manual\",\"type\":\"manual\"},"
			  "\"outcome\":\"ok\",\"missed\":true},"
			  " {\"time\":1699980000000,\"trigger\":{}}]",
			  0);
	assert_string_equal(out, "TIME                 TRIGGER    OUTCOME\n"
				 "2023-11-14 22:13:20  0 (state)  conditions not met\n"
				 "2023-11-14 19:26:40  manual     ok (missed)\n"
				 "2023-11-14 16:40:00  ?          running\n");
	free(out);
	out = render_json(ctl_render_traces,
			  "[{\"time\":1,\"trigger\":{\"id\":\"t\",\"type\":\"time\"},"
			  "\"outcome\":\"error: device gone\"}]",
			  1);
	assert_non_null(strstr(out, CTL_ANSI_RED "error: device gone" CTL_ANSI_RESET));
	free(out);
}

static void test_render_activation(void **state)
{
	char *out = render_json(ctl_render_activation,
				"[{\"device\":\"hall/light\",\"status\":\"ok\"},"
				" {\"device\":\"plug\",\"status\":\"error\","
				"\"error\":\"device plug is gone\"}]",
				0);

	(void)state;
	assert_string_equal(out, "DEVICE      STATUS  ERROR\n"
				 "hall/light  ok\n"
				 "plug        error   device plug is gone\n");
	free(out);
}

static void test_render_ecosystem(void **state)
{
	char *out = render_json(
		ctl_render_ecosystem,
		"{\"devices\":9,\"devices_online\":8,\"by_plugin\":{\"zigbee\":2,\"virtual\":7},"
		"\"by_vendor\":{},"
		"\"by_capability\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,"
		"\"h\":8,\"i\":9,\"j\":9},"
		"\"rules\":3,\"cross_plugin_rules\":[\"hall\"],\"scenes\":0,"
		"\"cross_plugin_scenes\":[],\"firings\":{\"hour\":2,\"day\":40},"
		"\"commands\":{\"hour\":5,\"day\":90},\"dot\":\"digraph {}\"}",
		0);

	(void)state;
	assert_string_equal(out, "devices       9 (8 online)\n"
				 "plugins       virtual 7, zigbee 2\n"
				 "vendors       none\n"
				 "capabilities  i 9, j 9, h 8, g 7, f 6, e 5, d 4, c 3 and 2 more\n"
				 "rules         3, 1 across plugins: hall\n"
				 "scenes        0, 0 across plugins\n"
				 "rule firings  2 in the last hour, 40 in the last day\n"
				 "commands      5 in the last hour, 90 in the last day\n");
	free(out);
	/* Missing members read as zero and "none", never as a crash. */
	out = render_json(ctl_render_ecosystem, "{}", 1);
	assert_non_null(strstr(out, CTL_ANSI_BOLD "devices" CTL_ANSI_RESET "       0 (0 online)"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_args_global_options),
		cmocka_unit_test(test_args_inline_values_and_late_options),
		cmocka_unit_test(test_args_dash_values_after_command),
		cmocka_unit_test(test_args_watch_options),
		cmocka_unit_test(test_args_errors),
		cmocka_unit_test(test_args_help_version_and_limits),
		cmocka_unit_test(test_parse_long),
		cmocka_unit_test(test_topic_part_valid),
		cmocka_unit_test(test_value_parse),
		cmocka_unit_test(test_value_parse_bad_json),
		cmocka_unit_test(test_kv_object),
		cmocka_unit_test(test_kv_string_keys),
		cmocka_unit_test(test_kv_errors),
		cmocka_unit_test(test_state_matches),
		cmocka_unit_test(test_format_ago),
		cmocka_unit_test(test_format_value),
		cmocka_unit_test(test_render_kv),
		cmocka_unit_test(test_table_plain),
		cmocka_unit_test(test_table_utf8_and_colour),
		cmocka_unit_test(test_table_sanitize_cut_headerless),
		cmocka_unit_test(test_flags_take),
		cmocka_unit_test(test_flags_take_errors),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_file_items),
		cmocka_unit_test(test_file_items_errors),
		cmocka_unit_test(test_file_items_limits),
		cmocka_unit_test(test_render_rules),
		cmocka_unit_test(test_render_scenes),
		cmocka_unit_test(test_render_traces),
		cmocka_unit_test(test_render_activation),
		cmocka_unit_test(test_render_ecosystem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
