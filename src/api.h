/*
 * api: hearth's MQTT topic API (zigbee2mqtt-shaped), see docs/mqtt-api.md.
 *
 * In:  <base>/<name>/set, <base>/<name>/set/<attribute>, <base>/<name>/get,
 *      <base>/bridge/request/<path>
 * Out: <base>/<name> (retained state), <base>/<name>/availability,
 *      <base>/bridge/{state,info,devices,event,logging,response/<path>}
 *
 * Every malformed input gets an error response naming what was wrong, one
 * (rate-limited) log line, and changes nothing. Payloads over
 * HUB_PAYLOAD_MAX bytes or nested deeper than HUB_JSON_DEPTH_MAX are refused
 * before they are parsed.
 *
 * Edge module. Loop thread only.
 */
#ifndef HEARTH_API_H
#define HEARTH_API_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "registry.h"

struct hearth_hub;

enum api_topic_kind {
	API_TOPIC_OTHER = 0, /* not ours to handle (e.g. our own state topics) */
	API_TOPIC_SET,	     /* <base>/<name>/set */
	API_TOPIC_SET_ATTR,  /* <base>/<name>/set/<attribute>: raw value payload */
	API_TOPIC_GET,	     /* <base>/<name>/get */
	API_TOPIC_GET_ATTR,  /* <base>/<name>/get/<attribute> */
	API_TOPIC_REQUEST,   /* <base>/bridge/request/<path> */
};

struct api_topic {
	enum api_topic_kind kind;
	char name[REGISTRY_NAME_MAX + 1]; /* device name, or request path */
	char attr[65];
};

/* Classify topic under base (pure). Returns 0, or -EINVAL when the topic is
 * for us but malformed (name or path too long, empty). */
int api_topic_parse(const char *base, const char *topic, struct api_topic *out);

/* Parse a JSON payload within the limits (pure). Returns 0 with *out, or
 * -E2BIG (too large), -ELOOP (too deep), -EINVAL (not JSON), with err set. */
int api_json_parse(const void *payload, size_t len, cJSON **out, char *err, size_t err_len);

/* Handle one message on a topic under the base. */
void api_on_message(struct hearth_hub *hub, const char *topic, const void *payload, size_t len);

void api_publish_state(struct hearth_hub *hub, const struct device *dev);
void api_publish_availability(struct hearth_hub *hub, const struct device *dev);
void api_publish_devices(struct hearth_hub *hub);
void api_publish_info(struct hearth_hub *hub);
void api_publish_bridge_state(struct hearth_hub *hub, bool online);
/* Publish {"type":type,"data":data} on bridge/event; takes data (may be NULL). */
void api_publish_event(struct hearth_hub *hub, const char *type, cJSON *data);
/* bridge/state online, info, devices, and every device's state and availability. */
void api_publish_all(struct hearth_hub *hub);
/* Publish JSON on <base>/bridge/<sub>. */
void api_publish_bridge(struct hearth_hub *hub, const char *sub, const cJSON *json, bool retain);
/* Clear the retained state and availability topics of a device name. */
void api_clear_device(struct hearth_hub *hub, const char *name);
/* Error for a /set or /get on bridge/response/device/set. */
void api_set_error(struct hearth_hub *hub, const char *device_name, const char *error);
/* The answer to a device/set request: ok (error NULL) with the state the
 * device confirmed, or the error; transaction may be NULL. */
void api_set_answer(struct hearth_hub *hub, const char *device_name, const cJSON *transaction,
		    const char *error, const cJSON *state);
/* Publish a log line on bridge/logging. */
void api_publish_log(struct hearth_hub *hub, const char *level, const char *source,
		     const char *message);

#endif
