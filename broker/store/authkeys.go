package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	authKeyPrefix = "weftkey-"
	authKeyIDLen  = 12 // hex characters
	authKeySecret = 32 // bytes
)

// AuthKeyOptions shape a new auth key.
type AuthKeyOptions struct {
	Reusable bool          // may register any number of devices; else exactly one
	Expires  time.Duration // lifetime; 0 means it never expires
}

// CreateAuthKey makes a key that registers devices into account, and returns it in
// the form weftkey-<id>-<secret>. Only a hash of the secret is stored: this is the
// only time the key can be seen.
func (s *Store) CreateAuthKey(ctx context.Context, account string, opt AuthKeyOptions) (string, error) {
	if opt.Expires < 0 {
		return "", fmt.Errorf("%w: auth key lifetime %s is negative", ErrInvalid, opt.Expires)
	}
	idb := make([]byte, authKeyIDLen/2)
	secret := make([]byte, authKeySecret)
	if _, err := rand.Read(idb); err != nil {
		return "", fmt.Errorf("generate auth key: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("generate auth key: %w", err)
	}
	id := hex.EncodeToString(idb)
	sum := sha256.Sum256(secret)
	now := s.now()
	var expires int64
	if opt.Expires > 0 {
		expires = millis(now.Add(opt.Expires))
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO auth_keys
			(id, account_id, secret_sha256, reusable, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id, a.ID, sum[:], opt.Reusable, expires, millis(now))
		if err != nil {
			return fmt.Errorf("store auth key: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return authKeyPrefix + id + "-" + base64.RawURLEncoding.EncodeToString(secret), nil
}

// parseAuthKey splits a key into its id and secret.
func parseAuthKey(key string) (id string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(key, authKeyPrefix)
	if ok {
		// The id is hex, so the first '-' ends it; the secret may contain '-'.
		id, rest, ok = strings.Cut(rest, "-")
	}
	if ok && len(id) == authKeyIDLen {
		if _, err := hex.DecodeString(id); err == nil {
			secret, err = base64.RawURLEncoding.DecodeString(rest)
			if err == nil && len(secret) == authKeySecret {
				return id, secret, nil
			}
		}
	}
	return "", nil, fmt.Errorf("%w: it is not of the form %s<id>-<secret>", ErrAuthKeyUnknown, authKeyPrefix)
}

// useAuthKey checks key inside tx and, if it is single-use, marks it used; it returns
// the key's account. Because tx holds the write lock from its start, two registrations
// cannot both see a single-use key unused.
func (s *Store) useAuthKey(ctx context.Context, tx *sql.Tx, key string) (int64, error) {
	id, secret, err := parseAuthKey(key)
	if err != nil {
		return 0, err
	}
	var (
		accountID              int64
		stored                 []byte
		reusable               bool
		expiresAt, usedAt, now int64
	)
	err = tx.QueryRowContext(ctx,
		`SELECT account_id, secret_sha256, reusable, expires_at, used_at FROM auth_keys WHERE id = ?`, id).
		Scan(&accountID, &stored, &reusable, &expiresAt, &usedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrAuthKeyUnknown
	}
	if err != nil {
		return 0, fmt.Errorf("look up auth key: %w", err)
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], stored) != 1 {
		return 0, ErrAuthKeyUnknown
	}
	now = millis(s.now())
	if expiresAt != 0 && now >= expiresAt {
		return 0, fmt.Errorf("%w at %s", ErrAuthKeyExpired, fromMillis(expiresAt).UTC().Format(time.RFC3339))
	}
	if reusable {
		return accountID, nil
	}
	if usedAt != 0 {
		return 0, fmt.Errorf("%w at %s", ErrAuthKeyUsed, fromMillis(usedAt).UTC().Format(time.RFC3339))
	}
	res, err := tx.ExecContext(ctx, `UPDATE auth_keys SET used_at = ? WHERE id = ? AND used_at = 0`, now, id)
	if err != nil {
		return 0, fmt.Errorf("consume auth key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		// Unreachable while transactions are immediate; kept as a guard.
		return 0, ErrAuthKeyUsed
	}
	return accountID, nil
}
