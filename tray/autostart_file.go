//go:build !windows

package tray

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// installFile writes an autostart file (XDG .desktop entry, LaunchAgent plist) through a
// temporary file and a rename, so a login never finds half of one.
func installFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install %s: %w", path, err)
	}
	return nil
}

// RemoveAutostart undoes InstallAutostart; with nothing installed it does nothing.
func RemoveAutostart() (string, error) {
	path, err := autostartFile()
	if err != nil {
		return "", err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove %s: %w", path, err)
	}
	return path, nil
}
