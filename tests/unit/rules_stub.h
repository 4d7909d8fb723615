/*
 * A rules_host that does nothing, for tests and fuzzers that only need the
 * engine to compile and hold rules: a fixed clock (rules_stub_now_ms, which
 * a caller may move), every action accepted, a location in Amsterdam.
 * Include once per program.
 */
#ifndef HEARTH_TEST_RULES_STUB_H
#define HEARTH_TEST_RULES_STUB_H

#include "rules.h"

static int64_t rules_stub_now_ms = 1795400000000;

static int64_t stub_now(void *u)
{
	(void)u;
	return rules_stub_now_ms;
}
static int stub_set(void *u, const char *d, const cJSON *s, char *e, size_t l)
{
	(void)u, (void)d, (void)s, (void)e, (void)l;
	return 0;
}
static int stub_scene(void *u, const char *s, char *e, size_t l)
{
	(void)u, (void)s, (void)e, (void)l;
	return 0;
}
static int stub_publish(void *u, const char *t, const char *p, bool r)
{
	(void)u, (void)t, (void)p, (void)r;
	return 0;
}
static void stub_fired(void *u, const cJSON *r)
{
	(void)u, (void)r;
}
static void stub_trace(void *u, const char *id, const cJSON *t)
{
	(void)u, (void)id, (void)t;
}
static void stub_persist(void *u, const char *k, const char *id, const cJSON *r)
{
	(void)u, (void)k, (void)id, (void)r;
}
static void stub_changed(void *u)
{
	(void)u;
}
static void stub_watch(void *u, const char *f, bool a)
{
	(void)u, (void)f, (void)a;
}
static bool stub_location(void *u, double *lat, double *lon)
{
	(void)u;
	*lat = 52.37;
	*lon = 4.9;
	return true;
}

static const struct rules_host rules_stub_host = {
	.now_ms = stub_now,
	.set = stub_set,
	.scene = stub_scene,
	.publish = stub_publish,
	.fired = stub_fired,
	.trace = stub_trace,
	.persist = stub_persist,
	.changed = stub_changed,
	.mqtt_watch = stub_watch,
	.location = stub_location,
};

#endif
