package broker

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func dev(t *testing.T, id string) wire.Device {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return wire.Device{ID: id, Name: id, Account: "acme", PublicKey: k.Public(),
		Address: netip.MustParseAddr("100.64.0.1")}
}

// next returns the stream's next queued update, failing if there is none.
func next(t *testing.T, s *Stream) wire.MapUpdate {
	t.Helper()
	select {
	case u := <-s.Updates():
		return u
	default:
		t.Fatal("no update queued")
		return wire.MapUpdate{}
	}
}

func none(t *testing.T, s *Stream) {
	t.Helper()
	select {
	case u := <-s.Updates():
		t.Fatalf("unexpected update %+v", u)
	default:
	}
}

func ended(s *Stream) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// acct is a test account: its devices as the store would hold them, pushed to the hub.
type acct struct {
	h    *Hub
	id   int64
	devs []wire.Device
	view View
}

func (a *acct) set(ds ...wire.Device) {
	for _, d := range ds {
		replaced := false
		for i := range a.devs {
			if a.devs[i].ID == d.ID {
				a.devs[i], replaced = d, true
			}
		}
		if !replaced {
			a.devs = append(a.devs, d)
		}
	}
	a.h.SetAccount(a.id, a.devs, a.view)
}

func (a *acct) remove(id string) {
	for i := range a.devs {
		if a.devs[i].ID == id {
			a.devs = append(a.devs[:i], a.devs[i+1:]...)
			break
		}
	}
	a.h.SetAccount(a.id, a.devs, a.view)
}

func (a *acct) subscribe(t *testing.T, d wire.Device) (*Stream, wire.MapUpdate) {
	t.Helper()
	s, full, ok := a.h.Subscribe(a.id, d.ID, d.PublicKey)
	if !ok || !full.Full {
		t.Fatalf("subscribe %s: ok %v, full %+v", d.ID, ok, full)
	}
	return s, full
}

