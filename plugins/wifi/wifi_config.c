/*
 * Configuration texts of the Wi-Fi plugin; see wifi_config.h.
 */
#include "wifi_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

bool wifi_host_valid(const char *host)
{
	size_t n = host ? strlen(host) : 0;
	if (n == 0 || n >= WIFI_HOST_MAX || host[0] == '-' || host[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

int wifi_number_parse(const char *text, unsigned long long lo, unsigned long long hi,
		      unsigned long long *out)
{
	char *end;
	if (!text || text[0] < '0' || text[0] > '9' || strlen(text) > 20)
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int wifi_bool_parse(const char *text, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; text && i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
			*out = strcasecmp(text, yes[i]) == 0;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- the devices file ----------------------------------------------------- */

static const char *const entry_keys[] = {"host", "port", "token", "model", "name"};

static int string_member(const cJSON *o, const char *key, bool required, char *out, size_t cap,
			 const char **why)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v) {
		if (required)
			*why = "is missing";
		return required ? -EINVAL : 0;
	}
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap || !v->valuestring[0]) {
		*why = "is not a text of the right length";
		return -EINVAL;
	}
	snprintf(out, cap, "%s", v->valuestring);
	return 0;
}

static int entry_check_keys(const cJSON *o, const char **bad)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, o)
	{
		bool known = false;
		for (size_t i = 0; i < sizeof(entry_keys) / sizeof(entry_keys[0]); i++)
			known |= strcmp(item->string, entry_keys[i]) == 0;
		if (!known) {
			*bad = item->string;
			return -EINVAL;
		}
	}
	return 0;
}

static int entry_parse(const cJSON *o, struct miio_conf *c, const char **key, const char **why)
{
	char token[40];
	const cJSON *port = cJSON_GetObjectItemCaseSensitive(o, "port");
	int rc = 0;
	memset(c, 0, sizeof(*c));
	c->port = MIIO_PORT;
	if (!cJSON_IsObject(o)) {
		*key = "entry";
		*why = "is not an object";
		return -EINVAL;
	}
	if (entry_check_keys(o, key)) {
		*why = "is not a known key (host, port, token, model, name)";
		return -EINVAL;
	}
	if ((rc = string_member(o, *key = "host", true, c->host, sizeof(c->host), why)))
		return rc;
	if (!wifi_host_valid(c->host)) {
		*why = "is not a host name or IPv4 address";
		return -EINVAL;
	}
	*key = "port";
	if (port && (!cJSON_IsNumber(port) || port->valuedouble < 1 || port->valuedouble > 65535 ||
		     port->valuedouble != (int)port->valuedouble)) {
		*why = "is not a whole number in 1..65535";
		return -EINVAL;
	}
	if (port)
		c->port = (uint16_t)port->valuedouble;
	rc = string_member(o, *key = "token", true, token, sizeof(token), why);
	if (rc == 0 && miio_token_parse(token, c->token)) {
		*why = "is not 32 hexadecimal digits";
		rc = -EINVAL;
	}
	OPENSSL_cleanse(token, sizeof(token));
	if (rc == 0)
		rc = string_member(o, *key = "model", false, c->model, sizeof(c->model), why);
	if (rc == 0)
		rc = string_member(o, *key = "name", false, c->name, sizeof(c->name), why);
	return rc;
}

static bool duplicate(const struct miio_conf *list, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (strcmp(list[i].host, list[n - 1].host) == 0 && list[i].port == list[n - 1].port)
			return true;
	return false;
}

int wifi_devices_parse(const char *text, size_t len, struct miio_conf *out, size_t cap,
		       size_t *n_out, char *err, size_t err_len)
{
	cJSON *root = text && len <= WIFI_DEVICES_FILE_MAX ? cJSON_ParseWithLength(text, len) : NULL;
	size_t n = 0;
	int rc = 0;
	if (!cJSON_IsArray(root)) {
		snprintf(err, err_len, "not a JSON array of devices");
		rc = -EINVAL;
		goto out;
	}
	const cJSON *item;
	cJSON_ArrayForEach(item, root)
	{
		const char *key = "entry", *why = "";
		if (n == cap) {
			snprintf(err, err_len, "more than %zu devices", cap);
			rc = -EINVAL;
			break;
		}
		if ((rc = entry_parse(item, &out[n], &key, &why))) {
			snprintf(err, err_len, "device %zu: %s %s", n + 1, key, why);
			break;
		}
		if (duplicate(out, ++n)) {
			snprintf(err, err_len, "device %zu: %s:%u is listed twice", n, out[n - 1].host,
				 out[n - 1].port);
			rc = -EINVAL;
			break;
		}
	}
	if (rc == 0)
		*n_out = n;
out:
	cJSON_Delete(root);
	return rc;
}

/* ---- host lists ---------------------------------------------------------- */

static void trim(char **s)
{
	while (**s == ' ' || **s == '\t')
		(*s)++;
	size_t n = strlen(*s);
	while (n > 0 && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
		(*s)[--n] = '\0';
}

static int host_entry(char *entry, uint16_t default_port, struct host_port *hp)
{
	unsigned long long port = default_port;
	char *colon = strchr(entry, ':');
	if (colon) {
		*colon = '\0';
		char *p = colon + 1;
		trim(&p);
		if (wifi_number_parse(p, 1, 65535, &port))
			return -EINVAL;
	}
	trim(&entry);
	if (!wifi_host_valid(entry))
		return -EINVAL;
	snprintf(hp->host, sizeof(hp->host), "%s", entry);
	hp->port = (uint16_t)port;
	return 0;
}

int wifi_hosts_parse(const char *text, uint16_t default_port, struct host_port *out, size_t cap,
		     size_t *n_out, char *err, size_t err_len)
{
	char buf[4096];
	size_t n = 0;
	if (!text || strlen(text) >= sizeof(buf)) {
		snprintf(err, err_len, "longer than %zu bytes", sizeof(buf) - 1);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", text);
	char *s = buf;
	trim(&s);
	while (*s) {
		char *entry = s, *comma = strchr(s, ',');
		s = comma ? comma + 1 : s + strlen(s);
		if (comma)
			*comma = '\0';
		char shown[WIFI_HOST_MAX + 8];
		snprintf(shown, sizeof(shown), "%s", entry);
		if (n == cap) {
			snprintf(err, err_len, "more than %zu hosts", cap);
			return -EINVAL;
		}
		if (host_entry(entry, default_port, &out[n])) {
			snprintf(err, err_len, "'%.70s' is not host[:port]", shown);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if (strcmp(out[i].host, out[n].host) == 0 && out[i].port == out[n].port) {
				snprintf(err, err_len, "%s:%u is listed twice", out[n].host, out[n].port);
				return -EINVAL;
			}
		n++;
	}
	*n_out = n;
	return 0;
}
