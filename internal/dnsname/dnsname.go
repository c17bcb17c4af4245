// Package dnsname validates device and account names and normalises host names to DNS labels.
package dnsname

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLabel is the longest DNS label, in bytes.
const MaxLabel = 63

// ValidLabel reports why s is not a DNS label as weft uses them: 1–63 characters of
// lower-case a-z, 0-9 and '-', not starting or ending with '-'.
func ValidLabel(s string) error {
	switch {
	case s == "":
		return errors.New("name is empty")
	case len(s) > MaxLabel:
		return fmt.Errorf("name %q is %d characters long, the limit is %d", s, len(s), MaxLabel)
	case s[0] == '-':
		return fmt.Errorf("name %q starts with '-'", s)
	case s[len(s)-1] == '-':
		return fmt.Errorf("name %q ends with '-'", s)
	}
	for i := 0; i < len(s); i++ {
		if !labelByte(s[i]) {
			return fmt.Errorf("name %q has %q at position %d: only lower-case a-z, 0-9 and '-' are allowed",
				s, rune(s[i]), i+1)
		}
	}
	return nil
}

// Normalize turns a host name into a valid label: the first label, lower-cased, each run
// of other characters (and of '-') replaced by one '-', trimmed of '-' and cut to 63 characters.
// "My_Laptop.local" becomes "my-laptop". It returns "" when nothing usable is left.
func Normalize(s string) string {
	s, _, _ = strings.Cut(s, ".")
	s = strings.ToLower(s)
	var b strings.Builder
	inRun := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if labelByte(c) && c != '-' {
			b.WriteByte(c)
			inRun = false
			continue
		}
		if !inRun {
			b.WriteByte('-')
			inRun = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > MaxLabel {
		out = strings.TrimRight(out[:MaxLabel], "-")
	}
	return out
}

func labelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
}
