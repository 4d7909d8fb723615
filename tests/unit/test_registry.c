/*
 * Unit tests for registry.c: the two indexes and the insertion order, name
 * and id rules, renames and removals, growth to many devices, the state
 * merge with change detection, and the device's JSON form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct device untouched_dev;
#define SENTINEL_DEV (&untouched_dev)

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

static struct device *add_ok(struct registry *reg, const char *id, const char *name)
{
	struct device *dev = NULL;
	char err[256] = "";
	int rc = registry_add(reg, id, name, "virtual", &dev, err, sizeof(err));
	if (rc)
		fail_msg("registry_add(%s, %s): %d %s", id, name ? name : "NULL", rc, err);
	assert_non_null(dev);
	return dev;
}

static struct registry *new_registry(void)
{
	struct registry *reg = registry_new();
	assert_non_null(reg);
	return reg;
}

/* Fails unless iteration yields exactly the ids given, in order. */
static void expect_order(const struct registry *reg, const char *const *ids, size_t n)
{
	size_t i = 0;
	for (const struct device *d = registry_first(reg); d; d = registry_next(d), i++) {
		if (i >= n)
			fail_msg("iteration yields more than %zu devices ('%s')", n, d->id);
		if (strcmp(d->id, ids[i]) != 0)
			fail_msg("device %zu is '%s', want '%s'", i, d->id, ids[i]);
	}
	assert_int_equal(i, n);
	assert_int_equal(registry_count(reg), n);
}

static cJSON *parse(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	if (!j)
		fail_msg("test JSON does not parse: %s", text);
	return j;
}

static void expect_json(const char *label, const cJSON *got, const char *want)
{
	cJSON *w = parse(want);
	bool same = cJSON_Compare(got, w, true);
	cJSON_Delete(w);
	if (!same) {
		char *g = got ? cJSON_PrintUnformatted(got) : NULL;
		print_error("%s:\n  got  %s\n  want %s\n", label, g ? g : "(null)", want);
		cJSON_free(g);
		fail();
	}
}

/* Fails unless changed[0..n) holds exactly the names in want (any order). */
static void expect_changed(const char **changed, int n, const char *const *want, size_t n_want)
{
	assert_int_equal(n, (int)n_want);
	for (size_t i = 0; i < n_want; i++) {
		int hits = 0;
		for (int k = 0; k < n; k++)
			hits += strcmp(changed[k], want[i]) == 0;
		if (hits != 1)
			fail_msg("'%s' is reported changed %d times, want once", want[i], hits);
	}
}

/* ---------------------------------------------------------------------------
 * Add, look up, rename, remove
 * ------------------------------------------------------------------------- */

static void test_add_and_lookup(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	assert_int_equal(registry_count(reg), 0);
	assert_null(registry_first(reg));
	assert_null(registry_by_id(reg, "virtual:light-1"));

	struct device *a = add_ok(reg, "virtual:light-1", "kitchen/light");
	assert_string_equal(a->id, "virtual:light-1");
	assert_string_equal(a->name, "kitchen/light");
	assert_string_equal(a->plugin, "virtual");
	assert_true(cJSON_IsObject(a->state));
	assert_int_equal(cJSON_GetArraySize(a->state), 0);
	assert_null(a->vendor);
	assert_int_equal(a->n_caps, 0);

	assert_ptr_equal(registry_by_id(reg, "virtual:light-1"), a);
	assert_ptr_equal(registry_by_name(reg, "kitchen/light"), a);
	assert_ptr_equal(registry_lookup(reg, "kitchen/light"), a);
	assert_ptr_equal(registry_lookup(reg, "virtual:light-1"), a);
	assert_null(registry_by_id(reg, "kitchen/light"));
	assert_null(registry_by_name(reg, "virtual:light-1"));
	assert_null(registry_lookup(reg, "kitchen"));
	assert_null(registry_lookup(reg, "Kitchen/light"));
	assert_int_equal(registry_count(reg), 1);
	registry_free(reg);
	registry_free(NULL);
}

static void test_add_null_name_uses_id(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = NULL;
	assert_int_equal(registry_add(reg, "zigbee:0x00158d0001a2b3c4", NULL, NULL, &d, NULL, 0),
			 0);
	assert_string_equal(d->name, "zigbee:0x00158d0001a2b3c4");
	assert_string_equal(d->plugin, "");
	assert_ptr_not_equal(d->name, d->id);
	assert_ptr_equal(registry_by_name(reg, "zigbee:0x00158d0001a2b3c4"), d);
	assert_ptr_equal(registry_by_id(reg, "zigbee:0x00158d0001a2b3c4"), d);
	registry_free(reg);
}

