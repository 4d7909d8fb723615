#include "hub.h"

#include <errno.h>
#include <math.h>
#include <libgen.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "automation.h"
#include "ha_discovery.h"
#include "log.h"
#include "mqtt.h"
#include "plugin_host.h"
#include "rules.h"
#include "store.h"
#include "web.h"

#define TRIM_AFTER_READY_MS 3000
#define ECO_CHANGED_MS 1000
#define ECO_COUNTED_MS 60000
#define READY_WAIT_MS 1000 /* longest wait for the broker before READY */
#define STOP_MQTT_TIMEOUT_MS 800
#define STORE_RETRY_MS 5000 /* after a failed write, try again at least this often */
#define PASSWORD_MAX 1024

static const char *src = "hub";

/* A command stays pending until the plugin has finished it AND the
 * device's reported state shows every published attribute it set: only
 * then is it confirmed end to end. */
struct pending_command {
	uint64_t id;
	void *owner;
	char *device_id;
	int64_t sent_ms;
	bool accepted; /* the plugin called command_done with success */
	bool retried;  /* sent a second time already */
	cJSON *expect; /* attributes the device must still report */
	cJSON *sent;   /* what was sent, for a retry or an answer */
	bool retry_safe; /* its plugin says sending it twice does no harm */
	char *rule_id; /* the rule whose action sent it, or NULL */
	char *path;    /* that action */
	int64_t trace_ms;
	bool answer;	     /* a device/set request waits for how it ended */
	cJSON *transaction; /* that request's, or NULL */
};

static void confirm_commands(struct hearth_hub *hub, const struct device *dev);

int64_t hub_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- small helpers ---------------------------------------------------------- */


static bool retry_unsaved(struct hearth_hub *hub);

static void on_commit(uv_timer_t *t)
{
	struct hearth_hub *hub = t->data;
	if (!hub->store)
		return;
	int rc = 0;
	/* a store in a fallback mode tries its normal one on a flush */
	if (store_pending(hub->store) || store_degraded(hub->store))
		rc = store_flush(hub->store, hub_now_ms(), hub->config->store.history_days);
	bool waiting = retry_unsaved(hub);
	/* a full disk or an I/O error: keep trying, even in a quiet home */
	if (rc || waiting || store_degraded(hub->store)) {
		uint64_t ms = (uint64_t)hub->config->store.commit_interval_ms;
		uv_timer_start(&hub->commit_timer, on_commit, ms > STORE_RETRY_MS ? ms : STORE_RETRY_MS,
			       0);
	}
}

/* Writes are batched: the first queued write arms a one-shot timer, so an
 * idle hub never wakes up to commit nothing. */
void hub_store_touched(struct hearth_hub *hub)
{
	if (!uv_is_active((uv_handle_t *)&hub->commit_timer))
		uv_timer_start(&hub->commit_timer, on_commit,
			       (uint64_t)hub->config->store.commit_interval_ms, 0);
}

static void on_devices_timer(uv_timer_t *t)
{
	struct hearth_hub *hub = t->data;
	if (hub->devices_dirty) {
		hub->devices_dirty = false;
		api_publish_devices(hub);
	}
	if (hub->info_dirty) {
		hub->info_dirty = false;
		api_publish_info(hub);
	}
}

cJSON *hub_ecosystem(struct hearth_hub *hub)
{
	struct automation *a = hub->automation;
	return ecosystem_json(hub->registry, a ? automation_rules(a) : NULL,
			      a ? automation_scenes(a) : NULL, &hub->eco, hub_now_ms());
}

static void on_eco_timer(uv_timer_t *t)
{
	struct hearth_hub *hub = t->data;
	if (!hub->eco_dirty)
		return;
	hub->eco_dirty = false;
	cJSON *view = hub_ecosystem(hub);
	if (view)
		api_publish_bridge(hub, "ecosystem", view, true);
	cJSON_Delete(view);
}

/* Republish within `within_ms`, or sooner if already planned sooner. */
static void eco_arm(struct hearth_hub *hub, uint64_t within_ms)
{
	hub->eco_dirty = true;
	if (hub->stopping)
		return;
	if (!uv_is_active((uv_handle_t *)&hub->eco_timer) ||
	    uv_timer_get_due_in(&hub->eco_timer) > within_ms)
		uv_timer_start(&hub->eco_timer, on_eco_timer, within_ms, 0);
}

void hub_ecosystem_changed(struct hearth_hub *hub)
{
	eco_arm(hub, ECO_CHANGED_MS);
}

void hub_ecosystem_counted(struct hearth_hub *hub)
{
	eco_arm(hub, ECO_COUNTED_MS);
}

void hub_devices_changed(struct hearth_hub *hub)
{
	hub->devices_dirty = true;
	hub->info_dirty = true;
	hub_ecosystem_changed(hub);
	/* many changes in one loop turn (a plugin adding 1,000 devices) publish once */
	if (!uv_is_active((uv_handle_t *)&hub->devices_timer))
		uv_timer_start(&hub->devices_timer, on_devices_timer, 0, 0);
}

static void event_device(struct hearth_hub *hub, const char *type, const struct device *dev)
{
	cJSON *data = cJSON_CreateObject();
	if (!data)
		return;
	cJSON_AddStringToObject(data, "id", dev->id);
	cJSON_AddStringToObject(data, "name", dev->name);
	cJSON_AddStringToObject(data, "plugin", dev->plugin);
	if (hub->store)
		store_event_queue(hub->store, hub_now_ms(), dev->id, type, data);
	hub_store_touched(hub);
	api_publish_event(hub, type, data);
}

static void put_device(struct hearth_hub *hub, struct device *dev)
{
	if (!hub->store)
		return;
	if (store_device_put(hub->store, dev, hub_now_ms()) == 0) {
		dev->unsaved = false;
		return;
	}
	if (!dev->unsaved)
		log_error(src, "device '%s' could not be saved; it is kept in memory and saved when "
			       "the database takes writes again",
			  dev->id);
	dev->unsaved = true;
	hub->unsaved_devices = true;
	hub_store_touched(hub);
}

/* Registry changes that the database refused are written again; true while
 * some still wait. */
