/*
 * Xiaomi MiBeacon (service UUID 0xFE95), versions 2 to 5.
 *
 * Service data: frame control (2) | product id (2) | frame counter (1) |
 * [MAC (6, reversed) if FC bit 4] | [capability (1) if FC bit 5
 * [| I/O capability if capability bit 5]] | objects | [ext counter (3) |
 * MIC (4) if encrypted v4/v5]. Objects: id (2 LE) | length (1) | data.
 *
 * v4/v5 encryption: AES-128-CCM, the 16-byte bind key, AAD 0x11, 4-byte MIC,
 * nonce = MAC as in the frame (reversed) | product id | frame counter | ext
 * counter. v2/v3 "legacy" encryption: the same cipher without a usable tag,
 * a 12-byte key stretched with fixed bytes; only a clean object layout tells
 * a right key from a wrong one.
 *
 * The I/O capability field is 2 bytes in the MiBeacon v5 document but some
 * decoders skip 1; the frame itself decides: the length that makes the
 * objects (or the MIC) come out right wins.
 */
#include "ble.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define FC_ENCRYPTED 0x0008u
#define FC_MAC 0x0010u
#define FC_CAPABILITY 0x0020u
#define FC_OBJECT 0x0040u
#define FC_MESH 0x0080u
#define CAP_IO 0x20u
#define EXT_LEN 3
#define MIC_LEN 4
#define NO_MOTION_IS_MOTION_S 30 /* the Mi Home app's rule */

/* ---- the model table ------------------------------------------------------ */

#define FIELDS(...) ((const uint8_t[]){__VA_ARGS__, F_COUNT_})
#define TH FIELDS(F_TEMPERATURE, F_HUMIDITY, F_BATTERY)
#define PLANT FIELDS(F_TEMPERATURE, F_ILLUMINANCE, F_MOISTURE, F_CONDUCTIVITY, F_BATTERY)
#define MOTION FIELDS(F_B_MOTION, F_ILLUMINANCE, F_NO_MOTION_TIME, F_BATTERY)
#define MOTION_LIGHT FIELDS(F_B_MOTION, F_B_LIGHT, F_NO_MOTION_TIME, F_BATTERY)
#define DOOR FIELDS(F_B_OPENING, F_B_DOOR_LEFT_OPEN, F_BATTERY)
#define DOOR_LIGHT FIELDS(F_B_OPENING, F_B_DOOR_LEFT_OPEN, F_B_LIGHT, F_BATTERY)
#define LEAK FIELDS(F_B_MOISTURE, F_BATTERY)
#define BUTTON FIELDS(F_E_BUTTON, F_BATTERY)
#define PRESENCE FIELDS(F_B_OCCUPANCY, F_ILLUMINANCE)

