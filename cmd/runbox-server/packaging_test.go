package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// packagedConfig is the file the Debian package installs as
// /etc/runbox/runbox.toml: every setting, commented out with its default.
const packagedConfig = "../../packaging/runbox.toml"

// settingLine is a commented-out setting ("# key = value", a bare or quoted
// key) or table header ("# [table]"). Explanations never start with a key
// followed by "=".
var settingLine = regexp.MustCompile(`^# ((?:[A-Za-z0-9_-]+|"[^"]*")\s*=\s*\S|\[[A-Za-z0-9_]+\]\s*$)`)

// notDefault are the settings whose value in the file is not serve's
// default, and why.
var notDefault = map[string]string{
	"max_boxes": "its default is the number of CPUs; the file shows an example",
	"data_dir":  "set for the package (the default depends on the user)",
}

// uncomment turns every commented-out setting of the packaged config into a
// setting.
func uncomment(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if settingLine.MatchString(l) {
			lines[i] = strings.TrimPrefix(l, "# ")
		}
	}
	return strings.Join(lines, "\n")
}

// settings maps each setting of a serveConfig, as the TOML file spells it
// ("listen", "defaults.wall_time", "compat_listen"), to its value. A struct
// field is a table whose fields are settings; a map is one setting (its
// keys are the user's).
func settings(v reflect.Value) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := 0; i < v.NumField(); i++ {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			if f := v.Field(i); f.Kind() == reflect.Struct {
				walk(f, prefix+name+".")
			} else {
				out[prefix+name] = f
			}
		}
	}
	walk(v, "")
	return out
}

// sameSetting is reflect.DeepEqual where an empty list or table equals an
// absent one.
func sameSetting(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// TestPackagedConfig keeps packaging/runbox.toml in step with the settings
// runbox serve reads: with every setting uncommented, the file loads the way
// `runbox serve --config` loads it, names no setting serve does not know,
// mentions every setting serve knows, and states serve's defaults.
func TestPackagedConfig(t *testing.T) {
	b, err := os.ReadFile(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	full := uncomment(string(b))
	path := filepath.Join(t.TempDir(), "runbox.toml")
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}

	// The way serve reads it: defaults, then the file, then the checks.
	// No RUNBOX_* variable may change what the file says.
	if _, err := loadServeConfig([]string{"--config", path}, func(string) string { return "" }); err != nil {
		t.Errorf("runbox serve refuses %s with every setting uncommented: %v", packagedConfig, err)
	}

	// Decoded onto nothing, so that each value is the file's own.
	var got serveConfig
	md, err := toml.DecodeFile(path, &got)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range md.Undecoded() {
		t.Errorf("%s names %q, a setting runbox serve does not read", packagedConfig, k.String())
	}
	want := settings(reflect.ValueOf(defaultServeConfig()))
	have := settings(reflect.ValueOf(got))
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !md.IsDefined(strings.Split(k, ".")...) {
			t.Errorf("runbox serve reads %q but %s does not mention it (add it, commented out, with its default)", k, packagedConfig)
			continue
		}
		if _, ok := notDefault[k]; ok {
			continue
		}
		if !sameSetting(have[k], want[k]) {
			t.Errorf("%s: %s = %v, but the default is %v", packagedConfig, k, have[k].Interface(), want[k].Interface())
		}
	}
}

// TestUncomment pins which lines of the packaged config count as settings.
func TestUncomment(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
	}{
		{"setting", `# listen = "127.0.0.1:8080"`, `listen = "127.0.0.1:8080"`},
		{"quoted key", `# "/venv/bin/python" = "python3"`, `"/venv/bin/python" = "python3"`},
		{"table", `# [defaults]`, `[defaults]`},
		{"explanation", `# Requests served at once; each runs one box at a time.`, `# Requests served at once; each runs one box at a time.`},
		{"explanation with a key", `# means data_dir/node.key.`, `# means data_dir/node.key.`},
		{"example in prose", `# own, for example piston = "127.0.0.1:2000".`, `# own, for example piston = "127.0.0.1:2000".`},
		{"setting already on", `data_dir = "/var/lib/runbox"`, `data_dir = "/var/lib/runbox"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := uncomment(tc.line); got != tc.want {
				t.Errorf("uncomment(%q) = %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}
