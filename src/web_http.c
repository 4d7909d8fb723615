/*
 * web_http: the dashboard's HTTP side: its files, and the login, logout and
 * session requests. The password is checked on the thread pool, since
 * crypt(3) is slow on purpose.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "hub.h"
#include "log.h"
#include "web_internal.h"

#define HEADERS_MAX 1024
#define COOKIE_MAX_AGE_S (WEB_SESSION_LIFE_MS / 1000)

static const char *src = "web";

enum route { R_NONE, R_LOGIN, R_LOGOUT, R_REFUSE };

struct login_job {
	uv_work_t work;
	struct web *w;
	struct lws *wsi; /* NULL once the connection has gone */
	char password[WEB_PASSWORD_MAX + 1];
	char addr[48];
	int rc;
	bool ok;
	char err[512];
};

/* Per HTTP connection, zeroed by lws. */
struct http_pss {
	enum route route;
	char body[WEB_BODY_MAX + 1];
	size_t body_len;
	bool body_too_big;
	struct login_job *job;
	int refuse_status;

	bool replying;
	int status;
	char reply[256];
	char cookie[160];
	char location[32];
	long retry_after_s;
};

size_t web_http_session_size(void)
{
	return sizeof(struct http_pss);
}

void web_header(struct lws *wsi, enum lws_token_indexes token, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (lws_hdr_total_length(wsi, token) <= 0 ||
	    lws_hdr_copy(wsi, buf, (int)cap, token) < 0)
		buf[0] = '\0';
}

int web_gate(struct web *w, struct lws *wsi, bool need_origin, char token[WEB_TOKEN_LEN + 1])
{
	char host[256], origin[300], cookie[4096];
	web_header(wsi, WSI_TOKEN_HOST, host, sizeof(host));
	if (!w->password_file && !web_host_is_loopback(host))
		return 403;
	if (need_origin) {
		web_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin));
		if (!web_origin_ok(origin, host, w->tls))
			return 403;
	}
	token[0] = '\0';
	if (!w->password_file)
		return 0;
	web_header(wsi, WSI_TOKEN_HTTP_COOKIE, cookie, sizeof(cookie));
	if (web_cookie_token(cookie, token) != 0 ||
	    !web_session_check(&w->sessions, token, hub_now_ms()))
		return 401;
	return 0;
}

/* -- replies ------------------------------------------------------------------- */

static void reply(struct lws *wsi, struct http_pss *h, int status, const char *json)
{
	h->replying = true;
	h->status = status;
	snprintf(h->reply, sizeof(h->reply), "%s", json);
	lws_callback_on_writable(wsi);
}

static void reply_error(struct lws *wsi, struct http_pss *h, int status, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "error", error))
		text = cJSON_PrintUnformatted(o);
	reply(wsi, h, status, text ? text : "{}");
	cJSON_free(text);
	cJSON_Delete(o);
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
		      unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
					   (const unsigned char *)value, (int)strlen(value), p,
					   end);
}