static const struct mibeacon_model models[] = {
	{0x0098, "HHCCJCY01", "Xiaomi", "MiFlora plant sensor", 0, PLANT},
	{0x015d, "HHCCPOT002", "Xiaomi", "Smart flower pot", 0,
	 FIELDS(F_MOISTURE, F_CONDUCTIVITY)},
	{0x0153, "YLYK01YL", "Yeelight", "Remote control", MI_SLEEPY, BUTTON},
	{0x01aa, "LYWSDCGQ", "Xiaomi", "Temperature and humidity sensor", 0, TH},
	{0x02df, "JQJCY01YM", "Xiaomi", "Formaldehyde sensor", 0,
	 FIELDS(F_TEMPERATURE, F_HUMIDITY, F_FORMALDEHYDE, F_BATTERY)},
	{0x0347, "CGG1", "Qingping", "Temperature and humidity sensor", 0, TH},
	{0x0387, "MHO-C401", "Xiaomi", "Temperature and humidity sensor (e-ink)", 0, TH},
	{0x03b6, "YLKG07YL/YLKG08YL", "Yeelight", "Rotary dimmer", MI_SLEEPY | MI_DIMMER,
	 FIELDS(F_E_DIMMER)},
	{0x03bc, "GCLS002", "Xiaomi", "Grow Care Garden plant sensor", 0, PLANT},
	{0x03d6, "CGH1", "Qingping", "Door and window sensor", MI_SLEEPY, DOOR},
	{0x040a, "WX08ZM", "Xiaomi", "Mosquito repellent", 0,
	 FIELDS(F_B_SWITCH, F_CONSUMABLE, F_BATTERY)},
	{0x045b, "LYWSD02", "Xiaomi", "Temperature and humidity clock", 0, TH},
	{0x055b, "LYWSD03MMC", "Xiaomi", "Temperature and humidity sensor", 0, TH},
	{0x0576, "CGD1", "Qingping", "Alarm clock with thermometer", 0, TH},
	{0x066f, "CGDK2", "Qingping", "Temperature and humidity sensor", 0, TH},
	{0x06d3, "MHO-C303", "Xiaomi", "Alarm clock with thermometer", 0, TH},
	{0x07bf, "YLAI003", "Yeelight", "Wireless switch", MI_SLEEPY, BUTTON},
	{0x07f6, "MJYD02YL", "Xiaomi", "Motion-activated night light", MI_LIGHT_BIN,
	 MOTION_LIGHT},
	{0x0863, "SJWS01LM", "Xiaomi", "Flood detector", MI_SLEEPY, LEAK},
	{0x098b, "MCCGQ02HL", "Xiaomi", "Door and window sensor 2", MI_SLEEPY | MI_LIGHT_BIN,
	 DOOR_LIGHT},
	{0x0997, "JTYJGD03MI", "Xiaomi", "Smoke detector", MI_SLEEPY,
	 FIELDS(F_B_SMOKE, F_E_BUTTON, F_BATTERY)},
	{0x0a83, "CGPR1", "Qingping", "Motion and light sensor", MI_MOTION_LUX, MOTION},
	{0x0a8d, "RTCGQ02LM", "Xiaomi", "Motion sensor 2", MI_SLEEPY | MI_LIGHT_BIN,
	 FIELDS(F_B_MOTION, F_B_LIGHT, F_NO_MOTION_TIME, F_E_BUTTON, F_BATTERY)},
	{0x0b48, "CGG1", "Qingping", "Temperature and humidity sensor (encrypted)", 0, TH},
	{0x0c3c, "CGC1", "Qingping", "Alarm clock with thermometer", 0, TH},
	{0x0dfd, "K9B-3BTN", "Linptech", "Wireless switch, three buttons", MI_SLEEPY, BUTTON},
	{0x1203, "XMWSDJ04MMC", "Xiaomi", "Thermometer and hygrometer", 0, TH},
	{0x1568, "K9B-1BTN", "Linptech", "Wireless switch, one button", MI_SLEEPY, BUTTON},
	{0x1569, "K9B-2BTN", "Linptech", "Wireless switch, two buttons", MI_SLEEPY, BUTTON},
	{0x16e4, "LYWSD02MMC", "Xiaomi", "Temperature and humidity clock", 0, TH},
	{0x1889, "MS1BB(MI)", "Linptech", "Door and window sensor", MI_SLEEPY, DOOR},
	{0x1949, "XMWXKG01YL", "Xiaomi", "Wireless switch, two buttons", MI_SLEEPY, BUTTON},
	{0x2387, "XMWXKG01LM", "Xiaomi", "Wireless button", MI_SLEEPY, BUTTON},
	{0x2542, "LYWSD02MMC", "Xiaomi", "Temperature and humidity clock", 0, TH},
	{0x2832, "MJWSD05MMC", "Xiaomi", "Temperature and humidity sensor", 0, TH},
	{0x2aeb, "HS1BB(MI)", "Linptech", "Motion sensor", MI_SLEEPY, MOTION},
	{0x3531, "XMPIRO2SXS", "Xiaomi", "Motion sensor", MI_SLEEPY, MOTION},
	{0x3f0f, "RS1BB(MI)", "Linptech", "Flood and rain sensor", MI_SLEEPY, LEAK},
	{0x4683, "XMOSB01XS", "Xiaomi", "Occupancy sensor", MI_SLEEPY, PRESENCE},
	{0x4c60, "XMPIRO2GSXS", "Xiaomi", "Motion sensor", MI_SLEEPY, MOTION},
	{0x4f59, "CGDK3", "Qingping", "Temperature and humidity sensor", 0, TH},
	{0x50fb, "ES3", "Linptech", "Human presence sensor", MI_SLEEPY, PRESENCE},
	{0x520b, "KS2BB", "Linptech", "Temperature and humidity sensor with button", 0,
	 FIELDS(F_TEMPERATURE, F_HUMIDITY, F_BATTERY, F_E_BUTTON)},
	{0x55b5, "MJWSD06MMC", "Xiaomi", "Temperature and humidity sensor", 0, TH},
	{0x5bea, "MJWSD06MMC", "Xiaomi", "Temperature and humidity sensor", 0, TH},
	{0x78db, "ESM787", "Yanmi", "Temperature and humidity sensor", 0, TH},
};

