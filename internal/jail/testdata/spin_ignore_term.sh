#!/bin/sh
# Burns CPU and shrugs off SIGTERM: only SIGKILL stops it.
trap '' TERM
while :; do :; done
