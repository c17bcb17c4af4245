package broker

import (
	"context"
	"fmt"
	"net/netip"

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

// policyDevices is what the policy knows of an account's devices and virtual devices. A
// virtual device belongs to its gateway's user, so user:EMAIL selects it too.
func policyDevices(devs []store.Device, vdevs []store.VirtualDevice) []policy.Device {
	out := make([]policy.Device, 0, len(devs)+len(vdevs))
	users := make(map[string]string, len(devs))
	for _, d := range devs {
		out = append(out, policy.Device{ID: d.ID, Name: d.Name, Address: d.Address, User: d.User})
		users[d.ID] = d.User
	}
	for _, v := range vdevs {
		out = append(out, policy.Device{ID: v.ID, Name: v.Name, Address: v.Address, User: users[v.GatewayID], Gateway: v.GatewayID})
	}
	return out
}

// compileView compiles p for the account's devices and virtual devices; nil p means the
// account has none.
func compileView(p *policy.Policy, pd []policy.Device) View {
	if p == nil {
		return allowAll{}
	}
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

// refresh loads the account's devices, virtual devices and policy into the hub, which
// sends every live stream what changed. Call it with writeMu held, after every change to
// the account.
func (b *Broker) refresh(ctx context.Context, accountID int64) error {
	devs, err := b.store.Devices(ctx, accountID)
	if err != nil {
		return err
	}
	vdevs, err := b.store.VirtualDevices(ctx, accountID)
	if err != nil {
		return err
	}
	var view View
	p, err := b.loadPolicy(ctx, accountID)
	if err != nil {
		b.log.Error("access policy unusable: denying all traffic in the account", "account", accountID, "err", err)
		view = denyAll{}
	} else {
		view = compileView(p, policyDevices(devs, vdevs))
	}
	wd := make([]wire.Device, 0, len(devs)+len(vdevs))
	for _, d := range devs {
		w := b.wireDevice(d)
		w.Online = false // the hub knows who is online
		wd = append(wd, w)
	}
	for _, v := range vdevs {
		wd = append(wd, b.wireVirtual(v))
	}
	b.hub.SetAccount(accountID, wd, view)
	return nil
}

// autoApprove records the approvals the policy's autoApprovers grant for the routes the
// devices advertise, and reports whether there was any new one. Call it with writeMu held.
func (b *Broker) autoApprove(ctx context.Context, p *policy.Policy, devs []store.Device) (bool, error) {
	if p == nil {
		return false, nil
	}
	added := false
	for _, d := range devs {
		if len(d.Routes()) == len(d.Advertised) {
			continue // nothing left to approve
		}
		pd := policy.Device{ID: d.ID, Name: d.Name, Address: d.Address, User: d.User}
		changed, err := b.store.ApproveAdvertised(ctx, d.ID, func(route netip.Prefix) bool { return p.AutoApproves(pd, route) })
		if err != nil {
			return added, err
		}
		if changed {
			b.log.Info("routes approved by the policy", "account", d.Account, "device", d.Name)
		}
		added = added || changed
	}
	return added, nil
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
	vdevs, err := b.store.VirtualDevices(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	// New autoApprovers approve what is advertised already.
	if _, err := b.autoApprove(ctx, p, devs); err != nil {
		return nil, err
	}
	if err := b.refresh(ctx, a.ID); err != nil {
		return nil, err
	}
	return p.Warnings(policyDevices(devs, vdevs)), nil
}
