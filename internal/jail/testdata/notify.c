// Watches files and directories it shares with the host and other boxes, to
// see what they open, read and change as it happens:
//
//   notify MILLISECONDS PATH...
//
// puts an inotify watch on every PATH and a dnotify (fcntl F_NOTIFY) on
// every directory among them, counts the events that arrive within the
// time given, and prints "name value" lines: the errno of each set-up call
// and the number of events of each kind.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t dnotify_events;

static void on_dnotify(int sig) {
	(void)sig;
	dnotify_events++;
}

static long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: notify MILLISECONDS PATH...\n");
		return 2;
	}
	long window = atol(argv[1]);

	struct sigaction sa = {.sa_handler = on_dnotify, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 1, &sa, NULL);

	// dnotify first: opening a directory is itself an inotify event.
	int dnotify_err = -1;
	for (int i = 2; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		int d = open(argv[i], O_RDONLY | O_DIRECTORY);
		int r = fcntl(d, F_SETSIG, SIGRTMIN + 1);
		if (r == 0)
			r = fcntl(d, F_NOTIFY, DN_ACCESS | DN_MODIFY | DN_CREATE | DN_DELETE | DN_RENAME | DN_ATTRIB | DN_MULTISHOT);
		if (dnotify_err <= 0)
			dnotify_err = r < 0 ? errno : 0;
	}
	printf("dnotify %d\n", dnotify_err);

	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	printf("inotify_init %d\n", in < 0 ? errno : 0);
	int watch_err = 0;
	for (int i = 2; i < argc; i++)
		if (inotify_add_watch(in, argv[i], IN_ALL_EVENTS) < 0)
			watch_err = errno;
	printf("inotify_add_watch %d\n", watch_err);

	long inotify_events = 0, end = now_ms() + window;
	char buf[64 * 1024];
	for (long left; (left = end - now_ms()) > 0;) {
		struct pollfd p = {in, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0) {
			for (char *e = buf; e < buf + n;) {
				struct inotify_event *ev = (struct inotify_event *)e;
				if (inotify_events++ == 0)
					printf("inotify_first_event %#x\n", ev->mask);
				e += sizeof *ev + ev->len;
			}
		}
	}
	printf("inotify_events %ld\n", inotify_events);
	printf("dnotify_events %ld\n", (long)dnotify_events);
	return 0;
}
