/*
 * The ble plugin's parsers, compiled in from plugins/ble: AD structures,
 * MAC/hex/UTF-8 helpers, the keys file, replay lines and HCI events.
 *
 * The HCI events are shaped as controllers send them; the first two are
 * captures from custom-components/ble_monitor's test_xiaomi_parser.py
 * (test_Xiaomi_LYWSDCGQ, test_Xiaomi_CGG1), so their payloads also run
 * through the MiBeacon decoder here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/ble/ad.c"
#include "../../plugins/ble/ccm.c"
#include "../../plugins/ble/fields.c"
#include "../../plugins/ble/hci.c"
#include "../../plugins/ble/keys.c"
#include "../../plugins/ble/mibeacon.c"
#include "../../plugins/ble/replay.c"

/* fields.c's dispatch table names every decoder; these are not under test
 * here. */
int bthome_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		  size_t key_len, struct ble_reading *out)
{
	(void)sd, (void)len, (void)mac, (void)key, (void)key_len, (void)out;
	return -EINVAL;
}

int pvvx_decode(const uint8_t *sd, size_t len, const uint8_t *mac, const uint8_t *key,
		size_t key_len, struct ble_reading *out)
{
	(void)sd, (void)len, (void)mac, (void)key, (void)key_len, (void)out;
	return -EINVAL;
}

static size_t unhex(const char *text, uint8_t *out, size_t cap)
{
	int n = ble_hex_decode(text, strlen(text), out, cap);
	assert_true(n >= 0);
	return (size_t)n;
}

/* ---- AD structures ------------------------------------------------------------ */

static void test_ad_walk(void **state)
{
	(void)state;
	uint8_t ad[64];
	size_t n = unhex("020106" "0a0953424854" "2d30303343" "0716d2fc4002c409" "00" "ffff", ad,
			 sizeof(ad));
	size_t off = 0, len;
	uint8_t type;
	const uint8_t *data;
	assert_int_equal(ble_ad_next(ad, n, &off, &type, &data, &len), 1);
	assert_int_equal(type, 0x01);
	assert_int_equal(len, 1);
	assert_int_equal(ble_ad_next(ad, n, &off, &type, &data, &len), 1);
	assert_int_equal(type, 0x09);
	assert_int_equal(ble_ad_next(ad, n, &off, &type, &data, &len), 1);
	assert_int_equal(type, 0x16);
	assert_int_equal(len, 6);
	/* a zero length ends the data; what follows is padding */
	assert_int_equal(ble_ad_next(ad, n, &off, &type, &data, &len), 0);

	const uint8_t *sd = ble_ad_service_data(ad, n, 0xfcd2, &len);
	assert_non_null(sd);
	assert_int_equal(len, 4);
	assert_int_equal(sd[0], 0x40);
	assert_null(ble_ad_service_data(ad, n, 0xfe95, &len));
	char name[32];
	assert_int_equal(ble_ad_local_name(ad, n, name, sizeof(name)), 0);
	assert_string_equal(name, "SBHT-003C");
	assert_int_equal(ble_ad_local_name(ad, n, name, 5), -ENOENT);

	/* a length past the end */
	n = unhex("020106" "0916d2fc40", ad, sizeof(ad));
	off = 0;
	assert_int_equal(ble_ad_next(ad, n, &off, &type, &data, &len), 1);
	assert_int_equal(ble_ad_next(ad, n, &off, &type, &data, &len), -EINVAL);
	assert_null(ble_ad_service_data(ad, n, 0xfcd2, &len));
	off = 0;
	assert_int_equal(ble_ad_next(NULL, 0, &off, &type, &data, &len), 0);
	/* names: NUL padding goes, control characters and bad UTF-8 refuse */
	n = unhex("0509414200" "00", ad, sizeof(ad));
	assert_int_equal(ble_ad_local_name(ad, n, name, sizeof(name)), 0);
	assert_string_equal(name, "AB");
	n = unhex("040941074a", ad, sizeof(ad));
	assert_int_equal(ble_ad_local_name(ad, n, name, sizeof(name)), -ENOENT);
	n = unhex("030941c3", ad, sizeof(ad));
	assert_int_equal(ble_ad_local_name(ad, n, name, sizeof(name)), -ENOENT);
}

