/*
 * Unit tests for web_frame.c: what a browser may send (and the error it
 * gets otherwise), the frames the hub sends back, which topics count as
 * retained state, and the mapping of request paths to files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <unistd.h>

#include "config.h"
#include "hub.h"
#include "web_frame.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void test_good_frames(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		enum web_op op;
		const char *topic;
		const char *payload; /* NULL: empty */
		const char *id;
	} cases[] = {
		{"{\"op\":\"subscribe\",\"topic\":\"hearth/#\"}", WEB_OP_SUBSCRIBE, "hearth/#", NULL, ""},
		{"{\"op\":\"subscribe\",\"topic\":\"hearth/+/availability\",\"id\":\"a1\"}",
		 WEB_OP_SUBSCRIBE, "hearth/+/availability", NULL, "a1"},
		{"{\"op\":\"unsubscribe\",\"topic\":\"hearth/bridge/#\",\"id\":7}", WEB_OP_UNSUBSCRIBE,
		 "hearth/bridge/#", NULL, "7"},
		{"{\"op\":\"publish\",\"topic\":\"hearth/hall/light/set\",\"payload\":{\"state\":\"ON\","
		 "\"brightness\":80}}",
		 WEB_OP_PUBLISH, "hearth/hall/light/set", "{\"state\":\"ON\",\"brightness\":80}", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/hall/light/set/state\",\"payload\":\"ON\"}",
		 WEB_OP_PUBLISH, "hearth/hall/light/set/state", "ON", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/hall/light/set/brightness\",\"payload\":80}",
		 WEB_OP_PUBLISH, "hearth/hall/light/set/brightness", "80", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/hall/light/get\",\"payload\":{\"state\":\"\"}}",
		 WEB_OP_PUBLISH, "hearth/hall/light/get", "{\"state\":\"\"}", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/bridge/request/health_check\"}", WEB_OP_PUBLISH,
		 "hearth/bridge/request/health_check", NULL, ""},
		{" {\"payload\":null,\"topic\":\"hearth/bridge/request/scene/activate\",\"op\":\"publish\"}\n",
		 WEB_OP_PUBLISH, "hearth/bridge/request/scene/activate", NULL, ""},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct web_frame f;
		char err[300] = "";
		int rc = web_frame_parse("hearth", cases[i].text, strlen(cases[i].text), &f, err,
					 sizeof(err));
		if (rc)
			fail_msg("case %zu refused: %s", i, err);
		assert_int_equal(f.op, cases[i].op);
		assert_string_equal(f.topic, cases[i].topic);
		assert_string_equal(f.id, cases[i].id);
		if (cases[i].payload) {
			assert_non_null(f.payload);
			assert_int_equal(f.payload_len, strlen(cases[i].payload));
			assert_memory_equal(f.payload, cases[i].payload, f.payload_len);
		} else {
			assert_null(f.payload);
			assert_int_equal(f.payload_len, 0);
		}
		web_frame_clear(&f);
	}
}

