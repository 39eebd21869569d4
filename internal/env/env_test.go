package env

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestDefaultsLoad(t *testing.T) {
	r, err := Load(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"python", "javascript", "c", "c++", "go", "java", "rust", "bash", "perl"}
	for _, name := range want {
		e, err := r.Lookup(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(e.Conformance) < 2 {
			t.Errorf("%s: conformance program has %d files; want a main file and a second one", name, len(e.Conformance))
		}
		if _, ok := e.Conformance[e.Source]; !ok {
			t.Errorf("%s: conformance program lacks its main file %s", name, e.Source)
		}
	}
	for alias, name := range map[string]string{"py": "python", "PY": "python", "js": "javascript", "cpp": "c++", "golang": "go", "node": "javascript"} {
		if e, err := r.Lookup(alias); err != nil || e.Name != name {
			t.Errorf("alias %s: %v %v", alias, e, err)
		}
	}
	if _, err := r.Lookup("cobol"); !errors.Is(err, ErrUnknown) {
		t.Errorf("cobol: %v", err)
	}
	c, _ := r.Lookup("c++")
	if time.Duration(c.CompileLimits.WallTime) != 60*time.Second || c.CompileLimits.Memory != 1<<30 {
		t.Errorf("c++ compile limits %+v", c.CompileLimits)
	}
}

func TestOperatorFilesOverrideAndAdd(t *testing.T) {
	ops := fstest.MapFS{
		"python.toml":  {Data: []byte("name = \"python\"\nversion = [\"/opt/py/bin/python\", \"-V\"]\nsource = \"app.py\"\nrun = [\"/opt/py/bin/python\", \"{main}\"]\n")},
		"lua.toml":     {Data: []byte("name = \"lua\"\naliases = [\"lua5.4\"]\nversion = [\"lua\", \"-v\"]\nsource = \"main.lua\"\nrun = [\"lua\", \"{main}\"]\n")},
		"lua/main.lua": {Data: []byte("print('OK')")},
	}
	r, err := Load(Defaults(), ops)
	if err != nil {
		t.Fatal(err)
	}
	py, _ := r.Lookup("python")
	if py.Source != "app.py" {
		t.Errorf("python not overridden: %+v", py)
	}
	lua, err := r.Lookup("lua5.4")
	if err != nil || lua.Name != "lua" || string(lua.Conformance["main.lua"]) != "print('OK')" {
		t.Errorf("lua: %+v %v", lua, err)
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	cases := map[string]string{
		"unknown field":   "name = \"x\"\nversion = [\"v\"]\nsource = \"m\"\nrun = [\"r\"]\nrnu = [\"typo\"]\n",
		"no run":          "name = \"x\"\nversion = [\"v\"]\nsource = \"m\"\n",
		"bad name":        "name = \"X Y\"\nversion = [\"v\"]\nsource = \"m\"\nrun = [\"r\"]\n",
		"source in a dir": "name = \"x\"\nversion = [\"v\"]\nsource = \"../m\"\nrun = [\"r\"]\n",
		"bad limit":       "name = \"x\"\nversion = [\"v\"]\nsource = \"m\"\nrun = [\"r\"]\n[limits]\nmemory = \"lots\"\n",
		"relative mount":  "name = \"x\"\nversion = [\"v\"]\nsource = \"m\"\nrun = [\"r\"]\nmounts = [{src = \"opt\", dst = \"/opt\"}]\n",
		"alias clash":     "name = \"x\"\naliases = [\"py\"]\nversion = [\"v\"]\nsource = \"m\"\nrun = [\"r\"]\n",
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(Defaults(), fstest.MapFS{"x.toml": {Data: []byte(text)}}); err == nil {
				t.Fatal("loaded")
			}
		})
	}
}

func TestExpand(t *testing.T) {
	got := Expand([]string{"gcc", "-o", "{stem}", "{sources}", "-DMAIN={main}"}, "main.c", []string{"z.c", "main.c", "util.h", "a.c"})
	if strings.Join(got, " ") != "gcc -o main a.c main.c z.c -DMAIN=main.c" {
		t.Fatalf("%q", got)
	}
}
