/*
 * The mqttdev plugin's shared parts: devices that speak MQTT themselves.
 *
 *  common.c   owned capability lists, parsed attributes, bounded JSON
 *  tasmota.c  Tasmota: discovery config and sensors, state messages, commands
 *  shelly.c   Shelly Gen2+: notifications, component status, JSON-RPC frames
 *  generic.c  generic JSON devices from a devices file, with {i} templates
 *  mqttdev.c  the plugin: talks to the host, owns the device table and the
 *             subscriptions, routes messages and commands
 *
 * All but mqttdev.c know nothing of the host table, so unit tests and fuzz
 * targets include them directly. Everything runs on the host's loop thread.
 */
#ifndef MQTTDEV_H
#define MQTTDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <hearth/plugin.h>

#define MD_NAME_MAX 64	       /* an attribute name (the hub's limit) */
#define MD_UNIT_MAX 16
#define MD_TEXT_MAX 128	       /* a string value in a report */
#define MD_CAPS_MAX 48	       /* capabilities of one Tasmota or Shelly device */
#define MD_ATTRS_MAX 64	       /* attributes in one report */
#define MD_EVENTS_MAX 8	       /* events in one report */
#define MD_ID_MAX 128	       /* a device id (the hub's limit) */
#define MD_TOPIC_MAX 256
#define MD_PAYLOAD_MAX (64 * 1024)
#define MD_JSON_DEPTH_MAX 16
#define MD_DEVICES_MAX 10000   /* all devices of the plugin */
/* Devices heard of and not usable yet (a Tasmota without its config, a
 * discovered Shelly that has not told its components), at most. */
#define MD_WAITING_MAX 64
#define MD_FILE_MAX (1024 * 1024)

/* ---- common.c ---------------------------------------------------------------------------- */

/* A capability whose name and unit are built at run time. */
struct mcap {
	struct hearth_capability c;
	char name[MD_NAME_MAX];
	char unit[MD_UNIT_MAX];
};

/* A device's capabilities. The array never moves, so c.name stays valid. */
struct mcaps {
	struct mcap caps[MD_CAPS_MAX];
	size_t n;
};

/* Add a capability (name and unit are copied; every other pointer in tmpl
 * must be static). Returns its index, the index of the one already named
 * so, or -ENOSPC. */
int mcaps_add(struct mcaps *m, const struct hearth_capability *tmpl);
int mcaps_find(const struct mcaps *m, const char *name);
/* The plain hearth_capability array for device_add (n entries). */
void mcaps_export(const struct mcaps *m, struct hearth_capability *out);

/* An event to report beside the state (a button press). */
struct mevent {
	char type[MD_NAME_MAX];
	char attr[MD_NAME_MAX];
	char value[MD_TEXT_MAX];
};

/* What one message said: attributes (everything copied into the struct),
 * availability, events, and whether the device's capabilities grew. */
struct mstate {
	struct hearth_attr attrs[MD_ATTRS_MAX];
	char names[MD_ATTRS_MAX][MD_NAME_MAX];
	char text[MD_ATTRS_MAX][MD_TEXT_MAX];
	size_t n;
	int online; /* -1: not said, 0 offline, 1 online */
	bool caps_changed;
	struct mevent events[MD_EVENTS_MAX];
	size_t n_events;
};

void mstate_init(struct mstate *s);
/* Add or replace an attribute. Strings longer than MD_TEXT_MAX - 1 bytes
 * are refused (-E2BIG); -ENOSPC past MD_ATTRS_MAX. */
int mstate_num(struct mstate *s, const char *name, double x);
int mstate_bool(struct mstate *s, const char *name, bool b);
int mstate_str(struct mstate *s, const char *name, const char *str);
int mstate_json(struct mstate *s, const char *name, const char *json);
int mstate_event(struct mstate *s, const char *type, const char *attr, const char *value);

/* Parse JSON of at most max bytes nested at most MD_JSON_DEPTH_MAX deep;
 * NULL otherwise. */
