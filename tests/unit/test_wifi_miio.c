/*
 * The miIO packet codec (plugins/wifi/miio_codec.c): every public miio and
 * miio_hello vector from ../shared/vectors/public_vectors.json, read at run
 * time, is built byte for byte and parsed back (header, checksum,
 * decryption, payload); then the error paths: damaged packets, wrong
 * tokens, bad padding, malformed JSON-RPC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/wifi/miio_codec.c"

#define VECTORS_PATH "../shared/vectors/public_vectors.json"
#define MIIO_VECTORS 9
#define HELLO_VECTORS 1

/* ---- helpers ------------------------------------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

static cJSON *vectors(void)
{
	char *text = slurp(VECTORS_PATH);
	if (!text)
		fail_msg("cannot read %s (run the tests from the repository root)", VECTORS_PATH);
	cJSON *root = cJSON_Parse(text);
	free(text);
	assert_non_null(root);
	return root;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static double num_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void keys_for(const char *token_hex, struct miio_keys *keys)
{
	uint8_t token[16];
	assert_int_equal(miio_token_parse(token_hex, token), 0);
	assert_int_equal(miio_keys_init(keys, token), 0);
}

/* ---- the public vectors -------------------------------------------------- */

static void check_parse(const cJSON *v, const uint8_t *pkt, size_t len,
			const struct miio_keys *keys)
{
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(v, "expected");
	struct miio_header hdr;
	char text[MIIO_PAYLOAD_MAX];
	size_t tlen = 0;
	const cJSON *length = cJSON_GetObjectItemCaseSensitive(exp, "length");
	if (length)
		assert_int_equal(len, (size_t)length->valuedouble);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(exp, "checksum_valid")));
	assert_int_equal(miio_packet_open(keys, pkt, len, &hdr, text, sizeof(text), &tlen), 0);
	assert_int_equal(hdr.length, len);
	assert_int_equal(hdr.unknown, 0);
	assert_int_equal(hdr.device_id, (uint32_t)num_at(exp, "device_id"));
	assert_int_equal(hdr.stamp, (uint32_t)num_at(exp, "stamp"));
	assert_int_equal(strlen(text), tlen);
	const cJSON *want_text = cJSON_GetObjectItemCaseSensitive(exp, "payload_text");
	const cJSON *want_json = cJSON_GetObjectItemCaseSensitive(exp, "json");
	assert_true(want_text || want_json);
	if (want_text)
		assert_string_equal(text, want_text->valuestring);
	if (want_json) {
		cJSON *got = cJSON_Parse(text);
		assert_non_null(got);
		assert_true(cJSON_Compare(got, want_json, 1));
		cJSON_Delete(got);
	}
	/* the checksum field is MD5(header[0:16] | token | ciphertext) */
	uint8_t sum[16];
	assert_int_equal(miio_checksum(pkt, len, keys->token, sum), 0);
	assert_memory_equal(sum, pkt + 16, 16);
	/* and decryption on its own gives the payload (plus any NUL) */
	uint8_t plain[MIIO_PAYLOAD_MAX];
	size_t plen = 0;
	assert_int_equal(miio_decrypt(keys, pkt + 32, len - 32, plain, sizeof(plain), &plen), 0);
	assert_true(plen >= tlen);
	assert_memory_equal(plain, text, tlen);
}

static void check_build(const cJSON *v, const uint8_t *pkt, size_t len,
			const struct miio_keys *keys)
{
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "build");
	const char *payload = str_at(b, "payload_text");
	uint8_t out[MIIO_PACKET_MAX];
	size_t n = 0;
	assert_int_equal(miio_packet_build(keys, (uint32_t)num_at(b, "device_id"),
					   (uint32_t)num_at(b, "stamp"), payload, strlen(payload), out,
					   sizeof(out), &n),
			 0);
	assert_int_equal(n, len);
	assert_memory_equal(out, pkt, len);
}

/* A wrong token, a flipped ciphertext byte and a flipped checksum byte are
 * all caught by the checksum. */
