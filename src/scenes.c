#include "scenes.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scenes {
	struct registry *reg;
	struct scene *head;
	size_t count;
};

static int fail(char *err, size_t len, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, const char *id, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, len, "scene '%.64s': %s", id, msg);
	return -EINVAL;
}

static void scene_free(struct scene *s)
{
	if (!s)
		return;
	free(s->id);
	free(s->name);
	cJSON_Delete(s->targets);
	cJSON_Delete(s->definition);
	free(s);
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", id[i]))
			return false;
	return true;
}

/* One target: the device must exist and every attribute be settable and
 * valid. The stored form keys it by id. */
static int check_target(struct scenes *sc, const char *id, const cJSON *t, cJSON *targets,
			char *err, size_t len)
{
	const struct device *dev = registry_lookup(sc->reg, t->string);
	if (!dev)
		return fail(err, len, id, "targets.%.128s: no device has that name", t->string);
	if (!cJSON_IsObject(t) || !t->child)
		return fail(err, len, id, "targets.%s: must be an object of attributes", t->string);
	if (cJSON_GetObjectItemCaseSensitive(targets, dev->id))
		return fail(err, len, id, "targets.%s: the device is listed twice", t->string);
	const cJSON *a;
	cJSON_ArrayForEach(a, t)
	{
		const struct cap *cap = cap_find(dev->caps, dev->n_caps, a->string);
		char why[200];
		cJSON *ok = NULL;
		if (!cap || !(cap->access & HEARTH_ACCESS_SET))
			return fail(err, len, id, "targets.%s.%.64s: not a settable attribute of %s",
				    t->string, a->string, dev->name);
		if (cap_validate_value(cap, a, NULL, &ok, why, sizeof(why)) != 0)
			return fail(err, len, id, "targets.%s.%s", t->string, why);
		cJSON_Delete(ok);
	}
	cap_json_add(targets, dev->id, cJSON_Duplicate(t, 1));
	return 0;
}

