/*
 * The ble plugin in a real hearthd against a real mosquitto, fed by
 * tests/fixtures/ble/mixed.replay (replay_speed = 0): BTHome plain and
 * encrypted, MiBeacon plain and encrypted, pvvx and atc1441 devices, a
 * device with a wrong bind key, damaged advertisements and bad lines. The
 * keys file is written by the test (mode 0600, keys from the public
 * vectors).
 *
 * Checked: the retained state of each device on hearth/<name>, vendors and
 * models on hearth/bridge/devices, read-only capabilities, one error for
 * the wrong key however many packets, bad lines named by number, repeats
 * not stored twice (history rows), events once per press, a replay
 * dropped, availability after offline_after_s, and a keys file others can
 * read refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

#define FIXTURE "tests/fixtures/ble/mixed.replay"
#define SHELLY "ble:3c:2e:f5:aa:bb:01"

struct env {
	struct broker broker;
	struct hearthd hub;
	struct client *c;
	char dir[64];
	char keys[128];
};

static const char keys_text[] =
	"# bind keys for the replay; one device gets a wrong one\n"
	"54:48:e6:8f:80:a5 231d39c1d7cc1ab1aee224cd096db932\n"
	"A4:C1:38:02:83:F4 e9ea895fac7cca6d30532432a516f3a8   # MiBeacon v5\n"
	"\n"
	"58:2d:34:12:20:89 a3bfe9853dd85a620debe3620caaa351\n"
	"54:ef:44:e0:c4:0f 814aac74c4f17b6c1581e1ab87816b99\n";

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int write_keys(struct env *e, mode_t mode)
{
	FILE *f = fopen(e->keys, "w");
	if (!f)
		return -1;
	fputs(keys_text, f);
	fclose(f);
	return chmod(e->keys, mode);
}

static int start_hub(struct env *e, const char *extra)
{
	char cwd[PATH_MAX], conf[8192];
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	snprintf(conf, sizeof(conf),
		 "[plugin.ble]\nsource = replay:%s/" FIXTURE "\nreplay_speed = 0\nkeys_file = %s\n"
		 "discovery = false\ndevices = a4:c1:38:b4:94:4c=living/thermometer\n%s",
		 cwd, e->keys, extra ? extra : "");
	return hearthd_start_plugins(&e->hub, e->broker.port, "ble", conf);
}

/* Lines holding text, at info level or above (the test hub logs debug). */
static int log_count(const struct hearthd *h, const char *text)
{
	FILE *f = fopen(h->log, "r");
	if (!f)
		return 0;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, text) != NULL && !strstr(line, " debug ");
	fclose(f);
	return n;
}

static bool wait_log(const struct hearthd *h, const char *text, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		if (hearthd_log_contains(h, text))
			return true;
		sleep_ms(20);
	}
	return false;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/hearth-ble-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->keys, sizeof(e->keys), "%s/ble.keys", e->dir);
	assert_int_equal(write_keys(e, 0600), 0);
	assert_int_equal(broker_start(&e->broker), 0);
	e->c = client_new(e->broker.port);
	assert_non_null(e->c);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	client_free(e->c);
	hearthd_cleanup(&e->hub);
	broker_stop(&e->broker);
	unlink(e->keys);
	rmdir(e->dir);
	free(e);
	return 0;
}

static cJSON *retained(struct env *e, const char *topic)
{
	char *p = client_retained(e->broker.port, topic, 1000);
	cJSON *j = p ? cJSON_Parse(p) : NULL;
	if (!j)
		fprintf(stderr, "no retained JSON on %s\n", topic);
	free(p);
	return j;
}

static void expect_number(cJSON *o, const char *key, double want)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || fabs(v->valuedouble - want) > 1e-9)
		fail_msg("%s: expected %g", key, want);
}

static cJSON *device(cJSON *devices, const char *id)
{
	cJSON *d;
	cJSON_ArrayForEach(d, devices)
	{
		cJSON *i = cJSON_GetObjectItemCaseSensitive(d, "id");
		if (cJSON_IsString(i) && strcmp(i->valuestring, id) == 0)
			return d;
	}
	return NULL;
}

