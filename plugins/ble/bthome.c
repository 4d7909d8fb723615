/*
 * BTHome v2 (service UUID 0xFCD2, https://bthome.io/format).
 *
 * Service data: device info (1) | [MAC (6, reversed) if bit 1] | objects,
 * or, encrypted: device info | [MAC] | ciphertext | counter (4 LE) | MIC (4).
 * An object is an id (1) and a value whose size the id fixes; text, raw and
 * command objects carry their own length. A receiver stops at the first id
 * it does not know, since it cannot know that object's size.
 *
 * Where implementations and the spec differ, this follows what devices
 * send (see PROTOCOLS.md): device-info bit 1 ("reserved" on bthome.io) means
 * a reversed MAC follows and that MAC goes into the nonce; the nonce takes
 * the MAC in display order; the counter is four opaque LE bytes.
 */
#include "ble.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEVINFO_ENCRYPTED 0x01u
#define DEVINFO_MAC 0x02u
#define DEVINFO_TRIGGER 0x04u
#define BTHOME_VERSION 2
#define COUNTER_LEN 4
#define MIC_LEN 4

enum bt_how {
	BT_UNKNOWN = 0,
	BT_NUM,	 /* integer * mul / div */
	BT_BIN,	 /* 0/1 */
	BT_TEXT,	 /* len | UTF-8 */
	BT_RAW,	 /* len | bytes, reported as hex */
	BT_TIME,	 /* u32 seconds since the epoch, UTC */
	BT_FW,	 /* firmware version, bytes reversed: 4 or 3 parts */
	BT_BUTTON,	 /* event: one byte */
	BT_DIMMER,	 /* event: direction, steps */
	BT_COMMAND, /* event: len (low 5 bits: #args) | opcode | args */
};

struct bt_obj {
	uint8_t how;
	uint8_t field;
	uint8_t size; /* value bytes; 0 for the length-prefixed kinds */
	bool is_signed;
	uint16_t mul;
	uint32_t div;
};

#define N(f, sz, sg, m, d) {BT_NUM, f, sz, sg, m, d}
#define U(f, sz, d) N(f, sz, false, 1, d)
#define I(f, sz, d) N(f, sz, true, 1, d)
#define BN(f) {BT_BIN, f, 1, false, 1, 1}

