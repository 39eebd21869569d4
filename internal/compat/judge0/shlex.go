package judge0

import "github.com/runbox-dev/runbox/internal/compat"

// Judge0 appends command_line_arguments to the run command in a bash
// script, so the shell splits them. split does the part of that a plain
// argument list can carry: words separated by blanks, single quotes
// keeping everything, double quotes keeping everything but \" and \\,
// and a backslash outside quotes keeping the next character. Expansions
// ($x, *, ~) are not performed: the words reach the program as written.
var split = compat.SplitWords