static void test_add_duplicates(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *a = add_ok(reg, "virtual:a", "hall/lamp");
	struct device *out = SENTINEL_DEV;
	char err[256] = "";

	assert_int_equal(registry_add(reg, "virtual:a", "other", "virtual", &out, err, sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "virtual:a"));
	assert_ptr_equal(out, SENTINEL_DEV);
	assert_null(registry_by_name(reg, "other"));

	err[0] = '\0';
	assert_int_equal(
		registry_add(reg, "virtual:b", "hall/lamp", "virtual", &out, err, sizeof(err)),
		-EEXIST);
	assert_non_null(strstr(err, "hall/lamp"));
	assert_ptr_equal(out, SENTINEL_DEV);
	assert_null(registry_by_id(reg, "virtual:b"));

	/* the id as default name, taken by another device's name */
	add_ok(reg, "virtual:c", "virtual:d");
	assert_int_equal(registry_add(reg, "virtual:d", NULL, "virtual", &out, err, sizeof(err)),
			 -EEXIST);
	assert_null(registry_by_id(reg, "virtual:d"));

	/* bad id or name: -EINVAL, nothing added */
	assert_int_equal(registry_add(reg, "nocolon", "x", "virtual", &out, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(registry_add(reg, "virtual:e", "a+b", "virtual", &out, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(registry_add(reg, NULL, "x", "virtual", &out, err, sizeof(err)), -EINVAL);
	assert_ptr_equal(out, SENTINEL_DEV);

	assert_int_equal(registry_count(reg), 2);
	assert_ptr_equal(registry_by_id(reg, "virtual:a"), a);
	registry_free(reg);
}

/* A name that equals another device's id: the name wins. */
static void test_lookup_name_before_id(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *a = add_ok(reg, "virtual:a", "virtual:b");
	struct device *b = add_ok(reg, "virtual:b", "bee");
	assert_ptr_equal(registry_lookup(reg, "virtual:b"), a);
	assert_ptr_equal(registry_by_id(reg, "virtual:b"), b);
	assert_ptr_equal(registry_lookup(reg, "bee"), b);
	assert_ptr_equal(registry_lookup(reg, "virtual:a"), a);
	assert_null(registry_lookup(reg, "nope"));
	registry_free(reg);
}

static void test_rename(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *a = add_ok(reg, "virtual:a", "kitchen/light");
	struct device *b = add_ok(reg, "virtual:b", "hall/light");
	char err[256] = "";

	assert_int_equal(registry_rename(reg, a, "kitchen/ceiling", err, sizeof(err)), 0);
	assert_string_equal(a->name, "kitchen/ceiling");
	assert_null(registry_by_name(reg, "kitchen/light"));
	assert_null(registry_lookup(reg, "kitchen/light"));
	assert_ptr_equal(registry_by_name(reg, "kitchen/ceiling"), a);
	assert_ptr_equal(registry_by_id(reg, "virtual:a"), a);

	/* the freed name can be taken again */
	assert_int_equal(registry_rename(reg, b, "kitchen/light", err, sizeof(err)), 0);
	assert_ptr_equal(registry_by_name(reg, "kitchen/light"), b);
	assert_null(registry_by_name(reg, "hall/light"));

	err[0] = '\0';
	assert_int_equal(registry_rename(reg, a, "kitchen/light", err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "kitchen/light"));
	assert_string_equal(a->name, "kitchen/ceiling");
	assert_ptr_equal(registry_by_name(reg, "kitchen/ceiling"), a);
	assert_ptr_equal(registry_by_name(reg, "kitchen/light"), b);

	char *before = a->name;
	assert_int_equal(registry_rename(reg, a, "kitchen/ceiling", err, sizeof(err)), 0);
	assert_ptr_equal(a->name, before);
	assert_ptr_equal(registry_by_name(reg, "kitchen/ceiling"), a);

	assert_int_equal(registry_rename(reg, a, "kitchen/set", err, sizeof(err)), -EINVAL);
	assert_int_equal(registry_rename(reg, a, "", err, sizeof(err)), -EINVAL);
	assert_int_equal(registry_rename(reg, a, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(a->name, "kitchen/ceiling");
	assert_ptr_equal(registry_by_name(reg, "kitchen/ceiling"), a);
	registry_free(reg);
}

static void test_remove(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *a = add_ok(reg, "virtual:a", "room/a");
	struct device *b = add_ok(reg, "virtual:b", "room/b");
	struct device *c = add_ok(reg, "virtual:c", "room/c");

	registry_remove(reg, b);
	assert_null(registry_by_id(reg, "virtual:b"));
	assert_null(registry_by_name(reg, "room/b"));
	assert_null(registry_lookup(reg, "room/b"));
	assert_ptr_equal(registry_next(a), c);
	expect_order(reg, (const char *const[]){"virtual:a", "virtual:c"}, 2);

	/* the id and the name are free again */
	struct device *b2 = add_ok(reg, "virtual:b", "room/b");
	expect_order(reg, (const char *const[]){"virtual:a", "virtual:c", "virtual:b"}, 3);

	registry_remove(reg, a);
	registry_remove(reg, b2);
	expect_order(reg, (const char *const[]){"virtual:c"}, 1);
	assert_ptr_equal(registry_first(reg), c);
	assert_null(registry_next(c));
	registry_remove(reg, c);
	assert_null(registry_first(reg));
	assert_int_equal(registry_count(reg), 0);

	/* an emptied registry is a working registry */
	add_ok(reg, "virtual:z", "z");
	expect_order(reg, (const char *const[]){"virtual:z"}, 1);
	registry_free(reg);
}

/* Removing the head, the tail and middles keeps the rest in insertion order. */
static void test_order_across_removes(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *devs[10];
	char id[32], name[32];
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "virtual:%d", i);
		snprintf(name, sizeof(name), "dev %d", i);
		devs[i] = add_ok(reg, id, name);
	}
	registry_remove(reg, devs[0]);
	registry_remove(reg, devs[9]);
	registry_remove(reg, devs[4]);
	registry_remove(reg, devs[5]);
	add_ok(reg, "virtual:new", NULL);
	registry_remove(reg, devs[1]);
	static const char *const want[] = {"virtual:2", "virtual:3", "virtual:6",
					   "virtual:7", "virtual:8", "virtual:new"};
	expect_order(reg, want, ARRAY_LEN(want));
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		assert_non_null(registry_by_id(reg, want[i]));
	registry_free(reg);
}

#define MANY 20000

/* Enough devices to grow both hash tables many times over. */
static void test_many_devices(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device **devs = calloc(MANY, sizeof(*devs));
	assert_non_null(devs);
	char id[64], name[64];
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "virtual:dev-%d", i);
		snprintf(name, sizeof(name), "room %d/lamp %d", i % 97, i);
		devs[i] = add_ok(reg, id, name);
	}
	assert_int_equal(registry_count(reg), MANY);
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "virtual:dev-%d", i);
		snprintf(name, sizeof(name), "room %d/lamp %d", i % 97, i);
		if (registry_by_id(reg, id) != devs[i] || registry_by_name(reg, name) != devs[i] ||
		    registry_lookup(reg, name) != devs[i] || registry_lookup(reg, id) != devs[i])
			fail_msg("device %d not found by id or name", i);
	}
	int i = 0;
	for (struct device *d = registry_first(reg); d; d = registry_next(d), i++)
		if (i >= MANY || d != devs[i])
			fail_msg("iteration differs at %d", i);
	assert_int_equal(i, MANY);

	/* rename every third, remove every fifth: the indexes follow */
	char err[256];
	for (i = 0; i < MANY; i += 3) {
		snprintf(name, sizeof(name), "renamed/%d", i);
		if (registry_rename(reg, devs[i], name, err, sizeof(err)))
			fail_msg("rename %d: %s", i, err);
	}
	for (i = 0; i < MANY; i += 5) {
		registry_remove(reg, devs[i]);
		devs[i] = NULL;
	}
	for (i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "virtual:dev-%d", i);
		if (i % 3 == 0)
			snprintf(name, sizeof(name), "renamed/%d", i);
		else
			snprintf(name, sizeof(name), "room %d/lamp %d", i % 97, i);
		if (registry_by_id(reg, id) != devs[i] || registry_by_name(reg, name) != devs[i])
			fail_msg("device %d: lookup disagrees after renames and removes", i);
	}
	assert_int_equal(registry_count(reg), MANY - MANY / 5);
	free(devs);
	registry_free(reg);
}