static void test_ad_append(void **state)
{
	(void)state;
	uint8_t buf[8];
	size_t len = 0;
	assert_int_equal(ble_ad_append(buf, &len, sizeof(buf), 0x16, (const uint8_t *)"\xd2\xfc\x40", 3),
			 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "\x04\x16\xd2\xfc\x40", 5);
	assert_int_equal(ble_ad_append(buf, &len, sizeof(buf), 0x09, (const uint8_t *)"ab", 2),
			 -ENOSPC);
	assert_int_equal(len, 5);
	assert_int_equal(ble_ad_append(buf, &len, sizeof(buf), 0x09, (const uint8_t *)"a", 1), 0);
	assert_int_equal(len, 8);
}

static void test_mac_hex_utf8(void **state)
{
	(void)state;
	uint8_t mac[6] = {0}, want[6] = {0xa4, 0xc1, 0x38, 0x8d, 0x18, 0xb2};
	char text[BLE_MAC_TEXT];
	assert_int_equal(ble_mac_parse("A4:C1:38:8d:18:B2", mac), 0);
	assert_memory_equal(mac, want, 6);
	ble_mac_format(mac, text);
	assert_string_equal(text, "a4:c1:38:8d:18:b2");
	static const char *const bad[] = {"a4:c1:38:8d:18", "a4-c1-38-8d-18-b2", "a4:c1:38:8d:18:b2:",
					  "g4:c1:38:8d:18:b2", "a4c1388d18b2", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ble_mac_parse(bad[i], mac), -EINVAL);
	assert_memory_equal(mac, want, 6); /* untouched on failure */
	assert_int_equal(ble_mac_parse(NULL, mac), -EINVAL);

	uint8_t out[4];
	assert_int_equal(ble_hex_decode("00ffAb", 6, out, sizeof(out)), 3);
	assert_memory_equal(out, "\x00\xff\xab", 3);
	assert_int_equal(ble_hex_decode("0", 1, out, sizeof(out)), -EINVAL);
	assert_int_equal(ble_hex_decode("zz", 2, out, sizeof(out)), -EINVAL);
	assert_int_equal(ble_hex_decode("0011223344", 10, out, sizeof(out)), -E2BIG);
	char hex[9];
	ble_hex_encode((const uint8_t *)"\x01\xab\xff", 3, hex);
	assert_string_equal(hex, "01abff");

	static const struct {
		const char *bytes;
		bool ok;
	} utf8[] = {
		{"Hello", true},
		{"\xc3\xa9t\xc3\xa9", true},	 /* été */
		{"\xe2\x82\xac", true},		 /* € */
		{"\xf0\x9f\x8c\xa1", true},	 /* a thermometer */
		{"\xc0\x80", false},		 /* overlong NUL */
		{"\xe0\x80\xaf", false},	 /* overlong slash */
		{"\xed\xa0\x80", false},	 /* a surrogate */
		{"\xf4\x90\x80\x80", false},	 /* above U+10FFFF */
		{"\xe2\x82", false},		 /* cut short */
		{"\x87", false},		 /* a lone continuation byte */
		{"\xff", false},
	};
	for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
		assert_int_equal(ble_utf8_valid((const uint8_t *)utf8[i].bytes, strlen(utf8[i].bytes)),
				 utf8[i].ok);
}

/* ---- keys files ---------------------------------------------------------------- */

