/*
 * The miIO model table: which hearth attributes a device model exposes and
 * how each maps onto the device's properties. Two command styles exist:
 *
 *  - legacy: get_prop ["power","temperature"] -> ["on",24.5], and one set
 *    method per property (set_power ["on"]);
 *  - MIoT:   get_properties / set_properties with a service id (siid) and
 *    a property id (piid) per property, several per request.
 *
 * A model row is data: capabilities plus one struct miio_prop per
 * attribute. Adding a device means adding a row (docs/wifi.md shows how),
 * never a code path. Pure code (cJSON only); no host.
 */
#ifndef WIFI_MIIO_MODELS_H
#define WIFI_MIIO_MODELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <hearth/plugin.h>

/* Attributes one row maps at most (a bit each in a uint32_t). */
#define MIIO_PROPS_MAX 24
/* Longest params text of one request this table builds. */
#define MIIO_PARAMS_MAX 1024
/* Longest model name ("zhimi.airpurifier.mb3"). */
#define MIIO_MODEL_MAX 64

enum miio_style {
	MIIO_LEGACY = 0,
	MIIO_MIOT = 1,
};

/* How a device value becomes a hearth value and back. */
enum miio_conv {
	MIIO_CONV_NUMBER = 0, /* number; hearth value = wire / scale */
	MIIO_CONV_ONOFF,      /* "on"/"off" <-> the binary's value_on/value_off */
	MIIO_CONV_BOOL,	      /* true/false <-> value_on/value_off */
	MIIO_CONV_ENUM,	      /* wire text or number <-> the enum's values[] */
	MIIO_CONV_PERCENT,    /* brightness 1..100 % <-> 0..254 */
	MIIO_CONV_KELVIN,     /* colour temperature K <-> mired */
};

struct miio_prop {
	const char *attr;      /* the capability it feeds (caps[].name) */
	const char *prop;      /* legacy: name in get_prop; NULL: not read */
	const char *setter;    /* legacy: set method; NULL: read-only */
	const char *set_extra; /* legacy: JSON after the value ("\"smooth\",500") */
	unsigned siid, piid;   /* MIoT: 0 means not mapped */
	enum miio_conv conv;
	double scale;		       /* NUMBER: wire = value * scale (0 means 1) */
	const char *const *wire_texts; /* ENUM legacy: per values[i]; NULL: same text */
	const int *wire_numbers;       /* ENUM MIoT: per values[i]; NULL: the index */
};

struct miio_model {
	const char *pattern;	 /* an exact model, or a prefix ending in '*' */
	const char *description; /* the product */
	enum miio_style style;
	unsigned max_props;	 /* properties per get request */
	int kelvin_min, kelvin_max;
	const struct hearth_capability *caps;
	size_t n_caps;
	const struct miio_prop *props;
	size_t n_props;
};

/* One request of a set: a method and its params. props_mask has bit i set
 * for each props[i] the request sets. */
struct miio_set_req {
	char method[48];
	char params[MIIO_PARAMS_MAX];
	uint32_t props_mask;
};

/* The row for model: the first exact match, else the first prefix match,
 * else the generic row (power through legacy get_prop/set_power). Never
 * NULL. */
const struct miio_model *miio_model_find(const char *model);
/* The generic row. */
const struct miio_model *miio_model_generic(void);
/* Every row, for docs and tests. */
const struct miio_model *miio_model_at(size_t i);
size_t miio_model_count(void);
/* True if pattern (exact, or "prefix*") matches model. */
bool miio_model_matches(const char *pattern, const char *model);

/* Index in m->props of the attribute named attr, or -1. */
int miio_prop_index(const struct miio_model *m, const char *attr);
/* The capability of props[i]. */
const struct hearth_capability *miio_prop_cap(const struct miio_model *m, size_t i);

/*
 * The next poll request: the properties read from props[start] on, at most
 * m->max_props of them. *method is "get_prop" or "get_properties"; params
 * get the JSON array; *next is where the next request starts. -ENOENT when
 * nothing is left to read from start, -ENOSPC if params is too small.
 */
int miio_poll_build(const struct miio_model *m, size_t start, const char **method, char *params,
		    size_t cap, size_t *next);

/*
 * Turn the result of the poll request built for [start, next) into hearth
 * attributes (names and strings point into the static table). hints are
 * the last values hearth set, per props[] index (-1: none; NULL: no hints);
 * see convert.h. Values that are missing, refused (MIoT code != 0) or of
 * the wrong type are skipped. -EBADMSG if result is not an array.
 */
int miio_poll_parse(const struct miio_model *m, size_t start, size_t next, const cJSON *result,
		    const int *hints, struct hearth_attr *out, size_t cap, size_t *n_out);

/*
 * The requests that set attrs: one per attribute for legacy rows (in table
 * order, a power-off last), one set_properties for MIoT rows. -EINVAL with
 * a reason in err for an attribute the row cannot set or a value it cannot
 * send; -ENOSPC if out is too small.
 */
int miio_set_build(const struct miio_model *m, const struct hearth_attr *attrs, size_t n,
		   struct miio_set_req *out, size_t cap, size_t *n_out, char *err, size_t err_len);

/* Whether a set's result means success. MIoT: every entry has code 0;
 * legacy: anything but an array starting with a word other than "ok".
 * -EREMOTEIO with the reason in err otherwise. */
int miio_set_result_check(const struct miio_model *m, const cJSON *result, char *err,
			  size_t err_len);

/* The model from a miIO.info result ({"model":"chuangmi.plug.m1",...}).
 * -EBADMSG if missing or not [a-z0-9._-]. */
int miio_info_model(const cJSON *result, char *model, size_t cap);

#endif
