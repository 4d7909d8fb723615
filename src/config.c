#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "log.h"
#include "web_auth.h"

#ifndef HEARTH_PLUGINDIR
#define HEARTH_PLUGINDIR "/usr/local/lib/hearth/plugins"
#endif
#ifndef HEARTH_SYSCONFDIR
#define HEARTH_SYSCONFDIR "/etc"
#endif
#ifndef HEARTH_WEBDIR
#define HEARTH_WEBDIR "/usr/local/share/hearth/web"
#endif

enum {
	TEXT_MAX = 4096,	/* any string value */
	NAME_LEN_MAX = 64,	/* plugin names and plugin keys */
	LIST_MAX = 64,		/* names in one list */
	SECTIONS_MAX = 64,	/* [plugin.NAME] sections */
	SECTION_KEYS_MAX = 256, /* keys in one [plugin.NAME] section */
	LINES_MAX = 100000,
	WHY_LEN = 160,
	MSG_LEN = 512,
};

enum opt_type { OPT_STRING, OPT_INT, OPT_BOOL, OPT_DOUBLE, OPT_LEVEL, OPT_FORMAT, OPT_LIST };

/* A check beyond type and range: NULL when text is fine, else the reason. */
typedef const char *(*check_fn)(const char *text);

struct option {
	const char *section;
	const char *key;
	enum opt_type type;
	const char *def; /* the default, written as in the file; NULL: none */
	double min, max; /* numbers: the range; strings: the length */
	size_t offset;	 /* of the value in struct hearth_config */
	size_t count_offset; /* lists: of the size_t count */
	check_fn check;
	const char *help;
};

static const char *topic_check(const char *text);
static const char *name_check(const char *text);
static const char *listen_check(const char *text);

#define CFG(field) offsetof(struct hearth_config, field)

/*
 * The option table. X(section, key, type, default, min, max, field, check,
 * help) for a scalar, L(...) for a comma list with its count field. It
 * expands into the parser's table and into config_known_keys[], so the two
 * cannot disagree.
 */
