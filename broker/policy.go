package broker

import (
	"context"
	"fmt"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/internal/policy"
	"github.com/weftmesh/weft/wire"
)

// policyView is a compiled access policy: which peers each device may see, and its
// inbound filter. A device missing from filters gets the zero filter, which denies all.
type policyView struct {
	visible map[string]map[string]bool
	filters map[string]wire.PacketFilter
}

func (v policyView) Visible(self, peer string) bool       { return v.visible[self][peer] }
func (v policyView) Filter(self string) wire.PacketFilter { return v.filters[self] }

// denyAll is the view when an account's stored policy cannot be used: fail closed.
type denyAll struct{}

func (denyAll) Visible(string, string) bool     { return false }
func (denyAll) Filter(string) wire.PacketFilter { return wire.PacketFilter{} }

func policyDevices(devs []store.Device) []policy.Device {
	out := make([]policy.Device, len(devs))
	for i, d := range devs {
		out[i] = policy.Device{ID: d.ID, Name: d.Name, Address: d.Address, User: d.User}
	}
	return out
}

// compileView compiles p for the account's devices; nil p means the account has none.
func compileView(p *policy.Policy, devs []store.Device) View {
	if p == nil {
		return allowAll{}
	}
	pd := policyDevices(devs)
	v := policyView{visible: map[string]map[string]bool{}, filters: p.Compile(pd)}
	for self, peers := range p.Visible(pd) {
		set := make(map[string]bool, len(peers))
		for _, id := range peers {
			set[id] = true
		}
		v.visible[self] = set
	}
	return v
}

// loadPolicy returns the account's parsed policy, nil if it has none.
func (b *Broker) loadPolicy(ctx context.Context, accountID int64) (*policy.Policy, error) {
	sp, ok, err := b.store.Policy(ctx, accountID)
	if err != nil || !ok {
		return nil, err
	}
	p, err := policy.Parse(sp.Filename, sp.Source)
	if err != nil {
		return nil, fmt.Errorf("stored policy no longer parses: %w", err)
	}
	return p, nil
}

// refresh loads the account's devices and policy into the hub, which sends every live
// stream what changed. Call it with writeMu held, after every change to the account.
func (b *Broker) refresh(ctx context.Context, accountID int64) error {
	devs, err := b.store.Devices(ctx, accountID)
	if err != nil {
		return err
	}
	var view View
	p, err := b.loadPolicy(ctx, accountID)
	if err != nil {
		b.log.Error("access policy unusable: denying all traffic in the account", "account", accountID, "err", err)
		view = denyAll{}
	} else {
		view = compileView(p, devs)
	}
	wd := make([]wire.Device, len(devs))
	for i, d := range devs {
		wd[i] = b.wireDevice(d)
		wd[i].Online = false // the hub knows who is online
	}
	b.hub.SetAccount(accountID, wd, view)
	return nil
}

// setPolicy validates and stores an account's policy, then pushes the new filters and
// maps to every device of the account. A policy with an error changes nothing.
func (b *Broker) setPolicy(ctx context.Context, account, filename string, src []byte) ([]string, error) {
	p, err := policy.Parse(filename, src)
	if err != nil {
		return nil, errorf(400, "%v", err)
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	a, err := b.store.AccountByName(ctx, account)
	if err != nil {
		return nil, err
	}
	if err := b.store.SetPolicy(ctx, account, store.StoredPolicy{Filename: filename, Source: src}); err != nil {
		return nil, err
	}
	devs, err := b.store.Devices(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	if err := b.refresh(ctx, a.ID); err != nil {
		return nil, err
	}
	return p.Warnings(policyDevices(devs)), nil
}