static void test_device_limit(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	char id[64];
	struct device *d = NULL;
	for (int i = 0; i < REGISTRY_DEVICES_MAX; i++) {
		snprintf(id, sizeof(id), "virtual:%d", i);
		if (registry_add(reg, id, NULL, "virtual", &d, NULL, 0))
			fail_msg("device %d refused below the limit", i);
	}
	struct device *out = SENTINEL_DEV;
	char err[256] = "";
	assert_int_equal(
		registry_add(reg, "virtual:one-more", NULL, "virtual", &out, err, sizeof(err)),
		-ENOSPC);
	assert_ptr_equal(out, SENTINEL_DEV);
	assert_true(err[0] != '\0');
	assert_int_equal(registry_count(reg), REGISTRY_DEVICES_MAX);
	/* room again after a removal */
	registry_remove(reg, registry_first(reg));
	assert_int_equal(registry_add(reg, "virtual:one-more", NULL, "virtual", &out, NULL, 0), 0);
	registry_free(reg);
}

/* ---------------------------------------------------------------------------
 * Name and id rules
 * ------------------------------------------------------------------------- */

static void check_name(const char *label, const char *name, bool valid)
{
	char err[256] = "";
	int rc = registry_name_check(name, err, sizeof(err));
	if (valid && rc != 0)
		fail_msg("name %s: refused (%d: %s), want valid", label, rc, err);
	if (!valid && (rc != -EINVAL || !err[0]))
		fail_msg("name %s: rc %d, err \"%s\"; want -EINVAL with a reason", label, rc, err);
}

