//go:build !windows

package main

func defaultStateDir() string { return "/var/lib/weft" }
