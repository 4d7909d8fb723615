/*
 * bench-fill: pre-fill a hearth database for the scaling scenarios of the
 * benchmark, through the store's own functions (so the rows are exactly
 * what hearthd writes).
 *
 *   bench-fill DB DEVICES RULES [PREFIX]
 *
 * DEVICES devices alternate a motion sensor (<PREFIX>:sensor-<i>:
 * occupancy, illuminance, battery) and a light (<PREFIX>:light-<i>: state,
 * brightness), each with a last state. RULES rules ("<PREFIX>-rule-<n>")
 * each turn a light on when its sensor sees motion; with more rules than
 * sensors, sensors carry several. The devices belong to a plugin named
 * PREFIX (default "fill") that hearthd does not load, so they stay idle:
 * their rules never fire.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "capability.h"
#include "registry.h"
#include "rules.h"
#include "store.h"

#define FLUSH_EVERY 1000
#define PREFIX_MAX 32

static const struct hearth_capability sensor_caps[] = {
	{.name = "occupancy", .type = HEARTH_CAP_BINARY, .access = HEARTH_ACCESS_PUBLISHED,
	 .value_on = HEARTH_BOOL(true), .value_off = HEARTH_BOOL(false)},
	{.name = "illuminance", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_PUBLISHED,
	 .unit = "lx", .flags = HEARTH_CAP_HAS_MIN, .min = 0},
	{.name = "battery", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_PUBLISHED,
	 .unit = "%", .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 0, .max = 100},
};

static const struct hearth_capability light_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY,
	 .access = HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET,
	 .value_on = HEARTH_STRING("ON"), .value_off = HEARTH_STRING("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC,
	 .access = HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET,
	 .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 0, .max = 254},
};

static int add_state(struct store *store, struct device *dev, const char *json, int64_t now)
{
	cJSON *state = cJSON_Parse(json);
	if (!state)
		return -ENOMEM;
	int rc = registry_merge_json(dev, state, NULL, 0);
	const cJSON *item;
	cJSON_ArrayForEach(item, state)
	{
		if (rc >= 0)
			rc = store_state_queue(store, dev->id, item->string, item, now);
	}
	cJSON_Delete(state);
	return rc < 0 ? rc : 0;
}

static int add_device(struct store *store, struct registry *reg, const char *prefix, long i,
		      int64_t now)
{
	bool sensor = i % 2 == 0;
	char id[96], name[96], err[256];
	snprintf(id, sizeof(id), "%s:%s-%ld", prefix, sensor ? "sensor" : "light", i);
	snprintf(name, sizeof(name), "%s/%s-%ld", prefix, sensor ? "sensor" : "light", i);
	struct device *dev;
	int rc = registry_add(reg, id, name, prefix, &dev, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bench-fill: %s: %s\n", id, err);
		return rc;
	}
	const struct hearth_capability *abi = sensor ? sensor_caps : light_caps;
	size_t n = sensor ? sizeof(sensor_caps) / sizeof(sensor_caps[0])
			  : sizeof(light_caps) / sizeof(light_caps[0]);
	struct cap *caps;
	if ((rc = cap_array_from_abi(abi, n, &caps, err, sizeof(err)))) {
		fprintf(stderr, "bench-fill: %s: %s\n", id, err);
		return rc;
	}
	registry_set_caps(dev, caps, n);
	registry_set_text(&dev->vendor, "bench");
	registry_set_text(&dev->model, sensor ? "motion sensor" : "light");
	if ((rc = store_device_put(store, dev, now)))
		return rc;
	return add_state(store, dev,
			 sensor ? "{\"occupancy\":false,\"illuminance\":120,\"battery\":90}"
				: "{\"state\":\"OFF\",\"brightness\":100}",
			 now);
}

static int add_rule(struct store *store, const char *prefix, long r, long devices, int64_t now)
{
	long pairs = devices / 2;
	long sensor = 2 * (r % pairs), light = sensor + 1;
	char id[96], json[1024];
	snprintf(id, sizeof(id), "%s-rule-%ld", prefix, r);
	snprintf(json, sizeof(json),
		 "{\"id\":\"%s\",\"name\":\"motion %ld turns on light %ld\","
		 "\"triggers\":[{\"type\":\"state\",\"device\":\"%s:sensor-%ld\","
		 "\"attribute\":\"occupancy\",\"to\":true}],"
		 "\"actions\":[{\"type\":\"set\",\"device\":\"%s:light-%ld\","
		 "\"state\":{\"state\":\"ON\",\"brightness\":%ld}}]}",
		 id, sensor, light, prefix, sensor, prefix, light, 1 + r % 254);
	cJSON *doc = cJSON_Parse(json);
	if (!doc)
		return -ENOMEM;
	int rc = store_doc_put(store, STORE_DOC_RULE, id, doc, 0, now);
	cJSON_Delete(doc);
	return rc;
}

static int fill(const char *path, long devices, long rules, const char *prefix)
{
	char err[512];
	struct store *store = NULL;
	struct registry *reg = registry_new();
	int64_t now = 1700000000000LL;
	int rc = reg ? store_open(path, &store, err, sizeof(err)) : -ENOMEM;
	if (rc) {
		fprintf(stderr, "bench-fill: %s: %s\n", path, reg ? err : "out of memory");
		goto out;
	}
	for (long i = 0; i < devices && !rc; i++) {
		rc = add_device(store, reg, prefix, i, now);
		if (!rc && (i + 1) % FLUSH_EVERY == 0)
			rc = store_flush(store, now, 30);
	}
	if (!rc)
		rc = store_flush(store, now, 30);
	for (long r = 0; r < rules && !rc; r++)
		rc = add_rule(store, prefix, r, devices, now);
	if (rc)
		fprintf(stderr, "bench-fill: %s: failed: %s\n", path, strerror(-rc));
out:
	store_close(store, now);
	registry_free(reg);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	char *end;
	long devices = argc >= 4 ? strtol(argv[2], &end, 10) : -1;
	long rules = argc >= 4 ? strtol(argv[3], &end, 10) : -1;
	const char *prefix = argc == 5 ? argv[4] : "fill";
	if (argc < 4 || argc > 5 || devices < 2 || devices > REGISTRY_DEVICES_MAX || rules < 0 ||
	    rules > RULES_MAX || strlen(prefix) > PREFIX_MAX ||
	    strspn(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(prefix)) {
		fprintf(stderr, "usage: bench-fill DB DEVICES RULES [PREFIX]\n"
				"  DEVICES 2..%d, RULES 0..%d, PREFIX [a-z0-9_]{1,%d}\n",
			REGISTRY_DEVICES_MAX, RULES_MAX, PREFIX_MAX);
		return 2;
	}
	return fill(argv[1], devices, rules, prefix);
}
