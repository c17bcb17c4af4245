package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t)
	acme := mustAccount(t, s, "acme")
	if err := s.AddUserAs(ctx, "acme", "Ann@Example.com", "correct horse", true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, "acme", "bob@example.com", "battery staple"); err != nil {
		t.Fatal(err)
	}

	tok, sess, err := s.CreateSession(ctx, acme.ID, "ANN@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 || sess.Email != "ann@example.com" || sess.Account != "acme" || !sess.Admin || !sess.ExpiresAt.Equal(c.Now().Add(time.Hour)) {
		t.Fatalf("session %q %+v", tok, sess)
	}
	tok2, _, err := s.CreateSession(ctx, acme.ID, "ann@example.com", time.Hour)
	if err != nil || tok2 == tok {
		t.Fatalf("second session %q (same token: %v), %v", tok2, tok2 == tok, err)
	}
	got, err := s.SessionByToken(ctx, tok)
	if err != nil || got.UserID != sess.UserID || !got.Admin || got.Email != "ann@example.com" {
		t.Fatalf("by token: %+v, %v", got, err)
	}
	if !got.LastUsed.Equal(c.Now()) {
		t.Errorf("last used %v, want now", got.LastUsed)
	}

	// The role is read on every use: taking it away applies to live sessions.
	if err := s.SetUserAdmin(ctx, "acme", "ann@example.com", false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.SessionByToken(ctx, tok); got.Admin {
		t.Error("still admin after the role was taken away")
	}
	for _, bad := range []struct{ account, email string }{{"acme", "nobody@example.com"}, {"nope", "ann@example.com"}} {
		if err := s.SetUserAdmin(ctx, bad.account, bad.email, true); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetUserAdmin(%s, %s): %v", bad.account, bad.email, err)
		}
	}
	if _, _, err := s.CreateSession(ctx, acme.ID, "nobody@example.com", time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("session for an unknown user: %v", err)
	}

	// Unknown and malformed tokens.
	for _, bad := range []string{"", "short", tok[:42] + "x"} {
		if _, err := s.SessionByToken(ctx, bad); !errors.Is(err, ErrSessionUnknown) {
			t.Errorf("token %q: %v", bad, err)
		}
	}

	// Logged out: refused with its own reason; a second logout is no error.
	if err := s.RevokeSession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSession(ctx, tok); err != nil {
		t.Fatalf("second logout: %v", err)
	}
	if _, err := s.SessionByToken(ctx, tok); !errors.Is(err, ErrSessionRevoked) {
		t.Errorf("logged out session: %v", err)
	}
	if err := s.RevokeSession(ctx, "never-issued"); !errors.Is(err, ErrSessionUnknown) {
		t.Errorf("logging out an unknown token: %v", err)
	}
	if _, err := s.SessionByToken(ctx, tok2); err != nil {
		t.Errorf("the other session ended too: %v", err)
	}

	// Expired.
	c.Advance(time.Hour)
	if _, err := s.SessionByToken(ctx, tok2); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("expired session: %v", err)
	}
	// Long after, ended sessions are forgotten when a new one is issued.
	c.Advance(sessionKeepEnded + time.Hour)
	if _, _, err := s.CreateSession(ctx, acme.ID, "bob@example.com", time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{tok, tok2} {
		if _, err := s.SessionByToken(ctx, old); !errors.Is(err, ErrSessionUnknown) {
			t.Errorf("long-ended session: %v", err)
		}
	}
	if _, _, err := s.CreateSession(ctx, acme.ID, "bob@example.com", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero lifetime: %v", err)
	}
}
