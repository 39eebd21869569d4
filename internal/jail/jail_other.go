//go:build !linux

package jail

import (
	"context"
	"errors"
	"strconv"
)

// Jail is unavailable off Linux: New returns errors.ErrUnsupported.
type Jail struct{}

// New reports that boxes need Linux.
func New(Config) (*Jail, error) { return nil, errors.ErrUnsupported }

// Run is never reached: New fails.
func (*Jail) Run(context.Context, Spec) (Result, error) { return Result{}, errors.ErrUnsupported }

// CgroupVersion is empty: there are no cgroups.
func (*Jail) CgroupVersion() string { return "" }

// Close does nothing.
func (*Jail) Close() error { return nil }

func signalName(sig int) string { return "signal " + strconv.Itoa(sig) }

// Session is unavailable off Linux.
type Session struct{}

// OpenSession reports that boxes need Linux.
func (*Jail) OpenSession(context.Context, SessionSpec) (*Session, error) {
	return nil, errors.ErrUnsupported
}

// Exec is never reached: OpenSession fails.
func (*Session) Exec(context.Context, CommandSpec) (Result, error) {
	return Result{}, errors.ErrUnsupported
}

// ReadFile is never reached.
func (*Session) ReadFile(context.Context, string, int64) ([]byte, error) {
	return nil, errors.ErrUnsupported
}

// WriteFile is never reached.
func (*Session) WriteFile(context.Context, string, []byte, uint32) error {
	return errors.ErrUnsupported
}

// List is never reached.
func (*Session) WriteFileDirs(context.Context, string, []byte, uint32) error {
	return errors.ErrUnsupported
}

func (*Session) List(context.Context, string) ([]DirEntry, error) { return nil, errors.ErrUnsupported }

// Remove is never reached.
func (*Session) Remove(context.Context, string) error { return errors.ErrUnsupported }

// Close does nothing.
func (*Session) Close() error { return nil }
