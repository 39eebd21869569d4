package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/image"
	"github.com/runbox-dev/runbox/internal/runner"
	"github.com/runbox-dev/runbox/internal/units"
)

// imageDir is where the image store is: image_dir, or data_dir/images.
func imageDir(cfg serveConfig) string {
	if cfg.ImageDir != "" {
		return cfg.ImageDir
	}
	return filepath.Join(cfg.DataDir, "images")
}

// openImages opens the image store. Boxes run as unprivileged host ids and
// open their image's top-level entries by path, so every directory leading
// to the store must let others through (o+x; not o+r: they cannot list
// it). data_dir is runbox's own: when the store is inside it, it is made
// so (its files stay 0600); any other parent is the operator's, checked and
// never changed.
func openImages(cfg serveConfig, log *slog.Logger) (*image.Store, error) {
	dir := imageDir(cfg)
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("image_dir %q must be an absolute path", dir)
	}
	if cfg.ImageDir == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
		st, err := os.Stat(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(cfg.DataDir, st.Mode().Perm()|0o001); err != nil {
				return nil, fmt.Errorf("data_dir: %w", err)
			}
		}
	} else if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return nil, fmt.Errorf("image_dir: %w", err)
	}
	if err := reachable(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("image_dir %s: %w", dir, err)
	}
	return image.Open(image.Config{Dir: dir, MaxBytes: int64(cfg.ImageStoreMax), MaxImage: int64(cfg.ImageMax),
		Insecure: cfg.ImageInsecure, Logger: log})
}

// reachable checks that others may pass through dir and each of its
// parents.
func reachable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("boxes cannot reach it: %s is mode %#o, which lets no other user through (add o+x or put the store elsewhere)", d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// storeImages gives the runner the store's images: pulled when absent
// (the server, runbox env test) or only those already pulled (runbox env
// list, which must not download gigabytes to print a table).
type storeImages struct {
	store *image.Store
	pull  bool
	// progress, when set, receives a pull's progress.
	progress func(ref string) image.Progress
}

var _ runner.Images = storeImages{}

// pullTimeout bounds one pull by the server or runbox env test.
const pullTimeout = 15 * time.Minute

func (s storeImages) Open(ctx context.Context, ref string) (runner.Image, func(), error) {
	var img *image.Image
	if s.pull {
		var p image.Progress
		if s.progress != nil {
			p = s.progress(ref)
		}
		// A stalled registry must not hold a server's start (or a
		// request) for ever.
		ctx, cancel := context.WithTimeout(ctx, pullTimeout)
		defer cancel()
		var err error
		if img, err = s.store.Ensure(ctx, ref, p); err != nil {
			return runner.Image{}, nil, err
		}
	} else {
		var ok bool
		if img, ok = s.store.Lookup(ref); !ok {
			return runner.Image{}, nil, fmt.Errorf("not pulled yet (runbox env pull %s)", ref)
		}
	}
	release := s.store.Use(img)
	return runner.Image{Root: img.Root, Env: img.Env}, release, nil
}

// pullProgress shows a pull's bytes on a terminal.
func pullProgress(p *progress) func(ref string) image.Progress {
	return func(ref string) image.Progress {
		return func(done, total int64) {
			p.show("runbox: pulling %s: %s of %s…", ref, units.HumanSize(done), units.HumanSize(total))
		}
	}
}

// cmdImages is `runbox env pull REF…`, `runbox env images` and `runbox env
// prune [--all]`. Prune keeps the images environments name unless --all.
func cmdImages(verb string, refs []string, all bool, cfg serveConfig, reg *env.Registry, stdout, stderr io.Writer) int {
	store, err := openImages(cfg, nil)
	if err != nil {
		fmt.Fprintln(stderr, "runbox env:", err)
		return 1
	}
	switch verb {
	case "pull":
		if len(refs) == 0 {
			refs = reg.Images()
		}
		if len(refs) == 0 {
			fmt.Fprintln(stderr, "runbox env pull: name an image (REF), or give environments that name one")
			return exitUsage
		}
		for _, ref := range refs {
			if _, err := name.ParseReference(ref); err != nil {
				fmt.Fprintf(stderr, "runbox env pull: %q is not an image reference (REGISTRY/NAME:TAG or @sha256:DIGEST): %v\n", ref, err)
				return exitUsage
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		prog := newProgress(stderr)
		failed := 0
		for _, ref := range refs {
			img, err := store.Pull(ctx, ref, pullProgress(prog)(ref))
			prog.done()
			if err != nil {
				fmt.Fprintf(stderr, "runbox env pull %s: %v\n", ref, err)
				failed++
				continue
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", ref, img.Digest, units.HumanSize(img.Size))
		}
		if failed > 0 {
			return 1
		}
		return 0
	case "images":
		imgs, err := store.List()
		if err != nil {
			fmt.Fprintln(stderr, "runbox env images:", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		defer tw.Flush()
		fmt.Fprintln(tw, "REFERENCE\tDIGEST\tSIZE\tPULLED\tUSED")
		for _, img := range imgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.Join(img.Refs, ","), img.Digest, units.HumanSize(img.Size),
				img.Pulled.Format(time.DateTime), img.Used.Format(time.DateTime))
		}
		return 0
	default: // prune
		var keep []string
		if !all {
			keep = reg.Images()
		}
		gone, err := store.Prune(keep)
		if err != nil {
			fmt.Fprintln(stderr, "runbox env prune:", err)
			return 1
		}
		var freed int64
		for _, img := range gone {
			freed += img.Size
			fmt.Fprintf(stdout, "removed %s %s\n", strings.Join(img.Refs, ","), img.Digest)
		}
		fmt.Fprintf(stdout, "freed %s\n", units.HumanSize(freed))
		return 0
	}
}

// imagesFor is the runner's view of the store for reg's image
// environments, or nil when none names an image (no store is opened).
func imagesFor(cfg serveConfig, reg *env.Registry, pull bool, p *progress, log *slog.Logger) (runner.Images, error) {
	if len(reg.Images()) == 0 {
		return nil, nil
	}
	store, err := openImages(cfg, log)
	if err != nil {
		return nil, err
	}
	return storeImages{store: store, pull: pull, progress: pullProgress(p)}, nil
}
