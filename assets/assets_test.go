package assets

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

var allStates = []string{Connected, Connecting, Disconnected, Error}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestIcons(t *testing.T) {
	seen := map[string]string{}
	for _, s := range allStates {
		for _, n := range []int{16, 32, 64} {
			img := decode(t, PNG(s, n))
			if b := img.Bounds(); b.Dx() != n || b.Dy() != n {
				t.Errorf("%s %d: %v", s, n, b)
			}
		}
		// Each state looks different even without colour: compare the alpha masks.
		mask := alphaMask(decode(t, Template(s, 16)))
		if other, dup := seen[mask]; dup {
			t.Errorf("%s and %s have the same shape", s, other)
		}
		seen[mask] = s
		for _, n := range []int{16, 32} {
			img := decode(t, Template(s, n))
			for y := range n {
				for x := range n {
					c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
					if c.A > 0 && (c.R|c.G|c.B) != 0 {
						t.Fatalf("%s template %d: pixel %d,%d is %v, not black", s, n, x, y, c)
					}
				}
			}
		}
		ico := ICO(s)
		le := binary.LittleEndian
		if len(ico) < 6 || le.Uint16(ico[0:]) != 0 || le.Uint16(ico[2:]) != 1 || le.Uint16(ico[4:]) != 3 {
			t.Fatalf("%s.ico: bad header", s)
		}
		for i, want := range []int{16, 32, 64} {
			e := ico[6+16*i:]
			size, off := le.Uint32(e[8:]), le.Uint32(e[12:])
			if int(e[0]) != want || int(off+size) > len(ico) {
				t.Fatalf("%s.ico entry %d: width %d, %d bytes at %d", s, i, e[0], size, off)
			}
			if img := decode(t, ico[off:off+size]); img.Bounds().Dx() != want {
				t.Fatalf("%s.ico entry %d is %v", s, i, img.Bounds())
			}
		}
	}
}

func alphaMask(img image.Image) string {
	var sb strings.Builder
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			_, _, _, a := img.At(x, y).RGBA()
			sb.WriteByte(byte(a >> 12))
		}
	}
	return sb.String()
}

func TestAutostartTemplates(t *testing.T) {
	if !strings.Contains(DesktopEntry(), "\nExec=EXEC\n") || !strings.HasPrefix(DesktopEntry(), "[Desktop Entry]\n") {
		t.Error("desktop entry has no Exec=EXEC placeholder")
	}
	if !strings.Contains(LaunchAgent(), "\nPROGRAM_ARGUMENTS\n") {
		t.Error("launch agent has no PROGRAM_ARGUMENTS placeholder")
	}
}
