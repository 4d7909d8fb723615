#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#ifndef HEARTH_PLUGINDIR
#define HEARTH_PLUGINDIR "/usr/local/lib/hearth/plugins"
#endif
#ifndef HEARTH_SYSCONFDIR
#define HEARTH_SYSCONFDIR "/etc"
#endif

#define ERR_LEN 512

struct fixture {
	char path[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->path[0])
		unlink(f->path);
	free(f);
	return 0;
}

/* Write text (len bytes; -1: up to the NUL) to a new temp file. */
static void write_conf_len(struct fixture *f, const char *text, size_t len)
{
	if (f->path[0])
		unlink(f->path);
	snprintf(f->path, sizeof(f->path), "/tmp/hearth-test-config-XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void write_conf(struct fixture *f, const char *text)
{
	write_conf_len(f, text, strlen(text));
}

static bool near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

/* ------------------------------------------------------------------------ */

static void check_defaults(const struct hearth_config *c)
{
	assert_string_equal(c->mqtt.host, "127.0.0.1");
	assert_int_equal(c->mqtt.port, 1883);
	assert_string_equal(c->mqtt.base_topic, "hearth");
	assert_string_equal(c->mqtt.client_id, "hearthd");
	assert_null(c->mqtt.username);
	assert_null(c->mqtt.password_file);
	assert_null(c->mqtt.tls_ca);
	assert_null(c->mqtt.tls_cert);
	assert_null(c->mqtt.tls_key);
	assert_false(c->mqtt.tls_insecure);
	assert_int_equal(c->mqtt.keepalive, 30);
	assert_int_equal(c->mqtt.qos, 1);
	assert_string_equal(c->store.path, "/var/lib/hearth/hearth.db");
	assert_int_equal(c->store.commit_interval_ms, 1000);
	assert_int_equal(c->store.history_days, 30);
	assert_string_equal(c->store.backup_dir, "/var/lib/hearth/backups");
	assert_string_equal(c->plugins.dir, HEARTH_PLUGINDIR);
	assert_null(c->plugins.enable);
	assert_int_equal(c->plugins.n_enable, 0);
	assert_string_equal(c->rules.dir, HEARTH_SYSCONFDIR "/hearth/rules");
	assert_false(c->location.set);
	assert_null(c->location.timezone);
	assert_int_equal(c->log.level, HEARTH_LOG_INFO);
	assert_int_equal(c->log.json, 0);
	assert_true(c->homeassistant.enabled);
	assert_string_equal(c->homeassistant.discovery_prefix, "homeassistant");
	assert_int_equal(c->n_sections, 0);
	assert_null(c->sections);
}

static void test_defaults(void **state)
{
	(void)state;
	struct hearth_config *c = config_defaults();
	assert_non_null(c);
	assert_null(c->path);
	check_defaults(c);
	config_free(c);
	config_free(NULL);
}

/* An empty file and one of only comments give the defaults. */
static void test_empty_file(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN] = "x";
	write_conf(f, "");
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	check_defaults(c);
	assert_string_equal(c->path, f->path);
	config_free(c);

	write_conf(f, "# nothing\n; here\n\n   \n[mqtt]\n");
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), 0);
	check_defaults(c);
	config_free(c);
}

static const char full_conf[] = "[mqtt]\n"
				"host = broker.lan\n"
				"port = 8883\n"
				"base_topic = home/hub\n"
				"client_id = hub-1\n"
				"username = hearth\n"
				"password_file = /etc/hearth/mqtt.password\n"
				"tls_ca = /etc/ssl/ca.pem\n"
				"tls_cert = /etc/hearth/cert.pem\n"
				"tls_key = /etc/hearth/key.pem\n"
				"tls_insecure = yes\n"
				"keepalive = 60\n"
				"qos = 2\n"
				"[store]\n"
				"path = /srv/hearth.db\n"
				"commit_interval_ms = 0\n"
				"history_days = 3650\n"
				"[plugins]\n"
				"dir = /opt/hearth/plugins\n"
				"enable = virtual, zigbee_2 ,ble\n"
				"[rules]\n"
				"dir = /srv/rules\n"
				"[location]\n"
				"latitude = -33.8688\n"
				"longitude = 151.2093\n"
				"timezone = Australia/Sydney\n"
				"[log]\n"
				"level = debug\n"
				"format = json\n"
				"[homeassistant]\n"
				"enabled = off\n"
				"discovery_prefix = ha/discovery\n";