static void test_keys_parse(void **state)
{
	(void)state;
	struct ble_keyring ring = {0};
	char err[200];
	const char *text = "# bind keys\n"
			   "\n"
			   "  A4:C1:38:02:83:F4 e9ea895fac7cca6d30532432a516f3a8\n"
			   "54:48:e6:8f:80:a5\t231D39C1D7CC1AB1AEE224CD096DB932  # BTHome\r\n"
			   "f8:24:41:c5:98:8b b853075158487ca39a5b5ea9\n"
			   "54:48:e6:8f:80:a5 00000000000000000000000000000001\n";
	assert_int_equal(ble_keys_parse(text, &ring, err, sizeof(err)), 0);
	assert_int_equal(ring.n, 3);
	assert_non_null(strstr(err, "listed twice"));
	uint8_t mac[6];
	ble_mac_parse("a4:c1:38:02:83:f4", mac);
	const struct ble_key *k = ble_keys_find(&ring, mac);
	assert_non_null(k);
	assert_int_equal(k->len, 16);
	assert_int_equal(k->key[0], 0xe9);
	ble_mac_parse("54:48:e6:8f:80:a5", mac);
	k = ble_keys_find(&ring, mac);
	assert_non_null(k);
	assert_int_equal(k->key[15], 0x01); /* the last line counts */
	ble_mac_parse("f8:24:41:c5:98:8b", mac);
	k = ble_keys_find(&ring, mac);
	assert_non_null(k);
	assert_int_equal(k->len, 12);
	ble_mac_parse("00:00:00:00:00:01", mac);
	assert_null(ble_keys_find(&ring, mac));
	ble_keys_free(&ring);
	assert_null(ring.keys);
	assert_null(ble_keys_find(&ring, mac));

	static const struct {
		const char *text, *err;
	} bad[] = {
		{"a4:c1:38:02:83 e9ea895fac7cca6d30532432a516f3a8\n", "line 1: expected a MAC"},
		{"# x\nzz:c1:38:02:83:f4 e9ea895fac7cca6d30532432a516f3a8\n", "line 2: the MAC"},
		{"a4:c1:38:02:83:f4 e9ea895fac7cca6d30532432a516f3\n", "line 1: the key must be 32"},
		{"a4:c1:38:02:83:f4\n", "line 1: the key must be 32"},
		{"a4:c1:38:02:83:f4 e9ea895fac7cca6d30532432a516f3zz\n", "line 1: the key is not hex"},
		{"a4:c1:38:02:83:f4 e9ea895fac7cca6d30532432a516f3a8 extra\n", "line 1: the key must"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&ring, 0, sizeof(ring));
		assert_int_equal(ble_keys_parse(bad[i].text, &ring, err, sizeof(err)), -EINVAL);
		if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
			fail_msg("case %zu: error '%s', expected '%s'", i, err, bad[i].err);
		assert_null(strstr(err, "e9ea895f")); /* never the key */
		assert_int_equal(ring.n, 0);
		assert_null(ring.keys);
	}
	/* an empty file is no keys, no error */
	assert_int_equal(ble_keys_parse("", &ring, err, sizeof(err)), 0);
	assert_int_equal(ring.n, 0);
	ble_keys_free(&ring);
}

/* ---- replay lines ---------------------------------------------------------------- */

