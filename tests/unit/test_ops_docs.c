/*
 * The operations docs and man pages say what the code does:
 *  - every INI example in docs/getting-started.md, operations.md and
 *    scaling.md is a hearth.conf that config_load() accepts, or (a
 *    [Service] block) a copy of a drop-in in systemd/dropins/;
 *  - every JSON example there is a rule hearth accepts, against the devices
 *    the docs name;
 *  - hearth.conf(5) documents every configuration key in its section,
 *    hearthctl(1) every command of hearthctl's table, hearthd(8) every long
 *    option of hearthd.
 * Run from the top of the tree (as make test does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capability.h"
#include "config.h"
#include "registry.h"
#include "rules.h"
#include "rules_stub.h"

#define TEXT_MAX (512 * 1024)

static const char *const docs[] = {"docs/getting-started.md", "docs/operations.md",
				   "docs/scaling.md"};

/* The whole file, NUL-terminated, for free(). */
static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s (run from the top of the tree)", path);
	char *buf = malloc(TEXT_MAX);
	assert_non_null(buf);
	size_t n = fread(buf, 1, TEXT_MAX - 1, f);
	assert_true(n < TEXT_MAX - 1);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

typedef void (*block_fn)(const char *doc, char *block, void *user);

/* Call fn on every fenced block of the language (its text NUL-terminated in
 * place); returns how many. */
static int each_block(const char *doc, char *text, const char *lang, block_fn fn, void *user)
{
	char fence[32];
	int n = 0;
	snprintf(fence, sizeof(fence), "```%s\n", lang);
	for (char *p = strstr(text, fence); p; p = strstr(p, fence)) {
		p += strlen(fence);
		char *end = strstr(p, "```");
		assert_non_null(end);
		*end = '\0';
		fn(doc, p, user);
		n++;
		p = end + 3;
	}
	return n;
}

/* -- INI: configurations and drop-ins ------------------------------------------ */

static bool in_a_dropin(const char *block)
{
	glob_t g;
	bool found = false;
	assert_int_equal(glob("systemd/dropins/*.conf", 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc && !found; i++) {
		char *file = read_all(g.gl_pathv[i]);
		found = strstr(file, block) != NULL;
		free(file);
	}
	globfree(&g);
	return found;
}

static void check_ini(const char *doc, char *block, void *user)
{
	int *configs = user;
	if (strstr(block, "[Service]")) {
		if (!in_a_dropin(block))
			fail_msg("%s: a drop-in that is no file of systemd/dropins/:\n%s", doc, block);
		return;
	}
	char path[] = "/tmp/hearth-opsdoc-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, block, strlen(block)), (ssize_t)strlen(block));
	close(fd);
	struct hearth_config *c = NULL;
	char err[512];
	int rc = config_load(path, &c, err, sizeof(err));
	unlink(path);
	if (rc)
		fail_msg("%s: a configuration example is refused: %s\n%s", doc, err, block);
	config_free(c);
	(*configs)++;
}

static void test_ini_examples(void **state)
{
	(void)state;
	int configs = 0, blocks = 0;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		char *text = read_all(docs[i]);
		blocks += each_block(docs[i], text, "ini", check_ini, &configs);
		free(text);
	}
	/* getting started's first file, two gateways in scaling, two drop-ins */
	assert_true(configs >= 3);
	assert_true(blocks - configs >= 2);
}

/* -- JSON: rules ----------------------------------------------------------------- */

static const char *const on_off[] = {"ON", "OFF"};
static const char *const actions[] = {"single", "double", "hold"};

static const struct hearth_capability light[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = 7, .value_on = HEARTH_STRING("ON"),
	 .value_off = HEARTH_STRING("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = 7,
	 .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = 0, .max = 254},
};
static const struct hearth_capability motion[] = {
	{.name = "occupancy", .type = HEARTH_CAP_BINARY, .access = 5,
	 .value_on = HEARTH_BOOL(true), .value_off = HEARTH_BOOL(false)},
};
static const struct hearth_capability button[] = {
	{.name = "action", .type = HEARTH_CAP_ENUM, .access = 1, .values = actions, .n_values = 3},
};

/* The devices the docs' rules name. */
static const struct {
	const char *name;
	const struct hearth_capability *caps;
	size_t n;
} house[] = {
	{"hall/motion", motion, 1},
	{"hall/light", light, 2},
	{"landing/lamp", light, 2},
	{"gate/button", button, 1},
};


static void check_rule(const char *doc, char *block, void *user)
{
	struct rules *rules = user;
	cJSON *j = cJSON_Parse(block);
	char err[400] = "";
	if (!j)
		fail_msg("%s: a JSON example does not parse:\n%s", doc, block);
	if (rules_add(rules, j, RULES_SOURCE_API, err, sizeof(err)) != 0)
		fail_msg("%s: rule refused: %s", doc, err);
	cJSON_Delete(j);
}

