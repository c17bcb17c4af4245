package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/alexedwards/argon2id"
	"github.com/weftmesh/weft/internal/dnsname"
)

// MinPasswordLength is the shortest password AddUser accepts.
const MinPasswordLength = 8

// Account is a tenant: its devices form one mesh.
type Account struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// CreateAccount adds an account; its name must be a DNS label.
func (s *Store) CreateAccount(ctx context.Context, name string) (Account, error) {
	if err := dnsname.ValidLabel(name); err != nil {
		return Account{}, fmt.Errorf("account %w: %w", ErrInvalid, err)
	}
	a := Account{Name: name, CreatedAt: s.now()}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts (name, created_at) VALUES (?, ?)`,
			name, millis(a.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("account %q %w", name, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create account %q: %w", name, err)
		}
		a.ID, err = res.LastInsertId()
		return err
	})
	return a, err
}

// AccountByName looks an account up.
func (s *Store) AccountByName(ctx context.Context, name string) (Account, error) {
	return accountByName(ctx, s.db, name)
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func accountByName(ctx context.Context, q querier, name string) (Account, error) {
	a := Account{Name: name}
	var created int64
	err := q.QueryRowContext(ctx, `SELECT id, created_at FROM accounts WHERE name = ?`, name).Scan(&a.ID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("account %q %w", name, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("look up account %q: %w", name, err)
	}
	a.CreatedAt = fromMillis(created)
	return a, nil
}

// ValidateEmail reports why s is not usable as a user's email address.
func ValidateEmail(s string) error {
	local, domain, ok := strings.Cut(s, "@")
	switch {
	case !ok || local == "" || domain == "" || strings.Contains(domain, "@"):
		return fmt.Errorf("email %q is not of the form name@domain", s)
	case len(s) > 254:
		return fmt.Errorf("email is %d characters long, the limit is 254", len(s))
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("email %q contains a space or control character", s)
	}
	return nil
}

// normEmail is the form emails are stored and compared in.
func normEmail(s string) string { return strings.ToLower(s) }

// AddUser adds a user who can register devices into account with email and password.
func (s *Store) AddUser(ctx context.Context, account, email, password string) error {
	return s.AddUserAs(ctx, account, email, password, false)
}

// AddUserAs is AddUser that also sets the user's role: an administrator (admin) may
// remove the account's devices with an account session.
func (s *Store) AddUserAs(ctx context.Context, account, email, password string, admin bool) error {
	if err := ValidateEmail(email); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(password) < MinPasswordLength {
		return fmt.Errorf("%w: password is %d characters, the minimum is %d", ErrInvalid, len(password), MinPasswordLength)
	}
	// Hash before the transaction: argon2id is deliberately slow.
	hash, err := argon2id.CreateHash(password, s.params)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO users (account_id, email, password_hash, created_at, admin) VALUES (?, ?, ?, ?, ?)`,
			a.ID, normEmail(email), hash, millis(s.now()), boolInt(admin))
		if isUnique(err) {
			return fmt.Errorf("user %q in account %q %w", email, account, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("add user %q: %w", email, err)
		}
		return nil
	})
}

// CheckPassword authenticates a user and returns their account. Every failure is
// ErrBadCredentials, so a caller cannot tell which part was wrong.
func (s *Store) CheckPassword(ctx context.Context, account, email, password string) (Account, error) {
	var hash string
	a, err := accountByName(ctx, s.db, account)
	if err == nil {
		err = s.db.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE account_id = ? AND email = ?`,
			a.ID, normEmail(email)).Scan(&hash)
	}
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, sql.ErrNoRows):
		s.burnDummyHash(password)
		return Account{}, ErrBadCredentials
	case err != nil:
		return Account{}, fmt.Errorf("check password: %w", err)
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return Account{}, fmt.Errorf("check password of %q: %w", email, err)
	}
	if !ok {
		return Account{}, ErrBadCredentials
	}
	return a, nil
}

func (s *Store) burnDummyHash(password string) {
	s.dummyOnce.Do(func() {
		s.dummyHash, _ = argon2id.CreateHash("weft dummy password", s.params)
	})
	if s.dummyHash != "" {
		_, _ = argon2id.ComparePasswordAndHash(password, s.dummyHash)
	}
}