static bool retry_unsaved(struct hearth_hub *hub)
{
	size_t kept = 0;
	for (size_t i = 0; i < hub->n_unsaved_deletes; i++) {
		if (store_device_delete(hub->store, hub->unsaved_deletes[i]) == 0)
			free(hub->unsaved_deletes[i]);
		else
			hub->unsaved_deletes[kept++] = hub->unsaved_deletes[i];
	}
	hub->n_unsaved_deletes = kept;
	if (hub->unsaved_devices) {
		bool left = false;
		for (struct device *d = registry_first(hub->registry); d; d = registry_next(d)) {
			if (d->unsaved && store_device_put(hub->store, d, hub_now_ms()) == 0)
				d->unsaved = false;
			left = left || d->unsaved;
		}
		if (!left)
			log_info(src, "the database takes writes again; every device is saved");
		hub->unsaved_devices = left;
	}
	bool docs = automation_retry_unsaved(hub->automation);
	return hub->unsaved_devices || hub->n_unsaved_deletes > 0 || docs;
}

static void delete_device_row(struct hearth_hub *hub, const char *id)
{
	if (!hub->store || store_device_delete(hub->store, id) == 0)
		return;
	char **list = realloc(hub->unsaved_deletes,
			      (hub->n_unsaved_deletes + 1) * sizeof(*hub->unsaved_deletes));
	char *copy = strdup(id);
	if (!list || !copy) {
		free(copy);
		if (list)
			hub->unsaved_deletes = list;
		log_error(src, "device '%s' was removed but its row stays until the next start", id);
		return;
	}
	hub->unsaved_deletes = list;
	hub->unsaved_deletes[hub->n_unsaved_deletes++] = copy;
	hub_store_touched(hub);
}

/* -- from plugins ------------------------------------------------------------- */