#undef FIELDS
#undef TH
#undef PLANT
#undef MOTION
#undef MOTION_LIGHT
#undef DOOR
#undef DOOR_LIGHT
#undef LEAK
#undef BUTTON
#undef PRESENCE

const struct mibeacon_model *mibeacon_model_find(uint16_t product_id)
{
	size_t lo = 0, hi = sizeof(models) / sizeof(models[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (models[mid].product_id == product_id)
			return &models[mid];
		if (models[mid].product_id < product_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- objects ------------------------------------------------------------------ */

struct mi_ctx {
	struct ble_reading *r;
	const struct mibeacon_model *model;
};

static bool has_flag(const struct mi_ctx *c, unsigned flag)
{
	return c->model && (c->model->flags & flag);
}

static void num(struct mi_ctx *c, enum ble_field_id f, double x)
{
	struct ble_value *v = ble_reading_add(c->r, f);
	if (v)
		v->number = x;
}

static void bin(struct mi_ctx *c, enum ble_field_id f, bool b)
{
	struct ble_value *v = ble_reading_add(c->r, f);
	if (v)
		v->boolean = b;
}

static void event(struct mi_ctx *c, enum ble_field_id f, const char *type, uint8_t index,
		  bool has_steps, int32_t steps)
{
	struct ble_value *v = ble_reading_add(c->r, f);
	if (!v)
		return;
	v->event = type;
	v->index = index;
	v->has_steps = has_steps;
	v->steps = steps;
}

/* IEEE 754 single, LE, rounded to 2 decimals; NaN and infinities dropped. */
static void num_f32(struct mi_ctx *c, enum ble_field_id f, const uint8_t *p)
{
	uint32_t u = ble_le32(p);
	float x;
	memcpy(&x, &u, sizeof(x));
	if (isfinite(x) && fabsf(x) < 1e9f)
		num(c, f, round((double)x * 100.0) / 100.0);
}

static void no_motion(struct mi_ctx *c, uint32_t seconds)
{
	bin(c, F_B_MOTION, seconds <= NO_MOTION_IS_MOTION_S);
	num(c, F_NO_MOTION_TIME, seconds);
}

static void o_motion_light(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	uint32_t lux = ble_le24(p);
	bin(c, F_B_MOTION, true);
	if (has_flag(c, MI_LIGHT_BIN))
		bin(c, F_B_LIGHT, lux >= 100);
	else
		num(c, F_ILLUMINANCE, lux);
}

static void o_dimmer(struct mi_ctx *c, const uint8_t *p)
{
	uint8_t type = p[0], value = p[1], press = p[2];
	if (press == 3 && type <= 1)
		event(c, F_E_DIMMER, type ? "long_press" : "press", 0, true, value);
	else if (press == 4 && type == 0)
		event(c, F_E_DIMMER, value <= 127 ? "rotate_right" : "rotate_left", 0, true,
		      value <= 127 ? value : 256 - value);
	else if (press == 4)
		event(c, F_E_DIMMER, type <= 127 ? "rotate_right" : "rotate_left", 0, true,
		      type <= 127 ? type : 256 - type);
}

static void o_button(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	static const char *const press[] = {"press", "double_press", "long_press", "triple_press"};
	if (has_flag(c, MI_DIMMER)) {
		o_dimmer(c, p);
		return;
	}
	if (p[2] < 4)
		event(c, F_E_BUTTON, press[p[2]], 0, false, 0);
}

static void o_temperature(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	num(c, F_TEMPERATURE, (int16_t)ble_le16(p) / 10.0);
}

static void o_humidity(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	num(c, F_HUMIDITY, ble_le16(p) / 10.0);
}

static void o_illuminance(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	uint32_t lux = ble_le24(p);
	if (has_flag(c, MI_LIGHT_BIN))
		bin(c, F_B_LIGHT, lux >= 100);
	else
		num(c, F_ILLUMINANCE, lux);
}

static void o_temp_hum(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	o_temperature(c, p, n);
	o_humidity(c, p + 2, n);
}

static void o_u8(struct mi_ctx *c, enum ble_field_id f, const uint8_t *p)
{
	num(c, f, p[0]);
}

static void o_moisture(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	o_u8(c, F_MOISTURE, p);
}

static void o_battery(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	o_u8(c, F_BATTERY, p);
}

static void o_humidity_u8(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	o_u8(c, F_HUMIDITY, p);
}

static void o_consumable(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	o_u8(c, F_CONSUMABLE, p);
}

static void o_conductivity(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	num(c, F_CONDUCTIVITY, ble_le16(p));
}

static void o_formaldehyde(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	num(c, F_FORMALDEHYDE, ble_le16(p) / 100.0);
}

static void o_switch(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_SWITCH, p[0] != 0);
}

static void o_leak(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_MOISTURE, p[0] != 0);
}

static void o_smoke(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_SMOKE, p[0] != 0);
}

static void o_light(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_LIGHT, p[0] != 0);
}

