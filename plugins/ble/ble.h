/*
 * The ble plugin's shared parts.
 *
 * Layers, each in its own file:
 *   sources   bluez.c, hci.c, replay.c: where advertisements come from; each
 *             is a struct ble_source_ops and delivers struct ble_advert.
 *   parsers   ad.c (AD structures, hex, MACs, UTF-8), keys.c (bind keys),
 *             hci.c's event parser, replay.c's line parser.
 *   decoders  bthome.c, mibeacon.c, pvvx.c (+ ccm.c for AES-CCM): service
 *             data in, struct ble_reading out. No host, no state, no I/O.
 *   tables    fields.c: every value a decoder can produce, with its state
 *             attribute name, unit and capability.
 *   dedup.c   packet id / frame counter / replay decisions (pure).
 *   ble.c     the plugin: config, devices, reports, availability.
 *
 * Everything runs on the host's loop thread. Decoders, parsers and dedup
 * are pure functions of their arguments and are unit-tested and fuzzed
 * without a host.
 */
#ifndef BLE_H
#define BLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hearth/plugin.h>

#define BLE_AD_MAX 255	       /* bytes of AD data per advertisement */
#define BLE_VALUES_MAX 64      /* values in one decoded packet */
#define BLE_TEXT_MAX 1024      /* text/raw bytes of one decoded packet */
#define BLE_KEY_LEN 16	       /* AES-128 bind key */
#define BLE_LEGACY_KEY_LEN 12  /* MiBeacon v2/v3 bind key */
#define BLE_MAC_TEXT 18	       /* "aa:bb:cc:dd:ee:ff" + NUL */

#define BLE_UUID_BTHOME 0xfcd2
#define BLE_UUID_MIBEACON 0xfe95
#define BLE_UUID_ENV 0x181a /* atc1441 and pvvx custom formats */

/* ---- little helpers shared by the decoders -------------------------------- */

static inline uint16_t ble_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t ble_le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static inline uint32_t ble_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- advertisements ------------------------------------------------------- */

/* One advertisement as a source received it (borrowed by the receiver). */
struct ble_advert {
	uint8_t mac[6];	   /* display order: mac[0] is "aa" in aa:bb:cc:dd:ee:ff */
	bool has_rssi;
	int8_t rssi;	   /* dBm */
	const uint8_t *ad; /* AD structures (length, type, value ...) as on air */
	size_t ad_len;	   /* 0: a sign of life without data (BlueZ RSSI update) */
};

/* ad.c: walk AD structures. *off starts at 0. Returns 1 with the next
 * structure in *type / *data / *len, 0 at the end (or at a zero length,
 * which ends the significant part), -EINVAL if a length runs past the end. */
int ble_ad_next(const uint8_t *ad, size_t ad_len, size_t *off, uint8_t *type,
		const uint8_t **data, size_t *len);
/* The service data (after the UUID) of 16-bit uuid, or NULL. */
const uint8_t *ble_ad_service_data(const uint8_t *ad, size_t ad_len, uint16_t uuid,
				   size_t *len);
/* Complete or shortened local name copied into out (NUL-terminated, only if
 * valid UTF-8 without control characters). 0 or -ENOENT. */
int ble_ad_local_name(const uint8_t *ad, size_t ad_len, char *out, size_t cap);
/* Append one AD structure to buf (*len bytes used, cap bytes room).
 * 0 or -ENOSPC. */
int ble_ad_append(uint8_t *buf, size_t *len, size_t cap, uint8_t type, const uint8_t *data,
		  size_t data_len);

/* "aa:bb:cc:dd:ee:ff" (either case) into mac. 0 or -EINVAL. */
int ble_mac_parse(const char *text, uint8_t mac[6]);
/* Lower-case "aa:bb:cc:dd:ee:ff". */
void ble_mac_format(const uint8_t mac[6], char out[BLE_MAC_TEXT]);
/* Hex text (len characters) into out. Returns the byte count, -EINVAL for
 * bad hex or an odd length, -E2BIG if it does not fit cap. */
int ble_hex_decode(const char *hex, size_t len, uint8_t *out, size_t cap);
/* Lower-case hex of n bytes into out (2n+1 bytes of room). */
void ble_hex_encode(const uint8_t *in, size_t n, char *out);
/* True if the bytes are well-formed UTF-8 (no overlongs, no surrogates). */
bool ble_utf8_valid(const uint8_t *s, size_t n);

/* ---- decoded values ----------------------------------------------------- */

enum ble_kind {
	BLE_SENSOR = 0, /* a number */
	BLE_TEXT = 1,	/* a string (text, raw hex, timestamp, firmware) */
	BLE_BINARY = 2, /* a bool */
	BLE_EVENT = 3,	/* something that happened: a button press */
};