static bool texts_equal(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Update an existing device's plugin-given fields; true if anything changed. */
static bool update_known(struct device *dev, const struct hearth_device_info *info,
			 struct cap *caps, size_t n_caps)
{
	bool changed = false;
	cJSON *old_caps = cap_array_to_json(dev->caps, dev->n_caps);
	cJSON *new_caps = cap_array_to_json(caps, n_caps);
	if (!old_caps || !new_caps || !cJSON_Compare(old_caps, new_caps, 1))
		changed = true;
	cJSON_Delete(old_caps);
	cJSON_Delete(new_caps);
	registry_set_caps(dev, caps, n_caps);
	if (!texts_equal(dev->vendor, info->vendor) || !texts_equal(dev->model, info->model))
		changed = true;
	registry_set_text(&dev->vendor, info->vendor);
	registry_set_text(&dev->model, info->model);
	if (!dev->description_by_user && !texts_equal(dev->description, info->description)) {
		registry_set_text(&dev->description, info->description);
		changed = true;
	}
	return changed;
}

static struct device *add_new(struct hearth_hub *hub, const char *plugin,
			      const struct hearth_device_info *info, char *err, size_t err_len,
			      int *rc)
{
	struct device *dev = NULL;
	const char *name = info->name ? info->name : info->id;
	*rc = registry_add(hub->registry, info->id, name, plugin, &dev, err, err_len);
	if (*rc == -EEXIST || *rc == -EINVAL) {
		/* the suggested name is taken or unusable: the id always works */
		if (registry_by_id(hub->registry, info->id) == NULL && strcmp(name, info->id) != 0) {
			log_warning(src, "device %s: %s; named by its id instead", info->id, err);
			*rc = registry_add(hub->registry, info->id, info->id, plugin, &dev, err,
					   err_len);
		}
	}
	if (*rc)
		return NULL;
	registry_set_text(&dev->vendor, info->vendor);
	registry_set_text(&dev->model, info->model);
	registry_set_text(&dev->description, info->description);
	return dev;
}

int hub_device_add(struct hearth_hub *hub, const char *plugin, void *owner,
		   const struct hearth_device_info *info)
{
	char err[256];
	struct cap *caps = NULL;
	int rc = registry_id_check(info->id, err, sizeof(err));
	if (rc == 0)
		rc = cap_array_from_abi(info->caps, info->n_caps, &caps, err, sizeof(err));
	if (rc) {
		log_error(plugin, "device %s refused: %s", info->id ? info->id : "(no id)", err);
		return rc;
	}
	struct device *dev = registry_by_id(hub->registry, info->id);
	if (dev && ((dev->owner && dev->owner != owner) || strcmp(dev->plugin, plugin) != 0)) {
		log_error(plugin, "device %s refused: it belongs to plugin '%s'", info->id,
			  dev->plugin);
		cap_array_free(caps, info->n_caps);
		return -EEXIST;
	}
	bool fresh = dev == NULL, changed = true;
	if (fresh) {
		dev = add_new(hub, plugin, info, err, sizeof(err), &rc);
		if (!dev) {
			log_error(plugin, "device %s refused: %s", info->id, err);
			cap_array_free(caps, info->n_caps);
			return rc;
		}
		registry_set_caps(dev, caps, info->n_caps);
	} else {
		changed = update_known(dev, info, caps, info->n_caps);
	}
	bool was_available = dev->available;
	dev->owner = owner;
	dev->present = true;
	dev->available = true;
	if (changed) {
		put_device(hub, dev);
		if (hub->ha)
			ha_discovery_device(hub->ha, dev);
	}
	if (fresh) {
		log_info(src, "device %s joined as '%s'", dev->id, dev->name);
		event_device(hub, "device_joined", dev);
	}
	if (!was_available)
		api_publish_availability(hub, dev);
	hub_devices_changed(hub);
	return 0;
}

static struct device *owned(struct hearth_hub *hub, void *owner, const char *id)
{
	struct device *dev = registry_by_id(hub->registry, id);
	return dev && dev->owner == owner ? dev : NULL;
}

static void forget_device(struct hearth_hub *hub, struct device *dev)
{
	if (hub->ha)
		ha_discovery_device_removed(hub->ha, dev);
	delete_device_row(hub, dev->id);
	api_clear_device(hub, dev->name);
	event_device(hub, "device_removed", dev);
	log_info(src, "device %s ('%s') removed", dev->id, dev->name);
	registry_remove(hub->registry, dev);
	hub_devices_changed(hub);
}

int hub_device_remove_by_plugin(struct hearth_hub *hub, void *owner, const char *id)
{
	struct device *dev = owned(hub, owner, id);
	if (!dev)
		return -ENOENT;
	forget_device(hub, dev);
	return 0;
}

static void set_available(struct hearth_hub *hub, struct device *dev, bool online)
{
	if (dev->available == online)
		return;
	dev->available = online;
	api_publish_availability(hub, dev);
	hub_devices_changed(hub);
	if (hub->automation)
		automation_on_availability(hub->automation, dev, online);
}

int hub_state_report(struct hearth_hub *hub, void *owner, const char *id,
		     const struct hearth_attr *attrs, size_t n_attrs)
{
	struct device *dev = owned(hub, owner, id);
	if (!dev)
		return -ENOENT;
	const char *changed[REGISTRY_ATTRS_MAX];
	if (n_attrs > REGISTRY_ATTRS_MAX)
		return -EINVAL;
	int n = registry_merge(dev, attrs, n_attrs, changed);
	if (n < 0) {
		log_warning(plugin_host_owner_name(owner), "device %s: state report refused (%s)", id,
			    n == -EINVAL ? "a value is invalid or too many attributes" : "no memory");
		return n;
	}
	int64_t now = hub_now_ms();
	dev->last_seen_ms = now;
	hub->state_updates++;
	if (n > 0)
		registry_stamp(dev, changed, (size_t)n, now);
	set_available(hub, dev, true);
	if (n > 0 || dev->report_requested) {
		dev->report_requested = false;
		api_publish_state(hub, dev);
	}
	for (int i = 0; i < n && hub->store; i++)
		store_state_queue(hub->store, dev->id, changed[i],
				  cJSON_GetObjectItemCaseSensitive(dev->state, changed[i]), now);
	if (n > 0)
		hub_store_touched(hub);
	if (hub->n_commands)
		confirm_commands(hub, dev);
	if (n > 0 && hub->automation)
		automation_on_state(hub->automation, dev, changed, (size_t)n);
	return 0;
}

int hub_event_report(struct hearth_hub *hub, void *owner, const char *id, const char *type,
		     const struct hearth_attr *attrs, size_t n_attrs)
{
	struct device *dev = owned(hub, owner, id);
	if (!dev)
		return -ENOENT;
	cJSON *data = cJSON_CreateObject();
	if (!data)
		return -ENOMEM;
	cJSON_AddStringToObject(data, "id", dev->id);
	cJSON_AddStringToObject(data, "name", dev->name);
	cJSON_AddStringToObject(data, "event", type);
	for (size_t i = 0; i < n_attrs && i < REGISTRY_ATTRS_MAX; i++) {
		cJSON *v = NULL;
		if (attrs[i].name && cap_value_to_json(&attrs[i].value, &v) == 0)
			cJSON_AddItemToObject(data, attrs[i].name, v);
	}
	dev->last_seen_ms = hub_now_ms();
	if (hub->store) {
		store_event_queue(hub->store, dev->last_seen_ms, dev->id, type, data);
		hub_store_touched(hub);
	}
	if (hub->automation)
		automation_on_event(hub->automation, dev, type, data);
	api_publish_event(hub, "device_event", data);
	return 0;
}

int hub_availability_set(struct hearth_hub *hub, void *owner, const char *id, bool online)
{
	struct device *dev = owned(hub, owner, id);
	if (!dev)
		return -ENOENT;
	set_available(hub, dev, online);
	return 0;
}

static void command_forget(struct hearth_hub *hub, size_t i)
{
	free(hub->commands[i].device_id);
	free(hub->commands[i].rule_id);
	free(hub->commands[i].path);
	cJSON_Delete(hub->commands[i].sent);
	cJSON_Delete(hub->commands[i].transaction);
	cJSON_Delete(hub->commands[i].expect);
	memmove(&hub->commands[i], &hub->commands[i + 1],
		(hub->n_commands - i - 1) * sizeof(hub->commands[0]));
	hub->n_commands--;
}

/* The command ended: confirmed (error NULL) or failed. A plain /set hears
 * only of failures; a device/set request gets its answer either way. */
static void command_end(struct hearth_hub *hub, size_t i, const char *error)
{
	const struct pending_command *c = &hub->commands[i];
	struct device *dev = registry_by_id(hub->registry, c->device_id);
	const char *name = dev ? dev->name : c->device_id;
	if (c->answer)
		api_set_answer(hub, name, c->transaction, error, c->sent);
	else if (error)
		api_set_error(hub, name, error);
	command_forget(hub, i);
}

/* A reported value confirms a requested one when equal; numbers within 1%
 * (a device may round what it was asked for). */
static bool confirms(const cJSON *want, const cJSON *got)
{
	if (!got)
		return false;
	if (cJSON_IsNumber(want) && cJSON_IsNumber(got)) {
		double a = want->valuedouble, b = got->valuedouble;
		double scale = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
		return fabs(a - b) <= 0.01 * scale + 1e-9;
	}
	if (cJSON_IsString(want) && cJSON_IsString(got))
		return strcasecmp(want->valuestring, got->valuestring) == 0;
	return cap_json_equal(want, got);
}

/* Strike from c->expect what dev's state now shows; true when nothing is
 * left to see. */
static bool seen_in_state(struct pending_command *c, const struct device *dev)
{
	cJSON *item = c->expect ? c->expect->child : NULL;
	while (item) {
		cJSON *next = item->next;
		if (confirms(item, cJSON_GetObjectItemCaseSensitive(dev->state, item->string)))
			cJSON_Delete(cJSON_DetachItemViaPointer(c->expect, item));
		item = next;
	}
	return !c->expect || !c->expect->child;
}

static void confirm_commands(struct hearth_hub *hub, const struct device *dev)
{
	for (size_t i = hub->n_commands; i-- > 0;) {
		struct pending_command *c = &hub->commands[i];
		if (strcmp(c->device_id, dev->id) == 0 && seen_in_state(c, dev) && c->accepted)
			command_end(hub, i, NULL);
	}
}

void hub_command_done(struct hearth_hub *hub, void *owner, uint64_t command_id, int status,
		      const char *error)
{
	for (size_t i = 0; i < hub->n_commands; i++) {
		struct pending_command *c = &hub->commands[i];
		if (c->id != command_id || c->owner != owner)
			continue;
		if (status != 0) {
			struct device *dev = registry_by_id(hub->registry, c->device_id);
			char msg[300];
			snprintf(msg, sizeof(msg), "%s: the device refused the command: %s",
				 dev ? dev->name : c->device_id,
				 error ? error : strerror(status < 0 ? -status : status));
			log_warning(plugin_host_owner_name(owner), "%s", msg);
			command_end(hub, i, msg);
			return;
		}
		/* the state may show it already (also when nothing had to change) */
		c->accepted = true;
		struct device *dev = registry_by_id(hub->registry, c->device_id);
		if (!dev || seen_in_state(c, dev))
			command_end(hub, i, dev ? NULL : "the device is gone");
		return;
	}
	log_debug(plugin_host_owner_name(owner), "command %llu finished twice or unknown",
		  (unsigned long long)command_id);
}

static void command_failed(struct hearth_hub *hub, size_t i)
{
	const struct pending_command *c = &hub->commands[i];
	struct device *dev = registry_by_id(hub->registry, c->device_id);
	const char *name = dev ? dev->name : c->device_id;
	double timeout_s = hub->config->mqtt.command_timeout_ms / 1000.0;
	const char *twice = c->retried ? " (sent twice)" : "";
	char msg[300];
	if (c->accepted)
		snprintf(msg, sizeof(msg),
			 "%s: the device did not report the new state within %g s%s", name,
			 timeout_s, twice);
	else
		snprintf(msg, sizeof(msg), "%s: no confirmation from the device within %g s%s",
			 name, timeout_s, twice);
	log_warning(src, "%s", msg);
	cJSON *data = cJSON_CreateObject();
	if (data) {
		cJSON_AddStringToObject(data, "id", c->device_id);
		cJSON_AddStringToObject(data, "name", name);
		if (c->expect)
			cJSON_AddItemToObject(data, "unconfirmed", cJSON_Duplicate(c->expect, 1));
		cJSON_AddStringToObject(data, "reason", msg);
		if (c->rule_id) {
			cJSON_AddStringToObject(data, "rule", c->rule_id);
			cJSON_AddStringToObject(data, "action", c->path);
		}
		api_publish_event(hub, "command_failed", data);
	}
	if (c->rule_id) {
		struct rules_origin origin = {c->rule_id, c->trace_ms, c->path};
		automation_command_failed(hub->automation, &origin, msg);
	}
	command_end(hub, i, msg);
}

/* Send a command that went unconfirmed once more, under a new id. 0, or
 * a negative errno when it cannot be sent (it then fails). */
static int command_retry(struct hearth_hub *hub, size_t i)
{
	struct pending_command *c = &hub->commands[i];
	struct device *dev = registry_by_id(hub->registry, c->device_id);
	if (!dev || !dev->owner || dev->owner != c->owner)
		return -ENODEV;
	struct hearth_attr attrs[REGISTRY_ATTRS_MAX];
	char *scratch[REGISTRY_ATTRS_MAX];
	size_t n = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, c->sent)
	{
		if (n == REGISTRY_ATTRS_MAX)
			break;
		attrs[n].name = item->string;
		cap_value_from_json(item, &attrs[n].value, &scratch[n]);
		n++;
	}
	uint64_t id = ++hub->next_command_id;
	c->id = id;
	c->retried = true;
	c->accepted = false;
	c->sent_ms = hub_now_ms();
	log_info(src, "%s: no confirmation within %g s; sending the command once more", dev->name,
		 hub->config->mqtt.command_timeout_ms / 1000.0);
	/* the plugin may finish it inside: c is not used after this call */
	int rc = plugin_host_command(hub->plugins, dev, id, attrs, n);
	for (size_t k = 0; k < n; k++)
		cJSON_free(scratch[k]);
	if (rc == 0)
		hub->commands_sent++;
	return rc;
}

