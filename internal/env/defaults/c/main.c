#include <stdio.h>

#include "helper.h"

int main(int argc, char **argv) {
	char in[64] = {0}, test[64] = {0};
	fread(in, 1, sizeof in - 1, stdin);
	FILE *f = fopen("test.txt", "r");
	if (f) {
		fread(test, 1, sizeof test - 1, f);
		fclose(f);
	}
	puts(check(in, argc, argv, test));
	return 0;
}
