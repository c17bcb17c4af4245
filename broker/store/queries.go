package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/weftmesh/weft/wire"
)

const deviceColumns = `d.id, d.account_id, a.name, d.name, d.public_key, d.address, d.endpoints,
	d.listen_port, d.created_at, d.last_seen, d.user_email, d.reflexive, d.nat,
	d.advertised_routes, d.approved_routes
	FROM devices d JOIN accounts a ON a.id = d.account_id`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(row scanner) (Device, error) {
	var (
		d                 Device
		key, addr, eps    string
		reflexive         string
		advertised, appr  string
		created, lastSeen int64
	)
	if err := row.Scan(&d.ID, &d.AccountID, &d.Account, &d.Name, &key, &addr, &eps,
		&d.ListenPort, &created, &lastSeen, &d.User, &reflexive, &d.NAT, &advertised, &appr); err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(advertised), &d.Advertised); err != nil {
		return d, fmt.Errorf("device %s: stored advertised routes: %w", d.ID, err)
	}
	if err := json.Unmarshal([]byte(appr), &d.Approved); err != nil {
		return d, fmt.Errorf("device %s: stored approved routes: %w", d.ID, err)
	}
	var err error
	if d.PublicKey, err = wire.ParseKey(key); err != nil {
		return d, fmt.Errorf("device %s: stored %w", d.ID, err)
	}
	if d.Address, err = netip.ParseAddr(addr); err != nil {
		return d, fmt.Errorf("device %s: stored address: %w", d.ID, err)
	}
	if err := json.Unmarshal([]byte(eps), &d.Endpoints); err != nil {
		return d, fmt.Errorf("device %s: stored endpoints: %w", d.ID, err)
	}
	if err := json.Unmarshal([]byte(reflexive), &d.Reflexive); err != nil {
		return d, fmt.Errorf("device %s: stored reflexive endpoints: %w", d.ID, err)
	}
	d.CreatedAt, d.LastSeen = fromMillis(created), fromMillis(lastSeen)
	return d, nil
}

