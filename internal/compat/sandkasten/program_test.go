package sandkasten

import (
	"testing"
	"time"
)

func build(env, content string, files ...file) *buildRequest {
	b := &buildRequest{Environment: &env, Files: files}
	b.MainFile = &struct {
		Name    *string `json:"name"`
		Content *string `json:"content"`
	}{Content: &content}
	if err := b.prepare(environment{Source: "main.x"}); err != nil {
		panic(err)
	}
	return b
}

func TestProgramID(t *testing.T) {
	a := build("python", "x", file{"a", "1"}, file{"b", "2"})
	for _, tc := range []struct {
		name string
		b    *buildRequest
		same bool
	}{
		{"same", build("python", "x", file{"a", "1"}, file{"b", "2"}), true},
		{"files reordered", build("python", "x", file{"b", "2"}, file{"a", "1"}), true},
		{"other environment", build("c", "x", file{"a", "1"}, file{"b", "2"}), false},
		{"other content", build("python", "y", file{"a", "1"}, file{"b", "2"}), false},
		{"content moved between files", build("python", "x", file{"a", "12"}, file{"b", ""}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.b.id == a.id) != tc.same {
				t.Fatalf("%s vs %s", tc.b.id, a.id)
			}
		})
	}
	if len(a.id) != 36 || !uuidRE.MatchString(a.id) || normalizeUUID(a.id) != a.id {
		t.Fatalf("not a UUID: %s", a.id)
	}
}

func TestCache(t *testing.T) {
	now := time.Unix(0, 0)
	c := newCache(2, 10, time.Minute, func() time.Time { return now })
	p1, p2, p3 := build("e", "1"), build("e", "2"), build("e", "3")
	if c.put(p1) || !c.put(p1) {
		t.Fatal("a program is known after its first put only")
	}
	now = now.Add(time.Second)
	c.put(p2)
	now = now.Add(time.Second)
	c.get(p1.id) // p2 is now the least recently used
	c.put(p3)
	if c.get(p2.id) != nil || c.get(p1.id) == nil || c.get(p3.id) == nil {
		t.Fatal("the least recently used program was not the one dropped")
	}
	now = now.Add(2 * time.Minute)
	if c.get(p1.id) != nil || len(c.progs) != 0 || c.bytes != 0 {
		t.Fatal("programs outlived their ttl")
	}
	big := build("e", "0123456789abcdef")
	if c.put(big) || c.get(big.id) != nil {
		t.Fatal("a program larger than the cache was kept")
	}
}
