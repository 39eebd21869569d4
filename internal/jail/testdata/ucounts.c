// Takes per-user kernel counts that the kernel charges to the owner of the
// caller's user namespace as well as to the caller (ucounts): inotify
// instances, queued signals, POSIX message-queue bytes. A box whose user
// namespace belongs to host root exhausts them for host root and for every
// other box.
//
//   ucounts fill   takes as many of each as it can, prints "name count
//                  errno" lines and "done", then holds them until killed
//   ucounts once   takes one of each and prints "name errno" (0: it could)
//
// Both print "owner UID", the owner of the caller's user namespace as the
// caller sees it (NS_GET_OWNER_UID), and "securebits N", the caller's.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <unistd.h>

static void owner(void) {
	int fd = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
	unsigned int uid = 0;
	if (fd < 0 || ioctl(fd, NS_GET_OWNER_UID, &uid) < 0) {
		printf("owner error %d\n", errno);
		return;
	}
	printf("owner %u\n", uid);
	close(fd);
}

static void block_rt(void) {
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	int fill = argc > 1 && strcmp(argv[1], "fill") == 0;
	owner();
	printf("securebits %d\n", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
	block_rt();
	union sigval v = {.sival_int = 1};
	char name[64];
	if (!fill) {
		errno = 0;
		int fd = inotify_init1(IN_CLOEXEC);
		printf("inotify %d\n", fd < 0 ? errno : 0);
		errno = 0;
		printf("sigqueue %d\n", sigqueue(getpid(), SIGRTMIN, v) < 0 ? errno : 0);
		snprintf(name, sizeof name, "/runbox-ucounts-%d", getpid());
		errno = 0;
		mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, NULL);
		printf("mqueue %d\n", q == (mqd_t)-1 ? errno : 0);
		if (q != (mqd_t)-1)
			mq_unlink(name);
		return 0;
	}
	long n = 0;
	while (inotify_init1(IN_CLOEXEC) >= 0)
		n++;
	printf("inotify %ld %d\n", n, errno);
	for (n = 0; n < 1000000 && sigqueue(getpid(), SIGRTMIN, v) == 0; n++)
		;
	printf("sigqueue %ld %d\n", n, errno);
	struct mq_attr attr = {.mq_maxmsg = 10, .mq_msgsize = 1024};
	long bytes = 0;
	for (n = 0; n < 10000; n++) {
		snprintf(name, sizeof name, "/q%ld", n);
		if (mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr) == (mqd_t)-1)
			break;
		bytes += attr.mq_maxmsg * attr.mq_msgsize;
	}
	printf("mqueue %ld %ld %d\n", n, bytes, errno);
	printf("done\n");
	for (;;)
		pause();
}
