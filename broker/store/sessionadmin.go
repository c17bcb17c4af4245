package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	// sessionIDBytes is the randomness in a session ID: enough to stay unique, short
	// enough to type.
	sessionIDBytes = 8
	// MinSessionIDPrefix is the fewest hex digits of a session ID that may name it.
	MinSessionIDPrefix = 6
	// revokedByAdmin in sessions.revoked_by marks a session an administrator revoked.
	revokedByAdmin = "admin"
)

func newSessionID() string {
	b := make([]byte, sessionIDBytes)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sessionIDPrefix checks that id is a session ID or a prefix of one long enough to
// name it, and returns it in lower case.
func sessionIDPrefix(id string) (string, error) {
	p := strings.ToLower(id)
	_, err := hex.DecodeString(p + strings.Repeat("0", len(p)%2))
	if err != nil || len(p) < MinSessionIDPrefix || len(p) > 2*sessionIDBytes {
		return "", fmt.Errorf("%w: malformed session ID %q: want the %d hex digits session list shows, or at least the first %d",
			ErrInvalid, id, 2*sessionIDBytes, MinSessionIDPrefix)
	}
	return p, nil
}

// sessionEnd is a session row with what an administrator needs to tell whether it is live.
type sessionEnd struct {
	Session
	revokedAt time.Time
	revokedBy string
}

// ended says how the session ended by now, or "" when it is live.
func (e sessionEnd) ended(now time.Time) string {
	switch {
	case !e.revokedAt.IsZero() && e.revokedBy == revokedByAdmin:
		return "was revoked on " + e.revokedAt.UTC().Format(time.RFC3339)
	case !e.revokedAt.IsZero():
		return "was logged out on " + e.revokedAt.UTC().Format(time.RFC3339)
	case !now.Before(e.ExpiresAt):
		return "expired on " + e.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return ""
}

// sessionsWhere returns the sessions of the account's users matching cond, ended or not,
// ordered by user and age. The token and its hash are never read.
func sessionsWhere(ctx context.Context, q querier, a Account, cond string, args ...any) ([]sessionEnd, error) {
	rows, err := q.QueryContext(ctx, `SELECT s.id, u.id, u.email, u.admin, s.created_at, s.expires_at, s.last_used, s.revoked_at, s.revoked_by
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE u.account_id = ? AND `+cond+` ORDER BY u.email, s.created_at, s.id`, append([]any{a.ID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("list sessions of account %q: %w", a.Name, err)
	}
	defer rows.Close()
	var out []sessionEnd
	for rows.Next() {
		e := sessionEnd{Session: Session{AccountID: a.ID, Account: a.Name}}
		var admin int
		var created, expires, used, revoked int64
		if err := rows.Scan(&e.ID, &e.UserID, &e.Email, &admin, &created, &expires, &used, &revoked, &e.revokedBy); err != nil {
			return nil, fmt.Errorf("read session: %w", err)
		}
		e.Admin = admin != 0
		e.CreatedAt, e.ExpiresAt, e.LastUsed, e.revokedAt = fromMillis(created), fromMillis(expires), fromMillis(used), fromMillis(revoked)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions of account %q: %w", a.Name, err)
	}
	return out, nil
}

// userID finds the user with email in account a.
func userID(ctx context.Context, q querier, a Account, email string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM users WHERE account_id = ? AND email = ?`, a.ID, normEmail(email)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user %q in account %q %w", email, a.Name, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("look up user %q: %w", email, err)
	}
	return id, nil
}

const liveSession = `s.revoked_at = 0 AND s.expires_at > ?`

// AccountSessions lists the live sessions of the named account's users, or of the user
// with email when it is not "".
func (s *Store) AccountSessions(ctx context.Context, account, email string) ([]Session, error) {
	a, err := accountByName(ctx, s.db, account)
	if err != nil {
		return nil, err
	}
	cond, args := liveSession, []any{millis(s.now())}
	if email != "" {
		uid, err := userID(ctx, s.db, a, email)
		if err != nil {
			return nil, err
		}
		cond, args = cond+` AND u.id = ?`, append(args, uid)
	}
	ends, err := sessionsWhere(ctx, s.db, a, cond, args...)
	if err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(ends))
	for _, e := range ends {
		out = append(out, e.Session)
	}
	return out, nil
}

// RevokeSessionID revokes the live session of the named account whose ID is id, or
// starts with it: its token works no more, from the next request on. A malformed ID,
// or a prefix of more than one live session, is ErrInvalid; one that matches no session
// ErrNotFound; a session that already ended ErrConflict. Only a success changes anything.
func (s *Store) RevokeSessionID(ctx context.Context, account, id string) (Session, error) {
	prefix, err := sessionIDPrefix(id)
	if err != nil {
		return Session{}, err
	}
	var sess Session
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		matches, err := sessionsWhere(ctx, tx, a, `substr(s.id, 1, ?) = ?`, len(prefix), prefix)
		if err != nil {
			return err
		}
		now := s.now()
		var live, ended []sessionEnd
		for _, m := range matches {
			if m.ended(now) == "" {
				live = append(live, m)
			} else {
				ended = append(ended, m)
			}
		}
		switch {
		case len(live) > 1:
			return fmt.Errorf("%w: session ID %q is the start of %d sessions' IDs; give more of it", ErrInvalid, id, len(live))
		case len(live) == 0 && len(ended) == 1:
			return fmt.Errorf("%w: session %s of %s %s; nothing to revoke", ErrConflict, ended[0].ID, ended[0].Email, ended[0].ended(now))
		case len(live) == 0:
			return fmt.Errorf("session %q in account %q %w", id, account, ErrNotFound)
		}
		sess = live[0].Session
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?, revoked_by = ? WHERE id = ?`,
			millis(now), revokedByAdmin, sess.ID); err != nil {
			return fmt.Errorf("revoke session %s: %w", sess.ID, err)
		}
		return nil
	})
	return sess, err
}

// RevokeUserSessions revokes every live session of the user with email in the named
// account and returns them (none is no error). An unknown account or user is ErrNotFound.
func (s *Store) RevokeUserSessions(ctx context.Context, account, email string) ([]Session, error) {
	var out []Session
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		uid, err := userID(ctx, tx, a, email)
		if err != nil {
			return err
		}
		now := millis(s.now())
		ends, err := sessionsWhere(ctx, tx, a, liveSession+` AND u.id = ?`, now, uid)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?, revoked_by = ? WHERE user_id = ? AND revoked_at = 0 AND expires_at > ?`,
			now, revokedByAdmin, uid, now); err != nil {
			return fmt.Errorf("revoke the sessions of %q: %w", email, err)
		}
		out = make([]Session, 0, len(ends))
		for _, e := range ends {
			out = append(out, e.Session)
		}
		return nil
	})
	return out, err
}
