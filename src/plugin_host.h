/*
 * plugin_host: loads plugins (dlopen of <plugins.dir>/<name>.so), checks
 * them, offers them the host table, tracks everything each one registers
 * (devices, timers, fd watches, MQTT subscriptions, work) and releases it
 * when the plugin fails or stops, and routes commands to the owning plugin.
 *
 * Refused with one clear log line: a file or folder writable by group or
 * others, a missing entry symbol, no common ABI version, a wrong ABI major,
 * a descriptor too small or lacking a required callback, a name that is not
 * the file's, a duplicate name, unknown keys in [plugin.NAME]. A plugin
 * whose init fails is rolled back and the hub runs on without it.
 *
 * Edge module: logs. Loop thread only (host->post excepted).
 */
#ifndef HEARTH_PLUGIN_HOST_H
#define HEARTH_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <hearth/plugin.h>

struct hearth_hub;
struct device;
struct plugin_host;

int plugin_host_new(struct hearth_hub *hub, struct plugin_host **out);

/* Load and init one plugin by name from dir. 0 or a negative errno
 * (logged); a failed plugin leaves nothing behind. */
int plugin_host_load(struct plugin_host *host, const char *dir, const char *name);

/* Load every plugin in config plugins.enable; failures are logged and
 * skipped. Returns how many loaded. */
size_t plugin_host_load_enabled(struct plugin_host *host);

/* Offer stored state (restore) and start every loaded plugin. A plugin whose
 * start fails is stopped and unloaded. */
void plugin_host_start_all(struct plugin_host *host);

/* Stop every plugin (work still queued is cancelled; running work finishes
 * first, its done() getting -ECANCELED), then call done(user). */
void plugin_host_stop_all(struct plugin_host *host, void (*done)(void *user), void *user);

/* Free; dlclose()s plugins. NULL ok. */
void plugin_host_free(struct plugin_host *host);

/* Route a validated command to dev's plugin. Returns the plugin's answer,
 * or -ENODEV when no loaded plugin owns dev. */
int plugin_host_command(struct plugin_host *host, struct device *dev, uint64_t command_id,
			const struct hearth_attr *attrs, size_t n_attrs);
/* -ENOTSUP when the plugin has no get. */
int plugin_host_get(struct plugin_host *host, struct device *dev, const char *const *attrs,
		    size_t n_attrs);
/* plugin NULL: every plugin that supports it. Returns how many accepted,
 * or -ENOENT (no such plugin) / -ENOTSUP (none supports it). */
int plugin_host_permit_join(struct plugin_host *host, const char *plugin, unsigned seconds);

/* Deliver an MQTT message to plugins whose subscriptions match. */
void plugin_host_mqtt_message(struct plugin_host *host, const char *topic, const void *payload,
			      size_t len, bool retained);

/* True when the plugin behind owner said its commands may be repeated
 * (ABI 1.1 HEARTH_PLUGIN_RETRY_SAFE). */
bool plugin_host_retry_safe(const void *owner);

/* Name of the plugin behind an owner handle. */
const char *plugin_host_owner_name(const void *owner);

/* [{"name","version","description","abi","devices","state"}] (new). */
cJSON *plugin_host_to_json(const struct plugin_host *host);
size_t plugin_host_count(const struct plugin_host *host);

/* The plugin and callback ("command", "timer", ...) running on the calling
 * thread, or NULLs: read by the fatal-signal handler (async-signal-safe). */
void plugin_host_running(const char **plugin, const char **what);

#endif