static size_t command_index(const struct hearth_hub *hub, uint64_t id)
{
	for (size_t i = 0; i < hub->n_commands; i++)
		if (hub->commands[i].id == id)
			return i;
	return SIZE_MAX;
}

static void on_command_timer(uv_timer_t *t)
{
	struct hearth_hub *hub = t->data;
	int64_t now = hub_now_ms();
	int64_t timeout = hub->config->mqtt.command_timeout_ms;
	for (size_t i = 0; i < hub->n_commands;) {
		struct pending_command *c = &hub->commands[i];
		if (now - c->sent_ms <= timeout) {
			i++;
			continue;
		}
		if (c->retry_safe && c->sent && !c->retried) {
			uint64_t id = hub->next_command_id + 1; /* the repeat's, if sent */
			int rc = command_retry(hub, i);
			size_t at = command_index(hub, id);
			if (rc == 0) {
				/* waiting again (or finished inside the plugin: gone) */
				i += at == i;
				continue;
			}
			/* not sent: the plugin refused it (under its new id), or its
			 * device or plugin is gone (unchanged at i) */
			if (at != SIZE_MAX)
				i = at;
		}
		command_failed(hub, i);
	}
}

void hub_plugin_gone(struct hearth_hub *hub, void *owner)
{
	for (struct device *d = registry_first(hub->registry); d; d = registry_next(d)) {
		if (d->owner != owner)
			continue;
		d->owner = NULL;
		d->present = false;
		if (!hub->stopping)
			set_available(hub, d, false);
	}
	for (size_t i = hub->n_commands; i-- > 0;)
		if (hub->commands[i].owner == owner)
			command_end(hub, i, "its plugin stopped before the device confirmed it");
}

/* -- from the API ------------------------------------------------------------------- */

static void settable_list(const struct device *dev, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < dev->n_caps && used + 2 < cap; i++)
		if (dev->caps[i].access & HEARTH_ACCESS_SET)
			used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "",
						 dev->caps[i].name);
	if (!buf[0])
		snprintf(buf, cap, "none");
}

/* Validate every attribute first; nothing is sent unless all are good. */
static int build_command(const struct device *dev, const cJSON *payload, cJSON *resolved, char *err,
			 size_t err_len)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, payload)
	{
		const struct cap *cap = cap_find(dev->caps, dev->n_caps, item->string);
		if (!cap) {
			char list[200];
			settable_list(dev, list, sizeof(list));
			snprintf(err, err_len, "%s has no attribute '%.64s' (settable: %s)", dev->name,
				 item->string, list);
			return -EINVAL;
		}
		if (!(cap->access & HEARTH_ACCESS_SET)) {
			snprintf(err, err_len, "%s: '%s' is read-only", dev->name, cap->name);
			return -EACCES;
		}
		if (cJSON_GetObjectItemCaseSensitive(resolved, item->string)) {
			snprintf(err, err_len, "%s: '%s' is given twice", dev->name, cap->name);
			return -EINVAL;
		}
		cJSON *v = NULL;
		const cJSON *current = cJSON_GetObjectItemCaseSensitive(dev->state, cap->name);
		int rc = cap_validate_value(cap, item, current, &v, err, err_len);
		if (rc)
			return rc;
		cJSON_AddItemToObject(resolved, cap->name, v);
	}
	return 0;
}

