package portmap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The request layouts, field by field as RFC 6886 §3.2/§3.3 and RFC 6887 §7.1/§11.1 draw them.
func TestRequestLayouts(t *testing.T) {
	n := nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	client := netip.MustParseAddr("192.168.1.20")
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"NAT-PMP external address", pmpAddrRequest(), "00 00"},
		{"NAT-PMP map UDP", pmpMapRequest(51820, 51821, 7200),
			"00 01 0000 ca6c ca6d 00001c20"},
		{"NAT-PMP delete", pmpMapRequest(51820, 0, 0), "00 01 0000 ca6c 0000 00000000"},
		{"PCP ANNOUNCE", pcpAnnounceRequest(client),
			"02 00 0000 00000000 00000000000000000000ffff c0a80114"},
		{"PCP MAP, any external address", pcpMapRequest(client, n, 51820, netip.AddrPortFrom(netip.Addr{}, 51820), 7200),
			"02 01 0000 00001c20 00000000000000000000ffff c0a80114" + // header
				"0102030405060708090a0b0c 11 000000 ca6c ca6c 00000000000000000000ffff 00000000"},
		{"PCP MAP, suggested external", pcpMapRequest(client, n, 51820, netip.MustParseAddrPort("203.0.113.9:40000"), 60),
			"02 01 0000 0000003c 00000000000000000000ffff c0a80114" +
				"0102030405060708090a0b0c 11 000000 ca6c 9c40 00000000000000000000ffff cb007109"},
		{"PCP MAP delete", pcpMapRequest(client, n, 51820, netip.AddrPort{}, 0),
			"02 01 0000 00000000 00000000000000000000ffff c0a80114" +
				"0102030405060708090a0b0c 11 000000 ca6c 0000 00000000000000000000ffff 00000000"},
	}
	for _, c := range cases {
		if want := unhex(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.name, c.got, want)
		}
	}
}

func TestParsePMP(t *testing.T) {
	r, err := parsePMP(unhex(t, "00 80 0000 00000e10 cb007107"))
	if err != nil || r.op != pmpOpAddr || r.epoch != 3600 || r.external != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("address response: %+v, %v", r, err)
	}
	r, err = parsePMP(unhex(t, "00 81 0000 00000005 ca6c 9c40 00000e10"))
	if err != nil || r.op != pmpOpMapUDP || r.epoch != 5 || r.internal != 51820 || r.mapped != 40000 || r.lifetime != 3600 {
		t.Errorf("mapping response: %+v, %v", r, err)
	}
	// A result code is an error that keeps the header.
	r, err = parsePMP(unhex(t, "00 81 0002 00000007"))
	if err == nil || errors.Is(err, errMalformed) || r.result != 2 || r.epoch != 7 || !strings.Contains(err.Error(), "refused") {
		t.Errorf("refusal: %+v, %v", r, err)
	}
	for name, pkt := range map[string]string{
		"empty":              "",
		"short":              "00 80 0000 0000",
		"version 1":          "01 80 0000 00000e10 cb007107",
		"a request":          "00 00 0000 00000e10 cb007107",
		"address, truncated": "00 80 0000 00000e10 cb0071",
		"address, too long":  "00 80 0000 00000e10 cb007107 00",
		"mapping, truncated": "00 81 0000 00000005 ca6c 9c40 0000",
		"mapping, too long":  "00 81 0000 00000005 ca6c 9c40 00000e10 0000",
		"unknown opcode":     "00 85 0000 00000005 ca6c 9c40 00000e10",
	} {
		if _, err := parsePMP(unhex(t, pkt)); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err %v, want malformed", name, err)
		}
	}
}

func TestParsePCP(t *testing.T) {
	header := "02 81 00 00 00001c20 0000002a 000000000000000000000000"
	mapBody := "0102030405060708090a0b0c 11 000000 ca6c 9c40 00000000000000000000ffff cb007109"
	r, err := parsePCP(unhex(t, header+mapBody))
	want := pcpResponse{op: pcpOpMap, lifetime: 7200, epoch: 42, nonce: nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		proto: protoUDP, internal: 51820, external: netip.MustParseAddrPort("203.0.113.9:40000")}
	if err != nil || r != want {
		t.Errorf("MAP response:\n got %+v, %v\nwant %+v", r, err, want)
	}
	// Options after the MAP fields are skipped.
	if r, err := parsePCP(unhex(t, header+mapBody+"01 00 0004 00000000")); err != nil || r != want {
		t.Errorf("MAP response with an option: %+v, %v", r, err)
	}
	r, err = parsePCP(unhex(t, "02 80 00 00 00000000 00000063 000000000000000000000000"))
	if err != nil || r.op != pcpOpAnnounce || r.epoch != 99 {
		t.Errorf("ANNOUNCE: %+v, %v", r, err)
	}
	r, err = parsePCP(unhex(t, "02 81 00 08 0000001e 00000063 000000000000000000000000"+mapBody))
	if err == nil || errors.Is(err, errMalformed) || r.result != 8 || r.lifetime != 30 || !strings.Contains(err.Error(), "NO_RESOURCES") {
		t.Errorf("NO_RESOURCES: %+v, %v", r, err)
	}
	for name, pkt := range map[string]string{
		"empty":          "",
		"short":          "02 81 00 00 00001c20 0000002a 0000000000000000",
		"misaligned":     header + mapBody + "00",
		"too long":       header + mapBody + strings.Repeat("00", 1100),
		"version 1":      "01" + header[2:] + mapBody,
		"a request":      "02 01" + header[5:] + mapBody,
		"MAP, truncated": header + mapBody[:len(mapBody)-8],
		"unknown opcode": "02 85" + header[5:] + mapBody,
	} {
		if _, err := parsePCP(unhex(t, pkt)); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err %v, want malformed", name, err)
		}
	}
}

func TestEpoch(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	var e epochClock
	steps := []struct {
		server uint32
		after  time.Duration // since t0
		reset  bool
	}{
		{1000, 0, false},                    // first sight
		{1060, time.Minute, false},          // in step
		{1062, time.Minute, false},          // 2 s of rounding either way
		{1122, 2 * time.Minute, false},      // in step again
		{1100, 2 * time.Minute, true},       // backwards: a new epoch
		{1110, 2 * time.Minute, true},       // 10 s on its clock, none on ours
		{1110 + 600, 3 * time.Minute, true}, // 600 s on its clock in 60 s on ours
		{5, 4 * time.Minute, true},          // rebooted
		{65, 5 * time.Minute, false},
	}
	for i, s := range steps {
		if got := e.observe(s.server, t0.Add(s.after)); got != s.reset {
			t.Errorf("step %d (%d at +%s): reset %v, want %v", i, s.server, s.after, got, s.reset)
		}
	}
}
