package runner

import "github.com/runbox-dev/runbox/internal/jail"

// Errors of a request the jail refuses to run: the client's fault, never
// runbox's (the API answers 422). The API checks the same bounds first
// (ConfigBytes, Footprint), so these are rare.
var (
	ErrSpecTooLarge  = jail.ErrSpecTooLarge
	ErrWorkspaceFull = jail.ErrWorkspaceFull
)

// Bounds of what a box accepts, from the jail.
const (
	// MaxConfigBytes bounds a run's argv and environment (ConfigBytes).
	MaxConfigBytes = jail.MaxConfigBytes
	// MaxArgBytes bounds one argument or one KEY=VALUE.
	MaxArgBytes = jail.MaxArgBytes
	// MaxCommandBytes bounds a command's name: execve refuses a path longer
	// than PATH_MAX (4096) with ENAMETOOLONG.
	MaxCommandBytes = 4096
)

// ConfigBytes is what an argv and an environment take of MaxConfigBytes,
// counted as init receives them, generously: every string with its NUL,
// the environment variables the jail adds, and the working directory.
func ConfigBytes(argv, envv []string) int64 {
	var n int64
	for _, list := range [][]string{argv, envv, jail.DefaultEnv, {"/box"}} {
		for _, s := range list {
			n += int64(len(s)) + 1
		}
	}
	return n
}

// pageSize is the unit tmpfs charges a file's bytes in.
const pageSize = 4096

// DiskInodes is how many files and directories a box's workspace holds for
// a disk size: one per page, at least 1024 (as the jail sizes its tmpfs).
func DiskInodes(disk int64) int64 { return max(disk/pageSize, 1024) }

// Footprint is what files take of a box's workspace: bytes (each file's
// size rounded up to whole pages, as tmpfs charges them) and inodes (one
// per file and per directory, the workspace's own included).
func Footprint(files []File) (bytes, inodes int64) {
	fs := make([]jail.File, len(files))
	for i, f := range files {
		fs[i] = jail.File{Name: f.Name, Data: f.Content}
	}
	return footprint(fs)
}

func footprint(files []jail.File) (bytes, inodes int64) {
	dirs := map[string]bool{}
	for _, f := range files {
		bytes += (int64(len(f.Data)) + pageSize - 1) / pageSize * pageSize
		inodes++
		for i := 0; i < len(f.Name); i++ {
			if f.Name[i] == '/' && !dirs[f.Name[:i]] {
				dirs[f.Name[:i]] = true
				inodes++
			}
		}
	}
	return bytes, inodes + 1
}
