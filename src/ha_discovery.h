/*
 * ha_discovery: Home Assistant MQTT discovery. For every device, retained
 * configs under <discovery_prefix>/<component>/hearth_<safe id>/<object_id>/config
 * with a device block, availability (hub and device), unique_id, and the
 * component each capability needs; commands go straight to hearth's own
 * <base>/<name>/set, whose JSON is what HA's JSON-schema entities send.
 * Republished on (re)connect and when HA announces itself online on
 * <discovery_prefix>/status.
 *
 * Edge module ([homeassistant] enabled). Loop thread only.
 */
#ifndef HEARTH_HA_DISCOVERY_H
#define HEARTH_HA_DISCOVERY_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "registry.h"

struct hearth_hub;
struct ha_discovery;

/* NULL *out (and 0) when discovery is disabled. */
int ha_discovery_new(struct hearth_hub *hub, struct ha_discovery **out);
void ha_discovery_free(struct ha_discovery *ha);
/* Every device's configs (on connect, and when HA comes online). */
void ha_discovery_publish_all(struct ha_discovery *ha);
/* A device was added, changed its capabilities, or was renamed. */
void ha_discovery_device(struct ha_discovery *ha, const struct device *dev);
/* A device is going away: clear its configs (dev is still whole). */
void ha_discovery_device_removed(struct ha_discovery *ha, const struct device *dev);
/* A message under the discovery prefix (HA's birth "online"). */
void ha_discovery_on_message(struct ha_discovery *ha, const char *topic, const void *payload,
			     size_t len);

/* Home Assistant's JSON light shows colour temperature and colour back only
 * from a state that names its colour mode. For a light whose state does not
 * (zigbee2mqtt's do), the mode of whichever of color_temp and color changed
 * last, as discovery offers it ("color_temp", "xy", "hs", "rgb"); NULL for
 * anything else. Published in the device's state. */
const char *ha_color_mode(const struct device *dev);

/* The configs of one device as {topic: config} (new object), for tests. */
cJSON *ha_discovery_configs(const struct ha_discovery *ha, const struct device *dev);
/* The hub's own device (a connection-state binary_sensor) the same way. */
cJSON *ha_discovery_bridge_configs(const struct ha_discovery *ha);

#endif
