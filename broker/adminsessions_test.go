package broker

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// TestAdminSessions lists and revokes account sessions over the admin socket of a running
// broker; a revoked session is refused by the account API on its next request.
func TestAdminSessions(t *testing.T) {
	e := newAccountEnv(t)
	ctx := t.Context()
	ac, err := NewAdminClient(e.tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	ann := e.session(t, "acme", "ann@example.com")
	ann2 := e.session(t, "acme", "ann@example.com")
	bob := e.session(t, "acme", "bob@example.com")
	cy := e.session(t, "beta", "cy@example.com")
	me := func(token string) (int, string) {
		t.Helper()
		status, body := e.tb.bearer(t, http.MethodGet, wire.PathAccountMe, token, nil)
		if status == http.StatusOK {
			return status, ""
		}
		return status, errorLine(t, body)
	}
	if status, msg := me(ann); status != http.StatusOK {
		t.Fatalf("me: %d %s", status, msg)
	}
	id := func(token string) string {
		t.Helper()
		s, err := e.tb.store.SessionByToken(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	annID, ann2ID := id(ann), id(ann2)

	all, err := ac.Sessions(ctx, "acme", "")
	if err != nil || len(all) != 3 || all[0].Email != "ann@example.com" || all[2].Email != "bob@example.com" || all[0].Account != "acme" {
		t.Fatalf("sessions: %+v, %v", all, err)
	}
	// Never the token or its hash: the listing holds nothing but these fields.
	raw, _ := json.Marshal(all)
	for _, tok := range []string{ann, ann2, bob} {
		if strings.Contains(string(raw), tok) {
			t.Fatal("a session token is in the listing")
		}
	}
	var fields []map[string]any
	json.Unmarshal(raw, &fields)
	for k := range fields[0] {
		switch k {
		case "id", "account", "email", "created_at", "expires_at", "last_used":
		default:
			t.Errorf("listing has field %q", k)
		}
	}
	// ann's two sessions were used (by me and id), bob's never.
	if fields[0]["last_used"] == nil || fields[2]["last_used"] != nil {
		t.Errorf("last_used: %v and %v, want ann's only", fields[0]["last_used"], fields[2]["last_used"])
	}
	annS, err := ac.Sessions(ctx, "acme", "ann@example.com")
	if err != nil || len(annS) != 2 || (annS[0].ID != annID && annS[1].ID != annID) {
		t.Fatalf("ann's sessions: %+v, %v", annS, err)
	}

	// Bad input: one line, non-2xx, nothing ends.
	for _, c := range []struct {
		req  AdminRevokeSessionsRequest
		want string
	}{
		{AdminRevokeSessionsRequest{Account: "nope", Session: annID}, `account "nope" not found`},
		{AdminRevokeSessionsRequest{Account: "acme", Session: "xyz123"}, "malformed session ID"},
		{AdminRevokeSessionsRequest{Account: "beta", Session: annID}, "not found"},
		{AdminRevokeSessionsRequest{Account: "acme", Email: "cy@example.com"}, `user "cy@example.com" in account "acme" not found`},
		{AdminRevokeSessionsRequest{Account: "acme"}, "either a session ID or a user's email"},
		{AdminRevokeSessionsRequest{Account: "acme", Session: annS[0].ID, Email: "ann@example.com"}, "not both"},
	} {
		if _, err := ac.RevokeSessions(ctx, c.req); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("revoke %+v: %v, want %q", c.req, err, c.want)
		}
	}
	if _, err := ac.Sessions(ctx, "nope", ""); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("listing an unknown account: %v", err)
	}
	if _, err := ac.Sessions(ctx, "acme", "nobody@example.com"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("listing an unknown user: %v", err)
	}
	for _, tok := range []string{ann, ann2, bob, cy} {
		if status, msg := me(tok); status != http.StatusOK {
			t.Fatalf("a refused revocation ended a session: %d %s", status, msg)
		}
	}

	// One session, by its ID: refused on its very next request, the others still work.
	got, err := ac.RevokeSessions(ctx, AdminRevokeSessionsRequest{Account: "acme", Session: annID})
	if err != nil || len(got) != 1 || got[0].ID != annID {
		t.Fatalf("revoke: %+v, %v", got, err)
	}
	status, msg := me(ann)
	if status != http.StatusUnauthorized || !strings.Contains(msg, "session revoked by an administrator") {
		t.Fatalf("me with a revoked session: %d %s", status, msg)
	}
	if status, body := e.tb.bearer(t, http.MethodGet, wire.PathAccountDevices, ann, nil); status != http.StatusUnauthorized {
		t.Fatalf("devices with a revoked session: %d %s", status, body)
	}
	if status, msg := me(ann2); status != http.StatusOK {
		t.Fatalf("ann's other session: %d %s", status, msg)
	}
	if _, err := ac.RevokeSessions(ctx, AdminRevokeSessionsRequest{Account: "acme", Session: annID}); err == nil ||
		!strings.Contains(err.Error(), "was revoked on") {
		t.Fatalf("revoking twice: %v", err)
	}

	// All of a user's.
	got, err = ac.RevokeSessions(ctx, AdminRevokeSessionsRequest{Account: "acme", Email: "ann@example.com"})
	if err != nil || len(got) != 1 || got[0].ID != ann2ID {
		t.Fatalf("revoke all of ann's: %+v, %v", got, err)
	}
	if status, _ := me(ann2); status != http.StatusUnauthorized {
		t.Fatalf("ann's second session after revoking all: %d", status)
	}
	for _, tok := range []string{bob, cy} {
		if status, msg := me(tok); status != http.StatusOK {
			t.Fatalf("another user's session ended: %d %s", status, msg)
		}
	}
	if left, _ := ac.Sessions(ctx, "acme", ""); len(left) != 1 || left[0].Email != "bob@example.com" {
		t.Fatalf("sessions left: %+v", left)
	}
}
