/*
 * Custom thermometer firmware formats on service UUID 0x181A
 * (atc1441/ATC_MiThermometer and pvvx/ATC_MiThermometer), told apart by
 * the length of the service data:
 *
 *   13  atc1441: MAC (6, display order) | temp s16 BE x0.1 | hum u8 |
 *       battery u8 | battery mV u16 BE | counter u8
 *   14, 15  pvvx custom: MAC (6, reversed) | temp s16 x0.01 | hum u16 x0.01 |
 *       battery mV u16 | battery u8 | counter u8 | [flags u8] (LE)
 *   11  pvvx custom, encrypted: counter | ciphertext (6) | MIC (4)
 *   8   atc1441 form, encrypted: counter | ciphertext (3) | MIC (4)
 *
 * The encrypted forms use AES-128-CCM with the bind key, AAD 0x11, and an
 * 11-byte nonce: the MAC as transmitted (reversed) followed by the AD
 * header (length, 0x16, UUID) and the counter.
 */
#include "ble.h"

#include <errno.h>
#include <string.h>

#define ATC_LEN 13
#define PVVX_LEN 15
#define PVVX_NOFLAGS_LEN 14
#define PVVX_ENC_LEN 11
#define ATC_ENC_LEN 8
#define MIC_LEN 4

static void pv_num(struct ble_reading *r, enum ble_field_id f, double x)
{
	struct ble_value *v = ble_reading_add(r, f);
	if (v)
		v->number = x;
}

static void pv_bin(struct ble_reading *r, enum ble_field_id f, bool b)
{
	struct ble_value *v = ble_reading_add(r, f);
	if (v)
		v->boolean = b;
}

static void pv_counter(struct ble_reading *r, uint8_t counter)
{
	r->has_counter8 = true;
	r->counter8 = counter;
	pv_num(r, F_FRAME_COUNTER, counter);
}

static void pv_flags(struct ble_reading *r, uint8_t flags)
{
	static const uint8_t bits[] = {F_B_REED_SWITCH, F_B_GPIO_TRG_OUTPUT,
				       F_B_GPIO_TRG_CONTROLLED, F_B_TEMP_TRIGGER,
				       F_B_HUMI_TRIGGER};
	for (size_t i = 0; i < sizeof(bits); i++)
		pv_bin(r, bits[i], flags & (1u << i));
	pv_num(r, F_FLAGS, flags);
}

static int atc1441(const uint8_t *sd, struct ble_reading *r)
{
	r->format = BLE_FMT_ATC1441;
	memcpy(r->frame_mac, sd, 6);
	r->has_frame_mac = true;
	pv_num(r, F_TEMPERATURE, (int16_t)(sd[6] << 8 | sd[7]) / 10.0);
	pv_num(r, F_HUMIDITY, sd[8]);
	pv_num(r, F_BATTERY, sd[9]);
	pv_num(r, F_VOLTAGE, (sd[10] << 8 | sd[11]) / 1000.0);
	pv_counter(r, sd[12]);
	return 0;
}

static int pvvx(const uint8_t *sd, size_t len, struct ble_reading *r)
{
	r->format = BLE_FMT_PVVX;
	for (int i = 0; i < 6; i++)
		r->frame_mac[i] = sd[5 - i];
	r->has_frame_mac = true;
	pv_num(r, F_TEMPERATURE, (int16_t)ble_le16(sd + 6) / 100.0);
	pv_num(r, F_HUMIDITY, ble_le16(sd + 8) / 100.0);
	pv_num(r, F_BATTERY, sd[12]);
	pv_num(r, F_VOLTAGE, ble_le16(sd + 10) / 1000.0);
	pv_counter(r, sd[13]);
	if (len == PVVX_LEN)
		pv_flags(r, sd[14]);
	return 0;
}

static int pv_decrypt(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		      size_t key_len, struct ble_reading *r)
{
	if (!key || key_len != BLE_KEY_LEN)
		return -ENOKEY;
	if (!mac)
		return -EINVAL;
	uint8_t nonce[11];
	for (int i = 0; i < 6; i++)
		nonce[i] = mac[5 - i];
	nonce[6] = (uint8_t)(len + 3); /* the AD length byte: type, UUID, data */
	nonce[7] = 0x16;
	nonce[8] = BLE_UUID_ENV & 0xff;
	nonce[9] = BLE_UUID_ENV >> 8;
	nonce[10] = sd[0];
	static const uint8_t aad = 0x11;
	size_t ct_len = len - 1 - MIC_LEN;
	int rc = ble_ccm_decrypt(key, nonce, sizeof(nonce), &aad, 1, sd + 1, ct_len,
				 sd + len - MIC_LEN, MIC_LEN, r->plaintext);
	if (rc)
		return rc;
	r->plaintext_len = ct_len;
	return 0;
}

static int pvvx_enc(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		    size_t key_len, struct ble_reading *r)
{
	r->format = BLE_FMT_PVVX_ENC;
	r->encrypted = true;
	int rc = pv_decrypt(sd, len, mac, key, key_len, r);
	if (rc)
		return rc;
	const uint8_t *p = r->plaintext;
	pv_num(r, F_TEMPERATURE, (int16_t)ble_le16(p) / 100.0);
	pv_num(r, F_HUMIDITY, ble_le16(p + 2) / 100.0);
	pv_num(r, F_BATTERY, p[4]);
	pv_counter(r, sd[0]);
	pv_flags(r, p[5]);
	return 0;
}

static int atc_enc(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		   size_t key_len, struct ble_reading *r)
{
	r->format = BLE_FMT_ATC1441_ENC;
	r->encrypted = true;
	int rc = pv_decrypt(sd, len, mac, key, key_len, r);
	if (rc)
		return rc;
	const uint8_t *p = r->plaintext;
	/* Half degrees from -40 °C, half percents; bit 7 of the battery byte
	 * is the trigger output. */
	pv_num(r, F_TEMPERATURE, (p[0] - 80) / 2.0);
	pv_num(r, F_HUMIDITY, p[1] / 2.0);
	pv_num(r, F_BATTERY, p[2] & 0x7f);
	pv_bin(r, F_B_GPIO_TRG_OUTPUT, p[2] & 0x80);
	pv_counter(r, sd[0]);
	return 0;
}

int pvvx_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		size_t key_len, struct ble_reading *out)
{
	memset(out, 0, sizeof(*out));
	out->format = BLE_FMT_PVVX;
	if (!sd)
		return -EINVAL;
	switch (len) {
	case ATC_LEN:
		return atc1441(sd, out);
	case PVVX_LEN:
	case PVVX_NOFLAGS_LEN:
		return pvvx(sd, len, out);
	case PVVX_ENC_LEN:
		return pvvx_enc(sd, len, mac, key, key_len, out);
	case ATC_ENC_LEN:
		return atc_enc(sd, len, mac, key, key_len, out);
	default:
		return -EINVAL;
	}
}
