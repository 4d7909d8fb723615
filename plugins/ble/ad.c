/*
 * Advertising data: AD structures, MAC addresses, hex and UTF-8 checks.
 * Pure functions; every input is bounded by the length it comes with.
 */
#include "ble.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define AD_SERVICE_DATA_16 0x16
#define AD_NAME_SHORT 0x08
#define AD_NAME_COMPLETE 0x09

int ble_ad_next(const uint8_t *ad, size_t ad_len, size_t *off, uint8_t *type,
		const uint8_t **data, size_t *len)
{
	if (!ad || *off >= ad_len)
		return 0;
	size_t n = ad[*off];
	/* A zero length ends the significant part; the rest is padding. */
	if (n == 0)
		return 0;
	if (n > ad_len - *off - 1)
		return -EINVAL;
	*type = ad[*off + 1];
	*data = ad + *off + 2;
	*len = n - 1;
	*off += n + 1;
	return 1;
}

const uint8_t *ble_ad_service_data(const uint8_t *ad, size_t ad_len, uint16_t uuid,
				   size_t *len)
{
	size_t off = 0, n;
	uint8_t type;
	const uint8_t *data;
	while (ble_ad_next(ad, ad_len, &off, &type, &data, &n) == 1) {
		if (type == AD_SERVICE_DATA_16 && n >= 2 && ble_le16(data) == uuid) {
			*len = n - 2;
			return data + 2;
		}
	}
	return NULL;
}

int ble_ad_local_name(const uint8_t *ad, size_t ad_len, char *out, size_t cap)
{
	size_t off = 0, n;
	uint8_t type;
	const uint8_t *data;
	while (ble_ad_next(ad, ad_len, &off, &type, &data, &n) == 1) {
		if (type != AD_NAME_COMPLETE && type != AD_NAME_SHORT)
			continue;
		/* Devices pad names with NULs. */
		while (n > 0 && data[n - 1] == 0)
			n--;
		if (n == 0 || n >= cap || !ble_utf8_valid(data, n))
			return -ENOENT;
		for (size_t i = 0; i < n; i++)
			if (data[i] < 0x20 || data[i] == 0x7f)
				return -ENOENT;
		memcpy(out, data, n);
		out[n] = '\0';
		return 0;
	}
	return -ENOENT;
}

int ble_ad_append(uint8_t *buf, size_t *len, size_t cap, uint8_t type, const uint8_t *data,
		  size_t data_len)
{
	if (data_len > 254 || *len > cap || cap - *len < data_len + 2)
		return -ENOSPC;
	buf[*len] = (uint8_t)(data_len + 1);
	buf[*len + 1] = type;
	if (data_len)
		memcpy(buf + *len + 2, data, data_len);
	*len += data_len + 2;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ble_mac_parse(const char *text, uint8_t mac[6])
{
	if (!text || strlen(text) != 17)
		return -EINVAL;
	uint8_t tmp[6];
	for (int i = 0; i < 6; i++) {
		const char *p = text + 3 * i;
		int hi = hexval(p[0]), lo = hexval(p[1]);
		if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
			return -EINVAL;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(mac, tmp, 6);
	return 0;
}

void ble_mac_format(const uint8_t mac[6], char out[BLE_MAC_TEXT])
{
	snprintf(out, BLE_MAC_TEXT, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
		 mac[3], mac[4], mac[5]);
}

int ble_hex_decode(const char *hex, size_t len, uint8_t *out, size_t cap)
{
	if (len % 2)
		return -EINVAL;
	if (len / 2 > cap)
		return -E2BIG;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return (int)(len / 2);
}

void ble_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Length of the UTF-8 sequence starting at s[0] (of n bytes), 0 if invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t len;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool ble_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t k = utf8_seq(s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}
