package store

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/wire"
)

// Relay is a relay devices may send through: global (every account's devices may use
// it) or an account's own, which its devices prefer.
type Relay struct {
	AccountID int64  // 0 for a global relay
	Account   string // account name, "" for a global relay
	Name      string
	UDP       string // HOST:PORT of the UDP transport, or ""
	TLS       string // HOST:PORT of the TLS transport, or ""
	PublicKey wire.Key
	CreatedAt time.Time
}

// Global reports whether every account's devices may use r.
func (r Relay) Global() bool { return r.AccountID == 0 }

// RelaySpec is a relay to add. Account "" adds a global relay.
type RelaySpec struct {
	Account   string
	Name      string
	UDP, TLS  string
	PublicKey wire.Key
}

func (r RelaySpec) validate() error {
	if err := dnsname.ValidLabel(r.Name); err != nil {
		return fmt.Errorf("%w: relay %w", ErrInvalid, err)
	}
	if r.UDP == "" && r.TLS == "" {
		return fmt.Errorf("%w: relay %s has neither a UDP nor a TLS address", ErrInvalid, r.Name)
	}
	for _, a := range []struct{ what, hp string }{{"UDP", r.UDP}, {"TLS", r.TLS}} {
		if a.hp == "" {
			continue
		}
		if err := validHostPort(a.hp); err != nil {
			return fmt.Errorf("%w: relay %s %s address: %w", ErrInvalid, r.Name, a.what, err)
		}
	}
	if r.PublicKey.IsZero() {
		return fmt.Errorf("%w: relay %s has no public key", ErrInvalid, r.Name)
	}
	return nil
}

// validHostPort checks that hp is HOST:PORT with a host name or IP and a port 1–65535.
func validHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", hp)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port %q is not a number 1-65535", hp, port)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("%q: host is empty or too long", hp)
	}
	for _, l := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if err := dnsname.ValidLabel(strings.ToLower(l)); err != nil {
			return fmt.Errorf("%q: host is neither an IP address nor a DNS name: %w", hp, err)
		}
	}
	return nil
}

// AddRelay adds a relay. Its name must be unique among the global relays and the
// account's own, so a device never sees two relays of the same name.
func (s *Store) AddRelay(ctx context.Context, spec RelaySpec) (Relay, error) {
	if err := spec.validate(); err != nil {
		return Relay{}, err
	}
	r := Relay{Account: spec.Account, Name: spec.Name, UDP: spec.UDP, TLS: spec.TLS,
		PublicKey: spec.PublicKey, CreatedAt: s.now()}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var accountID any // NULL for a global relay
		clash := `SELECT count(*) FROM relays WHERE name = ?`
		args := []any{spec.Name}
		if spec.Account != "" {
			a, err := accountByName(ctx, tx, spec.Account)
			if err != nil {
				return err
			}
			r.AccountID, accountID = a.ID, a.ID
			clash += ` AND (account_id IS NULL OR account_id = ?)`
			args = append(args, a.ID)
		}
		var n int
		if err := tx.QueryRowContext(ctx, clash, args...).Scan(&n); err != nil {
			return fmt.Errorf("check relay name: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("relay %q %w (as a global relay or one of the same account)", spec.Name, ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO relays (account_id, name, udp, tls, public_key, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, accountID, r.Name, r.UDP, r.TLS, r.PublicKey.String(), millis(r.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("relay %q %w", spec.Name, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("add relay %q: %w", spec.Name, err)
		}
		return nil
	})
	return r, err
}

// RemoveRelay removes the named relay of account, or the global one if account is "".
func (s *Store) RemoveRelay(ctx context.Context, account, name string) (Relay, error) {
	var r Relay
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var accountID int64 // 0: global
		if account != "" {
			a, err := accountByName(ctx, tx, account)
			if err != nil {
				return err
			}
			accountID = a.ID
		}
		rs, err := relaysWhere(ctx, tx, `coalesce(r.account_id, 0) = ? AND r.name = ?`, accountID, name)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			if account == "" {
				return fmt.Errorf("global relay %q %w", name, ErrNotFound)
			}
			return fmt.Errorf("relay %q of account %q %w", name, account, ErrNotFound)
		}
		r = rs[0]
		if _, err := tx.ExecContext(ctx, `DELETE FROM relays WHERE coalesce(account_id, 0) = ? AND name = ?`, accountID, name); err != nil {
			return fmt.Errorf("remove relay %q: %w", name, err)
		}
		return nil
	})
	return r, err
}

// Relays lists relays: every one if account is "", else those the named account's
// devices may use. The account's own come first, then global ones, each by name.
func (s *Store) Relays(ctx context.Context, account string) ([]Relay, error) {
	if account == "" {
		return relaysWhere(ctx, s.db, `1`)
	}
	a, err := accountByName(ctx, s.db, account)
	if err != nil {
		return nil, err
	}
	return s.AccountRelays(ctx, a.ID)
}

// AccountRelays lists the relays the account's devices may use: its own first, then
// global ones, each by name.
func (s *Store) AccountRelays(ctx context.Context, accountID int64) ([]Relay, error) {
	return relaysWhere(ctx, s.db, `r.account_id IS NULL OR r.account_id = ?`, accountID)
}

func relaysWhere(ctx context.Context, q querier, cond string, args ...any) ([]Relay, error) {
	rows, err := q.QueryContext(ctx, `SELECT coalesce(r.account_id, 0), coalesce(a.name, ''), r.name, r.udp, r.tls,
		r.public_key, r.created_at FROM relays r LEFT JOIN accounts a ON a.id = r.account_id
		WHERE `+cond+` ORDER BY r.account_id IS NULL, a.name, r.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list relays: %w", err)
	}
	defer rows.Close()
	var out []Relay
	for rows.Next() {
		var (
			r       Relay
			key     string
			created int64
		)
		if err := rows.Scan(&r.AccountID, &r.Account, &r.Name, &r.UDP, &r.TLS, &key, &created); err != nil {
			return nil, fmt.Errorf("list relays: %w", err)
		}
		if r.PublicKey, err = wire.ParseKey(key); err != nil {
			return nil, fmt.Errorf("relay %s: stored %w", r.Name, err)
		}
		r.CreatedAt = fromMillis(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list relays: %w", err)
	}
	return out, nil
}