/* Every value a decoder can produce (fields.c holds the table). */
enum ble_field_id {
	F_PACKET_ID, F_BATTERY, F_TEMPERATURE, F_HUMIDITY, F_PRESSURE, F_ILLUMINANCE,
	F_MASS_KG, F_MASS_LB, F_DEW_POINT, F_COUNT, F_ENERGY, F_POWER, F_VOLTAGE, F_PM25,
	F_PM10, F_CO2, F_VOC, F_MOISTURE, F_ROTATION, F_DISTANCE_MM, F_DISTANCE_M,
	F_DURATION, F_CURRENT, F_SPEED, F_UV_INDEX, F_VOLUME_L, F_VOLUME_ML,
	F_VOLUME_FLOW_RATE, F_GAS, F_WATER, F_TIMESTAMP, F_ACCELERATION, F_GYROSCOPE,
	F_TEXT, F_RAW, F_VOLUME_STORAGE, F_CONDUCTIVITY, F_PRECIPITATION, F_DIRECTION,
	F_CHANNEL, F_ROTATIONAL_SPEED, F_LIGHT_LEVEL, F_SETTINGS_REVISION,
	F_DEVICE_TYPE_ID, F_FIRMWARE_VERSION,
	/* binaries */
	F_B_GENERIC, F_B_POWER, F_B_OPENING, F_B_BATTERY_LOW, F_B_BATTERY_CHARGING, F_B_CO,
	F_B_COLD, F_B_CONNECTIVITY, F_B_DOOR, F_B_GARAGE_DOOR, F_B_GAS, F_B_HEAT, F_B_LIGHT,
	F_B_LOCK, F_B_MOISTURE, F_B_MOTION, F_B_MOVING, F_B_OCCUPANCY, F_B_PLUG, F_B_PRESENCE,
	F_B_PROBLEM, F_B_RUNNING, F_B_SAFETY, F_B_SMOKE, F_B_SOUND, F_B_TAMPER, F_B_VIBRATION,
	F_B_WINDOW,
	/* events */
	F_E_BUTTON, F_E_DIMMER, F_E_COMMAND,
	/* MiBeacon */
	F_FORMALDEHYDE, F_CONSUMABLE, F_NO_MOTION_TIME, F_B_SWITCH, F_B_DOOR_LEFT_OPEN,
	/* atc1441 / pvvx */
	F_FRAME_COUNTER, F_FLAGS, F_B_REED_SWITCH, F_B_GPIO_TRG_OUTPUT, F_B_GPIO_TRG_CONTROLLED,
	F_B_TEMP_TRIGGER, F_B_HUMI_TRIGGER,
	/* added by the plugin, never by a decoder */
	F_RSSI, F_ACTION,
	F_COUNT_
};

struct ble_field {
	const char *name;	 /* decoder name, as in the public vectors */
	const char *attr;	 /* state attribute; NULL: name; "": never reported */
	enum ble_kind kind;
	const char *unit;	 /* NULL: none */
	const char *description;
};

extern const struct ble_field ble_fields[F_COUNT_];
/* The state attribute of a field (NULL for one that is never reported). */
const char *ble_field_attr(enum ble_field_id id);

struct ble_value {
	uint16_t field;	   /* enum ble_field_id */
	uint8_t index;	   /* 0: the only one of its name; 1..n: name_1..name_n */
	double number;	   /* BLE_SENSOR */
	bool boolean;	   /* BLE_BINARY */
	uint16_t text;	   /* BLE_TEXT: offset into ble_reading.text */
	const char *event; /* BLE_EVENT: "press", ...; NULL: no event (takes an index) */
	bool has_steps;
	int32_t steps;	   /* BLE_EVENT: dimmer steps, command argument */
};

enum ble_format {
	BLE_FMT_NONE = 0,
	BLE_FMT_BTHOME,
	BLE_FMT_MIBEACON,
	BLE_FMT_ATC1441,
	BLE_FMT_PVVX,
	BLE_FMT_ATC1441_ENC, /* pvvx firmware's encrypted short atc form */
	BLE_FMT_PVVX_ENC,    /* pvvx firmware's encrypted custom form */
};

struct mibeacon_model; /* mibeacon.c */

