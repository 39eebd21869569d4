# Fills the workspace almost to its size and the box almost to its memory
# limit, with files in a directory chain deeper than a small descriptor
# limit lets a walker hold open, then exits: whatever the collection leaves
# out must be reported as truncated, and whatever it returns must be whole.
#
#   fullbox.py BIG_FILES BIG_MIB DEPTH
#
# prints "file NAME SIZE" for every file it made. Each file's content is its
# name repeated, so the host can check it byte for byte.
import os, sys

big, big_mib, depth = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

os.unlink(sys.argv[0])  # only what follows is the program's


def make(path, size):
    pat = (path + "\n").encode()
    chunk = pat * (65536 // len(pat) + 1)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            # Whole patterns: the file is the name repeated, then cut.
            n = min(left, len(chunk) - len(chunk) % len(pat))
            f.write(chunk[:n])
            left -= n
    print("file", path, size)

for i in range(big):
    make("big%d" % i, big_mib << 20)
d = ""
for i in range(depth):
    d = d + ("/" if d else "") + "d%d" % i
    os.mkdir(d)
    make(d + "/f", 100 + i)
for i in range(20):
    make("small%02d" % i, 1000 + i)
sys.stdout.flush()