#define OPTIONS(X, L)                                                                      \
	X(mqtt, host, OPT_STRING, "127.0.0.1", 1, 255, mqtt.host, NULL,                       \
	  "broker host name or address")                                                    \
	X(mqtt, port, OPT_INT, "1883", 1, 65535, mqtt.port, NULL, "broker TCP port")          \
	X(mqtt, base_topic, OPT_STRING, "hearth", 1, 255, mqtt.base_topic, topic_check,       \
	  "prefix of every topic")                                                          \
	X(mqtt, client_id, OPT_STRING, "hearthd", 1, 255, mqtt.client_id, NULL,               \
	  "MQTT client id")                                                                 \
	X(mqtt, username, OPT_STRING, NULL, 0, 255, mqtt.username, NULL, "MQTT user name")    \
	X(mqtt, password_file, OPT_STRING, NULL, 0, TEXT_MAX, mqtt.password_file, NULL,      \
	  "file holding the MQTT password")                                                 \
	X(mqtt, tls_ca, OPT_STRING, NULL, 0, TEXT_MAX, mqtt.tls_ca, NULL,                     \
	  "CA file; setting it turns TLS on")                                               \
	X(mqtt, tls_cert, OPT_STRING, NULL, 0, TEXT_MAX, mqtt.tls_cert, NULL,                 \
	  "client certificate")                                                             \
	X(mqtt, tls_key, OPT_STRING, NULL, 0, TEXT_MAX, mqtt.tls_key, NULL, "client key")     \
	X(mqtt, tls_insecure, OPT_BOOL, "false", 0, 0, mqtt.tls_insecure, NULL,               \
	  "skip the broker host name check")                                                \
	X(mqtt, keepalive, OPT_INT, "30", 5, 3600, mqtt.keepalive, NULL, "seconds")           \
	X(mqtt, qos, OPT_INT, "1", 0, 2, mqtt.qos, NULL, "QoS of state and commands")         \
	X(mqtt, command_timeout_ms, OPT_INT, "10000", 1000, 600000, mqtt.command_timeout_ms,  \
	  NULL, "a command its device has not confirmed by then is reported failed")       \
	X(mqtt, command_max_age_s, OPT_INT, "300", 0, 604800, mqtt.command_max_age_s, NULL,  \
	  "drop a /set stamped longer ago than this; 0: never")                           \
	X(store, path, OPT_STRING, "/var/lib/hearth/hearth.db", 1, TEXT_MAX, store.path,      \
	  NULL, "SQLite database file")                                                     \
	X(store, commit_interval_ms, OPT_INT, "1000", 0, 60000, store.commit_interval_ms,     \
	  NULL, "batch writes this long; 0 commits every change")                          \
	X(store, history_days, OPT_INT, "30", 0, 3650, store.history_days, NULL,              \
	  "days of history kept; 0 keeps none")                                            \
	X(store, backup_dir, OPT_STRING, "/var/lib/hearth/backups", 1, TEXT_MAX,              \
	  store.backup_dir, NULL, "folder of the backups bridge/request/backup writes")     \
	X(plugins, dir, OPT_STRING, HEARTH_PLUGINDIR, 1, TEXT_MAX, plugins.dir, NULL,         \
	  "folder of <name>.so plugins")                                                    \
	L(plugins, enable, NULL, 0, LIST_MAX, plugins.enable, plugins.n_enable, name_check,   \
	  "plugins to load, comma separated")                                               \
	X(rules, dir, OPT_STRING, HEARTH_SYSCONFDIR "/hearth/rules", 1, TEXT_MAX, rules.dir,  \
	  NULL, "folder of *.json rules")                                                   \
	X(location, latitude, OPT_DOUBLE, NULL, -90, 90, location.latitude, NULL,             \
	  "degrees north, for sun triggers")                                                \
	X(location, longitude, OPT_DOUBLE, NULL, -180, 180, location.longitude, NULL,         \
	  "degrees east, for sun triggers")                                                 \
	X(location, timezone, OPT_STRING, NULL, 0, 255, location.timezone, NULL,              \
	  "IANA time zone; empty: the system's")                                            \
	X(log, level, OPT_LEVEL, "info", 0, 0, log.level, NULL,                               \
	  "error, warning, info or debug")                                                  \
	X(log, format, OPT_FORMAT, "text", 0, 0, log.json, NULL, "text or json")              \
	X(homeassistant, enabled, OPT_BOOL, "true", 0, 0, homeassistant.enabled, NULL,        \
	  "publish Home Assistant discovery")                                               \
	X(homeassistant, discovery_prefix, OPT_STRING, "homeassistant", 1, 255,               \
	  homeassistant.discovery_prefix, topic_check, "Home Assistant discovery prefix")    \
	X(web, enabled, OPT_BOOL, "false", 0, 0, web.enabled, NULL, "serve the dashboard")     \
	X(web, listen, OPT_STRING, "127.0.0.1:8080", 1, 80, web.listen, listen_check,         \
	  "address:port of the dashboard")                                                   \
	X(web, root, OPT_STRING, HEARTH_WEBDIR, 1, TEXT_MAX, web.root, NULL,                  \
	  "folder of the dashboard's files")                                                 \
	X(web, password_file, OPT_STRING, NULL, 0, TEXT_MAX, web.password_file, NULL,         \
	  "file holding the crypt(3) hash of the dashboard password")                        \
	X(web, tls_cert, OPT_STRING, NULL, 0, TEXT_MAX, web.tls_cert, NULL,                   \
	  "certificate for HTTPS")                                                           \
	X(web, tls_key, OPT_STRING, NULL, 0, TEXT_MAX, web.tls_key, NULL, "key for HTTPS")

#define OPT_ROW(sec, k, t, d, lo, hi, field, chk, h)                                       \
	{.section = #sec,                                                                  \
	 .key = #k,                                                                        \
	 .type = t,                                                                        \
	 .def = d,                                                                         \
	 .min = lo,                                                                        \
	 .max = hi,                                                                        \
	 .offset = CFG(field),                                                             \
	 .check = chk,                                                                     \
	 .help = h},
#define LIST_ROW(sec, k, d, lo, hi, field, count, chk, h)                                  \
	{.section = #sec,                                                                  \
	 .key = #k,                                                                        \
	 .type = OPT_LIST,                                                                 \
	 .def = d,                                                                         \
	 .min = lo,                                                                        \
	 .max = hi,                                                                        \
	 .offset = CFG(field),                                                             \
	 .count_offset = CFG(count),                                                       \
	 .check = chk,                                                                     \
	 .help = h},
