package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// StoredPolicy is an account's access policy as the admin set it.
type StoredPolicy struct {
	Filename string
	Source   []byte
}

// SetPolicy replaces the access policy of the named account. The caller has validated it.
func (s *Store) SetPolicy(ctx context.Context, account string, p StoredPolicy) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO policies (account_id, filename, source, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET filename = excluded.filename, source = excluded.source, updated_at = excluded.updated_at`,
			a.ID, p.Filename, p.Source, millis(s.now()))
		if err != nil {
			return fmt.Errorf("store policy of %q: %w", account, err)
		}
		return nil
	})
}

// Policy returns the access policy of an account, and false if it has none (allow-all).
func (s *Store) Policy(ctx context.Context, accountID int64) (StoredPolicy, bool, error) {
	var p StoredPolicy
	err := s.db.QueryRowContext(ctx, `SELECT filename, source FROM policies WHERE account_id = ?`, accountID).Scan(&p.Filename, &p.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("load policy: %w", err)
	}
	return p, true, nil
}
