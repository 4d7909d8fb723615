/*
 * What the three drivers share: capability lists built at run time, the
 * attributes of one message, bounded JSON parsing and topic checks.
 */
#include "mqttdev.h"
#include "../../src/json_depth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- capabilities ------------------------------------------------------------------------ */

int mcaps_find(const struct mcaps *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->caps[i].name, name) == 0)
			return (int)i;
	return -1;
}

int mcaps_add(struct mcaps *m, const struct hearth_capability *tmpl)
{
	int i = mcaps_find(m, tmpl->name);
	if (i >= 0)
		return i;
	if (m->n >= MD_CAPS_MAX || strlen(tmpl->name) >= MD_NAME_MAX)
		return -ENOSPC;
	struct mcap *c = &m->caps[m->n];
	c->c = *tmpl;
	snprintf(c->name, sizeof(c->name), "%s", tmpl->name);
	c->c.name = c->name;
	c->unit[0] = '\0';
	if (tmpl->unit) {
		snprintf(c->unit, sizeof(c->unit), "%s", tmpl->unit);
		c->c.unit = c->unit;
	}
	return (int)m->n++;
}

void mcaps_export(const struct mcaps *m, struct hearth_capability *out)
{
	for (size_t i = 0; i < m->n; i++)
		out[i] = m->caps[i].c;
}

/* ---- attributes of one message -------------------------------------------------------------- */

void mstate_init(struct mstate *s)
{
	s->n = 0;
	s->online = -1;
	s->caps_changed = false;
	s->n_events = 0;
}

/* The slot for name: the one already there, or a new one. */
static int slot(struct mstate *s, const char *name)
{
	if (!name || !name[0] || strlen(name) >= MD_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return (int)i;
	if (s->n >= MD_ATTRS_MAX)
		return -ENOSPC;
	snprintf(s->names[s->n], MD_NAME_MAX, "%s", name);
	s->attrs[s->n].name = s->names[s->n];
	return (int)s->n++;
}

int mstate_num(struct mstate *s, const char *name, double x)
{
	int i = slot(s, name);
	if (i >= 0)
		s->attrs[i].value = HEARTH_NUMBER(x);
	return i < 0 ? i : 0;
}

int mstate_bool(struct mstate *s, const char *name, bool b)
{
	int i = slot(s, name);
	if (i >= 0)
		s->attrs[i].value = HEARTH_BOOL(b);
	return i < 0 ? i : 0;
}

static int text_value(struct mstate *s, const char *name, const char *str, bool json)
{
	if (strlen(str) >= MD_TEXT_MAX)
		return -E2BIG;
	int i = slot(s, name);
	if (i < 0)
		return i;
	snprintf(s->text[i], MD_TEXT_MAX, "%s", str);
	s->attrs[i].value = json ? HEARTH_JSON(s->text[i]) : HEARTH_STRING(s->text[i]);
	return 0;
}

int mstate_str(struct mstate *s, const char *name, const char *str)
{
	return text_value(s, name, str, false);
}

int mstate_json(struct mstate *s, const char *name, const char *json)
{
	return text_value(s, name, json, true);
}

int mstate_event(struct mstate *s, const char *type, const char *attr, const char *value)
{
	if (s->n_events >= MD_EVENTS_MAX)
		return -ENOSPC;
	struct mevent *e = &s->events[s->n_events++];
	snprintf(e->type, sizeof(e->type), "%s", type);
	snprintf(e->attr, sizeof(e->attr), "%s", attr);
	snprintf(e->value, sizeof(e->value), "%s", value);
	return 0;
}

/* ---- JSON and text ------------------------------------------------------------------------- */

cJSON *md_json_parse(const void *payload, size_t len, size_t max)
{
	if (!payload || len == 0 || len > max || !json_depth_ok(payload, len, MD_JSON_DEPTH_MAX))
		return NULL;
	return cJSON_ParseWithLength(payload, len);
}

char *md_text(const void *payload, size_t len, size_t max)
{
	if (len > max || (len && !payload))
		return NULL;
	char *s = malloc(len + 1);
	if (!s)
		return NULL;
	if (len)
		memcpy(s, payload, len);
	s[len] = '\0';
	return s;
}

const cJSON *md_path(const cJSON *root, const char *path)
{
	char part[MD_NAME_MAX * 2];
	const cJSON *j = root;
	while (j && *path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		if (n == 0 || n >= sizeof(part) || !cJSON_IsObject(j))
			return NULL;
		memcpy(part, path, n);
		part[n] = '\0';
		j = cJSON_GetObjectItemCaseSensitive(j, part);
		path += n + (dot ? 1 : 0);
	}
	return j;
}

bool md_topic_ok(const char *topic)
{
	size_t n = topic ? strlen(topic) : 0;
	if (n == 0 || n >= MD_TOPIC_MAX || topic[0] == '/' || topic[n - 1] == '/')
		return false;
	for (const unsigned char *p = (const unsigned char *)topic; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '+' || *p == '#')
			return false;
	return true;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

int md_split_list(const char *text, char *buf, size_t buf_len, const char **items, size_t max)
{
	if (strlen(text) >= buf_len)
		return -E2BIG;
	snprintf(buf, buf_len, "%s", text);
	size_t n = 0;
	for (char *p = buf; p;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		char *item = trim(p);
		if (*item) {
			if (n >= max)
				return -E2BIG;
			items[n++] = item;
		}
		p = comma ? comma + 1 : NULL;
	}
	return (int)n;
}
