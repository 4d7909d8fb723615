/*
 * mqttdev: devices that speak MQTT themselves, on the hub's own broker
 * connection. Tasmota (found by its retained discovery messages), Shelly
 * Gen2+ (listed, or found under a common parent topic) and generic JSON
 * devices declared in a devices file.
 *
 * [plugin.mqttdev]
 *   tasmota        = true           follow tasmota/discovery/#
 *   shelly         = id1, id2       Shelly topic prefixes
 *   shelly_discover = false         also find Shelly devices under shelly_parent
 *   shelly_parent  =                their common parent topic (e.g. shellies)
 *   shelly_src     = hearth-mqttdev JSON-RPC source; replies come on <src>/rpc
 *   rpc_timeout_ms = 5000
 *   devices_file   =                generic JSON devices
 *
 * The hub refuses any subscription or publication under its own base
 * topic, so no device here can be hearth itself: a configured topic there
 * is refused when the plugin starts, with the device and field named.
 * This file talks to the host; tasmota.c, shelly.c and generic.c parse.
 */
#include "mqttdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MQTTDEV_VERSION "0.1.0"
#define TAS_DISCOVERY "tasmota/discovery"
#define SRC_DEFAULT "hearth-mqttdev"
#define RPC_TIMEOUT_DEFAULT_MS 5000
#define RPC_PENDING_MAX 256
#define SHELLY_LIST_MAX 64
#define BUCKETS 4096
#define CMDS_MAX 16
#define FRAME_MAX 512

enum kind { K_TASMOTA, K_SHELLY, K_GENERIC };

enum sub_kind {
	S_TAS_DISCOVERY,
	S_TAS_STAT,
	S_TAS_TELE,
	S_SHELLY,	/* <prefix>/online, events/rpc, status/+ (listed or found) */
	S_SHELLY_REPLY, /* <src>/rpc */
	S_GEN_STATE,
	S_GEN_AVAIL,
	S_GROUP_STATE, /* one wildcard subscription for a whole {i} template */
	S_GROUP_AVAIL,
};

struct md;
struct mdev;

struct sub {
	struct md *md;
	enum sub_kind kind;
	struct mdev *dev;	     /* per-device kinds */
	const struct gen_spec *spec; /* group kinds */
	size_t first;		     /* group: index of the spec's first device */
	int seg;		     /* group: topic level holding {i} */
	size_t base_len;	     /* Tasmota: bytes before the suffix */
	char filter[MD_TOPIC_MAX];
	struct sub *next;
};

struct mdev {
	enum kind kind;
	char id[MD_ID_MAX];
	char name[MD_ID_MAX];
	bool added;
	bool refused; /* the hub refused it: retry only when it changes */
	struct tasmota *tas;
	struct shelly *sh;
	bool listed;	/* a Shelly from the config: asked for its status */
	bool got_status;
	/* generic */
	const struct gen_spec *spec;
	char *state_topic, *command_topic, *avail_topic;
	struct sub *subs[2];
	struct mdev *hnext;
	struct mdev *next;
};

struct rpc {
	uint64_t id;
	struct mdev *dev;
	uint64_t command; /* 0: a status request */
	int64_t deadline_ms;
};

struct md {
	const struct hearth_host *host;
	hearth_plugin_ctx *ctx;
	bool tasmota;
	bool shelly_discover;
	char shelly_parent[MD_TOPIC_MAX];
	char src[64];
	char reply_topic[MD_TOPIC_MAX];
	uint64_t rpc_timeout_ms;
	const char *listed[SHELLY_LIST_MAX];
	size_t n_listed;
	char listed_buf[4096];
	struct gen_file gen;
	struct mdev *gdevs; /* the generic devices, in file order */
	size_t n_gdevs;
	struct mdev *buckets[BUCKETS];
	struct mdev *devs; /* every Tasmota and Shelly device */
	size_t n_devs;
	struct sub *subs;
	struct rpc rpcs[RPC_PENDING_MAX];
	size_t n_rpcs;
	uint64_t next_rpc;
	hearth_timer *rpc_timer;
};

/* ---- the device table ------------------------------------------------------------------- */

static size_t bucket(const char *id)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (size_t)(h % BUCKETS);
}

static struct mdev *find(struct md *md, const char *id)
{
	for (struct mdev *d = id ? md->buckets[bucket(id)] : NULL; d; d = d->hnext)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

static void hash_in(struct md *md, struct mdev *d)
{
	size_t b = bucket(d->id);
	d->hnext = md->buckets[b];
	md->buckets[b] = d;
}

/* A new Tasmota or Shelly device (not yet added to the hub). */
static struct mdev *dev_new(struct md *md, enum kind kind, const char *id)
{
	if (md->n_devs + md->n_gdevs >= MD_DEVICES_MAX || strlen(id) >= MD_ID_MAX)
		return NULL;
	struct mdev *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->kind = kind;
	snprintf(d->id, sizeof(d->id), "%s", id);
	if (kind == K_TASMOTA)
		d->tas = calloc(1, sizeof(*d->tas));
	else
		d->sh = calloc(1, sizeof(*d->sh));
	if (!d->tas && !d->sh) {
		free(d);
		return NULL;
	}
	d->next = md->devs;
	md->devs = d;
	md->n_devs++;
	hash_in(md, d);
	return d;
}

/* Take a Tasmota or Shelly device out of the table and free it (its
 * subscriptions and hub device are gone already). */
static void dev_free(struct md *md, struct mdev *d)
{
	for (struct mdev **p = &md->buckets[bucket(d->id)]; *p; p = &(*p)->hnext) {
		if (*p == d) {
			*p = d->hnext;
			break;
		}
	}
	for (struct mdev **p = &md->devs; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			md->n_devs--;
			break;
		}
	}
	free(d->tas);
	free(d->sh);
	free(d);
}

