/*
 * libFuzzer target for hearth.conf: the bytes become a file the config
 * loader reads (through a memfd, so nothing touches the disk).
 * fuzz-sources: core
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("hearth.conf", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		char path[64], err[512];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		struct hearth_config *c = NULL;
		if (config_load(path, &c, err, sizeof(err)) == 0)
			config_free(c);
	}
	close(fd);
	return 0;
}