/* What one service-data payload decoded to. A decoder fills it from zero. */
struct ble_reading {
	enum ble_format format;
	uint8_t version;	 /* BTHome 2; MiBeacon 2..5 */
	bool encrypted;
	bool trigger_based;	 /* BTHome device-info bit 2: irregular sender */
	bool has_counter32;	 /* encryption counter (BTHome, MiBeacon v4/v5) */
	uint32_t counter32;
	bool has_counter8;	 /* BTHome packet id, MiBeacon frame counter, pvvx counter */
	uint8_t counter8;
	bool has_frame_mac;	 /* a MAC carried in the payload, display order */
	uint8_t frame_mac[6];
	uint16_t product_id;	 /* MiBeacon */
	const struct mibeacon_model *model;
	bool stopped_unknown;	 /* BTHome: an unknown object id ended parsing */
	uint16_t unknown_id;	 /* the first unknown object id */
	bool has_unknown;
	bool truncated;		 /* an object ran past the end: parsing stopped */
	uint16_t truncated_id;
	uint8_t plaintext[BLE_AD_MAX];
	size_t plaintext_len;	 /* decrypted object bytes */
	size_t n;
	struct ble_value v[BLE_VALUES_MAX];
	size_t text_len;
	char text[BLE_TEXT_MAX];
};

/* Append a zeroed value; NULL when the reading is full (nothing is added). */
struct ble_value *ble_reading_add(struct ble_reading *r, enum ble_field_id field);
/* Copy len bytes of text into the reading; returns its offset or -ENOSPC. */
int ble_reading_text(struct ble_reading *r, const char *s, size_t len);
/* Give repeated names their _1.._n index (per kind and name, in order). */
void ble_reading_number(struct ble_reading *r);
/* The value's text (BLE_TEXT). */
const char *ble_value_text(const struct ble_reading *r, const struct ble_value *v);

/*
 * Decoders. sd/len: the service data after the 16-bit UUID. mac: the
 * advertiser address (display order) or NULL when unknown. key: the device's
 * bind key (key_len 16, or 12 for legacy MiBeacon) or NULL.
 *
 * 0: decoded into *out (possibly with no values). Errors:
 *   -ENOKEY          encrypted and no key (or a key of the wrong length)
 *   -EBADMSG         decryption failed: the MIC does not match (wrong key)
 *   -EPROTONOSUPPORT a version or variant that is not supported
 *   -EINVAL          malformed or too short
 */
int bthome_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		  size_t key_len, struct ble_reading *out);
int mibeacon_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		    size_t key_len, struct ble_reading *out);
/* 0x181A: atc1441 (13 bytes), pvvx custom (14/15), and pvvx's encrypted
 * forms (8 and 11 bytes). */
int pvvx_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		size_t key_len, struct ble_reading *out);

/* The decoder for a 16-bit service UUID, or NULL. */
typedef int (*ble_decoder_fn)(const uint8_t *sd, size_t len, const uint8_t *mac,
			      const uint8_t *key, size_t key_len, struct ble_reading *out);
ble_decoder_fn ble_decoder_for(uint16_t uuid);
/* Short text for a decoder error. */
const char *ble_decode_strerror(int rc);
/* "BTHome", "MiBeacon", ... */
const char *ble_format_name(enum ble_format format);

/* MiBeacon model table (mibeacon.c). */
struct mibeacon_model {
	uint16_t product_id;
	const char *model;
	const char *vendor;
	const char *description;
	unsigned flags;		/* MI_* below */
	const uint8_t *fields;	/* what the device can carry, F_COUNT_-terminated */
};
#define MI_SLEEPY 1u	  /* reports only on events: never marked offline */
#define MI_LIGHT_BIN 2u	  /* 0x000F/0x1007 illuminance is a light/dark flag */
#define MI_MOTION_LUX 4u  /* 0x000F carries lux */
#define MI_DIMMER 8u	  /* 0x1001 is a rotary dimmer (YLKG07YL) */
const struct mibeacon_model *mibeacon_model_find(uint16_t product_id);

/* ---- crypto (ccm.c) ------------------------------------------------------- */

/* AES-128-CCM. nonce 7..13 bytes, tag 4..16 bytes. Decrypt: 0 or -EBADMSG
 * (tag mismatch; out is wiped). Encrypt writes len bytes and the tag. */
int ble_ccm_decrypt(const uint8_t key[BLE_KEY_LEN], const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		    const uint8_t *tag, size_t tag_len, uint8_t *out);
int ble_ccm_encrypt(const uint8_t key[BLE_KEY_LEN], const uint8_t *nonce, size_t nonce_len,
		    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		    uint8_t *tag, size_t tag_len, uint8_t *out);
/* The counter-mode half of AES-CCM with a 13-byte nonce and no tag check
 * (MiBeacon v2/v3). 0 or -EIO. */
int ble_ccm_ctr(const uint8_t key[BLE_KEY_LEN], const uint8_t nonce[13], const uint8_t *in,
		size_t len, uint8_t *out);

/* ---- de-duplication (dedup.c) ----------------------------------------------- */

