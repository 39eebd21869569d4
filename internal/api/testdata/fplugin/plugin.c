/* A gcc plugin, sent as a request file named p.c next to a file named
 * -fplugin=./p.c: if that name ever reaches cc1 as an option, cc1 loads
 * this file and its constructor announces it on stderr. */
#include <unistd.h>

int plugin_is_GPL_compatible;

__attribute__((constructor)) static void announce(void) {
	write(2, "PLUGIN LOADED\n", 14);
}

int plugin_init(void *info, void *version) { return 0; }