static void test_full_file(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN];
	write_conf(f, full_conf);
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(c->mqtt.host, "broker.lan");
	assert_int_equal(c->mqtt.port, 8883);
	assert_string_equal(c->mqtt.base_topic, "home/hub");
	assert_string_equal(c->mqtt.client_id, "hub-1");
	assert_string_equal(c->mqtt.username, "hearth");
	assert_string_equal(c->mqtt.password_file, "/etc/hearth/mqtt.password");
	assert_string_equal(c->mqtt.tls_ca, "/etc/ssl/ca.pem");
	assert_string_equal(c->mqtt.tls_cert, "/etc/hearth/cert.pem");
	assert_string_equal(c->mqtt.tls_key, "/etc/hearth/key.pem");
	assert_true(c->mqtt.tls_insecure);
	assert_int_equal(c->mqtt.keepalive, 60);
	assert_int_equal(c->mqtt.qos, 2);
	assert_string_equal(c->store.path, "/srv/hearth.db");
	assert_int_equal(c->store.commit_interval_ms, 0);
	assert_int_equal(c->store.history_days, 3650);
	assert_string_equal(c->plugins.dir, "/opt/hearth/plugins");
	assert_int_equal(c->plugins.n_enable, 3);
	assert_string_equal(c->plugins.enable[0], "virtual");
	assert_string_equal(c->plugins.enable[1], "zigbee_2");
	assert_string_equal(c->plugins.enable[2], "ble");
	assert_string_equal(c->rules.dir, "/srv/rules");
	assert_true(c->location.set);
	assert_true(near(c->location.latitude, -33.8688));
	assert_true(near(c->location.longitude, 151.2093));
	assert_string_equal(c->location.timezone, "Australia/Sydney");
	assert_int_equal(c->log.level, HEARTH_LOG_DEBUG);
	assert_int_equal(c->log.json, 1);
	assert_false(c->homeassistant.enabled);
	assert_string_equal(c->homeassistant.discovery_prefix, "ha/discovery");
	assert_int_equal(c->n_sections, 0);
	config_free(c);
}

/* Comments, blanks, CRLF, a BOM, indented keys and "key: value". */
static void test_syntax_tolerated(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN];
	write_conf(f, "\xEF\xBB\xBF; comment\r\n"
		      "[ mqtt ]   ; the broker\r\n"
		      "\thost=  broker  \r\n"
		      "  port : 1884 ; inline comment\r\n"
		      "   # indented comment\r\n"
		      "  username =\r\n"
		      "[log]\r\n"
		      "level = WARNING\r\n"
		      "format = JSON\r\n"
		      "[plugins]\n"
		      "enable =\n"
		      "[location]\n"
		      "latitude = 90\n"
		      "longitude = -180\n"
		      "timezone =\n"
		      "[plugin.virtual]\n"
		      "  devices = light:2\n"
		      "  interval_ms = 5000");
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(c->mqtt.host, "broker");
	assert_int_equal(c->mqtt.port, 1884);
	/* empty optional strings mean "not set" */
	assert_null(c->mqtt.username);
	assert_null(c->location.timezone);
	assert_int_equal(c->plugins.n_enable, 0);
	assert_int_equal(c->log.level, HEARTH_LOG_WARNING);
	assert_int_equal(c->log.json, 1);
	assert_true(c->location.set);
	assert_true(near(c->location.latitude, 90));
	assert_true(near(c->location.longitude, -180));
	const struct config_section *s = config_section_find(c, "virtual");
	assert_non_null(s);
	/* the last line has no newline and still counts */
	assert_string_equal(config_section_get(s, "interval_ms"), "5000");
	assert_int_equal(s->kv[1].line, 18);
	config_free(c);
}

