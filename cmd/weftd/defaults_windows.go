package main

import (
	"os"
	"path/filepath"
)

func defaultStateDir() string {
	if pd := os.Getenv("ProgramData"); pd != "" {
		return filepath.Join(pd, "weft")
	}
	return `C:\ProgramData\weft`
}
