// Package hygiene holds repository-wide checks that CI enforces: formatting, the direction
// of package dependencies, and that every supported OS still compiles.
package hygiene

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/weftmesh/weft"

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func goCmd(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestGofmt(t *testing.T) {
	cmd := exec.Command("gofmt", "-l", ".")
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gofmt: %v\n%s", err, out)
	}
	var bad []string
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasPrefix(f, "third_party/") {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		t.Errorf("not gofmt'ed: %v", bad)
	}
}

// ourDeps lists the packages of this module that pkg depends on, for goos.
func ourDeps(t *testing.T, goos, pkg string) []string {
	out := goCmd(t, []string{"GOOS=" + goos, "CGO_ENABLED=0"}, "list", "-deps", pkg)
	var deps []string
	for _, p := range strings.Fields(out) {
		if strings.HasPrefix(p, module+"/") && p != module+"/"+strings.TrimPrefix(pkg, "./") {
			deps = append(deps, strings.TrimPrefix(p, module+"/"))
		}
	}
	return deps
}

// TestDependencyDirection: cmd → service/broker/relay/tray → mesh/ipc/platform → wire; the CLI
// and tray talk to weftd only through ipc and wire; wire imports nothing of ours.
func TestDependencyDirection(t *testing.T) {
	allowed := map[string][]string{
		"./cmd/weft":      {"ipc", "wire"},
		"./cmd/weft-tray": {"tray", "assets", "ipc", "wire"},
		"./wire":          {},
	}
	for pkg, ok := range allowed {
		for _, goos := range []string{"linux", "windows", "darwin"} {
			for _, d := range ourDeps(t, goos, pkg) {
				if !contains(ok, d) {
					t.Errorf("%s (GOOS=%s) depends on %s; it may use only %v", pkg, goos, d, ok)
				}
			}
		}
	}
	// Lower layers never import higher ones.
	lower := map[string][]string{
		"./mesh/...":     {"service", "broker", "cmd", "tray", "relay"},
		"./ipc/...":      {"service", "broker", "cmd", "tray", "relay", "mesh"},
		"./platform/...": {"service", "broker", "cmd", "tray", "relay", "mesh", "ipc"},
	}
	for pkg, banned := range lower {
		for _, d := range ourDeps(t, "linux", pkg) {
			for _, b := range banned {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("%s depends on %s, a higher layer", pkg, d)
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCrossCompile: every binary builds for every supported OS without cgo.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiling is slow; skipped with -short")
	}
	for _, target := range []string{"windows/amd64", "darwin/arm64", "linux/arm64"} {
		goos, goarch, _ := strings.Cut(target, "/")
		t.Run(goos+"_"+goarch, func(t *testing.T) {
			goCmd(t, []string{"GOOS=" + goos, "GOARCH=" + goarch, "CGO_ENABLED=0"}, "build", "-o", os.DevNull, "./cmd/...")
		})
	}
}
