//go:build linux

package tray

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCopyUsesTheSessionClipboard(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "clipboard")
	// A stand-in xclip that records what it was given and how.
	script := "#!/bin/sh\necho \"$@\" > " + out + ".args\n/bin/cat > " + out + "\n"
	if err := os.WriteFile(filepath.Join(dir, "xclip"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	env := map[string]string{"DISPLAY": ":0"}
	d := SystemDesktop{Getenv: func(k string) string { return env[k] }}
	if err := d.Copy("100.64.0.2"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	args, _ := os.ReadFile(out + ".args")
	if string(got) != "100.64.0.2" || string(args) != "-selection clipboard -in\n" {
		t.Fatalf("clipboard got %q with args %q", got, args)
	}

	// Wayland is tried first, and a missing tool falls through to the next.
	env["WAYLAND_DISPLAY"] = "wayland-0"
	if err := d.Copy("again"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); string(got) != "again" {
		t.Fatalf("clipboard got %q", got)
	}

	// No session, no clipboard: a clear error, nothing run.
	delete(env, "DISPLAY")
	delete(env, "WAYLAND_DISPLAY")
	if err := d.Copy("x"); err == nil || err.Error() != "no clipboard: this session has no display (DISPLAY and WAYLAND_DISPLAY are unset)" {
		t.Fatalf("copy without a display: %v", err)
	}
	// A display but no tool.
	env["DISPLAY"] = ":0"
	t.Setenv("PATH", t.TempDir())
	if err := d.Copy("x"); !errors.Is(err, errNoTool) {
		t.Fatalf("copy without tools: %v", err)
	}
	if err := d.OpenURL("https://b.test/login/x"); !errors.Is(err, errNoTool) {
		t.Fatalf("open without xdg-open: %v", err)
	}
}