cJSON *md_json_parse(const void *payload, size_t len, size_t max);
/* A copy of the payload as a C string (NULL past max bytes or on ENOMEM). */
char *md_text(const void *payload, size_t len, size_t max);
/* The member at a dotted path ("ENERGY.Total"); NULL if absent. */
const cJSON *md_path(const cJSON *root, const char *path);
/* A topic (no wildcards, 1..MD_TOPIC_MAX-1 bytes, no empty level at the
 * ends, no control characters). */
bool md_topic_ok(const char *topic);
/* "a, b ,c" split on commas, trimmed, into items (pointers into buf). */
int md_split_list(const char *text, char *buf, size_t buf_len, const char **items, size_t max);

/* ---- tasmota.c --------------------------------------------------------------------------- */

#define TAS_RELAYS 8
#define TAS_SENSORS_MAX 32

/* One measured value of the discovery "sensors" message: sensor.key. */
struct tas_sensor {
	char sensor[32];
	char key[32];
	int cap; /* index in caps */
};

struct tasmota {
	char mac[13];	       /* 12 lowercase hex digits */
	char topic[64];	       /* t */
	char full_topic[128];  /* ft, e.g. "%prefix%/%topic%/" */
	char prefix[3][32];    /* tp: cmnd, stat, tele */
	char hostname[64];     /* hn */
	char name[64];	       /* dn */
	char model[64];	       /* md */
	char sw[32];
	char online[32];       /* onln */
	char offline[32];      /* ofln */
	char state_off[16];    /* state[0] */
	char state_on[16];     /* state[1] */
	uint8_t relays[TAS_RELAYS]; /* rl: 0 none, 1 relay, 2 light, 3 shutter */
	int light_subtype;	    /* lt_st: 0 none .. 5 RGBCW */
	char temp_unit[4];	    /* "C" or "F" from TempUnit */
	char pressure_unit[8];
	struct tas_sensor sensors[TAS_SENSORS_MAX];
	size_t n_sensors;
	bool have_config;
	struct mcaps caps;
};

enum { TAS_CMND = 0, TAS_STAT = 1, TAS_TELE = 2 };

/* Parse a tasmota/discovery/<mac>/config payload into t (sensors kept).
 * -EINVAL with err for a payload that is not a usable config. */
int tasmota_parse_config(struct tasmota *t, const char *payload, size_t len, char *err,
			 size_t err_len);
/* Parse tasmota/discovery/<mac>/sensors: the measured values. */
int tasmota_parse_sensors(struct tasmota *t, const char *payload, size_t len);
/* (Re)build t->caps from the relays, light and sensors. */
void tasmota_build_caps(struct tasmota *t);
/* The device's full topic for a prefix (TAS_*) followed by command (may be
 * ""), e.g. "cmnd/kitchen/POWER". 0 or -ENAMETOOLONG/-EINVAL. */
int tasmota_topic(const struct tasmota *t, int prefix, const char *command, char *out,
		  size_t cap);
/* One message on <stat or tele topic><suffix>. which is TAS_STAT or
 * TAS_TELE. New sensors found in SENSOR messages are added to the caps
 * (out->caps_changed). */
int tasmota_parse_message(struct tasmota *t, int which, const char *suffix, const char *payload,
			  size_t len, struct mstate *out);

/* One command to publish: cmnd/<topic>/<command> with payload. */
struct tas_cmd {
	char command[16];
	char payload[64];
};

/* Encode a validated hearth command into Tasmota commands (at most max). */
int tasmota_encode(const struct tasmota *t, const struct hearth_attr *attrs, size_t n,
		   struct tas_cmd *out, size_t max, size_t *n_out);

/* ---- shelly.c ---------------------------------------------------------------------------- */

#define SH_COMPONENTS_MAX 24

enum sh_type {
	SH_SWITCH,
	SH_LIGHT,
	SH_COVER,
	SH_INPUT,
	SH_TEMPERATURE,
	SH_HUMIDITY,
	SH_DEVICEPOWER,
	SH_ILLUMINANCE,
	SH_SMOKE,
	SH_WIFI,
	SH_TYPES
};

/* What a capability reads and writes on the device. */
struct sh_ref {
	uint8_t type; /* enum sh_type */
	uint8_t idx;  /* the component's id */
	uint8_t field;
};

struct shelly {
	char prefix[MD_TOPIC_MAX]; /* MQTT topic prefix */
	char id[64];		   /* last level of the prefix: the device's id */
	char model[64];
	struct mcaps caps;
	struct sh_ref refs[MD_CAPS_MAX];
};

