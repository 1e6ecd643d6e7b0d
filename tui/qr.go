package tui

import (
	"fmt"
	"strings"

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