/* A newer command sets attributes an older one still waits to see: the
 * device will show the newer values, so the older can no longer be
 * confirmed on them, and repeating it would undo the newer. They are struck
 * from it; an older command left waiting on nothing ends, replaced. */
static void supersede(struct hearth_hub *hub, const char *device_id, uint64_t newer,
		      const cJSON *resolved)
{
	for (size_t i = hub->n_commands; i-- > 0;) {
		struct pending_command *c = &hub->commands[i];
		if (c->id >= newer || strcmp(c->device_id, device_id) != 0)
			continue;
		bool hit = false;
		const cJSON *item;
		cJSON_ArrayForEach(item, resolved)
		{
			if (cJSON_GetObjectItemCaseSensitive(c->expect, item->string)) {
				cJSON_DeleteItemFromObjectCaseSensitive(c->expect, item->string);
				hit = true;
			}
			if (cJSON_GetObjectItemCaseSensitive(c->sent, item->string)) {
				cJSON_DeleteItemFromObjectCaseSensitive(c->sent, item->string);
				hit = true;
			}
		}
		if (!hit || (c->expect && c->expect->child))
			continue;
		/* not a failure: a device/set request hears of it, a plain /set
		 * and a rule's action do not */
		if (c->answer)
			command_end(hub, i, "a newer command to the same attributes replaced it "
					    "before the device showed it");
		else
			command_forget(hub, i);
	}
}

static int dispatch(struct hearth_hub *hub, struct device *dev, const cJSON *resolved,
		    const struct rules_origin *origin, const cJSON *answer_to, char *err,
		    size_t err_len)
{
	struct hearth_attr attrs[REGISTRY_ATTRS_MAX];
	char *scratch[REGISTRY_ATTRS_MAX];
	size_t n = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, resolved)
	{
		attrs[n].name = item->string;
		cap_value_from_json(item, &attrs[n].value, &scratch[n]);
		n++;
	}
	uint64_t id = ++hub->next_command_id;
	char *device_id = strdup(dev->id);
	if (!device_id)
		return -ENOMEM;
	/* what the device should then report: published scalars (parameters
	 * such as a transition are set-only and never come back) */
	cJSON *expect = cJSON_CreateObject();
	cJSON_ArrayForEach(item, resolved)
	{
		const struct cap *cap = cap_find(dev->caps, dev->n_caps, item->string);
		if (expect && cap && (cap->access & HEARTH_ACCESS_PUBLISHED) &&
		    !cJSON_IsObject(item) && !cJSON_IsArray(item))
			cJSON_AddItemToObject(expect, item->string, cJSON_Duplicate(item, 1));
	}
	/* recorded first: a plugin may finish the command inside command() */
	size_t slot = hub->n_commands++;
	hub->commands[slot] = (struct pending_command){.id = id,
						       .owner = dev->owner,
						       .device_id = device_id,
						       .sent_ms = hub_now_ms(),
						       .expect = expect};
	hub->commands[slot].retry_safe = plugin_host_retry_safe(dev->owner);
	if (hub->commands[slot].retry_safe || answer_to)
		hub->commands[slot].sent = cJSON_Duplicate(resolved, 1);
	if (answer_to) {
		hub->commands[slot].answer = true;
		if (!cJSON_IsNull(answer_to))
			hub->commands[slot].transaction = cJSON_Duplicate(answer_to, 1);
	}
	if (origin && origin->rule_id) {
		hub->commands[slot].rule_id = strdup(origin->rule_id);
		hub->commands[slot].path = strdup(origin->path ? origin->path : "");
		hub->commands[slot].trace_ms = origin->trace_ms;
		if (!hub->commands[slot].rule_id || !hub->commands[slot].path) {
			free(hub->commands[slot].rule_id);
			free(hub->commands[slot].path);
			hub->commands[slot].rule_id = hub->commands[slot].path = NULL;
		}
	}
	int rc = plugin_host_command(hub->plugins, dev, id, attrs, n);
	for (size_t i = 0; i < n; i++)
		cJSON_free(scratch[i]);
	if (rc) {
		for (size_t i = hub->n_commands; i-- > 0;)
			if (hub->commands[i].id == id)
				command_forget(hub, i);
		snprintf(err, err_len, "%s: plugin '%s' refused the command: %s", dev->name,
			 dev->plugin, strerror(-rc));
		return rc;
	}
	hub->commands_sent++;
	ecosystem_count(&hub->eco, ECO_COMMANDS, hub_now_ms());
	supersede(hub, dev->id, id, resolved);
	return 0;
}

static int device_set(struct hearth_hub *hub, struct device *dev, const cJSON *payload,
		      const struct rules_origin *origin, const cJSON *answer_to, char *err,
		      size_t err_len);

int hub_device_set(struct hearth_hub *hub, struct device *dev, const cJSON *payload, char *err,
		   size_t err_len)
{
	return hub_device_set_from(hub, dev, payload, NULL, err, err_len);
}

int hub_device_set_from(struct hearth_hub *hub, struct device *dev, const cJSON *payload,
			const struct rules_origin *origin, char *err, size_t err_len)
{
	return device_set(hub, dev, payload, origin, NULL, err, err_len);
}

int hub_device_set_answered(struct hearth_hub *hub, struct device *dev, const cJSON *payload,
			    const cJSON *transaction, char *err, size_t err_len)
{
	static cJSON none = {.type = cJSON_NULL};
	return device_set(hub, dev, payload, NULL, transaction ? transaction : &none, err,
			  err_len);
}

