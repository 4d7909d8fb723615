/*
 * Device kinds of the virtual plugin: what each exposes and how it behaves.
 * Capability names follow zigbee2mqtt's exposes. Every value a virtual
 * device publishes can also be set, so tests and demos can drive sensors.
 */
#include "virtual.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#define RW (HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET | HEARTH_ACCESS_GET)
#define RANGE (HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX)
#define VSTR(s) {.type = HEARTH_VALUE_STRING, .u.string = (s)}
#define VBOOL(b) {.type = HEARTH_VALUE_BOOL, .u.boolean = (b)}
#define BIT(i) (1u << (i))

#define BATTERY_CAP                                                                              \
	{.name = "battery", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "%",               \
	 .description = "Remaining battery in %", .flags = RANGE, .min = 0, .max = 100}

/* ---- values ------------------------------------------------------------ */

static double num(const struct vdev *d, size_t cap)
{
	return d->val[cap].type == HEARTH_VALUE_NUMBER ? d->val[cap].u.number : 0;
}

static void set_num(struct vdev *d, size_t cap, double x)
{
	d->val[cap] = HEARTH_NUMBER(x);
}

/* The cap's own value_on/value_off, so the stored pointer is static. */
static void set_binary(struct vdev *d, size_t cap, bool on)
{
	const struct hearth_capability *c = &d->kind->caps[cap];
	d->val[cap] = on ? c->value_on : c->value_off;
}

static bool same_value(const struct hearth_value *a, const struct hearth_value *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == HEARTH_VALUE_BOOL)
		return a->u.boolean == b->u.boolean;
	if (a->type == HEARTH_VALUE_STRING)
		return a->u.string && b->u.string && strcasecmp(a->u.string, b->u.string) == 0;
	return false;
}

static bool is_on(const struct vdev *d, size_t cap)
{
	return same_value(&d->val[cap], &d->kind->caps[cap].value_on);
}

/* Multiplying, not dividing, by the scale keeps 21.5 from becoming
 * 21.500000000000004 in the state JSON. */
static double round_to(double x, double scale)
{
	return round(x * scale) / scale;
}

static double clamp(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

/* A bounded random walk that leans back towards home. */
static double walk(struct virt *v, double x, double home, double step, double lo, double hi)
{
	x += 0.05 * (home - x) + step * (2 * virt_random(v) - 1);
	return clamp(x, lo, hi);
}

static double uniform(struct virt *v, double lo, double hi)
{
	return lo + (hi - lo) * virt_random(v);
}

/* A battery loses a percent now and then. */
static void drain(struct virt *v, struct vdev *d, size_t cap)
{
	if (virt_random(v) < 0.0002 && num(d, cap) > 1)
		set_num(d, cap, num(d, cap) - 1);
}

static void battery_setup(struct virt *v, struct vdev *d, size_t cap)
{
	set_num(d, cap, round(uniform(v, 80, 100)));
}

/* ---- light --------------------------------------------------------------- */

enum { LIGHT_STATE, LIGHT_BRIGHTNESS, LIGHT_COLOR_TEMP, LIGHT_TRANSITION };

#define LIGHT_DEFAULT_FADE_MS 500

static const struct hearth_capability light_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW,
	 .description = "On/off state of the light", .value_on = VSTR("ON"),
	 .value_off = VSTR("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = RW,
	 .description = "Brightness of the light", .flags = RANGE, .min = 0, .max = 254},
	{.name = "color_temp", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "mired",
	 .description = "Colour temperature of the light", .flags = RANGE, .min = 150, .max = 500},
	{.name = "transition", .type = HEARTH_CAP_NUMERIC, .access = HEARTH_ACCESS_SET, .unit = "s",
	 .description = "Seconds a change of state, brightness or colour temperature takes",
	 .flags = RANGE, .min = 0, .max = 3600},
};

static void light_setup(struct virt *v, struct vdev *d)
{
	(void)v;
	set_binary(d, LIGHT_STATE, false);
	set_num(d, LIGHT_BRIGHTNESS, 254);
	set_num(d, LIGHT_COLOR_TEMP, 370);
}

