/*
 * The Wi-Fi plugin's configuration texts (plugins/wifi/wifi_config.c): the
 * miIO devices file (and that its errors never quote a token), the
 * yeelight_devices host list, numbers and booleans.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/wifi/miio_codec.c"
#include "../../plugins/wifi/wifi_config.c"

#define TOKEN "00112233445566778899aabbccddeeff"

static void test_devices_file(void **state)
{
	(void)state;
	static const char text[] =
		"[{\"host\": \"192.168.1.20\", \"token\": \"" TOKEN "\", \"model\": "
		"\"chuangmi.plug.m1\", \"name\": \"kitchen/kettle\"},"
		" {\"host\": \"127.0.0.1\", \"port\": 40001, \"token\": \"" TOKEN "\"}]";
	struct miio_conf c[4];
	char err[160];
	size_t n = 0;
	assert_int_equal(wifi_devices_parse(text, strlen(text), c, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].host, "192.168.1.20");
	assert_int_equal(c[0].port, MIIO_PORT);
	assert_int_equal(c[0].token[0], 0x00);
	assert_int_equal(c[0].token[15], 0xff);
	assert_string_equal(c[0].model, "chuangmi.plug.m1");
	assert_string_equal(c[0].name, "kitchen/kettle");
	assert_int_equal(c[1].port, 40001);
	assert_string_equal(c[1].model, "");
	assert_string_equal(c[1].name, "");
	assert_int_equal(wifi_devices_parse("[]", 2, c, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
}

struct bad_file {
	const char *text;
	const char *error_part;
};

static void test_devices_file_errors(void **state)
{
	(void)state;
	static const struct bad_file cases[] = {
		{"{}", "not a JSON array"},
		{"not json", "not a JSON array"},
		{"[1]", "device 1: entry is not an object"},
		{"[{\"token\":\"" TOKEN "\"}]", "device 1: host is missing"},
		{"[{\"host\":\"10.0.0.1\"}]", "device 1: token is missing"},
		{"[{\"host\":\"10.0.0.1\",\"token\":\"abc\"}]", "token is not 32 hexadecimal"},
		{"[{\"host\":\"10.0.0.1\",\"token\":\"" TOKEN "\",\"port\":0}]", "port"},
		{"[{\"host\":\"10.0.0.1\",\"token\":\"" TOKEN "\",\"port\":\"54321\"}]", "port"},
		{"[{\"host\":\"10.0.0.1\",\"token\":\"" TOKEN "\",\"tokn\":1}]", "tokn is not a known"},
		{"[{\"host\":\"bad host\",\"token\":\"" TOKEN "\"}]", "host is not a host"},
		{"[{\"host\":\"10.0.0.1\",\"token\":\"" TOKEN "\",\"name\":\"\"}]", "name"},
		{"[{\"host\":\"10.0.0.1\",\"token\":\"" TOKEN "\"},"
		 "{\"host\":\"10.0.0.1\",\"token\":\"" TOKEN "\"}]",
		 "device 2: 10.0.0.1:54321 is listed twice"},
		{"[{\"host\":\"10.0.0.1\",\"token\":\"" TOKEN "\"},{\"host\":\"10.0.0.2\",\"token\":"
		 "\"" TOKEN "\"},{\"host\":\"10.0.0.3\",\"token\":\"" TOKEN "\"}]",
		 "more than 2 devices"},
	};
	struct miio_conf c[2];
	char err[160];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = 99;
		err[0] = '\0';
		assert_int_equal(wifi_devices_parse(cases[i].text, strlen(cases[i].text), c, 2, &n,
						    err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, cases[i].error_part))
			fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i].error_part);
		assert_null(strstr(err, TOKEN));
		assert_null(strstr(err, "abc"));
		assert_int_equal(n, 99);
	}
}

static void test_hosts(void **state)
{
	(void)state;
	struct host_port h[4];
	char err[160];
	size_t n = 0;
	assert_int_equal(wifi_hosts_parse(" 192.168.1.30, 192.168.1.31:55444 ,bulb.lan", 55443, h,
					  4, &n, err, sizeof(err)),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(h[0].host, "192.168.1.30");
	assert_int_equal(h[0].port, 55443);
	assert_string_equal(h[1].host, "192.168.1.31");
	assert_int_equal(h[1].port, 55444);
	assert_string_equal(h[2].host, "bulb.lan");
	assert_int_equal(wifi_hosts_parse("", 55443, h, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(wifi_hosts_parse("  ", 55443, h, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);

	static const char *const bad[] = {"1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:x", "a b",
					  "1.2.3.4,,", "1.2.3.4, 1.2.3.4", ":80", "1,2,3,4,5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(wifi_hosts_parse(bad[i], 55443, h, 4, &n, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
}

static void test_numbers_and_bools(void **state)
{
	(void)state;
	unsigned long long v = 7;
	bool b = false;
	assert_int_equal(wifi_number_parse("30", 1, 86400, &v), 0);
	assert_int_equal(v, 30);
	assert_int_equal(wifi_number_parse("0", 1, 86400, &v), -EINVAL);
	assert_int_equal(wifi_number_parse("-1", 0, 86400, &v), -EINVAL);
	assert_int_equal(wifi_number_parse("1e3", 0, 86400, &v), -EINVAL);
	assert_int_equal(wifi_number_parse("", 0, 86400, &v), -EINVAL);
	assert_int_equal(wifi_number_parse(NULL, 0, 86400, &v), -EINVAL);
	assert_int_equal(wifi_number_parse("99999999999999999999999", 0, 86400, &v), -EINVAL);
	assert_int_equal(v, 30);
	assert_int_equal(wifi_bool_parse("TRUE", &b), 0);
	assert_true(b);
	assert_int_equal(wifi_bool_parse("off", &b), 0);
	assert_false(b);
	assert_int_equal(wifi_bool_parse("maybe", &b), -EINVAL);
	assert_true(wifi_host_valid("my-bulb.lan"));
	assert_false(wifi_host_valid("-x"));
	assert_false(wifi_host_valid("a/b"));
	assert_false(wifi_host_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_devices_file),
		cmocka_unit_test(test_devices_file_errors),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_numbers_and_bools),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
