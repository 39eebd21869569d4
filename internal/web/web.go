// Package web owns runbox's pages for people: the playground (an editor
// that runs programs over the API's WebSocket) and the API reference, both
// served from files embedded in the binary. Nothing is loaded from another
// origin, so both work on a machine without internet access. It only
// serves files: it knows the API by its URLs, never by its Go types.
//
// The files in dist/ are generated from the npm sources in ui/ and
// committed, so that `go build` needs no npm; `go generate` rebuilds them.
package web

//go:generate sh ui/build.sh

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed dist
var dist embed.FS

// AssetsPrefix is the path under which Assets serves the bundles; the
// pages refer to them relatively (ui/playground.js), so it is fixed.
const AssetsPrefix = "/ui/"

// Security headers of the pages. The policy lets a page load only what
// runbox serves: its own scripts, styles and API (ws: to the same host
// included), and data: URLs for images and the returned files' download
// links. Inline styles are allowed because CodeMirror and Swagger UI set
// style attributes and inject <style> elements.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

// Playground serves the playground's page.
func Playground() http.Handler { return page("dist/index.html") }

// Docs serves the API reference, a viewer of the server's /openapi.json.
func Docs() http.Handler { return page("dist/docs.html") }

// Assets serves the pages' scripts and styles under AssetsPrefix.
func Assets() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded: it is there
	}
	// The embedded files have no modification time, so a browser gets an
	// ETag of their content to revalidate against: a reload costs a 304,
	// not megabytes, and a new binary's bundle is never mistaken for the
	// old one.
	tags := map[string]string{}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[name] = `"` + hex.EncodeToString(sum[:16]) + `"`
		return nil
	})
	if err != nil {
		panic(err) // dist is embedded: it is readable
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, AssetsPrefix)
		// The pages are served at their own paths, and no directory is
		// listed.
		if !ok || name == "" || strings.HasSuffix(name, ".html") || strings.HasSuffix(name, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		if tag, ok := tags[name]; ok {
			w.Header().Set("ETag", tag)
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = "/"+name, ""
		r2.URL = &u
		files.ServeHTTP(w, r2)
	})
}

// page serves one embedded HTML file.
func page(name string) http.Handler {
	b, err := dist.ReadFile(name)
	if err != nil {
		panic(err) // dist is embedded: it is there
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	})
}
