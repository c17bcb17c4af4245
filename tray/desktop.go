package tray

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// toolTimeout bounds a desktop helper (browser launcher, clipboard tool).
const toolTimeout = 10 * time.Second

// SystemDesktop opens URLs and copies text with the platform's own tools.
type SystemDesktop struct {
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// errNoTool says no helper program for a job is installed.
var errNoTool = errors.New("no helper program found")

// runTool runs the first of cmds whose program exists, with stdin as its input.
func runTool(cmds [][]string, stdin string) error {
	for _, c := range cmds {
		path, err := exec.LookPath(c[0])
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		cmd := exec.CommandContext(ctx, path, c[1:]...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		cmd.SysProcAttr = toolProcAttr()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", c[0], err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c[0]
	}
	return fmt.Errorf("%w: install one of %s", errNoTool, strings.Join(names, ", "))
}

// OpenURL opens url in the user's browser.
func (d SystemDesktop) OpenURL(url string) error { return runTool(openCommands(url), "") }

// Copy puts text on the clipboard.
func (d SystemDesktop) Copy(text string) error {
	cmds, err := clipboardCommands(d.getenv)
	if err != nil {
		return err
	}
	return runTool(cmds, text)
}
