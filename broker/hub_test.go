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

func TestHubDeltas(t *testing.T) {
	h := NewHub()
	a, b, c := dev(t, "a"), dev(t, "b"), dev(t, "c")
	sa := h.Subscribe(1, a)
	none(t, sa)
	sb := h.Subscribe(1, b)
	// a hears that b came online; b hears nothing (its handler sends the full map).
	if u := next(t, sa); len(u.Peers) != 1 || u.Peers[0].ID != "b" || !u.Peers[0].Online {
		t.Fatalf("a got %+v, want b online", u)
	}
	none(t, sb)
	if !h.Online(1, "a") || h.Online(1, "c") || h.Online(2, "a") {
		t.Fatal("Online wrong")
	}

	// Device added (no stream): both hear it, offline.
	h.Publish(1, c)
	for _, s := range []*Stream{sa, sb} {
		if u := next(t, s); len(u.Peers) != 1 || u.Peers[0].ID != "c" || u.Peers[0].Online {
			t.Fatalf("got %+v, want c offline", u)
		}
	}

	// Endpoint change of b: b gets Self, a gets the changed peer.
	b.Endpoints = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:51820")}
	h.Publish(1, b)
	if u := next(t, sb); u.Self == nil || !reflect.DeepEqual(u.Self.Endpoints, b.Endpoints) || !u.Self.Online || len(u.Peers) != 0 {
		t.Fatalf("b got %+v, want Self with new endpoints", u)
	}
	if u := next(t, sa); len(u.Peers) != 1 || !reflect.DeepEqual(u.Peers[0].Endpoints, b.Endpoints) {
		t.Fatalf("a got %+v, want b's new endpoints", u)
	}

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
	h.Publish(1, b)
	if u := next(t, sa); len(u.Peers) != 1 || u.Peers[0].PublicKey != b.PublicKey || u.Peers[0].Online {
		t.Fatalf("a got %+v, want b with new key, offline", u)
	}

	// Removal: peers drop c.
	h.Remove(1, "c", "removed by administrator")
	if u := next(t, sa); !reflect.DeepEqual(u.Removed, []string{"c"}) {
		t.Fatalf("a got %+v, want c removed", u)
	}

	// Offline: b reconnects then goes away.
	sb2 := h.Subscribe(1, b)
	next(t, sa) // b online
	h.Unsubscribe(sb2)
	if u := next(t, sa); len(u.Peers) != 1 || u.Peers[0].ID != "b" || u.Peers[0].Online {
		t.Fatalf("a got %+v, want b offline", u)
	}
	h.Unsubscribe(sb2) // idempotent
	none(t, sa)

	// Removing a device with a stream revokes it and tells the others.
	sb3 := h.Subscribe(1, b)
	next(t, sa)
	h.Remove(1, "a", "removed by administrator")
	if !ended(sa) || h.Revoked(sa) != "removed by administrator" {
		t.Fatalf("a: ended %v, revoked %q", ended(sa), h.Revoked(sa))
	}
	if u := next(t, sb3); !reflect.DeepEqual(u.Removed, []string{"a"}) {
		t.Fatalf("b got %+v, want a removed", u)
	}
	h.Unsubscribe(sa) // its handler's deferred call: no offline news for a removed device
	none(t, sb3)
}

func TestHubSecondStreamReplacesFirst(t *testing.T) {
	h := NewHub()
	a, b := dev(t, "a"), dev(t, "b")
	sa := h.Subscribe(1, a)
	sb1 := h.Subscribe(1, b)
	next(t, sa)
	sb2 := h.Subscribe(1, b)
	if !ended(sb1) || h.Revoked(sb1) != "" {
		t.Fatalf("first stream: ended %v, revoked %q; want ended, not revoked", ended(sb1), h.Revoked(sb1))
	}
	if ended(sb2) {
		t.Fatal("second stream ended")
	}
	none(t, sa) // b never went offline
	h.Unsubscribe(sb1)
	none(t, sa) // the replaced stream closing does not take b offline
	if !h.Online(1, "b") {
		t.Fatal("b offline after its old stream closed")
	}
	h.Publish(1, b)
	if u := next(t, sb2); u.Self == nil {
		t.Fatalf("new stream got %+v, want Self", u)
	}
}

func TestHubAccountsAreSeparate(t *testing.T) {
	h := NewHub()
	s1 := h.Subscribe(1, dev(t, "a"))
	s2 := h.Subscribe(2, dev(t, "b"))
	h.Publish(2, dev(t, "c"))
	h.Remove(2, "c", "x")
	none(t, s1)
	next(t, s2)
	next(t, s2)
}

func TestHubDropsLaggingStream(t *testing.T) {
	h := NewHub()
	slow := h.Subscribe(1, dev(t, "slow"))
	fast := h.Subscribe(1, dev(t, "fast"))
	next(t, slow) // fast came online
	for i := range streamBuffer {
		h.Publish(1, dev(t, fmt.Sprintf("d%d", i)))
		next(t, fast)
	}
	if ended(slow) {
		t.Fatal("stream dropped before its buffer was full")
	}
	h.Publish(1, dev(t, "overflow"))
	if !ended(slow) || h.Online(1, "slow") {
		t.Fatal("lagging stream not dropped")
	}
	next(t, fast) // overflow
	if u := next(t, fast); len(u.Peers) != 1 || u.Peers[0].ID != "slow" || u.Peers[0].Online {
		t.Fatalf("fast got %+v, want slow offline", u)
	}
}
