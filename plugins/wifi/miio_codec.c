/*
 * miIO packet codec: header, hello, checksum, AES-128-CBC payload and the
 * JSON-RPC envelope. See miio_codec.h for the layout.
 */
#include "miio_codec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* ---- bytes --------------------------------------------------------------- */

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

int miio_token_parse(const char *hex, uint8_t out[MIIO_TOKEN_LEN])
{
	uint8_t tmp[MIIO_TOKEN_LEN];
	if (!hex || strlen(hex) != 2 * MIIO_TOKEN_LEN)
		return -EINVAL;
	for (size_t i = 0; i < MIIO_TOKEN_LEN; i++) {
		int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, tmp, sizeof(tmp));
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

/* ---- crypto -------------------------------------------------------------- */

/* MD5 over up to three pieces. */
static int md5_3(const void *a, size_t alen, const void *b, size_t blen, const void *c,
		 size_t clen, uint8_t out[16])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
		 EVP_DigestUpdate(ctx, a, alen) && (!blen || EVP_DigestUpdate(ctx, b, blen)) &&
		 (!clen || EVP_DigestUpdate(ctx, c, clen)) && EVP_DigestFinal_ex(ctx, out, &n) &&
		 n == 16;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

int miio_keys_init(struct miio_keys *keys, const uint8_t token[MIIO_TOKEN_LEN])
{
	struct miio_keys k;
	memcpy(k.token, token, MIIO_TOKEN_LEN);
	int rc = md5_3(k.token, MIIO_TOKEN_LEN, NULL, 0, NULL, 0, k.key);
	if (rc == 0)
		rc = md5_3(k.key, sizeof(k.key), k.token, MIIO_TOKEN_LEN, NULL, 0, k.iv);
	if (rc == 0)
		*keys = k;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

int miio_encrypt(const struct miio_keys *keys, const void *plain, size_t plain_len, uint8_t *out,
		 size_t cap, size_t *out_len)
{
	size_t need = (plain_len / 16 + 1) * 16;
	if (need > cap || plain_len > MIIO_PAYLOAD_MAX)
		return -ENOSPC;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0;
	int ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, keys->key, keys->iv) &&
		 EVP_EncryptUpdate(ctx, out, &n1, plain, (int)plain_len) &&
		 EVP_EncryptFinal_ex(ctx, out + n1, &n2);
	EVP_CIPHER_CTX_free(ctx);
	if (!ok || (size_t)(n1 + n2) != need)
		return -EIO;
	*out_len = need;
	return 0;
}

int miio_decrypt(const struct miio_keys *keys, const uint8_t *cipher, size_t cipher_len,
		 uint8_t *out, size_t cap, size_t *out_len)
{
	if (cipher_len == 0 || cipher_len % 16 || cipher_len > MIIO_PAYLOAD_MAX)
		return -EBADMSG;
	if (cap < cipher_len)
		return -ENOSPC;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	int n1 = 0, n2 = 0, rc = 0;
	if (!EVP_DecryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, keys->key, keys->iv) ||
	    !EVP_DecryptUpdate(ctx, out, &n1, cipher, (int)cipher_len))
		rc = -EIO;
	else if (!EVP_DecryptFinal_ex(ctx, out + n1, &n2))
		rc = -EBADMSG; /* the padding is wrong: wrong key or damaged */
	EVP_CIPHER_CTX_free(ctx);
	if (rc == 0)
		*out_len = (size_t)(n1 + n2);
	return rc;
}

int miio_checksum(const uint8_t *pkt, size_t len, const uint8_t token[MIIO_TOKEN_LEN],
		  uint8_t out[16])
{
	if (len < MIIO_HEADER_LEN)
		return -EBADMSG;
	return md5_3(pkt, 16, token, MIIO_TOKEN_LEN, pkt + MIIO_HEADER_LEN, len - MIIO_HEADER_LEN,
		     out);
}

/* ---- header and hello ---------------------------------------------------- */

int miio_header_parse(const uint8_t *buf, size_t len, struct miio_header *out)
{
	if (!buf || len < MIIO_HEADER_LEN || len > 0xffff)
		return -EBADMSG;
	if (get_be16(buf) != MIIO_MAGIC || get_be16(buf + 2) != len)
		return -EBADMSG;
	out->length = get_be16(buf + 2);
	out->unknown = get_be32(buf + 4);
	out->device_id = get_be32(buf + 8);
	out->stamp = get_be32(buf + 12);
	memcpy(out->checksum, buf + 16, 16);
	return 0;
}

void miio_hello_build(uint8_t out[MIIO_HEADER_LEN])
{
	put_be16(out, MIIO_MAGIC);
	put_be16(out + 2, MIIO_HEADER_LEN);
	memset(out + 4, 0xff, MIIO_HEADER_LEN - 4);
}

void miio_hello_reply_build(uint32_t device_id, uint32_t stamp, const uint8_t *token,
			    uint8_t out[MIIO_HEADER_LEN])
{
	put_be16(out, MIIO_MAGIC);
	put_be16(out + 2, MIIO_HEADER_LEN);
	put_be32(out + 4, 0);
	put_be32(out + 8, device_id);
	put_be32(out + 12, stamp);
	if (token)
		memcpy(out + 16, token, MIIO_TOKEN_LEN);
	else
		memset(out + 16, 0xff, MIIO_TOKEN_LEN);
}

