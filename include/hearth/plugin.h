/*
 * hearth plugin ABI.
 *
 * A plugin is a shared object that exports one symbol, hearth_plugin_entry.
 * The host calls it with the ABI versions it supports; the plugin returns a
 * const descriptor for the version it chose, or NULL when none fits.
 *
 * Rules that hold across the whole ABI:
 *  - Everything runs on the host's single loop thread, except host->post(),
 *    which any thread may call.
 *  - A plugin never blocks: sockets and serial ports are non-blocking and
 *    watched with host->fd_watch(); blocking work goes to host->work_queue().
 *  - Ownership: the host copies whatever a plugin hands it. Whatever the host
 *    passes to a plugin callback is borrowed for the duration of that callback.
 *  - Functions return 0 on success and a negative errno value on failure.
 *    A function that fails never calls its callback.
 *  - struct hearth_host only ever grows at the end. Before using a member
 *    added after ABI 1.0, check HEARTH_HOST_HAS(host, member).
 *  - No libuv, libmosquitto, SQLite or cJSON type crosses this boundary.
 *
 * ABI version history:
 *   1.0  first version.
 *   1.1  struct hearth_plugin gains flags (HEARTH_PLUGIN_RETRY_SAFE). A 1.0
 *        plugin loads unchanged; the host reads flags only from plugins that
 *        say 1.1 and are built with the member.
 */
#ifndef HEARTH_PLUGIN_H
#define HEARTH_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version: major changes break plugins, minor changes only add. */
#define HEARTH_ABI_MAJOR 1
#define HEARTH_ABI_MINOR 1
#define HEARTH_ABI_VERSION(major, minor) ((uint32_t)(((major) << 16) | (minor)))
#define HEARTH_ABI_VERSION_MAJOR(v) ((uint32_t)(v) >> 16)
#define HEARTH_ABI_VERSION_MINOR(v) ((uint32_t)(v)&0xffffu)

/* Log levels for host->log(). */
enum hearth_log_level {
	HEARTH_LOG_ERROR = 0,
	HEARTH_LOG_WARNING = 1,
	HEARTH_LOG_INFO = 2,
	HEARTH_LOG_DEBUG = 3,
};

/* ---------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------- */

/* The type of one attribute value (ABI 1.0). */
enum hearth_value_type {
	HEARTH_VALUE_NULL = 0,
	HEARTH_VALUE_BOOL = 1,
	HEARTH_VALUE_NUMBER = 2,
	HEARTH_VALUE_STRING = 3,
	/* A JSON object or array as UTF-8 text, for composite values such as a
	 * colour {"x":0.31,"y":0.32}. Scalars never use this type. */
	HEARTH_VALUE_JSON = 4,
};

/* One typed value (ABI 1.0). Strings are NUL-terminated UTF-8 and borrowed. */
struct hearth_value {
	enum hearth_value_type type;
	union {
		bool boolean;
		double number;
		const char *string; /* HEARTH_VALUE_STRING and HEARTH_VALUE_JSON */
	} u;
};

/* One named attribute and its value (ABI 1.0). */
struct hearth_attr {
	const char *name;
	struct hearth_value value;
};

/* Convenience initialisers for plugin code. */
#define HEARTH_BOOL(b) ((struct hearth_value){.type = HEARTH_VALUE_BOOL, .u.boolean = (b)})
#define HEARTH_NUMBER(n) ((struct hearth_value){.type = HEARTH_VALUE_NUMBER, .u.number = (n)})
#define HEARTH_STRING(s) ((struct hearth_value){.type = HEARTH_VALUE_STRING, .u.string = (s)})
#define HEARTH_JSON(s) ((struct hearth_value){.type = HEARTH_VALUE_JSON, .u.string = (s)})

/* ---------------------------------------------------------------------------
 * Capabilities (modelled on zigbee2mqtt's "exposes")
 * ------------------------------------------------------------------------- */

enum hearth_cap_type {
	HEARTH_CAP_BINARY = 1,	  /* two values: value_on / value_off */
	HEARTH_CAP_NUMERIC = 2,	  /* number with optional min/max/step/unit */
	HEARTH_CAP_ENUM = 3,	  /* one string out of values[] */
	HEARTH_CAP_TEXT = 4,	  /* free text */
	HEARTH_CAP_COMPOSITE = 5, /* JSON object of features[] (colour xy/hs) */
	HEARTH_CAP_LIST = 6,	  /* JSON array; no validation beyond type */
};

