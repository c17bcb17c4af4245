package dnsname

import (
	"strings"
	"testing"
)

func TestValidLabel(t *testing.T) {
	cases := []struct {
		in      string
		wantErr string // substring; "" means valid
	}{
		{"laptop", ""},
		{"a", ""},
		{"my-laptop-2", ""},
		{"0", ""},
		{strings.Repeat("a", 63), ""},
		{"", "empty"},
		{strings.Repeat("a", 64), "64 characters"},
		{"-laptop", "starts with '-'"},
		{"laptop-", "ends with '-'"},
		{"Laptop", "'L' at position 1"},
		{"my_laptop", "'_' at position 3"},
		{"my.laptop", "'.' at position 3"},
		{"café", "position 4"},
		{"a b", "' ' at position 2"},
	}
	for _, c := range cases {
		err := ValidLabel(c.in)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("ValidLabel(%q) = %v, want nil", c.in, err)
		case c.wantErr != "" && err == nil:
			t.Errorf("ValidLabel(%q) = nil, want error with %q", c.in, c.wantErr)
		case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
			t.Errorf("ValidLabel(%q) = %q, want it to mention %q", c.in, err, c.wantErr)
		}
	}
}

func TestNormalize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"My_Laptop.local", "my-laptop"},
		{"laptop", "laptop"},
		{"DESKTOP-AB12CD", "desktop-ab12cd"},
		{"Bob's MacBook Pro", "bob-s-macbook-pro"},
		{"__weird__name__", "weird-name"},
		{"a--b", "a-b"},
		{"a__--__b", "a-b"},
		{"--x--", "x"},
		{"café-crème", "caf-cr-me"},
		{".local", ""},
		{"", ""},
		{"___", ""},
		{"host.example.com", "host"},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
		{strings.Repeat("a", 62) + "_b", strings.Repeat("a", 62)},
	}
	for _, c := range cases {
		got := Normalize(c.in)
		if got != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
		if got != "" {
			if err := ValidLabel(got); err != nil {
				t.Errorf("Normalize(%q) = %q, which is not valid: %v", c.in, got, err)
			}
		}
	}
}
