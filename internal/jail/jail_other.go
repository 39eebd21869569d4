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
