/*
 * registry: the in-memory device table. O(1) lookup by id and by name,
 * insertion-ordered iteration, the capability model and state merge with
 * change detection.
 *
 * Pure module: knows nothing of MQTT, SQLite or libuv. Loop thread only.
 */
#ifndef HEARTH_REGISTRY_H
#define HEARTH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <hearth/plugin.h>

#include "capability.h"

#define REGISTRY_NAME_MAX 128	  /* bytes, also for ids */
#define REGISTRY_TEXT_MAX 256	  /* vendor, model, room */
#define REGISTRY_DESCRIPTION_MAX 1024
#define REGISTRY_ATTRS_MAX 256	  /* attributes in one device's state */
#define REGISTRY_DEVICES_MAX 50000

struct device {
	char *id;	   /* "<plugin>:<address>", immutable */
	char *name;	   /* unique, user-editable */
	char *plugin;	   /* owning plugin's name */
	char *vendor;	   /* may be NULL */
	char *model;	   /* may be NULL */
	char *description; /* may be NULL */
	char *room;	   /* may be NULL */
	bool description_by_user; /* set with device/options: the plugin's no longer wins */
	struct cap *caps;
	size_t n_caps;
	cJSON *state;	   /* object of attribute values; never NULL */
	cJSON *state_ms;   /* attribute -> ms since the epoch it last changed; never NULL */
	int64_t last_seen_ms;
	bool available;
	bool present;	   /* its plugin added it in this run */
	bool report_requested; /* a /get is pending: publish the next report even if unchanged */
	bool unsaved;	   /* writing its row failed: retried at the next commit */
	void *owner;	   /* the plugin host's handle, opaque here */
	/* private to registry.c */
	struct device *next_id, *next_name;
	struct device *prev, *next;
};

struct registry;

/* New empty registry; NULL on ENOMEM. */
struct registry *registry_new(void);
/* Free the registry and every device; NULL is accepted. */
void registry_free(struct registry *reg);

size_t registry_count(const struct registry *reg);
/* Insertion-ordered iteration: for (d = registry_first(r); d; d = registry_next(d)). */
struct device *registry_first(const struct registry *reg);
struct device *registry_next(const struct device *dev);

struct device *registry_by_id(const struct registry *reg, const char *id);
struct device *registry_by_name(const struct registry *reg, const char *name);
/* By name first, then by id. */
struct device *registry_lookup(const struct registry *reg, const char *name_or_id);

/*
 * Check a device name: 1..128 bytes of UTF-8 text; '/' separates rooms but
 * not at either end nor doubled; no '+', '#', control characters; no segment
 * is "set" or "get" and the last is not "availability" (topics stay
 * unambiguous); the first is not "bridge".
 * Returns 0 or -EINVAL with err saying why.
 */
int registry_name_check(const char *name, char *err, size_t err_len);
/* Check an id: 1..128 bytes, "<plugin>:<rest>", no control characters, no
 * '+' or '#'. */
int registry_id_check(const char *id, char *err, size_t err_len);

/*
 * Add a device. name NULL means the id. Returns 0 with *out set; -EEXIST if
 * the id or the name is taken (err says which); -EINVAL for a bad id or
 * name; -ENOSPC past REGISTRY_DEVICES_MAX; -ENOMEM.
 */
int registry_add(struct registry *reg, const char *id, const char *name, const char *plugin,
		 struct device **out, char *err, size_t err_len);

/* Rename. 0 (also when unchanged), -EEXIST, -EINVAL, -ENOMEM. On failure
 * nothing changes. */
int registry_rename(struct registry *reg, struct device *dev, const char *name, char *err,
		    size_t err_len);

/* Unlink and free dev. */
void registry_remove(struct registry *reg, struct device *dev);

/* Replace a text field (vendor, model, description, room) with a copy of
 * text (NULL or "" clears). 0 or -ENOMEM. */
int registry_set_text(char **field, const char *text);

/* Replace the capabilities; takes ownership of caps. */
void registry_set_caps(struct device *dev, struct cap *caps, size_t n_caps);

/*
 * Merge typed attributes into dev->state. For each attribute whose value
 * differs from the stored one, its name (borrowed from dev->state, valid
 * until the next merge) is written to changed[] (room for n_attrs entries
 * must be given, or changed may be NULL). Returns the number changed, or
 * -EINVAL (a JSON value that does not parse, an empty or repeated name, or the
 * REGISTRY_ATTRS_MAX limit; nothing merged) or -ENOMEM (the attributes before
 * the one that failed may be merged).
 */
int registry_merge(struct device *dev, const struct hearth_attr *attrs, size_t n_attrs,
		   const char **changed);

/* Same for a JSON object (used when restoring stored state). */
int registry_merge_json(struct device *dev, const cJSON *object, const char **changed,
			size_t changed_cap);

/* Record that the named attributes changed at ms (for "for" conditions and
 * holds that survive a restart). 0 or -ENOMEM. */
int registry_stamp(struct device *dev, const char *const *names, size_t n, int64_t ms);

/* JSON description of a device as in <base>/bridge/devices (new object). */
cJSON *registry_device_to_json(const struct device *dev);

#endif
