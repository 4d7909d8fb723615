#include "web_auth.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>

/* -- listen address -------------------------------------------------------- */

static int parse_port(const char *text, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (!*text || *end || errno || v < 0 || v > 65535 || text[0] == '+' || text[0] == '-')
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int web_listen_parse(const char *text, struct web_listen *out)
{
	struct web_listen l = {0};
	const char *colon;
	size_t host_len;
	if (!text)
		return -EINVAL;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		host_len = (size_t)(close - text - 1);
		colon = close + 1;
		text++;
		l.ipv6 = true;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		host_len = (size_t)(colon - text);
	}
	if (host_len == 0 || host_len >= sizeof(l.host) || parse_port(colon + 1, &l.port))
		return -EINVAL;
	memcpy(l.host, text, host_len);
	l.host[host_len] = '\0';
	if (!l.ipv6 && strcmp(l.host, "localhost") == 0)
		strcpy(l.host, "127.0.0.1");
	unsigned char addr[16];
	if (inet_pton(l.ipv6 ? AF_INET6 : AF_INET, l.host, addr) != 1)
		return -EINVAL;
	static const unsigned char v6_loopback[16] = {[15] = 1};
	l.loopback = l.ipv6 ? memcmp(addr, v6_loopback, 16) == 0 : addr[0] == 127;
	*out = l;
	return 0;
}

/* -- password file ------------------------------------------------------------ */

int web_password_read(const char *path, char *hash, size_t cap, char *err, size_t err_len)
{
	char line[WEB_HASH_MAX + 2];
	int rc = 0;
	FILE *f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		snprintf(err, err_len, "cannot read web password_file %s: %s", path, strerror(-rc));
		return rc;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO))) {
		snprintf(err, err_len,
			 "web password_file %s is accessible by group or others; chmod 600 it", path);
		rc = -EACCES;
		goto out;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	/* a hash this libcrypt knows and still allows; never a plain password */
	int ok = line[0] == '$' ? crypt_checksalt(line) : CRYPT_SALT_INVALID;
	if (ok != CRYPT_SALT_OK && ok != CRYPT_SALT_METHOD_LEGACY) {
		snprintf(err, err_len,
			 "web password_file %s: the first line is not a crypt(3) hash (make one "
			 "with mkpasswd -m yescrypt, or openssl passwd -6)",
			 path);
		rc = -EINVAL;
		goto out;
	}
	if (strlen(line) >= cap) {
		snprintf(err, err_len, "web password_file %s: the hash is too long", path);
		rc = -EINVAL;
		goto out;
	}
	strcpy(hash, line);
out:
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return rc;
}

static bool same_bytes(const char *a, const char *b, size_t n)
{
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

bool web_password_verify(const char *password, const char *hash)
{
	struct crypt_data *data = calloc(1, sizeof(*data));
	if (!data)
		return false;
	const char *out = crypt_rn(password, hash, data, (int)sizeof(*data));
	size_t len = strlen(hash);
	/* crypt_rn gives NULL or a string starting with '*' on failure */
	bool ok = out && out[0] != '*' && strlen(out) == len && same_bytes(out, hash, len);
	explicit_bzero(data, sizeof(*data));
	free(data);
	return ok;
}

int web_password_hash(const char *password, char *out, size_t cap)
{
	if (!password || !password[0])
		return -EINVAL;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, (int)sizeof(salt)))
		return -EIO;
	struct crypt_data *data = calloc(1, sizeof(*data));
	if (!data)
		return -ENOMEM;
	const char *hash = crypt_rn(password, salt, data, (int)sizeof(*data));
	int rc = hash && hash[0] == '$' && strlen(hash) < cap ? 0 : -EIO;
	if (!rc)
		snprintf(out, cap, "%s", hash);
	explicit_bzero(data, sizeof(*data));
	free(data);
	return rc;
}

/* -- sessions ------------------------------------------------------------------ */

static bool expired(const struct web_session *s, int64_t now_ms)
{
	return now_ms - s->used_ms > WEB_SESSION_IDLE_MS ||
	       now_ms - s->created_ms > WEB_SESSION_LIFE_MS;
}

static void drop(struct web_sessions *ss, size_t i)
{
	explicit_bzero(&ss->s[i], sizeof(ss->s[i]));
	ss->s[i] = ss->s[--ss->n];
	explicit_bzero(&ss->s[ss->n], sizeof(ss->s[ss->n]));
}

int web_session_new(struct web_sessions *ss, int64_t now_ms, char token_out[WEB_TOKEN_LEN + 1])
{
	unsigned char raw[WEB_TOKEN_BYTES];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	if (ss->n == WEB_SESSIONS_MAX) {
		size_t oldest = 0;
		for (size_t i = 1; i < ss->n; i++)
			if (ss->s[i].used_ms < ss->s[oldest].used_ms)
				oldest = i;
		drop(ss, oldest);
	}
	struct web_session *s = &ss->s[ss->n++];
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
	s->created_ms = s->used_ms = now_ms;
	explicit_bzero(raw, sizeof(raw));
	memcpy(token_out, s->token, sizeof(s->token));
	return 0;
}