static int device_set(struct hearth_hub *hub, struct device *dev, const cJSON *payload,
		      const struct rules_origin *origin, const cJSON *answer_to, char *err,
		      size_t err_len)
{
	if (!cJSON_IsObject(payload) || !payload->child) {
		snprintf(err, err_len, "%s: /set needs a JSON object of attributes", dev->name);
		return -EINVAL;
	}
	if (cJSON_GetArraySize(payload) > REGISTRY_ATTRS_MAX) {
		snprintf(err, err_len, "%s: too many attributes", dev->name);
		return -EINVAL;
	}
	if (!dev->owner) {
		snprintf(err, err_len, "%s: its plugin '%s' is not running", dev->name, dev->plugin);
		return -ENODEV;
	}
	if (hub->n_commands >= HUB_PENDING_COMMANDS_MAX) {
		snprintf(err, err_len, "%s: %d commands are waiting already; try again", dev->name,
			 HUB_PENDING_COMMANDS_MAX);
		return -EBUSY;
	}
	cJSON *resolved = cJSON_CreateObject();
	if (!resolved)
		return -ENOMEM;
	int rc = build_command(dev, payload, resolved, err, err_len);
	if (rc == 0)
		rc = dispatch(hub, dev, resolved, origin, answer_to, err, err_len);
	cJSON_Delete(resolved);
	return rc;
}

int hub_device_get(struct hearth_hub *hub, struct device *dev, const cJSON *payload, char *err,
		   size_t err_len)
{
	if (!cJSON_IsObject(payload)) {
		snprintf(err, err_len, "%s: /get needs a JSON object such as {\"state\":\"\"}",
			 dev->name);
		return -EINVAL;
	}
	const char *names[REGISTRY_ATTRS_MAX];
	size_t n = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, payload)
	{
		if (n == REGISTRY_ATTRS_MAX)
			break;
		if (!cap_find(dev->caps, dev->n_caps, item->string)) {
			snprintf(err, err_len, "%s has no attribute '%.64s'", dev->name, item->string);
			return -EINVAL;
		}
		names[n++] = item->string;
	}
	dev->report_requested = true;
	int rc = plugin_host_get(hub->plugins, dev, names, n);
	if (rc == -ENOTSUP) {
		/* the plugin cannot be asked: answer from what the hub knows */
		dev->report_requested = false;
		api_publish_state(hub, dev);
		return 0;
	}
	if (rc) {
		dev->report_requested = false;
		snprintf(err, err_len, "%s: plugin '%s' could not ask the device: %s", dev->name,
			 dev->plugin, strerror(-rc));
	}
	return rc;
}

int hub_device_rename(struct hearth_hub *hub, struct device *dev, const char *name, char *err,
		      size_t err_len)
{
	char *old = strdup(dev->name);
	if (!old)
		return -ENOMEM;
	int rc = registry_rename(hub->registry, dev, name, err, err_len);
	if (rc || strcmp(old, dev->name) == 0) {
		free(old);
		return rc;
	}
	put_device(hub, dev);
	api_clear_device(hub, old);
	if (hub->ha)
		ha_discovery_device(hub->ha, dev);
	api_publish_availability(hub, dev);
	api_publish_state(hub, dev);
	cJSON *data = cJSON_CreateObject();
	if (data) {
		cJSON_AddStringToObject(data, "id", dev->id);
		cJSON_AddStringToObject(data, "from", old);
		cJSON_AddStringToObject(data, "to", dev->name);
		if (hub->store) {
			store_event_queue(hub->store, hub_now_ms(), dev->id, "device_renamed", data);
			hub_store_touched(hub);
		}
		api_publish_event(hub, "device_renamed", data);
	}
	log_info(src, "device %s renamed from '%s' to '%s'", dev->id, old, dev->name);
	free(old);
	hub_devices_changed(hub);
	return 0;
}

int hub_device_remove(struct hearth_hub *hub, struct device *dev)
{
	for (size_t i = hub->n_commands; i-- > 0;)
		if (strcmp(hub->commands[i].device_id, dev->id) == 0)
			command_end(hub, i, "the device was removed before it confirmed the command");
	forget_device(hub, dev);
	return 0;
}

int hub_device_options(struct hearth_hub *hub, struct device *dev, const cJSON *options, char *err,
		       size_t err_len)
{
	static const char *const known[] = {"room", "description"};
	const cJSON *item;
	cJSON_ArrayForEach(item, options)
	{
		size_t max = strcmp(item->string, "description") == 0 ? REGISTRY_DESCRIPTION_MAX
								      : REGISTRY_TEXT_MAX;
		if (strcmp(item->string, known[0]) != 0 && strcmp(item->string, known[1]) != 0) {
			snprintf(err, err_len, "unknown option '%.64s' (known: room, description)",
				 item->string);
			return -EINVAL;
		}
		if (!cJSON_IsNull(item) &&
		    (!cJSON_IsString(item) || strlen(item->valuestring) > max)) {
			snprintf(err, err_len, "option '%s' must be text of at most %zu bytes, or null",
				 item->string, max);
			return -EINVAL;
		}
	}
	const cJSON *room = cJSON_GetObjectItemCaseSensitive(options, "room");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(options, "description");
	if ((room && registry_set_text(&dev->room, cJSON_IsString(room) ? room->valuestring : NULL)) ||
	    (desc &&
	     registry_set_text(&dev->description, cJSON_IsString(desc) ? desc->valuestring : NULL)))
		return -ENOMEM;
	if (desc)
		dev->description_by_user = cJSON_IsString(desc);
	put_device(hub, dev);
	if (hub->ha)
		ha_discovery_device(hub->ha, dev); /* the room is HA's suggested area */
	hub_devices_changed(hub);
	return 0;
}

