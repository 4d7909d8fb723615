/*
 * config: hearth.conf (INI, parsed with libinih) into typed values.
 *
 * One option table drives parsing, validation, defaults and the check that
 * config/hearth.conf documents every key. Unknown sections and keys, bad
 * values and duplicate keys are errors naming file, line and key. Keys of
 * [plugin.NAME] sections are kept as text for the plugin host, with their
 * line numbers, and validated later against the plugin's own option table.
 *
 * Pure module: no libuv, no MQTT, no SQLite. Loop thread only.
 */
#ifndef HEARTH_CONFIG_H
#define HEARTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <hearth/plugin.h>

/* One key = value line of a [plugin.NAME] section. */
struct config_kv {
	char *key;
	char *value;
	int line;
};

/* One [plugin.NAME] section. */
struct config_section {
	char *name; /* NAME, without "plugin." */
	int line;   /* line of the section header */
	struct config_kv *kv;
	size_t n_kv;
};

struct hearth_config {
	char *path; /* the file that was read; NULL for defaults only */

	struct {
		char *host;	      /* default "127.0.0.1" */
		int port;	      /* default 1883; 1..65535 */
		char *base_topic;     /* default "hearth"; no '+', '#', leading/trailing '/' */
		char *client_id;      /* default "hearthd" */
		char *username;	      /* default NULL */
		char *password_file;  /* default NULL */
		char *tls_ca;	      /* default NULL */
		char *tls_cert;	      /* default NULL */
		char *tls_key;	      /* default NULL */
		bool tls_insecure;    /* default false */
		int keepalive;	      /* seconds, default 30; 5..3600 */
		int qos;	      /* default 1; 0..2 */
		int command_timeout_ms; /* default 10000; 1000..600000 */
		int command_max_age_s;	/* default 300; 0..604800 (0: no limit) */
	} mqtt;
	struct {
		char *path;		/* default "/var/lib/hearth/hearth.db" */
		int commit_interval_ms; /* default 1000; 0..60000 (0: commit every change) */
		int history_days;	/* default 30; 0..3650 (0: no history kept) */
		char *backup_dir;	/* default "/var/lib/hearth/backups" */
	} store;
	struct {
		char *dir;	 /* default HEARTH_PLUGINDIR */
		char **enable;	 /* names, from "a, b, c"; default none */
		size_t n_enable;
	} plugins;
	struct {
		char *dir; /* default "/etc/hearth/rules" */
	} rules;
	struct {
		bool set;	  /* latitude and longitude were both given */
		double latitude;  /* -90..90 */
		double longitude; /* -180..180 */
		char *timezone;	  /* default NULL: the system's */
	} location;
	struct {
		enum hearth_log_level level; /* default info */
		int json;		     /* format: 0 text (default), 1 json */
	} log;
	struct {
		bool enabled;		/* default true */
		char *discovery_prefix; /* default "homeassistant" */
	} homeassistant;
	struct {
		bool enabled;	     /* default false */
		char *listen;	     /* default "127.0.0.1:8080"; host:port, see web_auth.h */
		char *root;	     /* default HEARTH_WEBDIR: the dashboard's files */
		char *password_file; /* default NULL: no password, loopback only */
		char *tls_cert;	     /* default NULL: plain HTTP */
		char *tls_key;	     /* default NULL */
	} web;

	struct config_section *sections; /* [plugin.NAME] sections */
	size_t n_sections;
};

/* Every known section.key, in the order of the option table, ended by NULL;
 * e.g. "mqtt.host". For the documentation test. */
extern const char *const config_known_keys[];

/*
 * Read path into a new config. On failure *out is untouched, err holds one
 * line "FILE:LINE: [section] key: reason" (or "FILE: reason" when the file
 * cannot be read) and the return is -EINVAL (bad content), -ENOENT/-EACCES
 * (cannot open) or -ENOMEM.
 */
int config_load(const char *path, struct hearth_config **out, char *err, size_t err_len);

/* A config holding every default, for tests and embedding. NULL on ENOMEM. */
struct hearth_config *config_defaults(void);

/* Free a config; NULL is accepted. */
void config_free(struct hearth_config *config);

/* The [plugin.NAME] section, or NULL. Borrowed from config. */
const struct config_section *config_section_find(const struct hearth_config *config,
						 const char *name);

/* The value of key in section (NULL section is accepted), or NULL. */
const char *config_section_get(const struct config_section *section, const char *key);

/* Split "a, b ,c" into trimmed, non-empty names. 0 or -ENOMEM; the caller
 * frees each string and the array. */
int config_split_list(const char *text, char ***out, size_t *n_out);

#endif
