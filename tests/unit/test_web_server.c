/*
 * Unit tests for web.c and web_http.c: the dashboard's server embedded on
 * a test loop, with a stub hub and a real mosquitto on a free loopback port.
 * The test speaks HTTP and WebSocket over plain sockets and turns the loop
 * while it waits, so the server and the client share one thread; every wait
 * is bounded. Covered: files behind the session, login, logout, the
 * limiter, the Origin and Host checks, loopback only without a password, the
 * WebSocket gate, and routing: retained state first (also for a second
 * browser), live updates, publish frames reaching the broker as they are,
 * bad frames answered with an error frame and nothing published.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "config.h"
#include "hub.h"
#include "mqtt.h"
#include "web.h"

#define WAIT_MS 5000
#define PASSWORD "correct horse battery"
/* openssl passwd -6 -salt e2e.salt.hearth 'correct horse battery' */
#define HASH                                                                                       \
	"$6$e2e.salt.hearth$grmVBo5mvMiLVik60MMonOdObecREzKvd/fHesxZcLPbjnYTU1i18LFP4dv1EsHAybsgfL" \
	"KFpWkzYiu7/F1Xf0"
#define INDEX "<!doctype html><title>hearth test</title>index page"

struct peer_msg {
	char topic[256];
	char payload[512];
	bool retained;
};

struct fixture {
	char dir[64];
	pid_t broker;
	int broker_port;
	uv_loop_t loop;
	struct hearth_hub hub; /* a stub: loop, config and base are all web reads */
	struct web *web;
	int port;
	/* an MQTT client beside the browser, on the same loop */
	struct mqtt *peer;
	bool peer_up, peer_stopped;
	struct peer_msg msgs[64];
	size_t n_msgs;
};

static struct fixture *F;

/* -- helpers: time, loop, files -------------------------------------------------- */

static void pump(int ms)
{
	uint64_t end = uv_now(&F->loop) + (uint64_t)ms;
	do {
		uv_run(&F->loop, UV_RUN_NOWAIT);
		usleep(1000);
		uv_update_time(&F->loop);
	} while (uv_now(&F->loop) < end);
}

static void write_text(const char *name, const char *text, mode_t mode)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", F->dir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &len))
		return -1;
	close(fd);
	return ntohs(a.sin_port);
}

