package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandlers(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", Playground())
	mux.Handle("GET "+AssetsPrefix, Assets())
	mux.Handle("GET /docs", Docs())
	for _, tc := range []struct {
		name, path string
		status     int
		typ, has   string
	}{
		{"playground", "/", 200, "text/html", `src="ui/playground.js"`},
		{"docs", "/docs", 200, "text/html", `src="ui/swagger-ui-bundle.js"`},
		{"bundle", "/ui/playground.js", 200, "text/javascript", "EditorView"},
		{"style", "/ui/playground.css", 200, "text/css", "#console"},
		{"viewer", "/ui/swagger-ui-bundle.js", 200, "text/javascript", "SwaggerUIBundle"},
		{"viewer init", "/ui/docs.js", 200, "text/javascript", "openapi.json"},
		{"no listing", "/ui/", 404, "", ""},
		{"pages not under ui", "/ui/index.html", 404, "", ""},
		{"missing", "/ui/nope.js", 404, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("GET %s: %d, want %d", tc.path, w.Code, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if typ := w.Header().Get("Content-Type"); !strings.HasPrefix(typ, tc.typ) {
				t.Errorf("Content-Type %q, want %s", typ, tc.typ)
			}
			if !strings.Contains(w.Body.String(), tc.has) {
				t.Errorf("GET %s lacks %q", tc.path, tc.has)
			}
		})
	}
}

// TestAssetsRevalidate: a browser that has a bundle gets a 304.
func TestAssetsRevalidate(t *testing.T) {
	h := Assets()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/ui/playground.js", nil))
	tag := w.Header().Get("ETag")
	if w.Code != 200 || tag == "" {
		t.Fatalf("%d, ETag %q", w.Code, tag)
	}
	r := httptest.NewRequest("GET", "/ui/playground.js", nil)
	r.Header.Set("If-None-Match", tag)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes, want 304", w.Code, w.Body.Len())
	}
}

// TestAssetsStayInDist asks Assets itself (a mux would redirect first)
// for files outside dist.
func TestAssetsStayInDist(t *testing.T) {
	for _, p := range []string{"/ui/../web.go", "/ui/../../go.mod", "/ui/%2e%2e/web.go", "/ui//etc/passwd"} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = p
		Assets().ServeHTTP(w, r)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
}

// TestPagesLoadNothingFromElsewhere checks the pages as shipped: every
// src and href is relative (or data:), and the policy says so too.
func TestPagesLoadNothingFromElsewhere(t *testing.T) {
	ref := regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	for _, h := range []http.Handler{Playground(), Docs()} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		body, _ := io.ReadAll(w.Body)
		for _, m := range ref.FindAllStringSubmatch(string(body), -1) {
			if u := m[1]; strings.Contains(u, "//") || strings.HasPrefix(u, "/") {
				t.Errorf("page refers to %q: not relative", u)
			}
		}
		if p := w.Header().Get("Content-Security-Policy"); !strings.Contains(p, "default-src 'self'") {
			t.Errorf("Content-Security-Policy %q", p)
		}
	}
}