/* Set up s for a topic prefix. -EINVAL for an unusable prefix. */
int shelly_init(struct shelly *s, const char *prefix);
/* A frame from <prefix>/events/rpc (NotifyStatus, NotifyFullStatus,
 * NotifyEvent) into out. */
int shelly_parse_notification(struct shelly *s, const char *payload, size_t len,
			      struct mstate *out);
/* A component's status from <prefix>/status/<key> (key "switch:0"). */
int shelly_parse_status(struct shelly *s, const char *key, const char *payload, size_t len,
			struct mstate *out);
/* An object of component statuses (Shelly.GetStatus's result). */
int shelly_apply_full(struct shelly *s, const cJSON *status, struct mstate *out);

/* A response frame on <src>/rpc: its id, then either result (borrowed from
 * *root, which the caller frees) or error code and message. */
struct sh_response {
	cJSON *root;
	double id;
	const cJSON *result;
	int error_code;
	char error[MD_TEXT_MAX];
	char src[64];
};
int shelly_parse_response(const char *payload, size_t len, struct sh_response *out);

/* One RPC to send: method and params (JSON object text). */
struct sh_rpc {
	char method[32];
	char params[128];
};
int shelly_encode(const struct shelly *s, const struct hearth_attr *attrs, size_t n,
		  struct sh_rpc *out, size_t max, size_t *n_out);
/* The request frame {"id":..,"src":..,"method":..,"params":..}. */
int shelly_frame(uint64_t id, const char *src, const struct sh_rpc *rpc, char *out, size_t cap);

/* ---- generic.c --------------------------------------------------------------------------- */

#define GEN_ATTRS_MAX 64
#define GEN_PATH_MAX 8
#define GEN_COUNT_MAX 10000

/* One attribute of a generic device. Binary values: value_on/off are
 * hearth's, payload_on/off what the device sends and takes. */
struct gen_attr {
	char *name;
	char *key;  /* dotted path in the payload, "$" for the whole payload */
	enum hearth_cap_type type;
	unsigned access;
	char *unit;
	unsigned flags;
	double min, max, step;
	char **values;
	size_t n_values;
	cJSON *value_on, *value_off;
	cJSON *payload_on, *payload_off;
	char *on_text, *off_text; /* value_on/off when they are strings */
};

/* One entry of the devices file; with count > 0 a template over {i}. */
struct gen_spec {
	char *id, *name, *vendor, *model, *description;
	char *state_topic, *command_topic, *availability_topic;
	char *payload_available, *payload_not_available;
	long start, count; /* count 0: a single device, no template */
	int qos;
	bool retain;
	bool optimistic;
	struct gen_attr attrs[GEN_ATTRS_MAX];
	size_t n_attrs;
	struct hearth_capability caps[GEN_ATTRS_MAX];
};

struct gen_file {
	struct gen_spec *specs;
	size_t n_specs;
	size_t n_devices; /* all expanded */
};

/* Parse a devices file. -EINVAL with err naming the device and field. */
int generic_parse(const char *text, size_t len, struct gen_file *out, char *err, size_t err_len);
void generic_free(struct gen_file *f);
/* s with every {i} replaced by i (s NULL: NULL). malloc'd, or NULL. */
char *generic_expand(const char *s, long i);
/* For a template whose {i} fills one whole topic level: that level's
 * index (and the filter with + there in filter); else -1. */
int generic_wildcard(const char *tmpl, char *filter, size_t cap);
/* The number at level seg of topic, if it is exactly a decimal in
 * [spec start, start + count). -1 otherwise. */
long generic_index(const struct gen_spec *spec, const char *topic, int seg);
/* A state message into out. */
int generic_parse_state(const struct gen_spec *spec, const char *payload, size_t len,
			struct mstate *out);
/* Availability payload: 1, 0, or -1 (neither). */
int generic_parse_availability(const struct gen_spec *spec, const char *payload, size_t len);
/* The JSON to publish on the command topic for these attributes. */
int generic_encode(const struct gen_spec *spec, const struct hearth_attr *attrs, size_t n,
		   char **out);

#endif
