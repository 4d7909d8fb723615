/*
 * Every value the decoders produce: its decoder name (as in bthome.io and
 * the public test vectors), the state attribute it becomes, its unit, and
 * what it means. Also the decoded-packet helpers and the service-UUID
 * dispatch table.
 *
 * Attribute names follow zigbee2mqtt where it has one (co2, voc,
 * water_leak); a binary that shares its name with a sensor gets its own
 * (battery_low beside battery, power_on beside power).
 */
#include "ble.h"

#include <errno.h>
#include <string.h>

#define S(n, u, d) {n, NULL, BLE_SENSOR, u, d}
#define SA(n, a, u, d) {n, a, BLE_SENSOR, u, d}
#define T(n, d) {n, NULL, BLE_TEXT, NULL, d}
#define B(n, d) {n, NULL, BLE_BINARY, NULL, d}
#define BA(n, a, d) {n, a, BLE_BINARY, NULL, d}
#define E(n, d) {n, "action", BLE_EVENT, NULL, d}

const struct ble_field ble_fields[F_COUNT_] = {
	[F_PACKET_ID] = SA("packet_id", "", NULL, "Packet id (de-duplication)"),
	[F_BATTERY] = S("battery", "%", "Remaining battery"),
	[F_TEMPERATURE] = S("temperature", "°C", "Measured temperature"),
	[F_HUMIDITY] = S("humidity", "%", "Measured relative humidity"),
	[F_PRESSURE] = S("pressure", "hPa", "Air pressure"),
	[F_ILLUMINANCE] = S("illuminance", "lx", "Measured illuminance"),
	[F_MASS_KG] = S("mass", "kg", "Measured mass"),
	[F_MASS_LB] = S("mass", "lb", "Measured mass"),
	[F_DEW_POINT] = S("dew_point", "°C", "Dew point"),
	[F_COUNT] = S("count", NULL, "Counter"),
	[F_ENERGY] = S("energy", "kWh", "Energy"),
	[F_POWER] = S("power", "W", "Power"),
	[F_VOLTAGE] = S("voltage", "V", "Voltage"),
	[F_PM25] = S("pm25", "µg/m³", "Particulate matter 2.5 µm"),
	[F_PM10] = S("pm10", "µg/m³", "Particulate matter 10 µm"),
	[F_CO2] = SA("carbon_dioxide", "co2", "ppm", "Carbon dioxide"),
	[F_VOC] = SA("volatile_organic_compounds", "voc", "µg/m³", "Volatile organic compounds"),
	[F_MOISTURE] = S("moisture", "%", "Soil moisture"),
	[F_ROTATION] = S("rotation", "°", "Rotation"),
	[F_DISTANCE_MM] = S("distance", "mm", "Distance"),
	[F_DISTANCE_M] = S("distance", "m", "Distance"),
	[F_DURATION] = S("duration", "s", "Duration"),
	[F_CURRENT] = S("current", "A", "Current"),
	[F_SPEED] = S("speed", "m/s", "Speed"),
	[F_UV_INDEX] = S("uv_index", NULL, "UV index"),
	[F_VOLUME_L] = S("volume", "L", "Volume"),
	[F_VOLUME_ML] = S("volume", "mL", "Volume"),
	[F_VOLUME_FLOW_RATE] = S("volume_flow_rate", "m³/h", "Volume flow rate"),
	[F_GAS] = S("gas", "m³", "Gas consumed"),
	[F_WATER] = S("water", "L", "Water consumed"),
	[F_TIMESTAMP] = T("timestamp", "Time sent by the device (UTC)"),
	[F_ACCELERATION] = S("acceleration", "m/s²", "Acceleration"),
	[F_GYROSCOPE] = S("gyroscope", "°/s", "Angular velocity"),
	[F_TEXT] = T("text", "Text sent by the device"),
	[F_RAW] = T("raw", "Raw bytes sent by the device (hex)"),
	[F_VOLUME_STORAGE] = S("volume_storage", "L", "Stored volume"),
	[F_CONDUCTIVITY] = S("conductivity", "µS/cm", "Conductivity"),
	[F_PRECIPITATION] = S("precipitation", "mm", "Precipitation"),
	[F_DIRECTION] = S("direction", "°", "Direction"),
	[F_CHANNEL] = S("channel", NULL, "Channel"),
	[F_ROTATIONAL_SPEED] = S("rotational_speed", "rpm", "Rotational speed"),
	[F_LIGHT_LEVEL] = S("light_level", NULL, "Light level: 0 dark, 1 twilight, 2 bright"),
	[F_SETTINGS_REVISION] = S("settings_revision", NULL, "Settings revision"),
	[F_DEVICE_TYPE_ID] = S("device_type_id", NULL, "Device type id"),
	[F_FIRMWARE_VERSION] = T("firmware_version", "Firmware version"),

	[F_B_GENERIC] = B("generic", "Generic on/off"),
	[F_B_POWER] = BA("power", "power_on", "Power is on"),
	[F_B_OPENING] = B("opening", "Open"),
	[F_B_BATTERY_LOW] = BA("battery", "battery_low", "Battery is low"),
	[F_B_BATTERY_CHARGING] = B("battery_charging", "Battery is charging"),
	[F_B_CO] = B("carbon_monoxide", "Carbon monoxide detected"),
	[F_B_COLD] = B("cold", "Cold"),
	[F_B_CONNECTIVITY] = B("connectivity", "Connected"),
	[F_B_DOOR] = B("door", "Door open"),
	[F_B_GARAGE_DOOR] = B("garage_door", "Garage door open"),
	[F_B_GAS] = BA("gas", "gas_detected", "Gas detected"),
	[F_B_HEAT] = B("heat", "Hot"),
	[F_B_LIGHT] = B("light", "Light detected"),
	[F_B_LOCK] = B("lock", "Unlocked"),
	[F_B_MOISTURE] = BA("moisture", "water_leak", "Moisture or water leak detected"),
	[F_B_MOTION] = B("motion", "Motion detected"),
	[F_B_MOVING] = B("moving", "Moving"),
	[F_B_OCCUPANCY] = B("occupancy", "Occupied"),
	[F_B_PLUG] = B("plug", "Plugged in"),
	[F_B_PRESENCE] = B("presence", "Present"),
	[F_B_PROBLEM] = B("problem", "Problem"),
	[F_B_RUNNING] = B("running", "Running"),
	[F_B_SAFETY] = B("safety", "Unsafe"),
	[F_B_SMOKE] = B("smoke", "Smoke detected"),
	[F_B_SOUND] = B("sound", "Sound detected"),
	[F_B_TAMPER] = B("tamper", "Tampered"),
	[F_B_VIBRATION] = B("vibration", "Vibration detected"),
	[F_B_WINDOW] = B("window", "Window open"),

	[F_E_BUTTON] = E("button", "Button press"),
	[F_E_DIMMER] = E("dimmer", "Dimmer rotation"),
	[F_E_COMMAND] = E("command", "Command sent by the device"),

	[F_FORMALDEHYDE] = S("formaldehyde", "mg/m³", "Formaldehyde"),
	[F_CONSUMABLE] = S("consumable", "%", "Consumable left"),
	[F_NO_MOTION_TIME] = S("no_motion_time", "s", "Seconds since the last motion"),
	[F_B_SWITCH] = B("switch", "Switch is on"),
	[F_B_DOOR_LEFT_OPEN] = B("door_left_open", "Door left open"),

	[F_FRAME_COUNTER] = SA("counter", "", NULL, "Frame counter (de-duplication)"),
	[F_FLAGS] = SA("flags", "", NULL, "Flag byte"),
	[F_B_REED_SWITCH] = B("reed_switch", "Reed switch input"),
	[F_B_GPIO_TRG_OUTPUT] = B("gpio_trg_output", "Trigger output"),
	[F_B_GPIO_TRG_CONTROLLED] = B("gpio_trg_controlled", "Output controlled by the trigger"),
	[F_B_TEMP_TRIGGER] = B("temp_trigger", "Temperature trigger"),
	[F_B_HUMI_TRIGGER] = B("humi_trigger", "Humidity trigger"),

	[F_RSSI] = S("rssi", "dBm", "Received signal strength"),
	/* The capability every event field reports into. */
	[F_ACTION] = {"action", "action", BLE_EVENT, NULL, "Last button, dimmer or command event"},
};

