/*
 * The zigbee plugin's shared parts.
 *
 *  exposes.c  zigbee2mqtt "exposes" -> hearth capabilities (pure, cJSON only)
 *  z2m.c      zigbee2mqtt payloads: bridge/devices, bridge/groups, state
 *             messages, availability, /set encoding, name patterns (pure)
 *  zigbee.c   the plugin: talks to the host, keeps the device table, routes
 *             MQTT messages and commands
 *
 * exposes.c and z2m.c know nothing of the host table, so unit tests and the
 * fuzz target include them directly. Everything runs on the host's loop
 * thread.
 */
#ifndef ZIGBEE_H
#define ZIGBEE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <hearth/plugin.h>

/* The hub's limits (src/capability.h), repeated: a plugin sees no src/ header. */
#define ZB_CAP_NAME_MAX 64
#define ZB_CAP_TEXT_MAX 256   /* one enum value */
#define ZB_CAPS_MAX 256	      /* capabilities of one device */
#define ZB_FEATURES_MAX 32    /* features of one composite */
#define ZB_VALUES_MAX 256     /* values of one enum */
#define ZB_UNIT_MAX 32
#define ZB_CAP_DESC_MAX 512
#define ZB_TEXT_MAX 256	      /* vendor, model */
#define ZB_DESC_MAX 1024      /* device description */
#define ZB_NAME_MAX 255	      /* a zigbee2mqtt friendly name */
#define ZB_IEEE_LEN 18	      /* "0x" and 16 hex digits */
#define ZB_STATE_ATTRS_MAX 128 /* attributes of one state message */
#define ZB_PAYLOAD_MAX (64 * 1024)
#define ZB_DEVICES_PAYLOAD_MAX (8 * 1024 * 1024)
#define ZB_JSON_DEPTH_MAX 32
#define ZB_DEVICES_MAX 4096
#define ZB_GROUPS_MAX 1024
#define ZB_GROUP_MEMBERS_MAX 256
#define ZB_PATTERNS_MAX 32
#define ZB_EXPOSE_DEPTH_MAX 4

/* What the plugin keeps beside each capability. */
struct zcap_meta {
	/* Came from a light/switch/lock/cover/climate/fan container: groups
	 * of such devices offer it too. */
	bool specific;
	/* An enum of numbers, mapped to a numeric: the only values accepted
	 * (malloc'd; NULL otherwise). */
	double *allowed;
	size_t n_allowed;
	/* An enum whose only value is "": a write-only trigger (a self-test,
	 * a reset), mapped to a text that accepts just "". */
	bool trigger;
};

/* Owned capabilities: every string and array is malloc'd. */
struct zcaps {
	struct hearth_capability *caps;
	struct zcap_meta *meta;
	size_t n;
	size_t cap;
	size_t n_unmapped; /* exposes that could not be mapped */
};

/* Told about an expose that cannot be mapped: why, and the expose itself
 * (borrowed). */
typedef void (*zx_warn_fn)(void *user, const char *why, const cJSON *expose);

/* ---- exposes.c ----------------------------------------------------------- */

/*
 * Map a definition's exposes array into out (which the caller zeroed or got
 * from an earlier call; capabilities are appended, a repeated property
 * merges). Specific kinds are flattened; the two colour composites (xy, hs)
 * share the property "color" and become one composite. Every expose that
 * cannot be mapped is passed to warn (may be NULL) and counted in
 * out->n_unmapped. Returns 0 or -ENOMEM.
 */
int zx_map(const cJSON *exposes, struct zcaps *out, zx_warn_fn warn, void *user);

/* Add the plugin's firmware update capabilities: "update" (composite,
 * published: state, progress, remaining, versions) and "ota" (enum
 * check/update, settable). Names already there are kept. 0 or -ENOMEM. */
int zx_add_ota(struct zcaps *z);

/* Add a copy of every specific capability of src to dst (merging names
 * present already), for a group's capabilities. 0 or -ENOMEM. */
int zx_merge_specific(struct zcaps *dst, const struct zcaps *src);

/* Index of the capability named name, or -1. */
int zx_find(const struct zcaps *z, const char *name);

