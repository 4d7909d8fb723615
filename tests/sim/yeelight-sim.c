/*
 * yeelight-sim: a Yeelight bulb on loopback, for tests and demos. It
 * answers commands on a TCP port (JSON lines), pushes "props" notifications
 * to every connection after a change, answers SSDP-style searches sent to
 * its discovery port by unicast, and keeps a per-connection command quota
 * like a real bulb.
 *
 *   yeelight-sim --port N --discovery-port N [--id 0x...] [--model color]
 *                [--name NAME] [--quota PER_MINUTE] [--state-file PATH]
 *
 * Lines on stdin change it while it runs: "set power off", "set bright 10"
 * (as if changed from the bulb's app: props are pushed), "mute 1" (answer
 * nothing), "close" (drop every connection), "quit". After each change the
 * state and counters are written as JSON to --state-file. It binds only to
 * 127.0.0.1 and never sends to a multicast group.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#define CLIENTS_MAX 4
#define LINE_MAX_LEN 2048
#define QUOTA_WINDOW_MS 60000
#define QUOTA_SLOTS 1024

struct client {
	int fd;
	char buf[LINE_MAX_LEN];
	size_t used;
	int64_t sent[QUOTA_SLOTS]; /* command times, for the quota */
	unsigned n_sent, head;
};

static struct bulb {
	int tcp_fd, udp_fd;
	int port, discovery_port;
	char id[24], model[24], name[64];
	unsigned quota;
	bool mute;
	const char *state_file;
	bool power;
	int bright, ct, hue, sat, color_mode;
	long rgb;
	unsigned commands, quota_errors, connections, searches;
	struct client clients[CLIENTS_MAX];
} bulb;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_state(void)
{
	if (!bulb.state_file)
		return;
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", bulb.state_file);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f,
		"{\"power\":\"%s\",\"bright\":%d,\"ct\":%d,\"rgb\":%ld,\"hue\":%d,\"sat\":%d,"
		"\"color_mode\":%d,\"name\":\"%s\",\"commands\":%u,\"quota_errors\":%u,"
		"\"connections\":%u,\"searches\":%u}\n",
		bulb.power ? "on" : "off", bulb.bright, bulb.ct, bulb.rgb, bulb.hue, bulb.sat,
		bulb.color_mode, bulb.name, bulb.commands, bulb.quota_errors, bulb.connections,
		bulb.searches);
	fclose(f);
	rename(tmp, bulb.state_file);
}

/* ---- output ---------------------------------------------------------------- */

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->used = 0;
}

/* Lines are short and the peer reads them: a blocking write is fine here. */
static void send_line(struct client *c, const char *text)
{
	char line[LINE_MAX_LEN + 4];
	int n = snprintf(line, sizeof(line), "%s\r\n", text);
	if (c->fd < 0 || n <= 0 || (size_t)n >= sizeof(line))
		return;
	if (send(c->fd, line, (size_t)n, MSG_NOSIGNAL) != n)
		client_close(c);
}

static void prop_text(const char *key, char *out, size_t cap)
{
	if (strcmp(key, "power") == 0)
		snprintf(out, cap, "%s", bulb.power ? "on" : "off");
	else if (strcmp(key, "bright") == 0)
		snprintf(out, cap, "%d", bulb.bright);
	else if (strcmp(key, "ct") == 0)
		snprintf(out, cap, "%d", bulb.ct);
	else if (strcmp(key, "rgb") == 0)
		snprintf(out, cap, "%ld", bulb.rgb);
	else if (strcmp(key, "hue") == 0)
		snprintf(out, cap, "%d", bulb.hue);
	else if (strcmp(key, "sat") == 0)
		snprintf(out, cap, "%d", bulb.sat);
	else if (strcmp(key, "color_mode") == 0)
		snprintf(out, cap, "%d", bulb.color_mode);
	else if (strcmp(key, "name") == 0)
		snprintf(out, cap, "%s", bulb.name);
	else
		out[0] = '\0';
}

/* Values go out as text, as real bulbs send them. */
static void push_props(const char *const *keys, size_t n)
{
	cJSON *msg = cJSON_CreateObject();
	cJSON *params = cJSON_AddObjectToObject(msg, "params");
	cJSON_AddStringToObject(msg, "method", "props");
	for (size_t i = 0; i < n; i++) {
		char v[80];
		prop_text(keys[i], v, sizeof(v));
		cJSON_AddStringToObject(params, keys[i], v);
	}
	char *text = cJSON_PrintUnformatted(msg);
	for (int i = 0; text && i < CLIENTS_MAX; i++)
		send_line(&bulb.clients[i], text);
	free(text);
	cJSON_Delete(msg);
	write_state();
}

