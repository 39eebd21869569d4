package env

import (
	"errors"
	"os"
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
	if _, err := r.Lookup("intercal"); !errors.Is(err, ErrUnknown) {
		t.Errorf("intercal: %v", err)
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
	got, err := Expand([]string{"gcc", "-o", "{stem}", "{sources}", "-DMAIN={main}"}, "main.c", []string{"z.c", "main.c", "util.h", "a.c"})
	if err != nil || strings.Join(got, " ") != "gcc -o main a.c main.c z.c -DMAIN=main.c" {
		t.Fatalf("%q %v", got, err)
	}
}

// Names from a request never reach a tool as options or response files.
func TestExpandNamesAreNeverOptions(t *testing.T) {
	cases := []struct {
		name  string
		argv  []string
		main  string
		files []string
		want  string
		err   error
	}{
		{"plugin as a source", []string{"gcc", "-o", "main", "{sources}"}, "main.c", []string{"main.c", "-fplugin=./p.c"},
			"gcc -o main ./-fplugin=./p.c main.c", nil},
		{"response file as a source", []string{"gcc", "{sources}"}, "main.c", []string{"main.c", "@opts.c"}, "gcc ./@opts.c main.c", nil},
		{"option as the main file", []string{"python3", "{main}"}, "-c.py", []string{"-c.py"}, "python3 ./-c.py", nil},
		{"main embedded", []string{"tool", "--file={main}", "{main}.o"}, "-x.c", []string{"-x.c"}, "tool --file=-x.c ./-x.c.o", nil},
		{"subdirectory", []string{"cc", "{main}"}, "-d/main.c", []string{"-d/main.c"}, "cc ./-d/main.c", nil},
		{"plain names untouched", []string{"cc", "{main}", "{sources}"}, "_a.c", []string{"_a.c", ".b.c", "9.c"}, "cc _a.c .b.c 9.c _a.c", nil},
		{"option-like stem", []string{"java", "{stem}"}, "-version.java", []string{"-version.java"}, "", ErrUnsafeStem},
		{"stem of a file in a directory", []string{"java", "{stem}"}, "d/-X.java", []string{"d/-X.java"}, "", ErrUnsafeStem},
		{"stem unused", []string{"javac", "{main}"}, "-version.java", []string{"-version.java"}, "javac ./-version.java", nil},
		{"empty stem", []string{"cc", "-o", "{stem}", "{main}"}, ".c", []string{".c"}, "", ErrUnsafeStem},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Expand(tc.argv, tc.main, tc.files)
			if !errors.Is(err, tc.err) || strings.Join(got, " ") != tc.want {
				t.Fatalf("%q %v; want %q %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// FuzzExpand: whatever the file names, no argument that begins with a
// name from the request begins like an option or a response file.
func FuzzExpand(f *testing.F) {
	f.Add("main.c", "-fplugin=./p.c")
	f.Add("@x.c", "+y.c")
	f.Add("-", "--")
	f.Fuzz(func(t *testing.T, main, other string) {
		argv := []string{"/usr/bin/tool", "{main}", "{sources}", "-o", "{stem}"}
		got, err := Expand(argv, main, []string{main, other})
		if err != nil {
			if !errors.Is(err, ErrUnsafeStem) {
				t.Fatal(err)
			}
			return
		}
		for _, a := range got[1:] {
			if a != "-o" && a != "" && (a[0] == '-' || a[0] == '@' || a[0] == '+') {
				t.Fatalf("argument %q from main %q, other %q", a, main, other)
			}
		}
	})
}

// The example image environments load beside the defaults, each with its
// conformance program (a link to the host language's), and name an image.
func TestExampleImageEnvironments(t *testing.T) {
	reg, err := Load(Defaults(), os.DirFS("../../examples/environments"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"python3.12", "python3.13", "node22"} {
		e, err := reg.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if e.Image == "" || len(e.Conformance) == 0 || len(e.Mounts) > 0 {
			t.Errorf("%s: image %q, %d conformance files, mounts %v", name, e.Image, len(e.Conformance), e.Mounts)
		}
	}
	if got := reg.Images(); len(got) != 3 {
		t.Errorf("Images() = %v, want the three examples'", got)
	}
}

func TestImageEnvironmentValidation(t *testing.T) {
	for _, tc := range []struct{ name, toml, want string }{
		{"mounts with an image", "name = \"x\"\nimage = \"r/x:1\"\nversion = [\"v\"]\nsource = \"m\"\nrun = [\"r\"]\nmounts = [{src = \"/a\", dst = \"/a\"}]\n", "mounts are host paths"},
		{"space in the reference", "name = \"x\"\nimage = \"r/x :1\"\nversion = [\"v\"]\nsource = \"m\"\nrun = [\"r\"]\n", "without spaces"},
	} {
		_, err := Load(fstest.MapFS{"x.toml": {Data: []byte(tc.toml)}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
