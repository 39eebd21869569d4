// Tries the network from inside the box: socket families and types the
// policy refuses, taking loopback down, and a TCP connection to a port the
// host listens on at 127.0.0.1 (argv[1]). Prints "name errno".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif

static void sock(const char *name, int family, int type, int proto) {
	errno = 0;
	int fd = socket(family, type, proto);
	printf("%s %d\n", name, fd < 0 ? errno : 0);
	if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IONBF, 0);
	sock("raw_inet", AF_INET, SOCK_RAW, IPPROTO_ICMP);
	sock("raw_inet6", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
	sock("raw_cloexec", AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	sock("packet", AF_PACKET, SOCK_RAW, 0);
	sock("sock_packet", AF_INET, SOCK_PACKET, 0);
	sock("vsock", AF_VSOCK, SOCK_STREAM, 0);
	sock("alg", AF_ALG, SOCK_SEQPACKET, 0);
	sock("netlink_audit", AF_NETLINK, SOCK_RAW, 9);
	sock("tcp", AF_INET, SOCK_STREAM, 0);

	// Taking lo down needs CAP_NET_ADMIN, which the box does not have.
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	ioctl(fd, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags &= ~IFF_UP;
	errno = 0;
	printf("lo_down %d\n", ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? errno : 0);
	close(fd);

	// The same change through rtnetlink: add an address to lo. The socket
	// is allowed (getifaddrs reads through it); the change needs
	// CAP_NET_ADMIN and the kernel's ack carries -EPERM.
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		struct rtattr rta;
		unsigned char addr[4];
	} req = {
		.nh = {.nlmsg_len = sizeof req, .nlmsg_type = RTM_NEWADDR, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, .nlmsg_seq = 1},
		.ifa = {.ifa_family = AF_INET, .ifa_prefixlen = 8, .ifa_index = 1},
		.rta = {.rta_len = RTA_LENGTH(4), .rta_type = IFA_LOCAL},
		.addr = {10, 9, 8, 7},
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	int nl_err = -1;
	if (fd >= 0 && sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) >= 0) {
		char buf[4096];
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		if (n > 0 && h->nlmsg_type == NLMSG_ERROR)
			nl_err = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	printf("netlink_newaddr %d\n", nl_err);
	if (fd >= 0) close(fd);

	if (argc > 1) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		errno = 0;
		printf("connect_host_port %d\n", connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0);
	}
	return 0;
}
