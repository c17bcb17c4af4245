package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
)

// dig asks the broker's DNS server from host h and returns the status and the answer.
func dig(t *testing.T, h *netlab.Host, server, name string) (status, answer string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Run(ctx, "dig", "@"+server, name, "A", "+norec", "+time=2", "+tries=2")
	if err != nil {
		t.Fatalf("dig %s: %v", name, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if _, rest, ok := strings.Cut(line, "status: "); ok {
			status, _, _ = strings.Cut(rest, ",")
		}
		if f := strings.Fields(line); len(f) == 5 && !strings.HasPrefix(line, ";") && f[3] == "A" {
			answer = f[4]
		}
	}
	return status, answer
}

// TestDNS: every device's name resolves through the broker's public DNS to its mesh
// address; renames and removals show on the very next query.
func TestDNS(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, "dns")
	bins := labrun.Build(t)
	broker := labrun.StartBroker(t, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("acme")
	a := labrun.StartDevice(t, bins, lab.AddHost("laptop", lab.Internet()), "laptop")
	b := labrun.StartDevice(t, bins, lab.AddHost("nas", lab.Internet()), "nas")
	a.Up(broker, key)
	b.Up(broker, key)
	selves := meshed(t, a, b)
	// A host that runs no weft at all resolves the names too: they are plain DNS.
	outsider := lab.AddHost("outsider", lab.Internet())
	srv := broker.Host.Addr().String()

	check := func(name, wantStatus, wantAddr string) {
		t.Helper()
		status, addr := dig(t, outsider, srv, name)
		if status != wantStatus || addr != wantAddr {
			t.Errorf("%s: got %s %q, want %s %q", name, status, addr, wantStatus, wantAddr)
		}
	}
	check("laptop.acme.weft.test", "NOERROR", selves["laptop"].Address.String())
	check("NAS.Acme.weft.test", "NOERROR", selves["nas"].Address.String())
	check("ghost.acme.weft.test", "NXDOMAIN", "")
	check("laptop.nobody.weft.test", "NXDOMAIN", "")
	check("example.com", "REFUSED", "")

	// weft ping and status know peers by their DNS names too.
	if out, err := a.CLI("ping", "nas.acme.weft.test", "-c", "1"); err != nil {
		t.Errorf("weft ping by FQDN: %v\n%s", err, out)
	}

	// Rename: the same device registers again under a new name.
	if out, err := b.CLI("up", "--broker", broker.URL(), "--ca", broker.CA(), "--auth-key", key, "--name", "storage"); err != nil {
		t.Fatalf("rename: %v\n%s", err, out)
	}
	labrun.Eventually(t, 10*time.Second, "rename visible", func() error {
		if st, addr := dig(t, outsider, srv, "storage.acme.weft.test"); st != "NOERROR" || addr != selves["nas"].Address.String() {
			return fmt.Errorf("storage: %s %s", st, addr)
		}
		return nil
	})
	check("nas.acme.weft.test", "NXDOMAIN", "")

	broker.MustAdmin("device", "remove", "acme", "storage")
	check("storage.acme.weft.test", "NXDOMAIN", "")
}