/* Indexed by object id; .how 0 is an id this receiver does not know. */
static const struct bt_obj bt_objs[256] = {
	[0x00] = U(F_PACKET_ID, 1, 1),
	[0x01] = U(F_BATTERY, 1, 1),
	[0x02] = I(F_TEMPERATURE, 2, 100),
	[0x03] = U(F_HUMIDITY, 2, 100),
	[0x04] = U(F_PRESSURE, 3, 100),
	[0x05] = U(F_ILLUMINANCE, 3, 100),
	[0x06] = U(F_MASS_KG, 2, 100),
	[0x07] = U(F_MASS_LB, 2, 100),
	[0x08] = I(F_DEW_POINT, 2, 100),
	[0x09] = U(F_COUNT, 1, 1),
	[0x0a] = U(F_ENERGY, 3, 1000),
	[0x0b] = U(F_POWER, 3, 100),
	[0x0c] = U(F_VOLTAGE, 2, 1000),
	[0x0d] = U(F_PM25, 2, 1),
	[0x0e] = U(F_PM10, 2, 1),
	[0x0f] = BN(F_B_GENERIC),
	[0x10] = BN(F_B_POWER),
	[0x11] = BN(F_B_OPENING),
	[0x12] = U(F_CO2, 2, 1),
	[0x13] = U(F_VOC, 2, 1),
	[0x14] = U(F_MOISTURE, 2, 100),
	[0x15] = BN(F_B_BATTERY_LOW),
	[0x16] = BN(F_B_BATTERY_CHARGING),
	[0x17] = BN(F_B_CO),
	[0x18] = BN(F_B_COLD),
	[0x19] = BN(F_B_CONNECTIVITY),
	[0x1a] = BN(F_B_DOOR),
	[0x1b] = BN(F_B_GARAGE_DOOR),
	[0x1c] = BN(F_B_GAS),
	[0x1d] = BN(F_B_HEAT),
	[0x1e] = BN(F_B_LIGHT),
	[0x1f] = BN(F_B_LOCK),
	[0x20] = BN(F_B_MOISTURE),
	[0x21] = BN(F_B_MOTION),
	[0x22] = BN(F_B_MOVING),
	[0x23] = BN(F_B_OCCUPANCY),
	[0x24] = BN(F_B_PLUG),
	[0x25] = BN(F_B_PRESENCE),
	[0x26] = BN(F_B_PROBLEM),
	[0x27] = BN(F_B_RUNNING),
	[0x28] = BN(F_B_SAFETY),
	[0x29] = BN(F_B_SMOKE),
	[0x2a] = BN(F_B_SOUND),
	[0x2b] = BN(F_B_TAMPER),
	[0x2c] = BN(F_B_VIBRATION),
	[0x2d] = BN(F_B_WINDOW),
	[0x2e] = U(F_HUMIDITY, 1, 1),
	[0x2f] = U(F_MOISTURE, 1, 1),
	[0x3a] = {BT_BUTTON, F_E_BUTTON, 1, false, 1, 1},
	[0x3b] = {BT_COMMAND, F_E_COMMAND, 0, false, 1, 1},
	[0x3c] = {BT_DIMMER, F_E_DIMMER, 2, false, 1, 1},
	[0x3d] = U(F_COUNT, 2, 1),
	[0x3e] = U(F_COUNT, 4, 1),
	[0x3f] = I(F_ROTATION, 2, 10),
	[0x40] = U(F_DISTANCE_MM, 2, 1),
	[0x41] = U(F_DISTANCE_M, 2, 10),
	[0x42] = U(F_DURATION, 3, 1000),
	[0x43] = U(F_CURRENT, 2, 1000),
	[0x44] = U(F_SPEED, 2, 100),
	[0x45] = I(F_TEMPERATURE, 2, 10),
	[0x46] = U(F_UV_INDEX, 1, 10),
	[0x47] = U(F_VOLUME_L, 2, 10),
	[0x48] = U(F_VOLUME_ML, 2, 1),
	[0x49] = U(F_VOLUME_FLOW_RATE, 2, 1000),
	[0x4a] = U(F_VOLTAGE, 2, 10),
	[0x4b] = U(F_GAS, 3, 1000),
	[0x4c] = U(F_GAS, 4, 1000),
	[0x4d] = U(F_ENERGY, 4, 1000),
	[0x4e] = U(F_VOLUME_L, 4, 1000),
	[0x4f] = U(F_WATER, 4, 1000),
	[0x50] = {BT_TIME, F_TIMESTAMP, 4, false, 1, 1},
	[0x51] = U(F_ACCELERATION, 2, 1000),
	[0x52] = U(F_GYROSCOPE, 2, 1000),
	[0x53] = {BT_TEXT, F_TEXT, 0, false, 1, 1},
	[0x54] = {BT_RAW, F_RAW, 0, false, 1, 1},
	[0x55] = U(F_VOLUME_STORAGE, 4, 1000),
	[0x56] = U(F_CONDUCTIVITY, 2, 1),
	[0x57] = I(F_TEMPERATURE, 1, 1),
	[0x58] = N(F_TEMPERATURE, 1, true, 35, 100),
	[0x59] = I(F_COUNT, 1, 1),
	[0x5a] = I(F_COUNT, 2, 1),
	[0x5b] = I(F_COUNT, 4, 1),
	[0x5c] = I(F_POWER, 4, 100),
	[0x5d] = I(F_CURRENT, 2, 1000),
	[0x5e] = U(F_DIRECTION, 2, 100),
	[0x5f] = U(F_PRECIPITATION, 2, 10),
	[0x60] = U(F_CHANNEL, 1, 1),
	[0x61] = U(F_ROTATIONAL_SPEED, 2, 1),
	[0x62] = I(F_SPEED, 4, 1000000),
	[0x63] = I(F_ACCELERATION, 4, 1000000),
	[0x64] = U(F_LIGHT_LEVEL, 1, 1),
	[0x65] = U(F_SETTINGS_REVISION, 1, 1),
	[0xf0] = U(F_DEVICE_TYPE_ID, 2, 1),
	[0xf1] = {BT_FW, F_FIRMWARE_VERSION, 4, false, 1, 1},
	[0xf2] = {BT_FW, F_FIRMWARE_VERSION, 3, false, 1, 1},
};

#undef N
#undef U
#undef I
#undef BN

/* Button event values; anything else (0xFE from old Shelly firmware) is no
 * event, but still takes its place in the numbering. */