static void test_bools(void **state)
{
	static const struct {
		const char *text;
		bool value;
	} cases[] = {
		{"true", true}, {"TRUE", true}, {"yes", true},	 {"Yes", true},
		{"on", true},	{"1", true},	{"false", false}, {"False", false},
		{"no", false},	{"NO", false},	{"off", false},	  {"0", false},
	};
	struct fixture *f = *state;
	char text[128], err[ERR_LEN];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hearth_config *c = NULL;
		/* start from the opposite of the default so both directions show */
		snprintf(text, sizeof(text), "[mqtt]\ntls_insecure = %s\n[homeassistant]\nenabled = %s\n",
			 cases[i].text, cases[i].text);
		write_conf(f, text);
		assert_int_equal(config_load(f->path, &c, err, sizeof(err)), 0);
		assert_int_equal(c->mqtt.tls_insecure, cases[i].value);
		assert_int_equal(c->homeassistant.enabled, cases[i].value);
		config_free(c);
	}
}

static void test_levels(void **state)
{
	static const struct {
		const char *text;
		enum hearth_log_level level;
	} cases[] = {
		{"error", HEARTH_LOG_ERROR}, {"warning", HEARTH_LOG_WARNING},
		{"warn", HEARTH_LOG_WARNING}, {"info", HEARTH_LOG_INFO},
		{"Debug", HEARTH_LOG_DEBUG},
	};
	struct fixture *f = *state;
	char text[128], err[ERR_LEN];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hearth_config *c = NULL;
		snprintf(text, sizeof(text), "[log]\nlevel = %s\n", cases[i].text);
		write_conf(f, text);
		assert_int_equal(config_load(f->path, &c, err, sizeof(err)), 0);
		assert_int_equal(c->log.level, cases[i].level);
		config_free(c);
	}
}

/* ------------------------------------------------------------------------ */

struct bad_case {
	const char *text;
	int line;	    /* the line the error must name */
	const char *where;  /* "[section] key" as the error must name it */
	const char *reason; /* a part of the reason */
};