#define KEY_ROW(sec, k, ...) #sec "." #k,

static const struct option options[] = {OPTIONS(OPT_ROW, LIST_ROW)};
const char *const config_known_keys[] = {OPTIONS(KEY_ROW, KEY_ROW) NULL};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* ------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

static const char *topic_check(const char *text)
{
	size_t len = strlen(text);
	if (len == 0)
		return "must not be empty";
	if (strpbrk(text, "+#"))
		return "must not contain '+' or '#'";
	if (text[0] == '/' || text[len - 1] == '/')
		return "must not start or end with '/'";
	return NULL;
}

static const char *listen_check(const char *text)
{
	struct web_listen l;
	if (web_listen_parse(text, &l) != 0)
		return "is not address:port (127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080)";
	return NULL;
}

/* Plugin names become file names: <dir>/<name>.so. */
static const char *name_check(const char *text)
{
	size_t len = strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789_");
	if (len == 0 || text[len] != '\0')
		return "is not a name (a-z, 0-9, _)";
	if (len > NAME_LEN_MAX)
		return "is too long a name";
	return NULL;
}

static void *slot(struct hearth_config *c, size_t offset)
{
	return (char *)c + offset;
}

static int set_string(struct hearth_config *c, const struct option *o, const char *text,
		      char *why)
{
	size_t len = strlen(text);
	if (len < (size_t)o->min) {
		snprintf(why, WHY_LEN, "must not be empty");
		return -EINVAL;
	}
	if (len > (size_t)o->max) {
		snprintf(why, WHY_LEN, "is longer than %zu characters", (size_t)o->max);
		return -EINVAL;
	}
	const char *bad = o->check ? o->check(text) : NULL;
	if (bad) {
		snprintf(why, WHY_LEN, "'%.64s' %s", text, bad);
		return -EINVAL;
	}
	/* an optional string given empty means "not set" */
	char *copy = NULL;
	if (len > 0 && !(copy = strdup(text)))
		return -ENOMEM;
	char **dst = slot(c, o->offset);
	free(*dst);
	*dst = copy;
	return 0;
}

static int set_int(struct hearth_config *c, const struct option *o, const char *text, char *why)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (end == text || *end != '\0') {
		snprintf(why, WHY_LEN, "'%.64s' is not an integer", text);
		return -EINVAL;
	}
	if (errno == ERANGE || v < (long)o->min || v > (long)o->max) {
		snprintf(why, WHY_LEN, "%.64s is out of range %ld..%ld", text, (long)o->min,
			 (long)o->max);
		return -EINVAL;
	}
	*(int *)slot(c, o->offset) = (int)v;
	return 0;
}

static int set_double(struct hearth_config *c, const struct option *o, const char *text,
		      char *why)
{
	char *end;
	double v = strtod(text, &end);
	if (end == text || *end != '\0' || !isfinite(v)) {
		snprintf(why, WHY_LEN, "'%.64s' is not a number", text);
		return -EINVAL;
	}
	if (v < o->min || v > o->max) {
		snprintf(why, WHY_LEN, "%.64s is out of range %g..%g", text, o->min, o->max);
		return -EINVAL;
	}
	*(double *)slot(c, o->offset) = v;
	return 0;
}

static const struct {
	const char *word;
	bool value;
} bool_words[] = {
	{"true", true}, {"yes", true}, {"on", true},   {"1", true},
	{"false", false}, {"no", false}, {"off", false}, {"0", false},
};

static int set_bool(struct hearth_config *c, const struct option *o, const char *text, char *why)
{
	for (size_t i = 0; i < sizeof(bool_words) / sizeof(bool_words[0]); i++) {
		if (strcasecmp(text, bool_words[i].word) == 0) {
			*(bool *)slot(c, o->offset) = bool_words[i].value;
			return 0;
		}
	}
	snprintf(why, WHY_LEN, "'%.64s' is not a boolean (true/false, yes/no, on/off, 1/0)", text);
	return -EINVAL;
}

