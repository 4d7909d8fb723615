/*
 * The zigbee plugin's zigbee2mqtt payload parsers: bridge/devices (which
 * devices become hearth devices, fingerprints), bridge/groups, state
 * messages as typed attributes, availability, the /set encoding, patterns
 * and bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../plugins/zigbee/z2m.c"

static int parse_devices(const char *json, struct zentry **list, size_t *n, struct zskip *skip,
			 cJSON **root)
{
	return z2m_parse_devices(json, strlen(json), root, list, n, skip);
}

#define DEV(ieee, name, extra)                                                                    \
	"{\"ieee_address\":\"" ieee "\",\"friendly_name\":\"" name "\",\"type\":\"Router\","      \
	"\"interview_completed\":true,\"supported\":true,\"disabled\":false,\"definition\":{"    \
	"\"vendor\":\"V\",\"model\":\"M\",\"description\":\"D\",\"supports_ota\":true,"           \
	"\"exposes\":[]}" extra "}"

static void test_devices_filter(void **state)
{
	(void)state;
	const char *json =
		"[{\"ieee_address\":\"0x00124b0001a2b3c0\",\"friendly_name\":\"Coordinator\","
		"\"type\":\"Coordinator\",\"interview_completed\":true},"
		DEV("0x0000000000000001", "a/b", "") ","
		"{\"ieee_address\":\"0x0000000000000002\",\"friendly_name\":\"new\",\"type\":"
		"\"EndDevice\",\"interview_completed\":false,\"definition\":null},"
		"{\"ieee_address\":\"0x0000000000000003\",\"friendly_name\":\"v2\",\"type\":"
		"\"EndDevice\",\"interview_state\":\"SUCCESSFUL\",\"definition\":{\"model\":\"X\"}},"
		"{\"ieee_address\":\"0x0000000000000004\",\"friendly_name\":\"off\",\"type\":\"Router\","
		"\"interview_completed\":true,\"disabled\":true,\"definition\":{}},"
		"{\"ieee_address\":\"0x0000000000000005\",\"friendly_name\":\"unknown\",\"type\":"
		"\"Router\",\"interview_completed\":true,\"supported\":false,\"definition\":null},"
		"{\"ieee_address\":\"0x12\",\"friendly_name\":\"short\",\"interview_completed\":true},"
		"{\"ieee_address\":\"0x0000000000000006\",\"friendly_name\":\"bad#name\","
		"\"interview_completed\":true,\"definition\":{}},"
		"{\"ieee_address\":\"0x0000000000000007\",\"interview_completed\":true},"
		"\"not a device\"]";
	struct zentry *list;
	size_t n;
	struct zskip skip;
	cJSON *root;
	assert_int_equal(parse_devices(json, &list, &n, &skip, &root), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].ieee, "0x0000000000000001");
	assert_string_equal(list[0].friendly, "a/b");
	assert_string_equal(list[0].vendor, "V");
	assert_string_equal(list[0].model, "M");
	assert_string_equal(list[0].description, "D");
	assert_true(list[0].supports_ota);
	assert_true(cJSON_IsArray(list[0].exposes));
	assert_string_equal(list[1].friendly, "v2"); /* interview_state alone, 2.x */
	assert_null(list[1].vendor);
	assert_false(list[1].supports_ota);
	assert_int_equal(skip.coordinator, 1);
	assert_int_equal(skip.not_interviewed, 1);
	assert_int_equal(skip.disabled, 1);
	assert_int_equal(skip.unsupported, 1);
	assert_int_equal(skip.malformed, 4);
	free(list);
	cJSON_Delete(root);
}

static uint64_t fp_of(const char *json)
{
	struct zentry *list;
	size_t n;
	cJSON *root;
	assert_int_equal(parse_devices(json, &list, &n, NULL, &root), 0);
	assert_int_equal(n, 1);
	uint64_t fp = list[0].fingerprint;
	free(list);
	cJSON_Delete(root);
	return fp;
}

static void test_fingerprint(void **state)
{
	(void)state;
	uint64_t a = fp_of("[" DEV("0x0000000000000001", "a", "") "]");
	/* what does not change the mapping does not change the fingerprint */
	assert_true(a == fp_of("[" DEV("0x0000000000000001", "a", ",\"network_address\":5") "]"));
	assert_true(a != fp_of("[" DEV("0x0000000000000001", "b", "") "]"));
	assert_true(a != fp_of("[{\"ieee_address\":\"0x0000000000000001\",\"friendly_name\":\"a\","
			       "\"interview_completed\":true,\"definition\":{\"vendor\":\"V\","
			       "\"model\":\"M\",\"exposes\":[{\"type\":\"text\"}]}}]"));
}