func TestHubDeltas(t *testing.T) {
	h := NewHub()
	a, b, c := dev(t, "a"), dev(t, "b"), dev(t, "c")
	ac := &acct{h: h, id: 1}
	if _, _, ok := h.Subscribe(1, "a", a.PublicKey); ok {
		t.Fatal("subscribed to an account the hub has not loaded")
	}
	ac.set(a, b)
	sa, full := ac.subscribe(t, a)
	if full.Self == nil || full.Self.ID != "a" || !full.Self.Online || len(full.Peers) != 1 || full.Peers[0].Online ||
		full.Filter == nil || !full.Filter.DefaultAllow {
		t.Fatalf("a's full map %+v", full)
	}
	none(t, sa)
	sb, _ := ac.subscribe(t, b)
	// a hears that b came online; b hears nothing more than its full map.
	if u := next(t, sa); len(u.Peers) != 1 || u.Peers[0].ID != "b" || !u.Peers[0].Online || u.Self != nil {
		t.Fatalf("a got %+v, want b online", u)
	}
	none(t, sb)
	if !h.Online(1, "a") || h.Online(1, "c") || h.Online(2, "a") {
		t.Fatal("Online wrong")
	}

	// Device added (no stream): both hear it, offline.
	ac.set(c)
	for _, s := range []*Stream{sa, sb} {
		if u := next(t, s); len(u.Peers) != 1 || u.Peers[0].ID != "c" || u.Peers[0].Online {
			t.Fatalf("got %+v, want c offline", u)
		}
	}

	// Endpoint change of b: b gets Self, a gets the changed peer.
	b.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:51820")}
	ac.set(b)
	if u := next(t, sb); u.Self == nil || !reflect.DeepEqual(u.Self.Endpoints, b.Endpoints) || !u.Self.Online || len(u.Peers) != 0 {
		t.Fatalf("b got %+v, want Self with new endpoints", u)
	}
	if u := next(t, sa); len(u.Peers) != 1 || !reflect.DeepEqual(u.Peers[0].Endpoints, b.Endpoints) {
		t.Fatalf("a got %+v, want b's new endpoints", u)
	}
	// Nothing changed: nothing sent.
	ac.set(b)
	none(t, sa)
	none(t, sb)

	// Key change of b: the stream with the old key is revoked; a learns the new key.
	old := b.PublicKey
	h.Revoke(1, "b", dev(t, "x").PublicKey, "wrong key: ignored")
	if ended(sb) {
		t.Fatal("revoke with a key the stream does not hold ended it")
	}
	h.Revoke(1, "b", old, "replaced by a new registration of b")
	if !ended(sb) || h.Revoked(sb) != "replaced by a new registration of b" {
		t.Fatalf("b's old stream: ended %v, revoked %q", ended(sb), h.Revoked(sb))
	}
	b.PublicKey = dev(t, "y").PublicKey
	ac.set(b)
	if u := next(t, sa); len(u.Peers) != 1 || u.Peers[0].PublicKey != b.PublicKey || u.Peers[0].Online {
		t.Fatalf("a got %+v, want b with new key, offline", u)
	}

	// Removal: peers drop c.
	ac.remove("c")
	if u := next(t, sa); !reflect.DeepEqual(u.Removed, []string{"c"}) {
		t.Fatalf("a got %+v, want c removed", u)
	}

	// Offline: b reconnects then goes away.
	sb2, _ := ac.subscribe(t, b)
	next(t, sa) // b online
	h.Unsubscribe(sb2)
	if u := next(t, sa); len(u.Peers) != 1 || u.Peers[0].ID != "b" || u.Peers[0].Online {
		t.Fatalf("a got %+v, want b offline", u)
	}
	h.Unsubscribe(sb2) // idempotent
	none(t, sa)

	// Removing a device with a stream revokes it and tells the others.
	sb3, _ := ac.subscribe(t, b)
	next(t, sa)
	h.End(1, "a", "removed by administrator")
	ac.remove("a")
	if !ended(sa) || h.Revoked(sa) != "removed by administrator" {
		t.Fatalf("a: ended %v, revoked %q", ended(sa), h.Revoked(sa))
	}
	if u := next(t, sb3); !reflect.DeepEqual(u.Removed, []string{"a"}) {
		t.Fatalf("b got %+v, want a removed", u)
	}
	h.Unsubscribe(sa) // its handler's deferred call: no news for a removed device
	none(t, sb3)
}

func TestHubSecondStreamReplacesFirst(t *testing.T) {
	h := NewHub()
	a, b := dev(t, "a"), dev(t, "b")
	ac := &acct{h: h, id: 1}
	ac.set(a, b)
	sa, _ := ac.subscribe(t, a)
	sb1, _ := ac.subscribe(t, b)
	next(t, sa)
	sb2, full := ac.subscribe(t, b)
	if !ended(sb1) || h.Revoked(sb1) != "" {
		t.Fatalf("first stream: ended %v, revoked %q; want ended, not revoked", ended(sb1), h.Revoked(sb1))
	}
	if ended(sb2) || len(full.Peers) != 1 {
		t.Fatalf("second stream ended or its full map %+v is wrong", full)
	}
	none(t, sa) // b never went offline
	h.Unsubscribe(sb1)
	none(t, sa) // the replaced stream closing does not take b offline
	if !h.Online(1, "b") {
		t.Fatal("b offline after its old stream closed")
	}
	b.Name = "b2"
	ac.set(b)
	if u := next(t, sb2); u.Self == nil || u.Self.Name != "b2" {
		t.Fatalf("new stream got %+v, want Self", u)
	}
}

func TestHubAccountsAreSeparate(t *testing.T) {
	h := NewHub()
	a1, a2 := &acct{h: h, id: 1}, &acct{h: h, id: 2}
	a, b := dev(t, "a"), dev(t, "b")
	a1.set(a)
	a2.set(b)
	s1, _ := a1.subscribe(t, a)
	s2, _ := a2.subscribe(t, b)
	a2.set(dev(t, "c"))
	a2.remove("c")
	none(t, s1)
	next(t, s2)
	next(t, s2)
}