static void reply(struct client *c, double id, cJSON *result, int code, const char *message)
{
	cJSON *msg = cJSON_CreateObject();
	cJSON_AddNumberToObject(msg, "id", id);
	if (result) {
		cJSON_AddItemToObject(msg, "result", result);
	} else {
		cJSON *err = cJSON_AddObjectToObject(msg, "error");
		cJSON_AddNumberToObject(err, "code", code);
		cJSON_AddStringToObject(err, "message", message);
	}
	char *text = cJSON_PrintUnformatted(msg);
	if (text)
		send_line(c, text);
	free(text);
	cJSON_Delete(msg);
}

static cJSON *ok(void)
{
	cJSON *a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateString("ok"));
	return a;
}

/* ---- methods --------------------------------------------------------------- */

static bool int_param(const cJSON *params, int i, long lo, long hi, long *out)
{
	const cJSON *v = cJSON_GetArrayItem(params, i);
	if (!cJSON_IsNumber(v) || v->valuedouble != (long)v->valuedouble || v->valuedouble < lo ||
	    v->valuedouble > hi)
		return false;
	*out = (long)v->valuedouble;
	return true;
}

/* effect ("smooth"/"sudden") and duration (>= 30 ms when smooth) at i. */
static bool effect_ok(const cJSON *params, int i)
{
	const cJSON *e = cJSON_GetArrayItem(params, i);
	long d;
	if (!e)
		return true;
	if (!cJSON_IsString(e) || !int_param(params, i + 1, 0, 600000, &d))
		return false;
	if (strcmp(e->valuestring, "sudden") == 0)
		return true;
	return strcmp(e->valuestring, "smooth") == 0 && d >= 30;
}

static cJSON *get_prop(const cJSON *params)
{
	cJSON *res = cJSON_CreateArray();
	const cJSON *k;
	cJSON_ArrayForEach(k, params)
	{
		char v[80] = "";
		if (cJSON_IsString(k))
			prop_text(k->valuestring, v, sizeof(v));
		cJSON_AddItemToArray(res, cJSON_CreateString(v));
	}
	return res;
}

/* Apply a set_* method; NULL *why on success with the changed keys. */
static void set_method(const char *m, const cJSON *p, const char **why, const char **keys,
		       size_t *n)
{
	long a, b;
	const cJSON *s = cJSON_GetArrayItem(p, 0);
	*why = "invalid params";
	*n = 0;
	if (strcmp(m, "set_power") == 0) {
		if (!cJSON_IsString(s) || (strcmp(s->valuestring, "on") && strcmp(s->valuestring, "off")) ||
		    !effect_ok(p, 1))
			return;
		bulb.power = strcmp(s->valuestring, "on") == 0;
		keys[(*n)++] = "power";
	} else if (strcmp(m, "toggle") == 0) {
		bulb.power = !bulb.power;
		keys[(*n)++] = "power";
	} else if (strcmp(m, "set_name") == 0) {
		if (!cJSON_IsString(s) || strlen(s->valuestring) >= sizeof(bulb.name))
			return;
		snprintf(bulb.name, sizeof(bulb.name), "%s", s->valuestring);
		keys[(*n)++] = "name";
	} else if (!bulb.power) {
		*why = "bulb is off"; /* set_bright, set_ct_abx, set_rgb, set_hsv need it on */
		return;
	} else if (strcmp(m, "set_bright") == 0) {
		if (!int_param(p, 0, 1, 100, &a) || !effect_ok(p, 1))
			return;
		bulb.bright = (int)a;
		keys[(*n)++] = "bright";
	} else if (strcmp(m, "set_ct_abx") == 0) {
		if (!int_param(p, 0, 1700, 6500, &a) || !effect_ok(p, 1))
			return;
		bulb.ct = (int)a;
		bulb.color_mode = 2;
		keys[(*n)++] = "ct";
		keys[(*n)++] = "color_mode";
	} else if (strcmp(m, "set_rgb") == 0) {
		if (!int_param(p, 0, 0, 0xffffff, &a) || !effect_ok(p, 1))
			return;
		bulb.rgb = a;
		bulb.color_mode = 1;
		keys[(*n)++] = "rgb";
		keys[(*n)++] = "color_mode";
	} else if (strcmp(m, "set_hsv") == 0) {
		if (!int_param(p, 0, 0, 359, &a) || !int_param(p, 1, 0, 100, &b) || !effect_ok(p, 2))
			return;
		bulb.hue = (int)a;
		bulb.sat = (int)b;
		bulb.color_mode = 3;
		keys[(*n)++] = "hue";
		keys[(*n)++] = "sat";
		keys[(*n)++] = "color_mode";
	} else {
		*why = "method not supported";
		return;
	}
	*why = NULL;
}

