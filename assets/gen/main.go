// Command gen draws weft-tray's status icons (run by go generate in assets/): PNGs at 16,
// 32 and 64 px, a Windows ICO holding those three, and black-and-alpha template PNGs for
// the macOS menu bar. The icon is three nodes of a mesh; each state differs in shape as
// well as colour, so it reads without colour (template icons, colour blindness):
//
//	connected     three filled nodes, all three links
//	connecting    three filled nodes, two links
//	disconnected  three hollow nodes, no links
//	error         three hollow nodes with a cross between them
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"
)

// state is one icon's look.
type state struct {
	name   string
	color  color.NRGBA
	links  [][2]int // pairs of node indexes to join
	hollow bool
	cross  bool
}

var states = []state{
	{name: "connected", color: color.NRGBA{0x16, 0xa3, 0x4a, 0xff}, links: [][2]int{{0, 1}, {1, 2}, {2, 0}}},
	{name: "connecting", color: color.NRGBA{0xd9, 0x77, 0x06, 0xff}, links: [][2]int{{0, 1}, {0, 2}}},
	{name: "disconnected", color: color.NRGBA{0x8a, 0x92, 0x9e, 0xff}, hollow: true},
	{name: "error", color: color.NRGBA{0xdc, 0x26, 0x26, 0xff}, hollow: true, cross: true},
}

// Geometry in a unit square.
var nodes = [3][2]float64{{0.5, 0.2}, {0.19, 0.78}, {0.81, 0.78}}

const (
	nodeR   = 0.17
	ringW   = 0.08 // hollow node ring width
	linkW   = 0.125
	crossW  = 0.125 // stroke of the error cross
	crossR  = 0.08  // half the cross's extent
	crossY  = 0.54  // the cross's centre, between the nodes
	samples = 8     // supersampling per axis
)

var sizes = []int{16, 32, 64}

func main() {
	out := flag.String("out", "icons", "output directory")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, st := range states {
		var pngs [][]byte
		for _, n := range sizes {
			b := encode(render(st, n, st.color))
			pngs = append(pngs, b)
			write(filepath.Join(*out, fmt.Sprintf("%s-%d.png", st.name, n)), b)
		}
		write(filepath.Join(*out, st.name+".ico"), ico(sizes, pngs))
		for _, n := range []int{16, 32} {
			write(filepath.Join(*out, fmt.Sprintf("%s-template-%d.png", st.name, n)), encode(render(st, n, color.NRGBA{0, 0, 0, 0xff})))
		}
	}
}

// covered reports whether the icon covers the point (x, y) of the unit square.
func covered(st state, x, y float64) bool {
	if st.cross && (distSeg(x, y, 0.5-crossR, crossY-crossR, 0.5+crossR, crossY+crossR) < crossW/2 ||
		distSeg(x, y, 0.5-crossR, crossY+crossR, 0.5+crossR, crossY-crossR) < crossW/2) {
		return true
	}
	for _, n := range nodes {
		d := math.Hypot(x-n[0], y-n[1])
		if d <= nodeR && (!st.hollow || d >= nodeR-ringW) {
			return true
		}
	}
	for _, l := range st.links {
		a, b := nodes[l[0]], nodes[l[1]]
		if distSeg(x, y, a[0], a[1], b[0], b[1]) < linkW/2 {
			return true
		}
	}
	return false
}

func distSeg(px, py, ax, ay, bx, by float64) float64 {
	dx, dy := bx-ax, by-ay
	t := ((px-ax)*dx + (py-ay)*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	return math.Hypot(px-(ax+t*dx), py-(ay+t*dy))
}

// render draws st at n×n pixels in c, antialiased by supersampling.
func render(st state, n int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for py := range n {
		for px := range n {
			hits := 0
			for sy := range samples {
				for sx := range samples {
					x := (float64(px) + (float64(sx)+0.5)/samples) / float64(n)
					y := (float64(py) + (float64(sy)+0.5)/samples) / float64(n)
					if covered(st, x, y) {
						hits++
					}
				}
			}
			a := uint8(math.Round(float64(c.A) * float64(hits) / (samples * samples)))
			if a > 0 {
				img.SetNRGBA(px, py, color.NRGBA{c.R, c.G, c.B, a})
			}
		}
	}
	return img
}

func encode(img image.Image) []byte {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

// ico packs PNG images into a Windows icon file (PNG entries, as Windows Vista and later read).
func ico(sizes []int, pngs [][]byte) []byte {
	var buf bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&buf, le, [3]uint16{0, 1, uint16(len(pngs))})
	offset := 6 + 16*len(pngs)
	for i, p := range pngs {
		dim := uint8(sizes[i])
		if sizes[i] >= 256 {
			dim = 0
		}
		binary.Write(&buf, le, struct {
			W, H, Colors, Reserved uint8
			Planes, BPP            uint16
			Size, Offset           uint32
		}{dim, dim, 0, 0, 1, 32, uint32(len(p)), uint32(offset)})
		offset += len(p)
	}
	for _, p := range pngs {
		buf.Write(p)
	}
	return buf.Bytes()
}

func write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
}
