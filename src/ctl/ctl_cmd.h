/*
 * ctl_cmd: hearthctl's commands. Each takes its own arguments (the command
 * name excluded), prints its result or one "error: ..." line, and returns the
 * process exit status: 0 success, 1 failure, 2 usage error.
 */
#ifndef HEARTHCTL_CMD_H
#define HEARTHCTL_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ctl_args.h"
#include "ctl_auto.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

/* Device names as hearth allows them; longer ones are refused here. */
#define CTL_NAME_MAX 255
#define CTL_TOPIC_MAX 512

struct ctl_ctx {
	const struct ctl_opts *opts;
	int color; /* stdout is a terminal and NO_COLOR is unset */
};

typedef int (*ctl_cmd_fn)(struct ctl_ctx *c, int argc, const char *const *argv);

/* ctl_device.c */
int ctl_cmd_devices(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_show(struct ctl_ctx *c, int argc, const char *const *argv);

/* ctl_control.c */
int ctl_cmd_set(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_get(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_watch(struct ctl_ctx *c, int argc, const char *const *argv);

/* ctl_request.c */
int ctl_cmd_rename(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_remove(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_permit_join(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_options(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_health(struct ctl_ctx *c, int argc, const char *const *argv);

/* ctl_rules.c, ctl_scenes.c */
int ctl_cmd_rules(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_scenes(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_activate(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_ecosystem(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_replace(struct ctl_ctx *c, int argc, const char *const *argv);

/* ctl_backup.c: backup (a bridge request), restore (runs hearthd --restore) */
int ctl_cmd_backup(struct ctl_ctx *c, int argc, const char *const *argv);
int ctl_cmd_restore(struct ctl_ctx *c, int argc, const char *const *argv);

/* Shared helpers (ctl_request.c). */

/* "<base>/<a>" or "<base>/<a>/<b>" (b may be NULL) into buf. Returns 0 or
 * -ENAMETOOLONG (printed). */
int ctl_topic(char *buf, size_t len, const struct ctl_opts *o, const char *a, const char *b);

/* Check a device name given on the command line. Returns 0, or -EINVAL
 * after printing why. */
int ctl_check_name(const char *name);

/* Milliseconds since the epoch (for last_seen). */
int64_t ctl_wall_ms(void);

/* Print s and a newline to stdout; frees s. Returns 0, or -ENOMEM (printed)
 * when s is NULL. */
int ctl_print_owned(char *s);

/* Print a cJSON value as compact JSON and a newline. Returns 0 or -ENOMEM. */
int ctl_print_json(const cJSON *v);

/*
 * Send body (consumed; NULL means out of memory, printed) as a bridge
 * request on path and wait for the answer with the same transaction. Returns
 * an exit status after printing any error; on success *data is the answer's
 * data (new), on an "error" answer error (may be NULL) gets hearth's text.
 */
int ctl_request(struct ctl_ctx *c, const char *path, cJSON *body, cJSON **data, char *error,
		size_t error_len);

/* ctl_request(), then print the data (--json) or confirmation. */
int ctl_request_confirm(struct ctl_ctx *c, const char *path, cJSON *body,
			const char *confirmation);

/* Shared helpers (ctl_device.c). */

/*
 * The retained payload of topic, once the broker has delivered what it
 * keeps; what names it in the error when there is none ("rule list").
 * Returns an exit status; on success *payload (new, NUL-terminated, for
 * free()) and *len.
 */
int ctl_retained(struct ctl_ctx *c, const char *topic, const char *what, char **payload,
		 size_t *len);

/* Shared helpers (ctl_rules.c). */

/* A subcommand ("rules add FILE"); the first entry of a table, named "", is
 * the command on its own. flag is the one option it takes (long_name NULL:
 * none); run gets a copy of it with seen and value filled in. */
struct ctl_sub {
	const char *name;
	const char *usage;
	int min_args;
	int max_args;
	struct ctl_flag flag;
	int (*run)(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
		   const struct ctl_flag *flag);
};

/* Pick the subcommand argv[0] names (or subs[0] with no arguments), take
 * its option out, check the count and run it. Usage errors exit 2. */
int ctl_dispatch(struct ctl_ctx *c, const char *cmd, const struct ctl_sub *subs, size_t n,
		 int argc, const char *const *argv);

/* Check a rule or scene id given on the command line; 0, or -EINVAL after
 * printing why. what is "rule" or "scene". */
int ctl_check_id(const char *id, const char *what);

typedef char *(*ctl_render_fn)(const cJSON *list, int color);

/* List the retained array <base>/bridge/<sub>: raw with --json, else
 * rendered, or the line empty when it has no element. An exit status. */
int ctl_list(struct ctl_ctx *c, const char *sub, const char *what, const char *empty,
	     ctl_render_fn render);

/* Send every item of a rule file ("-": standard input): rules to rule/add
 * (rule/update with update), scenes to scene/add. Each is answered on its
 * own; an exit status, 1 when any failed. */
int ctl_add_file(struct ctl_ctx *c, const char *file, int update);

#endif