static void expect_identity(cJSON *devices, const char *id, const char *vendor,
			    const char *model)
{
	cJSON *d = device(devices, id);
	if (!d)
		fail_msg("device %s missing", id);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "vendor")->valuestring, vendor);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "model")->valuestring, model);
	/* sensors are read-only: published, never settable */
	cJSON *cap;
	cJSON_ArrayForEach(cap, cJSON_GetObjectItemCaseSensitive(d, "capabilities"))
	{
		cJSON *access = cJSON_GetObjectItemCaseSensitive(cap, "access");
		assert_true(cJSON_IsNumber(access));
		assert_int_equal(access->valueint, 1);
	}
}

static int db_count(const struct hearthd *h, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (sqlite3_open_v2(h->db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void test_replay_mix(void **state)
{
	struct env *e = *state;
	assert_int_equal(start_hub(e, NULL), 0);
	assert_true(wait_log(&e->hub, "mixed.replay finished", 5000));

	cJSON *s = retained(e, "hearth/" SHELLY);
	assert_non_null(s);
	expect_number(s, "temperature", 22.6);
	expect_number(s, "humidity", 64);
	expect_number(s, "battery", 100);
	expect_number(s, "rssi", -64);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(s, "action")->valuestring, "press");
	assert_null(cJSON_GetObjectItemCaseSensitive(s, "packet_id"));
	cJSON_Delete(s);

	s = retained(e, "hearth/living/thermometer");
	assert_non_null(s);
	expect_number(s, "temperature", 27.2);
	expect_number(s, "humidity", 49);
	cJSON_Delete(s);

	s = retained(e, "hearth/ble:a4:c1:38:02:83:f4");
	assert_non_null(s);
	expect_number(s, "humidity", 46.7);
	cJSON_Delete(s);

	s = retained(e, "hearth/ble:58:2d:34:12:20:89");
	assert_non_null(s);
	expect_number(s, "temperature", 22.6);
	cJSON_Delete(s);

	s = retained(e, "hearth/ble:54:48:e6:8f:80:a5");
	assert_non_null(s);
	expect_number(s, "temperature", 25.06);
	expect_number(s, "humidity", 50.55);
	cJSON_Delete(s);

	s = retained(e, "hearth/ble:a4:c1:38:ee:c8:5c");
	assert_non_null(s);
	expect_number(s, "temperature", 22.24);
	expect_number(s, "humidity", 53.15);
	expect_number(s, "battery", 80);
	expect_number(s, "voltage", 2.762);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "reed_switch")));
	cJSON_Delete(s);

	s = retained(e, "hearth/ble:a4:c1:38:d5:d4:98");
	assert_non_null(s);
	expect_number(s, "temperature", -4.5);
	expect_number(s, "voltage", 2.939);
	cJSON_Delete(s);

	cJSON *devices = retained(e, "hearth/bridge/devices");
	assert_non_null(devices);
	expect_identity(devices, "ble:a4:c1:38:b4:94:4c", "Xiaomi", "LYWSD03MMC");
	expect_identity(devices, "ble:58:2d:34:12:20:89", "Qingping", "CGDK2");
	expect_identity(devices, SHELLY, "Shelly", "SBHT-003C");
	expect_identity(devices, "ble:54:48:e6:8f:80:a5", "BTHome", "BTHome v2 sensor");
	expect_identity(devices, "ble:a4:c1:38:ee:c8:5c", "ATC_MiThermometer", "pvvx custom format");
	/* the wrong key and the damaged advertisements add nothing */
	assert_null(device(devices, "ble:54:ef:44:e0:c4:0f"));
	assert_null(device(devices, "ble:de:ad:be:ef:00:01"));
	assert_int_equal(cJSON_GetArraySize(devices), 7);
	cJSON_Delete(devices);

	/* one clear error for the wrong key, however many packets */
	assert_int_equal(log_count(&e->hub, "ble:54:ef:44:e0:c4:0f: cannot decrypt"), 1);
	assert_int_equal(log_count(&e->hub, "MIC check failed"), 1);
	/* the replayed counter is refused, bad lines are named */
	assert_int_equal(log_count(&e->hub, "went backwards"), 1);
	assert_true(hearthd_log_contains(&e->hub, "mixed.replay:57: the time is not"));
	assert_true(hearthd_log_contains(&e->hub, "mixed.replay:58: the MAC address"));
	assert_true(hearthd_log_contains(&e->hub, "mixed.replay:59: the RSSI"));
	assert_true(hearthd_log_contains(&e->hub, "mixed.replay:60: the AD data is not hex"));
	assert_true(hearthd_log_contains(&e->hub, "mixed.replay:61: expected"));
	assert_true(hearthd_log_contains(&e->hub, "5 bad lines"));
	assert_true(hearthd_log_contains(&e->hub, "object id 0xfe is unknown"));
	/* keys never reach the log */
	assert_false(hearthd_log_contains(&e->hub, "814aac74"));
	assert_false(hearthd_log_contains(&e->hub, "e9ea895f"));

	/* repeats were not stored again; each press is one event */
	assert_int_equal(hearthd_signal_wait(&e->hub, SIGTERM, 5000), 0);
	assert_int_equal(db_count(&e->hub, "SELECT count(*) FROM history WHERE device_id='" SHELLY
					   "' AND attribute='temperature'"),
			 2);
	assert_int_equal(db_count(&e->hub, "SELECT count(*) FROM history WHERE device_id='" SHELLY
					   "' AND attribute='rssi'"),
			 3);
	assert_int_equal(db_count(&e->hub, "SELECT count(*) FROM events WHERE device_id='" SHELLY
					   "' AND type='action'"),
			 2);
	assert_int_equal(db_count(&e->hub, "SELECT count(*) FROM events WHERE device_id='" SHELLY
					   "' AND data LIKE '%double_press%'"),
			 1);
}