int hub_permit_join(struct hearth_hub *hub, const char *plugin, unsigned seconds, char *err,
		    size_t err_len)
{
	int rc = plugin_host_permit_join(hub->plugins, plugin, seconds);
	if (rc == -ENOENT)
		snprintf(err, err_len, "no plugin named '%.64s' is loaded", plugin);
	else if (rc == -ENOTSUP)
		snprintf(err, err_len, "%s", plugin ? "that plugin does not support joining"
						    : "no loaded plugin supports joining");
	else
		log_info(src, "permit join for %u s sent to %d plugin(s)", seconds, rc);
	return rc;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long pages = 0, resident = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

cJSON *hub_health(struct hearth_hub *hub)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	bool connected = mqtt_is_connected(hub->mqtt);
	struct store_stats st = {0};
	if (hub->store)
		store_get_stats(hub->store, &st);
	bool store_ok = hub->store && !st.failing && strcmp(st.mode, "normal") == 0;
	cJSON_AddBoolToObject(o, "healthy", connected && store_ok);
	cJSON_AddStringToObject(o, "version", HEARTH_VERSION);
	cJSON_AddNumberToObject(o, "uptime_s", (double)(hub_now_ms() - hub->started_ms) / 1000.0);
	cJSON_AddNumberToObject(o, "devices", (double)registry_count(hub->registry));
	cJSON_AddItemToObject(o, "plugins", plugin_host_to_json(hub->plugins));
	cJSON *m = cJSON_AddObjectToObject(o, "mqtt");
	cJSON_AddBoolToObject(m, "connected", connected);
	cJSON_AddNumberToObject(m, "connects", mqtt_connect_count(hub->mqtt));
	cJSON_AddNumberToObject(m, "messages_in", (double)hub->messages_in);
	cJSON *s = cJSON_AddObjectToObject(o, "store");
	cJSON_AddStringToObject(s, "mode", st.mode ? st.mode : "closed");
	cJSON_AddNumberToObject(s, "pending", hub->store ? (double)store_pending(hub->store) : 0);
	cJSON_AddNumberToObject(s, "commits", (double)st.commits);
	cJSON_AddNumberToObject(s, "rows_written", (double)st.rows_written);
	cJSON_AddNumberToObject(s, "flush_failures", (double)st.flush_failures);
	cJSON_AddNumberToObject(s, "last_commit_ms", (double)st.last_commit_ms);
	cJSON_AddNumberToObject(o, "state_updates", (double)hub->state_updates);
	cJSON_AddNumberToObject(o, "commands_sent", (double)hub->commands_sent);
	cJSON_AddNumberToObject(o, "commands_pending", (double)hub->n_commands);
	cJSON_AddNumberToObject(o, "rss_kib", (double)rss_kib());
	return o;
}

/* -- MQTT glue ------------------------------------------------------------------------ */

/* The start-up burst (every retained state, bridge/devices, discovery)
 * is queued and freed within seconds, leaving the heap holed: hand the
 * free pages back so the resident size is what the hub keeps. */
static void on_trim_timer(uv_timer_t *t)
{
	(void)t;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void become_ready(struct hearth_hub *hub)
{
	if (hub->ready || hub->stopping)
		return;
	hub->ready = true;
	uv_timer_start(&hub->trim_timer, on_trim_timer, TRIM_AFTER_READY_MS, 0);
	/* rules act only once the world can hear them */
	automation_go(hub->automation);
	if (hub->ready_fn)
		hub->ready_fn(hub->ready_user);
}

static void on_ready_timer(uv_timer_t *t)
{
	struct hearth_hub *hub = t->data;
	if (!hub->ready) {
		log_warning(src, "the broker is not reachable yet; serving without it for now");
		become_ready(hub);
	}
}

static void on_connect(void *user, bool connected)
{
	struct hearth_hub *hub = user;
	if (!connected || hub->stopping)
		return;
	/* a broker that lost everything gets the whole retained picture back */
	api_publish_all(hub);
	if (hub->automation)
		automation_publish_all(hub->automation);
	if (hub->ha)
		ha_discovery_publish_all(hub->ha);
	hub->eco_dirty = true;
	on_eco_timer(&hub->eco_timer);
	become_ready(hub);
}

static void on_message(void *user, const char *topic, const void *payload, size_t len,
		       bool retained)
{
	struct hearth_hub *hub = user;
	hub->messages_in++;
	if (hub->automation && !hub->stopping)
		automation_on_mqtt(hub->automation, topic, payload, len);
	size_t bl = strlen(hub->base);
	if (strncmp(topic, hub->base, bl) == 0 && topic[bl] == '/') {
		if (!hub->stopping)
			api_on_message(hub, topic, payload, len);
		return;
	}
	if (hub->ha && !hub->stopping)
		ha_discovery_on_message(hub->ha, topic, payload, len);
	plugin_host_mqtt_message(hub->plugins, topic, payload, len, retained);
}

static void log_sink(void *user, enum hearth_log_level level, const char *source, const char *msg)
{
	struct hearth_hub *hub = user;
	hub->errors_logged++;
	if (hub->mqtt && mqtt_is_connected(hub->mqtt))
		api_publish_log(hub, log_level_name(level), source, msg);
}

static int read_password(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		log_error(src, "cannot read mqtt password_file %s: %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		log_error(src, "mqtt password_file %s is accessible by group or others; chmod 600 it",
			  path);
		rc = -EACCES;
	} else if (!fgets(buf, (int)cap, f)) {
		buf[0] = '\0';
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return rc;
}

static int start_mqtt(struct hearth_hub *hub)
{
	const struct hearth_config *c = hub->config;
	char will_topic[512], password[PASSWORD_MAX] = "";
	snprintf(will_topic, sizeof(will_topic), "%s/bridge/state", hub->base);
	if (c->mqtt.password_file) {
		int rc = read_password(c->mqtt.password_file, password, sizeof(password));
		if (rc)
			return rc;
	}
	struct mqtt_options o = {
		.host = c->mqtt.host,
		.port = c->mqtt.port,
		.client_id = c->mqtt.client_id,
		.username = c->mqtt.username,
		.password = c->mqtt.password_file ? password : NULL,
		.tls_ca = c->mqtt.tls_ca,
		.tls_cert = c->mqtt.tls_cert,
		.tls_key = c->mqtt.tls_key,
		.tls_insecure = c->mqtt.tls_insecure,
		.keepalive_s = c->mqtt.keepalive,
		.will_topic = will_topic,
		.will_payload = "{\"state\":\"offline\"}",
		/* a restarted hub still gets the QoS 1 commands sent while it was down */
		.session_expiry_s = 7 * 24 * 3600,
	};
	int rc = mqtt_new(hub->loop, &o, on_connect, on_message, hub, &hub->mqtt);
	explicit_bzero(password, sizeof(password));
	if (rc)
		return rc;
	char filter[512];
	snprintf(filter, sizeof(filter), "%s/#", hub->base);
	mqtt_subscribe(hub->mqtt, filter, c->mqtt.qos);
	return 0;
}

/* -- life cycle ------------------------------------------------------------------------- */

#define HUB_TIMERS 6
static void timers_of(struct hearth_hub *hub, uv_timer_t *out[HUB_TIMERS])
{
	out[5] = &hub->trim_timer;
	out[0] = &hub->commit_timer;
	out[1] = &hub->devices_timer;
	out[2] = &hub->command_timer;
	out[3] = &hub->ready_timer;
	out[4] = &hub->eco_timer;
}

int hub_new(uv_loop_t *loop, struct hearth_config *config, struct hearth_hub **out)
{
	struct hearth_hub *hub = calloc(1, sizeof(*hub));
	if (!hub)
		return -ENOMEM;
	hub->loop = loop;
	hub->config = config;
	hub->base = config->mqtt.base_topic;
	hub->registry = registry_new();
	hub->commands = calloc(HUB_PENDING_COMMANDS_MAX, sizeof(*hub->commands));
	if (!hub->registry || !hub->commands) {
		registry_free(hub->registry);
		free(hub->commands);
		free(hub);
		return -ENOMEM;
	}
	uv_timer_init(loop, &hub->commit_timer);
	uv_timer_init(loop, &hub->devices_timer);
	uv_timer_init(loop, &hub->command_timer);
	uv_timer_init(loop, &hub->ready_timer);
	uv_timer_init(loop, &hub->eco_timer);
	uv_timer_init(loop, &hub->trim_timer);
	uv_timer_t *t[HUB_TIMERS];
	timers_of(hub, t);
	for (size_t i = 0; i < HUB_TIMERS; i++)
		t[i]->data = hub;
	*out = hub;
	return 0;
}

static int make_parent_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	const char *dir = dirname(copy);
	int rc = 0;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		rc = -errno;
	free(copy);
	return rc;
}

