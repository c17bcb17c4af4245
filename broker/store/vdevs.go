package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/wire"
)

// MaxVirtualDevices is how many virtual devices one gateway may host.
const MaxVirtualDevices = 256

// VirtualDevice is a LAN device that cannot run weft, projected into the mesh by a
// gateway: it has a mesh address (its SecureIP) and a name like any device, but no key.
type VirtualDevice struct {
	ID        string
	AccountID int64
	Account   string // account name
	GatewayID string
	Gateway   string // the gateway's name
	Name      string
	Address   netip.Addr // the SecureIP, from the same pool as devices' addresses
	LANIP     netip.Addr // the real address on the gateway's LAN
	CreatedAt time.Time
}

// VirtualSpec is what a gateway asks for.
type VirtualSpec struct {
	Name  string
	LANIP netip.Addr
}

const vdevColumns = `v.id, v.account_id, a.name, v.gateway_id, g.name, v.name, v.address, v.lan_ip, v.created_at
	FROM vdevs v JOIN accounts a ON a.id = v.account_id JOIN devices g ON g.id = v.gateway_id`

func scanVirtual(row scanner) (VirtualDevice, error) {
	var (
		v         VirtualDevice
		addr, lan string
		created   int64
	)
	if err := row.Scan(&v.ID, &v.AccountID, &v.Account, &v.GatewayID, &v.Gateway, &v.Name, &addr, &lan, &created); err != nil {
		return v, err
	}
	var err error
	if v.Address, err = netip.ParseAddr(addr); err != nil {
		return v, fmt.Errorf("virtual device %s: stored address: %w", v.ID, err)
	}
	if v.LANIP, err = netip.ParseAddr(lan); err != nil {
		return v, fmt.Errorf("virtual device %s: stored LAN IP: %w", v.ID, err)
	}
	v.CreatedAt = fromMillis(created)
	return v, nil
}

func virtualWhere(ctx context.Context, q querier, cond string, args ...any) (VirtualDevice, error) {
	v, err := scanVirtual(q.QueryRowContext(ctx, `SELECT `+vdevColumns+` WHERE `+cond, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("virtual device %w", ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("look up virtual device: %w", err)
	}
	return v, nil
}

func virtualsWhere(ctx context.Context, q querier, cond string, args ...any) ([]VirtualDevice, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+vdevColumns+` WHERE `+cond+` ORDER BY v.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list virtual devices: %w", err)
	}
	defer rows.Close()
	var out []VirtualDevice
	for rows.Next() {
		v, err := scanVirtual(rows)
		if err != nil {
			return nil, fmt.Errorf("list virtual devices: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list virtual devices: %w", err)
	}
	return out, nil
}

// VirtualDevices lists an account's virtual devices by name.
func (s *Store) VirtualDevices(ctx context.Context, accountID int64) ([]VirtualDevice, error) {
	return virtualsWhere(ctx, s.db, `v.account_id = ?`, accountID)
}

// AccountVirtualDevices lists the virtual devices of the named account.
func (s *Store) AccountVirtualDevices(ctx context.Context, account string) ([]VirtualDevice, error) {
	a, err := accountByName(ctx, s.db, account)
	if err != nil {
		return nil, err
	}
	return s.VirtualDevices(ctx, a.ID)
}

// AddVirtualDevice registers a virtual device behind gateway gatewayID (see
// wire.VDevRequest): the gateway's virtual device called spec.Name moves to spec.LANIP,
// else a new one gets a free address and spec.Name (with a suffix if a device or virtual
// device of the account holds it). It returns the virtual device and whether anything
// changed.
func (s *Store) AddVirtualDevice(ctx context.Context, gatewayID string, spec VirtualSpec) (VirtualDevice, bool, error) {
	if err := dnsname.ValidLabel(spec.Name); err != nil {
		return VirtualDevice{}, false, fmt.Errorf("%w: virtual device %w", ErrInvalid, err)
	}
	if err := wire.ValidateLANIP(spec.LANIP); err != nil {
		return VirtualDevice{}, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var v VirtualDevice
	changed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		gw, err := deviceWhere(ctx, tx, `d.id = ?`, gatewayID)
		if err != nil {
			return err
		}
		byLAN, err := virtualWhere(ctx, tx, `v.gateway_id = ? AND v.lan_ip = ?`, gatewayID, spec.LANIP.String())
		switch {
		case err == nil && byLAN.Name == spec.Name:
			v = byLAN // registered already: nothing to do
			return nil
		case err == nil:
			return fmt.Errorf("%w: LAN IP %s is virtual device %s of this gateway already; remove it first",
				ErrConflict, spec.LANIP, byLAN.Name)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		changed = true
		byName, err := virtualWhere(ctx, tx, `v.gateway_id = ? AND v.name = ?`, gatewayID, spec.Name)
		switch {
		case err == nil:
			if _, err := tx.ExecContext(ctx, `UPDATE vdevs SET lan_ip = ? WHERE id = ?`, spec.LANIP.String(), byName.ID); err != nil {
				return fmt.Errorf("move virtual device %s: %w", byName.Name, err)
			}
			v, err = virtualWhere(ctx, tx, `v.id = ?`, byName.ID)
			return err
		case !errors.Is(err, ErrNotFound):
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM vdevs WHERE gateway_id = ?`, gatewayID).Scan(&n); err != nil {
			return fmt.Errorf("count virtual devices: %w", err)
		}
		if n >= MaxVirtualDevices {
			return fmt.Errorf("%w: gateway %s hosts %d virtual devices, the limit", ErrConflict, gw.Name, n)
		}
		name, err := freeName(ctx, tx, gw.AccountID, spec.Name)
		if err != nil {
			return err
		}
		addr, err := allocateAddress(ctx, tx, gw.AccountID)
		if err != nil {
			return err
		}
		id, err := newDeviceID()
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO vdevs (id, account_id, gateway_id, name, address, lan_ip, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, gw.AccountID, gatewayID, name, addr.String(), spec.LANIP.String(), millis(s.now()))
		if err != nil {
			return fmt.Errorf("insert virtual device %s: %w", name, err)
		}
		v, err = virtualWhere(ctx, tx, `v.id = ?`, id)
		return err
	})
	return v, changed, err
}