static int set_level(struct hearth_config *c, const struct option *o, const char *text,
		     char *why)
{
	char lower[16];
	size_t len = strlen(text);
	enum hearth_log_level level;
	if (len < sizeof(lower)) {
		for (size_t i = 0; i <= len; i++)
			lower[i] = (char)tolower((unsigned char)text[i]);
		if (log_level_parse(lower, &level) == 0) {
			*(enum hearth_log_level *)slot(c, o->offset) = level;
			return 0;
		}
	}
	snprintf(why, WHY_LEN, "'%.64s' is not a log level (error, warning, info, debug)", text);
	return -EINVAL;
}

static int set_format(struct hearth_config *c, const struct option *o, const char *text,
		      char *why)
{
	int *json = slot(c, o->offset);
	if (strcasecmp(text, "text") == 0)
		*json = 0;
	else if (strcasecmp(text, "json") == 0)
		*json = 1;
	else {
		snprintf(why, WHY_LEN, "'%.64s' is not a format (text, json)", text);
		return -EINVAL;
	}
	return 0;
}

static void free_list(char **items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

static const char *list_check(const struct option *o, char **items, size_t n, size_t *bad)
{
	for (size_t i = 0; i < n; i++) {
		*bad = i;
		const char *why = o->check ? o->check(items[i]) : NULL;
		if (why)
			return why;
		for (size_t j = 0; j < i; j++)
			if (strcmp(items[i], items[j]) == 0)
				return "is listed twice";
	}
	return NULL;
}

static int set_list(struct hearth_config *c, const struct option *o, const char *text, char *why)
{
	char **items;
	size_t n, bad;
	if (config_split_list(text, &items, &n) < 0)
		return -ENOMEM;
	if (n > (size_t)o->max) {
		snprintf(why, WHY_LEN, "more than %zu names", (size_t)o->max);
		free_list(items, n);
		return -EINVAL;
	}
	const char *reason = list_check(o, items, n, &bad);
	if (reason) {
		snprintf(why, WHY_LEN, "'%.64s' %s", items[bad], reason);
		free_list(items, n);
		return -EINVAL;
	}
	char ***dst = slot(c, o->offset);
	size_t *count = slot(c, o->count_offset);
	free_list(*dst, *count);
	*dst = items;
	*count = n;
	return 0;
}

typedef int (*set_fn)(struct hearth_config *c, const struct option *o, const char *text,
		      char *why);

static const set_fn setters[] = {
	[OPT_STRING] = set_string, [OPT_INT] = set_int,	    [OPT_BOOL] = set_bool,
	[OPT_DOUBLE] = set_double, [OPT_LEVEL] = set_level, [OPT_FORMAT] = set_format,
	[OPT_LIST] = set_list,
};

static int find_option(const char *section, const char *key)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strcmp(options[i].section, section) == 0 &&
		    (!key || strcmp(options[i].key, key) == 0))
			return (int)i;
	return -1;
}

/* ------------------------------------------------------------------------
 * Defaults, free, lookups
 * ---------------------------------------------------------------------- */

static void free_sections(struct config_section *sections, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < sections[i].n_kv; j++) {
			free(sections[i].kv[j].key);
			free(sections[i].kv[j].value);
		}
		free(sections[i].kv);
		free(sections[i].name);
	}
	free(sections);
}

void config_free(struct hearth_config *config)
{
	if (!config)
		return;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];
		if (o->type == OPT_STRING)
			free(*(char **)slot(config, o->offset));
		else if (o->type == OPT_LIST)
			free_list(*(char ***)slot(config, o->offset),
				  *(size_t *)slot(config, o->count_offset));
	}
	free_sections(config->sections, config->n_sections);
	free(config->path);
	free(config);
}

struct hearth_config *config_defaults(void)
{
	struct hearth_config *c = calloc(1, sizeof(*c));
	char why[WHY_LEN];
	if (!c)
		return NULL;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];
		/* a default the setter refuses is a bug the unit test catches */
		if (o->def && setters[o->type](c, o, o->def, why) < 0) {
			config_free(c);
			return NULL;
		}
	}
	return c;
}