bool web_session_check(struct web_sessions *ss, const char *token, int64_t now_ms)
{
	if (!token || strlen(token) != WEB_TOKEN_LEN)
		return false;
	bool found = false;
	for (size_t i = ss->n; i-- > 0;) {
		if (expired(&ss->s[i], now_ms)) {
			drop(ss, i);
			continue;
		}
		/* every live token is compared in full, found or not */
		if (same_bytes(ss->s[i].token, token, WEB_TOKEN_LEN)) {
			ss->s[i].used_ms = now_ms;
			found = true;
		}
	}
	return found;
}

void web_session_end(struct web_sessions *ss, const char *token)
{
	if (!token || strlen(token) != WEB_TOKEN_LEN)
		return;
	for (size_t i = ss->n; i-- > 0;)
		if (same_bytes(ss->s[i].token, token, WEB_TOKEN_LEN))
			drop(ss, i);
}

int web_cookie_token(const char *cookie, char out[WEB_TOKEN_LEN + 1])
{
	static const char name[] = WEB_COOKIE_NAME "=";
	const char *p = cookie;
	while (p && *p) {
		p += strspn(p, " \t");
		if (strncmp(p, name, sizeof(name) - 1) == 0) {
			const char *v = p + sizeof(name) - 1;
			size_t n = strspn(v, "0123456789abcdef");
			if (n != WEB_TOKEN_LEN || (v[n] && v[n] != ';' && v[n] != ' '))
				return -ENOENT;
			memcpy(out, v, n);
			out[n] = '\0';
			return 0;
		}
		p = strchr(p, ';');
		if (p)
			p++;
	}
	return -ENOENT;
}

/* -- failed logins ---------------------------------------------------------------- */

static struct web_limit_entry *limit_find(struct web_limiter *l, const char *addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->e[i].addr, addr) == 0)
			return &l->e[i];
	return NULL;
}

static void window_roll(struct web_limiter *l, int64_t now_ms)
{
	if (now_ms - l->window_start_ms >= WEB_LIMIT_GLOBAL_WINDOW_MS) {
		l->window_start_ms = now_ms;
		l->window_failures = 0;
	}
}

int64_t web_limiter_wait_ms(struct web_limiter *l, const char *addr, int64_t now_ms)
{
	window_roll(l, now_ms);
	int64_t wait = 0;
	if (l->window_failures >= WEB_LIMIT_GLOBAL_FAILURES)
		wait = l->window_start_ms + WEB_LIMIT_GLOBAL_WINDOW_MS - now_ms;
	const struct web_limit_entry *e = limit_find(l, addr);
	if (e && e->until_ms - now_ms > wait)
		wait = e->until_ms - now_ms;
	return wait;
}

/* A slot for addr: its own, a free one, a forgiven one, or the quietest. */
static struct web_limit_entry *limit_slot(struct web_limiter *l, const char *addr, int64_t now_ms)
{
	struct web_limit_entry *e = limit_find(l, addr);
	if (e)
		return e;
	if (l->n < WEB_LIMIT_ADDRS) {
		e = &l->e[l->n++];
	} else {
		e = &l->e[0];
		for (size_t i = 1; i < l->n; i++)
			if (l->e[i].last_ms < e->last_ms)
				e = &l->e[i];
	}
	*e = (struct web_limit_entry){.last_ms = now_ms};
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	return e;
}

void web_limiter_failed(struct web_limiter *l, const char *addr, int64_t now_ms)
{
	window_roll(l, now_ms);
	l->window_failures++;
	struct web_limit_entry *e = limit_slot(l, addr, now_ms);
	if (now_ms - e->last_ms > WEB_LIMIT_FORGET_MS)
		e->failures = 0;
	e->failures++;
	e->last_ms = now_ms;
	if (e->failures >= WEB_LIMIT_FREE_FAILURES) {
		unsigned shift = e->failures - WEB_LIMIT_FREE_FAILURES;
		int64_t wait = shift >= 20 ? WEB_LIMIT_MAX_WAIT_MS : 1000LL << shift;
		e->until_ms = now_ms + (wait > WEB_LIMIT_MAX_WAIT_MS ? WEB_LIMIT_MAX_WAIT_MS : wait);
	}
}

void web_limiter_passed(struct web_limiter *l, const char *addr)
{
	struct web_limit_entry *e = limit_find(l, addr);
	if (e)
		*e = l->e[--l->n];
}

/* -- request checks ---------------------------------------------------------------- */

bool web_host_is_loopback(const char *host)
{
	if (!host)
		return false;
	char name[64];
	size_t len;
	if (host[0] == '[') {
		const char *close = strchr(host, ']');
		if (!close || (close[1] && close[1] != ':'))
			return false;
		return (size_t)(close - host) == 4 && strncmp(host, "[::1]", 5) == 0;
	}
	len = strcspn(host, ":");
	if (len == 0 || len >= sizeof(name))
		return false;
	memcpy(name, host, len);
	name[len] = '\0';
	if (strcasecmp(name, "localhost") == 0)
		return true;
	unsigned char a[4];
	return inet_pton(AF_INET, name, a) == 1 && a[0] == 127;
}

bool web_origin_ok(const char *origin, const char *host, bool tls)
{
	if (!origin || !host || !host[0])
		return false;
	const char *scheme = tls ? "https://" : "http://";
	size_t sl = strlen(scheme);
	return strncasecmp(origin, scheme, sl) == 0 && strcasecmp(origin + sl, host) == 0;
}
