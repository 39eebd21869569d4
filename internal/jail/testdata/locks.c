// Takes and tests file locks on files shared with the host and other boxes:
// a lock one of them holds must neither block nor be seen by the other.
//
//   locks probe PATH          tries every kind of lock on PATH without
//                             waiting and prints "name errno" lines, and
//                             for the F_GETLK queries "name type" (0 read
//                             lock, 1 write lock, 2 none seen).
//   locks hold PATH CMD ARG...  takes flock(LOCK_EX) on PATH and execs CMD,
//                             which inherits the descriptor and so keeps
//                             the lock for as long as it runs.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void report(const char *name, int r) { printf("%s %d\n", name, r < 0 ? errno : 0); }

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: locks probe PATH | locks hold PATH CMD ARG...\n");
		return 2;
	}
	const char *path = argv[2];
	if (strcmp(argv[1], "hold") == 0) {
		int fd = open(path, O_RDONLY); // no O_CLOEXEC: CMD keeps the lock
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
			perror("hold");
			return 1;
		}
		execv(argv[3], argv + 3);
		perror("exec");
		return 1;
	}

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	report("open", fd);

	errno = 0;
	report("flock_ex", flock(fd, LOCK_EX | LOCK_NB));
	flock(fd, LOCK_UN);

	// A read lock is all a read-only descriptor can take; it conflicts with
	// a write lock someone else holds.
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
	errno = 0;
	report("posix_rdlck", fcntl(fd, F_SETLK, &fl));
	fl.l_type = F_UNLCK;
	fcntl(fd, F_SETLK, &fl);
	// F_GETLK asks who would block a write lock: it reveals any lock.
	fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET};
	report("posix_getlk_errno", fcntl(fd, F_GETLK, &fl));
	printf("posix_getlk %d\n", fl.l_type);

	fl = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET};
	errno = 0;
	report("ofd_rdlck", fcntl(fd, F_OFD_SETLK, &fl));
	fl.l_type = F_UNLCK;
	fcntl(fd, F_OFD_SETLK, &fl);
	fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET};
	report("ofd_getlk_errno", fcntl(fd, F_OFD_GETLK, &fl));
	printf("ofd_getlk %d\n", fl.l_type);

	// A lease would stall everyone else who opens the file.
	errno = 0;
	report("lease", fcntl(fd, F_SETLEASE, F_RDLCK));
	return 0;
}
