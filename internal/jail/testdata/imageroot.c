// imageroot runs in a box on a test root filesystem (not the host's) and
// prints what it sees there, one key=value per line.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void slurp(const char *key, const char *path) {
	char buf[256] = {0};
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("%s error:%s\n", key, strerror(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = '|';
	printf("%s %s\n", key, buf);
}

int main(void) {
	slurp("marker", "/etc/marker");
	slurp("nested", "/etc/sub/nested");
	slurp("secret", "/etc/secret");
	char passwd[512] = {0};
	int fd = open("/etc/passwd", O_RDONLY);
	if (fd >= 0) {
		read(fd, passwd, sizeof passwd - 1);
		close(fd);
	}
	printf("passwd_generated %d\n", strstr(passwd, "runbox:x:1000") != NULL);
	printf("image_passwd %d\n", strstr(passwd, "imageuser") != NULL);
	printf("host_gcc %d\n", access("/usr/bin/gcc", F_OK) == 0);
	printf("host_sh %d\n", access("/bin/sh", F_OK) == 0);
	printf("var %d\n", access("/var/lib", F_OK) == 0);
	printf("sys %d\n", access("/sys/kernel", F_OK) == 0);
	printf("via_link %d\n", access("/bin/imageroot", X_OK) == 0);
	fd = open("/usr/owned", O_WRONLY | O_CREAT, 0644);
	printf("write_usr %s\n", fd < 0 ? strerror(errno) : "ok");
	fd = open("/etc/owned", O_WRONLY | O_CREAT, 0644);
	printf("write_etc %s\n", fd < 0 ? strerror(errno) : "ok");
	fd = open("/box/owned", O_WRONLY | O_CREAT, 0644);
	printf("write_box %s\n", fd < 0 ? strerror(errno) : "ok");
	char cwd[256];
	printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
	return 0;
}
