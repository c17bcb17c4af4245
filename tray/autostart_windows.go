package tray

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/windows/registry"
)

const (
	runKey   = `Software\Microsoft\Windows\CurrentVersion\Run`
	runValue = "weft-tray"
)

// InstallAutostart adds the tray's command line (args) to the user's Run key, so Windows
// starts it at login, and says where.
func InstallAutostart(args []string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("autostart: no command")
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = syscall.EscapeArg(a)
	}
	k, _, err := registry.CreateKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
	if err != nil {
		return "", fmt.Errorf("open HKCU\\%s: %w", runKey, err)
	}
	defer k.Close()
	if err := k.SetStringValue(runValue, strings.Join(quoted, " ")); err != nil {
		return "", fmt.Errorf("set HKCU\\%s\\%s: %w", runKey, runValue, err)
	}
	return `HKCU\` + runKey + `\` + runValue, nil
}

// RemoveAutostart undoes InstallAutostart; with nothing installed it does nothing.
func RemoveAutostart() (string, error) {
	where := `HKCU\` + runKey + `\` + runValue
	k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return where, nil
	}
	if err != nil {
		return "", fmt.Errorf("open HKCU\\%s: %w", runKey, err)
	}
	defer k.Close()
	if err := k.DeleteValue(runValue); err != nil && !errors.Is(err, registry.ErrNotExist) {
		return "", fmt.Errorf("delete %s: %w", where, err)
	}
	return where, nil
}
