/*
 * hearth-bench: the benchmark tool (tests/bench, docs/performance.md).
 *
 *   hearth-bench load -p PORT ...   drive sensors, time the actions, one JSON line
 *   hearth-bench echo -p PORT       the trivial echo engine: the ceiling
 *   hearth-bench ready -- CMD ...   time a daemon's start to sd_notify READY=1
 *   hearth-bench port               print a free port on 127.0.0.1
 *   hearth-bench wait-port PORT MS  wait until 127.0.0.1:PORT accepts
 */
#include "bench.h"

#include <string.h>

static int usage(void)
{
	fprintf(stderr, "usage: hearth-bench load|echo|ready|port|wait-port ...\n"
			"       hearth-bench load --help\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	if (strcmp(cmd, "load") == 0)
		return bench_load_main(argc - 1, argv + 1);
	if (strcmp(cmd, "echo") == 0)
		return bench_echo_main(argc - 1, argv + 1);
	if (strcmp(cmd, "ready") == 0)
		return bench_ready_main(argc - 1, argv + 1);
	if (strcmp(cmd, "port") == 0) {
		int port = bench_free_port();
		if (port < 0)
			return 1;
		printf("%d\n", port);
		return 0;
	}
	if (strcmp(cmd, "wait-port") == 0 && argc == 4) {
		long port, ms;
		if (!bench_parse_long(argv[2], 1, 65535, &port) ||
		    !bench_parse_long(argv[3], 1, 600000, &ms))
			return usage();
		return bench_wait_port((int)port, (int)ms) ? 1 : 0;
	}
	return usage();
}