/* Heard of but not (yet) usable: a Tasmota known only by a sensors message,
 * a Shelly found under shelly_parent that has not told what it has. */
static bool waiting(const struct mdev *d, enum kind kind)
{
	return d->kind == kind && !d->added &&
	       (kind == K_TASMOTA ? !d->tas->have_config : !d->listed);
}

/* Anyone may publish where devices announce themselves: before a new one is
 * remembered, the oldest of MD_WAITING_MAX waiting ones is forgotten, so
 * memory stays bounded and a real device is never turned away. */
static void make_room(struct md *md, enum kind kind, const char *id)
{
	size_t n = 0;
	struct mdev *oldest = NULL; /* the list is newest first */
	for (struct mdev *d = md->devs; d; d = d->next) {
		if (waiting(d, kind)) {
			n++;
			oldest = d;
		}
	}
	if (n < MD_WAITING_MAX || !oldest)
		return;
	md->host->log(md->ctx, HEARTH_LOG_DEBUG,
		      "%s: %d devices heard of wait already; forgetting the oldest, %s", id,
		      MD_WAITING_MAX, oldest->id);
	dev_free(md, oldest);
}

/* ---- subscriptions ------------------------------------------------------------------------- */

static void on_message(void *user, const char *topic, const void *payload, size_t len,
		       bool retained);

static struct sub *subscribe(struct md *md, const char *filter, enum sub_kind kind,
			     struct mdev *dev)
{
	struct sub *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->md = md;
	s->kind = kind;
	s->dev = dev;
	snprintf(s->filter, sizeof(s->filter), "%s", filter);
	int rc = md->host->mqtt_subscribe(md->ctx, filter, 1, on_message, s);
	if (rc) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "cannot subscribe to '%s': %s%s", filter,
			      strerror(-rc),
			      rc == -EPERM ? " (it is inside the hub's own topics)" : "");
		free(s);
		return NULL;
	}
	s->next = md->subs;
	md->subs = s;
	return s;
}

static void unsubscribe(struct md *md, struct sub *s)
{
	if (!s)
		return;
	for (struct sub **p = &md->subs; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	md->host->mqtt_unsubscribe(md->ctx, s->filter);
	free(s);
}

static void noop_message(void *user, const char *topic, const void *payload, size_t len,
			 bool retained)
{
	(void)user;
	(void)topic;
	(void)payload;
	(void)len;
	(void)retained;
}

/* The host refuses anything under its own base topic; ask it about topic
 * without keeping a subscription. */
static bool inside_hub(struct md *md, const char *topic)
{
	int rc = md->host->mqtt_subscribe(md->ctx, topic, 0, noop_message, md);
	if (rc == 0)
		md->host->mqtt_unsubscribe(md->ctx, topic);
	return rc == -EPERM;
}

/* ---- reporting ----------------------------------------------------------------------------- */

static int add_device(struct md *md, struct mdev *d, const struct hearth_capability *caps,
		      size_t n, const char *vendor, const char *model, const char *description)
{
	struct hearth_device_info info = {
		.struct_size = sizeof(info),
		.id = d->id,
		.name = d->name[0] ? d->name : NULL,
		.vendor = vendor,
		.model = model && model[0] ? model : NULL,
		.description = description,
		.caps = caps,
		.n_caps = n,
	};
	int rc = md->host->device_add(md->ctx, &info);
	if (rc)
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "cannot add %s: %s", d->id, strerror(-rc));
	d->added = rc == 0;
	d->refused = rc != 0;
	return rc;
}

static int add_driven(struct md *md, struct mdev *d)
{
	struct hearth_capability caps[MD_CAPS_MAX];
	if (d->kind == K_TASMOTA) {
		mcaps_export(&d->tas->caps, caps);
		char desc[160];
		snprintf(desc, sizeof(desc), "Tasmota %s on %s", d->tas->sw, d->tas->topic);
		return add_device(md, d, caps, d->tas->caps.n, "Tasmota", d->tas->model, desc);
	}
	if (d->sh->caps.n == 0)
		return 0; /* nothing known yet: added with its first component */
	mcaps_export(&d->sh->caps, caps);
	return add_device(md, d, caps, d->sh->caps.n, "Shelly", d->sh->model, NULL);
}

static void deliver(struct md *md, struct mdev *d, const struct mstate *st)
{
	if (d->kind != K_GENERIC && (st->caps_changed || (!d->added && !d->refused)))
		add_driven(md, d);
	if (!d->added)
		return;
	if (st->n)
		md->host->state_report(md->ctx, d->id, st->attrs, st->n);
	for (size_t i = 0; i < st->n_events; i++) {
		const struct mevent *e = &st->events[i];
		struct hearth_attr a = {.name = e->attr, .value = HEARTH_STRING(e->value)};
		md->host->event_report(md->ctx, d->id, e->type, &a, 1);
	}
	if (st->online >= 0)
		md->host->availability_set(md->ctx, d->id, st->online == 1);
}

/* ---- Tasmota ------------------------------------------------------------------------------ */

