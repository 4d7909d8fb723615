/*
 * source = bluez: advertisements from bluetoothd over D-Bus (sd-bus).
 *
 * Scanning is armed on the adapter (org.bluez.Adapter1 at
 * /org/bluez/<adapter>):
 *   - discovery = true: SetDiscoveryFilter {Transport: le, DuplicateData:
 *     true} then StartDiscovery (active scanning);
 *   - discovery = false: passive scanning through an advertisement monitor
 *     (org.bluez.AdvertisementMonitor1, or_patterns on the service-data
 *     UUIDs we decode) registered with AdvertisementMonitorManager1.
 * Advertisement data arrives as Device1 ServiceData / ManufacturerData /
 * RSSI in InterfacesAdded and PropertiesChanged signals; it is rebuilt into
 * AD structures so every source feeds the same decoder path.
 *
 * Scanning is re-armed whenever it may have been lost: bluetoothd leaving
 * and returning (NameOwnerChanged), the adapter going and coming back
 * (InterfacesRemoved/Added), the adapter being powered off and on, and the
 * bus connection itself breaking (reconnect with backoff). Nothing blocks:
 * every call is asynchronous and the bus fd is watched through the host.
 */
#include "ble.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>

#define BLUEZ "org.bluez"
#define IFACE_ADAPTER "org.bluez.Adapter1"
#define IFACE_DEVICE "org.bluez.Device1"
#define IFACE_MONITOR "org.bluez.AdvertisementMonitor1"
#define IFACE_MONITOR_MANAGER "org.bluez.AdvertisementMonitorManager1"
#define IFACE_OM "org.freedesktop.DBus.ObjectManager"
#define IFACE_PROPS "org.freedesktop.DBus.Properties"
#define APP_PATH "/org/hearth/ble"
#define MONITOR_PATH APP_PATH "/monitor0"
#define BASE_UUID_TAIL "-0000-1000-8000-00805f9b34fb"

#define BZ_PROCESS_MAX 256 /* messages handled per wake-up */
#define BZ_BACKOFF_MIN_MS 1000
#define BZ_BACKOFF_MAX_MS 30000
#define BZ_REARM_MS 5000

struct bluez {
	struct ble_source base;
	struct ble_source_env env;
	sd_bus *bus;
	hearth_watch *watch;
	hearth_timer *bus_timer;   /* sd-bus's own timeouts */
	hearth_timer *retry_timer; /* reconnect, or re-arm */
	uint64_t backoff_ms;
	char adapter_path[64];
	bool present, powered, arming, armed;
	bool said_absent, said_off, said_monitor;
};

static void bz_pump(struct bluez *b);
static void bz_arm(struct bluez *b);
static void bz_get_objects(struct bluez *b);

