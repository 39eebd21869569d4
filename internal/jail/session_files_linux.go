package jail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/runbox-dev/runbox/internal/jail/boxinit"
)

// File operations go through the box's own view: runbox-init resolves the
// path inside the box, beneath /box or /tmp, never following a symlink,
// never opening anything but a regular file or directory, never blocking
// on a FIFO (boxinit.fileOp). The host never resolves a path in the box:
// data moves over a pipe, and the host only counts it.
//
// Paths are absolute below /box or /tmp, or relative to /box. A failure
// in the box is an *fs.PathError whose Err is the system error (ENOENT is
// fs.ErrNotExist; ELOOP a symlink; EXDEV a path leaving its root; EFBIG a
// file larger than asked; EACCES a path outside /box and /tmp).

// ReadFile returns the content of a regular file of at most max bytes.
func (s *Session) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	if max < 0 {
		return nil, errors.New("read file: negative size bound")
	}
	var data []byte
	var readErr error
	rep, err := s.fileCall(ctx, boxinit.SessionRequest{Op: boxinit.OpRead, Path: boxinit.Exact{path}, Max: max}, true,
		func(r *os.File) {
			data, readErr = io.ReadAll(io.LimitReader(r, max+1))
		})
	if err != nil {
		return nil, err
	}
	if err := fileError("read", path, rep); err != nil {
		return nil, err
	}
	if readErr != nil || int64(len(data)) != rep.Size {
		return nil, fmt.Errorf("read %s: %d of %d bytes arrived (%v)", path, len(data), rep.Size, readErr)
	}
	return data, nil
}

// WriteFile creates or replaces a regular file, owned by the box's user,
// with mode's permission bits (0: 0644). The session's file size and disk
// limits hold (EFBIG, ENOSPC).
func (s *Session) WriteFile(ctx context.Context, path string, data []byte, mode uint32) error {
	return s.writeFile(ctx, path, data, mode, false)
}

// WriteFileDirs is WriteFile that first makes the missing directories of
// path (0755, owned by the box's user; at most 32 levels).
func (s *Session) WriteFileDirs(ctx context.Context, path string, data []byte, mode uint32) error {
	return s.writeFile(ctx, path, data, mode, true)
}

func (s *Session) writeFile(ctx context.Context, path string, data []byte, mode uint32, parents bool) error {
	rep, err := s.fileCall(ctx, boxinit.SessionRequest{Op: boxinit.OpWrite, Path: boxinit.Exact{path},
		Max: int64(len(data)), Mode: mode, Parents: parents}, false,
		func(w *os.File) {
			// Fails with EPIPE when init refused the file before reading.
			_, _ = w.Write(data)
		})
	if err != nil {
		return err
	}
	return fileError("write", path, rep)
}

// List returns a directory's entries (not "." and ".."), at most
// MaxListEntries of them (then with ErrListTruncated).
func (s *Session) List(ctx context.Context, dir string) ([]DirEntry, error) {
	var ents []DirEntry
	var decErr error
	rep, err := s.fileCall(ctx, boxinit.SessionRequest{Op: boxinit.OpList, Path: boxinit.Exact{dir}, Max: MaxListEntries}, true,
		func(r *os.File) {
			// An entry is at most a name (255 bytes, as base64) and a
			// few numbers.
			dec := json.NewDecoder(io.LimitReader(r, MaxListEntries*1024))
			for len(ents) < MaxListEntries {
				var e boxinit.ListEntry
				if err := dec.Decode(&e); err != nil {
					if err != io.EOF {
						decErr = err
					}
					break
				}
				ents = append(ents, DirEntry{Name: string(e.Name), Type: e.Type, Size: e.Size,
					Mode: e.Mode & 0o7777, ModTime: time.Unix(0, e.MtimeNanos)})
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
		})
	if err != nil {
		return nil, err
	}
	if err := fileError("list", dir, rep); err != nil {
		return nil, err
	}
	if decErr != nil || int64(len(ents)) != rep.Size {
		return nil, fmt.Errorf("list %s: %d of %d entries arrived (%v)", dir, len(ents), rep.Size, decErr)
	}
	if rep.Truncated {
		return ents, fmt.Errorf("list %s: %w", dir, ErrListTruncated)
	}
	return ents, nil
}

// Remove removes a file, a symlink (not its target) or an empty directory.
func (s *Session) Remove(ctx context.Context, path string) error {
	rep, err := s.fileCall(ctx, boxinit.SessionRequest{Op: boxinit.OpRemove, Path: boxinit.Exact{path}}, false, nil)
	if err != nil {
		return err
	}
	return fileError("remove", path, rep)
}

// fileCall sends one file request and waits for its reply. With move, a
// pipe goes along: init writes to it (fromBox) or reads from it, and move
// runs on our end meanwhile. Everything is bounded by FileOpTime and ctx:
// init is told the same deadline, and our end of the pipe is closed at it.
func (s *Session) fileCall(ctx context.Context, req boxinit.SessionRequest, fromBox bool, move func(*os.File)) (boxinit.SessionReply, error) {
	id, ch, err := s.enter()
	if err != nil {
		return boxinit.SessionReply{}, err
	}
	defer s.leave(id, ch)
	deadline := time.Now().Add(FileOpTime)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	req.ID = id
	req.TimeoutNanos = int64(time.Until(deadline))
	if move == nil {
		if err := s.send(req); err != nil {
			return boxinit.SessionReply{}, err
		}
		m, err := s.wait(ctx, ch, deadline)
		return m.rep, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return boxinit.SessionReply{}, err
	}
	ours, theirs := w, r
	if fromBox {
		ours, theirs = r, w
	}
	defer ours.Close()
	err = s.send(req, int(theirs.Fd()))
	theirs.Close()
	if err != nil {
		return boxinit.SessionReply{}, err
	}
	// A little past init's own deadline: init gives up first, and says so.
	_ = ours.SetDeadline(deadline.Add(100 * time.Millisecond))
	moved := make(chan struct{})
	go func() {
		defer close(moved)
		move(ours)
		if !fromBox {
			ours.Close() // end of the data
		}
	}()
	m, err := s.wait(ctx, ch, deadline.Add(200*time.Millisecond))
	if err != nil {
		ours.Close() // unblocks move: no reply will say it is over
	}
	// init closes its end before it replies; move ends at end of file,
	// or at the pipe's deadline.
	<-moved
	return m.rep, err
}

// fileError turns a failed reply into an error.
func fileError(op, path string, rep boxinit.SessionReply) error {
	switch {
	case rep.Errno != 0:
		return &fs.PathError{Op: op, Path: path, Err: syscall.Errno(rep.Errno)}
	case rep.Error != "":
		return fmt.Errorf("%s %s: %s", op, path, rep.Error)
	}
	return nil
}
