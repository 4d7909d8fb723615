/*
 * miio-sim: a Xiaomi miIO device on a loopback UDP port, for tests and
 * demos. It speaks the real protocol (hello handshake, MD5 checksum with
 * the token, AES-128-CBC payload, JSON-RPC) and behaves like a smart plug
 * (legacy get_prop/set_power, model chuangmi.plug.m1) or an air purifier
 * (MIoT get_properties/set_properties, model zhimi.airpurifier.mb3).
 *
 *   miio-sim --port N --token HEX32 [--did N] [--mode plug|purifier]
 *            [--drop PCT] [--delay MS] [--garbage PCT] [--state-file PATH]
 *
 * Faults: --drop ignores that share of requests (evenly spread, not
 * random, so tests are repeatable), --delay answers late, --garbage answers
 * that share with damaged packets. The same switches can be changed while
 * it runs by lines on stdin: "drop 50", "delay 300", "garbage 0",
 * "mute 1" (answer nothing), "set power off" (a button press on the
 * device), "quit". After each change of state, the state is written as JSON
 * to --state-file. It only ever binds and answers on 127.0.0.1.
 *
 * This file shares no code with the plugin on purpose: the integration
 * test then checks two implementations against each other.
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
#include <openssl/evp.h>

#define PKT_MAX 4096
#define OUTBOX_MAX 64
#define STAMP_SLACK_S 60

enum mode { MODE_PLUG, MODE_PURIFIER };

struct out {
	bool used;
	int64_t due_ms;
	struct sockaddr_in to;
	size_t len;
	uint8_t data[PKT_MAX];
};

static struct sim {
	int fd;
	enum mode mode;
	uint32_t did;
	uint8_t token[16], key[16], iv[16];
	int64_t start_ms;
	uint32_t stamp_base;
	unsigned drop_pct, garbage_pct, delay_ms;
	unsigned drop_acc, garbage_acc, garbage_kind;
	bool mute;
	const char *state_file;
	/* plug */
	bool power;
	double temperature;
	/* purifier */
	bool p_power, led, buzzer, child_lock;
	int p_mode, fan_level, favorite_level, aqi, humidity, filter_life;
	double p_temperature;
	unsigned requests, answered, dropped, bad_stamps;
	struct out outbox[OUTBOX_MAX];
} sim;

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

static uint32_t stamp_now(void)
{
	return sim.stamp_base + (uint32_t)((now_ms() - sim.start_ms) / 1000);
}

/* ---- crypto ---------------------------------------------------------------- */

static void md5(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, const uint8_t *c,
		size_t clen, uint8_t out[16])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 16;
	EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
	EVP_DigestUpdate(ctx, a, alen);
	if (blen)
		EVP_DigestUpdate(ctx, b, blen);
	if (clen)
		EVP_DigestUpdate(ctx, c, clen);
	EVP_DigestFinal_ex(ctx, out, &n);
	EVP_MD_CTX_free(ctx);
}

