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

#endif