static void test_name_rules(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		bool valid;
	} rows[] = {
		{"kitchen/light", true},
		{"Living Room Lamp", true},
		{"wohnzimmer/lampe-\xc3\xa4", true},
		{"virtual:light-1", true},
		{"a", true},
		{"settings", true},
		{"x/setting", true},
		{"availability/x", true},
		{"x/availability/y", true},
		{"my bridge", true},
		{"bridges/x", true},
		{"x/bridge", true},
		{"\xe2\x82\xac/\xf0\x9f\x92\xa1", true}, /* euro sign, light bulb */
		{"", false},
		{"a+b", false},
		{"a#b", false},
		{"tab\there", false},
		{"new\nline", false},
		{"del\x7f", false},
		{"/lead", false},
		{"trail/", false},
		{"/", false},
		{"a//b", false},
		{"kitchen/set", false},
		{"x/get", false},
		{"x/availability", false},
		{"set", false},
		{"get", false},
		{"set/x", false},
		{"a/get/b", false},
		{"bridge", false},
		{"bridge/x", false},
		{"\xff", false},
		{"ok\xff", false},
		{"\xc0\x80", false},
		{"\xc3", false},     /* truncated sequence */
		{"\xc3(", false},    /* bad continuation byte */
		{"\x80", false},     /* lone continuation byte */
		{"\xe2\x82", false}, /* truncated three-byte sequence */
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		char label[64];
		snprintf(label, sizeof(label), "#%zu \"%s\"", i, rows[i].name);
		check_name(label, rows[i].name, rows[i].valid);
	}
	check_name("NULL", NULL, false);

	char name[REGISTRY_NAME_MAX + 2];
	memset(name, 'n', sizeof(name) - 1);
	name[REGISTRY_NAME_MAX] = '\0';
	check_name("of 128 bytes", name, true);
	name[REGISTRY_NAME_MAX] = 'n';
	name[REGISTRY_NAME_MAX + 1] = '\0';
	check_name("of 129 bytes", name, false);
	/* 128 bytes ending in a complete two-byte character */
	name[REGISTRY_NAME_MAX - 2] = '\xc3';
	name[REGISTRY_NAME_MAX - 1] = '\xa4';
	name[REGISTRY_NAME_MAX] = '\0';
	check_name("of 128 bytes ending in UTF-8", name, true);
}

/*
 * Names become MQTT topic levels, and MQTT demands well-formed UTF-8 without
 * control characters or non-characters (libmosquitto's
 * mosquitto_validate_utf8 refuses each of these, so such a device could
 * never be published).
 */
static void test_name_refuses_ill_formed_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *label;
		const char *name;
	} rows[] = {
		{"overlong three-byte '/'", "a\xe0\x80\xaf"},
		{"overlong three-byte NUL", "\xe0\x80\x80"},
		{"overlong four-byte", "\xf0\x80\x80\x80"},
		{"UTF-16 surrogate U+D800", "lamp\xed\xa0\x80"},
		{"above U+10FFFF", "\xf4\x90\x80\x80"},
		{"lead byte 0xf5", "\xf5\x80\x80\x80"},
		{"C1 control U+0085", "ab\xc2\x85"},
		{"non-character U+FFFF", "\xef\xbf\xbf"},
		{"non-character U+FDD0", "x\xef\xb7\x90"},
	};
	int accepted = 0;
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		char err[256] = "";
		if (registry_name_check(rows[i].name, err, sizeof(err)) != -EINVAL || !err[0]) {
			print_error("name with %s: accepted\n", rows[i].label);
			accepted++;
		}
	}
	assert_int_equal(accepted, 0);
}

