/*
 * ctl_scenes: "scenes" (list, add, remove, capture), "activate", and the
 * flywheel commands "ecosystem" and "replace".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_auto.h"
#include "ctl_cmd.h"
#include "ctl_format.h"

static int scenes_list(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
		       const struct ctl_flag *flag)
{
	(void)sub;
	(void)argc;
	(void)argv;
	(void)flag;
	return ctl_list(c, "scenes", "scene list", "no scenes", ctl_render_scenes);
}

static int scenes_add(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
		      const struct ctl_flag *flag)
{
	(void)sub;
	(void)argc;
	(void)flag;
	return ctl_add_file(c, argv[0], 0);
}

static int scenes_remove(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
			 const struct ctl_flag *flag)
{
	char text[CTL_ID_MAX + 32];
	cJSON *body;

	(void)sub;
	(void)argc;
	(void)flag;
	if (ctl_check_id(argv[0], "scene"))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body && !cJSON_AddStringToObject(body, "id", argv[0])) {
		cJSON_Delete(body);
		body = NULL;
	}
	snprintf(text, sizeof(text), "removed scene %s", argv[0]);
	return ctl_request_confirm(c, "scene/remove", body, text);
}

/* {"id":ID,"name":NAME,"devices":[...]}, or NULL when out of memory. */
static cJSON *capture_body(const char *id, const char *name, int n, const char *const *devices)
{
	cJSON *body = cJSON_CreateObject();
	cJSON *list = cJSON_AddArrayToObject(body, "devices");
	int i;

	if (!list || !cJSON_AddStringToObject(body, "id", id) ||
	    (name && !cJSON_AddStringToObject(body, "name", name)))
		goto fail;
	for (i = 0; i < n; i++)
		if (!cJSON_AddItemToArray(list, cJSON_CreateString(devices[i])))
			goto fail;
	return body;
fail:
	cJSON_Delete(body);
	return NULL;
}

static int scenes_capture(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
			  const struct ctl_flag *flag)
{
	cJSON *data = NULL;
	const cJSON *count;
	int i, status;

	(void)sub;
	if (ctl_check_id(argv[0], "scene"))
		return CTL_EXIT_USAGE;
	for (i = 1; i < argc; i++)
		if (ctl_check_name(argv[i]))
			return CTL_EXIT_USAGE;
	status = ctl_request(c, "scene/capture",
			     capture_body(argv[0], flag->seen ? flag->value : NULL, argc - 1, argv + 1),
			     &data, NULL, 0);
	if (status != CTL_EXIT_OK)
		goto out;
	count = cJSON_GetObjectItemCaseSensitive(data, "devices");
	if (c->opts->json)
		status = ctl_print_json(data) ? CTL_EXIT_FAIL : CTL_EXIT_OK;
	else
		printf("captured scene %s (%d device%s)\n", argv[0],
		       cJSON_IsNumber(count) ? count->valueint : argc - 1,
		       cJSON_IsNumber(count) && count->valueint == 1 ? "" : "s");
out:
	cJSON_Delete(data);
	return status;
}

static const struct ctl_sub scenes_subs[] = {
	{ "", "", 0, 0, { 0 }, scenes_list },
	{ "add", "FILE", 1, 1, { 0 }, scenes_add },
	{ "remove", "ID", 1, 1, { 0 }, scenes_remove },
	{ "capture", "ID DEVICE... [--name NAME]", 2, CTL_ARGS_MAX,
	  { "--name", NULL, 1, 0, NULL }, scenes_capture },
};

int ctl_cmd_scenes(struct ctl_ctx *c, int argc, const char *const *argv)
{
	return ctl_dispatch(c, "scenes", scenes_subs, sizeof(scenes_subs) / sizeof(scenes_subs[0]),
			    argc, argv);
}

