package env

import (
	"os"
	"strings"
	"testing"
)

// The README's language table (scripts/langtable.sh writes it) names every
// embedded environment, in order, with its aliases.
func TestReadmeTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, "<!-- languages:begin -->"), strings.Index(s, "<!-- languages:end -->")
	if i < 0 || j < i {
		t.Fatal("README.md has no language table between its markers")
	}
	var rows [][]string
	for _, line := range strings.Split(s[i:j], "\n") {
		if strings.HasPrefix(line, "| `") {
			cells := strings.Split(line, " | ")
			rows = append(rows, []string{strings.Trim(strings.TrimPrefix(cells[0], "| "), "`"), cells[1]})
		}
	}
	r, err := Load(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	envs := r.List()
	if len(rows) != len(envs) {
		t.Errorf("the table has %d rows, the defaults %d environments: run scripts/langtable.sh", len(rows), len(envs))
	}
	for k, e := range envs {
		if k >= len(rows) {
			break
		}
		if rows[k][0] != e.Name || rows[k][1] != strings.Join(e.Aliases, ", ") {
			t.Errorf("row %d is %q (%s), want %q (%s): run scripts/langtable.sh", k, rows[k][0], rows[k][1], e.Name, strings.Join(e.Aliases, ", "))
		}
	}
}