int hub_start(struct hearth_hub *hub, void (*ready_fn)(void *), void *ready_user)
{
	char err[512];
	hub->ready_fn = ready_fn;
	hub->ready_user = ready_user;
	hub->started_ms = hub_now_ms();
	make_parent_dir(hub->config->store.path);
	int rc = store_open(hub->config->store.path, &hub->store, err, sizeof(err));
	if (rc) {
		log_error(src, "cannot open the database: %s", err);
		return rc;
	}
	if ((rc = store_load(hub->store, hub->registry, err, sizeof(err)))) {
		log_error(src, "cannot load the registry: %s", err);
		return rc;
	}
	log_info(src, "registry loaded: %zu devices", registry_count(hub->registry));
	if (store_degraded(hub->store))
		hub_store_touched(hub);
	if ((rc = plugin_host_new(hub, &hub->plugins)) || (rc = start_mqtt(hub)) ||
	    (rc = ha_discovery_new(hub, &hub->ha)))
		return rc;
	log_set_sink(log_sink, hub);
	mqtt_start(hub->mqtt);
	if (hub->config->web.enabled && (rc = web_start(hub, &hub->web)))
		return rc;
	plugin_host_load_enabled(hub->plugins);
	plugin_host_start_all(hub->plugins);
	/* rules see every device the plugins brought */
	if ((rc = automation_start(hub, &hub->automation)))
		return rc;
	uv_timer_start(&hub->command_timer, on_command_timer, 1000, 1000);
	uv_timer_start(&hub->ready_timer, on_ready_timer, READY_WAIT_MS, 0);
	hub->started = true;
	if (mqtt_is_connected(hub->mqtt))
		become_ready(hub);
	return 0;
}

static void mqtt_stopped(void *user)
{
	struct hearth_hub *hub = user;
	if (hub->stop_done) {
		void (*done)(void *) = hub->stop_done;
		hub->stop_done = NULL;
		done(hub->stop_user);
	}
}

static void plugins_stopped(void *user)
{
	struct hearth_hub *hub = user;
	if (hub->store) {
		store_flush(hub->store, hub_now_ms(), hub->config->store.history_days);
		/* registry changes the database refused are otherwise only retried by
		 * the commit timer, which is stopped: a last try, and a word if it fails */
		if (retry_unsaved(hub))
			log_error(src, "stopping with device, rule or scene changes not saved: the "
				       "database still refuses writes");
	}
	api_publish_bridge_state(hub, false);
	/* the dashboard goes last: state is safe and "offline" is out by now */
	web_stop(hub->web);
	log_set_sink(NULL, NULL);
	if (hub->mqtt)
		mqtt_stop(hub->mqtt, STOP_MQTT_TIMEOUT_MS, mqtt_stopped, hub);
	else
		mqtt_stopped(hub);
}

void hub_stop(struct hearth_hub *hub, void (*done)(void *user), void *user)
{
	if (hub->stopping)
		return;
	hub->stopping = true;
	hub->stop_done = done;
	hub->stop_user = user;
	uv_timer_t *t[HUB_TIMERS];
	timers_of(hub, t);
	for (size_t i = 0; i < HUB_TIMERS; i++)
		uv_timer_stop(t[i]);
	log_info(src, "stopping");
	automation_stop(hub->automation);
	if (hub->plugins)
		plugin_host_stop_all(hub->plugins, plugins_stopped, hub);
	else
		plugins_stopped(hub);
}

void hub_reload(struct hearth_hub *hub, const struct hearth_config *fresh)
{
	log_set_level(fresh->log.level);
	log_set_format(fresh->log.json);
	hub->config->log.level = fresh->log.level;
	hub->config->log.json = fresh->log.json;
	hub->info_dirty = true;
	hub_devices_changed(hub);
	if (hub->automation)
		automation_reload(hub->automation);
	log_info(src, "configuration reloaded (log level %s)", log_level_name(fresh->log.level));
}

static void timer_closed(uv_handle_t *h)
{
	(void)h;
}

void hub_free(struct hearth_hub *hub)
{
	if (!hub)
		return;
	log_set_sink(NULL, NULL);
	hub->stopping = true;
	automation_stop(hub->automation);
	plugin_host_free(hub->plugins);
	hub->plugins = NULL;
	web_free(hub->web);
	mqtt_free(hub->mqtt);
	uv_timer_t *t[HUB_TIMERS];
	timers_of(hub, t);
	for (size_t i = 0; i < HUB_TIMERS; i++)
		uv_close((uv_handle_t *)t[i], timer_closed);
	/* let the closes complete before the memory goes */
	uv_run(hub->loop, UV_RUN_NOWAIT);
	automation_free(hub->automation);
	ha_discovery_free(hub->ha);
	for (size_t i = 0; i < hub->n_unsaved_deletes; i++)
		free(hub->unsaved_deletes[i]);
	free(hub->unsaved_deletes);
	store_close(hub->store, hub_now_ms());
	for (size_t i = 0; i < hub->n_commands; i++) {
		free(hub->commands[i].device_id);
		cJSON_Delete(hub->commands[i].expect);
	}
	free(hub->commands);
	registry_free(hub->registry);
	config_free(hub->config);
	free(hub);
}
