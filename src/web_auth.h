/*
 * web_auth: the dashboard's gatekeeping, free of any HTTP library so it can
 * be tested alone: the listen address, the password file (a crypt(3) hash),
 * session tokens carried in a cookie, the failed-login limiter, and the
 * Host and Origin checks that keep other web sites out.
 *
 * Pure apart from getrandom() for tokens and crypt_rn() for passwords
 * (slow on purpose: call web_password_verify on the thread pool).
 * Loop thread only, except web_password_read and web_password_verify,
 * which touch no shared state.
 */
#ifndef HEARTH_WEB_AUTH_H
#define HEARTH_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEB_COOKIE_NAME "hearth_session"
#define WEB_TOKEN_BYTES 32
#define WEB_TOKEN_LEN (2 * WEB_TOKEN_BYTES) /* hex characters */
#define WEB_SESSIONS_MAX 64
#define WEB_SESSION_IDLE_MS (7LL * 24 * 3600 * 1000)	 /* unused this long: ended */
#define WEB_SESSION_LIFE_MS (30LL * 24 * 3600 * 1000) /* whatever the use */
#define WEB_PASSWORD_MAX 256				 /* bytes of a typed password */
#define WEB_HASH_MAX 512				 /* bytes of a crypt(3) hash */

/* -- listen address ---------------------------------------------------------- */

struct web_listen {
	char host[64]; /* numeric address, without brackets */
	int port;      /* 0..65535; 0: any free port */
	bool ipv6;
	bool loopback; /* 127.0.0.0/8 or ::1 */
};

/* Parse "127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080", "[::]:8080" or
 * "localhost:8080" (taken as 127.0.0.1). 0 or -EINVAL; *out untouched on
 * failure. */
int web_listen_parse(const char *text, struct web_listen *out);

/* -- password file ------------------------------------------------------------- */

/*
 * Read the hash on the first line of path into hash. Refused: a file others
 * or the group can access (-EACCES), a line that is not a crypt(3) hash
 * this system can check (-EINVAL), a missing file (-ENOENT ...). err names
 * the file and the reason.
 */
int web_password_read(const char *path, char *hash, size_t cap, char *err, size_t err_len);

/* Does password match hash? Constant time in the comparison; crypt itself
 * takes tens of milliseconds by design. */
bool web_password_verify(const char *password, const char *hash);
/* A new yescrypt hash of password (crypt(3) "$y$...", random salt) into out.
 * 0, or -EINVAL for an empty password, -EIO when libcrypt fails. */
int web_password_hash(const char *password, char *out, size_t cap);

/* -- sessions ---------------------------------------------------------------------- */

struct web_session {
	char token[WEB_TOKEN_LEN + 1];
	int64_t created_ms;
	int64_t used_ms;
};

struct web_sessions {
	struct web_session s[WEB_SESSIONS_MAX];
	size_t n;
};

/* A new session: a random token (hex) in token_out. When the table is full
 * the session unused for longest is ended. 0 or -EIO (no randomness). */
int web_session_new(struct web_sessions *ss, int64_t now_ms, char token_out[WEB_TOKEN_LEN + 1]);

/* Is token a live session? Marks it used; ends expired ones. The token is
 * compared in constant time. */
bool web_session_check(struct web_sessions *ss, const char *token, int64_t now_ms);

/* End the session of token (no error if there is none). */
void web_session_end(struct web_sessions *ss, const char *token);

/* Find WEB_COOKIE_NAME in a Cookie header value. 0 with out filled, or
 * -ENOENT (absent or not a token). */
int web_cookie_token(const char *cookie, char out[WEB_TOKEN_LEN + 1]);

/* -- failed logins -------------------------------------------------------------------- */

#define WEB_LIMIT_ADDRS 256	     /* addresses remembered */
#define WEB_LIMIT_FREE_FAILURES 5    /* per address before waits begin */
#define WEB_LIMIT_MAX_WAIT_MS 900000 /* the longest wait: 15 minutes */
#define WEB_LIMIT_FORGET_MS 3600000  /* a quiet address is forgiven */
#define WEB_LIMIT_GLOBAL_FAILURES 30 /* from all addresses in a window ... */
#define WEB_LIMIT_GLOBAL_WINDOW_MS 60000 /* ... closes logins for its rest */

struct web_limit_entry {
	char addr[48];
	unsigned failures;
	int64_t last_ms;
	int64_t until_ms;
};

struct web_limiter {
	struct web_limit_entry e[WEB_LIMIT_ADDRS];
	size_t n;
	int64_t window_start_ms;
	unsigned window_failures;
};

/* How long addr must wait before its next try: 0 means it may try now. */
int64_t web_limiter_wait_ms(struct web_limiter *l, const char *addr, int64_t now_ms);
/* A wrong password from addr: after WEB_LIMIT_FREE_FAILURES each failure
 * doubles the wait, from 1 s to WEB_LIMIT_MAX_WAIT_MS. */
void web_limiter_failed(struct web_limiter *l, const char *addr, int64_t now_ms);
/* A right password from addr: its count starts again. */
void web_limiter_passed(struct web_limiter *l, const char *addr);

/* -- request checks ------------------------------------------------------------------- */

/* Does a Host header name this machine's loopback ("127.0.0.1:8080",
 * "localhost:8080", "[::1]:8080")? Against DNS rebinding when no password
 * guards the dashboard. */
bool web_host_is_loopback(const char *host);

/* Is origin exactly http(s)://host (the scheme by tls)? A page from any
 * other site may neither log in nor open the WebSocket. */
bool web_origin_ok(const char *origin, const char *host, bool tls);

#endif
