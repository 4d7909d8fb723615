/*
 * ctl_rules: "rules" and its subcommands (add, update, remove, enable,
 * disable, trigger, explain), and what "scenes" shares with it: reading a
 * rule file and listing a retained bridge array.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_auto.h"
#include "ctl_cmd.h"
#include "ctl_format.h"

#define ERROR_TEXT_MAX 1024
#define EXIT_INTERRUPTED 130

static int usage_error(const char *what)
{
	fprintf(stderr, "error: %s\nTry 'hearthctl --help'.\n", what);
	return CTL_EXIT_USAGE;
}

static const struct ctl_sub *find_sub(const struct ctl_sub *subs, size_t n, const char *name)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (!strcmp(subs[i].name, name))
			return &subs[i];
	return NULL;
}

int ctl_dispatch(struct ctl_ctx *c, const char *cmd, const struct ctl_sub *subs, size_t n,
		 int argc, const char *const *argv)
{
	const struct ctl_sub *sub = argc > 0 ? find_sub(subs, n, argv[0]) : &subs[0];
	const char *pos[CTL_ARGS_MAX];
	struct ctl_flag flag;
	char err[256];
	size_t i;
	int npos;

	if (!sub) {
		snprintf(err, sizeof(err), "unknown %s command '%.64s'; try: ", cmd, argv[0]);
		for (i = 1; i < n; i++)
			snprintf(err + strlen(err), sizeof(err) - strlen(err), "%s%s", i > 1 ? ", " : "",
				 subs[i].name);
		return usage_error(err);
	}
	flag = sub->flag;
	npos = ctl_flags_take(argc - (sub != &subs[0]), argv + (sub != &subs[0]), &flag,
			      flag.long_name ? 1 : 0, pos, err, sizeof(err));
	if (npos < 0)
		return usage_error(err);
	if (npos < sub->min_args || npos > sub->max_args) {
		snprintf(err, sizeof(err), "usage: hearthctl %s%s%s %s", cmd, *sub->name ? " " : "",
			 sub->name, sub->usage);
		return usage_error(err);
	}
	return sub->run(c, sub->name, npos, pos, &flag);
}

int ctl_check_id(const char *id, const char *what)
{
	if (ctl_id_valid(id))
		return 0;
	fprintf(stderr, "error: '%.64s' is not a %s id (1-%d letters, digits, '-', '_', '.')\n", id,
		what, CTL_ID_MAX);
	return -EINVAL;
}

int ctl_list(struct ctl_ctx *c, const char *sub, const char *what, const char *empty,
	     ctl_render_fn render)
{
	char topic[CTL_TOPIC_MAX];
	char *payload = NULL;
	cJSON *list = NULL;
	size_t len = 0;
	int status;

	if (ctl_topic(topic, sizeof(topic), c->opts, "bridge", sub))
		return CTL_EXIT_FAIL;
	status = ctl_retained(c, topic, what, &payload, &len);
	if (status != CTL_EXIT_OK)
		return status;
	if (c->opts->json) {
		/* The array exactly as hearth published it. */
		fwrite(payload, 1, len, stdout);
		if (payload[len - 1] != '\n')
			fputc('\n', stdout);
		goto out;
	}
	list = cJSON_ParseWithLength(payload, len);
	if (!cJSON_IsArray(list)) {
		fprintf(stderr, "error: %s does not hold a JSON array\n", topic);
		status = CTL_EXIT_FAIL;
	} else if (cJSON_GetArraySize(list) == 0) {
		puts(empty);
	} else if (ctl_print_owned(render(list, c->color))) {
		status = CTL_EXIT_FAIL;
	}
out:
	cJSON_Delete(list);
	free(payload);
	return status;
}

/* The whole file (or standard input for "-"), at most CTL_FILE_MAX bytes.
 * NULL after printing why. */
