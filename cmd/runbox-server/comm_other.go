//go:build !linux

package main

// nameSelf does nothing: only Linux runs runbox-server from a memfd.
func nameSelf() {}
