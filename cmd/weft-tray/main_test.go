package main

import "testing"

func TestParse(t *testing.T) {
	bad := [][]string{
		{"extra"},
		{"--install-autostart", "--remove-autostart"},
		{"--ca", "ca.pem"},
		{"--broker", "http://b.test"},
		{"--nope"},
	}
	for _, args := range bad {
		if _, err := parse(args); err == nil {
			t.Errorf("accepted %q", args)
		}
	}
	o, err := parse([]string{"--socket", "/tmp/s", "--broker", "https://b.test", "--ca", "ca.pem"})
	if err != nil || o.socket != "/tmp/s" || o.broker != "https://b.test" || o.caFile != "ca.pem" {
		t.Fatalf("good flags: %+v, %v", o, err)
	}
}
