package jail

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// rootOwn are the top-level names a box has of its own (or, /sys, not at
// all) whatever root it is on.
var rootOwn = map[string]bool{"proc": true, "dev": true, "box": true, "tmp": true, "sys": true}

// RootBinds are the binds of a box on a root filesystem (an unpacked
// image): each top-level directory and symlink of root at the same place,
// read-only, as the host's system directories are otherwise; not /proc,
// /dev, /box and /tmp, which are the box's own as on the host, nor /sys,
// which no box has, nor top-level files. /etc, when a directory, is bound
// whole and lies under the generated files (passwd, group, hosts…), which
// win. root is read once per box start; nothing in it is followed (the
// box's init opens each entry without following it).
func RootBinds(root string) ([]Bind, error) {
	if !filepath.IsAbs(root) || filepath.Clean(root) != root || root == "/" {
		return nil, fmt.Errorf("root %q must be a clean absolute path other than /", root)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	var binds []Bind
	for _, e := range ents {
		name, t := e.Name(), e.Type()
		if rootOwn[name] || !(t.IsDir() || t&fs.ModeSymlink != 0) || (name == "etc" && !t.IsDir()) {
			continue
		}
		binds = append(binds, Bind{Src: filepath.Join(root, name), Dst: "/" + name})
	}
	return binds, nil
}