static void o_no_motion32(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	no_motion(c, ble_le32(p));
}

static void o_no_motion16(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	no_motion(c, ble_le16(p));
}

static void o_motion_timeout(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_MOTION, false);
	num(c, F_NO_MOTION_TIME, ble_le32(p));
}

/* 0x1019: 0 open, 1 closed, 2 left open (not closed in time); 3 (device
 * reset) and 0xFF (abnormal) say nothing about the door. */
static void o_door(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	if (p[0] > 2)
		return;
	bin(c, F_B_OPENING, p[0] != 1);
	bin(c, F_B_DOOR_LEFT_OPEN, p[0] == 2);
}

/* 0x4804 / 0x4A12: 1 open, 2 closed. */
static void o_opening(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	if (p[0] == 1)
		bin(c, F_B_OPENING, true);
	else if (p[0] == 2) {
		bin(c, F_B_OPENING, false);
		bin(c, F_B_DOOR_LEFT_OPEN, false);
	}
}

static void o_left_open(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	if (p[0] == 1) {
		bin(c, F_B_OPENING, true);
		bin(c, F_B_DOOR_LEFT_OPEN, true);
	}
}

static void o_temperature_f32(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	num_f32(c, F_TEMPERATURE, p);
}

static void o_humidity_f32(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	num_f32(c, F_HUMIDITY, p);
}

static void o_illuminance_f32(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	num_f32(c, F_ILLUMINANCE, p);
}

static void o_motion_lux_f32(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_MOTION, true);
	num_f32(c, F_ILLUMINANCE, p);
}

static void o_occupancy(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_OCCUPANCY, p[0] != 0);
}

static void o_battery_low(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	bin(c, F_B_BATTERY_LOW, p[0] != 0);
}

static void o_click(struct mi_ctx *c, const uint8_t *p, const char *type)
{
	/* 1 left, 2 right, 3 both: one event per button pressed */
	if (p[0] == 0 || p[0] > 3) {
		event(c, F_E_BUTTON, type, 0, false, 0);
		return;
	}
	for (uint8_t b = 0; b < 2; b++)
		if (p[0] & (1u << b))
			event(c, F_E_BUTTON, type, (uint8_t)(b + 1), false, 0);
}

static void o_toggle(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	if (p[0] == 1)
		event(c, F_E_BUTTON, "press", 0, false, 0);
}

static void o_single(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	o_click(c, p, "press");
}

static void o_double(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	o_click(c, p, "double_press");
}

static void o_long(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	(void)n;
	o_click(c, p, "long_press");
}

struct mi_obj {
	uint16_t id;
	uint8_t len; /* bytes the object must carry */
	void (*fn)(struct mi_ctx *c, const uint8_t *p, size_t n);
};

/* Sorted by id. */
static const struct mi_obj mi_objs[] = {
	{0x000f, 3, o_motion_light},   {0x1001, 3, o_button},	      {0x1004, 2, o_temperature},
	{0x1006, 2, o_humidity},       {0x1007, 3, o_illuminance},    {0x1008, 1, o_moisture},
	{0x1009, 2, o_conductivity},   {0x100a, 1, o_battery},	      {0x100d, 4, o_temp_hum},
	{0x1010, 2, o_formaldehyde},   {0x1012, 1, o_switch},	      {0x1013, 1, o_consumable},
	{0x1014, 1, o_leak},	       {0x1015, 1, o_smoke},	      {0x1017, 4, o_no_motion32},
	{0x1018, 1, o_light},	       {0x1019, 1, o_door},	      {0x101b, 4, o_motion_timeout},
	{0x4801, 4, o_temperature_f32}, {0x4802, 1, o_humidity_u8},   {0x4803, 1, o_battery},
	{0x4804, 1, o_opening},	       {0x4805, 4, o_illuminance_f32}, {0x4806, 1, o_leak},
	{0x4818, 2, o_no_motion16},    {0x484e, 1, o_occupancy},      {0x4a01, 1, o_battery_low},
	{0x4a08, 4, o_motion_lux_f32}, {0x4a12, 1, o_opening},	      {0x4a13, 1, o_toggle},
	{0x4a1a, 1, o_left_open},      {0x4c01, 4, o_temperature_f32}, {0x4c02, 1, o_humidity_u8},
	{0x4c03, 1, o_battery},	       {0x4c08, 4, o_humidity_f32},   {0x4e0c, 1, o_single},
	{0x4e0d, 1, o_double},	       {0x4e0e, 1, o_long},
};

