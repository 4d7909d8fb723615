/*
 * The Wi-Fi plugin's configuration texts: the miIO devices file and the
 * yeelight_devices host list. Pure code (cJSON only); no host.
 *
 * The devices file is a JSON array of
 *   {"host": "192.168.1.20", "port": 54321, "token": "<32 hex>",
 *    "model": "chuangmi.plug.m1", "name": "kitchen/kettle"}
 * where port, model and name may be left out. Error texts never quote a
 * token.
 */
#ifndef WIFI_CONFIG_H
#define WIFI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "miio_codec.h"

#define WIFI_HOST_MAX 64   /* host name or IPv4 literal, with its NUL */
#define WIFI_NAME_MAX 128  /* a device name, with its NUL */
#define WIFI_MIIO_DEVICES_MAX 64
#define WIFI_YEELIGHT_MAX 64
/* Largest devices file read. */
#define WIFI_DEVICES_FILE_MAX 65536

struct miio_conf {
	char host[WIFI_HOST_MAX];
	uint16_t port;
	uint8_t token[MIIO_TOKEN_LEN];
	char model[64]; /* "" when the file does not say */
	char name[WIFI_NAME_MAX];
};

struct host_port {
	char host[WIFI_HOST_MAX];
	uint16_t port;
};

/* Parse the devices file text. At most cap entries; -EINVAL with the entry
 * and the reason in err (never the token). */
int wifi_devices_parse(const char *text, size_t len, struct miio_conf *out, size_t cap,
		       size_t *n_out, char *err, size_t err_len);

/* "192.168.1.30, 192.168.1.31:55443": host[:port], comma-separated;
 * default_port where none is given. An empty text is no hosts. */
int wifi_hosts_parse(const char *text, uint16_t default_port, struct host_port *out, size_t cap,
		     size_t *n_out, char *err, size_t err_len);

/* A host name or IPv4 literal: letters, digits, '-', '.'; 1..63 bytes. */
bool wifi_host_valid(const char *host);

/* A whole number in lo..hi. -EINVAL otherwise. */
int wifi_number_parse(const char *text, unsigned long long lo, unsigned long long hi,
		      unsigned long long *out);

/* true/false, yes/no, on/off, 1/0. -EINVAL otherwise. */
int wifi_bool_parse(const char *text, bool *out);

#endif