static int aes(bool enc, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0, ok;
	ok = EVP_CipherInit_ex(ctx, EVP_aes_128_cbc(), NULL, sim.key, sim.iv, enc ? 1 : 0) &&
	     EVP_CipherUpdate(ctx, out, &n1, in, (int)len) && EVP_CipherFinal_ex(ctx, out + n1, &n2);
	EVP_CIPHER_CTX_free(ctx);
	*out_len = (size_t)(n1 + n2);
	return ok ? 0 : -1;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- sending --------------------------------------------------------------- */

static void queue_out(const struct sockaddr_in *to, const uint8_t *data, size_t len)
{
	for (int i = 0; i < OUTBOX_MAX; i++) {
		struct out *o = &sim.outbox[i];
		if (o->used)
			continue;
		o->used = true;
		o->due_ms = now_ms() + sim.delay_ms;
		o->to = *to;
		o->len = len;
		memcpy(o->data, data, len);
		return;
	}
}

static void flush_due(void)
{
	int64_t now = now_ms();
	for (int i = 0; i < OUTBOX_MAX; i++) {
		struct out *o = &sim.outbox[i];
		if (!o->used || o->due_ms > now)
			continue;
		(void)sendto(sim.fd, o->data, o->len, 0, (const struct sockaddr *)&o->to,
			     sizeof(o->to));
		o->used = false;
	}
}

static int next_due_ms(void)
{
	int64_t now = now_ms(), best = -1;
	for (int i = 0; i < OUTBOX_MAX; i++)
		if (sim.outbox[i].used && (best < 0 || sim.outbox[i].due_ms < best))
			best = sim.outbox[i].due_ms;
	if (best < 0)
		return 200;
	return best <= now ? 0 : (int)(best - now);
}

/* An evenly spread share: true pct times in 100. */
static bool share(unsigned *acc, unsigned pct)
{
	*acc += pct;
	if (*acc >= 100) {
		*acc -= 100;
		return true;
	}
	return false;
}

/* Damaged answers of three kinds in turn: noise, a bad checksum, a cut. */
static void send_garbage(const struct sockaddr_in *to, const uint8_t *good, size_t len)
{
	uint8_t bad[PKT_MAX];
	size_t n = len;
	memcpy(bad, good, len);
	switch (sim.garbage_kind++ % 3) {
	case 0:
		for (size_t i = 0; i < n; i++)
			bad[i] = (uint8_t)(i * 37u + 11u);
		break;
	case 1:
		bad[20] ^= 0x5a;
		break;
	default:
		n = len > 40 ? 40 : len;
		break;
	}
	queue_out(to, bad, n);
}

static void send_payload(const struct sockaddr_in *to, const char *json)
{
	uint8_t pkt[PKT_MAX], sum[16];
	size_t clen = 0, len = strlen(json);
	if (len + 48 > PKT_MAX || aes(true, (const uint8_t *)json, len, pkt + 32, &clen))
		return;
	pkt[0] = 0x21;
	pkt[1] = 0x31;
	pkt[2] = (uint8_t)((32 + clen) >> 8);
	pkt[3] = (uint8_t)(32 + clen);
	be32(pkt + 4, 0);
	be32(pkt + 8, sim.did);
	be32(pkt + 12, stamp_now());
	md5(pkt, 16, sim.token, 16, pkt + 32, clen, sum);
	memcpy(pkt + 16, sum, 16);
	if (share(&sim.garbage_acc, sim.garbage_pct))
		send_garbage(to, pkt, 32 + clen);
	else
		queue_out(to, pkt, 32 + clen);
	sim.answered++;
}

/* ---- state ----------------------------------------------------------------- */

static void write_state(void)
{
	if (!sim.state_file)
		return;
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", sim.state_file);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	if (sim.mode == MODE_PLUG)
		fprintf(f, "{\"power\":\"%s\",\"temperature\":%.1f", sim.power ? "on" : "off",
			sim.temperature);
	else
		fprintf(f,
			"{\"power\":%s,\"mode\":%d,\"fan_level\":%d,\"favorite_level\":%d,"
			"\"led\":%s,\"buzzer\":%s,\"child_lock\":%s",
			sim.p_power ? "true" : "false", sim.p_mode, sim.fan_level, sim.favorite_level,
			sim.led ? "true" : "false", sim.buzzer ? "true" : "false",
			sim.child_lock ? "true" : "false");
	fprintf(f, ",\"requests\":%u,\"answered\":%u,\"dropped\":%u,\"bad_stamps\":%u}\n",
		sim.requests, sim.answered, sim.dropped, sim.bad_stamps);
	fclose(f);
	rename(tmp, sim.state_file);
}

/* ---- the plug (legacy) ----------------------------------------------------- */

static cJSON *plug_get_prop(const cJSON *params)
{
	cJSON *res = cJSON_CreateArray();
	const cJSON *p;
	cJSON_ArrayForEach(p, params)
	{
		if (cJSON_IsString(p) && strcmp(p->valuestring, "power") == 0)
			cJSON_AddItemToArray(res, cJSON_CreateString(sim.power ? "on" : "off"));
		else if (cJSON_IsString(p) && strcmp(p->valuestring, "temperature") == 0)
			cJSON_AddItemToArray(res, cJSON_CreateNumber(sim.temperature));
		else
			cJSON_AddItemToArray(res, cJSON_CreateNull());
	}
	return res;
}

static cJSON *ok_result(void)
{
	cJSON *a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateString("ok"));
	return a;
}

