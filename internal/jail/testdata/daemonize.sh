#!/bin/sh
# Leaves a double-forked daemon behind, in its own session, with its
# output closed, then exits at once. argv[1] marks it for the test to find.
setsid sh -c "exec sleep $1" </dev/null >/dev/null 2>&1 &
# And a plain child that holds stdout open.
sleep "$1" &
exit 0