static void tas_unsubscribe(struct md *md, struct mdev *d)
{
	for (int i = 0; i < 2; i++) {
		unsubscribe(md, d->subs[i]);
		d->subs[i] = NULL;
	}
}

/* stat/<topic>/+ and tele/<topic>/+ on the device's own full topic. */
static int tas_subscribe(struct md *md, struct mdev *d)
{
	static const int which[2] = {TAS_STAT, TAS_TELE};
	tas_unsubscribe(md, d);
	for (int i = 0; i < 2; i++) {
		char filter[MD_TOPIC_MAX];
		if (tasmota_topic(d->tas, which[i], "+", filter, sizeof(filter)))
			return -ENAMETOOLONG;
		d->subs[i] = subscribe(md, filter, i == 0 ? S_TAS_STAT : S_TAS_TELE, d);
		if (!d->subs[i])
			return -EPERM;
		d->subs[i]->base_len = strlen(filter) - 1;
	}
	return 0;
}

static void tas_forget(struct md *md, struct mdev *d)
{
	tas_unsubscribe(md, d);
	if (d->added)
		md->host->device_remove(md->ctx, d->id);
	d->added = false;
}

static void tas_config(struct md *md, struct mdev *d, const char *payload, size_t len)
{
	char err[128];
	struct tasmota before = *d->tas;
	if (tasmota_parse_config(d->tas, payload, len, err, sizeof(err))) {
		md->host->log(md->ctx, HEARTH_LOG_WARNING, "%s: unusable discovery config: %s",
			      d->id, err);
		return;
	}
	bool moved = strcmp(before.full_topic, d->tas->full_topic) != 0 ||
		     strcmp(before.topic, d->tas->topic) != 0 ||
		     memcmp(before.prefix, d->tas->prefix, sizeof(before.prefix)) != 0 ||
		     !d->subs[0];
	if (moved && tas_subscribe(md, d)) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "%s: its topics are unusable; ignored",
			      d->id);
		tas_forget(md, d);
		return;
	}
	if (!d->name[0])
		snprintf(d->name, sizeof(d->name), "tasmota/%s", d->tas->topic);
	tasmota_build_caps(d->tas);
	add_driven(md, d);
}

