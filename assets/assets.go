// Package assets holds weft-tray's icons and autostart templates, embedded in the binary.
package assets

import (
	"embed"
	"fmt"
)

//go:generate go run ./gen -out icons

//go:embed icons/*.png icons/*.ico
var icons embed.FS

//go:embed autostart/weft-tray.desktop
var desktopEntry string

//go:embed autostart/com.weftmesh.weft-tray.plist
var launchAgent string

// Icon states.
const (
	Connected    = "connected"
	Connecting   = "connecting"
	Disconnected = "disconnected"
	Error        = "error"
)

// PNG returns the state's icon as a size×size PNG (16, 32 or 64).
func PNG(state string, size int) []byte { return mustRead(fmt.Sprintf("icons/%s-%d.png", state, size)) }

// ICO returns the state's icon as a Windows icon with 16, 32 and 64 px images.
func ICO(state string) []byte { return mustRead("icons/" + state + ".ico") }

// Template returns the state's black-and-alpha icon for the macOS menu bar (16 or 32 px).
func Template(state string, size int) []byte {
	return mustRead(fmt.Sprintf("icons/%s-template-%d.png", state, size))
}

// DesktopEntry is the XDG autostart entry; EXEC stands for the quoted command line.
func DesktopEntry() string { return desktopEntry }

// LaunchAgent is the macOS LaunchAgent property list; PROGRAM_ARGUMENTS stands for the
// <string> elements of the command line.
func LaunchAgent() string { return launchAgent }

func mustRead(name string) []byte {
	b, err := icons.ReadFile(name)
	if err != nil {
		// Only a state or size that is not generated fails: a programming error.
		panic(fmt.Sprintf("assets: no %s", name))
	}
	return b
}