int miio_hello_parse(const uint8_t *buf, size_t len, struct miio_hello *out)
{
	struct miio_header h;
	if (len != MIIO_HEADER_LEN || miio_header_parse(buf, len, &h))
		return -EBADMSG;
	struct miio_hello r = {
		.unknown = h.unknown,
		.device_id = h.device_id,
		.stamp = h.stamp,
		.request = all_bytes(buf + 4, MIIO_HEADER_LEN - 4, 0xff),
	};
	r.has_token = !all_bytes(h.checksum, 16, 0xff) && !all_bytes(h.checksum, 16, 0x00);
	if (r.has_token)
		memcpy(r.token, h.checksum, MIIO_TOKEN_LEN);
	*out = r;
	OPENSSL_cleanse(&r, sizeof(r));
	return 0;
}

/* ---- packets ------------------------------------------------------------- */

int miio_packet_build(const struct miio_keys *keys, uint32_t device_id, uint32_t stamp,
		      const void *payload, size_t payload_len, uint8_t *out, size_t cap,
		      size_t *out_len)
{
	size_t cipher_len = (payload_len / 16 + 1) * 16;
	if (payload_len > MIIO_PAYLOAD_MAX || MIIO_HEADER_LEN + cipher_len > MIIO_PACKET_MAX)
		return -EMSGSIZE;
	if (cap < MIIO_HEADER_LEN + cipher_len)
		return -ENOSPC;
	size_t n = 0;
	int rc = miio_encrypt(keys, payload, payload_len, out + MIIO_HEADER_LEN,
			      cap - MIIO_HEADER_LEN, &n);
	if (rc)
		return rc;
	put_be16(out, MIIO_MAGIC);
	put_be16(out + 2, (uint16_t)(MIIO_HEADER_LEN + n));
	put_be32(out + 4, 0);
	put_be32(out + 8, device_id);
	put_be32(out + 12, stamp);
	uint8_t sum[16];
	rc = miio_checksum(out, MIIO_HEADER_LEN + n, keys->token, sum);
	if (rc)
		return rc;
	memcpy(out + 16, sum, 16);
	*out_len = MIIO_HEADER_LEN + n;
	return 0;
}

int miio_packet_open(const struct miio_keys *keys, const uint8_t *pkt, size_t len,
		     struct miio_header *hdr, char *text, size_t cap, size_t *text_len)
{
	struct miio_header h;
	uint8_t sum[16];
	uint8_t plain[MIIO_PAYLOAD_MAX];
	size_t n = 0;
	int rc = miio_header_parse(pkt, len, &h);
	if (rc)
		return rc;
	if (len == MIIO_HEADER_LEN)
		return -ENODATA;
	if ((len - MIIO_HEADER_LEN) % 16)
		return -EBADMSG;
	if ((rc = miio_checksum(pkt, len, keys->token, sum)))
		return rc;
	if (CRYPTO_memcmp(sum, h.checksum, 16) != 0)
		return -EACCES;
	rc = miio_decrypt(keys, pkt + MIIO_HEADER_LEN, len - MIIO_HEADER_LEN, plain, sizeof(plain),
			  &n);
	if (rc)
		return rc;
	/* python-miio ends its JSON with a NUL; devices do not */
	while (n > 0 && plain[n - 1] == '\0')
		n--;
	if (n + 1 > cap) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(text, plain, n);
	text[n] = '\0';
	*text_len = n;
	*hdr = h;
out:
	OPENSSL_cleanse(plain, n);
	return rc;
}

/* ---- JSON-RPC ------------------------------------------------------------ */

static bool method_ok(const char *m)
{
	size_t n = m ? strlen(m) : 0;
	if (n == 0 || n > MIIO_METHOD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (m[i] == '"' || m[i] == '\\' || (unsigned char)m[i] < 0x20)
			return false;
	return true;
}

int miio_request_format(char *buf, size_t cap, uint32_t id, const char *method,
			const char *params)
{
	if (!method_ok(method))
		return -EINVAL;
	int n = snprintf(buf, cap, "{\"id\":%u,\"method\":\"%s\",\"params\":%s}", id, method,
			 params ? params : "[]");
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}

static bool id_value(const cJSON *id, uint32_t *out)
{
	if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 4294967295.0 ||
	    id->valuedouble != (double)(uint32_t)id->valuedouble)
		return false;
	*out = (uint32_t)id->valuedouble;
	return true;
}

static void error_fill(const cJSON *err, struct miio_reply *r)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
	r->is_error = true;
	r->error_code = cJSON_IsNumber(code) && code->valuedouble > -1e9 && code->valuedouble < 1e9
				? (int)code->valuedouble
				: 0;
	snprintf(r->error_message, sizeof(r->error_message), "%s",
		 cJSON_IsString(msg) ? msg->valuestring : "error");
}

int miio_reply_parse(const char *text, size_t len, struct miio_reply *out)
{
	if (!text || len == 0 || len > MIIO_PAYLOAD_MAX)
		return -EBADMSG;
	cJSON *root = cJSON_ParseWithLength(text, len);
	struct miio_reply r = {.root = root};
	if (!cJSON_IsObject(root) || !id_value(cJSON_GetObjectItemCaseSensitive(root, "id"), &r.id))
		goto bad;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
	r.result = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (err) {
		r.result = NULL;
		error_fill(err, &r);
	} else if (!r.result) {
		goto bad;
	}
	*out = r;
	return 0;
bad:
	cJSON_Delete(root);
	return -EBADMSG;
}

void miio_reply_free(struct miio_reply *reply)
{
	if (!reply)
		return;
	cJSON_Delete(reply->root);
	reply->root = NULL;
	reply->result = NULL;
}
