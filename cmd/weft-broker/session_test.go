package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/broker"
	"github.com/weftmesh/weft/broker/store"
)

// brokerStore opens the running broker's database beside it, as isAdmin does.
func brokerStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(dir, "broker.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSessionCommands(t *testing.T) {
	dir := startBroker(t)
	for _, args := range [][]string{
		{"account", "create", "acme"},
		{"account", "create", "beta"},
	} {
		if r := runCmd("", append(args, "--data", dir)...); r.code != 0 {
			t.Fatalf("%q: %+v", args, r)
		}
	}
	for _, u := range []string{"ann@example.com", "bob@example.com"} {
		if r := runCmd("correct horse\n", "user", "add", "acme", u, "--password-file", "-", "--data", dir); r.code != 0 {
			t.Fatalf("user add: %+v", r)
		}
	}
	ctx := context.Background()
	s := brokerStore(t, dir)
	acme, err := s.AccountByName(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(email string) (string, store.Session) {
		t.Helper()
		tok, sess, err := s.CreateSession(ctx, acme.ID, email, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok, sess
	}
	ann, annS := issue("ann@example.com")
	ann2, _ := issue("ann@example.com")
	bob, bobS := issue("bob@example.com")
	live := func(tok string) bool {
		t.Helper()
		_, err := s.SessionByToken(ctx, tok)
		if err != nil && !errors.Is(err, store.ErrSessionRevokedByAdmin) {
			t.Fatalf("session: %v", err)
		}
		return err == nil
	}

	r := runCmd("", "session", "list", "acme", "--data", dir)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "ID USER CREATED EXPIRES LAST-USED" ||
		!strings.Contains(r.stdout, annS.ID) || !strings.Contains(r.stdout, bobS.ID) || strings.Contains(r.stdout, ann) {
		t.Fatalf("session list: %+v", r)
	}
	r = runCmd("", "session", "list", "acme", "bob@example.com", "--json", "--data", dir)
	var ss []broker.AdminSession
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ss) != nil || len(ss) != 1 || ss[0].ID != bobS.ID ||
		ss[0].Email != "bob@example.com" || !ss[0].ExpiresAt.Equal(bobS.ExpiresAt) || strings.Contains(r.stdout, bob) {
		t.Fatalf("session list EMAIL --json: %+v", r)
	}

	// Mistakes: one line, non-zero, nothing revoked.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"session", "revoke", "acme"}, 2, "takes 2 argument(s)"},
		{[]string{"session", "revoke", "acme", annS.ID, "--user", "ann@example.com"}, 2, "takes 1 argument(s)"},
		{[]string{"session", "revoke", "acme", annS.ID, "--json"}, 2, "no --json"},
		{[]string{"session", "list"}, 2, "ACCOUNT [EMAIL]"},
		{[]string{"session", "list", "acme", "--user", "ann@example.com"}, 2, "not --user"},
		{[]string{"session", "kill", "acme"}, 2, "unknown session subcommand"},
		{[]string{"session", "revoke", "nope", annS.ID}, 1, `account "nope" not found`},
		{[]string{"session", "revoke", "beta", annS.ID}, 1, "not found"},
		{[]string{"session", "revoke", "acme", "not-an-id"}, 1, "malformed session ID"},
		{[]string{"session", "revoke", "acme", "abc"}, 1, "malformed session ID"},
		{[]string{"session", "revoke", "acme", "--user", "nobody@example.com"}, 1, "not found"},
		{[]string{"session", "list", "nope"}, 1, "not found"},
		{[]string{"session", "list", "acme", "nobody@example.com"}, 1, "not found"},
	} {
		r := runCmd("", append(c.args, "--data", dir)...)
		if r.code != c.code || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
			t.Errorf("%q: %+v; want exit %d and %q", c.args, r, c.code, c.want)
		}
	}
	if !live(ann) || !live(ann2) || !live(bob) {
		t.Fatal("a refused command revoked a session")
	}

	// One, by a short prefix.
	if r := runCmd("", "session", "revoke", "acme", annS.ID[:8], "--data", dir); r.code != 0 ||
		r.stdout != "revoked session "+annS.ID+" of ann@example.com in account acme\n" {
		t.Fatalf("session revoke: %+v", r)
	}
	if live(ann) || !live(ann2) || !live(bob) {
		t.Fatal("revoking one session: want only ann's first ended")
	}
	if r := runCmd("", "session", "revoke", "acme", annS.ID, "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "nothing to revoke") {
		t.Fatalf("revoking twice: %+v", r)
	}
	// All of a user's.
	if r := runCmd("", "session", "revoke", "acme", "--user", "ann@example.com", "--data", dir); r.code != 0 ||
		strings.Count(r.stdout, "revoked session ") != 1 {
		t.Fatalf("session revoke --user: %+v", r)
	}
	if live(ann2) || !live(bob) {
		t.Fatal("revoking ann's sessions: want ann's ended and bob's not")
	}
	if r := runCmd("", "session", "revoke", "acme", "--user", "ann@example.com", "--data", dir); r.code != 0 ||
		r.stdout != "ann@example.com has no live sessions in account acme; nothing revoked\n" {
		t.Fatalf("session revoke --user again: %+v", r)
	}
	if r := runCmd("", "session", "list", "acme", "ann@example.com", "--data", dir); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("ann's sessions after revoking them: %+v", r)
	}
}

func TestPrintSessions(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ss := []broker.AdminSession{
		{ID: "0123456789abcdef", Email: "ann@example.com", CreatedAt: now.Add(-24 * time.Hour), ExpiresAt: now.Add(29 * 24 * time.Hour),
			LastUsed: now.Add(-5 * time.Minute)},
		{ID: "fedcba9876543210", Email: "bob@example.com", CreatedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)},
	}
	var b bytes.Buffer
	if err := printSessions(&b, ss, now); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"ID", "USER", "CREATED", "EXPIRES", "LAST-USED"},
		{"0123456789abcdef", "ann@example.com", "2026-11-24", "12:00Z", "2026-12-24", "12:00Z", "5m", "ago"},
		{"fedcba9876543210", "bob@example.com", "2026-11-25", "12:00Z", "2026-12-25", "12:00Z", "never"},
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
}