static void test_bad_frames(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int rc;
		const char *says; /* a piece of the error */
		const char *id;
	} cases[] = {
		{"", -EINVAL, "empty", ""},
		{"not json", -EINVAL, "not valid JSON", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"hearth/#\"} trailing", -EINVAL, "not valid JSON", ""},
		{"[1,2]", -EINVAL, "JSON object", ""},
		{"{\"topic\":\"hearth/#\",\"id\":\"x\"}", -EINVAL, "'op'", "x"},
		{"{\"op\":\"dance\",\"topic\":\"hearth/#\"}", -EINVAL, "'op'", ""},
		{"{\"op\":7,\"topic\":\"hearth/#\"}", -EINVAL, "'op'", ""},
		{"{\"op\":\"subscribe\"}", -EINVAL, "'topic'", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"\"}", -EINVAL, "'topic'", ""},
		{"{\"op\":\"subscribe\",\"topic\":42}", -EINVAL, "'topic'", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"#\",\"id\":3}", -EPERM, "under 'hearth/'", "3"},
		{"{\"op\":\"subscribe\",\"topic\":\"+/#\"}", -EPERM, "under", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"homeassistant/#\"}", -EPERM, "under", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"hearthx/#\"}", -EPERM, "under", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"hearth/\"}", -EPERM, "under", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"hearth/a#\"}", -EINVAL, "not a valid topic filter", ""},
		{"{\"op\":\"subscribe\",\"topic\":\"hearth/#/x\"}", -EINVAL, "filter", ""},
		/* publishing: only what the hub takes as input */
		{"{\"op\":\"publish\",\"topic\":\"hearth/hall/light\",\"payload\":{}}", -EPERM, "/set", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/hall/light/availability\"}", -EPERM, "/set", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/bridge/state\"}", -EPERM, "/set", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/bridge/devices\"}", -EPERM, "/set", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/bridge/response/x\"}", -EPERM, "/set", ""},
		{"{\"op\":\"publish\",\"topic\":\"zigbee2mqtt/lamp/set\"}", -EPERM, "/set", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/+/set\"}", -EINVAL, "not a valid topic", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/#\"}", -EINVAL, "not a valid topic", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth/bridge/request/\"}", -EPERM, "/set", ""},
		{"{\"op\":\"publish\",\"topic\":\"hearth//set\"}", -EPERM, "/set", ""},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct web_frame f;
		char err[300] = "";
		int rc = web_frame_parse("hearth", cases[i].text, strlen(cases[i].text), &f, err,
					 sizeof(err));
		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): rc %d, expected %d (%s)", i, cases[i].text, rc,
				 cases[i].rc, err);
		if (!strstr(err, cases[i].says))
			fail_msg("case %zu: error '%s' does not say '%s'", i, err, cases[i].says);
		assert_string_equal(f.id, cases[i].id);
		assert_null(f.payload);
		web_frame_clear(&f);
	}
}