static void tas_discovery(struct md *md, const char *topic, const void *payload, size_t len)
{
	/* tasmota/discovery/<MAC>/config or .../sensors */
	const char *mac = topic + strlen(TAS_DISCOVERY) + 1, *slash = strchr(mac, '/');
	if (!slash || slash - mac != 12)
		return;
	char id[MD_ID_MAX];
	snprintf(id, sizeof(id), "mqttdev:tasmota:%.12s", mac);
	for (char *p = id + strlen("mqttdev:tasmota:"); *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	struct mdev *d = find(md, id);
	bool config = strcmp(slash, "/config") == 0;
	if (!config && strcmp(slash, "/sensors") != 0)
		return;
	if (len == 0) {
		/* Tasmota clears its config when discovery is turned off there (or
		 * the device is retired): forgotten, and its memory with it */
		if (d && config) {
			tas_forget(md, d);
			dev_free(md, d);
		}
		return;
	}
	if (!d)
		make_room(md, K_TASMOTA, id);
	if (!d && !(d = dev_new(md, K_TASMOTA, id)))
		return;
	if (config) {
		tas_config(md, d, payload, len);
	} else if (tasmota_parse_sensors(d->tas, payload, len) == 0 && d->tas->have_config &&
		   d->subs[0]) {
		tasmota_build_caps(d->tas);
		add_driven(md, d);
	}
}

static void tas_message(struct md *md, const struct sub *s, const char *topic,
			const void *payload, size_t len)
{
	struct mdev *d = s->dev;
	if (strlen(topic) <= s->base_len)
		return;
	struct mstate st;
	mstate_init(&st);
	int which = s->kind == S_TAS_STAT ? TAS_STAT : TAS_TELE;
	if (tasmota_parse_message(d->tas, which, topic + s->base_len, payload, len, &st) == 0)
		deliver(md, d, &st);
}

static int tas_command(struct md *md, struct mdev *d, const struct hearth_command *cmd)
{
	struct tas_cmd out[CMDS_MAX];
	size_t n;
	int rc = tasmota_encode(d->tas, cmd->attrs, cmd->n_attrs, out, CMDS_MAX, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char topic[MD_TOPIC_MAX];
		rc = tasmota_topic(d->tas, TAS_CMND, out[i].command, topic, sizeof(topic));
		if (rc == 0)
			rc = md->host->mqtt_publish(md->ctx, topic, out[i].payload,
						    strlen(out[i].payload), 1, false);
	}
	return rc;
}

static int tas_get(struct md *md, struct mdev *d)
{
	static const char *const asks[][2] = {{"STATE", ""}, {"STATUS", "10"}};
	for (size_t i = 0; i < 2; i++) {
		char topic[MD_TOPIC_MAX];
		int rc = tasmota_topic(d->tas, TAS_CMND, asks[i][0], topic, sizeof(topic));
		if (rc == 0)
			rc = md->host->mqtt_publish(md->ctx, topic, asks[i][1], strlen(asks[i][1]), 1,
						    false);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- Shelly ------------------------------------------------------------------------------- */

static int rpc_send(struct md *md, struct mdev *d, const struct sh_rpc *rpc, uint64_t command)
{
	if (md->n_rpcs >= RPC_PENDING_MAX)
		return -EBUSY;
	char frame[FRAME_MAX], topic[MD_TOPIC_MAX];
	uint64_t id = ++md->next_rpc;
	int rc = shelly_frame(id, md->src, rpc, frame, sizeof(frame));
	if (rc == 0 && snprintf(topic, sizeof(topic), "%s/rpc", d->sh->prefix) >= (int)sizeof(topic))
		rc = -ENAMETOOLONG;
	if (rc == 0)
		rc = md->host->mqtt_publish(md->ctx, topic, frame, strlen(frame), 1, false);
	if (rc)
		return rc;
	md->rpcs[md->n_rpcs++] = (struct rpc){id, d, command,
					      md->host->now_ms(md->ctx) + (int64_t)md->rpc_timeout_ms};
	return 0;
}

static void rpc_drop(struct md *md, size_t i)
{
	md->rpcs[i] = md->rpcs[--md->n_rpcs];
}

static bool command_pending(const struct md *md, uint64_t command)
{
	for (size_t i = 0; i < md->n_rpcs; i++)
		if (md->rpcs[i].command == command)
			return true;
	return false;
}

/* Fail a command: its other RPCs are forgotten and it is done once. */
static void command_failed(struct md *md, uint64_t command, int status, const char *why)
{
	for (size_t i = md->n_rpcs; i-- > 0;)
		if (md->rpcs[i].command == command)
			rpc_drop(md, i);
	md->host->command_done(md->ctx, command, status, why);
}

static void ask_status(struct md *md, struct mdev *d)
{
	struct sh_rpc get = {.method = "Shelly.GetStatus", .params = "{}"};
	if (rpc_send(md, d, &get, 0) == 0)
		d->got_status = true; /* asked: the reply (or notifications) will tell */
}

static void on_rpc_timer(void *user)
{
	struct md *md = user;
	int64_t now = md->host->now_ms(md->ctx);
	for (size_t i = md->n_rpcs; i-- > 0;) {
		if (i >= md->n_rpcs || md->rpcs[i].deadline_ms > now)
			continue;
		struct rpc r = md->rpcs[i];
		if (r.command) {
			command_failed(md, r.command, -ETIMEDOUT, "the Shelly did not answer");
		} else {
			rpc_drop(md, i);
			r.dev->got_status = false; /* ask again when it comes online */
		}
	}
}

static void shelly_reply(struct md *md, const void *payload, size_t len)
{
	struct sh_response r;
	if (shelly_parse_response(payload, len, &r))
		return;
	size_t i = 0;
	while (i < md->n_rpcs && (double)md->rpcs[i].id != r.id)
		i++;
	if (i < md->n_rpcs) {
		struct rpc p = md->rpcs[i];
		rpc_drop(md, i);
		if (p.command && r.error_code) {
			char why[MD_TEXT_MAX + 32];
			snprintf(why, sizeof(why), "Shelly error %d: %s", r.error_code, r.error);
			command_failed(md, p.command, -EIO, why);
		} else if (p.command && !command_pending(md, p.command)) {
			md->host->command_done(md->ctx, p.command, 0, NULL);
		} else if (!p.command && r.result) {
			struct mstate st;
			mstate_init(&st);
			shelly_apply_full(p.dev->sh, r.result, &st);
			deliver(md, p.dev, &st);
		}
	}
	cJSON_Delete(r.root);
}

/* The prefix of a Shelly topic and what follows it. */
static bool shelly_split(const char *topic, char *prefix, size_t cap, const char **rest)
{
	static const char *const tails[] = {"/online", "/events/rpc"};
	size_t n = strlen(topic);
	for (size_t i = 0; i < 2; i++) {
		size_t t = strlen(tails[i]);
		if (n > t && strcmp(topic + n - t, tails[i]) == 0) {
			snprintf(prefix, cap, "%.*s", (int)(n - t), topic);
			*rest = topic + n - t + 1;
			return n - t < cap;
		}
	}
	const char *st = strstr(topic, "/status/");
	while (st && strstr(st + 1, "/status/"))
		st = strstr(st + 1, "/status/");
	if (!st || st == topic || (size_t)(st - topic) >= cap)
		return false;
	snprintf(prefix, cap, "%.*s", (int)(st - topic), topic);
	*rest = st + 1;
	return true;
}

static struct mdev *shelly_device(struct md *md, const char *prefix, bool create)
{
	struct shelly probe;
	if (shelly_init(&probe, prefix))
		return NULL;
	char id[MD_ID_MAX];
	snprintf(id, sizeof(id), "mqttdev:shelly:%s", probe.id);
	struct mdev *d = find(md, id);
	if (d && strcmp(d->sh->prefix, prefix) != 0)
		return NULL; /* another prefix ending in the same id: not this one */
	if (d || !create)
		return d;
	make_room(md, K_SHELLY, id);
	if (!(d = dev_new(md, K_SHELLY, id)))
		return NULL;
	*d->sh = probe;
	snprintf(d->name, sizeof(d->name), "shelly/%s", probe.id);
	return d;
}

static void shelly_message(struct md *md, const char *topic, const void *payload, size_t len)
{
	char prefix[MD_TOPIC_MAX];
	const char *rest;
	if (!shelly_split(topic, prefix, sizeof(prefix), &rest))
		return;
	bool online = strcmp(rest, "online") == 0;
	struct mdev *d = shelly_device(md, prefix, !online && md->shelly_discover);
	if (!d)
		return;
	struct mstate st;
	mstate_init(&st);
	if (online) {
		if (len == 4 && memcmp(payload, "true", 4) == 0)
			st.online = 1;
		else if (len == 5 && memcmp(payload, "false", 5) == 0)
			st.online = 0;
		if (st.online == 1 && d->listed && !d->got_status)
			ask_status(md, d);
	} else if (strcmp(rest, "events/rpc") == 0) {
		shelly_parse_notification(d->sh, payload, len, &st);
	} else if (strncmp(rest, "status/", 7) == 0) {
		shelly_parse_status(d->sh, rest + 7, payload, len, &st);
	}
	deliver(md, d, &st);
}

static int shelly_command(struct md *md, struct mdev *d, const struct hearth_command *cmd)
{
	struct sh_rpc rpcs[CMDS_MAX];
	size_t n;
	int rc = shelly_encode(d->sh, cmd->attrs, cmd->n_attrs, rpcs, CMDS_MAX, &n);
	if (rc == 0 && md->n_rpcs + n > RPC_PENDING_MAX)
		rc = -EBUSY;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = rpc_send(md, d, &rpcs[i], cmd->id);
		if (rc && i > 0) {
			/* accepted already: finish it as failed */
			command_failed(md, cmd->id, rc, "could not send every request");
			return 0;
		}
	}
	return rc;
}

static int shelly_subscribe_listed(struct md *md, struct mdev *d)
{
	static const char *const tails[] = {"online", "events/rpc", "status/+"};
	for (size_t i = 0; i < 3; i++) {
		char filter[MD_TOPIC_MAX];
		if (snprintf(filter, sizeof(filter), "%s/%s", d->sh->prefix, tails[i]) >=
		    (int)sizeof(filter))
			return -ENAMETOOLONG;
		if (!subscribe(md, filter, S_SHELLY, d))
			return -EPERM;
	}
	return 0;
}

/* ---- generic devices ---------------------------------------------------------------------- */

static void gen_message(struct md *md, struct mdev *d, bool state, const void *payload,
			size_t len)
{
	struct mstate st;
	mstate_init(&st);
	if (state) {
		if (generic_parse_state(d->spec, payload, len, &st))
			return;
	} else {
		st.online = generic_parse_availability(d->spec, payload, len);
		if (st.online < 0)
			return;
	}
	deliver(md, d, &st);
}

static void group_message(struct md *md, const struct sub *s, const char *topic,
			  const void *payload, size_t len)
{
	long i = generic_index(s->spec, topic, s->seg);
	if (i < 0)
		return;
	struct mdev *d = &md->gdevs[s->first + (size_t)(i - s->spec->start)];
	gen_message(md, d, s->kind == S_GROUP_STATE, payload, len);
}

static int gen_command(struct md *md, struct mdev *d, const struct hearth_command *cmd)
{
	char *payload = NULL;
	int rc = generic_encode(d->spec, cmd->attrs, cmd->n_attrs, &payload);
	if (rc == 0)
		rc = md->host->mqtt_publish(md->ctx, d->command_topic, payload, strlen(payload),
					    d->spec->qos, d->spec->retain);
	free(payload);
	if (rc == 0 && d->spec->optimistic)
		md->host->state_report(md->ctx, d->id, cmd->attrs, cmd->n_attrs);
	return rc;
}

static int gen_expand(struct mdev *d, const struct gen_spec *spec, long i)
{
	long n = spec->count ? i : 0;
	char *id = generic_expand(spec->id, n);
	char *name = generic_expand(spec->name, n);
	d->kind = K_GENERIC;
	d->spec = spec;
	d->state_topic = generic_expand(spec->state_topic, n);
	d->command_topic = generic_expand(spec->command_topic, n);
	d->avail_topic = generic_expand(spec->availability_topic, n);
	int rc = id && (name || !spec->name) && (d->state_topic || !spec->state_topic) &&
			 (d->command_topic || !spec->command_topic) &&
			 (d->avail_topic || !spec->availability_topic)
		 ? 0
		 : -ENOMEM;
	if (rc == 0) {
		snprintf(d->id, sizeof(d->id), "mqttdev:%s", id);
		snprintf(d->name, sizeof(d->name), "%s", name ? name : "");
	}
	free(id);
	free(name);
	return rc;
}

/* A configured topic under the hub's base topic would make a loop. */
static int gen_check_topics(struct md *md, const struct mdev *d, const char *file)
{
	const char *topics[] = {d->state_topic, d->command_topic, d->avail_topic};
	static const char *const fields[] = {"state_topic", "command_topic", "availability_topic"};
	for (size_t k = 0; k < 3; k++) {
		if (topics[k] && inside_hub(md, topics[k])) {
			md->host->log(md->ctx, HEARTH_LOG_ERROR,
				      "devices_file %s: device %s: %s '%s' is inside the hub's own "
				      "topics; a device there would be hearth itself",
				      file, d->id, fields[k], topics[k]);
			return -EINVAL;
		}
	}
	return 0;
}

static int gen_create(struct md *md, const char *file)
{
	if (md->gen.n_devices == 0)
		return 0;
	md->gdevs = calloc(md->gen.n_devices, sizeof(*md->gdevs));
	if (!md->gdevs)
		return -ENOMEM;
	for (size_t s = 0; s < md->gen.n_specs; s++) {
		const struct gen_spec *spec = &md->gen.specs[s];
		long n = spec->count ? spec->count : 1;
		for (long k = 0; k < n; k++) {
			struct mdev *d = &md->gdevs[md->n_gdevs];
			int rc = gen_expand(d, spec, spec->start + k);
			md->n_gdevs++;
			if (rc)
				return rc;
			/* every expansion has the same shape: asking about one is enough */
			if (k == 0 && (rc = gen_check_topics(md, d, file)))
				return rc;
			if (find(md, d->id)) {
				md->host->log(md->ctx, HEARTH_LOG_ERROR,
					      "devices_file %s: device id %s is used twice", file,
					      d->id);
				return -EINVAL;
			}
			hash_in(md, d);
		}
	}
	return 0;
}

static void gen_add_all(struct md *md)
{
	for (size_t i = 0; i < md->n_gdevs; i++) {
		struct mdev *d = &md->gdevs[i];
		add_device(md, d, d->spec->caps, d->spec->n_attrs, d->spec->vendor, d->spec->model,
			   d->spec->description);
	}
}

/* One wildcard subscription for a template's devices when {i} fills a
 * whole level; else one per device. */
static int gen_subscribe_spec(struct md *md, const struct gen_spec *spec, size_t first,
			      size_t n)
{
	const char *tmpl[2] = {spec->state_topic, spec->availability_topic};
	for (int k = 0; k < 2; k++) {
		if (!tmpl[k])
			continue;
		char filter[MD_TOPIC_MAX];
		int seg = spec->count ? generic_wildcard(tmpl[k], filter, sizeof(filter)) : -1;
		struct sub *s = seg >= 0 && filter[0] != '+'
					? subscribe(md, filter, k ? S_GROUP_AVAIL : S_GROUP_STATE,
						    NULL)
					: NULL;
		if (s) {
			s->spec = spec;
			s->first = first;
			s->seg = seg;
			continue;
		}
		for (size_t i = first; i < first + n; i++) {
			struct mdev *d = &md->gdevs[i];
			d->subs[k] = subscribe(md, k ? d->avail_topic : d->state_topic,
					       k ? S_GEN_AVAIL : S_GEN_STATE, d);
			if (!d->subs[k])
				return -EPERM;
		}
	}
	return 0;
}

static int gen_subscribe(struct md *md)
{
	size_t first = 0;
	for (size_t s = 0; s < md->gen.n_specs; s++) {
		const struct gen_spec *spec = &md->gen.specs[s];
		size_t n = spec->count ? (size_t)spec->count : 1;
		int rc = gen_subscribe_spec(md, spec, first, n);
		if (rc)
			return rc;
		first += n;
	}
	return 0;
}

/* ---- message routing -------------------------------------------------------------------- */

static void on_message(void *user, const char *topic, const void *payload, size_t len,
		       bool retained)
{
	(void)retained;
	struct sub *s = user;
	struct md *md = s->md;
	if (len > MD_PAYLOAD_MAX)
		return;
	switch (s->kind) {
	case S_TAS_DISCOVERY:
		tas_discovery(md, topic, payload, len);
		break;
	case S_TAS_STAT:
	case S_TAS_TELE:
		tas_message(md, s, topic, payload, len);
		break;
	case S_SHELLY:
		shelly_message(md, topic, payload, len);
		break;
	case S_SHELLY_REPLY:
		shelly_reply(md, payload, len);
		break;
	case S_GEN_STATE:
	case S_GEN_AVAIL:
		gen_message(md, s->dev, s->kind == S_GEN_STATE, payload, len);
		break;
	case S_GROUP_STATE:
	case S_GROUP_AVAIL:
		group_message(md, s, topic, payload, len);
		break;
	}
}

/* ---- configuration ------------------------------------------------------------------------- */

static int parse_bool(struct md *md, const char *key, bool def, bool *out)
{
	const char *v = md->host->config_get(md->ctx, key);
	*out = def;
	if (!v || !v[0])
		return 0;
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") ||
	    !strcasecmp(v, "on")) {
		*out = true;
	} else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
		   !strcasecmp(v, "off")) {
		*out = false;
	} else {
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "%s: '%s' is not true or false", key, v);
		return -EINVAL;
	}
	return 0;
}