#undef S
#undef SA
#undef T
#undef B
#undef BA
#undef E

const char *ble_field_attr(enum ble_field_id id)
{
	if ((unsigned)id >= F_COUNT_)
		return NULL;
	const struct ble_field *f = &ble_fields[id];
	if (f->attr && f->attr[0] == '\0')
		return NULL;
	return f->attr ? f->attr : f->name;
}

/* ---- decoded packets ------------------------------------------------------- */

struct ble_value *ble_reading_add(struct ble_reading *r, enum ble_field_id field)
{
	if (r->n >= BLE_VALUES_MAX)
		return NULL;
	struct ble_value *v = &r->v[r->n++];
	memset(v, 0, sizeof(*v));
	v->field = (uint16_t)field;
	return v;
}

int ble_reading_text(struct ble_reading *r, const char *s, size_t len)
{
	if (len >= sizeof(r->text) - r->text_len)
		return -ENOSPC;
	int off = (int)r->text_len;
	memcpy(r->text + off, s, len);
	r->text[off + len] = '\0';
	r->text_len += len + 1;
	return off;
}

const char *ble_value_text(const struct ble_reading *r, const struct ble_value *v)
{
	return v->text < r->text_len ? r->text + v->text : "";
}

static bool same_name(const struct ble_value *a, const struct ble_value *b)
{
	const struct ble_field *fa = &ble_fields[a->field], *fb = &ble_fields[b->field];
	bool ka = fa->kind == BLE_BINARY, kb = fb->kind == BLE_BINARY;
	bool ea = fa->kind == BLE_EVENT, eb = fb->kind == BLE_EVENT;
	return ka == kb && ea == eb && strcmp(fa->name, fb->name) == 0;
}

