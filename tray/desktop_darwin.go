package tray

import (
	"os"
	"syscall"
)

func (d SystemDesktop) getenv(k string) string {
	if d.Getenv != nil {
		return d.Getenv(k)
	}
	return os.Getenv(k)
}

func openCommands(url string) [][]string { return [][]string{{"open", url}} }

func clipboardCommands(func(string) string) ([][]string, error) {
	return [][]string{{"pbcopy"}}, nil
}

func toolProcAttr() *syscall.SysProcAttr { return nil }
