package api

// Requests the boxes would refuse, names that tools would misread, and a
// shared compile whose first client leaves, over a real listener with the
// real jail.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/runbox-dev/runbox/internal/env"
	"github.com/runbox-dev/runbox/internal/runner"
)

// Two identical compiles share one box; the first client leaving must not
// fail the second's request.
func TestSharedCompileSurvivesDisconnect(t *testing.T) {
	if testEnv == nil {
		t.Skip(skipReason)
	}
	reg, err := env.Load(env.Defaults(), fstest.MapFS{"slow.toml": {Data: []byte(`name = "slow"
version = ["/bin/sh", "-c", "echo slow 1"]
source = "main.sh"
compile = ["/bin/sh", "-c", "sleep 2.71 && cp {main} out.sh"]
run = ["/bin/sh", "out.sh"]
`)}})
	if err != nil {
		t.Fatal(err)
	}
	reg.Detect(context.Background(), runner.VersionRunner(testEnv.Jail))
	cache := runner.NewCache(64<<20, time.Hour)
	url, _ := serveWith(t, testConfig(), runner.New(testEnv.Jail, reg, cache), reg)
	body, _ := json.Marshal(map[string]any{"language": "slow", "files": []map[string]string{{"name": "main.sh", "content": "echo compiled"}}})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/run", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	waitUntil(t, func() bool { return len(sleepers("2.71")) == 1 })
	type answer struct {
		code int
		out  map[string]any
	}
	second := make(chan answer, 1)
	go func() {
		code, out, _ := postRaw(t, url, body)
		second <- answer{code, out}
	}()
	waitUntil(t, func() bool { return cache.Waiting() == 2 })
	cancel()
	if err := <-first; err == nil {
		t.Fatal("the first client was not cancelled")
	}
	a := <-second
	if a.code != 200 || field(a.out, "compile", "status") != "ok" || field(a.out, "run", "stdout") != "compiled\n" || a.out["cached"] != true {
		t.Fatalf("the second client, after the first left: %d %v", a.code, a.out)
	}
	waitUntil(t, func() bool { return len(sleepers("2.71")) == 0 })
}

// Requests the boxes cannot take are the client's fault: a 422 naming the
// field before any box, or the limit the program hit; never a 500.
func TestRequestFaults(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes, cfg.MemoryBudget = 4<<20, 256<<20
	url := server(t, cfg)
	small := testConfig()
	small.Defaults.Disk = 64 << 10
	smallURL := server(t, small)
	files := func(n, size int) (fs []map[string]string) {
		for i := range n {
			fs = append(fs, map[string]string{"name": fmt.Sprintf("f%d", i), "content": strings.Repeat("x", size)})
		}
		return fs
	}
	for _, tc := range []struct {
		name, url string
		body      map[string]any
		location  string
	}{
		{"files beyond the disk asked for", url, map[string]any{"command": []string{"true"}, "files": files(8, 9000),
			"limits": map[string]any{"disk_bytes": 64 << 10}}, "body.limits.disk_bytes"},
		{"files beyond the default disk", smallURL, map[string]any{"command": []string{"true"}, "files": files(8, 9000)}, "body.files"},
		{"files beyond the compile box's disk", url, map[string]any{"language": "c", "files": append(files(7, 9000), map[string]string{"name": "main.c", "content": "int main(){}"}),
			"compile_limits": map[string]any{"disk_bytes": 64 << 10}}, "body.compile_limits.disk_bytes"},
		{"argv beyond a box's config", url, map[string]any{"command": []string{"/bin/echo"}, "args": strings.Split(strings.Repeat(strings.Repeat("a", 120<<10)+",", 10), ",")[:10]}, "body.args"},
		{"one argument beyond its maximum", url, map[string]any{"command": []string{"/bin/echo"}, "args": []string{strings.Repeat("a", 200<<10)}}, "body.args[0]"},
		{"one variable beyond its maximum", url, map[string]any{"command": []string{"/bin/env"}, "env": map[string]string{"BIG": strings.Repeat("a", 200<<10)}}, "body.env.BIG"},
		{"case args beyond a box's config", url, map[string]any{"command": []string{"/bin/echo"}, "cases": []map[string]any{{},
			{"args": strings.Split(strings.Repeat(strings.Repeat("a", 120<<10)+",", 10), ",")[:10]}}}, "body.cases[1].args"},
		{"a 70 KB command name", url, map[string]any{"command": []string{strings.Repeat("a", 70_000)}}, "body.command[0]"},
		{"a 70 KB command path", url, map[string]any{"command": []string{"/" + strings.Repeat("a/", 35_000) + "x"}}, "body.command[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := post(t, tc.url, tc.body)
			wantProblem(t, code, out, 422, tc.location)
		})
	}
	t.Run("a compiled program larger than the run box's disk", func(t *testing.T) {
		requireLanguage(t, "c")
		code, out, _ := post(t, url, map[string]any{"language": "c", "limits": map[string]any{"disk_bytes": 64 << 10},
			"files": []map[string]string{{"name": "main.c", "content": "char big[300000] = {1};\nint main(void) { return big[0] - 1; }\n"}}})
		msg, _ := field(out, "compile", "message").(string)
		if code != 200 || field(out, "compile", "status") != "output_limit" || !strings.Contains(msg, "disk_bytes") || out["run"] != nil {
			t.Fatalf("%d %v", code, out)
		}
		t.Logf("compile message: %s", msg)
	})
	assertNoBoxes(t)
}