static void bz_log(struct bluez *b, enum hearth_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void bz_log(struct bluez *b, enum hearth_log_level level, const char *fmt, ...)
{
	char text[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	b->env.host->log(b->env.ctx, level, "bluez %s: %s", b->env.adapter, text);
}

/* ---- helpers shared with the tests ---------------------------------------------- */

int bluez_path_mac(const char *path, const char *adapter, uint8_t mac[6])
{
	char prefix[80], text[18];
	snprintf(prefix, sizeof(prefix), "/org/bluez/%s/dev_", adapter);
	size_t n = strlen(prefix);
	if (!path || strncmp(path, prefix, n) != 0 || strlen(path + n) != 17)
		return -EINVAL;
	memcpy(text, path + n, 17);
	text[17] = '\0';
	for (int i = 2; i < 17; i += 3) {
		if (text[i] != '_')
			return -EINVAL;
		text[i] = ':';
	}
	return ble_mac_parse(text, mac);
}

int bluez_uuid16(const char *uuid)
{
	uint8_t b[2];
	if (!uuid || strlen(uuid) != 36 || strncmp(uuid, "0000", 4) != 0 ||
	    strcasecmp(uuid + 8, BASE_UUID_TAIL) != 0 || ble_hex_decode(uuid + 4, 4, b, 2) != 2)
		return -EINVAL;
	return b[0] << 8 | b[1];
}

/* ---- reading Device1 properties into an advertisement ----------------------------- */

struct bz_adv {
	struct ble_advert adv;
	uint8_t ad[BLE_AD_MAX];
	size_t len;
	bool any; /* a property worth delivering was seen */
};

static int bz_bytes(sd_bus_message *m, const void **data, size_t *n)
{
	int r = sd_bus_message_enter_container(m, 'v', "ay");
	if (r < 0)
		return r;
	if ((r = sd_bus_message_read_array(m, 'y', data, n)) < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/* ServiceData a{sv}, each value "ay", keyed by a 128-bit UUID string. */
static int bz_service_data(sd_bus_message *m, struct bz_adv *a)
{
	int r = sd_bus_message_enter_container(m, 'v', "a{sv}");
	if (r < 0)
		return r;
	if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *uuid;
		const void *data;
		size_t n;
		if ((r = sd_bus_message_read(m, "s", &uuid)) < 0 || (r = bz_bytes(m, &data, &n)) < 0)
			return r;
		int u16 = bluez_uuid16(uuid);
		uint8_t sd[BLE_AD_MAX];
		if (u16 >= 0 && n <= sizeof(sd) - 2) {
			sd[0] = (uint8_t)u16;
			sd[1] = (uint8_t)(u16 >> 8);
			memcpy(sd + 2, data, n);
			if (ble_ad_append(a->ad, &a->len, sizeof(a->ad), 0x16, sd, n + 2) == 0)
				a->any = true;
		}
		if ((r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/* ManufacturerData a{qv}: company id and bytes. */
static int bz_manufacturer(sd_bus_message *m, struct bz_adv *a)
{
	int r = sd_bus_message_enter_container(m, 'v', "a{qv}");
	if (r < 0)
		return r;
	if ((r = sd_bus_message_enter_container(m, 'a', "{qv}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "qv")) > 0) {
		uint16_t company;
		const void *data;
		size_t n;
		if ((r = sd_bus_message_read(m, "q", &company)) < 0 ||
		    (r = bz_bytes(m, &data, &n)) < 0)
			return r;
		uint8_t md[BLE_AD_MAX];
		if (n <= sizeof(md) - 2) {
			md[0] = (uint8_t)company;
			md[1] = (uint8_t)(company >> 8);
			memcpy(md + 2, data, n);
			if (ble_ad_append(a->ad, &a->len, sizeof(a->ad), 0xff, md, n + 2) == 0)
				a->any = true;
		}
		if ((r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int bz_device_prop(sd_bus_message *m, const char *key, struct bz_adv *a)
{
	if (strcmp(key, "ServiceData") == 0)
		return bz_service_data(m, a);
	if (strcmp(key, "ManufacturerData") == 0)
		return bz_manufacturer(m, a);
	if (strcmp(key, "RSSI") == 0) {
		int16_t rssi;
		int r = sd_bus_message_read(m, "v", "n", &rssi);
		if (r >= 0 && rssi >= -128 && rssi <= 127) {
			a->adv.has_rssi = true;
			a->adv.rssi = (int8_t)rssi;
			a->any = true;
		}
		return r;
	}
	if (strcmp(key, "Name") == 0) {
		const char *name;
		int r = sd_bus_message_read(m, "v", "s", &name);
		if (r >= 0)
			ble_ad_append(a->ad, &a->len, sizeof(a->ad), 0x09, (const uint8_t *)name,
				      strnlen(name, 64));
		return r;
	}
	return sd_bus_message_skip(m, "v");
}

/* An a{sv} of properties; fn gets each key with the variant next. */
static int bz_props(sd_bus_message *m, int (*fn)(sd_bus_message *, const char *, void *),
		    void *user)
{
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;
		if ((r = sd_bus_message_read(m, "s", &key)) < 0 || (r = fn(m, key, user)) < 0 ||
		    (r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int bz_device_prop_cb(sd_bus_message *m, const char *key, void *user)
{
	return bz_device_prop(m, key, user);
}

static void bz_device(struct bluez *b, const char *path, sd_bus_message *m)
{
	struct bz_adv a = {0};
	if (bluez_path_mac(path, b->env.adapter, a.adv.mac) < 0) {
		sd_bus_message_skip(m, "a{sv}");
		return;
	}
	int r = bz_props(m, bz_device_prop_cb, &a);
	if (r < 0) {
		bz_log(b, HEARTH_LOG_DEBUG, "%s: unreadable properties (%s)", path, strerror(-r));
		return;
	}
	if (!a.any)
		return;
	a.adv.ad = a.ad;
	a.adv.ad_len = a.len;
	b->env.deliver(b->env.user, &a.adv);
}

/* ---- the adapter ---------------------------------------------------------------------- */

static int bz_adapter_prop(sd_bus_message *m, const char *key, void *user)
{
	struct bluez *b = user;
	if (strcmp(key, "Powered") != 0)
		return sd_bus_message_skip(m, "v");
	int on = 0;
	int r = sd_bus_message_read(m, "v", "b", &on);
	if (r >= 0 && (bool)on != b->powered) {
		b->powered = on;
		b->armed = false;
		b->said_off = !on;
		if (on)
			bz_log(b, HEARTH_LOG_INFO, "adapter powered on");
		else
			bz_log(b, HEARTH_LOG_WARNING,
			       "adapter powered off; scanning resumes when it is powered on");
	}
	return r;
}

static void bz_adapter_gone(struct bluez *b, const char *why)
{
	if (b->present)
		bz_log(b, HEARTH_LOG_WARNING, "%s; scanning resumes when it returns", why);
	b->present = b->armed = b->arming = false;
}

/* One object of InterfacesAdded or GetManagedObjects: a{sa{sv}}. */
static int bz_object(struct bluez *b, const char *path, sd_bus_message *m, bool deliver)
{
	int r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
		const char *iface;
		if ((r = sd_bus_message_read(m, "s", &iface)) < 0)
			return r;
		if (strcmp(iface, IFACE_ADAPTER) == 0 && strcmp(path, b->adapter_path) == 0) {
			b->present = true;
			b->said_absent = false;
			r = bz_props(m, bz_adapter_prop, b);
		} else if (deliver && strcmp(iface, IFACE_DEVICE) == 0) {
			bz_device(b, path, m);
		} else {
			r = sd_bus_message_skip(m, "a{sv}");
		}
		if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/* ---- signals ------------------------------------------------------------------------ */

static int bz_on_added(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	const char *path;
	(void)err;
	if (sd_bus_message_read(m, "o", &path) < 0)
		return 0;
	bool had = b->present;
	/* A device that appears now was just heard: its data is fresh. */
	if (bz_object(b, path, m, true) < 0)
		return 0;
	if (!had && b->present) {
		bz_log(b, HEARTH_LOG_INFO, "adapter appeared");
		b->armed = false;
	}
	bz_arm(b);
	return 0;
}

static int bz_on_removed(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	const char *path;
	(void)err;
	if (sd_bus_message_read(m, "o", &path) < 0 || strcmp(path, b->adapter_path) != 0)
		return 0;
	const char *iface;
	if (sd_bus_message_enter_container(m, 'a', "s") < 0)
		return 0;
	while (sd_bus_message_read(m, "s", &iface) > 0)
		if (strcmp(iface, IFACE_ADAPTER) == 0)
			bz_adapter_gone(b, "adapter removed");
	return 0;
}

static int bz_on_props(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	const char *iface, *path = sd_bus_message_get_path(m);
	(void)err;
	if (!path || sd_bus_message_read(m, "s", &iface) < 0)
		return 0;
	if (strcmp(iface, IFACE_DEVICE) == 0) {
		bz_device(b, path, m);
	} else if (strcmp(iface, IFACE_ADAPTER) == 0 && strcmp(path, b->adapter_path) == 0) {
		bz_props(m, bz_adapter_prop, b);
		bz_arm(b);
	}
	return 0;
}

static int bz_on_owner(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	const char *name, *old_owner, *new_owner;
	(void)err;
	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
	    strcmp(name, BLUEZ) != 0)
		return 0;
	if (!new_owner[0]) {
		bz_adapter_gone(b, "bluetoothd left the bus");
		return 0;
	}
	bz_log(b, HEARTH_LOG_INFO, "bluetoothd is on the bus");
	b->armed = b->arming = false;
	bz_get_objects(b);
	return 0;
}

/* ---- arming ------------------------------------------------------------------------ */

static void bz_retry(struct bluez *b, uint64_t ms);

static void bz_armed(struct bluez *b, const char *how)
{
	b->arming = false;
	b->armed = true;
	b->backoff_ms = BZ_BACKOFF_MIN_MS;
	bz_log(b, HEARTH_LOG_INFO, "%s", how);
}

static int bz_on_start(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	(void)err;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	if (!e || sd_bus_error_has_name(e, "org.bluez.Error.InProgress")) {
		bz_armed(b, "active discovery started");
		return 0;
	}
	b->arming = false;
	bz_log(b, HEARTH_LOG_WARNING, "StartDiscovery failed (%s); retrying in %d s", e->name,
	       BZ_REARM_MS / 1000);
	bz_retry(b, BZ_REARM_MS);
	return 0;
}

static int bz_on_filter(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	(void)err;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	if (e)
		bz_log(b, HEARTH_LOG_DEBUG, "SetDiscoveryFilter: %s", e->name);
	int r = sd_bus_call_method_async(b->bus, NULL, BLUEZ, b->adapter_path, IFACE_ADAPTER,
					 "StartDiscovery", bz_on_start, b, "");
	if (r < 0) {
		b->arming = false;
		bz_retry(b, BZ_REARM_MS);
	}
	return 0;
}

static int bz_on_register(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	(void)err;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	if (!e) {
		bz_armed(b, "passive scanning with an advertisement monitor");
		return 0;
	}
	/* Not fatal: adverts other clients' scans bring in still arrive. */
	b->arming = false;
	b->armed = true;
	if (!b->said_monitor)
		bz_log(b, HEARTH_LOG_WARNING,
		       "passive scanning unavailable (%s: %s); bluetoothd needs the "
		       "AdvertisementMonitor API (run it with --experimental on BlueZ before 5.65), "
		       "or set discovery = true",
		       e->name, e->message ? e->message : "");
	b->said_monitor = true;
	return 0;
}

static void bz_arm(struct bluez *b)
{
	if (b->armed || b->arming || !b->bus)
		return;
	if (!b->present) {
		if (!b->said_absent)
			bz_log(b, HEARTH_LOG_WARNING, "adapter not found; waiting for it");
		b->said_absent = true;
		return;
	}
	if (!b->powered) {
		if (!b->said_off)
			bz_log(b, HEARTH_LOG_WARNING, "adapter is powered off; waiting for it");
		b->said_off = true;
		return;
	}
	int r;
	b->arming = true;
	if (b->env.active)
		r = sd_bus_call_method_async(b->bus, NULL, BLUEZ, b->adapter_path, IFACE_ADAPTER,
					     "SetDiscoveryFilter", bz_on_filter, b, "a{sv}", 2,
					     "Transport", "s", "le", "DuplicateData", "b", 1);
	else
		r = sd_bus_call_method_async(b->bus, NULL, BLUEZ, b->adapter_path,
					     IFACE_MONITOR_MANAGER, "RegisterMonitor",
					     bz_on_register, b, "o", APP_PATH);
	if (r < 0) {
		b->arming = false;
		bz_log(b, HEARTH_LOG_WARNING, "cannot arm scanning (%s)", strerror(-r));
		bz_retry(b, BZ_REARM_MS);
	}
}

static int bz_on_objects(sd_bus_message *m, void *user, sd_bus_error *err)
{
	struct bluez *b = user;
	(void)err;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	if (e) {
		bz_log(b, HEARTH_LOG_WARNING, "bluetoothd not reachable (%s); waiting for it",
		       e->name);
		return 0;
	}
	b->present = false;
	int r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
	while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
		const char *path;
		/* Cached devices carry old data: only the adapter matters here. */
		if ((r = sd_bus_message_read(m, "o", &path)) < 0 ||
		    (r = bz_object(b, path, m, false)) < 0)
			break;
		r = sd_bus_message_exit_container(m);
	}
	if (r < 0)
		bz_log(b, HEARTH_LOG_WARNING, "unreadable object list (%s)", strerror(-r));
	bz_arm(b);
	return 0;
}

static void bz_get_objects(struct bluez *b)
{
	int r = sd_bus_call_method_async(b->bus, NULL, BLUEZ, "/", IFACE_OM, "GetManagedObjects",
					 bz_on_objects, b, "");
	if (r < 0)
		bz_log(b, HEARTH_LOG_WARNING, "GetManagedObjects: %s", strerror(-r));
}

/* ---- the advertisement monitor (passive scanning) --------------------------------- */

static int bz_monitor_call(sd_bus_message *m, void *user, sd_bus_error *err)
{
	(void)user;
	(void)err;
	return sd_bus_reply_method_return(m, "");
}

static int bz_monitor_type(sd_bus *bus, const char *path, const char *iface, const char *prop,
			   sd_bus_message *reply, void *user, sd_bus_error *err)
{
	(void)bus, (void)path, (void)iface, (void)prop, (void)user, (void)err;
	return sd_bus_message_append(reply, "s", "or_patterns");
}

/* Match the service-data AD structures of the formats we decode: the
 * content starts with the 16-bit UUID, little-endian. */
static int bz_monitor_patterns(sd_bus *bus, const char *path, const char *iface,
			       const char *prop, sd_bus_message *reply, void *user,
			       sd_bus_error *err)
{
	(void)bus, (void)path, (void)iface, (void)prop, (void)user, (void)err;
	static const uint16_t uuids[] = {BLE_UUID_BTHOME, BLE_UUID_MIBEACON, BLE_UUID_ENV};
	int r = sd_bus_message_open_container(reply, 'a', "(yyay)");
	for (size_t i = 0; r >= 0 && i < sizeof(uuids) / sizeof(uuids[0]); i++) {
		const uint8_t content[2] = {(uint8_t)uuids[i], (uint8_t)(uuids[i] >> 8)};
		r = sd_bus_message_open_container(reply, 'r', "yyay");
		if (r >= 0)
			r = sd_bus_message_append(reply, "yy", 0, 0x16);
		if (r >= 0)
			r = sd_bus_message_append_array(reply, 'y', content, sizeof(content));
		if (r >= 0)
			r = sd_bus_message_close_container(reply);
	}
	return r < 0 ? r : sd_bus_message_close_container(reply);
}

static const sd_bus_vtable bz_monitor_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Release", "", "", bz_monitor_call, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Activate", "", "", bz_monitor_call, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("DeviceFound", "o", "", bz_monitor_call, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("DeviceLost", "o", "", bz_monitor_call, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Type", "s", bz_monitor_type, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Patterns", "a(yyay)", bz_monitor_patterns, 0,
			SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_VTABLE_END,
};

/* ---- the connection ------------------------------------------------------------------- */

static int bz_match(struct bluez *b, const char *rule, sd_bus_message_handler_t fn)
{
	return sd_bus_add_match_async(b->bus, NULL, rule, fn, NULL, b);
}

static int bz_subscribe(struct bluez *b)
{
	char rule[300];
	int r = bz_match(b,
			 "type='signal',sender='org.bluez',interface='" IFACE_OM
			 "',member='InterfacesAdded'",
			 bz_on_added);
	if (r >= 0)
		r = bz_match(b,
			     "type='signal',sender='org.bluez',interface='" IFACE_OM
			     "',member='InterfacesRemoved'",
			     bz_on_removed);
	snprintf(rule, sizeof(rule),
		 "type='signal',sender='org.bluez',interface='" IFACE_PROPS
		 "',member='PropertiesChanged',path_namespace='%s'",
		 b->adapter_path);
	if (r >= 0)
		r = bz_match(b, rule, bz_on_props);
	if (r >= 0)
		r = bz_match(b,
			     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
			     "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
			     "arg0='org.bluez'",
			     bz_on_owner);
	if (r >= 0 && !b->env.active)
		r = sd_bus_add_object_manager(b->bus, NULL, APP_PATH);
	if (r >= 0 && !b->env.active)
		r = sd_bus_add_object_vtable(b->bus, NULL, MONITOR_PATH, IFACE_MONITOR,
					     bz_monitor_vtable, b);
	return r;
}

static int bz_new_bus(struct bluez *b)
{
	sd_bus *bus = NULL;
	int r;
	if (!b->env.dbus_address) {
		r = sd_bus_open_system(&bus);
	} else if ((r = sd_bus_new(&bus)) >= 0) {
		if ((r = sd_bus_set_address(bus, b->env.dbus_address)) >= 0 &&
		    (r = sd_bus_set_bus_client(bus, 1)) >= 0)
			r = sd_bus_start(bus);
	}
	if (r < 0) {
		sd_bus_unref(bus);
		return r;
	}
	sd_bus_set_description(bus, "hearth-ble");
	b->bus = bus;
	return 0;
}

static void bz_drop_bus(struct bluez *b)
{
	if (b->watch)
		b->env.host->fd_unwatch(b->env.ctx, b->watch);
	b->watch = NULL;
	if (b->bus) {
		/* Closing the connection ends our discovery session and removes
		 * the monitor in bluetoothd. */
		sd_bus_close(b->bus);
		sd_bus_unref(b->bus);
	}
	b->bus = NULL;
	b->present = b->armed = b->arming = false;
}

static void bz_on_retry(void *user);

static void bz_retry(struct bluez *b, uint64_t ms)
{
	int r = b->retry_timer ? b->env.host->timer_again(b->env.ctx, b->retry_timer, ms, 0)
			       : b->env.host->timer_start(b->env.ctx, ms, 0, bz_on_retry, b,
							  &b->retry_timer);
	if (r)
		bz_log(b, HEARTH_LOG_ERROR, "no timer (%s): will not retry", strerror(-r));
}

static void bz_reconnect_later(struct bluez *b, const char *why, int err)
{
	bz_log(b, HEARTH_LOG_WARNING, "%s (%s); reconnecting in %llu ms", why, strerror(err),
	       (unsigned long long)b->backoff_ms);
	bz_drop_bus(b);
	bz_retry(b, b->backoff_ms);
	b->backoff_ms = b->backoff_ms * 2 > BZ_BACKOFF_MAX_MS ? BZ_BACKOFF_MAX_MS : b->backoff_ms * 2;
}

static void bz_on_io(void *user, int fd, unsigned events)
{
	(void)fd;
	(void)events;
	bz_pump(user);
}

static void bz_on_bus_timer(void *user)
{
	bz_pump(user);
}

static unsigned bz_events(struct bluez *b)
{
	int e = sd_bus_get_events(b->bus);
	unsigned ev = 0;
	if (e > 0 && (e & POLLIN))
		ev |= HEARTH_FD_READ;
	if (e > 0 && (e & POLLOUT))
		ev |= HEARTH_FD_WRITE;
	return ev ? ev : HEARTH_FD_READ;
}

static void bz_set_bus_timer(struct bluez *b, uint64_t ms)
{
	int r = b->bus_timer ? b->env.host->timer_again(b->env.ctx, b->bus_timer, ms, 0)
			     : b->env.host->timer_start(b->env.ctx, ms, 0, bz_on_bus_timer, b,
							&b->bus_timer);
	if (r)
		bz_log(b, HEARTH_LOG_ERROR, "no timer (%s)", strerror(-r));
}

/* Arm the bus timer at sd-bus's next deadline. */
static void bz_timeout(struct bluez *b)
{
	uint64_t usec = UINT64_MAX;
	if (sd_bus_get_timeout(b->bus, &usec) < 0 || usec == UINT64_MAX)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	bz_set_bus_timer(b, usec > now ? (usec - now + 999) / 1000 : 0);
}

/* Run sd-bus until it has nothing to do (or a batch is done), then re-arm
 * fd interest and the timer. The bus is dropped only here, never inside an
 * sd-bus callback. */
static void bz_pump(struct bluez *b)
{
	if (!b->bus)
		return;
	int r = 0, i;
	for (i = 0; i < BZ_PROCESS_MAX; i++)
		if ((r = sd_bus_process(b->bus, NULL)) <= 0)
			break;
	if (r < 0 || !sd_bus_is_open(b->bus)) {
		bz_reconnect_later(b, "D-Bus connection lost", r < 0 ? -r : ECONNRESET);
		return;
	}
	int fd = sd_bus_get_fd(b->bus);
	if (!b->watch)
		r = b->env.host->fd_watch(b->env.ctx, fd, bz_events(b), bz_on_io, b, &b->watch);
	else
		r = b->env.host->fd_modify(b->env.ctx, b->watch, bz_events(b));
	if (r) {
		bz_reconnect_later(b, "cannot watch the D-Bus socket", -r);
		return;
	}
	/* A full batch: more may be queued, come back on the next loop turn. */
	if (i == BZ_PROCESS_MAX)
		bz_set_bus_timer(b, 0);
	else
		bz_timeout(b);
}

static void bz_connect(struct bluez *b)
{
	int r = bz_new_bus(b);
	if (r >= 0 && (r = bz_subscribe(b)) >= 0) {
		bz_get_objects(b);
		bz_pump(b);
		return;
	}
	bz_reconnect_later(b, "cannot connect to D-Bus", -r);
}

static void bz_on_retry(void *user)
{
	struct bluez *b = user;
	if (!b->bus) {
		bz_connect(b);
		return;
	}
	bz_arm(b);
	bz_pump(b);
}

/* ---- the source ------------------------------------------------------------------------ */

static int bz_open(const struct ble_source_env *env, const char *arg, struct ble_source **out)
{
	(void)arg;
	const char *a = env->adapter;
	if (!a || !*a || strlen(a) > 32 || strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
						     strlen(a)) {
		env->host->log(env->ctx, HEARTH_LOG_ERROR, "adapter: '%s' is not an adapter name",
			       a ? a : "");
		return -EINVAL;
	}
	struct bluez *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->base.ops = &ble_source_bluez;
	b->env = *env;
	b->backoff_ms = BZ_BACKOFF_MIN_MS;
	snprintf(b->adapter_path, sizeof(b->adapter_path), "/org/bluez/%s", a);
	*out = &b->base;
	return 0;
}

static int bz_start(struct ble_source *src)
{
	bz_connect((struct bluez *)src);
	return 0;
}

static void bz_close(struct ble_source *src)
{
	struct bluez *b = (struct bluez *)src;
	if (!b)
		return;
	bz_drop_bus(b);
	b->env.host->timer_stop(b->env.ctx, b->bus_timer);
	b->env.host->timer_stop(b->env.ctx, b->retry_timer);
	free(b);
}

const struct ble_source_ops ble_source_bluez = {
	.name = "bluez",
	.takes_arg = false,
	.open = bz_open,
	.start = bz_start,
	.close = bz_close,
};