static void test_devices_refused(void **state)
{
	(void)state;
	struct zentry *list;
	size_t n;
	cJSON *root;
	assert_int_equal(parse_devices("{}", &list, &n, NULL, &root), -EINVAL);
	assert_int_equal(parse_devices("", &list, &n, NULL, &root), -EINVAL);
	assert_int_equal(parse_devices("[1,", &list, &n, NULL, &root), -EINVAL);
	char deep[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "[");
	assert_int_equal(parse_devices(deep, &list, &n, NULL, &root), -EINVAL);
	/* brackets inside strings do not count as depth */
	char quoted[200] = "[\"";
	for (int i = 0; i < 40; i++)
		strcat(quoted, "[");
	strcat(quoted, "\\\"\"]");
	assert_int_equal(parse_devices(quoted, &list, &n, NULL, &root), 0);
	assert_int_equal(n, 0);
	free(list);
	cJSON_Delete(root);
	assert_int_equal(parse_devices("[]", &list, &n, NULL, &root), 0);
	assert_int_equal(n, 0);
	free(list);
	cJSON_Delete(root);
}

static void test_groups(void **state)
{
	(void)state;
	const char *json =
		"[{\"id\":1,\"friendly_name\":\"living/lights\",\"members\":[{\"ieee_address\":"
		"\"0x0017880104a2b3e4\",\"endpoint\":11},{\"ieee_address\":\"nope\"}],\"scenes\":[]},"
		"{\"id\":-1,\"friendly_name\":\"bad id\"},{\"id\":2.5,\"friendly_name\":\"half\"},"
		"{\"id\":3,\"friendly_name\":\"\"},{\"id\":4,\"friendly_name\":\"empty\"}]";
	cJSON *root;
	struct zgroup_entry *g;
	size_t n;
	assert_int_equal(z2m_parse_groups(json, strlen(json), &root, &g, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(g[0].id, 1);
	assert_string_equal(g[0].friendly, "living/lights");
	assert_int_equal(g[0].n_members, 1);
	assert_string_equal(g[0].members[0], "0x0017880104a2b3e4");
	assert_int_equal(g[1].id, 4);
	assert_int_equal(g[1].n_members, 0);
	assert_true(g[0].fingerprint != g[1].fingerprint);
	free(g);
	cJSON_Delete(root);
	assert_int_equal(z2m_parse_groups("{}", 2, &root, &g, &n), -EINVAL);
}

static const struct hearth_attr *attr(const struct zstate *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->attrs[i].name, name) == 0)
			return &s->attrs[i];
	fail_msg("no attribute %s", name);
	return NULL;
}

static void test_state_types(void **state)
{
	(void)state;
	const char *json = "{\"state\":\"ON\",\"brightness\":120,\"occupancy\":true,"
			   "\"color\":{\"x\":0.3,\"y\":0.4},\"zones\":[1,2],\"action\":null,"
			   "\"state\":\"OFF\",\"\":1,\"linkquality\":87,\"last_seen\":1700000000000}";
	struct zstate s;
	assert_int_equal(z2m_parse_state(json, strlen(json), &s), 0);
	assert_int_equal(s.n, 8);
	assert_int_equal(s.skipped, 2); /* the repeated state, the empty name */
	assert_int_equal(attr(&s, "state")->value.type, HEARTH_VALUE_STRING);
	assert_string_equal(attr(&s, "state")->value.u.string, "ON");
	assert_int_equal(attr(&s, "brightness")->value.type, HEARTH_VALUE_NUMBER);
	assert_true(attr(&s, "brightness")->value.u.number == 120);
	assert_int_equal(attr(&s, "occupancy")->value.type, HEARTH_VALUE_BOOL);
	assert_int_equal(attr(&s, "color")->value.type, HEARTH_VALUE_JSON);
	assert_string_equal(attr(&s, "color")->value.u.string, "{\"x\":0.3,\"y\":0.4}");
	assert_string_equal(attr(&s, "zones")->value.u.string, "[1,2]");
	assert_int_equal(attr(&s, "action")->value.type, HEARTH_VALUE_NULL);
	assert_true(attr(&s, "last_seen")->value.u.number == 1700000000000.0);
	z2m_state_free(&s);
	z2m_state_free(NULL);
}