static const struct mi_obj *mi_obj_find(uint16_t id)
{
	size_t lo = 0, hi = sizeof(mi_objs) / sizeof(mi_objs[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (mi_objs[mid].id == id)
			return &mi_objs[mid];
		if (mi_objs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* True if p[0..n) is a whole number of objects, nothing left over. */
static bool objects_fit(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (n - i >= 3) {
		size_t len = p[i + 2];
		if (len > n - i - 3)
			return false;
		i += 3 + len;
	}
	return i == n && n > 0;
}

static void mi_parse_objects(struct mi_ctx *c, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (n - i >= 3) {
		uint16_t id = ble_le16(p + i);
		size_t len = p[i + 2];
		if (len > n - i - 3) {
			c->r->truncated = true;
			c->r->truncated_id = id;
			return;
		}
		const struct mi_obj *o = mi_obj_find(id);
		/* Objects carry their length, so an unknown one is skipped. */
		if (!o) {
			if (!c->r->has_unknown) {
				c->r->has_unknown = true;
				c->r->unknown_id = id;
			}
		} else if (len >= o->len) {
			o->fn(c, p + i + 3, len);
		}
		i += 3 + len;
	}
}

/* ---- frames ---------------------------------------------------------------------- */

struct mi_frame {
	uint16_t fc;
	const uint8_t *sd;
	size_t len;
	size_t off;	   /* where the objects (or ciphertext) start */
	uint8_t mac_rev[6]; /* as in the frame: reversed */
	bool io_field;	   /* a capability I/O field follows: its length is unsure */
};

static int mi_header(struct mi_frame *f, struct ble_reading *r, const uint8_t *mac)
{
	if (f->len < 5)
		return -EINVAL;
	f->fc = ble_le16(f->sd);
	r->version = (uint8_t)(f->fc >> 12);
	r->product_id = ble_le16(f->sd + 2);
	r->model = mibeacon_model_find(r->product_id);
	r->has_counter8 = true;
	r->counter8 = f->sd[4];
	r->encrypted = f->fc & FC_ENCRYPTED;
	if (r->version < 2 || r->version > 5 || (f->fc & FC_MESH))
		return -EPROTONOSUPPORT;
	f->off = 5;
	if (f->fc & FC_MAC) {
		if (f->len < f->off + 6)
			return -EINVAL;
		memcpy(f->mac_rev, f->sd + f->off, 6);
		for (int i = 0; i < 6; i++)
			r->frame_mac[i] = f->mac_rev[5 - i];
		r->has_frame_mac = true;
		f->off += 6;
	} else if (mac) {
		for (int i = 0; i < 6; i++)
			f->mac_rev[i] = mac[5 - i];
	} else if (r->encrypted) {
		return -EINVAL; /* no MAC for the nonce */
	}
	if (f->fc & FC_CAPABILITY) {
		if (f->len < f->off + 1)
			return -EINVAL;
		f->io_field = f->sd[f->off] & CAP_IO;
		f->off += 1;
	}
	return 0;
}

/* v4/v5: objects at sd[off .. len-7), then ext counter and MIC. */
static int decrypt_v45(const struct mi_frame *f, struct ble_reading *r, size_t off, const uint8_t *key)
{
	if (f->len < off + EXT_LEN + MIC_LEN + 1)
		return -EINVAL;
	size_t ct_len = f->len - off - EXT_LEN - MIC_LEN;
	const uint8_t *ext = f->sd + f->len - EXT_LEN - MIC_LEN;
	uint8_t nonce[12];
	memcpy(nonce, f->mac_rev, 6);
	memcpy(nonce + 6, f->sd + 2, 3); /* product id, frame counter */
	memcpy(nonce + 9, ext, EXT_LEN);
	static const uint8_t aad = 0x11;
	int rc = ble_ccm_decrypt(key, nonce, sizeof(nonce), &aad, 1, f->sd + off, ct_len,
				 ext + EXT_LEN, MIC_LEN, r->plaintext);
	if (rc)
		return rc;
	r->plaintext_len = ct_len;
	r->has_counter32 = true;
	r->counter32 = f->sd[4] | ble_le24(ext) << 8;
	return 0;
}

/* v2/v3: objects at sd[off .. len-4), then 3 counter bytes and one more. */
static int decrypt_legacy(const struct mi_frame *f, struct ble_reading *r, size_t off,
			  const uint8_t *key)
{
	if (f->len < off + 4 + 3)
		return -EINVAL;
	size_t ct_len = f->len - off - 4;
	uint8_t full[BLE_KEY_LEN], nonce[13];
	memcpy(full, key, 6);
	memcpy(full + 6, (const uint8_t[]){0x8d, 0x3d, 0x3c, 0x97}, 4);
	memcpy(full + 10, key + 6, 6);
	memcpy(nonce, f->sd, 5);
	memcpy(nonce + 5, f->sd + f->len - 4, 3);
	memcpy(nonce + 8, f->mac_rev, 5);
	int rc = ble_ccm_ctr(full, nonce, f->sd + off, ct_len, r->plaintext);
	memset(full, 0, sizeof(full));
	if (rc)
		return rc;
	/* No tag to check: a wrong key shows as objects that do not fit. */
	if (!objects_fit(r->plaintext, ct_len)) {
		memset(r->plaintext, 0, ct_len);
		return -EBADMSG;
	}
	r->plaintext_len = ct_len;
	return 0;
}

static int decrypt_at(const struct mi_frame *f, struct ble_reading *r, size_t off, const uint8_t *key,
		      size_t key_len)
{
	if (r->version >= 4)
		return key_len == BLE_KEY_LEN ? decrypt_v45(f, r, off, key) : -ENOKEY;
	return key_len == BLE_LEGACY_KEY_LEN ? decrypt_legacy(f, r, off, key) : -ENOKEY;
}

/* Try the I/O capability field as 2 bytes (the spec) then as 1. */
static int decrypt_frame(struct mi_frame *f, struct ble_reading *r, const uint8_t *key,
			 size_t key_len)
{
	if (!key)
		return -ENOKEY;
	if (!f->io_field)
		return decrypt_at(f, r, f->off, key, key_len);
	int rc = decrypt_at(f, r, f->off + 2, key, key_len);
	if (rc == -EBADMSG || rc == -EINVAL)
		rc = decrypt_at(f, r, f->off + 1, key, key_len);
	return rc;
}

/* How well p[0..n) reads as objects: -1 if they do not fit, else how many
 * have ids this decoder knows. */
static int objects_score(const uint8_t *p, size_t n)
{
	if (!objects_fit(p, n))
		return -1;
	int known = 0;
	for (size_t i = 0; i < n; i += 3u + p[i + 2])
		known += mi_obj_find(ble_le16(p + i)) != NULL;
	return known;
}

/* Where plain objects start: after an I/O field of 2 bytes (the spec) or
 * 1, whichever makes more sense of the objects; the spec wins a tie. */
static size_t plain_start(const struct mi_frame *f)
{
	if (!f->io_field)
		return f->off;
	int two = f->len >= f->off + 2 ? objects_score(f->sd + f->off + 2, f->len - f->off - 2) : -1;
	int one = f->len >= f->off + 1 ? objects_score(f->sd + f->off + 1, f->len - f->off - 1) : -1;
	return one > two ? f->off + 1 : f->off + 2;
}

int mibeacon_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		    size_t key_len, struct ble_reading *out)
{
	memset(out, 0, sizeof(*out));
	out->format = BLE_FMT_MIBEACON;
	struct mi_frame f = {.sd = sd, .len = sd ? len : 0};
	int rc = mi_header(&f, out, mac);
	if (rc)
		return rc;
	struct mi_ctx c = {.r = out, .model = out->model};
	if (!(f.fc & FC_OBJECT))
		return 0; /* an identity frame: model, no values */
	if (out->encrypted) {
		if ((rc = decrypt_frame(&f, out, key, key_len)))
			return rc;
		mi_parse_objects(&c, out->plaintext, out->plaintext_len);
	} else {
		size_t start = plain_start(&f);
		if (start > len)
			return -EINVAL;
		mi_parse_objects(&c, sd + start, len - start);
	}
	/* Unlike BTHome, a repeated MiBeacon property is the same property
	 * said twice: no _1/_2 numbering, the receiver keeps the last. */
	return 0;
}
