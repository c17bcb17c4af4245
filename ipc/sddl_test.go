package ipc

import (
	"slices"
	"strings"
	"testing"
)

// TestPipeSDDL checks the named pipe's access list on every OS (Windows itself parses it
// only at run time): a protected DACL that admits exactly SYSTEM, Administrators and the
// interactive user, denies network logons first, and grants nobody else anything.
func TestPipeSDDL(t *testing.T) {
	dacl, ok := strings.CutPrefix(pipeSDDL, "D:P(")
	if !ok || !strings.HasSuffix(dacl, ")") {
		t.Fatalf("pipe SDDL %q is not a protected DACL", pipeSDDL)
	}
	type ace struct{ kind, rights, sid string }
	var aces []ace
	for _, a := range strings.Split(strings.TrimSuffix(dacl, ")"), ")(") {
		f := strings.Split(a, ";")
		if len(f) != 6 || f[1] != "" || f[3] != "" || f[4] != "" {
			t.Fatalf("ACE %q: want type;;rights;;;sid with no flags or object types", a)
		}
		aces = append(aces, ace{f[0], f[2], f[5]})
	}
	want := []ace{{"D", "GA", "NU"}, {"A", "GA", "SY"}, {"A", "GA", "BA"}, {"A", "GRGW", "IU"}}
	if !slices.Equal(aces, want) {
		t.Fatalf("pipe ACEs %v, want %v", aces, want)
	}
}
