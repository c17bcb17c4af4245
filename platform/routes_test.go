package platform

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestCheckRoutes(t *testing.T) {
	s, err := checkRoutes("weft0", prefixes("10.1.2.3/16", "0.0.0.0/0", "10.1.0.0/16", "fd00::/8"),
		addrs("203.0.113.5", "::ffff:203.0.113.5", "198.51.100.1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := prefixes("0.0.0.0/0", "10.1.0.0/16", "fd00::/8"); !reflect.DeepEqual(s.routes, want) {
		t.Errorf("routes %v, want %v", s.routes, want)
	}
	if want := addrs("198.51.100.1", "203.0.113.5"); !reflect.DeepEqual(s.exclude, want) {
		t.Errorf("exclude %v, want %v", s.exclude, want)
	}
	for _, bad := range []struct {
		iface   string
		routes  []netip.Prefix
		exclude []netip.Addr
	}{
		{"", nil, nil},
		{"weft0; rm", nil, nil},
		{"weft0", []netip.Prefix{{}}, nil},
		{"weft0", prefixes("::ffff:10.0.0.0/104"), nil},
		{"weft0", nil, []netip.Addr{{}}},
	} {
		if _, err := checkRoutes(bad.iface, bad.routes, bad.exclude); err == nil {
			t.Errorf("checkRoutes(%q, %v, %v) accepted", bad.iface, bad.routes, bad.exclude)
		}
	}
}

func TestSplitRoutes(t *testing.T) {
	render := func(rs []sysRoute) string {
		var out []string
		for _, r := range rs {
			s := r.dst.String()
			if r.bypass {
				s += " bypass"
			}
			out = append(out, s)
		}
		return strings.Join(out, ", ")
	}
	for _, tt := range []struct {
		routes  []netip.Prefix
		exclude []netip.Addr
		want    string
	}{
		{nil, addrs("203.0.113.5"), ""},
		// Only excluded addresses a route covers need a way around the tunnel.
		{prefixes("10.0.0.0/8"), addrs("203.0.113.5", "10.1.1.1"), "10.0.0.0/8, 10.1.1.1/32 bypass"},
		{prefixes("0.0.0.0/0", "10.0.0.0/8"), addrs("203.0.113.5", "fd00::5"),
			"0.0.0.0/1, 10.0.0.0/8, 128.0.0.0/1, 203.0.113.5/32 bypass"},
		{prefixes("::/0"), addrs("203.0.113.5", "2001:db8::5"), "::/1, 2001:db8::5/128 bypass, 8000::/1"},
		// A route that is itself an excluded host gives way to the bypass.
		{prefixes("203.0.113.5/32", "0.0.0.0/0"), addrs("203.0.113.5"), "0.0.0.0/1, 128.0.0.0/1, 203.0.113.5/32 bypass"},
	} {
		s, err := checkRoutes("utun4", tt.routes, tt.exclude)
		if err != nil {
			t.Fatal(err)
		}
		if got := render(splitRoutes(s)); got != tt.want {
			t.Errorf("splitRoutes(%v, %v) = %s, want %s", tt.routes, tt.exclude, got, tt.want)
		}
	}
}

func TestBSDRouteArgs(t *testing.T) {
	gw := bsdVia{gateway: netip.MustParseAddr("192.168.1.1")}
	ppp := bsdVia{iface: "ppp0"}
	for _, tt := range []struct {
		op   string
		r    sysRoute
		via  bsdVia
		want string
	}{
		{"add", sysRoute{dst: netip.MustParsePrefix("10.0.0.0/8")}, gw, "-q -n add -inet -net 10.0.0.0/8 -interface utun4"},
		{"delete", sysRoute{dst: netip.MustParsePrefix("0.0.0.0/1")}, gw, "-q -n delete -inet -net 0.0.0.0/1 -interface utun4"},
		{"add", sysRoute{dst: netip.MustParsePrefix("10.9.9.9/32")}, gw, "-q -n add -inet -host 10.9.9.9 -interface utun4"},
		{"add", sysRoute{dst: netip.MustParsePrefix("203.0.113.5/32"), bypass: true}, gw, "-q -n add -inet -host 203.0.113.5 192.168.1.1"},
		{"change", sysRoute{dst: netip.MustParsePrefix("203.0.113.5/32"), bypass: true}, ppp, "-q -n change -inet -host 203.0.113.5 -interface ppp0"},
		{"add", sysRoute{dst: netip.MustParsePrefix("8000::/1")}, gw, "-q -n add -inet6 -net 8000::/1 -interface utun4"},
		{"add", sysRoute{dst: netip.MustParsePrefix("2001:db8::5/128"), bypass: true}, bsdVia{gateway: netip.MustParseAddr("fe80::1%en0")},
			"-q -n add -inet6 -host 2001:db8::5 fe80::1%en0"},
	} {
		if got := strings.Join(bsdRouteArgs(tt.op, tt.r, "utun4", tt.via), " "); got != tt.want {
			t.Errorf("bsdRouteArgs(%s, %+v) = %s, want %s", tt.op, tt.r, got, tt.want)
		}
	}
}

func TestBSDDefaultVia(t *testing.T) {
	// macOS 14 netstat -rn -f inet, with weft's split routes in place.
	sonoma := `Routing tables

Internet:
Destination        Gateway            Flags               Netif Expire
0/1                utun4              USc                 utun4
default            link#22            UCSIg               utun4
default            192.168.1.1        UGScIg                en1
default            192.168.1.1        UGScg                 en0
10.64/10           utun4              USc                 utun4
127                127.0.0.1          UCS                   lo0
`
	// Older layout with Refs and Use columns; a point-to-point default route.
	catalina := `Routing tables

Internet:
Destination        Gateway            Flags        Refs      Use   Netif Expire
default            link#9             UCS            34        0    ppp0
127                127.0.0.1          UCS             0        0     lo0
`
	inet6 := `Routing tables

Internet6:
Destination                             Gateway                         Flags         Netif Expire
default                                 fe80::1%en0                     UGcg            en0
`
	for _, tt := range []struct {
		name, netstat string
		want          bsdVia
	}{
		{"gateway", sonoma, bsdVia{gateway: netip.MustParseAddr("192.168.1.1")}},
		{"interface", catalina, bsdVia{iface: "ppp0"}},
		{"ipv6", inet6, bsdVia{gateway: netip.MustParseAddr("fe80::1%en0")}},
	} {
		got, err := bsdDefaultVia(tt.netstat, "utun4")
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	onlyTunnel := "Destination Gateway Flags Netif Expire\ndefault link#22 UCS utun4\n"
	if got, err := bsdDefaultVia(onlyTunnel, "utun4"); err == nil {
		t.Errorf("found %+v where the only default route is the tunnel's", got)
	}
}
