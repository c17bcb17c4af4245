package tray

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

func (d SystemDesktop) getenv(k string) string {
	if d.Getenv != nil {
		return d.Getenv(k)
	}
	return os.Getenv(k)
}

// openCommands hands url to the shell's protocol handler (the default browser) without
// going through cmd.exe, which would interpret & in a URL.
func openCommands(url string) [][]string {
	return [][]string{{"rundll32.exe", "url.dll,FileProtocolHandler", url}}
}

// clipboardCommands uses clip.exe, which ships with Windows; addresses and names are ASCII.
func clipboardCommands(func(string) string) ([][]string, error) {
	return [][]string{{"clip.exe"}}, nil
}

// toolProcAttr keeps helper programs from flashing a console window.
func toolProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{HideWindow: true, CreationFlags: windows.CREATE_NO_WINDOW}
}
