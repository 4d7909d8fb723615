#include "ha_discovery.h"

#include <stdlib.h>

#include "hub.h"

/* Placeholder until discovery lands: nothing is published. */
struct ha_discovery {
	struct hearth_hub *hub;
};

int ha_discovery_new(struct hearth_hub *hub, struct ha_discovery **out)
{
	(void)hub;
	*out = NULL;
	return 0;
}

void ha_discovery_free(struct ha_discovery *ha)
{
	free(ha);
}

void ha_discovery_publish_all(struct ha_discovery *ha)
{
	(void)ha;
}

void ha_discovery_device(struct ha_discovery *ha, const struct device *dev)
{
	(void)ha;
	(void)dev;
}

void ha_discovery_device_removed(struct ha_discovery *ha, const struct device *dev)
{
	(void)ha;
	(void)dev;
}

void ha_discovery_on_message(struct ha_discovery *ha, const char *topic, const void *payload,
			     size_t len)
{
	(void)ha;
	(void)topic;
	(void)payload;
	(void)len;
}

cJSON *ha_discovery_configs(const struct ha_discovery *ha, const struct device *dev)
{
	(void)ha;
	(void)dev;
	return NULL;
}
