/*
 * ctl_args: the command line and environment of hearthctl.
 */
#include "ctl_args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
	OPT_HOST,
	OPT_PORT,
	OPT_BASE,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_HELP,
	OPT_VERSION,
	OPT_COUNT,
	OPT_RETAINED,
};

struct opt_def {
	const char *short_name; /* NULL: long form only */
	const char *long_name;
	enum opt_id id;
	int takes_value;
};

static const struct opt_def opt_defs[] = {
	{ "-H", "--host", OPT_HOST, 1 },
	{ "-p", "--port", OPT_PORT, 1 },
	{ "-b", "--base", OPT_BASE, 1 },
	{ "-t", "--timeout", OPT_TIMEOUT, 1 },
	{ NULL, "--json", OPT_JSON, 0 },
	{ "-h", "--help", OPT_HELP, 0 },
	{ "-V", "--version", OPT_VERSION, 0 },
	{ NULL, "--count", OPT_COUNT, 1 },
	{ NULL, "--retained", OPT_RETAINED, 0 },
};

#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

void ctl_opts_init(struct ctl_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->host, sizeof(o->host), "%s", CTL_DEFAULT_HOST);
	o->port = CTL_DEFAULT_PORT;
	snprintf(o->base, sizeof(o->base), "%s", CTL_DEFAULT_BASE);
	o->timeout_s = CTL_DEFAULT_TIMEOUT_S;
}

int ctl_parse_long(const char *text, long min, long max, long *out)
{
	char *end;
	long v;

	if (!text || !*text || *text == ' ' || *text == '\t' || *text == '+')
		return -EINVAL;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int ctl_topic_part_valid(const char *name, size_t max_len)
{
	size_t len, i;

	if (!name)
		return 0;
	len = strnlen(name, max_len + 1);
	if (len == 0 || len > max_len || name[0] == '/' || name[len - 1] == '/')
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f || c == '+' || c == '#')
			return 0;
	}
	return 1;
}

static int set_host(struct ctl_opts *o, const char *v, const char *what, char *err,
		    size_t err_len)
{
	size_t len = strnlen(v, sizeof(o->host));

	if (len == 0 || len >= sizeof(o->host) || strpbrk(v, " \t\r\n")) {
		snprintf(err, err_len, "%s: '%.64s' is not a host name", what, v);
		return -EINVAL;
	}
	memcpy(o->host, v, len + 1);
	return 0;
}

static int set_port(struct ctl_opts *o, const char *v, const char *what, char *err,
		    size_t err_len)
{
	long port;

	if (ctl_parse_long(v, 1, 65535, &port)) {
		snprintf(err, err_len, "%s: '%.64s' is not a port (1-65535)", what, v);
		return -EINVAL;
	}
	o->port = (int)port;
	return 0;
}

static int set_base(struct ctl_opts *o, const char *v, const char *what, char *err,
		    size_t err_len)
{
	if (!ctl_topic_part_valid(v, sizeof(o->base) - 1)) {
		snprintf(err, err_len,
			 "%s: '%.64s' is not a base topic (1-%zu bytes, no '+', '#', "
			 "control characters, or leading or trailing '/')",
			 what, v, sizeof(o->base) - 1);
		return -EINVAL;
	}
	snprintf(o->base, sizeof(o->base), "%s", v);
	return 0;
}

int ctl_opts_env(struct ctl_opts *o, const char *host, const char *port, const char *base,
		 char *err, size_t err_len)
{
	int rc;

	if (host && *host && (rc = set_host(o, host, "HEARTH_HOST", err, err_len)))
		return rc;
	if (port && *port && (rc = set_port(o, port, "HEARTH_PORT", err, err_len)))
		return rc;
	if (base && *base && (rc = set_base(o, base, "HEARTH_BASE", err, err_len)))
		return rc;
	return 0;
}

