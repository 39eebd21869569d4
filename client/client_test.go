package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runbox-dev/runbox/client"
)

// These tests need no root: a stand-in server checks what the client
// sends and answers as the API does.

func TestErrorDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		header            http.Header
		want              client.Error
		text              string // Error() is this
	}{
		{"huma's problem", "application/problem+json",
			`{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length <= 32","location":"body.language","value":"x"}],"request_id":"r1"}`,
			422, nil, client.Error{Status: 422, Title: "Unprocessable Entity", Detail: "validation failed", RequestID: "r1",
				Errors: []client.FieldError{{Location: "body.language", Message: "expected length <= 32", Value: "x"}}},
			"runbox: 422 validation failed: body.language: expected length <= 32 (request r1)"},
		{"runbox's own check", "application/problem+json",
			`{"title":"Unprocessable Entity","status":422,"detail":"invalid request: body.files: too many","errors":[{"message":"too many","location":"body.files"}]}`,
			422, http.Header{"X-Request-Id": {"r2"}}, client.Error{Status: 422, Title: "Unprocessable Entity", Detail: "invalid request: body.files: too many", RequestID: "r2",
				Errors: []client.FieldError{{Location: "body.files", Message: "too many"}}},
			"runbox: 422 invalid request: body.files: too many (request r2)"},
		{"busy", "application/problem+json", `{"title":"Too Many Requests","status":429,"detail":"queue full"}`,
			429, http.Header{"Retry-After": {"3"}}, client.Error{Status: 429, Title: "Too Many Requests", Detail: "queue full", RetryAfter: 3 * time.Second},
			"runbox: 429 queue full"},
		{"not a problem", "text/html", "<h1>bad gateway</h1>",
			502, nil, client.Error{Status: 502, Title: "Bad Gateway", Detail: "<h1>bad gateway</h1>"},
			"runbox: 502 <h1>bad gateway</h1>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, err := client.New(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Info(t.Context())
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			if got, want := e.Error(), tc.text; got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
			e.Type = ""
			if got, want := *e, tc.want; got.Status != want.Status || got.Title != want.Title || got.Detail != want.Detail ||
				got.RequestID != want.RequestID || got.RetryAfter != want.RetryAfter || len(got.Errors) != len(want.Errors) {
				t.Errorf("error = %+v, want %+v", got, want)
			}
			for i := range tc.want.Errors {
				if g, w := e.Errors[i], tc.want.Errors[i]; g.Location != w.Location || g.Message != w.Message {
					t.Errorf("errors[%d] = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestRequests(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL+"/prefix/", client.WithToken("k1"), client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := c.PutFile(ctx, "s1", "/box/a dir/b%c.txt", []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSession(ctx, "s/1"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PUT /prefix/v1/sessions/s1/files/box/a%20dir/b%25c.txt?mode=755 Bearer k1",
		"DELETE /prefix/v1/sessions/s%2F1 Bearer k1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range []string{"ftp://x", "http://", "::"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q) took it", bad)
		}
	}
}