/* Where the light is heading: a running fade's end, else where it is. */
struct light_target {
	bool on;
	double bri;
	double ct;
};

static struct light_target light_target_now(const struct vdev *d)
{
	if (d->fade.active)
		return (struct light_target){d->fade.final_on, d->fade.final_bri, d->fade.to_ct};
	return (struct light_target){is_on(d, LIGHT_STATE), num(d, LIGHT_BRIGHTNESS),
				     num(d, LIGHT_COLOR_TEMP)};
}

static void light_set_now(struct vdev *d, const struct light_target *t)
{
	d->fade.active = false;
	set_binary(d, LIGHT_STATE, t->on);
	set_num(d, LIGHT_BRIGHTNESS, t->bri);
	set_num(d, LIGHT_COLOR_TEMP, t->ct);
}

/* A light fades in from its lowest level and out to it; off keeps the
 * brightness it had, so the next ON restores it. */
static void light_fade_begin(struct virt *v, struct vdev *d, const struct light_target *t,
			     int64_t duration_ms)
{
	bool was_on = is_on(d, LIGHT_STATE);
	struct fade *f = &d->fade;
	f->from_bri = was_on ? num(d, LIGHT_BRIGHTNESS) : 1;
	f->to_bri = t->on ? t->bri : 1;
	f->final_bri = t->bri;
	f->from_ct = num(d, LIGHT_COLOR_TEMP);
	f->to_ct = t->ct;
	f->final_on = t->on;
	f->start_ms = virt_now(v);
	f->duration_ms = duration_ms;
	f->active = true;
	set_binary(d, LIGHT_STATE, true);
	set_num(d, LIGHT_BRIGHTNESS, f->from_bri);
	virt_fade_arm(v);
}

bool kind_fade_step(struct virt *v, struct vdev *d, int64_t now_ms)
{
	struct fade *f = &d->fade;
	if (!f->active)
		return false;
	double p = f->duration_ms > 0 ? (double)(now_ms - f->start_ms) / (double)f->duration_ms : 1;
	if (p >= 1) {
		struct light_target t = {f->final_on, f->final_bri, f->to_ct};
		light_set_now(d, &t);
	} else {
		p = clamp(p, 0, 1);
		set_num(d, LIGHT_BRIGHTNESS, round(f->from_bri + (f->to_bri - f->from_bri) * p));
		set_num(d, LIGHT_COLOR_TEMP, round(f->from_ct + (f->to_ct - f->from_ct) * p));
	}
	virt_report(v, d, kind_full_mask(d->kind));
	return f->active;
}

/* zigbee2mqtt habits: brightness alone switches the light on (0: off, the
 * brightness kept); a change while on fades briefly unless transition says
 * otherwise. */
static void light_command(struct virt *v, struct vdev *d, const size_t *caps,
			  const struct hearth_value *values, size_t n)
{
	struct light_target t = light_target_now(d);
	double transition_s = -1;
	bool state_given = false, bri_given = false, bri_zero = false;
	for (size_t i = 0; i < n; i++) {
		const struct hearth_value *x = &values[i];
		switch (caps[i]) {
		case LIGHT_STATE:
			state_given = true;
			t.on = same_value(x, &light_caps[LIGHT_STATE].value_on);
			break;
		case LIGHT_BRIGHTNESS:
			bri_given = true;
			bri_zero = x->u.number < 1;
			if (!bri_zero)
				t.bri = round(x->u.number);
			break;
		case LIGHT_COLOR_TEMP:
			t.ct = round(x->u.number);
			break;
		case LIGHT_TRANSITION:
			transition_s = x->u.number;
			break;
		}
	}
	if (bri_given && (!state_given || bri_zero))
		t.on = !bri_zero;
	bool vis_on = is_on(d, LIGHT_STATE);
	bool moves = t.bri != num(d, LIGHT_BRIGHTNESS) || t.ct != num(d, LIGHT_COLOR_TEMP);
	int64_t duration_ms = transition_s >= 0 ? (int64_t)(transition_s * 1000)
			      : vis_on && t.on && moves ? LIGHT_DEFAULT_FADE_MS
							: 0;
	if (duration_ms > 0 && (vis_on || t.on))
		light_fade_begin(v, d, &t, duration_ms);
	else
		light_set_now(d, &t);
}

