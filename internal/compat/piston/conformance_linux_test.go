package piston

import (
	"encoding/json"
	"testing"

	"github.com/runbox-dev/runbox/internal/env"
)

// Every environment's conformance program (a main file importing a second
// file, stdin, args, a workspace file; it prints OK) run through Piston's
// execute as a Piston client sends it: the main file first, every file
// named, stdin and args. Piston's own packages are tested the same way
// (a test program per language that prints OK).
func TestConformanceThroughPiston(t *testing.T) {
	base := server(t)
	have := available(t, base)
	reg, err := env.Load(env.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range reg.List() {
		t.Run(e.Name, func(t *testing.T) {
			if !have[e.Name] {
				t.Skipf("this host has no %s toolchain", e.Name)
			}
			files := []any{map[string]any{"name": e.Source, "content": string(e.Conformance[e.Source])}}
			for name, content := range e.Conformance {
				if name != e.Source {
					files = append(files, map[string]any{"name": name, "content": string(content)})
				}
			}
			files = append(files, map[string]any{"name": "test.txt", "content": "test\n"})
			body, _ := json.Marshal(map[string]any{"language": e.Name, "version": "*", "files": files,
				"stdin": "stdin", "args": []string{"foo", "bar", "baz"}})
			status, _, v := post(t, base, "application/json", string(body))
			if status != 200 || field(v, "run.stdout") != "OK\n" || field(v, "run.code") != 0.0 {
				t.Fatalf("%d: compile %v\nrun %v", status, v["compile"], v["run"])
			}
			if e.Compiled() && field(v, "compile.code") != 0.0 {
				t.Errorf("compile stage %v", v["compile"])
			}
			ran++
		})
	}
	if ran == 0 {
		t.Fatal("no environment ran")
	}
}
