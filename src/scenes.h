/*
 * scenes: named target states across devices. A scene is JSON:
 *   {"id": "evening", "name": "Evening", "transition": 2,
 *    "targets": {"lounge/lamp": {"state": "ON", "brightness": 90}, ...}}
 * Device names are resolved to ids when stored and shown as current names.
 * Every target state is validated against the device's capabilities.
 * Activation itself is the hub's (it sends the commands).
 *
 * Pure module. Loop thread only.
 */
#ifndef HEARTH_SCENES_H
#define HEARTH_SCENES_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "registry.h"

#define SCENES_MAX 2000
#define SCENE_TARGETS_MAX 256

struct scene {
	char *id;
	char *name;
	double transition_s; /* < 0: none given */
	cJSON *targets;	     /* {device_id: state} */
	cJSON *definition;   /* stored form (ids) */
	struct scene *next;
};

struct scenes;

struct scenes *scenes_new(struct registry *reg);
void scenes_free(struct scenes *scenes);

/* Add or replace. -EINVAL with err "scene '<id>': <path>: <reason>". */
int scenes_add(struct scenes *scenes, const cJSON *definition, char *err, size_t err_len);
int scenes_remove(struct scenes *scenes, const char *id);
const struct scene *scenes_get(const struct scenes *scenes, const char *id);
const struct scene *scenes_first(const struct scenes *scenes);
size_t scenes_count(const struct scenes *scenes);

/* Build (and add) a scene from the current state of devices (a JSON array
 * of names or ids): every settable attribute they report. */
int scenes_capture(struct scenes *scenes, const char *id, const char *name, const cJSON *devices,
		   char *err, size_t err_len);

/* Every scene with current device names (new array). */
cJSON *scenes_to_json(const struct scenes *scenes);
/* Rebind old_id -> new_id in every scene; returns how many changed. */
int scenes_replace_device(struct scenes *scenes, const char *old_id, const char *new_id);

#endif