const struct config_section *config_section_find(const struct hearth_config *config,
						 const char *name)
{
	if (!config || !name)
		return NULL;
	for (size_t i = 0; i < config->n_sections; i++)
		if (strcmp(config->sections[i].name, name) == 0)
			return &config->sections[i];
	return NULL;
}

const char *config_section_get(const struct config_section *section, const char *key)
{
	if (!section || !key)
		return NULL;
	for (size_t i = 0; i < section->n_kv; i++)
		if (strcmp(section->kv[i].key, key) == 0)
			return section->kv[i].value;
	return NULL;
}

static const char *skip_blank(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

int config_split_list(const char *text, char ***out, size_t *n_out)
{
	char **items = NULL;
	size_t n = 0;
	const char *p = text ? text : "";
	while (*p) {
		p = skip_blank(p);
		size_t len = strcspn(p, ",");
		size_t next = len + (p[len] == ',');
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len > 0) {
			char **grown = realloc(items, (n + 1) * sizeof(*items));
			if (!grown)
				goto nomem;
			items = grown;
			if (!(items[n] = strndup(p, len)))
				goto nomem;
			n++;
		}
		p += next;
	}
	*out = items;
	*n_out = n;
	return 0;
nomem:
	free_list(items, n);
	return -ENOMEM;
}

/* ------------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------- */

struct parse {
	FILE *file;
	const char *path;
	struct hearth_config *config;
	int line;
	int failed;   /* 0, or the negative errno of the first error */
	int err_line; /* line of the first error */
	char msg[MSG_LEN];
	char section[80];	/* current section as written, "" before any */
	int core;		/* first option of the current core section, or -1 */
	int plugin;		/* current index in config->sections, or -1 */
	int seen[N_OPTIONS];	/* line a key was set on, 0: not set */
	int header[N_OPTIONS];	/* line of a core section's header, by its first option */
};

static void append(char *buf, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	if (*len >= MSG_LEN - 1)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, MSG_LEN - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < MSG_LEN - *len ? (size_t)n : MSG_LEN - 1 - *len;
}