/* True when value v is one zigbee2mqtt accepts for the capability at index
 * i: the listed numbers of a numeric enum, "" for a trigger; anything else
 * the hub has validated passes. */
bool zx_value_allowed(const struct zcaps *z, size_t i, const struct hearth_value *v);

/* Free everything and zero z. NULL is accepted. */
void zx_free(struct zcaps *z);

/* ---- z2m.c --------------------------------------------------------------- */

/* One device of bridge/devices worth a hearth device; every pointer is
 * borrowed from the parsed document. */
struct zentry {
	const char *ieee;
	const char *friendly;
	const char *vendor;	 /* may be NULL */
	const char *model;	 /* may be NULL */
	const char *description; /* may be NULL */
	bool supports_ota;
	const cJSON *exposes;	 /* may be NULL */
	uint64_t fingerprint;	 /* changes when anything mapped changes */
};

/* One group of bridge/groups; members are IEEE addresses (borrowed). */
struct zgroup_entry {
	int id;
	const char *friendly;
	const char *members[ZB_GROUP_MEMBERS_MAX];
	size_t n_members;
	uint64_t fingerprint;
};

/* Why entries were skipped, for a log line. */
struct zskip {
	size_t coordinator, not_interviewed, unsupported, disabled, malformed;
};

/*
 * Parse a bridge/devices payload. *root receives the document (free with
 * cJSON_Delete), *entries a malloc'd array of the devices that become hearth
 * devices: interviewed, supported, enabled, with a definition, not the
 * coordinator. skip (may be NULL) counts the others. Returns 0, -EINVAL (not
 * a JSON array, too large or too deep) or -ENOMEM.
 */
int z2m_parse_devices(const char *payload, size_t len, cJSON **root, struct zentry **entries,
		      size_t *n_entries, struct zskip *skip);

/* Parse bridge/groups the same way; malformed groups are skipped. */
int z2m_parse_groups(const char *payload, size_t len, cJSON **root, struct zgroup_entry **groups,
		     size_t *n_groups);

/* A state message as typed attributes, borrowed from the parsed document. */
struct zstate {
	cJSON *root;
	struct hearth_attr attrs[ZB_STATE_ATTRS_MAX];
	char *scratch[ZB_STATE_ATTRS_MAX]; /* printed objects and arrays */
	size_t n;
	size_t skipped; /* attributes with an unusable name, or past the limit */
};

/* Parse a device state message (a JSON object). Objects and arrays become
 * HEARTH_VALUE_JSON, null HEARTH_VALUE_NULL. Returns 0, -EINVAL or -ENOMEM;
 * on success free with z2m_state_free(). */
int z2m_parse_state(const char *payload, size_t len, struct zstate *out);
void z2m_state_free(struct zstate *s);

/* "online"/"offline", as plain text or {"state":"..."}: 1, 0, or -EINVAL. */
int z2m_parse_online(const char *payload, size_t len);

/* The JSON object text zigbee2mqtt expects on <base>/<name>/set for these
 * attributes (malloc'd into *out). -EINVAL for a value that cannot be
 * encoded (a JSON value that does not parse), -ENOMEM. */
int z2m_encode_set(const struct hearth_attr *attrs, size_t n, char **out);

/* Parse JSON of at most max bytes and ZB_JSON_DEPTH_MAX levels. NULL when it
 * is not JSON, too large or too deep. */
cJSON *z2m_json_parse(const char *payload, size_t len, size_t max);

/* Comma-separated fnmatch(3) globs such as "hall/light, kitchen*"; a star
 * also matches "/". Patterns are split into pats (pointers into buf).
 * Returns the count, or -EINVAL (too many or too long). */
int z2m_patterns_split(const char *text, char *buf, size_t buf_len, const char **pats,
		       size_t max);
bool z2m_patterns_match(const char *const *pats, size_t n, const char *name);

/* A base topic is 1..128 bytes, no wildcard, no "/" at either end. */
bool z2m_base_ok(const char *base);

/* FNV-1a over len bytes, continuing from h (start with Z2M_FNV_INIT). */
#define Z2M_FNV_INIT 0xcbf29ce484222325ull
uint64_t z2m_hash(uint64_t h, const void *data, size_t len);

#endif