static void test_replay_lines(void **state)
{
	(void)state;
	static struct ble_replay_line l;
	const char *why = NULL;
	assert_int_equal(ble_replay_parse("1700000000123 A4:C1:38:8D:18:B2 -67 020106\n", &l, &why), 1);
	assert_int_equal(l.ts_ms, 1700000000123);
	assert_int_equal(l.adv.mac[5], 0xb2);
	assert_true(l.adv.has_rssi);
	assert_int_equal(l.adv.rssi, -67);
	assert_int_equal(l.adv.ad_len, 3);
	assert_ptr_equal(l.adv.ad, l.data);
	assert_int_equal(ble_replay_parse("\t0 a4:c1:38:8d:18:b2 20 00", &l, &why), 1);
	assert_int_equal(ble_replay_parse("5 a4:c1:38:8d:18:b2 -127 0201\r\n", &l, &why), 1);
	assert_int_equal(ble_replay_parse("", &l, &why), 0);
	assert_int_equal(ble_replay_parse("   \n", &l, &why), 0);
	assert_int_equal(ble_replay_parse("# 1 a4:c1:38:8d:18:b2 -5 00", &l, &why), 0);

	char big[700];
	snprintf(big, sizeof(big), "1 a4:c1:38:8d:18:b2 -5 %0512d", 0);
	const struct {
		const char *line, *why;
	} bad[] = {
		{"x a4:c1:38:8d:18:b2 -5 00", "the time"},
		{"-1 a4:c1:38:8d:18:b2 -5 00", "the time"},
		{"1234567890123456 a4:c1:38:8d:18:b2 -5 00", "the time"},
		{"1 a4:c1:38:8d:18 -5 00", "the MAC"},
		{"1 a4:c1:38:8d:18:bz -5 00", "the MAC"},
		{"1 a4:c1:38:8d:18:b2 -128 00", "the RSSI"},
		{"1 a4:c1:38:8d:18:b2 21 00", "the RSSI"},
		{"1 a4:c1:38:8d:18:b2 -5x 00", "the RSSI"},
		{"1 a4:c1:38:8d:18:b2 - 00", "the RSSI"},
		{"1 a4:c1:38:8d:18:b2 -5 0", "the AD data is not hex"},
		{"1 a4:c1:38:8d:18:b2 -5 0g", "the AD data is not hex"},
		{big, "the AD data is longer than 255"},
		{"1 a4:c1:38:8d:18:b2 -5", "expected"},
		{"1 a4:c1:38:8d:18:b2 -5 00 00", "expected"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(ble_replay_parse(bad[i].line, &l, &why), -EINVAL);
		assert_non_null(why);
		if (strncmp(why, bad[i].why, strlen(bad[i].why)) != 0)
			fail_msg("'%.40s': '%s', expected '%s'", bad[i].line, why, bad[i].why);
	}
	/* AD data is not checked here: garbage goes on to the decoders */
	assert_int_equal(ble_replay_parse("1 a4:c1:38:8d:18:b2 -5 ff00ff", &l, &why), 1);
}

/* ---- HCI events ------------------------------------------------------------------------ */

struct got {
	size_t n;
	struct ble_advert adv[4];
	uint8_t ad[4][BLE_AD_MAX];
};

static void collect(void *user, const struct ble_advert *adv)
{
	struct got *g = user;
	assert_true(g->n < 4);
	g->adv[g->n] = *adv;
	memcpy(g->ad[g->n], adv->ad, adv->ad_len);
	g->adv[g->n].ad = g->ad[g->n];
	g->n++;
}

static void test_hci_legacy_reports(void **state)
{
	(void)state;
	uint8_t pkt[300];
	struct got g = {0};
	size_t n = unhex("043e2502010000219335342d5819020106151695fe5020aa01da219335342d580d1004fe"
			 "004802c4",
			 pkt, sizeof(pkt));
	assert_int_equal(hci_parse_event(pkt, n, collect, &g), 1);
	assert_int_equal(g.n, 1);
	uint8_t mac[6];
	ble_mac_parse("58:2d:34:35:93:21", mac);
	assert_memory_equal(g.adv[0].mac, mac, 6);
	assert_true(g.adv[0].has_rssi);
	assert_int_equal(g.adv[0].rssi, -60);
	assert_int_equal(g.adv[0].ad_len, 25);
	/* the payload decodes: 25.4 °C, 58.4 % (ble_monitor's assertion) */
	size_t sd_len;
	const uint8_t *sd = ble_ad_service_data(g.adv[0].ad, g.adv[0].ad_len, 0xfe95, &sd_len);
	assert_non_null(sd);
	static struct ble_reading r;
	assert_int_equal(mibeacon_decode(sd, sd_len, g.adv[0].mac, NULL, 0, &r), 0);
	assert_int_equal(r.n, 2);
	assert_true(fabs(r.v[0].number - 25.4) < 1e-9);
	assert_true(fabs(r.v[1].number - 58.4) < 1e-9);

	/* an encrypted MiBeacon capture: -74 dBm, decrypts with its key */
	g.n = 0;
	n = unhex("043e2a020100005f12342d585a1e0201061a1695fe5858480b685f12342d585a0b1841e2aa00"
		  "0e00a4964fb5b6",
		  pkt, sizeof(pkt));
	assert_int_equal(hci_parse_event(pkt, n, collect, &g), 1);
	assert_int_equal(g.adv[0].rssi, -74);
	sd = ble_ad_service_data(g.adv[0].ad, g.adv[0].ad_len, 0xfe95, &sd_len);
	uint8_t key[16];
	unhex("814aac74c4f17b6c1581e1ab87816b99", key, sizeof(key));
	assert_int_equal(mibeacon_decode(sd, sd_len, g.adv[0].mac, key, 16, &r), 0);
	assert_true(fabs(r.v[0].number - 59.6) < 1e-9);

	/* two reports in one event, the second with "RSSI not available" */
	g.n = 0;
	n = unhex("043e1902" "02" "0001" "010203040506" "03" "020106" "c4" "0401" "0a0b0c0d0e0f"
		  "00" "7f",
		  pkt, sizeof(pkt));
	assert_int_equal(hci_parse_event(pkt, n, collect, &g), 2);
	assert_int_equal(g.adv[0].mac[0], 0x06);
	assert_int_equal(g.adv[1].mac[0], 0x0f);
	assert_int_equal(g.adv[1].ad_len, 0);
	assert_false(g.adv[1].has_rssi);
}

static void test_hci_extended_reports(void **state)
{
	(void)state;
	uint8_t pkt[300];
	struct got g = {0};
	/* one extended report: type 0x0013, public address, 1M PHY, no
	 * secondary, SID 0xff, TX power unknown, RSSI -60, BTHome payload */
	size_t n = unhex("043e250d01" "1300" "00" "b2188d38c1a4" "01" "00" "ff" "7f" "c4" "0000" "00"
			 "000000000000" "0b" "020106" "0716d2fc4002c409",
			 pkt, sizeof(pkt));
	assert_int_equal(pkt[2], n - 3);
	assert_int_equal(hci_parse_event(pkt, n, collect, &g), 1);
	uint8_t mac[6];
	ble_mac_parse("a4:c1:38:8d:18:b2", mac);
	assert_memory_equal(g.adv[0].mac, mac, 6);
	assert_int_equal(g.adv[0].rssi, -60);
	assert_int_equal(g.adv[0].ad_len, 11);
	assert_non_null(ble_ad_service_data(g.adv[0].ad, g.adv[0].ad_len, 0xfcd2, &n));
}

static void test_hci_malformed_and_others(void **state)
{
	(void)state;
	uint8_t pkt[300];
	struct got g = {0};
	static const char *const bad[] = {
		"043e",						/* no length */
		"043e05020100",					/* length past the end */
		"043e0d0201000000000000000005020106c4",		/* data past the event */
		"043e0c02020000010203040506000000",		/* second report missing */
		"043e0e0d010000000102030405060100ff",		/* extended, cut short */
		"023e0100",					/* not an event packet */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = unhex(bad[i], pkt, sizeof(pkt));
		assert_int_equal(hci_parse_event(pkt, n, collect, &g), -EINVAL);
	}
	/* a report that fits is delivered before the one that does not */
	assert_int_equal(g.n, 1);
	/* other events and LE subevents are not advertisements */
	size_t n = unhex("040e0401" "0c20" "00", pkt, sizeof(pkt));
	assert_int_equal(hci_parse_event(pkt, n, collect, &g), 0);
	n = unhex("043e0a03" "00000000000000000000", pkt, sizeof(pkt));
	assert_int_equal(hci_parse_event(pkt, n, collect, &g), 0);
	/* command completion */
	uint8_t status = 0xee;
	n = unhex("040e0401" "0c20" "00", pkt, sizeof(pkt));
	assert_int_equal(hci_parse_command_done(pkt, n, 0x200c, &status), 1);
	assert_int_equal(status, 0);
	assert_int_equal(hci_parse_command_done(pkt, n, 0x200b, &status), 0);
	n = unhex("040f04" "0c" "01" "0b20", pkt, sizeof(pkt));
	assert_int_equal(hci_parse_command_done(pkt, n, 0x200b, &status), 1);
	assert_int_equal(status, 0x0c);
	n = unhex("040e02010c", pkt, sizeof(pkt));
	assert_int_equal(hci_parse_command_done(pkt, n, 0x200c, &status), 0);
}

/* ---- docs/ble.md's examples ------------------------------------------------------ */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[1 << 17];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *copy = malloc(n + 1);
	if (copy)
		memcpy(copy, buf, n + 1);
	return copy;
}

