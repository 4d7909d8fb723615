#include "ecosystem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ecosystem_count(struct eco_counts *c, enum eco_counter which, int64_t now_ms)
{
	int64_t minute = now_ms / 60000;
	size_t slot = (size_t)(minute % ECOSYSTEM_MINUTES);
	if (c->minute[which][slot] != minute) {
		c->minute[which][slot] = minute;
		c->count[which][slot] = 0;
	}
	c->count[which][slot]++;
}

uint64_t ecosystem_sum(const struct eco_counts *c, enum eco_counter which, int64_t now_ms,
		       int64_t window_ms)
{
	int64_t now_min = now_ms / 60000, from = (now_ms - window_ms) / 60000;
	uint64_t sum = 0;
	for (size_t i = 0; i < ECOSYSTEM_MINUTES; i++)
		if (c->minute[which][i] > from && c->minute[which][i] <= now_min)
			sum += c->count[which][i];
	return sum;
}

static void bump(cJSON *o, const char *key)
{
	if (!key || !key[0])
		key = "unknown";
	cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
	if (n)
		cJSON_SetNumberValue(n, n->valuedouble + 1);
	else
		cJSON_AddNumberToObject(o, key, 1);
}

static void devices_part(cJSON *view, const struct registry *reg)
{
	cJSON *by_plugin = cJSON_AddObjectToObject(view, "by_plugin");
	cJSON *by_vendor = cJSON_AddObjectToObject(view, "by_vendor");
	cJSON *by_cap = cJSON_AddObjectToObject(view, "by_capability");
	size_t online = 0;
	for (const struct device *d = registry_first(reg); d; d = registry_next(d)) {
		bump(by_plugin, d->plugin);
		bump(by_vendor, d->vendor);
		for (size_t i = 0; i < d->n_caps; i++)
			bump(by_cap, d->caps[i].name);
		online += d->available;
	}
	cJSON_AddNumberToObject(view, "devices", (double)registry_count(reg));
	cJSON_AddNumberToObject(view, "devices_online", (double)online);
	cJSON_AddNumberToObject(view, "plugins", cJSON_GetArraySize(by_plugin));
}

/* How many distinct plugins the devices in ids belong to. */
static int plugins_of(const struct registry *reg, const cJSON *ids)
{
	const char *seen[16];
	int n = 0;
	const cJSON *id;
	cJSON_ArrayForEach(id, ids)
	{
		const struct device *d = registry_by_id(reg, id->valuestring);
		if (!d)
			continue;
		bool known = false;
		for (int i = 0; i < n && !known; i++)
			known = strcmp(seen[i], d->plugin) == 0;
		if (!known && n < 16)
			seen[n++] = d->plugin;
	}
	return n;
}

static const char *name_of(const struct registry *reg, const char *id)
{
	const struct device *d = registry_by_id(reg, id);
	return d ? d->name : id;
}

static void rules_part(cJSON *view, const struct registry *reg, const struct rules *rules)
{
	cJSON *cross = cJSON_AddArrayToObject(view, "cross_plugin_rules");
	cJSON *links = cJSON_AddArrayToObject(view, "links");
	cJSON_AddNumberToObject(view, "rules", rules ? (double)rules_count(rules) : 0);
	if (!rules)
		return;
	cJSON *ids = rules_ids(rules);
	const cJSON *id;
	cJSON_ArrayForEach(id, ids)
	{
		cJSON *reads = NULL, *writes = NULL;
		if (rules_links(rules, id->valuestring, &reads, &writes) != 0)
			continue;
		cJSON *all = cJSON_Duplicate(reads, 1);
		const cJSON *w;
		cJSON_ArrayForEach(w, writes) cJSON_AddItemToArray(all, cJSON_Duplicate(w, 1));
		if (plugins_of(reg, all) >= 2)
			cJSON_AddItemToArray(cross, cJSON_CreateString(id->valuestring));
		cJSON *link = cJSON_CreateObject();
		cJSON_AddStringToObject(link, "rule", id->valuestring);
		cJSON *from = cJSON_AddArrayToObject(link, "from");
		cJSON *to = cJSON_AddArrayToObject(link, "to");
		const cJSON *r;
		cJSON_ArrayForEach(r, reads)
			cJSON_AddItemToArray(from, cJSON_CreateString(name_of(reg, r->valuestring)));
		cJSON_ArrayForEach(w, writes)
			cJSON_AddItemToArray(to, cJSON_CreateString(name_of(reg, w->valuestring)));
		cJSON_AddItemToArray(links, link);
		cJSON_Delete(all);
		cJSON_Delete(reads);
		cJSON_Delete(writes);
	}
	cJSON_Delete(ids);
}

static void scenes_part(cJSON *view, const struct registry *reg, const struct scenes *scenes)
{
	cJSON *cross = cJSON_AddArrayToObject(view, "cross_plugin_scenes");
	cJSON_AddNumberToObject(view, "scenes", scenes ? (double)scenes_count(scenes) : 0);
	for (const struct scene *s = scenes ? scenes_first(scenes) : NULL; s; s = s->next) {
		cJSON *ids = cJSON_CreateArray();
		const cJSON *t;
		cJSON_ArrayForEach(t, s->targets) cJSON_AddItemToArray(ids, cJSON_CreateString(t->string));
		if (plugins_of(reg, ids) >= 2)
			cJSON_AddItemToArray(cross, cJSON_CreateString(s->id));
		cJSON_Delete(ids);
	}
}

cJSON *ecosystem_json(const struct registry *reg, const struct rules *rules,
		      const struct scenes *scenes, const struct eco_counts *counts, int64_t now_ms)
{
	cJSON *view = cJSON_CreateObject();
	if (!view)
		return NULL;
	devices_part(view, reg);
	rules_part(view, reg, rules);
	scenes_part(view, reg, scenes);
	static const char *const names[ECO_COUNTERS] = {"firings", "commands"};
	for (int k = 0; k < ECO_COUNTERS; k++) {
		cJSON *o = cJSON_AddObjectToObject(view, names[k]);
		cJSON_AddNumberToObject(o, "hour",
					counts ? (double)ecosystem_sum(counts, k, now_ms, 3600000) : 0);
		cJSON_AddNumberToObject(o, "day",
					counts ? (double)ecosystem_sum(counts, k, now_ms, 86400000) : 0);
	}
	return view;
}

/* DOT identifiers are quoted; quotes and backslashes inside are escaped. */
static void quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

char *ecosystem_dot(const cJSON *view)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("digraph hearth {\n  rankdir=LR;\n  node [shape=box];\n", f);
	const cJSON *link;
	cJSON_ArrayForEach(link, cJSON_GetObjectItemCaseSensitive(view, "links"))
	{
		const cJSON *rule = cJSON_GetObjectItemCaseSensitive(link, "rule");
		char rid[200];
		snprintf(rid, sizeof(rid), "rule %s", rule->valuestring);
		fputs("  ", f);
		quoted(f, rid);
		fputs(" [shape=ellipse];\n", f);
		const cJSON *d;
		cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(link, "from"))
		{
			fputs("  ", f);
			quoted(f, d->valuestring);
			fputs(" -> ", f);
			quoted(f, rid);
			fputs(";\n", f);
		}
		cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(link, "to"))
		{
			fputs("  ", f);
			quoted(f, rid);
			fputs(" -> ", f);
			quoted(f, d->valuestring);
			fputs(";\n", f);
		}
	}
	fputs("}\n", f);
	fclose(f);
	return buf;
}
