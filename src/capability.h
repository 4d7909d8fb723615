/*
 * capability: the owned form of struct hearth_capability, its JSON form
 * (zigbee2mqtt "exposes" field names: name, type, access, unit, value_min,
 * value_max, value_step, values, value_on, value_off, features, description)
 * and validation of values written to a device.
 *
 * Pure module (cJSON only). Loop thread only.
 */
#ifndef HEARTH_CAPABILITY_H
#define HEARTH_CAPABILITY_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <hearth/plugin.h>

#define CAP_MAX_FEATURES 32
#define CAP_MAX_VALUES 256
#define CAP_MAX_PER_DEVICE 256

/* An owned capability. value_on/value_off are cJSON scalars (BINARY only). */
struct cap {
	char *name;
	enum hearth_cap_type type;
	unsigned access;
	char *unit;
	char *description;
	unsigned flags; /* HEARTH_CAP_HAS_* */
	double min;
	double max;
	double step;
	char **values;
	size_t n_values;
	cJSON *value_on;
	cJSON *value_off;
	struct cap *features;
	size_t n_features;
};

/* "binary", "numeric", ... or NULL for an unknown type. */
const char *cap_type_name(enum hearth_cap_type type);

/* Copy n ABI capabilities into a new array. Checks names (1..64 bytes,
 * printable, unique), types, ranges (min <= max), enum values, binary values.
 * Returns 0, -EINVAL with err naming the capability and reason, or -ENOMEM. */
int cap_array_from_abi(const struct hearth_capability *src, size_t n, struct cap **out,
		       char *err, size_t err_len);

/* Free an array from cap_array_from_abi() or cap_array_from_json(). */
void cap_array_free(struct cap *caps, size_t n);

/* JSON array of the capabilities (new object; NULL on ENOMEM). */
cJSON *cap_array_to_json(const struct cap *caps, size_t n);

/* Parse the JSON form back. Returns 0, -EINVAL (err says where) or -ENOMEM. */
int cap_array_from_json(const cJSON *array, struct cap **out, size_t *n_out, char *err,
			size_t err_len);

/* The capability named name, or NULL. */
const struct cap *cap_find(const struct cap *caps, size_t n, const char *name);

/*
 * Check one value written to capability cap. current is the attribute's
 * present value (may be NULL), used to resolve "TOGGLE" on a binary.
 * On success *out is a new cJSON value to send (TOGGLE resolved, numbers
 * kept as given) and 0 is returned. Otherwise -EINVAL and err says why in
 * words a user understands ("brightness: 300 is above the maximum 254"), or
 * -ENOMEM ("brightness: out of memory").
 * Access is not checked here: the hub checks HEARTH_ACCESS_SET.
 */
int cap_validate_value(const struct cap *cap, const cJSON *value, const cJSON *current,
		       cJSON **out, char *err, size_t err_len);

/* True when a and b are the same JSON value (numbers compared exactly). */
bool cap_json_equal(const cJSON *a, const cJSON *b);
/* Put value (owned) under key in object, replacing a member of that key
 * without allocating (the system cJSON puts a replacement in with no key when
 * copying the key fails). 0, or -ENOMEM with value freed and object as it was. */
int cap_json_put(cJSON *object, const char *key, cJSON *value);
/* cJSON_AddItemToObject that frees value when it fails (the key cannot be
 * copied, or value is NULL): 0 or -ENOMEM. */
int cap_json_add(cJSON *object, const char *key, cJSON *value);

/* Convert between ABI values and cJSON. hearth_value of type JSON is parsed
 * (-EINVAL if it is not an object or array). *out is new. */
int cap_value_to_json(const struct hearth_value *value, cJSON **out);
/* Fill value from a cJSON scalar, object or array. Strings point into json
 * (or into *scratch for objects/arrays, which the caller frees with
 * cJSON_free). */
void cap_value_from_json(const cJSON *json, struct hearth_value *value, char **scratch);

#endif
