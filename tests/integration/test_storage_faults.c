/*
 * Storage faults injected for real: an LD_PRELOAD shim makes writes and
 * syncs to the database fail with ENOSPC, EIO or EROFS while a control file
 * exists. The hub keeps serving MQTT from memory, says what is wrong in one
 * clear log line, and once the fault is gone writes resume: every state
 * change and registry change made meanwhile reaches the database, which
 * passes integrity_check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

static void fault(const char *ctl, const char *word)
{
	if (!word) {
		unlink(ctl);
		return;
	}
	FILE *f = fopen(ctl, "w");
	assert_non_null(f);
	fputs(word, f);
	fclose(f);
}

static bool integrity_ok(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = false;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

static void set_and_see(struct client *c, const char *topic, const char *payload,
			const char *state_topic, const char *expect)
{
	client_publish(c, topic, payload, false);
	char *p = client_wait(c, state_topic, expect, 3000);
	if (!p)
		fail_msg("no state with %s on %s", expect, state_topic);
	free(p);
}

static void expect_ok(cJSON *r)
{
	assert_non_null(r);
	const cJSON *status = cJSON_GetObjectItem(r, "status");
	if (!cJSON_IsString(status) || strcmp(status->valuestring, "ok") != 0) {
		char *text = cJSON_PrintUnformatted(r);
		fail_msg("request failed: %s", text ? text : "?");
	}
	cJSON_Delete(r);
}

/* A broker, and a hub whose writes and syncs fail while the file named by
 * ctl (a fresh name, not created yet) exists: the shim is preloaded into
 * hearthd only. */
static void start_with_shim(struct broker *broker, struct hearthd *hub, char *ctl)
{
	char shim[PATH_MAX];
	assert_non_null(realpath(harness_build_dir(), shim));
	strncat(shim, "/tests/plugins/faultio.so", sizeof(shim) - strlen(shim) - 1);
	int fd = mkstemp(ctl);
	assert_true(fd >= 0);
	close(fd);
	unlink(ctl);
	assert_int_equal(broker_start(broker), 0);
	setenv("LD_PRELOAD", shim, 1);
	setenv("HEARTH_FAULT_FILE", ctl, 1);
	/* a sanitized build (make asan) wants its runtime first; the shim,
	 * preloaded, comes before it and is itself built with it */
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
	int rc = hearthd_start(hub, broker->port, "[plugin.virtual]\ninterval_ms = 0\n");
	unsetenv("LD_PRELOAD");
	unsetenv("HEARTH_FAULT_FILE");
	unsetenv("ASAN_OPTIONS");
	assert_int_equal(rc, 0);
}

