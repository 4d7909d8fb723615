/*
 * iocount.so: an LD_PRELOAD shim for the benchmark's disk-wear scenario.
 * It counts the bytes a process hands to write(2) and friends for regular
 * files (its database and write-ahead log; stdout and stderr are not
 * counted) and its fsync/fdatasync calls, into a small file named by
 * $BENCH_IOCOUNT_FILE that hearth-bench load --iocount reads.
 *
 * /proc/<pid>/io write_bytes counts a page once per writeback, so two
 * commits to one page within the kernel's writeback delay look like one:
 * that hides what the process asks of the disk. These counters do not.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "iocount.h"

#define FDS_CACHED 1024

enum fd_kind { FD_UNKNOWN = 0, FD_FILE, FD_OTHER };

static struct iocount *counts;
static unsigned char kinds[FDS_CACHED];

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);

__attribute__((constructor)) static void iocount_init(void)
{
	real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	real_pwrite64 = (ssize_t(*)(int, const void *, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
	real_writev = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	const char *path = getenv("BENCH_IOCOUNT_FILE");
	if (!path)
		return;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (ftruncate(fd, sizeof(*counts)) == 0) {
		void *p = mmap(NULL, sizeof(*counts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			counts = p;
			counts->magic = IOCOUNT_MAGIC;
		}
	}
	if (real_close)
		real_close(fd);
}

static bool is_file(int fd)
{
	if (fd <= STDERR_FILENO)
		return false;
	if (fd < FDS_CACHED && kinds[fd] != FD_UNKNOWN)
		return kinds[fd] == FD_FILE;
	struct stat st;
	bool file = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (fd < FDS_CACHED)
		kinds[fd] = file ? FD_FILE : FD_OTHER;
	return file;
}

static ssize_t counted(int fd, ssize_t n)
{
	if (counts && n > 0 && is_file(fd)) {
		__atomic_fetch_add(&counts->bytes, (uint64_t)n, __ATOMIC_RELAXED);
		__atomic_fetch_add(&counts->writes, 1, __ATOMIC_RELAXED);
	}
	return n;
}

static int synced(int fd, int rc)
{
	if (counts && rc == 0 && is_file(fd))
		__atomic_fetch_add(&counts->syncs, 1, __ATOMIC_RELAXED);
	return rc;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	return counted(fd, real_write(fd, buf, n));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return counted(fd, real_pwrite(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	return counted(fd, real_pwrite64(fd, buf, n, off));
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	return counted(fd, real_writev(fd, iov, n));
}

int fsync(int fd)
{
	return synced(fd, real_fsync(fd));
}

int fdatasync(int fd)
{
	return synced(fd, real_fdatasync(fd));
}

int close(int fd)
{
	if (fd >= 0 && fd < FDS_CACHED)
		kinds[fd] = FD_UNKNOWN;
	return real_close(fd);
}