static bool wait_retained(struct env *e, const char *topic, const char *text, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 250) {
		char *p = client_retained(e->broker.port, topic, 200);
		bool ok = p && strstr(p, text);
		free(p);
		if (ok)
			return true;
		sleep_ms(50);
	}
	return false;
}

static void test_offline_after_silence(void **state)
{
	struct env *e = *state;
	assert_int_equal(start_hub(e, "offline_after_s = 1\n"), 0);
	assert_true(wait_log(&e->hub, "mixed.replay finished", 5000));
	assert_true(wait_retained(e, "hearth/ble:a4:c1:38:ee:c8:5c/availability",
				  "\"offline\"", 5000));
	assert_true(hearthd_log_contains(&e->hub, "ble:a4:c1:38:ee:c8:5c: silent for"));
	/* a trigger-based BTHome device stays */
	char *p = client_retained(e->broker.port, "hearth/" SHELLY "/availability", 500);
	assert_non_null(p);
	assert_non_null(strstr(p, "\"online\""));
	free(p);
}

static void test_keys_readable_by_others(void **state)
{
	struct env *e = *state;
	assert_int_equal(write_keys(e, 0644), 0);
	assert_int_equal(start_hub(e, NULL), 0);
	assert_true(hearthd_log_contains(&e->hub, "readable by group or others"));
	assert_true(hearthd_log_contains(&e->hub, "plugin 'ble' refused"));
	assert_false(hearthd_log_contains(&e->hub, "mixed.replay finished"));
	char *p = client_retained(e->broker.port, "hearth/living/thermometer", 300);
	assert_null(p);
}

static void test_bad_config(void **state)
{
	struct env *e = *state;
	assert_int_equal(start_hub(e, "auto_add = sometimes\n"), 0);
	assert_true(hearthd_log_contains(&e->hub, "auto_add = 'sometimes'"));
	assert_true(hearthd_log_contains(&e->hub, "plugin 'ble' refused"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replay_mix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline_after_silence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_readable_by_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