// RemoveVirtualDevice removes the virtual device called name that gateway gatewayID
// hosts; another gateway's is not found.
func (s *Store) RemoveVirtualDevice(ctx context.Context, gatewayID, name string) (VirtualDevice, error) {
	var v VirtualDevice
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		v, err = virtualWhere(ctx, tx, `v.gateway_id = ? AND v.name = ?`, gatewayID, name)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("this gateway hosts no virtual device %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		return deleteVirtual(ctx, tx, v)
	})
	return v, err
}

// RemoveAccountVirtualDevice removes a virtual device of the named account, found by
// name or else by ID, whichever gateway hosts it.
func (s *Store) RemoveAccountVirtualDevice(ctx context.Context, account, nameOrID string) (VirtualDevice, error) {
	var v VirtualDevice
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByName(ctx, tx, account)
		if err != nil {
			return err
		}
		v, err = virtualWhere(ctx, tx, `v.account_id = ? AND v.name = ?`, a.ID, nameOrID)
		if errors.Is(err, ErrNotFound) {
			v, err = virtualWhere(ctx, tx, `v.account_id = ? AND v.id = ?`, a.ID, nameOrID)
		}
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("virtual device %q in account %q %w", nameOrID, account, ErrNotFound)
		}
		if err != nil {
			return err
		}
		return deleteVirtual(ctx, tx, v)
	})
	return v, err
}

func deleteVirtual(ctx context.Context, tx *sql.Tx, v VirtualDevice) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM vdevs WHERE id = ?`, v.ID); err != nil {
		return fmt.Errorf("remove virtual device %s: %w", v.Name, err)
	}
	return nil
}

// AddressByName returns the mesh address of the device or virtual device called name in
// the named account: what its DNS name resolves to.
func (s *Store) AddressByName(ctx context.Context, account, name string) (netip.Addr, error) {
	var addr string
	err := s.db.QueryRowContext(ctx, `SELECT d.address FROM devices d JOIN accounts a ON a.id = d.account_id
			WHERE a.name = ?1 AND d.name = ?2
		UNION ALL SELECT v.address FROM vdevs v JOIN accounts a ON a.id = v.account_id
			WHERE a.name = ?1 AND v.name = ?2`, account, name).Scan(&addr)
	if errors.Is(err, sql.ErrNoRows) {
		return netip.Addr{}, fmt.Errorf("device %q in account %q %w", name, account, ErrNotFound)
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("look up device %q: %w", name, err)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("device %q: stored address: %w", name, err)
	}
	return a, nil
}