func requireLanguage(t *testing.T, name string) {
	t.Helper()
	e, err := testReg.Lookup(name)
	if err != nil || !e.Available {
		t.Skipf("requires the %s toolchain", name)
	}
}

// File names from a request never reach a compiler as options or response
// files; returned names keep their exact bytes.
func TestNames(t *testing.T) {
	url := server(t, testConfig())
	for _, lang := range []struct{ name, ext string }{{"c", ".c"}, {"c++", ".cpp"}} {
		t.Run(lang.name, func(t *testing.T) {
			requireLanguage(t, lang.name)
			plugin := buildPlugin(t)
			read := func(name string) string {
				b, err := os.ReadFile(filepath.Join("testdata", "fplugin", name))
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			for attack, files := range map[string][]map[string]string{
				// gcc reads "-fplugin=./p.c" as an option and loads p.c.
				"-fplugin": {{"name": "main" + lang.ext, "content": read("main.c")},
					{"name": "-fplugin=./p" + lang.ext, "content": read("option.c")},
					{"name": "p" + lang.ext, "content": plugin, "encoding": "base64"}},
				// gcc reads "@o.c" as a file of options.
				"@file": {{"name": "main" + lang.ext, "content": read("main.c")},
					{"name": "@o" + lang.ext, "content": "-fplugin=./p" + lang.ext + "\n"},
					{"name": "p" + lang.ext, "content": plugin, "encoding": "base64"}},
			} {
				code, out, _ := post(t, url, map[string]any{"language": lang.name, "main": "main" + lang.ext, "files": files})
				stderr, _ := field(out, "compile", "stderr").(string)
				if code != 200 || field(out, "compile", "status") == "ok" || strings.Contains(stderr, "PLUGIN LOADED") || strings.Contains(stderr, "cannot load plugin") {
					t.Fatalf("%s: %d compile %v", attack, code, out["compile"])
				}
			}
		})
	}
	t.Run("a main file whose stem is an option", func(t *testing.T) {
		// An environment whose argv uses {stem} (typescript: node {stem}.js)
		// cannot pass "-version" as ./-version: it refuses the name.
		var e *env.Environment
		for _, c := range testReg.List() {
			if c.Available && strings.Contains(strings.Join(append(append([]string{}, c.Compile...), c.Run...), " "), "{stem}") {
				e = c
				break
			}
		}
		if e == nil {
			t.Skip("requires an available environment that uses {stem}")
		}
		code, out, _ := post(t, url, map[string]any{"language": e.Name, "files": []map[string]string{{"name": "-version" + path.Ext(e.Source), "content": "x"}}})
		wantProblem(t, code, out, 422, "body.files[0].name")
	})
	t.Run("a main file named like an option, in a step script", func(t *testing.T) {
		// java's steps are scripts that take names as arguments only:
		// "-version.java" is a file, and no class in it has main.
		requireLanguage(t, "java")
		code, out, _ := post(t, url, map[string]any{"language": "java", "files": []map[string]string{{"name": "-version.java", "content": "class X {}"}}})
		if stderr, _ := field(out, "compile", "stderr").(string); code != 200 || field(out, "compile", "status") == "ok" ||
			!strings.Contains(stderr, "no class has a public static void main") {
			t.Fatalf("%d %v", code, out)
		}
	})
	t.Run("returned names that are not UTF-8", func(t *testing.T) {
		code, out, _ := post(t, url, map[string]any{"command": []string{"/bin/sh", "-c", `printf 1 > "$(printf 'a\377')"; printf 2 > "$(printf 'a\376')"`},
			"outputs": []string{"**"}})
		files, _ := out["files"].([]any)
		if code != 200 || len(files) != 2 {
			t.Fatalf("%d %v", code, out)
		}
		got := map[string]string{}
		for _, f := range files {
			f := f.(map[string]any)
			raw, _ := base64.StdEncoding.DecodeString(fmt.Sprint(f["name_base64"]))
			content, _ := base64.StdEncoding.DecodeString(fmt.Sprint(f["content"]))
			if f["name"] != "a\ufffd" {
				t.Errorf("name %q", f["name"])
			}
			got[string(raw)] = string(content)
		}
		if got["a\xff"] != "1" || got["a\xfe"] != "2" {
			t.Fatalf("names and contents %q", got)
		}
	})
}

// buildPlugin compiles testdata/fplugin/plugin.c into a shared object with
// the host's gcc and returns it in base64.
func buildPlugin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "p.so")
	if b, err := exec.Command("gcc", "-shared", "-fPIC", "-o", out, filepath.Join("testdata", "fplugin", "plugin.c")).CombinedOutput(); err != nil {
		t.Skipf("requires gcc on the host to build the plugin: %v %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
