// Attacks on the supervisor and on the box's own init: leaked descriptors,
// ptrace, terminal injection, and rewriting the binaries behind
// /proc/self/exe and /proc/1/exe (runc CVE-2019-5736). Prints "name value".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
	setvbuf(stdout, NULL, _IONBF, 0);

	// Every descriptor above stdio: there must be none.
	int leaked = 0;
	for (int fd = 3; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1) {
			printf("leaked_fd_number %d\n", fd);
			leaked++;
		}
	printf("leaked_fds %d\n", leaked);

	// TIOCSTI pushes input into a terminal. Without the filter this fails
	// with ENOTTY on a pipe; the filter answers EPERM first.
	char c = 'x';
	errno = 0;
	printf("tiocsti %d\n", ioctl(0, TIOCSTI, &c) < 0 ? errno : 0);

	pid_t child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	errno = 0;
	printf("ptrace_attach_child %d\n", ptrace(PTRACE_ATTACH, child, 0, 0) < 0 ? errno : 0);
	errno = 0;
	printf("ptrace_attach_init %d\n", ptrace(PTRACE_ATTACH, 1, 0, 0) < 0 ? errno : 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);

	const char *paths[] = {"/proc/self/exe", "/proc/1/exe", "/proc/1/mem", "/proc/1/environ", "/proc/1/root/etc/passwd"};
	const char *names[] = {"write_self_exe", "write_init_exe", "write_init_mem", "read_init_environ", "write_init_root"};
	for (int i = 0; i < 5; i++) {
		errno = 0;
		int fd = open(paths[i], i == 3 ? O_RDONLY : O_WRONLY);
		printf("%s %d\n", names[i], fd < 0 ? errno : 0);
		if (fd >= 0) close(fd);
	}
	errno = 0;
	char buf[256];
	printf("readlink_init_exe %d\n", readlink("/proc/1/exe", buf, sizeof buf) < 0 ? errno : 0);

	// Signals to pid 1 from inside its namespace are ignored by the kernel.
	printf("kill_init %d\n", kill(1, SIGKILL) < 0 ? errno : 0);
	return 0;
}
