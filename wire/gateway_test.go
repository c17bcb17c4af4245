package wire

import (
	"net/netip"
	"testing"
)

func TestValidateRoute(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.0/24":      "",
		"10.0.0.0/8":          "",
		"0.0.0.0/0":           "",
		"::/0":                "",
		"fd00::/8":            "",
		"100.0.0.0/8":         "", // holds the mesh range, but mesh addresses are more specific
		"100.128.0.0/10":      "",
		"192.168.1.1/24":      "route 192.168.1.1/24 is not a network address: use 192.168.1.0/24",
		"100.64.0.0/10":       "route 100.64.0.0/10 is inside the mesh range 100.64.0.0/10",
		"100.100.1.0/24":      "route 100.100.1.0/24 is inside the mesh range 100.64.0.0/10",
		"127.0.0.0/8":         "route 127.0.0.0/8 is a loopback network",
		"::1/128":             "route ::1/128 is a loopback network",
		"239.0.0.0/8":         "route 239.0.0.0/8 is a multicast network",
		"::ffff:10.0.0.0/104": "route ::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 prefix: write the IPv4 one",
	} {
		err := ValidateRoute(netip.MustParsePrefix(in))
		if got := errString(err); got != want {
			t.Errorf("ValidateRoute(%s) = %q, want %q", in, got, want)
		}
	}
	if ValidateRoute(netip.Prefix{}) == nil {
		t.Error("the zero prefix is valid")
	}
	if !IsExitRoute(netip.MustParsePrefix("::/0")) || IsExitRoute(netip.MustParsePrefix("0.0.0.0/1")) || IsExitRoute(netip.Prefix{}) {
		t.Error("IsExitRoute wrong")
	}
}

func TestValidateLANIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.50":    "",
		"10.1.2.3":        "",
		"169.254.1.1":     "",
		"203.0.113.7":     "",
		"fd00::50":        "",
		"100.64.0.1":      "LAN IP 100.64.0.1 is inside the mesh range 100.64.0.0/10",
		"127.0.0.1":       "LAN IP 127.0.0.1 is not a unicast address",
		"0.0.0.0":         "LAN IP 0.0.0.0 is not a unicast address",
		"224.0.0.251":     "LAN IP 224.0.0.251 is not a unicast address",
		"255.255.255.255": "LAN IP 255.255.255.255 is not a unicast address",
		"fe80::1":         "LAN IP fe80::1 is not a unicast address",
		"fe80::1%eth0":    "LAN IP fe80::1%eth0 has a zone: give an address without one",
		"::ffff:10.0.0.1": "LAN IP ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address: write the IPv4 one",
	} {
		if got := errString(ValidateLANIP(netip.MustParseAddr(in))); got != want {
			t.Errorf("ValidateLANIP(%s) = %q, want %q", in, got, want)
		}
	}
	if got := errString(ValidateLANIP(netip.Addr{})); got != "LAN IP is missing" {
		t.Errorf("ValidateLANIP(zero) = %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