static int apply(struct ctl_opts *o, const struct opt_def *d, const char *v, char *err,
		 size_t err_len)
{
	long n;

	switch (d->id) {
	case OPT_HOST:
		return set_host(o, v, d->long_name, err, err_len);
	case OPT_PORT:
		return set_port(o, v, d->long_name, err, err_len);
	case OPT_BASE:
		return set_base(o, v, d->long_name, err, err_len);
	case OPT_TIMEOUT:
		if (ctl_parse_long(v, 1, CTL_TIMEOUT_MAX_S, &n)) {
			snprintf(err, err_len, "--timeout: '%.64s' is not a number of seconds (1-%d)",
				 v, CTL_TIMEOUT_MAX_S);
			return -EINVAL;
		}
		o->timeout_s = (int)n;
		o->timeout_explicit = 1;
		return 0;
	case OPT_COUNT:
		if (ctl_parse_long(v, 1, 1000000000L, &o->count)) {
			snprintf(err, err_len, "--count: '%.64s' is not a positive number", v);
			return -EINVAL;
		}
		return 0;
	case OPT_JSON:
		o->json = 1;
		return 0;
	case OPT_HELP:
		o->help = 1;
		return 0;
	case OPT_VERSION:
		o->version = 1;
		return 0;
	case OPT_RETAINED:
		o->retained = 1;
		return 0;
	}
	return -EINVAL;
}

/* Find the option arg names. *inline_value is set for "--long=value" and
 * "-Xvalue" forms, else NULL. */
static const struct opt_def *lookup(const char *arg, const char **inline_value)
{
	size_t i, len;

	*inline_value = NULL;
	for (i = 0; i < N_OPTS; i++) {
		const struct opt_def *d = &opt_defs[i];

		if (!strcmp(arg, d->long_name) || (d->short_name && !strcmp(arg, d->short_name)))
			return d;
		if (!d->takes_value)
			continue;
		len = strlen(d->long_name);
		if (!strncmp(arg, d->long_name, len) && arg[len] == '=') {
			*inline_value = arg + len + 1;
			return d;
		}
		if (d->short_name && !strncmp(arg, d->short_name, 2) && arg[2]) {
			*inline_value = arg + 2;
			return d;
		}
	}
	return NULL;
}

static int add_arg(struct ctl_opts *o, const char *arg, char *err, size_t err_len)
{
	if (o->nargs >= CTL_ARGS_MAX) {
		snprintf(err, err_len, "too many arguments (at most %d)", CTL_ARGS_MAX);
		return -EINVAL;
	}
	o->args[o->nargs++] = arg;
	return 0;
}

/* Handle argv[*i], an option or an argument; may consume argv[*i + 1]. */
static int parse_one(struct ctl_opts *o, int argc, char **argv, int *i, char *err,
		     size_t err_len)
{
	const char *arg = argv[*i];
	const char *value;
	const struct opt_def *d;

	if (arg[0] != '-' || arg[1] == '\0')
		return add_arg(o, arg, err, err_len);
	d = lookup(arg, &value);
	if (!d) {
		if (o->nargs > 0)
			return add_arg(o, arg, err, err_len);
		snprintf(err, err_len, "unknown option '%.64s'", arg);
		return -EINVAL;
	}
	if (d->takes_value && !value) {
		if (*i + 1 >= argc) {
			snprintf(err, err_len, "%s needs a value", d->long_name);
			return -EINVAL;
		}
		value = argv[++*i];
	}
	return apply(o, d, value, err, err_len);
}

int ctl_args_parse(struct ctl_opts *o, int argc, char **argv, char *err, size_t err_len)
{
	int i, rc, dashdash = 0;

	for (i = 1; i < argc; i++) {
		if (!dashdash && !strcmp(argv[i], "--")) {
			dashdash = 1;
			continue;
		}
		rc = dashdash ? add_arg(o, argv[i], err, err_len)
			      : parse_one(o, argc, argv, &i, err, err_len);
		if (rc)
			return rc;
	}
	if (o->help || o->version)
		return 0;
	if (o->nargs == 0) {
		snprintf(err, err_len, "missing command");
		return -EINVAL;
	}
	if ((o->count || o->retained) && strcmp(o->args[0], "watch")) {
		snprintf(err, err_len, "--count and --retained apply only to watch");
		return -EINVAL;
	}
	return 0;
}
