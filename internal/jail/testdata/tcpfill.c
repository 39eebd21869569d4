// Pins kernel memory in loopback TCP buffers: PAIRS connections to itself,
// each written (non-blocking) and never read until the kernel refuses more.
// Socket buffers are not user memory: unless the kernel charges them to the
// box's memory cgroup, a small box holds as much of the host's TCP memory as
// the global tcp_mem allows, and every TCP socket on the host stalls.
//
//   tcpfill PAIRS
//
// prints "pairs N" and "queued BYTES", then "done", and holds the buffers
// until killed.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	int want = argc > 1 ? atoi(argv[1]) : 64;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, want) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0) {
		printf("listen %d\n", errno);
		return 1;
	}
	static char buf[1 << 16];
	long long queued = 0;
	int pairs = 0;
	for (; pairs < want; pairs++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) < 0)
			break;
		if (accept(l, NULL, NULL) < 0)
			break;
		fcntl(c, F_SETFL, O_NONBLOCK);
		for (;;) {
			ssize_t w = send(c, buf, sizeof buf, MSG_DONTWAIT);
			if (w <= 0)
				break;
			queued += w;
		}
	}
	printf("pairs %d\nqueued %lld\ndone\n", pairs, queued);
	for (;;)
		pause();
}