static const struct bad_case bad_cases[] = {
	/* sections */
	{"[mqtt]\nhost = a\n[bogus]\nx = 1\n", 3, "[bogus]", "unknown section"},
	{"[mqtt]\n[bogus]\n", 2, "[bogus]", "unknown section"},
	{"[]\n", 1, "[]", "unknown section"},
	{"[mqtt]\nport = 1\n[store]\n[mqtt]\n", 4, "[mqtt]", "repeated (first at line 1)"},
	{"[mqtt\nhost = a\n", 1, "[mqtt", "without ']'"},
	{"[mqtt] x\n", 1, "[mqtt] x", "text after ']'"},
	{"host = a\n", 1, "host", "outside of any [section]"},
	/* keys */
	{"[mqtt]\nhots = a\n", 2, "[mqtt] hots", "unknown key"},
	{"[log]\nlevel = info\nlevel = debug\n", 3, "[log] level", "given twice (first at line 2)"},
	{"[mqtt]\n\nhost\n", 3, "[mqtt] host", "expected 'key = value'"},
	{"[mqtt]\n = 1883\n", 2, "[mqtt]", "no key before '='"},
	{"[mqtt]\nport 1883\n", 2, "[mqtt] port 1883", "expected 'key = value'"},
	/* integers */
	{"[mqtt]\nport = abc\n", 2, "[mqtt] port", "'abc' is not an integer"},
	{"[mqtt]\nport = 12x\n", 2, "[mqtt] port", "'12x' is not an integer"},
	{"[mqtt]\nport = 1883 # tls\n", 2, "[mqtt] port", "is not an integer"},
	{"[mqtt]\nport =\n", 2, "[mqtt] port", "'' is not an integer"},
	{"[mqtt]\nport = 70000\n", 2, "[mqtt] port", "70000 is out of range 1..65535"},
	{"[mqtt]\nport = 0\n", 2, "[mqtt] port", "0 is out of range 1..65535"},
	{"[mqtt]\nport = 99999999999999999999\n", 2, "[mqtt] port", "out of range"},
	{"[mqtt]\nkeepalive = 4\n", 2, "[mqtt] keepalive", "out of range 5..3600"},
	{"[mqtt]\nqos = 3\n", 2, "[mqtt] qos", "3 is out of range 0..2"},
	{"[store]\ncommit_interval_ms = -1\n", 2, "[store] commit_interval_ms", "out of range"},
	{"[store]\nhistory_days = 3651\n", 2, "[store] history_days", "out of range 0..3650"},
	/* booleans, levels, formats */
	{"[homeassistant]\nenabled = maybe\n", 2, "[homeassistant] enabled",
	 "'maybe' is not a boolean"},
	{"[mqtt]\ntls_insecure = 2\n", 2, "[mqtt] tls_insecure", "is not a boolean"},
	{"[log]\nlevel = loud\n", 2, "[log] level", "'loud' is not a log level"},
	{"[log]\nlevel = informationally\n", 2, "[log] level", "is not a log level"},
	{"[log]\nformat = xml\n", 2, "[log] format", "'xml' is not a format"},
	/* location */
	{"[location]\nlatitude = 52.37\n", 2, "[location] latitude", "longitude must be given"},
	{"[location]\ntimezone = UTC\nlongitude = 4.9\n", 3, "[location] longitude",
	 "latitude must be given"},
	{"[location]\nlatitude = 91\nlongitude = 0\n", 2, "[location] latitude",
	 "91 is out of range -90..90"},
	{"[location]\nlatitude = 0\nlongitude = -180.5\n", 3, "[location] longitude",
	 "out of range -180..180"},
	{"[location]\nlatitude = north\nlongitude = 0\n", 2, "[location] latitude",
	 "'north' is not a number"},
	{"[location]\nlatitude = nan\nlongitude = 0\n", 2, "[location] latitude",
	 "is not a number"},
	/* strings */
	{"[mqtt]\nbase_topic = a/+/b\n", 2, "[mqtt] base_topic", "must not contain '+' or '#'"},
	{"[mqtt]\nbase_topic = home/#\n", 2, "[mqtt] base_topic", "must not contain"},
	{"[mqtt]\nbase_topic = /hearth\n", 2, "[mqtt] base_topic", "must not start or end with '/'"},
	{"[mqtt]\nbase_topic = hearth/\n", 2, "[mqtt] base_topic", "must not start or end"},
	{"[mqtt]\nbase_topic =\n", 2, "[mqtt] base_topic", "must not be empty"},
	{"[homeassistant]\ndiscovery_prefix = ha/+\n", 2, "[homeassistant] discovery_prefix",
	 "must not contain"},
	{"[mqtt]\nhost =\n", 2, "[mqtt] host", "must not be empty"},
	{"[mqtt]\nhost = a\tb\x01\n", 2, NULL, "control character"},
	/* plugins */
	{"[plugins]\nenable = virtual, ../evil\n", 2, "[plugins] enable",
	 "'../evil' is not a name"},
	{"[plugins]\nenable = Virtual\n", 2, "[plugins] enable", "is not a name"},
	{"[plugins]\nenable = a, b, a\n", 2, "[plugins] enable", "'a' is listed twice"},
	{"[plugin.virtual]\na = 1\n[plugin.virtual]\n", 3, "[plugin.virtual]",
	 "repeated (first at line 1)"},
	{"[plugin.Bad]\n", 1, "[plugin.Bad]", "'Bad' is not a name"},
	{"[plugin.]\n", 1, "[plugin.]", "is not a name"},
	{"[plugin.virtual]\ndevices = a\ndevices = b\n", 3, "[plugin.virtual] devices",
	 "given twice (first at line 2)"},
	{"[plugin.virtual]\nBad Key = 1\n", 2, "[plugin.virtual] Bad Key", "not a key name"},
	/* the first of several errors is the one reported */
	{"[mqtt]\nfoo ; bar = 1\nport = 0\n", 2, NULL, "expected 'key = value'"},
	{"[mqtt]\nport = 0\nqos = 9\n[nope]\n", 2, "[mqtt] port", "out of range"},
};

