package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/dnsname"
	"github.com/weftmesh/weft/internal/ipam"
	"github.com/weftmesh/weft/wire"
)

// MeshPrefix is where device addresses come from; each account has all of it.
var MeshPrefix = netip.MustParsePrefix("100.64.0.0/10")

// Device is a registered device.
type Device struct {
	ID         string
	AccountID  int64
	Account    string // account name
	Name       string
	PublicKey  wire.Key
	Address    netip.Addr
	Endpoints  []netip.AddrPort // as the broker last composed them: observed first
	ListenPort int
	CreatedAt  time.Time
	LastSeen   time.Time
	User       string // email of the user who registered it; "" for an auth key
	// Reflexive are the public mappings the device last reported (also in Endpoints).
	Reflexive []netip.AddrPort
	NAT       string // what the device last reported of its NAT: a wire.NAT* constant
	// Advertised are the networks the device offers to route, sorted; Approved those an
	// administrator or the policy approved, advertised now or not (see Routes).
	Advertised, Approved []netip.Prefix
}

// DeviceSpec is what a registration asks for.
type DeviceSpec struct {
	PublicKey  wire.Key
	Name       string
	ListenPort int
	Endpoints  []netip.AddrPort
	User       string // the authenticated user's email; "" for an auth key
	// Online reports whether the device with this ID is connected now. A registration
	// under the name of an offline device is a reinstall and takes that device over
	// (address included); under the name of an online one it is a second machine with the
	// same name and gets the name with a suffix (laptop-2). nil means none is online.
	Online func(accountID int64, id string) bool
}

func (d DeviceSpec) online(accountID int64, id string) bool {
	return d.Online != nil && d.Online(accountID, id)
}

func (d DeviceSpec) validate() error {
	if d.PublicKey.IsZero() {
		return fmt.Errorf("%w: public key is missing", ErrInvalid)
	}
	if err := dnsname.ValidLabel(d.Name); err != nil {
		return fmt.Errorf("%w: device %w", ErrInvalid, err)
	}
	if d.ListenPort < 0 || d.ListenPort > 65535 {
		return fmt.Errorf("%w: listen port %d is out of range", ErrInvalid, d.ListenPort)
	}
	return nil
}

// RegisterResult says what a registration did.
type RegisterResult struct {
	Device  Device
	Created bool // a new device with a new address
	// ReplacedKey is set when an existing device of the same name took the new key:
	// this old key is revoked and its map stream must end.
	ReplacedKey wire.Key
}

// RegisterWithAuthKey checks authKey and registers the device into the key's account,
// in one transaction: a single-use key registers exactly one device however many try.
func (s *Store) RegisterWithAuthKey(ctx context.Context, authKey string, spec DeviceSpec) (RegisterResult, error) {
	if err := spec.validate(); err != nil {
		return RegisterResult{}, err
	}
	var res RegisterResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		accountID, err := s.useAuthKey(ctx, tx, authKey)
		if err != nil {
			return err
		}
		res, err = s.register(ctx, tx, accountID, spec)
		return err
	})
	return res, err
}

// RegisterInAccount registers the device into an account whose user the caller has
// already authenticated (see CheckPassword).
func (s *Store) RegisterInAccount(ctx context.Context, accountID int64, spec DeviceSpec) (RegisterResult, error) {
	if err := spec.validate(); err != nil {
		return RegisterResult{}, err
	}
	var res RegisterResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.register(ctx, tx, accountID, spec)
		return err
	})
	return res, err
}

