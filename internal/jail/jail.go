package jail

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
)

// Config is the operator's side of the jail: where things come from, not
// what a single run may use.
type Config struct {
	// InitPath is a runbox-init binary to use instead of the embedded one.
	InitPath string
	// UIDBase and UIDSlots pick the host ids of boxes: box slot k uses host
	// uid and gid UIDBase+2k (root inside the box, held by runbox-init) and
	// UIDBase+2k+1 (the program). No two running boxes, in this process or
	// any other runbox on the host, share a slot.
	UIDBase  int
	UIDSlots int
	// Binds are the host paths the box sees read-only. Default: SystemBinds.
	Binds []Bind
	// Pool is how many warm boxes to keep ready (0: start each box on
	// demand, as the one-shot CLI does). A long-lived process that runs
	// boxes in parallel wants about as many as it runs at once.
	Pool int
	// Hostname inside the box.
	Hostname string
	// CgroupPrefix names runbox's parent cgroup: <own cgroup>/<prefix><pid>.
	CgroupPrefix string
	Logger       *slog.Logger
}

// Bind is one read-only path from the host.
type Bind struct {
	Src, Dst string
	Optional bool
}

// Identity of the program inside the box.
const (
	BoxUID  = 1000
	BoxGID  = 1000
	BoxUser = "runbox"
)

// DefaultConfig is what runbox uses unless told otherwise.
func DefaultConfig() Config {
	return Config{
		UIDBase:      1_500_000_000,
		UIDSlots:     65536,
		Binds:        SystemBinds(),
		Hostname:     "runbox",
		CgroupPrefix: "runbox-",
	}
}

// SystemBinds are the directories toolchains need, and the few /etc entries
// they read: the dynamic linker's cache and configuration, Debian's
// alternatives (cc, java, … are symlinks through /etc/alternatives), the
// time zone, and the per-toolchain configuration of Java, Perl, Python and R
// (R reads its library paths and Renviron from /etc/R).
// Not the host's whole /etc: no shadow, no ssh keys, no machine-id.
func SystemBinds() []Bind {
	var b []Bind
	for _, d := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		b = append(b, Bind{Src: d, Dst: d, Optional: d != "/usr"})
	}
	etc := []string{"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/perl", "/etc/R"}
	for _, pat := range []string{"/etc/java-*", "/etc/python3*"} {
		m, _ := filepath.Glob(pat)
		etc = append(etc, m...)
	}
	for _, e := range etc {
		b = append(b, Bind{Src: e, Dst: e, Optional: true})
	}
	return b
}

func (c Config) validate() error {
	if c.UIDBase < 1 || c.UIDSlots < 1 || int64(c.UIDBase)+2*int64(c.UIDSlots) > 1<<32-2 {
		return fmt.Errorf("uid range %d+2×%d is not a valid host uid range", c.UIDBase, c.UIDSlots)
	}
	for _, b := range c.Binds {
		if !filepath.IsAbs(b.Src) || !filepath.IsAbs(b.Dst) || filepath.Clean(b.Dst) != b.Dst || b.Dst == "/" {
			return fmt.Errorf("bind %s → %s: paths must be absolute, clean and not /", b.Src, b.Dst)
		}
		for _, reserved := range []string{"/box", "/tmp", "/proc", "/dev"} {
			if b.Dst == reserved || strings.HasPrefix(b.Dst, reserved+"/") {
				return fmt.Errorf("bind %s → %s: %s is the box's own", b.Src, b.Dst, reserved)
			}
		}
	}
	if c.Pool < 0 || c.Pool > 1024 {
		return fmt.Errorf("pool size %d: want 0 to 1024", c.Pool)
	}
	if c.CgroupPrefix == "" || strings.ContainsAny(c.CgroupPrefix, "/\x00") {
		return errors.New("cgroup prefix must be a non-empty path element")
	}
	return nil
}
