package tray

import (
	"fmt"
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
	return path, installFile(path, plist)
}
