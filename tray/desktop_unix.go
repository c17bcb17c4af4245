//go:build !darwin && !windows

package tray

import (
	"errors"
	"os"
	"syscall"
)

func (d SystemDesktop) getenv(k string) string {
	if d.Getenv != nil {
		return d.Getenv(k)
	}
	return os.Getenv(k)
}

func openCommands(url string) [][]string { return [][]string{{"xdg-open", url}} }

// clipboardCommands lists the clipboard tools for the session: Wayland's, then X11's.
// Without a graphical session there is no clipboard to copy to.
func clipboardCommands(getenv func(string) string) ([][]string, error) {
	var cmds [][]string
	if getenv("WAYLAND_DISPLAY") != "" {
		cmds = append(cmds, []string{"wl-copy"})
	}
	if getenv("DISPLAY") != "" {
		cmds = append(cmds, []string{"xclip", "-selection", "clipboard", "-in"}, []string{"xsel", "--clipboard", "--input"})
	}
	if len(cmds) == 0 {
		return nil, errors.New("no clipboard: this session has no display (DISPLAY and WAYLAND_DISPLAY are unset)")
	}
	return cmds, nil
}

func toolProcAttr() *syscall.SysProcAttr { return nil }
