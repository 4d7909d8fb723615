/*
 * source = replay:PATH: advertisements from a text file, one per line,
 *
 *   <unix_ms> <aa:bb:cc:dd:ee:ff> <rssi dBm> <AD structures as hex>
 *
 * replayed with their relative timing scaled by replay_speed (0: as fast as
 * the loop allows, in batches so the hub keeps breathing). Blank lines and
 * '#' comments are skipped; a bad line is logged with its number and
 * skipped. The AD bytes are passed on as they are: checking them is the
 * decoders' job, so a replay can feed them garbage.
 */
#include "ble.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_BATCH 256     /* lines per loop turn */
#define REPLAY_LOUD_BAD 20   /* bad lines logged as warnings; the rest at debug */
#define TS_DIGITS_MAX 15

/* ---- the line parser -------------------------------------------------------- */

static const char *rp_token(const char **p, size_t *len)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, " \t\r\n");
	*p = s + n;
	*len = n;
	return n ? s : NULL;
}

static bool rp_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int rp_fail(const char **why, const char *text)
{
	*why = text;
	return -EINVAL;
}

int ble_replay_parse(const char *line, struct ble_replay_line *out, const char **why)
{
	const char *p = line;
	size_t n[5];
	const char *tok[5];
	for (int i = 0; i < 5; i++)
		tok[i] = rp_token(&p, &n[i]);
	if (!tok[0] || tok[0][0] == '#')
		return 0;
	if (!tok[3] || tok[4])
		return rp_fail(why, "expected <unix_ms> <aa:bb:cc:dd:ee:ff> <rssi> <hex AD data>");
	if (!rp_digits(tok[0], n[0]) || n[0] > TS_DIGITS_MAX)
		return rp_fail(why, "the time is not a whole number of milliseconds");
	char mac[18];
	if (n[1] != 17)
		return rp_fail(why, "the MAC address is not of the form aa:bb:cc:dd:ee:ff");
	memcpy(mac, tok[1], 17);
	mac[17] = '\0';
	if (ble_mac_parse(mac, out->adv.mac))
		return rp_fail(why, "the MAC address is not of the form aa:bb:cc:dd:ee:ff");
	bool neg = tok[2][0] == '-';
	if (!rp_digits(tok[2] + neg, n[2] - neg) || n[2] - neg > 3)
		return rp_fail(why, "the RSSI is not a whole number of dBm in -127..20");
	long rssi = strtol(tok[2], NULL, 10);
	if (rssi < -127 || rssi > 20)
		return rp_fail(why, "the RSSI is not a whole number of dBm in -127..20");
	int len = ble_hex_decode(tok[3], n[3], out->data, sizeof(out->data));
	if (len == -E2BIG)
		return rp_fail(why, "the AD data is longer than 255 bytes");
	if (len < 0)
		return rp_fail(why, "the AD data is not hex");
	out->ts_ms = strtoll(tok[0], NULL, 10);
	out->adv.has_rssi = true;
	out->adv.rssi = (int8_t)rssi;
	out->adv.ad = out->data;
	out->adv.ad_len = (size_t)len;
	return 1;
}

/* ---- the source ------------------------------------------------------------------- */

struct replay {
	struct ble_source base;
	struct ble_source_env env;
	char *path;
	FILE *file;
	hearth_timer *timer;
	size_t line_no, adverts, bad;
	bool pending;		  /* line holds the next advertisement, not yet due */
	struct ble_replay_line line;
	bool clock_set;
	int64_t first_ts_ms, start_ms;
	bool done;
};

static void rp_log_bad(struct replay *r, const char *why)
{
	r->bad++;
	enum hearth_log_level level = r->bad <= REPLAY_LOUD_BAD ? HEARTH_LOG_WARNING
							       : HEARTH_LOG_DEBUG;
	r->env.host->log(r->env.ctx, level, "replay %s:%zu: %s; line skipped", r->path, r->line_no,
			 why);
}

