package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Session failures: each wraps into an error that says what to do next.
var (
	ErrSessionUnknown = errors.New("unknown session")
	ErrSessionExpired = errors.New("session expired")
	ErrSessionRevoked = errors.New("session logged out")
	// ErrSessionRevokedByAdmin is a session an administrator revoked (weft-broker
	// session revoke), so its holder is not told they logged out themselves.
	ErrSessionRevokedByAdmin = errors.New("session revoked by an administrator")
)

const (
	// sessionTokenBytes is the randomness in a session token.
	sessionTokenBytes = 32
	// sessionTouchEvery bounds how often a session's last use is written: not on every
	// request of a busy client.
	sessionTouchEvery = time.Minute
	// sessionKeepEnded is how long an ended session's row stays, so its holder hears
	// "expired" or "logged out" rather than "unknown".
	sessionKeepEnded = 30 * 24 * time.Hour
)

// Session is a person's account session, as a bearer token authenticates it.
type Session struct {
	ID        string // names the session to administrators; no secret, it authenticates nothing
	UserID    int64
	AccountID int64
	Account   string // account name
	Email     string
	Admin     bool // the user's role now, not when the session was issued
	CreatedAt time.Time
	ExpiresAt time.Time
	LastUsed  time.Time
}

// tokenHash is how a session token is stored and looked up: its SHA-256. The lookup by
// hash compares no secret bytes in Go, so its timing says nothing about the token.
func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateSession issues a session for the user with email in account, valid for ttl, and
// returns its token: random, shown this once, stored only as a hash.
func (s *Store) CreateSession(ctx context.Context, accountID int64, email string, ttl time.Duration) (string, Session, error) {
	if ttl <= 0 {
		return "", Session{}, fmt.Errorf("%w: session lifetime %v is not positive", ErrInvalid, ttl)
	}
	raw := make([]byte, sessionTokenBytes)
	rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	// Times as they will read back: stored in milliseconds.
	now := fromMillis(millis(s.now()))
	sess := Session{ID: newSessionID(), Email: normEmail(email), CreatedAt: now, ExpiresAt: fromMillis(millis(now.Add(ttl)))}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var admin int
		err := tx.QueryRowContext(ctx, `SELECT u.id, u.account_id, a.name, u.admin FROM users u JOIN accounts a ON a.id = u.account_id
			WHERE u.account_id = ? AND u.email = ?`, accountID, sess.Email).Scan(&sess.UserID, &sess.AccountID, &sess.Account, &admin)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q %w in that account", email, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up user %q: %w", email, err)
		}
		sess.Admin = admin != 0
		// Forget sessions that ended long ago, so the table does not grow forever.
		cutoff := millis(now.Add(-sessionKeepEnded))
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < ? OR (revoked_at != 0 AND revoked_at < ?)`,
			cutoff, cutoff); err != nil {
			return fmt.Errorf("forget old sessions: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (token_sha256, id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			tokenHash(token), sess.ID, sess.UserID, millis(now), millis(sess.ExpiresAt)); err != nil {
			return fmt.Errorf("store session: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", Session{}, err
	}
	return token, sess, nil
}

// SessionByToken returns the session token authenticates, and notes its use. A token
// that never was one is ErrSessionUnknown; an expired one ErrSessionExpired; a logged
// out one ErrSessionRevoked, one an administrator revoked ErrSessionRevokedByAdmin. The
// revocation is read on every call, so it applies at once.
func (s *Store) SessionByToken(ctx context.Context, token string) (Session, error) {
	if len(token) != base64.RawURLEncoding.EncodedLen(sessionTokenBytes) {
		return Session{}, fmt.Errorf("%w: that is not a session token; log in again", ErrSessionUnknown)
	}
	var sess Session
	var admin int
	var created, expires, used, revoked int64
	var revokedBy string
	err := s.db.QueryRowContext(ctx, `SELECT s.id, u.id, u.account_id, a.name, u.email, u.admin, s.created_at, s.expires_at, s.last_used,
			s.revoked_at, s.revoked_by
		FROM sessions s JOIN users u ON u.id = s.user_id JOIN accounts a ON a.id = u.account_id
		WHERE s.token_sha256 = ?`, tokenHash(token)).Scan(&sess.ID, &sess.UserID, &sess.AccountID, &sess.Account, &sess.Email, &admin,
		&created, &expires, &used, &revoked, &revokedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("%w: it was never issued, or ended long ago; log in again", ErrSessionUnknown)
	}
	if err != nil {
		return Session{}, fmt.Errorf("look up session: %w", err)
	}
	sess.Admin = admin != 0
	sess.CreatedAt, sess.ExpiresAt, sess.LastUsed = fromMillis(created), fromMillis(expires), fromMillis(used)
	now := s.now()
	switch {
	case revoked != 0 && revokedBy == revokedByAdmin:
		return Session{}, fmt.Errorf("%w on %s; log in again", ErrSessionRevokedByAdmin, fromMillis(revoked).UTC().Format(time.RFC3339))
	case revoked != 0:
		return Session{}, fmt.Errorf("%w on %s; log in again", ErrSessionRevoked, fromMillis(revoked).UTC().Format(time.RFC3339))
	case !now.Before(sess.ExpiresAt):
		return Session{}, fmt.Errorf("%w on %s; log in again", ErrSessionExpired, sess.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if now.Sub(sess.LastUsed) >= sessionTouchEvery {
		if _, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_used = ? WHERE token_sha256 = ?`, millis(now), tokenHash(token)); err != nil {
			return Session{}, fmt.Errorf("note session use: %w", err)
		}
		sess.LastUsed = now
	}
	return sess, nil
}

// RevokeSession ends the session token authenticates; it then works no more. Ending
// one that already ended is no error; an unknown token is ErrSessionUnknown.
func (s *Store) RevokeSession(ctx context.Context, token string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE token_sha256 = ? AND revoked_at = 0`,
		millis(s.now()), tokenHash(token))
	if err != nil {
		return fmt.Errorf("log the session out: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	var one int
	err = s.db.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE token_sha256 = ?`, tokenHash(token)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrSessionUnknown
	}
	return err
}

// SetUserAdmin gives or takes the administrator role of the user with email in account.
// It applies to the user's sessions at once.
func (s *Store) SetUserAdmin(ctx context.Context, account, email string, admin bool) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET admin = ? WHERE account_id = ? AND email = ?`,
			boolInt(admin), a.ID, normEmail(email))
		if err != nil {
			return fmt.Errorf("set the role of %q: %w", email, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("set the role of %q: %w", email, err)
		} else if n == 0 {
			return fmt.Errorf("user %q in account %q %w", email, account, ErrNotFound)
		}
		return nil
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