static void test_id_rules(void **state)
{
	(void)state;
	static const struct {
		const char *id;
		bool valid;
	} rows[] = {
		{"virtual:light-1", true},
		{"zigbee:0x00158d0001a2b3c4", true},
		{"ble:a4:c1:38:00:11:22", true},
		{"wifi:miio:123456", true},
		{"x:y", true},
		{"nocolon", false},
		{":x", false},
		{"x:", false},
		{":", false},
		{"", false},
		{"virtual:a+b", false},
		{"virtual:a#b", false},
		{"virtual:tab\there", false},
		{"virtual:\xff", false},
	};
	char err[256];
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		err[0] = '\0';
		int rc = registry_id_check(rows[i].id, err, sizeof(err));
		if (rows[i].valid ? rc != 0 : rc != -EINVAL || !err[0])
			fail_msg("id #%zu \"%s\": rc %d (%s)", i, rows[i].id, rc, err);
	}
	assert_int_equal(registry_id_check(NULL, err, sizeof(err)), -EINVAL);

	char id[REGISTRY_NAME_MAX + 2] = "virtual:";
	memset(id + 8, 'i', REGISTRY_NAME_MAX - 8);
	id[REGISTRY_NAME_MAX] = '\0';
	assert_int_equal(registry_id_check(id, err, sizeof(err)), 0);
	id[REGISTRY_NAME_MAX] = 'i';
	id[REGISTRY_NAME_MAX + 1] = '\0';
	assert_int_equal(registry_id_check(id, err, sizeof(err)), -EINVAL);
}

/* ---------------------------------------------------------------------------
 * State merge
 * ------------------------------------------------------------------------- */

static void test_merge_typed(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	const struct hearth_attr attrs[] = {
		{"state", HEARTH_STRING("ON")},
		{"brightness", HEARTH_NUMBER(120)},
		{"occupancy", HEARTH_BOOL(true)},
		{"color", HEARTH_JSON("{\"x\":0.31,\"y\":0.32}")},
		{"schedule", HEARTH_JSON("[1,2]")},
		{"nothing", {.type = HEARTH_VALUE_NULL}},
	};
	const char *changed[ARRAY_LEN(attrs)];
	int n = registry_merge(d, attrs, ARRAY_LEN(attrs), changed);
	static const char *const all[] = {
		"state", "brightness", "occupancy", "color", "schedule", "nothing",
	};
	expect_changed(changed, n, all, ARRAY_LEN(all));
	expect_json("after first merge", d->state,
		    "{\"state\":\"ON\",\"brightness\":120,\"occupancy\":true,"
		    "\"color\":{\"x\":0.31,\"y\":0.32},\"schedule\":[1,2],\"nothing\":null}");
	/* the names point into the state */
	for (int i = 0; i < n; i++)
		assert_non_null(cJSON_GetObjectItemCaseSensitive(d->state, changed[i]));

	/* the same values again: nothing changed */
	assert_int_equal(registry_merge(d, attrs, ARRAY_LEN(attrs), changed), 0);
	assert_int_equal(registry_merge(d, attrs, ARRAY_LEN(attrs), NULL), 0);

	/* exactly the changed names, also for a member deep inside JSON */
	const struct hearth_attr next[] = {
		{"state", HEARTH_STRING("OFF")},
		{"brightness", HEARTH_NUMBER(120.0)},
		{"color", HEARTH_JSON("{\"y\":0.32,\"x\":0.31}")},
		{"schedule", HEARTH_JSON("[1,3]")},
		{"occupancy", HEARTH_BOOL(true)},
		{"linkquality", HEARTH_NUMBER(87)},
	};
	n = registry_merge(d, next, ARRAY_LEN(next), changed);
	static const char *const three[] = {"state", "schedule", "linkquality"};
	expect_changed(changed, n, three, ARRAY_LEN(three));
	expect_json("after second merge", d->state,
		    "{\"state\":\"OFF\",\"brightness\":120,\"occupancy\":true,"
		    "\"color\":{\"x\":0.31,\"y\":0.32},\"schedule\":[1,3],\"nothing\":null,"
		    "\"linkquality\":87}");

	/* a type change is a change */
	const struct hearth_attr typed[] = {{"state", HEARTH_BOOL(false)}};
	n = registry_merge(d, typed, 1, changed);
	expect_changed(changed, n, (const char *const[]){"state"}, 1);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(d->state, "state")));

	assert_int_equal(registry_merge(d, NULL, 0, changed), 0);
	registry_free(reg);
}

/* Numbers compare by value: 1 then 1.0 is no change, also via JSON text. */
static void test_merge_number_equality(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	const char *changed[2];
	const struct hearth_attr one[] = {{"level", HEARTH_NUMBER(1)}};
	const struct hearth_attr one_f[] = {{"level", HEARTH_NUMBER(1.0)}};
	assert_int_equal(registry_merge(d, one, 1, changed), 1);
	assert_int_equal(registry_merge(d, one_f, 1, changed), 0);

	cJSON *j = parse("{\"level\":1.0,\"obj\":{\"v\":1}}");
	assert_int_equal(registry_merge_json(d, j, changed, 2), 1);
	assert_string_equal(changed[0], "obj");
	cJSON_Delete(j);
	j = parse("{\"level\":1,\"obj\":{\"v\":1.0}}");
	assert_int_equal(registry_merge_json(d, j, changed, 2), 0);
	cJSON_Delete(j);

	const struct hearth_attr text_one[] = {{"level", HEARTH_STRING("1")}};
	assert_int_equal(registry_merge(d, text_one, 1, changed), 1);
	registry_free(reg);
}

