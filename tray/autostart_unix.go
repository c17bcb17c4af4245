//go:build !darwin && !windows

package tray

import (
	"fmt"
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
	return path, installFile(path, entry)
}
