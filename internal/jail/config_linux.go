package jail

import (
	"archive/tar"
	"encoding"
	"encoding/binary"
	"io"
	"math"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// warmConfig is what init needs before a request: the same for every box
// on one root ("": the host's binds).
func (j *Jail) warmConfig(root string) (boxinit.Config, error) {
	from := j.cfg.Binds
	if root != "" {
		var err error
		if from, err = RootBinds(root); err != nil {
			return boxinit.Config{}, err
		}
	}
	binds := make([]boxinit.Bind, len(from))
	for i, b := range from {
		binds[i] = boxinit.Bind{Src: b.Src, Dst: b.Dst, Optional: b.Optional}
	}
	return boxinit.Config{
		Hostname: j.cfg.Hostname,
		UID:      BoxUID,
		GID:      BoxGID,
		Binds:    binds,
		Devices:  []string{"null", "zero", "full", "random", "urandom"},
		Generated: []boxinit.GenFile{
			{Path: "/etc/passwd", Mode: 0o644, Data: "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
				BoxUser + ":x:1000:1000:runbox:/box:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
			{Path: "/etc/group", Mode: 0o644, Data: "root:x:0:\n" + BoxUser + ":x:1000:\nnogroup:x:65534:\n"},
			{Path: "/etc/hosts", Mode: 0o644, Data: "127.0.0.1\tlocalhost " + j.cfg.Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
			{Path: "/etc/hostname", Mode: 0o644, Data: j.cfg.Hostname + "\n"},
			{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: "passwd: files\ngroup: files\nhosts: files\n"},
		},
	}, nil
}

// runConfig is what init needs for one run.
func (j *Jail) runConfig(s Spec) boxinit.RunConfig {
	lim := s.Limits
	env := append([]string{}, s.Env...)
	for _, kv := range DefaultEnv {
		key := kv[:strings.IndexByte(kv, '=')+1]
		found := false
		for _, e := range env {
			if strings.HasPrefix(e, key) {
				found = true
				break
			}
		}
		if !found {
			env = append(env, kv)
		}
	}
	dir := s.Dir
	if dir == "" {
		dir = "/box"
	}
	inodes := lim.Disk / 4096
	if inodes < 1024 {
		inodes = 1024
	}
	cpuSecs := uint64(math.Ceil(lim.CPUTime.Seconds())) + 1
	var collect *boxinit.Collect
	if s.Collect != nil {
		c := collectLimits(*s.Collect)
		collect = &boxinit.Collect{Patterns: c.Patterns, MaxFiles: c.MaxFiles, MaxBytes: c.MaxBytes,
			MaxDepth: c.MaxDepth, MaxNanos: int64(c.MaxTime)}
	}
	return boxinit.RunConfig{
		Collect:   collect,
		Argv:      s.Argv,
		Env:       env,
		Dir:       boxinit.Exact{dir},
		Workspace: boxinit.TmpfsSize{Bytes: lim.Disk, Inodes: inodes},
		Tmp:       boxinit.TmpfsSize{Bytes: lim.Disk, Inodes: inodes},
		Shm:       boxinit.TmpfsSize{Bytes: lim.Disk, Inodes: 1024},
		Rlimits: []boxinit.Rlimit{
			{Resource: unix.RLIMIT_FSIZE, Cur: uint64(lim.FileSize), Max: uint64(lim.FileSize)},
			{Resource: unix.RLIMIT_NOFILE, Cur: uint64(lim.OpenFiles), Max: uint64(lim.OpenFiles)},
			{Resource: unix.RLIMIT_CORE, Cur: 0, Max: 0},
			{Resource: unix.RLIMIT_STACK, Cur: uint64(lim.Stack), Max: uint64(lim.Stack)},
			// A backstop for the supervisor's CPU accounting: the kernel
			// itself stops any one process a second past the limit.
			{Resource: unix.RLIMIT_CPU, Cur: cpuSecs, Max: cpuSecs + 1},
			// Counted per host uid, which is this box's alone.
			{Resource: unix.RLIMIT_NPROC, Cur: uint64(lim.Processes), Max: uint64(lim.Processes)},
			// Queued signals and POSIX message-queue bytes are kernel
			// memory counted per user and charged to the owner of the
			// box's user namespace too (its root id). Left at the host's
			// defaults (~96,000 signals, 800 KiB) they are far beyond what
			// a program needs. 1024 signals leave every thread of the
			// largest box (512) two at once (a POSIX timer holds one for
			// life); 256 KiB hold three message queues of the default
			// size (10 messages of 8 KiB) — no toolchain uses any.
			{Resource: unix.RLIMIT_SIGPENDING, Cur: sigPending, Max: sigPending},
			{Resource: unix.RLIMIT_MSGQUEUE, Cur: msgQueueBytes, Max: msgQueueBytes},
			// Locked memory: mlock of a mapping of a system file pins the
			// host's page cache, which the box's cgroup may not be
			// charged for (another box or the host read it first): 8 MiB
			// per process (the default) times the process limit is a lot
			// of the host's memory. 64 KiB is what older kernels gave
			// every user; nothing the toolchains run needs more.
			{Resource: unix.RLIMIT_MEMLOCK, Cur: memLockBytes, Max: memLockBytes},
		},
		Seccomp:     j.filter,
		MergeOutput: s.MergeOutput,
	}
}

// writeMessage sends one length-prefixed message (boxinit's wire form).
func writeMessage(w io.Writer, v encoding.BinaryMarshaler) error {
	b, err := v.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = w.Write(frame(b))
	return err
}

// frame prefixes a message with its length, as readMessage in runbox-init
// expects it.
func frame(msg []byte) []byte {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(msg)))
	return append(n[:], msg...)
}

// writeFiles sends the workspace as a tar stream. Parent directories that
// are not listed are sent before their first file.
func writeFiles(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	for _, f := range files {
		if f.Dir {
			dirs[strings.TrimSuffix(f.Name, "/")] = true
		}
	}
	for _, f := range files {
		for i := 0; i < len(f.Name); i++ {
			if f.Name[i] != '/' || dirs[f.Name[:i]] {
				continue
			}
			dirs[f.Name[:i]] = true
			if err := tw.WriteHeader(&tar.Header{Name: f.Name[:i], Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
				return err
			}
		}
		h := &tar.Header{Name: f.Name, Mode: int64(f.Mode), Typeflag: tar.TypeReg, Size: int64(len(f.Data))}
		switch {
		case f.Dir:
			h.Typeflag, h.Size = tar.TypeDir, 0
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Symlink != "":
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, f.Symlink
		case h.Mode == 0:
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