/* A bad attribute anywhere in the list merges nothing. */
static void test_merge_bad_attr_merges_nothing(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	const struct hearth_attr start[] = {{"state", HEARTH_STRING("ON")},
					    {"brightness", HEARTH_NUMBER(10)}};
	assert_int_equal(registry_merge(d, start, 2, NULL), 2);
	cJSON *before = cJSON_Duplicate(d->state, 1);
	assert_non_null(before);

	char long_name[66];
	memset(long_name, 'n', 65);
	long_name[65] = '\0';
	const struct {
		const char *label;
		struct hearth_attr bad;
	} rows[] = {
		{"JSON that does not parse", {"color", HEARTH_JSON("{\"x\":")}},
		{"JSON garbage", {"color", HEARTH_JSON("not json")}},
		{"JSON scalar", {"color", HEARTH_JSON("1")}},
		{"JSON with NULL text", {"color", HEARTH_JSON(NULL)}},
		{"string with NULL text", {"label", HEARTH_STRING(NULL)}},
		{"infinite number", {"power", HEARTH_NUMBER(INFINITY)}},
		{"NaN", {"power", HEARTH_NUMBER(NAN)}},
		{"unknown value type", {"odd", {.type = (enum hearth_value_type)42}}},
		{"empty name", {"", HEARTH_NUMBER(1)}},
		{"NULL name", {NULL, HEARTH_NUMBER(1)}},
		{"name of 65 bytes", {long_name, HEARTH_NUMBER(1)}},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		/* good ones before and after the bad one, one of them new */
		const struct hearth_attr attrs[] = {
			{"state", HEARTH_STRING("OFF")},
			{"fresh", HEARTH_NUMBER(5)},
			rows[i].bad,
			{"brightness", HEARTH_NUMBER(20)},
		};
		const char *changed[ARRAY_LEN(attrs)];
		int rc = registry_merge(d, attrs, ARRAY_LEN(attrs), changed);
		if (rc != -EINVAL)
			fail_msg("%s: rc %d, want -EINVAL", rows[i].label, rc);
		if (!cJSON_Compare(d->state, before, true))
			fail_msg("%s: the state changed", rows[i].label);
	}
	cJSON_Delete(before);
	registry_free(reg);
}

static void test_merge_attrs_limit(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	size_t n = REGISTRY_ATTRS_MAX + 1;
	struct hearth_attr *attrs = calloc(n, sizeof(*attrs));
	char(*names)[16] = calloc(n, sizeof(*names));
	const char **changed = calloc(n, sizeof(*changed));
	assert_true(attrs && names && changed);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "attr%zu", i);
		attrs[i] = (struct hearth_attr){names[i], HEARTH_NUMBER((double)i)};
	}
	/* more than the limit in one call */
	assert_int_equal(registry_merge(d, attrs, n, changed), -EINVAL);
	assert_int_equal(cJSON_GetArraySize(d->state), 0);

	/* exactly the limit */
	assert_int_equal(registry_merge(d, attrs, REGISTRY_ATTRS_MAX, changed), REGISTRY_ATTRS_MAX);
	assert_int_equal(cJSON_GetArraySize(d->state), REGISTRY_ATTRS_MAX);

	/* a full state takes no new name, even alongside known ones */
	struct hearth_attr more[] = {{"attr0", HEARTH_NUMBER(-1)}, attrs[REGISTRY_ATTRS_MAX]};
	assert_int_equal(registry_merge(d, more, 2, changed), -EINVAL);
	assert_int_equal(cJSON_GetArraySize(d->state), REGISTRY_ATTRS_MAX);
	assert_true(cJSON_GetObjectItemCaseSensitive(d->state, "attr0")->valuedouble == 0);

	/* but known names still update */
	assert_int_equal(registry_merge(d, more, 1, changed), 1);
	assert_string_equal(changed[0], "attr0");

	/* and the JSON path keeps the same limit */
	cJSON *j = parse("{\"brand_new\":1}");
	assert_int_equal(registry_merge_json(d, j, changed, n), -EINVAL);
	assert_null(cJSON_GetObjectItemCaseSensitive(d->state, "brand_new"));
	cJSON_Delete(j);
	free(changed);
	free(names);
	free(attrs);
	registry_free(reg);
}

/*
 * One name twice in one report. The name must not be reported twice, and
 * no reported name may point at a value the second one replaced (changed[]
 * is documented as valid until the next merge). Either last-wins or a
 * refusal is fine.
 */