/* Each device's outcome; an exit status, 1 when any device failed. */
static int print_activation(struct ctl_ctx *c, const char *id, const cJSON *data)
{
	const cJSON *devices = cJSON_GetObjectItemCaseSensitive(data, "devices");
	const cJSON *failed = cJSON_GetObjectItemCaseSensitive(data, "failed");
	int nfailed = cJSON_IsNumber(failed) ? failed->valueint : 0;

	if (c->opts->json ? ctl_print_json(data)
			  : ctl_print_owned(ctl_render_activation(devices, c->color)))
		return CTL_EXIT_FAIL;
	if (nfailed <= 0)
		return CTL_EXIT_OK;
	fprintf(stderr, "error: %d of %d devices of scene %s failed\n", nfailed,
		cJSON_GetArraySize(devices), id);
	return CTL_EXIT_FAIL;
}

int ctl_cmd_activate(struct ctl_ctx *c, int argc, const char *const *argv)
{
	cJSON *body, *data = NULL;
	int status;

	(void)argc;
	if (ctl_check_id(argv[0], "scene"))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body && !cJSON_AddStringToObject(body, "id", argv[0])) {
		cJSON_Delete(body);
		body = NULL;
	}
	status = ctl_request(c, "scene/activate", body, &data, NULL, 0);
	if (status == CTL_EXIT_OK)
		status = print_activation(c, argv[0], data);
	cJSON_Delete(data);
	return status;
}

/* The DOT text as hearth made it: it is meant for a pipe into Graphviz. */
static int print_dot(const cJSON *data)
{
	const cJSON *dot = cJSON_GetObjectItemCaseSensitive(data, "dot");
	size_t len;

	if (!cJSON_IsString(dot) || !*dot->valuestring) {
		fprintf(stderr, "error: hearth sent no linkage graph\n");
		return CTL_EXIT_FAIL;
	}
	len = strlen(dot->valuestring);
	fputs(dot->valuestring, stdout);
	if (dot->valuestring[len - 1] != '\n')
		putchar('\n');
	return CTL_EXIT_OK;
}

int ctl_cmd_ecosystem(struct ctl_ctx *c, int argc, const char *const *argv)
{
	struct ctl_flag dot = { "--dot", NULL, 0, 0, NULL };
	const char *pos[CTL_ARGS_MAX];
	cJSON *data = NULL;
	char err[128];
	int n, status;

	n = ctl_flags_take(argc, argv, &dot, 1, pos, err, sizeof(err));
	if (n != 0) {
		fprintf(stderr, "error: %s\nTry 'hearthctl --help'.\n",
			n < 0 ? err : "usage: hearthctl ecosystem [--dot]");
		return CTL_EXIT_USAGE;
	}
	status = ctl_request(c, "ecosystem", cJSON_CreateObject(), &data, NULL, 0);
	if (status != CTL_EXIT_OK)
		goto out;
	if (dot.seen)
		status = print_dot(data);
	else if (c->opts->json ? ctl_print_json(data)
			       : ctl_print_owned(ctl_render_ecosystem(data, c->color)))
		status = CTL_EXIT_FAIL;
out:
	cJSON_Delete(data);
	return status;
}

int ctl_cmd_replace(struct ctl_ctx *c, int argc, const char *const *argv)
{
	const cJSON *rebound;
	cJSON *body, *data = NULL;
	int status;

	(void)argc;
	if (ctl_check_name(argv[0]) || ctl_check_name(argv[1]))
		return CTL_EXIT_USAGE;
	body = cJSON_CreateObject();
	if (body && (!cJSON_AddStringToObject(body, "from", argv[0]) ||
		     !cJSON_AddStringToObject(body, "to", argv[1]))) {
		cJSON_Delete(body);
		body = NULL;
	}
	status = ctl_request(c, "device/replace", body, &data, NULL, 0);
	if (status != CTL_EXIT_OK)
		goto out;
	rebound = cJSON_GetObjectItemCaseSensitive(data, "rebound");
	if (c->opts->json)
		status = ctl_print_json(data) ? CTL_EXIT_FAIL : CTL_EXIT_OK;
	else
		printf("replaced %s by %s (rules and scenes moved: %d)\n", argv[0], argv[1],
		       cJSON_IsNumber(rebound) ? rebound->valueint : 0);
out:
	cJSON_Delete(data);
	return status;
}
