/*
 * The virtual plugin's shared parts: the plugin state (virtual.c, which
 * talks to the host) and the device kinds (kinds.c: capabilities, first
 * values, drift, light fades).
 *
 * Everything runs on the host's loop thread.
 */
#ifndef VIRTUAL_H
#define VIRTUAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hearth/plugin.h>

#define VDEV_MAX_CAPS 6
#define VDEV_ID_MAX 48
#define VIRT_MAX_PER_KIND 1000
#define VIRT_FADE_STEP_MS 100

struct virt;
struct vdev;

/* One device kind. cap_mask bits are indices into caps[]. */
struct kind {
	const char *name; /* "light": the id is virtual:light-<n> */
	const char *model;
	const char *description;
	const struct hearth_capability *caps;
	size_t n_caps;
	/* First values of a new device. */
	void (*setup)(struct virt *v, struct vdev *d);
	/* One interval tick: drift and random events. Returns the caps to
	 * report beyond the gettable ones (a button's action). NULL: the kind
	 * does not report on ticks. */
	unsigned (*tick)(struct virt *v, struct vdev *d);
	/* After cap was given a value by a command or restore. May be NULL. */
	void (*adopt)(struct virt *v, struct vdev *d, size_t cap);
	/* Apply a parsed command itself. NULL: each value is adopted. */
	void (*command)(struct virt *v, struct vdev *d, const size_t *caps,
			const struct hearth_value *values, size_t n);
};

/* A light moving linearly from one brightness/colour temperature to
 * another; the target state is set when it ends. */
struct fade {
	bool active;
	bool final_on;
	int64_t start_ms;
	int64_t duration_ms;
	double from_bri, to_bri, final_bri;
	double from_ct, to_ct;
};

struct vdev {
	const struct kind *kind;
	char id[VDEV_ID_MAX];
	char name[VDEV_ID_MAX];
	/* Current values, by cap index; strings point into the static
	 * capability tables, never at borrowed memory. */
	struct hearth_value val[VDEV_MAX_CAPS];
	/* Where a drifting value tends to, by cap index. */
	double home[VDEV_MAX_CAPS];
	double energy_kwh;	/* unrounded, for a plug's energy */
	int64_t last_tick_ms;
	unsigned hold_ticks;	/* ticks until an excursion ends */
	struct fade fade;
};

/* Devices of one kind: devs[first .. first + count). */
struct group {
	const struct kind *kind;
	size_t first;
	size_t count;
};

struct virt {
	const struct hearth_host *host;
	hearth_plugin_ctx *ctx;
	struct vdev *devs;
	size_t n_devs;
	struct group groups[8];
	size_t n_groups;
	uint64_t interval_ms;
	hearth_timer *tick_timer;
	hearth_timer *fade_timer;
	bool fade_armed;
	uint64_t rng;
};

/* kinds.c */
extern const struct kind *const kind_table[];
extern const size_t kind_count;
/* The kind named by the len bytes at name, or NULL. */
const struct kind *kind_find(const char *name, size_t len);
/* Index of the capability name in kind, or -1. */
int kind_cap_index(const struct kind *kind, const char *name);
/* Caps with HEARTH_ACCESS_GET: what a full report holds. */
unsigned kind_full_mask(const struct kind *kind);
/* Turn in into the capability's own form in *out (binary and enum strings
 * become the table's). Numbers are clamped to the range. 0 or -EINVAL. */
int kind_value_parse(const struct hearth_capability *cap, const struct hearth_value *in,
		     struct hearth_value *out);
/* Advance a light's fade to now; true while it goes on. */
bool kind_fade_step(struct virt *v, struct vdev *d, int64_t now_ms);

/* virtual.c */
/* A number in [0, 1). */
double virt_random(struct virt *v);
int64_t virt_now(struct virt *v);
/* Report the caps in mask (NULL values skipped); a published cap that is
 * not gettable (a button's action) is also reported as an event. */
void virt_report(struct virt *v, struct vdev *d, unsigned mask);
/* Make sure the fade timer will fire; on failure fades end at once. */
void virt_fade_arm(struct virt *v);

#endif
