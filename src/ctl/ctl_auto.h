/*
 * ctl_auto: the pure parts of hearthctl's automation commands (rules,
 * scenes, activate, ecosystem): their own options, id checks, reading a
 * rule file, and rendering hearth's answers as tables and summaries. No I/O,
 * so it is unit-tested.
 */
#ifndef HEARTHCTL_AUTO_H
#define HEARTHCTL_AUTO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Rule and scene ids as hearth allows them: 1..64 letters, digits, '-',
 * '_', '.'. */
#define CTL_ID_MAX 64
/* Items in one rule file; hearth's rules.dir reads as many. */
#define CTL_FILE_ITEMS_MAX 1000
#define CTL_FILE_MAX (1024 * 1024)
/* Capabilities the ecosystem summary names. */
#define CTL_TOP_CAPS 8

/* A command's own option, such as "--conditions" or "--name NAME". */
struct ctl_flag {
	const char *long_name;	/* "--name" */
	const char *short_name; /* "-v", or NULL */
	int takes_value;
	int seen;	   /* out */
	const char *value; /* out, borrowed from argv */
};

/*
 * Take the flags out of a command's arguments: the others go to pos (room
 * for argc), in order. "--name=VALUE" and "--name VALUE" both work. An
 * argument starting with "--" that is no flag is an error, so a mistyped
 * option is never sent as a name. Returns the number of positional
 * arguments, or -EINVAL with err set.
 */
int ctl_flags_take(int argc, const char *const *argv, struct ctl_flag *flags, int nflags,
		   const char **pos, char *err, size_t err_len);

/* True when id is a valid rule or scene id. */
int ctl_id_valid(const char *id);

/*
 * Parse a rule file's text: one object, or an array of objects (rules, and
 * scenes: objects with "targets", as in rules.dir). Returns a new array
 * holding every item, or NULL with err saying what is wrong (where the JSON
 * breaks, or which element is not an object).
 */
cJSON *ctl_file_items(const char *text, size_t len, char *err, size_t err_len);

/* True when a file item is a scene (it has "targets"). */
int ctl_item_is_scene(const cJSON *item);

/* The retained rule list (<base>/bridge/rules) as a table sorted by id:
 * ID, NAME, ENABLED, SOURCE, FIRED, LAST FIRED, RUNNING. New string for
 * free(), or NULL when out of memory. */
char *ctl_render_rules(const cJSON *rules, int64_t now_ms, int color);

/* The retained scene list (<base>/bridge/scenes) as a table sorted by id:
 * ID, NAME, DEVICES, TRANSITION. New string or NULL. */
char *ctl_render_scenes(const cJSON *scenes, int color);

/* A rule's traces (rule/trace's data.traces, newest first) as a table:
 * TIME (local), TRIGGER, OUTCOME. New string or NULL. */
char *ctl_render_traces(const cJSON *traces, int color);

/* scene/activate's data.devices as a table: DEVICE, STATUS, ERROR. New
 * string or NULL. */
char *ctl_render_activation(const cJSON *devices, int color);

/* The ecosystem request's data as a short summary: devices, plugins,
 * top capabilities, rules, scenes, firings and commands. New string or
 * NULL. */
char *ctl_render_ecosystem(const cJSON *eco, int color);

#endif