static int parse_timeout(struct md *md)
{
	const char *v = md->host->config_get(md->ctx, "rpc_timeout_ms");
	md->rpc_timeout_ms = RPC_TIMEOUT_DEFAULT_MS;
	if (!v || !v[0])
		return 0;
	char *end;
	unsigned long long ms = strtoull(v, &end, 10);
	if (*end || v[0] == '-' || ms < 100 || ms > 60000) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR,
			      "rpc_timeout_ms: '%s' is not a whole number of ms in 100..60000", v);
		return -EINVAL;
	}
	md->rpc_timeout_ms = ms;
	return 0;
}

static int parse_shelly(struct md *md)
{
	const char *list = md->host->config_get(md->ctx, "shelly");
	const char *src = md->host->config_get(md->ctx, "shelly_src");
	const char *parent = md->host->config_get(md->ctx, "shelly_parent");
	int rc = parse_bool(md, "shelly_discover", false, &md->shelly_discover);
	if (rc)
		return rc;
	snprintf(md->src, sizeof(md->src), "%s", src && src[0] ? src : SRC_DEFAULT);
	snprintf(md->shelly_parent, sizeof(md->shelly_parent), "%s", parent ? parent : "");
	snprintf(md->reply_topic, sizeof(md->reply_topic), "%s/rpc", md->src);
	if (!md_topic_ok(md->reply_topic) || strchr(md->src, '"') || strchr(md->src, '\\')) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "shelly_src: '%s' is not a usable topic",
			      md->src);
		return -EINVAL;
	}
	if (md->shelly_parent[0] && !md_topic_ok(md->shelly_parent)) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "shelly_parent: '%s' is not a usable topic",
			      md->shelly_parent);
		return -EINVAL;
	}
	if (md->shelly_discover && !md->shelly_parent[0]) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR,
			      "shelly_discover needs shelly_parent: the hub refuses '+/online' "
			      "(it would take in its own topics); give your Shellies prefixes "
			      "under one parent such as shellies/<id> and set shelly_parent");
		return -EINVAL;
	}
	int n = list ? md_split_list(list, md->listed_buf, sizeof(md->listed_buf), md->listed,
				     SHELLY_LIST_MAX)
		     : 0;
	if (n < 0) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "shelly: more than %d devices or too long",
			      SHELLY_LIST_MAX);
		return -EINVAL;
	}
	md->n_listed = (size_t)n;
	return 0;
}

