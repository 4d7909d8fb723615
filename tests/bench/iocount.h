/*
 * The counters iocount.so keeps in the file named by $BENCH_IOCOUNT_FILE
 * (mapped shared; updated atomically) and hearth-bench load --iocount reads.
 */
#ifndef HEARTH_BENCH_IOCOUNT_H
#define HEARTH_BENCH_IOCOUNT_H

#include <stdint.h>

#define IOCOUNT_MAGIC 0x686561727468696fULL /* "hearthio" */

struct iocount {
	uint64_t magic;
	uint64_t bytes;	 /* handed to write(2), pwrite(2), writev(2) for regular files */
	uint64_t writes; /* such calls */
	uint64_t syncs;	 /* fsync(2) and fdatasync(2) on regular files */
};

#endif