/* Access bits, as zigbee2mqtt: published in state, settable, gettable. */
#define HEARTH_ACCESS_PUBLISHED 1u
#define HEARTH_ACCESS_SET 2u
#define HEARTH_ACCESS_GET 4u

/* Which of min/max/step are meaningful. */
#define HEARTH_CAP_HAS_MIN 1u
#define HEARTH_CAP_HAS_MAX 2u
#define HEARTH_CAP_HAS_STEP 4u

/*
 * One attribute a device exposes (ABI 1.0). Every pointer is borrowed for the
 * duration of the call that passes it; the host keeps its own copy.
 *
 * name        attribute name as it appears in state JSON ("brightness").
 * type        enum hearth_cap_type.
 * access      HEARTH_ACCESS_* bits.
 * unit        unit text ("°C", "W"), or NULL.
 * description human text, or NULL.
 * flags       HEARTH_CAP_HAS_* bits telling which of min/max/step are set.
 * min,max,step numeric range (NUMERIC only).
 * values      n_values strings (ENUM only).
 * value_on, value_off  the two values of a BINARY (bool or string).
 * features    n_features sub-capabilities (COMPOSITE only; one level deep).
 */
struct hearth_capability {
	const char *name;
	enum hearth_cap_type type;
	unsigned access;
	const char *unit;
	const char *description;
	unsigned flags;
	double min;
	double max;
	double step;
	const char *const *values;
	size_t n_values;
	struct hearth_value value_on;
	struct hearth_value value_off;
	const struct hearth_capability *features;
	size_t n_features;
};

/*
 * A device a plugin adds or updates (ABI 1.0). struct_size lets the struct
 * grow; set it to sizeof(struct hearth_device_info).
 *
 * id          plugin-scoped stable id, "<plugin>:<address>" (e.g.
 *             "virtual:light-1"); at most 128 bytes.
 * name        default name for a new device (the user's name wins once the
 *             device is known); NULL means the id.
 * vendor, model, description  may be NULL.
 */
struct hearth_device_info {
	size_t struct_size;
	const char *id;
	const char *name;
	const char *vendor;
	const char *model;
	const char *description;
	const struct hearth_capability *caps;
	size_t n_caps;
};

/* A command for one device, already validated against its capabilities
 * (ABI 1.0). Binary "TOGGLE" is resolved by the host to value_on/value_off.
 * Everything is borrowed for the duration of the command callback. */
struct hearth_command {
	uint64_t id; /* pass to host->command_done() */
	const char *device_id;
	const struct hearth_attr *attrs;
	size_t n_attrs;
};

/* ---------------------------------------------------------------------------
 * The host's function table
 * ------------------------------------------------------------------------- */

/* The host's per-plugin handle, passed back in every host call. */
typedef struct hearth_plugin_ctx hearth_plugin_ctx;
typedef struct hearth_timer hearth_timer;
typedef struct hearth_watch hearth_watch;

/* Events for fd watches. */
#define HEARTH_FD_READ 1u
#define HEARTH_FD_WRITE 2u
#define HEARTH_FD_ERROR 4u /* error or hang-up; delivered with READ interest */

typedef void (*hearth_timer_cb)(void *user);
typedef void (*hearth_fd_cb)(void *user, int fd, unsigned events);
typedef void (*hearth_work_fn)(void *user);		  /* on a pool thread */
typedef void (*hearth_done_fn)(void *user, int status);	  /* on the loop */
typedef void (*hearth_post_fn)(void *user);		  /* on the loop */
typedef void (*hearth_mqtt_cb)(void *user, const char *topic, const void *payload,
			       size_t len, bool retained);

struct hearth_host {
	/* sizeof(struct hearth_host) as the host was built; members beyond it
	 * do not exist. */
	size_t size;
	/* The host's ABI minor version. */
	uint32_t abi_minor;

	/* -- devices (ABI 1.0) --------------------------------------------- */

	/* Add a device, or update the description and capabilities of one the
	 * plugin already added. Returns 0, -EINVAL (bad id, name or capability,
	 * logged), -EEXIST (id owned by another plugin), -ENOSPC (device limit),
	 * -ENOMEM. */
	int (*device_add)(hearth_plugin_ctx *ctx, const struct hearth_device_info *info);

