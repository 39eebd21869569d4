package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/runbox-dev/runbox/internal/env"
)

// Images gives the environments that name an OCI image their root
// filesystem.
type Images interface {
	// Open returns the unpacked image ref names (pulling it if the store
	// does not hold it and the implementation pulls) and a release to call
	// once its boxes are gone: until then the store keeps it.
	Open(ctx context.Context, ref string) (Image, func(), error)
}

// Image is an unpacked image as a box uses it.
type Image struct {
	Root string   // its root filesystem, seen read-only by the box
	Env  []string // its configuration's environment (KEY=VALUE)
}

// ErrNoImages is returned for an image environment when the runner has no
// image store.
var ErrNoImages = errors.New("this runner has no image store")

// imageEnvSkipped are image configuration variables a box does not take:
// its home is /box (an image's HOME, /root, is read-only and not the
// box user's) and its host name is the jail's.
var imageEnvSkipped = map[string]bool{"HOME": true, "HOSTNAME": true, "USER": true}

// placement is where an environment's boxes run: the host's root ("") or
// an image's, with the image's environment first.
type placement struct {
	root    string
	env     []string
	release func()
}

// place finds an environment's root. The release must be called.
func place(ctx context.Context, images Images, e *env.Environment) (placement, error) {
	if e == nil || e.Image == "" {
		return placement{release: func() {}}, nil
	}
	if images == nil {
		return placement{}, fmt.Errorf("%s: image %s: %w", e.Name, e.Image, ErrNoImages)
	}
	img, release, err := images.Open(ctx, e.Image)
	if err != nil {
		return placement{}, fmt.Errorf("%s: image %s: %w", e.Name, e.Image, err)
	}
	p := placement{root: img.Root, release: release}
	for _, kv := range img.Env {
		k, _, ok := strings.Cut(kv, "=")
		if ok && k != "" && !imageEnvSkipped[k] {
			p.env = append(p.env, kv)
		}
	}
	return p, nil
}

// envOf is the environment of an environment's box: the image's, the
// environment file's, then the request's, a key set later replacing one
// set earlier (a program's getenv finds the first of duplicates).
func (p placement) envOf(e *env.Environment, req []string) []string {
	all := append([]string{}, p.env...)
	if e != nil {
		all = append(all, e.Env...)
	}
	all = append(all, req...)
	out := make([]string, 0, len(all))
	at := map[string]int{}
	for _, kv := range all {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := at[k]; ok {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out
}
