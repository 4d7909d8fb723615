/*
 * hub: struct hearth_hub owns every subsystem and joins them. Data flows one
 * way: plugin -> registry -> (store, api publish) -> commands -> plugin.
 *
 * Only main.c knows it is a process; a test embeds a whole hub with
 * hub_new() + hub_start() on its own loop.
 * Loop thread only.
 */
#ifndef HEARTH_HUB_H
#define HEARTH_HUB_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <hearth/plugin.h>
#include <uv.h>

#include "config.h"
#include "ecosystem.h"
#include "registry.h"

#define HUB_PAYLOAD_MAX (64 * 1024) /* bytes of an incoming JSON payload */
#define HUB_JSON_DEPTH_MAX 16
#define HUB_PENDING_COMMANDS_MAX 4096

struct store;
struct mqtt;
struct plugin_host;
struct pending_command;
struct automation;
struct ha_discovery;
struct web;

struct hearth_hub {
	uv_loop_t *loop;
	struct hearth_config *config;
	struct registry *registry;
	struct store *store;
	struct mqtt *mqtt;
	struct plugin_host *plugins;
	struct automation *automation;
	struct ha_discovery *ha; /* NULL when [homeassistant] enabled = false */
	struct web *web;	 /* NULL unless [web] enabled = true */
	const char *base; /* config->mqtt.base_topic */

	uv_timer_t commit_timer;
	uv_timer_t devices_timer; /* coalesces bridge/devices republishing */
	uv_timer_t command_timer; /* expires commands a plugin never finished */
	uv_timer_t ready_timer;	  /* READY even when the broker is away */
	uv_timer_t eco_timer;	  /* bridge/ecosystem at most once a second */
	uv_timer_t trim_timer;	  /* gives the start-up burst's memory back */
	bool eco_dirty;
	struct eco_counts eco;
	bool devices_dirty;
	bool info_dirty;

	bool unsaved_devices;	/* some device rows wait for the database */
	char **unsaved_deletes; /* device ids whose deletion failed */
	size_t n_unsaved_deletes;
	struct pending_command *commands; /* outstanding, in the order sent */
	size_t n_commands;
	uint64_t next_command_id;

	int64_t started_ms;
	bool started;
	bool ready;	  /* plugins started and retained state published */
	bool stopping;
	void (*ready_fn)(void *user);
	void *ready_user;
	void (*stop_done)(void *user);
	void *stop_user;
	bool log_sink_busy;

	/* figures for health_check and tests */
	uint64_t state_updates;
	uint64_t commands_sent;
	uint64_t messages_in;
	uint64_t errors_logged;
	uint64_t firings;
};

/* Current time in ms since the epoch. */
int64_t hub_now_ms(void);

/* Create a hub on loop; takes ownership of config. NULL config fields use
 * defaults. 0 or -ENOMEM. */
int hub_new(uv_loop_t *loop, struct hearth_config *config, struct hearth_hub **out);

/*
 * Open the store and load the registry, connect MQTT, load, init, restore
 * and start plugins. ready_fn (may be NULL) runs once when plugins have
 * started and retained state has been published on the first connection (or
 * the first connection attempt has failed). Returns 0, or a negative errno
 * when the store cannot be opened (logged).
 */
int hub_start(struct hearth_hub *hub, void (*ready_fn)(void *), void *ready_user);

/* Stop: plugins stop, the store flushes, bridge/state goes offline, MQTT
 * disconnects; then done(user). Called once. */
void hub_stop(struct hearth_hub *hub, void (*done)(void *user), void *user);

/* Free everything. Not from inside a loop callback (it runs the loop to
 * close handles). NULL is accepted. */
void hub_free(struct hearth_hub *hub);

/* SIGHUP: re-read what can change at run time (log level and format). The
 * new config is read by the caller; hub takes ownership of nothing. */
void hub_reload(struct hearth_hub *hub, const struct hearth_config *fresh);

/* -- from the plugin host (owner is the plugin's context) ----------------- */
int hub_device_add(struct hearth_hub *hub, const char *plugin, void *owner,
		   const struct hearth_device_info *info);
int hub_device_remove_by_plugin(struct hearth_hub *hub, void *owner, const char *id);
int hub_state_report(struct hearth_hub *hub, void *owner, const char *id,
		     const struct hearth_attr *attrs, size_t n_attrs);
int hub_event_report(struct hearth_hub *hub, void *owner, const char *id, const char *type,
		     const struct hearth_attr *attrs, size_t n_attrs);
int hub_availability_set(struct hearth_hub *hub, void *owner, const char *id, bool online);
void hub_command_done(struct hearth_hub *hub, void *owner, uint64_t command_id, int status,
		      const char *error);
/* A plugin is going away: its devices become unavailable and unowned. */
void hub_plugin_gone(struct hearth_hub *hub, void *owner);

/* -- from the API ---------------------------------------------------------- */

/* Validate a /set payload against dev's capabilities and send the command.
 * Returns 0 or -EINVAL/-EACCES/-ENODEV/-EBUSY with err for the user. */
int hub_device_set(struct hearth_hub *hub, struct device *dev, const cJSON *payload, char *err,
		   size_t err_len);
/* The same for a rule's action (origin non-NULL): a command that is not
 * confirmed is also told in that firing's trace. */
struct rules_origin;
int hub_device_set_from(struct hearth_hub *hub, struct device *dev, const cJSON *payload,
			const struct rules_origin *origin, char *err, size_t err_len);
/* The same for a device/set request: once the command has ended, confirmed
 * or failed, the answer goes to bridge/response/device/set with transaction
 * (may be NULL). An error returned here is the caller's to answer. */
int hub_device_set_answered(struct hearth_hub *hub, struct device *dev, const cJSON *payload,
			    const cJSON *transaction, char *err, size_t err_len);
/* Ask the device to report (payload: attribute names as keys). */
int hub_device_get(struct hearth_hub *hub, struct device *dev, const cJSON *payload, char *err,
		   size_t err_len);
int hub_device_rename(struct hearth_hub *hub, struct device *dev, const char *name, char *err,
		      size_t err_len);
/* Remove a device at the user's request. */
int hub_device_remove(struct hearth_hub *hub, struct device *dev);
/* room/description options; a key with null clears it. */
int hub_device_options(struct hearth_hub *hub, struct device *dev, const cJSON *options,
		       char *err, size_t err_len);
int hub_permit_join(struct hearth_hub *hub, const char *plugin, unsigned seconds, char *err,
		    size_t err_len);
/* JSON for health_check (new object). */
cJSON *hub_health(struct hearth_hub *hub);

/* Mark bridge/devices (and bridge/info) for republishing soon. */
void hub_devices_changed(struct hearth_hub *hub);
/* Something was queued for the store: commit within commit_interval_ms. */
void hub_store_touched(struct hearth_hub *hub);
/* The flywheel figures changed: republish bridge/ecosystem (at most 1/s). */
void hub_ecosystem_changed(struct hearth_hub *hub);
/* Only its counters moved (a rule fired): republish within a minute; the
 * view walks every rule and device, too much to redo every second while
 * rules fire. */
void hub_ecosystem_counted(struct hearth_hub *hub);
/* The flywheel view (new object). */
cJSON *hub_ecosystem(struct hearth_hub *hub);

#endif
