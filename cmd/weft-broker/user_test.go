package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/broker/store"
)

// isAdmin reads a user's role from the running broker's database.
func isAdmin(t *testing.T, dir, account, email string) bool {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(dir, "broker.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.AccountByName(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	_, sess, err := s.CreateSession(ctx, a.ID, email, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return sess.Admin
}

func TestUserRoles(t *testing.T) {
	dir := startBroker(t)
	if r := runCmd("", "account", "create", "acme", "--data", dir); r.code != 0 {
		t.Fatalf("account create: %+v", r)
	}
	if r := runCmd("correct horse\n", "user", "add", "acme", "ann@example.com", "--password-file", "-", "--admin", "--data", dir); r.code != 0 ||
		r.stdout != "added user ann@example.com to account acme as an administrator\n" {
		t.Fatalf("user add --admin: %+v", r)
	}
	if r := runCmd("battery staple\n", "user", "add", "acme", "bob@example.com", "--password-file", "-", "--data", dir); r.code != 0 {
		t.Fatalf("user add: %+v", r)
	}
	if !isAdmin(t, dir, "acme", "ann@example.com") || isAdmin(t, dir, "acme", "bob@example.com") {
		t.Fatal("roles after user add: want ann an administrator and bob not")
	}

	if r := runCmd("", "user", "admin", "acme", "bob@example.com", "on", "--data", dir); r.code != 0 ||
		r.stdout != "bob@example.com is now an administrator of account acme\n" {
		t.Fatalf("user admin on: %+v", r)
	}
	if r := runCmd("", "user", "admin", "acme", "ann@example.com", "off", "--data", dir); r.code != 0 ||
		!strings.Contains(r.stdout, "no longer an administrator") {
		t.Fatalf("user admin off: %+v", r)
	}
	if isAdmin(t, dir, "acme", "ann@example.com") || !isAdmin(t, dir, "acme", "bob@example.com") {
		t.Fatal("roles after user admin: want bob an administrator and ann not")
	}

	// Mistakes change nothing.
	for _, args := range [][]string{
		{"user", "admin", "acme", "bob@example.com", "yes"},
		{"user", "admin", "acme", "bob@example.com"},
		{"user", "admin", "acme", "bob@example.com", "off", "--admin"},
	} {
		if r := runCmd("", append(args, "--data", dir)...); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: %+v; want a usage error", args, r)
		}
	}
	for _, args := range [][]string{
		{"user", "admin", "acme", "nobody@example.com", "on"},
		{"user", "admin", "nope", "bob@example.com", "off"},
	} {
		if r := runCmd("", append(args, "--data", dir)...); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("%q: %+v; want not found", args, r)
		}
	}
	if !isAdmin(t, dir, "acme", "bob@example.com") {
		t.Fatal("a refused command changed a role")
	}
}