static void check_tamper(const cJSON *v, const uint8_t *pkt, size_t len)
{
	const char *token = str_at(cJSON_GetObjectItemCaseSensitive(v, "input"), "token");
	char wrong[33];
	struct miio_keys keys, bad;
	struct miio_header hdr;
	char text[MIIO_PAYLOAD_MAX];
	uint8_t copy[MIIO_PACKET_MAX];
	size_t n = 0;
	snprintf(wrong, sizeof(wrong), "%s", token);
	wrong[0] = wrong[0] == 'f' ? '0' : 'f';
	keys_for(token, &keys);
	keys_for(wrong, &bad);
	assert_int_equal(miio_packet_open(&bad, pkt, len, &hdr, text, sizeof(text), &n), -EACCES);
	memcpy(copy, pkt, len);
	copy[len - 1] ^= 1;
	assert_int_equal(miio_packet_open(&keys, copy, len, &hdr, text, sizeof(text), &n), -EACCES);
	memcpy(copy, pkt, len);
	copy[17] ^= 0x80;
	assert_int_equal(miio_packet_open(&keys, copy, len, &hdr, text, sizeof(text), &n), -EACCES);
	/* a length field that disagrees with the datagram */
	assert_int_equal(miio_packet_open(&keys, pkt, len - 16, &hdr, text, sizeof(text), &n),
			 -EBADMSG);
}

static void test_public_miio_vectors(void **state)
{
	(void)state;
	cJSON *root = vectors();
	const cJSON *v;
	size_t seen = 0;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "vectors"))
	{
		const cJSON *format = cJSON_GetObjectItemCaseSensitive(v, "format");
		if (!cJSON_IsString(format) || strcmp(format->valuestring, "miio") != 0)
			continue;
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(v, "input");
		uint8_t pkt[MIIO_PACKET_MAX];
		size_t len = unhex(str_at(in, "packet_hex"), pkt, sizeof(pkt));
		struct miio_keys keys;
		keys_for(str_at(in, "token"), &keys);
		print_message("miio vector %s\n", str_at(v, "id"));
		check_parse(v, pkt, len, &keys);
		check_build(v, pkt, len, &keys);
		check_tamper(v, pkt, len);
		seen++;
	}
	assert_int_equal(seen, MIIO_VECTORS);
	cJSON_Delete(root);
}

static void test_public_hello_vector(void **state)
{
	(void)state;
	cJSON *root = vectors();
	const cJSON *v;
	size_t seen = 0;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "vectors"))
	{
		const cJSON *format = cJSON_GetObjectItemCaseSensitive(v, "format");
		if (!cJSON_IsString(format) || strcmp(format->valuestring, "miio_hello") != 0)
			continue;
		const cJSON *exp = cJSON_GetObjectItemCaseSensitive(v, "expected");
		uint8_t pkt[64], built[MIIO_HEADER_LEN];
		size_t len = unhex(str_at(cJSON_GetObjectItemCaseSensitive(v, "input"), "packet_hex"),
				   pkt, sizeof(pkt));
		struct miio_hello h;
		struct miio_header hdr;
		assert_int_equal(len, (size_t)num_at(exp, "length"));
		miio_hello_build(built);
		assert_memory_equal(built, pkt, len);
		assert_int_equal(miio_header_parse(pkt, len, &hdr), 0);
		assert_int_equal(hdr.length, 32);
		assert_int_equal(miio_hello_parse(pkt, len, &h), 0);
		assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(exp, "is_hello")));
		assert_int_equal(h.request,
				 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(exp, "hello_request")));
		assert_int_equal(h.unknown, (uint32_t)num_at(exp, "unknown"));
		assert_int_equal(h.device_id, (uint32_t)num_at(exp, "device_id"));
		assert_int_equal(h.stamp, (uint32_t)num_at(exp, "stamp"));
		assert_false(h.has_token);
		seen++;
	}
	assert_int_equal(seen, HELLO_VECTORS);
	cJSON_Delete(root);
}

/* ---- hello answers ------------------------------------------------------- */

static void test_hello_answer(void **state)
{
	(void)state;
	uint8_t pkt[MIIO_HEADER_LEN], token[16];
	struct miio_hello h;
	assert_int_equal(miio_token_parse("00112233445566778899aabbccddeeff", token), 0);

	miio_hello_reply_build(0x01234567, 4242, NULL, pkt);
	assert_int_equal(miio_hello_parse(pkt, sizeof(pkt), &h), 0);
	assert_false(h.request);
	assert_int_equal(h.device_id, 0x01234567);
	assert_int_equal(h.stamp, 4242);
	assert_int_equal(h.unknown, 0);
	assert_false(h.has_token);

	/* an unprovisioned device shows its token in the checksum slot */
	miio_hello_reply_build(7, 1, token, pkt);
	assert_int_equal(miio_hello_parse(pkt, sizeof(pkt), &h), 0);
	assert_true(h.has_token);
	assert_memory_equal(h.token, token, 16);

	/* all zeros is "no token" too */
	memset(pkt + 16, 0, 16);
	assert_int_equal(miio_hello_parse(pkt, sizeof(pkt), &h), 0);
	assert_false(h.has_token);

	/* not a hello: wrong size, wrong magic */
	assert_int_equal(miio_hello_parse(pkt, 31, &h), -EBADMSG);
	pkt[0] = 0x22;
	assert_int_equal(miio_hello_parse(pkt, sizeof(pkt), &h), -EBADMSG);
}

