const char *check(const char *stdin_text, int argc, char **argv, const char *test);
