/*
 * source = hci: LE scanning on a raw HCI socket, for systems without
 * bluetoothd. Needs CAP_NET_RAW (the socket) and CAP_NET_ADMIN (bringing
 * the adapter up, sending commands).
 *
 * The source sends LE Set Scan Enable (off), LE Set Scan Parameters
 * (active or passive) and LE Set Scan Enable (on, no duplicate filter), one
 * at a time, each waiting for its Command Complete; then it reads LE
 * Advertising Reports. When the adapter goes away the socket fails; the
 * source closes it and tries again every few seconds, so scanning resumes
 * when the adapter returns.
 *
 * The event parser is a pure function (unit-tested and fuzzed); reports are
 * read one after the other, each with its own fields, as controllers send
 * them and as Linux reads them.
 */
#include "ble.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* From the Bluetooth core specification and Linux's HCI socket ABI. */
#ifndef AF_BLUETOOTH
#define AF_BLUETOOTH 31
#endif
#define BTPROTO_HCI 1
#define SOL_HCI 0
#define HCI_FILTER 2
#define HCI_CHANNEL_RAW 0
#define HCIDEVUP _IOW('H', 201, int)

#define HCI_COMMAND_PKT 0x01
#define HCI_EVENT_PKT 0x04
#define EVT_CMD_COMPLETE 0x0e
#define EVT_CMD_STATUS 0x0f
#define EVT_LE_META 0x3e
#define LE_ADV_REPORT 0x02
#define LE_EXT_ADV_REPORT 0x0d
#define OP_LE_SET_SCAN_PARAMS 0x200b
#define OP_LE_SET_SCAN_ENABLE 0x200c
#define RSSI_UNKNOWN 127

#define HCI_CMD_TIMEOUT_MS 2000
#define HCI_RETRY_MS 5000
#define HCI_READS_PER_WAKE 64
#define HCI_PKT_MAX 260

/* ---- the event parser -------------------------------------------------------- */

static void hci_mac(const uint8_t *le, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++)
		mac[i] = le[5 - i];
}

static void hci_report(const uint8_t *addr, const uint8_t *data, size_t len, int8_t rssi,
		       ble_advert_fn cb, void *user)
{
	struct ble_advert adv = {.ad = data, .ad_len = len};
	hci_mac(addr, adv.mac);
	adv.has_rssi = rssi != RSSI_UNKNOWN;
	adv.rssi = rssi;
	cb(user, &adv);
}

/* Legacy reports: type, address type, address, length, data, RSSI. */
static int hci_legacy(const uint8_t *p, size_t n, ble_advert_fn cb, void *user)
{
	if (n < 2)
		return -EINVAL;
	size_t count = p[1], off = 2;
	int done = 0;
	for (size_t i = 0; i < count; i++) {
		if (n - off < 9)
			return -EINVAL;
		size_t len = p[off + 8];
		if (n - off - 9 < len + 1 || len > BLE_AD_MAX)
			return -EINVAL;
		hci_report(p + off + 2, p + off + 9, len, (int8_t)p[off + 9 + len], cb, user);
		off += 10 + len;
		done++;
	}
	return done;
}

/* Extended reports: type (2), address type, address, primary and secondary
 * PHY, SID, TX power, RSSI, interval (2), direct address type and address,
 * length, data. */
static int hci_extended(const uint8_t *p, size_t n, ble_advert_fn cb, void *user)
{
	if (n < 2)
		return -EINVAL;
	size_t count = p[1], off = 2;
	int done = 0;
	for (size_t i = 0; i < count; i++) {
		if (n - off < 24)
			return -EINVAL;
		size_t len = p[off + 23];
		if (n - off - 24 < len)
			return -EINVAL;
		hci_report(p + off + 3, p + off + 24, len, (int8_t)p[off + 13], cb, user);
		off += 24 + len;
		done++;
	}
	return done;
}

int hci_parse_event(const uint8_t *pkt, size_t len, ble_advert_fn cb, void *user)
{
	if (len < 3 || pkt[0] != HCI_EVENT_PKT || (size_t)pkt[2] > len - 3)
		return -EINVAL;
	const uint8_t *p = pkt + 3;
	size_t n = pkt[2];
	if (pkt[1] != EVT_LE_META || n < 1)
		return 0;
	if (p[0] == LE_ADV_REPORT)
		return hci_legacy(p, n, cb, user);
	if (p[0] == LE_EXT_ADV_REPORT)
		return hci_extended(p, n, cb, user);
	return 0;
}

