/*
 * The miIO LAN packet: a 32-byte header and an AES-128-CBC payload.
 *
 *   0  magic 0x2131 (BE)     2  length u16 BE, header included
 *   4  unknown u32 BE        8  device id u32 BE     12 stamp u32 BE
 *   16 checksum: MD5(header[0:16] | token | ciphertext)
 *   32 ciphertext: AES-128-CBC, key MD5(token), iv MD5(key | token), PKCS#7
 *
 * The hello (discovery and handshake) is the bare header with every byte
 * after the length 0xff; the device answers with a bare header carrying its
 * id and stamp (and, while unprovisioned, its token in the checksum slot).
 *
 * Pure code: no host, no sockets. Crypto through OpenSSL EVP. Functions
 * return 0 or a negative errno and leave out-parameters untouched on failure.
 */
#ifndef WIFI_MIIO_CODEC_H
#define WIFI_MIIO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define MIIO_PORT 54321
#define MIIO_MAGIC 0x2131u
#define MIIO_HEADER_LEN 32
#define MIIO_TOKEN_LEN 16
/* The largest packet accepted or built; a device's longest answers (a
 * vacuum's consumables, a purifier's full property list) are far shorter. */
#define MIIO_PACKET_MAX 16384
#define MIIO_PAYLOAD_MAX (MIIO_PACKET_MAX - MIIO_HEADER_LEN)
/* Longest JSON-RPC method name this codec builds. */
#define MIIO_METHOD_MAX 48

/* A token with its derived key and iv, computed once per device. */
struct miio_keys {
	uint8_t token[MIIO_TOKEN_LEN];
	uint8_t key[16];
	uint8_t iv[16];
};

struct miio_header {
	uint16_t length;
	uint32_t unknown;
	uint32_t device_id;
	uint32_t stamp;
	uint8_t checksum[16];
};

/* What a 32-byte packet says: a hello request (everything 0xff) or a
 * device's hello answer. */
struct miio_hello {
	bool request;
	uint32_t unknown;
	uint32_t device_id;
	uint32_t stamp;
	/* An unprovisioned device puts its token in the checksum slot; all
	 * 0x00 or all 0xff means no token is offered. */
	bool has_token;
	uint8_t token[MIIO_TOKEN_LEN];
};

/* An answer to a request: {"id":N,"result":...} or {"id":N,"error":{...}}. */
struct miio_reply {
	uint32_t id;
	cJSON *root;	      /* owned; free with miio_reply_free() */
	const cJSON *result;  /* inside root; NULL for an error */
	bool is_error;
	int error_code;
	char error_message[128];
};

/* 32 hex digits into 16 bytes. -EINVAL otherwise. */
int miio_token_parse(const char *hex, uint8_t out[MIIO_TOKEN_LEN]);

/* Derive key and iv from a token. -EIO if the digest fails. */
int miio_keys_init(struct miio_keys *keys, const uint8_t token[MIIO_TOKEN_LEN]);

/* Read the header of a packet of len bytes. -EBADMSG: shorter than the
 * header, wrong magic, or a length field that is not len. */
int miio_header_parse(const uint8_t *buf, size_t len, struct miio_header *out);

/* The 32-byte hello request. */
void miio_hello_build(uint8_t out[MIIO_HEADER_LEN]);

/* A 32-byte packet (hello request or answer). -EBADMSG otherwise. */
int miio_hello_parse(const uint8_t *buf, size_t len, struct miio_hello *out);

/* A device's hello answer, as a simulator or a test would build it. token
 * NULL: the checksum slot is all 0xff (a provisioned device). */
void miio_hello_reply_build(uint32_t device_id, uint32_t stamp, const uint8_t *token,
			    uint8_t out[MIIO_HEADER_LEN]);

/* MD5(header[0:16] | token | payload) of a whole packet (len >= 32). */
int miio_checksum(const uint8_t *pkt, size_t len, const uint8_t token[MIIO_TOKEN_LEN],
		  uint8_t out[16]);

/* AES-128-CBC with PKCS#7 padding. *out_len is the ciphertext length
 * (plain_len rounded up to the next multiple of 16). -ENOSPC if cap is too
 * small, -EIO on a crypto failure. */
int miio_encrypt(const struct miio_keys *keys, const void *plain, size_t plain_len, uint8_t *out,
		 size_t cap, size_t *out_len);

/* The reverse; -EBADMSG for a length that is not a positive multiple of 16
 * or for bad padding. out needs cipher_len bytes. */
int miio_decrypt(const struct miio_keys *keys, const uint8_t *cipher, size_t cipher_len,
		 uint8_t *out, size_t cap, size_t *out_len);

/* Build a packet carrying payload (encrypted). *out_len is the packet
 * length. -EMSGSIZE if the packet would exceed MIIO_PACKET_MAX. */
int miio_packet_build(const struct miio_keys *keys, uint32_t device_id, uint32_t stamp,
		      const void *payload, size_t payload_len, uint8_t *out, size_t cap,
		      size_t *out_len);

/* Check and decrypt a packet. The payload is copied to text (trailing NUL
 * bytes stripped, then NUL-terminated) and its length stored in *text_len.
 * -EBADMSG: malformed or undecryptable; -EACCES: the checksum does not
 * match the token (wrong token or forged); -ENODATA: a bare header; -ENOSPC:
 * text too small. */
int miio_packet_open(const struct miio_keys *keys, const uint8_t *pkt, size_t len,
		     struct miio_header *hdr, char *text, size_t cap, size_t *text_len);

/* Format {"id":N,"method":"M","params":P} (P is JSON text; NULL means []).
 * Returns the length or -ENOSPC / -EINVAL (bad method name). */
int miio_request_format(char *buf, size_t cap, uint32_t id, const char *method,
			const char *params);

/* Parse a device's answer. -EBADMSG: not a JSON object with a numeric id
 * and a result or an error. On success the caller owns out->root. */
int miio_reply_parse(const char *text, size_t len, struct miio_reply *out);
void miio_reply_free(struct miio_reply *reply);

#endif
