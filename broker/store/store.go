// Package store keeps the broker's accounts, users, auth keys and devices in SQLite.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/argon2id"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors callers map to responses. Returned errors wrap these with details.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrInvalid        = errors.New("invalid input")
	ErrConflict       = errors.New("conflict")
	ErrBadCredentials = errors.New("wrong account, email or password")
	ErrAuthKeyUnknown = errors.New("unknown auth key")
	ErrAuthKeyExpired = errors.New("auth key expired")
	ErrAuthKeyUsed    = errors.New("auth key already used")
	ErrSchemaTooNew   = errors.New("database schema is newer than this broker")
)

// RevokedError is returned for a public key that no longer belongs to a device.
type RevokedError struct {
	Reason string // e.g. "removed by administrator"
}

func (e *RevokedError) Error() string { return "device key revoked: " + e.Reason }

// Options tune a Store; the zero value is right for production.
type Options struct {
	// Now is the clock; nil means time.Now. Tests move it to expire keys.
	Now func() time.Time
	// PasswordParams are the argon2id costs for new password hashes; nil means
	// argon2id.DefaultParams. Tests use cheaper ones.
	PasswordParams *argon2id.Params
}

// Store is the broker's database. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	now    func() time.Time
	params *argon2id.Params

	// dummyHash is compared against when a user does not exist, so that a login for
	// an unknown email costs as much as one with a wrong password.
	dummyOnce sync.Once
	dummyHash string
}

// Open opens (creating if needed) the database at path and brings its schema up to date.
func Open(ctx context.Context, path string, opt Options) (*Store, error) {
	return open(ctx, path, opt, migrations)
}

func open(ctx context.Context, path string, opt Options, migs []string) (*Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open database %q: path must not contain '?' or '#'", path)
	}
	// Create the file ourselves so it (and the -wal and -shm files SQLite derives from
	// it) is private: it holds password and auth key hashes.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	f.Close()
	// _txlock=immediate makes every transaction take the write lock at BEGIN, so
	// check-then-write sequences (auth key use, address allocation) cannot interleave;
	// busy_timeout makes the others wait for it instead of failing.
	dsn := path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := migrate(ctx, db, migs); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	s := &Store{db: db, now: opt.Now, params: opt.PasswordParams}
	if s.now == nil {
		s.now = time.Now
	}
	if s.params == nil {
		s.params = argon2id.DefaultParams
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrate applies, in order and each in its own transaction, the migrations the
// database has not seen yet. PRAGMA user_version counts those applied.
func migrate(ctx context.Context, db *sql.DB, migs []string) error {
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have > len(migs) {
		return fmt.Errorf("%w: it is at schema version %d, this broker knows up to %d; upgrade weft-broker",
			ErrSchemaTooNew, have, len(migs))
	}
	for v := have; v < len(migs); v++ {
		if err := applyMigration(ctx, db, v, migs[v]); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, v int, stmt string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %d: begin: %w", v+1, err)
	}
	defer tx.Rollback()
	// Another process may have applied it while we waited for the write lock.
	var cur int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
		return fmt.Errorf("migration %d: read schema version: %w", v+1, err)
	}
	if cur > v {
		return nil
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
		return fmt.Errorf("migration %d: set schema version: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %d: commit: %w", v+1, err)
	}
	return nil
}

// inTx runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY constraint violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// millis is how times are stored: Unix milliseconds, 0 for unset.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
