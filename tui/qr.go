package tui

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/skip2/go-qrcode"
)

// QR is a QR code drawn with half blocks: each character holds two
// modules, one above the other. It is drawn dark on light, with the quiet
// zone, never inverted (many phone scanners refuse inverted codes): dark
// modules are the foreground, light ones the background, and both colours
// are set explicitly so that a dark terminal theme does not invert it.
type QR struct {
	// Lines are the rows of characters, without colour.
	Lines []string
	// Bits are the modules the lines draw, quiet zone included; true is
	// dark.
	Bits [][]bool
}

// NewQR encodes text (medium error correction) with a quiet zone of four
// modules.
func NewQR(text string) (*QR, error) {
	code, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("tui: encode %q as a QR code: %w", text, err)
	}
	bits := code.Bitmap()
	return &QR{Lines: halfBlocks(bits), Bits: bits}, nil
}

// Width and Height are the QR code's size in characters.
func (q *QR) Width() int  { return len(q.Bits) }
func (q *QR) Height() int { return len(q.Lines) }

// draw returns the code's rows, coloured: half blocks dark on light, or,
// for a terminal that draws blocks two columns wide (wide), each module as
// two spaces of the dark or the light colour, a row a line.
func (q *QR) draw(st styles, wide bool) []string {
	if !wide {
		out := make([]string, len(q.Lines))
		for i, l := range q.Lines {
			out[i] = st.qr.Render(l)
		}
		return out
	}
	dark := lipgloss.NewStyle().Background(st.qr.GetForeground())
	light := lipgloss.NewStyle().Background(st.qr.GetBackground())
	out := make([]string, len(q.Bits))
	for y, row := range q.Bits {
		var b strings.Builder
		for x := 0; x < len(row); {
			n := 1
			for x+n < len(row) && row[x+n] == row[x] {
				n++
			}
			style := light
			if row[x] {
				style = dark
			}
			b.WriteString(style.Render(strings.Repeat("  ", n)))
			x += n
		}
		out[y] = b.String()
	}
	return out
}

// size is the drawing's width and height in characters.
func (q *QR) size(wide bool) (int, int) {
	if wide {
		return 2 * len(q.Bits), len(q.Bits)
	}
	return q.Width(), q.Height()
}

// halfBlocks draws rows two at a time; an odd last row pairs with a light
// one.
func halfBlocks(bits [][]bool) []string {
	var lines []string
	for y := 0; y < len(bits); y += 2 {
		var b strings.Builder
		for x := range bits[y] {
			top := bits[y][x]
			bottom := y+1 < len(bits) && bits[y+1][x]
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		lines = append(lines, b.String())
	}
	return lines
}

// readHalfBlocks turns drawn lines back into modules: the inverse of
// halfBlocks, for tests and for checking a captured screen.
func readHalfBlocks(lines []string, height int) ([][]bool, error) {
	bits := make([][]bool, 0, height)
	for i, line := range lines {
		top, bottom := []bool{}, []bool{}
		for _, r := range line {
			switch r {
			case '█':
				top, bottom = append(top, true), append(bottom, true)
			case '▀':
				top, bottom = append(top, true), append(bottom, false)
			case '▄':
				top, bottom = append(top, false), append(bottom, true)
			case ' ':
				top, bottom = append(top, false), append(bottom, false)
			default:
				return nil, fmt.Errorf("tui: line %d of a QR code holds %q", i+1, r)
			}
		}
		bits = append(bits, top)
		if len(bits) < height {
			bits = append(bits, bottom)
		}
	}
	return bits, nil
}