static const struct kind light_kind = {
	.name = "light",
	.model = "Virtual light",
	.description = "Dimmable white light with colour temperature and transitions",
	.caps = light_caps,
	.n_caps = sizeof(light_caps) / sizeof(light_caps[0]),
	.setup = light_setup,
	.command = light_command,
};

/* ---- plug ---------------------------------------------------------------- */

enum { PLUG_STATE, PLUG_POWER, PLUG_ENERGY, PLUG_VOLTAGE };

static const struct hearth_capability plug_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = RW,
	 .description = "On/off state of the plug", .value_on = VSTR("ON"), .value_off = VSTR("OFF")},
	{.name = "power", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "W",
	 .description = "Instantaneous power draw", .flags = RANGE, .min = 0, .max = 3680},
	{.name = "energy", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "kWh",
	 .description = "Energy used since the plug was new", .flags = HEARTH_CAP_HAS_MIN, .min = 0},
	{.name = "voltage", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "V",
	 .description = "Mains voltage", .flags = RANGE, .min = 0, .max = 500},
};

static void plug_setup(struct virt *v, struct vdev *d)
{
	d->home[PLUG_POWER] = round_to(uniform(v, 40, 60), 10);
	d->home[PLUG_VOLTAGE] = 230;
	set_binary(d, PLUG_STATE, true);
	set_num(d, PLUG_POWER, d->home[PLUG_POWER]);
	set_num(d, PLUG_ENERGY, 0);
	set_num(d, PLUG_VOLTAGE, 230);
}

/* Energy counts the power of the interval that just ended. */
static unsigned plug_tick(struct virt *v, struct vdev *d)
{
	int64_t now = virt_now(v);
	double dt_ms = clamp((double)(now - d->last_tick_ms), 0, 3600000);
	d->last_tick_ms = now;
	d->energy_kwh += num(d, PLUG_POWER) * dt_ms / 3.6e9;
	set_num(d, PLUG_ENERGY, round_to(d->energy_kwh, 1000));
	double home = d->home[PLUG_POWER];
	double power = is_on(d, PLUG_STATE)
			       ? walk(v, num(d, PLUG_POWER), home, 1.5, home * 0.8, home * 1.2)
			       : 0;
	set_num(d, PLUG_POWER, round_to(clamp(power, 0, 3680), 10));
	double volt = d->home[PLUG_VOLTAGE];
	set_num(d, PLUG_VOLTAGE,
		round_to(walk(v, num(d, PLUG_VOLTAGE), volt, 0.5, volt - 10, volt + 10), 10));
	return 0;
}

static void plug_adopt(struct virt *v, struct vdev *d, size_t cap)
{
	(void)v;
	switch (cap) {
	case PLUG_STATE:
		set_num(d, PLUG_POWER, is_on(d, PLUG_STATE) ? d->home[PLUG_POWER] : 0);
		break;
	case PLUG_POWER:
		if (num(d, PLUG_POWER) > 0)
			d->home[PLUG_POWER] = num(d, PLUG_POWER);
		break;
	case PLUG_ENERGY:
		d->energy_kwh = num(d, PLUG_ENERGY);
		break;
	case PLUG_VOLTAGE:
		d->home[PLUG_VOLTAGE] = num(d, PLUG_VOLTAGE);
		break;
	}
}

static const struct kind plug_kind = {
	.name = "plug",
	.model = "Virtual plug",
	.description = "Smart plug with power and energy metering",
	.caps = plug_caps,
	.n_caps = sizeof(plug_caps) / sizeof(plug_caps[0]),
	.setup = plug_setup,
	.tick = plug_tick,
	.adopt = plug_adopt,
};