int hci_parse_command_done(const uint8_t *pkt, size_t len, uint16_t opcode, uint8_t *status)
{
	if (len < 3 || pkt[0] != HCI_EVENT_PKT || (size_t)pkt[2] > len - 3)
		return 0;
	const uint8_t *p = pkt + 3;
	size_t n = pkt[2];
	if (pkt[1] == EVT_CMD_COMPLETE && n >= 4 && ble_le16(p + 1) == opcode) {
		*status = p[3];
		return 1;
	}
	if (pkt[1] == EVT_CMD_STATUS && n >= 4 && ble_le16(p + 2) == opcode) {
		*status = p[0];
		return 1;
	}
	return 0;
}

/* ---- the source --------------------------------------------------------------------- */

struct sockaddr_hci {
	sa_family_t hci_family;
	unsigned short hci_dev;
	unsigned short hci_channel;
};

struct hci_filter {
	uint32_t type_mask;
	uint32_t event_mask[2];
	uint16_t opcode;
};

enum hci_step { STEP_DISABLE, STEP_PARAMS, STEP_ENABLE, STEP_SCANNING };

struct hci {
	struct ble_source base;
	struct ble_source_env env;
	int dev;
	int fd;
	hearth_watch *watch;
	hearth_timer *timer; /* command timeout, or retry */
	enum hci_step step;
	bool warned;
};

static void hci_set_timer(struct hci *h, uint64_t ms);