static void test_merge_same_name_twice(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	const struct hearth_attr attrs[] = {{"level", HEARTH_NUMBER(1)},
					    {"level", HEARTH_NUMBER(2)}};
	const char *changed[2] = {NULL, NULL};
	int rc = registry_merge(d, attrs, 2, changed);
	if (rc != 1 && rc != -EINVAL)
		fail_msg("rc %d: want 1 (reported once) or -EINVAL", rc);
	if (rc == 1) {
		assert_string_equal(changed[0], "level");
		assert_true(cJSON_GetObjectItemCaseSensitive(d->state, "level")->valuedouble == 2);
	} else {
		assert_int_equal(cJSON_GetArraySize(d->state), 0);
	}
	registry_free(reg);
}

/* The same for JSON text with a key twice, which cJSON keeps as two items. */
static void test_merge_json_same_key_twice(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	cJSON *j = parse("{\"level\":1,\"level\":2}");
	const char *changed[2] = {NULL, NULL};
	int rc = registry_merge_json(d, j, changed, 2);
	cJSON_Delete(j);
	if (rc != 1 && rc != -EINVAL)
		fail_msg("rc %d: want 1 (reported once) or -EINVAL", rc);
	if (rc == 1)
		assert_string_equal(changed[0], "level");
	else
		assert_int_equal(cJSON_GetArraySize(d->state), 0);
	registry_free(reg);
}

static void test_merge_json(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	cJSON *j = parse("{\"state\":\"ON\",\"brightness\":7,\"color\":{\"x\":0.1,\"y\":0.2},"
			 "\"list\":[true],\"none\":null}");
	const char *changed[8];
	int n = registry_merge_json(d, j, changed, ARRAY_LEN(changed));
	static const char *const all[] = {"state", "brightness", "color", "list", "none"};
	expect_changed(changed, n, all, ARRAY_LEN(all));
	expect_json("merged JSON", d->state,
		    "{\"state\":\"ON\",\"brightness\":7,\"color\":{\"x\":0.1,\"y\":0.2},"
		    "\"list\":[true],\"none\":null}");
	/* the state holds copies */
	assert_ptr_not_equal(cJSON_GetObjectItemCaseSensitive(d->state, "color"),
			     cJSON_GetObjectItemCaseSensitive(j, "color"));
	assert_int_equal(registry_merge_json(d, j, changed, ARRAY_LEN(changed)), 0);
	assert_int_equal(registry_merge_json(d, j, NULL, 0), 0);
	cJSON_Delete(j);

	/* changed_cap bounds the writes, the count stays true */
	j = parse("{\"state\":\"OFF\",\"brightness\":8,\"extra\":1}");
	const char *small[2] = {NULL, "untouched"};
	assert_int_equal(registry_merge_json(d, j, small, 1), 3);
	assert_string_equal(small[0], "state");
	assert_string_equal(small[1], "untouched");
	cJSON_Delete(j);

	static const char *const not_objects[] = {"[1]", "1", "\"x\"", "null"};
	for (size_t i = 0; i < ARRAY_LEN(not_objects); i++) {
		j = parse(not_objects[i]);
		assert_int_equal(registry_merge_json(d, j, changed, ARRAY_LEN(changed)), -EINVAL);
		cJSON_Delete(j);
	}
	assert_int_equal(registry_merge_json(d, NULL, changed, ARRAY_LEN(changed)), -EINVAL);
	registry_free(reg);
}

/*
 * Restoring a stored state over a state that already holds most of the same
 * names adds few or none: only names that are new count towards the limit,
 * as in registry_merge.
 */
static void test_merge_json_limit_counts_new_names_only(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	cJSON *j = cJSON_CreateObject();
	assert_non_null(j);
	char name[16];
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "attr%d", i);
		assert_non_null(cJSON_AddNumberToObject(j, name, i));
	}
	assert_int_equal(registry_merge_json(d, j, NULL, 0), 200);
	/* the same 200 names again, one value new: 200 attributes stay */
	cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "attr7"), -7);
	const char *changed[4];
	assert_int_equal(registry_merge_json(d, j, changed, ARRAY_LEN(changed)), 1);
	assert_string_equal(changed[0], "attr7");
	cJSON_Delete(j);
	registry_free(reg);
}

/* registry_merge refuses empty attribute names; "the same for a JSON
 * object" means registry_merge_json does too. */
static void test_merge_json_refuses_empty_name(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:a", "a");
	cJSON *j = parse("{\"ok\":1,\"\":2}");
	int rc = registry_merge_json(d, j, NULL, 0);
	cJSON_Delete(j);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(cJSON_GetArraySize(d->state), 0);
	registry_free(reg);
}

/* ---------------------------------------------------------------------------
 * Text fields, capabilities, JSON form
 * ------------------------------------------------------------------------- */