static const char *button_event(uint8_t b)
{
	static const char *const events[] = {
		NULL, "press", "double_press", "triple_press", "long_press",
		"long_double_press", "long_triple_press",
	};
	if (b < sizeof(events) / sizeof(events[0]))
		return events[b];
	return b == 0x80 ? "hold_press" : NULL;
}

static const char *command_event(uint8_t opcode)
{
	static const char *const events[] = {"off", "on", "toggle", "step_up", "step_down"};
	return opcode < sizeof(events) / sizeof(events[0]) ? events[opcode] : NULL;
}

static int64_t read_int(const uint8_t *p, size_t size, bool is_signed)
{
	uint64_t u = 0;
	for (size_t i = 0; i < size; i++)
		u |= (uint64_t)p[i] << (8 * i);
	if (is_signed && size < 8 && (u >> (8 * size - 1)) & 1)
		u |= ~0ull << (8 * size);
	return (int64_t)u;
}

static int put_text(struct ble_reading *r, const struct bt_obj *o, const char *s, size_t len)
{
	int off = ble_reading_text(r, s, len);
	struct ble_value *v = off >= 0 ? ble_reading_add(r, o->field) : NULL;
	if (!v)
		return -ENOSPC;
	v->text = (uint16_t)off;
	return 0;
}

static int put_time(struct ble_reading *r, const struct bt_obj *o, const uint8_t *p)
{
	time_t t = (time_t)ble_le32(p);
	struct tm tm;
	char buf[40];
	if (!gmtime_r(&t, &tm))
		return 0;
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
	return put_text(r, o, buf, n);
}

static int put_firmware(struct ble_reading *r, const struct bt_obj *o, const uint8_t *p)
{
	char buf[20];
	int n = o->size == 4 ? snprintf(buf, sizeof(buf), "%u.%u.%u.%u", p[3], p[2], p[1], p[0])
			     : snprintf(buf, sizeof(buf), "%u.%u.%u", p[2], p[1], p[0]);
	return put_text(r, o, buf, (size_t)n);
}

static int put_raw(struct ble_reading *r, const struct bt_obj *o, const uint8_t *p, size_t len)
{
	char hex[2 * 255 + 1];
	ble_hex_encode(p, len, hex);
	return put_text(r, o, hex, 2 * len);
}

static struct ble_value *put_event(struct ble_reading *r, const struct bt_obj *o, const char *event)
{
	struct ble_value *v = ble_reading_add(r, o->field);
	if (v)
		v->event = event;
	return v;
}

static int put_dimmer(struct ble_reading *r, const struct bt_obj *o, const uint8_t *p)
{
	static const char *const dir[] = {NULL, "rotate_left", "rotate_right"};
	struct ble_value *v = put_event(r, o, p[0] < 3 ? dir[p[0]] : NULL);
	if (!v)
		return -ENOSPC;
	if (v->event) {
		v->has_steps = true;
		v->steps = p[1];
	}
	return 0;
}

/* p: len | opcode | args. */
static int put_command(struct ble_reading *r, const struct bt_obj *o, const uint8_t *p)
{
	size_t n_args = p[0] & 0x1fu;
	struct ble_value *v = put_event(r, o, command_event(p[1]));
	if (!v)
		return -ENOSPC;
	if (v->event && n_args >= 1 && (p[1] == 3 || p[1] == 4)) {
		v->has_steps = true;
		v->steps = p[2];
	}
	return 0;
}

static int put_number(struct ble_reading *r, const struct bt_obj *o, const uint8_t *p)
{
	int64_t raw = read_int(p, o->size, o->is_signed);
	struct ble_value *v = ble_reading_add(r, o->field);
	if (!v)
		return -ENOSPC;
	/* Divide by the power of ten rather than multiply by 0.01 and so on:
	 * 2506 / 100.0 is the double nearest 25.06, 2506 * 0.01 is not. */
	v->number = (double)(raw * o->mul) / (double)o->div;
	if (o->field == F_PACKET_ID && !r->has_counter8) {
		r->has_counter8 = true;
		r->counter8 = (uint8_t)raw;
	}
	return 0;
}