/* Keep the first error as "FILE:LINE: [section] key: reason". Returns rc. */
static int fail_at(struct parse *p, int line, int rc, const char *section, const char *key,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail_at(struct parse *p, int line, int rc, const char *section, const char *key,
		   const char *fmt, ...)
{
	char reason[WHY_LEN + 64];
	size_t len = 0;
	va_list ap;
	if (p->failed)
		return p->failed;
	p->failed = rc;
	p->err_line = line;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (line > 0)
		append(p->msg, &len, "%s:%d: ", p->path, line);
	else
		append(p->msg, &len, "%s: ", p->path);
	if (section)
		append(p->msg, &len, "[%.64s]", section);
	if (key)
		append(p->msg, &len, "%s%.64s", section ? " " : "", key);
	if (section || key)
		append(p->msg, &len, ": ");
	append(p->msg, &len, "%s", reason);
	return rc;
}

#define fail(p, rc, section, key, ...) fail_at((p), (p)->line, (rc), (section), (key), __VA_ARGS__)

static int nomem(struct parse *p)
{
	return fail_at(p, 0, -ENOMEM, NULL, NULL, "out of memory");
}

static int begin_plugin(struct parse *p, const char *name)
{
	struct hearth_config *c = p->config;
	const char *bad = name_check(name);
	if (bad)
		return fail(p, -EINVAL, p->section, NULL, "'%.64s' %s", name, bad);
	const struct config_section *old = config_section_find(c, name);
	if (old)
		return fail(p, -EINVAL, p->section, NULL, "section repeated (first at line %d)",
			    old->line);
	if (c->n_sections >= SECTIONS_MAX)
		return fail(p, -EINVAL, p->section, NULL, "more than %d plugin sections",
			    SECTIONS_MAX);
	struct config_section *grown =
		realloc(c->sections, (c->n_sections + 1) * sizeof(*grown));
	if (!grown)
		return nomem(p);
	c->sections = grown;
	struct config_section *s = &c->sections[c->n_sections];
	*s = (struct config_section){.name = strdup(name), .line = p->line};
	if (!s->name)
		return nomem(p);
	p->plugin = (int)c->n_sections++;
	return 0;
}

static int begin_core(struct parse *p, const char *name)
{
	int first = find_option(name, NULL);
	if (first < 0)
		return fail(p, -EINVAL, p->section, NULL, "unknown section");
	if (p->header[first])
		return fail(p, -EINVAL, p->section, NULL, "section repeated (first at line %d)",
			    p->header[first]);
	p->header[first] = p->line;
	p->core = first;
	return 0;
}

/* line starts with '['; the reader checks headers so that an empty or
 * unknown section is still an error, which inih alone would not report. */
static int begin_section(struct parse *p, const char *line)
{
	const char *end = strchr(line, ']');
	p->core = -1;
	p->plugin = -1;
	p->section[0] = '\0';
	if (!end)
		return fail(p, -EINVAL, NULL, line, "section header without ']'");
	const char *rest = skip_blank(end + 1);
	if (*rest && *rest != ';' && *rest != '#')
		return fail(p, -EINVAL, NULL, line, "text after ']'");
	const char *name = skip_blank(line + 1);
	size_t len = (size_t)(end - name);
	while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
		len--;
	if (len >= sizeof(p->section))
		return fail(p, -EINVAL, NULL, line, "section name too long");
	memcpy(p->section, name, len);
	p->section[len] = '\0';
	if (strncmp(p->section, "plugin.", 7) == 0)
		return begin_plugin(p, p->section + 7);
	return begin_core(p, p->section);
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

/* Check one raw line before inih sees it. Returns 0 or the error. */
static int check_line(struct parse *p, char *line, size_t len, bool too_long, size_t cap)
{
	if (p->line > LINES_MAX)
		return fail(p, -EINVAL, NULL, NULL, "more than %d lines", LINES_MAX);
	if (too_long)
		return fail(p, -EINVAL, NULL, NULL, "line is longer than %zu characters", cap);
	if (memchr(line, '\0', len))
		return fail(p, -EINVAL, NULL, NULL, "line contains a NUL byte");
	if (p->line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		memmove(line, line + 3, len - 2);
	if (has_control(line))
		return fail(p, -EINVAL, NULL, NULL, "line contains a control character");
	/* no leading blanks: inih then never takes a line as the continuation
	 * of the one before, and indented keys work as users expect */
	const char *start = skip_blank(line);
	memmove(line, start, strlen(start) + 1);
	if (line[0] == '[')
		return begin_section(p, line);
	if (line[0] && !strchr(";#", line[0]) && !strpbrk(line, "=:"))
		return fail(p, -EINVAL, p->section[0] ? p->section : NULL, line,
			    "expected 'key = value'");
	return 0;
}

/* inih's reader: counts lines, so every error can name its line. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	if (p->failed || num < 8)
		return NULL;
	/* inih needs room for "\r\n\0" and splits longer lines */
	size_t cap = (size_t)num - 3;
	size_t len = 0;
	bool too_long = false;
	int c;
	while ((c = getc(p->file)) != EOF && c != '\n') {
		if (len < cap)
			str[len++] = (char)c;
		else
			too_long = true;
	}
	if (c == EOF && len == 0 && !too_long)
		return NULL;
	p->line++;
	if (len > 0 && str[len - 1] == '\r')
		len--;
	str[len] = '\0';
	return check_line(p, str, len, too_long, cap) < 0 ? NULL : str;
}

static int plugin_value(struct parse *p, const char *key, const char *value)
{
	struct config_section *s = &p->config->sections[p->plugin];
	size_t len = strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_.-");
	if (len == 0 || key[len] != '\0' || len > NAME_LEN_MAX)
		return fail(p, -EINVAL, p->section, key, "not a key name (a-z, 0-9, _, ., -)");
	for (size_t i = 0; i < s->n_kv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return fail(p, -EINVAL, p->section, key, "given twice (first at line %d)",
				    s->kv[i].line);
	if (s->n_kv >= SECTION_KEYS_MAX)
		return fail(p, -EINVAL, p->section, key, "more than %d keys in the section",
			    SECTION_KEYS_MAX);
	struct config_kv *grown = realloc(s->kv, (s->n_kv + 1) * sizeof(*grown));
	if (!grown)
		return nomem(p);
	s->kv = grown;
	struct config_kv *kv = &s->kv[s->n_kv];
	*kv = (struct config_kv){.key = strdup(key), .value = strdup(value), .line = p->line};
	if (!kv->key || !kv->value) {
		free(kv->key);
		free(kv->value);
		return nomem(p);
	}
	s->n_kv++;
	return 0;
}

static int core_value(struct parse *p, const char *key, const char *value)
{
	char why[WHY_LEN];
	int i = find_option(p->section, key);
	if (i < 0)
		return fail(p, -EINVAL, p->section, key, "unknown key");
	if (p->seen[i])
		return fail(p, -EINVAL, p->section, key, "given twice (first at line %d)",
			    p->seen[i]);
	p->seen[i] = p->line;
	int rc = setters[options[i].type](p->config, &options[i], value, why);
	if (rc == -ENOMEM)
		return nomem(p);
	if (rc < 0)
		return fail(p, rc, p->section, key, "%s", why);
	return 0;
}

/* inih's handler; section is ignored, the reader tracked it. */
static int on_value(void *user, const char *section, const char *key, const char *value)
{
	struct parse *p = user;
	int rc;
	(void)section;
	if (p->failed)
		return 0;
	if (!value)
		value = "";
	if (!key[0])
		rc = fail(p, -EINVAL, p->section[0] ? p->section : NULL, NULL, "no key before '='");
	else if (p->plugin >= 0)
		rc = plugin_value(p, key, value);
	else if (p->core >= 0)
		rc = core_value(p, key, value);
	else
		rc = fail(p, -EINVAL, NULL, key, "key outside of any [section]");
	return rc == 0;
}

/* Checks across keys, once the whole file is read. */
static int check_location(struct parse *p)
{
	int lat = p->seen[find_option("location", "latitude")];
	int lon = p->seen[find_option("location", "longitude")];
	if (lat && !lon)
		return fail_at(p, lat, -EINVAL, "location", "latitude",
			       "longitude must be given too");
	if (lon && !lat)
		return fail_at(p, lon, -EINVAL, "location", "longitude",
			       "latitude must be given too");
	p->config->location.set = lat && lon;
	return 0;
}

static int parse_file(struct parse *p)
{
	int line = ini_parse_stream(read_line, p, on_value, p);
	if (line == -2)
		return nomem(p);
	/* inih found a line it could not split before any error of ours */
	if (line > 0 && (!p->failed || line < p->err_line)) {
		p->failed = 0;
		return fail_at(p, line, -EINVAL, NULL, NULL, "expected 'key = value'");
	}
	if (p->failed)
		return p->failed;
	if (ferror(p->file))
		return fail_at(p, 0, -EIO, NULL, NULL, "read error");
	return check_location(p);
}

static int open_file(struct parse *p)
{
	struct stat st;
	p->file = fopen(p->path, "re");
	if (!p->file) {
		int rc = -errno;
		return fail_at(p, 0, rc, NULL, NULL, "cannot open: %s", strerror(-rc));
	}
	if (fstat(fileno(p->file), &st) == 0 && S_ISDIR(st.st_mode))
		return fail_at(p, 0, -EISDIR, NULL, NULL, "cannot open: %s", strerror(EISDIR));
	return 0;
}

static void copy_err(char *err, size_t err_len, const char *msg)
{
	if (err && err_len > 0)
		snprintf(err, err_len, "%s", msg);
}

int config_load(const char *path, struct hearth_config **out, char *err, size_t err_len)
{
	struct parse p = {.path = path, .core = -1, .plugin = -1};
	int rc;
	if (!path || !out) {
		copy_err(err, err_len, "config: no file given");
		return -EINVAL;
	}
	rc = open_file(&p);
	if (rc < 0)
		goto out;
	p.config = config_defaults();
	if (!p.config) {
		rc = nomem(&p);
		goto out;
	}
	rc = parse_file(&p);
	if (rc < 0)
		goto out;
	p.config->path = strdup(path);
	if (!p.config->path)
		rc = nomem(&p);
out:
	if (p.file)
		fclose(p.file);
	if (rc < 0) {
		config_free(p.config);
		copy_err(err, err_len, p.msg);
		return rc;
	}
	copy_err(err, err_len, "");
	*out = p.config;
	return 0;
}
