@include "helper.awk"

BEGIN {
    # The args are not input files here: take them out of ARGV.
    args = ""
    for (i = 1; i < ARGC; i++) {
        args = args (i > 1 ? " " : "") ARGV[i]
        delete ARGV[i]
    }
    getline stdin
    getline test < "test.txt"
    print check(stdin, args, test)
}