/* ---- header, token and crypto edges -------------------------------------- */

static void test_header_errors(void **state)
{
	(void)state;
	uint8_t pkt[48] = {0x21, 0x31, 0x00, 0x30};
	struct miio_header h;
	assert_int_equal(miio_header_parse(pkt, sizeof(pkt), &h), 0);
	assert_int_equal(h.length, 48);
	assert_int_equal(miio_header_parse(pkt, 31, &h), -EBADMSG);
	assert_int_equal(miio_header_parse(NULL, 48, &h), -EBADMSG);
	pkt[3] = 0x31; /* length says 49 */
	assert_int_equal(miio_header_parse(pkt, sizeof(pkt), &h), -EBADMSG);
	pkt[3] = 0x30;
	pkt[1] = 0x32;
	assert_int_equal(miio_header_parse(pkt, sizeof(pkt), &h), -EBADMSG);
}

static void test_token_parse(void **state)
{
	(void)state;
	uint8_t t[16] = {0};
	assert_int_equal(miio_token_parse("00112233445566778899AABBCCDDEEFF", t), 0);
	assert_int_equal(t[0], 0x00);
	assert_int_equal(t[10], 0xaa);
	assert_int_equal(t[15], 0xff);
	memset(t, 0x55, sizeof(t));
	assert_int_equal(miio_token_parse("00112233445566778899aabbccddeef", t), -EINVAL);
	assert_int_equal(miio_token_parse("00112233445566778899aabbccddeeff0", t), -EINVAL);
	assert_int_equal(miio_token_parse("00112233445566778899aabbccddeegg", t), -EINVAL);
	assert_int_equal(miio_token_parse(NULL, t), -EINVAL);
	assert_int_equal(t[0], 0x55); /* untouched on failure */
}

static void test_crypto_round_trip(void **state)
{
	(void)state;
	struct miio_keys keys;
	keys_for("3c92df7588021efbcd6bd55c9147bed0", &keys);
	/* every length around block boundaries pads to the next block */
	for (size_t len = 0; len <= 48; len++) {
		uint8_t plain[64], cipher[80], back[80];
		size_t clen = 0, blen = 0;
		for (size_t i = 0; i < len; i++)
			plain[i] = (uint8_t)(i * 7 + 1);
		assert_int_equal(miio_encrypt(&keys, plain, len, cipher, sizeof(cipher), &clen), 0);
		assert_int_equal(clen, (len / 16 + 1) * 16);
		assert_int_equal(miio_decrypt(&keys, cipher, clen, back, sizeof(back), &blen), 0);
		assert_int_equal(blen, len);
		assert_memory_equal(back, plain, len);
	}
	uint8_t out[16];
	size_t n;
	assert_int_equal(miio_encrypt(&keys, "x", 1, out, 15, &n), -ENOSPC);
}

static void test_decrypt_errors(void **state)
{
	(void)state;
	struct miio_keys keys, other;
	uint8_t cipher[32], out[64];
	size_t clen = 0, n = 0;
	keys_for("00112233445566778899aabbccddeeff", &keys);
	keys_for("ffeeddccbbaa99887766554433221100", &other);
	assert_int_equal(miio_encrypt(&keys, "{\"id\":1}", 8, cipher, sizeof(cipher), &clen), 0);
	assert_int_equal(miio_decrypt(&keys, cipher, 0, out, sizeof(out), &n), -EBADMSG);
	assert_int_equal(miio_decrypt(&keys, cipher, 15, out, sizeof(out), &n), -EBADMSG);
	assert_int_equal(miio_decrypt(&keys, cipher, clen, out, 8, &n), -ENOSPC);
	/* the wrong key leaves the padding wrong (true for this block) */
	assert_int_equal(miio_decrypt(&other, cipher, clen, out, sizeof(out), &n), -EBADMSG);
}