static void test_state_refused_and_bounded(void **state)
{
	(void)state;
	struct zstate s;
	assert_int_equal(z2m_parse_state("[1]", 3, &s), -EINVAL);
	assert_int_equal(z2m_parse_state("ON", 2, &s), -EINVAL);
	assert_int_equal(z2m_parse_state("", 0, &s), -EINVAL);
	assert_int_equal(z2m_parse_state(NULL, 5, &s), -EINVAL);
	/* 200 attributes: 128 kept, the rest counted */
	char *big = malloc(8192);
	size_t used = (size_t)sprintf(big, "{");
	for (int i = 0; i < 200; i++)
		used += (size_t)sprintf(big + used, "%s\"a%d\":%d", i ? "," : "", i, i);
	sprintf(big + used, "}");
	assert_int_equal(z2m_parse_state(big, strlen(big), &s), 0);
	assert_int_equal(s.n, ZB_STATE_ATTRS_MAX);
	assert_int_equal(s.skipped, 200 - ZB_STATE_ATTRS_MAX);
	z2m_state_free(&s);
	free(big);
	/* a name over 64 bytes is skipped, not cut */
	const char *longname = "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1,"
			       "\"b\":2}";
	assert_int_equal(z2m_parse_state(longname, strlen(longname), &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.skipped, 1);
	z2m_state_free(&s);
	/* over the payload limit */
	size_t len = ZB_PAYLOAD_MAX + 10;
	char *huge = malloc(len);
	memset(huge, ' ', len);
	huge[0] = '{';
	huge[len - 1] = '}';
	assert_int_equal(z2m_parse_state(huge, len, &s), -EINVAL);
	free(huge);
}

static void test_online(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int want;
	} cases[] = {
		{"online", 1},
		{"offline", 0},
		{"{\"state\":\"online\"}", 1},
		{"{\"state\":\"offline\"}", 0},
		{"{\"state\":\"maybe\"}", -EINVAL},
		{"{\"state\":1}", -EINVAL},
		{"Online", -EINVAL},
		{"", -EINVAL},
		{"onlinee", -EINVAL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(z2m_parse_online(cases[i].text, strlen(cases[i].text)),
				 cases[i].want);
}

static void test_encode_set(void **state)
{
	(void)state;
	struct hearth_attr attrs[] = {
		{"state", HEARTH_STRING("ON")},
		{"brightness", HEARTH_NUMBER(120)},
		{"occupancy", HEARTH_BOOL(false)},
		{"color", HEARTH_JSON("{\"x\":0.3,\"y\":0.4}")},
		{"transition", HEARTH_NUMBER(0.5)},
		{"zones", HEARTH_JSON("[]")},
	};
	char *out;
	assert_int_equal(z2m_encode_set(attrs, 6, &out), 0);
	assert_string_equal(out, "{\"state\":\"ON\",\"brightness\":120,\"occupancy\":false,"
				 "\"color\":{\"x\":0.3,\"y\":0.4},\"transition\":0.5,\"zones\":[]}");
	free(out);
	struct hearth_attr bad[] = {{"color", HEARTH_JSON("{\"x\":")}};
	assert_int_equal(z2m_encode_set(bad, 1, &out), -EINVAL);
	struct hearth_attr inf[] = {{"brightness", HEARTH_NUMBER(INFINITY)}};
	assert_int_equal(z2m_encode_set(inf, 1, &out), -EINVAL);
}

static void test_patterns(void **state)
{
	(void)state;
	char buf[256];
	const char *pats[4];
	assert_int_equal(z2m_patterns_split(" kitchen*, hall/light ,,", buf, sizeof(buf), pats, 4),
			 2);
	assert_true(z2m_patterns_match(pats, 2, "kitchen/ceiling/spots"));
	assert_true(z2m_patterns_match(pats, 2, "hall/light"));
	assert_false(z2m_patterns_match(pats, 2, "hall/light2"));
	assert_false(z2m_patterns_match(pats, 0, "anything"));
	assert_int_equal(z2m_patterns_split(NULL, buf, sizeof(buf), pats, 4), 0);
	assert_int_equal(z2m_patterns_split("a,b,c,d,e", buf, sizeof(buf), pats, 4), -EINVAL);
	char long_text[300];
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	assert_int_equal(z2m_patterns_split(long_text, buf, sizeof(buf), pats, 4), -EINVAL);
}

static void test_base_topic(void **state)
{
	(void)state;
	assert_true(z2m_base_ok("zigbee2mqtt"));
	assert_true(z2m_base_ok("home/zigbee"));
	assert_false(z2m_base_ok(""));
	assert_false(z2m_base_ok(NULL));
	assert_false(z2m_base_ok("z/#"));
	assert_false(z2m_base_ok("z/+/a"));
	assert_false(z2m_base_ok("/z"));
	assert_false(z2m_base_ok("z/"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_devices_filter),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_devices_refused),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_state_types),
		cmocka_unit_test(test_state_refused_and_bounded),
		cmocka_unit_test(test_online),
		cmocka_unit_test(test_encode_set),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_base_topic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