	/* Remove a device the plugin owns, with its retained topics. Stored
	 * history is kept. Returns 0 or -ENOENT. */
	int (*device_remove)(hearth_plugin_ctx *ctx, const char *id);

	/* Report attribute values of a device. Attributes the device does not
	 * expose are still recorded (e.g. linkquality). A report also marks the
	 * device seen and available. Returns 0, -ENOENT or -EINVAL. */
	int (*state_report)(hearth_plugin_ctx *ctx, const char *id, const struct hearth_attr *attrs,
			    size_t n_attrs);

	/* Report a device event (a button action, a join). type is short text
	 * ("action"); attrs add detail. Published on <base>/bridge/event. */
	int (*event_report)(hearth_plugin_ctx *ctx, const char *id, const char *type,
			    const struct hearth_attr *attrs, size_t n_attrs);

	/* Mark a device online or offline. */
	int (*availability_set)(hearth_plugin_ctx *ctx, const char *id, bool online);

	/* Finish a command accepted by the plugin's command callback. status 0
	 * is success; a negative errno is failure with an optional error text
	 * (copied). Call exactly once per accepted command. */
	void (*command_done)(hearth_plugin_ctx *ctx, uint64_t command_id, int status,
			     const char *error);

	/* -- MQTT, for plugins that bridge another MQTT service (ABI 1.0) --- */

	/* Subscribe to a topic filter on the hub's broker connection. The
	 * subscription survives reconnects. cb runs on the loop; topic and
	 * payload are borrowed. Topics under the hub's own base topic are
	 * refused (-EPERM). */
	int (*mqtt_subscribe)(hearth_plugin_ctx *ctx, const char *filter, int qos, hearth_mqtt_cb cb,
			      void *user);
	int (*mqtt_unsubscribe)(hearth_plugin_ctx *ctx, const char *filter);
	/* Publish; payload is copied. -ENOTCONN when the broker is away (QoS 0
	 * messages are then dropped; QoS 1 ones are queued by the client). */
	int (*mqtt_publish)(hearth_plugin_ctx *ctx, const char *topic, const void *payload,
			    size_t len, int qos, bool retain);

	/* -- configuration and secrets (ABI 1.0) --------------------------- */

	/* Value of key in the plugin's [plugin.NAME] section, or NULL. The
	 * string lives as long as the plugin is loaded. */
	const char *(*config_get)(hearth_plugin_ctx *ctx, const char *key);

	/* Read a secret file into buf (NUL-terminated, trailing newline
	 * removed). Refused with -EACCES if the file is readable by group or
	 * others; -ENAMETOOLONG if it does not fit. The content is never
	 * logged. */
	int (*secret_read)(hearth_plugin_ctx *ctx, const char *path, char *buf, size_t cap);

