package tray

import (
	"fmt"
	"html"
	"strings"
	"unicode"
)

// desktopExec renders args as the Exec value of an XDG desktop entry: every argument
// quoted, with the spec's two rounds of escaping (quoting, then the string escape that
// doubles backslashes), and field codes' % doubled.
func desktopExec(args []string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("autostart: no command")
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		if strings.IndexFunc(a, unicode.IsControl) >= 0 {
			return "", fmt.Errorf("autostart: argument %q has a control character", a)
		}
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range a {
			switch r {
			case '"', '`', '$', '\\':
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
		quoted[i] = b.String()
	}
	s := strings.Join(quoted, " ")
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, "%", "%%"), nil
}

// plistArgs renders args as the <string> elements of a LaunchAgent's ProgramArguments.
func plistArgs(args []string) string {
	lines := make([]string, len(args))
	for i, a := range args {
		lines[i] = "\t\t<string>" + html.EscapeString(a) + "</string>"
	}
	return strings.Join(lines, "\n")
}
