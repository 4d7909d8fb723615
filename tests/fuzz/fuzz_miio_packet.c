/*
 * libFuzzer target for the miIO packet codec: the bytes as a datagram from
 * a device (header, hello, checksum, decryption, JSON-RPC answer), the same
 * bytes with the checksum made right (so decryption and padding are
 * reached), and the bytes as the plaintext of a well-formed packet (so the
 * JSON-RPC parser sees fuzzed text behind a valid envelope).
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libcjson) \
 *       tests/fuzz/fuzz_miio_packet.c plugins/wifi/miio_codec.c \
 *       $(pkg-config --libs libcjson libcrypto) -o fuzz_miio_packet
 *   ./fuzz_miio_packet tests/fuzz/corpus/miio_packet
 * fuzz-sources: plugins/wifi/miio_codec.c
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugins/wifi/miio_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t token[MIIO_TOKEN_LEN] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
					      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

static void open_and_parse(const struct miio_keys *keys, const uint8_t *pkt, size_t len)
{
	static char text[MIIO_PAYLOAD_MAX];
	struct miio_header hdr;
	struct miio_hello hello;
	struct miio_reply reply;
	size_t n = 0;
	(void)miio_header_parse(pkt, len, &hdr);
	(void)miio_hello_parse(pkt, len, &hello);
	if (miio_packet_open(keys, pkt, len, &hdr, text, sizeof(text), &n) == 0 &&
	    miio_reply_parse(text, n, &reply) == 0)
		miio_reply_free(&reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct miio_keys keys;
	static uint8_t pkt[MIIO_PACKET_MAX];
	static int ready;
	struct miio_reply reply;
	size_t len = 0;
	if (!ready && miio_keys_init(&keys, token) == 0)
		ready = 1;
	if (!ready || size > MIIO_PACKET_MAX)
		return 0;
	open_and_parse(&keys, data, size);
	/* the same bytes with a length and checksum that fit */
	if (size >= MIIO_HEADER_LEN) {
		memcpy(pkt, data, size);
		pkt[0] = 0x21;
		pkt[1] = 0x31;
		pkt[2] = (uint8_t)(size >> 8);
		pkt[3] = (uint8_t)size;
		if (miio_checksum(pkt, size, token, pkt + 16) == 0)
			open_and_parse(&keys, pkt, size);
	}
	/* the bytes as a payload */
	if (miio_packet_build(&keys, 1, 2, data, size, pkt, sizeof(pkt), &len) == 0)
		open_and_parse(&keys, pkt, len);
	if (miio_reply_parse((const char *)data, size, &reply) == 0)
		miio_reply_free(&reply);
	return 0;
}