/* A NULL result: code and msg say why. */
static cJSON *plug_call(const char *method, const cJSON *params, int *code, const char **msg)
{
	if (strcmp(method, "get_prop") == 0)
		return plug_get_prop(params);
	if (strcmp(method, "set_power") == 0) {
		const cJSON *v = cJSON_GetArrayItem(params, 0);
		if (cJSON_IsString(v) &&
		    (strcmp(v->valuestring, "on") == 0 || strcmp(v->valuestring, "off") == 0)) {
			sim.power = strcmp(v->valuestring, "on") == 0;
			return ok_result();
		}
		*code = -5001;
		*msg = "invalid_arg";
		return NULL;
	}
	*code = -32601;
	*msg = "Method not found.";
	return NULL;
}

/* ---- the purifier (MIoT) --------------------------------------------------- */

enum pkind { K_BOOL, K_INT, K_FLOAT };

struct pprop {
	int siid, piid;
	enum pkind kind;
	bool writable;
	int lo, hi;
	void *value;
};

static const struct pprop pprops[] = {
	{2, 2, K_BOOL, true, 0, 1, &sim.p_power},
	{2, 4, K_INT, true, 1, 3, &sim.fan_level},
	{2, 5, K_INT, true, 0, 3, &sim.p_mode},
	{3, 6, K_INT, false, 0, 1000, &sim.aqi},
	{3, 7, K_INT, false, 0, 100, &sim.humidity},
	{3, 8, K_FLOAT, false, -40, 125, &sim.p_temperature},
	{4, 3, K_INT, false, 0, 100, &sim.filter_life},
	{5, 1, K_BOOL, true, 0, 1, &sim.buzzer},
	{6, 6, K_BOOL, true, 0, 1, &sim.led},
	{7, 1, K_BOOL, true, 0, 1, &sim.child_lock},
	{10, 10, K_INT, true, 0, 14, &sim.favorite_level},
};

static const struct pprop *pprop_find(const cJSON *item)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(item, "siid");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(item, "piid");
	for (size_t i = 0; cJSON_IsNumber(s) && cJSON_IsNumber(p) && i < sizeof(pprops) / sizeof(pprops[0]);
	     i++)
		if (pprops[i].siid == s->valueint && pprops[i].piid == p->valueint)
			return &pprops[i];
	return NULL;
}

static cJSON *pprop_value(const struct pprop *p)
{
	if (p->kind == K_BOOL)
		return cJSON_CreateBool(*(bool *)p->value);
	if (p->kind == K_FLOAT)
		return cJSON_CreateNumber(*(double *)p->value);
	return cJSON_CreateNumber(*(int *)p->value);
}

/* 0 or a MIoT error code. */
static int pprop_set(const struct pprop *p, const cJSON *v)
{
	if (!p->writable)
		return -4002;
	if (p->kind == K_BOOL) {
		if (!cJSON_IsBool(v))
			return -4005;
		*(bool *)p->value = cJSON_IsTrue(v);
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble || v->valueint < p->lo ||
	    v->valueint > p->hi)
		return -4005;
	*(int *)p->value = v->valueint;
	return 0;
}

static cJSON *purifier_props(const cJSON *params, bool set)
{
	cJSON *res = cJSON_CreateArray();
	const cJSON *item;
	cJSON_ArrayForEach(item, params)
	{
		const struct pprop *p = pprop_find(item);
		cJSON *o = cJSON_CreateObject();
		const cJSON *did = cJSON_GetObjectItemCaseSensitive(item, "did");
		if (cJSON_IsString(did))
			cJSON_AddStringToObject(o, "did", did->valuestring);
		cJSON_AddItemToObject(o, "siid",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(item, "siid"), 1));
		cJSON_AddItemToObject(o, "piid",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(item, "piid"), 1));
		int code = p ? 0 : -4003;
		if (p && set)
			code = pprop_set(p, cJSON_GetObjectItemCaseSensitive(item, "value"));
		cJSON_AddNumberToObject(o, "code", code);
		if (p && !set)
			cJSON_AddItemToObject(o, "value", pprop_value(p));
		cJSON_AddItemToArray(res, o);
	}
	return res;
}

