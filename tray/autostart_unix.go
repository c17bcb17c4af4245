//go:build !darwin && !windows

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

// autostartFile is the XDG autostart entry: $XDG_CONFIG_HOME/autostart/weft-tray.desktop.
func autostartFile() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the autostart directory: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "autostart", "weft-tray.desktop"), nil
}

// InstallAutostart makes the desktop start args (the tray's command line) at login, and
// says where it wrote that.
func InstallAutostart(args []string) (string, error) {
	path, err := autostartFile()
	if err != nil {
		return "", err
	}
	exec, err := desktopExec(args)
	if err != nil {
		return "", err
	}
	entry := strings.Replace(assets.DesktopEntry(), "\nExec=EXEC\n", "\nExec="+exec+"\n", 1)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(entry), 0o644); err != nil {
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