/* Listed Shellies and the reply topic must lie outside the hub. */
static int shelly_create(struct md *md)
{
	if (!md->n_listed && !md->shelly_discover)
		return 0;
	if (inside_hub(md, md->reply_topic)) {
		md->host->log(md->ctx, HEARTH_LOG_ERROR,
			      "shelly_src: replies on '%s' would be inside the hub's own topics",
			      md->reply_topic);
		return -EINVAL;
	}
	for (size_t i = 0; i < md->n_listed; i++) {
		char probe[MD_TOPIC_MAX];
		snprintf(probe, sizeof(probe), "%s/online", md->listed[i]);
		struct mdev *d = md_topic_ok(md->listed[i]) && !inside_hub(md, probe)
					 ? shelly_device(md, md->listed[i], true)
					 : NULL;
		if (!d) {
			md->host->log(md->ctx, HEARTH_LOG_ERROR,
				      "shelly: '%s' is not a usable topic prefix, is inside the "
				      "hub's own topics, or ends in the id of another listed one",
				      md->listed[i]);
			return -EINVAL;
		}
		d->listed = true;
	}
	return 0;
}

static int read_file(struct md *md, const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int rc = 0;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
	} else if (st.st_size > MD_FILE_MAX) {
		rc = -EFBIG;
	} else if (!(*out = malloc((size_t)st.st_size + 1))) {
		rc = -ENOMEM;
	} else {
		ssize_t n = read(fd, *out, (size_t)st.st_size);
		if (n < 0) {
			rc = -errno;
			free(*out);
			*out = NULL;
		} else {
			(*out)[n] = '\0';
			*len = (size_t)n;
		}
	}
	if (fd >= 0)
		close(fd);
	if (rc)
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "devices_file %s: %s", path, strerror(-rc));
	return rc;
}

