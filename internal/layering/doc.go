// Package layering holds no code: its test enforces the import rules of
// design.md §4 on the whole module.
package layering
