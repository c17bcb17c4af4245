//go:build linux

package tray

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallAutostartXDG(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	path, err := InstallAutostart([]string{"/usr/bin/weft-tray", "--socket", "/run/weft/weftd.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(cfg, "autostart", "weft-tray.desktop") {
		t.Fatalf("installed at %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entry := string(b)
	if !strings.Contains(entry, "\nExec=\"/usr/bin/weft-tray\" \"--socket\" \"/run/weft/weftd.sock\"\n") || strings.Contains(entry, "EXEC") {
		t.Fatalf("desktop entry:\n%s", entry)
	}
	if _, err := RemoveAutostart(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("entry still there: %v", err)
	}
	if _, err := RemoveAutostart(); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
}