/* Names repeat rarely and packets are short: quadratic is fine and needs
 * no memory. */
void ble_reading_number(struct ble_reading *r)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->v[i].index)
			continue;
		size_t count = 0;
		for (size_t j = i; j < r->n; j++)
			count += same_name(&r->v[i], &r->v[j]);
		if (count < 2)
			continue;
		uint8_t next = 1;
		for (size_t j = i; j < r->n && next < 255; j++)
			if (same_name(&r->v[i], &r->v[j]))
				r->v[j].index = next++;
	}
}

/* ---- dispatch ------------------------------------------------------------------ */

static const struct {
	uint16_t uuid;
	ble_decoder_fn fn;
} decoders[] = {
	{BLE_UUID_BTHOME, bthome_decode},
	{BLE_UUID_MIBEACON, mibeacon_decode},
	{BLE_UUID_ENV, pvvx_decode},
};

ble_decoder_fn ble_decoder_for(uint16_t uuid)
{
	for (size_t i = 0; i < sizeof(decoders) / sizeof(decoders[0]); i++)
		if (decoders[i].uuid == uuid)
			return decoders[i].fn;
	return NULL;
}

const char *ble_decode_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "ok";
	case -ENOKEY:
		return "encrypted and no bind key";
	case -EBADMSG:
		return "MIC check failed";
	case -EPROTONOSUPPORT:
		return "unsupported version or variant";
	default:
		return "malformed";
	}
}

const char *ble_format_name(enum ble_format format)
{
	static const char *const names[] = {
		[BLE_FMT_NONE] = "none",
		[BLE_FMT_BTHOME] = "BTHome v2",
		[BLE_FMT_MIBEACON] = "Xiaomi MiBeacon",
		[BLE_FMT_ATC1441] = "atc1441",
		[BLE_FMT_PVVX] = "pvvx custom",
		[BLE_FMT_ATC1441_ENC] = "atc1441 encrypted",
		[BLE_FMT_PVVX_ENC] = "pvvx custom encrypted",
	};
	return (unsigned)format < sizeof(names) / sizeof(names[0]) ? names[format] : "?";
}