	/* Log a line prefixed with the plugin's name. */
	void (*log)(hearth_plugin_ctx *ctx, enum hearth_log_level level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/* -- the loop (ABI 1.0) --------------------------------------------- */

	/* Start a timer: cb after timeout_ms, then every repeat_ms if non-zero.
	 * The timer stays valid until timer_stop(), also after a one-shot has
	 * fired (then it can be restarted with timer_again()). */
	int (*timer_start)(hearth_plugin_ctx *ctx, uint64_t timeout_ms, uint64_t repeat_ms,
			   hearth_timer_cb cb, void *user, hearth_timer **out);
	/* Re-arm a timer with new timings. */
	int (*timer_again)(hearth_plugin_ctx *ctx, hearth_timer *timer, uint64_t timeout_ms,
			   uint64_t repeat_ms);
	/* Stop and free a timer. NULL is accepted. */
	void (*timer_stop)(hearth_plugin_ctx *ctx, hearth_timer *timer);

	/* Watch a non-blocking fd for HEARTH_FD_READ / HEARTH_FD_WRITE. Change
	 * the events with fd_modify; fd_unwatch before closing the fd. After a
	 * callback with HEARTH_FD_ERROR (an error or hang-up, e.g. an ICMP error
	 * on a connected UDP socket) the watch is stopped: call fd_modify with
	 * the events again to keep watching. */
	int (*fd_watch)(hearth_plugin_ctx *ctx, int fd, unsigned events, hearth_fd_cb cb,
			void *user, hearth_watch **out);
	int (*fd_modify)(hearth_plugin_ctx *ctx, hearth_watch *watch, unsigned events);
	void (*fd_unwatch)(hearth_plugin_ctx *ctx, hearth_watch *watch);

	/* Run work() on the thread pool, then done(user, status) on the loop
	 * (status -ECANCELED if the plugin is being unloaded). */
	int (*work_queue)(hearth_plugin_ctx *ctx, hearth_work_fn work, hearth_done_fn done,
			  void *user);

	/* The one call safe from any thread: run fn(user) on the loop soon.
	 * Returns -ENOMEM or -ESHUTDOWN (hub stopping; fn will not run). */
	int (*post)(hearth_plugin_ctx *ctx, hearth_post_fn fn, void *user);

	/* Milliseconds since the Unix epoch, as the hub sees time. */
	int64_t (*now_ms)(hearth_plugin_ctx *ctx);
};

/* True if the host table has member m (for members added after 1.0). */
#define HEARTH_HOST_HAS(host, m)                                                                \
	((host)->size >= offsetof(struct hearth_host, m) + sizeof((host)->m) && (host)->m != NULL)

/* ---------------------------------------------------------------------------
 * The plugin's descriptor
 * ------------------------------------------------------------------------- */

/* One configuration key a plugin accepts in [plugin.NAME] (ABI 1.0). The
 * host refuses keys not in the table, with file and line. */
struct hearth_option {
	const char *key;
	const char *default_value; /* documentation; NULL: no default */
	const char *help;
};

struct hearth_plugin {
	/* sizeof(struct hearth_plugin) as the plugin was built. */
	size_t struct_size;
	/* HEARTH_ABI_VERSION(major, minor) the plugin was written against. */
	uint32_t abi_version;
	const char *name; /* [a-z0-9_]+, equals the .so's base name */
	const char *version;
	const char *description;
	/* Config keys, ended by an entry with key NULL; NULL: any key. */
	const struct hearth_option *options;

	/* Set up: read config, add devices. *state is the plugin's own
	 * pointer, passed back to every callback. host and ctx stay valid until
	 * stop returns. A non-zero return refuses the plugin; the host then
	 * removes everything it registered. Required. */
	int (*init)(const struct hearth_host *host, hearth_plugin_ctx *ctx, void **state);

	/* Offer the last stored state of a device this plugin owned, once per
	 * such device, after init and before start. Optional. */
	void (*restore)(void *state, const char *device_id, const struct hearth_attr *attrs,
			size_t n_attrs);

	/* Begin work: open sockets, start timers. Required. */
	int (*start)(void *state);

	/* Release everything. The host then drops timers, watches and
	 * subscriptions the plugin left behind. Required. */
	void (*stop)(void *state);

	/* A validated command. Return 0 (accepted: call command_done later)
	 * or a negative errno (refused; command_done must not be called).
	 * Required. */
	int (*command)(void *state, const struct hearth_command *cmd);

	/* Let new devices join for seconds (0 closes). Optional. */
	int (*permit_join)(void *state, unsigned seconds);

	/* Ask a device to report attrs (n_attrs 0: everything). Optional. */
	int (*get)(void *state, const char *device_id, const char *const *attrs, size_t n_attrs);

	/* ABI 1.1: HEARTH_PLUGIN_* bits, 0 for none. */
	uint32_t flags;
};

/* Sending one command twice does no harm: the host sends a command whose
 * device did not confirm it within [mqtt] command_timeout_ms once more
 * before it reports it failed. Commands reach plugins with absolute values
 * only ("TOGGLE" is already resolved to "ON" or "OFF"), so a plugin whose
 * commands set values, and do not step or queue them, says so. */
#define HEARTH_PLUGIN_RETRY_SAFE (1u << 0)

/*
 * The plugin's single exported symbol. host_versions lists the ABI versions
 * the host supports (n_versions entries, newest first). Return the descriptor
 * for the one the plugin speaks, or NULL if none fits.
 */
typedef const struct hearth_plugin *(*hearth_plugin_entry_fn)(const uint32_t *host_versions,
							      size_t n_versions);

#define HEARTH_PLUGIN_ENTRY_SYMBOL "hearth_plugin_entry"

#if defined(__GNUC__)
#define HEARTH_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define HEARTH_PLUGIN_EXPORT
#endif

HEARTH_PLUGIN_EXPORT const struct hearth_plugin *hearth_plugin_entry(const uint32_t *host_versions,
								    size_t n_versions);

#ifdef __cplusplus
}
#endif

#endif /* HEARTH_PLUGIN_H */
