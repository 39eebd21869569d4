// Asks which pages of a file shared with the host are in the page cache,
// that is, whether someone read them lately:
//
//   residency PATH PAGES
//
// prints, for the first PAGES pages of PATH: how many mincore reports
// resident, the errno of cachestat and the pages it counts as cached, and
// the errno of preadv2(RWF_NOWAIT) and how many pages it refused with
// EAGAIN (not cached). The probes that cannot load pages run first.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x8
#endif

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 3) {
		fprintf(stderr, "usage: residency PATH PAGES\n");
		return 2;
	}
	long pages = atol(argv[2]), psz = sysconf(_SC_PAGESIZE);
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror("open");
		return 1;
	}

	unsigned char vec[4096];
	if (pages > (long)sizeof vec)
		pages = sizeof vec;
	void *map = mmap(NULL, pages * psz, PROT_READ, MAP_SHARED, fd, 0);
	int r = map == MAP_FAILED ? -1 : mincore(map, pages * psz, vec);
	printf("mincore %d\n", r < 0 ? errno : 0);
	long resident = 0;
	for (long i = 0; r == 0 && i < pages; i++)
		resident += vec[i] & 1;
	printf("mincore_resident %ld\n", resident);

	uint64_t range[2] = {0, (uint64_t)(pages * psz)}, cs[5] = {0};
	r = syscall(SYS_cachestat, fd, range, cs, 0);
	printf("cachestat %d\n", r < 0 ? errno : 0);
	printf("cachestat_cached %llu\n", (unsigned long long)cs[0]);

	long eagain = 0;
	int nowait = 0;
	char buf[1];
	for (long i = 0; i < pages; i++) {
		struct iovec iov = {buf, 1};
		if (syscall(SYS_preadv2, fd, &iov, 1, i * psz, 0, RWF_NOWAIT) < 0) {
			if (errno == EAGAIN)
				eagain++;
			else
				nowait = errno;
		}
	}
	printf("preadv2_nowait %d\n", nowait);
	printf("preadv2_nowait_uncached %ld\n", eagain);
	return 0;
}
