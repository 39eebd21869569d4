//go:build !linux

package cgroup

import "errors"

// ErrNoCgroups: control groups exist only on Linux.
var ErrNoCgroups = errors.New("cgroups need Linux")