// deviceWhere returns the one device matching cond, or ErrNotFound.
func deviceWhere(ctx context.Context, q querier, cond string, args ...any) (Device, error) {
	d, err := scanDevice(q.QueryRowContext(ctx, `SELECT `+deviceColumns+` WHERE `+cond, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("device %w", ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("look up device: %w", err)
	}
	return d, nil
}

func devicesWhere(ctx context.Context, q querier, cond string, args ...any) ([]Device, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+deviceColumns+` WHERE `+cond+` ORDER BY d.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// DeviceByKey returns the device that holds key now. A key that did but no longer
// does gives a *RevokedError saying why; one never seen gives ErrNotFound.
func (s *Store) DeviceByKey(ctx context.Context, key wire.Key) (Device, error) {
	d, err := deviceWhere(ctx, s.db, `d.public_key = ?`, key.String())
	if !errors.Is(err, ErrNotFound) {
		return d, err
	}
	var reason string
	rerr := s.db.QueryRowContext(ctx, `SELECT reason FROM revoked_keys WHERE public_key = ?`, key.String()).Scan(&reason)
	switch {
	case rerr == nil:
		return d, &RevokedError{Reason: reason}
	case errors.Is(rerr, sql.ErrNoRows):
		return d, err
	default:
		return d, fmt.Errorf("look up revoked key: %w", rerr)
	}
}

// DeviceByID returns one device.
func (s *Store) DeviceByID(ctx context.Context, id string) (Device, error) {
	return deviceWhere(ctx, s.db, `d.id = ?`, id)
}

// DeviceByName returns the device called name in the named account.
func (s *Store) DeviceByName(ctx context.Context, account, name string) (Device, error) {
	return deviceWhere(ctx, s.db, `a.name = ? AND d.name = ?`, account, name)
}

// Devices lists an account's devices by name.
func (s *Store) Devices(ctx context.Context, accountID int64) ([]Device, error) {
	return devicesWhere(ctx, s.db, `d.account_id = ?`, accountID)
}

// AccountDevices lists the devices of the named account.
func (s *Store) AccountDevices(ctx context.Context, account string) ([]Device, error) {
	a, err := accountByName(ctx, s.db, account)
	if err != nil {
		return nil, err
	}
	return s.Devices(ctx, a.ID)
}

// SetEndpoints replaces a device's listen port and endpoints and returns the device;
// it is ReportEndpoints for a device that reports no reflexive endpoints nor NAT.
func (s *Store) SetEndpoints(ctx context.Context, id string, listenPort int, eps []netip.AddrPort) (Device, error) {
	d, _, err := s.ReportEndpoints(ctx, id, EndpointReport{ListenPort: listenPort, Endpoints: eps})
	return d, err
}

// EndpointReport is what a device last said about where it can be reached.
type EndpointReport struct {
	ListenPort int
	Endpoints  []netip.AddrPort // as composed by the broker: observed, reflexive, LAN
	Reflexive  []netip.AddrPort // the public mappings among them, as reported
	NAT        string           // a wire.NAT* constant
}

// ReportEndpoints replaces a device's endpoint report and returns the device, and
// whether anything peers see changed.
func (s *Store) ReportEndpoints(ctx context.Context, id string, r EndpointReport) (Device, bool, error) {
	if r.ListenPort < 0 || r.ListenPort > 65535 {
		return Device{}, false, fmt.Errorf("%w: listen port %d is out of range", ErrInvalid, r.ListenPort)
	}
	if !wire.ValidNAT(r.NAT) {
		return Device{}, false, fmt.Errorf("%w: unknown NAT type %q", ErrInvalid, r.NAT)
	}
	eps, err := json.Marshal(nonNil(r.Endpoints))
	if err != nil {
		return Device{}, false, fmt.Errorf("encode endpoints: %w", err)
	}
	refl, err := json.Marshal(nonNil(r.Reflexive))
	if err != nil {
		return Device{}, false, fmt.Errorf("encode reflexive endpoints: %w", err)
	}
	var d Device
	changed := false
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := deviceWhere(ctx, tx, `d.id = ?`, id)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("device %s %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE devices SET listen_port = ?, endpoints = ?, reflexive = ?, nat = ?, last_seen = ? WHERE id = ?`,
			r.ListenPort, string(eps), string(refl), r.NAT, millis(s.now()), id)
		if err != nil {
			return fmt.Errorf("set endpoints of %s: %w", id, err)
		}
		if d, err = deviceWhere(ctx, tx, `d.id = ?`, id); err != nil {
			return err
		}
		changed = d.ListenPort != old.ListenPort || d.NAT != old.NAT ||
			!slices.Equal(d.Endpoints, old.Endpoints) || !slices.Equal(d.Reflexive, old.Reflexive)
		return nil
	})
	return d, changed, err
}

// Touch records that a device was seen at t.
func (s *Store) Touch(ctx context.Context, id string, t time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE devices SET last_seen = ? WHERE id = ?`, millis(t), id); err != nil {
		return fmt.Errorf("touch device %s: %w", id, err)
	}
	return nil
}

// RemoveDevice deletes a device of the named account, found by name or else by ID,
// and revokes its key with reason. It returns the removed device.
func (s *Store) RemoveDevice(ctx context.Context, account, nameOrID, reason string) (Device, error) {
	var d Device
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		d, err = deviceWhere(ctx, tx, `d.account_id = ? AND d.name = ?`, a.ID, nameOrID)
		if errors.Is(err, ErrNotFound) {
			d, err = deviceWhere(ctx, tx, `d.account_id = ? AND d.id = ?`, a.ID, nameOrID)
		}
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("device %q in account %q %w", nameOrID, account, ErrNotFound)
		}
		if err != nil {
			return err
		}
		return s.removeDevice(ctx, tx, d, reason)
	})
	return d, err
}

// RemoveDeviceByID deletes a device and revokes its key with reason.
func (s *Store) RemoveDeviceByID(ctx context.Context, id, reason string) (Device, error) {
	var d Device
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if d, err = deviceWhere(ctx, tx, `d.id = ?`, id); err != nil {
			return err
		}
		return s.removeDevice(ctx, tx, d, reason)
	})
	return d, err
}

func (s *Store) removeDevice(ctx context.Context, tx *sql.Tx, d Device, reason string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, d.ID); err != nil {
		return fmt.Errorf("remove device %s: %w", d.Name, err)
	}
	_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO revoked_keys (public_key, account_id, reason, revoked_at) VALUES (?, ?, ?, ?)`,
		d.PublicKey.String(), d.AccountID, reason, millis(s.now()))
	if err != nil {
		return fmt.Errorf("revoke key of %s: %w", d.Name, err)
	}
	return nil
}
