package sandrun

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

const (
	// maxDepth bounds the directories of an uploaded file's path.
	maxDepth = 16
	// maxNameLen is the native API's bound on a file's name.
	maxNameLen = 255
	// maxEntriesFactor bounds the entries (directories, PAX headers) an
	// archive may hold per file allowed, so that an archive of empty
	// directories is refused before it is read to its end.
	maxEntriesFactor = 4
)

// bundle gathers the uploaded files within the native bounds: at most
// maxFiles files and maxBytes decoded bytes in all, so that what passes
// here also passes the native check. Nothing is written anywhere: the
// files go to the native API in its request, which places them in the
// box.
type bundle struct {
	maxFiles int
	maxBytes int64
	total    int64
	files    []upload
	seen     map[string]bool
}

// upload is one file of a submission, its name clean and relative.
type upload struct {
	name    string
	content []byte
}

// refused is a submission's file the adapter will not place in a box;
// its message says why (Sandrun's 400).
type refused struct{ msg string }

func (e *refused) Error() string { return e.msg }

func refuse(format string, a ...any) error { return &refused{msg: fmt.Sprintf(format, a...)} }

func newBundle(maxFiles int, maxBytes int64) *bundle {
	return &bundle{maxFiles: maxFiles, maxBytes: maxBytes, seen: map[string]bool{}}
}

// add reads one file of the name raw from r, within the bundle's bounds.
// The bounds are checked on the bytes actually read, never on the sizes
// an archive declares (a gzip or zip bomb lies about them).
func (b *bundle) add(raw string, r io.Reader) error {
	name, dir, err := cleanName(raw)
	if err != nil || dir {
		return err
	}
	if b.seen[name] {
		return refuse("file %q is uploaded twice", name)
	}
	if len(b.files) >= b.maxFiles {
		return refuse("more than %d files", b.maxFiles)
	}
	content, err := io.ReadAll(io.LimitReader(r, b.maxBytes-b.total+1))
	if err != nil {
		return refuse("cannot read %q: %v", name, err)
	}
	b.total += int64(len(content))
	if b.total > b.maxBytes {
		return refuse("files exceed %d bytes in all", b.maxBytes)
	}
	b.seen[name] = true
	b.files = append(b.files, upload{name: name, content: content})
	return nil
}

// cleanName is an uploaded path's clean relative name and whether it
// names a directory, or the reason it is refused. Sandrun joins these
// names to its job directory unchecked (an arbitrary file write as root);
// here "..", absolute paths, backslashes and drive letters are refused
// because they name places outside the workspace (the zip-slip family,
// CVE-2018-1002200 and its kin).
func cleanName(raw string) (string, bool, error) {
	switch {
	case raw == "" || strings.ContainsRune(raw, 0):
		return "", false, refuse("a file has an empty or NUL-bearing name")
	case strings.HasPrefix(raw, "/") || strings.Contains(raw, "\\") || len(raw) > 1 && raw[1] == ':':
		return "", false, refuse("file %q is an absolute path", raw)
	}
	for _, el := range strings.Split(strings.TrimSuffix(raw, "/"), "/") {
		if el == ".." {
			return "", false, refuse("file %q leaves the job directory (..)", raw)
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", true, nil
	}
	if len(name) > maxNameLen {
		return "", false, refuse("file name %q is longer than %d bytes", name[:32]+"…", maxNameLen)
	}
	if strings.Count(name, "/") > maxDepth {
		return "", false, refuse("file %q is deeper than %d directories", raw, maxDepth)
	}
	return name, strings.HasSuffix(raw, "/"), nil
}

// addTarGz extracts a gzip-compressed tar archive into the bundle:
// regular files only; directories are implied by their files; symlinks,
// hard links, devices, FIFOs and sparse files are refused, since a link
// lets a later entry or the program write or read through it out of the
// workspace.
func (b *bundle) addTarGz(archive string, data []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return refuse("%s is not a gzip archive: %v", archive, err)
	}
	tr := tar.NewReader(zr)
	for entries := 0; ; entries++ {
		if entries > maxEntriesFactor*b.maxFiles+16 {
			return refuse("%s has too many entries", archive)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return refuse("%s is not a valid tar.gz archive: %v", archive, err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg: // the reader reports old archives' NUL type as TypeReg too
			if err := b.add(hdr.Name, tr); err != nil {
				return err
			}
		case tar.TypeDir:
			if _, _, err := cleanName(hdr.Name); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
		default:
			return refuse("%s: entry %q is not a regular file (links, devices and FIFOs are refused)", archive, hdr.Name)
		}
	}
}

// addZip extracts a zip archive into the bundle, with the rules of
// addTarGz. The entry count is checked before anything is decompressed.
func (b *bundle) addZip(archive string, data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return refuse("%s is not a valid zip archive: %v", archive, err)
	}
	if len(zr.File) > maxEntriesFactor*b.maxFiles+16 {
		return refuse("%s has too many entries", archive)
	}
	for _, zf := range zr.File {
		mode := zf.Mode()
		switch {
		case mode.IsDir() || strings.HasSuffix(zf.Name, "/"):
			if _, _, err := cleanName(zf.Name); err != nil {
				return err
			}
			continue
		case !mode.IsRegular():
			return refuse("%s: entry %q is not a regular file (links, devices and FIFOs are refused)", archive, zf.Name)
		}
		rc, err := zf.Open()
		if err != nil {
			return refuse("%s: cannot open %q: %v", archive, zf.Name, err)
		}
		err = b.add(zf.Name, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// fakeTarPrefix starts the one-file "fake tar" Sandrun's web frontend and
// MCP server send: "----Tar\nPath: <name>\n...\n\n<content>".
const fakeTarPrefix = "----Tar\nPath: "

// addFakeTar adds a fake tar's one file.
func (b *bundle) addFakeTar(data []byte) error {
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return refuse("a ----Tar upload has no blank line before its content")
	}
	line, _, _ := strings.Cut(strings.TrimPrefix(string(head), fakeTarPrefix), "\n")
	return b.add(strings.TrimSpace(line), bytes.NewReader(body))
}
