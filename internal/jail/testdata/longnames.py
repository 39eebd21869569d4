# Leaves files whose paths are about 4000 bytes long (nested directories with
# 255-byte names, the most a name may have) and asks for them back: every
# such name makes a tar entry whose PAX header is several times larger than
# a plain one.
#
#   longnames.py LEVELS FILES SIZE
#
# makes LEVELS nested directories of 255-byte names and FILES files of SIZE
# bytes at the bottom, and prints the length of the longest path.
import os, sys

levels, files, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
os.unlink(sys.argv[0])  # only the files below are collected
d = "/".join(chr(ord("a") + i) * 255 for i in range(levels))
os.makedirs(d)
data = b"x" * size
longest = 0
for i in range(files):
    p = "%s/%03d%s" % (d, i, "y" * 150)
    with open(p, "wb") as f:
        f.write(data)
    longest = max(longest, len(p))
print("longest", longest)
