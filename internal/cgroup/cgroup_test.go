package cgroup

import (
	"errors"
	"testing"
)

const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const hybridSelf = `9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
`

func TestParseLayout(t *testing.T) {
	t.Run("hybrid host uses v1 under our own groups", func(t *testing.T) {
		l, err := ParseLayout(hybridMountinfo, hybridSelf)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"memory": "/sys/fs/cgroup/memory/process_api/abc", "pids": "/sys/fs/cgroup/pids",
			"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct",
		}
		if l.Version != V1 {
			t.Fatalf("version %v", l.Version)
		}
		for c, d := range want {
			if l.V1[c] != d {
				t.Errorf("%s: %q, want %q", c, l.V1[c], d)
			}
		}
	})
	t.Run("co-mounted cpu,cpuacct", func(t *testing.T) {
		mi := "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
			"35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
			"39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
		self := "3:cpu,cpuacct:/a\n2:memory:/a\n1:pids:/a\n"
		l, err := ParseLayout(mi, self)
		if err != nil {
			t.Fatal(err)
		}
		if l.V1["cpu"] != "/sys/fs/cgroup/cpu,cpuacct/a" || l.V1["cpuacct"] != l.V1["cpu"] {
			t.Fatalf("%v", l.V1)
		}
	})
	t.Run("pure v2 host", func(t *testing.T) {
		l, err := ParseLayout("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n", "0::/system.slice/runbox.service\n")
		if err != nil {
			t.Fatal(err)
		}
		if l.Version != V2 || l.V2 != "/sys/fs/cgroup/system.slice/runbox.service" {
			t.Fatalf("%+v", l)
		}
	})
	t.Run("memory on v1 but pids missing", func(t *testing.T) {
		_, err := ParseLayout("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "4:memory:/\n")
		if !errors.Is(err, ErrNoCgroups) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("nothing mounted", func(t *testing.T) {
		if _, err := ParseLayout("", ""); !errors.Is(err, ErrNoCgroups) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("escaped mount point", func(t *testing.T) {
		if got := unescape(`/sys/fs/my\040cgroup`); got != "/sys/fs/my cgroup" {
			t.Fatalf("%q", got)
		}
	})
}