static char *read_text(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	char *buf = NULL;
	size_t n = 0;

	if (!f) {
		fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	buf = malloc(CTL_FILE_MAX + 1);
	if (!buf) {
		fprintf(stderr, "error: out of memory\n");
		goto out;
	}
	n = fread(buf, 1, CTL_FILE_MAX + 1, f);
	if (ferror(f) || n > CTL_FILE_MAX) {
		fprintf(stderr, "error: %s: %s\n", path,
			ferror(f) ? "cannot read it" : "larger than 1 MiB");
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
	*len = n;
out:
	if (f != stdin)
		fclose(f);
	return buf;
}

/* After hearth refused an add or update, point at the other one. */
static void hint(const char *error, int update, const char *file)
{
	if (!update && strstr(error, "exists"))
		fprintf(stderr, "hint: to change it, run 'hearthctl rules update %s'\n", file);
	else if (update && strstr(error, "use rule/add"))
		fprintf(stderr, "hint: to add it, run 'hearthctl rules add %s'\n", file);
}

/* Send one item of a rule file; returns an exit status. */
static int add_item(struct ctl_ctx *c, const cJSON *item, int update, const char *file)
{
	int scene = ctl_item_is_scene(item);
	const char *path = scene ? "scene/add" : update ? "rule/update" : "rule/add";
	char error[ERROR_TEXT_MAX] = "";
	cJSON *data = NULL;
	const cJSON *id;
	int status;

	status = ctl_request(c, path, cJSON_Duplicate(item, 1), &data, error, sizeof(error));
	if (status == CTL_EXIT_FAIL && !scene)
		hint(error, update, file);
	if (status != CTL_EXIT_OK)
		goto out;
	id = cJSON_GetObjectItemCaseSensitive(data, "id");
	if (c->opts->json)
		status = ctl_print_json(data) ? CTL_EXIT_FAIL : CTL_EXIT_OK;
	else
		printf("%s %s %s\n", update && !scene ? "updated" : "added", scene ? "scene" : "rule",
		       cJSON_IsString(id) ? id->valuestring : "?");
out:
	cJSON_Delete(data);
	return status;
}

int ctl_add_file(struct ctl_ctx *c, const char *file, int update)
{
	char err[256];
	size_t len = 0;
	char *text = read_text(file, &len);
	cJSON *items = NULL;
	const cJSON *item;
	int status = CTL_EXIT_OK, rc;

	if (!text)
		return CTL_EXIT_FAIL;
	items = ctl_file_items(text, len, err, sizeof(err));
	if (!items) {
		fprintf(stderr, "error: %s: %s\n", file, err);
		status = CTL_EXIT_FAIL;
	}
	/* Each item on its own: one bad rule does not keep the others out. */
	cJSON_ArrayForEach(item, items)
	{
		rc = add_item(c, item, update, file);
		if (rc != CTL_EXIT_OK)
			status = rc == EXIT_INTERRUPTED ? rc : CTL_EXIT_FAIL;
		if (rc == EXIT_INTERRUPTED)
			break;
	}
	cJSON_Delete(items);
	free(text);
	return status;
}

static cJSON *id_body(const char *id)
{
	cJSON *body = cJSON_CreateObject();

	if (body && !cJSON_AddStringToObject(body, "id", id)) {
		cJSON_Delete(body);
		return NULL;
	}
	return body;
}

static char *render_rules(const cJSON *list, int color)
{
	return ctl_render_rules(list, ctl_wall_ms(), color);
}

static int rules_list(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
		      const struct ctl_flag *flag)
{
	(void)sub;
	(void)argc;
	(void)argv;
	(void)flag;
	return ctl_list(c, "rules", "rule list", "no rules", render_rules);
}

/* add, update */
static int rules_file(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
		      const struct ctl_flag *flag)
{
	(void)argc;
	(void)flag;
	return ctl_add_file(c, argv[0], !strcmp(sub, "update"));
}

/* remove, enable, disable */
static int rules_simple(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
			const struct ctl_flag *flag)
{
	char text[CTL_ID_MAX + 32], path[32];

	(void)argc;
	(void)flag;
	if (ctl_check_id(argv[0], "rule"))
		return CTL_EXIT_USAGE;
	snprintf(path, sizeof(path), "rule/%s", sub);
	/* remove-d, enable-d, disable-d */
	snprintf(text, sizeof(text), "%sd rule %s", sub, argv[0]);
	return ctl_request_confirm(c, path, id_body(argv[0]), text);
}

static int rules_trigger(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
			 const struct ctl_flag *flag)
{
	char text[CTL_ID_MAX + 64];
	cJSON *body;

	(void)sub;
	(void)argc;
	if (ctl_check_id(argv[0], "rule"))
		return CTL_EXIT_USAGE;
	body = id_body(argv[0]);
	if (body && flag->seen && !cJSON_AddTrueToObject(body, "conditions")) {
		cJSON_Delete(body);
		body = NULL;
	}
	snprintf(text, sizeof(text), "triggered rule %s%s", argv[0],
		 flag->seen ? " (its conditions are checked)" : "");
	return ctl_request_confirm(c, "rule/trigger", body, text);
}

static int print_explanation(struct ctl_ctx *c, const cJSON *data, int verbose)
{
	const cJSON *story = cJSON_GetObjectItemCaseSensitive(data, "explanation");
	const cJSON *traces = cJSON_GetObjectItemCaseSensitive(data, "traces");
	char *text = strdup(cJSON_IsString(story) ? story->valuestring : "");

	if (!text) {
		fprintf(stderr, "error: out of memory\n");
		return CTL_EXIT_FAIL;
	}
	ctl_sanitize(text);
	if (ctl_print_owned(text))
		return CTL_EXIT_FAIL;
	if (!verbose || cJSON_GetArraySize(traces) == 0)
		return CTL_EXIT_OK;
	putchar('\n');
	return ctl_print_owned(ctl_render_traces(traces, c->color)) ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

static int rules_explain(struct ctl_ctx *c, const char *sub, int argc, const char *const *argv,
			 const struct ctl_flag *flag)
{
	cJSON *data = NULL;
	int status;

	(void)sub;
	(void)argc;
	if (ctl_check_id(argv[0], "rule"))
		return CTL_EXIT_USAGE;
	status = ctl_request(c, "rule/trace", id_body(argv[0]), &data, NULL, 0);
	if (status == CTL_EXIT_OK)
		status = c->opts->json ? (ctl_print_json(data) ? CTL_EXIT_FAIL : CTL_EXIT_OK)
				       : print_explanation(c, data, flag->seen);
	cJSON_Delete(data);
	return status;
}

static const struct ctl_sub rules_subs[] = {
	{ "", "", 0, 0, { 0 }, rules_list },
	{ "add", "FILE", 1, 1, { 0 }, rules_file },
	{ "update", "FILE", 1, 1, { 0 }, rules_file },
	{ "remove", "ID", 1, 1, { 0 }, rules_simple },
	{ "enable", "ID", 1, 1, { 0 }, rules_simple },
	{ "disable", "ID", 1, 1, { 0 }, rules_simple },
	{ "trigger", "ID [--conditions]", 1, 1, { "--conditions", NULL, 0, 0, NULL }, rules_trigger },
	{ "explain", "ID [-v]", 1, 1, { "--verbose", "-v", 0, 0, NULL }, rules_explain },
};

int ctl_cmd_rules(struct ctl_ctx *c, int argc, const char *const *argv)
{
	return ctl_dispatch(c, "rules", rules_subs, sizeof(rules_subs) / sizeof(rules_subs[0]), argc,
			    argv);
}
