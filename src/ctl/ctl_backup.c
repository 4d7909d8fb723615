/*
 * ctl_backup: "backup" asks the hub for a copy of its database over MQTT;
 * "restore" runs "hearthd --restore" on this machine, since hearthctl never
 * opens the database itself.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl_cmd.h"
#include "ctl_format.h"

/* The hub answers once the copy is on disk: give it longer than a lookup. */
#define BACKUP_TIMEOUT_S 300

int ctl_cmd_backup(struct ctl_ctx *c, int argc, const char *const *argv)
{
	struct ctl_opts opts = *c->opts;
	struct ctl_ctx ctx = *c;
	const cJSON *path, *bytes;
	char text[PATH_MAX + 64];
	cJSON *data = NULL;
	int status;

	(void)argc;
	(void)argv;
	if (!opts.timeout_explicit)
		opts.timeout_s = BACKUP_TIMEOUT_S;
	ctx.opts = &opts;
	status = ctl_request(&ctx, "backup", cJSON_CreateObject(), &data, NULL, 0);
	if (status != CTL_EXIT_OK)
		goto out;
	if (c->opts->json) {
		if (ctl_print_json(data))
			status = CTL_EXIT_FAIL;
		goto out;
	}
	path = cJSON_GetObjectItemCaseSensitive(data, "path");
	bytes = cJSON_GetObjectItemCaseSensitive(data, "bytes");
	if (!cJSON_IsString(path) || !cJSON_IsNumber(bytes)) {
		fprintf(stderr, "error: hearth's answer names no backup file\n");
		status = CTL_EXIT_FAIL;
		goto out;
	}
	snprintf(text, sizeof(text), "backup written to %s (%.0f bytes)", path->valuestring,
		 bytes->valuedouble);
	ctl_sanitize(text);
	if (puts(text) < 0)
		status = CTL_EXIT_FAIL;
out:
	cJSON_Delete(data);
	return status;
}

/* "<folder of this program>/hearthd" when it is there and runs. */
static int sibling_hearthd(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return -ENOENT;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	if (snprintf(buf, len, "%s/hearthd", self) >= (int)len)
		return -ENAMETOOLONG;
	return access(buf, X_OK) ? -errno : 0;
}

int ctl_cmd_restore(struct ctl_ctx *c, int argc, const char *const *argv)
{
	const char *args[6] = { "hearthd", "--restore", argv[0], NULL, NULL, NULL };
	char bin[PATH_MAX];

	(void)c;
	if (argc == 3 && (!strcmp(argv[1], "-c") || !strcmp(argv[1], "--config"))) {
		args[3] = "-c";
		args[4] = argv[2];
	} else if (argc != 1) {
		fprintf(stderr, "error: usage: hearthctl restore BACKUP [-c CONFIG]\n");
		return CTL_EXIT_USAGE;
	}
	fflush(stdout);
	/* hearthd's own messages and exit status become ours */
	if (sibling_hearthd(bin, sizeof(bin)) == 0)
		execv(bin, (char *const *)args);
	else
		execvp("hearthd", (char *const *)args);
	fprintf(stderr,
		"error: cannot run hearthd: %s (restore works on the hub's own machine)\n",
		strerror(errno));
	return CTL_EXIT_FAIL;
}