/* The rest of a fenced block from `from` on (skipped when it ends in a
 * newline: the fence line), NUL-terminated in place. */
static char *block_after(char *doc, const char *from)
{
	char *p = strstr(doc, from);
	if (!p)
		return NULL;
	if (from[strlen(from) - 1] == '\n')
		p += strlen(from);
	char *end = strstr(p, "```");
	if (!end)
		return NULL;
	*end = '\0';
	return p;
}

/* The replay lines in the docs parse and are lines the integration test
 * plays; the keys file example parses. */
static void test_docs_examples(void **state)
{
	(void)state;
	char *doc = slurp("docs/ble.md");
	char *fixture = slurp("tests/fixtures/ble/mixed.replay");
	assert_non_null(doc);
	assert_non_null(fixture);
	char *replay = block_after(doc, "```replay\n");
	assert_non_null(replay);
	static struct ble_replay_line l;
	size_t lines = 0;
	for (char *line = strtok(replay, "\n"); line; line = strtok(NULL, "\n")) {
		const char *why = NULL;
		int rc = ble_replay_parse(line, &l, &why);
		assert_true(rc >= 0);
		lines += rc == 1;
		if (!strstr(fixture, line))
			fail_msg("docs/ble.md line not in the fixture: %s", line);
	}
	assert_true(lines >= 2);
	free(doc);
	doc = slurp("docs/ble.md");
	char *keys = block_after(doc, "# /etc/hearth/ble.keys");
	assert_non_null(keys);
	struct ble_keyring ring = {0};
	char err[200];
	assert_int_equal(ble_keys_parse(keys, &ring, err, sizeof(err)), 0);
	assert_int_equal(ring.n, 3);
	ble_keys_free(&ring);
	free(doc);
	free(fixture);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_docs_examples),
		cmocka_unit_test(test_ad_walk),
		cmocka_unit_test(test_ad_append),
		cmocka_unit_test(test_mac_hex_utf8),
		cmocka_unit_test(test_keys_parse),
		cmocka_unit_test(test_replay_lines),
		cmocka_unit_test(test_hci_legacy_reports),
		cmocka_unit_test(test_hci_extended_reports),
		cmocka_unit_test(test_hci_malformed_and_others),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
