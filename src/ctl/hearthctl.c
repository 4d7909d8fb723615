/*
 * hearthctl: hearth's command-line client. It speaks MQTT only, so it works
 * from any machine that can reach the broker hearthd uses.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_args.h"
#include "ctl_cmd.h"
#include "ctl_mqtt.h"

#ifndef HEARTH_VERSION
#define HEARTH_VERSION "unknown"
#endif

#define ARGS_ANY -1

struct command {
	const char *name;
	const char *usage; /* the arguments, for help and usage errors */
	const char *summary;
	int min_args;
	int max_args; /* ARGS_ANY: no limit */
	ctl_cmd_fn run; /* NULL: planned, not in this version */
};

static const struct command commands[] = {
	{ "devices", "", "list devices", 0, 0, ctl_cmd_devices },
	{ "show", "NAME", "one device: details, capabilities, current values", 1, 1, ctl_cmd_show },
	{ "set", "NAME key=value...", "change a device's state and wait for it", 2, ARGS_ANY,
	  ctl_cmd_set },
	{ "get", "NAME [attr...]", "ask a device to report its state", 1, ARGS_ANY, ctl_cmd_get },
	{ "rename", "OLD NEW", "rename a device", 2, 2, ctl_cmd_rename },
	{ "remove", "NAME", "remove a device", 1, 1, ctl_cmd_remove },
	{ "permit-join", "SECONDS", "let new devices join (0 stops)", 1, 1, ctl_cmd_permit_join },
	{ "options", "NAME key=value...", "set a device's room or description", 2, ARGS_ANY,
	  ctl_cmd_options },
	{ "health", "", "hearthd's health check", 0, 0, ctl_cmd_health },
	{ "watch", "[NAME]", "print messages as they come (Ctrl-C stops)", 0, 1, ctl_cmd_watch },
	{ "rules", "[SUBCOMMAND...]", "list rules, or change them (below)", 0, ARGS_ANY,
	  ctl_cmd_rules },
	{ "scenes", "[SUBCOMMAND...]", "list scenes, or change them (below)", 0, ARGS_ANY,
	  ctl_cmd_scenes },
	{ "activate", "SCENE", "activate a scene, showing each device's outcome", 1, 1,
	  ctl_cmd_activate },
	{ "ecosystem", "[--dot]", "the hub at a glance; --dot: the linkage graph", 0, 1,
	  ctl_cmd_ecosystem },
	{ "replace", "OLD NEW", "move rules and scenes from OLD to device NEW", 2, 2,
	  ctl_cmd_replace },
	{ "backup", "", "have hearthd write a copy of its database", 0, 0, ctl_cmd_backup },
	{ "restore", "BACKUP [-c CONFIG]", "put a backup back (on the hub, hearthd stopped)", 1,
	  3, ctl_cmd_restore },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_help(void)
{
	size_t i;

	printf("usage: hearthctl [options] COMMAND [arguments]\n\n"
	       "Control a hearth hub over MQTT.\n\n"
	       "commands:\n");
	for (i = 0; i < N_COMMANDS; i++) {
		char left[64];

		if (!commands[i].run)
			continue;
		snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].usage);
		printf("  %-28s %s\n", left, commands[i].summary);
	}
	printf("\nrules and scenes:\n"
	       "  rules add|update FILE        send the rules and scenes of a JSON file\n"
	       "  rules remove|enable|disable ID\n"
	       "  rules trigger ID [--conditions]  run its actions now (after its conditions)\n"
	       "  rules explain ID [-v]        why it ran or did not; -v: its last runs\n"
	       "  scenes add FILE | remove ID\n"
	       "  scenes capture ID DEVICE... [--name NAME]  store the devices' current state\n");
	printf("\noptions:\n"
	       "  -H, --host HOST      MQTT broker (default 127.0.0.1, env HEARTH_HOST)\n"
	       "  -p, --port PORT      broker port (default 1883, env HEARTH_PORT)\n"
	       "  -b, --base TOPIC     hearth's base topic (default hearth, env HEARTH_BASE)\n"
	       "  -t, --timeout SECS   how long to wait for an answer (default 5);\n"
	       "                       for watch, stop after SECS without a message\n"
	       "      --json           print JSON instead of text\n"
	       "      --count N        watch: stop after N messages\n"
	       "      --retained       watch: also print the retained messages\n"
	       "  -h, --help           this help\n"
	       "  -V, --version        print the version\n\n"
	       "exit status: 0 success, 1 failure, 2 usage error.\n"
	       "Colour is used on a terminal unless NO_COLOR is set.\n");
}

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "error: %s\nTry 'hearthctl --help'.\n", msg);
	return CTL_EXIT_USAGE;
}

/* Check the argument count; an extra "--x" is most likely a mistyped option. */
static int check_count(const struct command *cmd, int argc, const char *const *argv)
{
	char what[160];

	if (argc >= cmd->min_args && (cmd->max_args == ARGS_ANY || argc <= cmd->max_args))
		return 0;
	if (cmd->max_args != ARGS_ANY && argc > cmd->max_args && argv[cmd->max_args][0] == '-')
		snprintf(what, sizeof(what), "unknown option '%.64s'", argv[cmd->max_args]);
	else
		snprintf(what, sizeof(what), "usage: hearthctl %s %s", cmd->name, cmd->usage);
	return usage_error(what);
}

static void on_signal(int sig)
{
	(void)sig;
	ctl_interrupted = 1;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the wait in mosquitto_loop() returns at once. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
	struct ctl_opts opts;
	const struct command *cmd;
	struct ctl_ctx ctx;
	char err[256];

	ctl_opts_init(&opts);
	if (ctl_opts_env(&opts, getenv("HEARTH_HOST"), getenv("HEARTH_PORT"),
			 getenv("HEARTH_BASE"), err, sizeof(err)) ||
	    ctl_args_parse(&opts, argc, argv, err, sizeof(err)))
		return usage_error(err);
	if (opts.help) {
		print_help();
		return CTL_EXIT_OK;
	}
	if (opts.version) {
		printf("hearthctl %s\n", HEARTH_VERSION);
		return CTL_EXIT_OK;
	}
	cmd = find_command(opts.args[0]);
	if (!cmd) {
		snprintf(err, sizeof(err), "unknown command '%.64s'", opts.args[0]);
		return usage_error(err);
	}
	if (!cmd->run) {
		fprintf(stderr, "error: '%s' is not available in this version\n", cmd->name);
		return CTL_EXIT_USAGE;
	}
	if (check_count(cmd, opts.nargs - 1, opts.args + 1))
		return CTL_EXIT_USAGE;
	install_signals();
	ctx.opts = &opts;
	ctx.color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	return cmd->run(&ctx, opts.nargs - 1, opts.args + 1);
}