static bool quota_take(struct client *c)
{
	int64_t now = now_ms();
	if (c->n_sent == bulb.quota && now - c->sent[c->head] < QUOTA_WINDOW_MS)
		return false;
	if (c->n_sent < bulb.quota) {
		c->sent[(c->head + c->n_sent) % bulb.quota] = now;
		c->n_sent++;
	} else {
		c->sent[c->head] = now;
		c->head = (c->head + 1) % bulb.quota;
	}
	return true;
}

static void command(struct client *c, const char *text, size_t len)
{
	cJSON *req = cJSON_ParseWithLength(text, len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
	if (!cJSON_IsNumber(id) || !cJSON_IsString(method) || !cJSON_IsArray(params)) {
		cJSON_Delete(req);
		return;
	}
	bulb.commands++;
	if (!quota_take(c)) {
		bulb.quota_errors++;
		reply(c, id->valuedouble, NULL, -1, "client quota exceeded");
	} else if (strcmp(method->valuestring, "get_prop") == 0) {
		reply(c, id->valuedouble, get_prop(params), 0, NULL);
	} else {
		const char *why, *keys[4];
		size_t n;
		set_method(method->valuestring, params, &why, keys, &n);
		if (why) {
			reply(c, id->valuedouble, NULL, -1, why);
		} else {
			reply(c, id->valuedouble, ok(), 0, NULL);
			push_props(keys, n);
		}
	}
	write_state();
	cJSON_Delete(req);
}

/* ---- connections ----------------------------------------------------------- */

static void client_read(struct client *c)
{
	ssize_t n = recv(c->fd, c->buf + c->used, sizeof(c->buf) - c->used, 0);
	if (n <= 0) {
		client_close(c);
		return;
	}
	c->used += (size_t)n;
	char *nl;
	while (c->fd >= 0 && (nl = memchr(c->buf, '\n', c->used))) {
		size_t len = (size_t)(nl - c->buf);
		if (!bulb.mute)
			command(c, c->buf, len);
		c->used -= len + 1;
		memmove(c->buf, nl + 1, c->used);
	}
	if (c->used == sizeof(c->buf))
		c->used = 0;
}

static void accept_client(void)
{
	int fd = accept4(bulb.tcp_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < CLIENTS_MAX; i++) {
		if (bulb.clients[i].fd < 0) {
			memset(&bulb.clients[i], 0, sizeof(bulb.clients[i]));
			bulb.clients[i].fd = fd;
			bulb.connections++;
			write_state();
			return;
		}
	}
	close(fd); /* a real bulb takes only a few connections */
}

/* ---- discovery ------------------------------------------------------------- */

static void search(void)
{
	char buf[1024], ans[1024];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(bulb.udp_fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &flen);
	if (n <= 0 || bulb.mute || ntohl(from.sin_addr.s_addr) >> 24 != 127)
		return;
	buf[n] = '\0';
	if (strncmp(buf, "M-SEARCH", 8) != 0 || !strstr(buf, "wifi_bulb"))
		return;
	bulb.searches++;
	int len = snprintf(ans, sizeof(ans),
			   "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nDate: \r\nExt: \r\n"
			   "Location: yeelight://127.0.0.1:%d\r\nServer: POSIX UPnP/1.0 YGLC/1\r\n"
			   "id: %s\r\nmodel: %s\r\nfw_ver: 18\r\nsupport: get_prop set_default "
			   "set_power toggle set_bright start_cf stop_cf set_scene cron_add cron_get "
			   "cron_del set_ct_abx set_rgb set_hsv set_name\r\npower: %s\r\n"
			   "bright: %d\r\ncolor_mode: %d\r\nct: %d\r\nrgb: %ld\r\nhue: %d\r\n"
			   "sat: %d\r\nname: %s\r\n\r\n",
			   bulb.port, bulb.id, bulb.model, bulb.power ? "on" : "off", bulb.bright,
			   bulb.color_mode, bulb.ct, bulb.rgb, bulb.hue, bulb.sat, bulb.name);
	if (len > 0 && (size_t)len < sizeof(ans))
		(void)sendto(bulb.udp_fd, ans, (size_t)len, 0, (struct sockaddr *)&from, flen);
	write_state();
}

/* ---- control --------------------------------------------------------------- */

static void control(char *line)
{
	char key[32] = "", a[32] = "", b[64] = "";
	int n = sscanf(line, "%31s %31s %63s", key, a, b);
	if (n >= 2 && strcmp(key, "mute") == 0) {
		bulb.mute = atoi(a) != 0;
	} else if (n >= 1 && strcmp(key, "close") == 0) {
		for (int i = 0; i < CLIENTS_MAX; i++)
			client_close(&bulb.clients[i]);
	} else if (n >= 1 && strcmp(key, "quit") == 0) {
		stop_flag = 1;
	} else if (n == 3 && strcmp(key, "set") == 0) {
		const char *keys[1] = {a};
		if (strcmp(a, "power") == 0)
			bulb.power = strcmp(b, "on") == 0;
		else if (strcmp(a, "bright") == 0)
			bulb.bright = atoi(b);
		else if (strcmp(a, "ct") == 0)
			bulb.ct = atoi(b);
		else
			return;
		push_props(keys, 1);
	}
	write_state();
}

static void read_control(bool *open_in)
{
	static char buf[512];
	static size_t used;
	ssize_t n = read(0, buf + used, sizeof(buf) - 1 - used);
	if (n <= 0) {
		*open_in = false;
		return;
	}
	used += (size_t)n;
	buf[used] = '\0';
	char *nl;
	while ((nl = strchr(buf, '\n'))) {
		*nl = '\0';
		control(buf);
		used -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, used + 1);
	}
	if (used == sizeof(buf) - 1)
		used = 0;
}