static void check_bad(struct fixture *f, size_t i, const struct bad_case *bc)
{
	struct hearth_config sentinel;
	struct hearth_config *c = &sentinel;
	char err[ERR_LEN], want[256];
	write_conf(f, bc->text);
	int rc = config_load(f->path, &c, err, sizeof(err));
	if (bc->where)
		snprintf(want, sizeof(want), "%s:%d: %s: ", f->path, bc->line, bc->where);
	else
		snprintf(want, sizeof(want), "%s:%d: ", f->path, bc->line);
	if (rc != -EINVAL || strncmp(err, want, strlen(want)) != 0 || !strstr(err, bc->reason))
		fail_msg("case %zu: rc %d, error \"%s\"; want -EINVAL and \"%s...%s\"", i, rc,
			 err, want, bc->reason);
	/* out untouched on failure */
	assert_ptr_equal(c, &sentinel);
	assert_null(strchr(err, '\n'));
}

static void test_bad_input(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		check_bad(f, i, &bad_cases[i]);
}

static void test_long_line(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN], text[1024], want[128];
	int n = snprintf(text, sizeof(text), "[mqtt]\nhost = ");
	memset(text + n, 'h', 600);
	snprintf(text + n + 600, sizeof(text) - (size_t)n - 600, "\nport = 1\n");
	write_conf(f, text);
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	snprintf(want, sizeof(want), "%s:2: line is longer than", f->path);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

static void test_nul_byte(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN], want[128];
	static const char text[] = "[mqtt]\nhost = a\0b\n";
	write_conf_len(f, text, sizeof(text) - 1);
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	snprintf(want, sizeof(want), "%s:2: ", f->path);
	assert_true(strncmp(err, want, strlen(want)) == 0);
	assert_non_null(strstr(err, "NUL"));
}

static void test_missing_file(void **state)
{
	(void)state;
	struct hearth_config sentinel;
	struct hearth_config *c = &sentinel;
	char err[ERR_LEN];
	const char *path = "/tmp/hearth-test-no-such-dir/hearth.conf";
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_ptr_equal(c, &sentinel);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_non_null(strstr(err, ": cannot open: "));

	assert_int_equal(config_load("/tmp", &c, err, sizeof(err)), -EISDIR);
	assert_ptr_equal(c, &sentinel);
	assert_true(strncmp(err, "/tmp: ", 6) == 0);

	/* a NULL or empty error buffer is accepted */
	assert_int_equal(config_load(path, &c, NULL, 0), -ENOENT);
	assert_int_equal(config_load(path, &c, err, 0), -ENOENT);
	assert_int_equal(config_load(NULL, &c, err, sizeof(err)), -EINVAL);
	assert_ptr_equal(c, &sentinel);
}

static void test_unreadable_file(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN];
	if (geteuid() == 0)
		skip(); /* root reads any file */
	write_conf(f, "[mqtt]\n");
	assert_int_equal(chmod(f->path, 0), 0);
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), -EACCES);
	assert_null(c);
	assert_true(strncmp(err, f->path, strlen(f->path)) == 0);
}

/* A short error buffer gets a truncated, terminated line. */
static void test_short_err_buffer(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[8];
	memset(err, 'x', sizeof(err));
	write_conf(f, "[nope]\n");
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_null(c);
}

/* ------------------------------------------------------------------------ */

