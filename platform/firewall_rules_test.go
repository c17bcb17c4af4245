package platform

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/wire"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestFamilySources(t *testing.T) {
	in := prefixes("100.64.0.2/32", "fd00::1/128", "10.1.2.3/8", "100.64.0.2/32", "100.64.0.1/32", "10.0.0.0/8", "::ffff:1.2.3.4/128")
	got := familySources(netip.MustParseAddr("100.64.0.9"), in)
	if want := prefixes("10.0.0.0/8", "100.64.0.1/32", "100.64.0.2/32"); !reflect.DeepEqual(got, want) {
		t.Errorf("IPv4 self: %v, want %v", got, want)
	}
	got = familySources(netip.MustParseAddr("fd00::9"), in)
	if want := prefixes("::ffff:1.2.3.4/128", "fd00::1/128"); !reflect.DeepEqual(got, want) {
		t.Errorf("IPv6 self: %v, want %v", got, want)
	}
}

func TestAddrRanges(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"100.64.0.1/32"}, "[100.64.0.1-100.64.0.1]"},
		{[]string{"100.64.0.1/32", "100.64.0.2/32", "100.64.0.4/32"}, "[100.64.0.1-100.64.0.2 100.64.0.4-100.64.0.4]"},
		{[]string{"10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8"}, "[10.0.0.0-11.255.255.255]"},
		{[]string{"0.0.0.0/0", "1.2.3.4/32"}, "[0.0.0.0-255.255.255.255]"},
		{[]string{"255.255.255.254/32", "255.255.255.255/32"}, "[255.255.255.254-255.255.255.255]"},
		{[]string{"fd00::/127", "fd00::2/128", "fd00::ff/128"}, "[fd00::-fd00::2 fd00::ff-fd00::ff]"},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range addrRanges(prefixes(tt.in...)) {
			got = append(got, r.first.String()+"-"+r.last.String())
		}
		if s := fmt.Sprint(got); s != tt.want {
			t.Errorf("addrRanges(%v) = %s, want %s", tt.in, s, tt.want)
		}
	}
}

func TestMergePorts(t *testing.T) {
	got := mergePorts([]wire.PortRange{{First: 80, Last: 90}, {First: 22, Last: 22}, {First: 91, Last: 95}, {First: 23, Last: 23}, {First: 1000, Last: 65535}, {First: 2000, Last: 3000}})
	want := []wire.PortRange{{First: 22, Last: 23}, {First: 80, Last: 95}, {First: 1000, Last: 65535}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mergePorts = %v, want %v", got, want)
	}
	if got := mergePorts(nil); got != nil {
		t.Errorf("mergePorts(nil) = %v", got)
	}
}
