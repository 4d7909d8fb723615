/*
 * Yeelight LAN control: SSDP-style discovery text, JSON lines on the TCP
 * control connection, the capabilities a bulb gets from its "support" list,
 * the commands a hearth /set becomes, and the per-bulb command quota.
 *
 * Discovery: "M-SEARCH * HTTP/1.1" with "ST: wifi_bulb" to
 * 239.255.255.250:1982 (or unicast to a bulb); answers ("HTTP/1.1 200 OK")
 * and advertisements ("NOTIFY * HTTP/1.1") carry Location
 * yeelight://ip:port, id, model, fw_ver, support and the bulb's state.
 *
 * Control: one JSON object per line, "\r\n"-terminated:
 *   -> {"id":1,"method":"set_power","params":["on","smooth",500]}
 *   <- {"id":1,"result":["ok"]}   or   {"id":1,"error":{"code":-1,...}}
 *   <- {"method":"props","params":{"power":"on","bright":"10"}}
 *
 * Pure code (cJSON only); no host, no sockets.
 */
#ifndef WIFI_YEELIGHT_CODEC_H
#define WIFI_YEELIGHT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hearth/plugin.h>

#define YL_PORT 55443
#define YL_SSDP_PORT 1982
#define YL_SSDP_GROUP "239.255.255.250"
/* Longest control line or discovery text accepted. */
#define YL_LINE_MAX 4096
#define YL_NAME_MAX 64
#define YL_MODEL_MAX 32
#define YL_ID_TEXT_MAX 19 /* "0x" + 16 hex digits */
#define YL_RESULTS_MAX 16
#define YL_PARAMS_MAX 256
/* Commands per window a bulb takes at most. */
#define YL_QUOTA_MAX 600

/* Which struct yl_props fields hold a value. */
enum {
	YL_HAS_POWER = 1u << 0,
	YL_HAS_BRIGHT = 1u << 1,
	YL_HAS_CT = 1u << 2,
	YL_HAS_RGB = 1u << 3,
	YL_HAS_HUE = 1u << 4,
	YL_HAS_SAT = 1u << 5,
	YL_HAS_COLOR_MODE = 1u << 6,
	YL_HAS_NAME = 1u << 7,
};

/* The methods a bulb lists in "support" that hearth uses. */
enum {
	YL_SUP_GET_PROP = 1u << 0,
	YL_SUP_SET_POWER = 1u << 1,
	YL_SUP_TOGGLE = 1u << 2,
	YL_SUP_SET_BRIGHT = 1u << 3,
	YL_SUP_SET_CT = 1u << 4,
	YL_SUP_SET_RGB = 1u << 5,
	YL_SUP_SET_HSV = 1u << 6,
	YL_SUP_SET_NAME = 1u << 7,
};

struct yl_props {
	unsigned has; /* YL_HAS_* */
	bool power;
	int bright;	/* 1..100 % */
	int ct;		/* kelvin */
	long rgb;	/* 0xRRGGBB */
	int hue;	/* 0..359 */
	int sat;	/* 0..100 */
	int color_mode; /* 1 rgb, 2 colour temperature, 3 hsv */
	char name[YL_NAME_MAX];
};

struct yl_discovery {
	bool notify; /* an advertisement, not an answer to a search */
	char ip[16];
	uint16_t port;
	unsigned max_age; /* seconds; 0 if not given */
	uint64_t id;
	char id_text[YL_ID_TEXT_MAX]; /* "0x" + 16 lower-case hex digits */
	char model[YL_MODEL_MAX];
	unsigned fw_ver;
	unsigned support; /* YL_SUP_* */
	struct yl_props props;
};

enum yl_msg_kind {
	YL_MSG_RESULT = 1,
	YL_MSG_ERROR = 2,
	YL_MSG_PROPS = 3,
};

