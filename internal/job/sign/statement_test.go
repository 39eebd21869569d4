package sign

import (
	"crypto/ed25519"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSignStatementRoundTrip(t *testing.T) {
	st := testStatement(t, testResult)
	st.KeyID = KeyID(testKey(1).Public().(ed25519.PublicKey))
	cancelled := st
	cancelled.Status, cancelled.Files, cancelled.StartedAt, cancelled.FinishedAt = "cancelled", nil, time.Time{}, time.Time{}
	for name, s := range map[string]Statement{"done": st, "cancelled": cancelled} {
		t.Run(name, func(t *testing.T) {
			text, err := s.Text()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseStatement(text)
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			if !reflect.DeepEqual(got, s) {
				t.Fatalf("parsed %+v\nwant   %+v", got, s)
			}
		})
	}
	text, _ := st.Text()
	want := "runbox job result v1\njob_id: job-1\nstatus: done\nnode: n1\nkey_id: " + st.KeyID + "\n" +
		"request_sha256: " + st.RequestSHA256 + "\nresult_sha256: " + st.ResultSHA256 + "\n" +
		"file: " + sha("hi\n") + " \"out.txt\"\nfile: " + sha("") + " \"a\\nb\\\"c\"\n" +
		"created_at: 2026-12-03T14:00:00.123456789Z\nstarted_at: 2026-12-03T14:00:01.123456789Z\nfinished_at: 2026-12-03T14:00:05.123456789Z\n"
	if text != want {
		t.Fatalf("text\n%s\nwant\n%s", text, want)
	}
}

// No value of a statement can add a line of its own.
func TestSignStatementInjection(t *testing.T) {
	base := testStatement(t, testResult)
	base.KeyID = "ed25519:0123456789abcdef"
	for name, edit := range map[string]func(*Statement){
		"node with newline":   func(s *Statement) { s.Node = "n1\nstatus: done" },
		"job id with CR":      func(s *Statement) { s.JobID = "a\rb" },
		"status with NEL":     func(s *Statement) { s.Status = "done\u0085" },
		"empty node":          func(s *Statement) { s.Node = "" },
		"invalid UTF-8":       func(s *Statement) { s.JobID = "a\xff" },
		"uppercase hash":      func(s *Statement) { s.ResultSHA256 = strings.ToUpper(s.ResultSHA256) },
		"short file hash":     func(s *Statement) { s.Files[0].SHA256 = "abc" },
		"invalid UTF-8 name":  func(s *Statement) { s.Files[0].Name = "\xff" },
		"year out of RFC3339": func(s *Statement) { s.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		t.Run(name, func(t *testing.T) {
			s := base
			s.Files = append([]FileHash(nil), base.Files...)
			edit(&s)
			if text, err := s.Text(); err == nil {
				t.Fatalf("Text accepted it:\n%s", text)
			}
			if _, err := Sign(testKey(1), s); err == nil {
				t.Fatal("Sign accepted it")
			}
		})
	}

	s := base
	s.Files = []FileHash{{Name: "x\nkey_id: evil\n\"", SHA256: sha("")}, {Name: `"quoted" \ <&>`, SHA256: sha("")}}
	text, err := s.Text()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(text, "\n"); n != 12 {
		t.Fatalf("%d lines, want 12:\n%s", n, text)
	}
	if !strings.Contains(text, `"x\nkey_id: evil\n\""`) || !strings.Contains(text, `"\"quoted\" \\ <&>"`) {
		t.Fatalf("names not JSON-quoted:\n%s", text)
	}
	got, err := ParseStatement(text)
	if err != nil || !reflect.DeepEqual(got.Files, s.Files) {
		t.Fatalf("round trip: %v, files %q", err, got.Files)
	}
}

func TestSignParseStatementStrict(t *testing.T) {
	st := testStatement(t, testResult)
	st.KeyID = "ed25519:0123456789abcdef"
	text, err := st.Text()
	if err != nil {
		t.Fatal(err)
	}
	fileLine := "file: " + sha("hi\n") + " \"out.txt\"\n"
	for name, bad := range map[string]string{
		"no final newline":  strings.TrimSuffix(text, "\n"),
		"other header":      strings.Replace(text, "v1", "v2", 1),
		"unknown line":      strings.Replace(text, "node: n1\n", "node: n1\nextra: x\n", 1),
		"out of order":      strings.Replace(text, "status: done\nnode: n1\n", "node: n1\nstatus: done\n", 1),
		"file after times":  strings.Replace(text, fileLine, "", 1) + fileLine,
		"missing line":      strings.Replace(text, "status: done\n", "", 1),
		"time with offset":  strings.Replace(text, "14:00:00.123456789Z", "15:00:00.123456789+01:00", 1),
		"long fraction":     strings.Replace(text, "14:00:00.123456789Z", "14:00:00.123456789000Z", 1),
		"zero time spelled": strings.Replace(text, "2026-12-03T14:00:00.123456789Z", "0001-01-01T00:00:00.000000000Z", 1),
		"name re-spelled":   strings.Replace(text, `"out.txt"`, `"\u006fut.txt"`, 1),
		"space after name":  strings.Replace(text, `"out.txt"`, `"out.txt" `, 1),
		"name not quoted":   strings.Replace(text, `"out.txt"`, `out.txt`, 1),
		"CRLF":              strings.ReplaceAll(text, "\n", "\r\n"),
		"blank line at end": text + "\n",
		"uppercase hex":     strings.Replace(text, st.RequestSHA256, strings.ToUpper(st.RequestSHA256), 1),
		"empty":             "",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseStatement(bad); err == nil {
				t.Fatalf("parsed:\n%s", bad)
			}
		})
	}
}

func FuzzParseStatement(f *testing.F) {
	st := Statement{JobID: "job-1", Node: "n1", Status: "done", KeyID: "ed25519:0123456789abcdef",
		RequestSHA256: sha("req"), ResultSHA256: sha("null"), Files: []FileHash{{"out.txt", sha("")}, {"a\n\"b", sha("x")}},
		CreatedAt: time.Date(2026, 12, 3, 14, 0, 0, 1, time.UTC)}
	text, err := st.Text()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(text)
	f.Add(strings.Replace(text, "node: n1", "node: n1\nnode: n2", 1))
	f.Add(strings.Replace(text, `"out.txt"`, `"\u00e9\ud83d\ude00"`, 1))
	f.Add(strings.Replace(text, "14:00:00.000000001Z", "14:00:00.000000001+00:00", 1))
	f.Add("runbox job result v1\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseStatement(text)
		if err != nil {
			return
		}
		again, err := s.Text()
		if err != nil {
			t.Fatalf("parsed statement does not serialise: %v\n%q", err, text)
		}
		if again != text {
			t.Fatalf("re-serialised\n%q\nparsed\n%q", again, text)
		}
	})
}
