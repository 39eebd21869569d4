import sys

from helper import check

print(check(sys.stdin.read(), sys.argv[1:], open("test.txt").read()))