static void test_plugin_sections(void **state)
{
	struct fixture *f = *state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN];
	write_conf(f, "[plugins]\n"					  /* 1 */
		      "enable = virtual, zigbee, ble\n"			  /* 2 */
		      "\n"						  /* 3 */
		      "[plugin.virtual]\n"				  /* 4 */
		      "devices = light:2, plug:1, motion:1\n"		  /* 5 */
		      "; a comment\n"					  /* 6 */
		      "interval_ms = 5000\n"				  /* 7 */
		      "[plugin.zigbee]\n"				  /* 8 */
		      "[plugin.ble]\n"					  /* 9 */
		      "  discovery = false\n"				  /* 10 */
		      "bind_key.a4:c1:38 = 00112233\n"			  /* 11 */
		      "note = x # not a comment ; a comment\n"		  /* 12 */
		      "[log]\n"						  /* 13 */
		      "level = error\n");				  /* 14 */
	assert_int_equal(config_load(f->path, &c, err, sizeof(err)), 0);
	assert_int_equal(c->log.level, HEARTH_LOG_ERROR);
	assert_int_equal(c->n_sections, 3);

	const struct config_section *s = config_section_find(c, "virtual");
	assert_non_null(s);
	assert_ptr_equal(s, &c->sections[0]);
	assert_string_equal(s->name, "virtual");
	assert_int_equal(s->line, 4);
	assert_int_equal(s->n_kv, 2);
	assert_string_equal(s->kv[0].key, "devices");
	assert_string_equal(s->kv[0].value, "light:2, plug:1, motion:1");
	assert_int_equal(s->kv[0].line, 5);
	assert_string_equal(s->kv[1].key, "interval_ms");
	assert_string_equal(s->kv[1].value, "5000");
	assert_int_equal(s->kv[1].line, 7);
	assert_string_equal(config_section_get(s, "interval_ms"), "5000");
	assert_null(config_section_get(s, "nope"));

	/* an empty section is still a section */
	s = config_section_find(c, "zigbee");
	assert_non_null(s);
	assert_int_equal(s->line, 8);
	assert_int_equal(s->n_kv, 0);
	assert_null(config_section_get(s, "devices"));

	s = config_section_find(c, "ble");
	assert_non_null(s);
	assert_int_equal(s->line, 9);
	assert_int_equal(s->n_kv, 3);
	assert_string_equal(config_section_get(s, "discovery"), "false");
	assert_int_equal(s->kv[0].line, 10);
	/* "key: value" splits at the first ':' or '=' (inih's rule) */
	assert_string_equal(s->kv[1].key, "bind_key.a4");
	assert_string_equal(s->kv[1].value, "c1:38 = 00112233");
	assert_string_equal(config_section_get(s, "note"), "x # not a comment");
	assert_int_equal(s->kv[2].line, 12);

	assert_null(config_section_find(c, "wifi"));
	assert_null(config_section_find(c, "plugin.virtual"));
	assert_null(config_section_find(NULL, "virtual"));
	assert_null(config_section_find(c, NULL));
	assert_null(config_section_get(NULL, "devices"));
	config_free(c);
}

/* ------------------------------------------------------------------------ */

static void check_split(const char *text, const char *const *want, size_t n_want)
{
	char **items = (char **)&items; /* overwritten on success */
	size_t n = 99;
	assert_int_equal(config_split_list(text, &items, &n), 0);
	assert_int_equal(n, n_want);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(items[i], want[i]);
		free(items[i]);
	}
	if (n == 0)
		assert_null(items);
	free(items);
}

#define SPLIT(text, ...)                                                                    \
	do {                                                                               \
		static const char *const w_[] = {__VA_ARGS__};                             \
		check_split(text, w_ + 1, sizeof(w_) / sizeof(w_[0]) - 1);                 \
	} while (0)

static void test_split_list(void **state)
{
	(void)state;
	SPLIT(NULL, "");
	SPLIT("", "");
	SPLIT("   ", "");
	SPLIT(",", "");
	SPLIT(" , ,\t, ", "");
	SPLIT("a", "", "a");
	SPLIT("virtual", "", "virtual");
	SPLIT(" a , b ,c ", "", "a", "b", "c");
	SPLIT("a,,b,", "", "a", "b");
	SPLIT(",a", "", "a");
	SPLIT("\ta\t,\tb\t", "", "a", "b");
	SPLIT("one two , three", "", "one two", "three");
	SPLIT("light:2, plug:1, motion:1", "", "light:2", "plug:1", "motion:1");
}

/* ------------------------------------------------------------------------ */

static void test_known_keys(void **state)
{
	struct fixture *f = *state;
	char text[256], err[ERR_LEN];
	size_t n = 0;
	for (; config_known_keys[n]; n++) {
		const char *key = config_known_keys[n];
		const char *dot = strchr(key, '.');
		assert_non_null(dot);
		for (size_t j = 0; j < n; j++)
			assert_string_not_equal(config_known_keys[j], key);
		/* the parser knows each listed key: no "unknown" error for it */
		struct hearth_config *c = NULL;
		snprintf(text, sizeof(text), "[%.*s]\n%s = not-a-value?\n", (int)(dot - key), key,
			 dot + 1);
		write_conf(f, text);
		int rc = config_load(f->path, &c, err, sizeof(err));
		if (rc < 0)
			assert_null(strstr(err, "unknown"));
		config_free(c);
	}
	/* every field of struct hearth_config but location.set has a key */
	assert_int_equal(n, 34);
	assert_string_equal(config_known_keys[0], "mqtt.host");
}

