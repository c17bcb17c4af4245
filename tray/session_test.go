package tray

import (
	"testing"

	"github.com/zalando/go-keyring"
)

func TestKeyringSessions(t *testing.T) {
	keyring.MockInit() // the in-memory keyring go-keyring provides for tests
	k := Keyring{}
	if _, ok, err := k.Load("https://b.test"); ok || err != nil {
		t.Fatalf("empty keyring: ok %v, %v", ok, err)
	}
	if err := k.Save("https://b.test", ""); err == nil {
		t.Fatal("saved an empty token")
	}
	if err := k.Save("https://b.test", "tok-1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Save("https://other.test", "tok-2"); err != nil {
		t.Fatal(err)
	}
	if tok, ok, err := k.Load("https://b.test"); !ok || err != nil || tok != "tok-1" {
		t.Fatalf("load: %q %v %v", tok, ok, err)
	}
	// Stored under weft's service name, keyed by broker.
	if tok, err := keyring.Get(KeyringService, "https://other.test"); err != nil || tok != "tok-2" {
		t.Fatalf("raw keyring entry: %q %v", tok, err)
	}
	if err := k.Delete("https://b.test"); err != nil {
		t.Fatal(err)
	}
	if err := k.Delete("https://b.test"); err != nil {
		t.Fatalf("deleting a missing session: %v", err)
	}
	if _, ok, _ := k.Load("https://b.test"); ok {
		t.Fatal("session survived delete")
	}
	if _, ok, _ := k.Load("https://other.test"); !ok {
		t.Fatal("delete removed another broker's session")
	}
}
