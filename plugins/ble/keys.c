/*
 * Bind keys: one "aa:bb:cc:dd:ee:ff <key hex>" per line, '#' comments.
 * The same file serves BTHome, MiBeacon and pvvx. Keys are secrets: error
 * texts name the line and the problem, never the key, and every copy is
 * wiped when it is no longer needed.
 */
#include "ble.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_MAX 4096
#define KEY_LINE_MAX 256

static int mac_cmp(const void *a, const void *b)
{
	return memcmp(((const struct ble_key *)a)->mac, ((const struct ble_key *)b)->mac, 6);
}

static const char *skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* One line (NUL-terminated, no newline) into *k. 1: a key, 0: nothing,
 * -EINVAL with the reason in *why. */
static int key_line(const char *line, struct ble_key *k, const char **why)
{
	const char *p = skip_space(line);
	if (*p == '\0' || *p == '#')
		return 0;
	char mac[18];
	size_t n = strcspn(p, " \t");
	if (n != 17) {
		*why = "expected a MAC address aa:bb:cc:dd:ee:ff first";
		return -EINVAL;
	}
	memcpy(mac, p, 17);
	mac[17] = '\0';
	if (ble_mac_parse(mac, k->mac)) {
		*why = "the MAC address is not of the form aa:bb:cc:dd:ee:ff";
		return -EINVAL;
	}
	p = skip_space(p + 17);
	n = strcspn(p, " \t#");
	const char *rest = skip_space(p + n);
	if ((n != 2 * BLE_KEY_LEN && n != 2 * BLE_LEGACY_KEY_LEN) ||
	    (*rest != '\0' && *rest != '#')) {
		*why = "the key must be 32 hex digits (24 for a MiBeacon v2/v3 key)";
		return -EINVAL;
	}
	if (ble_hex_decode(p, n, k->key, sizeof(k->key)) < 0) {
		*why = "the key is not hex";
		return -EINVAL;
	}
	k->len = (uint8_t)(n / 2);
	return 1;
}

/* Append k, or replace the key of a MAC listed before (the last line
 * counts; *dup counts such lines). Files are short: a linear scan will do. */
static int add_key(struct ble_keyring *ring, size_t *cap, const struct ble_key *k, size_t *dup)
{
	for (size_t i = 0; i < ring->n; i++) {
		if (memcmp(ring->keys[i].mac, k->mac, 6) == 0) {
			ring->keys[i] = *k;
			(*dup)++;
			return 0;
		}
	}
	if (ring->n >= KEYS_MAX)
		return -E2BIG;
	if (ring->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct ble_key *keys = calloc(ncap, sizeof(*keys));
		if (!keys)
			return -ENOMEM;
		if (ring->n) {
			memcpy(keys, ring->keys, ring->n * sizeof(*keys));
			memset(ring->keys, 0, ring->n * sizeof(*keys));
		}
		free(ring->keys);
		ring->keys = keys;
		*cap = ncap;
	}
	ring->keys[ring->n++] = *k;
	return 0;
}

int ble_keys_parse(const char *text, struct ble_keyring *ring, char *err, size_t err_len)
{
	struct ble_keyring tmp = {0};
	size_t cap = 0, line_no = 0, dup = 0;
	int rc = 0;
	char line[KEY_LINE_MAX];
	struct ble_key k;
	if (err_len)
		err[0] = '\0';
	for (const char *p = text; p && *p && rc == 0;) {
		size_t n = strcspn(p, "\n");
		line_no++;
		const char *why = NULL;
		if (n >= sizeof(line)) {
			why = "line too long";
			rc = -EINVAL;
		} else {
			memcpy(line, p, n);
			line[n] = '\0';
			if (n && line[n - 1] == '\r')
				line[n - 1] = '\0';
			rc = key_line(line, &k, &why);
			if (rc == 1)
				rc = add_key(&tmp, &cap, &k, &dup);
			if (rc == -E2BIG)
				why = "too many keys";
		}
		if (rc < 0 && why)
			snprintf(err, err_len, "line %zu: %s", line_no, why);
		p += n + (p[n] == '\n');
	}
	memset(line, 0, sizeof(line));
	memset(&k, 0, sizeof(k));
	if (rc < 0) {
		ble_keys_free(&tmp);
		return rc == -E2BIG ? -EINVAL : rc;
	}
	if (tmp.n)
		qsort(tmp.keys, tmp.n, sizeof(*tmp.keys), mac_cmp);
	if (dup)
		snprintf(err, err_len, "%zu MAC address%s listed twice: the last key counts", dup,
			 dup == 1 ? "" : "es");
	*ring = tmp;
	return 0;
}

const struct ble_key *ble_keys_find(const struct ble_keyring *ring, const uint8_t mac[6])
{
	if (!ring || ring->n == 0)
		return NULL;
	struct ble_key probe;
	memcpy(probe.mac, mac, 6);
	return bsearch(&probe, ring->keys, ring->n, sizeof(*ring->keys), mac_cmp);
}

void ble_keys_free(struct ble_keyring *ring)
{
	if (!ring)
		return;
	if (ring->keys)
		memset(ring->keys, 0, ring->n * sizeof(*ring->keys));
	free(ring->keys);
	ring->keys = NULL;
	ring->n = 0;
}