static void test_frame_limits(void **state)
{
	(void)state;
	struct web_frame f;
	char err[300];
	/* a frame over the payload limit is refused before it is parsed */
	size_t n = HUB_PAYLOAD_MAX + 10;
	char *big = malloc(n + 1);
	memset(big, ' ', n);
	memcpy(big, "{\"op\":\"publish\"", 15);
	big[n - 1] = '}';
	big[n] = '\0';
	assert_int_equal(web_frame_parse("hearth", big, n, &f, err, sizeof(err)), -E2BIG);
	free(big);

	/* a payload that grows past the limit when printed */
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "op", "publish");
	cJSON_AddStringToObject(o, "topic", "hearth/x/set/text");
	char *s = malloc(HUB_PAYLOAD_MAX - 100);
	memset(s, 'a', HUB_PAYLOAD_MAX - 101);
	s[HUB_PAYLOAD_MAX - 101] = '\0';
	cJSON *arr = cJSON_AddArrayToObject(o, "payload");
	cJSON_AddItemToArray(arr, cJSON_CreateString(s));
	free(s);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	assert_true(strlen(text) <= HUB_PAYLOAD_MAX);
	assert_int_equal(web_frame_parse("hearth", text, strlen(text), &f, err, sizeof(err)), 0);
	web_frame_clear(&f);
	cJSON_free(text);

	/* nested deeper than the hub takes */
	char deep[200] = "{\"op\":\"publish\",\"topic\":\"hearth/x/set\",\"payload\":";
	for (int i = 0; i < 20; i++)
		strcat(deep, "[");
	for (int i = 0; i < 20; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	assert_int_equal(web_frame_parse("hearth", deep, strlen(deep), &f, err, sizeof(err)), -ELOOP);

	/* a NUL inside */
	static const char nul[] = "{\"op\":\"subscribe\",\"topic\":\"hearth/#\"}\0";
	assert_int_equal(web_frame_parse("hearth", nul, sizeof(nul), &f, err, sizeof(err)), -EINVAL);

	/* a topic over the limit */
	char longt[700];
	snprintf(longt, sizeof(longt), "{\"op\":\"subscribe\",\"topic\":\"hearth/%0600d\"}", 0);
	assert_int_equal(web_frame_parse("hearth", longt, strlen(longt), &f, err, sizeof(err)),
			 -EINVAL);

	/* an id too long is not echoed */
	char longid[200];
	snprintf(longid, sizeof(longid), "{\"op\":\"x\",\"id\":\"%070d\"}", 0);
	assert_int_equal(web_frame_parse("hearth", longid, strlen(longid), &f, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(f.id, "");
}

static void test_other_base(void **state)
{
	(void)state;
	struct web_frame f;
	char err[300];
	const char *ok = "{\"op\":\"publish\",\"topic\":\"home/hub/lamp/set\",\"payload\":{}}";
	const char *no = "{\"op\":\"publish\",\"topic\":\"hearth/lamp/set\",\"payload\":{}}";
	assert_int_equal(web_frame_parse("home/hub", ok, strlen(ok), &f, err, sizeof(err)), 0);
	web_frame_clear(&f);
	assert_int_equal(web_frame_parse("home/hub", no, strlen(no), &f, err, sizeof(err)), -EPERM);
}

/* -- frames to the browser ---------------------------------------------------------------- */

static cJSON *parse_frame(char *text)
{
	assert_non_null(text);
	cJSON *j = cJSON_Parse(text);
	if (!j)
		fail_msg("not JSON: %s", text);
	free(text);
	return j;
}

static void test_message_frames(void **state)
{
	(void)state;
	static const char json[] = "{\"state\":\"ON\",\"brightness\":80}";
	cJSON *j = parse_frame(web_frame_message("hearth/lamp", json, strlen(json), true));
	assert_string_equal(cJSON_GetObjectItem(j, "op")->valuestring, "message");
	assert_string_equal(cJSON_GetObjectItem(j, "topic")->valuestring, "hearth/lamp");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "retained")));
	cJSON *p = cJSON_GetObjectItem(j, "payload");
	assert_true(cJSON_IsObject(p));
	assert_int_equal(cJSON_GetObjectItem(p, "brightness")->valueint, 80);
	cJSON_Delete(j);

	/* text that is not JSON comes as a string, quotes and all escaped */
	static const char text[] = "he said \"hi\"\n";
	j = parse_frame(web_frame_message("hearth/x", text, strlen(text), false));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "retained")));
	assert_string_equal(cJSON_GetObjectItem(j, "payload")->valuestring, text);
	cJSON_Delete(j);

	/* a JSON value followed by more is not JSON */
	j = parse_frame(web_frame_message("hearth/x", "1 2", 3, false));
	assert_string_equal(cJSON_GetObjectItem(j, "payload")->valuestring, "1 2");
	cJSON_Delete(j);

	/* empty (a retained message cleared) and binary: null */
	j = parse_frame(web_frame_message("hearth/x", NULL, 0, true));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "payload")));
	cJSON_Delete(j);
	static const char binary[] = {'\xff', '\xfe', 'a'};
	j = parse_frame(web_frame_message("hearth/x", binary, sizeof(binary), false));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "payload")));
	cJSON_Delete(j);
	static const char with_nul[] = {'a', '\0', 'b'};
	j = parse_frame(web_frame_message("hearth/x", with_nul, sizeof(with_nul), false));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "payload")));
	cJSON_Delete(j);

	/* UTF-8 passes; overlong forms, surrogates and cut sequences do not */
	static const struct {
		const char *bytes;
		int valid;
	} utf8[] = {
		{"\"caf\xc3\xa9 21\xc2\xb0""C\"", 1}, {"\"\xe2\x82\xac\"", 1}, {"\"\xf0\x9f\x92\xa1\"", 1},
		{"\"\xc0\xaf\"", 0}, {"\"\xed\xa0\x80\"", 0}, {"\"\xe2\x82\"", 0}, {"\"\xf4\x90\x80\x80\"", 0},
		{"\"\x80\"", 0}, {"\xc3", 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(utf8); i++) {
		j = parse_frame(web_frame_message("hearth/u", utf8[i].bytes, strlen(utf8[i].bytes),
						  false));
		cJSON *pl = cJSON_GetObjectItem(j, "payload");
		if (utf8[i].valid != !cJSON_IsNull(pl))
			fail_msg("utf8 case %zu", i);
		cJSON_Delete(j);
	}
}

