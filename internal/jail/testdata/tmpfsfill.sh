# Fills the box's memory with tmpfs pages, which belong to no process: the
# OOM killer must then choose among the box's processes, and runbox-init —
# a Go program, larger than the few small processes left — must never be
# the one it picks. With "procs", many small processes hold memory too.
if [ "$1" = procs ]; then
	for i in $(seq 20); do sleep 30 & done
fi
head -c 256M /dev/zero > /box/fill
echo "filled"
