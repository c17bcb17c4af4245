package store

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sessionIDs names sessions by user and ID, for comparing lists.
func sessionIDs(ss []Session) []string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.Email+" "+s.ID)
	}
	return ids
}

func TestSessionAdmin(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t)
	acme := mustAccount(t, s, "acme")
	beta := mustAccount(t, s, "beta")
	for _, u := range []struct {
		account, email string
	}{{"acme", "ann@example.com"}, {"acme", "bob@example.com"}, {"beta", "cy@example.com"}} {
		if err := s.AddUser(ctx, u.account, u.email, "correct horse"); err != nil {
			t.Fatal(err)
		}
	}
	issue := func(a Account, email string) (string, Session) {
		t.Helper()
		tok, sess, err := s.CreateSession(ctx, a.ID, email, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(sess.ID) {
			t.Fatalf("session ID %q is not 16 hex digits", sess.ID)
		}
		return tok, sess
	}
	ann1, ann1s := issue(acme, "ann@example.com")
	c.Advance(time.Minute)
	ann2, ann2s := issue(acme, "ann@example.com")
	bob, bobs := issue(acme, "bob@example.com")
	cy, cys := issue(beta, "cy@example.com")
	if got, err := s.SessionByToken(ctx, ann1); err != nil || got.ID != ann1s.ID {
		t.Fatalf("by token: ID %q, %v; want %q", got.ID, err, ann1s.ID)
	}

	list := func(account, email string) []string {
		t.Helper()
		ss, err := s.AccountSessions(ctx, account, email)
		if err != nil {
			t.Fatalf("list %s %s: %v", account, email, err)
		}
		return sessionIDs(ss)
	}
	want := []string{"ann@example.com " + ann1s.ID, "ann@example.com " + ann2s.ID, "bob@example.com " + bobs.ID}
	if got := list("acme", ""); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("acme sessions %q, want %q", got, want)
	}
	if got := list("acme", "Bob@Example.com"); len(got) != 1 || got[0] != want[2] {
		t.Fatalf("bob's sessions %q", got)
	}
	// ann's first session was used once, when her second was issued; the second never.
	ss, _ := s.AccountSessions(ctx, "acme", "ann@example.com")
	if !ss[0].LastUsed.Equal(ann2s.CreatedAt) || !ss[1].LastUsed.IsZero() || !ss[0].ExpiresAt.Equal(ann1s.ExpiresAt) {
		t.Fatalf("ann's sessions %+v", ss)
	}

	// Bad input: a one-line reason, and nothing changes.
	for _, bad := range []struct {
		account, id string
		want        error
	}{
		{"nope", ann1s.ID, ErrNotFound},
		{"acme", "0123", ErrInvalid},               // too short to name one
		{"acme", "zz" + ann1s.ID[2:], ErrInvalid},  // not hex
		{"acme", ann1s.ID + "00", ErrInvalid},      // too long
		{"acme", "", ErrInvalid},                   // nothing
		{"beta", ann1s.ID, ErrNotFound},            // another account's
		{"acme", flipFirst(ann1s.ID), ErrNotFound}, // no such session
	} {
		_, err := s.RevokeSessionID(ctx, bad.account, bad.id)
		if !errors.Is(err, bad.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("revoke %s %q: %v, want %v", bad.account, bad.id, err, bad.want)
		}
	}
	for _, bad := range []struct{ account, email string }{{"nope", "ann@example.com"}, {"acme", "cy@example.com"}} {
		if _, err := s.RevokeUserSessions(ctx, bad.account, bad.email); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke all of %s in %s: %v", bad.email, bad.account, err)
		}
		if _, err := s.AccountSessions(ctx, bad.account, bad.email); !errors.Is(err, ErrNotFound) {
			t.Errorf("list %s in %s: %v", bad.email, bad.account, err)
		}
	}
	if got := list("acme", ""); len(got) != 3 {
		t.Fatalf("refused revocations changed the sessions: %q", got)
	}
	for _, tok := range []string{ann1, ann2, bob, cy} {
		if _, err := s.SessionByToken(ctx, tok); err != nil {
			t.Fatalf("a refused revocation ended a session: %v", err)
		}
	}

	// By a prefix (any case): that session ends at once, with its own reason; no other does.
	got, err := s.RevokeSessionID(ctx, "acme", strings.ToUpper(ann1s.ID[:MinSessionIDPrefix]))
	if err != nil || got.ID != ann1s.ID || got.Email != "ann@example.com" {
		t.Fatalf("revoke by prefix: %+v, %v", got, err)
	}
	if _, err := s.SessionByToken(ctx, ann1); !errors.Is(err, ErrSessionRevokedByAdmin) || !strings.Contains(err.Error(), "revoked by an administrator") {
		t.Fatalf("revoked session: %v", err)
	}
	if got := list("acme", "ann@example.com"); len(got) != 1 || got[0] != "ann@example.com "+ann2s.ID {
		t.Fatalf("ann's sessions after revoking one: %q", got)
	}
	// Revoking it again names how it ended and changes nothing.
	if _, err := s.RevokeSessionID(ctx, "acme", ann1s.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "was revoked on") {
		t.Fatalf("revoking twice: %v", err)
	}
	// Logging out stays told apart from an administrator's revocation.
	if err := s.RevokeSession(ctx, ann2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, ann2); !errors.Is(err, ErrSessionRevoked) {
		t.Fatalf("logged out session: %v", err)
	}
	if _, err := s.RevokeSessionID(ctx, "acme", ann2s.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "logged out on") {
		t.Fatalf("revoking a logged out session: %v", err)
	}

	// A prefix of two live sessions names neither.
	_, bob2s := issue(acme, "bob@example.com")
	if _, err := s.db.ExecContext(ctx, `UPDATE sessions SET id = ? WHERE id = ?`, bobs.ID[:MinSessionIDPrefix]+"ffffffffff", bob2s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSessionID(ctx, "acme", bobs.ID[:MinSessionIDPrefix]); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "give more of it") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if got := list("acme", "bob@example.com"); len(got) != 2 {
		t.Fatalf("an ambiguous prefix revoked something: %q", got)
	}

	// All of a user's: only theirs, only live ones.
	revoked, err := s.RevokeUserSessions(ctx, "acme", "BOB@example.com")
	if err != nil || len(revoked) != 2 {
		t.Fatalf("revoke bob's: %q, %v", sessionIDs(revoked), err)
	}
	if _, err := s.SessionByToken(ctx, bob); !errors.Is(err, ErrSessionRevokedByAdmin) {
		t.Fatalf("bob's session after revoking all: %v", err)
	}
	if revoked, err := s.RevokeUserSessions(ctx, "acme", "bob@example.com"); err != nil || len(revoked) != 0 {
		t.Fatalf("revoke bob's again: %q, %v", sessionIDs(revoked), err)
	}
	if _, err := s.SessionByToken(ctx, cy); err != nil || len(list("beta", "")) != 1 {
		t.Fatalf("another account's session ended: %v", err)
	}

	// Expired sessions are not listed, and not revoked.
	c.Advance(time.Hour)
	if got := list("beta", ""); len(got) != 0 {
		t.Fatalf("expired sessions listed: %q", got)
	}
	if _, err := s.RevokeSessionID(ctx, "beta", cys.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "expired on") {
		t.Fatalf("revoking an expired session: %v", err)
	}
}

