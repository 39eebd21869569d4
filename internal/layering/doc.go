// Package layering holds the import rules of design.md §4: its test
// enforces them on the whole module. Its one function, ServerPackage, names
// what the front runbox must not link; the front's own test checks its
// running binary against it too.
package layering