static void test_error_frames(void **state)
{
	(void)state;
	cJSON *j = parse_frame(web_frame_error("bad \"thing\"", "42"));
	assert_string_equal(cJSON_GetObjectItem(j, "op")->valuestring, "error");
	assert_string_equal(cJSON_GetObjectItem(j, "error")->valuestring, "bad \"thing\"");
	assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "42");
	cJSON_Delete(j);
	j = parse_frame(web_frame_error("x", ""));
	assert_null(cJSON_GetObjectItem(j, "id"));
	cJSON_Delete(j);
	j = parse_frame(web_frame_error("x", NULL));
	assert_null(cJSON_GetObjectItem(j, "id"));
	cJSON_Delete(j);
}

static void test_topic_retained(void **state)
{
	(void)state;
	static const struct {
		const char *topic;
		int retained;
	} cases[] = {
		{"hearth/hall/light", 1},
		{"hearth/hall/light/availability", 1},
		{"hearth/bridge/state", 1},
		{"hearth/bridge/devices", 1},
		{"hearth/bridge/rules", 1},
		{"hearth/bridge/ecosystem", 1},
		{"hearth/bridge/event", 0},
		{"hearth/bridge/logging", 0},
		{"hearth/bridge/response/device/set", 0},
		{"hearth/bridge/request/health_check", 0},
		{"hearth/hall/light/set", 0},
		{"hearth/hall/light/set/state", 0},
		{"hearth/hall/light/get", 0},
		{"homeassistant/light/x/config", 0},
		{"hearth", 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		if (web_topic_retained("hearth", cases[i].topic) != cases[i].retained)
			fail_msg("%s", cases[i].topic);
}

/* -- files ------------------------------------------------------------------------------- */

static void test_path_map(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		int rc;
		const char *rel;
		const char *mime;
	} cases[] = {
		{"/", 0, "index.html", "text/html"},
		{"/index.html", 0, "index.html", "text/html"},
		{"/app.js", 0, "app.js", "text/javascript"},
		{"/style.css", 0, "style.css", "text/css"},
		{"/icon.svg", 0, "icon.svg", "image/svg+xml"},
		{"/img/a-b_c.png", 0, "img/a-b_c.png", "image/png"},
		{"/README", -ENOENT, NULL, NULL},
		{"/app.js.gz", -ENOENT, NULL, NULL},
		{"/x.php", -ENOENT, NULL, NULL},
		{"/../etc/passwd", -EINVAL, NULL, NULL},
		{"/img/../../x.html", -EINVAL, NULL, NULL},
		{"/.git/config", -EINVAL, NULL, NULL},
		{"/.hidden.js", -EINVAL, NULL, NULL},
		{"//x.js", -EINVAL, NULL, NULL},
		{"/img//x.js", -EINVAL, NULL, NULL},
		{"/img/", -EINVAL, NULL, NULL},
		{"/a b.js", -EINVAL, NULL, NULL},
		{"/a%2e.js", -EINVAL, NULL, NULL},
		{"relative.js", -EINVAL, NULL, NULL},
		{"", -EINVAL, NULL, NULL},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char rel[160] = "";
		const char *mime = NULL;
		int rc = web_path_map(cases[i].path, rel, sizeof(rel), &mime);
		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d, expected %d", cases[i].path, rc, cases[i].rc);
		if (rc)
			continue;
		assert_string_equal(rel, cases[i].rel);
		assert_non_null(strstr(mime, cases[i].mime));
	}
	char longp[200] = "/";
	memset(longp + 1, 'a', 140);
	strcpy(longp + 141, ".js");
	char rel[200];
	const char *mime;
	assert_int_equal(web_path_map(longp, rel, sizeof(rel), &mime), -EINVAL);
	assert_int_equal(web_path_map("/app.js", rel, 4, &mime), -EINVAL);
	assert_int_equal(web_path_map(NULL, rel, sizeof(rel), &mime), -EINVAL);
}

static void test_public_paths(void **state)
{
	(void)state;
	assert_true(web_path_public("login.html"));
	assert_true(web_path_public("login.js"));
	assert_true(web_path_public("style.css"));
	assert_true(web_path_public("icon.svg"));
	assert_false(web_path_public("index.html"));
	assert_false(web_path_public("app.js"));
	assert_false(web_path_public("login.html.gz"));
}

/* -- every example in docs/web.md ----------------------------------------------------- */

static char *read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	char *buf = calloc(1, 256 * 1024);
	size_t n = fread(buf, 1, 256 * 1024 - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

/* The next fenced block of lang after *at (indentation removed), or NULL. */
static char *next_block(const char **at, const char *lang)
{
	char fence[16];
	snprintf(fence, sizeof(fence), "```%s\n", lang);
	const char *p = strstr(*at, fence);
	if (!p)
		return NULL;
	size_t indent = 0;
	while (p - indent > *at && p[-(long)indent - 1] == ' ')
		indent++;
	p += strlen(fence);
	char *out = calloc(1, 8192);
	size_t len = 0;
	for (;;) {
		const char *eol = strchr(p, '\n');
		assert_non_null(eol);
		const char *line = p;
		for (size_t i = 0; i < indent && *line == ' '; i++)
			line++;
		if (strncmp(line, "```", 3) == 0) {
			*at = eol + 1;
			return out;
		}
		assert_true(len + (size_t)(eol - line) + 2 < 8192);
		memcpy(out + len, line, (size_t)(eol - line) + 1);
		len += (size_t)(eol - line) + 1;
		p = eol + 1;
	}
}

static void test_docs_examples(void **state)
{
	(void)state;
	char *doc = read_all("docs/web.md");
	const char *at = doc;
	char *block;
	int n_ini = 0, n_frames = 0;
	while ((block = next_block(&at, "ini"))) {
		char path[] = "/tmp/hearth-web-doc-XXXXXX", err[512];
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, block, strlen(block)), (ssize_t)strlen(block));
		close(fd);
		struct hearth_config *c = NULL;
		if (config_load(path, &c, err, sizeof(err)) != 0)
			fail_msg("docs/web.md: config refused: %s\n%s", err, block);
		assert_true(c->web.enabled);
		config_free(c);
		unlink(path);
		free(block);
		n_ini++;
	}
	at = doc;
	while ((block = next_block(&at, "json"))) {
		for (char *line = strtok(block, "\n"); line; line = strtok(NULL, "\n")) {
			cJSON *j = cJSON_Parse(line);
			if (!j)
				fail_msg("docs/web.md: not JSON: %s", line);
			const char *op = cJSON_GetObjectItem(j, "op")->valuestring;
			if (strcmp(op, "subscribe") == 0 || strcmp(op, "unsubscribe") == 0 ||
			    strcmp(op, "publish") == 0) {
				struct web_frame f;
				char err[300];
				if (web_frame_parse("hearth", line, strlen(line), &f, err, sizeof(err)))
					fail_msg("docs/web.md: frame refused: %s: %s", err, line);
				web_frame_clear(&f);
			} else {
				assert_true(strcmp(op, "hello") == 0 || strcmp(op, "status") == 0 ||
					    strcmp(op, "message") == 0 || strcmp(op, "error") == 0);
			}
			cJSON_Delete(j);
			n_frames++;
		}
		free(block);
	}
	free(doc);
	assert_true(n_ini >= 3);
	assert_true(n_frames >= 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_frames),	cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_frame_limits),	cmocka_unit_test(test_other_base),
		cmocka_unit_test(test_message_frames), cmocka_unit_test(test_error_frames),
		cmocka_unit_test(test_topic_retained), cmocka_unit_test(test_path_map),
		cmocka_unit_test(test_public_paths),	cmocka_unit_test(test_docs_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