static void hci_close_socket(struct hci *h)
{
	if (h->watch)
		h->env.host->fd_unwatch(h->env.ctx, h->watch);
	h->watch = NULL;
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

static void hci_fail(struct hci *h, const char *what, int err)
{
	enum hearth_log_level level = h->warned ? HEARTH_LOG_DEBUG : HEARTH_LOG_WARNING;
	h->warned = true;
	h->env.host->log(h->env.ctx, level, "hci%d: %s: %s; retrying every %d s", h->dev, what,
			 strerror(err), HCI_RETRY_MS / 1000);
	hci_close_socket(h);
	hci_set_timer(h, HCI_RETRY_MS);
}

static int hci_send(struct hci *h, uint16_t opcode, const uint8_t *params, uint8_t plen)
{
	uint8_t buf[4 + 8] = {HCI_COMMAND_PKT, (uint8_t)opcode, (uint8_t)(opcode >> 8), plen};
	memcpy(buf + 4, params, plen);
	ssize_t n = write(h->fd, buf, 4u + plen);
	return n == 4 + plen ? 0 : -errno;
}

/* Send the command of the current step. */
static void hci_step(struct hci *h)
{
	int rc = 0;
	if (h->step == STEP_DISABLE) {
		rc = hci_send(h, OP_LE_SET_SCAN_ENABLE, (const uint8_t[]){0, 0}, 2);
	} else if (h->step == STEP_PARAMS) {
		/* 10 ms interval and window (16 x 0.625 ms): listen all the time. */
		const uint8_t params[7] = {h->env.active ? 1 : 0, 0x10, 0, 0x10, 0, 0, 0};
		rc = hci_send(h, OP_LE_SET_SCAN_PARAMS, params, 7);
	} else if (h->step == STEP_ENABLE) {
		rc = hci_send(h, OP_LE_SET_SCAN_ENABLE, (const uint8_t[]){1, 0}, 2);
	}
	if (rc) {
		hci_fail(h, "cannot send a command", -rc);
		return;
	}
	hci_set_timer(h, HCI_CMD_TIMEOUT_MS);
}

static uint16_t hci_step_opcode(enum hci_step step)
{
	return step == STEP_PARAMS ? OP_LE_SET_SCAN_PARAMS : OP_LE_SET_SCAN_ENABLE;
}

static void hci_command_done(struct hci *h, uint8_t status)
{
	/* Disabling a scan that was not running fails harmlessly. */
	if (status && h->step != STEP_DISABLE) {
		h->env.host->log(h->env.ctx, HEARTH_LOG_WARNING,
				 "hci%d: the controller refused LE scanning (status 0x%02x)", h->dev,
				 status);
		hci_fail(h, "scan setup failed", EIO);
		return;
	}
	h->step++;
	if (h->step != STEP_SCANNING) {
		hci_step(h);
		return;
	}
	h->env.host->timer_stop(h->env.ctx, h->timer);
	h->timer = NULL;
	h->warned = false;
	h->env.host->log(h->env.ctx, HEARTH_LOG_INFO, "hci%d: %s LE scanning", h->dev,
			 h->env.active ? "active" : "passive");
}

static void hci_on_packet(struct hci *h, const uint8_t *pkt, size_t len)
{
	uint8_t status;
	if (h->step != STEP_SCANNING &&
	    hci_parse_command_done(pkt, len, hci_step_opcode(h->step), &status)) {
		hci_command_done(h, status);
		return;
	}
	if (hci_parse_event(pkt, len, h->env.deliver, h->env.user) < 0)
		h->env.host->log(h->env.ctx, HEARTH_LOG_DEBUG, "hci%d: malformed event skipped",
				 h->dev);
}

static void hci_on_io(void *user, int fd, unsigned events)
{
	struct hci *h = user;
	uint8_t pkt[HCI_PKT_MAX];
	(void)events;
	for (int i = 0; i < HCI_READS_PER_WAKE && h->fd == fd; i++) {
		ssize_t n = read(fd, pkt, sizeof(pkt));
		if (n > 0) {
			hci_on_packet(h, pkt, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* The adapter went down or away. */
		hci_fail(h, "adapter lost", n < 0 ? errno : ENODEV);
		return;
	}
}

static int hci_open_socket(struct hci *h)
{
	int fd = socket(AF_BLUETOOTH, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, BTPROTO_HCI);
	if (fd < 0)
		return -errno;
	struct hci_filter filter = {.type_mask = 1u << HCI_EVENT_PKT};
	filter.event_mask[0] = 1u << EVT_CMD_COMPLETE | 1u << EVT_CMD_STATUS;
	filter.event_mask[1] = 1u << (EVT_LE_META - 32);
	struct sockaddr_hci addr = {.hci_family = AF_BLUETOOTH,
				    .hci_dev = (unsigned short)h->dev,
				    .hci_channel = HCI_CHANNEL_RAW};
	int rc = 0;
	/* Bringing the adapter up needs CAP_NET_ADMIN; without it the adapter
	 * may be up already, and a down one shows when the first command fails. */
	if (ioctl(fd, HCIDEVUP, h->dev) < 0 && errno != EALREADY && errno != EPERM &&
	    errno != EACCES)
		rc = -errno;
	else if (setsockopt(fd, SOL_HCI, HCI_FILTER, &filter, sizeof(filter)) < 0 ||
		 bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	h->fd = fd;
	return 0;
}

static void hci_arm(struct hci *h)
{
	int rc = hci_open_socket(h);
	if (rc == 0)
		rc = h->env.host->fd_watch(h->env.ctx, h->fd, HEARTH_FD_READ, hci_on_io, h,
					   &h->watch);
	if (rc) {
		hci_fail(h, rc == -EPERM || rc == -EACCES
				    ? "no permission for a raw HCI socket (needs CAP_NET_RAW and "
				      "CAP_NET_ADMIN)"
				    : "cannot open the adapter",
			 -rc);
		return;
	}
	h->step = STEP_DISABLE;
	hci_step(h);
}

static void hci_on_timer(void *user)
{
	struct hci *h = user;
	if (h->fd < 0) {
		hci_arm(h);
		return;
	}
	hci_fail(h, "the controller did not answer a command", ETIMEDOUT);
}

static void hci_set_timer(struct hci *h, uint64_t ms)
{
	int rc = h->timer ? h->env.host->timer_again(h->env.ctx, h->timer, ms, 0)
			  : h->env.host->timer_start(h->env.ctx, ms, 0, hci_on_timer, h, &h->timer);
	if (rc)
		h->env.host->log(h->env.ctx, HEARTH_LOG_ERROR, "hci%d: no timer (%s)", h->dev,
				 strerror(-rc));
}

static int hci_open(const struct ble_source_env *env, const char *arg, struct ble_source **out)
{
	(void)arg;
	const char *a = env->adapter;
	char *end = NULL;
	long dev = -1;
	if (a && strncmp(a, "hci", 3) == 0 && a[3] >= '0' && a[3] <= '9')
		dev = strtol(a + 3, &end, 10);
	if (dev < 0 || dev > 255 || !end || *end) {
		env->host->log(env->ctx, HEARTH_LOG_ERROR, "adapter: '%s' is not hciN", a ? a : "");
		return -EINVAL;
	}
	struct hci *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->base.ops = &ble_source_hci;
	h->env = *env;
	h->dev = (int)dev;
	h->fd = -1;
	*out = &h->base;
	return 0;
}

static int hci_start(struct ble_source *src)
{
	hci_arm((struct hci *)src);
	return 0;
}

static void hci_close(struct ble_source *src)
{
	struct hci *h = (struct hci *)src;
	if (!h)
		return;
	if (h->fd >= 0 && h->step == STEP_SCANNING)
		hci_send(h, OP_LE_SET_SCAN_ENABLE, (const uint8_t[]){0, 0}, 2);
	hci_close_socket(h);
	h->env.host->timer_stop(h->env.ctx, h->timer);
	free(h);
}

const struct ble_source_ops ble_source_hci = {
	.name = "hci",
	.takes_arg = false,
	.open = hci_open,
	.start = hci_start,
	.close = hci_close,
};