static int dial(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* -- the broker ---------------------------------------------------------------------- */

static int start_broker(struct fixture *f)
{
	char conf[128], text[256];
	f->broker_port = free_port();
	snprintf(conf, sizeof(conf), "%s/mosquitto.conf", f->dir);
	snprintf(text, sizeof(text), "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n",
		 f->broker_port);
	FILE *fp = fopen(conf, "w");
	if (!fp)
		return -1;
	fputs(text, fp);
	fclose(fp);
	f->broker = fork();
	if (f->broker == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execlp("mosquitto", "mosquitto", "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int fd = dial(f->broker_port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(f->broker, NULL, WNOHANG) == f->broker) {
			f->broker = 0;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

static int group_setup(void **state)
{
	static struct fixture f;
	snprintf(f.dir, sizeof(f.dir), "/tmp/hearth-web-XXXXXX");
	if (!mkdtemp(f.dir))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	if (start_broker(&f) != 0)
		f.broker = 0; /* routing tests are skipped */
	F = &f;
	write_text("index.html", INDEX, 0644);
	write_text("login.html", "<!doctype html>login page", 0644);
	write_text("app.js", "console.log('app')", 0644);
	write_text("app.js.gz", "pretend gzip", 0644);
	write_text("web.password", HASH "\n", 0600);
	*state = &f;
	return 0;
}

static int group_teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	if (f->broker > 0) {
		kill(f->broker, SIGTERM);
		waitpid(f->broker, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* -- a web server on the test loop -------------------------------------------------------- */

static void set_text(char **slot, const char *text)
{
	free(*slot);
	*slot = text ? strdup(text) : NULL;
}

static void start_web(const char *listen, bool password)
{
	char path[128];
	struct hearth_config *c = config_defaults();
	assert_non_null(c);
	assert_int_equal(uv_loop_init(&F->loop), 0);
	c->mqtt.port = F->broker > 0 ? F->broker_port : 1;
	set_text(&c->mqtt.client_id, "hearthd-test");
	c->web.enabled = true;
	set_text(&c->web.listen, listen);
	set_text(&c->web.root, F->dir);
	snprintf(path, sizeof(path), "%s/web.password", F->dir);
	set_text(&c->web.password_file, password ? path : NULL);
	memset(&F->hub, 0, sizeof(F->hub));
	F->hub.loop = &F->loop;
	F->hub.config = c;
	F->hub.base = c->mqtt.base_topic;
	F->n_msgs = 0;
	assert_int_equal(web_start(&F->hub, &F->web), 0);
	F->port = web_port(F->web);
	assert_true(F->port > 0);
}

static void stop_web(void)
{
	web_stop(F->web);
	pump(50);
	web_free(F->web);
	F->web = NULL;
	uv_run(&F->loop, UV_RUN_NOWAIT);
	/* every handle the server opened is closed */
	assert_int_equal(uv_loop_close(&F->loop), 0);
	config_free(F->hub.config);
}

/* -- HTTP ----------------------------------------------------------------------------------- */

struct reply {
	int status;
	char head[2048];
	char body[4096];
};

/* Read until want(buf) says the message is whole, turning the loop. */
static ssize_t read_some(int fd, char *buf, size_t cap, size_t have)
{
	ssize_t n = recv(fd, buf + have, cap - 1 - have, 0);
	if (n > 0)
		buf[have + (size_t)n] = '\0';
	return n;
}

static void http(const char *request, struct reply *r)
{
	char raw[8192] = "";
	size_t have = 0;
	memset(r, 0, sizeof(*r));
	int fd = dial(F->port);
	assert_true(fd >= 0);
	assert_int_equal(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
	uint64_t end = uv_now(&F->loop) + WAIT_MS;
	for (;;) {
		pump(2);
		ssize_t n = read_some(fd, raw, sizeof(raw), have);
		if (n > 0)
			have += (size_t)n;
		const char *split = strstr(raw, "\r\n\r\n");
		if (split) {
			const char *cl = strcasestr(raw, "content-length:");
			size_t body = have - (size_t)(split + 4 - raw);
			if (cl && cl < split && body >= strtoul(cl + 15, NULL, 10))
				break;
		}
		if (n == 0 || uv_now(&F->loop) > end)
			break;
	}
	close(fd);
	const char *split = strstr(raw, "\r\n\r\n");
	assert_non_null(split);
	assert_int_equal(sscanf(raw, "HTTP/1.1 %d", &r->status), 1);
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(split - raw), raw);
	snprintf(r->body, sizeof(r->body), "%s", split + 4);
}

static void get(const char *path, const char *extra, struct reply *r)
{
	char req[2048];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n",
		 path, F->port, extra ? extra : "");
	http(req, r);
}

static void post(const char *path, const char *origin, const char *extra, const char *body,
		 struct reply *r)
{
	char req[4096], org[160] = "";
	if (origin)
		snprintf(org, sizeof(org), "Origin: %s\r\n", origin);
	snprintf(req, sizeof(req),
		 "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%sContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 path, F->port, org, extra ? extra : "", strlen(body), body);
	http(req, r);
}

static const char *origin(void)
{
	static char o[64];
	snprintf(o, sizeof(o), "http://127.0.0.1:%d", F->port);
	return o;
}

/* Log in; the cookie header line ("Cookie: hearth_session=...\r\n") in out. */
static void login(char *out, size_t cap)
{
	struct reply r;
	post("/api/login", origin(), NULL, "{\"password\":\"" PASSWORD "\"}", &r);
	assert_int_equal(r.status, 200);
	const char *c = strstr(r.head, "hearth_session=");
	assert_non_null(c);
	snprintf(out, cap, "Cookie: %.*s\r\n", (int)strcspn(c, ";\r"), c);
}

/* -- WebSocket ----------------------------------------------------------------------------------- */

struct ws {
	int fd;
	int status;
	char buf[65536];
	size_t len;
};

static void ws_open(struct ws *w, const char *path, const char *org, const char *cookie)
{
	char req[2048], org_line[160] = "";
	if (org)
		snprintf(org_line, sizeof(org_line), "Origin: %s\r\n", org);
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Protocol: hearth\r\n%s%s\r\n",
		 path, F->port, org_line, cookie ? cookie : "");
	memset(w, 0, sizeof(*w));
	w->fd = dial(F->port);
	assert_true(w->fd >= 0);
	assert_int_equal(send(w->fd, req, strlen(req), 0), (ssize_t)strlen(req));
	uint64_t end = uv_now(&F->loop) + WAIT_MS;
	char *split = NULL;
	while (!split && uv_now(&F->loop) < end) {
		pump(2);
		ssize_t n = read_some(w->fd, w->buf, sizeof(w->buf), w->len);
		if (n > 0)
			w->len += (size_t)n;
		else if (n == 0)
			break;
		split = strstr(w->buf, "\r\n\r\n");
	}
	if (!split || sscanf(w->buf, "HTTP/1.1 %d", &w->status) != 1)
		w->status = -1;
	if (split) {
		size_t head = (size_t)(split + 4 - w->buf);
		memmove(w->buf, w->buf + head, w->len - head);
		w->len -= head;
	}
}

static void ws_send(struct ws *w, const char *text)
{
	unsigned char frame[70000];
	size_t len = strlen(text), at = 0;
	static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
	frame[at++] = 0x81;
	if (len < 126) {
		frame[at++] = 0x80 | (unsigned char)len;
	} else {
		frame[at++] = 0x80 | 126;
		frame[at++] = (unsigned char)(len >> 8);
		frame[at++] = (unsigned char)len;
	}
	memcpy(frame + at, mask, 4);
	at += 4;
	for (size_t i = 0; i < len; i++)
		frame[at + i] = (unsigned char)text[i] ^ mask[i % 4];
	at += len;
	assert_int_equal(send(w->fd, frame, at, 0), (ssize_t)at);
}

/* The next text frame as JSON, or NULL after ms. */
static cJSON *ws_recv(struct ws *w, int ms)
{
	uint64_t end = uv_now(&F->loop) + (uint64_t)ms;
	for (;;) {
		const unsigned char *b = (const unsigned char *)w->buf;
		if (w->len >= 2) {
			size_t len = b[1] & 0x7f, at = 2;
			if (len == 126 && w->len >= 4) {
				len = (size_t)b[2] << 8 | b[3];
				at = 4;
			} else if (len == 127) {
				fail_msg("frame too large for the test");
			}
			if (len != 126 && w->len >= at + len) {
				char text[65536];
				memcpy(text, b + at, len);
				text[len] = '\0';
				memmove(w->buf, w->buf + at + len, w->len - at - len);
				w->len -= at + len;
				if ((b[0] & 0x0f) == 0x8)
					return NULL; /* closed */
				cJSON *j = cJSON_Parse(text);
				if (!j)
					fail_msg("frame is not JSON: %s", text);
				return j;
			}
		}
		if (uv_now(&F->loop) > end)
			return NULL;
		pump(2);
		ssize_t n = read_some(w->fd, w->buf, sizeof(w->buf), w->len);
		if (n > 0)
			w->len += (size_t)n;
		else if (n == 0)
			return NULL;
	}
}

/* The next frame whose op is op (others skipped), or NULL. */
static cJSON *ws_expect(struct ws *w, const char *op, int ms)
{
	for (int i = 0; i < 200; i++) {
		cJSON *j = ws_recv(w, ms);
		if (!j)
			return NULL;
		const cJSON *o = cJSON_GetObjectItem(j, "op");
		if (cJSON_IsString(o) && strcmp(o->valuestring, op) == 0)
			return j;
		cJSON_Delete(j);
	}
	return NULL;
}

static const char *str(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(j, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* -- the MQTT peer ---------------------------------------------------------------------------- */

static void peer_connect(void *user, bool connected)
{
	(void)user;
	F->peer_up = connected;
}

static void peer_message(void *user, const char *topic, const void *payload, size_t len,
			 bool retained)
{
	(void)user;
	if (F->n_msgs == sizeof(F->msgs) / sizeof(F->msgs[0]))
		return;
	struct peer_msg *m = &F->msgs[F->n_msgs++];
	snprintf(m->topic, sizeof(m->topic), "%s", topic);
	snprintf(m->payload, sizeof(m->payload), "%.*s", (int)len, (const char *)payload);
	m->retained = retained;
}

static void peer_done(void *user)
{
	(void)user;
	F->peer_stopped = true;
}

static void peer_start(void)
{
	struct mqtt_options o = {.host = "127.0.0.1", .port = F->broker_port,
				 .client_id = "test-web-peer", .keepalive_s = 30};
	F->peer_up = F->peer_stopped = false;
	assert_int_equal(mqtt_new(&F->loop, &o, peer_connect, peer_message, F, &F->peer), 0);
	mqtt_subscribe(F->peer, "hearth/#", 1);
	mqtt_start(F->peer);
	for (int i = 0; i < 2000 && !F->peer_up; i++)
		pump(2);
	assert_true(F->peer_up);
}

static void peer_stop(void)
{
	mqtt_stop(F->peer, 500, peer_done, F);
	for (int i = 0; i < 1000 && !F->peer_stopped; i++)
		pump(2);
	assert_true(F->peer_stopped);
	mqtt_free(F->peer);
	F->peer = NULL;
}

static const struct peer_msg *peer_find(const char *topic)
{
	for (size_t i = 0; i < F->n_msgs; i++)
		if (strcmp(F->msgs[i].topic, topic) == 0)
			return &F->msgs[i];
	return NULL;
}

/* -- tests ------------------------------------------------------------------------------------- */

static void test_files_need_a_session(void **state)
{
	(void)state;
	struct reply r;
	start_web("127.0.0.1:0", true);
	get("/", NULL, &r);
	assert_int_equal(r.status, 302);
	assert_non_null(strcasestr(r.head, "location: /login.html"));
	get("/index.html", NULL, &r);
	assert_int_equal(r.status, 302);
	get("/app.js", NULL, &r);
	assert_int_equal(r.status, 401);
	assert_null(strstr(r.body, "console.log"));
	get("/login.html", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "<!doctype html>login page");
	assert_non_null(strcasestr(r.head, "content-security-policy:"));
	get("/../web.password", NULL, &r);
	assert_int_equal(r.status, 404);
	get("/web.password", NULL, &r);
	assert_int_equal(r.status, 404);
	get("/missing.js", "Cookie: hearth_session=00\r\n", &r);
	assert_int_equal(r.status, 401);
	get("/api/session", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"auth\":\"password\",\"authenticated\":false}");
	stop_web();
}

static void test_login_and_logout(void **state)
{
	(void)state;
	struct reply r;
	char cookie[200], extra[300];
	start_web("127.0.0.1:0", true);
	/* from another site, or with no Origin: refused, whatever the password */
	post("/api/login", "http://evil.example", NULL, "{\"password\":\"" PASSWORD "\"}", &r);
	assert_int_equal(r.status, 403);
	assert_null(strcasestr(r.head, "set-cookie"));
	post("/api/login", NULL, NULL, "{\"password\":\"" PASSWORD "\"}", &r);
	assert_int_equal(r.status, 403);
	post("/api/login", origin(), NULL, "{\"password\":\"wrong\"}", &r);
	assert_int_equal(r.status, 401);
	assert_string_equal(r.body, "{\"error\":\"wrong password\"}");
	assert_null(strcasestr(r.head, "set-cookie"));
	post("/api/login", origin(), NULL, "password=" PASSWORD, &r);
	assert_int_equal(r.status, 400);
	/* a POST with no body at all is answered at once; a chunked one refused */
	char req[512];
	snprintf(req, sizeof(req),
		 "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\n"
		 "Connection: close\r\n\r\n",
		 F->port, origin());
	http(req, &r);
	assert_int_equal(r.status, 400);
	snprintf(req, sizeof(req),
		 "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\n"
		 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		 F->port, origin());
	http(req, &r);
	assert_int_equal(r.status, 411);

	post("/api/login", origin(), NULL, "{\"password\":\"" PASSWORD "\"}", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "HttpOnly"));
	assert_non_null(strstr(r.head, "SameSite=Strict"));
	assert_non_null(strstr(r.head, "Path=/"));
	const char *c = strstr(r.head, "hearth_session=");
	assert_non_null(c);
	snprintf(cookie, sizeof(cookie), "Cookie: %.*s\r\n", (int)strcspn(c, ";\r"), c);
	get("/", cookie, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, INDEX);
	/* the gzip beside a file goes to browsers that take it */
	snprintf(extra, sizeof(extra), "%sAccept-Encoding: gzip, deflate\r\n", cookie);
	get("/app.js", extra, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strcasestr(r.head, "content-encoding: gzip"));
	assert_string_equal(r.body, "pretend gzip");
	get("/app.js", cookie, &r);
	assert_string_equal(r.body, "console.log('app')");
	get("/api/session", cookie, &r);
	assert_string_equal(r.body, "{\"auth\":\"password\",\"authenticated\":true}");

	/* logging out ends the session for good */
	post("/api/logout", origin(), cookie, "{}", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Max-Age=0"));
	get("/", cookie, &r);
	assert_int_equal(r.status, 302);
	stop_web();
}

static void test_login_rate_limited(void **state)
{
	(void)state;
	struct reply r;
	start_web("127.0.0.1:0", true);
	for (int i = 0; i < 5; i++) {
		post("/api/login", origin(), NULL, "{\"password\":\"guess\"}", &r);
		assert_int_equal(r.status, 401);
	}
	/* now even the right password waits */
	post("/api/login", origin(), NULL, "{\"password\":\"" PASSWORD "\"}", &r);
	assert_int_equal(r.status, 429);
	assert_non_null(strcasestr(r.head, "retry-after: 1"));
	assert_null(strcasestr(r.head, "set-cookie"));
	pump(1100);
	post("/api/login", origin(), NULL, "{\"password\":\"" PASSWORD "\"}", &r);
	assert_int_equal(r.status, 200);
	stop_web();
}

static void test_websocket_gate(void **state)
{
	(void)state;
	struct ws w;
	char cookie[200];
	start_web("127.0.0.1:0", true);
	ws_open(&w, "/ws", origin(), NULL);
	assert_int_not_equal(w.status, 101);
	close(w.fd);
	login(cookie, sizeof(cookie));
	ws_open(&w, "/ws", "http://evil.example", cookie);
	assert_int_not_equal(w.status, 101);
	close(w.fd);
	ws_open(&w, "/ws", NULL, cookie);
	assert_int_not_equal(w.status, 101);
	close(w.fd);
	ws_open(&w, "/elsewhere", origin(), cookie);
	assert_int_not_equal(w.status, 101);
	close(w.fd);
	ws_open(&w, "/ws", origin(), cookie);
	assert_int_equal(w.status, 101);
	cJSON *hello = ws_expect(&w, "hello", WAIT_MS);
	assert_non_null(hello);
	assert_string_equal(str(hello, "base"), "hearth");
	assert_string_equal(str(hello, "auth"), "password");
	cJSON_Delete(hello);
	/* logging out closes the session's WebSockets */
	struct reply r;
	post("/api/logout", origin(), cookie, "{}", &r);
	assert_int_equal(r.status, 200);
	cJSON *after = ws_recv(&w, WAIT_MS);
	for (int i = 0; after && i < 10; i++) {
		cJSON_Delete(after);
		after = ws_recv(&w, WAIT_MS);
	}
	assert_null(after);
	close(w.fd);
	ws_open(&w, "/ws", origin(), cookie);
	assert_int_not_equal(w.status, 101);
	close(w.fd);
	stop_web();
}

static void test_routing(void **state)
{
	(void)state;
	struct ws a, b;
	char cookie[200];
	if (F->broker <= 0)
		skip();
	start_web("127.0.0.1:0", true);
	peer_start();
	/* retained state another client left on the broker */
	assert_int_equal(mqtt_publish(F->peer, "hearth/hall/lamp", "{\"state\":\"ON\"}", 14, 1, true), 0);
	pump(200);
	login(cookie, sizeof(cookie));
	ws_open(&a, "/ws", origin(), cookie);
	assert_int_equal(a.status, 101);
	/* the web module's own broker link comes up */
	bool up = false;
	for (int i = 0; i < 50 && !up; i++) {
		cJSON *st = ws_expect(&a, "status", 100);
		up = st && cJSON_IsTrue(cJSON_GetObjectItem(st, "connected"));
		cJSON_Delete(st);
	}
	assert_true(up);
	ws_send(&a, "{\"op\":\"subscribe\",\"topic\":\"hearth/#\"}");
	cJSON *m = ws_expect(&a, "message", WAIT_MS);
	for (int i = 0; m && i < 20 && strcmp(str(m, "topic"), "hearth/hall/lamp") != 0; i++) {
		cJSON_Delete(m);
		m = ws_expect(&a, "message", WAIT_MS);
	}
	assert_non_null(m);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(m, "retained")));
	assert_string_equal(str(cJSON_GetObjectItem(m, "payload"), "state"), "ON");
	cJSON_Delete(m);

	/* a second browser gets the retained state first too */
	ws_open(&b, "/ws", origin(), cookie);
	assert_int_equal(b.status, 101);
	ws_send(&b, "{\"op\":\"subscribe\",\"topic\":\"hearth/hall/+\"}");
	m = ws_expect(&b, "message", WAIT_MS);
	assert_non_null(m);
	assert_string_equal(str(m, "topic"), "hearth/hall/lamp");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(m, "retained")));
	cJSON_Delete(m);

	/* then live updates */
	assert_int_equal(mqtt_publish(F->peer, "hearth/hall/lamp", "{\"state\":\"OFF\"}", 15, 1, false), 0);
	m = ws_expect(&b, "message", WAIT_MS);
	assert_non_null(m);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(m, "retained")));
	assert_string_equal(str(cJSON_GetObjectItem(m, "payload"), "state"), "OFF");
	cJSON_Delete(m);

	/* a publish frame reaches the broker as any client's message would */
	ws_send(&a, "{\"op\":\"publish\",\"topic\":\"hearth/hall/lamp/set\",\"payload\":{\"state\":\"TOGGLE\"}}");
	ws_send(&a, "{\"op\":\"publish\",\"topic\":\"hearth/hall/lamp/set/brightness\",\"payload\":\"80\"}");
	for (int i = 0; i < 1000 && !peer_find("hearth/hall/lamp/set/brightness"); i++)
		pump(2);
	assert_non_null(peer_find("hearth/hall/lamp/set"));
	assert_string_equal(peer_find("hearth/hall/lamp/set")->payload, "{\"state\":\"TOGGLE\"}");
	assert_false(peer_find("hearth/hall/lamp/set")->retained);
	assert_string_equal(peer_find("hearth/hall/lamp/set/brightness")->payload, "80");

	/* bad frames: an error frame each, nothing published */
	size_t before = F->n_msgs;
	static const char *const bad[] = {
		"{\"op\":\"publish\",\"topic\":\"hearth/hall/lamp\",\"payload\":{\"state\":\"ON\"},\"id\":1}",
		"{\"op\":\"publish\",\"topic\":\"hearth/bridge/state\",\"payload\":\"offline\",\"id\":2}",
		"{\"op\":\"publish\",\"topic\":\"other/x/set\",\"payload\":{},\"id\":3}",
		"{\"op\":\"subscribe\",\"topic\":\"#\",\"id\":4}",
		"{\"op\":\"publish\",\"topic\":\"hearth/x/set\",\"payload\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]],\"id\":5}",
		"{\"op\":\"publish\",\"id\":6}",
		"[\"publish\"]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ws_send(&a, bad[i]);
		cJSON *e = ws_expect(&a, "error", WAIT_MS);
		if (!e)
			fail_msg("no error frame for %s", bad[i]);
		assert_true(strlen(str(e, "error")) > 0);
		/* the id comes back when the frame could be read at all */
		static const char *const ids[] = {"1", "2", "3", "4", "", "6", ""};
		assert_string_equal(str(e, "id"), ids[i]);
		cJSON_Delete(e);
	}
	pump(300);
	assert_int_equal(F->n_msgs, before);

	/* unsubscribed: no more messages */
	ws_send(&b, "{\"op\":\"unsubscribe\",\"topic\":\"hearth/hall/+\"}");
	pump(100);
	assert_int_equal(mqtt_publish(F->peer, "hearth/hall/lamp", "{\"state\":\"ON\"}", 14, 1, false), 0);
	assert_null(ws_expect(&b, "message", 400));

	/* clear the retained message for the next run */
	assert_int_equal(mqtt_publish(F->peer, "hearth/hall/lamp", NULL, 0, 1, true), 0);
	pump(100);
	close(a.fd);
	close(b.fd);
	peer_stop();
	stop_web();
}

static void test_no_password_is_loopback_only(void **state)
{
	(void)state;
	struct reply r;
	struct ws w;
	char req[512];
	/* asked for every address, without a password: loopback only */
	start_web("0.0.0.0:0", false);
	get("/", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, INDEX);
	/* a name that resolves here by DNS rebinding is not this machine */
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: evil.example:%d\r\nConnection: close\r\n\r\n",
		 F->port);
	http(req, &r);
	assert_int_equal(r.status, 403);
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n",
		 F->port);
	http(req, &r);
	assert_int_equal(r.status, 200);
	post("/api/login", origin(), NULL, "{}", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"ok\":true,\"auth\":\"none\"}");
	/* WebSockets still need their own Origin */
	ws_open(&w, "/ws", "http://evil.example", NULL);
	assert_int_not_equal(w.status, 101);
	close(w.fd);
	ws_open(&w, "/ws", origin(), NULL);
	assert_int_equal(w.status, 101);
	cJSON *hello = ws_expect(&w, "hello", WAIT_MS);
	assert_non_null(hello);
	assert_string_equal(str(hello, "auth"), "none");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(hello, "loopback_only")));
	cJSON_Delete(hello);
	close(w.fd);
	stop_web();
}

