/*
 * libFuzzer target for the mqttdev plugin's parsers. The same bytes go
 * through every one of them: a Tasmota discovery config and sensors
 * message, every Tasmota state message, a Shelly notification, component
 * status and RPC response, a generic devices file, and a generic device's
 * state and availability. Whatever a parser accepts is encoded back into
 * a command, as the plugin would when the hub sends it.
 *
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *       $(pkg-config --cflags libcjson) tests/fuzz/fuzz_mqttdev.c \
 *       plugins/mqttdev/common.c plugins/mqttdev/tasmota.c plugins/mqttdev/shelly.c \
 *       plugins/mqttdev/generic.c $(pkg-config --libs libcjson) -lm -o fuzz_mqttdev
 *   ./fuzz_mqttdev tests/fuzz/corpus/mqttdev
 * fuzz-sources: plugins/mqttdev/common.c plugins/mqttdev/tasmota.c plugins/mqttdev/shelly.c plugins/mqttdev/generic.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/mqttdev/mqttdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A device to read messages with when the input is no config itself. */
static const char plug_config[] =
	"{\"mac\":\"A4CF12B3C4D5\",\"t\":\"plug\",\"ft\":\"%prefix%/%topic%/\","
	"\"tp\":[\"cmnd\",\"stat\",\"tele\"],\"rl\":[2,1,0,0,0,0,0,0],\"lt_st\":5,"
	"\"state\":[\"OFF\",\"ON\",\"TOGGLE\",\"HOLD\"]}";

static const char devices_file[] =
	"{\"devices\":[{\"id\":\"d-{i}\",\"count\":3,\"state_topic\":\"d/{i}/state\","
	"\"command_topic\":\"d/{i}/set\",\"attributes\":["
	"{\"name\":\"state\",\"key\":\"relay\",\"type\":\"binary\",\"access\":\"rw\","
	"\"value_on\":\"ON\",\"value_off\":\"OFF\",\"payload_on\":1,\"payload_off\":0},"
	"{\"name\":\"level\",\"key\":\"a.b.level\",\"type\":\"numeric\",\"access\":\"rw\"},"
	"{\"name\":\"mode\",\"type\":\"enum\",\"access\":\"rw\",\"values\":[\"x\",\"y\"]},"
	"{\"name\":\"note\",\"type\":\"text\",\"access\":\"rw\"}]},"
	"{\"id\":\"raw\",\"state_topic\":\"raw/state\",\"command_topic\":\"raw/set\","
	"\"attributes\":[{\"name\":\"v\",\"key\":\"$\",\"type\":\"numeric\",\"access\":\"rw\"}]}]}";

static void tasmota(const char *text, size_t len, struct mstate *st)
{
	struct tasmota *t = calloc(1, sizeof(*t));
	if (!t)
		return;
	char err[128];
	if (tasmota_parse_config(t, text, len, err, sizeof(err)))
		tasmota_parse_config(t, plug_config, sizeof(plug_config) - 1, err, sizeof(err));
	tasmota_parse_sensors(t, text, len);
	tasmota_build_caps(t);
	static const char *const suffixes[] = {"LWT",	 "STATE", "SENSOR",   "RESULT",
					       "POWER", "POWER2", "STATUS10", "STATUS11"};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		for (int which = TAS_STAT; which <= TAS_TELE; which++) {
			mstate_init(st);
			tasmota_parse_message(t, which, suffixes[i], text, len, st);
			struct tas_cmd cmds[MD_ATTRS_MAX];
			size_t n;
			tasmota_encode(t, st->attrs, st->n, cmds, MD_ATTRS_MAX, &n);
		}
	}
	char topic[MD_TOPIC_MAX];
	for (int p = TAS_CMND; p <= TAS_TELE; p++)
		tasmota_topic(t, p, "POWER", topic, sizeof(topic));
	free(t);
}

static void shelly(const char *text, size_t len, struct mstate *st)
{
	struct shelly *s = calloc(1, sizeof(*s));
	if (!s || shelly_init(s, "shellies/shellyplus1pm-a8032ab12345")) {
		free(s);
		return;
	}
	mstate_init(st);
	shelly_parse_notification(s, text, len, st);
	shelly_parse_status(s, "switch:0", text, len, st);
	shelly_parse_status(s, "cover:1", text, len, st);
	struct sh_rpc rpcs[MD_ATTRS_MAX];
	size_t n = 0;
	if (shelly_encode(s, st->attrs, st->n, rpcs, MD_ATTRS_MAX, &n) == 0) {
		char frame[512];
		for (size_t i = 0; i < n; i++)
			shelly_frame(i + 1, "hearth-mqttdev", &rpcs[i], frame, sizeof(frame));
	}
	struct sh_response r;
	if (shelly_parse_response(text, len, &r) == 0) {
		if (r.result) {
			mstate_init(st);
			shelly_apply_full(s, r.result, st);
		}
		cJSON_Delete(r.root);
	}
	free(s);
}

static void generic(const char *text, size_t len, struct mstate *st)
{
	struct gen_file own, fixed;
	char err[256];
	if (generic_parse(text, len, &own, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < own.n_specs; i++) {
			char filter[MD_TOPIC_MAX];
			generic_wildcard(own.specs[i].state_topic, filter, sizeof(filter));
			free(generic_expand(own.specs[i].id, 7));
		}
		generic_free(&own);
	}
	if (generic_parse(devices_file, sizeof(devices_file) - 1, &fixed, err, sizeof(err)))
		return;
	for (size_t i = 0; i < fixed.n_specs; i++) {
		mstate_init(st);
		generic_parse_state(&fixed.specs[i], text, len, st);
		generic_parse_availability(&fixed.specs[i], text, len);
		char *out = NULL;
		if (generic_encode(&fixed.specs[i], st->attrs, st->n, &out) == 0)
			free(out);
		if (len < MD_TOPIC_MAX) {
			char topic[MD_TOPIC_MAX];
			memcpy(topic, text, len);
			topic[len] = '\0';
			generic_index(&fixed.specs[i], topic, 1);
		}
	}
	generic_free(&fixed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MD_PAYLOAD_MAX)
		return 0;
	/* parsers take (pointer, length); a copy makes reads past the end visible */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	struct mstate *st = malloc(sizeof(*st));
	if (st) {
		tasmota(text, size, st);
		shelly(text, size, st);
		generic(text, size, st);
	}
	free(st);
	free(text);
	return 0;
}