static int parse_devices_file(struct md *md)
{
	const char *path = md->host->config_get(md->ctx, "devices_file");
	if (!path || !path[0])
		return 0;
	char *text = NULL, err[256];
	size_t len = 0;
	int rc = read_file(md, path, &text, &len);
	if (rc == 0 && (rc = generic_parse(text, len, &md->gen, err, sizeof(err))))
		md->host->log(md->ctx, HEARTH_LOG_ERROR, "devices_file %s: %s", path, err);
	free(text);
	if (rc == 0)
		rc = gen_create(md, path);
	return rc;
}

/* ---- the plugin's callbacks -------------------------------------------------------------- */

static bool host_usable(const struct hearth_host *h)
{
	return HEARTH_HOST_HAS(h, device_add) && HEARTH_HOST_HAS(h, device_remove) &&
	       HEARTH_HOST_HAS(h, state_report) && HEARTH_HOST_HAS(h, event_report) &&
	       HEARTH_HOST_HAS(h, availability_set) && HEARTH_HOST_HAS(h, command_done) &&
	       HEARTH_HOST_HAS(h, mqtt_subscribe) && HEARTH_HOST_HAS(h, mqtt_unsubscribe) &&
	       HEARTH_HOST_HAS(h, mqtt_publish) && HEARTH_HOST_HAS(h, config_get) &&
	       HEARTH_HOST_HAS(h, log) && HEARTH_HOST_HAS(h, timer_start) &&
	       HEARTH_HOST_HAS(h, timer_stop) && HEARTH_HOST_HAS(h, now_ms);
}

static void free_all(struct md *md)
{
	while (md->subs)
		unsubscribe(md, md->subs);
	while (md->devs) {
		struct mdev *d = md->devs;
		md->devs = d->next;
		free(d->tas);
		free(d->sh);
		free(d);
	}
	for (size_t i = 0; i < md->n_gdevs; i++) {
		free(md->gdevs[i].state_topic);
		free(md->gdevs[i].command_topic);
		free(md->gdevs[i].avail_topic);
	}
	free(md->gdevs);
	generic_free(&md->gen);
	free(md);
}

static int mqttdev_init(const struct hearth_host *host, hearth_plugin_ctx *ctx, void **state)
{
	if (!host_usable(host))
		return -EPROTO;
	struct md *md = calloc(1, sizeof(*md));
	if (!md)
		return -ENOMEM;
	md->host = host;
	md->ctx = ctx;
	md->next_rpc = (uint64_t)host->now_ms(ctx) % 1000000000ull;
	int rc = parse_bool(md, "tasmota", true, &md->tasmota);
	if (!rc)
		rc = parse_timeout(md);
	if (!rc)
		rc = parse_shelly(md);
	if (!rc)
		rc = shelly_create(md);
	if (!rc)
		rc = parse_devices_file(md);
	if (rc) {
		free_all(md);
		return rc;
	}
	gen_add_all(md);
	host->log(ctx, HEARTH_LOG_INFO,
		  "%zu generic devices, %zu listed Shellies, Tasmota discovery %s%s", md->n_gdevs,
		  md->n_listed, md->tasmota ? "on" : "off",
		  md->shelly_discover ? ", Shelly discovery on" : "");
	*state = md;
	return 0;
}

