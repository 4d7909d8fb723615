/*
 * The timestamps a publisher may stamp on a /set (MQTT 5 user property
 * "timestamp"), read for [mqtt] command_max_age_s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>

#include "mqtt.h"

static void expect_ms(const char *text, int64_t want)
{
	int64_t got = -1;
	if (mqtt_timestamp_parse(text, &got) != 0)
		fail_msg("'%s' refused", text);
	if (got != want)
		fail_msg("'%s': %lld, not %lld", text, (long long)got, (long long)want);
}

static void test_unix_times(void **state)
{
	(void)state;
	expect_ms("1795446792", 1795446792000LL);
	expect_ms("1795446792.25", 1795446792250LL);
	expect_ms("1795446792250", 1795446792250LL); /* 13 digits: milliseconds */
	expect_ms("1", 1000);
}

static void test_rfc3339(void **state)
{
	(void)state;
	expect_ms("1970-01-01T00:00:00Z", 0);
	expect_ms("2026-11-23T15:13:12Z", 1795446792000LL);
	expect_ms("2026-11-23t15:13:12z", 1795446792000LL);
	expect_ms("2026-11-23 15:13:12Z", 1795446792000LL);
	expect_ms("2026-11-23T16:13:12.5+01:00", 1795446792500LL);
	expect_ms("2026-11-23T10:13:12.125-05:00", 1795446792125LL);
	expect_ms("2024-02-29T00:00:00Z", 1709164800000LL); /* a leap day */
	expect_ms("2000-03-01T00:00:00Z", 951868800000LL);
}

static void test_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "now", "-5", "0", "12abc", "1e400", "nan", "inf", "0x10",
		"2026-11-23", "2026-11-23T15:13:12", "2026-11-23T15:13Z", "2026-13-01T00:00:00Z",
		"2026-11-23T24:00:00Z", "2026-11-23T15:13:12+1:00", "2026-11-23T15:13:12Z junk",
		"2026-11-23T15:13:12.Z", "1969-12-31T23:59:59Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 42;
		if (mqtt_timestamp_parse(bad[i], &ms) != -EINVAL)
			fail_msg("'%s' accepted as %lld", bad[i], (long long)ms);
		assert_int_equal(ms, 42);
	}
	int64_t ms = 0;
	assert_int_equal(mqtt_timestamp_parse(NULL, &ms), -EINVAL);
}

static void test_outside_a_message(void **state)
{
	(void)state;
	assert_int_equal(mqtt_message_sent_ms(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unix_times),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_outside_a_message),
	};
	return cmocka_run_group_tests_name("mqtt timestamps", tests, NULL, NULL);
}
