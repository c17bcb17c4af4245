package devauth

import (
	"testing"

	"github.com/weftmesh/weft/wire"
)

func TestSignVerify(t *testing.T) {
	dev, _ := wire.NewPrivateKey()
	brk, _ := wire.NewPrivateKey()
	other, _ := wire.NewPrivateKey()
	shared, err := SharedKey(dev, brk.Public())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"endpoints":[]}`)
	h := Header{Key: dev.Public(), Nonce: "n1", MAC: MAC(shared, "POST", "/v1/endpoints", "n1", body)}
	parsed, err := ParseHeader(h.Format())
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(brk, parsed, "POST", "/v1/endpoints", body) {
		t.Fatal("valid proof rejected")
	}
	for name, tc := range map[string]func(Header) (Header, string, []byte){
		"other body":  func(h Header) (Header, string, []byte) { return h, "/v1/endpoints", []byte("{}") },
		"other path":  func(h Header) (Header, string, []byte) { return h, "/v1/logout", body },
		"other nonce": func(h Header) (Header, string, []byte) { h.Nonce = "n2"; return h, "/v1/endpoints", body },
		"other key":   func(h Header) (Header, string, []byte) { h.Key = other.Public(); return h, "/v1/endpoints", body },
	} {
		hh, path, b := tc(parsed)
		if Verify(brk, hh, "POST", path, b) {
			t.Errorf("%s: forged proof accepted", name)
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	for _, v := range []string{"", "key=abc", "nonce=x, mac=AAAA", "key=" + wire.Key{}.String() + ", nonce=x, mac=AAAA", "bogus"} {
		if _, err := ParseHeader(v); err == nil {
			t.Errorf("ParseHeader(%q) accepted", v)
		}
	}
}
