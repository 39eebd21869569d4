package runner

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/runbox-dev/runbox/internal/env"
)

type fakeImages struct {
	img      Image
	err      error
	released int
}

func (f *fakeImages) Open(ctx context.Context, ref string) (Image, func(), error) {
	if f.err != nil {
		return Image{}, nil, f.err
	}
	return f.img, func() { f.released++ }, nil
}

func TestPlaceImageEnvironment(t *testing.T) {
	host := &env.Environment{Name: "py", Env: []string{"A=env"}}
	p, err := place(t.Context(), nil, host)
	if err != nil || p.root != "" {
		t.Fatalf("a host environment: %+v %v", p, err)
	}
	p.release()

	img := &env.Environment{Name: "pyimg", Image: "r/p:1", Env: []string{"A=env", "B=env"}}
	if _, err := place(t.Context(), nil, img); !errors.Is(err, ErrNoImages) {
		t.Fatalf("an image environment without a store: %v", err)
	}
	f := &fakeImages{img: Image{Root: "/store/roots/x", Env: []string{"PATH=/img", "A=image", "HOME=/root", "C=image", "bad"}}}
	p, err = place(t.Context(), f, img)
	if err != nil || p.root != "/store/roots/x" {
		t.Fatalf("place: %+v %v", p, err)
	}
	// The image's, the file's, then the request's; a later key replaces an
	// earlier one in place; HOME and malformed entries of the image dropped.
	got := p.envOf(img, []string{"B=req", "D=req"})
	want := []string{"PATH=/img", "A=env", "C=image", "B=req", "D=req"}
	if !slices.Equal(got, want) {
		t.Errorf("envOf = %q, want %q", got, want)
	}
	p.release()
	if f.released != 1 {
		t.Errorf("released %d times", f.released)
	}
	f.err = errors.New("pull failed")
	if _, err := place(t.Context(), f, img); err == nil || err.Error() != "pyimg: image r/p:1: pull failed" {
		t.Errorf("a failed open: %v", err)
	}
}
