#include <string.h>

#include "helper.h"

const char *check(const char *stdin_text, int argc, char **argv, const char *test) {
	if (strcmp(stdin_text, "stdin\n") == 0 && argc == 4 && strcmp(argv[1], "foo") == 0 &&
	    strcmp(argv[2], "bar") == 0 && strcmp(argv[3], "baz") == 0 && strcmp(test, "test\n") == 0)
		return "OK";
	return "FAIL";
}