static int write_reply(struct lws *wsi, struct http_pss *h)
{
	unsigned char buf[LWS_PRE + HEADERS_MAX + sizeof(h->reply)];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + LWS_PRE + HEADERS_MAX;
	size_t len = strlen(h->reply);
	char retry[24];
	h->replying = false;
	if (lws_add_http_common_headers(wsi, (unsigned)h->status, "application/json", len, &p,
					end) ||
	    add_header(wsi, "cache-control:", "no-store", &p, end) ||
	    (h->cookie[0] && add_header(wsi, "set-cookie:", h->cookie, &p, end)) ||
	    (h->location[0] && add_header(wsi, "location:", h->location, &p, end)))
		return -1;
	if (h->retry_after_s > 0) {
		snprintf(retry, sizeof(retry), "%ld", h->retry_after_s);
		if (add_header(wsi, "retry-after:", retry, &p, end))
			return -1;
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	memcpy(start, h->reply, len);
	if (lws_write(wsi, start, len, LWS_WRITE_HTTP_FINAL) != (int)len)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* -- login ------------------------------------------------------------------------- */

static void login_work(uv_work_t *req)
{
	struct login_job *job = req->data;
	char hash[WEB_HASH_MAX];
	job->rc = web_password_read(job->w->password_file, hash, sizeof(hash), job->err,
				    sizeof(job->err));
	if (job->rc == 0)
		job->ok = web_password_verify(job->password, hash);
	explicit_bzero(hash, sizeof(hash));
	explicit_bzero(job->password, sizeof(job->password));
}

static void login_answer(struct web *w, struct login_job *job, struct http_pss *h)
{
	char token[WEB_TOKEN_LEN + 1];
	if (job->rc) {
		reply_error(job->wsi, h, 500, "the password file cannot be read; see the log");
	} else if (!job->ok) {
		reply_error(job->wsi, h, 401, "wrong password");
	} else if (web_session_new(&w->sessions, hub_now_ms(), token) != 0) {
		reply_error(job->wsi, h, 500, "no randomness for a session token");
	} else {
		snprintf(h->cookie, sizeof(h->cookie),
			 WEB_COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s",
			 token, (long long)COOKIE_MAX_AGE_S, w->tls ? "; Secure" : "");
		explicit_bzero(token, sizeof(token));
		reply(job->wsi, h, 200, "{\"ok\":true}");
	}
}

static void login_done(uv_work_t *req, int status)
{
	struct login_job *job = req->data;
	struct web *w = job->w;
	(void)status;
	w->logins_in_flight--;
	if (job->rc)
		log_error(src, "%s", job->err);
	else if (job->ok)
		web_limiter_passed(&w->limiter, job->addr);
	else {
		web_limiter_failed(&w->limiter, job->addr, hub_now_ms());
		log_warning(src, "wrong dashboard password from %s", job->addr);
	}
	if (job->wsi && !w->stopping) {
		struct http_pss *h = lws_wsi_user(job->wsi);
		h->job = NULL;
		login_answer(w, job, h);
	}
	explicit_bzero(job, sizeof(*job));
	free(job);
}

/* The password of a {"password":"..."} body into out (cap bytes). */
static bool body_password(struct http_pss *h, char *out, size_t cap)
{
	cJSON *o = cJSON_ParseWithLength(h->body, h->body_len);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "password");
	bool ok = cJSON_IsString(p) && strlen(p->valuestring) < cap;
	if (ok)
		strcpy(out, p->valuestring);
	if (cJSON_IsString(p))
		explicit_bzero(p->valuestring, strlen(p->valuestring));
	cJSON_Delete(o);
	explicit_bzero(h->body, sizeof(h->body));
	return ok;
}

static void login(struct web *w, struct lws *wsi, struct http_pss *h)
{
	char addr[48];
	if (!w->password_file) {
		reply(wsi, h, 200, "{\"ok\":true,\"auth\":\"none\"}");
		return;
	}
	struct login_job *job = calloc(1, sizeof(*job));
	if (!job) {
		reply_error(wsi, h, 500, "out of memory");
		return;
	}
	lws_get_peer_simple(wsi, addr, sizeof(addr));
	int64_t wait_ms = web_limiter_wait_ms(&w->limiter, addr, hub_now_ms());
	if (h->body_too_big || !body_password(h, job->password, sizeof(job->password))) {
		reply_error(wsi, h, 400, "send {\"password\":\"...\"}");
	} else if (wait_ms > 0) {
		h->retry_after_s = (long)((wait_ms + 999) / 1000);
		reply_error(wsi, h, 429, "too many wrong passwords; wait and try again");
	} else if (w->logins_in_flight >= WEB_LOGINS_IN_FLIGHT) {
		h->retry_after_s = 1;
		reply_error(wsi, h, 503, "busy checking other logins; try again");
	} else {
		job->w = w;
		job->wsi = wsi;
		job->work.data = job;
		snprintf(job->addr, sizeof(job->addr), "%s", addr);
		if (uv_queue_work(w->loop, &job->work, login_work, login_done) == 0) {
			w->logins_in_flight++;
			h->job = job;
			return;
		}
		reply_error(wsi, h, 500, "cannot check the password now");
	}
	explicit_bzero(job, sizeof(*job));
	free(job);
}

static void logout(struct web *w, struct lws *wsi, struct http_pss *h)
{
	char cookie[4096], token[WEB_TOKEN_LEN + 1];
	web_header(wsi, WSI_TOKEN_HTTP_COOKIE, cookie, sizeof(cookie));
	if (w->password_file && web_cookie_token(cookie, token) == 0) {
		web_close_session(w, token);
		web_session_end(&w->sessions, token);
	}
	snprintf(h->cookie, sizeof(h->cookie),
		 WEB_COOKIE_NAME "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
		 w->tls ? "; Secure" : "");
	reply(wsi, h, 200, "{\"ok\":true}");
}

void web_http_detach(void *pss)
{
	struct http_pss *h = pss;
	if (h && h->job) {
		h->job->wsi = NULL;
		h->job = NULL;
	}
}

/* -- files ----------------------------------------------------------------------------- */

static bool accepts_gzip(struct lws *wsi)
{
	char enc[256];
	web_header(wsi, WSI_TOKEN_HTTP_ACCEPT_ENCODING, enc, sizeof(enc));
	return strstr(enc, "gzip") != NULL;
}

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int serve_file(struct web *w, struct lws *wsi, const char *rel, const char *mime)
{
	static const char plain[] = "cache-control: no-cache\x0d\x0a";
	static const char zipped[] = "cache-control: no-cache\x0d\x0a"
				     "content-encoding: gzip\x0d\x0a"
				     "vary: accept-encoding\x0d\x0a";
	char path[4200];
	const char *root = w->hub->config->web.root;
	/* the build puts a .gz beside each file: served to browsers that take it */
	int n = snprintf(path, sizeof(path), "%s/%s.gz", root, rel);
	bool gz = n > 0 && (size_t)n < sizeof(path) && accepts_gzip(wsi) && is_file(path);
	if (!gz)
		n = snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (n < 0 || (size_t)n >= sizeof(path) || !is_file(path))
		return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ||
			       lws_http_transaction_completed(wsi)
			       ? -1
			       : 0;
	int rc = lws_serve_http_file(wsi, path, mime, gz ? zipped : plain,
				     (int)(gz ? sizeof(zipped) : sizeof(plain)) - 1);
	if (rc < 0 || (rc > 0 && lws_http_transaction_completed(wsi)))
		return -1;
	return 0;
}

static void session_state(struct web *w, struct lws *wsi, struct http_pss *h)
{
	char token[WEB_TOKEN_LEN + 1], text[80];
	int refused = web_gate(w, wsi, false, token);
	if (refused == 403) {
		reply_error(wsi, h, 403, "not from here");
		return;
	}
	snprintf(text, sizeof(text), "{\"auth\":\"%s\",\"authenticated\":%s}",
		 w->password_file ? "password" : "none", refused ? "false" : "true");
	reply(wsi, h, 200, text);
}

static int get(struct web *w, struct lws *wsi, struct http_pss *h, const char *uri)
{
	char rel[160], token[WEB_TOKEN_LEN + 1];
	const char *mime;
	if (strcmp(uri, "/api/session") == 0) {
		session_state(w, wsi, h);
		return 0;
	}
	if (web_path_map(uri, rel, sizeof(rel), &mime) != 0) {
		reply_error(wsi, h, 404, "not found");
		return 0;
	}
	int refused = web_gate(w, wsi, false, token);
	if (refused == 401 && web_path_public(rel))
		refused = 0;
	if (refused == 401 && strstr(mime, "text/html")) {
		/* a page asked for without a session: the login page instead */
		snprintf(h->location, sizeof(h->location), "/login.html");
		reply(wsi, h, 302, "{}");
		return 0;
	}
	if (refused) {
		reply_error(wsi, h, refused, refused == 401 ? "log in first" : "not from here");
		return 0;
	}
	return serve_file(w, wsi, rel, mime);
}

static int body_done(struct web *w, struct lws *wsi, struct http_pss *h);

/* A POST waits for its body; the answer comes at the body's end. */
static int post(struct web *w, struct lws *wsi, struct http_pss *h, const char *uri)
{
	char token[WEB_TOKEN_LEN + 1];
	int refused = web_gate(w, wsi, true, token);
	if (strcmp(uri, "/api/login") == 0)
		h->route = R_LOGIN;
	else if (strcmp(uri, "/api/logout") == 0)
		h->route = R_LOGOUT;
	else {
		h->route = R_REFUSE;
		h->refuse_status = 404;
	}
	/* logging in needs no session yet, only the right Host and Origin */
	if (refused == 403 || (refused == 401 && h->route != R_LOGIN)) {
		h->route = R_REFUSE;
		h->refuse_status = refused;
	}
	/* without a length there is no body to wait for (and a chunked one,
	 * which no browser sends here, is refused) */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
		h->route = R_REFUSE;
		h->refuse_status = 411;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
		return body_done(w, wsi, h);
	return 0;
}

static int body_done(struct web *w, struct lws *wsi, struct http_pss *h)
{
	switch (h->route) {
	case R_LOGIN:
		login(w, wsi, h);
		break;
	case R_LOGOUT:
		logout(w, wsi, h);
		break;
	default:
		reply_error(wsi, h, h->refuse_status ? h->refuse_status : 404,
			    h->refuse_status == 401   ? "log in first"
			    : h->refuse_status == 403 ? "refused: the request must come from the "
							"dashboard's own page (Origin and Host)"
			    : h->refuse_status == 411 ? "send the body with a Content-Length"
						      : "not found");
	}
	return 0;
}

static void body_add(struct http_pss *h, const void *in, size_t len)
{
	if (h->body_too_big || h->body_len + len > WEB_BODY_MAX) {
		h->body_too_big = true;
		return;
	}
	memcpy(h->body + h->body_len, in, len);
	h->body_len += len;
}

int web_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		      size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct web *w = ctx ? lws_context_user(ctx) : NULL;
	struct http_pss *h = user;
	/* lws calls with no session data for connections that never became a
	 * request (an idle keep-alive closed by a stopping context, say) */
	if (!h && reason != LWS_CALLBACK_HTTP)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		if (!w || !h || w->stopping)
			return -1;
		if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
			return post(w, wsi, h, in);
		if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
			return get(w, wsi, h, in);
		reply_error(wsi, h, 405, "GET or POST only");
		return 0;
	case LWS_CALLBACK_HTTP_BODY:
		body_add(h, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return body_done(w, wsi, h);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return h && h->replying ? write_reply(wsi, h) : 0;
	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_CLOSED_HTTP:
		web_http_detach(h);
		explicit_bzero(h, sizeof(*h));
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