static void test_packet_open_edges(void **state)
{
	(void)state;
	struct miio_keys keys;
	struct miio_header hdr;
	uint8_t pkt[MIIO_PACKET_MAX], hello[MIIO_HEADER_LEN];
	char text[64];
	size_t len = 0, n = 0;
	keys_for("00112233445566778899aabbccddeeff", &keys);
	/* python-miio ends its payload with a NUL: stripped */
	assert_int_equal(miio_packet_build(&keys, 5, 6, "{\"id\":2}\0", 9, pkt, sizeof(pkt), &len),
			 0);
	assert_int_equal(miio_packet_open(&keys, pkt, len, &hdr, text, sizeof(text), &n), 0);
	assert_string_equal(text, "{\"id\":2}");
	assert_int_equal(n, 8);
	/* the caller's buffer too small */
	assert_int_equal(miio_packet_open(&keys, pkt, len, &hdr, text, 8, &n), -ENOSPC);
	/* a bare header is a hello, not a payload */
	miio_hello_build(hello);
	assert_int_equal(miio_packet_open(&keys, hello, sizeof(hello), &hdr, text, sizeof(text), &n),
			 -ENODATA);
	/* a payload that is not whole blocks */
	pkt[3] = (uint8_t)(len - 1);
	assert_int_equal(miio_packet_open(&keys, pkt, len - 1, &hdr, text, sizeof(text), &n),
			 -EBADMSG);
	/* too big to build */
	static char big[MIIO_PACKET_MAX];
	memset(big, 'a', sizeof(big));
	assert_int_equal(miio_packet_build(&keys, 1, 1, big, sizeof(big), pkt, sizeof(pkt), &len),
			 -EMSGSIZE);
}

/* ---- JSON-RPC ------------------------------------------------------------ */

static void test_request_format(void **state)
{
	(void)state;
	char buf[128];
	static const char want[] = "{\"id\":7,\"method\":\"get_prop\",\"params\":[\"power\"]}";
	assert_int_equal(miio_request_format(buf, sizeof(buf), 7, "get_prop", "[\"power\"]"),
			 (int)strlen(want));
	assert_string_equal(buf, want);
	assert_true(miio_request_format(buf, sizeof(buf), 8, "miIO.info", NULL) > 0);
	assert_string_equal(buf, "{\"id\":8,\"method\":\"miIO.info\",\"params\":[]}");
	assert_int_equal(miio_request_format(buf, sizeof(buf), 1, "bad\"name", NULL), -EINVAL);
	assert_int_equal(miio_request_format(buf, sizeof(buf), 1, "", NULL), -EINVAL);
	assert_int_equal(miio_request_format(buf, 10, 1, "get_prop", "[]"), -ENOSPC);
}

static void test_reply_parse(void **state)
{
	(void)state;
	struct miio_reply r;
	const char *ok = "{\"id\":42,\"result\":[\"on\",24.5]}";
	assert_int_equal(miio_reply_parse(ok, strlen(ok), &r), 0);
	assert_int_equal(r.id, 42);
	assert_false(r.is_error);
	assert_true(cJSON_IsArray(r.result));
	assert_int_equal(cJSON_GetArraySize(r.result), 2);
	miio_reply_free(&r);

	const char *err = "{\"id\":43,\"error\":{\"code\":-5001,\"message\":\"invalid_arg\"}}";
	assert_int_equal(miio_reply_parse(err, strlen(err), &r), 0);
	assert_int_equal(r.id, 43);
	assert_true(r.is_error);
	assert_null(r.result);
	assert_int_equal(r.error_code, -5001);
	assert_string_equal(r.error_message, "invalid_arg");
	miio_reply_free(&r);
	miio_reply_free(NULL);

	static const char *const bad[] = {
		"", "[]", "{}", "not json", "{\"id\":\"1\",\"result\":[]}",
		"{\"id\":-1,\"result\":[]}", "{\"id\":1.5,\"result\":[]}", "{\"id\":1}",
		"{\"id\":4294967296,\"result\":[]}", "123456789@ABCDEFGHI",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(miio_reply_parse(bad[i], strlen(bad[i]), &r), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_public_miio_vectors),
		cmocka_unit_test(test_public_hello_vector),
		cmocka_unit_test(test_hello_answer),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_token_parse),
		cmocka_unit_test(test_crypto_round_trip),
		cmocka_unit_test(test_decrypt_errors),
		cmocka_unit_test(test_packet_open_edges),
		cmocka_unit_test(test_request_format),
		cmocka_unit_test(test_reply_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