struct yl_msg {
	enum yl_msg_kind kind;
	uint32_t id; /* RESULT and ERROR */
	int error_code;
	char error_message[128];
	size_t n_results; /* the result list as text, e.g. ["ok"] or get_prop's values */
	char results[YL_RESULTS_MAX][YL_NAME_MAX];
	struct yl_props props; /* PROPS */
};

/* One request of a command. group names what it changes ("power",
 * "bright", "color", "name"): a newer request of the same group replaces
 * a queued one. */
struct yl_req {
	char method[16];
	char params[YL_PARAMS_MAX];
	const char *group;
};

/* The last values hearth set, so readings round-trip (see convert.h); -1:
 * none. */
struct yl_hints {
	int bright;
	int mired;
};

/* Sliding-window command counter: at most limit sends per window_ms. */
struct yl_quota {
	int64_t sent[YL_QUOTA_MAX];
	unsigned head, count, limit;
	int64_t window_ms;
};

/* The search text. Returns its length or -ENOSPC. */
int yl_search_build(char *buf, size_t cap, const char *host_port);

/* An answer or an advertisement. Tolerant of LF line ends, spacing and
 * header case. -EBADMSG: another start line, no id, or no usable Location. */
int yl_discovery_parse(const char *text, size_t len, struct yl_discovery *out);

/* Set one property from its text ("bright", "10"). 0, -ENOENT for a
 * property hearth does not use, -EINVAL for a bad value. */
int yl_prop_set(struct yl_props *p, const char *key, const char *value);

/* One control line (without or with its line end). -EBADMSG otherwise. */
int yl_line_parse(const char *line, size_t len, struct yl_msg *out);

/* Apply a get_prop result: results[i] is the value of names[i] (an empty
 * text means the bulb does not have it). Returns how many were applied. */
size_t yl_get_prop_apply(const struct yl_msg *m, const char *const *names, size_t n,
			 struct yl_props *props);

/* The names hearth reads with get_prop, in order, and their JSON array. */
extern const char *const yl_prop_names[];
extern const size_t yl_prop_count;
int yl_get_prop_params(char *buf, size_t cap);

/* {"id":N,"method":M,"params":P}\r\n. Returns the length or -ENOSPC /
 * -EINVAL. */
int yl_command_format(char *buf, size_t cap, uint32_t id, const char *method,
		      const char *params);

/* The capabilities for a bulb with these support bits and model, into out
 * (cap >= 8). Returns how many. Strings are static. */
size_t yl_caps_build(unsigned support, const char *model, struct hearth_capability *out,
		     size_t cap);
/* The kelvin range of a model (mono and ceiling lights: 2700..6500). */
void yl_kelvin_range(const char *model, int *kmin, int *kmax);

/*
 * The attributes for the props in mask (YL_HAS_*), from the bulb's full
 * state p. The colour is reported whole (hue, saturation, r, g, b as JSON in
 * color_buf). Names and strings are static or point into color_buf.
 */
size_t yl_props_attrs(const struct yl_props *p, unsigned mask, unsigned support,
		      const char *model, const struct yl_hints *hints, struct hearth_attr *out,
		      size_t cap, char *color_buf, size_t color_cap);

/*
 * The requests for a /set: power on first, power off last; transition (s)
 * chooses "smooth" and its duration ("sudden" for 0; 500 ms when absent).
 * current fills the colour parts a command leaves out. hints get the values
 * set. -EINVAL with a reason in err, -ENOSPC if out is too small.
 */
int yl_set_build(const struct hearth_attr *attrs, size_t n, const struct yl_props *current,
		 unsigned support, const char *model, struct yl_req *out, size_t cap,
		 size_t *n_out, struct yl_hints *hints, char *err, size_t err_len);

void yl_quota_init(struct yl_quota *q, unsigned limit, int64_t window_ms);
/* 0 if a command may go now, else the milliseconds until one may. */
int64_t yl_quota_wait(const struct yl_quota *q, int64_t now_ms);
void yl_quota_take(struct yl_quota *q, int64_t now_ms);

#endif