static int parse(struct scenes *sc, const cJSON *def, struct scene **out, char *err, size_t len)
{
	const cJSON *jid = cJSON_GetObjectItemCaseSensitive(def, "id");
	const char *id = cJSON_IsString(jid) ? jid->valuestring : "?";
	if (!cJSON_IsObject(def))
		return fail(err, len, id, "must be a JSON object");
	if (!cJSON_IsString(jid) || !id_ok(id))
		return fail(err, len, id, "id: 1..64 of letters, digits, '-', '_', '.'");
	const cJSON *item;
	cJSON_ArrayForEach(item, def)
	{
		if (strcmp(item->string, "id") && strcmp(item->string, "name") &&
		    strcmp(item->string, "targets") && strcmp(item->string, "transition"))
			return fail(err, len, id, "%.64s: unknown key", item->string);
	}
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(def, "name");
	const cJSON *tr = cJSON_GetObjectItemCaseSensitive(def, "transition");
	const cJSON *targets = cJSON_GetObjectItemCaseSensitive(def, "targets");
	if (name && !cJSON_IsString(name))
		return fail(err, len, id, "name: must be text");
	if (tr && (!cJSON_IsNumber(tr) || tr->valuedouble < 0 || tr->valuedouble > 3600))
		return fail(err, len, id, "transition: seconds from 0 to 3600");
	if (!cJSON_IsObject(targets) || !targets->child)
		return fail(err, len, id, "targets: an object of device name -> state");
	if (cJSON_GetArraySize(targets) > SCENE_TARGETS_MAX)
		return fail(err, len, id, "targets: at most %d devices", SCENE_TARGETS_MAX);
	struct scene *s = calloc(1, sizeof(*s));
	if (!s || !(s->targets = cJSON_CreateObject())) {
		scene_free(s);
		return -ENOMEM;
	}
	int rc = 0;
	cJSON_ArrayForEach(item, targets) if ((rc = check_target(sc, id, item, s->targets, err, len)))
		break;
	s->id = strdup(id);
	s->name = strdup(name ? name->valuestring : id);
	s->transition_s = tr ? tr->valuedouble : -1;
	s->definition = cJSON_Duplicate(def, 1);
	if (!rc && (!s->id || !s->name || !s->definition))
		rc = -ENOMEM;
	if (!rc)
		rc = cap_json_put(s->definition, "targets", cJSON_Duplicate(s->targets, 1));
	if (rc) {
		scene_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

struct scenes *scenes_new(struct registry *reg)
{
	struct scenes *sc = calloc(1, sizeof(*sc));
	if (sc)
		sc->reg = reg;
	return sc;
}

void scenes_free(struct scenes *sc)
{
	if (!sc)
		return;
	struct scene *s = sc->head;
	while (s) {
		struct scene *next = s->next;
		scene_free(s);
		s = next;
	}
	free(sc);
}

static struct scene **find(struct scenes *sc, const char *id)
{
	struct scene **p = &sc->head;
	while (*p && strcmp((*p)->id, id) != 0)
		p = &(*p)->next;
	return p;
}

int scenes_add(struct scenes *sc, const cJSON *definition, char *err, size_t err_len)
{
	struct scene *s = NULL;
	int rc = parse(sc, definition, &s, err, err_len);
	if (rc)
		return rc;
	struct scene **p = find(sc, s->id);
	if (*p) {
		s->next = (*p)->next;
		scene_free(*p);
		*p = s;
		return 0;
	}
	if (sc->count >= SCENES_MAX) {
		scene_free(s);
		return fail(err, err_len, "", "there are %d scenes, the limit", SCENES_MAX);
	}
	*p = s;
	sc->count++;
	return 0;
}

int scenes_remove(struct scenes *sc, const char *id)
{
	struct scene **p = find(sc, id);
	if (!*p)
		return -ENOENT;
	struct scene *s = *p;
	*p = s->next;
	scene_free(s);
	sc->count--;
	return 0;
}

const struct scene *scenes_get(const struct scenes *sc, const char *id)
{
	return *find((struct scenes *)sc, id);
}

const struct scene *scenes_first(const struct scenes *sc)
{
	return sc->head;
}

size_t scenes_count(const struct scenes *sc)
{
	return sc->count;
}

int scenes_capture(struct scenes *sc, const char *id, const char *name, const cJSON *devices,
		   char *err, size_t err_len)
{
	if (!cJSON_IsArray(devices) || cJSON_GetArraySize(devices) == 0)
		return fail(err, err_len, id, "devices: a list of device names to capture");
	cJSON *def = cJSON_CreateObject();
	if (!def)
		return -ENOMEM;
	cJSON_AddStringToObject(def, "id", id);
	if (name)
		cJSON_AddStringToObject(def, "name", name);
	cJSON *targets = cJSON_AddObjectToObject(def, "targets");
	const cJSON *d;
	int rc = 0;
	cJSON_ArrayForEach(d, devices)
	{
		const struct device *dev = cJSON_IsString(d) ? registry_lookup(sc->reg, d->valuestring)
							     : NULL;
		if (!dev) {
			rc = fail(err, err_len, id, "devices: no device is named '%.128s'",
				  cJSON_IsString(d) ? d->valuestring : "?");
			break;
		}
		cJSON *state = cJSON_CreateObject();
		for (size_t i = 0; i < dev->n_caps && state; i++) {
			const struct cap *c = &dev->caps[i];
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(dev->state, c->name);
			/* what can be set back, and only what is known */
			if (v && (c->access & HEARTH_ACCESS_SET) && (c->access & HEARTH_ACCESS_PUBLISHED))
				cap_json_add(state, c->name, cJSON_Duplicate(v, 1));
		}
		if (!state || !state->child) {
			cJSON_Delete(state);
			rc = fail(err, err_len, id, "devices: %s reports nothing that can be set",
				  dev->name);
			break;
		}
		cap_json_add(targets, dev->name, state);
	}
	if (!rc)
		rc = scenes_add(sc, def, err, err_len);
	cJSON_Delete(def);
	return rc;
}

cJSON *scenes_to_json(const struct scenes *sc)
{
	cJSON *a = cJSON_CreateArray();
	for (const struct scene *s = sc->head; s && a; s = s->next) {
		cJSON *d = cJSON_Duplicate(s->definition, 1);
		cJSON *named = cJSON_CreateObject();
		if (!d || !named) {
			cJSON_Delete(d);
			cJSON_Delete(named);
			break;
		}
		const cJSON *t;
		cJSON_ArrayForEach(t, s->targets)
		{
			const struct device *dev = registry_by_id(sc->reg, t->string);
			cap_json_add(named, dev ? dev->name : t->string, cJSON_Duplicate(t, 1));
		}
		cap_json_put(d, "targets", named);
		cJSON_AddItemToArray(a, d);
	}
	return a;
}

int scenes_replace_device(struct scenes *sc, const char *old_id, const char *new_id)
{
	int n = 0;
	for (struct scene *s = sc->head; s; s = s->next) {
		cJSON *t = cJSON_DetachItemFromObjectCaseSensitive(s->targets, old_id);
		if (!t)
			continue;
		if (!cJSON_AddItemToObject(s->targets, new_id, t)) {
			/* out of memory: the scene keeps the old device */
			if (!cJSON_AddItemToObject(s->targets, old_id, t))
				cJSON_Delete(t);
			continue;
		}
		if (cap_json_put(s->definition, "targets", cJSON_Duplicate(s->targets, 1)) != 0)
			continue;
		n++;
	}
	return n;
}