static void test_rule_examples(void **state)
{
	(void)state;
	struct registry *reg = registry_new();
	assert_non_null(reg);
	for (size_t i = 0; i < sizeof(house) / sizeof(house[0]); i++) {
		char id[32], err[200];
		struct device *dev;
		struct cap *caps;
		snprintf(id, sizeof(id), "doc:%zu", i);
		assert_int_equal(registry_add(reg, id, house[i].name, "doc", &dev, err, sizeof(err)), 0);
		assert_int_equal(cap_array_from_abi(house[i].caps, house[i].n, &caps, err, sizeof(err)),
				 0);
		registry_set_caps(dev, caps, house[i].n);
	}
	(void)on_off;
	struct rules *rules = rules_new(&rules_stub_host, reg);
	assert_non_null(rules);
	int n = 0;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		char *text = read_all(docs[i]);
		n += each_block(docs[i], text, "json", check_rule, rules);
		free(text);
	}
	/* the first rule of getting started, two across gateways in scaling */
	assert_true(n >= 3);
	rules_free(rules);
	registry_free(reg);
}

/* -- man pages --------------------------------------------------------------------- */

/* The text between `.SH "[section]"` and the next .SH, NUL-terminated in place. */
static char *man_section(char *page, const char *section)
{
	char head[96];
	snprintf(head, sizeof(head), "\n.SH \"[%s]\"\n", section);
	char *start = strstr(page, head);
	if (!start)
		return NULL;
	start += strlen(head);
	char *end = strstr(start, "\n.SH ");
	if (end)
		*end = '\0';
	return start;
}

/* A man line starting with macro and then word, a blank or the line's end after it. */
static bool man_has(const char *text, const char *macro, const char *word)
{
	char pat[128];
	int n = snprintf(pat, sizeof(pat), "\n%s %s", macro, word);
	for (const char *p = strstr(text, pat); p; p = strstr(p + 1, pat)) {
		char after = p[n];
		if (after == ' ' || after == '\n' || after == '"')
			return true;
	}
	return false;
}

static void test_conf_page_has_every_key(void **state)
{
	(void)state;
	size_t n = 0;
	for (; config_known_keys[n]; n++) {
		char *page = read_all("man/hearth.conf.5");
		char section[64];
		const char *key = config_known_keys[n];
		const char *dot = strchr(key, '.');
		snprintf(section, sizeof(section), "%.*s", (int)(dot - key), key);
		char *text = man_section(page, section);
		if (!text)
			fail_msg("hearth.conf.5 has no section [%s]", section);
		if (!man_has(text, ".B", dot + 1) && !man_has(text, ".BR", dot + 1))
			fail_msg("hearth.conf.5 does not document %s", key);
		free(page);
	}
	assert_true(n >= 26);
}

/* Names of the rows of "static const struct command commands[] = {" in
 * hearthctl.c, written `{ "name", ...`. */
static size_t ctl_commands(char names[][32], size_t max)
{
	char *src = read_all("src/ctl/hearthctl.c");
	char *p = strstr(src, "commands[] = {");
	assert_non_null(p);
	char *end = strstr(p, "\n};");
	assert_non_null(end);
	*end = '\0';
	size_t n = 0;
	while ((p = strstr(p, "\n\t{ \"")) && n < max) {
		p += 5;
		size_t len = strcspn(p, "\"");
		assert_true(len > 0 && len < 32);
		snprintf(names[n++], 32, "%.*s", (int)len, p);
	}
	free(src);
	return n;
}

static void test_ctl_page_has_every_command(void **state)
{
	(void)state;
	char names[64][32];
	size_t n = ctl_commands(names, 64);
	char *page = read_all("man/hearthctl.1");
	for (size_t i = 0; i < n; i++)
		if (!man_has(page, ".B", names[i]) && !man_has(page, ".BI", names[i]))
			fail_msg("hearthctl.1 does not document the command '%s'", names[i]);
	free(page);
	/* the list is really read: the device commands, backup and restore */
	assert_true(n >= 12);
	bool backup = false, restore = false;
	for (size_t i = 0; i < n; i++) {
		backup |= strcmp(names[i], "backup") == 0;
		restore |= strcmp(names[i], "restore") == 0;
	}
	assert_true(backup && restore);
}

static void test_hearthd_page_has_every_option(void **state)
{
	(void)state;
	char *src = read_all("src/main.c");
	char *page = read_all("man/hearthd.8");
	char *p = strstr(src, "longopts[] = {");
	assert_non_null(p);
	char *end = strstr(p, "};");
	assert_non_null(end);
	*end = '\0';
	int n = 0;
	while ((p = strstr(p, "{\"")) != NULL) {
		p += 2;
		size_t len = strcspn(p, "\"");
		/* roff writes every '-' of an option as "\-" */
		char opt[128] = "\\-\\-";
		size_t o = strlen(opt);
		for (size_t i = 0; i < len && o + 3 < sizeof(opt); i++) {
			if (p[i] == '-')
				opt[o++] = '\\';
			opt[o++] = p[i];
		}
		opt[o] = '\0';
		if (!strstr(page, opt))
			fail_msg("hearthd.8 does not document --%.*s", (int)len, p);
		n++;
	}
	assert_true(n >= 7);
	free(src);
	free(page);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ini_examples),
		cmocka_unit_test(test_rule_examples),
		cmocka_unit_test(test_conf_page_has_every_key),
		cmocka_unit_test(test_ctl_page_has_every_command),
		cmocka_unit_test(test_hearthd_page_has_every_option),
	};
	return cmocka_run_group_tests_name("operations docs", tests, NULL, NULL);
}