/* Browsers open sockets ahead of need and may never send a request on them;
 * such a connection has no session data when the server closes it. */
static void test_idle_connections_at_stop(void **state)
{
	(void)state;
	struct reply r;
	int idle[4];
	start_web("127.0.0.1:0", true);
	for (size_t i = 0; i < 4; i++) {
		idle[i] = dial(F->port);
		assert_true(idle[i] >= 0);
	}
	/* one sends half a request line, one leaves before the server sees it */
	assert_int_equal(send(idle[1], "GET /ind", 8, 0), 8);
	close(idle[3]);
	pump(50);
	/* the server still answers others */
	get("/login.html", NULL, &r);
	assert_int_equal(r.status, 200);
	/* stopping closes the idle ones: no crash, every handle closed */
	stop_web();
	for (size_t i = 0; i < 3; i++) {
		char byte;
		assert_true(recv(idle[i], &byte, 1, 0) <= 0);
		close(idle[i]);
	}
}

static void test_bad_settings_refused(void **state)
{
	(void)state;
	struct hearth_config *c = config_defaults();
	char path[128];
	assert_int_equal(uv_loop_init(&F->loop), 0);
	memset(&F->hub, 0, sizeof(F->hub));
	F->hub.loop = &F->loop;
	F->hub.config = c;
	F->hub.base = c->mqtt.base_topic;
	set_text(&c->web.listen, "127.0.0.1:0");
	set_text(&c->web.root, F->dir);
	/* a password file others can read */
	snprintf(path, sizeof(path), "%s/open.password", F->dir);
	write_text("open.password", HASH "\n", 0644);
	set_text(&c->web.password_file, path);
	struct web *w = NULL;
	assert_int_equal(web_start(&F->hub, &w), -EACCES);
	assert_null(w);
	/* a certificate without its key */
	set_text(&c->web.password_file, NULL);
	set_text(&c->web.tls_cert, path);
	assert_int_equal(web_start(&F->hub, &w), -EINVAL);
	assert_null(w);
	uv_run(&F->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&F->loop), 0);
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_need_a_session),
		cmocka_unit_test(test_login_and_logout),
		cmocka_unit_test(test_login_rate_limited),
		cmocka_unit_test(test_websocket_gate),
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_no_password_is_loopback_only),
		cmocka_unit_test(test_idle_connections_at_stop),
		cmocka_unit_test(test_bad_settings_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