func TestHubDropsLaggingStream(t *testing.T) {
	h := NewHub()
	ac := &acct{h: h, id: 1}
	slow, fast := dev(t, "slow"), dev(t, "fast")
	ac.set(slow, fast)
	ss, _ := ac.subscribe(t, slow)
	sf, _ := ac.subscribe(t, fast)
	next(t, ss) // fast came online
	for i := range streamBuffer {
		ac.set(dev(t, fmt.Sprintf("d%d", i)))
		next(t, sf)
	}
	if ended(ss) {
		t.Fatal("stream dropped before its buffer was full")
	}
	ac.set(dev(t, "overflow"))
	if !ended(ss) || h.Online(1, "slow") {
		t.Fatal("lagging stream not dropped")
	}
	next(t, sf) // overflow
	if u := next(t, sf); len(u.Peers) != 1 || u.Peers[0].ID != "slow" || u.Peers[0].Online {
		t.Fatalf("fast got %+v, want slow offline", u)
	}
}

// fixedView lets each device see the listed peers, with the given filters.
type fixedView struct {
	visible map[string][]string
	filters map[string]wire.PacketFilter
}

func (v fixedView) Visible(self, peer string) bool {
	for _, p := range v.visible[self] {
		if p == peer {
			return true
		}
	}
	return false
}
func (v fixedView) Filter(self string) wire.PacketFilter { return v.filters[self] }

func TestHubPolicyView(t *testing.T) {
	h := NewHub()
	a, b, c := dev(t, "a"), dev(t, "b"), dev(t, "c")
	sshOnly := wire.PacketFilter{Rules: []wire.FilterRule{{Sources: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")},
		Proto: wire.ProtoTCP, Ports: []wire.PortRange{{First: 22, Last: 22}}}}}
	ac := &acct{h: h, id: 1, view: fixedView{
		visible: map[string][]string{"a": {"b"}, "b": {"a"}},
		filters: map[string]wire.PacketFilter{"b": sshOnly},
	}}
	ac.set(a, b, c)
	sa, full := ac.subscribe(t, a)
	if len(full.Peers) != 1 || full.Peers[0].ID != "b" || full.Filter == nil || len(full.Filter.Rules) != 0 || full.Filter.DefaultAllow {
		t.Fatalf("a's full map %+v: want only b, deny-all filter", full)
	}
	sc, full := ac.subscribe(t, c)
	if len(full.Peers) != 0 {
		t.Fatalf("c sees %+v, want nobody", full.Peers)
	}
	none(t, sa) // c came online, but a may not see it
	sb, full := ac.subscribe(t, b)
	if !reflect.DeepEqual(*full.Filter, sshOnly) {
		t.Fatalf("b's filter %+v", full.Filter)
	}
	next(t, sa) // b online

	// The policy changes: c becomes visible to a, b loses its rule and a.
	ac.view = fixedView{visible: map[string][]string{"a": {"c"}, "c": {"a"}}}
	ac.set()
	if u := next(t, sa); !reflect.DeepEqual(peerIDs(u.Peers), []string{"c"}) || !reflect.DeepEqual(u.Removed, []string{"b"}) || u.Filter != nil {
		t.Fatalf("a got %+v, want c added, b removed, filter unchanged", u)
	}
	if u := next(t, sb); !reflect.DeepEqual(u.Removed, []string{"a"}) || u.Filter == nil || len(u.Filter.Rules) != 0 {
		t.Fatalf("b got %+v, want a removed and a deny-all filter", u)
	}
	if u := next(t, sc); !reflect.DeepEqual(peerIDs(u.Peers), []string{"a"}) {
		t.Fatalf("c got %+v, want a", u)
	}
}
