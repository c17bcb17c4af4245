package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/weftmesh/weft/wire"
)

// cheapParams keep password tests fast; production uses argon2id.DefaultParams.
var cheapParams = &argon2id.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openAt(t *testing.T, path string, c *clock) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Now: c.Now, PasswordParams: cheapParams})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	return openAt(t, filepath.Join(t.TempDir(), "broker.db"), c), c
}

func mustAccount(t *testing.T, s *Store, name string) Account {
	t.Helper()
	a, err := s.CreateAccount(context.Background(), name)
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	return a
}

func mustKey(t *testing.T, s *Store, account string, opt AuthKeyOptions) string {
	t.Helper()
	k, err := s.CreateAuthKey(context.Background(), account, opt)
	if err != nil {
		t.Fatalf("create auth key: %v", err)
	}
	return k
}

func newPub(t *testing.T) wire.Key {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestMigrationsApplyOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	migs := []string{
		`CREATE TABLE log (n INTEGER); INSERT INTO log VALUES (1);`,
	}
	count := func(want int) {
		t.Helper()
		s, err := open(ctx, path, Options{}, migs)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		var n, v int
		if err := s.db.QueryRow(`SELECT count(*) FROM log`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if n != want || v != len(migs) {
			t.Fatalf("log rows = %d, user_version = %d; want %d, %d", n, v, want, len(migs))
		}
	}
	count(1)
	count(1) // reopening applies nothing again
	migs = append(migs, `INSERT INTO log VALUES (2);`)
	count(2) // only the new migration runs
	count(2)
}

func TestMigrationFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	migs := []string{`CREATE TABLE a (n INTEGER);`, `CREATE TABLE b (n INTEGER); SELECT * FROM nonexistent;`}
	if _, err := open(ctx, path, Options{}, migs); err == nil || !strings.Contains(err.Error(), "migration 2") {
		t.Fatalf("open with failing migration: err = %v, want one naming migration 2", err)
	}
	s, err := open(ctx, path, Options{}, migs[:1])
	if err != nil {
		t.Fatalf("reopen at version 1: %v", err)
	}
	defer s.Close()
	var n int
	s.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'b'`).Scan(&n)
	if n != 0 {
		t.Fatal("table b of the failed migration exists")
	}
}

func TestRealSchemaReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	c := &clock{t: time.Now()}
	s := openAt(t, path, c)
	mustAccount(t, s, "acme")
	s.Close()
	s = openAt(t, path, c)
	if _, err := s.AccountByName(context.Background(), "acme"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	var mode string
	var fk int
	s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	s.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
	if mode != "wal" || fk != 1 {
		t.Fatalf("journal_mode = %q, foreign_keys = %d; want wal, 1", mode, fk)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s := openAt(t, path, &clock{t: time.Now()})
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("open newer db: err = %v, want ErrSchemaTooNew naming version 99", err)
	}
}

func TestAccountsAndUsers(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	if _, err := s.CreateAccount(ctx, "acme"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate account: err = %v, want ErrExists", err)
	}
	if _, err := s.CreateAccount(ctx, "Bad_Name"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad account name: err = %v, want ErrInvalid", err)
	}
	if err := s.AddUser(ctx, "acme", "ann@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, "acme", "Ann@Example.com", "other password"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate email: err = %v, want ErrExists", err)
	}
	mustAccount(t, s, "other")
	if err := s.AddUser(ctx, "other", "ann@example.com", "a third one"); err != nil {
		t.Fatalf("same email in another account: %v", err)
	}
	for _, c := range []struct{ account, email, pw string }{
		{"nope", "x@y.z", "long enough"},
		{"acme", "not-an-email", "long enough"},
		{"acme", "bob@example.com", "short"},
	} {
		if err := s.AddUser(ctx, c.account, c.email, c.pw); err == nil {
			t.Errorf("AddUser(%q, %q) succeeded", c.account, c.email)
		}
	}

	a, err := s.CheckPassword(ctx, "acme", "ANN@example.com", "correct horse")
	if err != nil || a.Name != "acme" {
		t.Fatalf("right password: %v, %v", a, err)
	}
	for _, c := range []struct{ account, email, pw string }{
		{"acme", "ann@example.com", "wrong horse"},
		{"acme", "bob@example.com", "correct horse"},
		{"nope", "ann@example.com", "correct horse"},
	} {
		if _, err := s.CheckPassword(ctx, c.account, c.email, c.pw); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("CheckPassword(%q, %q, %q) err = %v, want ErrBadCredentials", c.account, c.email, c.pw, err)
		}
	}
}

func TestDatabaseFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, filepath.Join(dir, "broker.db"), &clock{t: time.Now()})
	mustAccount(t, s, "acme")
	files, _ := filepath.Glob(filepath.Join(dir, "broker.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", f, fi.Mode().Perm())
		}
	}
}
