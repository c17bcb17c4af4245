package tray

import (
	"strings"
	"testing"
)

func TestDesktopExec(t *testing.T) {
	got, err := desktopExec([]string{"/opt/weft tray/weft-tray", "--socket", `/run/we$ft/"a"\b`, "100%"})
	if err != nil {
		t.Fatal(err)
	}
	want := `"/opt/weft tray/weft-tray" "--socket" "/run/we\\$ft/\\"a\\"\\\\b" "100%%"`
	if got != want {
		t.Fatalf("Exec=%s\nwant  %s", got, want)
	}
	if _, err := desktopExec([]string{"weft-tray", "a\nb"}); err == nil {
		t.Fatal("accepted a newline in an argument")
	}
	if _, err := desktopExec(nil); err == nil {
		t.Fatal("accepted no command")
	}
}

func TestPlistArgs(t *testing.T) {
	got := plistArgs([]string{"/Applications/weft-tray", "--socket", "/tmp/a&b<c>"})
	if !strings.Contains(got, "<string>/tmp/a&amp;b&lt;c&gt;</string>") || strings.Count(got, "<string>") != 3 {
		t.Fatalf("plist args:\n%s", got)
	}
}