static cJSON *purifier_call(const char *method, const cJSON *params, int *code, const char **msg)
{
	if (strcmp(method, "get_properties") == 0 && cJSON_IsArray(params))
		return purifier_props(params, false);
	if (strcmp(method, "set_properties") == 0 && cJSON_IsArray(params))
		return purifier_props(params, true);
	*code = -32601;
	*msg = "Method not found.";
	return NULL;
}

/* ---- requests -------------------------------------------------------------- */

static cJSON *info(void)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "model",
				sim.mode == MODE_PLUG ? "chuangmi.plug.m1" : "zhimi.airpurifier.mb3");
	cJSON_AddStringToObject(o, "fw_ver", "1.4.1_61");
	cJSON_AddStringToObject(o, "hw_ver", "esp32");
	return o;
}

static void call(const struct sockaddr_in *from, const cJSON *req)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
	int code = 0;
	const char *msg = NULL;
	cJSON *result;
	if (!cJSON_IsNumber(id) || !cJSON_IsString(method))
		return;
	if (strcmp(method->valuestring, "miIO.info") == 0)
		result = info();
	else if (sim.mode == MODE_PLUG)
		result = plug_call(method->valuestring, params, &code, &msg);
	else
		result = purifier_call(method->valuestring, params, &code, &msg);
	cJSON *ans = cJSON_CreateObject();
	cJSON_AddNumberToObject(ans, "id", id->valuedouble);
	if (result) {
		cJSON_AddItemToObject(ans, "result", result);
	} else {
		cJSON *err = cJSON_AddObjectToObject(ans, "error");
		cJSON_AddNumberToObject(err, "code", code);
		cJSON_AddStringToObject(err, "message", msg);
	}
	char *text = cJSON_PrintUnformatted(ans);
	if (text)
		send_payload(from, text);
	free(text);
	cJSON_Delete(ans);
	write_state();
}

static void hello(const struct sockaddr_in *from)
{
	uint8_t h[32] = {0x21, 0x31, 0x00, 0x20};
	be32(h + 4, 0);
	be32(h + 8, sim.did);
	be32(h + 12, stamp_now());
	memset(h + 16, 0xff, 16); /* provisioned: the token is not shown */
	queue_out(from, h, sizeof(h));
}

/* A device ignores what it cannot authenticate, with no answer at all. */
static void packet(const struct sockaddr_in *from, const uint8_t *buf, size_t len)
{
	uint8_t sum[16], plain[PKT_MAX];
	size_t plen = 0;
	if (len < 32 || buf[0] != 0x21 || buf[1] != 0x31 || (size_t)(buf[2] << 8 | buf[3]) != len)
		return;
	sim.requests++;
	if (sim.mute || share(&sim.drop_acc, sim.drop_pct)) {
		sim.dropped++;
		return;
	}
	if (len == 32) {
		hello(from);
		return;
	}
	md5(buf, 16, sim.token, 16, buf + 32, len - 32, sum);
	if (memcmp(sum, buf + 16, 16) != 0 || rd32(buf + 8) != sim.did ||
	    aes(false, buf + 32, len - 32, plain, &plen))
		return;
	int64_t skew = (int64_t)rd32(buf + 12) - (int64_t)stamp_now();
	if (skew > STAMP_SLACK_S || skew < -STAMP_SLACK_S) {
		sim.bad_stamps++; /* an old session: the client must say hello again */
		return;
	}
	while (plen > 0 && plain[plen - 1] == 0)
		plen--;
	cJSON *req = cJSON_ParseWithLength((const char *)plain, plen);
	if (cJSON_IsObject(req))
		call(from, req);
	cJSON_Delete(req);
}

/* ---- control --------------------------------------------------------------- */