static int mqttdev_start(void *state)
{
	struct md *md = state;
	int rc = 0;
	if (md->tasmota && !subscribe(md, TAS_DISCOVERY "/+/+", S_TAS_DISCOVERY, NULL))
		rc = -EPERM;
	bool shelly = md->n_listed || md->shelly_discover;
	if (!rc && shelly && !subscribe(md, md->reply_topic, S_SHELLY_REPLY, NULL))
		rc = -EPERM;
	for (struct mdev *d = md->devs; !rc && d; d = d->next)
		if (d->kind == K_SHELLY && d->listed)
			rc = shelly_subscribe_listed(md, d);
	static const char *const tails[] = {"online", "events/rpc", "status/+"};
	for (size_t i = 0; !rc && md->shelly_discover && i < 3; i++) {
		char filter[MD_TOPIC_MAX];
		if (snprintf(filter, sizeof(filter), "%s/+/%s", md->shelly_parent, tails[i]) >=
		    (int)sizeof(filter))
			rc = -ENAMETOOLONG;
		else if (!subscribe(md, filter, S_SHELLY, NULL))
			rc = -EPERM;
	}
	if (!rc)
		rc = gen_subscribe(md);
	if (!rc && shelly)
		rc = md->host->timer_start(md->ctx, 500, 500, on_rpc_timer, md, &md->rpc_timer);
	return rc;
}

static void mqttdev_stop(void *state)
{
	struct md *md = state;
	if (!md)
		return;
	md->host->timer_stop(md->ctx, md->rpc_timer);
	for (size_t i = 0; i < md->n_rpcs; i++)
		if (md->rpcs[i].command)
			md->host->command_done(md->ctx, md->rpcs[i].command, -ECANCELED,
					       "the plugin stopped");
	free_all(md);
}

static int mqttdev_command(void *state, const struct hearth_command *cmd)
{
	struct md *md = state;
	struct mdev *d = find(md, cmd->device_id);
	if (!d)
		return -ENOENT;
	int rc;
	switch (d->kind) {
	case K_TASMOTA:
		rc = tas_command(md, d, cmd);
		break;
	case K_SHELLY:
		/* finished when the Shelly answers */
		return shelly_command(md, d, cmd);
	default:
		rc = gen_command(md, d, cmd);
		break;
	}
	if (rc == 0)
		md->host->command_done(md->ctx, cmd->id, 0, NULL);
	return rc;
}

static int mqttdev_get(void *state, const char *device_id, const char *const *attrs,
		       size_t n_attrs)
{
	(void)attrs;
	(void)n_attrs;
	struct md *md = state;
	struct mdev *d = find(md, device_id);
	if (!d)
		return -ENOENT;
	if (d->kind == K_TASMOTA)
		return tas_get(md, d);
	if (d->kind == K_SHELLY) {
		struct sh_rpc get = {.method = "Shelly.GetStatus", .params = "{}"};
		return rpc_send(md, d, &get, 0);
	}
	return -ENOTSUP; /* a generic device cannot be asked */
}

/* ---- descriptor and entry ------------------------------------------------------------------ */

static const struct hearth_option mqttdev_options[] = {
	{"tasmota", "true", "Follow Tasmota's discovery messages under tasmota/discovery"},
	{"shelly", "",
	 "Shelly Gen2+ devices by MQTT topic prefix (their id by default), separated by commas"},
	{"shelly_discover", "false",
	 "Also take in every Shelly that reports under shelly_parent (only listens)"},
	{"shelly_parent", "", "The common parent topic of Shelly prefixes, e.g. shellies"},
	{"shelly_src", SRC_DEFAULT, "Source of JSON-RPC requests; Shellies reply on <src>/rpc"},
	{"rpc_timeout_ms", "5000", "How long a Shelly has to answer a command, 100..60000 ms"},
	{"devices_file", "", "JSON file declaring generic MQTT devices (docs/mqtt-devices.md)"},
	{NULL, NULL, NULL},
};

static const struct hearth_plugin mqttdev_plugin = {
	.struct_size = sizeof(struct hearth_plugin),
	.abi_version = HEARTH_ABI_VERSION(1, 1),
	.name = "mqttdev",
	.version = MQTTDEV_VERSION,
	.description = "Devices that speak MQTT: Tasmota, Shelly Gen2+ and generic JSON devices",
	.options = mqttdev_options,
	.init = mqttdev_init,
	.start = mqttdev_start,
	.stop = mqttdev_stop,
	.command = mqttdev_command,
	.get = mqttdev_get,
	.flags = HEARTH_PLUGIN_RETRY_SAFE,
};

HEARTH_PLUGIN_EXPORT const struct hearth_plugin *hearth_plugin_entry(const uint32_t *host_versions,
								    size_t n_versions)
{
	for (size_t i = 0; host_versions && i < n_versions; i++)
		if (HEARTH_ABI_VERSION_MAJOR(host_versions[i]) == HEARTH_ABI_MAJOR)
			return &mqttdev_plugin;
	return NULL;
}