/* ---- motion -------------------------------------------------------------- */

enum { MOTION_OCCUPANCY, MOTION_ILLUMINANCE, MOTION_BATTERY };

static const struct hearth_capability motion_caps[] = {
	{.name = "occupancy", .type = HEARTH_CAP_BINARY, .access = RW,
	 .description = "Whether motion was seen", .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
	{.name = "illuminance", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "lx",
	 .description = "Measured illuminance", .flags = RANGE, .min = 0, .max = 100000},
	BATTERY_CAP,
};

static void motion_setup(struct virt *v, struct vdev *d)
{
	set_binary(d, MOTION_OCCUPANCY, false);
	d->home[MOTION_ILLUMINANCE] = round(uniform(v, 50, 300));
	set_num(d, MOTION_ILLUMINANCE, d->home[MOTION_ILLUMINANCE]);
	battery_setup(v, d, MOTION_BATTERY);
}

/* Occupancy clears a few ticks after motion, as a real sensor's timeout. */
static void hold_excursion(struct virt *v, struct vdev *d)
{
	d->hold_ticks = 2 + (unsigned)(virt_random(v) * 4);
}

static unsigned motion_tick(struct virt *v, struct vdev *d)
{
	if (is_on(d, MOTION_OCCUPANCY)) {
		if (d->hold_ticks > 0)
			d->hold_ticks--;
		if (d->hold_ticks == 0)
			set_binary(d, MOTION_OCCUPANCY, false);
	} else if (virt_random(v) < 0.10) {
		set_binary(d, MOTION_OCCUPANCY, true);
		hold_excursion(v, d);
	}
	double home = d->home[MOTION_ILLUMINANCE];
	set_num(d, MOTION_ILLUMINANCE,
		round(walk(v, num(d, MOTION_ILLUMINANCE), home, 1 + home * 0.05, 0, 100000)));
	drain(v, d, MOTION_BATTERY);
	return 0;
}

static void motion_adopt(struct virt *v, struct vdev *d, size_t cap)
{
	if (cap == MOTION_OCCUPANCY)
		d->hold_ticks = 0;
	if (cap == MOTION_OCCUPANCY && is_on(d, MOTION_OCCUPANCY))
		hold_excursion(v, d);
	if (cap == MOTION_ILLUMINANCE)
		d->home[cap] = num(d, cap);
}

static const struct kind motion_kind = {
	.name = "motion",
	.model = "Virtual motion sensor",
	.description = "Motion sensor with illuminance; motion comes now and then",
	.caps = motion_caps,
	.n_caps = sizeof(motion_caps) / sizeof(motion_caps[0]),
	.setup = motion_setup,
	.tick = motion_tick,
	.adopt = motion_adopt,
};

/* ---- climate ------------------------------------------------------------- */

enum { CLIMATE_TEMPERATURE, CLIMATE_HUMIDITY, CLIMATE_PRESSURE, CLIMATE_BATTERY };

static const struct hearth_capability climate_caps[] = {
	{.name = "temperature", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "°C",
	 .description = "Measured temperature", .flags = RANGE, .min = -40, .max = 80},
	{.name = "humidity", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "%",
	 .description = "Measured relative humidity", .flags = RANGE, .min = 0, .max = 100},
	{.name = "pressure", .type = HEARTH_CAP_NUMERIC, .access = RW, .unit = "hPa",
	 .description = "Measured air pressure", .flags = RANGE, .min = 300, .max = 1100},
	BATTERY_CAP,
};

/* Per climate value: random step per tick; reported to one decimal. */
static const struct {
	size_t cap;
	double step;
} climate_walks[] = {
	{CLIMATE_TEMPERATURE, 0.15},
	{CLIMATE_HUMIDITY, 0.5},
	{CLIMATE_PRESSURE, 0.3},
};

static void climate_setup(struct virt *v, struct vdev *d)
{
	d->home[CLIMATE_TEMPERATURE] = round_to(uniform(v, 19.5, 23.5), 10);
	d->home[CLIMATE_HUMIDITY] = round_to(uniform(v, 40, 55), 10);
	d->home[CLIMATE_PRESSURE] = round_to(uniform(v, 1005, 1020), 10);
	for (size_t i = 0; i < sizeof(climate_walks) / sizeof(climate_walks[0]); i++)
		set_num(d, climate_walks[i].cap, d->home[climate_walks[i].cap]);
	battery_setup(v, d, CLIMATE_BATTERY);
}

static unsigned climate_tick(struct virt *v, struct vdev *d)
{
	for (size_t i = 0; i < sizeof(climate_walks) / sizeof(climate_walks[0]); i++) {
		size_t cap = climate_walks[i].cap;
		const struct hearth_capability *c = &climate_caps[cap];
		double x = walk(v, num(d, cap), d->home[cap], climate_walks[i].step, c->min, c->max);
		set_num(d, cap, clamp(round_to(x, 10), c->min, c->max));
	}
	drain(v, d, CLIMATE_BATTERY);
	return 0;
}

/* A value someone set becomes the one the drift stays near. */
static void climate_adopt(struct virt *v, struct vdev *d, size_t cap)
{
	(void)v;
	if (cap != CLIMATE_BATTERY)
		d->home[cap] = num(d, cap);
}

static const struct kind climate_kind = {
	.name = "climate",
	.model = "Virtual climate sensor",
	.description = "Temperature, humidity and pressure sensor with a slow drift",
	.caps = climate_caps,
	.n_caps = sizeof(climate_caps) / sizeof(climate_caps[0]),
	.setup = climate_setup,
	.tick = climate_tick,
	.adopt = climate_adopt,
};

/* ---- contact ------------------------------------------------------------- */

enum { CONTACT_CONTACT, CONTACT_BATTERY };

static const struct hearth_capability contact_caps[] = {
	{.name = "contact", .type = HEARTH_CAP_BINARY, .access = RW,
	 .description = "true when closed, false when open", .value_on = VBOOL(true),
	 .value_off = VBOOL(false)},
	BATTERY_CAP,
};

static void contact_setup(struct virt *v, struct vdev *d)
{
	set_binary(d, CONTACT_CONTACT, true);
	battery_setup(v, d, CONTACT_BATTERY);
}

/* Opens now and then and closes again a few ticks later. */
static unsigned contact_tick(struct virt *v, struct vdev *d)
{
	if (!is_on(d, CONTACT_CONTACT)) {
		if (d->hold_ticks > 0)
			d->hold_ticks--;
		if (d->hold_ticks == 0)
			set_binary(d, CONTACT_CONTACT, true);
	} else if (virt_random(v) < 0.05) {
		set_binary(d, CONTACT_CONTACT, false);
		hold_excursion(v, d);
	}
	drain(v, d, CONTACT_BATTERY);
	return 0;
}

static void contact_adopt(struct virt *v, struct vdev *d, size_t cap)
{
	if (cap != CONTACT_CONTACT)
		return;
	d->hold_ticks = 0;
	if (!is_on(d, CONTACT_CONTACT))
		hold_excursion(v, d);
}

static const struct kind contact_kind = {
	.name = "contact",
	.model = "Virtual contact sensor",
	.description = "Door/window contact sensor; opens now and then",
	.caps = contact_caps,
	.n_caps = sizeof(contact_caps) / sizeof(contact_caps[0]),
	.setup = contact_setup,
	.tick = contact_tick,
	.adopt = contact_adopt,
};

/* ---- button -------------------------------------------------------------- */

enum { BUTTON_ACTION, BUTTON_BATTERY };
enum { ACTION_SINGLE, ACTION_DOUBLE, ACTION_HOLD, ACTION_RELEASE };

static const char *const button_actions[] = {"single", "double", "hold", "release"};

/* action is published but not gettable: it is an event, not a state. */
static const struct hearth_capability button_caps[] = {
	{.name = "action", .type = HEARTH_CAP_ENUM,
	 .access = HEARTH_ACCESS_PUBLISHED | HEARTH_ACCESS_SET,
	 .description = "Last press; setting it makes the button emit it", .values = button_actions,
	 .n_values = sizeof(button_actions) / sizeof(button_actions[0])},
	BATTERY_CAP,
};

static void button_setup(struct virt *v, struct vdev *d)
{
	d->val[BUTTON_ACTION].type = HEARTH_VALUE_NULL;
	battery_setup(v, d, BUTTON_BATTERY);
}

/* Rare random presses; a hold is released on the next tick. */
static unsigned button_tick(struct virt *v, struct vdev *d)
{
	int action = -1;
	if (d->hold_ticks > 0) {
		d->hold_ticks = 0;
		action = ACTION_RELEASE;
	} else if (virt_random(v) < 0.05) {
		double r = virt_random(v);
		action = r < 0.5 ? ACTION_SINGLE : r < 0.8 ? ACTION_DOUBLE : ACTION_HOLD;
		d->hold_ticks = action == ACTION_HOLD;
	}
	drain(v, d, BUTTON_BATTERY);
	if (action < 0)
		return 0;
	d->val[BUTTON_ACTION] = HEARTH_STRING(button_actions[action]);
	return BIT(BUTTON_ACTION);
}

static const struct kind button_kind = {
	.name = "button",
	.model = "Virtual button",
	.description = "Wireless button: single, double, hold and release",
	.caps = button_caps,
	.n_caps = sizeof(button_caps) / sizeof(button_caps[0]),
	.setup = button_setup,
	.tick = button_tick,
};

/* ---- the table ----------------------------------------------------------- */

const struct kind *const kind_table[] = {
	&light_kind, &plug_kind, &motion_kind, &climate_kind, &contact_kind, &button_kind,
};
const size_t kind_count = sizeof(kind_table) / sizeof(kind_table[0]);

const struct kind *kind_find(const char *name, size_t len)
{
	for (size_t i = 0; i < kind_count; i++)
		if (strlen(kind_table[i]->name) == len && strncmp(kind_table[i]->name, name, len) == 0)
			return kind_table[i];
	return NULL;
}

int kind_cap_index(const struct kind *kind, const char *name)
{
	for (size_t i = 0; i < kind->n_caps; i++)
		if (strcmp(kind->caps[i].name, name) == 0)
			return (int)i;
	return -1;
}

unsigned kind_full_mask(const struct kind *kind)
{
	unsigned mask = 0;
	for (size_t i = 0; i < kind->n_caps; i++)
		if (kind->caps[i].access & HEARTH_ACCESS_GET)
			mask |= BIT(i);
	return mask;
}

int kind_value_parse(const struct hearth_capability *cap, const struct hearth_value *in,
		     struct hearth_value *out)
{
	switch (cap->type) {
	case HEARTH_CAP_BINARY:
		if (!same_value(in, &cap->value_on) && !same_value(in, &cap->value_off))
			return -EINVAL;
		*out = same_value(in, &cap->value_on) ? cap->value_on : cap->value_off;
		return 0;
	case HEARTH_CAP_NUMERIC:
		if (in->type != HEARTH_VALUE_NUMBER || !isfinite(in->u.number))
			return -EINVAL;
		double x = in->u.number;
		if (cap->flags & HEARTH_CAP_HAS_MIN)
			x = x < cap->min ? cap->min : x;
		if (cap->flags & HEARTH_CAP_HAS_MAX)
			x = x > cap->max ? cap->max : x;
		*out = HEARTH_NUMBER(x);
		return 0;
	case HEARTH_CAP_ENUM:
		for (size_t i = 0; in->type == HEARTH_VALUE_STRING && in->u.string && i < cap->n_values;
		     i++) {
			if (strcmp(cap->values[i], in->u.string) == 0) {
				*out = HEARTH_STRING(cap->values[i]);
				return 0;
			}
		}
		return -EINVAL;
	default:
		return -EINVAL;
	}
}
