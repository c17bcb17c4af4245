package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{nil, "usage: weftd run"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"run", "extra"}, `unexpected argument "extra"`},
		{[]string{"run", "--port", "70000"}, "--port 70000 is not a UDP port"},
		{[]string{"run", "--log-level", "loud"}, "log-level"},
		{[]string{"run", "--wg-mode", "fast"}, `--wg-mode: unknown WireGuard mode "fast" (want auto, kernel or userspace)`},
		{[]string{"run", "--wg-mode", ""}, "--wg-mode needs a value"},
		{[]string{"run", "--wg-mode"}, "flag needs an argument"},
		{[]string{"run", "--nope"}, "flag provided but not defined"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != 2 || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("weftd %v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.msg)
		}
	}
}

func TestRunFailsOnCorruptState(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(dir+"/state.json", "{not json"); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run([]string{"run", "--state", dir, "--socket", dir + "/weftd.sock"}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), dir+"/state.json is corrupt") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}
