// Attacks through a session command's own terminal (its stdin is the
// slave of a pseudo-terminal whose master the supervisor holds): typing
// into it (TIOCSTI), attaching a line discipline (TIOCSETD), reaching the
// host's devpts by a name, reopening the slave through /proc, and any
// descriptor left over besides stdio. Prints "name value", values errno
// (0 for success).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int try_open(const char *path) {
	int fd = open(path, O_RDWR | O_NOCTTY);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

int main(void) {
	setvbuf(stdout, NULL, _IONBF, 0);

	printf("isatty %d\n", isatty(0));

	// Typed into our own terminal, this would reach whatever reads its
	// master: the filter answers EPERM.
	char c = 'x';
	errno = 0;
	printf("tiocsti %d\n", ioctl(0, TIOCSTI, &c) < 0 ? errno : 0);

	// N_NULL (27): harmless itself, but any line discipline is kernel
	// code a box has no business loading or attaching.
	int ldisc = 27;
	errno = 0;
	printf("tiocsetd %d\n", ioctl(0, TIOCSETD, &ldisc) < 0 ? errno : 0);

	printf("open_ptmx %d\n", try_open("/dev/ptmx"));
	printf("open_pts_ptmx %d\n", try_open("/dev/pts/ptmx"));
	printf("open_pts_0 %d\n", try_open("/dev/pts/0"));
	printf("reopen_slave %d\n", try_open("/proc/self/fd/0"));

	int leaked = 0;
	for (int fd = 3; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			leaked++;
	printf("leaked_fds %d\n", leaked);
	return 0;
}
