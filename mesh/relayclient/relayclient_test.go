package relayclient

import (
	"context"
	"testing"

	"github.com/weftmesh/weft/wire"
)

// Bad configurations fail at once with a clear error, before any network traffic.
// (Connections themselves are tested against a real relay in package relay.)
func TestDialChecksConfig(t *testing.T) {
	priv, _ := wire.NewPrivateKey()
	relayKey := priv.Public()
	for name, cfg := range map[string]Config{
		"no transport":   {RelayKey: relayKey, PrivateKey: priv},
		"two transports": {UDPAddr: "127.0.0.1:1", URL: "https://127.0.0.1:1", RelayKey: relayKey, PrivateKey: priv},
		"no keys":        {UDPAddr: "127.0.0.1:1"},
		"http URL":       {URL: "http://relay.example", RelayKey: relayKey, PrivateKey: priv},
		"no host":        {URL: "https:///relay", RelayKey: relayKey, PrivateKey: priv},
	} {
		if c, err := Dial(context.Background(), cfg); err == nil {
			c.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string][2]string{
		"https://relay.example":               {"relay.example:443", "/relay"},
		"https://relay.example:8443/":         {"relay.example:8443", "/relay"},
		"https://[2001:db8::1]/weft/relay":    {"[2001:db8::1]:443", "/weft/relay"},
		"https://203.0.113.5:443/relay?x=1#y": {"203.0.113.5:443", "/relay"},
	} {
		hp, path, err := parseURL(in)
		if err != nil || hp != want[0] || path != want[1] {
			t.Errorf("%s: %q %q %v; want %q %q", in, hp, path, err, want[0], want[1])
		}
	}
}