struct ble_dedup {
	bool has8, has32;
	uint8_t last8;
	uint32_t last32;
	int64_t last_ms; /* when the last packet was accepted */
};

enum ble_verdict {
	BLE_NEW = 0,	   /* new data: report it */
	BLE_DUPLICATE = 1, /* a repeat of what was reported */
	BLE_REPLAY = 2,	   /* an encryption counter went backwards */
};

/* Decide on a reading's counters and, for BLE_NEW, remember them. */
enum ble_verdict ble_dedup_check(struct ble_dedup *d, const struct ble_reading *r, int64_t now_ms);

/* ---- bind keys (keys.c) ---------------------------------------------------- */

struct ble_key {
	uint8_t mac[6];
	uint8_t len; /* 16, or 12 for a legacy MiBeacon key */
	uint8_t key[BLE_KEY_LEN];
};

struct ble_keyring {
	struct ble_key *keys; /* sorted by mac */
	size_t n;
};

/* Parse a keys file's text: "aa:bb:cc:dd:ee:ff <32 hex>" (or 24 hex for a
 * legacy MiBeacon key) per line, '#' comments, blank lines. On error returns
 * -EINVAL with "line N: why" in err (never the key) and leaves ring empty;
 * -ENOMEM. A MAC listed twice keeps the last key (warning in err, rc 0). */
int ble_keys_parse(const char *text, struct ble_keyring *ring, char *err, size_t err_len);
const struct ble_key *ble_keys_find(const struct ble_keyring *ring, const uint8_t mac[6]);
/* Wipe and free. */
void ble_keys_free(struct ble_keyring *ring);

/* ---- replay lines (replay.c) ------------------------------------------------ */

#define BLE_REPLAY_LINE_MAX 1024

struct ble_replay_line {
	int64_t ts_ms;
	struct ble_advert adv; /* adv.ad points at data */
	uint8_t data[BLE_AD_MAX];
};

/* Parse "<unix_ms> <aa:bb:cc:dd:ee:ff> <rssi> <hex AD>". Returns 1 for an
 * advertisement, 0 for a blank or '#' line, -EINVAL with a reason in *why. */
int ble_replay_parse(const char *line, struct ble_replay_line *out, const char **why);

/* ---- HCI events (hci.c) ---------------------------------------------------- */

typedef void (*ble_advert_fn)(void *user, const struct ble_advert *adv);

/* Parse one HCI event packet (starting with the 0x04 packet type). LE
 * Advertising Reports (legacy and extended) go to cb. Returns the number of
 * reports, 0 for another event, -EINVAL if malformed (reports before the
 * fault are still delivered). */
int hci_parse_event(const uint8_t *pkt, size_t len, ble_advert_fn cb, void *user);
/* A Command Complete or Command Status for opcode: 1 and *status; 0 if the
 * packet is something else. */
int hci_parse_command_done(const uint8_t *pkt, size_t len, uint16_t opcode, uint8_t *status);

/* ---- sources ---------------------------------------------------------------------- */

/* What a source gets from the plugin. Everything lives until close. */
struct ble_source_env {
	const struct hearth_host *host;
	hearth_plugin_ctx *ctx;
	ble_advert_fn deliver;
	void *user;
	const char *adapter;	  /* "hci0" */
	bool active;		  /* active scanning (discovery = true) */
	const char *dbus_address; /* NULL: the system bus */
	double replay_speed;	  /* 0: as fast as possible */
};

/* Every source's state starts with this. */
struct ble_source {
	const struct ble_source_ops *ops;
};

/* A source of advertisements. open checks its argument and allocates (no
 * I/O that can block); start begins receiving; close releases everything. */
struct ble_source_ops {
	const char *name;   /* the source = value, or its prefix before ':' */
	bool takes_arg;	    /* "replay:PATH" */
	int (*open)(const struct ble_source_env *env, const char *arg, struct ble_source **out);
	int (*start)(struct ble_source *src);
	void (*close)(struct ble_source *src);
};

extern const struct ble_source_ops ble_source_bluez;
extern const struct ble_source_ops ble_source_hci;
extern const struct ble_source_ops ble_source_replay;

/* The source named by a `source =` value (arg: after the ':'), or NULL. */
const struct ble_source_ops *ble_source_find(const char *value, const char **arg);

/* bluez.c: D-Bus object path of a Device1 ("/org/bluez/hci0/dev_AA_BB_..") to
 * a MAC. 0 or -EINVAL. */
int bluez_path_mac(const char *path, const char *adapter, uint8_t mac[6]);
/* bluez.c: 16-bit UUID of a Bluetooth-base 128-bit UUID string, or -EINVAL. */
int bluez_uuid16(const char *uuid);

#endif