static void run_fault(const char *word, const char *log_words)
{
	struct broker broker;
	struct hearthd hub;
	char ctl[] = "/tmp/hearth-fault-XXXXXX";
	start_with_shim(&broker, &hub, ctl);
	struct client *c = client_new(broker.port);
	assert_non_null(c);
	client_subscribe(c, "hearth/virtual/light-1");
	client_subscribe(c, "hearth/lounge/lamp");

	fault(ctl, word);
	/* served from memory: commands work, state is published */
	set_and_see(c, "hearth/virtual/light-1/set", "{\"brightness\":11,\"transition\":0}",
		    "hearth/virtual/light-1", "\"brightness\":11");
	cJSON *r = client_request(c, "device/rename",
				  "\"from\":\"virtual/light-1\",\"to\":\"lounge/lamp\"", 3000);
	assert_non_null(r);
	assert_string_equal(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
	cJSON_Delete(r);
	set_and_see(c, "hearth/lounge/lamp/set", "{\"brightness\":22,\"transition\":0}",
		    "hearth/lounge/lamp", "\"brightness\":22");
	/* a rule and a scene made during the fault: active at once, saved later */
	expect_ok(client_request(c, "rule/add",
				 "\"id\":\"fault-rule\",\"triggers\":[{\"type\":\"mqtt\","
				 "\"topic\":\"test/go\"}],\"actions\":[{\"type\":\"set\","
				 "\"device\":\"lounge/lamp\",\"state\":{\"brightness\":44}}]",
				 3000));
	expect_ok(client_request(c, "scene/capture", "\"id\":\"fault-scene\","
				 "\"devices\":[\"lounge/lamp\"]", 3000));
	client_publish(c, "test/go", "1", false);
	char *p = client_wait(c, "hearth/lounge/lamp", "\"brightness\":44", 3000);
	assert_non_null(p);
	free(p);
	client_pump(c, 600); /* several commit intervals fail */
	assert_true(hearthd_log_contains(&hub, "rule 'fault-rule' could not be saved"));
	assert_true(hearthd_log_contains(&hub, log_words));
	r = client_request(c, "health_check", "", 3000);
	assert_non_null(r);
	cJSON *store = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "data"), "store");
	assert_true(cJSON_GetObjectItem(store, "flush_failures")->valueint > 0);
	cJSON_Delete(r);

	fault(ctl, NULL);
	/* writes resume by themselves (the retry runs within 5 s), and new ones too */
	set_and_see(c, "hearth/lounge/lamp/set", "{\"brightness\":33,\"transition\":0}",
		    "hearth/lounge/lamp", "\"brightness\":33");
	client_pump(c, 5500);
	assert_true(hearthd_log_contains(&hub, "every device is saved"));
	assert_true(hearthd_log_contains(&hub, "every rule and scene is saved"));
	client_free(c);
	assert_int_equal(hearthd_signal_wait(&hub, SIGTERM, 3000), 0);
	assert_true(integrity_ok(hub.db));
	assert_int_equal(harness_db_ll(hub.db, "SELECT count(*) FROM documents WHERE "
				       "(kind = 'rule' AND id = 'fault-rule') OR "
				       "(kind = 'scene' AND id = 'fault-scene')"),
			 2);
	assert_int_equal(harness_db_ll(hub.db, "SELECT count(*) FROM devices WHERE id = 'virtual:light-1' "
				       "AND name = 'lounge/lamp'"),
			 1);
	assert_int_equal(harness_db_ll(hub.db, "SELECT count(*) FROM state WHERE device_id = "
				       "'virtual:light-1' AND attribute = 'brightness' AND value = '33'"),
			 1);
	/* the update made during the fault reached history too */
	assert_int_equal(harness_db_ll(hub.db, "SELECT count(*) FROM history WHERE device_id = "
				       "'virtual:light-1' AND attribute = 'brightness' AND value = '22'"),
			 1);
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
}

static void test_disk_full(void **state)
{
	(void)state;
	run_fault("ENOSPC", "No space left on device");
}

static void test_io_error(void **state)
{
	(void)state;
	run_fault("EIO", "failed");
}

static void test_read_only(void **state)
{
	(void)state;
	run_fault("EROFS", "failed");
}

/*
 * A rename the database refused, then a stop before the hub's 5 s retry:
 * the rename is written at the stop when the fault is gone, and the log says
 * so when it is not (both were lost silently before).
 */
static void run_stop_after_refused_rename(bool fault_gone)
{
	struct broker broker;
	struct hearthd hub;
	char ctl[] = "/tmp/hearth-fault-XXXXXX";
	start_with_shim(&broker, &hub, ctl);
	struct client *c = client_new(broker.port);
	assert_non_null(c);
	fault(ctl, "ENOSPC");
	cJSON *r = client_request(c, "device/rename",
				  "\"from\":\"virtual/light-1\",\"to\":\"lounge/lamp\"", 3000);
	assert_non_null(r);
	assert_string_equal(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
	cJSON_Delete(r);
	client_free(c);
	assert_true(hearthd_log_contains(&hub, "could not be saved"));
	if (fault_gone)
		fault(ctl, NULL);
	assert_int_equal(hearthd_signal_wait(&hub, SIGTERM, 3000), 0);
	unlink(ctl);
	assert_true(integrity_ok(hub.db));
	long long saved = harness_db_ll(hub.db, "SELECT count(*) FROM devices WHERE id = 'virtual:light-1' "
					"AND name = 'lounge/lamp'");
	if (fault_gone) {
		assert_int_equal(saved, 1);
		assert_true(hearthd_log_contains(&hub, "every device is saved"));
	} else {
		assert_int_equal(saved, 0);
		assert_true(hearthd_log_contains(&hub, "stopping with device, rule or scene changes not saved"));
	}
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
}

static void test_stop_after_fault_saves_rename(void **state)
{
	(void)state;
	run_stop_after_refused_rename(true);
}

static void test_stop_during_fault_says_rename_lost(void **state)
{
	(void)state;
	run_stop_after_refused_rename(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disk_full),
		cmocka_unit_test(test_io_error),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_stop_after_fault_saves_rename),
		cmocka_unit_test(test_stop_during_fault_says_rename_lost),
	};
	return cmocka_run_group_tests_name("integration: storage faults", tests, NULL, NULL);
}
