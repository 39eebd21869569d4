// Makes the host write back (or drop) data that is not the box's own:
//
//   flush OP PATH
//
// opens PATH (a host file the box sees read-only) and runs OP on it: sync,
// syncfs, fsync, fdatasync, sync_file_range, msync (MS_SYNC on a shared
// mapping) or fadvise (POSIX_FADV_DONTNEED). Prints "OP errno".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: flush OP PATH\n");
		return 2;
	}
	const char *op = argv[1];
	int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror("open");
		return 1;
	}
	long r;
	errno = 0;
	if (strcmp(op, "sync") == 0) {
		r = syscall(SYS_sync);
	} else if (strcmp(op, "syncfs") == 0) {
		r = syncfs(fd);
	} else if (strcmp(op, "fsync") == 0) {
		r = fsync(fd);
	} else if (strcmp(op, "fdatasync") == 0) {
		r = fdatasync(fd);
	} else if (strcmp(op, "sync_file_range") == 0) {
		r = sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
	} else if (strcmp(op, "msync") == 0) {
		void *m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		r = m == MAP_FAILED ? -1 : msync(m, st.st_size, MS_SYNC);
	} else if (strcmp(op, "fadvise") == 0) {
		// posix_fadvise returns the error instead of setting errno.
		errno = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		r = errno ? -1 : 0;
	} else {
		fprintf(stderr, "unknown op %s\n", op);
		return 2;
	}
	printf("%s %d\n", op, r < 0 ? errno : 0);
	return 0;
}