/* Is the key documented, as "key =" or "# key =", in its section? */
static bool documented(char (*found)[128], size_t n_found, const char *key)
{
	for (size_t i = 0; i < n_found; i++)
		if (strcmp(found[i], key) == 0)
			return true;
	return false;
}

/* Collect "section.key" for every "key =" or "# key =" line of a file. */
static size_t collect_documented(FILE *file, char (*found)[128], size_t max)
{
	char line[512], section[64] = "";
	size_t n = 0;
	while (fgets(line, sizeof(line), file) && n < max) {
		const char *p = line + strspn(line, " \t");
		if (*p == '#')
			p += 1 + strspn(p + 1, " \t");
		/* commented headers count: they introduce commented examples */
		if (*p == '[') {
			size_t len = strcspn(p + 1, "]");
			snprintf(section, sizeof(section), "%.*s", (int)len, p + 1);
			continue;
		}
		size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
		if (len == 0 || p[len + strspn(p + len, " \t")] != '=')
			continue;
		snprintf(found[n++], 128, "%s.%.*s", section, (int)len, p);
	}
	return n;
}

static void test_shipped_config(void **state)
{
	(void)state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN] = "x";
	static char found[256][128];

	int rc = config_load("config/hearth.conf", &c, err, sizeof(err));
	if (rc != 0)
		fail_msg("config/hearth.conf: rc %d: %s", rc, err);
	assert_string_equal(err, "");
	config_free(c);

	FILE *file = fopen("config/hearth.conf", "re");
	assert_non_null(file);
	size_t n = collect_documented(file, found, 256);
	fclose(file);
	for (size_t i = 0; config_known_keys[i]; i++)
		if (!documented(found, n, config_known_keys[i]))
			fail_msg("config/hearth.conf does not document %s", config_known_keys[i]);
	/* the virtual plugin's keys are shown as an example */
	assert_true(documented(found, n, "plugin.virtual.devices"));
	assert_true(documented(found, n, "plugin.virtual.interval_ms"));
}

static void test_dev_config(void **state)
{
	(void)state;
	struct hearth_config *c = NULL;
	char err[ERR_LEN], line[256];
	int rc = config_load("config/hearth.dev.conf", &c, err, sizeof(err));
	if (rc != 0)
		fail_msg("config/hearth.dev.conf: rc %d: %s", rc, err);
	assert_string_equal(c->mqtt.host, "127.0.0.1");
	assert_int_equal(c->mqtt.port, 1883);
	assert_string_equal(c->mqtt.base_topic, "hearth");
	assert_string_equal(c->store.path, "build/dev/hearth.db");
	assert_string_equal(c->plugins.dir, "build/plugins");
	assert_int_equal(c->plugins.n_enable, 1);
	assert_string_equal(c->plugins.enable[0], "virtual");
	assert_string_equal(c->rules.dir, "config/rules");
	assert_true(c->location.set);
	const struct config_section *s = config_section_find(c, "virtual");
	assert_string_equal(config_section_get(s, "devices"),
			    "light:2, plug:1, motion:1, climate:1, contact:1, button:1");
	assert_string_equal(config_section_get(s, "interval_ms"), "5000");
	config_free(c);

	/* the run script rewrites this exact line */
	FILE *file = fopen("config/hearth.dev.conf", "re");
	assert_non_null(file);
	int hits = 0;
	while (fgets(line, sizeof(line), file))
		hits += strcmp(line, "port = 1883\n") == 0;
	fclose(file);
	assert_int_equal(hits, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_tolerated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bools, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_byte, setup, teardown),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test_setup_teardown(test_unreadable_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_err_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plugin_sections, setup, teardown),
		cmocka_unit_test(test_split_list),
		cmocka_unit_test_setup_teardown(test_known_keys, setup, teardown),
		cmocka_unit_test(test_shipped_config),
		cmocka_unit_test(test_dev_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