static void test_set_text(void **state)
{
	(void)state;
	char *field = NULL;
	assert_int_equal(registry_set_text(&field, "Acme"), 0);
	assert_string_equal(field, "Acme");
	const char *src = "Other";
	assert_int_equal(registry_set_text(&field, src), 0);
	assert_string_equal(field, "Other");
	assert_ptr_not_equal(field, src);
	assert_int_equal(registry_set_text(&field, ""), 0);
	assert_null(field);
	assert_int_equal(registry_set_text(&field, "x"), 0);
	assert_int_equal(registry_set_text(&field, NULL), 0);
	assert_null(field);
}

static const struct hearth_capability lamp_caps[] = {
	{.name = "state",
	 .type = HEARTH_CAP_BINARY,
	 .access = 7,
	 .value_on = {.type = HEARTH_VALUE_STRING, .u.string = "ON"},
	 .value_off = {.type = HEARTH_VALUE_STRING, .u.string = "OFF"}},
	{.name = "brightness",
	 .type = HEARTH_CAP_NUMERIC,
	 .access = 7,
	 .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX,
	 .min = 0,
	 .max = 254},
};

static void test_device_to_json(void **state)
{
	(void)state;
	struct registry *reg = new_registry();
	struct device *d = add_ok(reg, "virtual:lamp", "office/lamp");

	/* a bare device: the optional texts are null, no capabilities */
	cJSON *j = registry_device_to_json(d);
	expect_json("bare device", j,
		    "{\"id\":\"virtual:lamp\",\"name\":\"office/lamp\",\"plugin\":\"virtual\","
		    "\"vendor\":null,\"model\":null,\"description\":null,\"room\":null,"
		    "\"available\":false,\"last_seen\":0,\"capabilities\":[]}");
	cJSON_Delete(j);

	assert_int_equal(registry_set_text(&d->vendor, "Acme"), 0);
	assert_int_equal(registry_set_text(&d->model, "L-1"), 0);
	assert_int_equal(registry_set_text(&d->description, "Desk lamp"), 0);
	assert_int_equal(registry_set_text(&d->room, "office"), 0);
	d->available = true;
	d->last_seen_ms = 1700000000123;
	struct cap *caps = NULL;
	char err[256] = "";
	assert_int_equal(cap_array_from_abi(lamp_caps, 2, &caps, err, sizeof(err)), 0);
	registry_set_caps(d, caps, 2);

	j = registry_device_to_json(d);
	expect_json("full device", j,
		    "{\"id\":\"virtual:lamp\",\"name\":\"office/lamp\",\"plugin\":\"virtual\","
		    "\"vendor\":\"Acme\",\"model\":\"L-1\",\"description\":\"Desk lamp\","
		    "\"room\":\"office\",\"available\":true,\"last_seen\":1700000000123,"
		    "\"capabilities\":[{\"name\":\"state\",\"type\":\"binary\",\"access\":7,"
		    "\"value_on\":\"ON\",\"value_off\":\"OFF\"},{\"name\":\"brightness\","
		    "\"type\":\"numeric\",\"access\":7,\"value_min\":0,\"value_max\":254}]}");
	assert_true(cJSON_GetObjectItemCaseSensitive(j, "last_seen")->valuedouble ==
		    1700000000123.0);
	cJSON_Delete(j);

	/* replacing the capabilities frees the old ones (ASan) */
	assert_int_equal(cap_array_from_abi(lamp_caps, 1, &caps, err, sizeof(err)), 0);
	registry_set_caps(d, caps, 1);
	assert_int_equal(d->n_caps, 1);
	j = registry_device_to_json(d);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "capabilities")),
			 1);
	cJSON_Delete(j);
	registry_set_caps(d, NULL, 0);
	registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_lookup),
		cmocka_unit_test(test_add_null_name_uses_id),
		cmocka_unit_test(test_add_duplicates),
		cmocka_unit_test(test_lookup_name_before_id),
		cmocka_unit_test(test_rename),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_order_across_removes),
		cmocka_unit_test(test_many_devices),
		cmocka_unit_test(test_device_limit),
		cmocka_unit_test(test_name_rules),
		cmocka_unit_test(test_name_refuses_ill_formed_utf8),
		cmocka_unit_test(test_id_rules),
		cmocka_unit_test(test_merge_typed),
		cmocka_unit_test(test_merge_number_equality),
		cmocka_unit_test(test_merge_bad_attr_merges_nothing),
		cmocka_unit_test(test_merge_attrs_limit),
		cmocka_unit_test(test_merge_same_name_twice),
		cmocka_unit_test(test_merge_json),
		cmocka_unit_test(test_merge_json_same_key_twice),
		cmocka_unit_test(test_merge_json_limit_counts_new_names_only),
		cmocka_unit_test(test_merge_json_refuses_empty_name),
		cmocka_unit_test(test_set_text),
		cmocka_unit_test(test_device_to_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
