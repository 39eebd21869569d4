package judge0

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"path"
	"strings"
)

// maxZipDepth bounds the directories of an additional file's path.
const maxZipDepth = 16

// unzip reads additional_files (base64 of a .zip) into native files:
// regular files only, at most maxFiles of them and maxBytes in all (the
// native max_files and max_files_bytes, so that what passes here also
// passes the native check), each under a clean relative name. It returns
// the files, or the reason the archive is refused. Nothing is written
// anywhere: the files go to the native API in its request, which places
// them in the box.
//
// The bounds are checked on the bytes actually decompressed, never on the
// sizes the archive declares (a zip bomb lies about them), and the entry
// count before anything is decompressed.
func unzip(b64 string, maxFiles int, maxBytes int64, mainName string) ([]fileIn, string) {
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, "is not valid base64"
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, "is not a valid zip archive: " + err.Error()
	}
	regular := 0
	for _, zf := range zr.File {
		if !strings.HasSuffix(zf.Name, "/") {
			regular++
		}
	}
	if regular > maxFiles {
		return nil, fmt.Sprintf("has %d files; at most %d are allowed", regular, maxFiles)
	}
	var (
		out   []fileIn
		total int64
		seen  = map[string]bool{mainName: true}
	)
	for _, zf := range zr.File {
		name, dir, msg := entryName(zf)
		if msg != "" {
			return nil, msg
		}
		if dir {
			continue
		}
		if seen[name] {
			return nil, fmt.Sprintf("has %q twice (or names the source file)", name)
		}
		seen[name] = true
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Sprintf("cannot open %q: %v", name, err)
		}
		content, err := io.ReadAll(io.LimitReader(rc, maxBytes-total+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Sprintf("cannot read %q: %v", name, err)
		}
		total += int64(len(content))
		if total > maxBytes {
			return nil, fmt.Sprintf("extracts to more than %d bytes", maxBytes)
		}
		out = append(out, fileIn{Name: name, Content: base64.StdEncoding.EncodeToString(content), Encoding: "base64"})
	}
	return out, ""
}

// entryName is a zip entry's clean relative name and whether it is a
// directory, or the reason it is refused. A symlink is refused because a
// later entry (or the program) could write through it out of the
// workspace (the zip-slip family, CVE-2018-1002200 and its kin); "..",
// absolute paths and backslashes because they name places outside it.
func entryName(zf *zip.File) (string, bool, string) {
	raw := zf.Name
	mode := zf.Mode()
	dir := strings.HasSuffix(raw, "/") || mode.IsDir()
	switch {
	case raw == "" || strings.ContainsRune(raw, 0):
		return "", false, "has an entry with an empty or NUL-bearing name"
	case strings.HasPrefix(raw, "/") || strings.Contains(raw, "\\") || len(raw) > 1 && raw[1] == ':':
		return "", false, fmt.Sprintf("entry %q is an absolute path", raw)
	case mode.Type() != 0 && !mode.IsDir():
		return "", false, fmt.Sprintf("entry %q is not a regular file (symlinks and devices are refused)", raw)
	}
	for _, el := range strings.Split(strings.TrimSuffix(raw, "/"), "/") {
		if el == ".." {
			return "", false, fmt.Sprintf("entry %q leaves the workspace (..)", raw)
		}
	}
	name := path.Clean(raw)
	if name == "." {
		return "", true, ""
	}
	if strings.Count(name, "/") > maxZipDepth {
		return "", false, fmt.Sprintf("entry %q is deeper than %d directories", raw, maxZipDepth)
	}
	return name, dir, ""
}