// register applies the re-registration rules: a known key keeps its device; else a
// known name in the account hands its device (and address) to the new key; else a new
// device gets a fresh address.
func (s *Store) register(ctx context.Context, tx *sql.Tx, accountID int64, spec DeviceSpec) (RegisterResult, error) {
	var res RegisterResult
	eps, err := json.Marshal(nonNil(spec.Endpoints))
	if err != nil {
		return res, fmt.Errorf("encode endpoints: %w", err)
	}
	now := millis(s.now())

	byKey, err := deviceWhere(ctx, tx, `d.public_key = ?`, spec.PublicKey.String())
	switch {
	case err == nil:
		if byKey.AccountID != accountID {
			return res, fmt.Errorf("%w: this public key is registered to a device in account %q", ErrConflict, byKey.Account)
		}
		if byKey.Name != spec.Name {
			// Renaming onto a name another device holds gets the next free suffix.
			if spec.Name, err = freeName(ctx, tx, accountID, spec.Name); err != nil {
				return res, err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE devices SET name = ?, listen_port = ?, endpoints = ?, last_seen = ?, user_email = ?,
			reflexive = '[]', nat = '' WHERE id = ?`,
			spec.Name, spec.ListenPort, string(eps), now, spec.User, byKey.ID)
		if err != nil {
			return res, fmt.Errorf("update device %s: %w", byKey.ID, err)
		}
		res.Device, err = deviceWhere(ctx, tx, `d.id = ?`, byKey.ID)
		return res, err
	case !errors.Is(err, ErrNotFound):
		return res, err
	}

	byName, err := deviceWhere(ctx, tx, `d.account_id = ? AND d.name = ?`, accountID, spec.Name)
	if err == nil && spec.online(accountID, byName.ID) {
		if spec.Name, err = freeName(ctx, tx, accountID, spec.Name); err != nil {
			return res, err
		}
		err = fmt.Errorf("device %w", ErrNotFound) // register as a new device
	}
	switch {
	case err == nil:
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO revoked_keys (public_key, account_id, reason, revoked_at) VALUES (?, ?, ?, ?)`,
			byName.PublicKey.String(), accountID, "replaced by a new registration of "+spec.Name, now)
		if err != nil {
			return res, fmt.Errorf("revoke old key of %s: %w", spec.Name, err)
		}
		// A reinstall advertises its own routes, if any; approvals stay with the device.
		_, err = tx.ExecContext(ctx, `UPDATE devices SET public_key = ?, listen_port = ?, endpoints = ?, last_seen = ?, user_email = ?,
			reflexive = '[]', nat = '', advertised_routes = '[]' WHERE id = ?`,
			spec.PublicKey.String(), spec.ListenPort, string(eps), now, spec.User, byName.ID)
		if err != nil {
			return res, fmt.Errorf("rekey device %s: %w", byName.ID, err)
		}
		res.ReplacedKey = byName.PublicKey
		res.Device, err = deviceWhere(ctx, tx, `d.id = ?`, byName.ID)
		if err != nil {
			return res, err
		}
	case errors.Is(err, ErrNotFound):
		// A virtual device may hold the name.
		if spec.Name, err = freeName(ctx, tx, accountID, spec.Name); err != nil {
			return res, err
		}
		addr, err := allocateAddress(ctx, tx, accountID)
		if err != nil {
			return res, err
		}
		id, err := newDeviceID()
		if err != nil {
			return res, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO devices
			(id, account_id, name, public_key, address, endpoints, listen_port, created_at, last_seen, user_email)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, accountID, spec.Name, spec.PublicKey.String(), addr.String(), string(eps), spec.ListenPort, now, now, spec.User)
		if err != nil {
			return res, fmt.Errorf("insert device %s: %w", spec.Name, err)
		}
		res.Created = true
		res.Device, err = deviceWhere(ctx, tx, `d.id = ?`, id)
		if err != nil {
			return res, err
		}
	default:
		return res, err
	}
	// A key that was revoked earlier is welcome again once it registers anew.
	if _, err := tx.ExecContext(ctx, `DELETE FROM revoked_keys WHERE public_key = ?`, spec.PublicKey.String()); err != nil {
		return res, fmt.Errorf("clear revocation: %w", err)
	}
	return res, nil
}

// freeName returns name if no device or virtual device of the account holds it, else the
// first of name-2, name-3, … that is free, shortened so that it stays a valid DNS label.
func freeName(ctx context.Context, tx *sql.Tx, accountID int64, name string) (string, error) {
	for i := 1; i < 10000; i++ {
		cand := name
		if i > 1 {
			suffix := fmt.Sprintf("-%d", i)
			base := name
			if len(base)+len(suffix) > dnsname.MaxLabel {
				base = strings.TrimRight(base[:dnsname.MaxLabel-len(suffix)], "-")
			}
			cand = base + suffix
		}
		var taken bool
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE account_id = ?1 AND name = ?2)
			OR EXISTS (SELECT 1 FROM vdevs WHERE account_id = ?1 AND name = ?2)`, accountID, cand).Scan(&taken)
		if err != nil {
			return "", fmt.Errorf("look up name %q: %w", cand, err)
		}
		if !taken {
			return cand, nil
		}
	}
	return "", fmt.Errorf("%w: no free name like %q", ErrConflict, name)
}

// allocateAddress picks an address no device or virtual device of the account holds; the
// caller's transaction holds the write lock, so no one else can take it before the insert.
func allocateAddress(ctx context.Context, tx *sql.Tx, accountID int64) (netip.Addr, error) {
	rows, err := tx.QueryContext(ctx, `SELECT address FROM devices WHERE account_id = ?1
		UNION ALL SELECT address FROM vdevs WHERE account_id = ?1`, accountID)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses: %w", err)
	}
	defer rows.Close()
	pool := ipam.NewPool(MeshPrefix)
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return netip.Addr{}, fmt.Errorf("list addresses: %w", err)
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("stored address %q: %w", s, err)
		}
		if err := pool.Reserve(a); err != nil {
			return netip.Addr{}, fmt.Errorf("stored address: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses: %w", err)
	}
	a, err := pool.Allocate()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("allocate device address: %w", err)
	}
	return a, nil
}

func newDeviceID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate device id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func nonNil(eps []netip.AddrPort) []netip.AddrPort {
	if eps == nil {
		return []netip.AddrPort{}
	}
	return eps
}