/* The value of one object whose bytes p[0..size) are all present. */
static int put_object(struct ble_reading *r, const struct bt_obj *o, const uint8_t *p, size_t size)
{
	switch (o->how) {
	case BT_NUM:
		return put_number(r, o, p);
	case BT_BIN: {
		struct ble_value *v = ble_reading_add(r, o->field);
		if (!v)
			return -ENOSPC;
		v->boolean = p[0] != 0;
		return 0;
	}
	case BT_TEXT:
		/* Text that is not UTF-8 is dropped; the objects after it stand. */
		if (!ble_utf8_valid(p + 1, size - 1))
			return 0;
		return put_text(r, o, (const char *)p + 1, size - 1);
	case BT_RAW:
		return put_raw(r, o, p + 1, size - 1);
	case BT_TIME:
		return put_time(r, o, p);
	case BT_FW:
		return put_firmware(r, o, p);
	case BT_BUTTON:
		return put_event(r, o, button_event(p[0])) ? 0 : -ENOSPC;
	case BT_DIMMER:
		return put_dimmer(r, o, p);
	case BT_COMMAND:
		return put_command(r, o, p);
	default:
		return 0;
	}
}

/* Bytes of the value of o at p (n bytes left), or 0 if they do not fit. */
static size_t object_size(const struct bt_obj *o, const uint8_t *p, size_t n)
{
	size_t size = o->size;
	if (size == 0) {
		if (n < 1)
			return 0;
		size = o->how == BT_COMMAND ? 2u + (p[0] & 0x1fu) : 1u + p[0];
	}
	return size <= n ? size : 0;
}

static void parse_objects(struct ble_reading *r, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t id = p[i];
		const struct bt_obj *o = &bt_objs[id];
		if (o->how == BT_UNKNOWN) {
			r->stopped_unknown = r->has_unknown = true;
			r->unknown_id = id;
			return;
		}
		size_t size = object_size(o, p + i + 1, n - i - 1);
		if (size == 0) {
			r->truncated = true;
			r->truncated_id = id;
			return;
		}
		if (put_object(r, o, p + i + 1, size) == -ENOSPC) {
			r->truncated = true;
			r->truncated_id = id;
			return;
		}
		i += 1 + size;
	}
}

static int bt_decrypt(struct ble_reading *r, uint8_t devinfo, const uint8_t *mac, const uint8_t *key,
		   const uint8_t *p, size_t n)
{
	if (n < COUNTER_LEN + MIC_LEN + 1)
		return -EINVAL;
	if (!mac)
		return -EINVAL;
	size_t ct_len = n - COUNTER_LEN - MIC_LEN;
	const uint8_t *counter = p + ct_len;
	uint8_t nonce[13];
	memcpy(nonce, mac, 6);
	nonce[6] = BLE_UUID_BTHOME & 0xff;
	nonce[7] = BLE_UUID_BTHOME >> 8;
	nonce[8] = devinfo;
	memcpy(nonce + 9, counter, COUNTER_LEN);
	int rc = ble_ccm_decrypt(key, nonce, sizeof(nonce), NULL, 0, p, ct_len,
				 counter + COUNTER_LEN, MIC_LEN, r->plaintext);
	if (rc)
		return rc;
	r->plaintext_len = ct_len;
	r->has_counter32 = true;
	r->counter32 = ble_le32(counter);
	return 0;
}

int bthome_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		  size_t key_len, struct ble_reading *out)
{
	memset(out, 0, sizeof(*out));
	out->format = BLE_FMT_BTHOME;
	if (!sd || len < 1)
		return -EINVAL;
	uint8_t devinfo = sd[0];
	if (devinfo >> 5 != BTHOME_VERSION)
		return -EPROTONOSUPPORT;
	out->version = BTHOME_VERSION;
	out->encrypted = devinfo & DEVINFO_ENCRYPTED;
	out->trigger_based = devinfo & DEVINFO_TRIGGER;
	size_t off = 1;
	if (devinfo & DEVINFO_MAC) {
		if (len < off + 6)
			return -EINVAL;
		for (int i = 0; i < 6; i++)
			out->frame_mac[i] = sd[off + 5 - i];
		out->has_frame_mac = true;
		mac = out->frame_mac;
		off += 6;
	}
	const uint8_t *p = sd + off;
	size_t n = len - off;
	if (out->encrypted) {
		if (!key || key_len != BLE_KEY_LEN)
			return -ENOKEY;
		int rc = bt_decrypt(out, devinfo, mac, key, p, n);
		if (rc)
			return rc;
		p = out->plaintext;
		n = out->plaintext_len;
	}
	parse_objects(out, p, n);
	ble_reading_number(out);
	return 0;
}
