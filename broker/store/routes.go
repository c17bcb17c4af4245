package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftmesh/weft/wire"
)

// Routes are the device's networks peers may route through it: those it advertises that
// are approved.
func (d Device) Routes() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range d.Advertised {
		if slices.Contains(d.Approved, p) {
			out = append(out, p)
		}
	}
	return out
}

// SortRoutes sorts prefixes as the store keeps them: IPv4 first, then by address and length.
func SortRoutes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}

// CheckRoutes validates a device's advertised networks and returns them sorted, without
// duplicates.
func CheckRoutes(routes []netip.Prefix) ([]netip.Prefix, error) {
	if len(routes) > wire.MaxRoutes {
		return nil, fmt.Errorf("%w: %d routes advertised, the limit is %d", ErrInvalid, len(routes), wire.MaxRoutes)
	}
	for _, p := range routes {
		if err := wire.ValidateRoute(p); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	out := slices.Clone(routes)
	SortRoutes(out)
	return slices.Compact(out), nil
}

// SetAdvertisedRoutes replaces the networks device id advertises (see CheckRoutes) and
// returns the device, and whether its advertised routes changed.
func (s *Store) SetAdvertisedRoutes(ctx context.Context, id string, routes []netip.Prefix) (Device, bool, error) {
	routes, err := CheckRoutes(routes)
	if err != nil {
		return Device{}, false, err
	}
	var d Device
	changed := false
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := deviceWhere(ctx, tx, `d.id = ?`, id)
		if err != nil {
			return err
		}
		if changed = !slices.Equal(old.Advertised, routes); changed {
			if err := setRouteList(ctx, tx, id, "advertised_routes", routes); err != nil {
				return err
			}
		}
		d, err = deviceWhere(ctx, tx, `d.id = ?`, id)
		return err
	})
	return d, changed, err
}

// ApproveRoute approves route for the device of the named account called (or with ID)
// device. Only a network the device advertises can be approved; approving one twice is
// no error. It returns the device.
func (s *Store) ApproveRoute(ctx context.Context, account, device string, route netip.Prefix) (Device, error) {
	return s.changeApproval(ctx, account, device, func(d Device) ([]netip.Prefix, error) {
		if !slices.Contains(d.Advertised, route) {
			return nil, fmt.Errorf("%w: device %s does not advertise %s (it advertises %s)",
				ErrInvalid, d.Name, route, listOrNone(d.Advertised))
		}
		if slices.Contains(d.Approved, route) {
			return d.Approved, nil
		}
		out := append(slices.Clone(d.Approved), route)
		SortRoutes(out)
		return out, nil
	})
}

// UnapproveRoute withdraws the approval of route for a device (by name or ID) of the
// named account, advertised or not; ErrNotFound if it was not approved.
func (s *Store) UnapproveRoute(ctx context.Context, account, device string, route netip.Prefix) (Device, error) {
	return s.changeApproval(ctx, account, device, func(d Device) ([]netip.Prefix, error) {
		i := slices.Index(d.Approved, route)
		if i < 0 {
			return nil, fmt.Errorf("route %s of device %s is not approved: %w", route, d.Name, ErrNotFound)
		}
		return slices.Delete(slices.Clone(d.Approved), i, i+1), nil
	})
}

// ApproveAdvertised approves, for device id, those of its advertised routes that
// approve says yes to (the policy's autoApprovers), and reports whether any was new.
func (s *Store) ApproveAdvertised(ctx context.Context, id string, approve func(netip.Prefix) bool) (bool, error) {
	changed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		d, err := deviceWhere(ctx, tx, `d.id = ?`, id)
		if err != nil {
			return err
		}
		approved := slices.Clone(d.Approved)
		for _, p := range d.Advertised {
			if !slices.Contains(approved, p) && approve(p) {
				approved = append(approved, p)
			}
		}
		if changed = len(approved) != len(d.Approved); !changed {
			return nil
		}
		SortRoutes(approved)
		return setRouteList(ctx, tx, id, "approved_routes", approved)
	})
	return changed, err
}

// changeApproval replaces a device's approved routes with what change makes of them.
func (s *Store) changeApproval(ctx context.Context, account, device string, change func(Device) ([]netip.Prefix, error)) (Device, error) {
	var d Device
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if d, err = accountDevice(ctx, tx, account, device); err != nil {
			return err
		}
		approved, err := change(d)
		if err != nil {
			return err
		}
		if slices.Equal(approved, d.Approved) {
			return nil
		}
		if err := setRouteList(ctx, tx, d.ID, "approved_routes", approved); err != nil {
			return err
		}
		d, err = deviceWhere(ctx, tx, `d.id = ?`, d.ID)
		return err
	})
	return d, err
}

// accountDevice finds a device of the named account by name, else by ID.
func accountDevice(ctx context.Context, q querier, account, nameOrID string) (Device, error) {
	a, err := accountByName(ctx, q, account)
	if err != nil {
		return Device{}, err
	}
	d, err := deviceWhere(ctx, q, `d.account_id = ? AND d.name = ?`, a.ID, nameOrID)
	if errors.Is(err, ErrNotFound) {
		d, err = deviceWhere(ctx, q, `d.account_id = ? AND d.id = ?`, a.ID, nameOrID)
	}
	if errors.Is(err, ErrNotFound) {
		return d, fmt.Errorf("device %q in account %q %w", nameOrID, account, ErrNotFound)
	}
	return d, err
}

// setRouteList stores routes in column (advertised_routes or approved_routes) of device id.
func setRouteList(ctx context.Context, tx *sql.Tx, id, column string, routes []netip.Prefix) error {
	if routes == nil {
		routes = []netip.Prefix{}
	}
	b, err := json.Marshal(routes)
	if err != nil {
		return fmt.Errorf("encode routes: %w", err)
	}
	// column is one of two constants, never input.
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET `+column+` = ? WHERE id = ?`, string(b), id); err != nil {
		return fmt.Errorf("store routes of %s: %w", id, err)
	}
	return nil
}

func listOrNone(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