/* ---- set-up ---------------------------------------------------------------- */

static int args(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},	 {"discovery-port", required_argument, NULL, 'd'},
		{"id", required_argument, NULL, 'i'},	 {"model", required_argument, NULL, 'm'},
		{"name", required_argument, NULL, 'n'},	 {"quota", required_argument, NULL, 'q'},
		{"state-file", required_argument, NULL, 's'}, {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': bulb.port = atoi(optarg); break;
		case 'd': bulb.discovery_port = atoi(optarg); break;
		case 'i': snprintf(bulb.id, sizeof(bulb.id), "%s", optarg); break;
		case 'm': snprintf(bulb.model, sizeof(bulb.model), "%s", optarg); break;
		case 'n': snprintf(bulb.name, sizeof(bulb.name), "%s", optarg); break;
		case 'q': bulb.quota = (unsigned)atoi(optarg); break;
		case 's': bulb.state_file = optarg; break;
		default: return -1;
		}
	}
	if (bulb.quota == 0 || bulb.quota > QUOTA_SLOTS)
		return -1;
	return bulb.port > 0 && bulb.port < 65536 && bulb.discovery_port > 0 &&
			       bulb.discovery_port < 65536
		       ? 0
		       : -1;
}

static int listen_on(int type, int port)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 8) != 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	snprintf(bulb.id, sizeof(bulb.id), "0x000000000015243f");
	snprintf(bulb.model, sizeof(bulb.model), "color");
	snprintf(bulb.name, sizeof(bulb.name), "sim_bulb");
	bulb.quota = 60;
	bulb.power = false;
	bulb.bright = 50;
	bulb.ct = 4000;
	bulb.rgb = 0xff0000;
	bulb.hue = 100;
	bulb.sat = 35;
	bulb.color_mode = 2;
	for (int i = 0; i < CLIENTS_MAX; i++)
		bulb.clients[i].fd = -1;
	if (args(argc, argv)) {
		fprintf(stderr, "usage: yeelight-sim --port N --discovery-port N [--id 0x...] "
				"[--model color] [--name NAME] [--quota 1..1024] [--state-file PATH]\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	bulb.tcp_fd = listen_on(SOCK_STREAM, bulb.port);
	bulb.udp_fd = listen_on(SOCK_DGRAM, bulb.discovery_port);
	if (bulb.tcp_fd < 0 || bulb.udp_fd < 0) {
		perror("yeelight-sim: bind");
		return 1;
	}
	write_state();
	bool open_in = true;
	while (!stop_flag) {
		struct pollfd pfd[3 + CLIENTS_MAX];
		int n = 0;
		pfd[n++] = (struct pollfd){bulb.tcp_fd, POLLIN, 0};
		pfd[n++] = (struct pollfd){bulb.udp_fd, POLLIN, 0};
		pfd[n++] = (struct pollfd){open_in ? 0 : -1, POLLIN, 0};
		for (int i = 0; i < CLIENTS_MAX; i++)
			pfd[n++] = (struct pollfd){bulb.clients[i].fd, POLLIN, 0};
		if (poll(pfd, (nfds_t)n, 500) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN)
			accept_client();
		if (pfd[1].revents & POLLIN)
			search();
		if (pfd[2].revents & (POLLIN | POLLHUP))
			read_control(&open_in);
		for (int i = 0; i < CLIENTS_MAX; i++)
			if (pfd[3 + i].fd >= 0 && (pfd[3 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				client_read(&bulb.clients[i]);
	}
	for (int i = 0; i < CLIENTS_MAX; i++)
		client_close(&bulb.clients[i]);
	close(bulb.tcp_fd);
	close(bulb.udp_fd);
	return 0;
}
