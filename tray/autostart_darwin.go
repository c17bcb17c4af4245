package tray

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftmesh/weft/assets"
)

// autostartFile is the per-user LaunchAgent.
func autostartFile() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the LaunchAgents directory: %w", err)
	}
	return filepath.Join(home, "Library", "LaunchAgents", "com.weftmesh.weft-tray.plist"), nil
}

// InstallAutostart writes a LaunchAgent that starts args (the tray's command line) at
// login, and says where. launchd reads it at the next login.
func InstallAutostart(args []string) (string, error) {
	path, err := autostartFile()
	if err != nil {
		return "", err
	}
	plist := strings.Replace(assets.LaunchAgent(), "PROGRAM_ARGUMENTS", plistArgs(args), 1)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(plist), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("install %s: %w", path, err)
	}
	return path, nil
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
