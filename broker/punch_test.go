package broker

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func (d *device) punch(t *testing.T, peer string) (int, string) {
	t.Helper()
	status, body := d.authed(t, http.MethodPost, wire.PathPunch, mustJSON(t, wire.PunchRequest{PeerID: peer}))
	if status == http.StatusNoContent {
		return status, ""
	}
	return status, errorLine(t, body)
}

func TestPunch(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	tb.setupAccount(t, "other")
	key := tb.authKey(t, "acme", true)
	a, b, c := tb.newDevice(t, "a"), tb.newDevice(t, "b"), tb.newDevice(t, "c")
	a.register(t, key)
	b.register(t, key)
	c.register(t, key)
	s := tb.newDevice(t, "s")
	s.register(t, tb.authKey(t, "other", false))
	ma := a.openMap(t)
	ma.next(t)
	mb := b.openMap(t)
	mb.next(t)
	ma.next(t) // b online
	ms := s.openMap(t)
	ms.next(t)

	// a asks: b is told to probe a, a to probe b, at once.
	if status, msg := a.punch(t, b.ID); status != http.StatusNoContent {
		t.Fatalf("punch: %d %s", status, msg)
	}
	if u := mb.next(t); !slices.Equal(u.Punch, []string{a.ID}) || u.Full || len(u.Peers) != 0 {
		t.Fatalf("b got %+v, want punch from a only", u)
	}
	if u := ma.next(t); !slices.Equal(u.Punch, []string{b.ID}) {
		t.Fatalf("a got %+v, want punch to b", u)
	}

	// Again at once, from either side: the pair is limited.
	for _, d := range []struct {
		from *device
		to   string
	}{{a, b.ID}, {b, a.ID}} {
		if status, msg := d.from.punch(t, d.to); status != http.StatusTooManyRequests || !strings.Contains(msg, "probing already") {
			t.Fatalf("punch %s→%s again: %d %s, want 429", d.from.name, d.to, status, msg)
		}
	}

	// Across accounts: refused like an unknown device, and nothing reaches the stranger.
	for _, d := range []struct {
		from *device
		to   string
	}{{a, s.ID}, {s, a.ID}, {a, "0123456789abcdef"}} {
		if status, msg := d.from.punch(t, d.to); status != http.StatusNotFound || !strings.Contains(msg, "not in this device's map") {
			t.Fatalf("punch %s→%s: %d %s, want 404", d.from.name, d.to, status, msg)
		}
	}
	// c is offline: it cannot hear a punch.
	if status, msg := a.punch(t, c.ID); status != http.StatusConflict || !strings.Contains(msg, "offline") {
		t.Fatalf("punch to offline c: %d %s, want 409", status, msg)
	}
	// Bad requests.
	if status, _ := a.punch(t, a.ID); status != http.StatusBadRequest {
		t.Fatalf("punch self: %d", status)
	}
	if status, _ := a.punch(t, ""); status != http.StatusBadRequest {
		t.Fatalf("punch nobody: %d", status)
	}
	if status, _ := a.authed(t, http.MethodPost, wire.PathPunch, []byte(`{"peer_id":"x","extra":1}`)); status != http.StatusBadRequest {
		t.Fatalf("punch with unknown field: %d", status)
	}
	if status, _ := tb.do(t, http.MethodPost, wire.PathPunch, mustJSON(t, wire.PunchRequest{PeerID: b.ID}), nil); status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated punch: %d", status)
	}

	// None of the refused punches reached anyone: the next thing a, b and the stranger
	// hear is c coming online.
	mc := c.openMap(t)
	mc.next(t)
	for name, m := range map[string]*mapStream{"a": ma, "b": mb} {
		if u := m.next(t); len(u.Punch) != 0 || len(u.Peers) != 1 || u.Peers[0].ID != c.ID {
			t.Fatalf("%s got %+v, want c online", name, u)
		}
	}
	s2 := tb.newDevice(t, "s2")
	s2.register(t, tb.authKey(t, "other", false))
	if u := ms.next(t); len(u.Punch) != 0 || len(u.Peers) != 1 || u.Peers[0].ID != s2.ID {
		t.Fatalf("stranger got %+v, want s2 added", u)
	}
}

// TestPunchHonoursPolicy: a device the access policy hides from the requester is
// answered like an unknown one, even in the same account and online.
func TestPunchHonoursPolicy(t *testing.T) {
	tb := startBroker(t, nil)
	tb.setupAccount(t, "acme")
	key := tb.authKey(t, "acme", true)
	a, b, c := tb.newDevice(t, "a"), tb.newDevice(t, "b"), tb.newDevice(t, "c")
	for _, d := range []*device{a, b, c} {
		d.register(t, key)
	}
	src := `{"default":"deny","rules":[{"from":["a"],"to":["b"],"ports":["icmp"]}]}`
	if _, err := tb.setPolicy(t.Context(), "acme", "p.json", []byte(src)); err != nil {
		t.Fatal(err)
	}
	ma, mb, mc := a.openMap(t), b.openMap(t), c.openMap(t)
	if u := ma.next(t); !slices.Equal(peerIDs(u.Peers), []string{b.ID}) {
		t.Fatalf("a's map %+v, want only b", u)
	}
	mb.next(t)
	mc.next(t)
	if status, msg := a.punch(t, c.ID); status != http.StatusNotFound {
		t.Fatalf("punch to hidden c: %d %s, want 404", status, msg)
	}
	if status, msg := c.punch(t, a.ID); status != http.StatusNotFound {
		t.Fatalf("punch from hidden c: %d %s, want 404", status, msg)
	}
	if status, msg := b.punch(t, a.ID); status != http.StatusNoContent {
		t.Fatalf("punch b→a: %d %s", status, msg)
	}
}