static void control(char *line)
{
	char key[32] = "", a[32] = "", b[32] = "";
	int n = sscanf(line, "%31s %31s %31s", key, a, b);
	if (n >= 2 && strcmp(key, "drop") == 0)
		sim.drop_pct = (unsigned)atoi(a);
	else if (n >= 2 && strcmp(key, "delay") == 0)
		sim.delay_ms = (unsigned)atoi(a);
	else if (n >= 2 && strcmp(key, "garbage") == 0)
		sim.garbage_pct = (unsigned)atoi(a);
	else if (n >= 2 && strcmp(key, "mute") == 0)
		sim.mute = atoi(a) != 0;
	else if (n == 3 && strcmp(key, "set") == 0 && strcmp(a, "power") == 0)
		sim.power = sim.p_power = strcmp(b, "on") == 0;
	else if (n == 3 && strcmp(key, "set") == 0 && strcmp(a, "temperature") == 0)
		sim.temperature = sim.p_temperature = atof(b);
	else if (n >= 1 && strcmp(key, "quit") == 0)
		stop_flag = 1;
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

static int hexbytes(const char *hex, uint8_t out[16])
{
	if (strlen(hex) != 32)
		return -1;
	for (int i = 0; i < 16; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int args(int argc, char **argv, int *port)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},	  {"token", required_argument, NULL, 't'},
		{"did", required_argument, NULL, 'd'},	  {"mode", required_argument, NULL, 'm'},
		{"drop", required_argument, NULL, 'x'},	  {"delay", required_argument, NULL, 'w'},
		{"garbage", required_argument, NULL, 'g'}, {"state-file", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	bool have_token = false;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': *port = atoi(optarg); break;
		case 't': have_token = hexbytes(optarg, sim.token) == 0; break;
		case 'd': sim.did = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'm': sim.mode = strcmp(optarg, "purifier") == 0 ? MODE_PURIFIER : MODE_PLUG; break;
		case 'x': sim.drop_pct = (unsigned)atoi(optarg); break;
		case 'w': sim.delay_ms = (unsigned)atoi(optarg); break;
		case 'g': sim.garbage_pct = (unsigned)atoi(optarg); break;
		case 's': sim.state_file = optarg; break;
		default: return -1;
		}
	}
	return *port > 0 && *port < 65536 && have_token ? 0 : -1;
}

static void defaults(void)
{
	sim.did = 12345678;
	sim.temperature = 24.5;
	sim.p_temperature = 21.5;
	sim.p_mode = 0;
	sim.fan_level = 1;
	sim.favorite_level = 5;
	sim.aqi = 12;
	sim.humidity = 45;
	sim.filter_life = 87;
	sim.led = true;
}

int main(int argc, char **argv)
{
	int port = 0;
	defaults();
	if (args(argc, argv, &port)) {
		fprintf(stderr, "usage: miio-sim --port N --token HEX32 [--did N] "
				"[--mode plug|purifier] [--drop PCT] [--delay MS] [--garbage PCT] "
				"[--state-file PATH]\n");
		return 2;
	}
	md5(sim.token, 16, NULL, 0, NULL, 0, sim.key);
	md5(sim.key, 16, sim.token, 16, NULL, 0, sim.iv);
	sim.start_ms = now_ms();
	/* a device's stamp is its uptime: a restarted one starts afresh */
	sim.stamp_base = ((uint32_t)getpid() * 7919u + (uint32_t)time(NULL)) % 50000u + 100u;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	sim.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(sim.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sim.fd < 0 || bind(sim.fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		perror("miio-sim: bind");
		return 1;
	}
	write_state();
	bool open_in = true;
	while (!stop_flag) {
		struct pollfd pfd[2] = {{sim.fd, POLLIN, 0}, {0, POLLIN, 0}};
		int n = poll(pfd, open_in ? 2 : 1, next_due_ms());
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			uint8_t buf[PKT_MAX];
			struct sockaddr_in from;
			socklen_t flen = sizeof(from);
			ssize_t len = recvfrom(sim.fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
					       &flen);
			/* only loopback peers are ever answered */
			if (len > 0 && ntohl(from.sin_addr.s_addr) >> 24 == 127)
				packet(&from, buf, (size_t)len);
		}
		if (n > 0 && open_in && (pfd[1].revents & (POLLIN | POLLHUP)))
			read_control(&open_in);
		flush_due();
	}
	close(sim.fd);
	return 0;
}