// flipFirst changes the first hex digit of id.
func flipFirst(id string) string {
	if id[0] == '0' {
		return "1" + id[1:]
	}
	return "0" + id[1:]
}

// TestSessionIDMigration upgrades a database with sessions issued before they had IDs.
func TestSessionIDMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "broker.db")
	old, err := open(ctx, path, Options{PasswordParams: cheapParams}, migrations[:5])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateAccount(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := old.AddUser(ctx, "acme", "ann@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	toks := []string{strings.Repeat("a", 43), strings.Repeat("b", 43)}
	for _, tok := range toks {
		if _, err := old.db.ExecContext(ctx, `INSERT INTO sessions (token_sha256, user_id, created_at, expires_at)
			SELECT ?, id, ?, ? FROM users`, tokenHash(tok), millis(now), millis(now.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s := openAt(t, path, &clock{t: now})
	ss, err := s.AccountSessions(ctx, "acme", "")
	if err != nil || len(ss) != 2 || ss[0].ID == ss[1].ID {
		t.Fatalf("sessions after the migration: %+v, %v", ss, err)
	}
	for i, tok := range toks {
		got, err := s.SessionByToken(ctx, tok)
		if err != nil || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(got.ID) {
			t.Fatalf("session %d after the migration: %+v, %v", i, got, err)
		}
	}
	if _, err := s.RevokeSessionID(ctx, "acme", ss[0].ID); err != nil {
		t.Fatal(err)
	}
	if ss2, _ := s.AccountSessions(ctx, "acme", ""); len(ss2) != 1 || ss2[0].ID != ss[1].ID {
		t.Fatalf("after revoking one: %+v", ss2)
	}
}