/* The next advertisement into r->line: 1, 0 at the end of the file. */
static int rp_next(struct replay *r)
{
	char buf[BLE_REPLAY_LINE_MAX + 2];
	while (fgets(buf, sizeof(buf), r->file)) {
		r->line_no++;
		size_t n = strlen(buf);
		if (n == sizeof(buf) - 1 && buf[n - 1] != '\n') {
			int c;
			while ((c = fgetc(r->file)) != EOF && c != '\n')
				;
			rp_log_bad(r, "longer than 1024 characters");
			continue;
		}
		const char *why = "malformed";
		int rc = ble_replay_parse(buf, &r->line, &why);
		if (rc == 1)
			return 1;
		if (rc < 0)
			rp_log_bad(r, why);
	}
	return 0;
}

static void rp_finish(struct replay *r)
{
	r->done = true;
	r->env.host->log(r->env.ctx, HEARTH_LOG_INFO,
			 "replay %s finished: %zu advertisements, %zu bad lines", r->path, r->adverts,
			 r->bad);
}

static void rp_deliver(struct replay *r)
{
	r->adverts++;
	r->pending = false;
	r->env.deliver(r->env.user, &r->line.adv);
}

/* When the pending line is due, in the hub's milliseconds. */
static int64_t rp_due(struct replay *r)
{
	if (!r->clock_set) {
		r->clock_set = true;
		r->first_ts_ms = r->line.ts_ms;
		r->start_ms = r->env.host->now_ms(r->env.ctx);
	}
	double offset = (double)(r->line.ts_ms - r->first_ts_ms) / r->env.replay_speed;
	return r->start_ms + (int64_t)(offset > 0 ? offset : 0);
}

static void rp_tick(void *user)
{
	struct replay *r = user;
	uint64_t again_ms = 0;
	for (int i = 0; i < REPLAY_BATCH; i++) {
		if (!r->pending && !(r->pending = rp_next(r) == 1)) {
			rp_finish(r);
			return;
		}
		if (r->env.replay_speed > 0) {
			int64_t wait = rp_due(r) - r->env.host->now_ms(r->env.ctx);
			if (wait > 0) {
				again_ms = (uint64_t)wait;
				break;
			}
		}
		rp_deliver(r);
	}
	int rc = r->env.host->timer_again(r->env.ctx, r->timer, again_ms, 0);
	if (rc)
		r->env.host->log(r->env.ctx, HEARTH_LOG_ERROR, "replay %s stopped: no timer (%s)",
				 r->path, strerror(-rc));
}

static int rp_open(const struct ble_source_env *env, const char *arg, struct ble_source **out)
{
	if (!arg || !*arg) {
		env->host->log(env->ctx, HEARTH_LOG_ERROR, "source = replay:PATH needs a path");
		return -EINVAL;
	}
	struct replay *r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(arg))) {
		free(r);
		return -ENOMEM;
	}
	r->base.ops = &ble_source_replay;
	r->env = *env;
	r->file = fopen(arg, "re");
	if (!r->file) {
		int e = errno;
		env->host->log(env->ctx, HEARTH_LOG_ERROR, "replay: cannot open %s: %s", arg,
			       strerror(e));
		free(r->path);
		free(r);
		return -e;
	}
	*out = &r->base;
	return 0;
}

static int rp_start(struct ble_source *src)
{
	struct replay *r = (struct replay *)src;
	r->env.host->log(r->env.ctx, HEARTH_LOG_INFO, "replaying %s at %s", r->path,
			 r->env.replay_speed > 0 ? "recorded speed (scaled)" : "full speed");
	return r->env.host->timer_start(r->env.ctx, 0, 0, rp_tick, r, &r->timer);
}

static void rp_close(struct ble_source *src)
{
	struct replay *r = (struct replay *)src;
	if (!r)
		return;
	r->env.host->timer_stop(r->env.ctx, r->timer);
	if (r->file)
		fclose(r->file);
	free(r->path);
	free(r);
}

const struct ble_source_ops ble_source_replay = {
	.name = "replay",
	.takes_arg = true,
	.open = rp_open,
	.start = rp_start,
	.close = rp_close,
};
