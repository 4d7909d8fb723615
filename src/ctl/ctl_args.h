/*
 * ctl_args: hearthctl's command line and environment, parsed into one
 * struct ctl_opts. Pure: no I/O, no globals, so it is unit-tested.
 */
#ifndef HEARTHCTL_ARGS_H
#define HEARTHCTL_ARGS_H

#include <stddef.h>

#define CTL_HOST_MAX 256
#define CTL_BASE_MAX 128
#define CTL_ARGS_MAX 128
#define CTL_TIMEOUT_MAX_S 3600
#define CTL_DEFAULT_HOST "127.0.0.1"
#define CTL_DEFAULT_PORT 1883
#define CTL_DEFAULT_BASE "hearth"
#define CTL_DEFAULT_TIMEOUT_S 5

struct ctl_opts {
	char host[CTL_HOST_MAX];
	int port;
	char base[CTL_BASE_MAX];
	int timeout_s;
	int timeout_explicit; /* -t was given (watch uses it as an idle timeout) */
	int json;
	int help;
	int version;
	long count;   /* watch --count N; 0 means until interrupted */
	int retained; /* watch --retained: also print retained messages */
	/* args[0] is the command, the rest its arguments; borrowed from argv. */
	const char *args[CTL_ARGS_MAX];
	int nargs;
};

/* Fill o with the built-in defaults (127.0.0.1, 1883, hearth, 5 s). */
void ctl_opts_init(struct ctl_opts *o);

/*
 * Apply HEARTH_HOST, HEARTH_PORT and HEARTH_BASE; each may be NULL (unset).
 * Returns 0, or -EINVAL with err naming the variable and the problem.
 */
int ctl_opts_env(struct ctl_opts *o, const char *host, const char *port, const char *base,
		 char *err, size_t err_len);

/*
 * Parse argv (argv[0] is the program). Options may come before or after the
 * command; after the command an unknown "-x" is kept as an argument (a value
 * such as "-1"), before it it is an error. "--" ends the options.
 * Returns 0 or -EINVAL with err saying what is wrong (a usage error). The
 * strings in o->args are borrowed from argv.
 */
int ctl_args_parse(struct ctl_opts *o, int argc, char **argv, char *err, size_t err_len);

/* Parse a whole decimal integer in [min, max]. Returns 0 or -EINVAL (out
 * untouched). */
int ctl_parse_long(const char *text, long min, long max, long *out);

/* True when name is usable in a topic: 1..max_len bytes, no '+', '#' or
 * control characters, not starting or ending with '/'. */
int ctl_topic_part_valid(const char *name, size_t max_len);

#endif
